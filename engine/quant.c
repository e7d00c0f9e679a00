#include "engine/quant.h"

#include <math.h>

#include "engine/tensor.h"

/* Quantizes one block of Q8_0_BLOCK values to int8 with a symmetric scale; returns the scale. */
static float quant_block_portable(const float *xb, int8_t *qs)
{
    float amax = 0;
    for (int i = 0; i < Q8_0_BLOCK; i++) amax = fmaxf(amax, fabsf(xb[i]));
    float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
    for (int i = 0; i < Q8_0_BLOCK; i++) qs[i] = (int8_t)lrintf(xb[i] * id);
    return d;
}

void quant_q8_0_row(const float *x, struct q8_0_block *out, int n)
{
    for (int b = 0; b < n / Q8_0_BLOCK; b++)
        out[b].d = tensor_f32_to_f16(quant_block_portable(x + (size_t)b * Q8_0_BLOCK, out[b].qs));
}

void quant_q8_act_row(const float *x, struct q8_act_block *out, int n)
{
    for (int b = 0; b < n / Q8_0_BLOCK; b++) out[b].d = quant_block_portable(x + (size_t)b * Q8_0_BLOCK, out[b].qs);
}

void quant_q8_0_dequant(const struct q8_0_block *b, float *out, int n)
{
    for (int i = 0; i < n; i++) out[i] = f16_to_f32(b[i / Q8_0_BLOCK].d) * b[i / Q8_0_BLOCK].qs[i % Q8_0_BLOCK];
}

float quant_q8_0_dot(const struct q8_0_block *w, const struct q8_act_block *x, int n)
{
    float sum = 0;
    for (int b = 0; b < n / Q8_0_BLOCK; b++) {
        int32_t s = 0;
        for (int i = 0; i < Q8_0_BLOCK; i++) s += (int32_t)w[b].qs[i] * x[b].qs[i];
        sum += (float)s * (f16_to_f32(w[b].d) * x[b].d);
    }
    return sum;
}
