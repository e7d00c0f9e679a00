#include "engine/kernels/nvfp4.h"

#include <math.h>

#include "engine/kernels/q8_0.h"
#include "engine/kernels/qlegacy.h"

const int8_t nvfp4_kvalues[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

/* the E2M1 values of the nibbles, -0 included (code 8, which the quantizer never writes) */
static const float e2m1[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.0f, -0.5f, -1, -1.5f, -2, -3, -4, -6};

uint8_t nvfp4_f32_to_e4m3(float v)
{
    if (!(v > 0)) return 0;
    if (v >= NVFP4_E4M3_MAX) return 0x7E;
    if (v < 0x1p-6f) return (uint8_t)rintf(v * 0x1p9f); /* subnormal: steps of 2^-9; 8 is 2^-6 */
    int e;
    frexpf(v, &e); /* v = m * 2^e, m in [0.5, 1): the E4M3 exponent is e - 1 */
    int exp = e - 1, mant = (int)rintf((ldexpf(v, -exp) - 1.0f) * 8.0f);
    if (mant == 8) {
        exp++;
        mant = 0;
    }
    int c = (exp + 7) << 3 | mant;
    return (uint8_t)(c > 0x7E ? 0x7E : c);
}

/* element j (0..255) of a super-block's nibbles */
static int nibble(const uint8_t *qs, int j)
{
    int p = j / 32, i = j % 32;
    return i < 16 ? qs[16 * p + i] & 0xF : qs[16 * p + i - 16] >> 4;
}

/* the scale of block k: E4M3(s[k]) * d */
static float block_scale(const struct nvfp4_block *b, int k)
{
    return nvfp4_e4m3_to_f32(b->s[k]) * b->d;
}

void nvfp4_dequant_row(const void *blocks, float *out, int64_t n)
{
    const struct nvfp4_block *b = blocks;
    for (int64_t i = 0; i < n / NVFP4_SUPER; i++, b++)
        for (int k = 0; k < NVFP4_SUPER / NVFP4_BLOCK; k++) {
            float sc = block_scale(b, k);
            for (int j = 16 * k; j < 16 * k + 16; j++) *out++ = sc * e2m1[nibble(b->qs, j)];
        }
}

/* The E2M1 magnitude code nearest to a >= 0, ties to the even code (midpoints 0.25 0.75 1.25
 * 1.75 2.5 3.5 5), 7 (6) above. */
static int e2m1_code(float a)
{
    if (a <= 0.25f) return 0;
    if (a < 0.75f) return 1;
    if (a <= 1.25f) return 2;
    if (a < 1.75f) return 3;
    if (a <= 2.5f) return 4;
    if (a < 3.5f) return 5;
    if (a <= 5.0f) return 6;
    return 7;
}

static float amax_of(const float *x, int n)
{
    float m = 0;
    for (int i = 0; i < n; i++) m = fmaxf(m, fabsf(x[i]));
    return m;
}

static void quantize_super(const float *x, struct nvfp4_block *b)
{
    int q[NVFP4_SUPER];
    b->d = amax_of(x, NVFP4_SUPER) / (NVFP4_E2M1_MAX * NVFP4_E4M3_MAX);
    for (int k = 0; k < NVFP4_SUPER / NVFP4_BLOCK; k++) {
        const float *xb = x + 16 * k;
        b->s[k] = b->d > 0 ? nvfp4_f32_to_e4m3(amax_of(xb, NVFP4_BLOCK) / NVFP4_E2M1_MAX / b->d) : 0;
        float sc = block_scale(b, k);
        for (int j = 0; j < NVFP4_BLOCK; j++) {
            int c = sc > 0 ? e2m1_code(fabsf(xb[j] / sc)) : 0;
            q[16 * k + j] = c && xb[j] < 0 ? c | 8 : c;
        }
    }
    for (int p = 0; p < NVFP4_SUPER / 32; p++)
        for (int j = 0; j < 16; j++) b->qs[16 * p + j] = (uint8_t)(q[32 * p + j] | q[32 * p + 16 + j] << 4);
}

void nvfp4_quantize_row(const float *x, void *blocks, int64_t n)
{
    struct nvfp4_block *b = blocks;
    for (int64_t i = 0; i < n / NVFP4_SUPER; i++) quantize_super(x + i * NVFP4_SUPER, b + i);
}

/* ---- the portable kernel: the scheme of nvfp4.h, written out ---- */

static float dot_row(const struct nvfp4_block *row, const struct q8_act_block *xa, int nb)
{
    float acc[32] = {0};
    for (int b = 0; b < nb; b++) {
        const struct nvfp4_block *sb = row + b / 8;
        int p = b % 8;
        float h0 = block_scale(sb, 2 * p) * 0.5f, h1 = block_scale(sb, 2 * p + 1) * 0.5f;
        float dd0 = h0 * xa[b].d, dd1 = h1 * xa[b].d;
        for (int l = 0; l < 8; l++) {
            int32_t s = 0;
            for (int i = 4 * l; i < 4 * l + 4; i++) s += (int32_t)nvfp4_kvalues[nibble(sb->qs, 32 * p + i)] * xa[b].qs[i];
            acc[8 * (b & 3) + l] = fmaf((float)s, l < 4 ? dd0 : dd1, acc[8 * (b & 3) + l]);
        }
    }
    return ql_reduce32(acc);
}

void nvfp4_range_portable(const struct kern_range *g)
{
    int nb = g->in / Q8_0_BLOCK;
    for (int r = g->r0; r < g->r1; r++) {
        const struct nvfp4_block *row = (const void *)(g->w + (size_t)r * g->w_stride);
        for (int t = g->t0; t < g->t1; t++)
            g->y[(size_t)t * g->ldy + r] =
                dot_row(row, (const void *)((const char *)g->xa + (size_t)t * g->xa_stride), nb);
    }
}
