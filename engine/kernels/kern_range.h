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

/* How far ahead of the block it decodes a kernel that walks one row at a time asks for the
 * weights (_mm_prefetch). At one token such a kernel runs at 30 GB/s from the cache but fell to
 * 9-10 GB/s from memory: the hardware prefetcher alone does not keep enough lines in flight for
 * one stream (Q4_0 AVX-512, bench_formats, AMD EPYC Zen 5, one thread: 9.6 GB/s without, 14.5 at
 * 1 KiB ahead, 16.5 at 2 KiB, 16.9 at 4 KiB, 14.7-15.8 at 8-16 KiB). */
#define KERN_PREFETCH_BYTES 4096

#endif
