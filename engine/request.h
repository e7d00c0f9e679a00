/* One generation inside the engine: its tokens (prompt, then output), how many of them have K/V
 * in the cache, its block table, sampling state and output stream. Engine thread only, except
 * `id`, which is fixed at creation. */
#ifndef MS_ENGINE_REQUEST_H
#define MS_ENGINE_REQUEST_H

#include <stdbool.h>
#include <stdint.h>

#include "common/ms_common.h"
#include "engine/sampler.h"
#include "engine/stream.h"
#include "grammar/gram_vocab.h"

enum spec_choice {
    SPEC_DEFAULT = 0, /* the engine's engine_config.speculative */
    SPEC_ON,
    SPEC_OFF,
};

/* What a caller asks for (engine_submit copies everything; pointers are borrowed for the call). */
struct engine_request_params {
    const int32_t *prompt;
    int n_prompt;
    int max_tokens;               /* new tokens at most (>= 1) */
    struct sampling_params sampling;
    bool seed_given;              /* false: the engine picks a seed */
    const int32_t *stop_token_ids;
    int n_stop_token_ids;
    bool ignore_eos;
    int priority;                 /* lower runs first; ties by arrival (FCFS) */
    /* Thinking budget (off when n_forced_ids == 0). The request is "thinking" from the start
     * when starts_in_thinking (the template opened <think>), or after it emits think_start_id,
     * until it emits think_end_id. When it has produced thinking_budget tokens while thinking,
     * the engine appends forced_ids (the early-stop text, which ends with </think>) to the output
     * as if sampled, and sampling continues after them. max_tokens still bounds everything. */
    int thinking_budget;
    bool starts_in_thinking;
    int32_t think_start_id, think_end_id;
    const int32_t *forced_ids;
    int n_forced_ids;
    /* Structured outputs: a matcher whose mask every sampled token obeys (NULL: none). The
     * engine takes ownership whatever engine_submit returns. The constraint starts after the
     * token grammar_start_id (</think>), or at once when it is -1. With grammar_open_id >= 0
     * (<think>; the prompt did not open it) the constraint starts at once but the first token may
     * also be that one, which suspends it until grammar_start_id (the model chose to think). */
    struct gram_matcher *grammar;
    int32_t grammar_start_id, grammar_open_id;
    /* Speculative decoding by prompt lookup (engine/spec_ngram.h), this request only. The
     * outputs are the same either way; only the speed differs. */
    enum spec_choice speculative;
};

enum request_status {
    REQUEST_STATUS_WAITING,
    REQUEST_STATUS_RUNNING,
    REQUEST_STATUS_FINISHED,
};

struct request {
    uint64_t id;
    enum request_status status;
    int32_t *tokens;          /* [cap]: prompt then output */
    int n_tokens, n_prompt, cap;
    int max_tokens;           /* after clamping to the context length */
    int num_computed;         /* tokens whose K/V are in the cache */
    int num_cached_prompt;    /* prompt tokens served by the prefix cache at first admission */
    bool admitted_once;
    int32_t *block_table;     /* [max_blocks] */
    int n_blocks, max_blocks;
    uint64_t *block_hashes;   /* [max_blocks] content hashes of the first n_hashed blocks */
    int n_hashed;
    struct sampling_params sampling;
    struct logit_bias_entry *logit_bias; /* owned copy, sampling.logit_bias points here */
    int32_t *stop_token_ids;  /* owned copy */
    int n_stop_token_ids;
    bool ignore_eos;
    int priority;
    uint64_t arrival;         /* submission order */
    int thinking_budget;      /* in effect when n_forced_ids > 0 */
    bool thinking;            /* inside <think> ... </think> */
    int thinking_tokens;      /* tokens produced while thinking */
    int32_t think_start_id, think_end_id;
    int32_t *forced_ids;      /* owned copy */
    int n_forced_ids;
    int forced_pos;           /* next forced id to emit; n_forced_ids when not forcing */
    struct gram_matcher *grammar; /* owned; NULL: unconstrained */
    bool grammar_active;      /* grammar_start_id has been emitted (or there is none) */
    int32_t grammar_start_id, grammar_open_id;
    struct sampler_rng rng;
    /* Speculative decoding: up to spec_len <= draft_cap tokens (0: off) drafted to follow
     * tokens[n_tokens-1] and verified in this step's forward. spec_len adapts (starts at 2,
     * doubles after a draft taken whole, shrinks to what was taken); after a draft the model
     * rejected outright the request waits spec_wait steps and tries one token (spec_backoff: the
     * next wait, doubling from 2 to 64). */
    int32_t *draft;           /* [draft_cap] */
    int n_draft, draft_cap, spec_len;
    int spec_wait, spec_backoff;
    struct stream *stream;    /* one reference held until the final event is pushed */
    double t_arrival, t_scheduled; /* ms_now() at submit and at first scheduling (0: not yet) */
};

/* Copies params into a new request able to hold max_len tokens and their blocks, drafting up to
 * max_draft tokens a step (0: no speculative decoding). NULL on allocation failure (err set).
 * Takes a new reference to `stream`. */
struct request *request_create(uint64_t id, const struct engine_request_params *p, int max_len,
                               int block_size, int max_draft, struct stream *stream, struct ms_err *err);
void request_destroy(struct request *r); /* releases the stream reference if still held */

int request_num_output(const struct request *r);

#endif
