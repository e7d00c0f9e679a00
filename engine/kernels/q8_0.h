/* The Q8_0 format: blocks of 32 int8 values with one scale. Weights use GGUF's block_q8_0 layout
 * (f16 scale, 34 bytes); activations quantized at run time use a float-scaled variant. A Q8_0
 * tensor [out, in] (in % 32 == 0) stores each row as in / 32 consecutive blocks.
 *
 * Here: the layout, (de)quantization and the portable kernel. The SIMD kernels are
 * q8_0_avx2.c, q8_0_avx512.c and q8_0_amx.c; format.c registers them all. */
#ifndef MS_ENGINE_KERNELS_Q8_0_H
#define MS_ENGINE_KERNELS_Q8_0_H

#include <stddef.h>
#include <stdint.h>

#include "engine/kernels/cpu.h"
#include "engine/kernels/dtype.h"
#include "engine/kernels/kern_range.h"

#define Q8_0_BLOCK 32

struct q8_0_block {
    uint16_t d; /* f16 scale */
    int8_t qs[Q8_0_BLOCK];
};

/* An activation block: x[i] ~= d * qs[i]. */
struct q8_act_block {
    float d;
    int8_t qs[Q8_0_BLOCK];
};

_Static_assert(sizeof(struct q8_0_block) == 34, "GGUF block_q8_0 is 34 bytes");
_Static_assert(sizeof(struct q8_act_block) == 36, "activation block is 36 bytes");

/* Quantizes n values (n % 32 == 0) to n / 32 weight blocks: d = max|x| / 127 (stored as f16),
 * q = round(x / d), as llama.cpp's quantize_row_q8_0. Any thread. */
void q8_0_quantize_row(const float *x, void *out, int64_t n);

/* The same from a row stored as F32, F16 or BF16 (`src_dtype`), with the bits of converting it
 * to float first; `isa` picks a faster path. */
void q8_0_quantize_from(enum kern_isa isa, const void *src, enum tensor_dtype src_dtype, void *out, int64_t n);

/* The activation form, with a float scale; isa >= AVX512 takes the AVX-512 path (same bits). */
void q8_0_quantize_act(enum kern_isa isa, const float *x, void *out, int n);

/* x[i] for the n values of n / 32 weight blocks. */
void q8_0_dequant_row(const void *blocks, float *out, int64_t n);

/* Portable dot of one weight row and one activation row of n values (n / 32 blocks): the exact
 * integer sum of each block, scaled by both scales, summed in block order. */
float q8_0_dot(const struct q8_0_block *w, const struct q8_act_block *x, int n);

/* The matmul kernels (kern_range.h), Q8_0 activations. The portable one gives q8_0_dot's bits;
 * the AMX one too (its scratch: q8_0_amx_scratch_bytes). */
void q8_0_range_portable(const struct kern_range *r);
void q8_0_range_avx2(const struct kern_range *r);
void q8_0_range_avx512(const struct kern_range *r);
void q8_0_range_amx(const struct kern_range *r);
size_t q8_0_amx_scratch_bytes(int in);

/* AVX-512 quantizers behind q8_0_quantize_from / q8_0_quantize_act (q8_0_avx512.c). */
void q8_0_quantize_act_avx512(const float *x, struct q8_act_block *out, int n);
void q8_0_quantize_from_avx512(const void *src, enum tensor_dtype src_dtype, struct q8_0_block *out, int n);

#endif
