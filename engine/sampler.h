/* Turns one row of logits into the next token, per request: logit bias, repetition / presence /
 * frequency penalties, then greedy (temperature 0) or temperature + top-k + top-p + min-p
 * sampling from the request's own random stream. The same seed and prompt give the same tokens
 * whatever else shares the batch. Log-probabilities are those of the model's raw distribution
 * (log_softmax of the logits before any processing), as vLLM reports them.
 *
 * A struct sampler holds vocabulary-sized scratch; engine thread only. */
#ifndef MS_ENGINE_SAMPLER_H
#define MS_ENGINE_SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#include "common/ms_common.h"

#define SAMPLER_MAX_TOP_LOGPROBS 20

struct logit_bias_entry {
    int32_t token;
    float bias;
};

struct sampling_params {
    float temperature;        /* 0 = greedy */
    int top_k;                /* <= 0: off */
    float top_p;              /* 1: off */
    float min_p;              /* 0: off */
    float repetition_penalty; /* 1: off; HF style over prompt and output tokens */
    float presence_penalty;   /* 0: off; OpenAI style over output tokens */
    float frequency_penalty;  /* 0: off */
    int n_logit_bias;
    const struct logit_bias_entry *logit_bias; /* borrowed from the request */
    uint64_t seed;
    int logprobs;             /* -1: none; k >= 0: the chosen token's logprob and the top k */
    /* Structured outputs: bit t of allowed[t / 32] says token t may be sampled (the others get
     * -inf after the penalties); NULL: every token. Borrowed for the call; the logprobs stay
     * those of the raw distribution. */
    const uint32_t *allowed;
};

/* Defaults that mean "no processing": greedy, no penalties, no logprobs. */
void sampling_params_init(struct sampling_params *p);

struct sampler_rng {
    uint64_t state;
};

void sampler_rng_seed(struct sampler_rng *rng, uint64_t seed);
double sampler_rng_uniform(struct sampler_rng *rng); /* in [0, 1) */

struct sample_result {
    int32_t token;
    float logprob;  /* of `token` under the raw distribution; set when params.logprobs >= 0 */
    int n_top;
    int32_t top_ids[SAMPLER_MAX_TOP_LOGPROBS];
    float top_logprobs[SAMPLER_MAX_TOP_LOGPROBS];
};

struct sampler;

struct sampler *sampler_create(int vocab_size, struct ms_err *err);
void sampler_destroy(struct sampler *s);

/* Samples from `logits` (vocab_size values; modified in place). `history` holds the prompt then
 * the output so far; n_prompt of them are prompt. */
void sampler_sample(struct sampler *s, float *logits, const struct sampling_params *p,
                    const int32_t *history, int n_history, int n_prompt, struct sampler_rng *rng,
                    struct sample_result *out);

/* Fills out->logprob for `token` and the top k raw logprobs, without sampling (for tokens the
 * engine forces). */
void sampler_logprobs(struct sampler *s, const float *logits, int k, int32_t token, struct sample_result *out);

/* Index of the largest value (lowest index on ties). */
int32_t sampler_argmax(const float *logits, int n);

#endif
