/* The AVX2 HiF4 kernel (hif4.h): per unit half (32 values) the S1P2 codes as signed bytes
 * -7..7 (a 16-entry table), and per token the exact int32 lane sums of VPMADDUBSW + VPMADDWD
 * through the sign trick (|c| x sign(x, c), at most 2 * 7 * 127 per 16-bit lane). Each lane is
 * one group of 4 values, which shares one shift (E1_8 + E1_16), so the micro-exponents are
 * applied as one VPSLLVD of the lane sums (sum((c << s) x) = sum(c x) << s, exact): fixed point
 * up to the lane's conversion and its one fused multiply-add into the 8-lane accumulator of the
 * half's chain; the scheme of hif4.h, so the portable bits. (Doubling the bytes under masks
 * before the dot instead measured slower in bench_formats.) Each unit is decoded once for up to TOK
 * tokens. */
#include <immintrin.h>

#include "engine/kernels/hif4.h"
#include "engine/kernels/q8_0.h"
#include "engine/kernels/qlegacy_avx2.h"

#define TARGET __attribute__((target("avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline)) TARGET

#define TOK 4

static const int8_t signed_codes[16] = {0, 1, 2, 3, 4, 5, 6, 7, 0, -1, -2, -3, -4, -5, -6, -7};

/* the S1P2 codes of half h (values 32h .. 32h + 31) as signed bytes -7..7, unshifted */
INLINE __m256i codes_half(const struct hif4_unit *q, int h)
{
    __m256i raw = _mm256_loadu_si256((const __m256i *)q->qs), nib = _mm256_set1_epi8(0x0F);
    __m256i code = h ? _mm256_and_si256(_mm256_srli_epi16(raw, 4), nib) : _mm256_and_si256(raw, nib);
    return _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)signed_codes)), code);
}

/* lane l of half h covers values 32h + 4l .. + 3, one group of 4: its shift E1_8[4h + l/2] +
 * E1_16[8h + l], from meta = E1_8 | E1_16 << 8 */
INLINE __m256i shifts_half(__m256i meta, int h)
{
    const __m256i one = _mm256_set1_epi32(1);
    const __m256i at8 = h ? _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7) : _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    const __m256i at16 = h ? _mm256_setr_epi32(16, 17, 18, 19, 20, 21, 22, 23) : _mm256_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15);
    return _mm256_add_epi32(_mm256_and_si256(_mm256_srlv_epi32(meta, at8), one),
                            _mm256_and_si256(_mm256_srlv_epi32(meta, at16), one));
}

/* the exact lane sums of the unshifted codes, then each lane shifted by its group's
 * micro-exponents: sum((c << s) * x) = sum(c * x) << s */
INLINE __m256i lane_sums(__m256i v, __m256i av, __m256i sh, __m256i x)
{
    __m256i l = _mm256_madd_epi16(_mm256_maddubs_epi16(av, _mm256_sign_epi8(x, v)), _mm256_set1_epi16(1));
    return _mm256_sllv_epi32(l, sh);
}

/* half h of unit u against T tokens, into chain accumulators acc */
INLINE void half_step(const struct hif4_unit *q, int u, int h, float dw, __m256i meta, const char *xa, size_t xs,
                      __m256 *acc, const int T)
{
    __m256i v = codes_half(q, h), av = _mm256_sign_epi8(v, v), sh = shifts_half(meta, h);
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
        const struct q8_act_block *a = (const struct q8_act_block *)(xa + t * xs) + 2 * u + h;
        __m256 l = _mm256_cvtepi32_ps(lane_sums(v, av, sh, _mm256_loadu_si256((const __m256i *)a->qs)));
        acc[t] = _mm256_fmadd_ps(l, _mm256_set1_ps(dw * a->d), acc[t]);
    }
}

/* the 8 lanes (chains already added) summed as ql_reduce32 does */
INLINE void row_tokens(const struct hif4_unit *row, const char *xa, size_t xs, int nu, float *y, size_t ldy,
                       const int T)
{
    /* chain c takes the blocks b = 2u + h with b % 4 == c */
    __m256 a0[TOK], a1[TOK], a2[TOK], a3[TOK];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) a0[t] = a1[t] = a2[t] = a3[t] = _mm256_setzero_ps();
    for (int u = 0; u < nu; u++) {
        _mm_prefetch((const char *)&row[u] + KERN_PREFETCH_BYTES, _MM_HINT_T0);
        float dw = hif4_unit_scale(row[u].e6m2);
        __m256i meta = _mm256_set1_epi32((int)(row[u].e1_8 | (unsigned)row[u].e1_16 << 8));
        if (u & 1) {
            half_step(&row[u], u, 0, dw, meta, xa, xs, a2, T);
            half_step(&row[u], u, 1, dw, meta, xa, xs, a3, T);
        } else {
            half_step(&row[u], u, 0, dw, meta, xa, xs, a0, T);
            half_step(&row[u], u, 1, dw, meta, xa, xs, a1, T);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; t++)
        y[t * ldy] = qls_reduce8(_mm256_add_ps(_mm256_add_ps(a0[t], a2[t]), _mm256_add_ps(a1[t], a3[t])));
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
