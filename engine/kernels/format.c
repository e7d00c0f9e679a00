/* The one place formats are registered. To add a format: docs/ARCHITECTURE.md, "Adding a
 * weight format". */
#include "engine/kernels/format.h"

#include <strings.h>

#include "common/ms_common.h"
#include "engine/kernels/float_formats.h"
#include "engine/kernels/hif4.h"
#include "engine/kernels/iq4_xs.h"
#include "engine/kernels/kquants.h"
#include "engine/kernels/kquants_low.h"
#include "engine/kernels/nvfp4.h"
#include "engine/kernels/q8_0.h"
#include "engine/kernels/qlegacy.h"

static bool has_dpbf16(void)
{
    return kern_has_dpbf16();
}

/* Float formats: the SIMD tiles, then the portable path; BF16 also has the opt-in VDPBF16PS
 * kernel for callers that hand it bf16 activations (model_load_opts.bf16_activations). */
#define FLOAT_KERNELS(sfx)                                                                         \
    {"float-avx512-" #sfx, KERN_ISA_AVX512, KERN_ACT_F32, float_range_avx512_##sfx, NULL, false, NULL},      \
    {"float-avx2-" #sfx, KERN_ISA_AVX2, KERN_ACT_F32, float_range_avx2_##sfx, NULL, false, NULL},            \
    {"float-portable-" #sfx, KERN_ISA_PORTABLE, KERN_ACT_F32, float_range_portable_##sfx, NULL, false,      \
     float_portable_scratch_bytes}

/* A super-block format on Q8_K activations: AVX-512, AVX2 and portable kernels named after it. */
#define KQ_FORMAT(NAME, sfx, block)                                                                               \
    [TENSOR_DTYPE_##NAME] = {.dtype = TENSOR_DTYPE_##NAME, .name = #NAME, .block_values = QK_K,                   \
                             .block_bytes = sizeof(block), .dequant_row = fmt_##sfx##_dequant_row,                 \
                             .quantize_row = fmt_##sfx##_quantize_row, .n_kernels = 3,                             \
                             .kernels = {{#sfx "-avx512", KERN_ISA_AVX512, KERN_ACT_Q8_K, fmt_##sfx##_range_avx512, \
                                          NULL, false, NULL},                                                      \
                                         {#sfx "-avx2", KERN_ISA_AVX2, KERN_ACT_Q8_K, fmt_##sfx##_range_avx2, NULL, \
                                          false, NULL},                                                            \
                                         {#sfx "-portable", KERN_ISA_PORTABLE, KERN_ACT_Q8_K,                      \
                                          fmt_##sfx##_range_portable, NULL, false, NULL}}}

/* ggml's 32-value block formats (qlegacy.h): AVX-512 VNNI, AVX2, portable */
#define QL_FORMAT(NAME, sfx, ACT)                                                                  \
    [TENSOR_DTYPE_##NAME] = {                                                                      \
        .dtype = TENSOR_DTYPE_##NAME, .name = #NAME, .block_values = QL_BLOCK,                     \
        .block_bytes = sizeof(struct ql_##sfx##_block), .dequant_row = ql_##sfx##_dequant_row,     \
        .quantize_row = ql_##sfx##_quantize_row, .n_kernels = 3,                                   \
        .kernels = {{#sfx "-avx512", KERN_ISA_AVX512, KERN_ACT_##ACT, ql_##sfx##_range_avx512, NULL, false,      \
                     ql_avx512_scratch_bytes},                                                     \
                    {#sfx "-avx2", KERN_ISA_AVX2, KERN_ACT_##ACT, ql_##sfx##_range_avx2, NULL, false, NULL},       \
                    {#sfx "-portable", KERN_ISA_PORTABLE, KERN_ACT_##ACT, ql_##sfx##_range_portable, NULL, false,  \
                     NULL}}}

static const struct weight_format formats[TENSOR_DTYPE_COUNT] = {
    [TENSOR_DTYPE_F32] = {.dtype = TENSOR_DTYPE_F32, .name = "F32", .block_values = 1, .block_bytes = 4,
                          .dequant_row = float_f32_dequant_row, .quantize_row = float_f32_quantize_row,
                          .n_kernels = 3, .kernels = {FLOAT_KERNELS(f32)}},
    [TENSOR_DTYPE_F16] = {.dtype = TENSOR_DTYPE_F16, .name = "F16", .block_values = 1, .block_bytes = 2,
                          .dequant_row = float_f16_dequant_row, .quantize_row = float_f16_quantize_row,
                          .n_kernels = 3, .kernels = {FLOAT_KERNELS(f16)}},
    [TENSOR_DTYPE_BF16] = {.dtype = TENSOR_DTYPE_BF16, .name = "BF16", .block_values = 1, .block_bytes = 2,
                           .dequant_row = float_bf16_dequant_row, .quantize_row = float_bf16_quantize_row,
                           .n_kernels = 4,
                           .kernels = {{"bf16-dpbf16", KERN_ISA_AVX512, KERN_ACT_BF16, float_range_dpbf16, has_dpbf16,
                                        true, NULL},
                                       FLOAT_KERNELS(bf16)}},
    [TENSOR_DTYPE_Q8_0] = {.dtype = TENSOR_DTYPE_Q8_0, .name = "Q8_0", .block_values = Q8_0_BLOCK,
                           .block_bytes = sizeof(struct q8_0_block), .dequant_row = q8_0_dequant_row,
                           .quantize_row = q8_0_quantize_row, .quantize_from = q8_0_quantize_from,
                           .n_kernels = 4,
                           .kernels = {{"q8_0-amx", KERN_ISA_AMX, KERN_ACT_Q8_0, q8_0_range_amx, NULL, false,
                                        q8_0_amx_scratch_bytes},
                                       {"q8_0-avx512", KERN_ISA_AVX512, KERN_ACT_Q8_0, q8_0_range_avx512, NULL, false, NULL},
                                       {"q8_0-avx2", KERN_ISA_AVX2, KERN_ACT_Q8_0, q8_0_range_avx2, NULL, false, NULL},
                                       {"q8_0-portable", KERN_ISA_PORTABLE, KERN_ACT_Q8_0, q8_0_range_portable, NULL,
                                        false, NULL}}},
    [TENSOR_DTYPE_Q4_K] = {.dtype = TENSOR_DTYPE_Q4_K, .name = "Q4_K", .block_values = QK_K,
                           .block_bytes = sizeof(struct q4_k_block), .dequant_row = fmt_q4_k_dequant_row,
                           .quantize_row = fmt_q4_k_quantize_row, .n_kernels = 3,
                           .kernels = {{"q4_k-avx512", KERN_ISA_AVX512, KERN_ACT_Q8_K, fmt_q4_k_range_avx512, NULL, false, NULL},
                                       {"q4_k-avx2", KERN_ISA_AVX2, KERN_ACT_Q8_K, fmt_q4_k_range_avx2, NULL, false, NULL},
                                       {"q4_k-portable", KERN_ISA_PORTABLE, KERN_ACT_Q8_K, fmt_q4_k_range_portable, NULL,
                                        false, NULL}}},
    [TENSOR_DTYPE_Q6_K] = {.dtype = TENSOR_DTYPE_Q6_K, .name = "Q6_K", .block_values = QK_K,
                           .block_bytes = sizeof(struct q6_k_block), .dequant_row = fmt_q6_k_dequant_row,
                           .quantize_row = fmt_q6_k_quantize_row, .n_kernels = 3,
                           .kernels = {{"q6_k-avx512", KERN_ISA_AVX512, KERN_ACT_Q8_K, fmt_q6_k_range_avx512, NULL, false, NULL},
                                       {"q6_k-avx2", KERN_ISA_AVX2, KERN_ACT_Q8_K, fmt_q6_k_range_avx2, NULL, false, NULL},
                                       {"q6_k-portable", KERN_ISA_PORTABLE, KERN_ACT_Q8_K, fmt_q6_k_range_portable, NULL,
                                        false, NULL}}},
    KQ_FORMAT(Q5_K, q5_k, struct q5_k_block),
    KQ_FORMAT(IQ4_XS, iq4_xs, struct iq4_xs_block),
    KQ_FORMAT(Q3_K, q3_k, struct q3_k_block),
    KQ_FORMAT(Q2_K, q2_k, struct q2_k_block),
    QL_FORMAT(Q4_0, q4_0, Q8_0),
    QL_FORMAT(Q4_1, q4_1, Q8_1),
    QL_FORMAT(Q5_0, q5_0, Q8_0),
    QL_FORMAT(Q5_1, q5_1, Q8_1),
    QL_FORMAT(IQ4_NL, iq4_nl, Q8_0),
    QL_FORMAT(MXFP4, mxfp4, Q8_0),
    [TENSOR_DTYPE_NVFP4] = {.dtype = TENSOR_DTYPE_NVFP4, .name = "NVFP4", .block_values = NVFP4_SUPER,
                            .block_bytes = sizeof(struct nvfp4_block), .dequant_row = nvfp4_dequant_row,
                            .quantize_row = nvfp4_quantize_row, .n_kernels = 3,
                            .kernels = {{"nvfp4-avx512", KERN_ISA_AVX512, KERN_ACT_Q8_0, nvfp4_range_avx512, NULL,
                                         false, nvfp4_avx512_scratch_bytes},
                                        {"nvfp4-avx2", KERN_ISA_AVX2, KERN_ACT_Q8_0, nvfp4_range_avx2, NULL, false, NULL},
                                        {"nvfp4-portable", KERN_ISA_PORTABLE, KERN_ACT_Q8_0, nvfp4_range_portable, NULL,
                                         false, NULL}}},
    [TENSOR_DTYPE_HIF4] = {.dtype = TENSOR_DTYPE_HIF4, .name = "HIF4", .block_values = HIF4_UNIT,
                           .block_bytes = sizeof(struct hif4_unit), .dequant_row = hif4_dequant_row,
                           .quantize_row = hif4_quantize_row, .n_kernels = 3,
                           .kernels = {{"hif4-avx512", KERN_ISA_AVX512, KERN_ACT_Q8_0, hif4_range_avx512, NULL, false,
                                        hif4_avx512_scratch_bytes},
                                       {"hif4-avx2", KERN_ISA_AVX2, KERN_ACT_Q8_0, hif4_range_avx2, NULL, false, NULL},
                                       {"hif4-portable", KERN_ISA_PORTABLE, KERN_ACT_Q8_0, hif4_range_portable, NULL,
                                        false, NULL}}},
};

static void round_bf16(enum kern_isa isa, const float *x, void *out, int n)
{
    (void)isa;
    float_round_bf16(x, out, n);
}

static void quantize_q8_k(enum kern_isa isa, const float *x, void *out, int n)
{
    (void)isa;
    fmt_q8_k_quantize_act(x, out, n);
}

static void quantize_q8_1(enum kern_isa isa, const float *x, void *out, int n)
{
    (void)isa;
    ql_q8_1_quantize_act(x, out, n);
}

static const struct act_format acts[KERN_ACT_COUNT] = {
    [KERN_ACT_F32] = {KERN_ACT_F32, "f32", 1, sizeof(float), NULL},
    [KERN_ACT_BF16] = {KERN_ACT_BF16, "bf16", 1, sizeof(uint16_t), round_bf16},
    [KERN_ACT_Q8_0] = {KERN_ACT_Q8_0, "q8_0", Q8_0_BLOCK, sizeof(struct q8_act_block), q8_0_quantize_act},
    [KERN_ACT_Q8_K] = {KERN_ACT_Q8_K, "q8_k", QK_K, sizeof(struct q8_k_block), quantize_q8_k},
    [KERN_ACT_Q8_1] = {KERN_ACT_Q8_1, "q8_1", QL_BLOCK, sizeof(struct ql_q8_1_act_block), quantize_q8_1},
};

const struct weight_format *fmt_get(enum tensor_dtype dtype)
{
    MS_ASSERT(dtype >= 0 && dtype < TENSOR_DTYPE_COUNT);
    return &formats[dtype];
}

const struct weight_format *fmt_by_name(const char *name)
{
    for (int i = 0; i < TENSOR_DTYPE_COUNT; i++)
        if (!strcasecmp(formats[i].name, name)) return &formats[i];
    return NULL;
}

const struct act_format *fmt_act(enum kern_act act)
{
    return &acts[act];
}

size_t fmt_row_bytes(const struct weight_format *f, int64_t cols)
{
    if (cols < 0 || cols % f->block_values) return 0;
    return (size_t)(cols / f->block_values) * f->block_bytes;
}

const struct fmt_kernel *fmt_pick_kernel(const struct weight_format *f, enum kern_isa isa, unsigned offered)
{
    for (int i = 0; i < f->n_kernels; i++) {
        const struct fmt_kernel *k = &f->kernels[i];
        if (k->isa > isa || (k->usable && !k->usable())) continue;
        if (k->opt_in && !(offered & (1u << k->act))) continue;
        return k;
    }
    return &f->kernels[f->n_kernels - 1];
}
