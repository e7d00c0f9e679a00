#include "engine/kernels/kquants.h"

#include <math.h>
#include <string.h>

#include "engine/kernels/fp16.h"
#include "engine/kernels/kq_fit.h"


/* ---- Q4_K ---- */

void fmt_q4_k_dequant_row(const void *blocks, float *out, int64_t n)
{
    const struct q4_k_block *b = blocks;
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        uint8_t sm[16];
        kq_q4_k_scales(b->scales, sm);
        float d = f16_to_f32(b->d), dmin = f16_to_f32(b->dmin);
        for (int c = 0; c < 4; c++) { /* chunk c: sub-blocks 2c (low nibbles) and 2c + 1 (high) */
            float d1 = d * sm[2 * c], m1 = dmin * sm[8 + 2 * c];
            float d2 = d * sm[2 * c + 1], m2 = dmin * sm[8 + 2 * c + 1];
            const uint8_t *q = b->qs + 32 * c;
            for (int l = 0; l < 32; l++) *out++ = d1 * (q[l] & 0xF) - m1;
            for (int l = 0; l < 32; l++) *out++ = d2 * (q[l] >> 4) - m2;
        }
    }
}

static void q4_k_pack_scales(uint8_t out[12], const uint8_t ls[8], const uint8_t lm[8])
{
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            out[j] = ls[j];
            out[j + 4] = lm[j];
        } else {
            out[j + 4] = (uint8_t)((ls[j] & 0xF) | (lm[j] & 0xF) << 4);
            out[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            out[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

/* The sub-block fits of Q4_K and Q5_K (ggml's quantize_row_q{4,5}_K_ref): weights av + |x|
 * per sub-block of 32 (av the sub-block's RMS), values 0..nmax; the largest scale and min. */
static void fit_sub_blocks(const float *x, int nmax, float rmin, int nstep, uint8_t *L, float *scales,
                           float *mins, float *max_scale, float *max_min)
{
    float w[32];
    *max_scale = *max_min = 0;
    for (int j = 0; j < 8; j++) {
        const float *xj = x + 32 * j;
        float s2 = 0;
        for (int l = 0; l < 32; l++) s2 += xj[l] * xj[l];
        float av = sqrtf(s2 / 32);
        for (int l = 0; l < 32; l++) w[l] = av + fabsf(xj[l]);
        scales[j] = kq_fit_scale_min(32, nmax, xj, w, L + 32 * j, &mins[j], rmin, 0.1f, nstep, false);
        if (scales[j] > *max_scale) *max_scale = scales[j];
        if (mins[j] > *max_min) *max_min = mins[j];
    }
}

/* Every value again against the 6-bit scales and mins as stored (d, dmin already f16-rounded). */
static void requant_sub_blocks(const float *x, float d, float dmin, const uint8_t *ls, const uint8_t *lm, int nmax,
                               uint8_t *L)
{
    for (int j = 0; j < 8; j++) {
        float dj = d * ls[j];
        if (!dj) continue;
        float mj = dmin * lm[j];
        for (int l = 0; l < 32; l++) L[32 * j + l] = (uint8_t)kq_clampi(kq_nearest((x[32 * j + l] + mj) / dj), 0, nmax);
    }
}

static void q4_k_quantize_block(const float *x, struct q4_k_block *y)
{
    uint8_t L[QK_K];
    float scales[8], mins[8], max_scale, max_min;
    fit_sub_blocks(x, 15, -1.0f, 20, L, scales, mins, &max_scale, &max_min);
    float inv_s = max_scale > 0 ? 63.0f / max_scale : 0, inv_m = max_min > 0 ? 63.0f / max_min : 0;
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        ls[j] = (uint8_t)kq_clampi(kq_nearest(inv_s * scales[j]), 0, 63);
        lm[j] = (uint8_t)kq_clampi(kq_nearest(inv_m * mins[j]), 0, 63);
    }
    memset(y->scales, 0, sizeof y->scales);
    q4_k_pack_scales(y->scales, ls, lm);
    y->d = f32_to_f16(max_scale / 63.0f);
    y->dmin = f32_to_f16(max_min / 63.0f);
    /* requantize against the scales as stored */
    requant_sub_blocks(x, f16_to_f32(y->d), f16_to_f32(y->dmin), ls, lm, 15, L);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) y->qs[32 * c + l] = (uint8_t)(L[64 * c + l] | L[64 * c + 32 + l] << 4);
}

void fmt_q4_k_quantize_row(const float *x, void *blocks, int64_t n)
{
    struct q4_k_block *b = blocks;
    for (int64_t i = 0; i < n / QK_K; i++) q4_k_quantize_block(x + i * QK_K, b + i);
}

/* ---- Q5_K: Q4_K's scales with a 5th bit per value in qh (bit j of qh[l]: value 32 j + l) ---- */

void fmt_q5_k_dequant_row(const void *blocks, float *out, int64_t n)
{
    const struct q5_k_block *b = blocks;
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        uint8_t sm[16];
        kq_q4_k_scales(b->scales, sm);
        float d = f16_to_f32(b->d), dmin = f16_to_f32(b->dmin);
        for (int c = 0; c < 4; c++) {
            float d1 = d * sm[2 * c], m1 = dmin * sm[8 + 2 * c];
            float d2 = d * sm[2 * c + 1], m2 = dmin * sm[8 + 2 * c + 1];
            const uint8_t *q = b->qs + 32 * c;
            for (int l = 0; l < 32; l++) *out++ = d1 * ((q[l] & 0xF) + ((b->qh[l] >> (2 * c)) & 1) * 16) - m1;
            for (int l = 0; l < 32; l++) *out++ = d2 * ((q[l] >> 4) + ((b->qh[l] >> (2 * c + 1)) & 1) * 16) - m2;
        }
    }
}

/* quantize_row_q5_K_ref: weights av + |x| per sub-block of 32, the 6-bit scales and mins of the
 * fits relative to their maxima, then every value again against the scales as stored. */
static void q5_k_quantize_block(const float *x, struct q5_k_block *y)
{
    uint8_t L[QK_K];
    float scales[8], mins[8], max_scale, max_min;
    fit_sub_blocks(x, 31, -0.5f, 15, L, scales, mins, &max_scale, &max_min);
    float inv_s = max_scale > 0 ? 63.0f / max_scale : 0, inv_m = max_min > 0 ? 63.0f / max_min : 0;
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; j++) { /* ggml stores nearest_int in a uint8_t, then MIN(63, .) */
        uint8_t a = (uint8_t)kq_nearest(inv_s * scales[j]), b = (uint8_t)kq_nearest(inv_m * mins[j]);
        ls[j] = a < 63 ? a : 63;
        lm[j] = b < 63 ? b : 63;
    }
    memset(y, 0, sizeof *y);
    q4_k_pack_scales(y->scales, ls, lm);
    y->d = f32_to_f16(max_scale / 63.0f);
    y->dmin = f32_to_f16(max_min / 63.0f);
    requant_sub_blocks(x, f16_to_f32(y->d), f16_to_f32(y->dmin), ls, lm, 31, L);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            int a = L[64 * c + l], b = L[64 * c + 32 + l];
            y->qs[32 * c + l] = (uint8_t)((a & 0xF) | (b & 0xF) << 4);
            y->qh[l] |= (uint8_t)((a >> 4) << (2 * c) | (b >> 4) << (2 * c + 1));
        }
}

void fmt_q5_k_quantize_row(const float *x, void *blocks, int64_t n)
{
    struct q5_k_block *b = blocks;
    for (int64_t i = 0; i < n / QK_K; i++) q5_k_quantize_block(x + i * QK_K, b + i);
}

/* ---- Q6_K ---- */

/* The 6-bit value i (0..255) of a Q6_K block, 0..63 (subtract 32 for the signed value). */
static int q6_k_value(const struct q6_k_block *b, int i)
{
    int h = i / 128, k = i % 128, l = k % 32, part = k / 32; /* part 0..3 of this half */
    const uint8_t *ql = b->ql + 64 * h, *qh = b->qh + 32 * h;
    int lo = part & 1 ? ql[32 + l] : ql[l];
    lo = part >= 2 ? lo >> 4 : lo & 0xF;
    return lo | ((qh[l] >> (2 * part)) & 3) << 4;
}

void fmt_q6_k_dequant_row(const void *blocks, float *out, int64_t n)
{
    const struct q6_k_block *b = blocks;
    for (int64_t i = 0; i < n / QK_K; i++, b++) {
        float d = f16_to_f32(b->d);
        for (int k = 0; k < QK_K; k++) *out++ = d * b->scales[k / 16] * (q6_k_value(b, k) - 32);
    }
}

/* Symmetric fit x[i] ~= scale * (L[i] - nmax), L in 0..2 nmax - 1, weights x^2, with ggml's
 * search over 18 nearby inverse scales (make_qx_quants, rmse_type 1); returns the scale. */
static float fit_scale_sym(int n, int nmax, const float *x, uint8_t *L)
{
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    if (amax < 1e-15f) {
        memset(L, 0, (size_t)n);
        return 0;
    }
    float iscale = -nmax / max, slx = 0, sl2 = 0;
    for (int i = 0; i < n; i++) {
        int l = kq_clampi(kq_nearest(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (uint8_t)(l + nmax);
        float w = x[i] * x[i];
        slx += w * x[i] * l;
        sl2 += w * l * l;
    }
    float scale = sl2 ? slx / sl2 : 0, best = scale * slx;
    for (int is = -9; is <= 9; is++) {
        if (!is) continue;
        iscale = -(nmax + 0.1f * is) / max;
        slx = sl2 = 0;
        for (int i = 0; i < n; i++) {
            int l = kq_clampi(kq_nearest(iscale * x[i]), -nmax, nmax - 1);
            float w = x[i] * x[i];
            slx += w * x[i] * l;
            sl2 += w * l * l;
        }
        if (sl2 > 0 && slx * slx > best * sl2) {
            for (int i = 0; i < n; i++) L[i] = (uint8_t)(nmax + kq_clampi(kq_nearest(iscale * x[i]), -nmax, nmax - 1));
            scale = slx / sl2;
            best = scale * slx;
        }
    }
    return scale;
}

static void q6_k_quantize_block(const float *x, struct q6_k_block *y)
{
    uint8_t L[QK_K];
    float scales[16], max_scale = 0, max_abs = 0;
    for (int j = 0; j < 16; j++) {
        scales[j] = fit_scale_sym(16, 32, x + 16 * j, L + 16 * j);
        if (fabsf(scales[j]) > max_abs) {
            max_abs = fabsf(scales[j]);
            max_scale = scales[j];
        }
    }
    memset(y, 0, sizeof *y);
    if (max_abs < 1e-15f) return;
    float iscale = -128.0f / max_scale;
    y->d = f32_to_f16(1 / iscale);
    for (int j = 0; j < 16; j++) y->scales[j] = (int8_t)(kq_nearest(iscale * scales[j]) < 127 ? kq_nearest(iscale * scales[j]) : 127);
    float d = f16_to_f32(y->d);
    for (int j = 0; j < 16; j++) {
        float dj = d * y->scales[j];
        if (!dj) continue;
        for (int l = 0; l < 16; l++) L[16 * j + l] = (uint8_t)(kq_clampi(kq_nearest(x[16 * j + l] / dj), -32, 31) + 32);
    }
    for (int h = 0; h < 2; h++) {
        const uint8_t *Lh = L + 128 * h;
        uint8_t *ql = y->ql + 64 * h, *qh = y->qh + 32 * h;
        for (int l = 0; l < 32; l++) {
            ql[l] = (uint8_t)((Lh[l] & 0xF) | (Lh[l + 64] & 0xF) << 4);
            ql[l + 32] = (uint8_t)((Lh[l + 32] & 0xF) | (Lh[l + 96] & 0xF) << 4);
            qh[l] = (uint8_t)(Lh[l] >> 4 | (Lh[l + 32] >> 4) << 2 | (Lh[l + 64] >> 4) << 4 | (Lh[l + 96] >> 4) << 6);
        }
    }
}

void fmt_q6_k_quantize_row(const float *x, void *blocks, int64_t n)
{
    struct q6_k_block *b = blocks;
    for (int64_t i = 0; i < n / QK_K; i++) q6_k_quantize_block(x + i * QK_K, b + i);
}

/* ---- Q8_K activations ---- */

void fmt_q8_k_quantize_act(const float *x, struct q8_k_block *out, int n)
{
    for (int b = 0; b < n / QK_K; b++, x += QK_K) {
        float amax = 0;
        for (int i = 0; i < QK_K; i++) amax = fmaxf(amax, fabsf(x[i]));
        float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
        out[b].d = d;
        for (int i = 0; i < QK_K; i++) out[b].qs[i] = (int8_t)kq_clampi(kq_nearest(x[i] * id), -127, 127);
        for (int k = 0; k < QK_K / 16; k++) {
            int s = 0;
            for (int i = 0; i < 16; i++) s += out[b].qs[16 * k + i];
            out[b].bsums[k] = (int16_t)s;
        }
    }
}

void fmt_q8_k_dequant_row(const struct q8_k_block *b, float *out, int n)
{
    for (int i = 0; i < n; i++) out[i] = b[i / QK_K].d * b[i / QK_K].qs[i % QK_K];
}

/* ---- portable kernels: exact integer sums per super-block, then the shared float step ---- */

static float q4_k_dot(const void *row, const struct q8_k_block *x, int nb)
{
    const struct q4_k_block *w = row;
    float acc = 0;
    for (int b = 0; b < nb; b++) {
        uint8_t sm[16];
        kq_q4_k_scales(w[b].scales, sm);
        int32_t sumi = 0, summin = 0;
        for (int c = 0; c < 4; c++) {
            const uint8_t *q = w[b].qs + 32 * c;
            const int8_t *xq = x[b].qs + 64 * c;
            int32_t s1 = 0, s2 = 0;
            for (int l = 0; l < 32; l++) {
                s1 += (q[l] & 0xF) * xq[l];
                s2 += (q[l] >> 4) * xq[32 + l];
            }
            sumi += sm[2 * c] * s1 + sm[2 * c + 1] * s2;
        }
        for (int j = 0; j < 8; j++) summin += sm[8 + j] * (x[b].bsums[2 * j] + x[b].bsums[2 * j + 1]);
        acc = kq_q4_k_accum(acc, f16_to_f32(w[b].d), f16_to_f32(w[b].dmin), x[b].d, sumi, summin);
    }
    return acc;
}

static float q5_k_dot(const void *row, const struct q8_k_block *x, int nb)
{
    const struct q5_k_block *w = row;
    float acc = 0;
    for (int b = 0; b < nb; b++) {
        uint8_t sm[16];
        kq_q4_k_scales(w[b].scales, sm);
        int32_t sumi = 0, summin = 0;
        for (int c = 0; c < 4; c++) {
            const uint8_t *q = w[b].qs + 32 * c, *qh = w[b].qh;
            const int8_t *xq = x[b].qs + 64 * c;
            int32_t s1 = 0, s2 = 0;
            for (int l = 0; l < 32; l++) {
                s1 += ((q[l] & 0xF) | ((qh[l] >> (2 * c)) & 1) << 4) * xq[l];
                s2 += ((q[l] >> 4) | ((qh[l] >> (2 * c + 1)) & 1) << 4) * xq[32 + l];
            }
            sumi += sm[2 * c] * s1 + sm[2 * c + 1] * s2;
        }
        for (int j = 0; j < 8; j++) summin += sm[8 + j] * (x[b].bsums[2 * j] + x[b].bsums[2 * j + 1]);
        acc = kq_q4_k_accum(acc, f16_to_f32(w[b].d), f16_to_f32(w[b].dmin), x[b].d, sumi, summin);
    }
    return acc;
}

static float q6_k_dot(const void *row, const struct q8_k_block *x, int nb)
{
    const struct q6_k_block *w = row;
    float acc = 0;
    for (int b = 0; b < nb; b++) {
        int32_t sumi = 0;
        for (int j = 0; j < 16; j++) {
            int32_t s = 0;
            for (int l = 0; l < 16; l++) s += (q6_k_value(&w[b], 16 * j + l) - 32) * x[b].qs[16 * j + l];
            sumi += w[b].scales[j] * s;
        }
        acc = kq_q6_k_accum(acc, f16_to_f32(w[b].d), x[b].d, sumi);
    }
    return acc;
}

void kq_range_portable(const struct kern_range *g, kq_row_dot_fn dot)
{
    int nb = g->in / QK_K;
    for (int r = g->r0; r < g->r1; r++)
        for (int t = g->t0; t < g->t1; t++) {
            const struct q8_k_block *x = (const struct q8_k_block *)((const char *)g->xa + (size_t)t * g->xa_stride);
            g->y[(size_t)t * g->ldy + r] = dot(g->w + (size_t)r * g->w_stride, x, nb);
        }
}

void fmt_q4_k_range_portable(const struct kern_range *g) { kq_range_portable(g, q4_k_dot); }

void fmt_q6_k_range_portable(const struct kern_range *g) { kq_range_portable(g, q6_k_dot); }

void fmt_q5_k_range_portable(const struct kern_range *g) { kq_range_portable(g, q5_k_dot); }
