#include "engine/tensor.h"

#include <math.h>

const char *tensor_dtype_name(enum tensor_dtype dtype)
{
    switch (dtype) {
    case TENSOR_DTYPE_F32: return "F32";
    case TENSOR_DTYPE_F16: return "F16";
    case TENSOR_DTYPE_BF16: return "BF16";
    }
    return "?";
}

size_t tensor_dtype_size(enum tensor_dtype dtype)
{
    return dtype == TENSOR_DTYPE_F32 ? 4 : 2;
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
    }
}
