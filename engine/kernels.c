#include "engine/kernels.h"

#include <cpuid.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine/kern_internal.h"

float kern_dot(const float *a, const float *b, int n)
{
    /* eight partial sums let the compiler keep several multiply-adds in flight */
    float s[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += a[i + j] * b[i + j];
    float total = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; i < n; i++) total += a[i] * b[i];
    return total;
}

/* AMX-INT8: the CPU has it (CPUID.7.0:EDX bits 24, 25), the kernel saves the tile state
 * (XCR0 bits 17, 18) and grants this process the tile data (Linux 5.16+: ARCH_REQ_XCOMP_PERM
 * for XFEATURE_XTILEDATA; the permission covers every thread of the process). */
static bool amx_usable(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 24)) || !(d & (1u << 25))) return false;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return false; /* OSXSAVE */
    unsigned xcr0_lo, xcr0_hi;
    __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    if ((xcr0_lo & (3u << 17)) != (3u << 17)) return false;
    enum { ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18 };
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}

/* The CPU's best ISA, found once (the AMX check makes a system call); read-only afterwards. */
static enum kern_isa detected_isa;
static pthread_once_t detect_once = PTHREAD_ONCE_INIT;

static void detect_isa(void)
{
    __builtin_cpu_init();
    detected_isa = KERN_ISA_PORTABLE;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
        detected_isa = KERN_ISA_AVX2;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512vnni"))
        detected_isa = amx_usable() ? KERN_ISA_AMX : KERN_ISA_AVX512;
}

static enum kern_isa cpu_isa(void)
{
    pthread_once(&detect_once, detect_isa);
    return detected_isa;
}

enum kern_isa kern_isa_best(void)
{
    enum kern_isa isa = cpu_isa();
    const char *cap = getenv("MOESERVE_KERNEL_ISA"); /* a test seam: run the slower paths */
    if (cap && !strcmp(cap, "portable")) return KERN_ISA_PORTABLE;
    if (cap && !strcmp(cap, "avx2") && isa > KERN_ISA_AVX2) return KERN_ISA_AVX2;
    if (cap && !strcmp(cap, "avx512") && isa > KERN_ISA_AVX512) return KERN_ISA_AVX512;
    return isa;
}

const char *kern_isa_name(enum kern_isa isa)
{
    switch (isa) {
    case KERN_ISA_PORTABLE: return "portable";
    case KERN_ISA_AVX2: return "avx2";
    case KERN_ISA_AVX512: return "avx512";
    case KERN_ISA_AMX: return "amx";
    }
    return "?";
}

/* Tokens per task: the activations of a token block stay in L2 while its rows go through. */
#define TOKENS_PER_TASK 64

/* Per-thread scratch: first the task's own quantized tokens (Q8_0 without pre-quantized input),
 * or one weight row as float (portable path); then, 64-byte aligned, the AMX token packs. */
static size_t scratch_q8_bytes(int max_in)
{
    size_t q8 = kern_act_q8_bytes(TOKENS_PER_TASK, max_in), row = (size_t)max_in * sizeof(float);
    return ((q8 > row ? q8 : row) + 63) / 64 * 64;
}

size_t kern_scratch_floats(int max_in)
{
    size_t packs = (size_t)(max_in / Q8_0_BLOCK) * sizeof(struct amx_pack);
    return (scratch_q8_bytes(max_in) + packs) / sizeof(float);
}

size_t kern_act_q8_bytes(int n, int in)
{
    return (size_t)n * (size_t)(in / Q8_0_BLOCK) * sizeof(struct q8_act_block);
}

struct quant_job {
    const float *x;
    int in;
    struct q8_act_block *xq;
};

#define QUANT_ROWS_PER_TASK 4

/* One activation row with the best ISA (both give the same bits). */
static void quant_act_row(enum kern_isa isa, const float *x, struct q8_act_block *out, int n)
{
    if (isa >= KERN_ISA_AVX512) kern__quant_act_avx512(x, out, n);
    else quant_q8_act_row(x, out, n);
}

void kern_quantize_row_q8_0(const struct tensor *t, int64_t row, struct q8_0_block *out, float *scratch)
{
    int cols = (int)t->shape[1];
    if (kern_isa_best() >= KERN_ISA_AVX512) {
        kern__quant_w_avx512((const char *)t->data + (size_t)row * tensor_row_bytes(t), t->dtype, out, cols);
        return;
    }
    tensor_to_f32(t, row * cols, cols, scratch);
    quant_q8_0_row(scratch, out, cols);
}

static void quant_task(void *p, int task, int thread)
{
    (void)thread;
    const struct quant_job *j = p;
    int nb = j->in / Q8_0_BLOCK;
    enum kern_isa isa = kern_isa_best();
    for (int t = task * QUANT_ROWS_PER_TASK; t < (task + 1) * QUANT_ROWS_PER_TASK; t++)
        quant_act_row(isa, j->x + (size_t)t * j->in, j->xq + (size_t)t * nb, j->in);
}

void kern_quantize_act(struct threadpool *tp, const float *x, int n, int in, void *xq)
{
    struct quant_job j = {x, in, xq};
    MS_ASSERT(in % Q8_0_BLOCK == 0);
    int full = n / QUANT_ROWS_PER_TASK;
    tp_run(tp, full, quant_task, &j);
    for (int t = full * QUANT_ROWS_PER_TASK; t < n; t++)
        quant_act_row(kern_isa_best(), x + (size_t)t * in, j.xq + (size_t)t * (in / Q8_0_BLOCK), in);
}

/* The portable path: each weight row converted to float once, then dotted with every token. */
static void range_portable(const struct kern_range *g, float *scratch)
{
    const struct tensor *w = g->w;
    int in = g->in, nb = in / Q8_0_BLOCK;
    for (int r = g->r0; r < g->r1; r++) {
        if (w->dtype == TENSOR_DTYPE_Q8_0) {
            const struct q8_0_block *row = (const struct q8_0_block *)w->data + (size_t)r * nb;
            for (int t = g->t0; t < g->t1; t++)
                g->y[(size_t)t * g->ldy + r] = quant_q8_0_dot(row, g->xq + (size_t)t * nb, in);
            continue;
        }
        tensor_to_f32(w, (int64_t)r * in, in, scratch);
        for (int t = g->t0; t < g->t1; t++)
            g->y[(size_t)t * g->ldy + r] = kern_dot(scratch, g->x + (size_t)t * in, in);
    }
}

/* Rows per task: at least 128 KiB of weights (so the shared task counter and the cold start of
 * each task's first rows cost little next to streaming them), more when many tokens reuse each
 * row; a multiple of 8 (the widest tile). */
static int rows_per_task(const struct kern_mm *mm)
{
    size_t row_bytes = tensor_row_bytes(mm->w);
    int rb = (int)((131072 + row_bytes - 1) / row_bytes);
    if (mm->n > 8 && rb < 64) rb = 64;
    rb = (rb + 7) / 8 * 8;
    return rb < 16 ? 16 : rb;
}

struct matmul_job {
    struct kern_mm *mm;
    int count;
    enum kern_isa isa;
    struct threadpool *tp;
};

static void matmul_task(void *p, int task, int thread)
{
    const struct matmul_job *j = p;
    int lo = 0, hi = j->count - 1; /* the last matmul whose first_task <= task */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (j->mm[mid].first_task <= task) lo = mid;
        else hi = mid - 1;
    }
    const struct kern_mm *mm = &j->mm[lo];
    int out = (int)mm->w->shape[0], in = (int)mm->w->shape[1], rb = rows_per_task(mm);
    int n_rb = (out + rb - 1) / rb, local = task - mm->first_task;
    int n_tb = (mm->n + TOKENS_PER_TASK - 1) / TOKENS_PER_TASK;
    int rbi = local / n_tb, tbi = local % n_tb; /* consecutive tasks share a row block */
    MS_ASSERT(rbi < n_rb);
    struct kern_range g = {mm->w, mm->x, mm->xq, NULL, mm->y, mm->ldy, in, rbi * rb, 0, tbi * TOKENS_PER_TASK, 0};
    g.r1 = g.r0 + rb < out ? g.r0 + rb : out;
    g.t1 = g.t0 + TOKENS_PER_TASK < mm->n ? g.t0 + TOKENS_PER_TASK : mm->n;
    float *scratch = tp_scratch(j->tp, thread);
    if (mm->w->dtype == TENSOR_DTYPE_Q8_0 && !mm->xq) {
        /* quantize this task's tokens; row t of the block is row t0 + t of the input */
        struct q8_act_block *xq = (struct q8_act_block *)scratch;
        for (int t = g.t0; t < g.t1; t++)
            quant_act_row(j->isa, mm->x + (size_t)t * in, xq + (size_t)(t - g.t0) * (in / Q8_0_BLOCK), in);
        g.xq = xq - (size_t)g.t0 * (in / Q8_0_BLOCK);
    }
    if (mm->xb && mm->w->dtype == TENSOR_DTYPE_BF16 && j->isa >= KERN_ISA_AVX512 && kern_has_dpbf16()) {
        g.xb = mm->xb;
        kern__range_dpbf16(&g);
        return;
    }
    switch (j->isa) {
    case KERN_ISA_AMX:
        if (mm->w->dtype == TENSOR_DTYPE_Q8_0)
            kern__range_amx(&g, (struct amx_pack *)((char *)scratch + scratch_q8_bytes(in)));
        else
            kern__range_avx512(&g);
        break;
    case KERN_ISA_AVX512: kern__range_avx512(&g); break;
    case KERN_ISA_AVX2: kern__range_avx2(&g); break;
    case KERN_ISA_PORTABLE: range_portable(&g, scratch); break;
    }
}

static void matmul_many_isa(struct threadpool *tp, enum kern_isa isa, struct kern_mm *mm, int count)
{
    int tasks = 0;
    for (int i = 0; i < count; i++) {
        mm[i].first_task = tasks;
        if (mm[i].n <= 0) continue;
        MS_ASSERT(mm[i].w->dtype != TENSOR_DTYPE_Q8_0 || mm[i].w->shape[1] % Q8_0_BLOCK == 0);
        int out = (int)mm[i].w->shape[0], rb = rows_per_task(&mm[i]);
        tasks += (out + rb - 1) / rb * ((mm[i].n + TOKENS_PER_TASK - 1) / TOKENS_PER_TASK);
    }
    struct matmul_job job = {mm, count, isa, tp};
    tp_run(tp, tasks, matmul_task, &job);
}

void kern_matmul_many(struct threadpool *tp, struct kern_mm *mm, int count)
{
    matmul_many_isa(tp, kern_isa_best(), mm, count);
}

void kern_matmul_isa(struct threadpool *tp, enum kern_isa isa, const struct tensor *w, const float *x,
                     const void *xq, int n, float *y, int ldy)
{
    struct kern_mm mm = {w, x, xq, NULL, n, y, ldy, 0};
    matmul_many_isa(tp, isa, &mm, 1);
}

void kern_matmul_dpbf16(struct threadpool *tp, const struct tensor *w, const float *x, const uint16_t *xb, int n,
                        float *y, int ldy)
{
    struct kern_mm mm = {w, x, NULL, xb, n, y, ldy, 0};
    MS_ASSERT(w->dtype == TENSOR_DTYPE_BF16 && kern_has_dpbf16());
    matmul_many_isa(tp, KERN_ISA_AVX512, &mm, 1);
}

bool kern_has_dpbf16(void)
{
    __builtin_cpu_init();
    return cpu_isa() >= KERN_ISA_AVX512 && __builtin_cpu_supports("avx512bf16");
}

void kern_round_act_bf16(const float *x, int n, int in, uint16_t *xb)
{
    for (size_t i = 0; i < (size_t)n * in; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        xb[i] = (u & 0x7fffffffu) > 0x7f800000u ? (uint16_t)((u >> 16) | 0x40)
                                                : (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    }
}

void kern_matmul(struct threadpool *tp, const struct tensor *w, const float *x, int n, float *y, int ldy)
{
    kern_matmul_isa(tp, kern_isa_best(), w, x, NULL, n, y, ldy);
}

void kern_gqa_scores(enum kern_isa isa, const float *q, int G, int hd, const float *k, size_t ldk, int n, float scale,
                     float *s, int ld)
{
    if (isa >= KERN_ISA_AVX512) {
        kern__gqa_scores_avx512(q, G, hd, k, ldk, n, scale, s, ld);
        return;
    }
    for (int i = 0; i < n; i++) {
        const float *ki = k + (size_t)i * ldk;
        if (isa == KERN_ISA_AVX2) {
            kern__gqa_scores_avx2(q, G, hd, ki, scale, s + i, ld);
            continue;
        }
        for (int g = 0; g < G; g++) s[(size_t)g * ld + i] = kern_dot(q + (size_t)g * hd, ki, hd) * scale;
    }
}

void kern_gqa_acc(enum kern_isa isa, float *out, int G, int hd, const float *v, size_t ldv, int n, const float *w,
                  int ld)
{
    if (isa >= KERN_ISA_AVX512) {
        kern__gqa_acc_avx512(out, G, hd, v, ldv, n, w, ld);
        return;
    }
    for (int i = 0; i < n; i++) {
        const float *vi = v + (size_t)i * ldv;
        if (isa == KERN_ISA_AVX2) {
            kern__gqa_acc_avx2(out, G, hd, vi, w + i, ld);
            continue;
        }
        for (int g = 0; g < G; g++)
            for (int d = 0; d < hd; d++) out[(size_t)g * hd + d] += w[(size_t)g * ld + i] * vi[d];
    }
}

void kern_rmsnorm(float *out, const float *x, const float *weight, int dim, float eps)
{
    double ss = 0;
    for (int i = 0; i < dim; i++) ss += (double)x[i] * x[i];
    float scale = 1.0f / sqrtf((float)(ss / dim) + eps);
    for (int i = 0; i < dim; i++) out[i] = x[i] * scale * weight[i];
}

void kern_rope(float *x, int dim, const float *cos_t, const float *sin_t)
{
    int half = dim / 2;
    for (int i = 0; i < half; i++) {
        float a = x[i], b = x[i + half];
        x[i] = a * cos_t[i] - b * sin_t[i];
        x[i + half] = b * cos_t[i] + a * sin_t[i];
    }
}

void kern_softmax_isa(enum kern_isa isa, float *x, int n)
{
    if (isa >= KERN_ISA_AVX512) kern__softmax_avx512(x, n);
    else kern_softmax(x, n);
}

void kern_softmax(float *x, int n)
{
    float max = x[0];
    for (int i = 1; i < n; i++) max = x[i] > max ? x[i] : max;
    double sum = 0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - max);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) x[i] *= inv;
}

void kern_swiglu(enum kern_isa isa, float *gate, const float *up, size_t n)
{
    if (isa >= KERN_ISA_AVX512) {
        kern__swiglu_avx512(gate, up, n);
        return;
    }
    for (size_t i = 0; i < n; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}
