/* The weight-format registry: one entry per tensor_dtype says how its rows are laid out, how
 * they are dequantized and quantized, and which matmul kernels exist for it on which ISA. The
 * matmul entry point (matmul.c) dispatches only through this table, and everything above the
 * kernels (tensor.c, the model, the loaders) asks it instead of naming formats. Adding a
 * format: docs/ARCHITECTURE.md, "Adding a weight format". Read-only after start: any thread. */
#ifndef MS_ENGINE_KERNELS_FORMAT_H
#define MS_ENGINE_KERNELS_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/kernels/cpu.h"
#include "engine/kernels/dtype.h"
#include "engine/kernels/kern_range.h"

/* One matmul kernel of a format. */
struct fmt_kernel {
    const char *name;           /* for logs and benchmarks, e.g. "q8_0-avx512" */
    enum kern_isa isa;          /* the lowest ISA it runs on */
    enum kern_act act;          /* the activations it reads (kern_range.xa) */
    kern_range_fn range;
    bool (*usable)(void);       /* an extra CPU check beyond `isa`, or NULL */
    bool opt_in;                /* taken only when the caller offers activations of kind `act` */
    size_t (*scratch_bytes)(int in); /* per-thread scratch it needs for rows of `in` values, or NULL */
};

#define FMT_MAX_KERNELS 6

struct weight_format {
    enum tensor_dtype dtype;
    const char *name;        /* as users and checkpoints spell it: "BF16", "Q8_0" */
    int block_values;        /* values per block along a row (1 for plain floats) */
    size_t block_bytes;      /* bytes per block */
    /* n values (a multiple of block_values) of blocks starting at `src` to float32 */
    void (*dequant_row)(const void *src, float *dst, int64_t n);
    /* n float32 values to blocks; NULL when the format cannot be produced here */
    void (*quantize_row)(const float *src, void *dst, int64_t n);
    /* optional: the same from a row of a plain float dtype (F32, F16, BF16) without the float
     * round trip, with the same bits; `isa` picks a faster path (quantizing at load) */
    void (*quantize_from)(enum kern_isa isa, const void *src, enum tensor_dtype src_dtype, void *dst, int64_t n);
    int n_kernels;
    struct fmt_kernel kernels[FMT_MAX_KERNELS]; /* best first */
};

/* A kind of activation row, and how a float row becomes one. */
struct act_format {
    enum kern_act act;
    const char *name;
    int block_values;
    size_t block_bytes;
    /* n values (a multiple of block_values); `isa` picks a faster path with the same bits */
    void (*quantize_row)(enum kern_isa isa, const float *src, void *dst, int n);
};

/* The entry of a dtype (never NULL for a valid dtype). */
const struct weight_format *fmt_get(enum tensor_dtype dtype);
/* The format named `name` (case-insensitive), or NULL. */
const struct weight_format *fmt_by_name(const char *name);
const struct act_format *fmt_act(enum kern_act act);

/* Bytes of one row of `cols` values; 0 when cols is not a whole number of blocks. */
size_t fmt_row_bytes(const struct weight_format *f, int64_t cols);

/* The kernel the matmul entry point runs for this format on `isa`: the first entry whose ISA
 * and CPU check pass and which is not opt-in, or opt-in with its act in `offered` (a bit set of
 * 1u << kern_act). Never NULL: every format registers a portable kernel. */
const struct fmt_kernel *fmt_pick_kernel(const struct weight_format *f, enum kern_isa isa, unsigned offered);

#endif
