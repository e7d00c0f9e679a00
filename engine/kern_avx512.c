/* AVX-512 matmul kernels (F/BW/VL, VNNI for Q8_0). Every function here carries the target
 * attribute; kernels.c calls them only when kern_isa_best() says the CPU has these features.
 *
 * Register tiles of R weight rows x T tokens. Each (row, token) pair has one 16-lane float
 * accumulator fed 16 columns at a time in column order (the last partial chunk through a masked
 * load), then reduced by _mm512_reduce_add_ps: the same operations whatever R, T and n, so the
 * result is batch-invariant. A weight row is loaded once per tile of T tokens; for one token
 * (decode) each row is streamed once. */
#include "engine/kern_internal.h"

#include <immintrin.h>
#include <math.h>

#define TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline)) TARGET

/* 16 weights from column i of a row, as float */
INLINE __m512 load_w(const void *row, int i, enum tensor_dtype dt)
{
    switch (dt) {
    case TENSOR_DTYPE_BF16: {
        __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)row + i));
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    case TENSOR_DTYPE_F16:
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)row + i)));
    default:
        return _mm512_loadu_ps((const float *)row + i);
    }
}

INLINE __m512 load_w_tail(const void *row, int i, __mmask16 m, enum tensor_dtype dt)
{
    switch (dt) {
    case TENSOR_DTYPE_BF16: {
        __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)row + i);
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    case TENSOR_DTYPE_F16:
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)row + i));
    default:
        return _mm512_maskz_loadu_ps(m, (const float *)row + i);
    }
}

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

/* ---- Q8_0: two blocks per 512-bit step. For each block, the exact int32 dot of its 32 int8
 * pairs by VNNI (unsigned x signed bytes): the activations are offset by 128 to make them
 * unsigned, and each lane's accumulator starts at -128 x the sum of its four weights (computed
 * once per weight row and block pair, for all tokens), so the lane ends at exactly
 * sum(w * x). Converted to float and accumulated with the product of the two scales into 16
 * lanes (8 per block); an odd last block goes through 8 lanes of its own. Reduced in a fixed
 * order, so batch-invariant like the float tiles. */

/* qs of blocks b and b + 1 of a weight row, side by side */
INLINE __m512i load_w2(const struct q8_0_block *blk)
{
    __m256i lo = _mm256_loadu_si256((const __m256i *)blk[0].qs), hi = _mm256_loadu_si256((const __m256i *)blk[1].qs);
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

INLINE __m512 scale_w2(const struct q8_0_block *blk)
{
    __m256i h = _mm256_set_m128i(_mm_set1_epi16((short)blk[1].d), _mm_set1_epi16((short)blk[0].d));
    return _mm512_cvtph_ps(h);
}

INLINE void tile_q8(const char *w, size_t wb, const struct q8_act_block *x, size_t ldx, float *y, size_t ldy,
                    int nb, const char *pf, const int R, const int T)
{
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) acc[r][t] = _mm512_setzero_ps();
    const __m512i zero = _mm512_setzero_si512(), k80 = _mm512_set1_epi8((char)0x80);
    int b = 0;
    for (; b + 2 <= nb; b += 2) {
        __m512i wq[4], corr[4];
        __m512 wd[4];
        if (pf)
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) _mm_prefetch(pf + r * wb + (size_t)b * sizeof(struct q8_0_block), _MM_HINT_T0);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const struct q8_0_block *blk = (const struct q8_0_block *)(w + r * wb) + b;
            wq[r] = load_w2(blk);
            corr[r] = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, k80, wq[r]));
            wd[r] = scale_w2(blk);
        }
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            const struct q8_act_block *xb = x + t * ldx + b;
            __m512i xu = _mm512_xor_si512(
                _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)xb[0].qs)),
                                   _mm256_loadu_si256((const __m256i *)xb[1].qs), 1),
                k80);
            __m512 xd = _mm512_insertf32x8(_mm512_set1_ps(xb[0].d), _mm256_set1_ps(xb[1].d), 1);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++) {
                __m512 sf = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(corr[r], xu, wq[r]));
                acc[r][t] = _mm512_fmadd_ps(sf, _mm512_mul_ps(wd[r], xd), acc[r][t]);
            }
        }
    }
    __m256 tail[4][4];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) tail[r][t] = _mm256_setzero_ps();
    if (b < nb) {
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const struct q8_0_block *blk = (const struct q8_0_block *)(w + r * wb) + b;
            __m256i wq = _mm256_loadu_si256((const __m256i *)blk->qs);
            __m256 wd = _mm256_cvtph_ps(_mm_set1_epi16((short)blk->d));
#pragma GCC unroll 4
            for (int t = 0; t < T; t++) {
                const struct q8_act_block *xb = x + t * ldx + b;
                __m256i xq = _mm256_loadu_si256((const __m256i *)xb->qs);
                __m256i s = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_sign_epi8(wq, wq), _mm256_sign_epi8(xq, wq));
                tail[r][t] = _mm256_mul_ps(_mm256_cvtepi32_ps(s), _mm256_mul_ps(wd, _mm256_set1_ps(xb->d)));
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 4
        for (int t = 0; t < T; t++) {
            __m256 v = _mm256_add_ps(_mm512_castps512_ps256(acc[r][t]), _mm512_extractf32x8_ps(acc[r][t], 1));
            v = _mm256_add_ps(v, tail[r][t]);
            __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
            h = _mm_add_ps(h, _mm_movehl_ps(h, h));
            h = _mm_add_ss(h, _mm_movehdup_ps(h));
            y[t * ldy + r] = _mm_cvtss_f32(h);
        }
}

#define Q8_CASES(R)                                                                                \
    switch (T) {                                                                                   \
    case 1: tile_q8(w, wb, x, ldx, y, ldy, nb, pf, R, 1); break;                                   \
    case 2: tile_q8(w, wb, x, ldx, y, ldy, nb, pf, R, 2); break;                                   \
    case 3: tile_q8(w, wb, x, ldx, y, ldy, nb, pf, R, 3); break;                                   \
    default: tile_q8(w, wb, x, ldx, y, ldy, nb, pf, R, 4); break;                                  \
    }

static TARGET void tile_q8_any(const char *w, size_t wb, const struct q8_act_block *x, size_t ldx, float *y,
                               size_t ldy, int nb, const char *pf, int R, int T)
{
    if (R == 4) { Q8_CASES(4) }
    else { Q8_CASES(1) }
}

TARGET void kern__range_avx512(const struct kern_range *g)
{
    const struct tensor *w = g->w;
    size_t wb = tensor_row_bytes(w);
    const char *base = w->data;
    if (w->dtype == TENSOR_DTYPE_Q8_0) {
        int nb = g->in / Q8_0_BLOCK;
        for (int t = g->t0; t < g->t1; t += 4) {
            int T = g->t1 - t < 4 ? g->t1 - t : 4;
            for (int r = g->r0; r < g->r1;) {
                int R = g->r1 - r >= 4 ? 4 : 1;
                const char *pf = t == g->t0 && r + R + R <= g->r1 ? base + (size_t)(r + R) * wb : NULL;
                tile_q8_any(base + (size_t)r * wb, wb, g->xq + (size_t)t * nb, (size_t)nb,
                            g->y + (size_t)t * g->ldy + r, (size_t)g->ldy, nb, pf, R, T);
                r += R;
            }
        }
        return;
    }
    void (*tile)(const char *, size_t, const float *, size_t, float *, size_t, int, const char *, __m512 *, int, int,
                 int, int) =
        w->dtype == TENSOR_DTYPE_BF16 ? tile_bf16 : w->dtype == TENSOR_DTYPE_F16 ? tile_f16 : tile_f32;
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

TARGET void kern__gqa_scores_avx512(const float *q, int G, int hd, const float *k, size_t ldk, int n, float scale,
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

TARGET void kern__gqa_acc_avx512(float *out, int G, int hd, const float *v, size_t ldv, int n, const float *w, int ld)
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

TARGET void kern__softmax_avx512(float *x, int n)
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

TARGET void kern__swiglu_avx512(float *gate, const float *up, size_t n)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 mask = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 g = _mm512_maskz_loadu_ps(mask, gate + i);
        __m512 silu = _mm512_div_ps(g, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), g))));
        _mm512_mask_storeu_ps(gate + i, mask, _mm512_mul_ps(silu, _mm512_maskz_loadu_ps(mask, up + i)));
    }
}

/* ---- Q8_0 quantization of one block of 32 floats: d = max|x| / 127, q = round(x / d) */

INLINE float quant_block(__m512 a, __m512 b, int8_t *qs)
{
    __m512 m = _mm512_max_ps(_mm512_abs_ps(a), _mm512_abs_ps(b));
    float amax = _mm512_reduce_max_ps(m);
    float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
    __m512 vid = _mm512_set1_ps(id);
    __m128i qa = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(a, vid)));
    __m128i qb = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(_mm512_mul_ps(b, vid)));
    _mm_storeu_si128((__m128i *)qs, qa);
    _mm_storeu_si128((__m128i *)(qs + 16), qb);
    return d;
}

TARGET void kern__quant_act_avx512(const float *x, struct q8_act_block *out, int n)
{
    for (int b = 0; b < n / Q8_0_BLOCK; b++) {
        const float *xb = x + (size_t)b * Q8_0_BLOCK;
        out[b].d = quant_block(_mm512_loadu_ps(xb), _mm512_loadu_ps(xb + 16), out[b].qs);
    }
}

TARGET void kern__quant_w_avx512(const void *w, enum tensor_dtype dt, struct q8_0_block *out, int n)
{
    for (int b = 0; b < n / Q8_0_BLOCK; b++) {
        int i = b * Q8_0_BLOCK;
        __m512 lo, hi;
        switch (dt) {
        case TENSOR_DTYPE_BF16: lo = load_w(w, i, TENSOR_DTYPE_BF16); hi = load_w(w, i + 16, TENSOR_DTYPE_BF16); break;
        case TENSOR_DTYPE_F16: lo = load_w(w, i, TENSOR_DTYPE_F16); hi = load_w(w, i + 16, TENSOR_DTYPE_F16); break;
        default: lo = load_w(w, i, TENSOR_DTYPE_F32); hi = load_w(w, i + 16, TENSOR_DTYPE_F32); break;
        }
        out[b].d = tensor_f32_to_f16(quant_block(lo, hi, out[b].qs));
    }
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

TARGET_BF16 void kern__range_dpbf16(const struct kern_range *g)
{
    size_t wb = tensor_row_bytes(g->w);
    const char *base = g->w->data;
    enum { KBLOCK = 512, GROUP = 64 };
    __m512 buf[GROUP * 6];
    for (int t = g->t0; t < g->t1; t += 6) {
        int T = g->t1 - t < 6 ? g->t1 - t : 6;
        const uint16_t *x = g->xb + (size_t)t * g->in;
        float *y = g->y + (size_t)t * g->ldy;
        if (T <= 3 || t == g->t0) { /* as in kern__range_avx512 */
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
