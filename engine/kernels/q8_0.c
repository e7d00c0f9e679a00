#include "engine/kernels/q8_0.h"

#include <math.h>

#include "engine/kernels/fp16.h"

/* Quantizes one block of Q8_0_BLOCK values to int8 with a symmetric scale; returns the scale. */
static float quant_block_portable(const float *xb, int8_t *qs)
{
    float amax = 0;
    for (int i = 0; i < Q8_0_BLOCK; i++) amax = fmaxf(amax, fabsf(xb[i]));
    float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
    for (int i = 0; i < Q8_0_BLOCK; i++) qs[i] = (int8_t)lrintf(xb[i] * id);
    return d;
}

void q8_0_quantize_row(const float *x, void *out, int64_t n)
{
    struct q8_0_block *b = out;
    for (int64_t i = 0; i < n / Q8_0_BLOCK; i++)
        b[i].d = f32_to_f16(quant_block_portable(x + (size_t)i * Q8_0_BLOCK, b[i].qs));
}

/* One block's 32 values of a plain float row as float32. */
static void load_block(const void *src, enum tensor_dtype dt, int64_t b, float *out)
{
    const uint16_t *h = (const uint16_t *)src + (size_t)b * Q8_0_BLOCK;
    for (int i = 0; i < Q8_0_BLOCK; i++) {
        switch (dt) {
        case TENSOR_DTYPE_BF16: out[i] = bf16_to_f32(h[i]); break;
        case TENSOR_DTYPE_F16: out[i] = f16_to_f32(h[i]); break;
        default: out[i] = ((const float *)src)[(size_t)b * Q8_0_BLOCK + i]; break;
        }
    }
}

void q8_0_quantize_from(enum kern_isa isa, const void *src, enum tensor_dtype src_dtype, void *out, int64_t n)
{
    if (isa >= KERN_ISA_AVX512) {
        q8_0_quantize_from_avx512(src, src_dtype, out, (int)n);
        return;
    }
    struct q8_0_block *b = out;
    float buf[Q8_0_BLOCK];
    for (int64_t i = 0; i < n / Q8_0_BLOCK; i++) {
        load_block(src, src_dtype, i, buf);
        b[i].d = f32_to_f16(quant_block_portable(buf, b[i].qs));
    }
}

void q8_0_quantize_act(enum kern_isa isa, const float *x, void *out, int n)
{
    struct q8_act_block *b = out;
    if (isa >= KERN_ISA_AVX512) {
        q8_0_quantize_act_avx512(x, b, n);
        return;
    }
    for (int i = 0; i < n / Q8_0_BLOCK; i++) b[i].d = quant_block_portable(x + (size_t)i * Q8_0_BLOCK, b[i].qs);
}

void q8_0_dequant_row(const void *blocks, float *out, int64_t n)
{
    const struct q8_0_block *b = blocks;
    for (int64_t i = 0; i < n; i++) out[i] = f16_to_f32(b[i / Q8_0_BLOCK].d) * b[i / Q8_0_BLOCK].qs[i % Q8_0_BLOCK];
}

float q8_0_dot(const struct q8_0_block *w, const struct q8_act_block *x, int n)
{
    float sum = 0;
    for (int b = 0; b < n / Q8_0_BLOCK; b++) {
        int32_t s = 0;
        for (int i = 0; i < Q8_0_BLOCK; i++) s += (int32_t)w[b].qs[i] * x[b].qs[i];
        sum += (float)s * (f16_to_f32(w[b].d) * x[b].d);
    }
    return sum;
}

void q8_0_range_portable(const struct kern_range *g)
{
    for (int r = g->r0; r < g->r1; r++) {
        const struct q8_0_block *row = (const struct q8_0_block *)(g->w + (size_t)r * g->w_stride);
        for (int t = g->t0; t < g->t1; t++)
            g->y[(size_t)t * g->ldy + r] =
                q8_0_dot(row, (const struct q8_act_block *)((const char *)g->xa + (size_t)t * g->xa_stride), g->in);
    }
}
