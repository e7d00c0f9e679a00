/* libFuzzer harness (b): the tokenizer with arbitrary bytes and arbitrary ids (real Qwen3
 * tokenizer.json).
 *
 * Input: byte 0 picks the mode; the rest is the payload.
 *   bit 0 set: decode. The payload is read as little-endian int32 ids (any value: negative, beyond
 *     the vocabulary, added tokens); bit 1 folds them into [-8, vocab + 8) so that most are real.
 *     Checks: tok_decode returns valid UTF-8; the stream decoder (push each id, then finish)
 *     concatenates to exactly tok_decode's text and each piece is valid UTF-8 on its own; the
 *     stream is reusable after finish (decoding again gives the same text).
 *   bit 0 clear: encode with allow_special = bit 1. Invalid UTF-8 must fail with MS_ERR_INVALID
 *     (and nothing allocated); valid UTF-8 must succeed with ids inside the vocabulary; with
 *     allow_special = 0 no special id appears; when the text is already NFC, decoding the ids
 *     gives back the text exactly. */
#include <stdint.h>
#include <string.h>

#include "tests/fuzz/fuzz_util.h"
#include "tokenizer/tok_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_stream(const struct tokenizer *tok, struct tok_stream *s, const int32_t *ids, size_t n,
                         const char *want, size_t want_len)
{
    struct ms_err err;
    size_t cap = want_len + 16, got_len = 0;
    char *got = malloc(cap);
    FUZZ_CHECK(got, "oom");
    for (size_t i = 0; i <= n; i++) {
        const char *piece;
        size_t len;
        int rc = i < n ? tok_stream_push(s, ids[i], &piece, &len, &err) : tok_stream_finish(s, &piece, &len, &err);
        FUZZ_CHECK(rc == 0, "stream rc %d", rc);
        FUZZ_CHECK(piece[len] == '\0', "piece not NUL-terminated");
        FUZZ_CHECK(fuzz_utf8_valid((const unsigned char *)piece, len), "stream piece %zu is not valid UTF-8", i);
        FUZZ_CHECK(got_len + len <= want_len, "stream output longer than tok_decode (%zu > %zu)", got_len + len,
                   want_len);
        memcpy(got + got_len, piece, len);
        got_len += len;
    }
    FUZZ_CHECK(got_len == want_len && !memcmp(got, want, want_len), "stream output != tok_decode (%zu vs %zu bytes)",
               got_len, want_len);
    free(got);
    (void)tok;
}

static void fuzz_decode(const struct tokenizer *tok, const uint8_t *p, size_t n, bool fold)
{
    size_t n_ids = n / 4, vocab = tok_vocab_size(tok);
    int32_t *ids = malloc((n_ids ? n_ids : 1) * sizeof *ids);
    FUZZ_CHECK(ids, "oom");
    for (size_t i = 0; i < n_ids; i++) {
        uint32_t v = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
                     (uint32_t)p[4 * i + 3] << 24;
        ids[i] = fold ? (int32_t)(v % (vocab + 16)) - 8 : (int32_t)v;
    }
    size_t len = 0;
    char *text = tok_decode(tok, ids, n_ids, &len);
    FUZZ_CHECK(text, "tok_decode returned NULL");
    FUZZ_CHECK(strlen(text) <= len && text[len] == '\0', "bad terminator");
    FUZZ_CHECK(fuzz_utf8_valid((const unsigned char *)text, len), "tok_decode output is not valid UTF-8");
    struct tok_stream *s = tok_stream_create(tok);
    FUZZ_CHECK(s, "oom");
    check_stream(tok, s, ids, n_ids, text, len);
    check_stream(tok, s, ids, n_ids, text, len); /* finish resets the stream */
    tok_stream_destroy(s);
    free(text);
    free(ids);
}

static void fuzz_encode(const struct tokenizer *tok, const char *text, size_t n, int allow_special)
{
    int32_t *ids = (int32_t *)(uintptr_t)1; /* must be left alone or set on failure */
    size_t n_ids = 12345;
    struct ms_err err = {{0}};
    int rc = tok_encode(tok, text, n, allow_special, &ids, &n_ids, &err);
    bool valid = fuzz_utf8_valid((const unsigned char *)text, n);
    if (!valid) {
        FUZZ_CHECK(rc == MS_ERR_INVALID, "invalid UTF-8 encoded with rc %d", rc);
        FUZZ_CHECK(err.msg[0], "no error message");
        return;
    }
    FUZZ_CHECK(rc == 0, "valid UTF-8 failed to encode: %s", err.msg);
    FUZZ_CHECK(n_ids == 0 || ids, "ids NULL");
    FUZZ_CHECK(n == 0 || n_ids > 0, "non-empty text gave no ids");
    size_t vocab = tok_vocab_size(tok);
    for (size_t i = 0; i < n_ids; i++) {
        FUZZ_CHECK(ids[i] >= 0 && (size_t)ids[i] < vocab, "id %d out of range", ids[i]);
        FUZZ_CHECK(tok_id_to_piece(tok, ids[i]), "id %d unknown", ids[i]);
        if (!allow_special) FUZZ_CHECK(!tok_is_special(tok, ids[i]), "special id %d with allow_special=0", ids[i]);
    }
    /* round trip when normalization changes nothing */
    struct tok_buf nb = {0};
    const char *norm;
    size_t norm_len;
    if (tok_nfc(text, n, &nb, &norm, &norm_len) == 0 && norm == text) {
        size_t len = 0;
        char *back = tok_decode(tok, ids, n_ids, &len);
        FUZZ_CHECK(back, "oom");
        FUZZ_CHECK(len == n && !memcmp(back, text, n), "decode(encode(x)) != x for NFC text (%zu vs %zu bytes)", len, n);
        free(back);
    }
    free(nb.p);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 1 << 16) return 0;
    const struct tokenizer *tok = fuzz_tokenizer();
    if (data[0] & 1) fuzz_decode(tok, data + 1, size - 1, data[0] & 2);
    else fuzz_encode(tok, (const char *)data + 1, size - 1, (data[0] >> 1) & 1);
    return 0;
}
