/* Engine benchmark: prefill and batched decode throughput of the engine on one model.
 *
 * usage: bench_engine MODEL_DIR [--threads N] [--prompt-len 512] [--decode-tokens 32]
 *                     [--batches 1,4,8,16,32] [--kv-cache-dtype f32] [--quantize q8_0]
 *                     [--bf16-activations 1]
 *
 * Prefill: one request with a prompt of --prompt-len random ids and max_tokens 1; the time from
 * submit to its final event (prompt tokens / s), the best of 3 prompts. Decode at batch B: B requests with distinct
 * 16-token prompts and ignore_eos, started together; throughput counts the tokens produced after
 * every request has its first token, until all finish (aggregate tok/s), and the time per engine
 * step. Peak RSS from getrusage.
 *
 * Each figure comes with its bandwidth bound: the machine's read bandwidth is measured first
 * (as bench_kernels does), the engine counts the weight bytes its matmuls stream (each active
 * expert once a step), and the bound is the tokens of the window over the time those bytes take
 * at that bandwidth. Prints Markdown: the results, then the time per step by phase. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "cli/engine_opts.h"
#include "engine/engine.h"
#include "bench/bench_util.h"

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

/* The engine's counters once they include every token received so far (the engine pushes a
 * step's tokens before it publishes the step's counters) and, when `idle`, once nothing runs. */
static void settled_stats(struct engine *e, uint64_t tokens_received, bool idle, struct engine_stats *out)
{
    double give_up = ms_now() + 2.0;
    do {
        engine_get_stats(e, out);
        if (out->generation_tokens >= tokens_received && (!idle || (!out->running && !out->waiting))) return;
        usleep(50);
    } while (ms_now() < give_up);
}

/* Waits for events on every request; returns when all are done. The window starts when every
 * request has its first token: *first gets the counters then and *t_first the time; *last and
 * *t_last the same at the end. */
static void wait_all(struct engine *e, struct req *rs, int n, double *t_first, struct engine_stats *first,
                     double *t_last, struct engine_stats *last)
{
    int have_first = 0, done = 0;
    uint64_t received = 0;
    while (done < n) {
        for (int i = 0; i < n; i++) {
            struct stream_event ev;
            while (!rs[i].done && stream_pop(rs[i].stream, &ev, 0.0005)) {
                if (ev.finish != FINISH_NONE) {
                    rs[i].done = true;
                    done++;
                    *t_last = ms_now();
                    if (ev.finish == FINISH_ERROR) fprintf(stderr, "bench: request failed: %s\n", ev.error);
                    continue;
                }
                received++;
                if (rs[i].produced++ == 0 && ++have_first == n) {
                    settled_stats(e, received, false, first);
                    *t_first = ms_now();
                }
            }
        }
    }
    settled_stats(e, received, true, last);
    for (int i = 0; i < n; i++) stream_release(rs[i].stream);
}

/* st minus the snapshot `since` (zeroed: the whole run) */
static void stats_sub(struct engine_stats *st, const struct engine_stats *since)
{
    for (int p = 0; p < MODEL_PHASE_COUNT; p++) st->forward.seconds[p] -= since->forward.seconds[p];
    st->forward.forwards -= since->forward.forwards;
    st->forward.tokens -= since->forward.tokens;
    st->forward.weight_bytes -= since->forward.weight_bytes;
    for (int b = 0; b < MODEL_DISTINCT_BUCKETS; b++) st->forward.distinct[b] -= since->forward.distinct[b];
    st->forward.distinct_sum -= since->forward.distinct_sum;
    st->steps -= since->steps;
    st->generation_tokens -= since->generation_tokens;
    st->step_seconds -= since->step_seconds;
    st->sample_seconds -= since->sample_seconds;
}

/* Profiles are kept and printed after the results table. */
struct profile {
    char label[64];
    struct engine_stats st;
};
static struct profile profiles[16];
static int n_profiles;

/* One results row: `tokens` produced in `seconds`, with the engine's counters over the same
 * window (st); the bound is those tokens' share of the bandwidth: the window's weight bytes
 * read at `bw` GB/s. */
static void result_row(const char *measure, int batch, long tokens, double seconds, const struct engine_stats *st,
                       double bw)
{
    double gb = st->forward.weight_bytes / 1e9, bound = gb > 0 ? tokens / (gb / bw) : 0;
    double steps = st->steps ? (double)st->steps : 1;
    printf("| %s | %d | %ld | %.2f | %.1f | %.1f | %.3f | %.1f | %.0f%% |\n", measure, batch, tokens, seconds,
           tokens / seconds, seconds * 1000 / steps, gb / steps, bound, bound > 0 ? 100 * tokens / seconds / bound : 0);
    fflush(stdout);
}

static void keep_profile(const struct engine_stats *end, const struct engine_stats *since, const char *label)
{
    if (n_profiles == (int)(sizeof profiles / sizeof profiles[0])) n_profiles--; /* keep the latest */
    snprintf(profiles[n_profiles].label, sizeof profiles[n_profiles].label, "%s", label);
    profiles[n_profiles].st = *end;
    stats_sub(&profiles[n_profiles++].st, since);
}

/* Where the steps' time went: every forward phase, sampling, and the rest of the step
 * (scheduling, batch building), in ms per step, one column per measure. */
static void print_profiles(void)
{
    if (!n_profiles) return;
    printf("\nms per step by phase (share of the step):\n\n| phase |");
    for (int i = 0; i < n_profiles; i++) printf(" %s |", profiles[i].label);
    printf("\n| --- |");
    for (int i = 0; i < n_profiles; i++) printf(" --- |");
    printf("\n");
    for (int p = 0; p <= MODEL_PHASE_COUNT + 1; p++) {
        printf("| %s |", p < MODEL_PHASE_COUNT ? model_phase_name((enum model_phase)p)
                         : p == MODEL_PHASE_COUNT ? "sampling + streaming" : "scheduling, batch building");
        for (int i = 0; i < n_profiles; i++) {
            const struct engine_stats *st = &profiles[i].st;
            double v = 0, fwd = 0;
            for (int q = 0; q < MODEL_PHASE_COUNT; q++) fwd += st->forward.seconds[q];
            if (p < MODEL_PHASE_COUNT) v = st->forward.seconds[p];
            else if (p == MODEL_PHASE_COUNT) v = st->sample_seconds;
            else v = st->step_seconds - fwd - st->sample_seconds;
            double steps = st->steps ? (double)st->steps : 1;
            printf(" %.2f (%.0f%%) |", v * 1000 / steps, st->step_seconds > 0 ? 100 * v / st->step_seconds : 0);
        }
        printf("\n");
    }
    printf("| whole step |");
    for (int i = 0; i < n_profiles; i++)
        printf(" %.2f |", profiles[i].st.step_seconds * 1000 / (profiles[i].st.steps ? (double)profiles[i].st.steps : 1));
    printf("\n");
    /* the experts a sparse layer reads per step, which the weight bytes per step follow */
    printf("| distinct experts per layer-step (mean) |");
    for (int i = 0; i < n_profiles; i++) {
        const struct model_profile *f = &profiles[i].st.forward;
        uint64_t n = 0;
        for (int b = 0; b < MODEL_DISTINCT_BUCKETS; b++) n += f->distinct[b];
        printf(" %.1f |", n ? (double)f->distinct_sum / (double)n : 0);
    }
    printf("\n");
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
        else if (!strcmp(argv[i], "--load-mode")) lo.keep_mapping = !strcmp(argv[i + 1], "mmap");
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
    struct ms_err bw_err = {{0}};
    struct threadpool *bw_tp = tp_create(base.threads, 0, &bw_err);
    double bw = bw_tp ? bench_read_bandwidth(bw_tp, 1u << 30, 5) : 0;
    tp_destroy(bw_tp);
    printf("%s, %d threads, read bandwidth %.1f GB/s (1 GiB, best of 5, this run)\n\n",
           model_is_quantized(m) ? "Q8_0 (quantized at load)" : "weights as stored", base.threads, bw);
    printf("| measure | batch | tokens | seconds | tok/s | ms/step | GB weights/step | bandwidth bound tok/s | of bound |\n"
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");

    /* Prefill: the best of 3 distinct prompts, each in a fresh engine. The first forward of a
     * process can be several times slower (first touches of the scratch buffers and of pages
     * the kernel has not mapped into this process yet), which is load time, not prefill speed. */
    double t_first, t_last, best_prefill = 1e300;
    struct engine_stats none = {0}, first, last, best_stats = {0};
    struct engine *e;
    for (int run = 0; run < 3; run++) {
        e = make(m, base, 1, prompt_len);
        for (int i = 0; i < prompt_len; i++) rs[0].prompt[i] = random_id();
        double t0 = ms_now();
        submit(e, &rs[0], prompt_len, 1);
        wait_all(e, rs, 1, &t_first, &first, &t_last, &last);
        if (t_last - t0 < best_prefill) best_prefill = t_last - t0, best_stats = last;
        engine_destroy(e);
    }
    char label[64];
    snprintf(label, sizeof label, "prefill %d", prompt_len);
    keep_profile(&best_stats, &none, label);
    result_row("prefill", 1, prompt_len, best_prefill, &profiles[n_profiles - 1].st, bw);

    for (char *tok = strtok(batches, ","); tok; tok = strtok(NULL, ",")) {
        int b = atoi(tok);
        if (b < 1 || b > 64) continue;
        e = make(m, base, b, 16 * b > 512 ? 16 * b : 512);
        for (int i = 0; i < b; i++) {
            for (int k = 0; k < 16; k++) rs[i].prompt[k] = random_id();
            submit(e, &rs[i], 16, decode_tokens + 1);
        }
        wait_all(e, rs, b, &t_first, &first, &t_last, &last);
        /* decode steps after all first tokens: each produced one token per running request */
        snprintf(label, sizeof label, "decode B=%d", b);
        keep_profile(&last, &first, label);
        result_row("decode", b, (long)(last.generation_tokens - first.generation_tokens), t_last - t_first,
                   &profiles[n_profiles - 1].st, bw);
        engine_destroy(e);
    }
    print_profiles();
    printf("\npeak RSS %.2f GB (weights mapped: %.2f GB)\n", peak_rss_gb(), m->weights->mapped_bytes / 1e9);
    model_free(m);
    return 0;
}
