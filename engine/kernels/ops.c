#include "engine/kernels/ops.h"

#include <math.h>
#include <stddef.h>

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

void kern_gqa_scores(enum kern_isa isa, const float *q, int G, int hd, const float *k, size_t ldk, int n, float scale,
                     float *s, int ld)
{
    if (isa >= KERN_ISA_AVX512) {
        ops_gqa_scores_avx512(q, G, hd, k, ldk, n, scale, s, ld);
        return;
    }
    for (int i = 0; i < n; i++) {
        const float *ki = k + (size_t)i * ldk;
        if (isa == KERN_ISA_AVX2) {
            ops_gqa_scores_avx2(q, G, hd, ki, scale, s + i, ld);
            continue;
        }
        for (int g = 0; g < G; g++) s[(size_t)g * ld + i] = kern_dot(q + (size_t)g * hd, ki, hd) * scale;
    }
}

void kern_gqa_acc(enum kern_isa isa, float *out, int G, int hd, const float *v, size_t ldv, int n, const float *w,
                  int ld)
{
    if (isa >= KERN_ISA_AVX512) {
        ops_gqa_acc_avx512(out, G, hd, v, ldv, n, w, ld);
        return;
    }
    for (int i = 0; i < n; i++) {
        const float *vi = v + (size_t)i * ldv;
        if (isa == KERN_ISA_AVX2) {
            ops_gqa_acc_avx2(out, G, hd, vi, w + i, ld);
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
    if (isa >= KERN_ISA_AVX512) ops_softmax_avx512(x, n);
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
        ops_swiglu_avx512(gate, up, n);
        return;
    }
    for (size_t i = 0; i < n; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}
