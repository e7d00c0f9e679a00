#include "engine/kernels.h"

#include <math.h>

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

struct matmul_job {
    const struct tensor *w;
    const float *x;
    int n, in, out, ldy;
    float *y;
    struct threadpool *tp;
};

/* One task: convert KERN_ROWS_PER_TASK rows of W to float32 once, then use them for all n
 * tokens, so a weight row is read from memory once per step whatever the batch size. */
static void matmul_task(void *p, int task, int thread)
{
    const struct matmul_job *job = p;
    int r0 = task * KERN_ROWS_PER_TASK;
    int r1 = r0 + KERN_ROWS_PER_TASK < job->out ? r0 + KERN_ROWS_PER_TASK : job->out;
    float *rows = tp_scratch(job->tp, thread);
    tensor_to_f32(job->w, (int64_t)r0 * job->in, (int64_t)(r1 - r0) * job->in, rows);
    for (int t = 0; t < job->n; t++) {
        const float *xt = job->x + (size_t)t * job->in;
        float *yt = job->y + (size_t)t * job->ldy;
        for (int r = r0; r < r1; r++) yt[r] = kern_dot(rows + (size_t)(r - r0) * job->in, xt, job->in);
    }
}

void kern_matmul(struct threadpool *tp, const struct tensor *w, const float *x, int n, float *y,
                 int ldy)
{
    struct matmul_job job = {w, x, n, (int)w->shape[1], (int)w->shape[0], ldy, y, tp};
    if (n <= 0) return;
    tp_run(tp, (job.out + KERN_ROWS_PER_TASK - 1) / KERN_ROWS_PER_TASK, matmul_task, &job);
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

void kern_swiglu(float *gate, const float *up, int n)
{
    for (int i = 0; i < n; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}
