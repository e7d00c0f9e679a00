/* Encoding: added-token matching, NFC, the Qwen2 pre-tokenizer (by hand) and BPE merges. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"
#include "tokenizer/tok_unidata.h"
#include "tokenizer/tokenizer.h"

/* ---- Pre-tokenizer ---------------------------------------------------------------------------
 * The Split regex of Qwen2/Qwen3, "Isolated" behaviour:
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|
 *   \s*[\r\n]+|\s+(?!\S)|\s+
 * Every character is covered by some alternative, so the pieces tile the text. */

static const uint8_t ascii_cls[128] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 3, 3, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0,
};

/* Class of the (valid) character at s[i]; *l gets its length, *cp the code point. */
static inline unsigned cls_at(const unsigned char *s, size_t n, size_t i, size_t *l, uint32_t *cp)
{
    if (s[i] < 0x80) {
        *l = 1;
        *cp = s[i];
        return ascii_cls[s[i]];
    }
    *l = tok_utf8_decode(s + i, n - i, cp);
    if (!*l) { /* unreachable for validated input */
        *l = 1;
        return TOK_C_OTHER;
    }
    return tok_cls(*cp) & 3;
}

static size_t letters_run(const unsigned char *s, size_t n, size_t j)
{
    while (j < n) {
        size_t l;
        uint32_t cp;
        if (cls_at(s, n, j, &l, &cp) != TOK_C_LETTER) break;
        j += l;
    }
    return j;
}

static inline int fold_eq(unsigned char c, char lower)
{
    return (c | 0x20) == (unsigned char)lower;
}

/* End of the piece starting at s[i]. */
static size_t pretok_next(const unsigned char *s, size_t n, size_t i)
{
    size_t l0, l1;
    uint32_t cp0, cp1;
    unsigned c0 = cls_at(s, n, i, &l0, &cp0);

    /* (?i:'s|'t|'re|'ve|'m|'ll|'d) */
    if (cp0 == '\'' && i + 1 < n) {
        unsigned char a = s[i + 1];
        if (fold_eq(a, 't') || fold_eq(a, 'm') || fold_eq(a, 'd')) return i + 2;
        if (fold_eq(a, 's')) return i + 2;
        if (a == 0xC5 && i + 2 < n && s[i + 2] == 0xBF) return i + 3; /* U+017F folds to s */
        if (i + 2 < n) {
            unsigned char b = s[i + 2];
            if ((fold_eq(a, 'r') || fold_eq(a, 'v')) && fold_eq(b, 'e')) return i + 3;
            if (fold_eq(a, 'l') && fold_eq(b, 'l')) return i + 3;
        }
    }
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (c0 == TOK_C_LETTER) return letters_run(s, n, i + l0);
    if (c0 != TOK_C_NUMBER && cp0 != '\r' && cp0 != '\n' && i + l0 < n &&
        cls_at(s, n, i + l0, &l1, &cp1) == TOK_C_LETTER)
        return letters_run(s, n, i + l0 + l1);
    /* \p{N} */
    if (c0 == TOK_C_NUMBER) return i + l0;
    /* ' ?[^\s\p{L}\p{N}]+[\r\n]*' */
    {
        size_t j = i;
        if (cp0 == ' ') j++;
        size_t k = j;
        while (k < n) {
            size_t l;
            uint32_t cp;
            if (cls_at(s, n, k, &l, &cp) != TOK_C_OTHER) break;
            k += l;
        }
        if (k > j) {
            while (k < n && (s[k] == '\r' || s[k] == '\n')) k++;
            return k;
        }
    }
    /* c0 is whitespace from here on. */
    size_t j = i, last_nl = 0, last_start = i;
    while (j < n) {
        size_t l;
        uint32_t cp;
        if (cls_at(s, n, j, &l, &cp) != TOK_C_SPACE) break;
        if (cp == '\r' || cp == '\n') last_nl = j + 1;
        last_start = j;
        j += l;
    }
    /* \s*[\r\n]+ */
    if (last_nl) return last_nl;
    /* \s+(?!\S) */
    if (j == n) return j;
    if (last_start > i) return last_start;
    /* \s+ */
    return j;
}

static int pretok_bpe(const struct tokenizer *t, const unsigned char *s, size_t n, struct tok_ids *ids)
{
    size_t i = 0;
    while (i < n) {
        size_t e = pretok_next(s, n, i);
        int rc = tok_bpe_word(t, s + i, e - i, ids, 1);
        if (rc) return rc;
        i = e;
    }
    return 0;
}

/* ---- Added tokens --------------------------------------------------------------------------- */

static int is_word_char_before(const unsigned char *s, size_t end)
{
    if (end == 0) return 0;
    size_t st = end - 1;
    while (st > 0 && (s[st] & 0xC0) == 0x80) st--;
    uint32_t cp;
    if (!tok_utf8_decode(s + st, end - st, &cp)) return 0;
    return (tok_cls(cp) & TOK_C_WORD) != 0;
}

static int is_word_char_at(const unsigned char *s, size_t n, size_t i)
{
    if (i >= n) return 0;
    uint32_t cp;
    if (!tok_utf8_decode(s + i, n - i, &cp)) return 0;
    return (tok_cls(cp) & TOK_C_WORD) != 0;
}

static int is_space_at(const unsigned char *s, size_t n, size_t i, size_t *l)
{
    uint32_t cp;
    return cls_at(s, n, i, l, &cp) == TOK_C_SPACE;
}

/* Leftmost-longest match of the set at or after `from`. */
static const struct tok_added *find_added(const struct tok_addset *set, const unsigned char *s,
                                          size_t n, size_t from, size_t *at)
{
    for (size_t p = from; p < n; p++) {
        unsigned b = s[p];
        for (unsigned k = set->first[b]; k < set->first[b + 1]; k++) {
            const struct tok_added *a = set->tok[k];
            if (a->len <= n - p && !memcmp(s + p, a->content, a->len)) {
                *at = p;
                return a;
            }
        }
    }
    return NULL;
}

typedef int (*segment_fn)(const struct tokenizer *t, const unsigned char *s, size_t n, int allow_special,
                          struct tok_ids *ids, struct tok_buf *buf);

/* Whether any of mask[from .. to) is set (mask may be NULL: none is). */
static int span_masked(const uint8_t *mask, size_t from, size_t to)
{
    if (!mask) return 0;
    for (size_t i = from; i < to; i++)
        if (mask[i]) return 1;
    return 0;
}

/* Splits s by the added tokens of `set` like HF's AddedVocabulary::find_matches: text between
 * matches goes to `seg`, matched tokens are appended as ids. A special token overlapping a byte
 * set in `mask` ([n], or NULL) is not matched, and a segment holding such a byte is encoded with
 * specials off. */
static int split_added(const struct tokenizer *t, const struct tok_addset *set, const unsigned char *s,
                       size_t n, int allow_special, const uint8_t *mask, struct tok_ids *ids, struct tok_buf *buf,
                       segment_fn seg)
{
    size_t pos = 0, start_offset = 0;
    int rc;
    if (set->n) {
        for (;;) {
            size_t at;
            const struct tok_added *a = find_added(set, s, n, pos, &at);
            if (!a) break;
            size_t start = at, stop = at + a->len;
            pos = stop;
            if (a->special && (!allow_special || span_masked(mask, start, stop))) continue;
            if (a->single_word && (is_word_char_before(s, start) || is_word_char_at(s, n, stop))) continue;
            if (start < start_offset) continue; /* overlaps a previous rstrip */
            if (a->lstrip) {
                size_t ns = start;
                while (ns > start_offset) {
                    size_t st = ns - 1, l;
                    while (st > 0 && (s[st] & 0xC0) == 0x80) st--;
                    if (!is_space_at(s, n, st, &l)) break;
                    ns = st;
                }
                start = ns;
            }
            if (a->rstrip) {
                size_t l;
                while (stop < n && is_space_at(s, n, stop, &l)) stop += l;
                if (stop > pos) pos = stop;
            }
            if (start_offset < start &&
                (rc = seg(t, s + start_offset, start - start_offset,
                          allow_special && !span_masked(mask, start_offset, start), ids, buf)))
                return rc;
            if ((rc = tok_ids_push(ids, a->id))) return rc;
            start_offset = stop;
        }
    }
    if (start_offset < n)
        return seg(t, s + start_offset, n - start_offset, allow_special && !span_masked(mask, start_offset, n), ids,
                   buf);
    return 0;
}

static int normalized_part(const struct tokenizer *t, const unsigned char *s, size_t n, int allow_special,
                           struct tok_ids *ids, struct tok_buf *buf)
{
    (void)allow_special;
    (void)buf;
    return pretok_bpe(t, s, n, ids);
}

static int raw_part(const struct tokenizer *t, const unsigned char *s, size_t n, int allow_special,
                    struct tok_ids *ids, struct tok_buf *buf)
{
    const char *norm = (const char *)s;
    size_t nlen = n;
    int rc;
    if (t->nfc && (rc = tok_nfc((const char *)s, n, buf, &norm, &nlen))) return rc;
    if (t->norm_set.n) {
        /* The normalized text may live in buf; the callee does not use buf. */
        return split_added(t, &t->norm_set, (const unsigned char *)norm, nlen, allow_special, NULL, ids, NULL,
                           normalized_part);
    }
    return pretok_bpe(t, (const unsigned char *)norm, nlen, ids);
}

static int encode(const struct tokenizer *t, const char *text, size_t len, int allow_special, const uint8_t *mask,
                  int32_t **ids_out, size_t *n_out, struct ms_err *err)
{
    const unsigned char *s = (const unsigned char *)text;
    *ids_out = NULL;
    *n_out = 0;
    for (size_t i = 0; i < len;) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        uint32_t cp;
        size_t l = tok_utf8_decode(s + i, len - i, &cp);
        if (!l) return ms_err_set(err, MS_ERR_INVALID, "tokenizer: text is not valid UTF-8 at byte %zu", i);
        i += l;
    }
    struct tok_ids ids = {0};
    struct tok_buf buf = {0};
    int rc = split_added(t, &t->raw_set, s, len, allow_special, mask, &ids, &buf, raw_part);
    free(buf.p);
    if (rc) {
        free(ids.v);
        return ms_err_set(err, rc, "tokenizer: out of memory encoding %zu bytes", len);
    }
    if (ids.n == 0) {
        free(ids.v);
        ids.v = NULL;
    }
    *ids_out = ids.v;
    *n_out = ids.n;
    return 0;
}

int tok_encode(const struct tokenizer *t, const char *text, size_t len, int allow_special, int32_t **ids_out,
               size_t *n_out, struct ms_err *err)
{
    return encode(t, text, len, allow_special, NULL, ids_out, n_out, err);
}

int tok_encode_masked(const struct tokenizer *t, const char *text, size_t len, const uint8_t *no_special,
                      int32_t **ids_out, size_t *n_out, struct ms_err *err)
{
    return encode(t, text, len, 1, no_special, ids_out, n_out, err);
}

static size_t special_len_in(const struct tok_addset *set, const unsigned char *s, size_t n)
{
    if (!set->n || !n) return 0;
    for (unsigned k = set->first[s[0]]; k < set->first[s[0] + 1]; k++) {
        const struct tok_added *a = set->tok[k]; /* longest first */
        if (a->special && a->len <= n && !memcmp(s, a->content, a->len)) return a->len;
    }
    return 0;
}

size_t tok_special_len(const struct tokenizer *t, const char *s, size_t n)
{
    size_t a = special_len_in(&t->raw_set, (const unsigned char *)s, n);
    size_t b = special_len_in(&t->norm_set, (const unsigned char *)s, n);
    return a > b ? a : b;
}
