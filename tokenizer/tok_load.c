/* Loading tokenizer.json: validation of every field, vocabulary, merges and added tokens. */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"
#include "tokenizer/tokenizer.h"

/* The only pre-tokenizer pattern implemented (by hand, in tok_encode.c): Qwen2's. */
static const char qwen2_pattern[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* ---- JSON helpers --------------------------------------------------------------------------- */

static int check_keys(const cJSON *obj, const char *where, const char *const *allowed, struct ms_err *err)
{
    for (const cJSON *c = obj->child; c; c = c->next) {
        int ok = 0;
        for (const char *const *a = allowed; *a; a++)
            if (!strcmp(c->string, *a)) ok = 1;
        if (!ok) return ms_err_set(err, MS_ERR_INVALID, "%s.%s: unknown field", where, c->string);
    }
    return 0;
}

static int get_bool(const cJSON *obj, const char *key, const char *where, int dflt, int *out,
                    struct ms_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) {
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsBool(v)) return ms_err_set(err, MS_ERR_INVALID, "%s.%s: expected a boolean", where, key);
    *out = cJSON_IsTrue(v);
    return 0;
}

static const char *get_type(const cJSON *obj, const char *where, struct ms_err *err)
{
    if (!cJSON_IsObject(obj)) {
        ms_err_set(err, MS_ERR_INVALID, "%s: expected an object", where);
        return NULL;
    }
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(obj, "type");
    if (!cJSON_IsString(ty)) {
        ms_err_set(err, MS_ERR_INVALID, "%s.type: missing or not a string", where);
        return NULL;
    }
    return ty->valuestring;
}

/* A ByteLevel component: add_prefix_space must be false; use_regex must be false when it is part
 * of the pre-tokenizer (the Split before it does the splitting). */
static int check_bytelevel(const cJSON *obj, const char *where, int pretok, struct ms_err *err)
{
    static const char *const keys[] = {"type", "add_prefix_space", "trim_offsets", "use_regex", NULL};
    int rc = check_keys(obj, where, keys, err), aps, tr, ur;
    if (rc) return rc;
    if ((rc = get_bool(obj, "add_prefix_space", where, 1, &aps, err)) ||
        (rc = get_bool(obj, "trim_offsets", where, 1, &tr, err)) ||
        (rc = get_bool(obj, "use_regex", where, 1, &ur, err)))
        return rc;
    if (aps) return ms_err_set(err, MS_ERR_UNSUPPORTED, "%s.add_prefix_space: only false is supported", where);
    if (pretok && ur) return ms_err_set(err, MS_ERR_UNSUPPORTED, "%s.use_regex: only false is supported", where);
    return 0;
}

static int parse_normalizer(struct tokenizer *t, const cJSON *n, struct ms_err *err)
{
    if (!n || cJSON_IsNull(n)) return 0;
    const char *ty = get_type(n, "normalizer", err);
    if (!ty) return MS_ERR_INVALID;
    if (!strcmp(ty, "NFC")) {
        static const char *const keys[] = {"type", NULL};
        int rc = check_keys(n, "normalizer", keys, err);
        if (rc) return rc;
        t->nfc = 1;
        return 0;
    }
    return ms_err_set(err, MS_ERR_UNSUPPORTED, "normalizer.type: unsupported normalizer '%s' (only NFC)", ty);
}

static int parse_pretokenizer(const cJSON *p, struct ms_err *err)
{
    if (!p || cJSON_IsNull(p))
        return ms_err_set(err, MS_ERR_UNSUPPORTED, "pre_tokenizer: missing (a Split + ByteLevel sequence is required)");
    const char *ty = get_type(p, "pre_tokenizer", err);
    if (!ty) return MS_ERR_INVALID;
    if (strcmp(ty, "Sequence"))
        return ms_err_set(err, MS_ERR_UNSUPPORTED, "pre_tokenizer.type: unsupported '%s' (expected Sequence)", ty);
    static const char *const keys[] = {"type", "pretokenizers", NULL};
    int rc = check_keys(p, "pre_tokenizer", keys, err);
    if (rc) return rc;
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
    if (!cJSON_IsArray(seq) || cJSON_GetArraySize(seq) != 2)
        return ms_err_set(err, MS_ERR_UNSUPPORTED,
                          "pre_tokenizer.pretokenizers: expected an array of [Split, ByteLevel]");
    const cJSON *split = cJSON_GetArrayItem(seq, 0), *bl = cJSON_GetArrayItem(seq, 1);
    const char *w0 = "pre_tokenizer.pretokenizers[0]", *w1 = "pre_tokenizer.pretokenizers[1]";
    if (!(ty = get_type(split, w0, err))) return MS_ERR_INVALID;
    if (strcmp(ty, "Split")) return ms_err_set(err, MS_ERR_UNSUPPORTED, "%s.type: unsupported '%s' (expected Split)", w0, ty);
    static const char *const skeys[] = {"type", "pattern", "behavior", "invert", NULL};
    if ((rc = check_keys(split, w0, skeys, err))) return rc;
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(split, "pattern");
    const cJSON *re = cJSON_IsObject(pat) ? cJSON_GetObjectItemCaseSensitive(pat, "Regex") : NULL;
    if (!cJSON_IsString(re))
        return ms_err_set(err, MS_ERR_INVALID, "%s.pattern.Regex: missing or not a string", w0);
    if (strcmp(re->valuestring, qwen2_pattern))
        return ms_err_set(err, MS_ERR_UNSUPPORTED, "%s.pattern.Regex: unsupported pattern (only Qwen2's is implemented)", w0);
    const cJSON *beh = cJSON_GetObjectItemCaseSensitive(split, "behavior");
    if (!cJSON_IsString(beh) || strcmp(beh->valuestring, "Isolated"))
        return ms_err_set(err, MS_ERR_UNSUPPORTED, "%s.behavior: only \"Isolated\" is supported", w0);
    int inv;
    if ((rc = get_bool(split, "invert", w0, 0, &inv, err))) return rc;
    if (inv) return ms_err_set(err, MS_ERR_UNSUPPORTED, "%s.invert: only false is supported", w0);
    if (!(ty = get_type(bl, w1, err))) return MS_ERR_INVALID;
    if (strcmp(ty, "ByteLevel"))
        return ms_err_set(err, MS_ERR_UNSUPPORTED, "%s.type: unsupported '%s' (expected ByteLevel)", w1, ty);
    return check_bytelevel(bl, w1, 1, err);
}

static int parse_simple_bytelevel(const cJSON *p, const char *where, int required, struct ms_err *err)
{
    if (!p || cJSON_IsNull(p))
        return required ? ms_err_set(err, MS_ERR_UNSUPPORTED, "%s: missing (ByteLevel is required)", where) : 0;
    const char *ty = get_type(p, where, err);
    if (!ty) return MS_ERR_INVALID;
    if (strcmp(ty, "ByteLevel"))
        return ms_err_set(err, MS_ERR_UNSUPPORTED, "%s.type: unsupported '%s' (only ByteLevel)", where, ty);
    return check_bytelevel(p, where, 0, err);
}

#define MAX_ID ((1 << 20) - 2)

static int get_id(const cJSON *v, const char *where, const char *what, int32_t *id, struct ms_err *err)
{
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > MAX_ID ||
        v->valuedouble != (double)(int32_t)v->valuedouble)
        return ms_err_set(err, MS_ERR_INVALID, "%s: %s must be an integer id in [0, %d]", where, what, MAX_ID);
    *id = (int32_t)v->valuedouble;
    return 0;
}

static int parse_merges(struct tokenizer *t, const cJSON *merges, struct ms_err *err)
{
    size_t n_merges = (size_t)cJSON_GetArraySize(merges);
    if (n_merges >= (1u << 24)) return ms_err_set(err, MS_ERR_UNSUPPORTED, "model.merges: too many merges");
    int rc = tok_build_merges_init(t, n_merges);
    if (rc) return rc;
    struct tok_buf cat = {0};
    size_t r = 0;
    for (const cJSON *e = merges->child; e; e = e->next, r++) {
        const char *a, *bb;
        size_t la, lb;
        if (cJSON_IsString(e)) {
            const char *sp = strchr(e->valuestring, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                free(cat.p);
                return ms_err_set(err, MS_ERR_INVALID, "model.merges[%zu]: expected \"left right\"", r);
            }
            a = e->valuestring;
            la = (size_t)(sp - a);
            bb = sp + 1;
            lb = strlen(bb);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(e->child) &&
                   cJSON_IsString(e->child->next)) {
            a = e->child->valuestring;
            la = strlen(a);
            bb = e->child->next->valuestring;
            lb = strlen(bb);
        } else {
            free(cat.p);
            return ms_err_set(err, MS_ERR_INVALID, "model.merges[%zu]: expected a string or a pair of strings", r);
        }
        const char *missing;
        size_t ml;
        if ((rc = tok_build_merge(t, r, a, la, bb, lb, &cat, &missing, &ml))) {
            free(cat.p);
            if (rc != MS_ERR_INVALID) return rc;
            return ms_err_set(err, rc, "model.merges[%zu]: token '%.*s' not in model.vocab", r,
                              ml > 100 ? 100 : (int)ml, missing);
        }
    }
    free(cat.p);
    return 0;
}

static int parse_added(struct tokenizer *t, const cJSON *e, int i, struct ms_err *err)
{
    char where[64];
    snprintf(where, sizeof where, "added_tokens[%d]", i);
    static const char *const akeys[] = {"id", "content", "single_word", "lstrip", "rstrip",
                                        "normalized", "special", NULL};
    int rc;
    if ((rc = check_keys(e, where, akeys, err))) return rc;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "content");
    if (!cJSON_IsString(c) || !c->valuestring[0])
        return ms_err_set(err, MS_ERR_INVALID, "%s.content: missing or empty", where);
    int sw, ls, rs, nz, sp;
    if ((rc = get_bool(e, "single_word", where, 0, &sw, err)) || (rc = get_bool(e, "lstrip", where, 0, &ls, err)) ||
        (rc = get_bool(e, "rstrip", where, 0, &rs, err)) || (rc = get_bool(e, "normalized", where, 1, &nz, err)) ||
        (rc = get_bool(e, "special", where, 0, &sp, err)))
        return rc;
    struct tok_added a = {.id = (int32_t)cJSON_GetObjectItemCaseSensitive(e, "id")->valuedouble,
                          .special = (uint8_t)sp,
                          .lstrip = (uint8_t)ls,
                          .rstrip = (uint8_t)rs,
                          .single_word = (uint8_t)sw,
                          .normalized = (uint8_t)nz};
    rc = tok_build_added(t, c->valuestring, strlen(c->valuestring), &a);
    if (rc == MS_ERR_INVALID) return ms_err_set(err, rc, "%s.id: id %d used by two added tokens", where, a.id);
    return rc;
}

static int parse_model(struct tokenizer *t, const cJSON *m, const cJSON *added, struct ms_err *err)
{
    const char *ty = get_type(m, "model", err);
    if (!ty) return MS_ERR_INVALID;
    if (strcmp(ty, "BPE")) return ms_err_set(err, MS_ERR_UNSUPPORTED, "model.type: unsupported '%s' (only BPE)", ty);
    static const char *const keys[] = {"type", "dropout", "unk_token", "continuing_subword_prefix",
                                       "end_of_word_suffix", "fuse_unk", "byte_fallback",
                                       "ignore_merges", "vocab", "merges", NULL};
    int rc = check_keys(m, "model", keys, err), b;
    if (rc) return rc;
    const cJSON *v;
    if ((v = cJSON_GetObjectItemCaseSensitive(m, "dropout")) && !cJSON_IsNull(v))
        return ms_err_set(err, MS_ERR_UNSUPPORTED, "model.dropout: only null is supported");
    if ((v = cJSON_GetObjectItemCaseSensitive(m, "unk_token")) && !cJSON_IsNull(v))
        return ms_err_set(err, MS_ERR_UNSUPPORTED, "model.unk_token: only null is supported");
    static const char *const empty_strs[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++)
        if ((v = cJSON_GetObjectItemCaseSensitive(m, empty_strs[i])) && !cJSON_IsNull(v) &&
            !(cJSON_IsString(v) && !v->valuestring[0]))
            return ms_err_set(err, MS_ERR_UNSUPPORTED, "model.%s: only \"\" or null is supported", empty_strs[i]);
    if ((rc = get_bool(m, "fuse_unk", "model", 0, &b, err))) return rc;
    if ((rc = get_bool(m, "byte_fallback", "model", 0, &b, err))) return rc;
    if (b) return ms_err_set(err, MS_ERR_UNSUPPORTED, "model.byte_fallback: only false is supported");
    if ((rc = get_bool(m, "ignore_merges", "model", 0, &t->ignore_merges, err))) return rc;

    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(m, "vocab");
    if (!vocab) return ms_err_set(err, MS_ERR_INVALID, "model.vocab: missing");
    if (!cJSON_IsObject(vocab)) return ms_err_set(err, MS_ERR_INVALID, "model.vocab: expected an object");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(m, "merges");
    if (!merges) return ms_err_set(err, MS_ERR_INVALID, "model.merges: missing");
    if (!cJSON_IsArray(merges)) return ms_err_set(err, MS_ERR_INVALID, "model.merges: expected an array");
    if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added))
        return ms_err_set(err, MS_ERR_INVALID, "added_tokens: expected an array");

    /* Sizes. */
    int32_t max_id = -1;
    size_t n_vocab = 0;
    for (const cJSON *e = vocab->child; e; e = e->next, n_vocab++) {
        int32_t id;
        char where[300];
        snprintf(where, sizeof where, "model.vocab[\"%.200s\"]", e->string);
        if ((rc = get_id(e, where, "value", &id, err))) return rc;
        if (id > max_id) max_id = id;
    }
    size_t n_added = 0;
    if (cJSON_IsArray(added)) {
        int i = 0;
        for (const cJSON *e = added->child; e; e = e->next, i++, n_added++) {
            char where[64];
            snprintf(where, sizeof where, "added_tokens[%d]", i);
            if (!cJSON_IsObject(e)) return ms_err_set(err, MS_ERR_INVALID, "%s: expected an object", where);
            int32_t id;
            if ((rc = get_id(cJSON_GetObjectItemCaseSensitive(e, "id"), where, "id", &id, err))) return rc;
            if (id > max_id) max_id = id;
        }
    }
    if (max_id < 0) return ms_err_set(err, MS_ERR_INVALID, "model.vocab: empty");
    if (n_added > 60000) return ms_err_set(err, MS_ERR_UNSUPPORTED, "added_tokens: more than 60000 tokens");
    if ((rc = tok_build_size(t, (size_t)max_id + 1))) return rc;

    /* Vocabulary. */
    for (const cJSON *e = vocab->child; e; e = e->next) {
        rc = tok_build_vocab(t, (int32_t)e->valuedouble, e->string, strlen(e->string));
        if (rc == MS_ERR_INVALID)
            return ms_err_set(err, rc, "model.vocab[\"%.200s\"]: id %d used twice", e->string, (int)e->valuedouble);
        if (rc) return rc;
    }
    if ((rc = tok_build_index(t, n_vocab, n_added))) return rc;
    if ((rc = parse_merges(t, merges, err))) return rc;

    /* Added tokens. */
    if (cJSON_IsArray(added)) {
        int i = 0;
        for (const cJSON *e = added->child; e; e = e->next, i++)
            if ((rc = parse_added(t, e, i, err))) return rc;
    }
    return tok_build_finish(t);
}

struct tokenizer *tok_load_file(const char *path, struct ms_err *err)
{
    char *text = NULL;
    size_t len = 0;
    struct tokenizer *t = NULL;
    cJSON *root = NULL;
    int rc;

    if ((rc = ms_read_file(path, &text, &len, err))) return NULL;
    root = cJSON_ParseWithLength(text, len);
    if (!root) {
        const char *ep = cJSON_GetErrorPtr();
        long off = ep && ep >= text && ep <= text + len ? (long)(ep - text) : -1;
        ms_err_set(err, MS_ERR_INVALID, "%s: invalid JSON near byte %ld", path, off);
        free(text);
        return NULL;
    }
    free(text);
    t = tok_build_new();
    if (!t) {
        rc = ms_err_set(err, MS_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (!cJSON_IsObject(root)) {
        rc = ms_err_set(err, MS_ERR_INVALID, "top level: expected an object");
        goto fail;
    }
    static const char *const keys[] = {"version", "truncation", "padding", "added_tokens", "normalizer",
                                       "pre_tokenizer", "post_processor", "decoder", "model", NULL};
    if ((rc = check_keys(root, "tokenizer", keys, err))) goto fail;
    static const char *const nulls[] = {"truncation", "padding"};
    for (int i = 0; i < 2; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, nulls[i]);
        if (v && !cJSON_IsNull(v)) {
            rc = ms_err_set(err, MS_ERR_UNSUPPORTED, "%s: only null is supported", nulls[i]);
            goto fail;
        }
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!model) {
        rc = ms_err_set(err, MS_ERR_INVALID, "model: missing");
        goto fail;
    }
    if ((rc = parse_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), err)) ||
        (rc = parse_pretokenizer(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), err)) ||
        (rc = parse_simple_bytelevel(cJSON_GetObjectItemCaseSensitive(root, "post_processor"), "post_processor", 0, err)) ||
        (rc = parse_simple_bytelevel(cJSON_GetObjectItemCaseSensitive(root, "decoder"), "decoder", 1, err)))
        goto fail;
    if ((rc = parse_model(t, model, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), err))) {
        if (rc == MS_ERR_NOMEM) ms_err_set(err, rc, "out of memory");
        goto fail;
    }
    cJSON_Delete(root);
    return t;
fail:
    ms_err_prefix(err, "%s", path);
    cJSON_Delete(root);
    tok_free(t);
    return NULL;
}

struct tokenizer *tok_load(const char *model_dir, struct ms_err *err)
{
    size_t n = strlen(model_dir);
    char *path = malloc(n + 32);
    if (!path) {
        ms_err_set(err, MS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    snprintf(path, n + 32, "%s%stokenizer.json", model_dir, n && model_dir[n - 1] == '/' ? "" : "/");
    struct tokenizer *t = tok_load_file(path, err);
    free(path);
    return t;
}

size_t tok_vocab_size(const struct tokenizer *t)
{
    return t->n_ids;
}

int32_t tok_token_id(const struct tokenizer *t, const char *text)
{
    return tok_strmap_get(t, &t->by_piece, 0, text, strlen(text));
}

const char *tok_id_to_piece(const struct tokenizer *t, int32_t id)
{
    if (id < 0 || (size_t)id >= t->n_ids || t->piece_off[id] == UINT32_MAX) return NULL;
    return t->pool + t->piece_off[id];
}

const char *tok_id_to_bytes(const struct tokenizer *t, int32_t id, size_t *len)
{
    if (id < 0 || (size_t)id >= t->n_ids || t->bytes_off[id] == UINT32_MAX) return NULL;
    *len = t->bytes_len[id];
    return t->pool + t->bytes_off[id];
}

int tok_is_special(const struct tokenizer *t, int32_t id)
{
    return id >= 0 && (size_t)id < t->n_ids && (t->flags[id] & TOK_F_SPECIAL) != 0;
}
