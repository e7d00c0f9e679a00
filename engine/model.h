/* The Qwen3-MoE (and dense Qwen3) forward pass, with the semantics of Hugging Face transformers'
 * Qwen3MoeForCausalLM: embed -> layers (RMSNorm, attention with QK-norm and RoPE, RMSNorm,
 * sparse MoE or dense SwiGLU MLP, residuals) -> final RMSNorm -> lm_head.
 *
 * A loaded model is immutable and may be shared; a model_state holds one sequence's KV cache and
 * the scratch for a forward of up to max_tokens tokens, and is used by one thread at a time. */
#ifndef MS_ENGINE_MODEL_H
#define MS_ENGINE_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "common/ms_common.h"
#include "config/model_config.h"
#include "engine/threadpool.h"
#include "engine/weights.h"

struct layer_norms {
    float *attn, *ffn, *q, *k; /* float32 copies of the small norm vectors */
};

struct model {
    struct model_config cfg;
    struct model_weights *weights;
    struct layer_norms *norms; /* [num_layers] */
    float *final_norm;         /* [hidden] */
    float *inv_freq;           /* [head_dim / 2] RoPE inverse frequencies (yarn-adjusted) */
    float rope_scale;          /* multiplies cos and sin: yarn's attention factor, else 1 */
};

/* Reads config, generation config and weights from a Hugging Face model directory.
 * On success the caller owns *out (model_free). */
int model_load(const char *model_dir, bool show_progress, struct model **out, struct ms_err *err);
void model_free(struct model *m);

/* Floats of per-thread scratch a pool needs to run this model's forward over `max_ctx`
 * positions (pass it to tp_create). */
size_t model_scratch_floats(const struct model *m, int max_ctx);

struct model_state;

/* A sequence's KV cache for up to max_ctx positions plus scratch for forwards of up to
 * max_tokens tokens. NULL on failure (err set). */
struct model_state *model_state_create(const struct model *m, int max_tokens, int max_ctx,
                                       struct ms_err *err);
void model_state_destroy(struct model_state *s);

/* Runs tokens[0..n) at positions pos0 .. pos0+n-1, appending their K/V to the state (positions
 * before pos0 must already be there). Writes logits [n, vocab] when all_logits, else [1, vocab]
 * for the last token. Returns MS_ERR_INVALID for an out-of-vocab token or a context overflow. */
int model_forward(const struct model *m, struct model_state *s, struct threadpool *tp,
                  const int32_t *tokens, int n, int pos0, float *logits, bool all_logits,
                  struct ms_err *err);

#endif
