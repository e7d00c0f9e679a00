/* ggml's 32-value block formats (engine/kernels/qlegacy.h) against the numpy reference
 * (tests/reference/ggml_formats.py, through the vectors of tests/reference/legacy_vectors.py,
 * the file named by argv[1]): the quantizer gives the reference's bytes, the dequantizer its
 * float bits, on Gaussian rows, edge blocks and random raw blocks. Then every kernel: the
 * portable one against a float64 dot of the dequantized rows, each ISA against the portable
 * bits, batch invariance (any row/token split, a token alone), and the registry path. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/ms_common.h"
#include "engine/kernels/cpu.h"
#include "engine/kernels/format.h"
#include "engine/kernels/matmul.h"
#include "engine/kernels/q8_0.h"
#include "engine/kernels/qlegacy.h"
#include "engine/kernels/tensor.h"
#include "engine/kernels/threadpool.h"
#include "tests/testhelp.h"

struct fmt_case {
    const char *name;
    size_t ggml_block_bytes; /* ggml-common.h's sizeof(block_*) */
    enum kern_act act;
    kern_range_fn fn[3]; /* portable, avx2, avx512 */
};

#define CASE(NAME, sfx, bytes, ACT)                                                                \
    {NAME, bytes, KERN_ACT_##ACT, {ql_##sfx##_range_portable, ql_##sfx##_range_avx2, ql_##sfx##_range_avx512}}

static const struct fmt_case cases[] = {
    CASE("Q4_0", q4_0, 18, Q8_0), CASE("Q4_1", q4_1, 20, Q8_1),     CASE("Q5_0", q5_0, 22, Q8_0),
    CASE("Q5_1", q5_1, 24, Q8_1), CASE("IQ4_NL", iq4_nl, 18, Q8_0), CASE("MXFP4", mxfp4, 17, Q8_0),
};
#define N_CASES (int)(sizeof cases / sizeof cases[0])

static const struct fmt_case *case_named(const char *name)
{
    for (int i = 0; i < N_CASES; i++)
        if (!strcmp(cases[i].name, name)) return &cases[i];
    return NULL;
}

static uint32_t rng = 4242;
static float frand(void) /* roughly normal, deterministic */
{
    float s = 0;
    for (int i = 0; i < 4; i++) {
        rng = rng * 1664525u + 1013904223u;
        s += (float)(rng >> 8) / 16777216.0f - 0.5f;
    }
    return s;
}

/* ---- the numpy vectors ---- */

struct reader {
    const unsigned char *p, *end;
};

static const void *take(struct reader *r, size_t n)
{
    if ((size_t)(r->end - r->p) < n) return NULL;
    const void *at = r->p;
    r->p += n;
    return at;
}

static int take_u32(struct reader *r, uint32_t *v)
{
    const void *p = take(r, 4);
    if (p) memcpy(v, p, 4);
    return p != NULL;
}

/* How many of n floats differ in their bits; the first one is printed. */
static int float_mismatches(const char *what, const float *got, const float *want, size_t n)
{
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], sizeof(float))) {
            if (!bad) printf("%s: first mismatch at %zu: %.9g, reference %.9g\n", what, i, (double)got[i], (double)want[i]);
            bad++;
        }
    return bad;
}

static void check_vectors_of(struct reader *r)
{
    char name[17] = {0};
    uint32_t type, rows, cols, raw_rows;
    const void *nm = take(r, 16);
    if (!nm || !take_u32(r, &type) || !take_u32(r, &rows) || !take_u32(r, &cols)) {
        test_cond("vector file: format header", 0);
        r->p = r->end;
        return;
    }
    memcpy(name, nm, 16);
    const struct weight_format *f = fmt_by_name(name);
    const struct fmt_case *c = case_named(name);
    char msg[200];
    snprintf(msg, sizeof msg, "%s registered under its ggml name with ggml's block size", name);
    test_cond(msg, f && c && f->block_values == QL_BLOCK && f->block_bytes == c->ggml_block_bytes &&
                       !strcmp(f->name, name));
    if (!f || !c) {
        r->p = r->end;
        return;
    }
    size_t rb = fmt_row_bytes(f, cols), n = (size_t)rows * cols;
    const float *x = take(r, n * 4);
    const unsigned char *q = take(r, rows * rb);
    const float *deq = take(r, n * 4);
    const unsigned char *raw = NULL;
    const float *raw_deq = NULL;
    if (take_u32(r, &raw_rows)) {
        raw = take(r, raw_rows * rb);
        raw_deq = take(r, (size_t)raw_rows * cols * 4);
    }
    if (!x || !q || !deq || !raw || !raw_deq) {
        test_cond("vector file: complete", 0);
        r->p = r->end;
        return;
    }
    unsigned char *mine = malloc(rows * rb);
    float *y = malloc(sizeof(float) * (n > (size_t)raw_rows * cols ? n : (size_t)raw_rows * cols));
    int bad_blocks = 0;
    for (uint32_t i = 0; i < rows; i++) {
        f->quantize_row(x + (size_t)i * cols, mine + i * rb, cols);
        for (size_t b = 0; b < cols / QL_BLOCK; b++) {
            size_t at = i * rb + b * f->block_bytes;
            if (memcmp(mine + at, q + at, f->block_bytes)) {
                if (!bad_blocks) printf("%s: quantized row %u block %zu differs from the reference\n", name, i, b);
                bad_blocks++;
            }
        }
    }
    snprintf(msg, sizeof msg, "%s quantizer = numpy reference bytes (%d of %u blocks differ)", name, bad_blocks,
             rows * cols / QL_BLOCK);
    test_cond(msg, bad_blocks == 0);
    for (uint32_t i = 0; i < rows; i++) f->dequant_row(q + i * rb, y + (size_t)i * cols, cols);
    snprintf(msg, sizeof msg, "%s dequantizer = numpy reference bits (quantized rows)", name);
    test_cond(msg, float_mismatches(name, y, deq, n) == 0);
    for (uint32_t i = 0; i < raw_rows; i++) f->dequant_row(raw + i * rb, y + (size_t)i * cols, cols);
    snprintf(msg, sizeof msg, "%s dequantizer = numpy reference bits (random raw blocks)", name);
    test_cond(msg, float_mismatches(name, y, raw_deq, (size_t)raw_rows * cols) == 0);
    free(mine);
    free(y);
}

static void check_vectors(const char *path)
{
    size_t len = 0;
    struct ms_err err;
    char *buf = NULL;
    int rc = ms_read_file(path, &buf, &len, &err);
    test_cond("vector file read (tests/reference/legacy_vectors.py)", rc == 0 && buf != NULL);
    if (rc != 0 || !buf) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    struct reader r = {(const unsigned char *)buf, (const unsigned char *)buf + len};
    uint32_t count = 0;
    const void *magic = take(&r, 4);
    test_cond("vector file magic", magic && !memcmp(magic, "QLV1", 4) && take_u32(&r, &count));
    test_cond("vector file has every format", count == (uint32_t)N_CASES);
    for (uint32_t i = 0; i < count && r.p < r.end; i++) check_vectors_of(&r);
    free(buf);
}

/* ---- activations ---- */

/* row of prepared activations back to float */
static void act_to_float(enum kern_act act, const void *row, float *out, int in)
{
    for (int i = 0; i < in; i++) {
        if (act == KERN_ACT_Q8_1) {
            const struct ql_q8_1_act_block *b = (const struct ql_q8_1_act_block *)row + i / QL_BLOCK;
            out[i] = b->d * b->qs[i % QL_BLOCK];
        } else {
            const struct q8_act_block *b = (const struct q8_act_block *)row + i / QL_BLOCK;
            out[i] = b->d * b->qs[i % QL_BLOCK];
        }
    }
}

static void test_q8_1(void)
{
    enum { N = 8 * QL_BLOCK };
    float x[N];
    for (int i = 0; i < N; i++) x[i] = frand() * (1 + i / 32);
    for (int i = 64; i < 96; i++) x[i] = 0;
    struct ql_q8_1_act_block a1[N / QL_BLOCK];
    struct q8_act_block a0[N / QL_BLOCK];
    fmt_act(KERN_ACT_Q8_1)->quantize_row(KERN_ISA_PORTABLE, x, a1, N);
    fmt_act(KERN_ACT_Q8_0)->quantize_row(KERN_ISA_PORTABLE, x, a0, N);
    int same = 1, sums = 1;
    for (int b = 0; b < N / QL_BLOCK; b++) {
        int s = 0;
        for (int i = 0; i < QL_BLOCK; i++) s += a1[b].qs[i];
        sums &= a1[b].s == a1[b].d * (float)s;
        same &= a1[b].d == a0[b].d && !memcmp(a1[b].qs, a0[b].qs, QL_BLOCK);
    }
    test_cond("q8_1: d and qs are the Q8_0 activation quantizer's", same);
    test_cond("q8_1: s = d * sum(qs)", sums);
    test_cond("q8_1 of a zero block: d = s = 0", a1[2].d == 0 && a1[2].s == 0 && a1[2].qs[5] == 0);
}

/* ---- kernels ---- */

/* A kernel run with its scratch as matmul.c gives it (64-byte aligned, the registered size),
 * poisoned so that reading what the kernel did not write shows. */
static void run(kern_range_fn fn, const char *w, size_t ws, int in, const void *xa, size_t xs, float *y, int ldy,
                int r0, int r1, int t0, int t1)
{
    size_t sb = (ql_avx512_scratch_bytes(in) + 63) / 64 * 64;
    void *scratch = aligned_alloc(64, sb);
    MS_ASSERT(scratch);
    memset(scratch, 0xA5, sb);
    struct kern_range g = {.w = w, .w_stride = ws, .in = in, .xa = xa, .xa_stride = xs, .y = y, .ldy = ldy,
                           .r0 = r0, .r1 = r1, .t0 = t0, .t1 = t1, .scratch = scratch};
    fn(&g);
    free(scratch);
}

static void check_isa(const struct fmt_case *c, int k, const char *w, size_t ws, int in, const char *xa, size_t xs,
                      const float *y, float *y2, int rows, int n)
{
    const char *isa = k == 0 ? "portable" : k == 1 ? "avx2" : "avx512";
    char msg[200];
    memset(y2, 0xff, sizeof(float) * rows * n);
    run(c->fn[k], w, ws, in, xa, xs, y2, rows, 0, rows, 0, n);
    snprintf(msg, sizeof msg, "%s %s = portable, bit for bit (%d x %d, %d tokens)", c->name, isa, rows, in, n);
    test_cond(msg, !memcmp(y, y2, sizeof(float) * rows * n));
    memset(y2, 0xff, sizeof(float) * rows * n);
    int rs[] = {0, 1, rows / 3, rows / 2, rows}, ts[] = {0, n > 3 ? 3 : 0, n > 3 ? n - 1 : 0, n};
    for (int a = 0; a + 1 < 5; a++)
        for (int b = 0; b + 1 < 4; b++)
            if (rs[a] < rs[a + 1] && ts[b] < ts[b + 1])
                run(c->fn[k], w, ws, in, xa, xs, y2, rows, rs[a], rs[a + 1], ts[b], ts[b + 1]);
    snprintf(msg, sizeof msg, "%s %s: same bits under any row/token split", c->name, isa);
    test_cond(msg, !memcmp(y, y2, sizeof(float) * rows * n));
    int same = 1;
    for (int t = 0; t < n; t++) {
        run(c->fn[k], w, ws, in, xa + (size_t)t * xs, xs, y2, rows, 0, rows, 0, 1);
        same &= !memcmp(y2, y + (size_t)t * rows, sizeof(float) * rows);
    }
    snprintf(msg, sizeof msg, "%s %s: a token alone (n = 1) gives the same bits", c->name, isa);
    test_cond(msg, same);
}

static void check_kernels(const struct fmt_case *c, int rows, int in, int n)
{
    const struct weight_format *f = fmt_by_name(c->name);
    const struct act_format *a = fmt_act(c->act);
    if (!f) return;
    size_t ws = fmt_row_bytes(f, in), xs = (size_t)(in / QL_BLOCK) * a->block_bytes;
    char *w = malloc(ws * rows), *xa = malloc(xs * n), *xa2 = malloc(xs * n);
    float *x = malloc(sizeof(float) * (size_t)in * n), *row = malloc(sizeof(float) * (size_t)in);
    float *wf = malloc(sizeof(float) * (size_t)in * rows), *xf = malloc(sizeof(float) * (size_t)in * n);
    float *y = malloc(sizeof(float) * rows * n), *y2 = malloc(sizeof(float) * rows * n);
    for (int r = 0; r < rows; r++) {
        for (int i = 0; i < in; i++) row[i] = frand() * (1 + (r % 4)) + (r % 3 == 0 ? 0.3f : 0);
        f->quantize_row(row, w + r * ws, in);
        f->dequant_row(w + r * ws, wf + (size_t)r * in, in);
    }
    int act_isa_same = 1;
    for (int t = 0; t < n; t++) {
        for (int i = 0; i < in; i++) x[(size_t)t * in + i] = frand() * (t % 2 ? 3 : 1) - (t % 3 == 1 ? 0.5f : 0);
        a->quantize_row(KERN_ISA_PORTABLE, x + (size_t)t * in, xa + t * xs, in);
        a->quantize_row(kern_isa_best(), x + (size_t)t * in, xa2 + t * xs, in);
        act_isa_same &= !memcmp(xa + t * xs, xa2 + t * xs, xs);
        act_to_float(c->act, xa + t * xs, xf + (size_t)t * in, in);
    }
    char msg[200];
    snprintf(msg, sizeof msg, "%s: %s activations have the same bits on every ISA", c->name, a->name);
    test_cond(msg, act_isa_same);
    run(c->fn[0], w, ws, in, xa, xs, y, rows, 0, rows, 0, n);
    /* portable vs a float64 dot of the dequantized weights and activations: float rounding only;
     * vs the unquantized activations: within sum |w| * d_x / 2 */
    int ok_q = 1, ok_f = 1;
    for (int t = 0; t < n; t++)
        for (int r = 0; r < rows; r++) {
            double s = 0, sa = 0, sf = 0, bound = 0;
            for (int i = 0; i < in; i++) {
                double wv = wf[(size_t)r * in + i], dx = *(const float *)(xa + t * xs + (i / QL_BLOCK) * a->block_bytes);
                s += wv * xf[(size_t)t * in + i];
                sa += fabs(wv * xf[(size_t)t * in + i]);
                sf += wv * x[(size_t)t * in + i];
                bound += fabs(wv) * dx * 0.5;
            }
            double got = y[(size_t)t * rows + r];
            if (fabs(got - s) > 1e-5 * sa + 1e-6) ok_q = 0;
            if (fabs(got - sf) > bound * 1.001 + 1e-5 * sa) ok_f = 0;
        }
    snprintf(msg, sizeof msg, "%s portable = float64 dot of the dequantized rows (rel 1e-5), %d x %d", c->name, rows, in);
    test_cond(msg, ok_q);
    snprintf(msg, sizeof msg, "%s portable = float dot within the activation rounding bound", c->name);
    test_cond(msg, ok_f);
    enum kern_isa best = kern_isa_best();
    for (int k = 0; k < 3; k++) {
        if ((k == 1 && best < KERN_ISA_AVX2) || (k == 2 && best < KERN_ISA_AVX512)) {
            printf("%s: %s kernel skipped (CPU)\n", c->name, k == 1 ? "avx2" : "avx512");
            continue;
        }
        check_isa(c, k, w, ws, in, xa, xs, y, y2, rows, n);
    }
    /* the registry and the matmul entry point, 2 threads, activations prepared by matmul.c */
    struct ms_err err;
    struct threadpool *tp = tp_create(2, kern_scratch_floats(in), &err);
    test_cond("thread pool", tp != NULL);
    if (tp) {
        struct tensor tw = {.dtype = f->dtype, .ndim = 2, .shape = {rows, in}, .data = w};
        memset(y2, 0xff, sizeof(float) * rows * n);
        kern_matmul(tp, &tw, x, n, y2, rows);
        snprintf(msg, sizeof msg, "%s kern_matmul (%s) = portable, bit for bit", c->name,
                 kern_matmul_kernel_name(&tw, best, 0));
        test_cond(msg, !memcmp(y, y2, sizeof(float) * rows * n));
        test_cond("the kernel reads the activations it is registered with", kern_matmul_act(&tw, 0) == c->act);
        tp_destroy(tp);
    }
    free(w); free(xa); free(xa2); free(x); free(row); free(wf); free(xf); free(y); free(y2);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_formats_legacy VECTORS (from tests/reference/legacy_vectors.py)\n");
        return 2;
    }
    check_vectors(argv[1]);
    test_q8_1();
    for (int i = 0; i < N_CASES; i++) {
        /* block counts of every residue mod 4 (the accumulator chains) and token counts on
         * both sides of the kernels' token blocks (4, 8) */
        check_kernels(&cases[i], 37, 800, 11); /* 25 blocks */
        check_kernels(&cases[i], 9, 32, 1);    /* 1 */
        check_kernels(&cases[i], 13, 96, 5);   /* 3 */
        check_kernels(&cases[i], 7, 192, 2);   /* 6 */
        check_kernels(&cases[i], 11, 224, 9);  /* 7 */
        check_kernels(&cases[i], 20, 2048, 3); /* 64 */
    }
    test_report();
}
