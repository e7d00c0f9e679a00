/* The AVX-512 Q2_K and Q3_K kernels against Q8_K activations, kquants_avx512.c's scheme: per
 * weight row and super-block the values are unpacked once into 4 registers of 64 unsigned bytes
 * (Q3_K: q + 4, 0..7) and the 16 sub-block scales into int16 lanes; per token VPMADDUBSW and
 * VPDPWSSD give the exact int32 sum, and the bsums Q2_K's mins and Q3_K's -4 offset. The float
 * step is kquants.h's, so the bits are the portable kernel's. */
#include "engine/kernels/kquants_low.h"
#include "engine/kernels/kq_simd.h"

#include <immintrin.h>

#define TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline)) TARGET

#define TOK_BLOCK 8

struct low_unpacked {
    __m512i q[4];  /* piece k: values 64 k .. 64 k + 63, unsigned */
    __m512i sc[4]; /* their scales as int16: lane i (values 2i, 2i + 1) has sub-block 4k + i / 8 */
    __m256i c16;   /* per sub-block, against bsums: Q2_K its min, Q3_K its scale */
    float d, dmin;
};

/* values 64 k .. 64 k + 63: their 2-bit fields, bits 4 (k % 2) (low half) and 4 (k % 2) + 2
 * (high half) of the 32 qs bytes of half k / 2 */
INLINE __m512i low2_piece(const uint8_t *qs, int k)
{
    __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(qs + 32 * (k / 2))));
    long long s = 4 * (k % 2);
    __m512i sh = _mm512_set_epi64(s + 2, s + 2, s + 2, s + 2, s, s, s, s);
    return _mm512_and_si512(_mm512_srlv_epi64(v, sh), _mm512_set1_epi8(3));
}

INLINE void spread_scales(__m256i s16, struct low_unpacked *u)
{
    __m512i s512 = _mm512_castsi256_si512(s16);
    const __m512i lane = _mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13,
                                          12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    __m512i grp = _mm512_srli_epi16(lane, 3);
    #pragma GCC unroll 8
    for (int k = 0; k < 4; k++)
        u->sc[k] = _mm512_permutexvar_epi16(_mm512_add_epi16(grp, _mm512_set1_epi16((short)(4 * k))), s512);
}

/* sum_j sc[j] * (q . x)_j; *corr = sum_j c16[j] * bsums[j], both exact */
INLINE int32_t low_sum(const struct low_unpacked *u, const struct q8_k_block *x, int32_t *corr)
{
    __m512i s = _mm512_setzero_si512();
    #pragma GCC unroll 8
    for (int k = 0; k < 4; k++) {
        __m512i p = _mm512_maddubs_epi16(u->q[k], _mm512_loadu_si512((const void *)(x->qs + 64 * k)));
        s = _mm512_dpwssd_epi32(s, p, u->sc[k]);
    }
    *corr = kq_hsum256(_mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)x->bsums), u->c16));
    return kq_hsum512(s);
}

/* ---- Q2_K ---- */

INLINE void q2k_unpack(const struct q2_k_block *b, struct low_unpacked *u)
{
    __m128i raw = _mm_loadu_si128((const __m128i *)b->scales), low4 = _mm_set1_epi8(0x0F);
    spread_scales(_mm256_cvtepu8_epi16(_mm_and_si128(raw, low4)), u);
    u->c16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(raw, 4), low4));
    #pragma GCC unroll 8
    for (int k = 0; k < 4; k++) u->q[k] = low2_piece(b->qs, k);
    u->d = _cvtsh_ss(b->d);
    u->dmin = _cvtsh_ss(b->dmin);
}

TARGET void fmt_q2_k_range_avx512(const struct kern_range *g)
{
    int nb = g->in / QK_K;
    for (int r = g->r0; r < g->r1; r++) {
        const struct q2_k_block *w = (const struct q2_k_block *)(g->w + (size_t)r * g->w_stride);
        for (int t0 = g->t0; t0 < g->t1; t0 += TOK_BLOCK) {
            int nt = g->t1 - t0 < TOK_BLOCK ? g->t1 - t0 : TOK_BLOCK;
            float acc[TOK_BLOCK] = {0};
            for (int b = 0; b < nb; b++) {
                struct low_unpacked u;
                q2k_unpack(&w[b], &u);
                for (int t = 0; t < nt; t++) {
                    const struct q8_k_block *x = kq_act_row(g, t0 + t) + b;
                    int32_t summin, sumi = low_sum(&u, x, &summin);
                    acc[t] = kq_q4_k_accum(acc[t], u.d, u.dmin, x->d, sumi, summin);
                }
            }
            for (int t = 0; t < nt; t++) g->y[(size_t)(t0 + t) * g->ldy + r] = acc[t];
        }
    }
}

/* ---- Q3_K ---- */

INLINE void q3k_unpack(const struct q3_k_block *b, struct low_unpacked *u)
{
    uint32_t w[4];
    kq_q3_k_scale_words(b->scales, w);
    __m128i s8 = _mm_sub_epi8(_mm_set_epi32((int)w[3], (int)w[2], (int)w[1], (int)w[0]), _mm_set1_epi8(32));
    u->c16 = _mm256_cvtepi8_epi16(s8);
    spread_scales(u->c16, u);
    __m512i h = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)b->hmask));
    const __m512i one = _mm512_set1_epi8(1);
    #pragma GCC unroll 8
    for (int k = 0; k < 4; k++) { /* the high bit of value 32 p + m is bit p of hmask[m] */
        long long p = 2 * k;
        __m512i hb = _mm512_and_si512(_mm512_srlv_epi64(h, _mm512_set_epi64(p + 1, p + 1, p + 1, p + 1, p, p, p, p)), one);
        u->q[k] = _mm512_or_si512(low2_piece(b->qs, k), _mm512_slli_epi16(hb, 2));
    }
    u->d = _cvtsh_ss(b->d);
}

TARGET void fmt_q3_k_range_avx512(const struct kern_range *g)
{
    int nb = g->in / QK_K;
    for (int r = g->r0; r < g->r1; r++) {
        const struct q3_k_block *w = (const struct q3_k_block *)(g->w + (size_t)r * g->w_stride);
        for (int t0 = g->t0; t0 < g->t1; t0 += TOK_BLOCK) {
            int nt = g->t1 - t0 < TOK_BLOCK ? g->t1 - t0 : TOK_BLOCK;
            float acc[TOK_BLOCK] = {0};
            for (int b = 0; b < nb; b++) {
                struct low_unpacked u;
                q3k_unpack(&w[b], &u);
                for (int t = 0; t < nt; t++) {
                    const struct q8_k_block *x = kq_act_row(g, t0 + t) + b;
                    int32_t off, sumi = low_sum(&u, x, &off);
                    acc[t] = kq_q6_k_accum(acc[t], u.d, x->d, sumi - 4 * off);
                }
            }
            for (int t = 0; t < nt; t++) g->y[(size_t)(t0 + t) * g->ldy + r] = acc[t];
        }
    }
}
