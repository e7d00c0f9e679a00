/* Speculative decoding benchmark: greedy decode of each prompt of a set, --batch at a time
 * (default 1: single stream), with prompt-lookup drafts off and on, back to back per group
 * (off, on, off, on, ... --reps times).
 *
 * usage: bench_spec MODEL --prompts FILE.json [--label NAME] [--reps 2] [--batch 1] [--quantize SCHEME]
 *                   [engine options: --threads, --speculative-tokens, --speculative-ngram-min/max]
 *
 * FILE.json: [{"prompt_ids": [...], "max_tokens": N}, ...] (tools/make_copy_model.py writes
 * two). Each request runs alone (ignore_eos, temperature 0, prefix caching off) on an engine
 * stepped by this thread; decode speed counts the tokens after the first over the time after
 * the first (the prefill is not in it; with --batch, from the moment every request of the group
 * has its first token to the last finish, the aggregate). Tokens per forward: those tokens over the decode steps
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

/* Runs prompts p[0..n-1] together to their ends; their output ids go to ids[i] (4096 each).
 * The window runs from the moment every request has its first token to the last finish. */
static void run_group(struct engine *e, const struct prompt *p, int n, bool spec, int32_t **ids, int *n_ids,
                      struct totals *t)
{
    struct stream *s[MAX_PROMPTS];
    bool done[MAX_PROMPTS] = {0};
    for (int i = 0; i < n; i++) {
        struct engine_request_params rp = {.prompt = p[i].ids, .n_prompt = p[i].n, .max_tokens = p[i].max_tokens,
                                           .ignore_eos = true, .speculative = spec ? SPEC_ON : SPEC_OFF};
        sampling_params_init(&rp.sampling);
        rp.sampling.temperature = 0;
        struct ms_err err = {{0}};
        uint64_t id;
        s[i] = stream_create();
        n_ids[i] = 0;
        if (!s[i] || engine_submit(e, &rp, s[i], &id, &err)) {
            fprintf(stderr, "bench_spec: %s\n", err.msg);
            exit(1);
        }
    }
    struct engine_stats st0 = {0}, st1;
    double t0 = 0;
    int started = 0, finished = 0;
    uint64_t in_window = 0;
    while (finished < n) {
        engine_step(e);
        for (int i = 0; i < n; i++) {
            struct stream_event ev;
            while (!done[i] && stream_pop(s[i], &ev, 0)) {
                if (ev.finish != FINISH_NONE) {
                    done[i] = true;
                    finished++;
                    if (ev.finish == FINISH_ERROR) fprintf(stderr, "bench_spec: request failed: %s\n", ev.error), exit(1);
                    continue;
                }
                if (started == n) in_window++;
                if (n_ids[i]++ == 0 && ++started == n) {
                    t0 = ms_now();
                    engine_get_stats(e, &st0);
                }
                ids[i][n_ids[i] - 1] = ev.token;
            }
        }
    }
    double t1 = ms_now();
    engine_get_stats(e, &st1);
    for (int i = 0; i < n; i++) stream_release(s[i]);
    t->seconds += t1 - t0;
    t->tokens += in_window;
    t->steps += st1.steps - st0.steps;
    t->drafted += st1.spec_draft_tokens - st0.spec_draft_tokens;
    t->accepted += st1.spec_accepted_tokens - st0.spec_accepted_tokens;
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
    int reps = 2, batch = 1;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--prompts")) prompts_path = argv[i + 1];
        else if (!strcmp(argv[i], "--label")) label = argv[i + 1];
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batch")) batch = atoi(argv[i + 1]);
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
    if (batch < 1 || batch > MAX_PROMPTS) {
        fprintf(stderr, "bench_spec: --batch must be in [1, %d]\n", MAX_PROMPTS);
        return 2;
    }
    cfg.max_num_seqs = batch;
    static struct prompt prompts[MAX_PROMPTS];
    int np = load_prompts(prompts_path, prompts, MAX_PROMPTS);
    if (np < batch) {
        fprintf(stderr, "bench_spec: %s has %d prompts, fewer than --batch %d\n", prompts_path, np, batch);
        return 2;
    }
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
    static int32_t a_buf[MAX_PROMPTS][4096], b_buf[MAX_PROMPTS][4096];
    int32_t *a[MAX_PROMPTS], *b[MAX_PROMPTS];
    int na[MAX_PROMPTS], nb[MAX_PROMPTS], mismatches = 0;
    for (int i = 0; i < MAX_PROMPTS; i++) a[i] = a_buf[i], b[i] = b_buf[i];
    for (int i = 0; i < np; i++)
        if (prompts[i].max_tokens > 4096) prompts[i].max_tokens = 4096;
    for (int r = 0; r < reps; r++) {
        for (int i = 0; i + batch <= np; i += batch) {
            run_group(e, &prompts[i], batch, false, a, na, &off);
            run_group(e, &prompts[i], batch, true, b, nb, &on);
            for (int k = 0; k < batch; k++)
                mismatches += na[k] != nb[k] || memcmp(a[k], b[k], (size_t)na[k] * sizeof *a[k]) != 0;
        }
    }
    printf("| prompts | speculative | decode tok/s | tokens per forward | accepted / drafted |\n"
           "| --- | --- | --- | --- | --- |\n");
    row(label, "off", &off);
    row(label, "ngram", &on);
    printf("\n%s: speedup %.2fx (%d prompts x %d reps, %d at once, %d threads, up to %d draft tokens, n-grams "
           "%d-%d); outputs %s\n", label, ((double)on.tokens / on.seconds) / ((double)off.tokens / off.seconds), np,
           reps, batch, cfg.threads, cfg.spec_tokens, cfg.spec_ngram_min, cfg.spec_ngram_max,
           mismatches ? "DIFFER" : "identical");
    engine_destroy(e);
    model_free(m);
    for (int i = 0; i < np; i++) free(prompts[i].ids);
    return mismatches ? 1 : 0;
}
