/* Single-thread decode bandwidth of the super-block (K-quant, IQ4_XS), 32-value block and NVFP4 format kernels: one token against a weight matrix far
 * larger than the caches, in GB/s of weight bytes read. Run by hand:
 *   build/bench_formats [rows in reps [FORMAT]]   (default 8192 16384 5, every format) */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "engine/kernels/cpu.h"
#include "engine/kernels/format.h"
#include "engine/kernels/hif4.h"
#include "engine/kernels/iq4_xs.h"
#include "engine/kernels/kquants.h"
#include "engine/kernels/kquants_low.h"
#include "engine/kernels/nvfp4.h"
#include "engine/kernels/qlegacy.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Random bytes are valid blocks of every format here; the f16 scales (at d_off, and at dmin_off
 * unless it is 0) are set to small values so the sums stay finite. */
static void fill(char *w, size_t bytes, size_t block, size_t d_off, size_t dmin_off)
{
    uint32_t s = 1;
    for (size_t i = 0; i < bytes; i++) {
        s = s * 1664525u + 1013904223u;
        w[i] = (char)(s >> 24);
    }
    for (size_t b = 0; b + block <= bytes; b += block) {
        uint16_t d = 0x1800;
        memcpy(w + b + d_off, &d, 2);
        if (dmin_off) memcpy(w + b + dmin_off, &d, 2);
    }
}

/* The 32-value block formats (qlegacy.h), NVFP4 and HiF4 (Q8_0 activations too): random bytes
 * with small scales (f16 d = m = 2^-9, E8M0 e = 120, NVFP4's FP32 d = 2^-10 under random E4M3,
 * HiF4's E6M2 2^-8), activations prepared as the registry says. */
/* only: a format's name (any case) to run that one alone, or NULL for all */
static int selected(const char *only, const char *name)
{
    return !only || strcasecmp(only, name) == 0;
}

static void bench_legacy(int rows, int in, int reps, const float *x, float *y, const char *only)
{
    /* the baseline: a plain read of as many bytes as the largest of these matrices */
    size_t n64 = (size_t)rows * (size_t)(in / QL_BLOCK) * sizeof(struct ql_q5_1_block) / 8;
    uint64_t *m = malloc(n64 * 8), sum = 0;
    if (!m) exit(1);
    for (size_t i = 0; i < n64; i++) m[i] = i * 0x9E3779B97F4A7C15ull;
    double best_read = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (size_t i = 0; i + 4 <= n64; i += 4) {
            s0 += m[i];
            s1 ^= m[i + 1];
            s2 += m[i + 2];
            s3 ^= m[i + 3];
        }
        sum += s0 + s1 + s2 + s3;
        double dt = now() - t0;
        best_read = dt < best_read ? dt : best_read;
    }
    printf("read   memory   %7.1f MB  %8.2f ms  %6.2f GB/s  (sum %llx)\n", n64 * 8 / 1e6, best_read * 1e3,
           n64 * 8 / best_read / 1e9,
           (unsigned long long)sum);
    free(m);

    const struct {
        enum tensor_dtype dt;
        kern_range_fn fn[3];
    } fmts[] = {
        {TENSOR_DTYPE_Q4_0, {ql_q4_0_range_portable, ql_q4_0_range_avx2, ql_q4_0_range_avx512}},
        {TENSOR_DTYPE_Q4_1, {ql_q4_1_range_portable, ql_q4_1_range_avx2, ql_q4_1_range_avx512}},
        {TENSOR_DTYPE_Q5_0, {ql_q5_0_range_portable, ql_q5_0_range_avx2, ql_q5_0_range_avx512}},
        {TENSOR_DTYPE_Q5_1, {ql_q5_1_range_portable, ql_q5_1_range_avx2, ql_q5_1_range_avx512}},
        {TENSOR_DTYPE_IQ4_NL, {ql_iq4_nl_range_portable, ql_iq4_nl_range_avx2, ql_iq4_nl_range_avx512}},
        {TENSOR_DTYPE_MXFP4, {ql_mxfp4_range_portable, ql_mxfp4_range_avx2, ql_mxfp4_range_avx512}},
        {TENSOR_DTYPE_NVFP4, {nvfp4_range_portable, nvfp4_range_avx2, nvfp4_range_avx512}},
        {TENSOR_DTYPE_HIF4, {hif4_range_portable, hif4_range_avx2, hif4_range_avx512}},
    };
    const char *isa_names[] = {"portable", "avx2", "avx512"};
    enum kern_isa best = kern_isa_best();
    for (size_t f = 0; f < sizeof fmts / sizeof fmts[0]; f++) {
        const struct weight_format *wf = fmt_get(fmts[f].dt);
        if (!selected(only, wf->name)) continue;
        const struct act_format *a = fmt_act(wf->kernels[0].act);
        size_t ws = fmt_row_bytes(wf, in), bytes = ws * (size_t)rows, xs = (size_t)(in / a->block_values) * a->block_bytes;
        char *w = malloc(bytes), *xa = malloc(xs);
        if (!w || !xa) exit(1);
        uint32_t seed = 1;
        for (size_t i = 0; i < bytes; i++) {
            seed = seed * 1664525u + 1013904223u;
            w[i] = (char)(seed >> 24);
        }
        int n_f16 = fmts[f].dt == TENSOR_DTYPE_Q4_1 || fmts[f].dt == TENSOR_DTYPE_Q5_1 ? 2 : 1;
        for (size_t b = 0; b + wf->block_bytes <= bytes; b += wf->block_bytes) {
            uint16_t d = 0x1800;
            const float nv_d = 0x1p-10f;
            if (fmts[f].dt == TENSOR_DTYPE_MXFP4) w[b] = 120;
            else if (fmts[f].dt == TENSOR_DTYPE_NVFP4) memcpy(w + b, &nv_d, sizeof nv_d);
            else if (fmts[f].dt == TENSOR_DTYPE_HIF4) w[b] = (char)0xA0; /* E6M2 2^-8 */
            else for (int k = 0; k < n_f16; k++) memcpy(w + b + 2 * k, &d, 2);
        }
        a->quantize_row(best, x, xa, in);
        size_t sb = ql_avx512_scratch_bytes(in);
        if (hif4_avx512_scratch_bytes(in) > sb) sb = hif4_avx512_scratch_bytes(in);
        if (nvfp4_avx512_scratch_bytes(in) > sb) sb = nvfp4_avx512_scratch_bytes(in);
        void *scratch = aligned_alloc(64, (sb + 63) / 64 * 64);
        if (!scratch) exit(1);
        for (int k = 0; k < 3; k++) {
            if ((k == 1 && best < KERN_ISA_AVX2) || (k == 2 && best < KERN_ISA_AVX512)) continue;
            struct kern_range g = {.w = w, .w_stride = ws, .in = in, .x = x, .xa = xa, .xa_stride = xs, .y = y,
                                   .ldy = rows, .r0 = 0, .r1 = rows, .t0 = 0, .t1 = 1, .scratch = scratch};
            double bt = 1e30;
            for (int r = 0; r < (k == 0 ? 1 : reps); r++) {
                double t0 = now();
                fmts[f].fn[k](&g);
                double dt = now() - t0;
                bt = dt < bt ? dt : bt;
            }
            printf("%-6s %-8s %5d x %-6d %7.1f MB  %8.2f ms  %6.2f GB/s  (y[0] %g)\n", wf->name, isa_names[k], rows, in,
                   bytes / 1e6, bt * 1e3, bytes / bt / 1e9, (double)y[0]);
        }
        free(w);
        free(xa);
        free(scratch);
    }
}

int main(int argc, char **argv)
{
    int rows = argc > 1 ? atoi(argv[1]) : 8192, in = argc > 2 ? atoi(argv[2]) : 16384, reps = argc > 3 ? atoi(argv[3]) : 5;
    const char *only = argc > 4 ? argv[4] : NULL;
    if (rows <= 0 || in <= 0 || in % QK_K || reps <= 0 || argc > 5) {
        fprintf(stderr, "usage: bench_formats [rows in reps [FORMAT]] (in a multiple of 256; FORMAT e.g. q4_k, mxfp4)\n");
        return 2;
    }
    float *x = malloc(sizeof(float) * (size_t)in), *y = malloc(sizeof(float) * (size_t)rows);
    struct q8_k_block *xa = malloc(sizeof *xa * (size_t)(in / QK_K));
    for (int i = 0; i < in; i++) x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    fmt_q8_k_quantize_act(x, xa, in);
    struct {
        const char *name;
        size_t block, d_off, dmin_off;
        kern_range_fn fn[3];
    } fmts[] = {
        {"Q4_K", sizeof(struct q4_k_block), 0, offsetof(struct q4_k_block, dmin),
         {fmt_q4_k_range_portable, fmt_q4_k_range_avx2, fmt_q4_k_range_avx512}},
        {"Q6_K", sizeof(struct q6_k_block), offsetof(struct q6_k_block, d), 0,
         {fmt_q6_k_range_portable, fmt_q6_k_range_avx2, fmt_q6_k_range_avx512}},
        {"Q5_K", sizeof(struct q5_k_block), 0, offsetof(struct q5_k_block, dmin),
         {fmt_q5_k_range_portable, fmt_q5_k_range_avx2, fmt_q5_k_range_avx512}},
        {"IQ4_XS", sizeof(struct iq4_xs_block), 0, 0,
         {fmt_iq4_xs_range_portable, fmt_iq4_xs_range_avx2, fmt_iq4_xs_range_avx512}},
        {"Q3_K", sizeof(struct q3_k_block), offsetof(struct q3_k_block, d), 0,
         {fmt_q3_k_range_portable, fmt_q3_k_range_avx2, fmt_q3_k_range_avx512}},
        {"Q2_K", sizeof(struct q2_k_block), offsetof(struct q2_k_block, d), offsetof(struct q2_k_block, dmin),
         {fmt_q2_k_range_portable, fmt_q2_k_range_avx2, fmt_q2_k_range_avx512}},
    };
    const char *isa_names[] = {"portable", "avx2", "avx512"};
    enum kern_isa best = kern_isa_best();
    for (size_t f = 0; f < sizeof fmts / sizeof fmts[0]; f++) {
        if (!selected(only, fmts[f].name)) continue;
        size_t ws = (size_t)(in / QK_K) * fmts[f].block, bytes = ws * (size_t)rows;
        char *w = malloc(bytes);
        if (!w || !x || !y || !xa) return 1;
        fill(w, bytes, fmts[f].block, fmts[f].d_off, fmts[f].dmin_off);
        for (int k = 0; k < 3; k++) {
            if ((k == 1 && best < KERN_ISA_AVX2) || (k == 2 && best < KERN_ISA_AVX512)) continue;
            struct kern_range g = {.w = w, .w_stride = ws, .in = in, .x = x, .xa = xa,
                                   .xa_stride = (size_t)(in / QK_K) * sizeof *xa, .y = y, .ldy = rows,
                                   .r0 = 0, .r1 = rows, .t0 = 0, .t1 = 1};
            double bt = 1e30;
            for (int r = 0; r < (k == 0 ? 1 : reps); r++) {
                double t0 = now();
                fmts[f].fn[k](&g);
                double dt = now() - t0;
                bt = dt < bt ? dt : bt;
            }
            printf("%-6s %-8s %5d x %-6d %7.1f MB  %8.2f ms  %6.2f GB/s  (y[0] %g)\n", fmts[f].name, isa_names[k], rows,
                   in, bytes / 1e6, bt * 1e3, bytes / bt / 1e9, (double)y[0]);
        }
        free(w);
    }
    bench_legacy(rows, in, reps, x, y, only);
    free(x);
    free(y);
    free(xa);
    return 0;
}
