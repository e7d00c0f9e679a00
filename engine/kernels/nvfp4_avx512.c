/* The AVX-512 (VNNI) NVFP4 kernel: two 32-value groups (two Q8_0 activation blocks) per
 * 512-bit register, lanes 0-7 the even group and 8-15 the odd one, the even pairs of groups
 * accumulating into one register and the odd pairs into another, which is nvfp4.h's layout of
 * 4 chains. The exact int32 lane sums come from one VPDPBUSD on the weight magnitudes
 * (unsigned) and the activations negated where the weight's sign bit is set (Q8_0 quants are
 * within -127..127, so the negation is exact); the four half-block scales of the pair are
 * spread over their four lanes each from the super-block's 16 scales, computed once per
 * super-block as the portable kernel computes them. Each row is streamed once for up to TOK
 * tokens. */
#include <immintrin.h>

#include "engine/kernels/nvfp4.h"
#include "engine/kernels/q8_0.h"
#include "engine/kernels/qlegacy_avx2.h"

#define TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline)) TARGET

#define TOK 4

static const int8_t kabs[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, 1, 2, 3, 4, 6, 8, 12};

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

/* pair q of a super-block (activation blocks b, b + 1) against T tokens */
INLINE void pair_step(const struct nvfp4_block *sb, __m512 h, int q, int b, const char *xa, size_t xs, __m512 *acc,
                      const int T)
{
    __m512i nib = nibbles2(sb->qs, q);
    __m512i u = _mm512_shuffle_epi8(_mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)kabs)), nib);
    __mmask64 neg = _mm512_test_epi8_mask(nib, _mm512_set1_epi8(8));
    /* lanes 4j..4j+3 take the scale of block 4q + j */
    __m512i idx = _mm512_add_epi32(_mm512_set1_epi32(4 * q),
                                   _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0));
    __m512 hv = _mm512_permutexvar_ps(idx, h);
    const __m512i zero = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
        const struct q8_act_block *a = (const struct q8_act_block *)(xa + t * xs) + b;
        __m512i x = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)a[0].qs)),
                                       _mm256_loadu_si256((const __m256i *)a[1].qs), 1);
        x = _mm512_mask_sub_epi8(x, neg, zero, x);
        __m512 l = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(zero, u, x));
        __m512 dx = _mm512_insertf32x8(_mm512_set1_ps(a[0].d), _mm256_set1_ps(a[1].d), 1);
        acc[t] = _mm512_fmadd_ps(l, _mm512_mul_ps(hv, dx), acc[t]);
    }
}

INLINE void row_tokens(const struct nvfp4_block *row, const char *xa, size_t xs, int nb, float *y, size_t ldy,
                       const int T)
{
    /* pairs 0 and 2 of a super-block: chains 0 and 1; pairs 1 and 3: chains 2 and 3 */
    __m512 acc[TOK], acc2[TOK];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) acc[t] = acc2[t] = _mm512_setzero_ps();
    for (int b = 0; b < nb; b += 8) { /* whole super-blocks */
        const struct nvfp4_block *sb = row + b / 8;
        __m512 h = half_scales(sb);
        pair_step(sb, h, 0, b, xa, xs, acc, T);
        pair_step(sb, h, 1, b + 2, xa, xs, acc2, T);
        pair_step(sb, h, 2, b + 4, xa, xs, acc, T);
        pair_step(sb, h, 3, b + 6, xa, xs, acc2, T);
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
        __m512 w = _mm512_add_ps(acc[t], acc2[t]);
        y[t * ldy] = qls_reduce8(_mm256_add_ps(_mm512_castps512_ps256(w), _mm512_extractf32x8_ps(w, 1)));
    }
}

TARGET void nvfp4_range_avx512(const struct kern_range *g)
{
    int nb = g->in / Q8_0_BLOCK;
    size_t xs = g->xa_stride, ldy = (size_t)g->ldy;
    for (int r = g->r0; r < g->r1; r++) {
        const struct nvfp4_block *row = (const void *)(g->w + (size_t)r * g->w_stride);
        for (int t = g->t0; t < g->t1; t += TOK) {
            const char *xa = (const char *)g->xa + (size_t)t * xs;
            float *y = g->y + (size_t)t * ldy + r;
            switch (g->t1 - t) {
            case 1: row_tokens(row, xa, xs, nb, y, ldy, 1); break;
            case 2: row_tokens(row, xa, xs, nb, y, ldy, 2); break;
            case 3: row_tokens(row, xa, xs, nb, y, ldy, 3); break;
            default: row_tokens(row, xa, xs, nb, y, ldy, TOK); break;
            }
        }
    }
}
