/* The scheduler decides, each step, which requests run and how many of their tokens: every
 * running request gets its next token (decodes first, so a long prefill never freezes the
 * streams of others), then prefills get chunks, then waiting requests are admitted, all within
 * the per-step token budget and max_num_seqs. It owns the requests in its queues and their KV
 * blocks (through the block pool): on admission it reuses cached prefix blocks; when blocks run
 * out it preempts the newest running request (frees its blocks, requeues it to recompute).
 *
 * There is no prefill or decode phase: a request just has tokens and num_computed tokens.
 * Engine thread only. */
#ifndef MS_ENGINE_SCHEDULER_H
#define MS_ENGINE_SCHEDULER_H

#include <stdbool.h>

#include "common/ms_common.h"
#include "engine/kv_block_pool.h"
#include "engine/request.h"

struct sched_config {
    int max_num_seqs;           /* running requests at most */
    int max_num_batched_tokens; /* tokens per step at most */
    int block_size;
    bool prefix_caching;
    int spec_ngram_min, spec_ngram_max; /* n-gram sizes the drafts of speculative requests match */
};

/* One step's decision: reqs[i] computes num_tokens[i] tokens starting at its num_computed. A
 * decoding request with speculative decoding may get 1 + r->n_draft tokens: its last token and
 * the draft (request.h), which the scheduler wrote this step. */
struct sched_output {
    int n;
    struct request **reqs;  /* [max_num_seqs] */
    int *num_tokens;        /* [max_num_seqs] */
    int total_tokens;
};

struct scheduler;

/* `pool` is borrowed and must outlive the scheduler. */
struct scheduler *sched_create(const struct sched_config *cfg, struct kv_pool *pool, struct ms_err *err);

/* Destroys every request still queued (their streams get no final event: finish them first). */
void sched_destroy(struct scheduler *s);

/* Takes ownership of a new request and queues it (priority, then arrival order). */
int sched_add_request(struct scheduler *s, struct request *r, struct ms_err *err);

/* Fills `out` (arrays owned by the scheduler, valid until the next call). */
void sched_schedule(struct scheduler *s, struct sched_output *out);

/* After a forward (and, for a draft, after the verdict set num_computed): registers the
 * content hashes of the request's newly full blocks. */
void sched_commit_blocks(struct scheduler *s, struct request *r);

/* Removes a request from its queue and frees its blocks; ownership passes back to the caller. */
void sched_remove_request(struct scheduler *s, struct request *r);

/* The queued request with this id, or NULL. */
struct request *sched_find(struct scheduler *s, uint64_t id);

/* Any queued request (to drain at shutdown), or NULL. */
struct request *sched_any(struct scheduler *s);

int sched_num_running(const struct scheduler *s);
int sched_num_waiting(const struct scheduler *s);
uint64_t sched_num_preemptions(const struct scheduler *s);

#endif
