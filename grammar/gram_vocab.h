/* Grammars meet the model's vocabulary: a token trie built once per tokenizer, and per request
 * a matcher that computes which tokens may come next (a bitmask) and advances on the chosen one.
 *
 * The mask walks the trie against the matcher state, so a token is allowed iff every one of its
 * bytes is, wherever it straddles the grammar's boundaries (`"}`, `",\n`). End tokens are
 * allowed iff the text so far is a complete value; special tokens never; the tool-call tags
 * only in tool-call grammars. Inside a string (plain text, or just after a backslash: the common
 * case) the tokens that stay inside it are allowed wholesale from classes precomputed by length,
 * and only what follows a closing quote is walked; the same for an extra property's name, and
 * for the letters and digits of an email. In regex text (a guided_regex, a pattern string's plain
 * text) the trie is walked against the DFA alone, the matcher judging only subtrees that start
 * at '"', '\\' or a control byte. Each matcher keeps its last 32 masks by canonical
 * state (gram_state_key; about 0.6 MB at most for Qwen3's vocabulary), so recurring states cost
 * a copy.
 *
 * A vocabulary is immutable after creation (any thread); a matcher belongs to one thread. */
#ifndef MS_GRAMMAR_GRAM_VOCAB_H
#define MS_GRAMMAR_GRAM_VOCAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/ms_common.h"
#include "grammar/gram_schema.h"

enum gram_token_kind {
    GRAM_TOK_TEXT,  /* its bytes are text the grammar matches */
    GRAM_TOK_NEVER, /* special or control tokens */
    GRAM_TOK_END,   /* ends the output (EOS) */
    GRAM_TOK_TOOL,  /* text, but only in tool-call grammars (<tool_call>, </tool_call>) */
};

struct gram_vocab;

/* bytes[i] / lens[i]: what token i decodes to; kinds[i] its kind. Copies what it needs. */
struct gram_vocab *gram_vocab_create(int n_tokens, const char *const *bytes, const size_t *lens,
                                     const uint8_t *kinds, struct ms_err *err);
void gram_vocab_destroy(struct gram_vocab *v);
int gram_vocab_size(const struct gram_vocab *v);

struct gram_matcher;

/* Takes a new reference to g. NULL on allocation failure. */
struct gram_matcher *gram_matcher_create(struct gram *g, const struct gram_vocab *v, struct ms_err *err);
void gram_matcher_destroy(struct gram_matcher *m); /* NULL allowed */

/* bits[(n_tokens + 31) / 32]: bit t set iff token t may come next. */
void gram_matcher_mask(struct gram_matcher *m, uint32_t *bits);

/* The same mask, computed afresh without the matcher's cache (to test the cache). */
void gram_matcher_mask_uncached(struct gram_matcher *m, uint32_t *bits);

/* Advances on token t: 0, or -1 (state unchanged) if t is not allowed. */
int gram_matcher_accept(struct gram_matcher *m, int32_t t);

bool gram_matcher_complete(const struct gram_matcher *m); /* the text is a complete value */

int gram_matcher_vocab_size(const struct gram_matcher *m);

#endif
