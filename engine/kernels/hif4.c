#include "engine/kernels/hif4.h"

#include <math.h>

#include "engine/kernels/q8_0.h"
#include "engine/kernels/qlegacy.h"

#define E6M2_BIAS 48

/* the shift (E1_8 + E1_16) of value i */
static int shift_of(const struct hif4_unit *q, int i)
{
    return (q->e1_8 >> (i / 8) & 1) + (q->e1_16 >> (i / 4) & 1);
}

static int nibble(const struct hif4_unit *q, int i)
{
    return i < 32 ? q->qs[i] & 0xF : q->qs[i - 32] >> 4;
}

/* value i of a unit as the integer w with x = (E6M2 / 4) * w */
static int weight(const struct hif4_unit *q, int i)
{
    int c = nibble(q, i), mag = (c & 7) << shift_of(q, i);
    return c & 8 ? -mag : mag;
}

void hif4_dequant_row(const void *units, float *out, int64_t n)
{
    const struct hif4_unit *q = units;
    for (int64_t u = 0; u < n / HIF4_UNIT; u++, q++) {
        float dw = hif4_unit_scale(q->e6m2);
        for (int i = 0; i < HIF4_UNIT; i++) {
            int c = nibble(q, i);
            /* exact: dw has 3 significant bits, the magnitude at most 5 */
            float v = dw * (float)((c & 7) << shift_of(q, i));
            *out++ = c & 8 ? -v : v;
        }
    }
}

/* ---- the conversion ---- */

/* x >= 0 rounded to bf16, nearest even, subnormals kept (exponent floor -126) */
static double round_bf16(double x)
{
    if (x == 0) return 0;
    int e;
    frexp(x, &e);
    int E = e - 1 < -126 ? -126 : e - 1;
    return ldexp(rint(ldexp(x, 7 - E)), E - 7);
}

/* the E6M2 byte nearest (even) to sf, clamped to [2^-48, 49152] */
static uint8_t to_e6m2(double sf)
{
    const double lo = ldexp(1.0, -E6M2_BIAS), hi = 49152.0;
    sf = sf > hi ? hi : sf < lo ? lo : sf;
    int e;
    frexp(sf, &e);
    int E = e - 1;
    int q = (int)rint(ldexp(sf, 2 - E)); /* 4..8 */
    if (q == 8) {
        q = 4;
        E++;
    }
    return (uint8_t)((E + E6M2_BIAS) << 2 | (q - 4));
}

/* bf16(1 / E6M2): 2^-E for m = 0, else 2^(-E-1) times the bf16 of 1/1.25, 1/1.5, 1/1.75 */
static double e6m2_reciprocal(uint8_t b)
{
    static const int mant[4] = {128, 205, 171, 146};
    int E = (b >> 2) - E6M2_BIAS, m = b & 3;
    return m ? ldexp(mant[m] / 128.0, -E - 1) : ldexp(1.0, -E);
}

static void quantize_unit(const float *x, struct hif4_unit *q)
{
    double v4[16], v8[8], vmax = 0;
    for (int k = 0; k < 16; k++) {
        float m = 0;
        for (int i = 4 * k; i < 4 * k + 4; i++) m = fmaxf(m, fabsf(x[i]));
        v4[k] = m;
    }
    for (int g = 0; g < 8; g++) {
        v8[g] = fmax(v4[2 * g], v4[2 * g + 1]);
        vmax = fmax(vmax, v8[g]);
    }
    const double rec7 = round_bf16(1.0 / 7.0);
    q->e6m2 = to_e6m2(round_bf16(vmax * rec7));
    double r = e6m2_reciprocal(q->e6m2);
    unsigned e8 = 0, e16 = 0;
    for (int g = 0; g < 8; g++) e8 |= (unsigned)(v8[g] * r >= 4) << g;
    for (int k = 0; k < 16; k++) e16 |= (unsigned)(v4[k] * r * ldexp(1.0, -(int)(e8 >> (k / 2) & 1)) >= 2) << k;
    q->e1_8 = (uint8_t)e8;
    q->e1_16 = (uint16_t)e16;
    uint8_t code[HIF4_UNIT];
    for (int i = 0; i < HIF4_UNIT; i++) {
        int shift = (int)(e8 >> (i / 8) & 1) + (int)(e16 >> (i / 4) & 1);
        double c = floor(fabs((double)x[i]) * r * ldexp(1.0, 2 - shift) + 0.5);
        code[i] = (uint8_t)((x[i] < 0) << 3 | (c > 7 ? 7 : (int)c));
    }
    for (int j = 0; j < 32; j++) q->qs[j] = (uint8_t)(code[j] | code[j + 32] << 4);
}

void hif4_quantize_row(const float *x, void *units, int64_t n)
{
    struct hif4_unit *q = units;
    for (int64_t u = 0; u < n / HIF4_UNIT; u++) quantize_unit(x + u * HIF4_UNIT, q + u);
}

/* ---- the portable kernel: the scheme of hif4.h, written out ---- */

static float dot_row(const struct hif4_unit *w, const struct q8_act_block *x, int nu)
{
    float acc[32] = {0};
    for (int u = 0; u < nu; u++) {
        float dw = hif4_unit_scale(w[u].e6m2);
        for (int h = 0; h < 2; h++) {
            int b = 2 * u + h;
            float dd = dw * x[b].d;
            for (int l = 0; l < 8; l++) {
                int32_t s = 0;
                for (int i = 4 * l; i < 4 * l + 4; i++) s += weight(&w[u], 32 * h + i) * x[b].qs[i];
                acc[8 * (b & 3) + l] = fmaf((float)s, dd, acc[8 * (b & 3) + l]);
            }
        }
    }
    return ql_reduce32(acc);
}

void hif4_range_portable(const struct kern_range *g)
{
    int nu = g->in / HIF4_UNIT;
    for (int r = g->r0; r < g->r1; r++) {
        const struct hif4_unit *row = (const struct hif4_unit *)(g->w + (size_t)r * g->w_stride);
        for (int t = g->t0; t < g->t1; t++)
            g->y[(size_t)t * g->ldy + r] =
                dot_row(row, (const struct q8_act_block *)((const char *)g->xa + (size_t)t * g->xa_stride), nu);
    }
}
