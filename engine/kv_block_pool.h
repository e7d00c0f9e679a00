/* The KV block manager: a fixed array of block ids with reference counts, an LRU queue of free
 * blocks, and the prefix-cache table mapping a full block's content hash to a block.
 *
 * A block is in exactly one of two states: in use (ref_count > 0) or free (ref_count == 0, in the
 * free queue). A free block may still hold cached content (it keeps its hash until it is handed
 * out again), so a later request with the same prefix can take it back instead of recomputing.
 * Free blocks are handed out from the head of the queue (least recently freed first).
 *
 * No allocation after kv_pool_create. Engine thread only. */
#ifndef MS_ENGINE_KV_BLOCK_POOL_H
#define MS_ENGINE_KV_BLOCK_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "common/ms_common.h"

struct kv_pool;

/* Content hash of a full block: chains the parent block's hash with the block's token ids, so
 * equal hashes mean equal prefixes (up to 64-bit collisions). Use KV_HASH_ROOT for block 0. */
#define KV_HASH_ROOT 0x6d6f657365727665ull
uint64_t kv_block_hash(uint64_t parent_hash, const int32_t *tokens, int n);

struct kv_pool *kv_pool_create(int num_blocks, struct ms_err *err);
void kv_pool_destroy(struct kv_pool *p);

int kv_pool_num_blocks(const struct kv_pool *p);
int kv_pool_num_free(const struct kv_pool *p); /* free blocks, cached or not */

/* Takes a free block (evicting its cached content, if any) with ref_count 1; -1 if none. */
int kv_pool_alloc(struct kv_pool *p);

/* The cached block holding content `hash`, or -1. */
int kv_pool_lookup(const struct kv_pool *p, uint64_t hash);

/* Takes one more reference to a block found by kv_pool_lookup; a free block leaves the free queue. */
void kv_pool_ref(struct kv_pool *p, int block);

/* Drops a reference; at zero the block joins the tail of the free queue, keeping its content. */
void kv_pool_unref(struct kv_pool *p, int block);

/* Records that `block` (in use, full) holds content `hash`. If another block already holds that
 * content the table keeps the first and this block stays unhashed. */
void kv_pool_set_hash(struct kv_pool *p, int block, uint64_t hash);

int kv_pool_ref_count(const struct kv_pool *p, int block);

/* Counters for metrics: prefix-cache lookups and hits, in blocks. */
struct kv_pool_stats {
    uint64_t cache_queries, cache_hits;
};
void kv_pool_count_query(struct kv_pool *p, int queried, int hit);
struct kv_pool_stats kv_pool_get_stats(const struct kv_pool *p);

#endif
