/* The AVX2 NVFP4 kernel: per 32-value group (one Q8_0 activation block), the exact int32 lane
 * sums of VPMADDUBSW + VPMADDWD through the sign trick (|w| x sign(x, w), at most
 * 2 * 12 * 127 per 16-bit lane), then one fused multiply-add into the 8-lane accumulator of
 * the group's chain (b % 4) with the two half-block scales h * dx in lanes 0-3 and 4-7: the
 * scheme of nvfp4.h, so the portable bits. Each group is decoded once for up to TOK tokens. */
#include <immintrin.h>

#include "engine/kernels/nvfp4.h"
#include "engine/kernels/q8_0.h"
#include "engine/kernels/qlegacy_avx2.h"

#define TARGET __attribute__((target("avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline)) TARGET

#define TOK 4

static const int8_t kabs[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, 1, 2, 3, 4, 6, 8, 12};

/* half scales (E4M3(s[k]) * d) * 0.5 of blocks 8j..8j+7 of a super-block: the bits of
 * nvfp4_e4m3_to_f32 (exponent and mantissa placed in a float, times 2^120), then the portable
 * kernel's two products */
INLINE __m256 half_scales(const struct nvfp4_block *b, int j)
{
    __m256i c = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(b->s + 8 * j)));
    __m256i bits = _mm256_or_si256(_mm256_slli_epi32(_mm256_and_si256(c, _mm256_set1_epi32(0x80)), 24),
                                   _mm256_slli_epi32(_mm256_and_si256(c, _mm256_set1_epi32(0x7F)), 20));
    __m256 v = _mm256_mul_ps(_mm256_castsi256_ps(bits), _mm256_set1_ps(0x1p120f));
    return _mm256_mul_ps(_mm256_mul_ps(v, _mm256_set1_ps(b->d)), _mm256_set1_ps(0.5f));
}

/* group p of a super-block: 32 signed weights in value order, and their magnitudes */
INLINE __m256i decode(const uint8_t *qs, int p, __m256i *aw)
{
    __m128i raw = _mm_loadu_si128((const __m128i *)(qs + 16 * p)), m = _mm_set1_epi8(0x0F);
    __m256i idx = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(raw, 4), m), _mm_and_si128(raw, m));
    *aw = _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)kabs)), idx);
    return _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)nvfp4_kvalues)), idx);
}

/* activation block b against T tokens, into the accumulators of its chain */
INLINE void group_step(const struct nvfp4_block *sb, const __m256 h[2], int b, const char *xa, size_t xs,
                       __m256 *acc, const int T)
{
    int p = b % 8, k = 2 * (p % 4); /* blocks 2p, 2p + 1: lanes k, k + 1 of h[p / 4] */
    __m256i aw, w = decode(sb->qs, p, &aw);
    __m256 hv = _mm256_permutevar8x32_ps(h[p / 4], _mm256_set_epi32(k + 1, k + 1, k + 1, k + 1, k, k, k, k));
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) {
        const struct q8_act_block *a = (const struct q8_act_block *)(xa + t * xs) + b;
        __m256i x = _mm256_loadu_si256((const __m256i *)a->qs);
        __m256i l = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(x, w)), _mm256_set1_epi16(1));
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(l), _mm256_mul_ps(hv, _mm256_set1_ps(a->d)), acc[t]);
    }
}

INLINE void row_tokens(const struct nvfp4_block *row, const char *xa, size_t xs, int nb, float *y, size_t ldy,
                       const int T)
{
    __m256 a0[TOK], a1[TOK], a2[TOK], a3[TOK];
#pragma GCC unroll 4
    for (int t = 0; t < T; t++) a0[t] = a1[t] = a2[t] = a3[t] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b += 8) { /* nb is a multiple of 8: whole super-blocks */
        const struct nvfp4_block *sb = row + b / 8;
        const char *ahead = (const char *)sb + KERN_PREFETCH_BYTES;
        _mm_prefetch(ahead, _MM_HINT_T0);
        _mm_prefetch(ahead + 64, _MM_HINT_T0);
        _mm_prefetch(ahead + sizeof *sb - 1, _MM_HINT_T0);
        const __m256 h[2] = {half_scales(sb, 0), half_scales(sb, 1)};
        for (int g = 0; g < 8; g += 4) {
            group_step(sb, h, b + g, xa, xs, a0, T);
            group_step(sb, h, b + g + 1, xa, xs, a1, T);
            group_step(sb, h, b + g + 2, xa, xs, a2, T);
            group_step(sb, h, b + g + 3, xa, xs, a3, T);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < T; t++)
        y[t * ldy] = qls_reduce8(_mm256_add_ps(_mm256_add_ps(a0[t], a2[t]), _mm256_add_ps(a1[t], a3[t])));
}

TARGET void nvfp4_range_avx2(const struct kern_range *g)
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
