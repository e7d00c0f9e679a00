/* ggml's 32-value block formats ("legacy" quants and the two codebook ones): Q4_0, Q4_1, Q5_0,
 * Q5_1, IQ4_NL and MXFP4, and the Q8_1 activations Q4_1/Q5_1 read. The block structs are byte
 * for byte ggml's (ggml-common.h), so GGUF tensor data is used in place. Within a block,
 * element j < 16 is the low nibble of qs[j] and element j + 16 its high nibble; Q5 adds a
 * fifth bit, bit j of the little-endian word qh, for element j.
 *
 *   Q4_0   x = d * (q - 8)              Q4_1   x = d * q + m
 *   Q5_0   x = d * (q - 16)             Q5_1   x = d * q + m
 *   IQ4_NL x = d * kvalues_iq4nl[q]     MXFP4  x = 2^(e - 128) * kvalues_mxfp4[q]
 *   (d, m: f16; e: E8M0; ggml stores the E2M1 values doubled and halves the E8M0 scale)
 *
 * Every kernel sees a weight block as 32 int8 values w (the q - 8, q, codebook entry ...) and
 * float scales; against an activation block it takes 8 exact int32 lane sums
 * L[l] = sum_{k<4} w[4l+k] * x[4l+k] (what VPMADDWD / VPDPBUSD leave in their lanes) and
 * accumulates acc[8 * (b & 3) + l] = fma(L[l], dw * dx, acc[...]) for block b (4 chains: one
 * would be bound by the fma latency), then reduces the 32 lanes in a fixed tree (ql_reduce32).
 * Q4_1/Q5_1 add the min term in four scalars, accm[b & 3] = fma(m, s_x, accm[b & 3]), and
 * return reduce32 + ((accm[0] + accm[2]) + (accm[1] + accm[3])). All ISAs (portable, AVX2,
 * AVX-512) follow exactly this, so they agree bit for bit and any split of rows or tokens
 * gives the same bits. Pure functions, any thread. */
#ifndef MS_ENGINE_KERNELS_QLEGACY_H
#define MS_ENGINE_KERNELS_QLEGACY_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "engine/kernels/kern_range.h"

#define QL_BLOCK 32

struct ql_q4_0_block {
    uint16_t d;
    uint8_t qs[QL_BLOCK / 2];
};

struct ql_q4_1_block {
    uint16_t d, m;
    uint8_t qs[QL_BLOCK / 2];
};

struct ql_q5_0_block {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[QL_BLOCK / 2];
};

struct ql_q5_1_block {
    uint16_t d, m;
    uint8_t qh[4];
    uint8_t qs[QL_BLOCK / 2];
};

struct ql_iq4_nl_block {
    uint16_t d;
    uint8_t qs[QL_BLOCK / 2];
};

struct ql_mxfp4_block {
    uint8_t e;
    uint8_t qs[QL_BLOCK / 2];
};

/* Q8_1 activations: x[i] ~= d * qs[i], s = d * sum(qs) (the min term of Q4_1/Q5_1). d and qs
 * are the bits of the Q8_0 activation quantizer (q8_0.h); llama.cpp keeps d and s as f16. */
struct ql_q8_1_act_block {
    float d, s;
    int8_t qs[QL_BLOCK];
};

_Static_assert(sizeof(struct ql_q4_0_block) == 18, "ggml block_q4_0 is 18 bytes");
_Static_assert(sizeof(struct ql_q4_1_block) == 20, "ggml block_q4_1 is 20 bytes");
_Static_assert(sizeof(struct ql_q5_0_block) == 22, "ggml block_q5_0 is 22 bytes");
_Static_assert(sizeof(struct ql_q5_1_block) == 24, "ggml block_q5_1 is 24 bytes");
_Static_assert(sizeof(struct ql_iq4_nl_block) == 18, "ggml block_iq4_nl is 18 bytes");
_Static_assert(sizeof(struct ql_mxfp4_block) == 17, "ggml block_mxfp4 is 17 bytes");
_Static_assert(sizeof(struct ql_q8_1_act_block) == 40, "Q8_1 activation block is 40 bytes");

/* ggml's codebooks (kvalues_iq4nl, kvalues_mxfp4), 16 bytes each */
extern const int8_t ql_kvalues_iq4nl[16];
extern const int8_t ql_kvalues_mxfp4[16];

/* Half the E8M0 value e: 2^(e - 128), exact (subnormal for e < 2), as ggml's
 * GGML_E8M0_TO_FP32_HALF. */
static inline float ql_e8m0_half(uint8_t e)
{
    uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* The 32 accumulator lanes summed as the kernels do: l + l+16, l + l+8, then l + l+4, l + l+2,
 * 0 + 1. */
static inline float ql_reduce32(const float a[32])
{
    float w[16], v[8], u[4], p[2];
    for (int l = 0; l < 16; l++) w[l] = a[l] + a[l + 16];
    for (int l = 0; l < 8; l++) v[l] = w[l] + w[l + 8];
    for (int l = 0; l < 4; l++) u[l] = v[l] + v[l + 4];
    for (int l = 0; l < 2; l++) p[l] = u[l] + u[l + 2];
    return p[0] + p[1];
}

/* n values (n % 32 == 0) of blocks to float, exactly as ggml's dequantize_row_* (the Q4_1/Q5_1
 * d * q + m rounded once, which is what the exact sum of f16 terms gives). */
void ql_q4_0_dequant_row(const void *blocks, float *out, int64_t n);
void ql_q4_1_dequant_row(const void *blocks, float *out, int64_t n);
void ql_q5_0_dequant_row(const void *blocks, float *out, int64_t n);
void ql_q5_1_dequant_row(const void *blocks, float *out, int64_t n);
void ql_iq4_nl_dequant_row(const void *blocks, float *out, int64_t n);
void ql_mxfp4_dequant_row(const void *blocks, float *out, int64_t n);

/* n floats to blocks with the bits of tests/reference/ggml_formats.py's quantizers (for Q4_0,
 * Q4_1, Q5_0, Q5_1 and MXFP4 those are ggml's quantize_row_*_ref; IQ4_NL is the reference's
 * simpler max-scale + one least-squares refit, not ggml's scale search). */
void ql_q4_0_quantize_row(const float *x, void *blocks, int64_t n);
void ql_q4_1_quantize_row(const float *x, void *blocks, int64_t n);
void ql_q5_0_quantize_row(const float *x, void *blocks, int64_t n);
void ql_q5_1_quantize_row(const float *x, void *blocks, int64_t n);
void ql_iq4_nl_quantize_row(const float *x, void *blocks, int64_t n);
void ql_mxfp4_quantize_row(const float *x, void *blocks, int64_t n);

/* Q8_1 activations of n values (n % 32 == 0); the same bits on every ISA. */
void ql_q8_1_quantize_act(const float *x, struct ql_q8_1_act_block *out, int n);

/* Matmul kernels (kern_range.h). Q4_1 and Q5_1 read KERN_ACT_Q8_1, the others KERN_ACT_Q8_0. */
#define QL_DECLARE_KERNELS(fmt)                                                                    \
    void ql_##fmt##_range_portable(const struct kern_range *r);                                    \
    void ql_##fmt##_range_avx2(const struct kern_range *r);                                        \
    void ql_##fmt##_range_avx512(const struct kern_range *r);
QL_DECLARE_KERNELS(q4_0)
QL_DECLARE_KERNELS(q4_1)
QL_DECLARE_KERNELS(q5_0)
QL_DECLARE_KERNELS(q5_1)
QL_DECLARE_KERNELS(iq4_nl)
QL_DECLARE_KERNELS(mxfp4)
#undef QL_DECLARE_KERNELS
/* The AVX-512 kernels' per-thread scratch (kern_range.scratch, 64-byte aligned) for rows of
 * `in` values: the activations prepared for up to 8 tokens. */
size_t ql_avx512_scratch_bytes(int in);

#endif
