/* The per-sub-block scale searches of ggml's reference quantizers, shared by the super-block
 * formats (kquants.c, kquants_low.c): each is ggml's loop in ggml's order of float operations,
 * so a quantizer built on them gives ggml's bytes (checked against numpy's step-by-step copy,
 * tests/reference/ggml_formats.py, which is checked against ggml's own library). Pure
 * functions, any thread. */
#ifndef MS_ENGINE_KERNELS_KQ_FIT_H
#define MS_ENGINE_KERNELS_KQ_FIT_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

/* Round to nearest, ties to even: what ggml's nearest_int does with its float trick. */
static inline int kq_nearest(float v)
{
    return (int)lrintf(v);
}

static inline int kq_clampi(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* x[i] ~= scale * L[i] - min with L in 0..nmax over n <= 32 values, by ggml's weighted
 * least-squares search over nstep + 1 candidate inverse scales (make_qkx2_quants; use_mad:
 * absolute instead of squared errors; nstep < 1: the min/max first guess). Returns the scale,
 * *the_min = min (>= 0). */
float kq_fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L, float *the_min, float rmin,
                       float rdelta, int nstep, bool use_mad);

/* Symmetric x[i] ~= scale * (L[i] - nmax), L in 0..2 nmax - 1, over n <= 32 values, with
 * ggml's coordinate-wise refinement weighted by x^2 (make_q3_quants, do_rmse); all L = 0 and
 * scale 0 for a group below 1e-15. */
float kq_fit_q3(int n, int nmax, const float *x, uint8_t *L);

#endif
