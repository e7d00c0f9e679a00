/* The AVX2 block decoders, private to qlegacy_avx2.c and qlegacy_avx512.c: one 32-value block
 * of each format as 32 int8 weights in element order in a 256-bit register, and its scales
 * (qlegacy.h). Compiled for AVX2 + F16C; the AVX-512 kernels inline them. */
#ifndef MS_ENGINE_KERNELS_QLEGACY_AVX2_H
#define MS_ENGINE_KERNELS_QLEGACY_AVX2_H

#include <immintrin.h>
#include <string.h>

#include "engine/kernels/q8_0.h"
#include "engine/kernels/qlegacy.h"

#define QLS_INLINE static inline __attribute__((always_inline, target("avx2,fma,f16c")))

/* The formats, as compile-time constants of the kernels' inline functions. */
enum { QLS_Q4_0, QLS_Q4_1, QLS_Q5_0, QLS_Q5_1, QLS_IQ4_NL, QLS_MXFP4 };

#define QLS_HAS_MIN(K) ((K) == QLS_Q4_1 || (K) == QLS_Q5_1) /* unsigned w, Q8_1 activations */

/* bytes 0..15: low nibbles of qs, 16..31: high nibbles */
QLS_INLINE __m256i qls_nibbles(const uint8_t *qs)
{
    __m128i raw = _mm_loadu_si128((const __m128i *)qs), m = _mm_set1_epi8(0x0F);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(raw, 4), m), _mm_and_si128(raw, m));
}

/* byte j = 0x10 where bit j of the little-endian word qh is set */
QLS_INLINE __m256i qls_high_bits(const uint8_t *qh)
{
    uint32_t h;
    memcpy(&h, qh, sizeof h);
    const __m256i spread = _mm256_set_epi64x(0x0303030303030303LL, 0x0202020202020202LL, 0x0101010101010101LL, 0);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
    __m256i v = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)h), spread), bit);
    return _mm256_and_si256(_mm256_cmpeq_epi8(v, bit), _mm256_set1_epi8(0x10));
}

QLS_INLINE __m256i qls_lookup(const int8_t table[16], __m256i idx)
{
    return _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)table)), idx);
}

QLS_INLINE size_t qls_block_bytes(const int K)
{
    switch (K) {
    case QLS_Q4_0: return sizeof(struct ql_q4_0_block);
    case QLS_Q4_1: return sizeof(struct ql_q4_1_block);
    case QLS_Q5_0: return sizeof(struct ql_q5_0_block);
    case QLS_Q5_1: return sizeof(struct ql_q5_1_block);
    case QLS_IQ4_NL: return sizeof(struct ql_iq4_nl_block);
    default: return sizeof(struct ql_mxfp4_block);
    }
}

/* Block b of a row: the weights (signed, or 0..31 for the formats with a min), d and m. */
QLS_INLINE __m256i qls_decode(const int K, const char *row, int b, float *d, float *m)
{
    const char *p = row + (size_t)b * qls_block_bytes(K);
    _mm_prefetch(p + KERN_PREFETCH_BYTES, _MM_HINT_T0);
    switch (K) {
    case QLS_Q4_0: {
        const struct ql_q4_0_block *q = (const void *)p;
        *d = _cvtsh_ss(q->d);
        return _mm256_sub_epi8(qls_nibbles(q->qs), _mm256_set1_epi8(8));
    }
    case QLS_Q4_1: {
        const struct ql_q4_1_block *q = (const void *)p;
        *d = _cvtsh_ss(q->d);
        *m = _cvtsh_ss(q->m);
        return qls_nibbles(q->qs);
    }
    case QLS_Q5_0: {
        const struct ql_q5_0_block *q = (const void *)p;
        *d = _cvtsh_ss(q->d);
        return _mm256_sub_epi8(_mm256_or_si256(qls_nibbles(q->qs), qls_high_bits(q->qh)), _mm256_set1_epi8(16));
    }
    case QLS_Q5_1: {
        const struct ql_q5_1_block *q = (const void *)p;
        *d = _cvtsh_ss(q->d);
        *m = _cvtsh_ss(q->m);
        return _mm256_or_si256(qls_nibbles(q->qs), qls_high_bits(q->qh));
    }
    case QLS_IQ4_NL: {
        const struct ql_iq4_nl_block *q = (const void *)p;
        *d = _cvtsh_ss(q->d);
        return qls_lookup(ql_kvalues_iq4nl, qls_nibbles(q->qs));
    }
    default: {
        const struct ql_mxfp4_block *q = (const void *)p;
        *d = ql_e8m0_half(q->e);
        return qls_lookup(ql_kvalues_mxfp4, qls_nibbles(q->qs));
    }
    }
}

/* Activation block b of a token's row: the quants, d and (Q8_1) s. */
QLS_INLINE const int8_t *qls_act(const int K, const char *xrow, int b, float *d, float *s)
{
    if (QLS_HAS_MIN(K)) {
        const struct ql_q8_1_act_block *a = (const struct ql_q8_1_act_block *)xrow + b;
        *d = a->d;
        *s = a->s;
        return a->qs;
    }
    const struct q8_act_block *a = (const struct q8_act_block *)xrow + b;
    *d = a->d;
    return a->qs;
}

/* accm = fma(m, s, accm) with one rounding, as the portable kernel's fmaf */
QLS_INLINE float qls_fma1(float m, float s, float acc)
{
    return _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(m), _mm_set_ss(s), _mm_set_ss(acc)));
}

/* The 8 lanes (l + l+16 and l + l+8 already added) summed as ql_reduce32 does. */
QLS_INLINE float qls_reduce8(__m256 v)
{
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

#endif
