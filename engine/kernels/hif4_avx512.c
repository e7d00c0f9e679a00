/* The AVX-512 (VNNI) HiF4 kernel (hif4.h): a unit is one 512-bit register of its 64 codes in
 * value order, lanes 0..7 of the sums the unit's first half (block 2u), 8..15 its second; even
 * units accumulate into one register, odd ones into another, which is the 4 chains of hif4.h.
 *
 * Decoding a unit: the low and high nibbles side by side and a 16-entry table to the signed
 * code + 7 (0..14, unsigned for VPDPBUSD). Each lane starts at -7 x the sum of its four
 * activations, so VPDPBUSD leaves exactly sum(c x) of its group of 4; that group shares one
 * shift (E1_8 + E1_16), so the micro-exponents are one VPSLLVD of the lane sums (exact): the
 * dot is fixed point up to one conversion, one multiply and one fused multiply-add per unit and
 * token. The starts, the two activation blocks side by side and their scales are prepared once
 * per call and token into the scratch. (Doubling the code bytes under the E1 masks before the
 * dot instead measured no faster in bench_formats.) Each row is streamed once for up to
 * TOK tokens. */
#include <immintrin.h>

#include "engine/kernels/hif4.h"
#include "engine/kernels/q8_0.h"
#include "engine/kernels/q8_pairs_avx512.h"
#include "engine/kernels/qlegacy_avx2.h"

#define TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline)) TARGET

#define TOK 8
#define OFF 7

static const int8_t signed_codes[16] = {0, 1, 2, 3, 4, 5, 6, 7, 0, -1, -2, -3, -4, -5, -6, -7};

size_t hif4_avx512_scratch_bytes(int in)
{
    return (size_t)TOK * (size_t)(in / HIF4_UNIT) * sizeof(struct q8_pair);
}

/* a unit's 64 codes + OFF (0..14), value order */
INLINE __m512i decode(const struct hif4_unit *q)
{
    __m256i raw = _mm256_loadu_si256((const __m256i *)q->qs);
    __m512i code = _mm512_and_si512(
        _mm512_inserti64x4(_mm512_castsi256_si512(raw), _mm256_srli_epi16(raw, 4), 1), _mm512_set1_epi8(0x0F));
    __m128i t = _mm_add_epi8(_mm_loadu_si128((const __m128i *)signed_codes), _mm_set1_epi8(OFF));
    return _mm512_shuffle_epi8(_mm512_broadcast_i32x4(t), code);
}

/* lane l covers values 4l .. 4l + 3 (one group of 4): its shift E1_8[l / 2] + E1_16[l] */
INLINE __m512i shifts(const struct hif4_unit *q)
{
    const __m512i one = _mm512_set1_epi32(1);
    const __m512i at8 = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    const __m512i at16 = _mm512_setr_epi32(8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23);
    __m512i meta = _mm512_set1_epi32((int)(q->e1_8 | (unsigned)q->e1_16 << 8));
    return _mm512_add_epi32(_mm512_and_si512(_mm512_srlv_epi32(meta, at8), one),
                            _mm512_and_si512(_mm512_srlv_epi32(meta, at16), one));
}

INLINE void unit_step(const struct hif4_unit *q, const struct q8_pair *ap, int nu, int u, __m512 *acc, const int T)
{
    _mm_prefetch((const char *)q + KERN_PREFETCH_BYTES, _MM_HINT_T0);
    __m512i w = decode(q), sh = shifts(q);
    __m512 wd = _mm512_set1_ps(hif4_unit_scale(q->e6m2));
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
        const struct q8_pair *a = &ap[(size_t)t * nu + u];
        /* sum((c << s) x) = sum(c x) << s, exact */
        __m512i l = _mm512_sllv_epi32(_mm512_dpbusd_epi32(a->start, w, a->x), sh);
        acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(l), _mm512_mul_ps(wd, a->dx), acc[t]);
    }
}

INLINE void row_tokens(const struct hif4_unit *row, const struct q8_pair *ap, int nu, float *y, size_t ldy,
                       const int T)
{
    /* even units: chains 0 and 1; odd units: chains 2 and 3 */
    __m512 acc[TOK], acc2[TOK];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) acc[t] = acc2[t] = _mm512_setzero_ps();
    int u = 0;
    for (; u + 2 <= nu; u += 2) {
        unit_step(&row[u], ap, nu, u, acc, T);
        unit_step(&row[u + 1], ap, nu, u + 1, acc2, T);
    }
    if (u < nu) unit_step(&row[u], ap, nu, u, acc, T);
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
        __m512 w = _mm512_add_ps(acc[t], acc2[t]);
        y[t * ldy] = qls_reduce8(_mm256_add_ps(_mm512_castps512_ps256(w), _mm512_extractf32x8_ps(w, 1)));
    }
}

INLINE void rows_tokens(const struct kern_range *g, int t, const int T)
{
    int nu = g->in / HIF4_UNIT;
    size_t xs = g->xa_stride, ldy = (size_t)g->ldy;
    struct q8_pair *ap = g->scratch;
    q8_pairs_prepare((const char *)g->xa + (size_t)t * xs, xs, nu, OFF, ap, T);
    for (int r = g->r0; r < g->r1; r++)
        row_tokens((const struct hif4_unit *)(g->w + (size_t)r * g->w_stride), ap, nu, g->y + (size_t)t * ldy + r,
                   ldy, T);
}

#define TOKEN_CASE(n)                                                                              \
    case n: rows_tokens(g, t, n); break;

TARGET void hif4_range_avx512(const struct kern_range *g)
{
    for (int t = g->t0; t < g->t1; t += TOK) {
        switch (g->t1 - t) {
            TOKEN_CASE(1) TOKEN_CASE(2) TOKEN_CASE(3) TOKEN_CASE(4) TOKEN_CASE(5) TOKEN_CASE(6) TOKEN_CASE(7)
        default: rows_tokens(g, t, TOK); break;
        }
    }
}
