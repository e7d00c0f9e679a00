/* The MoE grouping and the expert MLPs: route each token to its top-k experts, group the
 * (token, expert) pairs by expert with a counting sort, run each expert that received tokens
 * once over all of them, and add the weighted outputs back to their tokens. A dense layer's MLP
 * runs through the same code as a single expert. */
#include "engine/model/moe.h"

#include <stdbool.h>
#include <string.h>

#include "engine/kernels/ops.h"

/* SwiGLU MLPs of `count` experts (a dense layer is one), expert i over its n[i] rows of the
 * grouped input starting at row off[i]: gate and up of all of them in one kern_matmul_many,
 * SwiGLU, then all the down projections in another, so both threads stay busy even when each
 * expert has a single token. Rows of s->gate / s->up follow the input's. */
static void experts_mlp(const struct model *m, struct model_scratch *s, struct threadpool *tp,
                        const struct expert_weights *const *w, const int *off, const int *n, int count,
                        const struct act_input *in, float *out)
{
    int h = m->cfg.hidden_size, inter = (int)w[0]->gate.shape[0], rows = off[count - 1] + n[count - 1];
    struct act_input a = in->xa ? *in : fwd_prepare_input(m, s, tp, &w[0]->gate, in->x, rows);
    for (int i = 0; i < count; i++) {
        s->mm[2 * i] = fwd_mm_rows(&w[i]->gate, a, off[i], n[i], s->gate + (size_t)off[i] * inter, inter);
        s->mm[2 * i + 1] = fwd_mm_rows(&w[i]->up, a, off[i], n[i], s->up + (size_t)off[i] * inter, inter);
    }
    fwd_run_matmuls(s, tp, 2 * count);
    fwd_prof_end(s, MODEL_PHASE_GATE_UP);
    kern_swiglu(kern_isa_best(), s->gate, s->up, (size_t)rows * inter);
    fwd_prof_end(s, MODEL_PHASE_SWIGLU);
    a = fwd_prepare_input(m, s, tp, &w[0]->down, s->gate, rows);
    for (int i = 0; i < count; i++) s->mm[i] = fwd_mm_rows(&w[i]->down, a, off[i], n[i], out + (size_t)off[i] * h, h);
    fwd_run_matmuls(s, tp, count);
    fwd_prof_end(s, MODEL_PHASE_DOWN);
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
    fwd_prof_end(s, MODEL_PHASE_ROUTER);
}

/* The experts' input: each token's normed row copied to the grouped row of each of its
 * (token, expert) pairs (s->slot_of). When the experts' kernel reads prepared (e.g. quantized)
 * activations, the rows are prepared once per token and the prepared rows are copied (a quarter
 * of the bytes for int8, an eighth of the quantizing); the bits are the same as preparing the
 * grouped rows. */
static struct act_input group_inputs(const struct model *m, struct model_scratch *s, struct threadpool *tp, int l,
                                     int n)
{
    const struct model_config *c = &m->cfg;
    int K = c->num_experts_per_tok, h = c->hidden_size;
    struct act_input in = {s->grouped_x, NULL, KERN_ACT_F32, h};
    enum kern_act act = kern_matmul_act(&m->weights->layers[l].experts[0].gate, fwd_offered_acts(m));
    if (act == KERN_ACT_F32) {
        for (int i = 0; i < n * K; i++)
            memcpy(s->grouped_x + (size_t)s->slot_of[i] * h, s->xn + (size_t)(i / K) * h, (size_t)h * sizeof(float));
        return in;
    }
    fwd_prof_end(s, MODEL_PHASE_MOE_GATHER);
    kern_prepare_act(tp, act, s->xn, n, h, s->act_tok);
    fwd_prof_end(s, MODEL_PHASE_QUANT_ACT);
    size_t row = kern_act_bytes(act, 1, h);
    for (int i = 0; i < n * K; i++)
        memcpy((char *)s->act + (size_t)s->slot_of[i] * row, (const char *)s->act_tok + (size_t)(i / K) * row, row);
    in.x = NULL;
    in.xa = s->act;
    in.act = act;
    return in;
}

/* The expert-load statistics of layer l (/metrics): s->expert_count holds this forward's
 * (token, expert) pairs per expert. Adds them to the layer's selection counts and files the
 * number of distinct experts (the experts whose weights this layer reads) in its bucket. */
static void count_load(const struct model_config *c, struct model_scratch *s, int l)
{
    int E = c->num_experts, distinct = 0;
    uint64_t *sel = s->selections + (size_t)l * E;
    for (int e = 0; e < E; e++) {
        sel[e] += (uint64_t)s->expert_count[e];
        distinct += s->expert_count[e] > 0;
    }
    int b = 0; /* bucket b holds (2^(b-1), 2^b]; the last one everything above */
    while (b < MODEL_DISTINCT_BUCKETS - 1 && distinct > (1 << b)) b++;
    s->prof.distinct[b]++;
    s->prof.distinct_sum += (uint64_t)distinct;
}

/* Sparse MoE: route, group the (token, expert) pairs by expert with a counting sort, run each
 * expert that received tokens once over all of them, then add the weighted outputs back. */
void moe_block(const struct model *m, struct model_scratch *s, struct threadpool *tp, int l, int n)
{
    const struct model_config *c = &m->cfg;
    int E = c->num_experts, K = c->num_experts_per_tok, h = c->hidden_size;
    route(m, s, tp, l, n);
    memset(s->expert_count, 0, (size_t)(E + 1) * sizeof(int));
    for (int i = 0; i < n * K; i++) s->expert_count[s->topk_expert[i]]++;
    count_load(c, s, l);
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
    fwd_prof_end(s, MODEL_PHASE_MOE_GATHER);
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
    fwd_prof_end(s, MODEL_PHASE_COMBINE);
}

void dense_mlp_block(const struct model *m, struct model_scratch *s, struct threadpool *tp, int l, int n)
{
    const struct expert_weights *mlp = &m->weights->layers[l].mlp;
    int zero = 0;
    struct act_input in = {s->xn, NULL, KERN_ACT_F32, m->cfg.hidden_size};
    experts_mlp(m, s, tp, &mlp, &zero, &n, 1, &in, s->tmp);
}
