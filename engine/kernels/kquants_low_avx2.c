/* The AVX2 Q2_K and Q3_K kernels against Q8_K activations, kquants_avx2.c's scheme: per weight
 * row and super-block the 2-/3-bit values are unpacked once into 8 registers of 32 unsigned
 * bytes (Q3_K: q + 4, 0..7) and the sub-block scales spread over int16 lanes; per token
 * VPMADDUBSW then VPMADDWD sum exactly into int32, and the bsums give Q2_K's mins and Q3_K's
 * -4 offset. The float step is kquants.h's, so the bits are the portable kernel's. */
#include "engine/kernels/kquants_low.h"
#include "engine/kernels/kq_simd.h"

#include <immintrin.h>

#define TARGET __attribute__((target("avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline)) TARGET

#define TOK_BLOCK 8

/* int16 lanes 0..7 = bytes[a], lanes 8..15 = bytes[b] of v, unsigned or signed */
INLINE __m256i spread(__m128i v, int a, int b, int is_signed)
{
    __m128i m = _mm_set_epi64x((long long)(0x0101010101010101ull * (unsigned)b), (long long)(0x0101010101010101ull * (unsigned)a));
    __m128i s = _mm_shuffle_epi8(v, m);
    return is_signed ? _mm256_cvtepi8_epi16(s) : _mm256_cvtepu8_epi16(s);
}

/* piece p (values 32 p .. 32 p + 31): bits 2 (p % 4) of the 32 qs bytes of half p / 4 */
INLINE __m256i low2_piece(const uint8_t *qs, int p)
{
    __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * (p / 4)));
    return _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(2 * (p % 4))), _mm256_set1_epi8(3));
}

struct low_unpacked {
    __m256i q[8];  /* piece p: values 32 p .. 32 p + 31, unsigned */
    __m256i sc[8]; /* lanes 0..7: scale of sub-block 2p, 8..15: of 2p + 1 */
    __m256i c16;   /* per sub-block, against bsums: Q2_K its min, Q3_K its scale */
    float d, dmin;
};

/* sum_j sc[j] * (q . x)_j; *corr = sum_j c16[j] * bsums[j], both exact */
INLINE int32_t low_sum(const struct low_unpacked *u, const struct q8_k_block *x, int32_t *corr)
{
    __m256i s = _mm256_setzero_si256();
    #pragma GCC unroll 8
    for (int p = 0; p < 8; p++) {
        __m256i prod = _mm256_maddubs_epi16(u->q[p], _mm256_loadu_si256((const __m256i *)(x->qs + 32 * p)));
        s = _mm256_add_epi32(s, _mm256_madd_epi16(prod, u->sc[p]));
    }
    *corr = kq_hsum256(_mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)x->bsums), u->c16));
    return kq_hsum256(s);
}

/* ---- Q2_K ---- */

INLINE void q2k_unpack(const struct q2_k_block *b, struct low_unpacked *u)
{
    __m128i raw = _mm_loadu_si128((const __m128i *)b->scales), low4 = _mm_set1_epi8(0x0F);
    __m128i sc = _mm_and_si128(raw, low4), mn = _mm_and_si128(_mm_srli_epi16(raw, 4), low4);
    #pragma GCC unroll 8
    for (int p = 0; p < 8; p++) {
        u->q[p] = low2_piece(b->qs, p);
        u->sc[p] = spread(sc, 2 * p, 2 * p + 1, 0);
    }
    u->c16 = _mm256_cvtepu8_epi16(mn);
    u->d = _cvtsh_ss(b->d);
    u->dmin = _cvtsh_ss(b->dmin);
}

TARGET void fmt_q2_k_range_avx2(const struct kern_range *g)
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
    __m128i sc = s8;
    __m256i h = _mm256_loadu_si256((const __m256i *)b->hmask);
    const __m256i one = _mm256_set1_epi8(1);
    #pragma GCC unroll 8
    for (int p = 0; p < 8; p++) {
        __m256i hb = _mm256_and_si256(_mm256_srl_epi16(h, _mm_cvtsi32_si128(p)), one);
        u->q[p] = _mm256_or_si256(low2_piece(b->qs, p), _mm256_slli_epi16(hb, 2));
        u->sc[p] = spread(sc, 2 * p, 2 * p + 1, 1);
    }
    u->c16 = _mm256_cvtepi8_epi16(sc);
    u->d = _cvtsh_ss(b->d);
}

TARGET void fmt_q3_k_range_avx2(const struct kern_range *g)
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
