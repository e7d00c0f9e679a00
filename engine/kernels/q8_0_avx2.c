/* The AVX2 Q8_0 kernel: exact int32 block sums, then each block's sum scaled by both scales into
 * one 8-lane accumulator per (row, token) pair, reduced in a fixed order. */
#include "engine/kernels/q8_0.h"

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

/* Q8_0: exact int32 block sums through maddubs (|w| x sign(x, w), at most 2 * 127 * 127 per
 * 16-bit lane, so no saturation) and madd with ones, then as q8_0_avx512.c. */
INLINE __m256i dot_block(__m256i w, __m256i x)
{
    __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

INLINE void tile_q8(const char *w, size_t wb, const struct q8_act_block *x, size_t ldx, float *y, size_t ldy,
                    int nb, const int R, const int T)
{
    __m256 acc[4][2];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        __m256i wq[4];
        __m256 wd[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const struct q8_0_block *blk = (const struct q8_0_block *)(w + r * wb) + b;
            wq[r] = _mm256_loadu_si256((const __m256i *)blk->qs);
            wd[r] = _mm256_cvtph_ps(_mm_set1_epi16((short)blk->d));
        }
#pragma GCC unroll 2
        for (int t = 0; t < T; t++) {
            const struct q8_act_block *xb = x + t * ldx + b;
            __m256i xq = _mm256_loadu_si256((const __m256i *)xb->qs);
            __m256 xd = _mm256_set1_ps(xb->d);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                __m256 s = _mm256_cvtepi32_ps(dot_block(wq[r], xq));
                acc[r][t] = _mm256_fmadd_ps(s, _mm256_mul_ps(wd[r], xd), acc[r][t]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int t = 0; t < T; t++) y[t * ldy + r] = hsum8(acc[r][t]);
}

/* 4 x 1 or 2 x 2 tiles: a 4 x 2 Q8_0 tile would not fit in 16 registers */
static TARGET void tile_q8_any(const char *w, size_t wb, const struct q8_act_block *x, size_t ldx, float *y,
                               size_t ldy, int nb, int R, int T)
{
    if (T == 1) {
        if (R == 4) tile_q8(w, wb, x, ldx, y, ldy, nb, 4, 1);
        else tile_q8(w, wb, x, ldx, y, ldy, nb, 1, 1);
    } else {
        if (R == 2) tile_q8(w, wb, x, ldx, y, ldy, nb, 2, 2);
        else tile_q8(w, wb, x, ldx, y, ldy, nb, 1, 2);
    }
}


TARGET void q8_0_range_avx2(const struct kern_range *g)
{
    size_t wb = g->w_stride, ldx = g->xa_stride / sizeof(struct q8_act_block);
    const struct q8_act_block *xq = g->xa;
    int nb = g->in / Q8_0_BLOCK;
    for (int t = g->t0; t < g->t1; t += 2) {
        int T = g->t1 - t < 2 ? g->t1 - t : 2;
        for (int r = g->r0; r < g->r1;) {
            int R = T == 2 ? (g->r1 - r >= 2 ? 2 : 1) : (g->r1 - r >= 4 ? 4 : 1);
            tile_q8_any(g->w + (size_t)r * wb, wb, xq + (size_t)t * ldx, ldx, g->y + (size_t)t * g->ldy + r,
                        (size_t)g->ldy, nb, R, T);
            r += R;
        }
    }
}
