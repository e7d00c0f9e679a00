/* The AVX-512 Q4_K, Q5_K and Q6_K kernels against Q8_K activations. Per weight row and super-block the
 * quants are unpacked once into 4 registers of 64 unsigned bytes (Q4_K: 0..15, Q6_K: 0..63) and
 * the sub-block scales into int16 lanes; then for each token of the block (up to 8),
 * VPMADDUBSW (unsigned weight x signed activation, pairs; no saturation: 63 * 127 * 2 < 32767)
 * and VPDPWSSD with the scales give the exact int32 sum, and the bsums give the min (Q4_K) or
 * the -32 offset (Q6_K) correction. The float step is kquants.h's, so the bits are the
 * portable kernel's. */
#include "engine/kernels/kquants.h"
#include "engine/kernels/kq_rows16.h"
#include "engine/kernels/kq_simd.h"

#include <immintrin.h>

#define TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline)) TARGET

#define TOK_BLOCK 8

/* ---- Q4_K ---- */

struct q4k_unpacked {
    __m512i q[4];  /* chunk c: values 64c .. 64c + 63 */
    __m512i sc[4]; /* their scales as int16: lanes 0..15 sub-block 2c, 16..31 sub-block 2c + 1 */
    __m256i m16;   /* mins, each twice: pairs with bsums */
    float d, dmin;
};

/* kq_q4_k_scale_words as 6 vector operations: lanes [w0 w1 w2 w3] from the words [u0 u1 u2] */
INLINE __m128i q4k_scale_words(const uint8_t packed[12])
{
    /* 16 bytes: the 12 packed ones and the first 4 that follow them in the block (unused) */
    __m128i v = _mm_loadu_si128((const __m128i *)packed);
    __m128i lo = _mm_srlv_epi32(_mm_shuffle_epi32(v, 0x98), _mm_set_epi32(4, 0, 0, 0));          /* u0 u2 u1 u2>>4 */
    lo = _mm_and_si128(lo, _mm_set_epi32(0x0f0f0f0f, 0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f));
    __m128i hi = _mm_srli_epi32(_mm_shuffle_epi32(v, 0x50), 2);                                   /* u0 u0 u1 u1 */
    hi = _mm_and_si128(hi, _mm_set_epi32(0x30303030, 0, 0x30303030, 0));
    return _mm_or_si128(lo, hi);
}

/* the scales, mins and f16 factors, shared with Q5_K; packed is followed by at least 4 bytes */
INLINE void q4k_unpack_scales(const uint8_t packed[12], uint16_t d, uint16_t dmin, struct q4k_unpacked *u)
{
    __m256i s16 = _mm256_cvtepu8_epi16(q4k_scale_words(packed));
    __m512i s512 = _mm512_castsi256_si512(s16);
    #pragma GCC unroll 8
    for (int c = 0; c < 4; c++) {
        __m512i idx = _mm512_mask_blend_epi16(0xFFFF0000u, _mm512_set1_epi16((short)(2 * c)),
                                              _mm512_set1_epi16((short)(2 * c + 1)));
        u->sc[c] = _mm512_permutexvar_epi16(idx, s512);
    }
    const __m256i midx = _mm256_set_epi16(15, 15, 14, 14, 13, 13, 12, 12, 11, 11, 10, 10, 9, 9, 8, 8);
    u->m16 = _mm256_permutexvar_epi16(midx, s16);
    u->d = _cvtsh_ss(d);
    u->dmin = _cvtsh_ss(dmin);
}

INLINE void q4k_unpack(const struct q4_k_block *b, struct q4k_unpacked *u)
{
    const __m512i nib_shift = _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0), low4 = _mm512_set1_epi8(0x0F);
    #pragma GCC unroll 8
    for (int c = 0; c < 4; c++) {
        __m512i raw = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b->qs + 32 * c)));
        u->q[c] = _mm512_and_si512(_mm512_srlv_epi64(raw, nib_shift), low4);
    }
    q4k_unpack_scales(b->scales, b->d, b->dmin, u);
}

/* The scaled quant sums of one super-block against x, as 16 int32 partial sums: q[c] holds
 * values 64c .. 64c + 63 unsigned, sc[c] their scales as int16 pairs (Q4_K, Q5_K and Q6_K alike). */
INLINE __m512i scaled_isum(const __m512i q[4], const __m512i sc[4], const struct q8_k_block *x)
{
    __m512i s = _mm512_setzero_si512();
    #pragma GCC unroll 8
    for (int c = 0; c < 4; c++) {
        __m512i p = _mm512_maddubs_epi16(q[c], _mm512_loadu_si512((const void *)(x->qs + 64 * c)));
        s = _mm512_dpwssd_epi32(s, p, sc[c]);
    }
    return s;
}

INLINE float q4k_step(const struct q4k_unpacked *u, const struct q8_k_block *x, float acc)
{
    __m512i s = scaled_isum(u->q, u->sc, x);
    __m256i mn = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)x->bsums), u->m16);
    return kq_q4_k_accum(acc, u->d, u->dmin, x->d, kq_hsum512(s), kq_hsum256(mn));
}

/* rows r0 .. g->r1 - 1, one at a time */
static TARGET void q4k_rows_from(const struct kern_range *g, int r0)
{
    int nb = g->in / QK_K;
    for (int r = r0; r < g->r1; r++) {
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

INLINE void q5k_unpack(const struct q5_k_block *b, struct q4k_unpacked *u)
{
    const __m512i nib_shift = _mm512_set_epi64(4, 4, 4, 4, 0, 0, 0, 0), low4 = _mm512_set1_epi8(0x0F);
    const __m512i one = _mm512_set1_epi8(1);
    __m512i h = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)b->qh));
    #pragma GCC unroll 8
    for (int c = 0; c < 4; c++) {
        __m512i raw = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b->qs + 32 * c)));
        /* low half: sub-block 2c (bit 2c), high half: sub-block 2c + 1 (bit 2c + 1) */
        __m512i hs = _mm512_set_epi64(2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c, 2 * c, 2 * c, 2 * c);
        __m512i hb = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi64(h, hs), one), 4);
        u->q[c] = _mm512_or_si512(_mm512_and_si512(_mm512_srlv_epi64(raw, nib_shift), low4), hb);
    }
    q4k_unpack_scales(b->scales, b->d, b->dmin, u);
}

/* rows r0 .. g->r1 - 1, one at a time */
static TARGET void q5k_rows_from(const struct kern_range *g, int r0)
{
    int nb = g->in / QK_K;
    for (int r = r0; r < g->r1; r++) {
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
    __m512i q[4];  /* piece k: values 64k .. 64k + 63, unsigned 0..63 */
    __m512i sc[4]; /* their scales as int16: lane i (values 2i, 2i + 1) has group 4k + i / 8 */
    __m256i s16;   /* the 16 scales: pairs with bsums for the -32 offset */
    float d;
};

INLINE void q6k_unpack(const struct q6_k_block *b, struct q6k_unpacked *u)
{
    const __m512i low4 = _mm512_set1_epi8(0x0F), hi2 = _mm512_set1_epi8(0x30);
    const __m512i shl = _mm512_set_epi64(2, 2, 2, 2, 4, 4, 4, 4), shr = _mm512_set_epi64(2, 2, 2, 2, 0, 0, 0, 0);
    #pragma GCC unroll 8
    for (int h = 0; h < 2; h++) {
        __m512i L = _mm512_loadu_si512((const void *)(b->ql + 64 * h));
        __m512i H = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b->qh + 32 * h)));
        u->q[2 * h] = _mm512_or_si512(_mm512_and_si512(L, low4), _mm512_and_si512(_mm512_sllv_epi64(H, shl), hi2));
        u->q[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(L, 4), low4),
                                          _mm512_and_si512(_mm512_srlv_epi64(H, shr), hi2));
    }
    u->s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
    __m512i s512 = _mm512_castsi256_si512(u->s16);
    const __m512i lane = _mm512_set_epi16(31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13,
                                          12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
    __m512i grp = _mm512_srli_epi16(lane, 3);
    #pragma GCC unroll 8
    for (int k = 0; k < 4; k++)
        u->sc[k] = _mm512_permutexvar_epi16(_mm512_add_epi16(grp, _mm512_set1_epi16((short)(4 * k))), s512);
    u->d = _cvtsh_ss(b->d);
}

INLINE float q6k_step(const struct q6k_unpacked *u, const struct q8_k_block *x, float acc)
{
    __m512i s = scaled_isum(u->q, u->sc, x);
    __m256i off = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)x->bsums), u->s16);
    return kq_q6_k_accum(acc, u->d, x->d, kq_hsum512(s) - 32 * kq_hsum256(off));
}

/* rows r0 .. g->r1 - 1, one at a time */
static TARGET void q6k_rows_from(const struct kern_range *g, int r0)
{
    int nb = g->in / QK_K;
    for (int r = r0; r < g->r1; r++) {
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

/* Q4_K (q5 = 0) or Q5_K (q5 = 1), rows r .. r + 15, tokens t0 .. t0 + nt - 1 */
INLINE void q4k_rows16(const struct kern_range *g, int r, int t0, int nt, int q5)
{
    int nb = g->in / QK_K;
    struct rows16 c;
    __m512 acc[ROWS16_TOKENS];
    for (int t = 0; t < nt; t++) acc[t] = _mm512_setzero_ps();
    for (int b = 0; b < nb; b++) {
        for (int i = 0; i < R16_ROWS; i++) {
            const char *row = g->w + (size_t)(r + i) * g->w_stride;
            prefetch_ahead(g, r + i, b, q5 ? sizeof(struct q5_k_block) : sizeof(struct q4_k_block), nb);
            struct q4k_unpacked u;
            if (q5) {
                const struct q5_k_block *w = (const struct q5_k_block *)row + b;
                q5k_unpack(w, &u);
                c.d[i] = w->d, c.dmin[i] = w->dmin;
            } else {
                const struct q4_k_block *w = (const struct q4_k_block *)row + b;
                q4k_unpack(w, &u);
                c.d[i] = w->d, c.dmin[i] = w->dmin;
            }
            rows16_keep_pair(&c, i, u.m16);
            for (int t = 0; t < nt; t++) c.s[t][i] = scaled_isum(u.q, u.sc, kq_act_row(g, t0 + t) + b);
        }
        __m512 d = f16x16(c.d), dmin = f16x16(c.dmin);
        for (int t = 0; t < nt; t++) {
            const struct q8_k_block *x = kq_act_row(g, t0 + t) + b;
            __m512 xd = _mm512_set1_ps(x->d);
            __m512 sumi = _mm512_cvtepi32_ps(sum_rows16(c.s[t])), summin = _mm512_cvtepi32_ps(rows16_pair_sums(&c, x->bsums));
            /* kq_q4_k_accum, lane by lane */
            acc[t] = _mm512_sub_ps(_mm512_add_ps(acc[t], _mm512_mul_ps(_mm512_mul_ps(d, xd), sumi)),
                                   _mm512_mul_ps(_mm512_mul_ps(dmin, xd), summin));
        }
    }
    rows16_store(g, r, t0, nt, acc);
}

INLINE void q6k_rows16(const struct kern_range *g, int r, int t0, int nt)
{
    int nb = g->in / QK_K;
    struct rows16 c;
    __m512 acc[ROWS16_TOKENS];
    for (int t = 0; t < nt; t++) acc[t] = _mm512_setzero_ps();
    for (int b = 0; b < nb; b++) {
        for (int i = 0; i < R16_ROWS; i++) {
            const char *row = g->w + (size_t)(r + i) * g->w_stride;
            prefetch_ahead(g, r + i, b, sizeof(struct q6_k_block), nb);
            const struct q6_k_block *w = (const struct q6_k_block *)row + b;
            struct q6k_unpacked u;
            q6k_unpack(w, &u);
            c.d[i] = w->d;
            rows16_keep_pair(&c, i, u.s16);
            for (int t = 0; t < nt; t++) c.s[t][i] = scaled_isum(u.q, u.sc, kq_act_row(g, t0 + t) + b);
        }
        __m512 d = f16x16(c.d);
        for (int t = 0; t < nt; t++) {
            const struct q8_k_block *x = kq_act_row(g, t0 + t) + b;
            acc[t] = rows16_offset_accum(acc[t], &c, t, d, x->d, x->bsums, 5); /* the -32 offset */
        }
    }
    rows16_store(g, r, t0, nt, acc);
}

static TARGET void q4k_group(const struct kern_range *g, int r, int t0, int nt) { q4k_rows16(g, r, t0, nt, 0); }
static TARGET void q5k_group(const struct kern_range *g, int r, int t0, int nt) { q4k_rows16(g, r, t0, nt, 1); }
static TARGET void q6k_group(const struct kern_range *g, int r, int t0, int nt) { q6k_rows16(g, r, t0, nt); }

TARGET void fmt_q4_k_range_avx512(const struct kern_range *g) { range_by_rows16(g, q4k_group, q4k_rows_from); }
TARGET void fmt_q5_k_range_avx512(const struct kern_range *g) { range_by_rows16(g, q5k_group, q5k_rows_from); }
TARGET void fmt_q6_k_range_avx512(const struct kern_range *g) { range_by_rows16(g, q6k_group, q6k_rows_from); }
