/* AVX2 + FMA + F16C matmul kernels, the fallback for CPUs without AVX-512. Same structure as
 * kern_avx512.c: R x T register tiles, one 8-lane accumulator per (row, token) pair fed 8
 * columns at a time in column order, a fixed horizontal sum, then the last in % 8 columns
 * added one by one in order, so the result does not depend on the tiling or on n. */
#include "engine/kern_internal.h"

#include <immintrin.h>

#define TARGET __attribute__((target("avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline)) TARGET

INLINE __m256 load_w(const void *row, int i, enum tensor_dtype dt)
{
    switch (dt) {
    case TENSOR_DTYPE_BF16: {
        __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)row + i));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    case TENSOR_DTYPE_F16:
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + i)));
    default:
        return _mm256_loadu_ps((const float *)row + i);
    }
}

static inline float w_at(const void *row, int i, enum tensor_dtype dt)
{
    switch (dt) {
    case TENSOR_DTYPE_BF16: return bf16_to_f32(((const uint16_t *)row)[i]);
    case TENSOR_DTYPE_F16: return f16_to_f32(((const uint16_t *)row)[i]);
    default: return ((const float *)row)[i];
    }
}

INLINE float hsum8(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

INLINE void tile_float(const char *w, size_t wb, const float *x, size_t ldx, float *y, size_t ldy, int in,
                       enum tensor_dtype dt, const int R, const int T)
{
    __m256 acc[4][2];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= in; i += 8) {
        __m256 wv[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) wv[r] = load_w(w + r * wb, i, dt);
#pragma GCC unroll 2
        for (int t = 0; t < T; t++) {
            __m256 xv = _mm256_loadu_ps(x + t * ldx + i);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int t = 0; t < T; t++) {
            float s = hsum8(acc[r][t]);
            for (int j = i; j < in; j++) s += w_at(w + r * wb, j, dt) * x[t * ldx + j];
            y[t * ldy + r] = s;
        }
}

#define TILE_CASES(DT, R)                                                                          \
    if (T == 1) tile_float(w, wb, x, ldx, y, ldy, in, DT, R, 1);                                   \
    else tile_float(w, wb, x, ldx, y, ldy, in, DT, R, 2);

#define DTYPE_FN(name, DT)                                                                         \
    static TARGET void name(const char *w, size_t wb, const float *x, size_t ldx, float *y, size_t ldy, \
                            int in, int R, int T)                                                  \
    {                                                                                              \
        if (R == 4) { TILE_CASES(DT, 4) }                                                          \
        else { TILE_CASES(DT, 1) }                                                                 \
    }

DTYPE_FN(tile_bf16, TENSOR_DTYPE_BF16)
DTYPE_FN(tile_f16, TENSOR_DTYPE_F16)
DTYPE_FN(tile_f32, TENSOR_DTYPE_F32)

/* Q8_0: exact int32 block sums through maddubs (|w| x sign(x, w), at most 2 * 127 * 127 per
 * 16-bit lane, so no saturation) and madd with ones, then as kern_avx512.c. */
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

TARGET void kern__range_avx2(const struct kern_range *g)
{
    const struct tensor *w = g->w;
    size_t wb = tensor_row_bytes(w);
    const char *base = w->data;
    int nb = g->in / Q8_0_BLOCK;
    for (int t = g->t0; t < g->t1; t += 2) {
        int T = g->t1 - t < 2 ? g->t1 - t : 2;
        for (int r = g->r0; r < g->r1;) {
            int R = g->r1 - r >= 4 ? 4 : 1;
            if (w->dtype == TENSOR_DTYPE_Q8_0 && T == 2) R = g->r1 - r >= 2 ? 2 : 1;
            float *y = g->y + (size_t)t * g->ldy + r;
            const char *wr = base + (size_t)r * wb;
            switch (w->dtype) {
            case TENSOR_DTYPE_Q8_0:
                tile_q8_any(wr, wb, g->xq + (size_t)t * nb, (size_t)nb, y, (size_t)g->ldy, nb, R, T);
                break;
            case TENSOR_DTYPE_BF16:
                tile_bf16(wr, wb, g->x + (size_t)t * g->in, (size_t)g->in, y, (size_t)g->ldy, g->in, R, T);
                break;
            case TENSOR_DTYPE_F16:
                tile_f16(wr, wb, g->x + (size_t)t * g->in, (size_t)g->in, y, (size_t)g->ldy, g->in, R, T);
                break;
            case TENSOR_DTYPE_F32:
                tile_f32(wr, wb, g->x + (size_t)t * g->in, (size_t)g->in, y, (size_t)g->ldy, g->in, R, T);
                break;
            }
            r += R;
        }
    }
}

/* ---- attention: one 8-lane accumulator per head, then the hd % 8 tail in order */

TARGET void kern__gqa_scores_avx2(const float *q, int G, int hd, const float *k, float scale, float *s, int ld)
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

TARGET void kern__gqa_acc_avx2(float *out, int G, int hd, const float *v, const float *w, int ld)
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
