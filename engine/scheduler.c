#include "engine/scheduler.h"

#include <stdlib.h>
#include <string.h>

#include "engine/spec_ngram.h"

struct scheduler {
    struct sched_config cfg;
    struct kv_pool *pool;
    struct request **running; /* [max_num_seqs], admission order: the newest is last */
    int n_running;
    struct request **waiting; /* sorted by (priority, arrival); grown on submit, never per step */
    int n_waiting, cap_waiting;
    struct request **out_reqs;
    int *out_tokens;
    uint64_t preemptions;
};

struct scheduler *sched_create(const struct sched_config *cfg, struct kv_pool *pool, struct ms_err *err)
{
    struct scheduler *s = calloc(1, sizeof *s);
    if (s) {
        s->cfg = *cfg;
        s->pool = pool;
        s->running = ms_calloc((size_t)cfg->max_num_seqs, sizeof *s->running);
        s->out_reqs = ms_calloc((size_t)cfg->max_num_seqs, sizeof *s->out_reqs);
        s->out_tokens = ms_calloc((size_t)cfg->max_num_seqs, sizeof *s->out_tokens);
    }
    if (!s || !s->running || !s->out_reqs || !s->out_tokens) {
        sched_destroy(s);
        ms_err_set(err, MS_ERR_NOMEM, "out of memory creating the scheduler");
        return NULL;
    }
    return s;
}

static void free_blocks(struct scheduler *s, struct request *r)
{
    /* newest blocks first, so they are evicted before the prefix that others may share */
    for (int b = r->n_blocks - 1; b >= 0; b--) kv_pool_unref(s->pool, r->block_table[b]);
    r->n_blocks = 0;
}

void sched_destroy(struct scheduler *s)
{
    if (!s) return;
    struct request *r;
    while ((r = sched_any(s))) {
        sched_remove_request(s, r);
        request_destroy(r);
    }
    free(s->running);
    free(s->waiting);
    free(s->out_reqs);
    free(s->out_tokens);
    free(s);
}

static bool runs_before(const struct request *a, const struct request *b)
{
    return a->priority != b->priority ? a->priority < b->priority : a->arrival < b->arrival;
}

static void insert_waiting(struct scheduler *s, struct request *r)
{
    int i = s->n_waiting;
    while (i > 0 && runs_before(r, s->waiting[i - 1])) {
        s->waiting[i] = s->waiting[i - 1];
        i--;
    }
    s->waiting[i] = r;
    s->n_waiting++;
    r->status = REQUEST_STATUS_WAITING;
}

int sched_add_request(struct scheduler *s, struct request *r, struct ms_err *err)
{
    /* one spare slot so that a preempted request always has room to go back */
    if (s->n_waiting + s->n_running + 1 >= s->cap_waiting) {
        int cap = s->cap_waiting ? s->cap_waiting * 2 : 64;
        struct request **w = realloc(s->waiting, (size_t)cap * sizeof *w);
        if (!w) return ms_err_set(err, MS_ERR_NOMEM, "out of memory queueing a request");
        s->waiting = w;
        s->cap_waiting = cap;
    }
    insert_waiting(s, r);
    return MS_OK;
}

static void remove_at(struct request **arr, int *n, int i)
{
    memmove(arr + i, arr + i + 1, (size_t)(*n - i - 1) * sizeof *arr);
    (*n)--;
}

static void preempt(struct scheduler *s, struct request *r)
{
    for (int i = 0; i < s->n_running; i++)
        if (s->running[i] == r) remove_at(s->running, &s->n_running, i);
    free_blocks(s, r);
    r->num_computed = 0; /* its content hashes stay valid: the tokens did not change */
    r->n_draft = 0;
    insert_waiting(s, r);
    s->preemptions++;
}

/* Grows r's block table to cover `upto` tokens. All or nothing. */
static bool grow_blocks(struct scheduler *s, struct request *r, int upto)
{
    int need = (upto + s->cfg.block_size - 1) / s->cfg.block_size - r->n_blocks;
    if (need <= 0) return true;
    if (need > kv_pool_num_free(s->pool)) return false;
    for (int i = 0; i < need; i++) r->block_table[r->n_blocks++] = kv_pool_alloc(s->pool);
    return true;
}

/* Content hashes of r's full blocks, computed once; only blocks before the last token count, so
 * a fully cached prompt still computes its last token (whose logits are needed). */
static int hash_prefix(struct request *r, int block_size)
{
    int full = (r->n_tokens - 1) / block_size;
    for (int b = r->n_hashed; b < full; b++) {
        uint64_t parent = b ? r->block_hashes[b - 1] : KV_HASH_ROOT;
        r->block_hashes[b] = kv_block_hash(parent, r->tokens + (size_t)b * block_size, block_size);
    }
    if (full > r->n_hashed) r->n_hashed = full;
    return full;
}

/* Admission: take cached prefix blocks, then new blocks for the first chunk; all or nothing. */
static bool admit(struct scheduler *s, struct request *r, int *chunk, int budget)
{
    int bs = s->cfg.block_size, hits = 0, hits_free = 0, full = 0;
    if (s->cfg.prefix_caching) {
        full = hash_prefix(r, bs);
        for (; hits < full; hits++) {
            int blk = kv_pool_lookup(s->pool, r->block_hashes[hits]);
            if (blk < 0) break;
            hits_free += kv_pool_ref_count(s->pool, blk) == 0;
        }
    }
    int computed = hits * bs;
    int n = r->n_tokens - computed < budget ? r->n_tokens - computed : budget;
    int need_new = (computed + n + bs - 1) / bs - hits;
    if (need_new + hits_free > kv_pool_num_free(s->pool)) return false;
    /* counted once per request, at its first admission: a request that waits for blocks is
     * looked up again every step, and counting each try inflated the queries under KV pressure */
    if (s->cfg.prefix_caching && !r->admitted_once) kv_pool_count_query(s->pool, full * bs, hits * bs);
    for (int b = 0; b < hits; b++) {
        int blk = kv_pool_lookup(s->pool, r->block_hashes[b]);
        kv_pool_ref(s->pool, blk);
        r->block_table[r->n_blocks++] = blk;
    }
    r->num_computed = computed;
    if (!r->admitted_once) r->num_cached_prompt = computed < r->n_prompt ? computed : r->n_prompt;
    r->admitted_once = true;
    bool grown = grow_blocks(s, r, computed + n); /* room was checked above */
    MS_ASSERT(grown);
    *chunk = n;
    return true;
}

static void emit(struct sched_output *out, struct request *r, int n)
{
    out->reqs[out->n] = r;
    out->num_tokens[out->n] = n;
    out->n++;
    out->total_tokens += n;
}

/* Takes back a request scheduled earlier in this step (it is being preempted). */
static void unemit(struct sched_output *out, struct request *r, int *budget)
{
    for (int i = 0; i < out->n; i++) {
        if (out->reqs[i] != r) continue;
        *budget += out->num_tokens[i];
        out->total_tokens -= out->num_tokens[i];
        memmove(out->reqs + i, out->reqs + i + 1, (size_t)(out->n - i - 1) * sizeof *out->reqs);
        memmove(out->num_tokens + i, out->num_tokens + i + 1, (size_t)(out->n - i - 1) * sizeof *out->num_tokens);
        out->n--;
        return;
    }
}

/* A decoding request's draft for this step, within `room` tokens (speculative requests only):
 * never more than its output may still grow by after the token the verdict adds. */
static int propose_draft(const struct scheduler *s, struct request *r, int room)
{
    r->n_draft = 0;
    if (!r->draft_cap) return 0;
    if (r->spec_wait > 0) {
        r->spec_wait--;
        return 0;
    }
    int max = r->max_tokens - request_num_output(r) - 1;
    if (max > room) max = room;
    if (max > r->spec_len) max = r->spec_len;
    r->n_draft = spec_ngram_draft(r->tokens, r->n_tokens, s->cfg.spec_ngram_min, s->cfg.spec_ngram_max, max,
                                  r->draft);
    return r->n_draft;
}

/* Running requests of one kind (decoding: one token left; or prefilling) get their tokens,
 * preempting the newest running requests when blocks run out (a draft goes first). */
static void schedule_running(struct scheduler *s, struct sched_output *out, int *budget, bool decoding)
{
    for (int i = 0; i < s->n_running && *budget > 0; i++) {
        struct request *r = s->running[i];
        int left = r->n_tokens - r->num_computed;
        if ((left == 1) != decoding) continue;
        int n = left < *budget ? left : *budget;
        if (decoding) n += propose_draft(s, r, *budget - 1);
        if (n > 1 && decoding && !grow_blocks(s, r, r->num_computed + n)) {
            r->n_draft = 0;
            n = 1;
        }
        bool preempted_self = false;
        while (!grow_blocks(s, r, r->num_computed + n)) {
            struct request *victim = s->running[s->n_running - 1];
            unemit(out, victim, budget);
            preempt(s, victim);
            if (victim == r) {
                preempted_self = true;
                break;
            }
        }
        if (preempted_self) break; /* r was the newest: everything after it is gone too */
        emit(out, r, n);
        *budget -= n;
    }
}

void sched_schedule(struct scheduler *s, struct sched_output *out)
{
    out->n = 0;
    out->total_tokens = 0;
    out->reqs = s->out_reqs;
    out->num_tokens = s->out_tokens;
    int budget = s->cfg.max_num_batched_tokens;
    schedule_running(s, out, &budget, true);
    schedule_running(s, out, &budget, false);
    while (s->n_waiting > 0 && budget > 0 && s->n_running < s->cfg.max_num_seqs) {
        struct request *r = s->waiting[0];
        int n;
        if (!admit(s, r, &n, budget)) break;
        remove_at(s->waiting, &s->n_waiting, 0);
        s->running[s->n_running++] = r;
        r->status = REQUEST_STATUS_RUNNING;
        emit(out, r, n);
        budget -= n;
    }
}

void sched_commit_blocks(struct scheduler *s, struct request *r)
{
    if (!s->cfg.prefix_caching) return;
    int bs = s->cfg.block_size, full = r->num_computed / bs;
    for (int b = 0; b < full; b++) {
        if (b >= r->n_hashed) {
            uint64_t parent = b ? r->block_hashes[b - 1] : KV_HASH_ROOT;
            r->block_hashes[b] = kv_block_hash(parent, r->tokens + (size_t)b * bs, bs);
            r->n_hashed = b + 1;
        }
        kv_pool_set_hash(s->pool, r->block_table[b], r->block_hashes[b]);
    }
}

void sched_remove_request(struct scheduler *s, struct request *r)
{
    for (int i = 0; i < s->n_running; i++)
        if (s->running[i] == r) remove_at(s->running, &s->n_running, i);
    for (int i = 0; i < s->n_waiting; i++)
        if (s->waiting[i] == r) remove_at(s->waiting, &s->n_waiting, i);
    free_blocks(s, r);
    r->status = REQUEST_STATUS_FINISHED;
}

struct request *sched_find(struct scheduler *s, uint64_t id)
{
    for (int i = 0; i < s->n_running; i++)
        if (s->running[i]->id == id) return s->running[i];
    for (int i = 0; i < s->n_waiting; i++)
        if (s->waiting[i]->id == id) return s->waiting[i];
    return NULL;
}

struct request *sched_any(struct scheduler *s)
{
    if (s->n_running) return s->running[s->n_running - 1];
    return s->n_waiting ? s->waiting[s->n_waiting - 1] : NULL;
}

int sched_num_running(const struct scheduler *s)
{
    return s->n_running;
}

int sched_num_waiting(const struct scheduler *s)
{
    return s->n_waiting;
}

uint64_t sched_num_preemptions(const struct scheduler *s)
{
    return s->preemptions;
}
