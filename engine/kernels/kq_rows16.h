/* Sixteen rows at a time, for the AVX-512 kernels of the Q8_K-activation formats (kquants_avx512,
 * iq4_xs_avx512): the decode shape, few tokens against many rows. A per-row kernel ends every
 * super-block with horizontal sums and a scalar multiply-add on a serial chain; here each of 16
 * rows leaves its int32 partial sums in a vector, the 16 vectors are reduced together (lane i:
 * row i), and the caller's float step runs on 16 rows at once with kquants.h's operations in
 * kquants.h's order, so the bits stay the portable kernel's. Include from an AVX-512 file only. */
#ifndef MS_ENGINE_KERNELS_KQ_ROWS16_H
#define MS_ENGINE_KERNELS_KQ_ROWS16_H

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/kernels/kern_range.h"

#define KQ_R16_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")))
#define KQ_R16_INLINE static inline __attribute__((always_inline)) KQ_R16_TARGET

#define R16_ROWS 16
#define ROWS16_TOKENS 8 /* tokens per pass over a group */

/* lane i: the sum of v[i]'s 16 int32 lanes (exact) */
KQ_R16_INLINE __m512i sum_rows16(const __m512i v[R16_ROWS])
{
    __m512i a[8], b[4];
    #pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
        a[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]),
                                _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]));
    /* b[k], 128-bit lane L: the lane-L sums of rows 4k .. 4k + 3 */
    #pragma GCC unroll 8
    for (int k = 0; k < 4; k++)
        b[k] = _mm512_add_epi32(_mm512_unpacklo_epi64(a[2 * k], a[2 * k + 1]),
                                _mm512_unpackhi_epi64(a[2 * k], a[2 * k + 1]));
    __m512i c0 = _mm512_add_epi32(_mm512_shuffle_i32x4(b[0], b[1], 0x88), _mm512_shuffle_i32x4(b[0], b[1], 0xDD));
    __m512i c1 = _mm512_add_epi32(_mm512_shuffle_i32x4(b[2], b[3], 0x88), _mm512_shuffle_i32x4(b[2], b[3], 0xDD));
    return _mm512_add_epi32(_mm512_shuffle_i32x4(c0, c1, 0x88), _mm512_shuffle_i32x4(c0, c1, 0xDD));
}

/* lane i: the sum of row i's 8 int32 lanes, where p[k] holds row k (low half) and row k + 8 */
KQ_R16_INLINE __m512i sum_rows8x2(const __m512i p[8])
{
    __m512i a[4], b[2];
    #pragma GCC unroll 8
    for (int i = 0; i < 4; i++)
        a[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(p[2 * i], p[2 * i + 1]),
                                _mm512_unpackhi_epi32(p[2 * i], p[2 * i + 1]));
    #pragma GCC unroll 8
    for (int k = 0; k < 2; k++)
        b[k] = _mm512_add_epi32(_mm512_unpacklo_epi64(a[2 * k], a[2 * k + 1]),
                                _mm512_unpackhi_epi64(a[2 * k], a[2 * k + 1]));
    /* rows 0-3, 8-11, 4-7, 12-15 */
    __m512i c = _mm512_add_epi32(_mm512_shuffle_i32x4(b[0], b[1], 0x88), _mm512_shuffle_i32x4(b[0], b[1], 0xDD));
    return _mm512_shuffle_i32x4(c, c, _MM_SHUFFLE(3, 1, 2, 0));
}

/* the 16 f16 factors gathered from the rows, as floats (the same exact conversion as _cvtsh_ss) */
KQ_R16_INLINE __m512 f16x16(const uint16_t h[R16_ROWS])
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)h));
}

/* Sixteen rows walked side by side are sixteen streams, each advancing one block per pass: too
 * slow for the hardware prefetcher to run ahead of (Q4_K at 13.6 GB/s without this, 25.9 with,
 * AMD EPYC Zen 5, one thread), so row r + i asks for the block it will need PREFETCH_BLOCKS passes
 * on: further along its own row, or in the next group's row r + 16 + i. */
#define PREFETCH_BLOCKS 4
KQ_R16_INLINE void prefetch_ahead(const struct kern_range *g, int r, int b, size_t block_bytes, int nb)
{
    int ahead = b + PREFETCH_BLOCKS;
    if (ahead >= nb) {
        ahead -= nb;
        r += R16_ROWS;
        if (r >= g->r1 || ahead >= nb) return;
    }
    const char *p = g->w + (size_t)r * g->w_stride + (size_t)ahead * block_bytes;
    for (size_t o = 0; o < block_bytes; o += 64) _mm_prefetch(p + o, _MM_HINT_T0);
    _mm_prefetch(p + block_bytes - 1, _MM_HINT_T0);
}

/* What 16 rows leave for each token of a super-block column: the int32 partial sums, and the
 * per-pair weights (mins or scales as int16) that meet the token's bsums. */
struct rows16 {
    __m512i s[ROWS16_TOKENS][R16_ROWS];
    __m256i pair[8][2]; /* [k][0]: row k, [k][1]: row k + 8 */
    uint16_t d[R16_ROWS], dmin[R16_ROWS];
};

KQ_R16_INLINE void rows16_keep_pair(struct rows16 *c, int i, __m256i w16)
{
    _mm256_storeu_si256(&c->pair[i & 7][i >> 3], w16);
}

/* lane i: row i's pair weights . a token's 16 bsums (its Q8_K block's) */
KQ_R16_INLINE __m512i rows16_pair_sums(const struct rows16 *c, const int16_t bsums[16])
{
    __m512i bs = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)bsums)), p[8];
    #pragma GCC unroll 8
    for (int k = 0; k < 8; k++) p[k] = _mm512_madd_epi16(bs, _mm512_loadu_si512((const void *)c->pair[k]));
    return sum_rows8x2(p);
}

/* kq_q6_k_accum on 16 lanes for the formats whose quants carry an offset of 2^shift that the
 * token's bsums take back off (Q6_K: 32, IQ4_XS's unsigned codebook: 128):
 * acc + (d * xd) * (sum - 2^shift * pair sums), lane i row i */
KQ_R16_INLINE __m512 rows16_offset_accum(__m512 acc, const struct rows16 *c, int t, __m512 d, float xd,
                                         const int16_t bsums[16], int shift)
{
    __m512i sumi = _mm512_sub_epi32(sum_rows16(c->s[t]), _mm512_sll_epi32(rows16_pair_sums(c, bsums), _mm_cvtsi32_si128(shift)));
    return _mm512_add_ps(acc, _mm512_mul_ps(_mm512_mul_ps(d, _mm512_set1_ps(xd)), _mm512_cvtepi32_ps(sumi)));
}

KQ_R16_INLINE void rows16_store(const struct kern_range *g, int r, int t0, int nt, const __m512 *acc)
{
    for (int t = 0; t < nt; t++) _mm512_storeu_ps(g->y + (size_t)(t0 + t) * g->ldy + r, acc[t]);
}

typedef void (*rows16_fn)(const struct kern_range *g, int r, int t0, int nt);
typedef void (*rows_from_fn)(const struct kern_range *g, int r0);

/* the 16-row groups, then the rows left over one at a time */
KQ_R16_INLINE void range_by_rows16(const struct kern_range *g, rows16_fn group, rows_from_fn rest)
{
    int r = g->r0;
    for (; r + R16_ROWS <= g->r1; r += R16_ROWS)
        for (int t0 = g->t0; t0 < g->t1; t0 += ROWS16_TOKENS)
            group(g, r, t0, g->t1 - t0 < ROWS16_TOKENS ? g->t1 - t0 : ROWS16_TOKENS);
    rest(g, r);
}

#endif
