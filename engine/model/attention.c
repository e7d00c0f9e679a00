/* The attention block: q/k/v projections, QK-norm, RoPE, K/V written to the paged cache, causal
 * grouped-query attention over each token's sequence, and the output projection. */
#include "engine/model/attention.h"

#include <math.h>
#include <string.h>

#include "engine/kernels/fp16.h"
#include "engine/kernels/ops.h"

struct attn_job {
    const struct model *m;
    struct model_scratch *s;
    const struct kv_cache *kv;
    const struct fwd_batch *b;
    struct threadpool *tp;
    int layer;
    enum kern_isa isa;
};

/* Rows [slot, slot + n) of head `kvh` in K or V storage as float32, `*ld` floats apart: in
 * place for F32, else converted into buf [n, hd]. */
static const float *kv_rows(const struct kv_cache *kv, const void *base, int slot, int n, int kvh, float *buf,
                            size_t *ld)
{
    size_t off = (size_t)slot * kv->row_elems + (size_t)kvh * kv->head_dim;
    if (kv->dtype == TENSOR_DTYPE_F32) {
        *ld = kv->row_elems;
        return (const float *)base + off;
    }
    for (int r = 0; r < n; r++) {
        const uint16_t *src = (const uint16_t *)base + off + (size_t)r * kv->row_elems;
        float *dst = buf + (size_t)r * kv->head_dim;
        for (int i = 0; i < kv->head_dim; i++)
            dst[i] = kv->dtype == TENSOR_DTYPE_BF16 ? bf16_to_f32(src[i]) : f16_to_f32(src[i]);
    }
    *ld = (size_t)kv->head_dim;
    return buf;
}

/* Rows of the run starting at position p0 of n: to the end of p0's block, at most
 * KV_CHUNK_ROWS. A function of the positions alone, so every token sees the same runs. */
static int chunk_rows(int p0, int n, int bs)
{
    int rows = bs - p0 % bs;
    if (rows > KV_CHUNK_ROWS) rows = KV_CHUNK_ROWS;
    return n - p0 < rows ? n - p0 : rows;
}

/* One (token, KV head): causal softmax attention of the G query heads that share the KV head
 * over positions 0..pos of the token's sequence, a cache block at a time through its block
 * table. Each K and V row is read once for the G heads; each head's result is computed as if
 * alone. */
static void attn_task(void *p, int task, int thread)
{
    const struct attn_job *j = p;
    const struct model_config *c = &j->m->cfg;
    const struct kv_cache *kv = j->kv;
    int G = c->num_heads / c->num_kv_heads, t = task / c->num_kv_heads, kvh = task % c->num_kv_heads;
    int hd = c->head_dim, bs = kv->block_size, pos = j->b->positions[t], n = pos + 1;
    const int32_t *table = j->b->block_tables[j->b->seq_of[t]];
    const float *q = j->s->q + ((size_t)t * c->num_heads + (size_t)kvh * G) * hd; /* [G, hd] */
    float *scores = tp_scratch(j->tp, thread); /* [G, n] */
    float *buf = scores + (size_t)G * n;       /* [KV_CHUNK_ROWS, hd] */
    float scale = 1.0f / sqrtf((float)hd);
    size_t ld;
    for (int p0 = 0, rows; p0 < n; p0 += rows) {
        rows = chunk_rows(p0, n, bs);
        const float *k = kv_rows(kv, kv->k[j->layer], table[p0 / bs] * bs + p0 % bs, rows, kvh, buf, &ld);
        kern_gqa_scores(j->isa, q, G, hd, k, ld, rows, scale, scores + p0, n);
    }
    for (int g = 0; g < G; g++) kern_softmax_isa(j->isa, scores + (size_t)g * n, n);
    float *out = j->s->attn + ((size_t)t * c->num_heads + (size_t)kvh * G) * hd;
    memset(out, 0, (size_t)G * hd * sizeof *out);
    for (int p0 = 0, rows; p0 < n; p0 += rows) {
        rows = chunk_rows(p0, n, bs);
        const float *v = kv_rows(kv, kv->v[j->layer], table[p0 / bs] * bs + p0 % bs, rows, kvh, buf, &ld);
        kern_gqa_acc(j->isa, out, G, hd, v, ld, rows, scores + p0, n);
    }
}

void attention_block(const struct model *m, struct model_scratch *s, struct kv_cache *kv, struct threadpool *tp,
                     const struct fwd_batch *b, int l)
{
    const struct model_config *c = &m->cfg;
    const struct layer_weights *L = &m->weights->layers[l];
    int n = b->n_tokens, hd = c->head_dim, qd = c->num_heads * hd, kvd = c->num_kv_heads * hd, half = hd / 2;
    struct act_input a = fwd_prepare_input(m, s, tp, &L->q, s->xn, n);
    s->mm[0] = fwd_mm_rows(&L->q, a, 0, n, s->q, qd);
    s->mm[1] = fwd_mm_rows(&L->k, a, 0, n, s->k, kvd);
    s->mm[2] = fwd_mm_rows(&L->v, a, 0, n, s->v, kvd);
    fwd_run_matmuls(s, tp, 3);
    fwd_prof_end(s, MODEL_PHASE_QKV);
    float eps = (float)c->rms_norm_eps;
    for (int t = 0; t < n; t++) {
        const float *cs = s->cos_t + (size_t)t * half, *sn = s->sin_t + (size_t)t * half;
        for (int h = 0; h < c->num_heads; h++) {
            float *qh = s->q + (size_t)t * qd + (size_t)h * hd;
            kern_rmsnorm(qh, qh, m->norms[l].q, hd, eps);
            kern_rope(qh, hd, cs, sn);
        }
        for (int h = 0; h < c->num_kv_heads; h++) {
            float *kh = s->k + (size_t)t * kvd + (size_t)h * hd;
            kern_rmsnorm(kh, kh, m->norms[l].k, hd, eps);
            kern_rope(kh, hd, cs, sn);
        }
        kv_cache_write(kv, l, b->slots[t], s->k + (size_t)t * kvd, s->v + (size_t)t * kvd);
    }
    fwd_prof_end(s, MODEL_PHASE_QK_ROPE);
    struct attn_job job = {m, s, kv, b, tp, l, kern_isa_best()};
    tp_run(tp, n * c->num_kv_heads, attn_task, &job);
    fwd_prof_end(s, MODEL_PHASE_ATTENTION);
    fwd_matmul(m, s, tp, &L->o, s->attn, n, s->tmp, c->hidden_size);
    fwd_prof_end(s, MODEL_PHASE_O_PROJ);
}

