/* The AVX-512 IQ4_XS kernel against Q8_K activations. Per weight row and super-block the 4-bit
 * indices become codebook values + 128 (unsigned, 1..241) once, two sub-blocks per register;
 * per token VPDPBUSD sums 4 products at a time into int32 without saturation, VPMULLD applies
 * each sub-block's scale, and the bsums remove the +128 exactly. The float step is kquants.h's,
 * so the bits are the portable kernel's. */
#include "engine/kernels/iq4_xs.h"
#include "engine/kernels/kq_rows16.h"
#include "engine/kernels/kq_simd.h"

#include <immintrin.h>
#include <string.h>

#define TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline)) TARGET

#define TOK_BLOCK 8

struct iq4_unpacked {
    __m512i v[4];   /* sub-blocks 2k, 2k + 1: their 64 values + 128, unsigned */
    __m512i sc[4];  /* their scales as int32: lanes 0..7 sub-block 2k, 8..15 sub-block 2k + 1 */
    __m256i s16;    /* the 8 scales, each twice: pairs with bsums for the +128 */
    float d;
};

INLINE void iq4_unpack(const struct iq4_xs_block *b, struct iq4_unpacked *u)
{
    __m128i t = _mm_add_epi8(_mm_loadu_si128((const __m128i *)iq4_xs_values), _mm_set1_epi8((char)0x80));
    const __m512i table = _mm512_broadcast_i32x4(t), low4 = _mm512_set1_epi8(0x0F);
    const __m512i nib_shift = _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0);
    /* ls[j] = nibble j of scales_l | 2-bit field j of scales_h << 4, as int16 lanes */
    uint32_t sl;
    memcpy(&sl, b->scales_l, 4);
    __m128i lo = _mm_unpacklo_epi8(_mm_cvtsi32_si128((int)(sl & 0x0F0F0F0Fu)), _mm_cvtsi32_si128((int)((sl >> 4) & 0x0F0F0F0Fu)));
    __m128i hi = _mm_and_si128(_mm_srlv_epi16(_mm_set1_epi16((short)b->scales_h), _mm_set_epi16(14, 12, 10, 8, 6, 4, 2, 0)),
                               _mm_set1_epi16(3));
    __m128i s8x16 = _mm_sub_epi16(_mm_or_si128(_mm_cvtepu8_epi16(lo), _mm_slli_epi16(hi, 4)), _mm_set1_epi16(32));
    u->s16 = _mm256_set_m128i(_mm_unpackhi_epi16(s8x16, s8x16), _mm_unpacklo_epi16(s8x16, s8x16));
    __m512i s32 = _mm512_castsi256_si512(_mm256_cvtepi16_epi32(s8x16));
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        __m256i raw = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * k));
        /* 128-bit lanes: sub-block 2k's bytes twice, then 2k + 1's twice; low then high nibbles */
        __m512i r = _mm512_castsi256_si512(raw);
        r = _mm512_shuffle_i64x2(r, r, _MM_SHUFFLE(1, 1, 0, 0));
        __m512i idx = _mm512_and_si512(_mm512_srlv_epi64(r, nib_shift), low4);
        u->v[k] = _mm512_shuffle_epi8(table, idx);
        __m512i sel = _mm512_mask_blend_epi32(0xFF00, _mm512_set1_epi32(2 * k), _mm512_set1_epi32(2 * k + 1));
        u->sc[k] = _mm512_permutexvar_epi32(sel, s32);
    }
    u->d = _cvtsh_ss(b->d);
}

/* the scaled sums of one super-block against x (values + 128), as 16 int32 partial sums */
INLINE __m512i iq4_isum(const struct iq4_unpacked *u, const struct q8_k_block *x)
{
    __m512i s = _mm512_setzero_si512();
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
        __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u->v[k], _mm512_loadu_si512((const void *)(x->qs + 64 * k)));
        s = _mm512_add_epi32(s, _mm512_mullo_epi32(p, u->sc[k]));
    }
    return s;
}

INLINE float iq4_step(const struct iq4_unpacked *u, const struct q8_k_block *x, float acc)
{
    __m512i s = iq4_isum(u, x);
    __m256i off = _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)x->bsums), u->s16);
    return kq_q6_k_accum(acc, u->d, x->d, kq_hsum512(s) - 128 * kq_hsum256(off));
}

/* rows r0 .. g->r1 - 1, one at a time */
static TARGET void iq4_rows_from(const struct kern_range *g, int r0)
{
    int nb = g->in / QK_K;
    for (int r = r0; r < g->r1; r++) {
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

/* rows r .. r + 15 (kq_rows16.h): the +128 offset comes off lane by lane, then kq_q6_k_accum's
 * float step on 16 lanes */
static TARGET void iq4_group(const struct kern_range *g, int r, int t0, int nt)
{
    int nb = g->in / QK_K;
    struct rows16 c;
    __m512 acc[ROWS16_TOKENS];
    for (int t = 0; t < nt; t++) acc[t] = _mm512_setzero_ps();
    for (int b = 0; b < nb; b++) {
        for (int i = 0; i < R16_ROWS; i++) {
            const char *row = g->w + (size_t)(r + i) * g->w_stride;
            prefetch_ahead(g, r + i, b, sizeof(struct iq4_xs_block), nb);
            const struct iq4_xs_block *w = (const struct iq4_xs_block *)row + b;
            struct iq4_unpacked u;
            iq4_unpack(w, &u);
            c.d[i] = w->d;
            rows16_keep_pair(&c, i, u.s16);
            for (int t = 0; t < nt; t++) c.s[t][i] = iq4_isum(&u, kq_act_row(g, t0 + t) + b);
        }
        __m512 d = f16x16(c.d);
        for (int t = 0; t < nt; t++) {
            const struct q8_k_block *x = kq_act_row(g, t0 + t) + b;
            acc[t] = rows16_offset_accum(acc[t], &c, t, d, x->d, x->bsums, 7); /* the +128 offset */
        }
    }
    rows16_store(g, r, t0, nt, acc);
}

TARGET void fmt_iq4_xs_range_avx512(const struct kern_range *g) { range_by_rows16(g, iq4_group, iq4_rows_from); }
