/* Regular expressions -> byte-level DFAs, for guided_regex (the whole answer matches) and JSON
 * Schema "pattern" (a string's decoded characters match, with ECMAScript's search semantics).
 *
 * Syntax (the subset of ECMAScript / Python that users send): literals; escapes \d \w \s \D \W
 * \S (ASCII digits and word characters; \s is [ \t\n\v\f\r] for Python, ECMAScript's Unicode
 * white space for ECMAScript), \n \t \r \f \v \0, \xHH, \uXXXX (a surrogate pair combines),
 * \u{X..} and any escaped ASCII punctuation; classes [a-z0-9_] with negation and those escapes
 * inside; `.` (any code point but \n; ECMAScript also excludes \r, U+2028 and U+2029); groups
 * (...), (?:...), (?P<name>...), (?<name>...); alternation |; quantifiers * + ? {n} {n,} {n,m}
 * (and {,m} for Python), lazy forms (same language); ^ and $ as assertions of the start and the
 * end of the text (no multiline mode). Anything else (backreferences, lookaround, \b \B, \p{..},
 * inline flags, possessive quantifiers) is an error naming the construct.
 *
 * The DFA reads UTF-8 bytes and only has transitions on valid UTF-8 (no surrogates). Every
 * transition leads to a state from which an accepting one is reachable (dead ends are cut), so
 * a text it has not refused can always be completed. State 0 is the start. Immutable once
 * compiled: any thread. */
#ifndef MS_GRAMMAR_GRAM_REGEX_H
#define MS_GRAMMAR_GRAM_REGEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/ms_common.h"

#define GRAM_REGEX_MAX_STATES 4096  /* DFA states; beyond, compiling fails saying so */
#define GRAM_REGEX_MAX_REPEAT 1000  /* the largest count in {n,m} */

enum gram_regex_flavor {
    GRAM_RE_PYTHON, /* guided_regex: Python's re with re.ASCII, whole-text match (fullmatch) */
    GRAM_RE_ECMA,   /* JSON Schema pattern: ECMAScript with the u flag, a search (unanchored
                     * sides allow any prefix / suffix) */
};

struct gram_regex;

/* Compiles src (len bytes of UTF-8). NULL with err naming the problem and its offset. */
struct gram_regex *gram_regex_compile(const char *src, size_t len, enum gram_regex_flavor flavor,
                                      struct ms_err *err);
void gram_regex_free(struct gram_regex *re); /* NULL allowed */

/* re restricted to texts of min..max code points (max -1: unbounded), as a new DFA (JSON
 * Schema's pattern with minLength / maxLength). NULL with err if none is left or it is too big. */
struct gram_regex *gram_regex_with_length(const struct gram_regex *re, int min, int max, struct ms_err *err);

int gram_regex_states(const struct gram_regex *re);

/* The state after byte b, or -1 if b is refused. */
int gram_regex_next(const struct gram_regex *re, int state, uint8_t b);

/* The state after code point cp's UTF-8 bytes, or -1. */
int gram_regex_next_cp(const struct gram_regex *re, int state, uint32_t cp);

/* The text so far is a match. */
bool gram_regex_accepting(const struct gram_regex *re, int state);

/* Some code point in [lo, hi] (surrogates excluded) is allowed next. */
bool gram_regex_range_viable(const struct gram_regex *re, int state, uint32_t lo, uint32_t hi);

#endif
