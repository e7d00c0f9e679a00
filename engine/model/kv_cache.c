#include "engine/model/kv_cache.h"

#include <stdlib.h>
#include <string.h>

#include "engine/kernels/fp16.h"
#include "engine/kernels/ops.h"

size_t kv_cache_bytes_per_token(int num_layers, int kv_heads, int head_dim, enum tensor_dtype dtype)
{
    return 2u * (size_t)num_layers * (size_t)kv_heads * (size_t)head_dim * tensor_dtype_size(dtype);
}

struct kv_cache *kv_cache_create(int num_layers, int num_blocks, int block_size, int kv_heads,
                                 int head_dim, enum tensor_dtype dtype, struct ms_err *err)
{
    struct kv_cache *kv = calloc(1, sizeof *kv);
    if (!kv) goto nomem;
    *kv = (struct kv_cache){dtype, num_layers, num_blocks, block_size, kv_heads, head_dim,
                            (size_t)kv_heads * head_dim, NULL, NULL};
    kv->k = ms_calloc((size_t)num_layers, sizeof *kv->k);
    kv->v = ms_calloc((size_t)num_layers, sizeof *kv->v);
    if (!kv->k || !kv->v) goto nomem;
    size_t bytes = (size_t)num_blocks * block_size * kv->row_elems * tensor_dtype_size(dtype);
    for (int l = 0; l < num_layers; l++)
        if (!(kv->k[l] = malloc(bytes)) || !(kv->v[l] = malloc(bytes))) goto nomem;
    return kv;
nomem:
    kv_cache_destroy(kv);
    ms_err_set(err, MS_ERR_NOMEM, "out of memory for the KV cache (%d blocks of %d tokens)", num_blocks,
               block_size);
    return NULL;
}

void kv_cache_destroy(struct kv_cache *kv)
{
    if (!kv) return;
    for (int l = 0; l < kv->num_layers; l++) {
        if (kv->k) free(kv->k[l]);
        if (kv->v) free(kv->v[l]);
    }
    free(kv->k);
    free(kv->v);
    free(kv);
}

static void store_row(void *base, enum tensor_dtype dtype, size_t index, const float *src, size_t n)
{
    if (dtype == TENSOR_DTYPE_F32) {
        memcpy((float *)base + index * n, src, n * sizeof(float));
        return;
    }
    uint16_t *dst = (uint16_t *)base + index * n;
    for (size_t i = 0; i < n; i++) dst[i] = dtype == TENSOR_DTYPE_BF16 ? f32_to_bf16(src[i]) : f32_to_f16(src[i]);
}

void kv_cache_write(struct kv_cache *kv, int layer, int slot, const float *k, const float *v)
{
    store_row(kv->k[layer], kv->dtype, (size_t)slot, k, kv->row_elems);
    store_row(kv->v[layer], kv->dtype, (size_t)slot, v, kv->row_elems);
}

float kv_cache_dot_k(const struct kv_cache *kv, int layer, int slot, int head, const float *q)
{
    size_t off = (size_t)slot * kv->row_elems + (size_t)head * kv->head_dim;
    int hd = kv->head_dim;
    if (kv->dtype == TENSOR_DTYPE_F32) return kern_dot((const float *)kv->k[layer] + off, q, hd);
    const uint16_t *k = (const uint16_t *)kv->k[layer] + off;
    float s = 0;
    if (kv->dtype == TENSOR_DTYPE_BF16)
        for (int i = 0; i < hd; i++) s += bf16_to_f32(k[i]) * q[i];
    else
        for (int i = 0; i < hd; i++) s += f16_to_f32(k[i]) * q[i];
    return s;
}

void kv_cache_acc_v(const struct kv_cache *kv, int layer, int slot, int head, float w, float *out)
{
    size_t off = (size_t)slot * kv->row_elems + (size_t)head * kv->head_dim;
    int hd = kv->head_dim;
    if (kv->dtype == TENSOR_DTYPE_F32) {
        const float *v = (const float *)kv->v[layer] + off;
        for (int i = 0; i < hd; i++) out[i] += w * v[i];
        return;
    }
    const uint16_t *v = (const uint16_t *)kv->v[layer] + off;
    if (kv->dtype == TENSOR_DTYPE_BF16)
        for (int i = 0; i < hd; i++) out[i] += w * bf16_to_f32(v[i]);
    else
        for (int i = 0; i < hd; i++) out[i] += w * f16_to_f32(v[i]);
}

int kv_cache_parse_dtype(const char *s, enum tensor_dtype *out)
{
    if (!strcmp(s, "f32") || !strcmp(s, "float32")) *out = TENSOR_DTYPE_F32;
    else if (!strcmp(s, "bf16") || !strcmp(s, "bfloat16")) *out = TENSOR_DTYPE_BF16;
    else if (!strcmp(s, "f16") || !strcmp(s, "float16")) *out = TENSOR_DTYPE_F16;
    else return MS_ERR_INVALID;
    return MS_OK;
}
