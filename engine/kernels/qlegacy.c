#include "engine/kernels/qlegacy.h"

#include <math.h>
#include <stdbool.h>

#include "engine/kernels/fp16.h"
#include "engine/kernels/q8_0.h"

const int8_t ql_kvalues_iq4nl[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
const int8_t ql_kvalues_mxfp4[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

/* The formats of this family, for the shared portable code. */
enum ql_kind { QL_Q4_0, QL_Q4_1, QL_Q5_0, QL_Q5_1, QL_IQ4_NL, QL_MXFP4 };

/* element j (0..31) of a block's nibbles */
static int nibble(const uint8_t qs[16], int j)
{
    return j < 16 ? qs[j] & 0xF : qs[j - 16] >> 4;
}

static uint32_t qh_word(const uint8_t qh[4])
{
    return (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
}

/* Block b of a row as its 32 int8 weights w and scales (x = d * w + m). */
static void unpack(enum ql_kind k, const char *row, int64_t b, int8_t w[QL_BLOCK], float *d, float *m)
{
    *m = 0;
    switch (k) {
    case QL_Q4_0: {
        const struct ql_q4_0_block *q = (const struct ql_q4_0_block *)row + b;
        *d = f16_to_f32(q->d);
        for (int j = 0; j < QL_BLOCK; j++) w[j] = (int8_t)(nibble(q->qs, j) - 8);
        break;
    }
    case QL_Q4_1: {
        const struct ql_q4_1_block *q = (const struct ql_q4_1_block *)row + b;
        *d = f16_to_f32(q->d);
        *m = f16_to_f32(q->m);
        for (int j = 0; j < QL_BLOCK; j++) w[j] = (int8_t)nibble(q->qs, j);
        break;
    }
    case QL_Q5_0: {
        const struct ql_q5_0_block *q = (const struct ql_q5_0_block *)row + b;
        uint32_t h = qh_word(q->qh);
        *d = f16_to_f32(q->d);
        for (int j = 0; j < QL_BLOCK; j++) w[j] = (int8_t)((nibble(q->qs, j) | ((h >> j) & 1) << 4) - 16);
        break;
    }
    case QL_Q5_1: {
        const struct ql_q5_1_block *q = (const struct ql_q5_1_block *)row + b;
        uint32_t h = qh_word(q->qh);
        *d = f16_to_f32(q->d);
        *m = f16_to_f32(q->m);
        for (int j = 0; j < QL_BLOCK; j++) w[j] = (int8_t)(nibble(q->qs, j) | ((h >> j) & 1) << 4);
        break;
    }
    case QL_IQ4_NL: {
        const struct ql_iq4_nl_block *q = (const struct ql_iq4_nl_block *)row + b;
        *d = f16_to_f32(q->d);
        for (int j = 0; j < QL_BLOCK; j++) w[j] = ql_kvalues_iq4nl[nibble(q->qs, j)];
        break;
    }
    case QL_MXFP4: {
        const struct ql_mxfp4_block *q = (const struct ql_mxfp4_block *)row + b;
        *d = ql_e8m0_half(q->e);
        for (int j = 0; j < QL_BLOCK; j++) w[j] = ql_kvalues_mxfp4[nibble(q->qs, j)];
        break;
    }
    }
}

/* ---- dequantization ---- */

static void dequant(enum ql_kind k, const void *blocks, float *out, int64_t n)
{
    for (int64_t b = 0; b < n / QL_BLOCK; b++) {
        int8_t w[QL_BLOCK];
        float d, m;
        unpack(k, blocks, b, w, &d, &m);
        /* d * w + m: d, m are f16 and w has 5 bits, so the double sum is exact and rounds once */
        for (int j = 0; j < QL_BLOCK; j++)
            *out++ = k == QL_Q4_1 || k == QL_Q5_1 ? (float)((double)d * w[j] + m) : d * (float)w[j];
    }
}

void ql_q4_0_dequant_row(const void *blocks, float *out, int64_t n) { dequant(QL_Q4_0, blocks, out, n); }
void ql_q4_1_dequant_row(const void *blocks, float *out, int64_t n) { dequant(QL_Q4_1, blocks, out, n); }
void ql_q5_0_dequant_row(const void *blocks, float *out, int64_t n) { dequant(QL_Q5_0, blocks, out, n); }
void ql_q5_1_dequant_row(const void *blocks, float *out, int64_t n) { dequant(QL_Q5_1, blocks, out, n); }
void ql_iq4_nl_dequant_row(const void *blocks, float *out, int64_t n) { dequant(QL_IQ4_NL, blocks, out, n); }
void ql_mxfp4_dequant_row(const void *blocks, float *out, int64_t n) { dequant(QL_MXFP4, blocks, out, n); }

/* ---- quantization (the float steps are ggml's: multiply by the inverse scale, add the offset
 * plus 0.5, truncate as the C casts do) ---- */

static void pack_nibbles(const int q[QL_BLOCK], uint8_t qs[16])
{
    for (int j = 0; j < 16; j++) qs[j] = (uint8_t)((q[j] & 0xF) | (q[j + 16] & 0xF) << 4);
}

static void pack_qh(const int q[QL_BLOCK], uint8_t qh[4])
{
    uint32_t h = 0;
    for (int j = 0; j < QL_BLOCK; j++) h |= (uint32_t)((q[j] >> 4) & 1) << j;
    for (int i = 0; i < 4; i++) qh[i] = (uint8_t)(h >> (8 * i));
}

/* The value of largest magnitude, with its sign (the first on ties). */
static float max_signed(const float *x)
{
    float amax = 0, max = 0;
    for (int j = 0; j < QL_BLOCK; j++)
        if (amax < fabsf(x[j])) {
            amax = fabsf(x[j]);
            max = x[j];
        }
    return max;
}

static float inverse(float d)
{
    return d ? 1.0f / d : 0.0f;
}

static int min_int(int a, int b)
{
    return a < b ? a : b;
}

/* C's float-to-int truncation; out of range (a block of tiny values whose inverse scale
 * overflows) gives INT32_MIN as the x86 conversion does, not undefined behaviour. */
static int trunc_int(float v)
{
    return v > -2147483648.0f && v < 2147483648.0f ? (int)v : INT32_MIN;
}

/* Symmetric: d = max / -(2^(bits-1)), q = min(2^bits - 1, trunc(x / d + 2^(bits-1) + 0.5)). */
static float quant_sym(const float *x, int half, int q[QL_BLOCK])
{
    float d = max_signed(x) / (float)-half, id = inverse(d);
    for (int j = 0; j < QL_BLOCK; j++) q[j] = min_int(2 * half - 1, trunc_int(x[j] * id + ((float)half + 0.5f)));
    return d;
}

/* Affine: d = (max - min) / (2^bits - 1), q = min(2^bits - 1, trunc((x - min) / d + 0.5)). */
static float quant_affine(const float *x, int top, int q[QL_BLOCK], float *mn)
{
    float lo = x[0], hi = x[0];
    for (int j = 1; j < QL_BLOCK; j++) {
        lo = fminf(lo, x[j]);
        hi = fmaxf(hi, x[j]);
    }
    float d = (hi - lo) / (float)top, id = inverse(d);
    for (int j = 0; j < QL_BLOCK; j++) q[j] = min_int(top, trunc_int((x[j] - lo) * id + 0.5f));
    *mn = lo;
    return d;
}

void ql_q4_0_quantize_row(const float *x, void *blocks, int64_t n)
{
    struct ql_q4_0_block *b = blocks;
    for (int64_t i = 0; i < n / QL_BLOCK; i++, x += QL_BLOCK) {
        int q[QL_BLOCK];
        b[i].d = f32_to_f16(quant_sym(x, 8, q));
        pack_nibbles(q, b[i].qs);
    }
}

void ql_q4_1_quantize_row(const float *x, void *blocks, int64_t n)
{
    struct ql_q4_1_block *b = blocks;
    for (int64_t i = 0; i < n / QL_BLOCK; i++, x += QL_BLOCK) {
        int q[QL_BLOCK];
        float mn;
        b[i].d = f32_to_f16(quant_affine(x, 15, q, &mn));
        b[i].m = f32_to_f16(mn);
        pack_nibbles(q, b[i].qs);
    }
}

void ql_q5_0_quantize_row(const float *x, void *blocks, int64_t n)
{
    struct ql_q5_0_block *b = blocks;
    for (int64_t i = 0; i < n / QL_BLOCK; i++, x += QL_BLOCK) {
        int q[QL_BLOCK];
        b[i].d = f32_to_f16(quant_sym(x, 16, q));
        pack_qh(q, b[i].qh);
        pack_nibbles(q, b[i].qs);
    }
}

void ql_q5_1_quantize_row(const float *x, void *blocks, int64_t n)
{
    struct ql_q5_1_block *b = blocks;
    for (int64_t i = 0; i < n / QL_BLOCK; i++, x += QL_BLOCK) {
        int q[QL_BLOCK];
        float mn;
        b[i].d = f32_to_f16(quant_affine(x, 31, q, &mn));
        b[i].m = f32_to_f16(mn);
        pack_qh(q, b[i].qh);
        pack_nibbles(q, b[i].qs);
    }
}

/* The codebook index nearest to v (the first on ties). */
static int nearest_index(float v, const int8_t table[16])
{
    int best = 0;
    float err = fabsf(v - (float)table[0]);
    for (int i = 1; i < 16; i++) {
        float e = fabsf(v - (float)table[i]);
        if (e < err) {
            err = e;
            best = i;
        }
    }
    return best;
}

void ql_iq4_nl_quantize_row(const float *x, void *blocks, int64_t n)
{
    struct ql_iq4_nl_block *b = blocks;
    for (int64_t i = 0; i < n / QL_BLOCK; i++, x += QL_BLOCK) {
        int q[QL_BLOCK];
        float d = max_signed(x) / (float)ql_kvalues_iq4nl[0], id = inverse(d);
        for (int j = 0; j < QL_BLOCK; j++) q[j] = nearest_index(x[j] * id, ql_kvalues_iq4nl);
        /* one least-squares refit of d to the chosen entries, summed left to right */
        float num = 0, den = 0;
        for (int j = 0; j < QL_BLOCK; j++) {
            float kv = ql_kvalues_iq4nl[q[j]];
            num += kv * x[j];
            den += kv * kv;
        }
        if (den > 0) d = num / den;
        id = inverse(d);
        for (int j = 0; j < QL_BLOCK; j++) q[j] = nearest_index(x[j] * id, ql_kvalues_iq4nl);
        b[i].d = f32_to_f16(d);
        pack_nibbles(q, b[i].qs);
    }
}

void ql_mxfp4_quantize_row(const float *x, void *blocks, int64_t n)
{
    struct ql_mxfp4_block *b = blocks;
    for (int64_t i = 0; i < n / QL_BLOCK; i++, x += QL_BLOCK) {
        float amax = 0;
        for (int j = 0; j < QL_BLOCK; j++) amax = fmaxf(amax, fabsf(x[j]));
        /* the largest value lands in 4..8 (doubled E2M1 tops out at 12) */
        int e = 0;
        double inv = 0;
        if (amax > 0) {
            float ef = floorf(log2f(amax)) - 2 + 127;
            e = ef < 0 ? 0 : ef > 254 ? 254 : (int)ef;
            inv = ldexp(1.0, 128 - e); /* 2^-128 is subnormal: invert in double */
        }
        int q[QL_BLOCK];
        for (int j = 0; j < QL_BLOCK; j++) q[j] = nearest_index((float)(x[j] * inv), ql_kvalues_mxfp4);
        b[i].e = (uint8_t)e;
        pack_nibbles(q, b[i].qs);
    }
}

/* ---- Q8_1 activations ---- */

void ql_q8_1_quantize_act(const float *x, struct ql_q8_1_act_block *out, int n)
{
    for (int b = 0; b < n / QL_BLOCK; b++, x += QL_BLOCK) {
        float amax = 0;
        for (int i = 0; i < QL_BLOCK; i++) amax = fmaxf(amax, fabsf(x[i]));
        float d = amax / 127.0f, id = inverse(d);
        int sum = 0;
        for (int i = 0; i < QL_BLOCK; i++) {
            out[b].qs[i] = (int8_t)lrintf(x[i] * id);
            sum += out[b].qs[i];
        }
        out[b].d = d;
        out[b].s = d * (float)sum;
    }
}

/* ---- the portable kernels: the scheme of qlegacy.h, written out ---- */

static float dot_row(enum ql_kind k, const char *row, const char *xrow, int nb)
{
    bool q81 = k == QL_Q4_1 || k == QL_Q5_1;
    float acc[32] = {0}, accm[4] = {0};
    for (int b = 0; b < nb; b++) {
        int8_t w[QL_BLOCK];
        float dw, m, dx, sx = 0;
        const int8_t *xq;
        unpack(k, row, b, w, &dw, &m);
        if (q81) {
            const struct ql_q8_1_act_block *a = (const struct ql_q8_1_act_block *)xrow + b;
            xq = a->qs;
            dx = a->d;
            sx = a->s;
        } else {
            const struct q8_act_block *a = (const struct q8_act_block *)xrow + b;
            xq = a->qs;
            dx = a->d;
        }
        float dd = dw * dx;
        for (int l = 0; l < 8; l++) {
            int32_t s = 0;
            for (int i = 4 * l; i < 4 * l + 4; i++) s += (int32_t)w[i] * xq[i];
            acc[8 * (b & 3) + l] = fmaf((float)s, dd, acc[8 * (b & 3) + l]);
        }
        if (q81) accm[b & 3] = fmaf(m, sx, accm[b & 3]);
    }
    float r = ql_reduce32(acc);
    return q81 ? r + ((accm[0] + accm[2]) + (accm[1] + accm[3])) : r;
}

static void range_portable(enum ql_kind k, const struct kern_range *g)
{
    int nb = g->in / QL_BLOCK;
    for (int r = g->r0; r < g->r1; r++) {
        const char *row = g->w + (size_t)r * g->w_stride;
        for (int t = g->t0; t < g->t1; t++)
            g->y[(size_t)t * g->ldy + r] = dot_row(k, row, (const char *)g->xa + (size_t)t * g->xa_stride, nb);
    }
}

void ql_q4_0_range_portable(const struct kern_range *r) { range_portable(QL_Q4_0, r); }
void ql_q4_1_range_portable(const struct kern_range *r) { range_portable(QL_Q4_1, r); }
void ql_q5_0_range_portable(const struct kern_range *r) { range_portable(QL_Q5_0, r); }
void ql_q5_1_range_portable(const struct kern_range *r) { range_portable(QL_Q5_1, r); }
void ql_iq4_nl_range_portable(const struct kern_range *r) { range_portable(QL_IQ4_NL, r); }
void ql_mxfp4_range_portable(const struct kern_range *r) { range_portable(QL_MXFP4, r); }
