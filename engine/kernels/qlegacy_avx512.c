/* The AVX-512 (VNNI) kernels of the 32-value block formats: two blocks per 512-bit register,
 * lanes 0..7 the even block, 8..15 the odd one; even pairs accumulate into one register, odd
 * pairs into another, which is qlegacy.h's layout of 4 chains.
 *
 * The exact int32 lane sums come from one VPDPBUSD (unsigned x signed bytes) per block pair
 * and token: each format's weights are decoded as unsigned bytes u = w + off (Q4_0: the
 * nibble, off 8; Q5_0: off 16; IQ4_NL: the codebook + 128; MXFP4: the doubled E2M1 + 12; the
 * formats with a min: off 0), and each lane starts at -off x the sum of its four activations,
 * so it ends at exactly sum(w * x). Those starts, the activation pairs side by side and their
 * scales are prepared once per call and token into the scratch (they serve every row of the
 * range), so a row's block pair costs its decode, then per token one VPDPBUSD, one conversion
 * and one fused multiply-add. An odd last block is a pair whose upper half is masked off. Each
 * row is streamed once for up to TOK tokens. */
#include "engine/kernels/qlegacy_avx2.h"

#define TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline)) TARGET

#define TOK 8

/* One token's activations for block pair p (blocks 2p, 2p + 1). */
struct act_pair {
    __m512i x;     /* the quants of both blocks */
    __m512i start; /* -off x the sum of each lane's four quants */
    __m512 dx;     /* each block's scale in its 8 lanes */
    __m512 s;      /* Q8_1: each block's s in its first lane (0 and 8), the others 0 */
};

static inline int pairs_of(int in)
{
    return (in / QL_BLOCK + 1) / 2;
}

size_t ql_avx512_scratch_bytes(int in)
{
    return (size_t)TOK * (size_t)pairs_of(in) * sizeof(struct act_pair);
}

INLINE int offset_of(const int K)
{
    switch (K) {
    case QLS_Q4_0: return 8;
    case QLS_Q5_0: return 16;
    case QLS_IQ4_NL: return 128;
    case QLS_MXFP4: return 12;
    default: return 0;
    }
}

INLINE __m512i join(__m256i lo, __m256i hi)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

/* T tokens' activation pairs into scratch */
INLINE void prepare(const int K, const char *xa, size_t xs, int nb, struct act_pair *ap, const int T)
{
    const int off = offset_of(K), np = pairs_of(nb * QL_BLOCK);
    const __m512i ones = _mm512_set1_epi8(1), zero = _mm512_setzero_si512();
    for (int t = 0; t < T; t++)
        for (int p = 0; p < np; p++) {
            int b = 2 * p;
            float d0, d1 = 0, s0 = 0, s1 = 0;
            const int8_t *q0 = qls_act(K, xa + t * xs, b, &d0, &s0), *q1 = q0;
            if (b + 1 < nb) q1 = qls_act(K, xa + t * xs, b + 1, &d1, &s1);
            __m256i hi = b + 1 < nb ? _mm256_loadu_si256((const __m256i *)q1) : _mm256_setzero_si256();
            __m512i x = join(_mm256_loadu_si256((const __m256i *)q0), hi);
            struct act_pair *a = &ap[(size_t)t * np + p];
            a->x = x;
            a->start = off ? _mm512_mullo_epi32(_mm512_set1_epi32(-off), _mm512_dpbusd_epi32(zero, ones, x)) : zero;
            a->dx = _mm512_insertf32x8(_mm512_set1_ps(d0), _mm256_set1_ps(d1), 1);
            a->s = _mm512_maskz_mov_ps(0x0101, _mm512_insertf32x8(_mm512_set1_ps(s0), _mm256_set1_ps(s1), 1));
        }
}

INLINE size_t block_bytes(const int K)
{
    return qls_block_bytes(K);
}

/* the nibbles of a block pair: bytes 0..15 low and 16..31 high nibbles of block 0, then block 1 */
INLINE __m512i nibbles2(const uint8_t *qs0, const uint8_t *qs1)
{
    __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)qs0)),
                                        _mm_loadu_si128((const __m128i *)qs1), 1);
    __m512i z = join(v, _mm256_srli_epi16(v, 4));
    return _mm512_and_si512(_mm512_shuffle_i64x2(z, z, _MM_SHUFFLE(3, 1, 2, 0)), _mm512_set1_epi8(0x0F));
}

/* unsigned codebook (entry + off) */
INLINE __m512i lookup2(const int8_t table[16], int off, __m512i idx)
{
    __m128i t = _mm_add_epi8(_mm_loadu_si128((const __m128i *)table), _mm_set1_epi8((char)off));
    return _mm512_shuffle_epi8(_mm512_broadcast_i32x4(t), idx);
}

INLINE uint64_t qh2(const uint8_t *qh0, const uint8_t *qh1)
{
    uint32_t a, b;
    memcpy(&a, qh0, 4);
    memcpy(&b, qh1, 4);
    return (uint64_t)a | (uint64_t)b << 32;
}

INLINE __m512 scales2(float d0, float d1)
{
    return _mm512_insertf32x8(_mm512_set1_ps(d0), _mm256_set1_ps(d1), 1);
}

/* the f16 scales (and mins) of two blocks at p0, p1: [d0, d1, ...] or [d0, m0, d1, m1] */
INLINE __m128 halves2(const char *p0, const char *p1, const int with_min)
{
    __m128i a = _mm_loadu_si32(p0), b = _mm_loadu_si32(p1);
    return _mm_cvtph_ps(with_min ? _mm_unpacklo_epi32(a, b) : _mm_unpacklo_epi16(a, b));
}

/* lanes 0..7 = v[i], lanes 8..15 = v[j] */
INLINE __m512 spread2(__m128 v, int i, int j)
{
    __m512i idx = _mm512_inserti64x4(_mm512_set1_epi32(i), _mm256_set1_epi32(j), 1);
    return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(v));
}

/* blocks b, b + 1 of a row as unsigned bytes, their scales (wd) and mins (mv, for the formats
 * with one). For the last block of an odd count (`single`), the upper half is zero. */
INLINE __m512i decode2(const int K, const char *row, int b, const int single, __m512 *wd, __m512 *mv)
{
    const char *p0 = row + (size_t)b * block_bytes(K), *p1 = single ? p0 : p0 + block_bytes(K);
    const int off = offset_of(K);
    _mm_prefetch(p0 + KERN_PREFETCH_BYTES, _MM_HINT_T0);
    __m512i u;
    switch (K) {
    case QLS_Q4_0:
    case QLS_IQ4_NL: {
        const struct ql_q4_0_block *a = (const void *)p0, *c = (const void *)p1;
        u = nibbles2(a->qs, c->qs);
        if (K == QLS_IQ4_NL) u = lookup2(ql_kvalues_iq4nl, off, u);
        *wd = spread2(halves2(p0, p1, 0), 0, 1);
        break;
    }
    case QLS_Q4_1: {
        const struct ql_q4_1_block *a = (const void *)p0, *c = (const void *)p1;
        u = nibbles2(a->qs, c->qs);
        __m128 h = halves2(p0, p1, 1);
        *wd = spread2(h, 0, 2);
        *mv = spread2(h, 1, 3);
        break;
    }
    case QLS_Q5_0: {
        const struct ql_q5_0_block *a = (const void *)p0, *c = (const void *)p1;
        u = nibbles2(a->qs, c->qs);
        u = _mm512_mask_add_epi8(u, qh2(a->qh, c->qh), u, _mm512_set1_epi8(16));
        *wd = spread2(halves2(p0, p1, 0), 0, 1);
        break;
    }
    case QLS_Q5_1: {
        const struct ql_q5_1_block *a = (const void *)p0, *c = (const void *)p1;
        u = nibbles2(a->qs, c->qs);
        u = _mm512_mask_add_epi8(u, qh2(a->qh, c->qh), u, _mm512_set1_epi8(16));
        __m128 h = halves2(p0, p1, 1);
        *wd = spread2(h, 0, 2);
        *mv = spread2(h, 1, 3);
        break;
    }
    default: {
        const struct ql_mxfp4_block *a = (const void *)p0, *c = (const void *)p1;
        u = lookup2(ql_kvalues_mxfp4, off, nibbles2(a->qs, c->qs));
        *wd = scales2(ql_e8m0_half(a->e), ql_e8m0_half(c->e));
        break;
    }
    }
    if (single) {
        u = _mm512_zextsi256_si512(_mm512_castsi512_si256(u));
        *wd = _mm512_maskz_mov_ps(0x00FF, *wd);
    }
    return u;
}

/* block pair p of a row against T tokens; `single`: the last block of an odd count alone,
 * leaving the odd lanes as they are */
INLINE void pair_step(const int K, const char *row, const struct act_pair *ap, int nb, int p, __m512 *acc,
                      __m512 *accm, const int T, const int single)
{
    const int np = pairs_of(nb * QL_BLOCK), b = 2 * p;
    __m512 wd, mv = _mm512_setzero_ps();
    __m512i u = decode2(K, row, b, single, &wd, &mv);
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
        const struct act_pair *a = &ap[(size_t)t * np + p];
        __m512 l = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(a->start, u, a->x));
        __m512 dd = _mm512_mul_ps(wd, a->dx);
        acc[t] = single ? _mm512_mask3_fmadd_ps(l, dd, acc[t], 0x00FF) : _mm512_fmadd_ps(l, dd, acc[t]);
        /* the min terms: lane 0 the even block's chain, lane 8 the odd one's */
        if (QLS_HAS_MIN(K)) accm[t] = _mm512_mask3_fmadd_ps(mv, a->s, accm[t], single ? 0x0001 : 0x0101);
    }
}

/* y[t * ldy] for T tokens of one row */
INLINE void row_tokens(const int K, const char *row, const struct act_pair *ap, int nb, float *y, size_t ldy,
                       const int T)
{
    /* even pairs: chains 0 and 1 (blocks 4k, 4k + 1); odd pairs: chains 2 and 3 */
    __m512 acc[TOK], acc2[TOK], accm[TOK], accm2[TOK];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) acc[t] = acc2[t] = accm[t] = accm2[t] = _mm512_setzero_ps();
    const int np = nb / 2;
    int p = 0;
    for (; p + 2 <= np; p += 2) {
        pair_step(K, row, ap, nb, p, acc, accm, T, 0);
        pair_step(K, row, ap, nb, p + 1, acc2, accm2, T, 0);
    }
    if (p < np) pair_step(K, row, ap, nb, p++, acc, accm, T, 0);
    if (nb & 1) {
        if (p & 1) pair_step(K, row, ap, nb, p, acc2, accm2, T, 1);
        else pair_step(K, row, ap, nb, p, acc, accm, T, 1);
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
        __m512 w = _mm512_add_ps(acc[t], acc2[t]), m = _mm512_add_ps(accm[t], accm2[t]);
        float r = qls_reduce8(_mm256_add_ps(_mm512_castps512_ps256(w), _mm512_extractf32x8_ps(w, 1)));
        float even = _mm512_cvtss_f32(m), odd = _mm_cvtss_f32(_mm512_extractf32x4_ps(m, 2));
        y[t * ldy] = QLS_HAS_MIN(K) ? r + (even + odd) : r;
    }
}

INLINE void rows_tokens(const int K, const struct kern_range *g, int t, const int T)
{
    int nb = g->in / QL_BLOCK;
    size_t xs = g->xa_stride, ldy = (size_t)g->ldy;
    struct act_pair *ap = g->scratch;
    prepare(K, (const char *)g->xa + (size_t)t * xs, xs, nb, ap, T);
    for (int r = g->r0; r < g->r1; r++)
        row_tokens(K, g->w + (size_t)r * g->w_stride, ap, nb, g->y + (size_t)t * ldy + r, ldy, T);
}

#define TOKEN_CASE(n)                                                                              \
    case n: rows_tokens(K, g, t, n); break;

INLINE void range(const int K, const struct kern_range *g)
{
    for (int t = g->t0; t < g->t1; t += TOK) {
        switch (g->t1 - t) {
            TOKEN_CASE(1) TOKEN_CASE(2) TOKEN_CASE(3) TOKEN_CASE(4) TOKEN_CASE(5) TOKEN_CASE(6) TOKEN_CASE(7)
        default: rows_tokens(K, g, t, TOK); break;
        }
    }
}

TARGET void ql_q4_0_range_avx512(const struct kern_range *g) { range(QLS_Q4_0, g); }
TARGET void ql_q4_1_range_avx512(const struct kern_range *g) { range(QLS_Q4_1, g); }
TARGET void ql_q5_0_range_avx512(const struct kern_range *g) { range(QLS_Q5_0, g); }
TARGET void ql_q5_1_range_avx512(const struct kern_range *g) { range(QLS_Q5_1, g); }
TARGET void ql_iq4_nl_range_avx512(const struct kern_range *g) { range(QLS_IQ4_NL, g); }
TARGET void ql_mxfp4_range_avx512(const struct kern_range *g) { range(QLS_MXFP4, g); }
