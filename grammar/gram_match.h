/* The byte-level matcher of a compiled grammar: a set of pushdown stacks (one per live reading
 * of the text so far; anyOf forks them), advanced one byte at a time. A state is a plain value:
 * copying it (gram_state_copy) is how the mask walk explores tokens without undo.
 *
 * gram_state_feed accepts a byte iff the text so far plus that byte can still be completed into
 * a value the grammar accepts; gram_state_complete says whether the text is a complete value
 * (the model may end here). */
#ifndef MS_GRAMMAR_GRAM_MATCH_H
#define MS_GRAMMAR_GRAM_MATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "grammar/gram_schema.h"

#define GRAM_MAX_DEPTH 48     /* nesting of one reading */
#define GRAM_MAX_THREADS 16   /* live readings (further forks are dropped: fewer texts, never wrong ones) */
#define GRAM_MAX_FRAMES 256   /* all readings together */

struct gram_frame {
    int32_t node;     /* -1: the root frame */
    uint8_t phase, ws, flags, pend;
    int32_t lo, hi, off, count;
    int64_t val;
};

struct gram_state {
    int n;                          /* live readings */
    uint16_t len[GRAM_MAX_THREADS]; /* frames of each, packed one after the other in f[] */
    struct gram_frame f[GRAM_MAX_FRAMES];
};

/* The state before any byte. */
void gram_state_init(struct gram_state *s, const struct gram *g);

/* dst = src, copying only the frames in use. */
void gram_state_copy(struct gram_state *dst, const struct gram_state *src);

/* out = in after byte b; false (out empty) if b is not allowed. in and out must differ. */
bool gram_state_feed(const struct gram *g, const struct gram_state *in, uint8_t b, struct gram_state *out);

/* Feeds n bytes in place (scratch: one more state). False at the first byte refused (s is then
 * the state before it). */
bool gram_state_feed_bytes(const struct gram *g, struct gram_state *s, const uint8_t *bytes, int n,
                           struct gram_state *scratch);

bool gram_state_complete(const struct gram *g, const struct gram_state *s);

/* True when every reading is inside a string's plain text (no escape or UTF-8 sequence open, no
 * format, no pattern): then any run of plain characters is allowed, up to *room code points (-1: any). */
bool gram_state_in_plain_string(const struct gram *g, const struct gram_state *s, int *room);

struct gram_regex;

/* True when the one reading is inside regex text that the DFA alone judges: a raw guided_regex
 * at the top (after it nothing may follow, so a byte its DFA refuses is refused), or the plain
 * text of a pattern string without a length bound (any UTF-8 sequence open is the DFA's too).
 * *re and *state are its DFA and state. Then an ordinary byte is accepted iff the DFA takes it,
 * and the state after it is again such a state; with *in_string, '"', '\\' and control bytes
 * are not ordinary: the matcher must judge them. */
bool gram_state_in_regex(const struct gram *g, const struct gram_state *s, const struct gram_regex **re, int *state,
                         bool *in_string);

/* True when every reading is writing an extra property's name: then any run of
 * gram_free_key_byte bytes is allowed, up to *room of them. */
bool gram_state_in_free_key(const struct gram *g, const struct gram_state *s, int *room);

/* True when the one reading is just after a backslash in a format-free string: *room = the
 * characters it may still start, counting the one the escape is writing (-1: any). */
bool gram_state_in_string_escape(const struct gram *g, const struct gram_state *s, int *room);

/* For a state where gram_state_in_plain_string or gram_state_in_string_escape holds: out = the
 * state just after the string's closing quote, as if its minimum length were met and any escape
 * ended (nothing else about the string is read there); *count = code points written so far,
 * *min_len the string's minimum. False otherwise. */
bool gram_state_close_string(const struct gram *g, const struct gram_state *s, struct gram_state *out, int *count,
                             int *min_len);

/* A canonical copy of s in key, to compare as bytes: returns how many leading bytes of *key
 * count (padding and unused lengths zeroed). States with equal keys accept exactly the same
 * byte strings: fields a frame will never read again (stale key bounds after a key, an
 * unbounded string's length past its minimum) are zeroed, everything else is kept, and frames of
 * kinds it does not know are kept whole. Used to cache token masks by state. */
size_t gram_state_key(const struct gram *g, const struct gram_state *s, struct gram_state *key);

/* Runs of one byte class a state takes whole: GRAM_WORD_ALNUM is [a-z0-9], GRAM_WORD_LOWER
 * [a-z]; the values are distinct bits. */
enum gram_word { GRAM_WORD_NONE = 0, GRAM_WORD_ALNUM = 1, GRAM_WORD_LOWER = 2 };

/* When the one reading is in an email's name, domain (ALNUM) or top-level domain (LOWER): any
 * run of that class of at most *room bytes is allowed (other tokens need the walk). */
enum gram_word gram_state_in_word(const struct gram *g, const struct gram_state *s, int *room);

/* The bytes an extra property's name is made of: printable ASCII except '"' and '\\'. */
bool gram_free_key_byte(int b);

#endif
