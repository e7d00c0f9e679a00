/* Picks the next token from a row of logits. Greedy when temperature is 0; otherwise samples
 * from softmax(logits / temperature) with the request's own random stream, so the same seed and
 * prompt give the same tokens whatever else runs beside them. */
#ifndef MS_ENGINE_SAMPLER_H
#define MS_ENGINE_SAMPLER_H

#include <stdint.h>

struct sampling_params {
    float temperature; /* 0 = greedy */
    uint64_t seed;
};

struct sampler_rng {
    uint64_t state;
};

void sampler_rng_seed(struct sampler_rng *rng, uint64_t seed);

/* Uniform double in [0, 1). */
double sampler_rng_uniform(struct sampler_rng *rng);

/* Index of the largest logit (lowest index on ties). */
int32_t sampler_argmax(const float *logits, int n);

/* Samples a token; `work` is scratch of n floats (logits are left untouched). */
int32_t sampler_sample(const float *logits, int n, const struct sampling_params *p,
                       struct sampler_rng *rng, float *work);

#endif
