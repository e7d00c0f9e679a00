/* The matmul entry point: y = x W^T for a typed weight tensor, on the best kernel its format
 * registers (format.h) for this CPU (cpu.h). Callers never name a format: they ask which
 * activations the kernel for a weight wants (kern_matmul_act), prepare them once for every
 * matmul that shares the input (kern_prepare_act), and hand both to kern_matmul_many.
 *
 * Batch invariance: every (weight row, token) pair is reduced by the same sequence of
 * operations whatever n is, whatever the tiling and whichever thread runs it, so a token's
 * output row never depends on the other tokens of the batch. The order differs between ISAs
 * (each is checked against the portable path in tests/kernels/test_kernels.c). */
#ifndef MS_ENGINE_KERNELS_MATMUL_H
#define MS_ENGINE_KERNELS_MATMUL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/kernels/cpu.h"
#include "engine/kernels/kern_range.h"
#include "engine/kernels/tensor.h"
#include "engine/kernels/threadpool.h"

struct fmt_kernel;

/* Floats of per-thread pool scratch the matmuls need for inputs of up to `max_in` columns. */
size_t kern_scratch_floats(int max_in);

/* The activations the kernel chosen for w on the best ISA reads: KERN_ACT_F32, or a quantized
 * kind. `offered` (a bit set of 1u << kern_act) names kinds the caller is willing to prepare for
 * opt-in kernels (KERN_ACT_BF16: the VDPBF16PS kernel, faster and less accurate). */
enum kern_act kern_matmul_act(const struct tensor *w, unsigned offered);

/* Bytes of n rows of `in` values prepared as `act`; bytes of one row is kern_act_bytes(act, 1, in). */
size_t kern_act_bytes(enum kern_act act, int n, int in);

/* out <- x [n, in] prepared as `act` (not KERN_ACT_F32), rows split over the pool; in must be a
 * multiple of the kind's block. The bits do not depend on the ISA. */
void kern_prepare_act(struct threadpool *tp, enum kern_act act, const float *x, int n, int in, void *out);

/* One matmul: y[t, r] = sum_i x[t, i] * W[r, i] for t < n, r < W.shape[0]; W is [out, in],
 * x is [n, in], y is [n, out] with row stride ldy (>= out). xa may hold x prepared as xa_act
 * (kern_prepare_act) when that is what the kernel reads; otherwise each task prepares its own
 * tokens from x (slower), so x is needed unless xa matches. */
struct kern_mm {
    const struct tensor *w;
    const float *x;
    const void *xa;
    enum kern_act xa_act;
    int n;
    float *y;
    int ldy;
    /* private to matmul.c */
    int first_task;
    const struct fmt_kernel *kernel;
};

/* Runs all `count` matmuls in one tp_run, tasks = (matmul, row block, token block), so many
 * small matmuls (the experts of an MoE layer) keep every thread busy. Engine thread. */
void kern_matmul_many(struct threadpool *tp, struct kern_mm *mm, int count);

/* One matmul of float activations with the best ISA. */
void kern_matmul(struct threadpool *tp, const struct tensor *w, const float *x, int n, float *y, int ldy);

/* The same with a chosen ISA (tests, benchmarks); isa must be supported by this CPU. An opt-in
 * kernel runs when xa is given in its kind. */
void kern_matmul_isa(struct threadpool *tp, enum kern_isa isa, const struct tensor *w, const float *x, const void *xa,
                     enum kern_act xa_act, int n, float *y, int ldy);

/* The name of the kernel a matmul of w on `isa` runs (logs, benchmarks). */
const char *kern_matmul_kernel_name(const struct tensor *w, enum kern_isa isa, unsigned offered);

#endif
