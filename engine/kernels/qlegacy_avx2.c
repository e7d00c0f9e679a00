/* The AVX2 kernels of the 32-value block formats: per block, the exact int32 lane sums of
 * VPMADDUBSW + VPMADDWD (the signed formats through the sign trick: |w| x sign(x, w), at most
 * 2 * 127 * 127 per 16-bit lane), one fused multiply-add into the 8-lane accumulator of the
 * block's chain (b % 4), and the scalar min term; the scheme of qlegacy.h, so the portable bits. Each
 * weight block is decoded once for up to TOK tokens (decode streams a row once per step). */
#include "engine/kernels/qlegacy_avx2.h"

#define TARGET __attribute__((target("avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline)) TARGET

#define TOK 4

INLINE __m256i lane_sums(const int K, __m256i w, __m256i aw, __m256i x)
{
    __m256i p = QLS_HAS_MIN(K) ? _mm256_maddubs_epi16(w, x) : _mm256_maddubs_epi16(aw, _mm256_sign_epi8(x, w));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/* block b against T tokens, into the accumulators of its parity */
INLINE void block_step(const int K, const char *row, int b, const char *xa, size_t xs, __m256 *acc, float *accm,
                       const int T)
{
    float dw, m = 0;
    __m256i w = qls_decode(K, row, b, &dw, &m), aw = QLS_HAS_MIN(K) ? w : _mm256_sign_epi8(w, w);
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
        float dx, s = 0;
        const int8_t *xq = qls_act(K, xa + t * xs, b, &dx, &s);
        __m256 l = _mm256_cvtepi32_ps(lane_sums(K, w, aw, _mm256_loadu_si256((const __m256i *)xq)));
        acc[t] = _mm256_fmadd_ps(l, _mm256_set1_ps(dw * dx), acc[t]);
        if (QLS_HAS_MIN(K)) accm[t] = qls_fma1(m, s, accm[t]);
    }
}

/* y[t * ldy] for T tokens of one row */
INLINE void row_tokens(const int K, const char *row, const char *xa, size_t xs, int nb, float *y, size_t ldy,
                       const int T)
{
    /* chain c takes the blocks b with b % 4 == c */
    __m256 a0[TOK], a1[TOK], a2[TOK], a3[TOK];
    float m0[TOK], m1[TOK], m2[TOK], m3[TOK];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
        a0[t] = a1[t] = a2[t] = a3[t] = _mm256_setzero_ps();
        m0[t] = m1[t] = m2[t] = m3[t] = 0;
    }
    int b = 0;
    for (; b + 4 <= nb; b += 4) {
        block_step(K, row, b, xa, xs, a0, m0, T);
        block_step(K, row, b + 1, xa, xs, a1, m1, T);
        block_step(K, row, b + 2, xa, xs, a2, m2, T);
        block_step(K, row, b + 3, xa, xs, a3, m3, T);
    }
    if (b < nb) block_step(K, row, b++, xa, xs, a0, m0, T);
    if (b < nb) block_step(K, row, b++, xa, xs, a1, m1, T);
    if (b < nb) block_step(K, row, b++, xa, xs, a2, m2, T);
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
        float r = qls_reduce8(_mm256_add_ps(_mm256_add_ps(a0[t], a2[t]), _mm256_add_ps(a1[t], a3[t])));
        y[t * ldy] = QLS_HAS_MIN(K) ? r + ((m0[t] + m2[t]) + (m1[t] + m3[t])) : r;
    }
}

INLINE void range(const int K, const struct kern_range *g)
{
    int nb = g->in / QL_BLOCK;
    size_t xs = g->xa_stride, ldy = (size_t)g->ldy;
    for (int r = g->r0; r < g->r1; r++) {
        const char *row = g->w + (size_t)r * g->w_stride;
        for (int t = g->t0; t < g->t1; t += TOK) {
            const char *xa = (const char *)g->xa + (size_t)t * xs;
            float *y = g->y + (size_t)t * ldy + r;
            switch (g->t1 - t) {
            case 1: row_tokens(K, row, xa, xs, nb, y, ldy, 1); break;
            case 2: row_tokens(K, row, xa, xs, nb, y, ldy, 2); break;
            case 3: row_tokens(K, row, xa, xs, nb, y, ldy, 3); break;
            default: row_tokens(K, row, xa, xs, nb, y, ldy, TOK); break;
            }
        }
    }
}

TARGET void ql_q4_0_range_avx2(const struct kern_range *g) { range(QLS_Q4_0, g); }
TARGET void ql_q4_1_range_avx2(const struct kern_range *g) { range(QLS_Q4_1, g); }
TARGET void ql_q5_0_range_avx2(const struct kern_range *g) { range(QLS_Q5_0, g); }
TARGET void ql_q5_1_range_avx2(const struct kern_range *g) { range(QLS_Q5_1, g); }
TARGET void ql_iq4_nl_range_avx2(const struct kern_range *g) { range(QLS_IQ4_NL, g); }
TARGET void ql_mxfp4_range_avx2(const struct kern_range *g) { range(QLS_MXFP4, g); }
