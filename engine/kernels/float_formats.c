#include "engine/kernels/float_formats.h"

#include <string.h>

#include "engine/kernels/fp16.h"
#include "engine/kernels/ops.h"

void float_f32_dequant_row(const void *src, float *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void float_f16_dequant_row(const void *src, float *dst, int64_t n)
{
    const uint16_t *h = src;
    for (int64_t i = 0; i < n; i++) dst[i] = f16_to_f32(h[i]);
}

void float_bf16_dequant_row(const void *src, float *dst, int64_t n)
{
    const uint16_t *h = src;
    for (int64_t i = 0; i < n; i++) dst[i] = bf16_to_f32(h[i]);
}

void float_f32_quantize_row(const float *src, void *dst, int64_t n)
{
    memcpy(dst, src, (size_t)n * sizeof(float));
}

void float_f16_quantize_row(const float *src, void *dst, int64_t n)
{
    uint16_t *h = dst;
    for (int64_t i = 0; i < n; i++) h[i] = f32_to_f16(src[i]);
}

void float_bf16_quantize_row(const float *src, void *dst, int64_t n)
{
    uint16_t *h = dst;
    for (int64_t i = 0; i < n; i++) h[i] = f32_to_bf16(src[i]);
}

void float_round_bf16(const float *x, uint16_t *xb, int n)
{
    float_bf16_quantize_row(x, xb, n);
}

size_t float_portable_scratch_bytes(int in)
{
    return (size_t)in * sizeof(float);
}

static void range_portable(const struct kern_range *g, void (*dequant)(const void *, float *, int64_t))
{
    float *row = g->scratch;
    for (int r = g->r0; r < g->r1; r++) {
        dequant(g->w + (size_t)r * g->w_stride, row, g->in);
        for (int t = g->t0; t < g->t1; t++) g->y[(size_t)t * g->ldy + r] = kern_dot(row, g->x + (size_t)t * g->in, g->in);
    }
}

void float_range_portable_f32(const struct kern_range *g)
{
    range_portable(g, float_f32_dequant_row);
}

void float_range_portable_f16(const struct kern_range *g)
{
    range_portable(g, float_f16_dequant_row);
}

void float_range_portable_bf16(const struct kern_range *g)
{
    range_portable(g, float_bf16_dequant_row);
}
