/* The BPE core shared by loading (tok_load.c) and encoding (tok_encode.c): the string maps
 * from a piece (or its decoded bytes) to an id, and the byte-pair merges of one word. Below both
 * of them, so neither depends on the other. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

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

int tok_strmap_init(struct tok_strmap *m, size_t n)
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
void tok_strmap_put(const struct tokenizer *t, struct tok_strmap *m, int by_bytes, int32_t id, int replace)
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

int tok_ids_push(struct tok_ids *ids, int32_t id)
{
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 64;
        int32_t *v = realloc(ids->v, cap * sizeof *v);
        if (!v) return MS_ERR_NOMEM;
        ids->v = v;
        ids->cap = cap;
    }
    ids->v[ids->n++] = id;
    return 0;
}

/* ---- BPE ------------------------------------------------------------------------------------ */

/* Rank of the merge (a, b), or UINT32_MAX if there is none. */
static inline uint32_t merge_rank(const struct tokenizer *t, int32_t a, int32_t b)
{
    uint64_t key = ((uint64_t)(uint32_t)a << 20) | (uint32_t)b;
    uint64_t mask = ((uint64_t)1 << t->merge_bits) - 1;
    uint64_t h = (key * 0x9E3779B97F4A7C15ULL) >> (64 - t->merge_bits);
    for (;;) {
        uint64_t s = t->merge_slots[h];
        if (s == UINT64_MAX) return UINT32_MAX;
        if ((s >> 24) == key) return (uint32_t)(s & 0xFFFFFF);
        h = (h + 1) & mask;
    }
}

#define SMALL_WORD 64

/* Short words: arrays, repeated scans for the lowest rank (leftmost on ties). */
static int bpe_small(const struct tokenizer *t, int32_t *sym, size_t m, struct tok_ids *ids)
{
    uint32_t rank[SMALL_WORD];
    for (size_t i = 0; i + 1 < m; i++) rank[i] = merge_rank(t, sym[i], sym[i + 1]);
    while (m > 1) {
        uint32_t best = UINT32_MAX;
        size_t at = 0;
        for (size_t i = 0; i + 1 < m; i++)
            if (rank[i] < best) {
                best = rank[i];
                at = i;
            }
        if (best == UINT32_MAX) break;
        sym[at] = t->merge_new[best];
        memmove(sym + at + 1, sym + at + 2, (m - at - 2) * sizeof *sym);
        if (at + 3 < m) memmove(rank + at + 1, rank + at + 2, (m - at - 3) * sizeof *rank);
        m--;
        if (at > 0) rank[at - 1] = merge_rank(t, sym[at - 1], sym[at]);
        if (at + 1 < m) rank[at] = merge_rank(t, sym[at], sym[at + 1]);
    }
    for (size_t i = 0; i < m; i++)
        if (tok_ids_push(ids, sym[i])) return MS_ERR_NOMEM;
    return 0;
}

/* Long words: a doubly linked list of symbols and a binary min-heap of (rank, position), as in
 * HF's Word::merge_all; O(n log n). */
struct hsym {
    int32_t id;
    int32_t prev, next; /* -1 at the ends */
    int alive;
};

static void heap_push(uint64_t *h, size_t *n, uint64_t v)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p] <= v) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static uint64_t heap_pop(uint64_t *h, size_t *n)
{
    uint64_t top = h[0], v = h[--(*n)];
    size_t i = 0, m = *n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= m) break;
        if (c + 1 < m && h[c + 1] < h[c]) c++;
        if (h[c] >= v) break;
        h[i] = h[c];
        i = c;
    }
    if (m) h[i] = v;
    return top;
}

static int bpe_large(const struct tokenizer *t, const int32_t *ids0, size_t m, struct tok_ids *ids)
{
    struct hsym *s = malloc(m * sizeof *s);
    uint64_t *heap = malloc(2 * m * sizeof *heap + 8); /* each merge pushes at most 2 */
    size_t hn = 0;
    if (!s || !heap) {
        free(s);
        free(heap);
        return MS_ERR_NOMEM;
    }
    for (size_t i = 0; i < m; i++) {
        s[i].id = ids0[i];
        s[i].prev = (int32_t)i - 1;
        s[i].next = i + 1 < m ? (int32_t)i + 1 : -1;
        s[i].alive = 1;
    }
    for (size_t i = 0; i + 1 < m; i++) {
        uint32_t r = merge_rank(t, s[i].id, s[i + 1].id);
        if (r != UINT32_MAX) heap_push(heap, &hn, ((uint64_t)r << 32) | i);
    }
    while (hn) {
        uint64_t top = heap_pop(heap, &hn);
        uint32_t r = (uint32_t)(top >> 32), pos = (uint32_t)top;
        if (!s[pos].alive || s[pos].next < 0) continue;
        int32_t nx = s[pos].next;
        if (merge_rank(t, s[pos].id, s[nx].id) != r) continue; /* stale entry */
        s[pos].id = t->merge_new[r];
        s[nx].alive = 0;
        s[pos].next = s[nx].next;
        if (s[nx].next >= 0) s[s[nx].next].prev = (int32_t)pos;
        if (s[pos].prev >= 0) {
            int32_t pv = s[pos].prev;
            uint32_t r2 = merge_rank(t, s[pv].id, s[pos].id);
            if (r2 != UINT32_MAX) heap_push(heap, &hn, ((uint64_t)r2 << 32) | (uint32_t)pv);
        }
        if (s[pos].next >= 0) {
            uint32_t r2 = merge_rank(t, s[pos].id, s[s[pos].next].id);
            if (r2 != UINT32_MAX) heap_push(heap, &hn, ((uint64_t)r2 << 32) | pos);
        }
    }
    int rc = 0;
    for (int32_t i = 0; i >= 0 && !rc; i = s[i].next) rc = tok_ids_push(ids, s[i].id);
    free(s);
    free(heap);
    return rc;
}

int tok_bpe_word(const struct tokenizer *t, const unsigned char *w, size_t len, struct tok_ids *ids,
                 int use_fast_path)
{
    if (len == 0) return 0;
    if (len == 1) return t->byte_id[w[0]] >= 0 ? tok_ids_push(ids, t->byte_id[w[0]]) : 0;
    if (use_fast_path || t->ignore_merges) {
        int32_t id = tok_strmap_get(t, &t->by_bytes, 1, (const char *)w, len);
        if (id >= 0 && (t->ignore_merges || (t->flags[id] & TOK_F_SINGLE))) return tok_ids_push(ids, id);
    }
    int32_t small[SMALL_WORD];
    int32_t *sym = len <= SMALL_WORD ? small : malloc(len * sizeof *sym);
    if (!sym) return MS_ERR_NOMEM;
    size_t m = 0;
    for (size_t i = 0; i < len; i++) /* bytes missing from the vocab are dropped, as HF does */
        if (t->byte_id[w[i]] >= 0) sym[m++] = t->byte_id[w[i]];
    int rc = m <= SMALL_WORD ? bpe_small(t, sym, m, ids) : bpe_large(t, sym, m, ids);
    if (sym != small) free(sym);
    return rc;
}

