#include "engine/kernels/matmul.h"

#include <string.h>

#include "common/ms_common.h"
#include "engine/kernels/format.h"

/* Tokens per task: the activations of a token block stay in L2 while its rows go through. */
#define TOKENS_PER_TASK 64
/* Activation rows per task of kern_prepare_act */
#define PREPARE_ROWS_PER_TASK 4

static size_t align64(size_t n)
{
    return (n + 63) / 64 * 64;
}

size_t kern_act_bytes(enum kern_act act, int n, int in)
{
    const struct act_format *a = fmt_act(act);
    return (size_t)n * (size_t)(in / a->block_values) * a->block_bytes;
}

/* Per-thread scratch: first room for a task's own prepared tokens (when the caller did not
 * prepare them), then, 64-byte aligned, the kernel's own scratch. */
static size_t scratch_act_bytes(int max_in)
{
    size_t most = 0;
    for (int a = 0; a < KERN_ACT_COUNT; a++) {
        size_t b = kern_act_bytes((enum kern_act)a, TOKENS_PER_TASK, max_in);
        most = b > most ? b : most;
    }
    return align64(most);
}

size_t kern_scratch_floats(int max_in)
{
    size_t kernel = 0;
    for (int d = 0; d < TENSOR_DTYPE_COUNT; d++) {
        const struct weight_format *f = fmt_get((enum tensor_dtype)d);
        for (int i = 0; i < f->n_kernels; i++) {
            size_t b = f->kernels[i].scratch_bytes ? f->kernels[i].scratch_bytes(max_in) : 0;
            kernel = b > kernel ? b : kernel;
        }
    }
    return (scratch_act_bytes(max_in) + align64(kernel)) / sizeof(float);
}

enum kern_act kern_matmul_act(const struct tensor *w, unsigned offered)
{
    return fmt_pick_kernel(fmt_get(w->dtype), kern_isa_best(), offered)->act;
}

const char *kern_matmul_kernel_name(const struct tensor *w, enum kern_isa isa, unsigned offered)
{
    return fmt_pick_kernel(fmt_get(w->dtype), isa, offered)->name;
}

struct prepare_job {
    const struct act_format *a;
    const float *x;
    int in;
    char *out;
    size_t row_bytes;
    enum kern_isa isa;
};

static void prepare_task(void *p, int task, int thread)
{
    (void)thread;
    const struct prepare_job *j = p;
    for (int t = task * PREPARE_ROWS_PER_TASK; t < (task + 1) * PREPARE_ROWS_PER_TASK; t++)
        j->a->quantize_row(j->isa, j->x + (size_t)t * j->in, j->out + (size_t)t * j->row_bytes, j->in);
}

void kern_prepare_act(struct threadpool *tp, enum kern_act act, const float *x, int n, int in, void *out)
{
    const struct act_format *a = fmt_act(act);
    MS_ASSERT(a->quantize_row && in % a->block_values == 0);
    struct prepare_job j = {a, x, in, out, kern_act_bytes(act, 1, in), kern_isa_best()};
    int full = n / PREPARE_ROWS_PER_TASK;
    tp_run(tp, full, prepare_task, &j);
    for (int t = full * PREPARE_ROWS_PER_TASK; t < n; t++)
        a->quantize_row(j.isa, x + (size_t)t * in, j.out + (size_t)t * j.row_bytes, in);
}

/* Rows per task: at least 512 KiB of weights, so the shared task counter and the cold start of
 * each task's first rows (before the kernels' prefetch runs ahead) cost little next to streaming
 * them (48-layer Q4_K_M decode, AMD EPYC: 32 KiB 9.5 tok/s, 128 KiB 13.5, 256 KiB 15.2, 512 KiB
 * 15.3, 1 MiB 15.2 at one sequence; at 16, 1 MiB fell to 17.4 from 26.1 as the expert matrices
 * split into too few tasks to balance); more when many tokens reuse each row; whole 16-row
 * groups (the kernels that take rows 16 at a time, and a multiple of the widest tile). */
static int rows_per_task(const struct kern_mm *mm)
{
    size_t row_bytes = tensor_row_bytes(mm->w);
    int rb = (int)((524288 + row_bytes - 1) / row_bytes);
    if (mm->n > 8 && rb < 64) rb = 64;
    rb = (rb + 15) / 16 * 16;
    return rb < 16 ? 16 : rb;
}

struct matmul_job {
    struct kern_mm *mm;
    int count;
    enum kern_isa isa;
    struct threadpool *tp;
};

/* The matmul a task belongs to: the last one whose first_task <= task. */
static const struct kern_mm *task_matmul(const struct matmul_job *j, int task)
{
    int lo = 0, hi = j->count - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (j->mm[mid].first_task <= task) lo = mid;
        else hi = mid - 1;
    }
    return &j->mm[lo];
}

/* Points g at the activations of its tokens in the kernel's kind: the caller's prepared rows,
 * or this task's tokens prepared into the front of the thread's scratch. */
static void range_activations(const struct matmul_job *j, const struct kern_mm *mm, struct kern_range *g,
                              char *scratch)
{
    enum kern_act act = mm->kernel->act;
    g->xa_stride = kern_act_bytes(act, 1, g->in);
    if (act == KERN_ACT_F32) {
        g->xa = mm->x;
        return;
    }
    if (mm->xa && mm->xa_act == act) {
        g->xa = mm->xa;
        return;
    }
    const struct act_format *a = fmt_act(act);
    for (int t = g->t0; t < g->t1; t++)
        a->quantize_row(j->isa, mm->x + (size_t)t * g->in, scratch + (size_t)(t - g->t0) * g->xa_stride, g->in);
    /* row t of the task is row t0 + t of the input */
    g->xa = scratch - (size_t)g->t0 * g->xa_stride;
}

static void matmul_task(void *p, int task, int thread)
{
    const struct matmul_job *j = p;
    const struct kern_mm *mm = task_matmul(j, task);
    int out = (int)mm->w->shape[0], in = (int)mm->w->shape[1], rb = rows_per_task(mm);
    int n_rb = (out + rb - 1) / rb, local = task - mm->first_task;
    int n_tb = (mm->n + TOKENS_PER_TASK - 1) / TOKENS_PER_TASK;
    int rbi = local / n_tb, tbi = local % n_tb; /* consecutive tasks share a row block */
    MS_ASSERT(rbi < n_rb);
    char *scratch = (char *)tp_scratch(j->tp, thread);
    struct kern_range g = {.w = mm->w->data, .w_stride = tensor_row_bytes(mm->w), .in = in, .x = mm->x,
                           .y = mm->y, .ldy = mm->ldy, .r0 = rbi * rb, .t0 = tbi * TOKENS_PER_TASK,
                           .scratch = scratch + scratch_act_bytes(in)};
    g.r1 = g.r0 + rb < out ? g.r0 + rb : out;
    g.t1 = g.t0 + TOKENS_PER_TASK < mm->n ? g.t0 + TOKENS_PER_TASK : mm->n;
    range_activations(j, mm, &g, scratch);
    mm->kernel->range(&g);
}

static void matmul_many_isa(struct threadpool *tp, enum kern_isa isa, struct kern_mm *mm, int count)
{
    int tasks = 0;
    for (int i = 0; i < count; i++) {
        mm[i].first_task = tasks;
        if (mm[i].n <= 0) continue;
        const struct weight_format *f = fmt_get(mm[i].w->dtype);
        MS_ASSERT(mm[i].w->shape[1] % f->block_values == 0);
        mm[i].kernel = fmt_pick_kernel(f, isa, mm[i].xa ? 1u << mm[i].xa_act : 0);
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

void kern_matmul_isa(struct threadpool *tp, enum kern_isa isa, const struct tensor *w, const float *x, const void *xa,
                     enum kern_act xa_act, int n, float *y, int ldy)
{
    struct kern_mm mm = {.w = w, .x = x, .xa = xa, .xa_act = xa_act, .n = n, .y = y, .ldy = ldy};
    matmul_many_isa(tp, isa, &mm, 1);
}

void kern_matmul(struct threadpool *tp, const struct tensor *w, const float *x, int n, float *y, int ldy)
{
    kern_matmul_isa(tp, kern_isa_best(), w, x, NULL, KERN_ACT_F32, n, y, ldy);
}
