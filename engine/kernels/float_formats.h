/* The plain float formats F32, F16 and BF16: rows of values with no blocks. Here: row
 * conversion both ways and the portable kernel; the SIMD kernels are float_avx2.c and
 * float_avx512.c (which also holds the opt-in BF16 x bf16 VDPBF16PS kernel). format.c
 * registers them. */
#ifndef MS_ENGINE_KERNELS_FLOAT_FORMATS_H
#define MS_ENGINE_KERNELS_FLOAT_FORMATS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/kernels/dtype.h"
#include "engine/kernels/kern_range.h"

void float_f32_dequant_row(const void *src, float *dst, int64_t n);
void float_f16_dequant_row(const void *src, float *dst, int64_t n);
void float_bf16_dequant_row(const void *src, float *dst, int64_t n);
void float_f32_quantize_row(const float *src, void *dst, int64_t n);
void float_f16_quantize_row(const float *src, void *dst, int64_t n);
void float_bf16_quantize_row(const float *src, void *dst, int64_t n);

/* x rounded to bf16 (nearest even), n values: the activations of float_range_dpbf16. */
void float_round_bf16(const float *x, uint16_t *xb, int n);

/* The kernels, float activations: each weight row converted to float once in the thread's
 * scratch (float_portable_scratch_bytes), then dotted with every token. */
void float_range_portable_f32(const struct kern_range *r);
void float_range_portable_f16(const struct kern_range *r);
void float_range_portable_bf16(const struct kern_range *r);
size_t float_portable_scratch_bytes(int in);
void float_range_avx2_f32(const struct kern_range *r);
void float_range_avx2_f16(const struct kern_range *r);
void float_range_avx2_bf16(const struct kern_range *r);
void float_range_avx512_f32(const struct kern_range *r);
void float_range_avx512_f16(const struct kern_range *r);
void float_range_avx512_bf16(const struct kern_range *r);
/* BF16 weights x bf16 activations (KERN_ACT_BF16) with VDPBF16PS; needs AVX512_BF16 */
void float_range_dpbf16(const struct kern_range *r);

#endif
