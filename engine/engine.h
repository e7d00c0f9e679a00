/* The inference engine: continuous batching over a paged KV cache.
 *
 * engine_create starts the engine thread, the only thread that touches the scheduler, the KV
 * cache and the model's scratch. Each step it takes new requests and aborts, schedules (decodes
 * first, then prefill chunks, then admissions, within the token budget), runs one batched
 * forward over all scheduled tokens, samples, and pushes events to each request's stream.
 *
 * Threads: engine_submit, engine_abort and engine_get_stats(_experts) are safe from any thread.
 * engine_create and engine_destroy belong to the thread that owns the engine. */
#ifndef MS_ENGINE_ENGINE_H
#define MS_ENGINE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/ms_common.h"
#include "engine/model/model.h"
#include "engine/request.h"
#include "engine/stream.h"
#include "engine/kernels/tensor.h"

struct engine_config {
    int max_num_seqs;           /* running requests at most (default 8) */
    int max_num_batched_tokens; /* tokens per step at most (default 512) */
    int block_size;             /* tokens per KV block (default 16) */
    int max_model_len;          /* context length (default min(model's, 8192)) */
    size_t kv_cache_bytes;      /* KV budget; 0: max_model_len x max_num_seqs tokens */
    enum tensor_dtype kv_dtype; /* F32 (default), BF16 or F16 */
    bool prefix_caching;        /* default true */
    int threads;                /* compute threads (default: cores) */
    /* Speculative decoding by prompt lookup (engine/spec_ngram.h): a decoding request drafts
     * tokens from n-gram matches in its own prompt and output, and one forward verifies them
     * (outputs are exactly those of decoding without it; engine_request_params.speculative). */
    bool speculative;           /* for requests that do not choose (default off) */
    int spec_tokens;            /* draft tokens a step at most (default 4, in [1, 16]) */
    int spec_ngram_min, spec_ngram_max; /* n-gram sizes matched (default 2 and 4, in [1, 16]) */
    bool manual_step;           /* tests: no engine thread; the caller drives engine_step */
    /* test hook (MOESERVE_TEST_KILL_ENGINE_AFTER_STEPS, tests/hardening only): the engine thread
     * exits after this many steps as if it had died (pthread_exit, its requests left queued);
     * 0: off. Costs one comparison per step. */
    int test_exit_after_steps;
};

/* Fills every zero field of cfg with its default for model m, then checks the whole config.
 * Returns MS_ERR_INVALID with the field named when a value cannot work. */
int engine_config_resolve(struct engine_config *cfg, const struct model *m, struct ms_err *err);

struct engine;

/* `m` is borrowed and must outlive the engine. cfg must have been resolved. */
struct engine *engine_create(const struct model *m, const struct engine_config *cfg, struct ms_err *err);

/* Stops the engine thread; every request still queued gets a final FINISH_ABORT event. */
void engine_destroy(struct engine *e);

/* If the engine thread ever exits other than through engine_destroy (it died), every request it
 * held or had not yet taken gets a final FINISH_ERROR event, engine_submit refuses new ones
 * (MS_ERR_IO, "the engine is not running"), and engine_stats.alive turns false before any of
 * those final events is pushed. */

/* Validates and queues a request (any thread). On success the engine holds its own reference to
 * `stream` and will push exactly one final event; *id_out names the request for engine_abort.
 * On failure nothing was queued and err says which field is wrong or that the request can never
 * fit in the KV cache (MS_ERR_INVALID: the request's fault), or that the engine is shutting down
 * (MS_ERR_UNSUPPORTED) or is not running (MS_ERR_IO). The engine owns p->grammar (a token
 * constraint) from this call on, whatever it returns. */
int engine_submit(struct engine *e, const struct engine_request_params *p, struct stream *stream,
                  uint64_t *id_out, struct ms_err *err);

/* Cancels a request (any thread). Its blocks are freed at the next step, and its stream gets a
 * final FINISH_ABORT event. Unknown or finished ids are ignored. */
void engine_abort(struct engine *e, uint64_t id);

/* manual_step engines only: one pass of the engine loop (take submissions and aborts, then one
 * step if anything is queued) on the calling thread. Returns the number of requests still
 * queued afterwards. */
int engine_step(struct engine *e);

struct engine_stats {
    int running, waiting;
    int kv_blocks_total, kv_blocks_used; /* used: held by a request (cached-free blocks are free) */
    uint64_t prefix_cache_queries, prefix_cache_hits; /* in tokens */
    uint64_t preemptions, prompt_tokens, generation_tokens, steps;
    uint64_t finished[FINISH_ERROR + 1]; /* by finish_reason */
    struct model_profile forward; /* where the forwards' time went (model_scratch_profile) */
    int moe_layers, moe_experts;  /* shape of the selection counts (engine_get_stats_experts); 0: dense */
    /* speculative decoding: verifications that had a draft, tokens drafted, drafted tokens the
     * model agreed with (each one a token gained over a forward per token) */
    uint64_t spec_drafts, spec_draft_tokens, spec_accepted_tokens;
    double sample_seconds;        /* picking and streaming each step's tokens */
    double step_seconds;          /* whole steps: scheduling, forward, sampling */
    double last_step_at;  /* ms_now() of the engine loop's last pass (liveness) */
    bool alive;           /* the engine thread is running */
};

void engine_get_stats(struct engine *e, struct engine_stats *out);

/* How many expert selection counts the model has: num_layers x num_experts (0: a dense model).
 * Any thread (the model's config never changes). */
size_t engine_expert_slots(const struct engine *e);

/* engine_get_stats, and the per (layer, expert) selection counts of the same snapshot (layout:
 * model_scratch_expert_selections) copied into `selections`, which the caller owns and sizes to
 * engine_expert_slots(e) values; NULL, or a dense model: nothing is copied. The engine keeps its
 * own published copy (allocated at engine_create), so this never allocates. */
void engine_get_stats_experts(struct engine *e, struct engine_stats *out, uint64_t *selections);

const struct engine_config *engine_get_config(const struct engine *e);

#endif
