/* Numerical kernels. The matmul entry point takes a typed weight tensor and dispatches on its
 * dtype, so each weight type (F32, F16, BF16; later Q8_0 and SIMD variants) has its own kernel
 * behind one call. All activations are float32. */
#ifndef MS_ENGINE_KERNELS_H
#define MS_ENGINE_KERNELS_H

#include "engine/tensor.h"
#include "engine/threadpool.h"

/* Rows of W converted per task; the pool's per-thread scratch must hold KERN_ROWS_PER_TASK * in. */
#define KERN_ROWS_PER_TASK 16

/* y[t, r] = sum_i x[t, i] * W[r, i] for t < n, r < W.shape[0]; W is [out, in], x is [n, in],
 * y is [n, out] with row stride ldy (>= out). Splits rows over the pool's threads. */
void kern_matmul(struct threadpool *tp, const struct tensor *w, const float *x, int n, float *y,
                 int ldy);

/* out[i] = x[i] / sqrt(mean(x^2) + eps) * weight[i] over `dim` values; out may equal x. */
void kern_rmsnorm(float *out, const float *x, const float *weight, int dim, float eps);

/* Rotates one head in place with the rotate-half layout (x[i], x[i + dim/2] form a pair). */
void kern_rope(float *x, int dim, const float *cos_t, const float *sin_t);

/* In-place softmax over n values. */
void kern_softmax(float *x, int n);

float kern_dot(const float *a, const float *b, int n);

/* gate[i] = silu(gate[i]) * up[i] */
void kern_swiglu(float *gate, const float *up, int n);

#endif
