#include "engine/kernels/iq4_xs.h"

#include <math.h>
#include <string.h>

#include "engine/kernels/fp16.h"
#include "engine/kernels/kq_fit.h"

#define GROUP_MAX_EPS 1e-15f
#define NTRY 7

void fmt_iq4_xs_dequant_row(const void *blocks, float *out, int64_t n)
{
    const struct iq4_xs_block *b = blocks;
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        float d = f16_to_f32(b->d);
        for (int j = 0; j < 8; j++) {
            float dl = d * iq4_xs_scale(b, j);
            const uint8_t *q = b->qs + 16 * j;
            for (int l = 0; l < 16; l++) out[l] = dl * iq4_xs_values[q[l] & 0xF];
            for (int l = 0; l < 16; l++) out[16 + l] = dl * iq4_xs_values[q[l] >> 4];
            out += 32;
        }
    }
}

/* ggml's best_index_int8: the nearest codebook entry by bisection, ties to the upper one. */
static int best_index(float x)
{
    const int8_t *v = iq4_xs_values;
    if (x <= v[0]) return 0;
    if (x >= v[15]) return 15;
    int ml = 0, mu = 15;
    while (mu - ml > 1) {
        int mav = (ml + mu) / 2;
        if (x < v[mav])
            mu = mav;
        else
            ml = mav;
    }
    return x - v[mu - 1] < v[mu] - x ? mu - 1 : mu;
}

/* sum w q x and sum w q^2 of the codebook fit of xb at inverse scale id, weights w */
static void fit_sums(const float *xb, const float *w, float id, float *sqx, float *sq2)
{
    float a = 0, b = 0;
    for (int j = 0; j < 32; j++) {
        float q = iq4_xs_values[best_index(id * xb[j])];
        a += w[j] * q * xb[j];
        b += w[j] * q * q;
    }
    *sqx = a;
    *sq2 = b;
}

/* The scale of one sub-block: ggml's weighted least-squares search over 2 NTRY + 1 inverse
 * scales around the max-|x| one (quantize_row_iq4_nl_impl, weights x^2); 0 for a zero group. */
static float fit_sub_block(const float *xb)
{
    float w[32], amax = 0, max = 0;
    for (int j = 0; j < 32; j++) {
        w[j] = xb[j] * xb[j];
        if (fabsf(xb[j]) > amax) {
            amax = fabsf(xb[j]);
            max = xb[j];
        }
    }
    if (amax < GROUP_MAX_EPS) return 0;
    float d = -max / iq4_xs_values[0], sqx, sq2;
    fit_sums(xb, w, 1 / d, &sqx, &sq2);
    d = sqx / sq2;
    float best = d * sqx;
    for (int itry = -NTRY; itry <= NTRY; itry++) {
        fit_sums(xb, w, (itry + iq4_xs_values[0]) / max, &sqx, &sq2);
        if (sq2 > 0 && sqx * sqx > best * sq2) {
            d = sqx / sq2;
            best = d * sqx;
        }
    }
    return d;
}

static void iq4_xs_quantize_block(const float *x, struct iq4_xs_block *y)
{
    float scales[8], max_scale = 0, amax_scale = 0;
    for (int j = 0; j < 8; j++) {
        scales[j] = fit_sub_block(x + 32 * j);
        if (fabsf(scales[j]) > amax_scale) {
            amax_scale = fabsf(scales[j]);
            max_scale = scales[j];
        }
    }
    memset(y, 0, sizeof *y);
    /* the 6-bit scales relative to the float d (not its f16 rounding), as ggml does */
    float d = -max_scale / 32, id = d ? 1 / d : 0;
    y->d = f32_to_f16(d);
    uint8_t L[32];
    for (int j = 0; j < 8; j++) {
        int l = kq_clampi(kq_nearest(id * scales[j]), -32, 31);
        float dl = d * l, idl = dl ? 1 / dl : 0;
        for (int k = 0; k < 32; k++) L[k] = (uint8_t)best_index(idl * x[32 * j + k]);
        for (int k = 0; k < 16; k++) y->qs[16 * j + k] = (uint8_t)(L[k] | L[16 + k] << 4);
        l += 32;
        y->scales_l[j / 2] |= (uint8_t)((l & 0xF) << (4 * (j % 2)));
        y->scales_h |= (uint16_t)((l >> 4) << (2 * j));
    }
}

void fmt_iq4_xs_quantize_row(const float *x, void *blocks, int64_t n)
{
    struct iq4_xs_block *b = blocks;
    for (int64_t i = 0; i < n / QK_K; i++) iq4_xs_quantize_block(x + i * QK_K, b + i);
}

static float iq4_xs_dot(const void *row, const struct q8_k_block *x, int nb)
{
    const struct iq4_xs_block *w = row;
    float acc = 0;
    for (int b = 0; b < nb; b++) {
        int32_t sumi = 0;
        for (int j = 0; j < 8; j++) {
            const uint8_t *q = w[b].qs + 16 * j;
            const int8_t *xq = x[b].qs + 32 * j;
            int32_t s = 0;
            for (int l = 0; l < 16; l++) s += iq4_xs_values[q[l] & 0xF] * xq[l] + iq4_xs_values[q[l] >> 4] * xq[16 + l];
            sumi += iq4_xs_scale(&w[b], j) * s;
        }
        acc = kq_q6_k_accum(acc, f16_to_f32(w[b].d), x[b].d, sumi);
    }
    return acc;
}

void fmt_iq4_xs_range_portable(const struct kern_range *g) { kq_range_portable(g, iq4_xs_dot); }
