/* AVX-512 element-wise kernels: grouped-query attention over cache rows, a vectorised exp for
 * softmax and SiLU. */
#include "engine/kernels/ops.h"

#include <immintrin.h>
#include <math.h>

#define TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline)) TARGET

/* ---- attention over n consecutive cache rows of one KV head */

/* The sums of a0..a3's 16 lanes, in lanes 0..3. Each vector's lanes are added in one fixed
 * tree (within 128-bit lanes, then across them), whatever the other three hold. */
INLINE __m128 reduce4(__m512 a0, __m512 a1, __m512 a2, __m512 a3)
{
    __m512 t0 = _mm512_add_ps(_mm512_unpacklo_ps(a0, a1), _mm512_unpackhi_ps(a0, a1));
    __m512 t1 = _mm512_add_ps(_mm512_unpacklo_ps(a2, a3), _mm512_unpackhi_ps(a2, a3));
    __m512 u = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t1))),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t1))));
    __m512 v = _mm512_add_ps(u, _mm512_shuffle_f32x4(u, u, _MM_SHUFFLE(1, 0, 3, 2)));
    v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm512_castps512_ps128(v);
}

/* Scores of H query heads (H <= 2) against M rows (M <= 4; the others count as zero rows):
 * 2 x 4 independent accumulator chains share each K load. H and M are constants at each call
 * so the accumulators stay in registers. */
INLINE void scores_hm(const float *q, int hd, const float *k, size_t ldk, const int H, const int M, float scale,
                      float *s, int ld)
{
    __m512 acc[2][4];
#pragma GCC unroll 2
    for (int h = 0; h < 2; h++)
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) acc[h][j] = _mm512_setzero_ps();
    for (int d = 0; d < hd; d += 16) {
        __mmask16 mask = hd - d >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (hd - d)) - 1);
        __m512 kv[4];
#pragma GCC unroll 4
        for (int j = 0; j < M; j++) kv[j] = _mm512_maskz_loadu_ps(mask, k + j * ldk + d);
#pragma GCC unroll 2
        for (int h = 0; h < H; h++) {
            __m512 qv = _mm512_maskz_loadu_ps(mask, q + (size_t)h * hd + d);
#pragma GCC unroll 4
            for (int j = 0; j < M; j++) acc[h][j] = _mm512_fmadd_ps(qv, kv[j], acc[h][j]);
        }
    }
#pragma GCC unroll 2
    for (int h = 0; h < H; h++) {
        __m128 sums = _mm_mul_ps(reduce4(acc[h][0], acc[h][1], acc[h][2], acc[h][3]), _mm_set1_ps(scale));
        float *sh = s + (size_t)h * ld;
        if (M == 4) {
            _mm_storeu_ps(sh, sums);
        } else {
            float out[4];
            _mm_storeu_ps(out, sums);
            for (int j = 0; j < M; j++) sh[j] = out[j];
        }
    }
}

/* One or two heads over all n rows. */
INLINE void scores_rows(const float *q, int hd, const float *k, size_t ldk, int n, const int H, float scale, float *s,
                        int ld)
{
    int i = 0;
    for (; i + 4 <= n; i += 4) scores_hm(q, hd, k + (size_t)i * ldk, ldk, H, 4, scale, s + i, ld);
    switch (n - i) {
    case 3: scores_hm(q, hd, k + (size_t)i * ldk, ldk, H, 3, scale, s + i, ld); break;
    case 2: scores_hm(q, hd, k + (size_t)i * ldk, ldk, H, 2, scale, s + i, ld); break;
    case 1: scores_hm(q, hd, k + (size_t)i * ldk, ldk, H, 1, scale, s + i, ld); break;
    default: break;
    }
}

TARGET void ops_gqa_scores_avx512(const float *q, int G, int hd, const float *k, size_t ldk, int n, float scale,
                                    float *s, int ld)
{
    int g = 0;
    for (; g + 2 <= G; g += 2) scores_rows(q + (size_t)g * hd, hd, k, ldk, n, 2, scale, s + (size_t)g * ld, ld);
    if (g < G) scores_rows(q + (size_t)g * hd, hd, k, ldk, n, 1, scale, s + (size_t)g * ld, ld);
}

/* out[g] += w[g][i] * v_i in row order for GN heads, 16 dimensions at a time, the
 * accumulators kept in registers across the rows (GN constant at each call). */
INLINE void acc_heads(float *out, int hd, int d, __mmask16 mask, const float *v, size_t ldv, int n, const float *w,
                      int ld, const int GN)
{
    __m512 acc[8];
#pragma GCC unroll 8
    for (int g = 0; g < GN; g++) acc[g] = _mm512_maskz_loadu_ps(mask, out + (size_t)g * hd + d);
    for (int i = 0; i < n; i++) {
        __m512 vv = _mm512_maskz_loadu_ps(mask, v + (size_t)i * ldv + d);
#pragma GCC unroll 8
        for (int g = 0; g < GN; g++) acc[g] = _mm512_fmadd_ps(_mm512_set1_ps(w[(size_t)g * ld + i]), vv, acc[g]);
    }
#pragma GCC unroll 8
    for (int g = 0; g < GN; g++) _mm512_mask_storeu_ps(out + (size_t)g * hd + d, mask, acc[g]);
}

TARGET void ops_gqa_acc_avx512(float *out, int G, int hd, const float *v, size_t ldv, int n, const float *w, int ld)
{
    for (int d = 0; d < hd; d += 16) {
        __mmask16 mask = hd - d >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (hd - d)) - 1);
        int g0 = 0;
        for (; g0 + 8 <= G; g0 += 8)
            acc_heads(out + (size_t)g0 * hd, hd, d, mask, v, ldv, n, w + (size_t)g0 * ld, ld, 8);
        for (; g0 < G; g0++) acc_heads(out + (size_t)g0 * hd, hd, d, mask, v, ldv, n, w + (size_t)g0 * ld, ld, 1);
    }
}

/* ---- exp for softmax and SiLU: 2^k * p(r) with x = k ln2 + r, |r| <= ln2 / 2, p a degree-7
 * Taylor polynomial (relative error below 2e-7 on that interval); scalef gives 0 and infinity
 * where 2^k leaves the float range, so no clamping is needed. */
INLINE __m512 exp16(__m512 x)
{
    /* beyond +-104 the result is 0 or infinity anyway; clamped so that infinities do not become
     * inf - inf below. NaN passes through (min/max return their second operand on NaN). */
    x = _mm512_min_ps(_mm512_set1_ps(104.0f), _mm512_max_ps(_mm512_set1_ps(-104.0f), x));
    const __m512 log2e = _mm512_set1_ps(1.44269504088896341f), ln2_hi = _mm512_set1_ps(0.693359375f),
                 ln2_lo = _mm512_set1_ps(-2.12194440e-4f);
    __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(k, ln2_hi, x);
    r = _mm512_fnmadd_ps(k, ln2_lo, r);
    __m512 p = _mm512_set1_ps(1.0f / 5040);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, k);
}

TARGET void ops_softmax_avx512(float *x, int n)
{
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 16 <= n; i += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(x + i));
    float max = _mm512_reduce_max_ps(vmax);
    for (; i < n; i++) max = x[i] > max ? x[i] : max;
    __m512 vm = _mm512_set1_ps(max), sum = _mm512_setzero_ps();
    for (i = 0; i < n; i += 16) {
        __mmask16 mask = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(mask, x + i), vm));
        _mm512_mask_storeu_ps(x + i, mask, e);
        sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(mask, e));
    }
    __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
    for (i = 0; i < n; i += 16) {
        __mmask16 mask = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(x + i, mask, _mm512_mul_ps(_mm512_maskz_loadu_ps(mask, x + i), inv));
    }
}

TARGET void ops_swiglu_avx512(float *gate, const float *up, size_t n)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 mask = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 g = _mm512_maskz_loadu_ps(mask, gate + i);
        __m512 silu = _mm512_div_ps(g, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), g))));
        _mm512_mask_storeu_ps(gate + i, mask, _mm512_mul_ps(silu, _mm512_maskz_loadu_ps(mask, up + i)));
    }
}
