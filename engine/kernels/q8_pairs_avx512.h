/* Q8_0 activations as 64-value pairs for the AVX-512 VPDPBUSD kernels whose weights are unsigned
 * bytes u = w + off (NVFP4, HiF4): per token and pair the two blocks' quants side by side, each
 * lane's start -off x the sum of its four quants (so the dot product ends at exactly sum(w * x))
 * and each block's scale in its 8 lanes. Prepared once per call into a kernel's scratch, they
 * serve every row. Include from an AVX-512 file only. */
#ifndef MS_ENGINE_KERNELS_Q8_PAIRS_AVX512_H
#define MS_ENGINE_KERNELS_Q8_PAIRS_AVX512_H

#include <immintrin.h>
#include <stddef.h>

#include "engine/kernels/q8_0.h"

struct q8_pair {
    __m512i x;     /* the quants of both blocks */
    __m512i start; /* -off x the sum of each lane's four quants */
    __m512 dx;     /* each block's scale in its 8 lanes */
};

/* T tokens' np pairs (token t's row at xa + t * xs) into ap[t * np + p] */
static inline __attribute__((always_inline, target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c"))) void
q8_pairs_prepare(const char *xa, size_t xs, int np, int off, struct q8_pair *ap, const int T)
{
    const __m512i ones = _mm512_set1_epi8(1), zero = _mm512_setzero_si512();
    for (int t = 0; t < T; t++)
        for (int p = 0; p < np; p++) {
            const struct q8_act_block *b = (const struct q8_act_block *)(xa + t * xs) + 2 * p;
            __m512i x = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)b[0].qs)),
                                           _mm256_loadu_si256((const __m256i *)b[1].qs), 1);
            struct q8_pair *a = &ap[(size_t)t * np + p];
            a->x = x;
            a->start = _mm512_mullo_epi32(_mm512_set1_epi32(-off), _mm512_dpbusd_epi32(zero, ones, x));
            a->dx = _mm512_insertf32x8(_mm512_set1_ps(b[0].d), _mm256_set1_ps(b[1].d), 1);
        }
}

#endif
