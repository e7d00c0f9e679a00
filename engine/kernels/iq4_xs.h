/* ggml's IQ4_XS: super-blocks of 256 values in 8 sub-blocks of 32, each value a 4-bit index into
 * the non-uniform IQ4_NL codebook, value = d * (ls[j] - 32) * kvalues[q], the 6-bit sub-block
 * scale ls[j] split into 4 low bits (scales_l, a nibble each) and 2 high bits (scales_h). The
 * struct is ggml's block_iq4_xs byte for byte. Kernels read Q8_K activations (kquants.h) and,
 * like the K-quants', reduce each super-block to an exact int32 sum before the shared float
 * step, so every ISA gives the portable kernel's bits. SIMD: iq4_xs_avx2.c, iq4_xs_avx512.c.
 * Pure functions, any thread. */
#ifndef MS_ENGINE_KERNELS_IQ4_XS_H
#define MS_ENGINE_KERNELS_IQ4_XS_H

#include <stdint.h>

#include "engine/kernels/kern_range.h"
#include "engine/kernels/kquants.h"

struct iq4_xs_block {
    uint16_t d;           /* f16 */
    uint16_t scales_h;    /* bits 2j, 2j + 1: the high bits of ls[j] */
    uint8_t scales_l[4];  /* nibble j % 2 of byte j / 2: the low bits of ls[j] */
    uint8_t qs[QK_K / 2]; /* sub-block j: qs[16 j + l] = q[l] | q[l + 16] << 4 */
};

_Static_assert(sizeof(struct iq4_xs_block) == 136, "ggml block_iq4_xs is 136 bytes");

/* ggml's kvalues_iq4nl */
static const int8_t iq4_xs_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

/* The signed scale ls[j] - 32 (-32..31) of sub-block j. */
static inline int iq4_xs_scale(const struct iq4_xs_block *b, int j)
{
    return (((b->scales_l[j / 2] >> (4 * (j % 2))) & 0xF) | ((b->scales_h >> (2 * j)) & 3) << 4) - 32;
}

/* n values (n % 256 == 0) to float, as ggml's dequantize_row_iq4_xs. */
void fmt_iq4_xs_dequant_row(const void *blocks, float *out, int64_t n);
/* ggml's quantize_row_iq4_xs_ref (no importance weights), bit for bit. */
void fmt_iq4_xs_quantize_row(const float *x, void *blocks, int64_t n);

void fmt_iq4_xs_range_portable(const struct kern_range *r);
void fmt_iq4_xs_range_avx2(const struct kern_range *r);
void fmt_iq4_xs_range_avx512(const struct kern_range *r);

#endif
