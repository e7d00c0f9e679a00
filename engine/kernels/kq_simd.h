/* Helpers every Q8_K-activation SIMD kernel uses (kquants_*, kquants_low_*, iq4_xs_*): the row of
 * token t's activations and the exact int32 horizontal sums. Each function carries its own target
 * attribute, so an AVX2 file and an AVX-512 file can both include this. */
#ifndef MS_ENGINE_KERNELS_KQ_SIMD_H
#define MS_ENGINE_KERNELS_KQ_SIMD_H

#include <immintrin.h>
#include <stdint.h>

#include "engine/kernels/kern_range.h"

struct q8_k_block; /* kquants.h; only pointed to here, so this header sits below every family */

static inline const struct q8_k_block *kq_act_row(const struct kern_range *g, int t)
{
    return (const struct q8_k_block *)((const char *)g->xa + (size_t)t * g->xa_stride);
}

static inline __attribute__((always_inline, target("avx2"))) int32_t kq_hsum256(__m256i s)
{
    __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4e));
    h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xb1));
    return _mm_cvtsi128_si32(h);
}

static inline __attribute__((always_inline, target("avx512f,avx2"))) int32_t kq_hsum512(__m512i v)
{
    return kq_hsum256(_mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1)));
}

#endif
