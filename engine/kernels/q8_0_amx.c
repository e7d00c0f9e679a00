/* Q8_0 weights x Q8_0 activations on AMX-INT8 tiles (Sapphire Rapids and later Xeons).
 *
 * For each Q8_0 block b, one TDPBSSD gives the exact int32 dot S of the block's 32 weight bytes
 * with the 32 activation bytes, for 16 weight rows x 16 tokens at once: the A tile is 16 weight
 * rows read in place (32 bytes of qs each, the row stride of the tensor), the B tile the
 * block's bytes of 16 tokens packed four by four (pack_tokens). Every (row, token)
 * sum is then built exactly as the portable q8_0_dot builds it:
 *     sum = sum + (float)S * (wd * xd)      (block by block, from 0, no fused multiply-add)
 * so this path gives the portable path's bits, for any batch and any tiling.
 *
 * Three ways, by the number of tokens T meeting each weight row (all with the same operations
 * on each (row, token)): T > 4, the tile unit, then one vector per weight row with the tokens in
 * its lanes; 2 < T <= 4, the tile unit with a C of T columns, then one vector per token with
 * the rows in its lanes; T <= 2 (decode, and most experts of a decode step), no tiles: AVX-512
 * VNNI sums, added up exactly in integers (tokens_by_rows_vnni), because the tile unit's fixed
 * cost per block made single-stream decode slower than the AVX-512 kernel. Against that kernel
 * on a Xeon with AMX: docs/BENCHMARKS.md. */
#include "engine/kernels/q8_0.h"

#include <immintrin.h>
#include <string.h>

#define TARGET __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")))
#define INLINE static inline __attribute__((always_inline)) TARGET

/* The B tiles of one group of up to 16 tokens for every block of a row, with the tokens'
 * scales (zero past the last token). A task's scratch holds in / 32 of them (64-byte aligned). */
struct amx_pack {
    _Alignas(64) int8_t b[Q8_0_BLOCK / 4][64]; /* row i: bytes 4i..4i+3 of tokens 0..15 */
    float d[16];
};

size_t q8_0_amx_scratch_bytes(int in)
{
    return (size_t)(in / Q8_0_BLOCK) * sizeof(struct amx_pack);
}

/* The TILECFG memory layout (palette 1). */
struct tile_config {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

/* Tiles: C (16 x 16 int32), A (16 rows x 32 bytes), B (8 rows x 64 bytes), twice, so the
 * tile unit can work on one block while the scales of the previous one are applied. (The tile
 * intrinsics paste their tile numbers into assembly: literal numbers only.) */
#define TILE_C0 0
#define TILE_A0 1
#define TILE_B0 2
#define TILE_C1 3
#define TILE_A1 4
#define TILE_B1 5

/* Up to this many tokens, scales are applied with rows in the vector lanes. */
#define FEW_TOKENS 4

/* Tiles for n token columns (1..16): C is 16 x n int32, B 8 rows x n dwords. */
static TARGET void configure_tiles(int n)
{
    struct tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int set = 0; set < 2; set++) {
        cfg.rows[TILE_C0 + 3 * set] = 16, cfg.colsb[TILE_C0 + 3 * set] = (uint16_t)(4 * n);
        cfg.rows[TILE_A0 + 3 * set] = 16, cfg.colsb[TILE_A0 + 3 * set] = Q8_0_BLOCK;
        cfg.rows[TILE_B0 + 3 * set] = Q8_0_BLOCK / 4, cfg.colsb[TILE_B0 + 3 * set] = (uint16_t)(4 * n);
    }
    _tile_loadconfig(&cfg);
}

/* Every task packs its token group again (one per row block); gathers keep that to 9 per
 * block: row i of B is dword i of each token's block, d the tokens' scales (0 past T). */
static TARGET void pack_tokens(const struct q8_act_block *x, int nb, int T, struct amx_pack *pk)
{
    const __m512i tok = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32(nb * (int)sizeof(struct q8_act_block)));
    const __mmask16 m = T >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << T) - 1);
    for (int b = 0; b < nb; b++) {
        const char *base = (const char *)(x + b);
        for (int i = 0; i < Q8_0_BLOCK / 4; i++)
            _mm512_store_si512(pk[b].b[i], _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, tok,
                                                                       base + offsetof(struct q8_act_block, qs) + 4 * i, 1));
        _mm512_store_ps(pk[b].d, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, tok, base + offsetof(struct q8_act_block, d), 1));
    }
}

/* S of block b for 16 rows (read from `rows` with stride `stride`) x n tokens into c ([16][n]
 * int32), on the tile set C, A, B */
#define BLOCK_DOT(C, A, B, rows, stride, pkb, c, n)                                               \
    do {                                                                                          \
        _tile_loadd(A, (rows), (stride));                                                         \
        _tile_loadd(B, (pkb)->b, 64);                                                             \
        _tile_zero(C);                                                                            \
        _tile_dpbssd(C, A, B);                                                                    \
        _tile_stored(C, (c), 4 * (n));                                                            \
    } while (0)

/* The 16 rows' weight scales of block b as floats (rows >= R: 0). */
INLINE __m512 row_scales(const char *w, size_t wb, int b, int R)
{
    const __m512i offs = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                            _mm512_set1_epi32((int)wb));
    __mmask16 m = R >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << R) - 1);
    /* 4 bytes from each block start: d and two bytes of qs, all inside the block */
    __m512i raw = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, offs,
                                              w + (size_t)b * sizeof(struct q8_0_block), 1);
    return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(raw));
}

/* The 16 rows' bytes PREFETCH_BLOCKS blocks ahead, into L1: the tile load of a block waits for
 * all 16 rows, so they should be there already. */
#define PREFETCH_BLOCKS 8
INLINE void prefetch_rows(const char *w, size_t wb, int b, int nb, int R)
{
    if (b + PREFETCH_BLOCKS >= nb) return;
    const char *p = w + (size_t)(b + PREFETCH_BLOCKS) * sizeof(struct q8_0_block);
    for (int r = 0; r < R; r++) _mm_prefetch(p + (size_t)r * wb, _MM_HINT_T0);
}

/* The next group of 16 rows, streamed into L2 in address order while this group is worked on
 * (its share for block b of nb), so memory sees one sequential stream, not 16 interleaved ones. */
INLINE void prefetch_next_group(const char *next, size_t wb, int b, int nb)
{
    if (!next) return;
    size_t bytes = 16 * wb, lo = bytes * (size_t)b / (size_t)nb, hi = bytes * (size_t)(b + 1) / (size_t)nb;
    for (size_t o = lo & ~(size_t)63; o < hi; o += 64) _mm_prefetch(next + o, _MM_HINT_T1);
}

/* The same for the next 8 rows. */
INLINE void prefetch_next_group8(const char *next, size_t wb, int b, int nb)
{
    if (!next) return;
    size_t bytes = 8 * wb, lo = bytes * (size_t)b / (size_t)nb, hi = bytes * (size_t)(b + 2 < nb ? b + 2 : nb) / (size_t)nb;
    for (size_t o = lo & ~(size_t)63; o < hi; o += 64) _mm_prefetch(next + o, _MM_HINT_T1);
}

/* Where A comes from for block b: the rows in place, or, for fewer than 16 rows, a zero-padded
 * copy (a tile load always reads 16 rows). */
INLINE const int8_t *a_rows(const char *w, size_t wb, int b, int R, int8_t (*pad)[Q8_0_BLOCK], size_t *stride)
{
    const char *first = w + (size_t)b * sizeof(struct q8_0_block) + offsetof(struct q8_0_block, qs);
    if (R == 16) {
        *stride = wb;
        return (const int8_t *)first;
    }
    for (int r = 0; r < R; r++) memcpy(pad[r], first + (size_t)r * wb, Q8_0_BLOCK);
    *stride = Q8_0_BLOCK;
    return &pad[0][0];
}

/* Block b's sums into c[b & 1] (tile set b & 1), with the prefetches that go with it. */
INLINE void dot_block(const char *w, const char *next, size_t wb, int b, int nb, int R, int8_t (*pad)[Q8_0_BLOCK],
                      const struct amx_pack *pk, int32_t (*c)[256], int n)
{
    size_t stride;
    prefetch_rows(w, wb, b, nb, R);
    prefetch_next_group(next, wb, b, nb);
    const int8_t *a = a_rows(w, wb, b, R, pad, &stride);
    if (b & 1) BLOCK_DOT(TILE_C1, TILE_A1, TILE_B1, a, stride, &pk[b], c[1], n);
    else BLOCK_DOT(TILE_C0, TILE_A0, TILE_B0, a, stride, &pk[b], c[0], n);
}

/* 16 rows (R valid) x T tokens, T > FEW_TOKENS: acc[r] holds row r's sums, tokens in lanes. */
static TARGET void rows_by_tokens(const char *w, const char *next, size_t wb, int nb, int R,
                                  const struct amx_pack *pk, int T, float *y, size_t ldy)
{
    const int N = 16;
    __m512 acc[16];
    for (int r = 0; r < 16; r++) acc[r] = _mm512_setzero_ps();
    int32_t c[2][256] __attribute__((aligned(64)));
    int8_t pad[16][Q8_0_BLOCK] __attribute__((aligned(64)));
    if (R < 16) memset(pad, 0, sizeof pad);
    /* the tile unit runs one block ahead of the scaling */
    dot_block(w, next, wb, 0, nb, R, pad, pk, c, N);
    for (int b = 0; b < nb; b++) {
        int set = b & 1;
        if (b + 1 < nb) dot_block(w, next, wb, b + 1, nb, R, pad, pk, c, N);
        __m512 wd = row_scales(w, wb, b, R), xd = _mm512_load_ps(pk[b].d);
#pragma GCC unroll 16
        for (int r = 0; r < 16; r++) {
            __m512 s = _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_set1_epi32(r), wd), xd);
            __m512 p = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_load_si512(&c[set][16 * r])), s);
            acc[r] = _mm512_add_ps(acc[r], p);
        }
    }
    for (int r = 0; r < R; r++) {
        float v[16];
        _mm512_storeu_ps(v, acc[r]);
        for (int t = 0; t < T; t++) y[(size_t)t * ldy + r] = v[t];
    }
}

/* 16 rows (R valid) x VNNI_TOKENS < T <= FEW_TOKENS tokens: acc[t] holds token t's sums, rows
 * in lanes. */
static TARGET void tokens_by_rows(const char *w, const char *next, size_t wb, int nb, int R,
                                  const struct amx_pack *pk, int T, float *y, size_t ldy)
{
    __m512 acc[FEW_TOKENS];
    for (int t = 0; t < FEW_TOKENS; t++) acc[t] = _mm512_setzero_ps();
    int32_t c[2][256] __attribute__((aligned(64)));
    int8_t pad[16][Q8_0_BLOCK] __attribute__((aligned(64)));
    if (R < 16) memset(pad, 0, sizeof pad);
    const int N = T; /* C is [16][T]: column t at r * T + t */
    const __m512i column = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                              _mm512_set1_epi32(T));
    /* the tile unit runs one block ahead of the scaling */
    dot_block(w, next, wb, 0, nb, R, pad, pk, c, N);
    for (int b = 0; b < nb; b++) {
        int set = b & 1;
        if (b + 1 < nb) dot_block(w, next, wb, b + 1, nb, R, pad, pk, c, N);
        __m512 wd = row_scales(w, wb, b, R);
        for (int t = 0; t < T; t++) {
            __m512 s = _mm512_mul_ps(wd, _mm512_set1_ps(pk[b].d[t]));
            __m512i sums = _mm512_i32gather_epi32(column, &c[set][t], 4);
            acc[t] = _mm512_add_ps(acc[t], _mm512_mul_ps(_mm512_cvtepi32_ps(sums), s));
        }
    }
    __mmask16 m = R >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << R) - 1);
    for (int t = 0; t < T; t++) _mm512_mask_storeu_ps(y + (size_t)t * ldy, m, acc[t]);
}

/* ---- One or two tokens: AVX-512 VNNI, with the same exact block sums. The tile unit's fixed
 * cost per block (a 16-row tile load, C stored and read back) shows when a weight row meets only
 * a token or two; here each row's two blocks b, b+1 go through one VPDPBUSD per token (the
 * activations offset by 128 to be unsigned, the lane started at -128 x the sum of its four
 * weights, so it ends at exactly sum(w * x)), and 8 rows' lanes are added up in integers and
 * transposed, so lane r holds row r's sum of block b and lane 8 + r that of block b + 1. Groups
 * of 8 rows, not 16: fewer interleaved streams from memory (measured: decode at 16 sequences 3%
 * faster, one sequence 5%). */
#define VNNI_TOKENS 2

INLINE __m512i load_pair(const int8_t *lo, const int8_t *hi)
{
    __m256i h = hi ? _mm256_loadu_si256((const __m256i *)hi) : _mm256_setzero_si256();
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)lo)), h, 1);
}

/* v[r]: row r's 16 lanes, 4 per 128-bit lane, lanes 0-7 from block b, 8-15 from block b + 1.
 * Returns lanes 0-7 = rows 0-7's sums of block b, lanes 8-15 = their sums of block b + 1.
 * Integer adds: exact in any order. */
INLINE __m512i transpose_block_sums(const __m512i v[8])
{
    __m512i u[4];
    for (int k = 0; k < 4; k++)
        u[k] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * k], v[2 * k + 1]), _mm512_unpackhi_epi32(v[2 * k], v[2 * k + 1]));
    /* in each 128-bit lane q: the sums of that lane's four values, rows 0-3 (w0) and 4-7 (w1) */
    __m512i w0 = _mm512_add_epi32(_mm512_unpacklo_epi64(u[0], u[1]), _mm512_unpackhi_epi64(u[0], u[1]));
    __m512i w1 = _mm512_add_epi32(_mm512_unpacklo_epi64(u[2], u[3]), _mm512_unpackhi_epi64(u[2], u[3]));
    /* [rows 0-3 block b, rows 0-3 block b + 1, rows 4-7 block b, rows 4-7 block b + 1] */
    __m512i s = _mm512_add_epi32(_mm512_shuffle_i32x4(w0, w1, 0x88), _mm512_shuffle_i32x4(w0, w1, 0xdd));
    return _mm512_permutexvar_epi32(_mm512_setr_epi32(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15), s);
}

/* 8 rows (R valid) x T <= VNNI_TOKENS tokens (x: T rows of nb blocks); `next`: the next 8 rows. */
static TARGET void tokens_by_rows_vnni(const char *w, const char *next, size_t wb, int nb, int R,
                                       const struct q8_act_block *x, int T, float *y, size_t ldy)
{
    const __m512i zero = _mm512_setzero_si512(), k80 = _mm512_set1_epi8((char)0x80);
    /* row r's scale of block b in lane r, of block b + 1 in lane 8 + r */
    const __m512i offs = _mm512_add_epi32(
        _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7), _mm512_set1_epi32((int)wb)),
        _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 34, 34, 34, 34, 34, 34, 34, 34));
    __m256 acc[VNNI_TOKENS];
    for (int t = 0; t < VNNI_TOKENS; t++) acc[t] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b += 2) {
        int both = b + 1 < nb;
        prefetch_next_group8(next, wb, b, nb);
        __mmask16 m = (__mmask16)(((1u << R) - 1) | (both ? ((1u << R) - 1) << 8 : 0));
        __m512i raw = _mm512_mask_i32gather_epi32(zero, m, offs, w + (size_t)b * sizeof(struct q8_0_block), 1);
        __m512 wd = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(raw));
        for (int t = 0; t < T; t++) {
            const struct q8_act_block *xb = x + (size_t)t * nb + b;
            __m512i xu = _mm512_xor_si512(load_pair(xb[0].qs, both ? xb[1].qs : NULL), k80);
            __m512i v[8];
#pragma GCC unroll 8
            for (int r = 0; r < 8; r++) {
                if (r >= R) {
                    v[r] = zero;
                    continue;
                }
                const struct q8_0_block *blk = (const struct q8_0_block *)(w + (size_t)r * wb) + b;
                __m512i wq = load_pair(blk[0].qs, both ? blk[1].qs : NULL);
                __m512i corr = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, k80, wq));
                v[r] = _mm512_dpbusd_epi32(corr, xu, wq);
            }
            __m512 xd = _mm512_insertf32x8(_mm512_set1_ps(xb[0].d), _mm256_set1_ps(both ? xb[1].d : 0.0f), 1);
            __m512 p = _mm512_mul_ps(_mm512_cvtepi32_ps(transpose_block_sums(v)), _mm512_mul_ps(wd, xd));
            acc[t] = _mm256_add_ps(acc[t], _mm512_castps512_ps256(p));
            if (both) acc[t] = _mm256_add_ps(acc[t], _mm512_extractf32x8_ps(p, 1));
        }
    }
    __mmask8 m = (__mmask8)((1u << R) - 1);
    for (int t = 0; t < T; t++) _mm256_mask_storeu_ps(y + (size_t)t * ldy, m, acc[t]);
}

TARGET void q8_0_range_amx(const struct kern_range *g)
{
    size_t wb = g->w_stride, ldx = g->xa_stride / sizeof(struct q8_act_block);
    const struct q8_act_block *xq = g->xa;
    struct amx_pack *pk = g->scratch;
    int nb = g->in / Q8_0_BLOCK;
    int configured = 0; /* token columns of the current tile configuration */
    for (int t = g->t0; t < g->t1; t += 16) {
        int T = g->t1 - t < 16 ? g->t1 - t : 16, n = T > FEW_TOKENS ? 16 : T;
        if (T <= VNNI_TOKENS) {
            for (int r = g->r0; r < g->r1; r += 8) {
                const char *rows = g->w + (size_t)r * wb;
                tokens_by_rows_vnni(rows, r + 16 <= g->r1 ? rows + 8 * wb : NULL, wb, nb, g->r1 - r < 8 ? g->r1 - r : 8,
                                    xq + (size_t)t * ldx, T, g->y + (size_t)t * g->ldy + r, (size_t)g->ldy);
            }
            continue;
        }
        if (n != configured) configure_tiles(configured = n);
        pack_tokens(xq + (size_t)t * ldx, nb, T, pk);
        for (int r = g->r0; r < g->r1; r += 16) {
            int R = g->r1 - r < 16 ? g->r1 - r : 16;
            const char *rows = g->w + (size_t)r * wb;
            float *y = g->y + (size_t)t * g->ldy + r;
            /* the next group is prefetched only while the first token group streams the rows */
            const char *next = t == g->t0 && r + 32 <= g->r1 ? rows + 16 * wb : NULL;
            if (T > FEW_TOKENS) rows_by_tokens(rows, next, wb, nb, R, pk, T, y, (size_t)g->ldy);
            else tokens_by_rows(rows, next, wb, nb, R, pk, T, y, (size_t)g->ldy);
        }
    }
    if (configured) _tile_release();
}
