/* Speculative decoding benchmark: single-stream greedy decode of each prompt of a set, with
 * prompt-lookup drafts off and on, back to back per prompt (off, on, off, on, ... --reps times).
 *
 * usage: bench_spec MODEL --prompts FILE.json [--label NAME] [--reps 2] [--quantize SCHEME]
 *                   [engine options: --threads, --speculative-tokens, --speculative-ngram-min/max]
 *
 * FILE.json: [{"prompt_ids": [...], "max_tokens": N}, ...] (tools/make_copy_model.py writes
 * two). Each request runs alone (ignore_eos, temperature 0, prefix caching off) on an engine
 * stepped by this thread; decode speed counts the tokens after the first over the time after
 * the first (the prefill is not in it). Tokens per forward: those tokens over the decode steps
 * (each step is one forward). The outputs of both modes must be the same ids, or the bench
 * fails. Prints one Markdown row per mode, then the speedup. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/engine_opts.h"
#include "common/ms_common.h"
#include "engine/engine.h"

#define MAX_PROMPTS 64

struct prompt {
    int32_t *ids;
    int n, max_tokens;
};

struct totals {
    double seconds;
    uint64_t tokens, steps, drafted, accepted;
};

static int load_prompts(const char *path, struct prompt *out, int cap)
{
    size_t len = 0;
    struct ms_err err = {{0}};
    char *text = NULL;
    cJSON *root = ms_read_file(path, &text, &len, &err) == MS_OK ? cJSON_Parse(text) : NULL;
    free(text);
    if (!cJSON_IsArray(root)) {
        fprintf(stderr, "bench_spec: %s: %s\n", path, err.msg[0] ? err.msg : "not a JSON array");
        exit(1);
    }
    int n = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, root) {
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(item, "prompt_ids");
        const cJSON *mt = cJSON_GetObjectItemCaseSensitive(item, "max_tokens");
        if (n == cap || !cJSON_IsArray(ids) || !cJSON_IsNumber(mt)) {
            fprintf(stderr, "bench_spec: %s: entry %d needs prompt_ids and max_tokens (at most %d entries)\n", path,
                    n, cap);
            exit(1);
        }
        out[n].n = cJSON_GetArraySize(ids);
        out[n].ids = malloc((size_t)out[n].n * sizeof *out[n].ids);
        out[n].max_tokens = (int)mt->valuedouble;
        int k = 0;
        const cJSON *id;
        cJSON_ArrayForEach(id, ids) out[n].ids[k++] = (int32_t)id->valuedouble;
        n++;
    }
    cJSON_Delete(root);
    return n;
}

/* Runs one request to its end; returns its output ids in `ids` (owned by the caller). */
static int run_one(struct engine *e, const struct prompt *p, bool spec, int32_t *ids, struct totals *t)
{
    struct engine_request_params rp = {.prompt = p->ids, .n_prompt = p->n, .max_tokens = p->max_tokens,
                                       .ignore_eos = true, .speculative = spec ? SPEC_ON : SPEC_OFF};
    sampling_params_init(&rp.sampling);
    rp.sampling.temperature = 0;
    struct stream *s = stream_create();
    struct ms_err err = {{0}};
    uint64_t id;
    if (!s || engine_submit(e, &rp, s, &id, &err)) {
        fprintf(stderr, "bench_spec: %s\n", err.msg);
        exit(1);
    }
    struct engine_stats st0 = {0}, st1;
    double t0 = 0;
    int n = 0;
    bool done = false;
    while (!done) {
        engine_step(e);
        struct stream_event ev;
        while (stream_pop(s, &ev, 0)) {
            if (ev.finish != FINISH_NONE) {
                done = true;
                if (ev.finish == FINISH_ERROR) fprintf(stderr, "bench_spec: request failed: %s\n", ev.error), exit(1);
                continue;
            }
            if (n == 0) {
                t0 = ms_now();
                engine_get_stats(e, &st0);
            }
            ids[n++] = ev.token;
        }
    }
    double t1 = ms_now();
    engine_get_stats(e, &st1);
    stream_release(s);
    t->seconds += t1 - t0;
    t->tokens += (uint64_t)(n - 1);
    t->steps += st1.steps - st0.steps;
    t->drafted += st1.spec_draft_tokens - st0.spec_draft_tokens;
    t->accepted += st1.spec_accepted_tokens - st0.spec_accepted_tokens;
    return n;
}

static void row(const char *label, const char *mode, const struct totals *t)
{
    printf("| %s | %s | %.2f | %.2f | %llu / %llu |\n", label, mode, (double)t->tokens / t->seconds,
           (double)t->tokens / (double)t->steps, (unsigned long long)t->accepted, (unsigned long long)t->drafted);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_spec MODEL --prompts FILE.json [--label NAME] [--reps N] [--quantize SCHEME] "
                        "[engine options]\n");
        return 2;
    }
    struct engine_config cfg = {.threads = (int)sysconf(_SC_NPROCESSORS_ONLN), .max_num_seqs = 1,
                                .max_model_len = 2048, .manual_step = true};
    struct model_load_opts lo = {.threads = cfg.threads};
    const char *prompts_path = NULL, *label = "prompts";
    int reps = 2;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--prompts")) prompts_path = argv[i + 1];
        else if (!strcmp(argv[i], "--label")) label = argv[i + 1];
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--quantize")) lo.quantize_scheme = argv[i + 1];
        else if (engine_opts_parse(&cfg, argv[i], argv[i + 1]) <= 0) {
            fprintf(stderr, "bench_spec: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!prompts_path) {
        fprintf(stderr, "bench_spec: --prompts FILE.json is required\n");
        return 2;
    }
    cfg.prefix_caching = false;
    static struct prompt prompts[MAX_PROMPTS];
    int np = load_prompts(prompts_path, prompts, MAX_PROMPTS);
    struct model *m = NULL;
    struct ms_err err = {{0}};
    if (model_load_with_opts(argv[1], &lo, &m, &err) || engine_config_resolve(&cfg, m, &err)) {
        fprintf(stderr, "bench_spec: %s\n", err.msg);
        return 1;
    }
    struct engine *e = engine_create(m, &cfg, &err);
    if (!e) {
        fprintf(stderr, "bench_spec: %s\n", err.msg);
        return 1;
    }
    struct totals off = {0}, on = {0};
    int32_t *a = malloc(4096 * sizeof *a), *b = malloc(4096 * sizeof *b);
    int mismatches = 0;
    for (int r = 0; r < reps; r++) {
        for (int i = 0; i < np; i++) {
            if (prompts[i].max_tokens > 4096) prompts[i].max_tokens = 4096;
            int na = run_one(e, &prompts[i], false, a, &off);
            int nb = run_one(e, &prompts[i], true, b, &on);
            mismatches += na != nb || memcmp(a, b, (size_t)na * sizeof *a) != 0;
        }
    }
    printf("| prompts | speculative | decode tok/s | tokens per forward | accepted / drafted |\n"
           "| --- | --- | --- | --- | --- |\n");
    row(label, "off", &off);
    row(label, "ngram", &on);
    printf("\n%s: speedup %.2fx (%d prompts x %d reps, %d threads, up to %d draft tokens, n-grams %d-%d); "
           "outputs %s\n", label, ((double)on.tokens / on.seconds) / ((double)off.tokens / off.seconds), np, reps,
           cfg.threads, cfg.spec_tokens, cfg.spec_ngram_min, cfg.spec_ngram_max,
           mismatches ? "DIFFER" : "identical");
    free(a);
    free(b);
    engine_destroy(e);
    model_free(m);
    for (int i = 0; i < np; i++) free(prompts[i].ids);
    return mismatches ? 1 : 0;
}
