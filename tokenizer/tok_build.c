/* Building a tokenizer from its parts, independent of where they come from: tok_load.c feeds it
 * tokenizer.json, tok_vocab.c a GGUF's arrays. Both go through these same steps, so the two give
 * the same tables for the same vocabulary, merges and added tokens. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"
#include "tokenizer/tokenizer.h"

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

struct tokenizer *tok_build_new(void)
{
    tok_bytelevel_init();
    return calloc(1, sizeof(struct tokenizer));
}

int tok_build_size(struct tokenizer *t, size_t n_ids)
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

int tok_build_vocab(struct tokenizer *t, int32_t id, const char *s, size_t len)
{
    if (t->flags[id] & TOK_F_VOCAB) return MS_ERR_INVALID;
    t->flags[id] |= TOK_F_VOCAB;
    int rc = pool_add(t, s, len, &t->piece_off[id]);
    if (rc) return rc;
    t->piece_len[id] = (uint32_t)len;
    return token_bytes(t, s, len, &t->bytes_off[id], &t->bytes_len[id]);
}

int tok_build_index(struct tokenizer *t, size_t n_vocab, size_t n_added)
{
    int rc;
    if ((rc = tok_strmap_init(&t->by_bytes, n_vocab)) || (rc = tok_strmap_init(&t->by_piece, n_vocab + n_added)))
        return rc;
    for (size_t id = 0; id < t->n_ids; id++)
        if (t->flags[id] & TOK_F_VOCAB) {
            tok_strmap_put(t, &t->by_bytes, 1, (int32_t)id, 0);
            tok_strmap_put(t, &t->by_piece, 0, (int32_t)id, 0);
        }
    for (int byte = 0; byte < 256; byte++) {
        char c = (char)byte;
        t->byte_id[byte] = tok_strmap_get(t, &t->by_bytes, 1, &c, 1);
    }
    t->added = ms_calloc(n_added ? n_added : 1, sizeof *t->added);
    return t->added ? 0 : MS_ERR_NOMEM;
}

int tok_build_merges_init(struct tokenizer *t, size_t n_merges)
{
    t->n_merges = n_merges;
    t->merge_bits = 4;
    while (((size_t)1 << t->merge_bits) < n_merges + n_merges / 2 + 16) t->merge_bits++;
    size_t slots = (size_t)1 << t->merge_bits;
    t->merge_slots = malloc(slots * sizeof *t->merge_slots);
    t->merge_new = ms_calloc(n_merges ? n_merges : 1, sizeof *t->merge_new);
    if (!t->merge_slots || !t->merge_new) return MS_ERR_NOMEM;
    memset(t->merge_slots, 0xFF, slots * sizeof *t->merge_slots);
    return 0;
}

int tok_build_merge(struct tokenizer *t, size_t r, const char *a, size_t la, const char *b, size_t lb,
                    struct tok_buf *cat, const char **missing, size_t *missing_len)
{
    int32_t ia = tok_strmap_get(t, &t->by_piece, 0, a, la), ib = tok_strmap_get(t, &t->by_piece, 0, b, lb);
    cat->len = 0;
    if (tok_buf_put(cat, a, la) || tok_buf_put(cat, b, lb)) return MS_ERR_NOMEM;
    int32_t inew = tok_strmap_get(t, &t->by_piece, 0, cat->p, la + lb);
    if (ia < 0 || ib < 0 || inew < 0) {
        static const char concat[] = "(their concatenation)";
        *missing = ia < 0 ? a : ib < 0 ? b : concat;
        *missing_len = ia < 0 ? la : ib < 0 ? lb : sizeof concat - 1;
        return MS_ERR_INVALID;
    }
    t->merge_new[r] = inew;
    uint64_t key = ((uint64_t)(uint32_t)ia << 20) | (uint32_t)ib;
    size_t slots = (size_t)1 << t->merge_bits;
    uint64_t h = (key * 0x9E3779B97F4A7C15ULL) >> (64 - t->merge_bits);
    for (;;) {
        uint64_t s = t->merge_slots[h];
        if (s == UINT64_MAX || (s >> 24) == key) { /* a repeated pair keeps its last rank, as in HF */
            t->merge_slots[h] = (key << 24) | r;
            return 0;
        }
        h = (h + 1) & (slots - 1);
    }
}

int tok_build_added(struct tokenizer *t, const char *content, size_t clen, const struct tok_added *spec)
{
    int rc;
    if (t->flags[spec->id] & TOK_F_ADDED) return MS_ERR_INVALID;
    struct tok_added *a = &t->added[t->n_added];
    *a = *spec;
    a->content = NULL;
    /* normalized tokens are matched on normalized text, so by their normalized content */
    struct tok_buf nb = {0};
    if (spec->normalized && t->nfc && (rc = tok_nfc(content, clen, &nb, &content, &clen))) return rc;
    a->len = clen;
    a->content = malloc(clen + 1);
    if (!a->content) {
        free(nb.p);
        return MS_ERR_NOMEM;
    }
    memcpy(a->content, content, clen);
    a->content[clen] = 0;
    free(nb.p);
    t->n_added++;
    /* The added vocabulary takes precedence over the model's for id -> token. */
    t->flags[a->id] |= TOK_F_ADDED | (a->special ? TOK_F_SPECIAL : 0);
    if ((rc = pool_add(t, a->content, a->len, &t->piece_off[a->id]))) return rc;
    t->piece_len[a->id] = (uint32_t)a->len;
    return token_bytes(t, a->content, a->len, &t->bytes_off[a->id], &t->bytes_len[a->id]);
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

int tok_build_finish(struct tokenizer *t)
{
    int rc;
    /* by_bytes must keep the model's bytes for vocab ids that an added token re-uses: re-insert
     * is not needed because BPE only yields vocab ids; but their stored bytes changed, so rebuild. */
    memset(t->by_bytes.slots, 0xFF, ((size_t)t->by_bytes.mask + 1) * sizeof *t->by_bytes.slots);
    for (size_t id = 0; id < t->n_ids; id++)
        if ((t->flags[id] & TOK_F_VOCAB) && !(t->flags[id] & TOK_F_ADDED)) tok_strmap_put(t, &t->by_bytes, 1, (int32_t)id, 0);
    for (size_t i = 0; i < t->n_added; i++) tok_strmap_put(t, &t->by_piece, 0, t->added[i].id, 1);
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
