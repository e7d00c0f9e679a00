/* Matmul kernels: every ISA this CPU has, every weight dtype, against a float64 reference and
 * against the portable path; odd sizes (in not a multiple of the vector width, out not a
 * multiple of the tile, n = 1..40); batch invariance (a token's row is bitwise the same
 * whatever n and whatever else is in the batch); Q8_0 quantization; the thread pool. */
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/kernels/format.h"
#include "engine/kernels/fp16.h"
#include "engine/kernels/matmul.h"
#include "engine/kernels/ops.h"
#include "engine/model/kv_cache.h"
#include "engine/model/model.h"
#include "engine/kernels/q8_0.h"
#include "engine/kernels/tensor.h"
#include "engine/kernels/threadpool.h"
#include "tests/testhelp.h"

static uint64_t rng = 88172645463325252ull;
static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* A random [out, in] weight of dtype dt; data owned by the caller (free(t->data)). */
static struct tensor make_weight(enum tensor_dtype dt, int out, int in)
{
    struct tensor t = {dt, 2, {out, in}, NULL};
    size_t n = (size_t)out * in;
    float *f = malloc(n * sizeof *f);
    for (size_t i = 0; i < n; i++) f[i] = frand();
    if (dt == TENSOR_DTYPE_F32) {
        t.data = f;
        return t;
    }
    if (dt == TENSOR_DTYPE_Q8_0) {
        struct q8_0_block *b = malloc(n / Q8_0_BLOCK * sizeof *b);
        for (int r = 0; r < out; r++) q8_0_quantize_row(f + (size_t)r * in, b + (size_t)r * (in / Q8_0_BLOCK), in);
        free(f);
        t.data = b;
        return t;
    }
    uint16_t *h = malloc(n * sizeof *h);
    for (size_t i = 0; i < n; i++) h[i] = dt == TENSOR_DTYPE_BF16 ? to_bf16(f[i]) : f32_to_f16(f[i]);
    free(f);
    t.data = h;
    return t;
}

/* y64[t, r] = sum w[r, i] * x[t, i] in float64 from the weights as stored; mag = sum |w x|. For
 * Q8_0 the activations are the quantized ones, so the reference is exact up to rounding. */
static void reference(const struct tensor *w, const float *x, const struct q8_act_block *xq, int n, double *y,
                      double *mag)
{
    int out = (int)w->shape[0], in = (int)w->shape[1];
    float *row = malloc((size_t)in * sizeof *row), *xr = malloc((size_t)in * sizeof *xr);
    for (int r = 0; r < out; r++) {
        tensor_to_f32(w, (int64_t)r * in, in, row);
        for (int t = 0; t < n; t++) {
            const float *xt = x + (size_t)t * in;
            if (xq) {
                for (int i = 0; i < in; i++)
                    xr[i] = xq[(size_t)t * (in / 32) + i / 32].d * xq[(size_t)t * (in / 32) + i / 32].qs[i % 32];
                xt = xr;
            }
            double s = 0, m = 0;
            for (int i = 0; i < in; i++) {
                s += (double)row[i] * xt[i];
                m += fabs((double)row[i] * xt[i]);
            }
            y[(size_t)t * out + r] = s;
            mag[(size_t)t * out + r] = m;
        }
    }
    free(row);
    free(xr);
}

static const enum tensor_dtype dtypes[] = {TENSOR_DTYPE_F32, TENSOR_DTYPE_F16, TENSOR_DTYPE_BF16, TENSOR_DTYPE_Q8_0};

/* One (dtype, out, in) case over n = 1..max_n on every ISA up to `best`. */
static void check_case(struct threadpool *tp, enum kern_isa best, enum tensor_dtype dt, int out, int in, int max_n)
{
    struct tensor w = make_weight(dt, out, in);
    float *x = malloc((size_t)max_n * in * sizeof *x);
    for (size_t i = 0; i < (size_t)max_n * in; i++) x[i] = frand();
    struct q8_act_block *xq = NULL;
    if (dt == TENSOR_DTYPE_Q8_0) {
        xq = malloc(kern_act_bytes(KERN_ACT_Q8_0, max_n, in));
        kern_prepare_act(tp, KERN_ACT_Q8_0, x, max_n, in, xq);
    }
    double *ref = malloc((size_t)max_n * out * sizeof *ref), *mag = malloc((size_t)max_n * out * sizeof *mag);
    reference(&w, x, xq, max_n, ref, mag);
    float *alone = malloc((size_t)max_n * out * sizeof *alone), *y = malloc((size_t)max_n * (out + 3) * sizeof *y);
    float *portable = malloc((size_t)max_n * out * sizeof *portable);
    for (int isa = KERN_ISA_PORTABLE; isa <= (int)best; isa++) {
        char what[160];
        /* every token alone first: the batch-invariance baseline */
        for (int t = 0; t < max_n; t++)
            kern_matmul_isa(tp, (enum kern_isa)isa, &w, x + (size_t)t * in, xq ? xq + (size_t)t * (in / 32) : NULL, KERN_ACT_Q8_0, 1,
                            alone + (size_t)t * out, out);
        bool close = true;
        for (size_t i = 0; i < (size_t)max_n * out; i++)
            close &= fabs(alone[i] - ref[i]) <= 1e-5 * mag[i] + 1e-6;
        snprintf(what, sizeof what, "%s %s out=%d in=%d: one token matches float64", kern_isa_name(isa),
                 tensor_dtype_name(dt), out, in);
        test_cond(what, close);
        if (isa == KERN_ISA_PORTABLE) memcpy(portable, alone, (size_t)max_n * out * sizeof *alone);
        if (isa == KERN_ISA_AMX && dt == TENSOR_DTYPE_Q8_0) {
            /* AMX sums each block exactly and scales it as quant_q8_0_dot does */
            snprintf(what, sizeof what, "amx Q8_0 out=%d in=%d: bitwise the portable path's rows", out, in);
            test_cond(what, !memcmp(alone, portable, (size_t)max_n * out * sizeof *alone));
        }
        for (int n = 1; n <= max_n; n++) {
            int ldy = out + 3; /* a row stride wider than out */
            memset(y, 0xff, (size_t)n * ldy * sizeof *y);
            kern_matmul_isa(tp, (enum kern_isa)isa, &w, x, xq, KERN_ACT_Q8_0, n, y, ldy);
            bool same = true;
            for (int t = 0; t < n; t++) same &= !memcmp(y + (size_t)t * ldy, alone + (size_t)t * out, out * sizeof *y);
            snprintf(what, sizeof what, "%s %s out=%d in=%d n=%d: rows bitwise equal to one token at a time",
                     kern_isa_name(isa), tensor_dtype_name(dt), out, in, n);
            test_cond(what, same);
        }
        if (dt == TENSOR_DTYPE_Q8_0) { /* without pre-quantized input: each task quantizes */
            kern_matmul_isa(tp, (enum kern_isa)isa, &w, x, NULL, KERN_ACT_F32, max_n, y, out);
            snprintf(what, sizeof what, "%s Q8_0 out=%d in=%d: quantizing inside tasks gives the same rows",
                     kern_isa_name(isa), out, in);
            test_cond(what, !memcmp(y, alone, (size_t)max_n * out * sizeof *y));
        }
    }
    free((void *)w.data);
    free(x);
    free(xq);
    free(ref);
    free(mag);
    free(alone);
    free(portable);
    free(y);
}

/* The opt-in VDPBF16PS kernel against float64 over the bf16-rounded activations, and batch
 * invariance. */
static void check_dpbf16(struct threadpool *tp, int out, int in, int max_n)
{
    struct tensor w = make_weight(TENSOR_DTYPE_BF16, out, in);
    float *x = malloc((size_t)max_n * in * sizeof *x), *xr = malloc((size_t)max_n * in * sizeof *xr);
    uint16_t *xb = malloc((size_t)max_n * in * sizeof *xb);
    for (size_t i = 0; i < (size_t)max_n * in; i++) x[i] = frand();
    kern_prepare_act(tp, KERN_ACT_BF16, x, max_n, in, xb);
    for (size_t i = 0; i < (size_t)max_n * in; i++) xr[i] = bf16_to_f32(xb[i]);
    double *ref = malloc((size_t)max_n * out * sizeof *ref), *mag = malloc((size_t)max_n * out * sizeof *mag);
    reference(&w, xr, NULL, max_n, ref, mag);
    float *alone = malloc((size_t)max_n * out * sizeof *alone), *y = malloc((size_t)max_n * out * sizeof *y);
    for (int t = 0; t < max_n; t++)
        kern_matmul_isa(tp, KERN_ISA_AVX512, &w, x + (size_t)t * in, xb + (size_t)t * in, KERN_ACT_BF16, 1, alone + (size_t)t * out, out);
    bool close = true;
    for (size_t i = 0; i < (size_t)max_n * out; i++) close &= fabs(alone[i] - ref[i]) <= 1e-5 * mag[i] + 1e-6;
    char what[128];
    snprintf(what, sizeof what, "dpbf16 out=%d in=%d: matches float64 of the rounded activations", out, in);
    test_cond(what, close);
    for (int n = 1; n <= max_n; n += n < 8 ? 1 : 7) {
        kern_matmul_isa(tp, KERN_ISA_AVX512, &w, x, xb, KERN_ACT_BF16, n, y, out);
        snprintf(what, sizeof what, "dpbf16 out=%d in=%d n=%d: rows bitwise equal to one token at a time", out, in, n);
        test_cond(what, !memcmp(y, alone, (size_t)n * out * sizeof *y));
    }
    free((void *)w.data);
    free(x);
    free(xr);
    free(xb);
    free(ref);
    free(mag);
    free(alone);
    free(y);
}

static void test_dpbf16(struct threadpool *tp)
{
    if (!kern_has_dpbf16()) {
        printf("no AVX512_BF16 on this CPU: the VDPBF16PS kernel is not tested\n");
        return;
    }
    static const int outs[] = {1, 5, 13, 70}, ins[] = {1, 2, 31, 32, 33, 100, 600};
    for (size_t o = 0; o < sizeof outs / sizeof outs[0]; o++)
        for (size_t i = 0; i < sizeof ins / sizeof ins[0]; i++) check_dpbf16(tp, outs[o], ins[i], 40);
    check_dpbf16(tp, 300, 2048, 70);
}

static void test_large(struct threadpool *tp, enum kern_isa best)
{
    /* large enough for several row and token blocks per matmul */
    check_case(tp, best, TENSOR_DTYPE_BF16, 300, 2048, 70);
    check_case(tp, best, TENSOR_DTYPE_Q8_0, 300, 768, 70);
}

static void test_sizes(struct threadpool *tp, enum kern_isa best)
{
    static const int outs[] = {1, 3, 5, 8, 13, 37, 70};
    static const int ins[] = {1, 7, 8, 15, 16, 17, 31, 33, 100, 130};
    static const int q8_ins[] = {32, 64, 96, 160};
    for (size_t d = 0; d < sizeof dtypes / sizeof dtypes[0]; d++)
        for (size_t o = 0; o < sizeof outs / sizeof outs[0]; o++) {
            if (dtypes[d] == TENSOR_DTYPE_Q8_0) {
                for (size_t i = 0; i < sizeof q8_ins / sizeof q8_ins[0]; i++)
                    check_case(tp, best, dtypes[d], outs[o], q8_ins[i], o % 2 ? 40 : 9);
            } else {
                for (size_t i = 0; i < sizeof ins / sizeof ins[0]; i++)
                    check_case(tp, best, dtypes[d], outs[o], ins[i], (o + i) % 3 ? 9 : 40);
            }
        }
}

/* A hand-checkable case: W = [[1, 2, 3], [4, 5, 6]], x = [1, 0, -1] -> y = [-2, -2]. */
static void test_hand(struct threadpool *tp, enum kern_isa best)
{
    uint16_t wb[6];
    const float wf[6] = {1, 2, 3, 4, 5, 6}, x[3] = {1, 0, -1};
    for (int i = 0; i < 6; i++) wb[i] = to_bf16(wf[i]);
    struct tensor w = {TENSOR_DTYPE_BF16, 2, {2, 3}, wb};
    for (int isa = KERN_ISA_PORTABLE; isa <= (int)best; isa++) {
        float y[2] = {0};
        kern_matmul_isa(tp, (enum kern_isa)isa, &w, x, NULL, KERN_ACT_F32, 1, y, 2);
        test_cond("W x = [-2, -2]", y[0] == -2 && y[1] == -2);
    }
}

/* Several matmuls in one call give the same rows as one call each. */
static void test_many(struct threadpool *tp)
{
    struct tensor w[3] = {make_weight(TENSOR_DTYPE_BF16, 50, 64), make_weight(TENSOR_DTYPE_BF16, 20, 64),
                          make_weight(TENSOR_DTYPE_F16, 33, 64)};
    int n[3] = {3, 0, 17};
    float *x = malloc(20 * 64 * sizeof *x), *y1 = calloc(3 * 20 * 50, sizeof *y1), *y2 = calloc(3 * 20 * 50, sizeof *y2);
    for (int i = 0; i < 20 * 64; i++) x[i] = frand();
    struct kern_mm mm[3];
    for (int i = 0; i < 3; i++) {
        mm[i] = (struct kern_mm){.w = &w[i], .x = x, .n = n[i], .y = y1 + i * 1000, .ldy = 50};
        kern_matmul(tp, &w[i], x, n[i], y2 + i * 1000, 50);
    }
    kern_matmul_many(tp, mm, 3);
    test_cond("kern_matmul_many equals one kern_matmul per matrix", !memcmp(y1, y2, 3 * 20 * 50 * sizeof *y1));
    for (int i = 0; i < 3; i++) free((void *)w[i].data);
    free(x);
    free(y1);
    free(y2);
}

static void test_quant(void)
{
    float x[64], back[64];
    struct q8_0_block b[2];
    for (int i = 0; i < 64; i++) x[i] = frand() * (i < 32 ? 1.0f : 1e-2f);
    x[5] = -1.5f; /* the block's largest magnitude maps to -127 */
    q8_0_quantize_row(x, b, 64);
    q8_0_dequant_row(b, back, 64);
    test_cond("the largest magnitude is quantized to +-127", b[0].qs[5] == -127);
    bool ok = true;
    for (int i = 0; i < 64; i++) ok &= fabsf(back[i] - x[i]) <= f16_to_f32(b[i / 32].d) * 0.5f + 1e-3f * fabsf(x[i]);
    test_cond("dequantized values are within half a step (plus the f16 scale's rounding)", ok);
    float z[32] = {0};
    q8_0_quantize_row(z, b, 32);
    test_cond("an all-zero block has scale 0 and zero values", b[0].d == 0 && b[0].qs[0] == 0 && b[0].qs[31] == 0);
    test_cond("f16 of 1.0 is 0x3c00", f32_to_f16(1.0f) == 0x3c00);

    /* the SIMD quantizers give the bits of the portable ones */
    enum { N = 8, IN = 256 };
    static float xs[N * IN], fw[IN];
    static uint16_t hw[IN];
    for (int i = 0; i < N * IN; i++) xs[i] = frand() * (i % 97 == 0 ? 30.0f : 1.0f);
    for (int i = 0; i < IN; i++) hw[i] = to_bf16(frand() * 0.05f);
    for (int i = 0; i < IN; i++) fw[i] = bf16_to_f32(hw[i]);
    static struct q8_act_block qa[N * IN / 32], qb[N * IN / 32];
    struct ms_err err = {{0}};
    struct threadpool *tp = tp_create(2, 16, &err);
    kern_prepare_act(tp, KERN_ACT_Q8_0, xs, N, IN, qa);
    for (int t = 0; t < N; t++) q8_0_quantize_act(KERN_ISA_PORTABLE, xs + t * IN, qb + t * (IN / 32), IN);
    test_cond("kern_prepare_act (best ISA) equals the portable Q8_0 quantizer bitwise", !memcmp(qa, qb, sizeof qa));
    tp_destroy(tp);
    struct q8_0_block wa[IN / 32], wb2[IN / 32];
    float scratch[IN];
    struct tensor w = {TENSOR_DTYPE_BF16, 2, {1, IN}, hw};
    tensor_quantize_row(&w, 0, TENSOR_DTYPE_Q8_0, wa, scratch);
    q8_0_quantize_row(fw, wb2, IN);
    test_cond("tensor_quantize_row BF16 -> Q8_0 equals q8_0_quantize_row of the float values bitwise", !memcmp(wa, wb2, sizeof wa));
    test_cond("f16 of 65520 overflows to inf", f32_to_f16(65520.0f) == 0x7c00);
}

static void count_task(void *ctx, int task, int thread)
{
    (void)thread;
    atomic_fetch_add((atomic_long *)ctx, task + 1);
}

/* Many short runs (as a decode step does), including after the workers went to sleep. */
static void test_pool(void)
{
    struct ms_err err = {{0}};
    struct threadpool *tp = tp_create(3, 16, &err);
    atomic_long sum = 0;
    for (int i = 0; i < 20000; i++) tp_run(tp, 1 + i % 7, count_task, &sum);
    long want = 0;
    for (int i = 0; i < 20000; i++) want += (long)(1 + i % 7) * (2 + i % 7) / 2;
    test_cond("every task of 20000 runs ran once", atomic_load(&sum) == want);
    struct timespec ts = {0, 30 * 1000 * 1000};
    nanosleep(&ts, NULL); /* workers sleep on the condition variable now */
    atomic_store(&sum, 0);
    tp_run(tp, 100, count_task, &sum);
    test_cond("a run after the workers slept", atomic_load(&sum) == 5050);
    tp_destroy(tp);
}

/* Logits [n, vocab] of n tokens of one sequence, in one batch (one_at_a_time: one per forward). */
static int run_forward(const struct model *m, const int32_t *tokens, int n, bool one_at_a_time, float *logits)
{
    const struct model_config *c = &m->cfg;
    struct ms_err err = {{0}};
    int bs = 16, blocks = (n + bs - 1) / bs, rc = -1;
    struct threadpool *tp = tp_create(2, model_scratch_floats(m, n), &err);
    struct model_scratch *s = model_scratch_create(m, n, &err);
    struct kv_cache *kv = kv_cache_create(c->num_layers, blocks, bs, c->num_kv_heads, c->head_dim, TENSOR_DTYPE_F32, &err);
    int32_t pos[64], seq[64] = {0}, table[4] = {0, 1, 2, 3};
    for (int i = 0; i < n; i++) pos[i] = i;
    const int32_t *tables[1] = {table};
    if (tp && s && kv) {
        rc = 0;
        for (int i = 0; rc == 0 && i < n; i += one_at_a_time ? 1 : n) {
            int cnt = one_at_a_time ? 1 : n;
            struct fwd_batch b = {cnt, tokens + i, pos + i, pos + i, seq, 1, tables, cnt, pos};
            rc = model_forward(m, s, kv, tp, &b, logits + (size_t)i * c->vocab_size, &err);
        }
    }
    kv_cache_destroy(kv);
    model_scratch_destroy(s);
    tp_destroy(tp);
    return rc;
}

/* A load option on the tiny checkpoint (Q8_0 weights, bf16 activations): batch-invariant, and
 * close to the stored weights in float. */
static void check_model_variant(const char *what, const struct model_load_opts *o, double max_rel)
{
    /* the generated checkpoints (MS_MODELS, which the Sanitize suite shares with the normal build) */
    const char *models = getenv("MS_MODELS");
    char dir[4096], msg[160];
    snprintf(dir, sizeof dir, "%s/tiny", models ? models : "build/models");
    struct ms_err err = {{0}};
    struct model *mb = NULL, *mq = NULL;
    if (model_load(dir, false, &mb, &err) || model_load_with_opts(dir, o, &mq, &err)) {
        fprintf(stderr, "cannot load %s: %s\n", dir, err.msg);
        test_cond("load the tiny model", false);
        model_free(mb);
        return;
    }
    if (o->quantize_q8_0) {
        test_cond("the quantized model says so", model_is_quantized(mq) && !model_is_quantized(mb));
        test_cond("expert weights are Q8_0", mq->weights->layers[0].experts[0].gate.dtype == TENSOR_DTYPE_Q8_0);
    }
    enum { N = 40 };
    int vocab = mq->cfg.vocab_size;
    int32_t tokens[N];
    for (int i = 0; i < N; i++) tokens[i] = (int32_t)((i * 7919 + 13) % vocab);
    float *lb = malloc((size_t)N * vocab * sizeof(float)), *lq = malloc((size_t)N * vocab * sizeof(float));
    float *lq1 = malloc((size_t)N * vocab * sizeof(float));
    int rc = run_forward(mb, tokens, N, false, lb);
    rc |= run_forward(mq, tokens, N, false, lq);
    rc |= run_forward(mq, tokens, N, true, lq1);
    test_cond("forwards ran", rc == 0);
    snprintf(msg, sizeof msg, "%s: batched logits bitwise equal one token at a time", what);
    test_cond(msg, !memcmp(lq, lq1, (size_t)N * vocab * sizeof(float)));
    double se = 0, sum = 0, sum2 = 0;
    for (size_t i = 0; i < (size_t)N * vocab; i++) {
        se += (double)(lq[i] - lb[i]) * (lq[i] - lb[i]);
        sum += lb[i];
        sum2 += (double)lb[i] * lb[i];
    }
    double cnt = (double)N * vocab, rms = sqrt(se / cnt), sd = sqrt(sum2 / cnt - (sum / cnt) * (sum / cnt));
    snprintf(msg, sizeof msg, "%s: logits close to float activations x stored weights (RMS error %.4f of the std %.3f)",
             what, rms / sd, sd);
    printf("%s\n", msg);
    test_cond(msg, rms / sd < max_rel);
    free(lb);
    free(lq);
    free(lq1);
    model_free(mb);
    model_free(mq);
}

static void test_model_variants(void)
{
    struct model_load_opts q8 = {.quantize_q8_0 = true, .threads = 2}, bf16 = {.bf16_activations = true};
    check_model_variant("Q8_0", &q8, 0.1);
    if (kern_has_dpbf16()) check_model_variant("bf16 activations", &bf16, 0.05);
}

/* The attention kernels of every ISA against float64 on cache-like layouts (rows ldk apart, a
 * head dim with a tail), and batch invariance: scores and sums computed over rows in any split
 * are bitwise the same as over all rows at once. */
static void test_attention(enum kern_isa best)
{
    enum { G = 8, NMAX = 70, LD = 80 };
    static const int hds[] = {128, 100, 8};
    for (int isa = 0; isa <= (int)best; isa++) {
        for (size_t h = 0; h < sizeof hds / sizeof hds[0]; h++) {
            int hd = hds[h], ldk = 3 * hd + 5, bad_scores = 0, bad_split = 0, bad_acc = 0, bad_acc_split = 0;
            float *q = malloc((size_t)G * hd * sizeof(float)), *k = malloc((size_t)NMAX * ldk * sizeof(float));
            float s[G * LD], s2[G * LD], w[G * LD], out[G * 128], out2[G * 128];
            for (int i = 0; i < G * hd; i++) q[i] = frand();
            for (int i = 0; i < NMAX * ldk; i++) k[i] = frand();
            for (int n = 1; n <= NMAX; n += 3) {
                kern_gqa_scores((enum kern_isa)isa, q, G, hd, k, (size_t)ldk, n, 0.125f, s, LD);
                int cut = n / 3; /* the same rows in two calls */
                kern_gqa_scores((enum kern_isa)isa, q, G, hd, k, (size_t)ldk, cut, 0.125f, s2, LD);
                kern_gqa_scores((enum kern_isa)isa, q, G, hd, k + (size_t)cut * ldk, (size_t)ldk, n - cut, 0.125f,
                                s2 + cut, LD);
                for (int g = 0; g < G; g++)
                    for (int i = 0; i < n; i++) {
                        double ref = 0, mag = 0;
                        for (int d = 0; d < hd; d++) {
                            ref += (double)q[g * hd + d] * k[(size_t)i * ldk + d];
                            mag += fabs((double)q[g * hd + d] * k[(size_t)i * ldk + d]);
                        }
                        bad_scores += fabs(s[g * LD + i] - ref * 0.125) > 1e-6 * (mag + 1e-3);
                        bad_split += s[g * LD + i] != s2[g * LD + i];
                        w[g * LD + i] = frand();
                    }
                for (int i = 0; i < G * hd; i++) out[i] = out2[i] = frand();
                double init[G * 128];
                for (int i = 0; i < G * hd; i++) init[i] = out[i];
                kern_gqa_acc((enum kern_isa)isa, out, G, hd, k, (size_t)ldk, n, w, LD);
                kern_gqa_acc((enum kern_isa)isa, out2, G, hd, k, (size_t)ldk, cut, w, LD);
                kern_gqa_acc((enum kern_isa)isa, out2, G, hd, k + (size_t)cut * ldk, (size_t)ldk, n - cut, w + cut, LD);
                for (int g = 0; g < G; g++)
                    for (int d = 0; d < hd; d++) {
                        double ref = init[g * hd + d], mag = fabs(ref);
                        for (int i = 0; i < n; i++) {
                            ref += (double)w[g * LD + i] * k[(size_t)i * ldk + d];
                            mag += fabs((double)w[g * LD + i] * k[(size_t)i * ldk + d]);
                        }
                        bad_acc += fabs(out[g * hd + d] - ref) > 1e-6 * (mag + 1e-3);
                        bad_acc_split += out[g * hd + d] != out2[g * hd + d];
                    }
            }
            char msg[160];
            snprintf(msg, sizeof msg, "%s hd=%d: attention scores match float64", kern_isa_name(isa), hd);
            test_cond(msg, bad_scores == 0);
            snprintf(msg, sizeof msg, "%s hd=%d: scores bitwise the same in any split of the rows", kern_isa_name(isa), hd);
            test_cond(msg, bad_split == 0);
            snprintf(msg, sizeof msg, "%s hd=%d: weighted V sums match float64", kern_isa_name(isa), hd);
            test_cond(msg, bad_acc == 0);
            snprintf(msg, sizeof msg, "%s hd=%d: weighted V sums bitwise the same in any split", kern_isa_name(isa), hd);
            test_cond(msg, bad_acc_split == 0);
            free(q);
            free(k);
        }
    }
}

/* Softmax and SwiGLU of every ISA against float64, over ranges that reach exp's underflow and
 * overflow, with lengths that leave vector tails. */
static void test_softmax_swiglu(enum kern_isa best)
{
    enum { N = 203 };
    for (int isa = 0; isa <= (int)best; isa++) {
        int bad_soft = 0, bad_silu = 0;
        for (int n = 1; n <= N; n += 11) {
            float x[N], gate[N], up[N];
            for (int i = 0; i < n; i++) x[i] = 10 * frand(); /* x - max is then rounded by at most 1.2e-6 */
            x[n / 2] = -1e30f; /* underflows to exactly 0 */
            double mx = -INFINITY, sum = 0;
            for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
            for (int i = 0; i < n; i++) sum += exp((double)x[i] - mx);
            double want[N];
            for (int i = 0; i < n; i++) want[i] = exp((double)x[i] - mx) / sum;
            kern_softmax_isa((enum kern_isa)isa, x, n);
            for (int i = 0; i < n; i++) bad_soft += fabs(x[i] - want[i]) > 3e-6 * want[i] + 1e-30;
            for (int i = 0; i < n; i++) {
                gate[i] = 200 * frand(); /* silu saturates both ways */
                up[i] = frand();
            }
            double ws[N];
            for (int i = 0; i < n; i++) ws[i] = gate[i] / (1 + exp(-(double)gate[i])) * up[i];
            kern_swiglu((enum kern_isa)isa, gate, up, (size_t)n);
            for (int i = 0; i < n; i++) bad_silu += fabs(gate[i] - ws[i]) > 1e-6 * fabs(ws[i]) + 1e-30;
        }
        char msg[128];
        snprintf(msg, sizeof msg, "%s: softmax matches float64 (relative 3e-6)", kern_isa_name(isa));
        test_cond(msg, bad_soft == 0);
        snprintf(msg, sizeof msg, "%s: swiglu matches float64 (relative 1e-6)", kern_isa_name(isa));
        test_cond(msg, bad_silu == 0);
    }
}

int main(void)
{
    enum kern_isa best = kern_isa_best();
    printf("best ISA on this CPU: %s\n", kern_isa_name(best));
    struct ms_err err = {{0}};
    struct threadpool *tp2 = tp_create(2, kern_scratch_floats(2048), &err);
    struct threadpool *tp1 = tp_create(1, kern_scratch_floats(2048), &err);
    test_hand(tp2, best);
    test_attention(best);
    test_softmax_swiglu(best);
    test_quant();
    test_sizes(tp2, best);
    test_large(tp2, best);
    test_large(tp1, best); /* one thread: the same rows */
    test_dpbf16(tp2);
    test_many(tp2);
    test_pool();
    test_model_variants();
    tp_destroy(tp1);
    tp_destroy(tp2);
    test_report();
}
