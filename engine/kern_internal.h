/* Shared between kernels.c (dispatch, portable path) and the ISA-specific files. */
#ifndef MS_ENGINE_KERN_INTERNAL_H
#define MS_ENGINE_KERN_INTERNAL_H

#include "engine/quant.h"
#include "engine/tensor.h"

/* One piece of a matmul: y[t, r] for rows [r0, r1) and tokens [t0, t1). For Q8_0 weights xq
 * holds the quantized activations ([n, in / 32] blocks; row t at xq + t * in / 32). */
struct kern_range {
    const struct tensor *w;
    const float *x;
    const struct q8_act_block *xq;
    const uint16_t *xb; /* bf16 activations [n, in]: the VDPBF16PS kernel */
    float *y;
    int ldy, in;
    int r0, r1, t0, t1;
};

void kern__range_avx512(const struct kern_range *r);
/* BF16 weights x bf16 activations (r->xb) with VDPBF16PS; needs AVX512_BF16 */
void kern__range_dpbf16(const struct kern_range *r);
void kern__range_avx2(const struct kern_range *r);

/* AMX-INT8 (kern_amx.c): the B tiles of one group of up to 16 tokens for every block of a row,
 * with the tokens' scales (zero past the last token). */
struct amx_pack {
    _Alignas(64) int8_t b[Q8_0_BLOCK / 4][64]; /* row i: bytes 4i..4i+3 of tokens 0..15 */
    float d[16];
};
/* Q8_0 weights only; pk holds in / 32 packs (64-byte aligned). Gives quant_q8_0_dot's bits. */
void kern__range_amx(const struct kern_range *r, struct amx_pack *pk);

/* Q8_0 quantization, bitwise equal to quant_q8_act_row / quant_q8_0_row (the same float
 * operations; rounding to nearest even as lrintf does). For weights, `w` is one row of a
 * BF16/F16/F32 tensor. */
void kern__quant_act_avx512(const float *x, struct q8_act_block *out, int n);
void kern__quant_w_avx512(const void *w, enum tensor_dtype dt, struct q8_0_block *out, int n);

/* kern_gqa_scores / kern_gqa_acc per ISA; the AVX2 ones take a single row */
void kern__gqa_scores_avx512(const float *q, int G, int hd, const float *k, size_t ldk, int n, float scale,
                             float *s, int ld);
void kern__gqa_acc_avx512(float *out, int G, int hd, const float *v, size_t ldv, int n, const float *w, int ld);
void kern__gqa_scores_avx2(const float *q, int G, int hd, const float *k, float scale, float *s, int ld);
void kern__gqa_acc_avx2(float *out, int G, int hd, const float *v, const float *w, int ld);

/* kern_softmax_isa / kern_swiglu with the AVX-512 exp */
void kern__softmax_avx512(float *x, int n);
void kern__swiglu_avx512(float *gate, const float *up, size_t n);

#endif
