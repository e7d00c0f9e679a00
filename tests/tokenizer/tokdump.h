/* Reads the tokenizer dump that tests/tokenizer/gguf_tokdump.py writes from a GGUF into a
 * struct tok_vocab (and the chat template), for tests of tok_load_vocab / tmpl_load_gguf that must
 * not depend on a GGUF parser. Every token and merge string gets its own exact-size allocation,
 * not NUL-terminated, so that AddressSanitizer sees any read past a GGUF string's length. */
#ifndef MS_TESTS_TOKDUMP_H
#define MS_TESTS_TOKDUMP_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

struct tokdump {
    struct tok_vocab v;
    struct tok_str *tokens, *merges, model, pre, chat_template;
    int32_t *types;
    uint64_t n_types;
    int have_template;
};

struct tokdump_rd {
    const unsigned char *p, *end;
};

static int tokdump_take(struct tokdump_rd *r, void *out, size_t n)
{
    if ((size_t)(r->end - r->p) < n) return -1;
    memcpy(out, r->p, n);
    r->p += n;
    return 0;
}

/* A string copied into its own allocation of exactly its length (1 byte for an empty one). */
static int tokdump_str(struct tokdump_rd *r, struct tok_str *s)
{
    uint64_t n;
    if (tokdump_take(r, &n, 8) || n > (uint64_t)(r->end - r->p)) return -1;
    char *c = malloc(n ? n : 1);
    if (!c) return -1;
    memcpy(c, r->p, n);
    r->p += n;
    s->p = c;
    s->len = n;
    return 0;
}

static int tokdump_strs(struct tokdump_rd *r, struct tok_str **out, uint64_t *count)
{
    uint64_t n;
    if (tokdump_take(r, &n, 8) || n > (uint64_t)(r->end - r->p) / 8) return -1;
    *out = calloc(n ? n : 1, sizeof **out);
    if (!*out) return -1;
    *count = n;
    for (uint64_t i = 0; i < n; i++)
        if (tokdump_str(r, &(*out)[i])) return -1;
    return 0;
}

static void tokdump_free(struct tokdump *d)
{
    for (uint64_t i = 0; d->tokens && i < d->v.n_tokens; i++) free((void *)d->tokens[i].p);
    for (uint64_t i = 0; d->merges && i < d->v.n_merges; i++) free((void *)d->merges[i].p);
    free(d->tokens);
    free(d->merges);
    free(d->types);
    free((void *)d->model.p);
    free((void *)d->pre.p);
    free((void *)d->chat_template.p);
    memset(d, 0, sizeof *d);
}

static int tokdump_record(struct tokdump_rd *r, struct tokdump *d, char tag, const char *key)
{
    if (tag == 'S') {
        struct tok_str s = {0};
        if (tokdump_str(r, &s)) return -1;
        struct tok_str *dst = !strcmp(key, "tokenizer.ggml.model")  ? &d->model
                              : !strcmp(key, "tokenizer.ggml.pre") ? &d->pre
                              : !strcmp(key, "tokenizer.chat_template") ? &d->chat_template
                                                                        : NULL;
        if (!dst) {
            free((void *)s.p);
            return 0;
        }
        free((void *)dst->p);
        *dst = s;
        if (dst == &d->chat_template) d->have_template = 1;
        return 0;
    }
    if (tag == 'I') {
        int64_t x;
        if (tokdump_take(r, &x, 8)) return -1;
        if (!strcmp(key, "tokenizer.ggml.bos_token_id")) d->v.bos_id = x;
        if (!strcmp(key, "tokenizer.ggml.eos_token_id")) d->v.eos_id = x;
        if (!strcmp(key, "tokenizer.ggml.padding_token_id")) d->v.pad_id = x;
        if (!strcmp(key, "tokenizer.ggml.add_bos_token")) d->v.add_bos = (int)x;
        if (!strcmp(key, "tokenizer.ggml.add_eos_token")) d->v.add_eos = (int)x;
        return 0;
    }
    if (tag == 'A') {
        struct tok_str *arr = NULL;
        uint64_t n = 0;
        int rc = tokdump_strs(r, &arr, &n);
        int is_tokens = !strcmp(key, "tokenizer.ggml.tokens"), is_merges = !strcmp(key, "tokenizer.ggml.merges");
        int dup = (is_tokens && d->tokens) || (is_merges && d->merges);
        if (rc || dup || (!is_tokens && !is_merges)) {
            for (uint64_t i = 0; arr && i < n; i++) free((void *)arr[i].p);
            free(arr);
            return rc || dup ? -1 : 0;
        }
        if (is_tokens) {
            d->tokens = arr;
            d->v.n_tokens = n;
        } else {
            d->merges = arr;
            d->v.n_merges = n;
        }
        return 0;
    }
    if (tag == 'T') {
        uint64_t n;
        if (tokdump_take(r, &n, 8) || n > (uint64_t)(r->end - r->p) / 4) return -1;
        if (strcmp(key, "tokenizer.ggml.token_type")) {
            r->p += n * 4;
            return 0;
        }
        if (d->types) return -1;
        d->types = malloc(n ? n * 4 : 1);
        if (!d->types || tokdump_take(r, d->types, n * 4)) return -1;
        d->n_types = n;
        return 0;
    }
    return -1;
}

/* Loads PATH into *d (zeroed first); 0 on success, else -1 with a message on stderr. */
static int tokdump_load(const char *path, struct tokdump *d)
{
    memset(d, 0, sizeof *d);
    d->v.bos_id = d->v.eos_id = d->v.pad_id = -1;
    d->v.add_bos = d->v.add_eos = -1;
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(size > 0 ? (size_t)size : 1);
    int ok = buf && size > 0 && fread(buf, 1, (size_t)size, f) == (size_t)size;
    fclose(f);
    struct tokdump_rd r = {buf, buf + (ok ? size : 0)};
    char magic[10];
    ok = ok && !tokdump_take(&r, magic, 10) && !memcmp(magic, "MSTOKDUMP1", 10);
    while (ok) {
        char tag, key[256];
        uint32_t kl;
        if (tokdump_take(&r, &tag, 1)) ok = 0;
        else if (tag == 'E') break;
        else if (tokdump_take(&r, &kl, 4) || kl >= sizeof key || tokdump_take(&r, key, kl)) ok = 0;
        else {
            key[kl] = 0;
            ok = !tokdump_record(&r, d, tag, key);
        }
    }
    free(buf);
    if (!ok) {
        fprintf(stderr, "%s: not a valid tokenizer dump\n", path);
        tokdump_free(d);
        return -1;
    }
    d->v.model = d->model;
    d->v.pre = d->pre;
    d->v.tokens = d->tokens;
    d->v.merges = d->merges;
    d->v.token_type = d->types;
    d->v.n_token_type = d->n_types;
    return 0;
}

#endif
