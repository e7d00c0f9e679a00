/* Matmul kernel micro-benchmark: GB/s of weights streamed (decode shapes) and GFLOP/s (prefill
 * shapes) per ISA and dtype, next to the machine's read bandwidth measured in the same run.
 *
 * Then OpenBLAS against our kernels where it could serve (a prefill projection, prefill
 * attention).
 *
 * usage: bench_kernels [--threads N] [--reps R]
 * Best of R repetitions; prints a Markdown table. */
#include <cblas.h>
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ms_common.h"
#include "engine/kernels/format.h"
#include "engine/kernels/matmul.h"
#include "engine/kernels/ops.h"
#include "engine/kernels/threadpool.h"
#include "bench/bench_util.h"

/* Weights with realistic magnitudes (normal floats near 0.02; no denormals, which are slow). */
static struct tensor make(enum tensor_dtype dt, int out, int in)
{
    struct tensor t = {dt, 2, {out, in}, NULL};
    size_t bytes = (size_t)out * tensor_row_bytes(&t);
    void *p = aligned_alloc(64, (bytes + 63) / 64 * 64);
    float row[8192];
    uint32_t s = 12345;
    for (int r = 0; r < out; r++) {
        for (int i = 0; i < in; i++) {
            s = s * 1664525u + 1013904223u;
            row[i] = ((float)(s >> 8) / 16777216.0f - 0.5f) * 0.05f;
        }
        char *dst = (char *)p + (size_t)r * tensor_row_bytes(&t);
        fmt_get(dt)->quantize_row(row, dst, in);
    }
    t.data = p;
    return t;
}

static float *random_floats(size_t n)
{
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    return p;
}

/* Our attention over one KV head's G = 8 query heads for a causal prompt of n tokens, as the
 * engine runs it (a run of rows at a time, per token); the softmax is left out on both sides. */
static void attention_ours(const float *q, const float *k, const float *v, float *s, float *o, int n, int hd)
{
    enum { G = 8 };
    for (int t = 0; t < n; t++) {
        kern_gqa_scores(kern_isa_best(), q + (size_t)t * G * hd, G, hd, k, (size_t)hd, t + 1, 0.088f, s, n);
        kern_gqa_acc(kern_isa_best(), o + (size_t)t * G * hd, G, hd, v, (size_t)hd, t + 1, s, n);
    }
}

/* The same with two OpenBLAS GEMMs over the whole square (S = Q K^T, O = S V: causal masking
 * would come on top). */
static void attention_blas(const float *q, const float *k, const float *v, float *s, float *o, int n, int hd)
{
    int rows = 8 * n;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, n, hd, 0.088f, q, hd, k, hd, 0.0f, s, n);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, n, 1.0f, s, n, v, hd, 0.0f, o, hd);
}

/* Issue 6 asks to use OpenBLAS where it is fastest: the two places it could serve, timed against
 * our kernels with the same thread count. (1) A prefill projection: OpenBLAS needs float32
 * weights (twice the bytes of BF16); ours reads BF16. (2) Prefill attention of one KV head. */
static void compare_openblas(struct threadpool *tp, int threads, int reps)
{
    openblas_set_num_threads(threads);
    printf("\n%s(kernels for %s; OPENBLAS_CORETYPE=%s) against ours, %d threads, best of %d:\n\n", OPENBLAS_VERSION,
           openblas_get_corename(), getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "unset", threads, reps);
    printf("| computation | ours ms | OpenBLAS ms | ours GFLOP/s | OpenBLAS GFLOP/s |\n| --- | --- | --- | --- | --- |\n");
    enum { OUT = 4096, IN = 2048, N = 512, HD = 128 };
    struct tensor w = make(TENSOR_DTYPE_BF16, OUT, IN);
    float *wf = malloc((size_t)OUT * IN * sizeof *wf), *x = random_floats((size_t)N * IN);
    float *y = malloc((size_t)N * OUT * sizeof *y);
    tensor_to_f32(&w, 0, (int64_t)OUT * IN, wf);
    double ours = 1e9, blas = 1e9;
    for (int r = 0; r < reps; r++) {
        double t0 = ms_now();
        kern_matmul(tp, &w, x, N, y, OUT);
        double t1 = ms_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OUT, IN, 1.0f, x, IN, wf, IN, 0.0f, y, OUT);
        double t2 = ms_now();
        ours = t1 - t0 < ours ? t1 - t0 : ours;
        blas = t2 - t1 < blas ? t2 - t1 : blas;
    }
    double flop = 2.0 * OUT * IN * N;
    printf("| q_proj prefill, %d tokens x %d x %d (ours BF16 weights, OpenBLAS float32) | %.2f | %.2f | %.0f | %.0f |\n",
           N, OUT, IN, ours * 1e3, blas * 1e3, flop / ours / 1e9, flop / blas / 1e9);
    free((void *)w.data);
    free(wf);
    free(x);
    free(y);

    float *q = random_floats((size_t)8 * N * HD), *k = random_floats((size_t)N * HD), *v = random_floats((size_t)N * HD);
    float *s = malloc((size_t)8 * N * N * sizeof *s), *o = calloc((size_t)8 * N * HD, sizeof *o);
    ours = blas = 1e9;
    openblas_set_num_threads(1); /* the engine runs attention as one task per (token, KV head) */
    for (int r = 0; r < reps; r++) {
        double t0 = ms_now();
        attention_ours(q, k, v, s, o, N, HD);
        double t1 = ms_now();
        attention_blas(q, k, v, s, o, N, HD);
        double t2 = ms_now();
        ours = t1 - t0 < ours ? t1 - t0 : ours;
        blas = t2 - t1 < blas ? t2 - t1 : blas;
    }
    double causal = 2.0 * 2 * 8 * HD * (N * (N + 1.0) / 2); /* the useful work: causal pairs only */
    printf("| attention prefill, one KV head x 8 query heads, %d tokens (one thread each; ours causal, OpenBLAS the full square) | %.2f | %.2f | %.0f | %.0f |\n",
           N, ours * 1e3, blas * 1e3, causal / ours / 1e9, causal / blas / 1e9);
    free(q);
    free(k);
    free(v);
    free(s);
    free(o);
}

int main(int argc, char **argv)
{
    int threads = 2, reps = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
    }
    struct ms_err err = {{0}};
    struct threadpool *tp = tp_create(threads, kern_scratch_floats(8192), &err);
    printf("threads %d, best ISA %s, read bandwidth %.1f GB/s (1 GiB, best of %d)\n\n", threads,
           kern_isa_name(kern_isa_best()), bench_read_bandwidth(tp, 1u << 30, reps), reps);
    static const struct {
        const char *what;
        int out, in, n;
    } shapes[] = {{"lm_head decode", 151936, 2048, 1}, {"expert gate decode", 768, 2048, 1},
                  {"q_proj decode x16", 4096, 2048, 16}, {"q_proj prefill", 4096, 2048, 512},
                  {"expert prefill", 768, 2048, 64}};
    static const enum tensor_dtype dts[] = {TENSOR_DTYPE_BF16, TENSOR_DTYPE_Q8_0};
    printf("| shape | out x in | n | dtype | isa | ms | GB/s weights | GFLOP/s |\n| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (size_t d = 0; d < 2; d++) {
            struct tensor w = make(dts[d], shapes[s].out, shapes[s].in);
            int n = shapes[s].n, in = shapes[s].in, out = shapes[s].out;
            /* small matrices: many copies so that they do not sit in cache */
            int copies = (size_t)out * tensor_row_bytes(&w) < (64u << 20) ? 64 : 1;
            struct tensor *ws = malloc((size_t)copies * sizeof *ws);
            for (int c = 0; c < copies; c++) ws[c] = c ? make(dts[d], out, in) : w;
            float *x = malloc((size_t)n * in * sizeof *x), *y = malloc((size_t)n * out * sizeof *y);
            for (size_t i = 0; i < (size_t)n * in; i++) x[i] = (float)(i % 7) - 3;
            enum kern_act act = kern_matmul_act(&w, 0);
            void *xa = act == KERN_ACT_F32 ? NULL : malloc(kern_act_bytes(act, n, in));
            if (xa) kern_prepare_act(tp, act, x, n, in, xa);
            for (int isa = KERN_ISA_AVX2; isa <= (int)kern_isa_best(); isa++) {
                double best = 1e9;
                for (int r = 0; r < reps; r++) {
                    double t0 = ms_now();
                    for (int c = 0; c < copies; c++)
                        kern_matmul_isa(tp, (enum kern_isa)isa, &ws[c], x, xa, act, n, y, out);
                    double dt = (ms_now() - t0) / copies;
                    best = dt < best ? dt : best;
                }
                double bytes = (double)out * tensor_row_bytes(&w);
                printf("| %s | %d x %d | %d | %s | %s | %.3f | %.1f | %.1f |\n", shapes[s].what, out, in, n,
                       tensor_dtype_name(dts[d]), kern_isa_name(isa), best * 1e3, bytes / best / 1e9,
                       2.0 * out * in * n / best / 1e9);
            }
            for (int c = 0; c < copies; c++) free((void *)ws[c].data);
            free(ws);
            free(x);
            free(y);
            free(xa);
        }
    compare_openblas(tp, threads, reps);
    tp_destroy(tp);
    return 0;
}
