/* The AVX-512 Q8_0 kernel (VNNI integer dot products) and the AVX-512 Q8_0 quantizers. */
#include "engine/kernels/q8_0.h"

#include "engine/kernels/fp16.h"
#include "engine/kernels/simd_avx512.h"

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


TARGET void q8_0_range_avx512(const struct kern_range *g)
{
    size_t wb = g->w_stride, ldx = g->xa_stride / sizeof(struct q8_act_block);
    const char *base = g->w;
    const struct q8_act_block *xq = g->xa;
    int nb = g->in / Q8_0_BLOCK;
    for (int t = g->t0; t < g->t1; t += 4) {
        int T = g->t1 - t < 4 ? g->t1 - t : 4;
        for (int r = g->r0; r < g->r1;) {
            int R = g->r1 - r >= 4 ? 4 : 1;
            const char *pf = t == g->t0 && r + R + R <= g->r1 ? base + (size_t)(r + R) * wb : NULL;
            tile_q8_any(base + (size_t)r * wb, wb, xq + (size_t)t * ldx, ldx, g->y + (size_t)t * g->ldy + r,
                        (size_t)g->ldy, nb, pf, R, T);
            r += R;
        }
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

TARGET void q8_0_quantize_act_avx512(const float *x, struct q8_act_block *out, int n)
{
    for (int b = 0; b < n / Q8_0_BLOCK; b++) {
        const float *xb = x + (size_t)b * Q8_0_BLOCK;
        out[b].d = quant_block(_mm512_loadu_ps(xb), _mm512_loadu_ps(xb + 16), out[b].qs);
    }
}

TARGET void q8_0_quantize_from_avx512(const void *w, enum tensor_dtype dt, struct q8_0_block *out, int n)
{
    for (int b = 0; b < n / Q8_0_BLOCK; b++) {
        int i = b * Q8_0_BLOCK;
        __m512 lo, hi;
        switch (dt) {
        case TENSOR_DTYPE_BF16: lo = load_w(w, i, TENSOR_DTYPE_BF16); hi = load_w(w, i + 16, TENSOR_DTYPE_BF16); break;
        case TENSOR_DTYPE_F16: lo = load_w(w, i, TENSOR_DTYPE_F16); hi = load_w(w, i + 16, TENSOR_DTYPE_F16); break;
        default: lo = load_w(w, i, TENSOR_DTYPE_F32); hi = load_w(w, i + 16, TENSOR_DTYPE_F32); break;
        }
        out[b].d = f32_to_f16(quant_block(lo, hi, out[b].qs));
    }
}
