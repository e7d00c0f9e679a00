#include "engine/sampler.h"

#include <math.h>

void sampler_rng_seed(struct sampler_rng *rng, uint64_t seed)
{
    rng->state = seed ^ 0x9E3779B97F4A7C15ull;
}

/* splitmix64: tiny, fast, and good enough for sampling */
static uint64_t rng_next(struct sampler_rng *rng)
{
    uint64_t z = (rng->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double sampler_rng_uniform(struct sampler_rng *rng)
{
    return (double)(rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
}

int32_t sampler_argmax(const float *logits, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

int32_t sampler_sample(const float *logits, int n, const struct sampling_params *p,
                       struct sampler_rng *rng, float *work)
{
    if (p->temperature <= 0) return sampler_argmax(logits, n);
    float max = logits[sampler_argmax(logits, n)];
    double sum = 0;
    for (int i = 0; i < n; i++) sum += work[i] = expf((logits[i] - max) / p->temperature);
    double r = sampler_rng_uniform(rng) * sum, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += work[i];
        if (acc > r) return i;
    }
    return n - 1;
}
