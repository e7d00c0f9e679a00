/* The weight formats a tensor can be stored in. The lowest header of the kernels: each value has
 * one entry in the format table (engine/kernels/format.c), which says everything else about it. */
#ifndef MS_ENGINE_KERNELS_DTYPE_H
#define MS_ENGINE_KERNELS_DTYPE_H

enum tensor_dtype {
    TENSOR_DTYPE_F32,
    TENSOR_DTYPE_F16,
    TENSOR_DTYPE_BF16,
    TENSOR_DTYPE_Q8_0, /* blocks of 32 int8 + f16 scale along each row (engine/kernels/q8_0.h) */
    TENSOR_DTYPE_Q4_K, /* ggml super-blocks of 256 (engine/kernels/kquants.h) */
    TENSOR_DTYPE_Q6_K, /* ggml super-blocks of 256 (engine/kernels/kquants.h) */
    TENSOR_DTYPE_Q5_K, /* ggml super-blocks of 256 (engine/kernels/kquants.h) */
    TENSOR_DTYPE_IQ4_XS, /* ggml super-blocks of 256 (engine/kernels/iq4_xs.h) */
    TENSOR_DTYPE_Q3_K, /* ggml super-blocks of 256 (engine/kernels/kquants_low.h) */
    TENSOR_DTYPE_Q2_K, /* ggml super-blocks of 256 (engine/kernels/kquants_low.h) */
    /* ggml blocks of 32 (engine/kernels/qlegacy.h) */
    TENSOR_DTYPE_Q4_0,
    TENSOR_DTYPE_Q4_1,
    TENSOR_DTYPE_Q5_0,
    TENSOR_DTYPE_Q5_1,
    TENSOR_DTYPE_IQ4_NL,
    TENSOR_DTYPE_MXFP4,
    TENSOR_DTYPE_NVFP4, /* 16-value E2M1 blocks, E4M3 scales, FP32 per 256 (engine/kernels/nvfp4.h) */
    TENSOR_DTYPE_COUNT
};

#endif
