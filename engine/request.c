#include "engine/request.h"

#include <stdlib.h>
#include <string.h>

struct request *request_create(uint64_t id, const struct engine_request_params *p, int max_len,
                               int block_size, int max_draft, struct stream *stream, struct ms_err *err)
{
    struct request *r = calloc(1, sizeof *r);
    if (!r) goto nomem;
    r->id = id;
    r->cap = max_len;
    r->max_blocks = (max_len + block_size - 1) / block_size;
    r->tokens = malloc((size_t)max_len * sizeof *r->tokens);
    r->block_table = malloc((size_t)r->max_blocks * sizeof *r->block_table);
    r->block_hashes = malloc((size_t)r->max_blocks * sizeof *r->block_hashes);
    r->logit_bias = malloc((size_t)(p->sampling.n_logit_bias + 1) * sizeof *r->logit_bias);
    r->stop_token_ids = malloc((size_t)(p->n_stop_token_ids + 1) * sizeof *r->stop_token_ids);
    r->forced_ids = malloc((size_t)(p->n_forced_ids + 1) * sizeof *r->forced_ids);
    r->draft = malloc((size_t)(max_draft + 1) * sizeof *r->draft);
    r->draft_cap = max_draft;
    r->spec_len = max_draft < 2 ? max_draft : 2; /* grows with what the model takes */
    if (!r->draft || !r->forced_ids || !r->tokens || !r->block_table || !r->block_hashes || !r->logit_bias || !r->stop_token_ids) goto nomem;
    memcpy(r->tokens, p->prompt, (size_t)p->n_prompt * sizeof *r->tokens);
    r->n_tokens = r->n_prompt = p->n_prompt;
    r->max_tokens = max_len - p->n_prompt < p->max_tokens ? max_len - p->n_prompt : p->max_tokens;
    r->sampling = p->sampling;
    if (p->sampling.n_logit_bias)
        memcpy(r->logit_bias, p->sampling.logit_bias, (size_t)p->sampling.n_logit_bias * sizeof *r->logit_bias);
    r->sampling.logit_bias = r->logit_bias;
    if (p->n_stop_token_ids)
        memcpy(r->stop_token_ids, p->stop_token_ids, (size_t)p->n_stop_token_ids * sizeof *r->stop_token_ids);
    r->n_stop_token_ids = p->n_stop_token_ids;
    r->ignore_eos = p->ignore_eos;
    if (p->n_forced_ids) memcpy(r->forced_ids, p->forced_ids, (size_t)p->n_forced_ids * sizeof *r->forced_ids);
    r->n_forced_ids = r->forced_pos = p->n_forced_ids;
    r->thinking_budget = p->thinking_budget;
    r->thinking = p->starts_in_thinking;
    r->think_start_id = p->think_start_id;
    r->think_end_id = p->think_end_id;
    r->priority = p->priority;
    r->grammar = p->grammar;
    r->grammar_start_id = p->grammar_start_id;
    r->grammar_open_id = p->grammar_open_id;
    r->grammar_active = p->grammar && (p->grammar_start_id < 0 || p->grammar_open_id >= 0);
    sampler_rng_seed(&r->rng, p->sampling.seed);
    stream_retain(stream);
    r->stream = stream;
    return r;
nomem:
    if (r) r->grammar = NULL; /* the caller (engine_submit) still owns it */
    request_destroy(r);
    ms_err_set(err, MS_ERR_NOMEM, "out of memory creating a request");
    return NULL;
}

void request_destroy(struct request *r)
{
    if (!r) return;
    if (r->stream) stream_release(r->stream);
    free(r->tokens);
    free(r->block_table);
    free(r->block_hashes);
    free(r->logit_bias);
    free(r->stop_token_ids);
    free(r->forced_ids);
    free(r->draft);
    gram_matcher_destroy(r->grammar);
    free(r);
}

int request_num_output(const struct request *r)
{
    return r->n_tokens - r->n_prompt;
}
