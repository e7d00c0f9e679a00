#include "engine/engine.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/kv_block_pool.h"
#include "engine/model/kv_cache.h"
#include "engine/sampler.h"
#include "engine/scheduler.h"
#include "engine/kernels/threadpool.h"

struct engine {
    const struct model *model;
    struct engine_config cfg;
    int pool_tokens; /* block capacity in tokens */

    /* engine thread only */
    struct kv_pool *pool;
    struct kv_cache *kv;
    struct scheduler *sched;
    struct threadpool *tp;
    struct model_scratch *scratch;
    struct sampler *sampler;
    int max_logit_rows;                  /* a step's logit rows at most (a draft adds its own) */
    float *logits;                       /* [max_logit_rows, vocab] */
    int32_t *b_tokens, *b_pos, *b_slots, *b_seq; /* [max_num_batched_tokens] */
    int32_t *b_logit_rows, *b_logit_seq; /* [max_logit_rows] */
    const int32_t **b_tables;            /* [max_num_seqs] */
    uint32_t *gram_bits;                 /* [vocab / 32] the token mask of a constrained request */
    struct engine_stats counters;        /* the engine thread's running totals */
    struct request **taken_inbox;        /* inbox arrays swapped out under the lock */
    int n_taken_inbox, cap_taken_inbox;
    uint64_t *taken_aborts;
    int n_taken_aborts, cap_taken_aborts;

    /* `lock` guards the inbox, the aborts, `stopping`, `dead` and `published` */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct request **inbox;
    int n_inbox, cap_inbox;
    uint64_t *aborts;
    int n_aborts, cap_aborts;
    bool stopping;
    bool dead;                           /* the engine thread has exited: submissions are refused */
    struct engine_stats published;       /* snapshot for engine_get_stats */
    uint64_t *published_sel;             /* [engine_expert_slots] the selection counts of `published`, or NULL */
    pthread_t thread;
    bool thread_started;
    atomic_uint_fast64_t next_id;        /* request ids, any thread */
};

/* ---------------------------------------------------------------------------------------------
 * Configuration */

int engine_config_resolve(struct engine_config *c, const struct model *m, struct ms_err *err)
{
    int model_max = m->cfg.max_position_embeddings;
    if (!c->max_num_seqs) c->max_num_seqs = 8;
    if (!c->max_num_batched_tokens) c->max_num_batched_tokens = 512;
    if (!c->block_size) c->block_size = 16;
    if (!c->max_model_len) c->max_model_len = model_max < 8192 ? model_max : 8192;
    if (!c->threads) c->threads = 1;
    if (!c->spec_tokens) c->spec_tokens = 4;
    if (!c->spec_ngram_min) c->spec_ngram_min = 2;
    if (!c->spec_ngram_max) c->spec_ngram_max = c->spec_ngram_min > 4 ? c->spec_ngram_min : 4;
    if (c->spec_tokens < 1 || c->spec_tokens > 16)
        return ms_err_set(err, MS_ERR_INVALID, "speculative-tokens %d must be in [1, 16]", c->spec_tokens);
    if (c->spec_ngram_min < 1 || c->spec_ngram_max > 16 || c->spec_ngram_min > c->spec_ngram_max)
        return ms_err_set(err, MS_ERR_INVALID, "speculative n-gram sizes %d..%d must satisfy 1 <= min <= max <= 16",
                          c->spec_ngram_min, c->spec_ngram_max);
    if (c->max_num_seqs < 1 || c->max_num_seqs > 4096)
        return ms_err_set(err, MS_ERR_INVALID, "max-num-seqs %d must be in [1, 4096]", c->max_num_seqs);
    if (c->max_num_batched_tokens < c->max_num_seqs)
        return ms_err_set(err, MS_ERR_INVALID, "max-num-batched-tokens %d must be at least max-num-seqs %d",
                          c->max_num_batched_tokens, c->max_num_seqs);
    if (c->block_size < 1 || c->block_size > 1024)
        return ms_err_set(err, MS_ERR_INVALID, "block-size %d must be in [1, 1024]", c->block_size);
    if (c->max_model_len < 2 || c->max_model_len > model_max)
        return ms_err_set(err, MS_ERR_INVALID, "max-model-len %d must be in [2, %d] (the model's max_position_embeddings)",
                          c->max_model_len, model_max);
    size_t per_token = kv_cache_bytes_per_token(m->cfg.num_layers, m->cfg.num_kv_heads, m->cfg.head_dim, c->kv_dtype);
    if (!c->kv_cache_bytes) c->kv_cache_bytes = per_token * (size_t)c->max_model_len * (size_t)c->max_num_seqs;
    size_t blocks = c->kv_cache_bytes / (per_token * (size_t)c->block_size);
    if (blocks < 1 || blocks > (1u << 30))
        return ms_err_set(err, MS_ERR_INVALID, "kv-cache-memory %zu bytes holds %zu blocks of %d tokens (%zu bytes each); need at least one",
                          c->kv_cache_bytes, blocks, c->block_size, per_token * (size_t)c->block_size);
    return MS_OK;
}

const struct engine_config *engine_get_config(const struct engine *e)
{
    return &e->cfg;
}

/* ---------------------------------------------------------------------------------------------
 * Finishing requests */

static void finish(struct engine *e, struct request *r, enum finish_reason why, const char *error)
{
    sched_remove_request(e->sched, r);
    double queued = (r->t_scheduled > 0 ? r->t_scheduled : ms_now()) - r->t_arrival;
    struct stream_event ev = {.finish = why, .token = -1, .queue_time = queued, .prompt_tokens = r->n_prompt,
                              .completion_tokens = request_num_output(r), .cached_tokens = r->num_cached_prompt};
    if (error) ms_strlcpy(ev.error, error, sizeof ev.error);
    e->counters.finished[why]++;
    stream_push(r->stream, &ev);
    request_destroy(r);
}

/* ---------------------------------------------------------------------------------------------
 * One step: schedule, execute, update. */

/* Flattens the scheduled requests into one batch; rows whose chunk reaches the end of the
 * request's tokens need logits (a token is sampled after them), and so does every drafted row
 * (each one's logits judge the next drafted token). */
static void build_batch(struct engine *e, const struct sched_output *so, struct fwd_batch *b)
{
    int t = 0, bs = e->cfg.block_size;
    b->n_logits = 0;
    for (int i = 0; i < so->n; i++) {
        const struct request *r = so->reqs[i];
        for (int k = 0; k < so->num_tokens[i]; k++, t++) {
            int pos = r->num_computed + k;
            e->b_tokens[t] = pos < r->n_tokens ? r->tokens[pos] : r->draft[pos - r->n_tokens];
            e->b_pos[t] = pos;
            e->b_slots[t] = r->block_table[pos / bs] * bs + pos % bs;
            e->b_seq[t] = i;
        }
        e->b_tables[i] = r->block_table;
        if (r->num_computed + so->num_tokens[i] == r->n_tokens + r->n_draft) {
            for (int k = r->n_draft; k >= 0; k--) {
                e->b_logit_rows[b->n_logits] = t - 1 - k;
                e->b_logit_seq[b->n_logits++] = i;
            }
        }
    }
    MS_ASSERT(b->n_logits <= e->max_logit_rows);
    *b = (struct fwd_batch){t, e->b_tokens, e->b_pos, e->b_slots, e->b_seq, so->n, e->b_tables, b->n_logits,
                            e->b_logit_rows};
}

static bool is_stop_token(const struct engine *e, const struct request *r, int32_t tok)
{
    if (!r->ignore_eos && model_config_is_eos(&e->model->cfg, tok)) return true;
    for (int i = 0; i < r->n_stop_token_ids; i++)
        if (r->stop_token_ids[i] == tok) return true;
    return false;
}

/* Tracks <think> ... </think> and starts forcing the early-stop text when the thinking budget
 * is spent. */
static void track_thinking(struct request *r, int32_t tok)
{
    if (r->n_forced_ids == 0) return;
    if (tok == r->think_start_id) r->thinking = true;
    else if (tok == r->think_end_id) r->thinking = false;
    else if (r->thinking && r->forced_pos == r->n_forced_ids && ++r->thinking_tokens >= r->thinking_budget)
        r->forced_pos = 0;
}

/* Picks r's next token (a forced one, or sampled from its logits row), streams it, and
 * finishes r if it stops. Returns false when r finished (and is gone). */
static bool update_request(struct engine *e, struct request *r, float *logits)
{
    struct sample_result res = {0};
    if (r->forced_pos < r->n_forced_ids) {
        res.token = r->forced_ids[r->forced_pos++];
        if (r->sampling.logprobs >= 0) /* forced text still reports its raw logprobs */
            sampler_logprobs(e->sampler, logits, r->sampling.logprobs, res.token, &res);
    } else if (r->grammar_active) {
        gram_matcher_mask(r->grammar, e->gram_bits);
        int32_t open = request_num_output(r) == 0 ? r->grammar_open_id : -1;
        if (open >= 0) e->gram_bits[open >> 5] |= 1u << (open & 31);
        r->sampling.allowed = e->gram_bits;
        sampler_sample(e->sampler, logits, &r->sampling, r->tokens, r->n_tokens, r->n_prompt, &r->rng, &res);
        r->sampling.allowed = NULL;
        if (open >= 0 && res.token == open) r->grammar_active = false; /* thinking first, free */
        else gram_matcher_accept(r->grammar, res.token); /* allowed by the mask, so it advances */
    } else {
        sampler_sample(e->sampler, logits, &r->sampling, r->tokens, r->n_tokens, r->n_prompt, &r->rng, &res);
    }
    if (r->grammar && !r->grammar_active && res.token == r->grammar_start_id) r->grammar_active = true;
    r->tokens[r->n_tokens++] = res.token;
    e->counters.generation_tokens++;
    if (r->forced_pos == r->n_forced_ids && is_stop_token(e, r, res.token)) {
        finish(e, r, FINISH_STOP, NULL);
        return false;
    }
    struct stream_event ev = {.finish = FINISH_NONE, .token = res.token, .sample = res,
                              .queue_time = r->t_scheduled - r->t_arrival};
    stream_push(r->stream, &ev);
    track_thinking(r, res.token);
    if (request_num_output(r) >= r->max_tokens) {
        finish(e, r, FINISH_LENGTH, NULL);
        return false;
    }
    return true;
}

/* The verdict on r's draft, from its 1 + n_draft logit rows: tokens are picked one row at a
 * time exactly as without a draft (same sampler, RNG, grammar and stops), and row j+1 is used
 * only while the token picked from row j equals draft[j], i.e. while that row's context is the
 * one decoding would have had. The K/V of the rejected draft positions stay in the cache past
 * num_computed, to be overwritten. */
static void verify_draft(struct engine *e, struct request *r, float *logits)
{
    size_t vocab = (size_t)e->model->cfg.vocab_size;
    int n_draft = r->n_draft, accepted = 0;
    r->n_draft = 0;
    e->counters.spec_drafts++;
    e->counters.spec_draft_tokens += (uint64_t)n_draft;
    for (int j = 0;; j++) {
        if (!update_request(e, r, logits + (size_t)j * vocab)) return;
        if (j == n_draft || r->tokens[r->n_tokens - 1] != r->draft[j]) break;
        accepted++;
        e->counters.spec_accepted_tokens++;
    }
    r->num_computed = r->n_tokens - 1;
    /* every drafted token costs its share of a forward (in a MoE, up to its own 8 experts), so
     * the length follows what the model takes, and a draft rejected outright backs off */
    if (accepted == 0) {
        r->spec_len = 1;
        r->spec_wait = r->spec_backoff;
        r->spec_backoff = r->spec_backoff ? (r->spec_backoff < 64 ? 2 * r->spec_backoff : 64) : 2;
    } else {
        r->spec_len = accepted == n_draft ? 2 * r->spec_len : accepted + 1;
        if (r->spec_len > r->draft_cap) r->spec_len = r->draft_cap;
        r->spec_backoff = 0;
    }
    sched_commit_blocks(e->sched, r);
}

static void step(struct engine *e)
{
    double t_start = ms_now();
    struct sched_output so;
    sched_schedule(e->sched, &so);
    if (so.n == 0) {
        /* nothing can run: only possible if the head of the queue can never fit */
        struct request *r = sched_any(e->sched);
        if (r) finish(e, r, FINISH_ERROR, "the request does not fit in the KV cache");
        return;
    }
    double now = ms_now();
    for (int i = 0; i < so.n; i++)
        if (so.reqs[i]->t_scheduled == 0) so.reqs[i]->t_scheduled = now;
    struct fwd_batch b;
    build_batch(e, &so, &b);
    struct ms_err err = {{0}};
    int rc = model_forward(e->model, e->scratch, e->kv, e->tp, &b, e->logits, &err);
    for (int i = 0; i < so.n; i++) {
        struct request *r = so.reqs[i];
        int before = r->num_computed;
        r->num_computed += so.num_tokens[i];
        if (before < r->n_prompt) {
            int end = r->num_computed < r->n_prompt ? r->num_computed : r->n_prompt;
            e->counters.prompt_tokens += (uint64_t)(end - before);
        }
        if (!rc && !r->n_draft) sched_commit_blocks(e->sched, r); /* a draft's blocks: after the verdict */
    }
    if (rc) {
        fprintf(stderr, "moeserve: engine: forward failed: %s\n", err.msg);
        for (int i = 0; i < so.n; i++) finish(e, so.reqs[i], FINISH_ERROR, err.msg);
        return;
    }
    /* logit rows are in batch order, a request's rows together; finishing a request never
     * touches another's rows */
    double t_sample = ms_now();
    for (int j = 0; j < b.n_logits;) {
        struct request *r = so.reqs[e->b_logit_seq[j]];
        float *row = e->logits + (size_t)j * e->model->cfg.vocab_size;
        j += 1 + r->n_draft;
        if (r->n_draft) verify_draft(e, r, row);
        else update_request(e, r, row);
    }
    double t_end = ms_now();
    e->counters.sample_seconds += t_end - t_sample;
    e->counters.step_seconds += t_end - t_start;
    e->counters.steps++;
}

/* ---------------------------------------------------------------------------------------------
 * The engine thread */

static void publish_stats(struct engine *e)
{
    struct engine_stats *c = &e->counters;
    c->running = sched_num_running(e->sched);
    c->waiting = sched_num_waiting(e->sched);
    c->kv_blocks_total = kv_pool_num_blocks(e->pool);
    c->kv_blocks_used = c->kv_blocks_total - kv_pool_num_free(e->pool);
    struct kv_pool_stats ps = kv_pool_get_stats(e->pool);
    c->prefix_cache_queries = ps.cache_queries;
    c->prefix_cache_hits = ps.cache_hits;
    c->preemptions = sched_num_preemptions(e->sched);
    c->forward = *model_scratch_profile(e->scratch);
    c->last_step_at = ms_now();
    const uint64_t *sel = model_scratch_expert_selections(e->scratch);
    pthread_mutex_lock(&e->lock);
    /* the counts only move with a forward: an idle pass does not copy them */
    if (sel && c->forward.forwards != e->published.forward.forwards)
        memcpy(e->published_sel, sel, engine_expert_slots(e) * sizeof *sel);
    e->published = *c;
    pthread_mutex_unlock(&e->lock);
}

/* Takes the inbox and the pending aborts under the lock (by swapping arrays with the engine
 * thread's own), so that streams are pushed to without holding e->lock. */
static void take_inbox_locked(struct engine *e)
{
    struct request **r = e->inbox;
    e->inbox = e->taken_inbox;
    e->taken_inbox = r;
    e->n_taken_inbox = e->n_inbox;
    int cap = e->cap_inbox;
    e->cap_inbox = e->cap_taken_inbox;
    e->cap_taken_inbox = cap;
    e->n_inbox = 0;
    uint64_t *a = e->aborts;
    e->aborts = e->taken_aborts;
    e->taken_aborts = a;
    e->n_taken_aborts = e->n_aborts;
    cap = e->cap_aborts;
    e->cap_aborts = e->cap_taken_aborts;
    e->cap_taken_aborts = cap;
    e->n_aborts = 0;
}

/* Ends a request that never reached the scheduler with its one final event. */
static void end_unqueued(struct engine *e, struct request *r, enum finish_reason why, const char *error)
{
    struct stream_event ev = {.finish = why, .token = -1, .prompt_tokens = r->n_prompt};
    if (error) ms_strlcpy(ev.error, error, sizeof ev.error);
    e->counters.finished[why]++;
    stream_push(r->stream, &ev);
    request_destroy(r);
}

static void apply_inbox(struct engine *e)
{
    for (int i = 0; i < e->n_taken_inbox; i++) {
        struct ms_err err = {{0}};
        struct request *r = e->taken_inbox[i];
        if (sched_add_request(e->sched, r, &err)) end_unqueued(e, r, FINISH_ERROR, err.msg);
    }
    e->n_taken_inbox = 0;
    for (int i = 0; i < e->n_taken_aborts; i++) {
        struct request *r = sched_find(e->sched, e->taken_aborts[i]);
        if (r) finish(e, r, FINISH_ABORT, NULL);
    }
    e->n_taken_aborts = 0;
}

int engine_step(struct engine *e)
{
    MS_ASSERT(e->cfg.manual_step);
    pthread_mutex_lock(&e->lock);
    take_inbox_locked(e);
    pthread_mutex_unlock(&e->lock);
    apply_inbox(e);
    if (sched_any(e->sched)) step(e);
    publish_stats(e);
    return sched_num_running(e->sched) + sched_num_waiting(e->sched);
}

/* The engine thread's way out, whether engine_destroy asked for it (`stopping`) or the thread
 * died: a pthread_exit anywhere below engine_main runs this as a cleanup handler (nothing
 * cancels the engine thread, so it never runs with e->lock held). No request may be left
 * without its final event, or its connection would wait for it forever: everything queued or
 * not yet taken ends, with FINISH_ABORT on shutdown and FINISH_ERROR after a death. `dead` is set
 * in the same critical section that takes the inbox, so engine_submit either queued a request
 * that is taken here or refuses it; and `alive` is published false before any final event is
 * pushed, so a client that sees its request fail finds /health already 503. After a death in
 * the middle of a step the scheduler may be inconsistent; ending every request is still the
 * best that can be done. */
static void engine_thread_exit(void *arg)
{
    struct engine *e = arg;
    pthread_mutex_lock(&e->lock);
    bool died = !e->stopping;
    e->dead = true;
    e->published.alive = false;
    take_inbox_locked(e);
    pthread_mutex_unlock(&e->lock);
    e->counters.alive = false;
    enum finish_reason why = died ? FINISH_ERROR : FINISH_ABORT;
    const char *msg = died ? "the engine stopped unexpectedly" : NULL;
    if (died)
        fprintf(stderr, "moeserve: engine: the engine thread exited unexpectedly after %llu steps; failing %d queued "
                "request(s); new requests are refused until the server is restarted\n",
                (unsigned long long)e->counters.steps,
                sched_num_running(e->sched) + sched_num_waiting(e->sched) + e->n_taken_inbox);
    for (int i = 0; i < e->n_taken_inbox; i++) end_unqueued(e, e->taken_inbox[i], why, msg);
    e->n_taken_inbox = 0;
    e->n_taken_aborts = 0;
    struct request *r;
    while ((r = sched_any(e->sched))) finish(e, r, why, msg);
    publish_stats(e);
}

static void *engine_main(void *arg)
{
    struct engine *e = arg;
    pthread_cleanup_push(engine_thread_exit, e);
    for (;;) {
        pthread_mutex_lock(&e->lock);
        while (!e->stopping && e->n_inbox == 0 && e->n_aborts == 0 && !sched_any(e->sched)) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1; /* wake once a second so liveness stays fresh while idle */
            pthread_cond_timedwait(&e->wake, &e->lock, &ts);
            e->published.last_step_at = ms_now();
        }
        bool stopping = e->stopping;
        take_inbox_locked(e);
        pthread_mutex_unlock(&e->lock);
        apply_inbox(e);
        if (stopping) break;
        if (sched_any(e->sched)) step(e);
        publish_stats(e);
        if (e->cfg.test_exit_after_steps > 0 && e->counters.steps >= (uint64_t)e->cfg.test_exit_after_steps)
            pthread_exit(NULL); /* test hook: the thread dies here, its requests still queued */
    }
    pthread_cleanup_pop(1);
    return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Life cycle */

static int alloc_buffers(struct engine *e, struct ms_err *err)
{
    const struct engine_config *c = &e->cfg;
    size_t T = (size_t)c->max_num_batched_tokens, S = (size_t)c->max_num_seqs;
    size_t L = S * (size_t)(1 + c->spec_tokens) < T ? S * (size_t)(1 + c->spec_tokens) : T;
    e->max_logit_rows = (int)L;
    e->logits = ms_calloc(L * (size_t)e->model->cfg.vocab_size, sizeof(float));
    e->b_tokens = ms_calloc(T, sizeof(int32_t));
    e->b_pos = ms_calloc(T, sizeof(int32_t));
    e->b_slots = ms_calloc(T, sizeof(int32_t));
    e->b_seq = ms_calloc(T, sizeof(int32_t));
    e->b_logit_rows = ms_calloc(L, sizeof(int32_t));
    e->b_logit_seq = ms_calloc(L, sizeof(int32_t));
    e->b_tables = ms_calloc(S, sizeof(*e->b_tables));
    e->gram_bits = ms_calloc(((size_t)e->model->cfg.vocab_size + 31) / 32, sizeof(uint32_t));
    if (engine_expert_slots(e) && !(e->published_sel = ms_calloc(engine_expert_slots(e), sizeof(uint64_t))))
        return ms_err_set(err, MS_ERR_NOMEM, "out of memory for the engine's expert statistics");
    if (!e->gram_bits || !e->logits || !e->b_tokens || !e->b_pos || !e->b_slots || !e->b_seq || !e->b_logit_rows ||
        !e->b_logit_seq || !e->b_tables)
        return ms_err_set(err, MS_ERR_NOMEM, "out of memory for the engine's batch buffers");
    return MS_OK;
}

struct engine *engine_create(const struct model *m, const struct engine_config *cfg, struct ms_err *err)
{
    struct engine *e = calloc(1, sizeof *e);
    if (!e) {
        ms_err_set(err, MS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    e->model = m;
    e->cfg = *cfg;
    pthread_mutex_init(&e->lock, NULL);
    pthread_cond_init(&e->wake, NULL);
    const struct model_config *mc = &m->cfg;
    size_t per_token = kv_cache_bytes_per_token(mc->num_layers, mc->num_kv_heads, mc->head_dim, cfg->kv_dtype);
    int blocks = (int)(cfg->kv_cache_bytes / (per_token * (size_t)cfg->block_size));
    e->pool_tokens = blocks * cfg->block_size;
    struct sched_config sc = {cfg->max_num_seqs, cfg->max_num_batched_tokens, cfg->block_size, cfg->prefix_caching,
                              cfg->spec_ngram_min, cfg->spec_ngram_max};
    if (!(e->pool = kv_pool_create(blocks, err)) ||
        !(e->kv = kv_cache_create(mc->num_layers, blocks, cfg->block_size, mc->num_kv_heads, mc->head_dim,
                                  cfg->kv_dtype, err)) ||
        !(e->sched = sched_create(&sc, e->pool, err)) ||
        !(e->tp = tp_create(cfg->threads, model_scratch_floats(m, cfg->max_model_len), err)) ||
        !(e->scratch = model_scratch_create(m, cfg->max_num_batched_tokens, err)) ||
        !(e->sampler = sampler_create(mc->vocab_size, err)) || alloc_buffers(e, err))
        goto fail;
    e->counters.alive = true;
    if (mc->num_experts) {
        e->counters.moe_layers = mc->num_layers;
        e->counters.moe_experts = mc->num_experts;
    }
    publish_stats(e);
    if (cfg->manual_step) return e;
    if (pthread_create(&e->thread, NULL, engine_main, e) != 0) {
        ms_err_set(err, MS_ERR_INTERNAL, "could not start the engine thread");
        goto fail;
    }
    e->thread_started = true;
    return e;
fail:
    engine_destroy(e);
    return NULL;
}

void engine_destroy(struct engine *e)
{
    if (!e) return;
    if (e->thread_started) {
        pthread_mutex_lock(&e->lock);
        e->stopping = true;
        pthread_cond_signal(&e->wake);
        pthread_mutex_unlock(&e->lock);
        pthread_join(e->thread, NULL);
    }
    if (e->cfg.manual_step && e->sched) { /* what a thread would have done on its way out */
        pthread_mutex_lock(&e->lock);
        take_inbox_locked(e);
        pthread_mutex_unlock(&e->lock);
        apply_inbox(e);
        struct request *r;
        while ((r = sched_any(e->sched))) finish(e, r, FINISH_ABORT, NULL);
    }
    for (int i = 0; i < e->n_inbox; i++) request_destroy(e->inbox[i]);
    for (int i = 0; i < e->n_taken_inbox; i++) request_destroy(e->taken_inbox[i]);
    free(e->taken_inbox);
    free(e->taken_aborts);
    sched_destroy(e->sched);
    kv_pool_destroy(e->pool);
    kv_cache_destroy(e->kv);
    tp_destroy(e->tp);
    model_scratch_destroy(e->scratch);
    sampler_destroy(e->sampler);
    free(e->logits);
    free(e->b_tokens);
    free(e->b_pos);
    free(e->b_slots);
    free(e->b_seq);
    free(e->b_logit_rows);
    free(e->b_logit_seq);
    free(e->b_tables);
    free(e->gram_bits);
    free(e->published_sel);
    free(e->inbox);
    free(e->aborts);
    pthread_mutex_destroy(&e->lock);
    pthread_cond_destroy(&e->wake);
    free(e);
}

/* ---------------------------------------------------------------------------------------------
 * Submission (any thread) */

static int validate(const struct engine *e, const struct engine_request_params *p, struct ms_err *err)
{
    const struct sampling_params *s = &p->sampling;
    int vocab = e->model->cfg.vocab_size, max_len = e->cfg.max_model_len;
    if (p->n_prompt < 1) return ms_err_set(err, MS_ERR_INVALID, "the prompt is empty");
    if (p->n_prompt >= max_len)
        return ms_err_set(err, MS_ERR_INVALID,
                          "the prompt has %d tokens but this model's maximum context length is %d tokens, "
                          "which leaves no room to generate", p->n_prompt, max_len);
    for (int i = 0; i < p->n_prompt; i++)
        if (p->prompt[i] < 0 || p->prompt[i] >= vocab)
            return ms_err_set(err, MS_ERR_INVALID, "prompt token id %d is outside the vocabulary [0, %d)",
                              p->prompt[i], vocab);
    if (p->max_tokens < 1) return ms_err_set(err, MS_ERR_INVALID, "max_tokens must be at least 1");
    long need = (long)p->n_prompt + p->max_tokens < max_len ? (long)p->n_prompt + p->max_tokens : max_len;
    if (need > e->pool_tokens)
        return ms_err_set(err, MS_ERR_INVALID,
                          "the request needs %ld tokens of KV cache (prompt %d + max_tokens %d) but the cache "
                          "holds %d; lower max_tokens or raise --kv-cache-memory", need, p->n_prompt,
                          p->max_tokens, e->pool_tokens);
    if (!(s->temperature >= 0 && s->temperature <= 100))
        return ms_err_set(err, MS_ERR_INVALID, "temperature must be in [0, 100]");
    if (!(s->top_p > 0 && s->top_p <= 1)) return ms_err_set(err, MS_ERR_INVALID, "top_p must be in (0, 1]");
    if (!(s->min_p >= 0 && s->min_p <= 1)) return ms_err_set(err, MS_ERR_INVALID, "min_p must be in [0, 1]");
    if (s->top_k < -1) return ms_err_set(err, MS_ERR_INVALID, "top_k must be -1 (off), 0 (off) or positive");
    if (!(s->repetition_penalty > 0 && s->repetition_penalty <= 100))
        return ms_err_set(err, MS_ERR_INVALID, "repetition_penalty must be in (0, 100]");
    if (!(fabsf(s->presence_penalty) <= 2) || !(fabsf(s->frequency_penalty) <= 2))
        return ms_err_set(err, MS_ERR_INVALID, "presence_penalty and frequency_penalty must be in [-2, 2]");
    if (s->logprobs > SAMPLER_MAX_TOP_LOGPROBS)
        return ms_err_set(err, MS_ERR_INVALID, "top_logprobs must be at most %d", SAMPLER_MAX_TOP_LOGPROBS);
    for (int i = 0; i < s->n_logit_bias; i++)
        if (s->logit_bias[i].token < 0 || s->logit_bias[i].token >= vocab || !isfinite(s->logit_bias[i].bias))
            return ms_err_set(err, MS_ERR_INVALID, "logit_bias token %d is outside the vocabulary [0, %d)",
                              s->logit_bias[i].token, vocab);
    for (int i = 0; i < p->n_stop_token_ids; i++)
        if (p->stop_token_ids[i] < 0 || p->stop_token_ids[i] >= vocab)
            return ms_err_set(err, MS_ERR_INVALID, "stop token id %d is outside the vocabulary",
                              p->stop_token_ids[i]);
    return MS_OK;
}

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Appends to the inbox; false if it cannot grow. Called with e->lock held. */
static bool inbox_push_locked(struct engine *e, struct request *r)
{
    if (e->n_inbox == e->cap_inbox) {
        int cap = e->cap_inbox ? e->cap_inbox * 2 : 32;
        struct request **grown = realloc(e->inbox, (size_t)cap * sizeof *grown);
        if (!grown) return false;
        e->inbox = grown;
        e->cap_inbox = cap;
    }
    e->inbox[e->n_inbox++] = r;
    return true;
}

int engine_submit(struct engine *e, const struct engine_request_params *p, struct stream *stream,
                  uint64_t *id_out, struct ms_err *err)
{
    int rc = validate(e, p, err);
    if (!rc && p->grammar && gram_matcher_vocab_size(p->grammar) > e->model->cfg.vocab_size)
        rc = ms_err_set(err, MS_ERR_INVALID, "the grammar's vocabulary (%d tokens) is larger than the model's (%d)",
                        gram_matcher_vocab_size(p->grammar), e->model->cfg.vocab_size);
    if (rc) {
        gram_matcher_destroy(p->grammar);
        return rc;
    }
    uint64_t id = atomic_fetch_add(&e->next_id, 1) + 1;
    struct engine_request_params q = *p;
    if (!p->seed_given) q.sampling.seed = mix64(id ^ (uint64_t)(ms_now() * 1e9));
    bool spec = p->speculative == SPEC_ON || (p->speculative == SPEC_DEFAULT && e->cfg.speculative);
    struct request *r = request_create(id, &q, e->cfg.max_model_len, e->cfg.block_size,
                                       spec ? e->cfg.spec_tokens : 0, stream, err);
    if (!r) {
        gram_matcher_destroy(p->grammar);
        return MS_ERR_NOMEM;
    }
    r->arrival = id;
    r->t_arrival = ms_now();
    /* the stopping check and the push are one critical section: the engine thread drains the
     * inbox after it sees `stopping`, so no accepted request is left without a final event */
    pthread_mutex_lock(&e->lock);
    if (e->stopping) rc = ms_err_set(err, MS_ERR_UNSUPPORTED, "the engine is shutting down");
    else if (e->dead) rc = ms_err_set(err, MS_ERR_IO, "the engine is not running (it stopped unexpectedly)");
    else if (!inbox_push_locked(e, r)) rc = ms_err_set(err, MS_ERR_NOMEM, "out of memory queueing a request");
    else pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->lock);
    if (rc) {
        request_destroy(r);
        return rc;
    }
    *id_out = id;
    return MS_OK;
}

void engine_abort(struct engine *e, uint64_t id)
{
    pthread_mutex_lock(&e->lock);
    if (e->dead) { /* every request has ended already; nothing would ever take the abort */
        pthread_mutex_unlock(&e->lock);
        return;
    }
    if (e->n_aborts == e->cap_aborts) {
        int cap = e->cap_aborts ? e->cap_aborts * 2 : 32;
        uint64_t *grown = realloc(e->aborts, (size_t)cap * sizeof *grown);
        if (!grown) { /* the abort is lost only under memory exhaustion; the request still ends */
            pthread_mutex_unlock(&e->lock);
            return;
        }
        e->aborts = grown;
        e->cap_aborts = cap;
    }
    e->aborts[e->n_aborts++] = id;
    pthread_cond_signal(&e->wake);
    pthread_mutex_unlock(&e->lock);
}

void engine_get_stats(struct engine *e, struct engine_stats *out)
{
    engine_get_stats_experts(e, out, NULL);
}

size_t engine_expert_slots(const struct engine *e)
{
    const struct model_config *c = &e->model->cfg;
    return (size_t)c->num_layers * (size_t)c->num_experts;
}

void engine_get_stats_experts(struct engine *e, struct engine_stats *out, uint64_t *selections)
{
    pthread_mutex_lock(&e->lock);
    *out = e->published;
    if (selections && e->published_sel) memcpy(selections, e->published_sel, engine_expert_slots(e) * sizeof *selections);
    pthread_mutex_unlock(&e->lock);
}
