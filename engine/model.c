#include "engine/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kernels.h"
#include "engine/kv_cache.h"
#include "engine/quant.h"

/* Attention reads the cache in runs of at most this many rows (within one block), converted
 * to float32 in per-thread scratch when stored as 16-bit. */
#define KV_CHUNK_ROWS 64

/* ---------------------------------------------------------------------------------------------
 * Loading */

static float *tensor_copy_f32(const struct tensor *t)
{
    int64_t n = tensor_numel(t);
    float *out = malloc((size_t)n * sizeof *out);
    if (out) tensor_to_f32(t, 0, n, out);
    return out;
}

/* RoPE inverse frequencies; yarn blends interpolated and original frequencies per dimension. */
static void rope_init(struct model *m)
{
    const struct model_config *c = &m->cfg;
    int half = c->head_dim / 2;
    m->rope_scale = 1.0f;
    for (int i = 0; i < half; i++) m->inv_freq[i] = (float)(1.0 / pow(c->rope_theta, 2.0 * i / c->head_dim));
    if (c->rope_scaling.type != ROPE_SCALING_YARN) return;
    double dim = c->head_dim, base = c->rope_theta, factor = c->rope_scaling.factor;
    double orig = c->rope_scaling.original_max_position_embeddings;
#define CORRECTION_DIM(rot) (dim * log(orig / ((rot) * 2 * M_PI)) / (2 * log(base)))
    double low = CORRECTION_DIM(c->rope_scaling.beta_fast), high = CORRECTION_DIM(c->rope_scaling.beta_slow);
#undef CORRECTION_DIM
    if (c->rope_scaling.truncate) {
        low = floor(low);
        high = ceil(high);
    }
    low = low > 0 ? low : 0;
    high = high < dim - 1 ? high : dim - 1;
    if (low == high) high += 0.001;
    for (int i = 0; i < half; i++) {
        double ramp = (i - low) / (high - low);
        ramp = ramp < 0 ? 0 : ramp > 1 ? 1 : ramp;
        double extrapolation = 1.0 - ramp; /* share of the original frequency */
        double f = m->inv_freq[i];
        m->inv_freq[i] = (float)(f / factor * (1 - extrapolation) + f * extrapolation);
    }
    m->rope_scale = (float)c->rope_scaling.attention_factor;
}

static int copy_norms(struct model *m, struct ms_err *err)
{
    const struct model_config *c = &m->cfg;
    m->norms = ms_calloc((size_t)c->num_layers, sizeof *m->norms);
    if (!m->norms) return ms_err_set(err, MS_ERR_NOMEM, "out of memory");
    for (int l = 0; l < c->num_layers; l++) {
        const struct layer_weights *L = &m->weights->layers[l];
        struct layer_norms *n = &m->norms[l];
        n->attn = tensor_copy_f32(&L->attn_norm);
        n->ffn = tensor_copy_f32(&L->ffn_norm);
        n->q = tensor_copy_f32(&L->q_norm);
        n->k = tensor_copy_f32(&L->k_norm);
        if (!n->attn || !n->ffn || !n->q || !n->k) return ms_err_set(err, MS_ERR_NOMEM, "out of memory");
    }
    m->final_norm = tensor_copy_f32(&m->weights->final_norm);
    m->inv_freq = malloc((size_t)(c->head_dim / 2) * sizeof *m->inv_freq);
    if (!m->final_norm || !m->inv_freq) return ms_err_set(err, MS_ERR_NOMEM, "out of memory");
    return MS_OK;
}

int model_load(const char *model_dir, bool show_progress, struct model **out, struct ms_err *err)
{
    struct model_load_opts o = {.show_progress = show_progress};
    return model_load_with_opts(model_dir, &o, out, err);
}

bool model_is_quantized(const struct model *m)
{
    return m->weights->quant_bytes > 0;
}

int model_load_with_opts(const char *model_dir, const struct model_load_opts *o, struct model **out,
                         struct ms_err *err)
{
    *out = NULL;
    struct model *m = calloc(1, sizeof *m);
    if (!m) return ms_err_set(err, MS_ERR_NOMEM, "out of memory");
    int rc = model_config_load(&m->cfg, model_dir, err);
    if (!rc) rc = weights_load(&m->cfg, model_dir, &m->weights, err);
    /* quantizing reads every matmul weight once, with its own progress, and lets each go */
    if (!rc && o->quantize_q8_0)
        rc = weights_quantize(m->weights, TENSOR_DTYPE_Q8_0, o->threads > 0 ? o->threads : 1, o->show_progress, err);
    else if (!rc)
        weights_page_in(m->weights, o->show_progress);
    if (!rc) rc = copy_norms(m, err);
    if (rc) {
        model_free(m);
        return rc;
    }
    rope_init(m);
    m->bf16_activations = o->bf16_activations && kern_has_dpbf16();
    *out = m;
    return MS_OK;
}

void model_free(struct model *m)
{
    if (!m) return;
    for (int l = 0; m->norms && l < m->cfg.num_layers; l++) {
        free(m->norms[l].attn);
        free(m->norms[l].ffn);
        free(m->norms[l].q);
        free(m->norms[l].k);
    }
    free(m->norms);
    free(m->final_norm);
    free(m->inv_freq);
    weights_free(m->weights);
    free(m);
}

/* ---------------------------------------------------------------------------------------------
 * Scratch for one forward, allocated up front. */

struct model_scratch {
    int max_tokens;
    float *x;      /* [max_tokens, hidden] residual stream */
    float *xn;     /* [max_tokens, hidden] normed input of a block */
    float *tmp;    /* [max_tokens, hidden] block output */
    float *q;      /* [max_tokens, heads * head_dim] */
    float *k, *v;  /* [max_tokens, kv_heads * head_dim] */
    float *attn;   /* [max_tokens, heads * head_dim] */
    float *cos_t, *sin_t;  /* [max_tokens, head_dim / 2] */
    float *router;         /* [max_tokens, experts] */
    int *topk_expert;      /* [max_tokens, top_k] */
    float *topk_weight;    /* [max_tokens, top_k] */
    int *expert_count, *expert_offset; /* [experts + 1] */
    int *slot_of;          /* [max_tokens, top_k]: (token, j) -> row in the grouped buffers */
    float *grouped_x;      /* [max_tokens * top_k, hidden] tokens gathered by expert */
    float *gate, *up;      /* [max_tokens * top_k, max(moe_inter, inter)] */
    float *grouped_out;    /* [max_tokens * top_k, hidden] */
    void *act;             /* a matmul input quantized to Q8_0 or rounded to bf16 (prepare_input) */
    void *act_tok;         /* Q8_0 experts: the tokens' normed rows quantized once, before grouping */
    struct kern_mm *mm;    /* [2 * experts + 3] matmuls handed to one kern_matmul_many */
    const struct expert_weights **active; /* [experts] the experts with tokens in this layer */
    int *active_off, *active_n;           /* [experts] their first grouped row and row count */
    struct model_profile prof;
    double prof_mark;      /* when the phase now running began */
};

const char *model_phase_name(enum model_phase phase)
{
    static const char *const names[MODEL_PHASE_COUNT] = {
        "embed", "norm_residual", "quantize_activations", "qkv_proj", "qk_norm_rope_kv_write", "attention",
        "o_proj", "router_topk", "moe_grouping", "experts_gate_up", "swiglu", "experts_down", "moe_combine",
        "lm_head"};
    return phase < MODEL_PHASE_COUNT ? names[phase] : "?";
}

const struct model_profile *model_scratch_profile(const struct model_scratch *s)
{
    return &s->prof;
}

/* Charges the time since the last mark to `phase`. */
static void prof_end(struct model_scratch *s, enum model_phase phase)
{
    double now = ms_now();
    s->prof.seconds[phase] += now - s->prof_mark;
    s->prof_mark = now;
}

size_t model_scratch_floats(const struct model *m, int max_ctx)
{
    const struct model_config *c = &m->cfg;
    size_t widest = (size_t)c->hidden_size;
    if ((size_t)c->num_heads * c->head_dim > widest) widest = (size_t)c->num_heads * c->head_dim;
    if ((size_t)c->intermediate_size > widest) widest = (size_t)c->intermediate_size;
    if ((size_t)c->moe_intermediate_size > widest) widest = (size_t)c->moe_intermediate_size;
    size_t need = kern_scratch_floats((int)widest);
    /* attention: scores of one KV head's query heads, and one cache block of K or V rows */
    size_t attn = (size_t)(c->num_heads / c->num_kv_heads) * (size_t)max_ctx +
                  (size_t)KV_CHUNK_ROWS * (size_t)c->head_dim;
    return need > attn ? need : attn;
}

void model_scratch_destroy(struct model_scratch *s)
{
    if (!s) return;
    void *bufs[] = {s->x, s->xn, s->tmp, s->q, s->k, s->v, s->attn, s->cos_t, s->sin_t, s->router,
                    s->topk_expert, s->topk_weight, s->expert_count, s->expert_offset, s->slot_of,
                    s->grouped_x, s->gate, s->up, s->grouped_out, s->act, s->act_tok, s->mm, s->active,
                    s->active_off, s->active_n};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(s);
}

struct model_scratch *model_scratch_create(const struct model *m, int max_tokens, struct ms_err *err)
{
    const struct model_config *c = &m->cfg;
    struct model_scratch *s = calloc(1, sizeof *s);
    if (!s) goto nomem;
    s->max_tokens = max_tokens;
    size_t T = (size_t)max_tokens, h = (size_t)c->hidden_size, qd = (size_t)c->num_heads * c->head_dim;
    size_t kvd = (size_t)c->num_kv_heads * c->head_dim, E = (size_t)(c->num_experts ? c->num_experts : 1);
    size_t K = (size_t)(c->num_experts_per_tok ? c->num_experts_per_tok : 1);
    size_t inter = (size_t)(c->moe_intermediate_size > c->intermediate_size ? c->moe_intermediate_size
                                                                             : c->intermediate_size);
    /* dense layers run through the same gate/up buffers with K = 1 */
    size_t rows = T * K;
    if (!(s->x = ms_calloc(T * h, sizeof(float))) || !(s->xn = ms_calloc(T * h, sizeof(float))) ||
        !(s->tmp = ms_calloc(T * h, sizeof(float))) || !(s->q = ms_calloc(T * qd, sizeof(float))) ||
        !(s->k = ms_calloc(T * kvd, sizeof(float))) || !(s->v = ms_calloc(T * kvd, sizeof(float))) ||
        !(s->attn = ms_calloc(T * qd, sizeof(float))) ||
        !(s->cos_t = ms_calloc(T * (size_t)c->head_dim / 2, sizeof(float))) ||
        !(s->sin_t = ms_calloc(T * (size_t)c->head_dim / 2, sizeof(float))) ||
        !(s->router = ms_calloc(T * E, sizeof(float))) || !(s->topk_expert = ms_calloc(T * K, sizeof(int))) ||
        !(s->topk_weight = ms_calloc(T * K, sizeof(float))) ||
        !(s->expert_count = ms_calloc(E + 1, sizeof(int))) || !(s->expert_offset = ms_calloc(E + 1, sizeof(int))) ||
        !(s->slot_of = ms_calloc(T * K, sizeof(int))) || !(s->grouped_x = ms_calloc(rows * h, sizeof(float))) ||
        !(s->gate = ms_calloc(rows * inter, sizeof(float))) || !(s->up = ms_calloc(rows * inter, sizeof(float))) ||
        !(s->grouped_out = ms_calloc(rows * h, sizeof(float))) || !(s->mm = ms_calloc(2 * E + 3, sizeof *s->mm)) ||
        !(s->active = ms_calloc(E, sizeof *s->active)) || !(s->active_off = ms_calloc(E, sizeof(int))) ||
        !(s->active_n = ms_calloc(E, sizeof(int))))
        goto nomem;
    size_t widest = h > qd ? h : qd;
    widest = widest > inter ? widest : inter;
    size_t act = model_is_quantized(m) ? kern_act_q8_bytes((int)rows, (int)widest) : 0;
    if (m->bf16_activations && rows * widest * sizeof(uint16_t) > act) act = rows * widest * sizeof(uint16_t);
    if (act && !(s->act = malloc(act))) goto nomem;
    if (model_is_quantized(m) && !(s->act_tok = malloc(kern_act_q8_bytes((int)T, (int)h)))) goto nomem;
    return s;
nomem:
    model_scratch_destroy(s);
    ms_err_set(err, MS_ERR_NOMEM, "out of memory allocating forward scratch for %d tokens", max_tokens);
    return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Blocks */

/* A matmul input in the form its weights' kernel takes: quantized to Q8_0 for Q8_0 weights,
 * rounded to bf16 for BF16 weights with bf16_activations, else only the floats. */
struct act_input {
    const float *x;
    const struct q8_act_block *xq;
    const uint16_t *xb;
    int in;
};

/* Prepares x [n, in] for matmuls with w (and any weight of the same dtype and width) in s->act,
 * once for all of them. */
static struct act_input prepare_input(const struct model *m, struct model_scratch *s, struct threadpool *tp,
                                      const struct tensor *w, const float *x, int n)
{
    struct act_input a = {x, NULL, NULL, (int)w->shape[1]};
    if (w->dtype == TENSOR_DTYPE_Q8_0) {
        kern_quantize_act(tp, x, n, a.in, s->act);
        a.xq = s->act;
    } else if (w->dtype == TENSOR_DTYPE_BF16 && m->bf16_activations) {
        kern_round_act_bf16(x, n, a.in, s->act);
        a.xb = s->act;
    }
    prof_end(s, MODEL_PHASE_QUANT_ACT);
    return a;
}

/* Runs s->mm[0, count) together, counting the weight bytes they stream. */
static void run_matmuls(struct model_scratch *s, struct threadpool *tp, int count)
{
    for (int i = 0; i < count; i++)
        if (s->mm[i].n > 0) s->prof.weight_bytes += (uint64_t)s->mm[i].w->shape[0] * tensor_row_bytes(s->mm[i].w);
    kern_matmul_many(tp, s->mm, count);
}

/* The matmul of rows [off, off + n) of a prepared input with w into y (row stride ldy). */
static struct kern_mm mm_rows(const struct tensor *w, struct act_input a, int off, int n, float *y, int ldy)
{
    size_t o = (size_t)off;
    return (struct kern_mm){.w = w, .x = a.x ? a.x + o * a.in : NULL, .xq = a.xq ? a.xq + o * (size_t)(a.in / Q8_0_BLOCK) : NULL,
                            .xb = a.xb ? a.xb + o * a.in : NULL, .n = n, .y = y, .ldy = ldy};
}

static void matmul(const struct model *m, struct model_scratch *s, struct threadpool *tp, const struct tensor *w,
                   const float *x, int n, float *y, int ldy)
{
    s->mm[0] = mm_rows(w, prepare_input(m, s, tp, w, x, n), 0, n, y, ldy);
    run_matmuls(s, tp, 1);
}

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

static void attention(const struct model *m, struct model_scratch *s, struct kv_cache *kv,
                      struct threadpool *tp, const struct fwd_batch *b, int l)
{
    const struct model_config *c = &m->cfg;
    const struct layer_weights *L = &m->weights->layers[l];
    int n = b->n_tokens, hd = c->head_dim, qd = c->num_heads * hd, kvd = c->num_kv_heads * hd, half = hd / 2;
    struct act_input a = prepare_input(m, s, tp, &L->q, s->xn, n);
    s->mm[0] = mm_rows(&L->q, a, 0, n, s->q, qd);
    s->mm[1] = mm_rows(&L->k, a, 0, n, s->k, kvd);
    s->mm[2] = mm_rows(&L->v, a, 0, n, s->v, kvd);
    run_matmuls(s, tp, 3);
    prof_end(s, MODEL_PHASE_QKV);
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
    prof_end(s, MODEL_PHASE_QK_ROPE);
    struct attn_job job = {m, s, kv, b, tp, l, kern_isa_best()};
    tp_run(tp, n * c->num_kv_heads, attn_task, &job);
    prof_end(s, MODEL_PHASE_ATTENTION);
    matmul(m, s, tp, &L->o, s->attn, n, s->tmp, c->hidden_size);
    prof_end(s, MODEL_PHASE_O_PROJ);
}

/* SwiGLU MLPs of `count` experts (a dense layer is one), expert i over its n[i] rows of the
 * grouped input starting at row off[i]: gate and up of all of them in one kern_matmul_many,
 * SwiGLU, then all the down projections in another, so both threads stay busy even when each
 * expert has a single token. Rows of s->gate / s->up follow the input's. */
static void experts_mlp(const struct model *m, struct model_scratch *s, struct threadpool *tp,
                        const struct expert_weights *const *w, const int *off, const int *n, int count,
                        const struct act_input *in, float *out)
{
    int h = m->cfg.hidden_size, inter = (int)w[0]->gate.shape[0], rows = off[count - 1] + n[count - 1];
    struct act_input a = in->xq ? *in : prepare_input(m, s, tp, &w[0]->gate, in->x, rows);
    for (int i = 0; i < count; i++) {
        s->mm[2 * i] = mm_rows(&w[i]->gate, a, off[i], n[i], s->gate + (size_t)off[i] * inter, inter);
        s->mm[2 * i + 1] = mm_rows(&w[i]->up, a, off[i], n[i], s->up + (size_t)off[i] * inter, inter);
    }
    run_matmuls(s, tp, 2 * count);
    prof_end(s, MODEL_PHASE_GATE_UP);
    kern_swiglu(kern_isa_best(), s->gate, s->up, (size_t)rows * inter);
    prof_end(s, MODEL_PHASE_SWIGLU);
    a = prepare_input(m, s, tp, &w[0]->down, s->gate, rows);
    for (int i = 0; i < count; i++) s->mm[i] = mm_rows(&w[i]->down, a, off[i], n[i], out + (size_t)off[i] * h, h);
    run_matmuls(s, tp, count);
    prof_end(s, MODEL_PHASE_DOWN);
}

/* Router: softmax over all experts, keep the top k (lowest index first on ties), and
 * renormalise the kept weights when norm_topk_prob. */
static void route(const struct model *m, struct model_scratch *s, struct threadpool *tp, int l, int n)
{
    const struct model_config *c = &m->cfg;
    int E = c->num_experts, K = c->num_experts_per_tok;
    const struct tensor *router = &m->weights->layers[l].router;
    kern_matmul(tp, router, s->xn, n, s->router, E); /* routing stays in float */
    s->prof.weight_bytes += (uint64_t)router->shape[0] * tensor_row_bytes(router);
    for (int t = 0; t < n; t++) {
        float *p = s->router + (size_t)t * E;
        kern_softmax(p, E);
        int *idx = s->topk_expert + (size_t)t * K;
        float *wt = s->topk_weight + (size_t)t * K, sum = 0;
        for (int j = 0; j < K; j++) {
            int best = -1;
            for (int e = 0; e < E; e++) {
                bool taken = false;
                for (int i = 0; i < j; i++) taken |= idx[i] == e;
                if (!taken && (best < 0 || p[e] > p[best])) best = e;
            }
            idx[j] = best;
            wt[j] = p[best];
            sum += p[best];
        }
        if (c->norm_topk_prob)
            for (int j = 0; j < K; j++) wt[j] /= sum;
    }
    prof_end(s, MODEL_PHASE_ROUTER);
}

/* The experts' input: each token's normed row copied to the grouped row of each of its
 * (token, expert) pairs (s->slot_of). For Q8_0 experts the rows are quantized once per token and
 * the quantized rows are copied (a quarter of the bytes, an eighth of the quantizing); the bits
 * are the same as quantizing the grouped rows. */
static struct act_input group_inputs(const struct model *m, struct model_scratch *s, struct threadpool *tp, int l,
                                     int n)
{
    const struct model_config *c = &m->cfg;
    int K = c->num_experts_per_tok, h = c->hidden_size;
    struct act_input in = {s->grouped_x, NULL, NULL, h};
    if (m->weights->layers[l].experts[0].gate.dtype != TENSOR_DTYPE_Q8_0) {
        for (int i = 0; i < n * K; i++)
            memcpy(s->grouped_x + (size_t)s->slot_of[i] * h, s->xn + (size_t)(i / K) * h, (size_t)h * sizeof(float));
        return in;
    }
    prof_end(s, MODEL_PHASE_MOE_GATHER);
    kern_quantize_act(tp, s->xn, n, h, s->act_tok);
    prof_end(s, MODEL_PHASE_QUANT_ACT);
    size_t row = kern_act_q8_bytes(1, h);
    for (int i = 0; i < n * K; i++)
        memcpy((char *)s->act + (size_t)s->slot_of[i] * row, (const char *)s->act_tok + (size_t)(i / K) * row, row);
    in.x = NULL;
    in.xq = s->act;
    return in;
}

/* Sparse MoE: route, group the (token, expert) pairs by expert with a counting sort, run each
 * expert that received tokens once over all of them, then add the weighted outputs back. */
static void moe(const struct model *m, struct model_scratch *s, struct threadpool *tp, int l, int n)
{
    const struct model_config *c = &m->cfg;
    int E = c->num_experts, K = c->num_experts_per_tok, h = c->hidden_size;
    route(m, s, tp, l, n);
    memset(s->expert_count, 0, (size_t)(E + 1) * sizeof(int));
    for (int i = 0; i < n * K; i++) s->expert_count[s->topk_expert[i]]++;
    s->expert_offset[0] = 0;
    for (int e = 0; e < E; e++) s->expert_offset[e + 1] = s->expert_offset[e] + s->expert_count[e];
    memset(s->expert_count, 0, (size_t)(E + 1) * sizeof(int)); /* reused as fill cursors */
    for (int i = 0; i < n * K; i++) {
        int e = s->topk_expert[i];
        s->slot_of[i] = s->expert_offset[e] + s->expert_count[e]++;
    }
    struct act_input in = group_inputs(m, s, tp, l, n);
    /* the active experts, in expert order; their rows are contiguous in the grouped buffers */
    const struct expert_weights **active = s->active;
    int *act_off = s->active_off, *act_n = s->active_n, count = 0;
    for (int e = 0; e < E; e++) {
        if (s->expert_count[e] == 0) continue;
        active[count] = &m->weights->layers[l].experts[e];
        act_off[count] = s->expert_offset[e];
        act_n[count++] = s->expert_count[e];
    }
    prof_end(s, MODEL_PHASE_MOE_GATHER);
    experts_mlp(m, s, tp, active, act_off, act_n, count, &in, s->grouped_out);
    for (int t = 0; t < n; t++) {
        float *out = s->tmp + (size_t)t * h;
        memset(out, 0, (size_t)h * sizeof *out);
        for (int j = 0; j < K; j++) {
            const float *eo = s->grouped_out + (size_t)s->slot_of[t * K + j] * h;
            float wgt = s->topk_weight[t * K + j];
            for (int d = 0; d < h; d++) out[d] += wgt * eo[d];
        }
    }
    prof_end(s, MODEL_PHASE_COMBINE);
}

static void rope_tables(const struct model *m, struct model_scratch *s, const struct fwd_batch *b)
{
    int half = m->cfg.head_dim / 2;
    for (int t = 0; t < b->n_tokens; t++)
        for (int i = 0; i < half; i++) {
            float angle = (float)b->positions[t] * m->inv_freq[i];
            s->cos_t[(size_t)t * half + i] = cosf(angle) * m->rope_scale;
            s->sin_t[(size_t)t * half + i] = sinf(angle) * m->rope_scale;
        }
}

/* ---------------------------------------------------------------------------------------------
 * The forward pass, top to bottom. */

int model_forward(const struct model *m, struct model_scratch *s, struct kv_cache *kv,
                  struct threadpool *tp, const struct fwd_batch *b, float *logits,
                  struct ms_err *err)
{
    const struct model_config *c = &m->cfg;
    int h = c->hidden_size, n = b->n_tokens;
    if (n < 1 || n > s->max_tokens)
        return ms_err_set(err, MS_ERR_INVALID, "forward of %d tokens (limit %d)", n, s->max_tokens);
    s->prof_mark = ms_now();
    for (int t = 0; t < n; t++) {
        if (b->tokens[t] < 0 || b->tokens[t] >= c->vocab_size)
            return ms_err_set(err, MS_ERR_INVALID, "token id %d is outside the vocabulary [0, %d)", b->tokens[t],
                              c->vocab_size);
        tensor_to_f32(&m->weights->embed, (int64_t)b->tokens[t] * h, h, s->x + (size_t)t * h);
    }
    rope_tables(m, s, b);
    prof_end(s, MODEL_PHASE_EMBED);
    float eps = (float)c->rms_norm_eps;
    for (int l = 0; l < c->num_layers; l++) {
        for (int t = 0; t < n; t++) kern_rmsnorm(s->xn + (size_t)t * h, s->x + (size_t)t * h, m->norms[l].attn, h, eps);
        prof_end(s, MODEL_PHASE_NORM);
        attention(m, s, kv, tp, b, l);
        for (size_t i = 0; i < (size_t)n * h; i++) s->x[i] += s->tmp[i];
        for (int t = 0; t < n; t++) kern_rmsnorm(s->xn + (size_t)t * h, s->x + (size_t)t * h, m->norms[l].ffn, h, eps);
        prof_end(s, MODEL_PHASE_NORM);
        if (m->weights->layers[l].sparse)
            moe(m, s, tp, l, n);
        else {
            const struct expert_weights *mlp = &m->weights->layers[l].mlp;
            int zero = 0;
            struct act_input in = {s->xn, NULL, NULL, h};
            experts_mlp(m, s, tp, &mlp, &zero, &n, 1, &in, s->tmp);
        }
        for (size_t i = 0; i < (size_t)n * h; i++) s->x[i] += s->tmp[i];
        prof_end(s, MODEL_PHASE_NORM);
    }
    /* only the rows whose logits are wanted go through the final norm and lm_head */
    for (int i = 0; i < b->n_logits; i++)
        kern_rmsnorm(s->xn + (size_t)i * h, s->x + (size_t)b->logit_rows[i] * h, m->final_norm, h, eps);
    prof_end(s, MODEL_PHASE_NORM);
    matmul(m, s, tp, &m->weights->lm_head, s->xn, b->n_logits, logits, c->vocab_size);
    prof_end(s, MODEL_PHASE_LM_HEAD);
    s->prof.forwards++;
    s->prof.tokens += (uint64_t)n;
    s->prof.logit_rows += (uint64_t)b->n_logits;
    return MS_OK;
}
