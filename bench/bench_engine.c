/* Engine benchmark: prefill and batched decode throughput of the engine on one model.
 *
 * usage: bench_engine MODEL_DIR [--threads N] [--prompt-len 512] [--decode-tokens 32]
 *                     [--batches 1,4,8,16,32] [--kv-cache-dtype f32] [--quantize q8_0]
 *                     [--bf16-activations 1]
 *
 * Prefill: one request with a prompt of --prompt-len random ids and max_tokens 1; the time from
 * submit to its final event (prompt tokens / s). Decode at batch B: B requests with distinct
 * 16-token prompts and ignore_eos, started together; throughput counts the tokens produced after
 * every request has its first token, until all finish (aggregate tok/s), and the time per engine
 * step. Peak RSS from getrusage. Prints a Markdown table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli/engine_opts.h"
#include "engine/engine.h"

static uint64_t seed_state = 12345;
static int32_t random_id(void)
{
    seed_state = seed_state * 6364136223846793005ull + 1442695040888963407ull;
    return (int32_t)((seed_state >> 33) % 150000);
}

struct req {
    int32_t prompt[4096];
    struct stream *stream;
    int produced;
    bool done;
};

static struct engine *make(const struct model *m, struct engine_config base, int seqs, int budget)
{
    struct ms_err err = {{0}};
    base.max_num_seqs = seqs;
    base.max_num_batched_tokens = budget;
    base.max_model_len = 1024;
    base.prefix_caching = false; /* distinct prompts anyway; measure the plain path */
    if (engine_config_resolve(&base, m, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        exit(1);
    }
    struct engine *e = engine_create(m, &base, &err);
    if (!e) {
        fprintf(stderr, "bench: %s\n", err.msg);
        exit(1);
    }
    return e;
}

static void submit(struct engine *e, struct req *r, int n_prompt, int max_tokens)
{
    struct engine_request_params p = {.prompt = r->prompt, .n_prompt = n_prompt, .max_tokens = max_tokens,
                                      .ignore_eos = true};
    sampling_params_init(&p.sampling);
    struct ms_err err = {{0}};
    uint64_t id;
    r->stream = stream_create();
    r->produced = 0;
    r->done = false;
    if (engine_submit(e, &p, r->stream, &id, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        exit(1);
    }
}

/* Waits for events on every request; returns when all are done. t_all_first gets the time when
 * the last request received its first token, tokens_after the tokens produced after that. */
static void wait_all(struct engine *e, struct req *rs, int n, double *t_all_first, long *tokens_after,
                     struct engine_stats *at_first)
{
    int have_first = 0, done = 0;
    *tokens_after = 0;
    while (done < n) {
        for (int i = 0; i < n; i++) {
            struct stream_event ev;
            while (!rs[i].done && stream_pop(rs[i].stream, &ev, 0.0005)) {
                if (ev.finish != FINISH_NONE) {
                    rs[i].done = true;
                    done++;
                    if (ev.finish == FINISH_ERROR) fprintf(stderr, "bench: request failed: %s\n", ev.error);
                    continue;
                }
                if (have_first == n) (*tokens_after)++;
                if (rs[i].produced++ == 0 && ++have_first == n) {
                    *t_all_first = ms_now();
                    engine_get_stats(e, at_first);
                }
            }
        }
    }
    for (int i = 0; i < n; i++) stream_release(rs[i].stream);
}

/* Where the steps' time went: every forward phase, sampling, and the rest of the step
 * (scheduling, batch building), in ms per step and as a share of the step. */
/* st minus the snapshot `since` (zeroed: the whole run) */
static void stats_sub(struct engine_stats *st, const struct engine_stats *since)
{
    for (int p = 0; p < MODEL_PHASE_COUNT; p++) st->forward.seconds[p] -= since->forward.seconds[p];
    st->forward.forwards -= since->forward.forwards;
    st->forward.tokens -= since->forward.tokens;
    st->steps -= since->steps;
    st->step_seconds -= since->step_seconds;
    st->sample_seconds -= since->sample_seconds;
}

static void print_profile(struct engine *e, const struct engine_stats *since, const char *label)
{
    struct engine_stats st;
    engine_get_stats(e, &st);
    stats_sub(&st, since);
    if (!st.steps || st.step_seconds <= 0) return;
    double per = 1000.0 / (double)st.steps, fwd = 0;
    fprintf(stderr, "\nprofile (%s): %llu steps, %.2f ms/step, %.1f tokens/forward\n", label,
            (unsigned long long)st.steps, st.step_seconds * per,
            (double)st.forward.tokens / (double)(st.forward.forwards ? st.forward.forwards : 1));
    for (int p = 0; p < MODEL_PHASE_COUNT; p++) {
        fwd += st.forward.seconds[p];
        fprintf(stderr, "  %-28s %8.3f ms %5.1f%%\n", model_phase_name((enum model_phase)p),
                st.forward.seconds[p] * per, 100 * st.forward.seconds[p] / st.step_seconds);
    }
    double rest = st.step_seconds - fwd - st.sample_seconds;
    fprintf(stderr, "  %-28s %8.3f ms %5.1f%%\n", "sampling + streaming", st.sample_seconds * per,
            100 * st.sample_seconds / st.step_seconds);
    fprintf(stderr, "  %-28s %8.3f ms %5.1f%%\n", "scheduling, batch building", rest * per, 100 * rest / st.step_seconds);
}

static double peak_rss_gb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss * 1024.0 / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_engine MODEL_DIR [--prompt-len N] [--decode-tokens N] [--batches 1,4,8] [engine options]\n");
        return 2;
    }
    struct engine_config base = {.threads = (int)sysconf(_SC_NPROCESSORS_ONLN)};
    int prompt_len = 512, decode_tokens = 32;
    struct model_load_opts lo = {.threads = base.threads};
    char batches[256] = "1,4,8,16,32";
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--prompt-len")) prompt_len = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--decode-tokens")) decode_tokens = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--batches")) snprintf(batches, sizeof batches, "%s", argv[i + 1]);
        else if (!strcmp(argv[i], "--quantize")) lo.quantize_q8_0 = !strcmp(argv[i + 1], "q8_0");
        else if (!strcmp(argv[i], "--bf16-activations")) lo.bf16_activations = !strcmp(argv[i + 1], "1");
        else if (engine_opts_parse(&base, argv[i], argv[i + 1]) <= 0) {
            fprintf(stderr, "bench: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    struct model *m = NULL;
    struct ms_err err = {{0}};
    double t_load = ms_now();
    if (model_load_with_opts(argv[1], &lo, &m, &err)) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    fprintf(stderr, "bench: loaded in %.2f s%s%s\n", ms_now() - t_load, model_is_quantized(m) ? " (quantized to Q8_0)" : "",
            m->bf16_activations ? " (bf16 activations)" : "");
    static struct req rs[64];
    printf("| measure | batch | tokens | seconds | tok/s | ms/step |\n| --- | --- | --- | --- | --- | --- |\n");

    struct engine *e = make(m, base, 1, prompt_len);
    for (int i = 0; i < prompt_len; i++) rs[0].prompt[i] = random_id();
    double t0 = ms_now(), t_first;
    long after;
    struct engine_stats none = {0}, at_first;
    submit(e, &rs[0], prompt_len, 1);
    wait_all(e, rs, 1, &t_first, &after, &at_first);
    double dt = ms_now() - t0;
    printf("| prefill | 1 | %d | %.2f | %.1f | %.0f |\n", prompt_len, dt, prompt_len / dt, dt * 1000);
    fflush(stdout);
    print_profile(e, &none, "prefill");
    engine_destroy(e);

    for (char *tok = strtok(batches, ","); tok; tok = strtok(NULL, ",")) {
        int b = atoi(tok);
        if (b < 1 || b > 64) continue;
        e = make(m, base, b, 16 * b > 512 ? 16 * b : 512);
        for (int i = 0; i < b; i++) {
            for (int k = 0; k < 16; k++) rs[i].prompt[k] = random_id();
            submit(e, &rs[i], 16, decode_tokens + 1);
        }
        wait_all(e, rs, b, &t_first, &after, &at_first);
        double t_end = ms_now();
        /* decode steps after all first tokens: each produced one token per running request */
        double dec = t_end - t_first;
        printf("| decode | %d | %ld | %.2f | %.1f | %.0f |\n", b, after, dec, after / dec,
               dec * 1000 / decode_tokens);
        fflush(stdout);
        char label[64];
        snprintf(label, sizeof label, "decode, batch %d, after every first token", b);
        print_profile(e, &at_first, label);
        engine_destroy(e);
    }
    printf("\npeak RSS %.2f GB (weights mapped: %.2f GB)\n", peak_rss_gb(), m->weights->mapped_bytes / 1e9);
    model_free(m);
    return 0;
}
