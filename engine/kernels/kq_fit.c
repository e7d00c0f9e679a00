#include "engine/kernels/kq_fit.h"

#include <string.h>

#define GROUP_MAX_EPS 1e-15f

static float weighted_error(int n, const float *x, const float *w, const uint8_t *L, float scale, float min,
                            bool use_mad)
{
    float err = 0;
    for (int i = 0; i < n; i++) {
        float diff = scale * L[i] + min - x[i];
        err += w[i] * (use_mad ? fabsf(diff) : diff * diff);
    }
    return err;
}

float kq_fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min, float rmin,
                       float rdelta, int nstep, bool use_mad)
{
    float lo = x[0], hi = x[0], sum_w = w[0], sum_x = w[0] * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    if (lo > 0) lo = 0;
    if (hi == lo) {
        memset(L, 0, (size_t)n);
        *the_min = -lo;
        return 0;
    }
    float iscale = nmax / (hi - lo), scale = 1 / iscale;
    for (int i = 0; i < n; i++) L[i] = (uint8_t)kq_clampi(kq_nearest(iscale * (x[i] - lo)), 0, nmax);
    float best = weighted_error(n, x, w, L, scale, lo, use_mad);
    uint8_t aux[32];
    /* ggml: `lo` moves to each better fit, and later candidates are measured from it */
    for (int is = 0; nstep >= 1 && is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (hi - lo);
        float sl = 0, sl2 = 0, sxl = 0;
        for (int i = 0; i < n; i++) {
            int l = kq_clampi(kq_nearest(iscale * (x[i] - lo)), 0, nmax);
            aux[i] = (uint8_t)l;
            sl += w[i] * l;
            sl2 += w[i] * l * l;
            sxl += w[i] * l * x[i];
        }
        float D = sum_w * sl2 - sl * sl;
        if (D <= 0) continue;
        float s = (sum_w * sxl - sum_x * sl) / D, m = (sl2 * sum_x - sl * sxl) / D;
        if (m > 0) {
            m = 0;
            s = sxl / sl2;
        }
        float err = weighted_error(n, x, w, aux, s, m, use_mad);
        if (err < best) {
            memcpy(L, aux, (size_t)n);
            best = err;
            scale = s;
            lo = m;
        }
    }
    *the_min = -lo;
    return scale;
}

float kq_fit_q3(int n, int nmax, const float *x, uint8_t *L)
{
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0;
    }
    int8_t l8[32];
    float iscale = -nmax / max, sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = kq_clampi(kq_nearest(iscale * x[i]), -nmax, nmax - 1);
        l8[i] = (int8_t)l;
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i], slx = sumlx - w * x[i] * l8[i];
            if (slx <= 0) continue;
            float sl2 = suml2 - w * l8[i] * l8[i];
            int nl = kq_clampi(kq_nearest(x[i] * sl2 / slx), -nmax, nmax - 1);
            if (nl == l8[i]) continue;
            slx += w * x[i] * nl;
            sl2 += w * nl * nl;
            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                l8[i] = (int8_t)nl;
                sumlx = slx;
                suml2 = sl2;
                changed++;
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; i++) L[i] = (uint8_t)(l8[i] + nmax);
    return sumlx / suml2;
}
