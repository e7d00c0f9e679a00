/* Paged K/V storage: for each layer, one pool of blocks of block_size token slots; a slot is
 * block * block_size + offset. Which blocks a sequence owns is the block pool's business
 * (kv_block_pool.h); this module only stores and reads rows. Storage dtype F32, BF16 or F16
 * (the 16-bit forms halve the memory at a small accuracy cost, measured in docs/BENCHMARKS.md).
 *
 * Written and read by the engine thread's forward pass (rows are split across compute threads;
 * each slot is written by one thread per step). */
#ifndef MS_ENGINE_KV_CACHE_H
#define MS_ENGINE_KV_CACHE_H

#include <stddef.h>

#include "common/ms_common.h"
#include "engine/kernels/tensor.h"

struct kv_cache {
    enum tensor_dtype dtype;
    int num_layers, num_blocks, block_size;
    int kv_heads, head_dim;
    size_t row_elems;  /* kv_heads * head_dim: one token's K (or V) in one layer */
    void **k, **v;     /* [num_layers] -> [num_blocks * block_size, row_elems] */
};

/* Bytes one token slot costs over all layers (K and V). */
size_t kv_cache_bytes_per_token(int num_layers, int kv_heads, int head_dim, enum tensor_dtype dtype);

struct kv_cache *kv_cache_create(int num_layers, int num_blocks, int block_size, int kv_heads,
                                 int head_dim, enum tensor_dtype dtype, struct ms_err *err);
void kv_cache_destroy(struct kv_cache *kv);

/* Stores one token's K and V rows (float32, row_elems each) at `slot` of `layer`. */
void kv_cache_write(struct kv_cache *kv, int layer, int slot, const float *k, const float *v);

/* q . K[slot][head] for one head. */
float kv_cache_dot_k(const struct kv_cache *kv, int layer, int slot, int head, const float *q);

/* out += w * V[slot][head] for one head. */
void kv_cache_acc_v(const struct kv_cache *kv, int layer, int slot, int head, float w, float *out);

/* Parses "f32", "bf16" or "f16"; MS_ERR_INVALID otherwise. */
int kv_cache_parse_dtype(const char *s, enum tensor_dtype *out);

#endif
