#include "engine/kernels/kquants_low.h"

#include <math.h>
#include <string.h>

#include "engine/kernels/fp16.h"
#include "engine/kernels/kq_fit.h"

/* The 2-bit field of value i (0..255) in qs: bits 2 ((i % 128) / 32) of qs[32 (i / 128) + i % 32]. */
static int low2(const uint8_t *qs, int i)
{
    return (qs[32 * (i / 128) + i % 32] >> (2 * ((i % 128) / 32))) & 3;
}

static void pack_low2(const uint8_t *L, uint8_t *qs)
{
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *p = L + 128 * h + l;
            qs[32 * h + l] = (uint8_t)(p[0] | p[32] << 2 | p[64] << 4 | p[96] << 6);
        }
}

/* ---- Q2_K ---- */

void fmt_q2_k_dequant_row(const void *blocks, float *out, int64_t n)
{
    const struct q2_k_block *b = blocks;
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        float d = f16_to_f32(b->d), dmin = f16_to_f32(b->dmin);
        for (int j = 0; j < 16; j++) {
            float dl = d * (b->scales[j] & 0xF), ml = dmin * (b->scales[j] >> 4);
            for (int l = 0; l < 16; l++) *out++ = dl * low2(b->qs, 16 * j + l) - ml;
        }
    }
}

/* quantize_row_q2_K_ref: a min-and-scale fit per sub-block of 16 weighted by |x| (absolute
 * errors), 4-bit scales and mins relative to their maxima, then every value again. */
static void q2_k_quantize_block(const float *x, struct q2_k_block *y)
{
    uint8_t L[QK_K];
    float scales[16], mins[16], w[16], max_scale = 0, max_min = 0;
    for (int j = 0; j < 16; j++) {
        for (int l = 0; l < 16; l++) w[l] = fabsf(x[16 * j + l]);
        scales[j] = kq_fit_scale_min(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], -0.5f, 0.1f, 15, true);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    memset(y, 0, sizeof *y);
    if (max_scale > 0) {
        float iscale = 15.0f / max_scale;
        for (int j = 0; j < 16; j++) y->scales[j] = (uint8_t)kq_nearest(iscale * scales[j]);
        y->d = f32_to_f16(max_scale / 15.0f);
    }
    if (max_min > 0) {
        float iscale = 15.0f / max_min;
        for (int j = 0; j < 16; j++) y->scales[j] |= (uint8_t)((unsigned)kq_nearest(iscale * mins[j]) << 4);
        y->dmin = f32_to_f16(max_min / 15.0f);
    }
    float d = f16_to_f32(y->d), dmin = f16_to_f32(y->dmin);
    for (int j = 0; j < 16; j++) {
        float dj = d * (y->scales[j] & 0xF);
        if (!dj) continue;
        float mj = dmin * (y->scales[j] >> 4);
        for (int l = 0; l < 16; l++) L[16 * j + l] = (uint8_t)kq_clampi(kq_nearest((x[16 * j + l] + mj) / dj), 0, 3);
    }
    pack_low2(L, y->qs);
}

void fmt_q2_k_quantize_row(const float *x, void *blocks, int64_t n)
{
    struct q2_k_block *b = blocks;
    for (int64_t i = 0; i < n / QK_K; i++) q2_k_quantize_block(x + i * QK_K, b + i);
}

/* ---- Q3_K ---- */

static int q3_k_value(const struct q3_k_block *b, int i) /* -4..3 */
{
    return low2(b->qs, i) - ((b->hmask[i % 32] >> (i / 32)) & 1 ? 0 : 4);
}

void fmt_q3_k_dequant_row(const void *blocks, float *out, int64_t n)
{
    const struct q3_k_block *b = blocks;
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        int8_t sc[16];
        kq_q3_k_scales(b->scales, sc);
        float d = f16_to_f32(b->d);
        for (int j = 0; j < 16; j++) {
            float dl = d * sc[j];
            for (int l = 0; l < 16; l++) *out++ = dl * q3_k_value(b, 16 * j + l);
        }
    }
}

/* quantize_row_q3_K_ref: a symmetric fit per sub-block of 16 (kq_fit_q3), 6-bit scales
 * relative to the largest, then every value again against the scales as stored. */
static void q3_k_quantize_block(const float *x, struct q3_k_block *y)
{
    uint8_t L[QK_K];
    float scales[16], max_scale = 0, amax = 0;
    for (int j = 0; j < 16; j++) {
        scales[j] = kq_fit_q3(16, 4, x + 16 * j, L + 16 * j);
        if (fabsf(scales[j]) > amax) {
            amax = fabsf(scales[j]);
            max_scale = scales[j];
        }
    }
    memset(y, 0, sizeof *y);
    if (max_scale) {
        float iscale = -32.0f / max_scale;
        for (int j = 0; j < 16; j++) {
            int l = kq_clampi(kq_nearest(iscale * scales[j]), -32, 31) + 32;
            y->scales[j % 8] |= (uint8_t)((l & 0xF) << (4 * (j / 8)));
            y->scales[8 + j % 4] |= (uint8_t)((l >> 4) << (2 * (j / 4)));
        }
        y->d = f32_to_f16(1 / iscale);
    }
    int8_t sc[16];
    kq_q3_k_scales(y->scales, sc);
    float d = f16_to_f32(y->d);
    for (int j = 0; j < 16; j++) {
        float dj = d * sc[j];
        if (!dj) continue;
        for (int l = 0; l < 16; l++) L[16 * j + l] = (uint8_t)(kq_clampi(kq_nearest(x[16 * j + l] / dj), -4, 3) + 4);
    }
    for (int i = 0; i < QK_K; i++)
        if (L[i] > 3) {
            y->hmask[i % 32] |= (uint8_t)(1 << (i / 32));
            L[i] -= 4;
        }
    pack_low2(L, y->qs);
}

void fmt_q3_k_quantize_row(const float *x, void *blocks, int64_t n)
{
    struct q3_k_block *b = blocks;
    for (int64_t i = 0; i < n / QK_K; i++) q3_k_quantize_block(x + i * QK_K, b + i);
}

/* ---- portable kernels: exact integer sums per super-block, then kquants.h's float step ---- */

static float q2_k_dot(const void *row, const struct q8_k_block *x, int nb)
{
    const struct q2_k_block *w = row;
    float acc = 0;
    for (int b = 0; b < nb; b++) {
        int32_t sumi = 0, summin = 0;
        for (int j = 0; j < 16; j++) {
            int32_t s = 0;
            for (int l = 0; l < 16; l++) s += low2(w[b].qs, 16 * j + l) * x[b].qs[16 * j + l];
            sumi += (w[b].scales[j] & 0xF) * s;
            summin += (w[b].scales[j] >> 4) * x[b].bsums[j];
        }
        acc = kq_q4_k_accum(acc, f16_to_f32(w[b].d), f16_to_f32(w[b].dmin), x[b].d, sumi, summin);
    }
    return acc;
}

static float q3_k_dot(const void *row, const struct q8_k_block *x, int nb)
{
    const struct q3_k_block *w = row;
    float acc = 0;
    for (int b = 0; b < nb; b++) {
        int8_t sc[16];
        kq_q3_k_scales(w[b].scales, sc);
        int32_t sumi = 0;
        for (int j = 0; j < 16; j++) {
            int32_t s = 0;
            for (int l = 0; l < 16; l++) s += q3_k_value(&w[b], 16 * j + l) * x[b].qs[16 * j + l];
            sumi += sc[j] * s;
        }
        acc = kq_q6_k_accum(acc, f16_to_f32(w[b].d), x[b].d, sumi);
    }
    return acc;
}

void fmt_q2_k_range_portable(const struct kern_range *g) { kq_range_portable(g, q2_k_dot); }

void fmt_q3_k_range_portable(const struct kern_range *g) { kq_range_portable(g, q3_k_dot); }
