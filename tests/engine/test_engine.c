/* The engine's invariants on the tiny model, with the engine stepped by hand (manual_step) so
 * that arrivals, chunking, preemption and aborts happen at chosen steps:
 * - every request produces exactly the tokens it produces alone (greedy and seeded sampling),
 *   whatever the mix: random arrival steps, mixed prompt lengths, chunked prefill, forced
 *   preemption (a tiny KV pool) and prefix-cache hits;
 * - every KV block is back in the pool after everything ends (finished, aborted mid-prefill,
 *   aborted mid-decode, rejected);
 * - a multi-turn prompt that resends its history hits the cache for every full block;
 * - the grouped MoE over a batch gives the same logits as one token at a time;
 * - speculative decoding (n-gram drafts verified in one forward) gives every request exactly the
 *   tokens it gets without it, in the same mixes, with drafts both accepted and rejected. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/model/kv_cache.h"
#include "engine/model/model.h"
#include "tests/testhelp.h"

#define MAX_JOBS 16
#define MAX_OUT 160

struct job {
    int32_t prompt[256];
    int n_prompt, max_tokens, arrival_step, abort_step; /* abort_step < 0: never */
    struct sampling_params sp;
    bool seeded;
    struct logit_bias_entry bias[4]; /* sp.logit_bias points here once submitted */
    /* results */
    struct stream *stream;
    uint64_t id;
    int32_t out[MAX_OUT];
    int n_out;
    struct stream_event final;
    bool done, submitted;
};

static struct model *M;

static uint64_t rng_state = 42;
static uint32_t rnd(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}

static void job_init(struct job *j, int n_prompt, int max_tokens)
{
    memset(j, 0, sizeof *j);
    j->n_prompt = n_prompt;
    j->max_tokens = max_tokens;
    j->abort_step = -1;
    for (int i = 0; i < n_prompt; i++) j->prompt[i] = (int32_t)(rnd() % 151000);
    sampling_params_init(&j->sp);
}

static struct engine *make_engine_spec(int max_seqs, int budget, size_t kv_bytes, bool speculative)
{
    struct engine_config cfg = {.max_num_seqs = max_seqs, .max_num_batched_tokens = budget,
                                .kv_cache_bytes = kv_bytes, .prefix_caching = true, .threads = 2,
                                .speculative = speculative, .manual_step = true};
    struct ms_err err = {{0}};
    if (engine_config_resolve(&cfg, M, &err)) {
        fprintf(stderr, "config: %s\n", err.msg);
        return NULL;
    }
    struct engine *e = engine_create(M, &cfg, &err);
    if (!e) fprintf(stderr, "engine: %s\n", err.msg);
    return e;
}

static struct engine *make_engine(int max_seqs, int budget, size_t kv_bytes)
{
    return make_engine_spec(max_seqs, budget, kv_bytes, false);
}

static void drain(struct job *j)
{
    struct stream_event ev;
    while (!j->done && stream_pop(j->stream, &ev, 0)) {
        if (ev.finish != FINISH_NONE) {
            j->final = ev;
            j->done = true;
        } else if (j->n_out < MAX_OUT) {
            j->out[j->n_out++] = ev.token;
        }
    }
}

static int submit(struct engine *e, struct job *j)
{
    struct engine_request_params p = {.prompt = j->prompt, .n_prompt = j->n_prompt, .max_tokens = j->max_tokens,
                                      .sampling = j->sp, .seed_given = j->seeded};
    if (p.sampling.n_logit_bias) p.sampling.logit_bias = j->bias;
    struct ms_err err = {{0}};
    j->stream = stream_create();
    int rc = engine_submit(e, &p, j->stream, &j->id, &err);
    j->submitted = rc == MS_OK;
    if (rc) {
        stream_release(j->stream);
        j->stream = NULL;
    }
    return rc;
}

/* Steps the engine, submitting and aborting jobs at their steps, until every job is done. */
static int run(struct engine *e, struct job *jobs, int n)
{
    int steps = 0;
    for (; steps < 10000; steps++) {
        int pending = 0;
        for (int i = 0; i < n; i++) {
            if (!jobs[i].submitted && jobs[i].arrival_step == steps) submit(e, &jobs[i]);
            if (jobs[i].submitted && jobs[i].abort_step == steps) engine_abort(e, jobs[i].id);
        }
        engine_step(e);
        for (int i = 0; i < n; i++) {
            if (jobs[i].submitted) drain(&jobs[i]);
            pending += !jobs[i].done && (jobs[i].submitted || jobs[i].arrival_step > steps);
        }
        if (!pending) break;
    }
    return steps;
}

static void release(struct job *jobs, int n)
{
    for (int i = 0; i < n; i++)
        if (jobs[i].stream) stream_release(jobs[i].stream);
}

static int kv_used(struct engine *e)
{
    struct engine_stats st;
    engine_get_stats(e, &st);
    return st.kv_blocks_used;
}

/* Runs each job alone in a roomy engine: the tokens every mixed run must reproduce. */
static void run_alone(struct job *jobs, int n, struct job *alone)
{
    struct engine *e = make_engine(1, 4096, 0);
    for (int i = 0; i < n; i++) {
        alone[i] = jobs[i];
        alone[i].arrival_step = 0;
        alone[i].abort_step = -1;
        alone[i].stream = NULL;
        alone[i].submitted = alone[i].done = false;
        alone[i].n_out = 0;
        run(e, &alone[i], 1);
        release(&alone[i], 1);
        alone[i].stream = NULL;
    }
    engine_destroy(e);
}

static bool same_tokens(const struct job *a, const struct job *b)
{
    return a->n_out == b->n_out && !memcmp(a->out, b->out, (size_t)a->n_out * sizeof *a->out) &&
           a->final.finish == b->final.finish;
}

static void make_mix(struct job *jobs, int n)
{
    int32_t shared[48];
    for (int i = 0; i < 48; i++) shared[i] = (int32_t)(rnd() % 151000);
    for (int i = 0; i < n; i++) {
        job_init(&jobs[i], 3 + (int)(rnd() % 100), 6 + (int)(rnd() % 14));
        if (i % 3 == 0) memcpy(jobs[i].prompt, shared, sizeof shared), jobs[i].n_prompt += 48;
        jobs[i].arrival_step = (int)(rnd() % 12);
        if (i % 4 == 1) { /* seeded sampling must not depend on the batch either */
            jobs[i].sp.temperature = 0.9f;
            jobs[i].sp.top_k = 40;
            jobs[i].sp.top_p = 0.95f;
            jobs[i].sp.seed = 1000 + (uint64_t)i;
            jobs[i].seeded = true;
        }
    }
}

static void test_mixed_batches(void)
{
    struct job jobs[MAX_JOBS], alone[MAX_JOBS];
    make_mix(jobs, MAX_JOBS);
    run_alone(jobs, MAX_JOBS, alone);
    /* (max seqs, token budget, KV bytes): roomy; chunked; tiny pool that forces preemption */
    const struct {
        int seqs, budget;
        size_t kv;
        const char *name;
    } mixes[] = {
        {8, 512, 0, "roomy"},
        {6, 24, 0, "chunked prefill"},
        {6, 40, 14 * 16 * 512, "tiny pool (preemption)"},
    };
    for (size_t m = 0; m < sizeof mixes / sizeof mixes[0]; m++) {
        struct job run_jobs[MAX_JOBS];
        memcpy(run_jobs, jobs, sizeof jobs);
        struct engine *e = make_engine(mixes[m].seqs, mixes[m].budget, mixes[m].kv);
        test_cond("engine created", e != NULL);
        if (!e) continue;
        run(e, run_jobs, MAX_JOBS);
        int same = 0;
        for (int i = 0; i < MAX_JOBS; i++) same += same_tokens(&run_jobs[i], &alone[i]);
        char msg[128];
        snprintf(msg, sizeof msg, "%s: %d/%d requests match their solo tokens", mixes[m].name, same, MAX_JOBS);
        test_cond(msg, same == MAX_JOBS);
        struct engine_stats st;
        engine_get_stats(e, &st);
        if (mixes[m].kv) test_cond("tiny pool really preempted", st.preemptions > 0);
        test_cond("prefix cache hit on the shared prefix", st.prefix_cache_hits > 0);
        test_cond("all blocks back in the pool", st.kv_blocks_used == 0);
        release(run_jobs, MAX_JOBS);
        engine_destroy(e);
    }
}

/* Requests whose continuations repeat, so that drafts get accepted (and rejected): a logit bias
 * confines some to four tokens (greedy: a deterministic walk; seeded: a random one), others run
 * free on prompts that repeat themselves (drafts from the prompt, which the model rejects). */
static void make_spec_mix(struct job *jobs, int n)
{
    int32_t shared[32], alphabet[4] = {1000, 2000, 3000, 4000};
    for (int i = 0; i < 32; i++) shared[i] = (int32_t)(rnd() % 151000);
    for (int i = 0; i < n; i++) {
        job_init(&jobs[i], 8 + (int)(rnd() % 40), 30 + (int)(rnd() % 100));
        if (i % 3 != 2) {
            for (int k = 0; k < 4; k++) jobs[i].bias[k] = (struct logit_bias_entry){alphabet[k], 40.0f};
            jobs[i].sp.n_logit_bias = 4;
        } else { /* the prompt twice: its n-grams match */
            memcpy(jobs[i].prompt + jobs[i].n_prompt, jobs[i].prompt, (size_t)jobs[i].n_prompt * sizeof(int32_t));
            jobs[i].n_prompt *= 2;
        }
        if (i % 4 == 0) memcpy(jobs[i].prompt, shared, sizeof shared), jobs[i].n_prompt += 32;
        if (i % 3 == 1) {
            jobs[i].sp.temperature = 1.0f;
            jobs[i].sp.seed = 77 + (uint64_t)i;
            jobs[i].seeded = true;
        }
        jobs[i].arrival_step = (int)(rnd() % 20);
    }
}

/* with_alone: also the single-sequence engine, the slowest mix (one request at a time) */
static void test_speculative_exact(bool with_alone)
{
    enum { N = 12 };
    struct job jobs[N], alone[N];
    make_spec_mix(jobs, N);
    run_alone(jobs, N, alone); /* without speculative decoding */
    const struct {
        int seqs, budget;
        size_t kv;
        const char *name;
    } mixes[] = {
        {1, 4096, 0, "speculative, alone"},
        {8, 512, 0, "speculative, batched"},
        {6, 24, 0, "speculative, chunked prefill (drafts cut by the budget)"},
        {6, 40, 16 * 16 * 512, "speculative, tiny pool (preemption)"},
    };
    for (size_t m = with_alone ? 0 : 1; m < sizeof mixes / sizeof mixes[0]; m++) {
        struct job run_jobs[N];
        memcpy(run_jobs, jobs, sizeof jobs);
        struct engine *e = make_engine_spec(mixes[m].seqs, mixes[m].budget, mixes[m].kv, true);
        test_cond("engine created", e != NULL);
        if (!e) continue;
        int steps = 0;
        if (mixes[m].seqs == 1) {
            for (int i = 0; i < N; i++) {
                run_jobs[i].arrival_step = 0;
                steps += run(e, &run_jobs[i], 1) + 1;
            }
        } else {
            steps = run(e, run_jobs, N);
        }
        int same = 0, tokens = 0;
        for (int i = 0; i < N; i++) {
            same += same_tokens(&run_jobs[i], &alone[i]);
            tokens += run_jobs[i].n_out;
        }
        struct engine_stats st;
        engine_get_stats(e, &st);
        char msg[256];
        snprintf(msg, sizeof msg, "%s: %d/%d requests match their tokens without it (%llu drafts, %llu of %llu "
                 "drafted tokens accepted, %d tokens in %d steps)", mixes[m].name, same, N,
                 (unsigned long long)st.spec_drafts, (unsigned long long)st.spec_accepted_tokens,
                 (unsigned long long)st.spec_draft_tokens, tokens, steps);
        printf("%s\n", msg);
        test_cond(msg, same == N);
        test_cond("drafts were accepted", st.spec_accepted_tokens > 0);
        test_cond("drafts were rejected", st.spec_accepted_tokens < st.spec_draft_tokens);
        if (mixes[m].kv) test_cond("tiny pool really preempted", st.preemptions > 0);
        test_cond("all blocks back in the pool", st.kv_blocks_used == 0);
        release(run_jobs, N);
        engine_destroy(e);
    }
}

static void test_aborts_and_rejections(void)
{
    struct job jobs[4];
    job_init(&jobs[0], 200, 10); /* long prefill, aborted after its first chunk */
    jobs[0].abort_step = 1;
    job_init(&jobs[1], 10, 40); /* aborted mid-decode */
    jobs[1].abort_step = 6;
    job_init(&jobs[2], 10, 5); /* finishes */
    job_init(&jobs[3], 10, 5);
    jobs[3].abort_step = 0; /* aborted before it ever ran */
    struct engine *e = make_engine(4, 32, 30 * 16 * 512);
    int before = -1;
    if (!e) return;
    run(e, jobs, 4);
    test_cond("abort mid-prefill ends with abort", jobs[0].final.finish == FINISH_ABORT && jobs[0].n_out == 0);
    test_cond("abort mid-decode ends with abort after some tokens",
              jobs[1].final.finish == FINISH_ABORT && jobs[1].n_out > 0 && jobs[1].n_out < 40);
    test_cond("unaborted request finishes normally", jobs[2].final.finish == FINISH_LENGTH && jobs[2].n_out == 5);
    test_cond("abort before running", jobs[3].final.finish == FINISH_ABORT && jobs[3].n_out == 0);
    struct job big;
    job_init(&big, 100, 900); /* 1000 tokens > 480 in the pool: rejected up front */
    big.stream = stream_create();
    struct engine_request_params p = {.prompt = big.prompt, .n_prompt = 100, .max_tokens = 900, .sampling = big.sp};
    struct ms_err err = {{0}};
    before = kv_used(e);
    test_cond("oversized request rejected", engine_submit(e, &p, big.stream, &big.id, &err) != MS_OK &&
                                                strstr(err.msg, "KV cache") != NULL);
    p.n_prompt = 0;
    test_cond("empty prompt rejected", engine_submit(e, &p, big.stream, &big.id, &err) != MS_OK);
    int32_t bad = 999999;
    p.prompt = &bad;
    p.n_prompt = 1;
    p.max_tokens = 1;
    test_cond("out-of-vocab token rejected", engine_submit(e, &p, big.stream, &big.id, &err) != MS_OK);
    stream_release(big.stream);
    engine_step(e);
    test_cond("no blocks held after aborts and rejections", before == 0 && kv_used(e) == 0);
    release(jobs, 4);
    engine_destroy(e);
}

static void test_multi_turn_prefix_cache(void)
{
    struct engine *e = make_engine(4, 512, 0);
    if (!e) return;
    struct job first, second;
    job_init(&first, 70, 12);
    run(e, &first, 1);
    job_init(&second, 0, 4);
    /* the second turn resends the history (prompt + answer) and adds a new user turn */
    memcpy(second.prompt, first.prompt, (size_t)first.n_prompt * sizeof(int32_t));
    memcpy(second.prompt + first.n_prompt, first.out, (size_t)first.n_out * sizeof(int32_t));
    second.n_prompt = first.n_prompt + first.n_out;
    for (int i = 0; i < 20; i++) second.prompt[second.n_prompt++] = (int32_t)(rnd() % 151000);
    run(e, &second, 1);
    /* first computed prompt + output except its last token; every full block of that is cached */
    int computed = first.n_prompt + first.n_out - 1;
    int expect = (computed / 16) * 16;
    char msg[128];
    snprintf(msg, sizeof msg, "multi-turn cache: %d cached tokens, expected %d", second.final.cached_tokens, expect);
    test_cond(msg, second.final.cached_tokens == expect);
    test_cond("first turn had no cache hit", first.final.cached_tokens == 0);
    release(&first, 1);
    release(&second, 1);
    engine_destroy(e);
}

/* Expert-load statistics (engine_get_stats_experts) after batched, chunked requests: each
 * forwarded token (prompt minus cache hits, plus every output token but the last) picks
 * num_experts_per_tok experts in every sparse layer, and each step adds one distinct-experts
 * observation per sparse layer, between K and num_experts experts. */
static void test_expert_stats(void)
{
    struct engine *e = make_engine(4, 32, 0); /* 32-token budget: the longer prompts are chunked */
    if (!e) return;
    const struct model_config *c = &M->cfg;
    int K = c->num_experts_per_tok, E = c->num_experts, L = c->num_layers, sparse = 0;
    for (int l = 0; l < L; l++) sparse += M->weights->layers[l].sparse;
    struct job jobs[4];
    const int lens[4][3] = {{10, 6, 0}, {40, 3, 0}, {70, 8, 2}, {5, 1, 3}}; /* prompt, max tokens, arrival */
    for (int i = 0; i < 4; i++) {
        job_init(&jobs[i], lens[i][0], lens[i][1]);
        jobs[i].arrival_step = lens[i][2];
    }
    run(e, jobs, 4);
    uint64_t forwarded = 0;
    for (int i = 0; i < 4; i++) forwarded += (uint64_t)(jobs[i].n_prompt - jobs[i].final.cached_tokens + jobs[i].n_out - 1);
    test_cond("expert slots = layers x experts", engine_expert_slots(e) == (size_t)L * (size_t)E);
    uint64_t *sel = calloc(engine_expert_slots(e), sizeof *sel);
    struct engine_stats st;
    engine_get_stats_experts(e, &st, sel);
    test_cond("no preemption (each token forwarded once)", st.preemptions == 0);
    test_cond("shape published", st.moe_layers == L && st.moe_experts == E);
    bool layers_ok = true;
    for (int l = 0; l < L; l++) {
        uint64_t sum = 0;
        for (int x = 0; x < E; x++) sum += sel[(size_t)l * E + x];
        layers_ok &= sum == (M->weights->layers[l].sparse ? forwarded * (uint64_t)K : 0);
    }
    test_cond("each layer's selections = forwarded tokens x K", layers_ok);
    uint64_t count = 0;
    for (int b = 0; b < MODEL_DISTINCT_BUCKETS; b++) count += st.forward.distinct[b];
    test_cond("one distinct observation per step and sparse layer", count == st.steps * (uint64_t)sparse);
    test_cond("distinct experts within [K, E] a layer-step",
              st.forward.distinct_sum >= count * (uint64_t)K && st.forward.distinct_sum <= count * (uint64_t)E);
    free(sel);
    release(jobs, 4);
    engine_destroy(e);
}

/* The grouped MoE (many tokens per expert in one batch) against one token per forward. */
static void test_grouped_equals_per_token(void)
{
    const int n = 40, bs = 16, blocks = 3;
    const struct model_config *c = &M->cfg;
    struct ms_err err = {{0}};
    struct threadpool *tp = tp_create(2, model_scratch_floats(M, n), &err);
    struct model_scratch *s = model_scratch_create(M, n, &err);
    struct kv_cache *kv1 = kv_cache_create(c->num_layers, blocks, bs, c->num_kv_heads, c->head_dim, TENSOR_DTYPE_F32, &err);
    struct kv_cache *kv2 = kv_cache_create(c->num_layers, blocks, bs, c->num_kv_heads, c->head_dim, TENSOR_DTYPE_F32, &err);
    float *batch_logits = malloc((size_t)n * c->vocab_size * sizeof(float));
    float *one_logits = malloc((size_t)c->vocab_size * sizeof(float));
    int32_t tokens[40], pos[40], seq[40] = {0}, table[3] = {2, 0, 1};
    for (int i = 0; i < n; i++) tokens[i] = (int32_t)(rnd() % 151000), pos[i] = i;
    int32_t slots[40];
    for (int i = 0; i < n; i++) slots[i] = table[i / bs] * bs + i % bs;
    const int32_t *tables[1] = {table};
    struct fwd_batch b = {n, tokens, pos, slots, seq, 1, tables, n, pos};
    int rc = model_forward(M, s, kv1, tp, &b, batch_logits, &err);
    double max_diff = 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        int32_t row = 0;
        struct fwd_batch one = {1, tokens + i, pos + i, slots + i, seq, 1, tables, 1, &row};
        rc = model_forward(M, s, kv2, tp, &one, one_logits, &err);
        for (int v = 0; v < c->vocab_size; v++)
            max_diff = fmax(max_diff, fabs(one_logits[v] - batch_logits[(size_t)i * c->vocab_size + v]));
    }
    test_cond("forwards ran", rc == 0);
    char msg[128];
    snprintf(msg, sizeof msg, "batched grouped MoE == per-token (max |diff| %g)", max_diff);
    test_cond(msg, max_diff == 0.0); /* the kernels are batch-invariant: bitwise equal */
    free(batch_logits);
    free(one_logits);
    kv_cache_destroy(kv1);
    kv_cache_destroy(kv2);
    model_scratch_destroy(s);
    tp_destroy(tp);
}

int main(void)
{
    /* the generated checkpoints (MS_MODELS, which the Sanitize suite shares with the normal build) */
    const char *models = getenv("MS_MODELS");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tiny", models ? models : "build/models");
    struct ms_err err = {{0}};
    if (model_load(dir, false, &M, &err)) {
        fprintf(stderr, "cannot load %s: %s\n", dir, err.msg);
        return 1;
    }
    test_grouped_equals_per_token();
    test_mixed_batches();
    test_aborts_and_rejections();
    test_multi_turn_prefix_cache();
    test_expert_stats();
    test_speculative_exact(true);
    model_free(M);
    /* Q8_0 weights (quantized at load) take other kernels (int8 dots; AMX tiles where the CPU
     * has them): the same batch invariance in the forward and in the engine */
    struct model_load_opts q8 = {.quantize_q8_0 = true, .threads = 2};
    if (model_load_with_opts(dir, &q8, &M, &err)) {
        fprintf(stderr, "cannot load %s as Q8_0: %s\n", dir, err.msg);
        return 1;
    }
    printf("Q8_0 weights:\n");
    test_grouped_equals_per_token();
    test_mixed_batches();
    test_speculative_exact(false);
    model_free(M);
    test_report();
}
