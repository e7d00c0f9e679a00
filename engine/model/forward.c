/* The forward pass: the layer loop over a flattened batch of tokens from many sequences. */
#include "engine/model/attention.h"
#include "engine/model/moe.h"
#include "engine/model/scratch.h"

#include <math.h>
#include <string.h>

#include "engine/kernels/ops.h"

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
    fwd_prof_end(s, MODEL_PHASE_EMBED);
    float eps = (float)c->rms_norm_eps;
    for (int l = 0; l < c->num_layers; l++) {
        for (int t = 0; t < n; t++) kern_rmsnorm(s->xn + (size_t)t * h, s->x + (size_t)t * h, m->norms[l].attn, h, eps);
        fwd_prof_end(s, MODEL_PHASE_NORM);
        attention_block(m, s, kv, tp, b, l);
        for (size_t i = 0; i < (size_t)n * h; i++) s->x[i] += s->tmp[i];
        for (int t = 0; t < n; t++) kern_rmsnorm(s->xn + (size_t)t * h, s->x + (size_t)t * h, m->norms[l].ffn, h, eps);
        fwd_prof_end(s, MODEL_PHASE_NORM);
        if (m->weights->layers[l].sparse) moe_block(m, s, tp, l, n);
        else dense_mlp_block(m, s, tp, l, n);
        for (size_t i = 0; i < (size_t)n * h; i++) s->x[i] += s->tmp[i];
        fwd_prof_end(s, MODEL_PHASE_NORM);
    }
    /* only the rows whose logits are wanted go through the final norm and lm_head */
    for (int i = 0; i < b->n_logits; i++)
        kern_rmsnorm(s->xn + (size_t)i * h, s->x + (size_t)b->logit_rows[i] * h, m->final_norm, h, eps);
    fwd_prof_end(s, MODEL_PHASE_NORM);
    fwd_matmul(m, s, tp, &m->weights->lm_head, s->xn, b->n_logits, logits, c->vocab_size);
    fwd_prof_end(s, MODEL_PHASE_LM_HEAD);
    s->prof.forwards++;
    s->prof.tokens += (uint64_t)n;
    s->prof.logit_rows += (uint64_t)b->n_logits;
    return MS_OK;
}
