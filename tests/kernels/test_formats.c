/* The super-block formats (engine/kernels/kquants.h, kquants_low.h, iq4_xs.h). Expected block values are worked out by hand
 * from ggml's layout description (the comments show the arithmetic); kernels are checked
 * against a float64 dot of the dequantized rows. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kernels/cpu.h"
#include "engine/kernels/format.h"
#include "engine/kernels/iq4_xs.h"
#include "engine/kernels/kquants.h"
#include "engine/kernels/kquants_low.h"
#include "engine/kernels/matmul.h"
#include "engine/kernels/tensor.h"
#include "engine/kernels/threadpool.h"
#include "common/ms_common.h"
#include "tests/testhelp.h"

static uint32_t rng = 12345;
static float frand(void) /* roughly normal, deterministic */
{
    float s = 0;
    for (int i = 0; i < 4; i++) {
        rng = rng * 1664525u + 1013904223u;
        s += (float)(rng >> 8) / 16777216.0f - 0.5f;
    }
    return s;
}

static void test_q4_k_hand(void)
{
    struct q4_k_block b;
    b.d = 0x3C00;    /* 1.0 */
    b.dmin = 0x3800; /* 0.5 */
    /* scales 1,2,3,4,17,33,5,6 and mins 0,1,2,3,16,0,0,0: bytes 0..3 = sc0..3 | (sc4..7 >> 4) << 6,
     * bytes 4..7 = m0..3 | (m4..7 >> 4) << 6, bytes 8..11 = (sc4..7 & 15) | (m4..7 & 15) << 4 */
    const uint8_t packed[12] = {1 | 1 << 6, 2 | 2 << 6, 3, 4, 0 | 1 << 6, 1, 2, 3, 0x01, 0x01, 0x05, 0x06};
    memcpy(b.scales, packed, 12);
    for (int l = 0; l < 128; l++) b.qs[l] = (uint8_t)((l % 16) | (15 - l % 16) << 4);
    float y[QK_K];
    fmt_q4_k_dequant_row(&b, y, QK_K);
    /* y[i]: chunk i / 64; the low nibbles are its first 32 values, the high nibbles the next 32 */
    test_cond("q4_k y[0] = 1*1*0 - 0.5*0", y[0] == 0.0f);
    test_cond("q4_k y[5] = 1*1*5 - 0", y[5] == 5.0f);
    test_cond("q4_k y[33] = 1*2*14 - 0.5*1", y[33] == 27.5f);
    test_cond("q4_k y[70] = 1*3*6 - 0.5*2", y[70] == 17.0f);
    test_cond("q4_k y[100] = 1*4*(15-4) - 0.5*3", y[100] == 42.5f);
    test_cond("q4_k y[130] = 1*17*2 - 0.5*16", y[130] == 26.0f);
    test_cond("q4_k y[170] = 1*33*(15-10) - 0", y[170] == 165.0f);
    test_cond("q4_k y[200] = 1*5*8 - 0", y[200] == 40.0f);
    test_cond("q4_k y[250] = 1*6*(15-10) - 0", y[250] == 30.0f);
    test_cond("q4_k y[255] = 1*6*0", y[255] == 0.0f);
}

static void test_q6_k_hand(void)
{
    struct q6_k_block b;
    b.d = 0x3800; /* 0.5 */
    for (int j = 0; j < 16; j++) b.scales[j] = (int8_t)(j - 8);
    for (int i = 0; i < 128; i++) b.ql[i] = (uint8_t)i;
    memset(b.qh, 0xE4, sizeof b.qh); /* 2-bit fields 0, 1, 2, 3 for the 4 parts of 32 */
    float y[QK_K];
    fmt_q6_k_dequant_row(&b, y, QK_K);
    /* v in half h = v / 128, part p = (v % 128) / 32, l = v % 32: low bits from ql[64h + 32 (p & 1) + l]
     * (low nibble for p < 2, high for p >= 2), high bits = p; group v / 16 */
    test_cond("q6_k y[0] = 0.5*-8*(0-32)", y[0] == 128.0f);
    test_cond("q6_k y[40] = 0.5*-6*(8+16-32)", y[40] == 24.0f);
    test_cond("q6_k y[70] = 0.5*-4*(0+32-32)", y[70] == 0.0f);
    test_cond("q6_k y[100] = 0.5*-2*(2+48-32)", y[100] == -18.0f);
    test_cond("q6_k y[130] = 0.5*0*x", y[130] == 0.0f);
    test_cond("q6_k y[180] = 0.5*3*(4+16-32)", y[180] == -18.0f);
    test_cond("q6_k y[200] = 0.5*4*(4+32-32)", y[200] == 8.0f);
    test_cond("q6_k y[255] = 0.5*7*(7+48-32)", y[255] == 80.5f);
}

static void test_q5_k_hand(void)
{
    struct q5_k_block b;
    b.d = 0x3C00;    /* 1.0 */
    b.dmin = 0x3800; /* 0.5 */
    /* Q4_K's scale packing: scales 1,2,3,4,17,33,5,6, mins 0,1,2,3,16,0,0,0 (test_q4_k_hand) */
    const uint8_t packed[12] = {1 | 1 << 6, 2 | 2 << 6, 3, 4, 0 | 1 << 6, 1, 2, 3, 0x01, 0x01, 0x05, 0x06};
    memcpy(b.scales, packed, 12);
    for (int l = 0; l < 128; l++) b.qs[l] = (uint8_t)((l % 16) | (15 - l % 16) << 4);
    for (int l = 0; l < 32; l++) b.qh[l] = (uint8_t)l;
    float y[QK_K];
    fmt_q5_k_dequant_row(&b, y, QK_K);
    /* y[i]: sub-block j = i / 32, l = i % 32: the nibble of qs[32 (j / 2) + l] (high for odd j)
     * plus 16 * bit j of qh[l] = l */
    test_cond("q5_k y[0] = 1*1*0 - 0", y[0] == 0.0f);
    test_cond("q5_k y[5] = 1*1*(5+16) - 0", y[5] == 21.0f);
    test_cond("q5_k y[33] = 1*2*14 - 0.5*1", y[33] == 27.5f);
    test_cond("q5_k y[34] = 1*2*(13+16) - 0.5*1", y[34] == 57.5f);
    test_cond("q5_k y[70] = 1*3*(6+16) - 0.5*2", y[70] == 65.0f);
    test_cond("q5_k y[130] = 1*17*2 - 0.5*16", y[130] == 26.0f);
    test_cond("q5_k y[144] = 1*17*(0+16) - 0.5*16", y[144] == 264.0f);
    test_cond("q5_k y[250] = 1*6*5 - 0", y[250] == 30.0f);
    test_cond("q5_k y[255] = 1*6*0", y[255] == 0.0f);
}

static void test_iq4_xs_hand(void)
{
    struct iq4_xs_block b;
    b.d = 0x3800; /* 0.5 */
    /* ls = 0, 31, 32, 33, 63, 40, 20, 1: low nibbles 0,15,0,1,15,8,4,1; high bits 0,1,2,2,3,2,1,0 */
    const uint8_t lo[8] = {0, 15, 0, 1, 15, 8, 4, 1}, hi[8] = {0, 1, 2, 2, 3, 2, 1, 0};
    b.scales_h = 0;
    for (int j = 0; j < 8; j++) b.scales_h = (uint16_t)(b.scales_h | hi[j] << (2 * j));
    for (int k = 0; k < 4; k++) b.scales_l[k] = (uint8_t)(lo[2 * k] | lo[2 * k + 1] << 4);
    for (int l = 0; l < 128; l++) b.qs[l] = (uint8_t)((l % 16) | (15 - l % 16) << 4);
    float y[QK_K];
    fmt_iq4_xs_dequant_row(&b, y, QK_K);
    /* y[i]: sub-block j = i / 32, l = i % 32: index = low nibble of qs[16 j + l] for l < 16, else
     * the high nibble of qs[16 j + l - 16]; value 0.5 * (ls[j] - 32) * kvalues[index] */
    test_cond("iq4_xs y[0] = 0.5*-32*kv[0]=-127", y[0] == 2032.0f);
    test_cond("iq4_xs y[20] = 0.5*-32*kv[15-4]=38", y[20] == -608.0f);
    test_cond("iq4_xs y[40] = 0.5*-1*kv[8]=1", y[40] == -0.5f);
    test_cond("iq4_xs y[70] = 0.5*0*x", y[70] == 0.0f);
    test_cond("iq4_xs y[100] = 0.5*1*kv[4]=-49", y[100] == -24.5f);
    test_cond("iq4_xs y[140] = 0.5*31*kv[12]=53", y[140] == 821.5f);
    test_cond("iq4_xs y[170] = 0.5*8*kv[10]=25", y[170] == 100.0f);
    test_cond("iq4_xs y[255] = 0.5*-31*kv[0]", y[255] == 1968.5f);
}

static void test_q2_q3_k_hand(void)
{
    /* value i: half h = i / 128, k = (i % 128) / 32, l = i % 32: bits 2k of qs[32 h + l] */
    struct q2_k_block b2;
    b2.d = 0x3800;    /* 0.5 */
    b2.dmin = 0x3400; /* 0.25 */
    for (int j = 0; j < 16; j++) b2.scales[j] = (uint8_t)(((j % 15) + 1) | (j % 4) << 4);
    for (int i = 0; i < 64; i++) b2.qs[i] = (uint8_t)((7 * i + 3) % 256);
    float y[QK_K];
    fmt_q2_k_dequant_row(&b2, y, QK_K);
    test_cond("q2_k y[0]: qs[0]=3, q 3, sc 1, m 0: 1.5", y[0] == 1.5f);
    test_cond("q2_k y[40]: qs[8]=59 bits 2-3 = 2, sc 3, m 2: 0.5*3*2 - 0.25*2", y[40] == 2.5f);
    test_cond("q2_k y[200]: qs[40]=27 bits 4-5 = 1, sc 13, m 0", y[200] == 6.5f);
    test_cond("q2_k y[255]: qs[63]=188 bits 6-7 = 2, sc 1, m 3: 1 - 0.75", y[255] == 0.25f);

    struct q3_k_block b3;
    b3.d = 0x4000; /* 2.0 */
    for (int i = 0; i < 32; i++) b3.hmask[i] = (uint8_t)(0x5A ^ i);
    memcpy(b3.qs, b2.qs, sizeof b3.qs);
    /* scales (5j + 17) % 64: low nibble in byte j % 8 (high nibble for j >= 8), 2 high bits at
     * bits 2 (j / 4) of byte 8 + j % 4 */
    memset(b3.scales, 0, sizeof b3.scales);
    for (int j = 0; j < 16; j++) {
        int v = (5 * j + 17) % 64;
        b3.scales[j % 8] |= (uint8_t)((v & 15) << (4 * (j / 8)));
        b3.scales[8 + j % 4] |= (uint8_t)((v >> 4) << (2 * (j / 4)));
    }
    fmt_q3_k_dequant_row(&b3, y, QK_K);
    /* q = 2 low bits - (bit i / 32 of hmask[i % 32] ? 0 : 4) */
    test_cond("q3_k y[0]: 3 - 4 (0x5A bit 0 clear), scale 17-32: 2*-15*-1", y[0] == 30.0f);
    test_cond("q3_k y[40]: 2 - 0 (0x52 bit 1 set), scale 27-32: 2*-5*2", y[40] == -20.0f);
    test_cond("q3_k y[200]: 1 - 0 (0x52 bit 6 set), scale 13-32: 2*-19*1", y[200] == -38.0f);
    test_cond("q3_k y[255]: 2 - 4 (0x45 bit 7 clear), scale 28-32: 2*-4*-2", y[255] == 16.0f);
}

static double rms(const float *a, const float *b, int n)
{
    double s = 0;
    for (int i = 0; i < n; i++) s += ((double)a[i] - (b ? b[i] : 0)) * ((double)a[i] - (b ? b[i] : 0));
    return sqrt(s / n);
}

static void test_roundtrip(void)
{
    enum { N = 4 * QK_K };
    float x[N], y[N];
    for (int i = 0; i < N; i++) x[i] = frand() * (1 + (i / 64) % 3);
    struct q4_k_block q4[N / QK_K];
    struct q6_k_block q6[N / QK_K];
    fmt_q4_k_quantize_row(x, q4, N);
    fmt_q4_k_dequant_row(q4, y, N);
    double r4 = rms(x, y, N) / rms(x, NULL, N);
    test_cond("q4_k round trip rms error < 10%", r4 < 0.10);
    fmt_q6_k_quantize_row(x, q6, N);
    fmt_q6_k_dequant_row(q6, y, N);
    double r6 = rms(x, y, N) / rms(x, NULL, N);
    test_cond("q6_k round trip rms error < 2.5%", r6 < 0.025);
    test_cond("q6_k is more accurate than q4_k", r6 < r4 / 2);
    printf("round trip relative rms: q4_k %.4f q6_k %.4f\n", r4, r6);
    /* the other super-block formats: uniform-quantizer estimates (step / sqrt 12) with headroom,
     * as tests/reference/test_ggml_formats.py's bounds */
    const struct {
        const char *name;
        double bound;
    } more[] = {{"Q5_K", 0.045}, {"IQ4_XS", 0.09}, {"Q3_K", 0.17}, {"Q2_K", 0.36}};
    for (size_t k = 0; k < sizeof more / sizeof more[0]; k++) {
        const struct weight_format *f = fmt_by_name(more[k].name);
        char blk[N / QK_K * 256], msg[96];
        f->quantize_row(x, blk, N);
        f->dequant_row(blk, y, N);
        double r = rms(x, y, N) / rms(x, NULL, N);
        snprintf(msg, sizeof msg, "%s round trip rms error %.4f < %.3f", more[k].name, r, more[k].bound);
        test_cond(msg, r < more[k].bound);
    }

    struct q8_k_block a[N / QK_K];
    fmt_q8_k_quantize_act(x, a, N);
    int ok = 1;
    for (int b = 0; b < N / QK_K; b++) {
        for (int k = 0; k < 16; k++) {
            int s = 0;
            for (int i = 0; i < 16; i++) s += a[b].qs[16 * k + i];
            ok &= s == a[b].bsums[k];
        }
        for (int i = 0; i < QK_K; i++) ok &= fabsf(x[b * QK_K + i] - a[b].d * a[b].qs[i]) <= a[b].d * 0.5f * 1.0001f;
    }
    test_cond("q8_k: bsums are the sums of 16, |x - d q| <= d / 2", ok);
    float z[QK_K] = {0};
    struct q8_k_block az;
    fmt_q8_k_quantize_act(z, &az, QK_K);
    test_cond("q8_k of zeros is d = 0, all q = 0", az.d == 0 && az.qs[7] == 0 && az.bsums[3] == 0);
}

/* ---- kernels ---- */

struct fmt_case {
    const char *name;
    size_t block_bytes;
    void (*quantize)(const float *, void *, int64_t);
    void (*dequant)(const void *, float *, int64_t);
    kern_range_fn fn[3]; /* portable, avx2, avx512 */
};

static void run(kern_range_fn fn, const char *w, size_t ws, int in, const struct q8_k_block *xa, float *y, int ldy,
                int r0, int r1, int t0, int t1)
{
    struct kern_range g = {.w = w, .w_stride = ws, .in = in, .xa = xa, .xa_stride = (size_t)(in / QK_K) * sizeof *xa,
                           .y = y, .ldy = ldy, .r0 = r0, .r1 = r1, .t0 = t0, .t1 = t1};
    fn(&g);
}

static void check_format(const struct fmt_case *f, int rows, int in, int n)
{
    size_t ws = (size_t)(in / QK_K) * f->block_bytes;
    char *w = malloc(ws * rows);
    float *x = malloc(sizeof(float) * (size_t)in * n), *row = malloc(sizeof(float) * (size_t)in);
    float *wf = malloc(sizeof(float) * (size_t)in * rows), *xf = malloc(sizeof(float) * (size_t)in * n);
    struct q8_k_block *xa = malloc(sizeof *xa * (size_t)(in / QK_K) * n);
    float *y = malloc(sizeof(float) * rows * n), *y2 = malloc(sizeof(float) * rows * n);
    for (int r = 0; r < rows; r++) {
        for (int i = 0; i < in; i++) row[i] = frand() * (1 + (r % 4)) + (r % 3 == 0 ? 0.3f : 0);
        f->quantize(row, w + r * ws, in);
        f->dequant(w + r * ws, wf + (size_t)r * in, in);
    }
    for (int t = 0; t < n; t++) {
        for (int i = 0; i < in; i++) x[(size_t)t * in + i] = frand() * (t % 2 ? 3 : 1);
        fmt_q8_k_quantize_act(x + (size_t)t * in, xa + (size_t)t * (in / QK_K), in);
        fmt_q8_k_dequant_row(xa + (size_t)t * (in / QK_K), xf + (size_t)t * in, in);
    }
    run(f->fn[0], w, ws, in, xa, y, rows, 0, rows, 0, n);
    /* portable vs float64 dot of dequantized weights and activations: only float rounding differs;
     * vs the unquantized activations: within sum |w| * d_x / 2 per block */
    int ok_q = 1, ok_f = 1;
    for (int t = 0; t < n; t++)
        for (int r = 0; r < rows; r++) {
            double s = 0, sa = 0, sf = 0, bound = 0;
            for (int i = 0; i < in; i++) {
                double wv = wf[(size_t)r * in + i];
                s += wv * xf[(size_t)t * in + i];
                sa += fabs(wv * xf[(size_t)t * in + i]);
                sf += wv * x[(size_t)t * in + i];
                bound += fabs(wv) * xa[(size_t)t * (in / QK_K) + i / QK_K].d * 0.5;
            }
            double got = y[(size_t)t * rows + r];
            if (fabs(got - s) > 1e-5 * sa + 1e-6) ok_q = 0;
            if (fabs(got - sf) > bound * 1.001 + 1e-5 * sa) ok_f = 0;
        }
    char msg[160];
    snprintf(msg, sizeof msg, "%s portable = float64 dot of the dequantized rows (rel 1e-5)", f->name);
    test_cond(msg, ok_q);
    snprintf(msg, sizeof msg, "%s portable = float dot within the activation rounding bound", f->name);
    test_cond(msg, ok_f);

    enum kern_isa best = kern_isa_best();
    for (int k = 0; k < 3; k++) {
        if ((k == 1 && best < KERN_ISA_AVX2) || (k == 2 && best < KERN_ISA_AVX512)) {
            printf("%s: %s kernel skipped (CPU)\n", f->name, k == 1 ? "avx2" : "avx512");
            continue;
        }
        const char *isa = k == 0 ? "portable" : k == 1 ? "avx2" : "avx512";
        memset(y2, 0xff, sizeof(float) * rows * n);
        run(f->fn[k], w, ws, in, xa, y2, rows, 0, rows, 0, n);
        snprintf(msg, sizeof msg, "%s %s = portable, bit for bit", f->name, isa);
        test_cond(msg, !memcmp(y, y2, sizeof(float) * rows * n));
        /* batch invariance: uneven row and token splits, and each token alone */
        memset(y2, 0xff, sizeof(float) * rows * n);
        int rs[] = {0, 1, 6, rows / 2, rows}, ts[] = {0, n > 3 ? 3 : n, n > 3 ? n - 1 : n, n};
        for (int a = 0; a + 1 < 5; a++)
            for (int b = 0; b + 1 < 4; b++)
                if (rs[a] < rs[a + 1] && ts[b] < ts[b + 1])
                    run(f->fn[k], w, ws, in, xa, y2, rows, rs[a], rs[a + 1], ts[b], ts[b + 1]);
        snprintf(msg, sizeof msg, "%s %s: same bits under any row/token split", f->name, isa);
        test_cond(msg, !memcmp(y, y2, sizeof(float) * rows * n));
        int same = 1;
        for (int t = 0; t < n; t++) {
            float one[64];
            run(f->fn[k], w, ws, in, xa + (size_t)t * (in / QK_K), one, rows, 0, rows, 0, 1);
            same &= !memcmp(one, y + (size_t)t * rows, sizeof(float) * rows);
        }
        snprintf(msg, sizeof msg, "%s %s: a token alone (n = 1) gives the same bits", f->name, isa);
        test_cond(msg, same);
    }
    /* through the registry and the matmul entry point, 2 threads: the same bits */
    const struct weight_format *wf_fmt = fmt_by_name(f->name);
    struct ms_err err;
    struct threadpool *tp = tp_create(2, kern_scratch_floats(in), &err);
    test_cond("format registered under its ggml name", wf_fmt && wf_fmt->block_bytes == f->block_bytes && tp);
    if (wf_fmt && tp) {
        struct tensor tw = {.dtype = wf_fmt->dtype, .ndim = 2, .shape = {rows, in}, .data = w};
        memset(y2, 0xff, sizeof(float) * rows * n);
        kern_matmul(tp, &tw, x, n, y2, rows);
        snprintf(msg, sizeof msg, "%s kern_matmul (%s) = portable, bit for bit", f->name,
                 kern_matmul_kernel_name(&tw, kern_isa_best(), 0));
        test_cond(msg, !memcmp(y, y2, sizeof(float) * rows * n));
    }
    if (tp) tp_destroy(tp);
    free(w); free(x); free(row); free(wf); free(xf); free(xa); free(y); free(y2);
}

int main(void)
{
    test_q4_k_hand();
    test_q6_k_hand();
    test_q5_k_hand();
    test_iq4_xs_hand();
    test_q2_q3_k_hand();
    test_roundtrip();
    const struct fmt_case cases[] = {
        {"q4_k", sizeof(struct q4_k_block), fmt_q4_k_quantize_row, fmt_q4_k_dequant_row,
         {fmt_q4_k_range_portable, fmt_q4_k_range_avx2, fmt_q4_k_range_avx512}},
        {"q6_k", sizeof(struct q6_k_block), fmt_q6_k_quantize_row, fmt_q6_k_dequant_row,
         {fmt_q6_k_range_portable, fmt_q6_k_range_avx2, fmt_q6_k_range_avx512}},
        {"q5_k", sizeof(struct q5_k_block), fmt_q5_k_quantize_row, fmt_q5_k_dequant_row,
         {fmt_q5_k_range_portable, fmt_q5_k_range_avx2, fmt_q5_k_range_avx512}},
        {"iq4_xs", sizeof(struct iq4_xs_block), fmt_iq4_xs_quantize_row, fmt_iq4_xs_dequant_row,
         {fmt_iq4_xs_range_portable, fmt_iq4_xs_range_avx2, fmt_iq4_xs_range_avx512}},
        {"q3_k", sizeof(struct q3_k_block), fmt_q3_k_quantize_row, fmt_q3_k_dequant_row,
         {fmt_q3_k_range_portable, fmt_q3_k_range_avx2, fmt_q3_k_range_avx512}},
        {"q2_k", sizeof(struct q2_k_block), fmt_q2_k_quantize_row, fmt_q2_k_dequant_row,
         {fmt_q2_k_range_portable, fmt_q2_k_range_avx2, fmt_q2_k_range_avx512}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        check_format(&cases[c], 37, 768, 11);
        check_format(&cases[c], 9, 256, 1);
    }
    test_report();
}
