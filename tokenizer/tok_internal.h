/* Internals shared by the tokenizer's source files (not a public header). */
#ifndef MS_TOK_INTERNAL_H
#define MS_TOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "common/ms_common.h"

/* Hash table from a byte string (stored in the tokenizer's pool) to an id. */
struct tok_strmap {
    int32_t *slots; /* id or -1 */
    uint32_t mask;
};

struct tok_added {
    char *content;
    size_t len;
    int32_t id;
    uint8_t special, lstrip, rstrip, single_word, normalized;
};

/* A set of added tokens matched together (leftmost-longest). */
struct tok_addset {
    const struct tok_added **tok; /* sorted by first byte, then longest first */
    size_t n;
    uint16_t first[257]; /* tokens whose content starts with byte b: tok[first[b] .. first[b+1]) */
};

/* Per-id flags. */
enum { TOK_F_VOCAB = 1, TOK_F_ADDED = 2, TOK_F_SPECIAL = 4, TOK_F_SINGLE = 8 };

struct tokenizer {
    size_t n_ids;
    char *pool; /* pieces and decoded bytes, each NUL-terminated */
    size_t pool_len, pool_cap;
    uint32_t *piece_off, *piece_len; /* per id; piece_off == UINT32_MAX: no such id */
    uint32_t *bytes_off, *bytes_len;
    uint8_t *flags;

    struct tok_strmap by_bytes; /* vocab entries by their decoded bytes */
    struct tok_strmap by_piece; /* vocab entries and added tokens by their text */

    uint64_t *merge_slots; /* a << 44 | b << 24 | rank, or UINT64_MAX */
    uint32_t merge_bits;
    int32_t *merge_new; /* merged id by rank */
    size_t n_merges;

    int32_t byte_id[256]; /* initial BPE symbol of each byte; -1 when missing from the vocab */

    struct tok_added *added;
    size_t n_added;
    struct tok_addset raw_set;  /* added tokens with normalized=false, matched on the raw text */
    struct tok_addset norm_set; /* normalized=true ones, matched after NFC */

    int nfc;           /* normalizer is NFC (else none) */
    int ignore_merges; /* model.ignore_merges: whole words found in the vocab skip BPE */
};

static inline const char *tok_pool_str(const struct tokenizer *t, uint32_t off)
{
    return t->pool + off;
}

/* String maps (tok_bpe.c): sized for n entries; put inserts id under its key (its piece, or its
 * decoded bytes when by_bytes), keeping an existing entry with the same key unless `replace`. */
int tok_strmap_init(struct tok_strmap *m, size_t n);
void tok_strmap_put(const struct tokenizer *t, struct tok_strmap *m, int by_bytes, int32_t id, int replace);
int32_t tok_strmap_get(const struct tokenizer *t, const struct tok_strmap *m, int by_bytes,
                       const char *s, size_t len);
uint64_t tok_hash_bytes(const char *s, size_t len);

/* Byte-level alphabet: byte -> code point, and code point -> byte (-1 if not in the alphabet). */
extern uint32_t tok_byte_to_cp[256];
int tok_cp_to_byte(uint32_t cp);
void tok_bytelevel_init(void);

/* UTF-8 helpers. tok_utf8_decode reads one valid character at s (n > 0 bytes available) and
 * returns its length, or 0 if the bytes there are not valid UTF-8. */
size_t tok_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
size_t tok_utf8_encode(uint32_t cp, char *out);
/* Length of the maximal prefix of s that is a valid-so-far but incomplete UTF-8 sequence
 * (0 if s starts with a complete character or an invalid byte). */
size_t tok_utf8_valid_prefix(const unsigned char *s, size_t n, size_t *complete_len);

/* Growable byte buffer. */
struct tok_buf {
    char *p;
    size_t len, cap;
};
int tok_buf_reserve(struct tok_buf *b, size_t extra);
int tok_buf_put(struct tok_buf *b, const void *data, size_t n);

/* NFC: normalizes s[0..n) (valid UTF-8). If the text is already normalized, *out = s and nothing
 * is written; otherwise the result is written into buf (reset first) and *out = buf->p. */
int tok_nfc(const char *s, size_t n, struct tok_buf *buf, const char **out, size_t *out_len);

/* Appends to *ids the BPE ids of one pre-tokenized word (raw bytes). */
struct tok_ids {
    int32_t *v;
    size_t n, cap;
};
int tok_ids_push(struct tok_ids *ids, int32_t id);
int tok_bpe_word(const struct tokenizer *t, const unsigned char *w, size_t len, struct tok_ids *ids,
                 int use_fast_path);

/* Building a tokenizer (tok_build.c), shared by tok_load.c (tokenizer.json) and tok_vocab.c (a
 * GGUF's arrays). The steps, in this order: tok_build_new, then set t->nfc / t->ignore_merges;
 * tok_build_size (ids 0 .. n_ids-1); tok_build_vocab for each vocabulary entry (MS_ERR_INVALID: the
 * id is already one); tok_build_index (maps of the vocabulary; room for n_added added tokens);
 * tok_build_merges_init, then tok_build_merge for each rank (MS_ERR_INVALID: *missing names the
 * piece, of *missing_len bytes, that is not in the vocabulary; cat is the caller's scratch);
 * tok_build_added for each added token (content[0..len) is copied, spec gives the id and flags;
 * MS_ERR_INVALID: the id already is an added token); tok_build_finish. On any failure the caller tok_free()s the tokenizer. */
struct tokenizer *tok_build_new(void);
int tok_build_size(struct tokenizer *t, size_t n_ids);
int tok_build_vocab(struct tokenizer *t, int32_t id, const char *s, size_t len);
int tok_build_index(struct tokenizer *t, size_t n_vocab, size_t n_added);
int tok_build_merges_init(struct tokenizer *t, size_t n_merges);
int tok_build_merge(struct tokenizer *t, size_t rank, const char *a, size_t la, const char *b, size_t lb,
                    struct tok_buf *cat, const char **missing, size_t *missing_len);
int tok_build_added(struct tokenizer *t, const char *content, size_t len, const struct tok_added *spec);
int tok_build_finish(struct tokenizer *t);

/* Replaces invalid UTF-8 in s[0..n) like Rust's String::from_utf8_lossy, appending to out. If
 * `final` is 0, a trailing incomplete (but so far valid) sequence is not emitted and its length is
 * returned in *held. */
int tok_utf8_lossy(const unsigned char *s, size_t n, int final, struct tok_buf *out, size_t *held);

#endif
