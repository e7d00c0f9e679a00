/* 16-bit floats (IEEE half and bfloat16) to and from float32, exactly as the hardware
 * conversions do (round to nearest even). Pure functions, any thread. */
#ifndef MS_ENGINE_KERNELS_FP16_H
#define MS_ENGINE_KERNELS_FP16_H

#include <stdint.h>
#include <string.h>

static inline float bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);  /* round to nearest even, overflow to inf */
uint16_t f32_to_bf16(float f); /* round to nearest even, NaN stays NaN */

#endif
