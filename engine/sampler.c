#include "engine/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct sampler {
    int vocab;
    float *prob;       /* [vocab] */
    float *raw;        /* [vocab] copy of the raw logits when logprobs are wanted */
    int32_t *cand;     /* [vocab] candidate token ids */
    uint32_t *stamp;   /* [vocab] marks tokens already penalised in this call */
    int32_t *count;    /* [vocab] occurrences in the output, zeroed after each call */
    uint32_t epoch;
};

void sampling_params_init(struct sampling_params *p)
{
    *p = (struct sampling_params){.temperature = 0, .top_k = 0, .top_p = 1, .min_p = 0,
                                  .repetition_penalty = 1, .logprobs = -1};
}

void sampler_rng_seed(struct sampler_rng *rng, uint64_t seed)
{
    rng->state = seed ^ 0x9E3779B97F4A7C15ull;
}

/* splitmix64: small, fast, and statistically fine for sampling */
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

struct sampler *sampler_create(int vocab_size, struct ms_err *err)
{
    struct sampler *s = calloc(1, sizeof *s);
    if (s) {
        s->vocab = vocab_size;
        s->prob = ms_calloc((size_t)vocab_size, sizeof *s->prob);
        s->raw = ms_calloc((size_t)vocab_size, sizeof *s->raw);
        s->cand = ms_calloc((size_t)vocab_size, sizeof *s->cand);
        s->stamp = ms_calloc((size_t)vocab_size, sizeof *s->stamp);
        s->count = ms_calloc((size_t)vocab_size, sizeof *s->count);
    }
    if (!s || !s->prob || !s->raw || !s->cand || !s->stamp || !s->count) {
        sampler_destroy(s);
        ms_err_set(err, MS_ERR_NOMEM, "out of memory for the sampler");
        return NULL;
    }
    return s;
}

void sampler_destroy(struct sampler *s)
{
    if (!s) return;
    free(s->prob);
    free(s->raw);
    free(s->cand);
    free(s->stamp);
    free(s->count);
    free(s);
}

/* The first index of the largest value (NaNs never win; a NaN at 0 stays the answer, as a
 * running "greater than the best so far" scan would have it). The maximum is found in 16
 * independent lanes so the compiler vectorises it, then its first position: two passes over
 * the logits beat one scan whose every step waits on the last. */
int32_t sampler_argmax(const float *logits, int n)
{
    enum { LANES = 16 };
    if (n < LANES || logits[0] != logits[0]) {
        int best = 0;
        for (int i = 1; i < n; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }
    float lane[LANES]; /* start from logits[0], not NaN: a lane never becomes NaN */
    for (int j = 0; j < LANES; j++) lane[j] = logits[0];
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int j = 0; j < LANES; j++) lane[j] = logits[i + j] > lane[j] ? logits[i + j] : lane[j];
    float max = logits[0];
    for (int j = 0; j < LANES; j++) max = lane[j] > max ? lane[j] : max;
    for (; i < n; i++) max = logits[i] > max ? logits[i] : max;
    for (i = 0; logits[i] != max; i++) {}
    return i;
}

/* The top k raw logprobs (sorted, descending) and the log_softmax normaliser of the raw logits. */
static float raw_top_logprobs(const float *logits, int vocab, int k, struct sample_result *out)
{
    float max = logits[sampler_argmax(logits, vocab)];
    double sum = 0;
    for (int i = 0; i < vocab; i++) sum += exp((double)logits[i] - max);
    float lse = max + (float)log(sum);
    out->n_top = 0;
    for (int i = 0; k > 0 && i < vocab; i++) { /* insertion into a sorted list of at most k */
        if (out->n_top == k && logits[i] <= out->top_logprobs[k - 1]) continue;
        int j = out->n_top < k ? out->n_top++ : k - 1;
        while (j > 0 && out->top_logprobs[j - 1] < logits[i]) {
            out->top_logprobs[j] = out->top_logprobs[j - 1];
            out->top_ids[j] = out->top_ids[j - 1];
            j--;
        }
        out->top_logprobs[j] = logits[i];
        out->top_ids[j] = i;
    }
    for (int j = 0; j < out->n_top; j++) out->top_logprobs[j] -= lse;
    return lse;
}

static void apply_penalties(struct sampler *s, float *logits, const struct sampling_params *p,
                            const int32_t *hist, int n_hist, int n_prompt)
{
    for (int i = 0; i < p->n_logit_bias; i++) logits[p->logit_bias[i].token] += p->logit_bias[i].bias;
    if (p->repetition_penalty != 1.0f) {
        if (++s->epoch == 0) memset(s->stamp, 0, (size_t)s->vocab * sizeof *s->stamp), s->epoch = 1;
        for (int i = 0; i < n_hist; i++) {
            int32_t t = hist[i];
            if (s->stamp[t] == s->epoch) continue;
            s->stamp[t] = s->epoch;
            logits[t] = logits[t] > 0 ? logits[t] / p->repetition_penalty : logits[t] * p->repetition_penalty;
        }
    }
    if (p->presence_penalty != 0.0f || p->frequency_penalty != 0.0f) {
        for (int i = n_prompt; i < n_hist; i++) s->count[hist[i]]++;
        for (int i = n_prompt; i < n_hist; i++) {
            int32_t t = hist[i];
            if (!s->count[t]) continue;
            logits[t] -= p->frequency_penalty * (float)s->count[t] + p->presence_penalty;
            s->count[t] = 0; /* applied once; also leaves the array zeroed */
        }
    }
}

static int by_logit_desc(const void *a, const void *b, void *key)
{
    const float *logits = key;
    float x = logits[*(const int32_t *)a], y = logits[*(const int32_t *)b];
    if (x != y) return x < y ? 1 : -1;
    return *(const int32_t *)a < *(const int32_t *)b ? -1 : 1;
}

/* The candidates: the top k sorted by logit, descending, when top_k is set (a bounded
 * insertion), else the whole vocabulary in index order. Returns their count. */
static int candidates(struct sampler *s, const float *logits, int top_k)
{
    int vocab = s->vocab, n = 0;
    if (top_k > 0 && top_k < vocab) {
        for (int i = 0; i < vocab; i++) {
            if (n == top_k && logits[i] <= logits[s->cand[n - 1]]) continue;
            int j = n < top_k ? n++ : top_k - 1;
            while (j > 0 && logits[s->cand[j - 1]] < logits[i]) {
                s->cand[j] = s->cand[j - 1];
                j--;
            }
            s->cand[j] = i;
        }
        return n;
    }
    for (int i = 0; i < vocab; i++) s->cand[i] = i;
    return vocab;
}

/* top_p over the whole vocabulary (no top_k): only the tokens that can be in the nucleus are
 * sorted. The nucleus is a prefix of the tokens by falling logit, so once the tokens within
 * `spread` of the maximum hold top_p of the mass, it lies among them; the spread doubles until
 * they do (a few hundred tokens for a peaked distribution, instead of sorting 151k). Fills
 * s->cand / s->prob with them in order and returns their count; *sum is the whole mass. */
static int nucleus_candidates(struct sampler *s, const float *logits, const struct sampling_params *p, double *sum)
{
    int vocab = s->vocab;
    float max = logits[sampler_argmax(logits, vocab)];
    double total = 0;
    for (int i = 0; i < vocab; i++) total += s->prob[i] = expf((logits[i] - max) / p->temperature);
    int n = 0;
    for (float spread = 8 * p->temperature;; spread *= 2) {
        double mass = 0;
        n = 0;
        for (int i = 0; i < vocab; i++)
            if (logits[i] >= max - spread) {
                s->cand[n++] = i;
                mass += s->prob[i];
            }
        if (mass >= p->top_p * total || n == vocab || !(spread < INFINITY)) break;
    }
    qsort_r(s->cand, (size_t)n, sizeof *s->cand, by_logit_desc, (void *)logits);
    for (int i = 0; i < n; i++) s->prob[i] = expf((logits[s->cand[i]] - max) / p->temperature);
    *sum = total;
    return n;
}

static int32_t sample_processed(struct sampler *s, const float *logits, const struct sampling_params *p,
                                struct sampler_rng *rng)
{
    double sum = 0;
    int n;
    if ((p->top_k <= 0 || p->top_k >= s->vocab) && p->top_p < 1.0f) {
        n = nucleus_candidates(s, logits, p, &sum);
    } else {
        n = candidates(s, logits, p->top_k);
        float max = logits[s->cand[0]];
        if (p->top_k <= 0 || p->top_k >= s->vocab)
            for (int i = 0; i < n; i++) max = logits[s->cand[i]] > max ? logits[s->cand[i]] : max;
        for (int i = 0; i < n; i++) sum += s->prob[i] = expf((logits[s->cand[i]] - max) / p->temperature);
    }
    if (p->top_p < 1.0f) { /* smallest prefix whose mass reaches top_p */
        double acc = 0;
        int keep = n;
        for (int i = 0; i < n; i++) {
            acc += s->prob[i];
            if (acc >= p->top_p * sum) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    if (p->min_p > 0.0f) { /* drop tokens below min_p x the most likely one */
        float pmax = 0;
        for (int i = 0; i < n; i++) pmax = s->prob[i] > pmax ? s->prob[i] : pmax;
        for (int i = 0; i < n; i++)
            if (s->prob[i] < p->min_p * pmax) s->prob[i] = 0;
    }
    sum = 0;
    for (int i = 0; i < n; i++) sum += s->prob[i];
    double r = sampler_rng_uniform(rng) * sum, acc = 0;
    int last = 0;
    for (int i = 0; i < n; i++) {
        if (s->prob[i] <= 0) continue;
        last = i;
        acc += s->prob[i];
        if (acc > r) return s->cand[i];
    }
    return s->cand[last];
}

void sampler_sample(struct sampler *s, float *logits, const struct sampling_params *p,
                    const int32_t *history, int n_history, int n_prompt, struct sampler_rng *rng,
                    struct sample_result *out)
{
    out->n_top = 0;
    out->logprob = 0;
    float lse = 0;
    if (p->logprobs >= 0) { /* raw distribution: keep it before the penalties change the logits */
        int k = p->logprobs > SAMPLER_MAX_TOP_LOGPROBS ? SAMPLER_MAX_TOP_LOGPROBS : p->logprobs;
        lse = raw_top_logprobs(logits, s->vocab, k, out);
        memcpy(s->raw, logits, (size_t)s->vocab * sizeof *s->raw);
    }
    apply_penalties(s, logits, p, history, n_history, n_prompt);
    if (p->allowed)
        for (int i = 0; i < s->vocab; i++)
            if (!(p->allowed[i >> 5] >> (i & 31) & 1)) logits[i] = -INFINITY;
    out->token = p->temperature <= 0 ? sampler_argmax(logits, s->vocab) : sample_processed(s, logits, p, rng);
    if (p->logprobs >= 0) out->logprob = s->raw[out->token] - lse;
}

void sampler_logprobs(struct sampler *s, const float *logits, int k, int32_t token, struct sample_result *out)
{
    if (k > SAMPLER_MAX_TOP_LOGPROBS) k = SAMPLER_MAX_TOP_LOGPROBS;
    float lse = raw_top_logprobs(logits, s->vocab, k, out);
    out->token = token;
    out->logprob = logits[token] - lse;
}
