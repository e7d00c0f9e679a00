/* NVFP4 weights: NVIDIA's 4-bit float format (FP4 E2M1 values in blocks of 16, one FP8 E4M3
 * scale per block) with its second scale level made per super-block instead of per tensor.
 *
 * NVIDIA's NVFP4 scales twice: a per-tensor FP32 global scale g = amax(tensor) / (6 * 448)
 * and a per-16-value E4M3 scale s = E4M3(amax(block) / 6 / g), so x ~= g * s * e2m1. Our
 * format registry has no per-tensor parameter (struct weight_format: rows are independent and
 * made of fixed-size blocks, so any split of rows or row ranges reads the same bytes), so g is
 * stored once per super-block of 256 values (16 NVFP4 blocks) and computed from that
 * super-block's amax, which is at most the tensor's: its E4M3 scales use their full range (the
 * largest block of each super-block gets 448) instead of sitting low in it in quiet parts of
 * the tensor (not compared here with a per-tensor g, whose rounding of the E4M3 scales differs). It
 * costs 4 bytes per 256 values: 16 * (1 + 8) + 4 = 148 bytes per 256 values = 4.625 bits per
 * value (the spec's 4.5 plus 0.125). A row must be a whole number of super-blocks (rows of
 * Qwen3-30B-A3B are 2048, 768 or 4096 wide); a narrower one is left as stored by `--quantize`.
 *
 * No file format defines this layout (ggml has no NVFP4 type we write), so the nibbles are
 * ordered for the kernels: the 256 values are 8 groups of 32 (one Q8_0 activation block
 * each), group p being NVFP4 blocks 2p and 2p + 1; value 32p + j (j < 16) is the low nibble of
 * qs[16p + j] and value 32p + 16 + j its high nibble, the same order as ggml's 32-value
 * blocks. A nibble is sign (bit 3) and E2M1 magnitude code (bits 0-2): 0, 0.5, 1, 1.5, 2, 3,
 * 4, 6.
 *
 * Values: x = (E4M3(s[k]) * d) * e2m1 in float32, for value i of block k = i / 16 (the two
 * products rounded in that order). The quantizer (bits of tests/reference/nvfp4.py):
 *   d = amax(super-block) / 2688 (6 * 448), float32 division; 0 when amax is 0;
 *   s[k] = E4M3 of (amax(block k) / 6) / d, nearest even, saturating at 448 (0 when d is 0);
 *   q = the E2M1 nearest to x / (E4M3(s[k]) * d), ties to the even code, saturating at 6 (0
 *   when that scale is 0); the sign bit only on a nonzero code of x < 0. (A division, not a
 *   multiplication by the inverse: the inverse of a tiny scale can overflow.)
 *
 * The kernels read Q8_0 activations (blocks of 32, q8_0.h). Doubled, the E2M1 values are the
 * integers -12..12, so a weight group is 32 int8 w = 2 * e2m1 and the scale of value i is
 * h[k] = (E4M3(s[k]) * d) * 0.5f. Against activation block b of the row (group b % 8 of
 * super-block b / 8) a kernel takes 8 exact int32 lane sums L[l] = sum_{j<4} w[4l+j] x[4l+j]
 * and accumulates acc[8 * (b & 3) + l] = fma(L[l], h[2 (b % 8) + l / 4] * dx, acc[...]), then
 * reduces the 32 lanes as ql_reduce32 (qlegacy.h) does: the scheme of the 32-value block
 * formats with a scale per half block. All ISAs follow it exactly, so they agree bit for bit
 * and any split of rows or tokens gives the same bits. Pure functions, any thread. */
#ifndef MS_ENGINE_KERNELS_NVFP4_H
#define MS_ENGINE_KERNELS_NVFP4_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "engine/kernels/kern_range.h"

#define NVFP4_SUPER 256 /* values per super-block (the registry's block) */
#define NVFP4_BLOCK 16  /* values per E4M3 scale */
#define NVFP4_E4M3_MAX 448.0f
#define NVFP4_E2M1_MAX 6.0f

struct nvfp4_block {
    float d;                                   /* the super-block's FP32 scale */
    uint8_t s[NVFP4_SUPER / NVFP4_BLOCK];      /* E4M3 (no infinities, max 448) per 16 values */
    uint8_t qs[NVFP4_SUPER / 2];               /* sign + E2M1 nibbles, order above */
};

_Static_assert(sizeof(struct nvfp4_block) == 148, "an NVFP4 super-block is 148 bytes");

/* The doubled E2M1 values of the 16 nibbles (sign bit 3): 0 1 2 3 4 6 8 12, then negated. */
extern const int8_t nvfp4_kvalues[16];

/* The E4M3 byte c (bit 7 the sign; 0x7F / 0xFF, NaN, are not produced and read as 480) as a
 * float, exactly: its exponent and mantissa bits placed in a float32 and scaled by 2^120,
 * which gives the normal values and the subnormals (c < 8: c / 8 * 2^-6) alike. */
static inline float nvfp4_e4m3_to_f32(uint8_t c)
{
    uint32_t bits = (uint32_t)(c & 0x80) << 24 | (uint32_t)(c & 0x7F) << 20;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f * 0x1p120f;
}

/* The E4M3 byte nearest to v >= 0 (ties to even), 448 (0x7E) for anything above; 0 for v <= 0
 * or NaN. */
uint8_t nvfp4_f32_to_e4m3(float v);

/* n values (n % 256 == 0) of super-blocks to float, x as above. */
void nvfp4_dequant_row(const void *blocks, float *out, int64_t n);
/* n floats (n % 256 == 0) to super-blocks, the quantizer above. */
void nvfp4_quantize_row(const float *x, void *blocks, int64_t n);

/* Matmul kernels (kern_range.h) on KERN_ACT_Q8_0 activations; every ISA gives the portable
 * kernel's bits. */
void nvfp4_range_portable(const struct kern_range *r);
void nvfp4_range_avx2(const struct kern_range *r);
void nvfp4_range_avx512(const struct kern_range *r);
/* The AVX-512 kernel's per-thread scratch for rows of `in` values. */
size_t nvfp4_avx512_scratch_bytes(int in);

#endif
