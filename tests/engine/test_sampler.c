/* The sampler on small hand-computable distributions: each filter keeps exactly the tokens it
 * should, penalties and biases move the logits by the documented amounts, sampled frequencies
 * follow the expected probabilities, and seeds reproduce. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sampler.h"
#include "tests/testhelp.h"

#define V 5
#define DRAWS 200000

/* logits ln(1..5) make softmax probabilities 1/15, 2/15, 3/15, 4/15, 5/15 */
static void base_logits(float *l)
{
    for (int i = 0; i < V; i++) l[i] = logf((float)(i + 1));
}

/* Sampled frequency of each token over DRAWS draws. */
static void frequencies(struct sampler *s, const struct sampling_params *p, double *freq)
{
    struct sampler_rng rng;
    sampler_rng_seed(&rng, 7);
    memset(freq, 0, V * sizeof *freq);
    for (int d = 0; d < DRAWS; d++) {
        float l[V];
        base_logits(l);
        struct sample_result r;
        sampler_sample(s, l, p, NULL, 0, 0, &rng, &r);
        freq[r.token] += 1.0 / DRAWS;
    }
}

/* Expected probabilities: weights w renormalised. Tolerance: 5 binomial standard deviations. */
static bool matches(const double *freq, const double *w)
{
    double sum = 0;
    for (int i = 0; i < V; i++) sum += w[i];
    for (int i = 0; i < V; i++) {
        double p = w[i] / sum, sd = sqrt(p * (1 - p) / DRAWS);
        if (fabs(freq[i] - p) > 5 * sd + 1e-9) {
            fprintf(stderr, "  token %d: frequency %.5f, expected %.5f\n", i, freq[i], p);
            return false;
        }
    }
    return true;
}

static void test_filters(struct sampler *s)
{
    struct sampling_params p;
    double f[V];
    sampling_params_init(&p);
    p.temperature = 1;
    frequencies(s, &p, f);
    test_cond("temperature 1 follows softmax", matches(f, (double[]){1, 2, 3, 4, 5}));

    p.temperature = 0.5f; /* p ~ exp(2 ln i) = i^2 */
    frequencies(s, &p, f);
    test_cond("temperature 0.5 squares the odds", matches(f, (double[]){1, 4, 9, 16, 25}));

    p.temperature = 1;
    p.top_k = 2;
    frequencies(s, &p, f);
    test_cond("top_k 2 keeps the two largest", matches(f, (double[]){0, 0, 0, 4, 5}));

    p.top_k = 0;
    p.top_p = 0.55f; /* sorted 5,4,3: 5/15 = .33 < .55 <= 9/15 = .6 -> keep {5,4} */
    frequencies(s, &p, f);
    test_cond("top_p 0.55 keeps the smallest prefix reaching it", matches(f, (double[]){0, 0, 0, 4, 5}));

    p.top_p = 0.61f; /* needs 3 too: 12/15 = .8 */
    frequencies(s, &p, f);
    test_cond("top_p 0.61 keeps three", matches(f, (double[]){0, 0, 3, 4, 5}));

    p.top_p = 1;
    p.min_p = 0.5f; /* keep p >= 0.5 * 5/15: tokens with weight >= 2.5 */
    frequencies(s, &p, f);
    test_cond("min_p 0.5 drops tokens below half the top", matches(f, (double[]){0, 0, 3, 4, 5}));

    p.min_p = 0;
    p.top_k = 4;
    p.top_p = 0.8f; /* within top 4 (mass 14/15): 5,4,3 = 12/14 >= .8 */
    frequencies(s, &p, f);
    test_cond("top_k then top_p", matches(f, (double[]){0, 0, 3, 4, 5}));
}

static void test_greedy_penalties_bias(struct sampler *s)
{
    struct sampling_params p;
    sampling_params_init(&p);
    struct sampler_rng rng;
    sampler_rng_seed(&rng, 1);
    struct sample_result r;
    float l[V];

    base_logits(l);
    sampler_sample(s, l, &p, NULL, 0, 0, &rng, &r);
    test_cond("greedy picks the largest", r.token == 4);

    struct logit_bias_entry bias[] = {{1, 10.0f}};
    p.logit_bias = bias;
    p.n_logit_bias = 1;
    base_logits(l);
    sampler_sample(s, l, &p, NULL, 0, 0, &rng, &r);
    test_cond("logit_bias +10 wins", r.token == 1);
    p.n_logit_bias = 0;

    /* repetition 2 on token 4 (in the prompt): ln5/2 = 0.80 < ln4 = 1.39 -> token 3 */
    int32_t hist[] = {4, 4};
    p.repetition_penalty = 2;
    base_logits(l);
    sampler_sample(s, l, &p, hist, 2, 2, &rng, &r);
    test_cond("repetition penalty divides a positive logit", r.token == 3 && fabsf(l[4] - logf(5) / 2) < 1e-6f);
    float neg[V] = {-1, -2, -3, -4, -0.5f};
    sampler_sample(s, neg, &p, hist, 2, 2, &rng, &r);
    test_cond("repetition penalty multiplies a negative logit", fabsf(neg[4] - (-1.0f)) < 1e-6f && r.token == 0);
    p.repetition_penalty = 1;

    /* frequency 0.5 x 2 occurrences + presence 0.1 on output token 4: ln5 - 1.1 = 0.509 */
    p.frequency_penalty = 0.5f;
    p.presence_penalty = 0.1f;
    int32_t hist2[] = {0, 4, 4}; /* one prompt token (not penalised), two outputs */
    base_logits(l);
    sampler_sample(s, l, &p, hist2, 3, 1, &rng, &r);
    test_cond("presence + frequency penalties on outputs only",
              fabsf(l[4] - (logf(5) - 1.1f)) < 1e-6f && fabsf(l[0] - 0) < 1e-6f && r.token == 3);
}

static void test_logprobs_and_seeds(struct sampler *s)
{
    struct sampling_params p;
    sampling_params_init(&p);
    p.logprobs = 3;
    p.repetition_penalty = 3; /* logprobs stay those of the raw distribution */
    struct sampler_rng rng;
    sampler_rng_seed(&rng, 1);
    struct sample_result r;
    float l[V];
    base_logits(l);
    int32_t hist[] = {4};
    sampler_sample(s, l, &p, hist, 1, 1, &rng, &r);
    test_cond("logprob of the chosen token is raw", r.token == 3 && fabsf(r.logprob - logf(4.0f / 15)) < 1e-5f);
    test_cond("top logprobs sorted, raw", r.n_top == 3 && r.top_ids[0] == 4 && r.top_ids[1] == 3 &&
                                              r.top_ids[2] == 2 && fabsf(r.top_logprobs[0] - logf(5.0f / 15)) < 1e-5f);

    sampling_params_init(&p);
    p.temperature = 1;
    int32_t a[50], b[50];
    struct sampler_rng r1, r2;
    sampler_rng_seed(&r1, 99);
    sampler_rng_seed(&r2, 99);
    bool same = true, varied = false;
    for (int i = 0; i < 50; i++) {
        base_logits(l);
        sampler_sample(s, l, &p, NULL, 0, 0, &r1, &r);
        a[i] = r.token;
        base_logits(l);
        sampler_sample(s, l, &p, NULL, 0, 0, &r2, &r);
        b[i] = r.token;
        same &= a[i] == b[i];
        varied |= a[i] != a[0];
    }
    test_cond("same seed, same tokens", same);
    test_cond("sampling is not constant", varied);
}

/* The lane-parallel argmax against the plain running scan it replaced, on lengths around the
 * lane width and the vocabulary, with ties, NaNs and infinities placed at random. */
static void test_argmax_matches_scan(void)
{
    enum { N = 151936 };
    static float x[N];
    uint64_t st = 7;
    int mismatches = 0;
    for (int trial = 0; trial < 3000; trial++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        int n = trial % 3 ? 1 + (int)((st >> 33) % N) : 1 + (int)((st >> 33) % 48);
        for (int i = 0; i < n; i++) {
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            unsigned r = (unsigned)(st >> 40);
            x[i] = (float)(r % 64) - 32; /* many ties */
            if (r % 53 == 0) x[i] = NAN;
            else if (r % 97 == 0) x[i] = -INFINITY;
            else if (r % 4099 == 0) x[i] = INFINITY;
        }
        int best = 0;
        for (int i = 1; i < n; i++)
            if (x[i] > x[best]) best = i;
        mismatches += sampler_argmax(x, n) != best;
    }
    test_cond("argmax equals the first index of the running scan's maximum", mismatches == 0);
}

static const float *sort_key;
static int by_logit(const void *a, const void *b)
{
    float x = sort_key[*(const int *)a], y = sort_key[*(const int *)b];
    if (x != y) return x < y ? 1 : -1;
    return *(const int *)a - *(const int *)b;
}

/* top_p alone over a large vocabulary (the sampler sorts only near-maximal tokens, widening
 * until they hold top_p of the mass) against the textbook nucleus: sort everything, keep the
 * smallest prefix reaching top_p, draw with the same uniform number. Peaked and flat logits, so
 * both the first window and the widening are exercised. */
static void test_nucleus_large_vocab(void)
{
    enum { NV = 3000 };
    struct ms_err err;
    struct sampler *s = sampler_create(NV, &err);
    static float logits[NV], work[NV];
    static int order[NV];
    uint64_t st = 11;
    int mismatches = 0;
    for (int trial = 0; trial < 300; trial++) {
        double scale = trial % 3 == 0 ? 0.3 : trial % 3 == 1 ? 3 : 12; /* flat .. peaked */
        struct sampling_params p;
        sampling_params_init(&p);
        p.temperature = 0.5f + (float)(trial % 4) * 0.3f;
        for (int i = 0; i < NV; i++) {
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            logits[i] = (float)(scale * ((double)(st >> 11) / 9007199254740992.0 - 0.5));
            /* every 5th trial: one leader over a tail 8.2-9 temperatures below it that holds
             * about 40% of the mass, which a top_p of 0.9 needs: the window has to widen */
            if (trial % 5 == 4)
                logits[i] = i == 0 ? 0 : p.temperature * (-8.2f - 0.1f * (float)(trial % 8) + 0.1f * logits[i]);
        }
        p.top_p = trial % 5 == 4 ? 0.9f : 0.3f + 0.2f * (float)(trial % 4);
        struct sampler_rng a, b;
        sampler_rng_seed(&a, (uint64_t)trial);
        sampler_rng_seed(&b, (uint64_t)trial);
        struct sample_result res;
        memcpy(work, logits, sizeof logits);
        sampler_sample(s, work, &p, NULL, 0, 0, &a, &res);
        /* the reference */
        for (int i = 0; i < NV; i++) order[i] = i;
        sort_key = logits;
        qsort(order, NV, sizeof order[0], by_logit);
        double total = 0, kept = 0;
        for (int i = 0; i < NV; i++) total += exp(((double)logits[i] - logits[order[0]]) / p.temperature);
        int keep = NV;
        for (int i = 0; i < NV; i++) {
            kept += exp(((double)logits[order[i]] - logits[order[0]]) / p.temperature);
            if (kept >= p.top_p * total) {
                keep = i + 1;
                break;
            }
        }
        double r = sampler_rng_uniform(&b) * kept, acc = 0;
        int want = order[keep - 1];
        for (int i = 0; i < keep; i++) {
            acc += exp(((double)logits[order[i]] - logits[order[0]]) / p.temperature);
            if (acc > r) {
                want = order[i];
                break;
            }
        }
        mismatches += res.token != want;
    }
    sampler_destroy(s);
    printf("nucleus over 3000 tokens: %d of 300 draws differ from the textbook nucleus\n", mismatches);
    /* float vs double probabilities may move a draw that lands within ~1e-7 of a boundary */
    test_cond("top_p alone draws as the textbook nucleus does", mismatches <= 1);
}

int main(void)
{
    test_argmax_matches_scan();
    test_nucleus_large_vocab();
    struct ms_err err;
    struct sampler *s = sampler_create(V, &err);
    test_filters(s);
    test_greedy_penalties_bias(s);
    test_logprobs_and_seeds(s);
    sampler_destroy(s);
    test_report();
}
