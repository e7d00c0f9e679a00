/* The ggml K-quant formats Q4_K, Q5_K and Q6_K (the Q4_K_M and Q5_K_M schemes' weight formats)
 * and the Q8_K activations every super-block format's kernels read (Q2_K and Q3_K:
 * kquants_low.h; IQ4_XS: iq4_xs.h). Rows are made of super-blocks of 256 values; the block structs
 * are byte for byte ggml's (ggml-common.h), so GGUF tensor data can be used as it is.
 *
 *   Q4_K: 8 sub-blocks of 32, value = d * sc[j] * q - dmin * m[j], q in 0..15; the 6-bit sc/m
 *         packed into 12 bytes; qs holds 4 chunks of 64 values, low nibbles the first 32.
 *   Q5_K: Q4_K with q in 0..31: the 5th bit of value 32 j + l is bit j of qh[l].
 *   Q6_K: 16 sub-blocks of 16, value = d * scales[j] * (q - 32), q in 0..63: low 4 bits in ql,
 *         high 2 bits in qh, in 2 halves of 128 values (ggml's interleaving, see kquants.c).
 *   Q8_K: value = d * qs[i]; bsums[k] = sum of qs[16k .. 16k + 15].
 *
 * Here: the layouts, (de)quantization, the Q8_K activation quantizer, the portable kernels, and
 * the per-super-block float step every kernel shares. SIMD kernels: kquants_avx2.c and
 * kquants_avx512.c. Every kernel reduces each super-block to exact int32 sums first and then
 * applies kq_*_accum in super-block order, so all ISAs give the same bits (and any split of rows
 * or tokens does too). Pure functions, any thread. */
#ifndef MS_ENGINE_KERNELS_KQUANTS_H
#define MS_ENGINE_KERNELS_KQUANTS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/kernels/kern_range.h"

#define QK_K 256

struct q4_k_block {
    uint16_t d;          /* f16 scale of the sub-block scales */
    uint16_t dmin;       /* f16 scale of the sub-block mins */
    uint8_t scales[12];  /* 8 scales and 8 mins, 6 bits each (kq_q4_k_scales) */
    uint8_t qs[QK_K / 2];
};

struct q5_k_block {
    uint16_t d;          /* f16 scale of the sub-block scales */
    uint16_t dmin;       /* f16 scale of the sub-block mins */
    uint8_t scales[12];  /* as Q4_K's */
    uint8_t qh[QK_K / 8];
    uint8_t qs[QK_K / 2];
};

struct q6_k_block {
    uint8_t ql[QK_K / 2];
    uint8_t qh[QK_K / 4];
    int8_t scales[QK_K / 16];
    uint16_t d;          /* f16 */
};

struct q8_k_block {
    float d;
    int8_t qs[QK_K];
    int16_t bsums[QK_K / 16];
};

_Static_assert(sizeof(struct q4_k_block) == 144, "ggml block_q4_K is 144 bytes");
_Static_assert(sizeof(struct q5_k_block) == 176, "ggml block_q5_K is 176 bytes");
_Static_assert(sizeof(struct q6_k_block) == 210, "ggml block_q6_K is 210 bytes");
_Static_assert(sizeof(struct q8_k_block) == 292, "ggml block_q8_K is 292 bytes");

/* Unpacks the 12 scale bytes of a Q4_K block into 4 little-endian words whose bytes are
 * scales 0..3, scales 4..7, mins 0..3, mins 4..7 (ggml's get_scale_min_k4, 4 at a time). */
static inline void kq_q4_k_scale_words(const uint8_t packed[12], uint32_t w[4])
{
    uint32_t u[3];
    for (int i = 0; i < 3; i++)
        u[i] = (uint32_t)packed[4 * i] | (uint32_t)packed[4 * i + 1] << 8 | (uint32_t)packed[4 * i + 2] << 16 |
               (uint32_t)packed[4 * i + 3] << 24;
    w[0] = u[0] & 0x3f3f3f3fu;
    w[1] = (u[2] & 0x0f0f0f0fu) | ((u[0] >> 6) & 0x03030303u) << 4;
    w[2] = u[1] & 0x3f3f3f3fu;
    w[3] = ((u[2] >> 4) & 0x0f0f0f0fu) | ((u[1] >> 6) & 0x03030303u) << 4;
}

/* The same as bytes: out[0..7] = scales, out[8..15] = mins. */
static inline void kq_q4_k_scales(const uint8_t packed[12], uint8_t out[16])
{
    uint32_t w[4];
    kq_q4_k_scale_words(packed, w);
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 4; k++) out[4 * i + k] = (uint8_t)(w[i] >> (8 * k));
}

/* The float step of one Q4_K super-block against one Q8_K block: sumi = sum_j sc[j] * (q . x)_j,
 * summin = sum_j m[j] * (sum of x in sub-block j), both exact. Also Q5_K's and Q2_K's. */
static inline float kq_q4_k_accum(float acc, float d, float dmin, float xd, int32_t sumi, int32_t summin)
{
    return acc + (d * xd) * (float)sumi - (dmin * xd) * (float)summin;
}

/* The same for Q6_K: sumi = sum_j scales[j] * ((q - 32) . x)_j, exact. Also Q3_K's and IQ4_XS's
 * (their signed sums). */
static inline float kq_q6_k_accum(float acc, float d, float xd, int32_t sumi)
{
    return acc + (d * xd) * (float)sumi;
}

/* n values (n % 256 == 0) of blocks to float, exactly as ggml's dequantize_row_*. */
void fmt_q4_k_dequant_row(const void *blocks, float *out, int64_t n);
void fmt_q5_k_dequant_row(const void *blocks, float *out, int64_t n);
void fmt_q6_k_dequant_row(const void *blocks, float *out, int64_t n);

/* n floats to blocks with ggml's reference quantizers (quantize_row_q4_K_ref / _q5_K_ref /
 * _q6_K_ref); Q5_K's bytes are ggml's bit for bit. */
void fmt_q4_k_quantize_row(const float *x, void *blocks, int64_t n);
void fmt_q5_k_quantize_row(const float *x, void *blocks, int64_t n);
void fmt_q6_k_quantize_row(const float *x, void *blocks, int64_t n);

/* Activations: per block of 256, d = max|x| / 127, qs = round(x / d) (nearest even), bsums. */
void fmt_q8_k_quantize_act(const float *x, struct q8_k_block *out, int n);
/* Q8_K back to float (tests, reference dots). */
void fmt_q8_k_dequant_row(const struct q8_k_block *b, float *out, int n);

/* The portable kernels of the Q8_K-activation formats share one loop: every (row, token) of g
 * through the format's dot product of one weight row (nb super-blocks) with one token's row. */
typedef float (*kq_row_dot_fn)(const void *row, const struct q8_k_block *x, int nb);
void kq_range_portable(const struct kern_range *g, kq_row_dot_fn dot);

/* Matmul kernels (kern_range.h) reading KERN_ACT_Q8_K activations. */
void fmt_q4_k_range_portable(const struct kern_range *r);
void fmt_q4_k_range_avx2(const struct kern_range *r);
void fmt_q4_k_range_avx512(const struct kern_range *r);
void fmt_q5_k_range_portable(const struct kern_range *r);
void fmt_q5_k_range_avx2(const struct kern_range *r);
void fmt_q5_k_range_avx512(const struct kern_range *r);
void fmt_q6_k_range_portable(const struct kern_range *r);
void fmt_q6_k_range_avx2(const struct kern_range *r);
void fmt_q6_k_range_avx512(const struct kern_range *r);

#endif
