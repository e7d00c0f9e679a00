#include "cli/cli_model.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model/gguf.h"
#include "engine/model/gguf_config.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

/* The directory holding `path` ("." for a bare file name). */
static void parent_dir(const char *path, char *out, size_t cap)
{
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(out, cap, ".");
    else if (slash == path) snprintf(out, cap, "/");
    else snprintf(out, cap, "%.*s", (int)(slash - path), path);
}

/* The directory the tokenizer files come from. */
static const char *files_dir(const char *model, const char *tokenizer_dir, char *buf, size_t cap)
{
    if (tokenizer_dir && *tokenizer_dir) return tokenizer_dir;
    if (!gguf_config_is_gguf_path(model)) return model;
    parent_dir(model, buf, cap);
    return buf;
}

/* A GGUF's tokenizer.ggml.* keys as the tokenizer's plain arrays. The strings point into the
 * mapping, so `g` must stay open while the vocabulary is used; *strs (owned: free()) holds them. */
static int str_array(const struct gguf_file *g, const char *key, bool required, uint64_t *n,
                     const struct tok_str **out, struct tok_str **owned, struct ms_err *err)
{
    *n = 0;
    *out = NULL;
    if (!required && !gguf_has(g, key)) return MS_OK;
    struct gguf_array a;
    int rc = gguf_get_array(g, key, &a, err);
    if (rc) return rc;
    if (a.type != GGUF_TYPE_STRING) return ms_err_set(err, MS_ERR_INVALID, "%s is not an array of strings", key);
    struct tok_str *s = calloc(a.n ? a.n : 1, sizeof *s);
    if (!s) return ms_err_set(err, MS_ERR_NOMEM, "%s: out of memory for %llu strings", key, (unsigned long long)a.n);
    for (uint64_t i = 0; i < a.n; i++) {
        struct gguf_str e = gguf_array_str(&a, i);
        s[i] = (struct tok_str){e.ptr, e.len};
    }
    *n = a.n;
    *out = *owned = s;
    return MS_OK;
}

static void opt_str(const struct gguf_file *g, const char *key, struct tok_str *out)
{
    struct gguf_str s;
    *out = (struct tok_str){NULL, 0};
    if (gguf_has(g, key) && !gguf_get_str(g, key, &s, NULL)) *out = (struct tok_str){s.ptr, s.len};
}

static int64_t opt_int(const struct gguf_file *g, const char *key, int64_t absent)
{
    int64_t v;
    return gguf_has(g, key) && !gguf_get_int(g, key, &v, NULL) ? v : absent;
}

struct gguf_vocab {
    struct tok_vocab v;
    struct tok_str *tokens, *merges; /* owned */
};

static int gguf_vocab_read(const struct gguf_file *g, struct gguf_vocab *gv, struct ms_err *err)
{
    memset(gv, 0, sizeof *gv);
    struct tok_vocab *v = &gv->v;
    opt_str(g, "tokenizer.ggml.model", &v->model);
    opt_str(g, "tokenizer.ggml.pre", &v->pre);
    int rc = str_array(g, "tokenizer.ggml.tokens", true, &v->n_tokens, &v->tokens, &gv->tokens, err);
    if (!rc) rc = str_array(g, "tokenizer.ggml.merges", false, &v->n_merges, &v->merges, &gv->merges, err);
    if (!rc && gguf_has(g, "tokenizer.ggml.token_type")) {
        struct gguf_array a;
        rc = gguf_get_array(g, "tokenizer.ggml.token_type", &a, err);
        if (!rc && a.type != GGUF_TYPE_INT32)
            rc = ms_err_set(err, MS_ERR_INVALID, "tokenizer.ggml.token_type is not an array of int32");
        if (!rc) v->n_token_type = a.n, v->token_type = a.data;
    }
    v->bos_id = opt_int(g, "tokenizer.ggml.bos_token_id", -1);
    v->eos_id = opt_int(g, "tokenizer.ggml.eos_token_id", -1);
    v->pad_id = opt_int(g, "tokenizer.ggml.padding_token_id", -1);
    v->add_bos = (int)opt_int(g, "tokenizer.ggml.add_bos_token", -1);
    v->add_eos = (int)opt_int(g, "tokenizer.ggml.add_eos_token", -1);
    return rc;
}

static void gguf_vocab_free(struct gguf_vocab *gv)
{
    free(gv->tokens);
    free(gv->merges);
}

/* The vocabulary stored in a GGUF, or NULL with err naming the file and the key. */
static struct tokenizer *gguf_tokenizer(const char *path, struct ms_err *err)
{
    struct gguf_file *g;
    if (gguf_open(path, &g, err)) return NULL;
    struct gguf_vocab gv;
    struct tokenizer *t = NULL;
    if (!gguf_vocab_read(g, &gv, err)) t = tok_load_vocab(&gv.v, err);
    if (!t) ms_err_prefix(err, "%s", path);
    gguf_vocab_free(&gv);
    gguf_close(g);
    return t;
}

struct tokenizer *cli_load_tokenizer(const char *model, const char *tokenizer_dir, struct ms_err *err)
{
    char dir[4096];
    if (gguf_config_is_gguf_path(model) && !(tokenizer_dir && *tokenizer_dir)) return gguf_tokenizer(model, err);
    return tok_load(files_dir(model, tokenizer_dir, dir, sizeof dir), err);
}

/* tokenizer.chat_template of a GGUF, with the special-token variables its vocabulary names, or
 * NULL with err set. */
static struct chat_template *gguf_template(const char *path, struct ms_err *err)
{
    struct gguf_file *g;
    if (gguf_open(path, &g, err)) return NULL;
    struct gguf_str s;
    struct gguf_vocab gv;
    struct chat_template *t = NULL;
    int rc = gguf_vocab_read(g, &gv, err);
    if (!rc && !gguf_has(g, "tokenizer.chat_template"))
        rc = ms_err_set(err, MS_ERR_INVALID, "no tokenizer.chat_template (give --tokenizer DIR with a template)");
    if (!rc) rc = gguf_get_str(g, "tokenizer.chat_template", &s, err);
    if (!rc) t = tmpl_load_gguf(s.ptr, s.len, &gv.v, err);
    if (!t) ms_err_prefix(err, "%s", path);
    gguf_vocab_free(&gv);
    gguf_close(g);
    return t;
}

struct chat_template *cli_load_template(const char *model, const char *tokenizer_dir, struct ms_err *err)
{
    if (gguf_config_is_gguf_path(model) && !(tokenizer_dir && *tokenizer_dir)) return gguf_template(model, err);
    char dir[4096];
    return tmpl_load(files_dir(model, tokenizer_dir, dir, sizeof dir), err);
}
