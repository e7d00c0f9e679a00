/* AVX2 + FMA + F16C kernels of the plain float formats, the fallback for CPUs without AVX-512:
 * R x T register tiles, one 8-lane accumulator per (row, token) pair fed 8 columns at a time in
 * column order, a fixed horizontal sum, then the last in % 8 columns added one by one in order,
 * so the result does not depend on the tiling or on n. */
#include "engine/kernels/float_formats.h"

#include <immintrin.h>

#include "engine/kernels/fp16.h"

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

/* The rows of g in dtype dt by float activations, tiles of up to 4 rows x 2 tokens. */
static TARGET void range_float(const struct kern_range *g, enum tensor_dtype dt)
{
    void (*tile)(const char *, size_t, const float *, size_t, float *, size_t, int, int, int) =
        dt == TENSOR_DTYPE_BF16 ? tile_bf16 : dt == TENSOR_DTYPE_F16 ? tile_f16 : tile_f32;
    for (int t = g->t0; t < g->t1; t += 2) {
        int T = g->t1 - t < 2 ? g->t1 - t : 2;
        for (int r = g->r0; r < g->r1;) {
            int R = g->r1 - r >= 4 ? 4 : 1;
            tile(g->w + (size_t)r * g->w_stride, g->w_stride, g->x + (size_t)t * g->in, (size_t)g->in,
                 g->y + (size_t)t * g->ldy + r, (size_t)g->ldy, g->in, R, T);
            r += R;
        }
    }
}

TARGET void float_range_avx2_f32(const struct kern_range *g)
{
    range_float(g, TENSOR_DTYPE_F32);
}

TARGET void float_range_avx2_f16(const struct kern_range *g)
{
    range_float(g, TENSOR_DTYPE_F16);
}

TARGET void float_range_avx2_bf16(const struct kern_range *g)
{
    range_float(g, TENSOR_DTYPE_BF16);
}
