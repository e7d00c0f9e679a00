/* NVFP4 (engine/kernels/nvfp4.h): hand-computed E4M3 / E2M1 cases; the quantizer's bytes and
 * the dequantizer's float bits against the numpy reference (tests/reference/nvfp4.py, through
 * the vector file named by argv[1]); the portable kernel against a float64 dot of the
 * dequantized rows; each ISA kernel against the portable bits, under any row/token split and a
 * token alone; the registry and kern_matmul. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/ms_common.h"
#include "engine/kernels/cpu.h"
#include "engine/kernels/format.h"
#include "engine/kernels/matmul.h"
#include "engine/kernels/nvfp4.h"
#include "engine/kernels/q8_0.h"
#include "engine/kernels/tensor.h"
#include "engine/kernels/threadpool.h"
#include "tests/testhelp.h"

static uint32_t rng = 1616;
static float frand(void) /* roughly normal, deterministic */
{
    float s = 0;
    for (int i = 0; i < 4; i++) {
        rng = rng * 1664525u + 1013904223u;
        s += (float)(rng >> 8) / 16777216.0f - 0.5f;
    }
    return s;
}

/* ---- hand-computed cases ---- */

static void test_e4m3(void)
{
    static const struct {
        float v;
        uint8_t c;
    } enc[] = {
        {448, 0x7E},        {500, 0x7E},         {1e30f, 0x7E},      {0x1p-9f, 0x01},    {0x1p-10f, 0x00},
        {0x1.8p-10f, 0x01}, {1.0f, 0x38},        {1.0625f, 0x38},    {1.1875f, 0x3A},    {240, 0x77},
        {0x1p-6f, 0x08},    {7 * 0x1p-9f, 0x07}, {7.5f * 0x1p-9f, 0x08}, {0, 0x00},      {-3, 0x00},
        {464, 0x7E},        {37.333f, 0x61},     {0.3f, 0x2A},
    };
    int ok = 1;
    for (size_t i = 0; i < sizeof enc / sizeof enc[0]; i++)
        if (nvfp4_f32_to_e4m3(enc[i].v) != enc[i].c) {
            printf("e4m3(%g) = 0x%02X, expected 0x%02X\n", (double)enc[i].v, nvfp4_f32_to_e4m3(enc[i].v), enc[i].c);
            ok = 0;
        }
    test_cond("E4M3 encoding: nearest even, subnormals, saturation at 448 (hand cases)", ok);
    test_cond("E4M3 decoding: 0x7E = 448, 0x01 = 2^-9, 0x07 = 7 * 2^-9, 0x08 = 2^-6, 0xB8 = -1, 0x61 = 36",
              nvfp4_e4m3_to_f32(0x7E) == 448 && nvfp4_e4m3_to_f32(0x01) == 0x1p-9f &&
                  nvfp4_e4m3_to_f32(0x07) == 7 * 0x1p-9f && nvfp4_e4m3_to_f32(0x08) == 0x1p-6f &&
                  nvfp4_e4m3_to_f32(0xB8) == -1 && nvfp4_e4m3_to_f32(0x61) == 36 && nvfp4_e4m3_to_f32(0) == 0);
    int round_trip = 1;
    for (int c = 0; c < 0x7F; c++) round_trip &= nvfp4_f32_to_e4m3(nvfp4_e4m3_to_f32((uint8_t)c)) == c;
    test_cond("E4M3: every code 0..0x7E encodes back to itself", round_trip);
}

/* a super-block whose d is exactly 2^-8: amax 10.5 = 2688 * 2^-8, so block 0's scale is
 * E4M3 448 (0x7E) x 2^-8 = 1.75 and the E2M1 ties are exact */
static void test_e2m1(void)
{
    float x[NVFP4_SUPER] = {0};
    static const float b0[16] = {10.5f, -10.5f, 0.4375f, 1.3125f, 2.1875f, 3.0625f, 4.375f, 6.125f,
                                 8.75f, 9.0f,   -0.1f,   -2.625f, 5.25f,   0.875f,  -0.875f, 0};
    static const int want[16] = {7, 15, 0, 2, 2, 4, 4, 6, 6, 7, 0, 11, 5, 1, 9, 0};
    memcpy(x, b0, sizeof b0);
    x[16] = 0.875f; /* block 1: (0.875 / 6) / 2^-8 = 37.33 -> E4M3 36 (0x61), scale 0.140625 */
    x[17] = -0.5f;  /* 0.5 / 0.140625 = 3.56 -> 4 */
    struct nvfp4_block b;
    nvfp4_quantize_row(x, &b, NVFP4_SUPER);
    int ok = b.d == 0x1p-8f && b.s[0] == 0x7E && b.s[1] == 0x61 && b.s[2] == 0;
    for (int j = 0; j < 16; j++) ok &= (b.qs[j] & 0xF) == want[j];
    ok &= (b.qs[0] >> 4) == 7 && (b.qs[1] >> 4) == (8 | 6); /* values 16, 17: high nibbles of qs[0], qs[1] */
    test_cond("NVFP4 quantizer: d, E4M3 scales and E2M1 codes with ties to even (hand cases)", ok);
    float y[NVFP4_SUPER];
    nvfp4_dequant_row(&b, y, NVFP4_SUPER);
    test_cond("NVFP4 dequantizer: 10.5, -10.5, 0, 1.75, 1.75 * 2, ... and 36 * 2^-8 * 6",
              y[0] == 10.5f && y[1] == -10.5f && y[2] == 0 && y[3] == 1.75f && y[5] == 3.5f && y[7] == 7.0f &&
                  y[11] == -2.625f && y[12] == 5.25f && y[16] == 0.84375f && y[17] == -0.5625f && y[32] == 0);
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

static void check_vectors(const char *path)
{
    size_t len = 0;
    struct ms_err err;
    char *buf = NULL;
    int rc = ms_read_file(path, &buf, &len, &err);
    test_cond("vector file read (tests/reference/nvfp4.py)", rc == 0 && buf != NULL);
    if (rc != 0 || !buf) return;
    struct reader r = {(const unsigned char *)buf, (const unsigned char *)buf + len};
    const struct weight_format *f = fmt_by_name("NVFP4");
    uint32_t rows = 0, cols = 0, raw_rows = 0;
    const void *magic = take(&r, 4);
    int head = magic && !memcmp(magic, "NVF1", 4) && take_u32(&r, &rows) && take_u32(&r, &cols);
    test_cond("NVFP4 registered: 256 values in 148 bytes", f && f->block_values == 256 && f->block_bytes == 148);
    size_t rb = f ? fmt_row_bytes(f, cols) : 0, n = (size_t)rows * cols;
    const float *x = head ? take(&r, n * 4) : NULL;
    const unsigned char *q = x ? take(&r, rows * rb) : NULL;
    const float *deq = q ? take(&r, n * 4) : NULL;
    const unsigned char *raw = deq && take_u32(&r, &raw_rows) ? take(&r, raw_rows * rb) : NULL;
    const float *raw_deq = raw ? take(&r, (size_t)raw_rows * cols * 4) : NULL;
    test_cond("vector file complete", raw_deq && rb);
    if (!raw_deq || !rb) {
        free(buf);
        return;
    }
    unsigned char *mine = malloc(rows * rb);
    float *y = malloc(sizeof(float) * (n > (size_t)raw_rows * cols ? n : (size_t)raw_rows * cols));
    int bad = 0;
    for (uint32_t i = 0; i < rows; i++) {
        f->quantize_row(x + (size_t)i * cols, mine + i * rb, cols);
        for (size_t b = 0; b < cols / NVFP4_SUPER; b++)
            if (memcmp(mine + i * rb + b * 148, q + i * rb + b * 148, 148)) {
                if (!bad) printf("NVFP4: quantized row %u super-block %zu differs from the reference\n", i, b);
                bad++;
            }
    }
    char msg[160];
    snprintf(msg, sizeof msg, "NVFP4 quantizer = numpy reference bytes (%d of %u super-blocks differ)", bad,
             rows * cols / NVFP4_SUPER);
    test_cond(msg, bad == 0);
    for (uint32_t i = 0; i < rows; i++) f->dequant_row(q + i * rb, y + (size_t)i * cols, cols);
    test_cond("NVFP4 dequantizer = numpy reference bits (quantized rows)", float_mismatches("NVFP4", y, deq, n) == 0);
    for (uint32_t i = 0; i < raw_rows; i++) f->dequant_row(raw + i * rb, y + (size_t)i * cols, cols);
    test_cond("NVFP4 dequantizer = numpy reference bits (random raw super-blocks)",
              float_mismatches("NVFP4 raw", y, raw_deq, (size_t)raw_rows * cols) == 0);
    free(mine);
    free(y);
    free(buf);
}

/* ---- kernels ---- */

static const kern_range_fn kernels[3] = {nvfp4_range_portable, nvfp4_range_avx2, nvfp4_range_avx512};

static void run(kern_range_fn fn, const char *w, size_t ws, int in, const void *xa, size_t xs, float *y, int ldy,
                int r0, int r1, int t0, int t1)
{
    /* the kernel's scratch, as the thread pool gives it (64-aligned, fmt's scratch_bytes) */
    size_t sb = (nvfp4_avx512_scratch_bytes(in) + 63) / 64 * 64;
    void *scratch = aligned_alloc(64, sb ? sb : 64);
    if (!scratch) abort();
    struct kern_range g = {.w = w, .w_stride = ws, .in = in, .xa = xa, .xa_stride = xs, .y = y, .ldy = ldy,
                           .r0 = r0, .r1 = r1, .t0 = t0, .t1 = t1, .scratch = scratch};
    fn(&g);
    free(scratch);
}

static void check_isa(int k, const char *w, size_t ws, int in, const char *xa, size_t xs, const float *y, float *y2,
                      int rows, int n)
{
    const char *isa = k == 1 ? "avx2" : "avx512";
    char msg[160];
    memset(y2, 0xff, sizeof(float) * rows * n);
    run(kernels[k], w, ws, in, xa, xs, y2, rows, 0, rows, 0, n);
    snprintf(msg, sizeof msg, "NVFP4 %s = portable, bit for bit (%d x %d, %d tokens)", isa, rows, in, n);
    test_cond(msg, !memcmp(y, y2, sizeof(float) * rows * n));
    memset(y2, 0xff, sizeof(float) * rows * n);
    int rs[] = {0, 1, rows / 3, rows / 2, rows}, ts[] = {0, n > 3 ? 3 : 0, n > 3 ? n - 1 : 0, n};
    for (int a = 0; a + 1 < 5; a++)
        for (int b = 0; b + 1 < 4; b++)
            if (rs[a] < rs[a + 1] && ts[b] < ts[b + 1])
                run(kernels[k], w, ws, in, xa, xs, y2, rows, rs[a], rs[a + 1], ts[b], ts[b + 1]);
    snprintf(msg, sizeof msg, "NVFP4 %s: same bits under any row/token split", isa);
    test_cond(msg, !memcmp(y, y2, sizeof(float) * rows * n));
    int same = 1;
    for (int t = 0; t < n; t++) {
        run(kernels[k], w, ws, in, xa + (size_t)t * xs, xs, y2, rows, 0, rows, 0, 1);
        same &= !memcmp(y2, y + (size_t)t * rows, sizeof(float) * rows);
    }
    snprintf(msg, sizeof msg, "NVFP4 %s: a token alone gives the same bits", isa);
    test_cond(msg, same);
}

static void check_kernels(int rows, int in, int n)
{
    const struct weight_format *f = fmt_by_name("NVFP4");
    const struct act_format *a = fmt_act(KERN_ACT_Q8_0);
    size_t ws = fmt_row_bytes(f, in), xs = (size_t)(in / Q8_0_BLOCK) * a->block_bytes;
    char *w = malloc(ws * rows), *xa = malloc(xs * n);
    float *x = malloc(sizeof(float) * (size_t)in * n), *row = malloc(sizeof(float) * (size_t)in);
    float *wf = malloc(sizeof(float) * (size_t)in * rows), *xf = malloc(sizeof(float) * (size_t)in * n);
    float *y = malloc(sizeof(float) * rows * n), *y2 = malloc(sizeof(float) * rows * n);
    for (int r = 0; r < rows; r++) {
        for (int i = 0; i < in; i++) row[i] = frand() * (1 + (r % 4)) * (i % 48 == 7 ? 9 : 1) + (r % 3 == 0 ? 0.3f : 0);
        f->quantize_row(row, w + r * ws, in);
        f->dequant_row(w + r * ws, wf + (size_t)r * in, in);
    }
    for (int t = 0; t < n; t++) {
        for (int i = 0; i < in; i++) x[(size_t)t * in + i] = frand() * (t % 2 ? 3 : 1) - (t % 3 == 1 ? 0.5f : 0);
        a->quantize_row(KERN_ISA_PORTABLE, x + (size_t)t * in, xa + t * xs, in);
        for (int i = 0; i < in; i++) {
            const struct q8_act_block *b = (const struct q8_act_block *)(xa + t * xs) + i / Q8_0_BLOCK;
            xf[(size_t)t * in + i] = b->d * b->qs[i % Q8_0_BLOCK];
        }
    }
    run(kernels[0], w, ws, in, xa, xs, y, rows, 0, rows, 0, n);
    int ok = 1;
    for (int t = 0; t < n; t++)
        for (int r = 0; r < rows; r++) {
            double s = 0, sa = 0;
            for (int i = 0; i < in; i++) {
                double p = (double)wf[(size_t)r * in + i] * xf[(size_t)t * in + i];
                s += p;
                sa += fabs(p);
            }
            if (fabs(y[(size_t)t * rows + r] - s) > 1e-5 * sa + 1e-6) ok = 0;
        }
    char msg[160];
    snprintf(msg, sizeof msg, "NVFP4 portable = float64 dot of the dequantized rows (rel 1e-5), %d x %d x %d", rows,
             in, n);
    test_cond(msg, ok);
    enum kern_isa best = kern_isa_best();
    for (int k = 1; k < 3; k++) {
        if ((k == 1 && best < KERN_ISA_AVX2) || (k == 2 && best < KERN_ISA_AVX512)) {
            printf("NVFP4: %s kernel skipped (CPU)\n", k == 1 ? "avx2" : "avx512");
            continue;
        }
        check_isa(k, w, ws, in, xa, xs, y, y2, rows, n);
    }
    struct ms_err err;
    struct threadpool *tp = tp_create(2, kern_scratch_floats(in), &err);
    test_cond("thread pool", tp != NULL);
    if (tp) {
        struct tensor tw = {.dtype = f->dtype, .ndim = 2, .shape = {rows, in}, .data = w};
        memset(y2, 0xff, sizeof(float) * rows * n);
        kern_matmul(tp, &tw, x, n, y2, rows);
        snprintf(msg, sizeof msg, "NVFP4 kern_matmul (%s) = portable, bit for bit", kern_matmul_kernel_name(&tw, best, 0));
        test_cond(msg, !memcmp(y, y2, sizeof(float) * rows * n));
        test_cond("NVFP4 kernels read Q8_0 activations", kern_matmul_act(&tw, 0) == KERN_ACT_Q8_0);
        tp_destroy(tp);
    }
    free(w); free(xa); free(x); free(row); free(wf); free(xf); free(y); free(y2);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: test_nvfp4 VECTORS (from tests/reference/nvfp4.py)\n");
        return 2;
    }
    test_e4m3();
    test_e2m1();
    check_vectors(argv[1]);
    /* super-block counts 1..3 and 8, token counts on both sides of the kernels' blocks of 4 (AVX2) and 8 (AVX-512) */
    check_kernels(9, 256, 1);
    check_kernels(13, 512, 5);
    check_kernels(11, 768, 9);
    check_kernels(20, 2048, 3);
    check_kernels(7, 256, 4);
    test_report();
}
