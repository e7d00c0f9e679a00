/* AVX2 attention kernels: one 8-lane accumulator per head, then the hd % 8 tail in order. */
#include "engine/kernels/ops.h"

#include <immintrin.h>

#define TARGET __attribute__((target("avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline)) TARGET

INLINE float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

TARGET void ops_gqa_scores_avx2(const float *q, int G, int hd, const float *k, float scale, float *s, int ld)
{
    for (int g = 0; g < G; g++) {
        const float *qg = q + (size_t)g * hd;
        __m256 acc = _mm256_setzero_ps();
        int i = 0;
        for (; i + 8 <= hd; i += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(qg + i), _mm256_loadu_ps(k + i), acc);
        float sum = hsum8(acc);
        for (; i < hd; i++) sum += qg[i] * k[i];
        s[(size_t)g * ld] = sum * scale;
    }
}

TARGET void ops_gqa_acc_avx2(float *out, int G, int hd, const float *v, const float *w, int ld)
{
    int i = 0;
    for (; i + 8 <= hd; i += 8) {
        __m256 vv = _mm256_loadu_ps(v + i);
        for (int g = 0; g < G; g++) {
            float *o = out + (size_t)g * hd + i;
            _mm256_storeu_ps(o, _mm256_fmadd_ps(_mm256_set1_ps(w[(size_t)g * ld]), vv, _mm256_loadu_ps(o)));
        }
    }
    for (; i < hd; i++)
        for (int g = 0; g < G; g++) out[(size_t)g * hd + i] += w[(size_t)g * ld] * v[i];
}
