/* AVX-512 kernels of the plain float formats (F32, F16, BF16 weights x float activations, and
 * the opt-in BF16 x bf16 VDPBF16PS kernel). Every function carries the target attribute;
 * format.c registers them for CPUs at KERN_ISA_AVX512.
 *
 * Register tiles of R weight rows x T tokens. Each (row, token) pair has one 16-lane float
 * accumulator fed 16 columns at a time in column order (the last partial chunk through a masked
 * load), then reduced by _mm512_reduce_add_ps: the same operations whatever R, T and n, so the
 * result is batch-invariant. A weight row is loaded once per tile of T tokens; for one token
 * (decode) each row is streamed once. */
#include "engine/kernels/float_formats.h"
#include "engine/kernels/simd_avx512.h"


/* y[t, r] for R rows starting at `w` (row stride wb bytes) and T tokens starting at x. When pf is
 * not NULL, the R rows starting there (the next tile) are prefetched at the same offsets: a row
 * is often exactly a 4 KiB page, where the hardware prefetchers stop. */
/* Columns [k0, k1) only (k0 and, unless k1 == in, k1 multiples of 16): the accumulators start
 * at zero when k0 == 0, else from buf ([R][6] vectors, row-major), and go back there
 * unless k1 == in, when they are reduced into y. Splitting the columns so changes nothing in
 * the sequence of operations on each accumulator. */
INLINE void tile_float(const char *w, size_t wb, const float *x, size_t ldx, float *y, size_t ldy, int in,
                       enum tensor_dtype dt, const char *pf, __m512 *buf, int k0, int k1, const int R, const int T)
{
    size_t esize = dt == TENSOR_DTYPE_F32 ? 4 : 2;
    __m512 acc[8][6];
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 6
        for (int t = 0; t < T; t++) acc[r][t] = k0 ? buf[r * 6 + t] : _mm512_setzero_ps();
    int i = k0;
    for (; i + 16 <= k1; i += 16) {
        __m512 wv[8];
        if (pf)
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) _mm_prefetch(pf + r * wb + (size_t)i * esize, _MM_HINT_T0);
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) wv[r] = load_w(w + r * wb, i, dt);
#pragma GCC unroll 6
        for (int t = 0; t < T; t++) {
            __m512 xv = _mm512_loadu_ps(x + t * ldx + i);
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
        }
    }
    if (k1 < in) {
#pragma GCC unroll 8
        for (int r = 0; r < R; r++)
#pragma GCC unroll 6
            for (int t = 0; t < T; t++) buf[r * 6 + t] = acc[r][t];
        return;
    }
    if (i < in) {
        __mmask16 m = (__mmask16)((1u << (in - i)) - 1);
        __m512 wv[8];
#pragma GCC unroll 8
        for (int r = 0; r < R; r++) wv[r] = load_w_tail(w + r * wb, i, m, dt);
#pragma GCC unroll 6
        for (int t = 0; t < T; t++) {
            __m512 xv = _mm512_maskz_loadu_ps(m, x + t * ldx + i);
#pragma GCC unroll 8
            for (int r = 0; r < R; r++) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; r++)
#pragma GCC unroll 6
        for (int t = 0; t < T; t++) y[t * ldy + r] = _mm512_reduce_add_ps(acc[r][t]);
}

#define TILE_CASES(DT, R)                                                                          \
    switch (T) {                                                                                   \
    case 1: tile_float(w, wb, x, ldx, y, ldy, in, DT, pf, buf, k0, k1, R, 1); break;                                \
    case 2: tile_float(w, wb, x, ldx, y, ldy, in, DT, pf, buf, k0, k1, R, 2); break;                                \
    case 3: tile_float(w, wb, x, ldx, y, ldy, in, DT, pf, buf, k0, k1, R, 3); break;                                \
    case 4: tile_float(w, wb, x, ldx, y, ldy, in, DT, pf, buf, k0, k1, R, 4); break;                                \
    case 5: tile_float(w, wb, x, ldx, y, ldy, in, DT, pf, buf, k0, k1, R, 5); break;                                \
    default: tile_float(w, wb, x, ldx, y, ldy, in, DT, pf, buf, k0, k1, R, 6); break;                               \
    }

#define DTYPE_FN(name, DT)                                                                         \
    static TARGET void name(const char *w, size_t wb, const float *x, size_t ldx, float *y, size_t ldy, \
                            int in, const char *pf, __m512 *buf, int k0, int k1, int R, int T)     \
    {                                                                                              \
        if (R == 8) tile_float(w, wb, x, ldx, y, ldy, in, DT, pf, buf, k0, k1, 8, 1);                               \
        else if (R == 4) { TILE_CASES(DT, 4) }                                                     \
        else { TILE_CASES(DT, 1) }                                                                 \
    }

DTYPE_FN(tile_bf16, TENSOR_DTYPE_BF16)
DTYPE_FN(tile_f16, TENSOR_DTYPE_F16)
DTYPE_FN(tile_f32, TENSOR_DTYPE_F32)

/* The rows of g in dtype dt (one of the plain float formats) by float activations. */
static TARGET void range_float(const struct kern_range *g, enum tensor_dtype dt)
{
    size_t wb = g->w_stride;
    const char *base = g->w;
    void (*tile)(const char *, size_t, const float *, size_t, float *, size_t, int, const char *, __m512 *, int, int,
                 int, int) =
        dt == TENSOR_DTYPE_BF16 ? tile_bf16 : dt == TENSOR_DTYPE_F16 ? tile_f16 : tile_f32;
    /* Several tokens: columns in blocks of KBLOCK so a tile's activations stay in L1 while
     * the rows of a group (at most GROUP) go by; accumulators wait in buf between blocks. */
    enum { KBLOCK = 256, GROUP = 64 };
    __m512 buf[GROUP * 6];
    for (int t = g->t0; t < g->t1; t += 6) {
        int T = g->t1 - t < 6 ? g->t1 - t : 6;
        const float *x = g->x + (size_t)t * g->in;
        float *y = g->y + (size_t)t * g->ldy;
        /* The first token tile streams the weights from memory: rows whole, the next tile
         * prefetched (a row is often one 4 KiB page, where hardware prefetchers stop). Later
         * tiles find the rows in L2 and go by column blocks. Both give the same bits. */
        if (T <= 3 || t == g->t0) {
            for (int r = g->r0; r < g->r1;) {
                int R = T == 1 && g->r1 - r >= 8 ? 8 : g->r1 - r >= 4 ? 4 : 1;
                const char *pf = t == g->t0 && r + R + R <= g->r1 ? base + (size_t)(r + R) * wb : NULL;
                tile(base + (size_t)r * wb, wb, x, (size_t)g->in, y + r, (size_t)g->ldy, g->in, pf, NULL, 0, g->in, R, T);
                r += R;
            }
            continue;
        }
        for (int rg = g->r0; rg < g->r1; rg += GROUP) {
            int rg1 = rg + GROUP < g->r1 ? rg + GROUP : g->r1;
            for (int k0 = 0, k1; k0 < g->in; k0 = k1) {
                k1 = g->in - k0 > KBLOCK ? k0 + KBLOCK : g->in;
                for (int r = rg; r < rg1;) {
                    int R = rg1 - r >= 4 ? 4 : 1;
                    const char *pf = t == g->t0 && r + R + R <= rg1 ? base + (size_t)(r + R) * wb : NULL;
                    tile(base + (size_t)r * wb, wb, x, (size_t)g->in, y + r, (size_t)g->ldy, g->in, pf,
                         buf + (size_t)(r - rg) * 6, k0, k1, R, T);
                    r += R;
                }
            }
        }
    }
}

TARGET void float_range_avx512_f32(const struct kern_range *g)
{
    range_float(g, TENSOR_DTYPE_F32);
}

TARGET void float_range_avx512_f16(const struct kern_range *g)
{
    range_float(g, TENSOR_DTYPE_F16);
}

TARGET void float_range_avx512_bf16(const struct kern_range *g)
{
    range_float(g, TENSOR_DTYPE_BF16);
}

/* ---- BF16 weights x bf16 activations: VDPBF16PS, 32 columns (16 pairs) per instruction, one
 * accumulator per (row, token) pair fed in column order, the last partial chunk masked; columns
 * in blocks as above. */

#define TARGET_BF16 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx2,fma,f16c")))
#define INLINE_BF16 static inline __attribute__((always_inline)) TARGET_BF16

INLINE_BF16 void tile_dp(const char *w, size_t wb, const uint16_t *x, size_t ldx, float *y, size_t ldy, int in,
                         const char *pf, __m512 *buf, int k0, int k1, const int R, const int T)
{
    __m512 acc[4][6];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 6
        for (int t = 0; t < T; t++) acc[r][t] = k0 ? buf[r * 6 + t] : _mm512_setzero_ps();
    int i = k0;
    for (; i + 32 <= k1; i += 32) {
        __m512i wv[4];
        if (pf)
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) _mm_prefetch(pf + r * wb + (size_t)i * 2, _MM_HINT_T0);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) wv[r] = _mm512_loadu_si512((const uint16_t *)(w + r * wb) + i);
#pragma GCC unroll 6
        for (int t = 0; t < T; t++) {
            __m512i xv = _mm512_loadu_si512(x + t * ldx + i);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) acc[r][t] = _mm512_dpbf16_ps(acc[r][t], (__m512bh)xv, (__m512bh)wv[r]);
        }
    }
    if (k1 < in) {
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
#pragma GCC unroll 6
            for (int t = 0; t < T; t++) buf[r * 6 + t] = acc[r][t];
        return;
    }
    if (i < in) {
        __mmask32 m = (__mmask32)((1ull << (in - i)) - 1);
        __m512i wv[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) wv[r] = _mm512_maskz_loadu_epi16(m, (const uint16_t *)(w + r * wb) + i);
#pragma GCC unroll 6
        for (int t = 0; t < T; t++) {
            __m512i xv = _mm512_maskz_loadu_epi16(m, x + t * ldx + i);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) acc[r][t] = _mm512_dpbf16_ps(acc[r][t], (__m512bh)xv, (__m512bh)wv[r]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 6
        for (int t = 0; t < T; t++) y[t * ldy + r] = _mm512_reduce_add_ps(acc[r][t]);
}

#define DP_CASES(R)                                                                                \
    switch (T) {                                                                                   \
    case 1: tile_dp(w, wb, x, ldx, y, ldy, in, pf, buf, k0, k1, R, 1); break;                          \
    case 2: tile_dp(w, wb, x, ldx, y, ldy, in, pf, buf, k0, k1, R, 2); break;                          \
    case 3: tile_dp(w, wb, x, ldx, y, ldy, in, pf, buf, k0, k1, R, 3); break;                          \
    case 4: tile_dp(w, wb, x, ldx, y, ldy, in, pf, buf, k0, k1, R, 4); break;                          \
    case 5: tile_dp(w, wb, x, ldx, y, ldy, in, pf, buf, k0, k1, R, 5); break;                          \
    default: tile_dp(w, wb, x, ldx, y, ldy, in, pf, buf, k0, k1, R, 6); break;                         \
    }

static TARGET_BF16 void tile_dp_any(const char *w, size_t wb, const uint16_t *x, size_t ldx, float *y, size_t ldy,
                                    int in, const char *pf, __m512 *buf, int k0, int k1, int R, int T)
{
    if (R == 4) { DP_CASES(4) }
    else { DP_CASES(1) }
}

TARGET_BF16 void float_range_dpbf16(const struct kern_range *g)
{
    size_t wb = g->w_stride;
    const char *base = g->w;
    const uint16_t *xb = g->xa;
    enum { KBLOCK = 512, GROUP = 64 };
    __m512 buf[GROUP * 6];
    for (int t = g->t0; t < g->t1; t += 6) {
        int T = g->t1 - t < 6 ? g->t1 - t : 6;
        const uint16_t *x = xb + (size_t)t * g->in;
        float *y = g->y + (size_t)t * g->ldy;
        if (T <= 3 || t == g->t0) { /* as in range_float */
            for (int r = g->r0; r < g->r1;) {
                int R = g->r1 - r >= 4 ? 4 : 1;
                const char *pf = t == g->t0 && r + R + R <= g->r1 ? base + (size_t)(r + R) * wb : NULL;
                tile_dp_any(base + (size_t)r * wb, wb, x, (size_t)g->in, y + r, (size_t)g->ldy, g->in, pf, NULL, 0,
                            g->in, R, T);
                r += R;
            }
            continue;
        }
        for (int rg = g->r0; rg < g->r1; rg += GROUP) {
            int rg1 = rg + GROUP < g->r1 ? rg + GROUP : g->r1;
            for (int k0 = 0, k1; k0 < g->in; k0 = k1) {
                k1 = g->in - k0 > KBLOCK ? k0 + KBLOCK : g->in;
                for (int r = rg; r < rg1;) {
                    int R = rg1 - r >= 4 ? 4 : 1;
                    const char *pf = t == g->t0 && r + R + R <= rg1 ? base + (size_t)(r + R) * wb : NULL;
                    tile_dp_any(base + (size_t)r * wb, wb, x, (size_t)g->in, y + r, (size_t)g->ldy, g->in, pf,
                                buf + (size_t)(r - rg) * 6, k0, k1, R, T);
                    r += R;
                }
            }
        }
    }
}
