#include "engine/kv_block_pool.h"

#include <stdlib.h>
#include <string.h>

struct kv_pool {
    int num_blocks;
    int *ref_count;    /* [num_blocks] */
    uint64_t *hash;    /* [num_blocks] content hash, valid when hashed[b] */
    bool *hashed;      /* [num_blocks] */
    int *prev, *next;  /* [num_blocks] intrusive free queue links, -1 terminated */
    int free_head, free_tail, num_free;
    int *table;        /* open addressing, linear probing: block ids, -1 empty */
    uint32_t table_mask;
    struct kv_pool_stats stats;
};

uint64_t kv_block_hash(uint64_t parent_hash, const int32_t *tokens, int n)
{
    uint64_t h = parent_hash ^ 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < n; i++) {
        h ^= (uint64_t)(uint32_t)tokens[i];
        h *= 0x100000001B3ull;
        h ^= h >> 29;
    }
    h ^= (uint64_t)n;
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 31);
}

static void queue_push_tail(struct kv_pool *p, int b)
{
    p->prev[b] = p->free_tail;
    p->next[b] = -1;
    if (p->free_tail >= 0) p->next[p->free_tail] = b;
    else p->free_head = b;
    p->free_tail = b;
    p->num_free++;
}

static void queue_remove(struct kv_pool *p, int b)
{
    if (p->prev[b] >= 0) p->next[p->prev[b]] = p->next[b];
    else p->free_head = p->next[b];
    if (p->next[b] >= 0) p->prev[p->next[b]] = p->prev[b];
    else p->free_tail = p->prev[b];
    p->prev[b] = p->next[b] = -1;
    p->num_free--;
}

static uint32_t slot_of(const struct kv_pool *p, uint64_t hash)
{
    return (uint32_t)(hash ^ (hash >> 32)) & p->table_mask;
}

static void table_remove(struct kv_pool *p, int block)
{
    uint32_t i = slot_of(p, p->hash[block]);
    while (p->table[i] != block) {
        MS_ASSERT(p->table[i] >= 0);
        i = (i + 1) & p->table_mask;
    }
    /* backward-shift deletion keeps every probe chain unbroken without tombstones */
    for (;;) {
        p->table[i] = -1;
        uint32_t j = i;
        for (;;) {
            j = (j + 1) & p->table_mask;
            if (p->table[j] < 0) return;
            uint32_t home = slot_of(p, p->hash[p->table[j]]);
            bool movable = (i <= j) ? (home <= i || home > j) : (home <= i && home > j);
            if (movable) break;
        }
        p->table[i] = p->table[j];
        i = j;
    }
}

struct kv_pool *kv_pool_create(int num_blocks, struct ms_err *err)
{
    struct kv_pool *p = calloc(1, sizeof *p);
    uint32_t slots = 16;
    while (slots < (uint32_t)num_blocks * 2u) slots *= 2;
    if (p) {
        p->num_blocks = num_blocks;
        p->ref_count = ms_calloc((size_t)num_blocks, sizeof(int));
        p->hash = ms_calloc((size_t)num_blocks, sizeof(uint64_t));
        p->hashed = ms_calloc((size_t)num_blocks, sizeof(bool));
        p->prev = ms_calloc((size_t)num_blocks, sizeof(int));
        p->next = ms_calloc((size_t)num_blocks, sizeof(int));
        p->table = ms_calloc(slots, sizeof(int));
    }
    if (!p || !p->ref_count || !p->hash || !p->hashed || !p->prev || !p->next || !p->table) {
        kv_pool_destroy(p);
        ms_err_set(err, MS_ERR_NOMEM, "out of memory for %d KV blocks", num_blocks);
        return NULL;
    }
    p->table_mask = slots - 1;
    memset(p->table, 0xff, slots * sizeof(int));
    p->free_head = p->free_tail = -1;
    for (int b = 0; b < num_blocks; b++) queue_push_tail(p, b);
    return p;
}

void kv_pool_destroy(struct kv_pool *p)
{
    if (!p) return;
    free(p->ref_count);
    free(p->hash);
    free(p->hashed);
    free(p->prev);
    free(p->next);
    free(p->table);
    free(p);
}

int kv_pool_num_blocks(const struct kv_pool *p)
{
    return p->num_blocks;
}

int kv_pool_num_free(const struct kv_pool *p)
{
    return p->num_free;
}

int kv_pool_alloc(struct kv_pool *p)
{
    int b = p->free_head;
    if (b < 0) return -1;
    queue_remove(p, b);
    if (p->hashed[b]) {
        table_remove(p, b);
        p->hashed[b] = false;
    }
    p->ref_count[b] = 1;
    return b;
}

int kv_pool_lookup(const struct kv_pool *p, uint64_t hash)
{
    for (uint32_t i = slot_of(p, hash); p->table[i] >= 0; i = (i + 1) & p->table_mask)
        if (p->hash[p->table[i]] == hash) return p->table[i];
    return -1;
}

void kv_pool_ref(struct kv_pool *p, int block)
{
    if (p->ref_count[block]++ == 0) queue_remove(p, block);
}

void kv_pool_unref(struct kv_pool *p, int block)
{
    MS_ASSERT(p->ref_count[block] > 0);
    if (--p->ref_count[block] == 0) queue_push_tail(p, block);
}

void kv_pool_set_hash(struct kv_pool *p, int block, uint64_t hash)
{
    MS_ASSERT(p->ref_count[block] > 0);
    if (p->hashed[block] || kv_pool_lookup(p, hash) >= 0) return;
    p->hash[block] = hash;
    p->hashed[block] = true;
    uint32_t i = slot_of(p, hash);
    while (p->table[i] >= 0) i = (i + 1) & p->table_mask;
    p->table[i] = block;
}

int kv_pool_ref_count(const struct kv_pool *p, int block)
{
    return p->ref_count[block];
}

void kv_pool_count_query(struct kv_pool *p, int queried, int hit)
{
    p->stats.cache_queries += (uint64_t)queried;
    p->stats.cache_hits += (uint64_t)hit;
}

struct kv_pool_stats kv_pool_get_stats(const struct kv_pool *p)
{
    return p->stats;
}
