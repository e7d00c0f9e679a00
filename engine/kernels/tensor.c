#include "engine/kernels/tensor.h"

#include "engine/kernels/format.h"

const char *tensor_dtype_name(enum tensor_dtype dtype)
{
    return dtype >= 0 && dtype < TENSOR_DTYPE_COUNT ? fmt_get(dtype)->name : "?";
}

size_t tensor_dtype_size(enum tensor_dtype dtype)
{
    const struct weight_format *f = fmt_get(dtype);
    return f->block_values == 1 ? f->block_bytes : 0;
}

size_t tensor_row_bytes(const struct tensor *t)
{
    return fmt_row_bytes(fmt_get(t->dtype), t->shape[t->ndim - 1]);
}

int64_t tensor_numel(const struct tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

void tensor_to_f32(const struct tensor *t, int64_t offset, int64_t n, float *out)
{
    const struct weight_format *f = fmt_get(t->dtype);
    const char *src = (const char *)t->data + (size_t)(offset / f->block_values) * f->block_bytes;
    f->dequant_row(src, out, n);
}

void tensor_quantize_row(const struct tensor *t, int64_t row, enum tensor_dtype to, void *out, float *scratch)
{
    const struct weight_format *src = fmt_get(t->dtype), *dst = fmt_get(to);
    int64_t cols = t->shape[t->ndim - 1];
    const char *p = (const char *)t->data + (size_t)row * tensor_row_bytes(t);
    if (dst->quantize_from && src->block_values == 1) {
        dst->quantize_from(kern_isa_best(), p, t->dtype, out, cols);
        return;
    }
    src->dequant_row(p, scratch, cols);
    dst->quantize_row(scratch, out, cols);
}
