/* A typed view of weights that live elsewhere (usually an mmapped checkpoint). */
#ifndef MS_ENGINE_TENSOR_H
#define MS_ENGINE_TENSOR_H

#include <stdint.h>
#include <string.h>

enum tensor_dtype {
    TENSOR_DTYPE_F32,
    TENSOR_DTYPE_F16,
    TENSOR_DTYPE_BF16,
    TENSOR_DTYPE_Q8_0, /* blocks of 32 int8 + f16 scale along each row (engine/quant.h) */
};

#define TENSOR_MAX_DIMS 4

/* Borrowed: `data` belongs to whoever mapped it (struct model_weights) and lives as long as it. */
struct tensor {
    enum tensor_dtype dtype;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS]; /* row-major; a linear layer's weight is [out, in] */
    const void *data;
};

const char *tensor_dtype_name(enum tensor_dtype dtype);
/* Bytes of one element; Q8_0 has no whole-byte element size and gives 0 (use tensor_row_bytes). */
size_t tensor_dtype_size(enum tensor_dtype dtype);
/* Bytes of one row of a 2-D tensor ([rows, cols]). */
size_t tensor_row_bytes(const struct tensor *t);
int64_t tensor_numel(const struct tensor *t);

static inline float bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float f16_to_f32(uint16_t h);

uint16_t tensor_f32_to_f16(float f);  /* round to nearest even, overflow to inf */
uint16_t tensor_f32_to_bf16(float f); /* round to nearest even, NaN stays NaN */

/* Converts `n` values starting at element `offset` of t to float32 (for Q8_0, offset and n are
 * multiples of 32). */
void tensor_to_f32(const struct tensor *t, int64_t offset, int64_t n, float *out);

#endif
