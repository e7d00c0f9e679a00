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

/* ---- string maps ---------------------------------------------------------------------------- */

static const char *map_key(const struct tokenizer *t, int by_bytes, int32_t id, size_t *len)
{
    if (by_bytes) {
        *len = t->bytes_len[id];
        return t->pool + t->bytes_off[id];
    }
    *len = t->piece_len[id];
    return t->pool + t->piece_off[id];
}

int32_t tok_strmap_get(const struct tokenizer *t, const struct tok_strmap *m, int by_bytes,
                       const char *s, size_t len)
{
    if (!m->slots) return -1;
    uint32_t h = (uint32_t)tok_hash_bytes(s, len) & m->mask;
    for (;;) {
        int32_t id = m->slots[h];
        if (id < 0) return -1;
        size_t kl;
        const char *k = map_key(t, by_bytes, id, &kl);
        if (kl == len && !memcmp(k, s, len)) return id;
        h = (h + 1) & m->mask;
    }
}

static int strmap_init(struct tok_strmap *m, size_t n)
{
    size_t cap = 16;
    while (cap < n * 2) cap *= 2;
    m->slots = malloc(cap * sizeof *m->slots);
    if (!m->slots) return MS_ERR_NOMEM;
    memset(m->slots, 0xFF, cap * sizeof *m->slots);
    m->mask = (uint32_t)(cap - 1);
    return 0;
}

/* Inserts id under its key; an existing entry with the same key is kept unless `replace`. */
static void strmap_put(const struct tokenizer *t, struct tok_strmap *m, int by_bytes, int32_t id, int replace)
{
    size_t len;
    const char *s = map_key(t, by_bytes, id, &len);
    uint32_t h = (uint32_t)tok_hash_bytes(s, len) & m->mask;
    for (;;) {
        int32_t cur = m->slots[h];
        if (cur < 0) {
            m->slots[h] = id;
            return;
        }
        size_t kl;
        const char *k = map_key(t, by_bytes, cur, &kl);
        if (kl == len && !memcmp(k, s, len)) {
            if (replace) m->slots[h] = id;
            return;
        }
        h = (h + 1) & m->mask;
    }
}

/* ---- pool ----------------------------------------------------------------------------------- */

static int pool_add(struct tokenizer *t, const char *s, size_t len, uint32_t *off)
{
    if (t->pool_len + len + 1 > t->pool_cap) {
        size_t cap = t->pool_cap ? t->pool_cap : 1 << 20;
        while (cap < t->pool_len + len + 1) cap *= 2;
        if (cap > UINT32_MAX) return MS_ERR_NOMEM;
        char *p = realloc(t->pool, cap);
        if (!p) return MS_ERR_NOMEM;
        t->pool = p;
        t->pool_cap = cap;
    }
    *off = (uint32_t)t->pool_len;
    memcpy(t->pool + t->pool_len, s, len);
    t->pool[t->pool_len + len] = 0;
    t->pool_len += len + 1;
    return 0;
}

/* Bytes a token decodes to, as HF's ByteLevel decoder does it per token: every character mapped
 * back through the byte-level alphabet, or the token's UTF-8 unchanged if any character is not in
 * the alphabet. */
static int token_bytes(struct tokenizer *t, const char *piece, size_t len, uint32_t *off, uint32_t *blen)
{
    char tmp[1024];
    char *out = len <= sizeof tmp ? tmp : malloc(len);
    if (!out) return MS_ERR_NOMEM;
    size_t n = 0;
    int ok = 1;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t l = tok_utf8_decode((const unsigned char *)piece + i, len - i, &cp);
        int b = l ? tok_cp_to_byte(cp) : -1;
        if (b < 0) {
            ok = 0;
            break;
        }
        out[n++] = (char)b;
        i += l;
    }
    int rc = ok ? pool_add(t, out, n, off) : pool_add(t, piece, len, off);
    *blen = (uint32_t)(ok ? n : len);
    if (out != tmp) free(out);
    return rc;
}

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

static int set_size(struct tokenizer *t, size_t n_ids)
{
    t->n_ids = n_ids;
    t->piece_off = malloc(n_ids * sizeof *t->piece_off);
    t->piece_len = ms_calloc(n_ids, sizeof *t->piece_len);
    t->bytes_off = malloc(n_ids * sizeof *t->bytes_off);
    t->bytes_len = ms_calloc(n_ids, sizeof *t->bytes_len);
    t->flags = ms_calloc(n_ids, 1);
    if (!t->piece_off || !t->piece_len || !t->bytes_off || !t->bytes_len || !t->flags) return MS_ERR_NOMEM;
    memset(t->piece_off, 0xFF, n_ids * sizeof *t->piece_off);
    memset(t->bytes_off, 0xFF, n_ids * sizeof *t->bytes_off);
    return 0;
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

static int cmp_added(const void *a, const void *b)
{
    const struct tok_added *x = *(const struct tok_added *const *)a, *y = *(const struct tok_added *const *)b;
    unsigned char fx = (unsigned char)x->content[0], fy = (unsigned char)y->content[0];
    if (fx != fy) return fx < fy ? -1 : 1;
    if (x->len != y->len) return x->len > y->len ? -1 : 1; /* longest first */
    return 0;
}

static int build_addset(struct tokenizer *t, struct tok_addset *set, int normalized)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n_added; i++) n += t->added[i].normalized == normalized;
    set->n = n;
    set->tok = ms_calloc(n ? n : 1, sizeof *set->tok);
    if (!set->tok) return MS_ERR_NOMEM;
    n = 0;
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].normalized == normalized) set->tok[n++] = &t->added[i];
    qsort(set->tok, n, sizeof *set->tok, cmp_added);
    size_t k = 0;
    for (unsigned b = 0; b <= 256; b++) {
        while (k < n && (unsigned char)set->tok[k]->content[0] < b) k++;
        set->first[b] = (uint16_t)k;
    }
    return 0;
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
    if ((rc = set_size(t, (size_t)max_id + 1))) return rc;

    /* Vocabulary. */
    for (const cJSON *e = vocab->child; e; e = e->next) {
        int32_t id = (int32_t)e->valuedouble;
        size_t len = strlen(e->string);
        if (t->flags[id] & TOK_F_VOCAB)
            return ms_err_set(err, MS_ERR_INVALID, "model.vocab[\"%.200s\"]: id %d used twice", e->string, id);
        t->flags[id] |= TOK_F_VOCAB;
        if ((rc = pool_add(t, e->string, len, &t->piece_off[id]))) return rc;
        t->piece_len[id] = (uint32_t)len;
        if ((rc = token_bytes(t, e->string, len, &t->bytes_off[id], &t->bytes_len[id]))) return rc;
    }
    if ((rc = strmap_init(&t->by_bytes, n_vocab)) || (rc = strmap_init(&t->by_piece, n_vocab + n_added)))
        return rc;
    for (size_t id = 0; id < t->n_ids; id++)
        if (t->flags[id] & TOK_F_VOCAB) {
            strmap_put(t, &t->by_bytes, 1, (int32_t)id, 0);
            strmap_put(t, &t->by_piece, 0, (int32_t)id, 0);
        }
    for (int byte = 0; byte < 256; byte++) {
        char c = (char)byte;
        t->byte_id[byte] = tok_strmap_get(t, &t->by_bytes, 1, &c, 1);
    }

    /* Merges. */
    size_t n_merges = (size_t)cJSON_GetArraySize(merges);
    if (n_merges >= (1u << 24)) return ms_err_set(err, MS_ERR_UNSUPPORTED, "model.merges: too many merges");
    t->n_merges = n_merges;
    t->merge_bits = 4;
    while (((size_t)1 << t->merge_bits) < n_merges + n_merges / 2 + 16) t->merge_bits++;
    size_t slots = (size_t)1 << t->merge_bits;
    t->merge_slots = malloc(slots * sizeof *t->merge_slots);
    t->merge_new = ms_calloc(n_merges ? n_merges : 1, sizeof *t->merge_new);
    if (!t->merge_slots || !t->merge_new) return MS_ERR_NOMEM;
    memset(t->merge_slots, 0xFF, slots * sizeof *t->merge_slots);
    char *cat = NULL;
    size_t cat_cap = 0;
    size_t r = 0;
    for (const cJSON *e = merges->child; e; e = e->next, r++) {
        const char *a, *bb;
        size_t la, lb;
        if (cJSON_IsString(e)) {
            const char *sp = strchr(e->valuestring, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                free(cat);
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
            free(cat);
            return ms_err_set(err, MS_ERR_INVALID, "model.merges[%zu]: expected a string or a pair of strings", r);
        }
        int32_t ia = tok_strmap_get(t, &t->by_piece, 0, a, la), ib = tok_strmap_get(t, &t->by_piece, 0, bb, lb);
        if (la + lb + 1 > cat_cap) {
            cat_cap = (la + lb + 1) * 2;
            char *nc = realloc(cat, cat_cap);
            if (!nc) {
                free(cat);
                return MS_ERR_NOMEM;
            }
            cat = nc;
        }
        memcpy(cat, a, la);
        memcpy(cat + la, bb, lb);
        int32_t inew = tok_strmap_get(t, &t->by_piece, 0, cat, la + lb);
        if (ia < 0 || ib < 0 || inew < 0) {
            const char *missing = ia < 0 ? a : ib < 0 ? bb : "(their concatenation)";
            int ml = ia < 0 ? (int)la : ib < 0 ? (int)lb : 21;
            free(cat);
            return ms_err_set(err, MS_ERR_INVALID, "model.merges[%zu]: token '%.*s' not in model.vocab", r,
                              ml > 100 ? 100 : ml, missing);
        }
        t->merge_new[r] = inew;
        uint64_t key = ((uint64_t)(uint32_t)ia << 20) | (uint32_t)ib;
        uint64_t h = (key * 0x9E3779B97F4A7C15ULL) >> (64 - t->merge_bits);
        for (;;) {
            uint64_t s = t->merge_slots[h];
            if (s == UINT64_MAX || (s >> 24) == key) { /* a repeated pair keeps its last rank, as in HF */
                t->merge_slots[h] = (key << 24) | r;
                break;
            }
            h = (h + 1) & (slots - 1);
        }
    }
    free(cat);

    /* Added tokens. */
    t->added = ms_calloc(n_added ? n_added : 1, sizeof *t->added);
    if (!t->added) return MS_ERR_NOMEM;
    if (cJSON_IsArray(added)) {
        int i = 0;
        for (const cJSON *e = added->child; e; e = e->next, i++) {
            char where[64];
            snprintf(where, sizeof where, "added_tokens[%d]", i);
            static const char *const akeys[] = {"id", "content", "single_word", "lstrip", "rstrip",
                                                "normalized", "special", NULL};
            if ((rc = check_keys(e, where, akeys, err))) return rc;
            struct tok_added *a = &t->added[t->n_added];
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "content");
            if (!cJSON_IsString(c) || !c->valuestring[0])
                return ms_err_set(err, MS_ERR_INVALID, "%s.content: missing or empty", where);
            int sw, ls, rs, nz, sp;
            if ((rc = get_bool(e, "single_word", where, 0, &sw, err)) || (rc = get_bool(e, "lstrip", where, 0, &ls, err)) ||
                (rc = get_bool(e, "rstrip", where, 0, &rs, err)) || (rc = get_bool(e, "normalized", where, 1, &nz, err)) ||
                (rc = get_bool(e, "special", where, 0, &sp, err)))
                return rc;
            a->id = (int32_t)cJSON_GetObjectItemCaseSensitive(e, "id")->valuedouble;
            if (t->flags[a->id] & TOK_F_ADDED)
                return ms_err_set(err, MS_ERR_INVALID, "%s.id: id %d used by two added tokens", where, a->id);
            /* normalized tokens are matched on normalized text, so by their normalized content */
            const char *content = c->valuestring;
            size_t clen = strlen(content);
            struct tok_buf nb = {0};
            if (nz && t->nfc && (rc = tok_nfc(content, clen, &nb, &content, &clen))) return rc;
            a->len = clen;
            a->content = malloc(clen + 1);
            if (!a->content) {
                free(nb.p);
                return MS_ERR_NOMEM;
            }
            memcpy(a->content, content, clen);
            a->content[clen] = 0;
            free(nb.p);
            a->single_word = (uint8_t)sw;
            a->lstrip = (uint8_t)ls;
            a->rstrip = (uint8_t)rs;
            a->normalized = (uint8_t)nz;
            a->special = (uint8_t)sp;
            t->n_added++;
            /* The added vocabulary takes precedence over the model's for id -> token. */
            t->flags[a->id] |= TOK_F_ADDED | (sp ? TOK_F_SPECIAL : 0);
            if ((rc = pool_add(t, a->content, a->len, &t->piece_off[a->id]))) return rc;
            t->piece_len[a->id] = (uint32_t)a->len;
            if ((rc = token_bytes(t, a->content, a->len, &t->bytes_off[a->id], &t->bytes_len[a->id]))) return rc;
        }
    }
    /* by_bytes must keep the model's bytes for vocab ids that an added token re-uses: re-insert
     * is not needed because BPE only yields vocab ids; but their stored bytes changed, so rebuild. */
    memset(t->by_bytes.slots, 0xFF, ((size_t)t->by_bytes.mask + 1) * sizeof *t->by_bytes.slots);
    for (size_t id = 0; id < t->n_ids; id++)
        if ((t->flags[id] & TOK_F_VOCAB) && !(t->flags[id] & TOK_F_ADDED)) strmap_put(t, &t->by_bytes, 1, (int32_t)id, 0);
    for (size_t i = 0; i < t->n_added; i++) strmap_put(t, &t->by_piece, 0, t->added[i].id, 1);
    if ((rc = build_addset(t, &t->raw_set, 0)) || (rc = build_addset(t, &t->norm_set, 1))) return rc;

    /* Words that BPE turns into their own vocabulary entry can skip BPE at encode time. */
    struct tok_ids tmp = {0};
    for (size_t id = 0; id < t->n_ids; id++) {
        if ((t->flags[id] & (TOK_F_VOCAB | TOK_F_ADDED)) != TOK_F_VOCAB) continue;
        tmp.n = 0;
        if ((rc = tok_bpe_word(t, (const unsigned char *)t->pool + t->bytes_off[id], t->bytes_len[id], &tmp, 0))) {
            free(tmp.v);
            return rc;
        }
        if (tmp.n == 1 && tmp.v[0] == (int32_t)id) t->flags[id] |= TOK_F_SINGLE;
    }
    free(tmp.v);
    return 0;
}

struct tokenizer *tok_load_file(const char *path, struct ms_err *err)
{
    char *text = NULL;
    size_t len = 0;
    struct tokenizer *t = NULL;
    cJSON *root = NULL;
    int rc;

    tok_bytelevel_init();
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
    t = calloc(1, sizeof *t);
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

void tok_free(struct tokenizer *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->n_added; i++) free(t->added[i].content);
    free(t->added);
    free(t->raw_set.tok);
    free(t->norm_set.tok);
    free(t->pool);
    free(t->piece_off);
    free(t->piece_len);
    free(t->bytes_off);
    free(t->bytes_len);
    free(t->flags);
    free(t->by_bytes.slots);
    free(t->by_piece.slots);
    free(t->merge_slots);
    free(t->merge_new);
    free(t);
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
