/* Numerical kernels. The matmul entry points take a typed weight tensor and dispatch on its
 * dtype (F32, F16, BF16, Q8_0) and on the CPU: AVX-512 where the CPU has F/BW/DQ/VL/VNNI, else
 * AVX2+FMA+F16C, else portable C (kern_isa_best, checked with __builtin_cpu_supports on each
 * call: a few loads). All activations are float32; Q8_0 weights take activations quantized per
 * row to int8 (kern_quantize_act), as llama.cpp's q8_0 x q8_0 dot does.
 *
 * Batch invariance: every (weight row, token) pair is reduced by the same sequence of
 * operations whatever n is, whatever the tiling and whichever thread runs it, so a token's
 * output row never depends on the other tokens of the batch. The order differs between ISAs
 * (each is checked against the portable path in tests/test_kernels.c). */
#ifndef MS_ENGINE_KERNELS_H
#define MS_ENGINE_KERNELS_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/quant.h"
#include "engine/tensor.h"
#include "engine/threadpool.h"

enum kern_isa {
    KERN_ISA_PORTABLE,
    KERN_ISA_AVX2,   /* AVX2 + FMA + F16C */
    KERN_ISA_AVX512, /* AVX-512 F/BW/DQ/VL/VNNI (Ice Lake, Zen 4 and later) */
    KERN_ISA_AMX,    /* the AVX-512 kernels, and AMX-INT8 tiles for Q8_0 weights (Sapphire Rapids
                      * and later, where Linux grants the process the tile state) */
};

/* The fastest ISA this CPU supports, or a slower one named by the environment variable
 * MOESERVE_KERNEL_ISA (portable, avx2 or avx512; a test seam). Any thread. */
enum kern_isa kern_isa_best(void);
const char *kern_isa_name(enum kern_isa isa);

/* Floats of per-thread pool scratch the matmuls need for inputs of up to `max_in` columns. */
size_t kern_scratch_floats(int max_in);

/* Bytes of a quantized activation buffer for n rows of `in` columns (kern_quantize_act). */
size_t kern_act_q8_bytes(int n, int in);

/* xq <- x [n, in] quantized per row in blocks of 32 (int8 + float scale); in % 32 == 0.
 * Splits rows over the pool. Needed only for Q8_0 weights. */
void kern_quantize_act(struct threadpool *tp, const float *x, int n, int in, void *xq);

/* Row `row` of a BF16/F16/F32 tensor [rows, cols] (cols % 32 == 0) quantized to cols / 32
 * Q8_0 blocks, bitwise as quant_q8_0_row would from the float values; scratch holds cols
 * floats. Any thread. */
void kern_quantize_row_q8_0(const struct tensor *t, int64_t row, struct q8_0_block *out, float *scratch);

/* xb <- x [n, in] rounded to bf16 (nearest even), for the opt-in kernel that multiplies BF16
 * weights by bf16 activations with VDPBF16PS (twice the multiply-adds per instruction of the
 * float path, at the cost of rounding the activations). Whether this CPU has it: */
void kern_round_act_bf16(const float *x, int n, int in, uint16_t *xb);
bool kern_has_dpbf16(void);

/* One matmul: y[t, r] = sum_i x[t, i] * W[r, i] for t < n, r < W.shape[0]; W is [out, in],
 * x is [n, in], y is [n, out] with row stride ldy (>= out). For Q8_0 weights, xq may hold x
 * quantized by kern_quantize_act (else each task quantizes its own tokens: slower). */
struct kern_mm {
    const struct tensor *w;
    const float *x;
    const void *xq;           /* optional; Q8_0 weights only */
    const uint16_t *xb;       /* optional; BF16 weights only: x rounded to bf16 (kern_round_act_bf16)
                               * selects the VDPBF16PS kernel where the CPU has AVX512_BF16 */
    int n;
    float *y;
    int ldy;
    int first_task; /* private to kernels.c */
};

/* Runs all `count` matmuls in one tp_run, tasks = (matmul, row block, token block), so many
 * small matmuls (the experts of an MoE layer) keep every thread busy. Engine thread. */
void kern_matmul_many(struct threadpool *tp, struct kern_mm *mm, int count);

/* One matmul with the best ISA. */
void kern_matmul(struct threadpool *tp, const struct tensor *w, const float *x, int n, float *y,
                 int ldy);

/* The same with a chosen ISA (tests, benchmarks); isa must be supported by this CPU. */
void kern_matmul_isa(struct threadpool *tp, enum kern_isa isa, const struct tensor *w, const float *x,
                     const void *xq, int n, float *y, int ldy);

/* The same with bf16 activations (kern_round_act_bf16) on the VDPBF16PS kernel; BF16 weights,
 * kern_has_dpbf16() true. */
void kern_matmul_dpbf16(struct threadpool *tp, const struct tensor *w, const float *x, const uint16_t *xb, int n,
                        float *y, int ldy);

/* Grouped-query attention over n consecutive cache rows of one KV head (rows ldk / ldv floats
 * apart), for the G query heads [G, hd] that share it: s[g * ld + i] = scale * (q[g] . k_i),
 * and out[g] += sum_i w[g * ld + i] * v_i accumulated in row order. Each (head, row) score is
 * reduced the same way whatever n is and whichever rows come with it. Compute threads. */
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

#endif
