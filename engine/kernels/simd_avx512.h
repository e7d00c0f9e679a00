/* AVX-512 loads of 16 weights of a plain float row (F32, F16, BF16) as float32, shared by the
 * float kernels and the Q8_0 quantizer. Include only from files compiled for AVX-512 callers:
 * every function carries the target attribute. */
#ifndef MS_ENGINE_KERNELS_SIMD_AVX512_H
#define MS_ENGINE_KERNELS_SIMD_AVX512_H

#include <immintrin.h>
#include <stdint.h>

#include "engine/kernels/dtype.h"

#define TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline)) TARGET

/* 16 weights from column i of a row, as float */
INLINE __m512 load_w(const void *row, int i, enum tensor_dtype dt)
{
    switch (dt) {
    case TENSOR_DTYPE_BF16: {
        __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)row + i));
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    case TENSOR_DTYPE_F16:
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)row + i)));
    default:
        return _mm512_loadu_ps((const float *)row + i);
    }
}

INLINE __m512 load_w_tail(const void *row, int i, __mmask16 m, enum tensor_dtype dt)
{
    switch (dt) {
    case TENSOR_DTYPE_BF16: {
        __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)row + i);
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    case TENSOR_DTYPE_F16:
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)row + i));
    default:
        return _mm512_maskz_loadu_ps(m, (const float *)row + i);
    }
}

#endif
