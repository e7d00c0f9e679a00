/* The forward pass's scratch (allocated once, no allocation per step), its phase profile, and
 * the matmul plumbing every block uses: inputs prepared for their weights' kernels. */
#include "engine/model/scratch.h"

#include <stdlib.h>
#include <string.h>

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

const uint64_t *model_scratch_expert_selections(const struct model_scratch *s)
{
    return s->selections;
}

/* Charges the time since the last mark to `phase`. */
void fwd_prof_end(struct model_scratch *s, enum model_phase phase)
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

unsigned fwd_offered_acts(const struct model *m)
{
    return m->bf16_activations ? 1u << KERN_ACT_BF16 : 0;
}

/* Bytes of `rows` rows of `widest` values in the largest kind any of this model's matmul
 * weights reads (0 when they all read floats). */
static size_t act_bytes(const struct model *m, size_t rows, size_t widest)
{
    size_t most = 0;
    const struct model_weights *w = m->weights;
    for (int l = 0; l < m->cfg.num_layers; l++) {
        const struct layer_weights *L = &w->layers[l];
        const struct expert_weights *e = L->sparse ? &L->experts[0] : &L->mlp;
        const struct tensor *ts[] = {&L->q, &L->o, &e->gate, &e->down};
        for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
            enum kern_act a = kern_matmul_act(ts[i], fwd_offered_acts(m));
            size_t b = a == KERN_ACT_F32 ? 0 : kern_act_bytes(a, (int)rows, (int)widest);
            most = b > most ? b : most;
        }
    }
    enum kern_act a = kern_matmul_act(&w->lm_head, fwd_offered_acts(m));
    size_t b = a == KERN_ACT_F32 ? 0 : kern_act_bytes(a, (int)rows, (int)widest);
    return b > most ? b : most;
}

/* Bytes of the tokens' rows prepared once for the experts (moe.c, group_inputs), or 0. */
static size_t expert_act_bytes(const struct model *m, size_t tokens)
{
    size_t most = 0;
    for (int l = 0; l < m->cfg.num_layers; l++) {
        if (!m->weights->layers[l].sparse) continue;
        enum kern_act a = kern_matmul_act(&m->weights->layers[l].experts[0].gate, fwd_offered_acts(m));
        size_t b = a == KERN_ACT_F32 ? 0 : kern_act_bytes(a, (int)tokens, m->cfg.hidden_size);
        most = b > most ? b : most;
    }
    return most;
}

void model_scratch_destroy(struct model_scratch *s)
{
    if (!s) return;
    void *bufs[] = {s->x, s->xn, s->tmp, s->q, s->k, s->v, s->attn, s->cos_t, s->sin_t, s->router,
                    s->topk_expert, s->topk_weight, s->expert_count, s->expert_offset, s->slot_of,
                    s->grouped_x, s->gate, s->up, s->grouped_out, s->act, s->act_tok, s->mm, s->active,
                    s->active_off, s->active_n, s->selections};
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
    /* the selection counts live as long as the scratch: counting a step allocates nothing */
    if (c->num_experts && !(s->selections = ms_calloc((size_t)c->num_layers * E, sizeof(uint64_t)))) goto nomem;
    size_t widest = h > qd ? h : qd;
    widest = widest > inter ? widest : inter;
    size_t act = act_bytes(m, rows, widest), act_tok = expert_act_bytes(m, T);
    if (act && !(s->act = malloc(act))) goto nomem;
    if (act_tok && !(s->act_tok = malloc(act_tok))) goto nomem;
    return s;
nomem:
    model_scratch_destroy(s);
    ms_err_set(err, MS_ERR_NOMEM, "out of memory allocating forward scratch for %d tokens", max_tokens);
    return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Matmul inputs */

struct act_input fwd_prepare_input(const struct model *m, struct model_scratch *s, struct threadpool *tp,
                                   const struct tensor *w, const float *x, int n)
{
    struct act_input a = {x, NULL, kern_matmul_act(w, fwd_offered_acts(m)), (int)w->shape[1]};
    if (a.act != KERN_ACT_F32) {
        kern_prepare_act(tp, a.act, x, n, a.in, s->act);
        a.xa = s->act;
    }
    fwd_prof_end(s, MODEL_PHASE_QUANT_ACT);
    return a;
}

void fwd_run_matmuls(struct model_scratch *s, struct threadpool *tp, int count)
{
    for (int i = 0; i < count; i++)
        if (s->mm[i].n > 0) s->prof.weight_bytes += (uint64_t)s->mm[i].w->shape[0] * tensor_row_bytes(s->mm[i].w);
    kern_matmul_many(tp, s->mm, count);
}

struct kern_mm fwd_mm_rows(const struct tensor *w, struct act_input a, int off, int n, float *y, int ldy)
{
    size_t o = (size_t)off;
    return (struct kern_mm){.w = w, .x = a.x ? a.x + o * a.in : NULL,
                            .xa = a.xa ? (const char *)a.xa + o * kern_act_bytes(a.act, 1, a.in) : NULL,
                            .xa_act = a.act, .n = n, .y = y, .ldy = ldy};
}

void fwd_matmul(const struct model *m, struct model_scratch *s, struct threadpool *tp, const struct tensor *w,
                const float *x, int n, float *y, int ldy)
{
    s->mm[0] = fwd_mm_rows(w, fwd_prepare_input(m, s, tp, w, x, n), 0, n, y, ldy);
    fwd_run_matmuls(s, tp, 1);
}
