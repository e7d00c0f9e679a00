/* The element-wise and attention kernels of the forward pass (everything but the matmuls):
 * RMSNorm, RoPE, softmax, SwiGLU, and grouped-query attention over rows of the KV cache.
 * Each is batch-invariant: a token's values are computed the same way whatever else is being
 * computed. Compute threads. */
#ifndef MS_ENGINE_KERNELS_OPS_H
#define MS_ENGINE_KERNELS_OPS_H

#include <stddef.h>

#include "engine/kernels/cpu.h"

/* Grouped-query attention over n consecutive cache rows of one KV head (rows ldk / ldv floats
 * apart), for the G query heads [G, hd] that share it: s[g * ld + i] = scale * (q[g] . k_i),
 * and out[g] += sum_i w[g * ld + i] * v_i accumulated in row order. Each (head, row) score is
 * reduced the same way whatever n is and whichever rows come with it. */
void kern_gqa_scores(enum kern_isa isa, const float *q, int G, int hd, const float *k, size_t ldk, int n, float scale,
                     float *s, int ld);
void kern_gqa_acc(enum kern_isa isa, float *out, int G, int hd, const float *v, size_t ldv, int n, const float *w,
                  int ld);

/* out[i] = x[i] / sqrt(mean(x^2) + eps) * weight[i] over `dim` values; out may equal x. */
void kern_rmsnorm(float *out, const float *x, const float *weight, int dim, float eps);

/* Rotates one head in place with the rotate-half layout (x[i], x[i + dim/2] form a pair). */
void kern_rope(float *x, int dim, const float *cos_t, const float *sin_t);

/* In-place softmax over n values: libm's expf and a double sum (the router's, exact to the
 * reference); kern_softmax_isa uses a vectorised exp on AVX-512 (relative error < 2e-7). */
void kern_softmax(float *x, int n);
void kern_softmax_isa(enum kern_isa isa, float *x, int n);

float kern_dot(const float *a, const float *b, int n);

/* gate[i] = silu(gate[i]) * up[i]; vectorised exp on AVX-512 */
void kern_swiglu(enum kern_isa isa, float *gate, const float *up, size_t n);

/* The ISA-specific bodies behind the functions above (ops_avx512.c, ops_avx2.c); the AVX2
 * attention ones take a single row. */
void ops_gqa_scores_avx512(const float *q, int G, int hd, const float *k, size_t ldk, int n, float scale, float *s,
                           int ld);
void ops_gqa_acc_avx512(float *out, int G, int hd, const float *v, size_t ldv, int n, const float *w, int ld);
void ops_gqa_scores_avx2(const float *q, int G, int hd, const float *k, float scale, float *s, int ld);
void ops_gqa_acc_avx2(float *out, int G, int hd, const float *v, const float *w, int ld);
void ops_softmax_avx512(float *x, int n);
void ops_swiglu_avx512(float *gate, const float *up, size_t n);

#endif
