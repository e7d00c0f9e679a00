/* Draft tokens for speculative decoding without a draft model (prompt lookup): the request's own
 * tokens so far (prompt and output) are searched for the latest earlier occurrence of their last
 * n tokens, longest n first, and the tokens that followed it there are the draft. The engine
 * verifies a draft in one forward and keeps the longest prefix the model agrees with, so a draft
 * only costs time, never changes an output. Pure functions; any thread. */
#ifndef MS_ENGINE_SPEC_NGRAM_H
#define MS_ENGINE_SPEC_NGRAM_H

#include <stdint.h>

/* Writes at most max_draft tokens to `draft` and returns how many: the continuation of the most
 * recent earlier match of tokens[n-k .. n-1], for k from max_ngram down to min_ngram (the first
 * k with a match wins), continued periodically when the match is closer than max_draft tokens
 * to the end (a match p tokens back predicts that the text repeats with period p). 0 when
 * nothing matches, max_draft <= 0 or n <= min_ngram. Costs O(n x max_ngram) comparisons. */
int spec_ngram_draft(const int32_t *tokens, int n, int min_ngram, int max_ngram, int max_draft, int32_t *draft);

#endif
