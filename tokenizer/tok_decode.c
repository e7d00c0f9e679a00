/* Decoding: ids -> bytes (byte-level inverse) -> UTF-8 with U+FFFD for invalid bytes; and the
 * streaming decoder that holds back incomplete characters. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"
#include "tokenizer/tokenizer.h"

static int append_id(const struct tokenizer *t, int32_t id, struct tok_buf *raw)
{
    size_t len;
    const char *b = tok_id_to_bytes(t, id, &len);
    if (!b) return 0; /* unknown ids are skipped, as HF does */
    return tok_buf_put(raw, b, len);
}

char *tok_decode(const struct tokenizer *t, const int32_t *ids, size_t n, size_t *len_out)
{
    struct tok_buf raw = {0}, out = {0};
    for (size_t i = 0; i < n; i++)
        if (append_id(t, ids[i], &raw)) goto fail;
    if (tok_buf_reserve(&out, 0) || tok_utf8_lossy((const unsigned char *)raw.p, raw.len, 1, &out, NULL))
        goto fail;
    free(raw.p);
    if (len_out) *len_out = out.len;
    return out.p;
fail:
    free(raw.p);
    free(out.p);
    return NULL;
}

struct tok_stream {
    const struct tokenizer *tok;
    char held[4]; /* bytes of an incomplete character */
    size_t n_held;
    struct tok_buf raw, out;
};

struct tok_stream *tok_stream_create(const struct tokenizer *tok)
{
    struct tok_stream *s = calloc(1, sizeof *s);
    if (s) s->tok = tok;
    return s;
}

static int stream_emit(struct tok_stream *s, int final, const char **text, size_t *len, struct ms_err *err)
{
    size_t held = 0;
    s->out.len = 0;
    if (tok_buf_reserve(&s->out, 0) ||
        tok_utf8_lossy((const unsigned char *)s->raw.p, s->raw.len, final, &s->out, &held))
        return ms_err_set(err, MS_ERR_NOMEM, "tokenizer stream: out of memory");
    MS_ASSERT(held <= sizeof s->held);
    memcpy(s->held, s->raw.p + s->raw.len - held, held);
    s->n_held = held;
    *text = s->out.p;
    *len = s->out.len;
    return 0;
}

int tok_stream_push(struct tok_stream *s, int32_t id, const char **text, size_t *len, struct ms_err *err)
{
    s->raw.len = 0;
    if (tok_buf_put(&s->raw, s->held, s->n_held) || append_id(s->tok, id, &s->raw))
        return ms_err_set(err, MS_ERR_NOMEM, "tokenizer stream: out of memory");
    return stream_emit(s, 0, text, len, err);
}

int tok_stream_finish(struct tok_stream *s, const char **text, size_t *len, struct ms_err *err)
{
    s->raw.len = 0;
    if (tok_buf_put(&s->raw, s->held, s->n_held))
        return ms_err_set(err, MS_ERR_NOMEM, "tokenizer stream: out of memory");
    int rc = stream_emit(s, 1, text, len, err);
    s->n_held = 0;
    return rc;
}

void tok_stream_destroy(struct tok_stream *s)
{
    if (!s) return;
    free(s->raw.p);
    free(s->out.p);
    free(s);
}
