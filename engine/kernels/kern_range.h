/* The contract between the matmul entry point (matmul.c) and each format's kernels: what one
 * piece of a matmul is, and the forms activations can be handed to a kernel in. A kernel sees
 * raw rows of its format's blocks, never a tensor. */
#ifndef MS_ENGINE_KERNELS_KERN_RANGE_H
#define MS_ENGINE_KERNELS_KERN_RANGE_H

#include <stddef.h>
#include <stdint.h>

/* What a kernel wants the activations as; matmul.c prepares them once per matmul (or per task),
 * with the quantizer of that kind (format.h, fmt_act). */
enum kern_act {
    KERN_ACT_F32,  /* the float rows as given */
    KERN_ACT_BF16, /* rounded to bf16, nearest even (the opt-in VDPBF16PS kernel) */
    KERN_ACT_Q8_0, /* blocks of 32: struct q8_act_block (engine/kernels/q8_0.h) */
    KERN_ACT_Q8_K, /* blocks of 256: struct q8_k_block (engine/kernels/kquants.h) */
    KERN_ACT_Q8_1, /* blocks of 32 with their sum: struct ql_q8_1_act_block (engine/kernels/qlegacy.h) */
    KERN_ACT_COUNT
};

/* One piece of a matmul: y[t * ldy + r] = sum_i x[t, i] * W[r, i] for rows [r0, r1) and
 * tokens [t0, t1). Row t of the prepared activations is at (const char *)xa + t * xa_stride
 * (xa == x for KERN_ACT_F32). */
struct kern_range {
    const char *w;     /* weight row 0, in the format's blocks */
    size_t w_stride;   /* bytes per weight row */
    int in;            /* values per row */
    const float *x;    /* float activations [n, in] */
    const void *xa;    /* activations in the kernel's kind */
    size_t xa_stride;  /* bytes per row of xa */
    float *y;
    int ldy;
    int r0, r1, t0, t1;
    void *scratch;     /* this thread's scratch for the kernel (fmt_kernel.scratch_bytes), aligned to 64 */
};

typedef void (*kern_range_fn)(const struct kern_range *r);

#endif
