/* The AVX-512 (VNNI) NVFP4 kernel: two 32-value groups (two Q8_0 activation blocks) per
 * 512-bit register, lanes 0-7 the even group and 8-15 the odd one, the even pairs of groups
 * accumulating into one register and the odd pairs into another, which is nvfp4.h's layout of
 * 4 chains. The exact int32 lane sums come from one VPDPBUSD per pair and token: the weights as
 * unsigned bytes u = w + 12 (w the doubled E2M1 value, -12..12) and each lane starting at -12 x
 * the sum of its four activations, so it ends at exactly sum(w * x). Those starts, the
 * activation pairs and their scales are prepared once per call and token into the scratch
 * (they serve every row). The four half-block scales of the pair are spread over their four
 * lanes each from the super-block's 16 scales, computed once per super-block as the portable
 * kernel computes them. Each row is streamed once for up to TOK tokens. */
#include <immintrin.h>

#include "engine/kernels/nvfp4.h"
#include "engine/kernels/q8_0.h"
#include "engine/kernels/q8_pairs_avx512.h"
#include "engine/kernels/qlegacy_avx2.h"

#define TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline)) TARGET

#define TOK 8
#define OFF 12

size_t nvfp4_avx512_scratch_bytes(int in)
{
    return (size_t)TOK * (size_t)(in / 64) * sizeof(struct q8_pair);
}

/* the 16 half scales (E4M3(s[k]) * d) * 0.5 of a super-block, the bits of nvfp4_e4m3_to_f32 */
INLINE __m512 half_scales(const struct nvfp4_block *b)
{
    __m512i c = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)b->s));
    __m512i bits = _mm512_or_si512(_mm512_slli_epi32(_mm512_and_si512(c, _mm512_set1_epi32(0x80)), 24),
                                   _mm512_slli_epi32(_mm512_and_si512(c, _mm512_set1_epi32(0x7F)), 20));
    __m512 v = _mm512_mul_ps(_mm512_castsi512_ps(bits), _mm512_set1_ps(0x1p120f));
    return _mm512_mul_ps(_mm512_mul_ps(v, _mm512_set1_ps(b->d)), _mm512_set1_ps(0.5f));
}

/* groups 2q, 2q + 1 of a super-block as nibbles in value order */
INLINE __m512i nibbles2(const uint8_t *qs, int q)
{
    __m128i a = _mm_loadu_si128((const __m128i *)(qs + 32 * q)), b = _mm_loadu_si128((const __m128i *)(qs + 32 * q + 16));
    __m256i lo = _mm256_set_m128i(_mm_srli_epi16(a, 4), a), hi = _mm256_set_m128i(_mm_srli_epi16(b, 4), b);
    return _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1), _mm512_set1_epi8(0x0F));
}

/* pair q of a super-block (activation pair p) against T tokens */
INLINE void pair_step(const struct nvfp4_block *sb, __m512 h, int q, const struct q8_pair *ap, int np, int p,
                      __m512 *acc, const int T)
{
    __m128i t16 = _mm_add_epi8(_mm_loadu_si128((const __m128i *)nvfp4_kvalues), _mm_set1_epi8(OFF));
    __m512i u = _mm512_shuffle_epi8(_mm512_broadcast_i32x4(t16), nibbles2(sb->qs, q));
    /* lanes 4j..4j+3 take the scale of block 4q + j */
    __m512i idx = _mm512_add_epi32(_mm512_set1_epi32(4 * q),
                                   _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0));
    __m512 hv = _mm512_permutexvar_ps(idx, h);
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
        const struct q8_pair *a = &ap[(size_t)t * np + p];
        __m512 l = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(a->start, u, a->x));
        acc[t] = _mm512_fmadd_ps(l, _mm512_mul_ps(hv, a->dx), acc[t]);
    }
}

INLINE void row_tokens(const struct nvfp4_block *row, const struct q8_pair *ap, int np, float *y, size_t ldy,
                       const int T)
{
    /* pairs 0 and 2 of a super-block: chains 0 and 1; pairs 1 and 3: chains 2 and 3 */
    __m512 acc[TOK], acc2[TOK];
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) acc[t] = acc2[t] = _mm512_setzero_ps();
    for (int p = 0; p < np; p += 4) { /* whole super-blocks */
        const struct nvfp4_block *sb = row + p / 4;
        const char *ahead = (const char *)sb + KERN_PREFETCH_BYTES;
        _mm_prefetch(ahead, _MM_HINT_T0);
        _mm_prefetch(ahead + 64, _MM_HINT_T0);
        _mm_prefetch(ahead + sizeof *sb - 1, _MM_HINT_T0);
        __m512 h = half_scales(sb);
        pair_step(sb, h, 0, ap, np, p, acc, T);
        pair_step(sb, h, 1, ap, np, p + 1, acc2, T);
        pair_step(sb, h, 2, ap, np, p + 2, acc, T);
        pair_step(sb, h, 3, ap, np, p + 3, acc2, T);
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; t++) {
        __m512 w = _mm512_add_ps(acc[t], acc2[t]);
        y[t * ldy] = qls_reduce8(_mm256_add_ps(_mm512_castps512_ps256(w), _mm512_extractf32x8_ps(w, 1)));
    }
}

INLINE void rows_tokens(const struct kern_range *g, int t, const int T)
{
    int np = g->in / 64;
    size_t xs = g->xa_stride, ldy = (size_t)g->ldy;
    struct q8_pair *ap = g->scratch;
    q8_pairs_prepare((const char *)g->xa + (size_t)t * xs, xs, np, OFF, ap, T);
    for (int r = g->r0; r < g->r1; r++)
        row_tokens((const struct nvfp4_block *)(g->w + (size_t)r * g->w_stride), ap, np, g->y + (size_t)t * ldy + r,
                   ldy, T);
}

#define TOKEN_CASE(n)                                                                              \
    case n: rows_tokens(g, t, n); break;

TARGET void nvfp4_range_avx512(const struct kern_range *g)
{
    for (int t = g->t0; t < g->t1; t += TOK) {
        switch (g->t1 - t) {
            TOKEN_CASE(1) TOKEN_CASE(2) TOKEN_CASE(3) TOKEN_CASE(4) TOKEN_CASE(5) TOKEN_CASE(6) TOKEN_CASE(7)
        default: rows_tokens(g, t, TOK); break;
        }
    }
}
