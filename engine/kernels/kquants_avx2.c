/* The AVX2 Q4_K, Q5_K and Q6_K kernels against Q8_K activations: kquants_avx512.c's scheme on 32-byte
 * registers, one sub-block pair at a time: VPMADDUBSW (unsigned weight x signed activation) then
 * VPMADDWD with the scale broadcast to the lanes of its sub-block, summed as exact int32. The
 * float step is kquants.h's, so the bits are the portable kernel's. */
#include "engine/kernels/kquants.h"
#include "engine/kernels/kq_simd.h"

#include <immintrin.h>

#define TARGET __attribute__((target("avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline)) TARGET

#define TOK_BLOCK 8

/* int16 lanes 0..7 = bytes[a], lanes 8..15 = bytes[b] of v (unsigned or signed bytes) */
INLINE __m256i spread_u8(__m128i v, int a, int b)
{
    __m128i m = _mm_set_epi64x((long long)(0x0101010101010101ull * (unsigned)b), (long long)(0x0101010101010101ull * (unsigned)a));
    return _mm256_cvtepu8_epi16(_mm_shuffle_epi8(v, m));
}

INLINE __m256i spread_i8(__m128i v, int a, int b)
{
    __m128i m = _mm_set_epi64x((long long)(0x0101010101010101ull * (unsigned)b), (long long)(0x0101010101010101ull * (unsigned)a));
    return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(v, m));
}

/* ---- Q4_K ---- */

struct q4k_unpacked {
    __m256i q[8];  /* sub-block j: its 32 values 0..15 */
    __m256i sc[8]; /* its scale in all 16 int16 lanes */
    __m256i m16;   /* mins, each twice: pairs with bsums */
    float d, dmin;
};

/* kq_q4_k_scale_words as 6 vector operations (as kquants_avx512.c's): lanes [w0 w1 w2 w3] from
 * the words [u0 u1 u2] */
INLINE __m128i q4k_scale_words(const uint8_t packed[12])
{
    /* 16 bytes: the 12 packed ones and the first 4 that follow them in the block (unused) */
    __m128i v = _mm_loadu_si128((const __m128i *)packed);
    __m128i lo = _mm_srlv_epi32(_mm_shuffle_epi32(v, 0x98), _mm_set_epi32(4, 0, 0, 0)); /* u0 u2 u1 u2>>4 */
    lo = _mm_and_si128(lo, _mm_set_epi32(0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f));
    __m128i hi = _mm_srli_epi32(_mm_shuffle_epi32(v, 0x50), 2); /* u0 u0 u1 u1 */
    hi = _mm_and_si128(hi, _mm_set_epi32(0x30303030, 0, 0x30303030, 0));
    return _mm_or_si128(lo, hi);
}

/* the scales, mins and f16 factors, shared with Q5_K; packed is followed by at least 4 bytes */
INLINE void q4k_unpack_scales(const uint8_t packed[12], uint16_t d, uint16_t dmin, struct q4k_unpacked *u)
{
    __m128i sm = q4k_scale_words(packed);
    for (int j = 0; j < 8; j++) u->sc[j] = spread_u8(sm, j, j);
    u->m16 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(sm, _mm_set_epi8(15, 15, 14, 14, 13, 13, 12, 12, 11, 11, 10, 10, 9, 9, 8, 8)));
    u->d = _cvtsh_ss(d);
    u->dmin = _cvtsh_ss(dmin);
}

INLINE void q4k_unpack(const struct q4_k_block *b, struct q4k_unpacked *u)
{
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    for (int c = 0; c < 4; c++) {
        __m256i raw = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * c));
        u->q[2 * c] = _mm256_and_si256(raw, low4);
        u->q[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low4);
    }
    q4k_unpack_scales(b->scales, b->d, b->dmin, u);
}

INLINE float q4k_step(const struct q4k_unpacked *u, const struct q8_k_block *x, float acc)
{
    __m256i s = _mm256_setzero_si256();
    for (int j = 0; j < 8; j++) {
        __m256i p = _mm256_maddubs_epi16(u->q[j], _mm256_loadu_si256((const __m256i *)(x->qs + 32 * j)));
        s = _mm256_add_epi32(s, _mm256_madd_epi16(p, u->sc[j]));
    }
    __m256i mn = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)x->bsums), u->m16);
    return kq_q4_k_accum(acc, u->d, u->dmin, x->d, kq_hsum256(s), kq_hsum256(mn));
}

TARGET void fmt_q4_k_range_avx2(const struct kern_range *g)
{
    int nb = g->in / QK_K;
    for (int r = g->r0; r < g->r1; r++) {
        const struct q4_k_block *w = (const struct q4_k_block *)(g->w + (size_t)r * g->w_stride);
        for (int t0 = g->t0; t0 < g->t1; t0 += TOK_BLOCK) {
            int nt = g->t1 - t0 < TOK_BLOCK ? g->t1 - t0 : TOK_BLOCK;
            float acc[TOK_BLOCK] = {0};
            for (int b = 0; b < nb; b++) {
                struct q4k_unpacked u;
                q4k_unpack(&w[b], &u);
                for (int t = 0; t < nt; t++) acc[t] = q4k_step(&u, kq_act_row(g, t0 + t) + b, acc[t]);
            }
            for (int t = 0; t < nt; t++) g->y[(size_t)(t0 + t) * g->ldy + r] = acc[t];
        }
    }
}

/* ---- Q5_K: Q4_K's step on 5-bit values (bit j of qh[l] is the 5th bit of value 32 j + l) ---- */

INLINE __m256i bit_to_16(__m256i h, int j)
{
    const __m256i one = _mm256_set1_epi8(1);
    return _mm256_slli_epi16(_mm256_and_si256(_mm256_srl_epi16(h, _mm_cvtsi32_si128(j)), one), 4);
}

INLINE void q5k_unpack(const struct q5_k_block *b, struct q4k_unpacked *u)
{
    const __m256i low4 = _mm256_set1_epi8(0x0F);
    __m256i h = _mm256_loadu_si256((const __m256i *)b->qh);
    for (int c = 0; c < 4; c++) {
        __m256i raw = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * c));
        u->q[2 * c] = _mm256_or_si256(_mm256_and_si256(raw, low4), bit_to_16(h, 2 * c));
        u->q[2 * c + 1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw, 4), low4), bit_to_16(h, 2 * c + 1));
    }
    q4k_unpack_scales(b->scales, b->d, b->dmin, u);
}

TARGET void fmt_q5_k_range_avx2(const struct kern_range *g)
{
    int nb = g->in / QK_K;
    for (int r = g->r0; r < g->r1; r++) {
        const struct q5_k_block *w = (const struct q5_k_block *)(g->w + (size_t)r * g->w_stride);
        for (int t0 = g->t0; t0 < g->t1; t0 += TOK_BLOCK) {
            int nt = g->t1 - t0 < TOK_BLOCK ? g->t1 - t0 : TOK_BLOCK;
            float acc[TOK_BLOCK] = {0};
            for (int b = 0; b < nb; b++) {
                struct q4k_unpacked u;
                q5k_unpack(&w[b], &u);
                for (int t = 0; t < nt; t++) acc[t] = q4k_step(&u, kq_act_row(g, t0 + t) + b, acc[t]);
            }
            for (int t = 0; t < nt; t++) g->y[(size_t)(t0 + t) * g->ldy + r] = acc[t];
        }
    }
}

/* ---- Q6_K ---- */

struct q6k_unpacked {
    __m256i q[8];  /* piece p: values 32p .. 32p + 31, unsigned 0..63 */
    __m256i sc[8]; /* its two groups' scales: lanes 0..7 group 2p, 8..15 group 2p + 1 */
    __m256i s16;   /* the 16 scales: pairs with bsums for the -32 offset */
    float d;
};

INLINE void q6k_unpack(const struct q6_k_block *b, struct q6k_unpacked *u)
{
    const __m256i low4 = _mm256_set1_epi8(0x0F), hi2 = _mm256_set1_epi8(0x30);
    for (int h = 0; h < 2; h++) {
        __m256i L0 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h));
        __m256i L1 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * h + 32));
        __m256i H = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * h));
        __m256i *q = u->q + 4 * h;
        q[0] = _mm256_or_si256(_mm256_and_si256(L0, low4), _mm256_and_si256(_mm256_slli_epi16(H, 4), hi2));
        q[1] = _mm256_or_si256(_mm256_and_si256(L1, low4), _mm256_and_si256(_mm256_slli_epi16(H, 2), hi2));
        q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(L0, 4), low4), _mm256_and_si256(H, hi2));
        q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(L1, 4), low4),
                               _mm256_and_si256(_mm256_srli_epi16(H, 2), hi2));
    }
    __m128i s8 = _mm_loadu_si128((const __m128i *)b->scales);
    for (int p = 0; p < 8; p++) u->sc[p] = spread_i8(s8, 2 * p, 2 * p + 1);
    u->s16 = _mm256_cvtepi8_epi16(s8);
    u->d = _cvtsh_ss(b->d);
}

INLINE float q6k_step(const struct q6k_unpacked *u, const struct q8_k_block *x, float acc)
{
    __m256i s = _mm256_setzero_si256();
    for (int p = 0; p < 8; p++) {
        __m256i prod = _mm256_maddubs_epi16(u->q[p], _mm256_loadu_si256((const __m256i *)(x->qs + 32 * p)));
        s = _mm256_add_epi32(s, _mm256_madd_epi16(prod, u->sc[p]));
    }
    __m256i off = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)x->bsums), u->s16);
    return kq_q6_k_accum(acc, u->d, x->d, kq_hsum256(s) - 32 * kq_hsum256(off));
}

TARGET void fmt_q6_k_range_avx2(const struct kern_range *g)
{
    int nb = g->in / QK_K;
    for (int r = g->r0; r < g->r1; r++) {
        const struct q6_k_block *w = (const struct q6_k_block *)(g->w + (size_t)r * g->w_stride);
        for (int t0 = g->t0; t0 < g->t1; t0 += TOK_BLOCK) {
            int nt = g->t1 - t0 < TOK_BLOCK ? g->t1 - t0 : TOK_BLOCK;
            float acc[TOK_BLOCK] = {0};
            for (int b = 0; b < nb; b++) {
                struct q6k_unpacked u;
                q6k_unpack(&w[b], &u);
                for (int t = 0; t < nt; t++) acc[t] = q6k_step(&u, kq_act_row(g, t0 + t) + b, acc[t]);
            }
            for (int t = 0; t < nt; t++) g->y[(size_t)(t0 + t) * g->ldy + r] = acc[t];
        }
    }
}
