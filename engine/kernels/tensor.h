/* A typed view of weights that live elsewhere (usually an mmapped checkpoint). What a dtype's
 * rows look like is the format table's business (format.h); this module only sizes and reads. */
#ifndef MS_ENGINE_KERNELS_TENSOR_H
#define MS_ENGINE_KERNELS_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "engine/kernels/dtype.h"

#define TENSOR_MAX_DIMS 4

/* Borrowed: `data` belongs to whoever mapped it (struct model_weights) and lives as long as it. */
struct tensor {
    enum tensor_dtype dtype;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS]; /* row-major; a linear layer's weight is [out, in] */
    const void *data;
};

const char *tensor_dtype_name(enum tensor_dtype dtype);
/* Bytes of one element of a plain float dtype; 0 for block formats (use tensor_row_bytes). */
size_t tensor_dtype_size(enum tensor_dtype dtype);
/* Bytes of one row (the last dimension) of t. */
size_t tensor_row_bytes(const struct tensor *t);
int64_t tensor_numel(const struct tensor *t);

/* Converts `n` values starting at element `offset` of t to float32 (for block formats, offset
 * and n are multiples of the block). */
void tensor_to_f32(const struct tensor *t, int64_t offset, int64_t n, float *out);

/* Row `row` of a 2-D tensor converted to dtype `to` (a format with a quantizer), as that format's
 * quantize_row would from the row's float values; scratch holds one row of floats. Any thread. */
void tensor_quantize_row(const struct tensor *t, int64_t row, enum tensor_dtype to, void *out, float *scratch);

#endif
