/* HiFloat4 (HiF4), Huawei's 4.5-bit block floating-point format (arXiv 2602.11287, "HiFloat4
 * Format for Language Model Inference"), as its authors' reference converter defines it
 * (To_HiFX and BF16_to_E6MX in github.com/global-computing-consortium/HiFloat4,
 * hif4_gpu/HiF4_NVFP4_v14f16.py; the paper's body text was not available to us).
 *
 * A unit is 64 values with 32 bits of metadata in three levels and 64 S1P2 elements:
 *   - E6M2, one per unit: 2^(e - 48) * (1 + m / 4), e the 6-bit field (bias 48, so 2^-48 ..
 *     2^15), m the 2-bit field; no zero, no subnormals; e = 63, m = 3 is NaN (never written),
 *     so the largest scale is 2^15 * 1.5 = 49152.
 *   - E1_8, one bit per group of 8 values, and E1_16, one bit per group of 4: micro-exponents;
 *     a value of group-of-4 k is scaled by 2^(E1_8[k / 2] + E1_16[k]), a shift of 0, 1 or 2.
 *   - S1P2 elements: a sign and a 3-bit magnitude with 1 exponent and 2 mantissa bits (E1M2
 *     with subnormals), i.e. the magnitudes 0, 0.25, ... 1.75: code c is c / 4.
 *   x = (-1)^s * E6M2 * 2^(E1_8 + E1_16) * c / 4, at most 49152 * 4 * 1.75.
 *
 * The conversion (the reference's, its rounding included), per unit of values v:
 *   V4[k], V8[g], Vmax = the largest |v| of each group of 4, of 8, and of the unit;
 *   SF   = bf16(Vmax * bf16(1/7))          (7 = the largest element times 2^2; bf16 rounding
 *                                           to nearest even, subnormals kept)
 *   E6M2 = SF clamped to [2^-48, 49152], rounded to 2 mantissa bits, nearest even;
 *   R    = bf16(1 / E6M2)                  (the hardware's reciprocal table: exact for m = 0)
 *   E1_8[g]  = V8[g] * R >= 4;   E1_16[k] = V4[k] * R * 2^-E1_8[k/2] >= 2;
 *   c    = min(7, floor(|v| * R * 2^(2 - E1_8 - E1_16) + 0.5))   (half away from zero);
 *   s    = v < 0.
 * Every product there is exact in double (24 + 8 significant bits), so the C and any
 * float64 implementation agree bit for bit. Inputs must be finite. On N(0,1) rows this gives a
 * relative MSE of 0.0069, 24% below NVFP4's 0.0090 (a summary of the paper reports ~24%) and
 * half of MXFP4's 0.0132.
 *
 * The in-memory layout is ours (the bit order inside E1_8 / E1_16 and the nibble order are
 * assumptions; the field order E6M2, E1_8, E1_16 low byte, high byte is that of Ascend's HiF4
 * scale patches, which interleave 16 units):
 *   byte 0: E6M2 = e << 2 | m; byte 1: E1_8, bit g for values 8g..8g+7; bytes 2-3: E1_16,
 *   little-endian, bit k for values 4k..4k+3; qs[j]: value j in the low nibble, value j + 32
 *   in the high one, each nibble s << 3 | c.
 *
 * The dot product in fixed point (what the paper argues the micro-exponents allow): value i
 * is (E6M2 / 4) * w_i with the integer w_i = +-(c_i << shift_i), |w_i| <= 28, so a unit against
 * two Q8_0 activation blocks is two exact int8 dot products, each scaled once. The kernels
 * follow qlegacy.h's scheme with the unit's two halves as its 32-value blocks b = 2u, 2u + 1
 * (dw = E6M2 / 4 for both): exact int32 lane sums L[l] over 4 values (one E1_16 group),
 * acc[8 * (b & 3) + l] = fma(L[l], dw * dx_b, acc[...]), ql_reduce32 at the end; portable, AVX2
 * and AVX-512 therefore agree bit for bit and any split of rows or tokens gives the same bits.
 * Pure functions, any thread. */
#ifndef MS_ENGINE_KERNELS_HIF4_H
#define MS_ENGINE_KERNELS_HIF4_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "engine/kernels/kern_range.h"

#define HIF4_UNIT 64

struct hif4_unit {
    uint8_t e6m2;
    uint8_t e1_8;
    uint16_t e1_16;
    uint8_t qs[HIF4_UNIT / 2];
};

_Static_assert(sizeof(struct hif4_unit) == 36, "a HiF4 unit is 32 bits of metadata and 64 nibbles");

/* A unit's scale dw = E6M2 / 4 (x = dw * w), built from its bits (exact, NaN for 0xFF). */
static inline float hif4_unit_scale(uint8_t e6m2)
{
    /* 2^(e - 48 - 2) * (1 + m / 4): biased float exponent e + 77, mantissa m in its top bits */
    uint32_t bits = e6m2 == 0xFF ? 0x7FC00000u : (uint32_t)((e6m2 >> 2) + 77) << 23 | (uint32_t)(e6m2 & 3) << 21;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* n values (n % 64 == 0) of units to float, exactly. */
void hif4_dequant_row(const void *units, float *out, int64_t n);

/* n finite floats (n % 64 == 0) to units by the conversion above. */
void hif4_quantize_row(const float *x, void *units, int64_t n);

/* Matmul kernels (kern_range.h), KERN_ACT_Q8_0 activations. */
void hif4_range_portable(const struct kern_range *r);
void hif4_range_avx2(const struct kern_range *r);
void hif4_range_avx512(const struct kern_range *r);
/* The AVX-512 kernel's per-thread scratch for rows of `in` values. */
size_t hif4_avx512_scratch_bytes(int in);

#endif
