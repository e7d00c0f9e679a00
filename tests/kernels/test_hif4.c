/* The HiFloat4 kernels (engine/kernels/hif4.h); the format's bits against numpy are
 * tests/reference/hif4.py. Here: the portable kernel against a float64 dot of the dequantized
 * weight and activation rows, the AVX2 and AVX-512 kernels against the portable bits (random
 * metadata included, every E6M2 but NaN), batch invariance (each token alone, rows and tokens
 * split), and the registry path through kern_matmul. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/ms_common.h"
#include "engine/kernels/cpu.h"
#include "engine/kernels/format.h"
#include "engine/kernels/hif4.h"
#include "engine/kernels/matmul.h"
#include "engine/kernels/q8_0.h"
#include "engine/kernels/tensor.h"
#include "engine/kernels/threadpool.h"
#include "tests/testhelp.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static uint32_t rnd(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}

static float gauss(void)
{
    double u = (rnd() + 1.0) / 4294967297.0, v = rnd() / 4294967296.0;
    return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

/* y[t, r] for rows [r0, r1), tokens [t0, t1) */
static void run(kern_range_fn fn, const void *w, size_t ws, int in, const void *xa, size_t xs, float *y, int rows,
                int r0, int r1, int t0, int t1, void *scratch)
{
    struct kern_range g = {(const char *)w, ws, in, NULL, xa, xs, y, rows, r0, r1, t0, t1, scratch};
    fn(&g);
}

static void check_shape(int rows, int in, int n, int random_bytes)
{
    char msg[200];
    const struct weight_format *f = fmt_get(TENSOR_DTYPE_HIF4);
    size_t ws = fmt_row_bytes(f, in), xs = (size_t)(in / 32) * sizeof(struct q8_act_block);
    uint8_t *w = malloc(ws * rows);
    float *x = malloc(sizeof(float) * in * n), *wf = malloc(sizeof(float) * in), *y = malloc(sizeof(float) * rows * n),
          *y2 = malloc(sizeof(float) * rows * n);
    struct q8_act_block *xa = malloc(xs * n);
    void *scratch = aligned_alloc(64, (hif4_avx512_scratch_bytes(in) + 63) / 64 * 64);
    float *row = malloc(sizeof(float) * in);
    for (int r = 0; r < rows; r++) {
        if (random_bytes) {
            for (size_t i = 0; i < ws; i++) w[r * ws + i] = (uint8_t)rnd();
            for (int u = 0; u < in / HIF4_UNIT; u++)
                if (w[r * ws + 36 * u] == 0xFF) w[r * ws + 36 * u] = 0xFE;
            continue;
        }
        float sc = ldexpf(1.0f, (int)(rnd() % 20) - 10);
        for (int i = 0; i < in; i++) row[i] = gauss() * sc * (r % 3 == 0 ? (float)(1 + i % 97) : 1.0f);
        hif4_quantize_row(row, w + r * ws, in);
    }
    for (int i = 0; i < in * n; i++) x[i] = gauss() * (i % 61 == 0 ? 8.0f : 1.0f);
    for (int t = 0; t < n; t++) fmt_act(KERN_ACT_Q8_0)->quantize_row(KERN_ISA_PORTABLE, x + (size_t)t * in,
                                                                     (char *)xa + t * xs, in);
    run(hif4_range_portable, w, ws, in, xa, xs, y, rows, 0, rows, 0, n, scratch);
    /* portable against float64 */
    int ok = 1;
    for (int r = 0; r < rows; r++) {
        hif4_dequant_row(w + r * ws, wf, in);
        for (int t = 0; t < n; t++) {
            const struct q8_act_block *a = (const struct q8_act_block *)((const char *)xa + t * xs);
            double s = 0, sa = 0;
            for (int i = 0; i < in; i++) {
                double xv = (double)a[i / 32].d * a[i / 32].qs[i % 32];
                s += (double)wf[i] * xv;
                sa += fabs((double)wf[i] * xv);
            }
            if (fabs(y[(size_t)t * rows + r] - s) > 1e-5 * sa + 1e-30) ok = 0;
        }
    }
    snprintf(msg, sizeof msg, "portable = float64 dot of dequantized rows (rel 1e-5), %d x %d x %d%s", rows, in, n,
             random_bytes ? ", random units" : "");
    test_cond(msg, ok);
    enum kern_isa best = kern_isa_best();
    kern_range_fn fns[2] = {hif4_range_avx2, hif4_range_avx512};
    const char *names[2] = {"avx2", "avx512"};
    for (int k = 0; k < 2; k++) {
        if (best < (k ? KERN_ISA_AVX512 : KERN_ISA_AVX2)) {
            printf("hif4 %s skipped (CPU)\n", names[k]);
            continue;
        }
        memset(y2, 0xff, sizeof(float) * rows * n);
        run(fns[k], w, ws, in, xa, xs, y2, rows, 0, rows, 0, n, scratch);
        snprintf(msg, sizeof msg, "%s = portable bit for bit, %d x %d x %d%s", names[k], rows, in, n,
                 random_bytes ? ", random units" : "");
        test_cond(msg, !memcmp(y, y2, sizeof(float) * rows * n));
        /* batch invariance: each token alone, and an uneven split of rows and tokens */
        memset(y2, 0xff, sizeof(float) * rows * n);
        for (int t = 0; t < n; t++) run(fns[k], w, ws, in, xa, xs, y2, rows, 0, rows, t, t + 1, scratch);
        snprintf(msg, sizeof msg, "%s: each token alone = the batch", names[k]);
        test_cond(msg, !memcmp(y, y2, sizeof(float) * rows * n));
        memset(y2, 0xff, sizeof(float) * rows * n);
        int rs = rows / 3, ts = n > 3 ? 3 : 1;
        run(fns[k], w, ws, in, xa, xs, y2, rows, 0, rs, 0, ts, scratch);
        run(fns[k], w, ws, in, xa, xs, y2, rows, rs, rows, 0, ts, scratch);
        run(fns[k], w, ws, in, xa, xs, y2, rows, 0, rows, ts, n, scratch);
        snprintf(msg, sizeof msg, "%s: rows and tokens split = the batch", names[k]);
        test_cond(msg, !memcmp(y, y2, sizeof(float) * rows * n));
    }
    struct ms_err err;
    struct threadpool *tp = tp_create(2, kern_scratch_floats(in), &err);
    test_cond("thread pool", tp != NULL);
    if (tp) {
        struct tensor tw = {.dtype = TENSOR_DTYPE_HIF4, .ndim = 2, .shape = {rows, in}, .data = w};
        memset(y2, 0xff, sizeof(float) * rows * n);
        kern_matmul(tp, &tw, x, n, y2, rows);
        snprintf(msg, sizeof msg, "kern_matmul (%s) = portable, bit for bit", kern_matmul_kernel_name(&tw, best, 0));
        test_cond(msg, !memcmp(y, y2, sizeof(float) * rows * n));
        test_cond("HIF4 reads Q8_0 activations", kern_matmul_act(&tw, 0) == KERN_ACT_Q8_0);
        tp_destroy(tp);
    }
    free(w); free(x); free(wf); free(y); free(y2); free(xa); free(scratch); free(row);
}

int main(void)
{
    check_shape(37, 2048, 13, 0);
    check_shape(11, 192, 9, 0);
    check_shape(9, 320, 5, 1);
    check_shape(5, 64, 1, 0);
    test_report();
}
