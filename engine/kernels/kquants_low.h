/* ggml's 2- and 3-bit K-quants, Q2_K and Q3_K (the Q2_K and Q3_K_M schemes' base formats):
 * super-blocks of 256 values in 16 sub-blocks of 16, the structs byte for byte ggml's. In both
 * the 2-bit fields of value 128 h + 32 k + l sit at bits 2k of qs[32 h + l].
 *
 *   Q2_K: value = d * (scales[j] & 15) * q - dmin * (scales[j] >> 4), q in 0..3.
 *   Q3_K: value = d * (sc[j] - 32) * (q - 4), q in 0..7: 2 low bits in qs, the high bit of
 *         value i is bit i / 32 of hmask[i % 32]; the 6-bit sc[j] packed into 12 bytes
 *         (kq_q3_k_scales).
 *
 * Kernels read Q8_K activations (kquants.h) and, like the other K-quants, reduce each
 * super-block to exact int32 sums before kquants.h's float step, so every ISA gives the
 * portable kernel's bits. SIMD: kquants_low_avx2.c, kquants_low_avx512.c. Pure functions,
 * any thread. */
#ifndef MS_ENGINE_KERNELS_KQUANTS_LOW_H
#define MS_ENGINE_KERNELS_KQUANTS_LOW_H

#include <stdint.h>

#include "engine/kernels/kern_range.h"
#include "engine/kernels/kquants.h"

struct q2_k_block {
    uint8_t scales[QK_K / 16]; /* scale | min << 4 per sub-block */
    uint8_t qs[QK_K / 4];
    uint16_t d;                /* f16 scale of the scales */
    uint16_t dmin;             /* f16 scale of the mins */
};

struct q3_k_block {
    uint8_t hmask[QK_K / 8];
    uint8_t qs[QK_K / 4];
    uint8_t scales[12];
    uint16_t d;                /* f16 */
};

_Static_assert(sizeof(struct q2_k_block) == 84, "ggml block_q2_K is 84 bytes");
_Static_assert(sizeof(struct q3_k_block) == 110, "ggml block_q3_K is 110 bytes");

/* The 16 6-bit scales of a Q3_K block (the signed scale is this minus 32), as 4 little-endian
 * words of 4 bytes each (scales 0..3, 4..7, 8..11, 12..15): sub-block j's 4 low bits are nibble j / 8 of byte j % 8,
 * its 2 high bits are bits 2 (j / 4) of byte 8 + j % 4. */
static inline void kq_q3_k_scale_words(const uint8_t packed[12], uint32_t w[4])
{
    uint32_t u[3];
    for (int i = 0; i < 3; i++)
        u[i] = (uint32_t)packed[4 * i] | (uint32_t)packed[4 * i + 1] << 8 | (uint32_t)packed[4 * i + 2] << 16 |
               (uint32_t)packed[4 * i + 3] << 24;
    const uint32_t low = 0x0f0f0f0fu, two = 0x03030303u;
    w[0] = (u[0] & low) | (u[2] & two) << 4;
    w[1] = (u[1] & low) | ((u[2] >> 2) & two) << 4;
    w[2] = ((u[0] >> 4) & low) | ((u[2] >> 4) & two) << 4;
    w[3] = ((u[1] >> 4) & low) | ((u[2] >> 6) & two) << 4;
}

/* The signed scales (-32..31) as bytes. */
static inline void kq_q3_k_scales(const uint8_t packed[12], int8_t out[16])
{
    uint32_t w[4];
    kq_q3_k_scale_words(packed, w);
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 4; k++) out[4 * i + k] = (int8_t)((int)((w[i] >> (8 * k)) & 0xFF) - 32);
}

/* n values (n % 256 == 0) to float, as ggml's dequantize_row_q2_K / _q3_K. */
void fmt_q2_k_dequant_row(const void *blocks, float *out, int64_t n);
void fmt_q3_k_dequant_row(const void *blocks, float *out, int64_t n);
/* ggml's quantize_row_q2_K_ref / _q3_K_ref, bit for bit. */
void fmt_q2_k_quantize_row(const float *x, void *blocks, int64_t n);
void fmt_q3_k_quantize_row(const float *x, void *blocks, int64_t n);

void fmt_q2_k_range_portable(const struct kern_range *r);
void fmt_q2_k_range_avx2(const struct kern_range *r);
void fmt_q2_k_range_avx512(const struct kern_range *r);
void fmt_q3_k_range_portable(const struct kern_range *r);
void fmt_q3_k_range_avx2(const struct kern_range *r);
void fmt_q3_k_range_avx512(const struct kern_range *r);

#endif
