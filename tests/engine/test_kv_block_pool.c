/* The KV block pool: reference counts, LRU order of free blocks, prefix-cache table (including
 * deletion in the middle of a probe chain), and the hash chaining. */
#include <stdlib.h>

#include "engine/kv_block_pool.h"
#include "tests/testhelp.h"

static void test_alloc_ref_free(void)
{
    struct ms_err err;
    struct kv_pool *p = kv_pool_create(4, &err);
    test_cond("all free at start", kv_pool_num_free(p) == 4);
    int a = kv_pool_alloc(p), b = kv_pool_alloc(p), c = kv_pool_alloc(p), d = kv_pool_alloc(p);
    test_cond("blocks handed out in order", a == 0 && b == 1 && c == 2 && d == 3);
    test_cond("pool exhausted", kv_pool_alloc(p) == -1 && kv_pool_num_free(p) == 0);
    kv_pool_ref(p, b);
    kv_pool_unref(p, b);
    test_cond("shared block still held", kv_pool_ref_count(p, b) == 1 && kv_pool_num_free(p) == 0);
    kv_pool_unref(p, c);
    kv_pool_unref(p, a);
    test_cond("freed blocks return", kv_pool_num_free(p) == 2);
    test_cond("least recently freed first", kv_pool_alloc(p) == c && kv_pool_alloc(p) == a);
    kv_pool_destroy(p);
}

static void test_prefix_cache(void)
{
    struct ms_err err;
    struct kv_pool *p = kv_pool_create(3, &err);
    int32_t t1[4] = {1, 2, 3, 4}, t2[4] = {5, 6, 7, 8};
    uint64_t h1 = kv_block_hash(KV_HASH_ROOT, t1, 4), h2 = kv_block_hash(h1, t2, 4);
    test_cond("chained hash depends on the parent", h2 != kv_block_hash(KV_HASH_ROOT, t2, 4));
    int a = kv_pool_alloc(p), b = kv_pool_alloc(p);
    kv_pool_set_hash(p, a, h1);
    kv_pool_set_hash(p, b, h2);
    test_cond("lookup finds cached blocks", kv_pool_lookup(p, h1) == a && kv_pool_lookup(p, h2) == b);
    kv_pool_unref(p, b);
    kv_pool_unref(p, a);
    test_cond("freed blocks keep their content", kv_pool_lookup(p, h1) == a && kv_pool_num_free(p) == 3);
    kv_pool_ref(p, a); /* a cache hit takes the block back out of the free queue */
    test_cond("hit block leaves the free queue", kv_pool_num_free(p) == 2 && kv_pool_ref_count(p, a) == 1);
    int c = kv_pool_alloc(p); /* the never-used block 2 comes first, then b (evicted) */
    int d = kv_pool_alloc(p);
    test_cond("eviction order: unused, then least recently freed", c == 2 && d == b);
    test_cond("evicted content forgotten", kv_pool_lookup(p, h2) == -1 && kv_pool_lookup(p, h1) == a);
    kv_pool_set_hash(p, d, h1);
    test_cond("a duplicate hash keeps the first block", kv_pool_lookup(p, h1) == a);
    kv_pool_destroy(p);
}

/* Many entries whose hashes collide on the same slots, removed in the middle of probe chains. */
static void test_table_deletion(void)
{
    struct ms_err err;
    enum { N = 64 };
    struct kv_pool *p = kv_pool_create(N, &err);
    int blocks[N];
    uint64_t hashes[N];
    for (int i = 0; i < N; i++) {
        blocks[i] = kv_pool_alloc(p);
        hashes[i] = ((uint64_t)i << 40) | (uint64_t)(i % 3); /* few home slots: long chains */
        kv_pool_set_hash(p, blocks[i], hashes[i]);
    }
    for (int i = 0; i < N; i += 2) kv_pool_unref(p, blocks[i]);
    for (int i = 0; i < N / 2; i++) kv_pool_alloc(p); /* evicts every even block's content */
    bool ok = true;
    for (int i = 0; i < N; i++) ok &= kv_pool_lookup(p, hashes[i]) == (i % 2 ? blocks[i] : -1);
    test_cond("lookups stay right after deletions inside probe chains", ok);
    kv_pool_destroy(p);
}

static void test_counters(void)
{
    struct ms_err err;
    struct kv_pool *p = kv_pool_create(2, &err);
    kv_pool_count_query(p, 32, 16);
    kv_pool_count_query(p, 16, 0);
    struct kv_pool_stats s = kv_pool_get_stats(p);
    test_cond("query and hit counters add up", s.cache_queries == 48 && s.cache_hits == 16);
    kv_pool_destroy(p);
}

int main(void)
{
    test_alloc_ref_free();
    test_prefix_cache();
    test_table_deletion();
    test_counters();
    test_report();
}
