/* The AVX2 HiF4 kernel (hif4.h): per unit, the 64 weights as signed bytes in two registers
 * (an S1P2 code through a 16-entry table to -7..7, then doubled where a group's E1_8 bit is
 * set and again where its E1_16 bit is: the micro-exponents as shifts, |w| <= 28), and per
 * half and token the exact int32 lane sums of VPMADDUBSW + VPMADDWD through the sign trick
 * (|w| x sign(x, w), at most 2 * 28 * 127 per 16-bit lane), one conversion and one fused
 * multiply-add into the 8-lane accumulator of the half's chain; the scheme of hif4.h, so the
 * portable bits. Each unit is decoded once for up to TOK tokens. */
#include <immintrin.h>

#include "engine/kernels/hif4.h"
#include "engine/kernels/q8_0.h"

#define TARGET __attribute__((target("avx2,fma")))
#define INLINE static inline __attribute__((always_inline)) TARGET

#define TOK 4

static const int8_t signed_codes[16] = {0, 1, 2, 3, 4, 5, 6, 7, 0, -1, -2, -3, -4, -5, -6, -7};

/* byte j = 0xFF where bit j / 8 (+ 4 for the upper half) of E1_8, or bit j / 4 of the half's
 * E1_16 byte, is set */
INLINE __m256i bit_mask(uint8_t bits, __m256i sel)
{
    return _mm256_cmpeq_epi8(_mm256_and_si256(_mm256_set1_epi8((char)bits), sel), sel);
}

/* w doubled where m is set */
INLINE __m256i double_where(__m256i w, __m256i m)
{
    return _mm256_add_epi8(w, _mm256_and_si256(w, m));
}

/* half h (values 32h .. 32h + 31) of a unit as signed weights */
INLINE __m256i decode_half(const struct hif4_unit *q, int h)
{
    __m256i raw = _mm256_loadu_si256((const __m256i *)q->qs), nib = _mm256_set1_epi8(0x0F);
    __m256i code = h ? _mm256_and_si256(_mm256_srli_epi16(raw, 4), nib) : _mm256_and_si256(raw, nib);
    __m256i w = _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)signed_codes)), code);
    const __m256i sel8 = h ? _mm256_set_epi64x(0x8080808080808080LL, 0x4040404040404040LL, 0x2020202020202020LL,
                                               0x1010101010101010LL)
                           : _mm256_set_epi64x(0x0808080808080808LL, 0x0404040404040404LL, 0x0202020202020202LL,
                                               0x0101010101010101LL);
    const __m256i sel16 = _mm256_set_epi64x((long long)0x8080808040404040ULL, 0x2020202010101010LL,
                                            0x0808080804040404LL, 0x0202020201010101LL);
    w = double_where(w, bit_mask(q->e1_8, sel8));
    return double_where(w, bit_mask((uint8_t)(q->e1_16 >> (8 * h)), sel16));
}

INLINE __m256i lane_sums(__m256i w, __m256i aw, __m256i x)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(x, w)), _mm256_set1_epi16(1));
}

/* half h of unit u against T tokens, into chain accumulators acc */
INLINE void half_step(const struct hif4_unit *q, int u, int h, float dw, const char *xa, size_t xs, __m256 *acc,
                      const int T)
{
    __m256i w = decode_half(q, h), aw = _mm256_sign_epi8(w, w);
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
        const struct q8_act_block *a = (const struct q8_act_block *)(xa + t * xs) + 2 * u + h;
        __m256 l = _mm256_cvtepi32_ps(lane_sums(w, aw, _mm256_loadu_si256((const __m256i *)a->qs)));
        acc[t] = _mm256_fmadd_ps(l, _mm256_set1_ps(dw * a->d), acc[t]);
    }
}

/* the 8 lanes (chains already added) summed as ql_reduce32 does */
INLINE float reduce8(__m256 v)
{
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

INLINE void row_tokens(const struct hif4_unit *row, const char *xa, size_t xs, int nu, float *y, size_t ldy,
                       const int T)
{
    /* chain c takes the blocks b = 2u + h with b % 4 == c */
    __m256 a0[TOK], a1[TOK], a2[TOK], a3[TOK];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) a0[t] = a1[t] = a2[t] = a3[t] = _mm256_setzero_ps();
    for (int u = 0; u < nu; u++) {
        float dw = hif4_unit_scale(row[u].e6m2);
        if (u & 1) {
            half_step(&row[u], u, 0, dw, xa, xs, a2, T);
            half_step(&row[u], u, 1, dw, xa, xs, a3, T);
        } else {
            half_step(&row[u], u, 0, dw, xa, xs, a0, T);
            half_step(&row[u], u, 1, dw, xa, xs, a1, T);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; t++)
        y[t * ldy] = reduce8(_mm256_add_ps(_mm256_add_ps(a0[t], a2[t]), _mm256_add_ps(a1[t], a3[t])));
}

TARGET void hif4_range_avx2(const struct kern_range *g)
{
    int nu = g->in / HIF4_UNIT;
    size_t xs = g->xa_stride, ldy = (size_t)g->ldy;
    for (int r = g->r0; r < g->r1; r++) {
        const struct hif4_unit *row = (const struct hif4_unit *)(g->w + (size_t)r * g->w_stride);
        for (int t = g->t0; t < g->t1; t += TOK) {
            const char *xa = (const char *)g->xa + (size_t)t * xs;
            float *y = g->y + (size_t)t * ldy + r;
            switch (g->t1 - t) {
            case 1: row_tokens(row, xa, xs, nu, y, ldy, 1); break;
            case 2: row_tokens(row, xa, xs, nu, y, ldy, 2); break;
            case 3: row_tokens(row, xa, xs, nu, y, ldy, 3); break;
            default: row_tokens(row, xa, xs, nu, y, ldy, TOK); break;
            }
        }
    }
}
