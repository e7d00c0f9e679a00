#include "engine/spec_ngram.h"

#include <string.h>

/* The start of the latest occurrence of tokens[n-k .. n-1] that ends before n-1, or -1. */
static int latest_match(const int32_t *tokens, int n, int k)
{
    const int32_t *tail = tokens + n - k;
    for (int start = n - k - 1; start >= 0; start--)
        if (tokens[start] == tail[0] && !memcmp(tokens + start, tail, (size_t)k * sizeof *tokens)) return start;
    return -1;
}

int spec_ngram_draft(const int32_t *tokens, int n, int min_ngram, int max_ngram, int max_draft, int32_t *draft)
{
    if (max_draft <= 0 || min_ngram < 1) return 0;
    for (int k = max_ngram < n - 1 ? max_ngram : n - 1; k >= min_ngram; k--) {
        int start = latest_match(tokens, n, k);
        if (start < 0) continue;
        /* What followed the match: `period` tokens up to the end, then (the text repeating with
         * that period, as in "a b a b") the draft's own first tokens again. */
        int from = start + k, period = n - from;
        for (int i = 0; i < max_draft; i++) draft[i] = i < period ? tokens[from + i] : draft[i - period];
        return max_draft;
    }
    return 0;
}
