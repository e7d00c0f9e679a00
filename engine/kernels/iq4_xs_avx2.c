/* The AVX2 IQ4_XS kernel against Q8_K activations. Per weight row and super-block the 4-bit
 * indices become signed codebook values once (VPSHUFB on the 16-entry table), one register per
 * sub-block of 32; per token, VPMADDUBSW needs one unsigned operand, so it multiplies |x| by
 * the value carrying x's sign (VPSIGNB; no saturation: 2 * 127 * 127 < 32767), and VPMADDWD
 * with the sub-block scale sums exactly into int32. The float step is kquants.h's, so the
 * bits are the portable kernel's. */
#include "engine/kernels/iq4_xs.h"
#include "engine/kernels/kq_simd.h"

#include <immintrin.h>

#define TARGET __attribute__((target("avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline)) TARGET

#define TOK_BLOCK 8

struct iq4_unpacked {
    __m256i v[8];  /* sub-block j: its 32 codebook values, signed */
    __m256i sc[8]; /* its scale ls - 32 in all 16 int16 lanes */
    float d;
};

INLINE void iq4_unpack(const struct iq4_xs_block *b, struct iq4_unpacked *u)
{
    const __m128i table = _mm_loadu_si128((const __m128i *)iq4_xs_values), low4 = _mm_set1_epi8(0x0F);
    for (int j = 0; j < 8; j++) {
        __m128i raw = _mm_loadu_si128((const __m128i *)(b->qs + 16 * j));
        __m128i lo = _mm_shuffle_epi8(table, _mm_and_si128(raw, low4));
        __m128i hi = _mm_shuffle_epi8(table, _mm_and_si128(_mm_srli_epi16(raw, 4), low4));
        u->v[j] = _mm256_set_m128i(hi, lo);
        u->sc[j] = _mm256_set1_epi16((short)iq4_xs_scale(b, j));
    }
    u->d = _cvtsh_ss(b->d);
}

INLINE float iq4_step(const struct iq4_unpacked *u, const struct q8_k_block *x, float acc)
{
    __m256i s = _mm256_setzero_si256();
    for (int j = 0; j < 8; j++) {
        __m256i xv = _mm256_loadu_si256((const __m256i *)(x->qs + 32 * j));
        __m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(xv), _mm256_sign_epi8(u->v[j], xv));
        s = _mm256_add_epi32(s, _mm256_madd_epi16(p, u->sc[j]));
    }
    return kq_q6_k_accum(acc, u->d, x->d, kq_hsum256(s));
}

TARGET void fmt_iq4_xs_range_avx2(const struct kern_range *g)
{
    int nb = g->in / QK_K;
    for (int r = g->r0; r < g->r1; r++) {
        const struct iq4_xs_block *w = (const struct iq4_xs_block *)(g->w + (size_t)r * g->w_stride);
        for (int t0 = g->t0; t0 < g->t1; t0 += TOK_BLOCK) {
            int nt = g->t1 - t0 < TOK_BLOCK ? g->t1 - t0 : TOK_BLOCK;
            float acc[TOK_BLOCK] = {0};
            for (int b = 0; b < nb; b++) {
                struct iq4_unpacked u;
                iq4_unpack(&w[b], &u);
                for (int t = 0; t < nt; t++) acc[t] = iq4_step(&u, kq_act_row(g, t0 + t) + b, acc[t]);
            }
            for (int t = 0; t < nt; t++) g->y[(size_t)(t0 + t) * g->ldy + r] = acc[t];
        }
    }
}
