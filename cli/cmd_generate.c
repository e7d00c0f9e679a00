/* moeserve generate: continue a prompt with the model, printing the new tokens. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_util.h"
#include "engine/model.h"
#include "engine/sampler.h"

static const char generate_help[] =
    "usage: moeserve generate --model DIR --prompt-ids 1,2,3 [options]\n"
    "\n"
    "Continues the prompt and prints the generated token ids (one line, space-separated).\n"
    "Generation stops at an end-of-sequence id from generation_config.json or after --max-tokens.\n"
    "\n"
    "  --model DIR         Hugging Face model directory (config.json, *.safetensors, tokenizer)\n"
    "                      (env MOESERVE_MODEL)\n"
    "  --prompt-ids LIST   the prompt as comma-separated token ids\n"
    "  --max-tokens N      most tokens to generate (default 64)\n"
    "  --temperature T     0 = greedy (default 0); otherwise sample from softmax(logits / T)\n"
    "  --seed N            random seed for sampling (default 0)\n"
    "  --ids               print token ids (the default until text output is available)\n"
    "  --threads N         compute threads (default: number of cores)\n";

struct generate_opts {
    const char *model_dir, *ids_text;
    long max_tokens, threads, seed;
    double temperature;
};

static int parse_opts(int argc, char **argv, struct generate_opts *o)
{
    *o = (struct generate_opts){getenv("MOESERVE_MODEL"), NULL, 64, cli_default_threads(), 0, 0.0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(generate_help, stdout);
            return 1;
        }
        if (!strcmp(a, "--ids")) continue;
        if (i + 1 >= argc) {
            fprintf(stderr, "moeserve generate: unknown option or missing value: %s (see --help)\n", a);
            return -1;
        }
        const char *v = argv[++i];
        int bad = 0;
        if (!strcmp(a, "--model")) o->model_dir = v;
        else if (!strcmp(a, "--prompt-ids")) o->ids_text = v;
        else if (!strcmp(a, "--max-tokens")) bad = cli_parse_int(a, v, 0, 1 << 24, &o->max_tokens);
        else if (!strcmp(a, "--threads")) bad = cli_parse_int(a, v, 1, 1024, &o->threads);
        else if (!strcmp(a, "--seed")) bad = cli_parse_int(a, v, 0, INT32_MAX, &o->seed);
        else if (!strcmp(a, "--temperature")) bad = cli_parse_double(a, v, 0, 100, &o->temperature);
        else {
            fprintf(stderr, "moeserve generate: unknown option %s (see --help)\n", a);
            return -1;
        }
        if (bad) return -1;
    }
    if (!o->model_dir || !o->ids_text) {
        fprintf(stderr, "moeserve generate: --model and --prompt-ids are required (see --help)\n");
        return -1;
    }
    return 0;
}

int cmd_generate(int argc, char **argv)
{
    struct generate_opts o;
    int prc = parse_opts(argc, argv, &o);
    if (prc) return prc > 0 ? 0 : 2;
    int32_t *ids = NULL;
    int n = 0;
    if (cli_parse_ids("--prompt-ids", o.ids_text, &ids, &n)) return 2;

    int rc = 1;
    struct ms_err err = {{0}};
    struct model *m = NULL;
    struct threadpool *tp = NULL;
    struct model_state *st = NULL;
    float *logits = NULL, *work = NULL;
    if (cli_load_model(o.model_dir, &m)) goto out;
    long ctx = n + o.max_tokens;
    if (ctx > m->cfg.max_position_embeddings) {
        fprintf(stderr, "moeserve: prompt (%d tokens) + --max-tokens (%ld) exceeds the context length %d\n", n,
                o.max_tokens, m->cfg.max_position_embeddings);
        goto out;
    }
    if (!(tp = tp_create((int)o.threads, model_scratch_floats(m, (int)ctx), &err)) ||
        !(st = model_state_create(m, n, (int)ctx, &err))) {
        fprintf(stderr, "moeserve: %s\n", err.msg);
        goto out;
    }
    int vocab = m->cfg.vocab_size;
    logits = malloc((size_t)vocab * sizeof *logits);
    work = malloc((size_t)vocab * sizeof *work);
    if (!logits || !work) {
        fprintf(stderr, "moeserve: out of memory\n");
        goto out;
    }
    struct sampling_params sp = {(float)o.temperature, (uint64_t)o.seed};
    struct sampler_rng rng;
    sampler_rng_seed(&rng, sp.seed);
    double t0 = ms_now();
    int pos = 0, produced = 0, chunk = n;
    const int32_t *feed = ids;
    int32_t next = 0;
    while (produced < o.max_tokens) {
        if (model_forward(m, st, tp, feed, chunk, pos, logits, false, &err)) {
            fprintf(stderr, "moeserve: %s\n", err.msg);
            goto out;
        }
        pos += chunk;
        next = sampler_sample(logits, vocab, &sp, &rng, work);
        printf(produced ? " %d" : "%d", next);
        fflush(stdout);
        produced++;
        if (model_config_is_eos(&m->cfg, next)) break;
        feed = &next;
        chunk = 1;
    }
    printf("\n");
    double dt = ms_now() - t0;
    fprintf(stderr, "moeserve: %d prompt + %d generated tokens in %.2f s (%.1f tok/s)\n", n, produced, dt,
            dt > 0 ? produced / dt : 0.0);
    rc = 0;
out:
    free(logits);
    free(work);
    model_state_destroy(st);
    tp_destroy(tp);
    model_free(m);
    free(ids);
    return rc;
}
