/* Q8_0: blocks of 32 int8 values with one scale, GGUF's block_q8_0 layout for weights (f16
 * scale, 34 bytes), and a float-scaled variant for activations quantized at run time.
 * A Q8_0 tensor [out, in] (in % 32 == 0) stores each row as in / 32 consecutive blocks. */
#ifndef MS_ENGINE_QUANT_H
#define MS_ENGINE_QUANT_H

#include <stddef.h>
#include <stdint.h>

#define Q8_0_BLOCK 32

struct q8_0_block {
    uint16_t d; /* f16 scale */
    int8_t qs[Q8_0_BLOCK];
};

/* An activation block: x[i] ~= d * qs[i]. */
struct q8_act_block {
    float d;
    int8_t qs[Q8_0_BLOCK];
};

_Static_assert(sizeof(struct q8_0_block) == 34, "GGUF block_q8_0 is 34 bytes");
_Static_assert(sizeof(struct q8_act_block) == 36, "activation block is 36 bytes");

/* Quantizes n values (n % 32 == 0) to n / 32 weight blocks: d = max|x| / 127 (stored as f16),
 * q = round(x / d), as llama.cpp's quantize_row_q8_0. Any thread. */
void quant_q8_0_row(const float *x, struct q8_0_block *out, int n);

/* The same for activations, with a float scale. */
void quant_q8_act_row(const float *x, struct q8_act_block *out, int n);

/* x[i] for the n values of n / 32 weight blocks. */
void quant_q8_0_dequant(const struct q8_0_block *b, float *out, int n);

/* Portable dot of one weight row and one activation row of n values (n / 32 blocks): the exact
 * integer sum of each block, scaled by both scales, summed in block order. */
float quant_q8_0_dot(const struct q8_0_block *w, const struct q8_act_block *x, int n);

#endif
