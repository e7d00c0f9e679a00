#include "engine/tensor.h"

#include <math.h>

#include "engine/quant.h"

const char *tensor_dtype_name(enum tensor_dtype dtype)
{
    switch (dtype) {
    case TENSOR_DTYPE_F32: return "F32";
    case TENSOR_DTYPE_F16: return "F16";
    case TENSOR_DTYPE_BF16: return "BF16";
    case TENSOR_DTYPE_Q8_0: return "Q8_0";
    }
    return "?";
}

size_t tensor_dtype_size(enum tensor_dtype dtype)
{
    switch (dtype) {
    case TENSOR_DTYPE_F32: return 4;
    case TENSOR_DTYPE_F16:
    case TENSOR_DTYPE_BF16: return 2;
    case TENSOR_DTYPE_Q8_0: return 0;
    }
    return 0;
}

size_t tensor_row_bytes(const struct tensor *t)
{
    size_t cols = (size_t)t->shape[t->ndim - 1];
    if (t->dtype == TENSOR_DTYPE_Q8_0) return cols / Q8_0_BLOCK * sizeof(struct q8_0_block);
    return cols * tensor_dtype_size(t->dtype);
}

int64_t tensor_numel(const struct tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

float f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    int exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t u;
    if (exp == 0x1f) {
        u = sign | 0x7f800000u | (mant << 13); /* inf / nan */
    } else if (exp == 0) {
        float f = ldexpf((float)mant, -24); /* zero or subnormal */
        return sign ? -f : f;
    } else {
        u = sign | ((uint32_t)(exp - 15 + 127) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

uint16_t tensor_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);           /* round to nearest even */
}

uint16_t tensor_f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint32_t sign = (u >> 16) & 0x8000u, abs = u & 0x7fffffffu;
    if (abs >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (abs > 0x7f800000u ? 0x200u : 0));
    if (abs >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* overflow to inf */
    if (abs < 0x38800000u) {                                    /* subnormal or zero */
        int shift = 113 - (int)(abs >> 23);
        if (shift > 24) return (uint16_t)sign;
        uint32_t mant = (abs & 0x7fffffu) | 0x800000u;
        uint32_t half = mant >> (shift + 13);
        uint32_t rem = mant & ((1u << (shift + 13)) - 1), mid = 1u << (shift + 12);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t h = ((abs - 0x38000000u) >> 13), rem = abs & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

void tensor_to_f32(const struct tensor *t, int64_t offset, int64_t n, float *out)
{
    switch (t->dtype) {
    case TENSOR_DTYPE_F32:
        memcpy(out, (const float *)t->data + offset, (size_t)n * sizeof(float));
        break;
    case TENSOR_DTYPE_BF16: {
        const uint16_t *src = (const uint16_t *)t->data + offset;
        for (int64_t i = 0; i < n; i++) out[i] = bf16_to_f32(src[i]);
        break;
    }
    case TENSOR_DTYPE_F16: {
        const uint16_t *src = (const uint16_t *)t->data + offset;
        for (int64_t i = 0; i < n; i++) out[i] = f16_to_f32(src[i]);
        break;
    }
    case TENSOR_DTYPE_Q8_0:
        quant_q8_0_dequant((const struct q8_0_block *)t->data + offset / Q8_0_BLOCK, out, (int)n);
        break;
    }
}
