/* A tokenizer from a GGUF's tokenizer arrays (tokenizer.ggml.*): validation, then the same build
 * steps as tokenizer.json (tok_build.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"
#include "tokenizer/tokenizer.h"

#define VOCAB_MAX_IDS ((1u << 20) - 1) /* as tokenizer.json: merge keys hold 20-bit ids */
#define VOCAB_MAX_MERGES (1u << 24)
#define VOCAB_MAX_ADDED 60000
#define VOCAB_MAX_STR 65536

/* The type of token i (the array may sit unaligned in a mapped GGUF). */
static int32_t type_at(const struct tok_vocab *v, uint64_t i)
{
    int32_t ty;
    memcpy(&ty, (const char *)v->token_type + i * sizeof ty, sizeof ty);
    return ty;
}

static int str_is(struct tok_str s, const char *want)
{
    size_t n = strlen(want);
    return s.p && s.len == n && !memcmp(s.p, want, n);
}

/* s as a printable, bounded string for messages ("(binary)" if it holds a NUL). */
static const char *shown(struct tok_str s, char *buf, size_t cap)
{
    if (!s.p) return "(missing)";
    if (memchr(s.p, 0, s.len)) return "(binary)";
    size_t n = s.len < cap - 1 ? (size_t)s.len : cap - 1;
    memcpy(buf, s.p, n);
    buf[n] = 0;
    return buf;
}

static int check_kind(const struct tok_vocab *v, struct ms_err *err)
{
    char buf[64];
    if (!str_is(v->model, "gpt2"))
        return ms_err_set(err, MS_ERR_UNSUPPORTED,
                          "tokenizer.ggml.model: '%s' is not supported (only gpt2, byte-level BPE)",
                          shown(v->model, buf, sizeof buf));
    if (!str_is(v->pre, "qwen2"))
        return ms_err_set(err, MS_ERR_UNSUPPORTED,
                          "tokenizer.ggml.pre: '%s' is not supported (only qwen2's pre-tokenizer is implemented)",
                          shown(v->pre, buf, sizeof buf));
    if (v->add_bos == 1)
        return ms_err_set(err, MS_ERR_UNSUPPORTED, "tokenizer.ggml.add_bos_token: true is not supported");
    if (v->add_eos == 1)
        return ms_err_set(err, MS_ERR_UNSUPPORTED, "tokenizer.ggml.add_eos_token: true is not supported");
    if (v->n_tokens == 0 || !v->tokens) return ms_err_set(err, MS_ERR_INVALID, "tokenizer.ggml.tokens: missing or empty");
    if (v->n_tokens > VOCAB_MAX_IDS)
        return ms_err_set(err, MS_ERR_UNSUPPORTED, "tokenizer.ggml.tokens: %llu tokens (at most %u)",
                          (unsigned long long)v->n_tokens, VOCAB_MAX_IDS);
    if (!v->token_type) return ms_err_set(err, MS_ERR_INVALID, "tokenizer.ggml.token_type: missing");
    if (v->n_token_type != v->n_tokens)
        return ms_err_set(err, MS_ERR_INVALID, "tokenizer.ggml.token_type: %llu entries for %llu tokens",
                          (unsigned long long)v->n_token_type, (unsigned long long)v->n_tokens);
    if (v->n_merges && !v->merges) return ms_err_set(err, MS_ERR_INVALID, "tokenizer.ggml.merges: missing");
    if (v->n_merges >= VOCAB_MAX_MERGES)
        return ms_err_set(err, MS_ERR_UNSUPPORTED, "tokenizer.ggml.merges: too many merges (%llu)",
                          (unsigned long long)v->n_merges);
    return 0;
}

/* Checks every token and its type; *n_ids: one past the last id that is a token. */
static int check_tokens(const struct tok_vocab *v, size_t *n_ids, size_t *n_vocab, size_t *n_added,
                        struct ms_err *err)
{
    *n_ids = *n_vocab = *n_added = 0;
    for (size_t i = 0; i < v->n_tokens; i++) {
        int32_t ty = type_at(v, i);
        const struct tok_str s = v->tokens[i];
        if (!s.p && s.len) return ms_err_set(err, MS_ERR_INVALID, "tokenizer.ggml.tokens[%zu]: no data", i);
        if (s.len > VOCAB_MAX_STR)
            return ms_err_set(err, MS_ERR_UNSUPPORTED, "tokenizer.ggml.tokens[%zu]: %llu bytes (at most %d)", i,
                              (unsigned long long)s.len, VOCAB_MAX_STR);
        switch (ty) {
        case TOK_TYPE_NORMAL:
            ++*n_vocab;
            break;
        case TOK_TYPE_CONTROL:
        case TOK_TYPE_USER_DEFINED:
            if (!s.len) return ms_err_set(err, MS_ERR_INVALID, "tokenizer.ggml.tokens[%zu]: empty added token", i);
            ++*n_added;
            break;
        case TOK_TYPE_UNUSED:
            continue;
        case TOK_TYPE_UNKNOWN:
        case TOK_TYPE_BYTE:
            return ms_err_set(err, MS_ERR_UNSUPPORTED,
                              "tokenizer.ggml.token_type[%zu]: type %d (%s) is not supported in a gpt2 vocabulary", i,
                              (int)ty, ty == TOK_TYPE_UNKNOWN ? "unknown" : "byte");
        default:
            return ms_err_set(err, MS_ERR_INVALID, "tokenizer.ggml.token_type[%zu]: invalid type %d", i, (int)ty);
        }
        *n_ids = i + 1;
    }
    if (!*n_vocab) return ms_err_set(err, MS_ERR_INVALID, "tokenizer.ggml.tokens: no normal token");
    if (*n_added > VOCAB_MAX_ADDED)
        return ms_err_set(err, MS_ERR_UNSUPPORTED, "tokenizer.ggml.token_type: more than %d added tokens",
                          VOCAB_MAX_ADDED);
    static const char *const keys[] = {"bos_token_id", "eos_token_id", "padding_token_id"};
    const int64_t ids[] = {v->bos_id, v->eos_id, v->pad_id};
    for (int k = 0; k < 3; k++) {
        if (ids[k] == -1) continue;
        if (ids[k] < 0 || (uint64_t)ids[k] >= v->n_tokens || type_at(v, (uint64_t)ids[k]) == TOK_TYPE_UNUSED)
            return ms_err_set(err, MS_ERR_INVALID, "tokenizer.ggml.%s: %lld is not a token", keys[k],
                              (long long)ids[k]);
    }
    return 0;
}

static int add_merges(struct tokenizer *t, const struct tok_vocab *v, struct ms_err *err)
{
    int rc = tok_build_merges_init(t, (size_t)v->n_merges);
    if (rc) return rc;
    struct tok_buf cat = {0};
    for (size_t r = 0; r < v->n_merges && !rc; r++) {
        const struct tok_str m = v->merges[r];
        const char *sp = m.p && m.len <= VOCAB_MAX_STR ? memchr(m.p, ' ', m.len) : NULL;
        if (!sp || memchr(sp + 1, ' ', m.len - (size_t)(sp + 1 - m.p))) {
            rc = ms_err_set(err, MS_ERR_INVALID, "tokenizer.ggml.merges[%zu]: expected \"left right\"", r);
            break;
        }
        const char *missing;
        size_t ml;
        size_t la = (size_t)(sp - m.p);
        rc = tok_build_merge(t, r, m.p, la, sp + 1, m.len - la - 1, &cat, &missing, &ml);
        if (rc == MS_ERR_INVALID)
            ms_err_set(err, rc, "tokenizer.ggml.merges[%zu]: '%.*s' is not a normal token", r,
                       ml > 100 ? 100 : (int)ml, missing);
    }
    free(cat.p);
    return rc;
}

static int build(struct tokenizer *t, const struct tok_vocab *v, size_t n_ids, size_t n_vocab, size_t n_added,
                 struct ms_err *err)
{
    /* What pre-tokenizer "qwen2" means in tokenizer.json: an NFC normalizer, no ignore_merges. */
    t->nfc = 1;
    t->ignore_merges = 0;
    int rc = tok_build_size(t, n_ids);
    for (size_t i = 0; i < n_ids && !rc; i++)
        if (type_at(v, i) == TOK_TYPE_NORMAL) rc = tok_build_vocab(t, (int32_t)i, v->tokens[i].p ? v->tokens[i].p : "", v->tokens[i].len);
    if (!rc) rc = tok_build_index(t, n_vocab, n_added);
    if (!rc) rc = add_merges(t, v, err);
    for (size_t i = 0; i < n_ids && !rc; i++) {
        int32_t ty = type_at(v, i);
        if (ty != TOK_TYPE_CONTROL && ty != TOK_TYPE_USER_DEFINED) continue;
        struct tok_added a = {.id = (int32_t)i, .special = ty == TOK_TYPE_CONTROL};
        rc = tok_build_added(t, v->tokens[i].p, v->tokens[i].len, &a);
    }
    if (!rc) rc = tok_build_finish(t);
    if (rc == MS_ERR_NOMEM) ms_err_set(err, rc, "out of memory building the tokenizer");
    return rc;
}

struct tokenizer *tok_load_vocab(const struct tok_vocab *v, struct ms_err *err)
{
    size_t n_ids, n_vocab, n_added;
    if (check_kind(v, err) || check_tokens(v, &n_ids, &n_vocab, &n_added, err)) return NULL;
    struct tokenizer *t = tok_build_new();
    if (!t) {
        ms_err_set(err, MS_ERR_NOMEM, "out of memory building the tokenizer");
        return NULL;
    }
    if (build(t, v, n_ids, n_vocab, n_added, err)) {
        tok_free(t);
        return NULL;
    }
    return t;
}
