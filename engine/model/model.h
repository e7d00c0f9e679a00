/* The Qwen3-MoE (and dense Qwen3) forward pass, with the semantics of Hugging Face transformers'
 * Qwen3MoeForCausalLM: embed -> layers (RMSNorm, attention with QK-norm and RoPE, RMSNorm,
 * sparse MoE or dense SwiGLU MLP, residuals) -> final RMSNorm -> lm_head.
 *
 * A loaded model is immutable and may be shared. A forward runs one batch of tokens from many
 * sequences over a paged KV cache, with scratch from a model_scratch (one user at a time). */
#ifndef MS_ENGINE_MODEL_H
#define MS_ENGINE_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "common/ms_common.h"
#include "config/model_config.h"
#include "engine/kernels/threadpool.h"
#include "engine/model/weights.h"

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
    bool bf16_activations;     /* model_load_opts.bf16_activations, and the CPU has it */
};

/* Reads config, generation config and weights from a Hugging Face model directory, or config
 * and weights from a FILE.gguf (engine/model/gguf_config.h, weights.h).
 * On success the caller owns *out (model_free). */
int model_load(const char *model_dir, bool show_progress, struct model **out, struct ms_err *err);

struct model_load_opts {
    bool show_progress;
    bool quantize_q8_0; /* convert the matmul weights to Q8_0 at load (weights_quantize) */
    /* or: a quant_scheme name ("q4_k_m", as `moeserve quantize --type`) to convert the weights
     * to at load (weights_quantize_scheme); "q8_0" is quantize_q8_0. NULL: none */
    const char *quantize_scheme;
    bool bf16_activations; /* BF16 matmuls round their input to bf16 and use VDPBF16PS, where the
                            * CPU has AVX512_BF16 (faster prefill, less accurate); else ignored */
    int threads;        /* for the conversion; <= 0: one */
    bool keep_mapping;  /* serve the weights from the file mapping (weights_page_in) instead of
                         * copying them into anonymous memory (weights_copy_in, the default) */
};

/* model_load with options. */
int model_load_with_opts(const char *model_dir, const struct model_load_opts *opts, struct model **out,
                         struct ms_err *err);

/* Whether the matmul weights were quantized at load. */
bool model_is_quantized(const struct model *m);
void model_free(struct model *m);

/* Floats of per-thread scratch a pool needs to run this model's forward over contexts of up to
 * `max_ctx` positions (pass it to tp_create). */
size_t model_scratch_floats(const struct model *m, int max_ctx);

/* One step's tokens, from any number of sequences, flattened. Plain data built by the caller;
 * the model only reads it. Tokens of one sequence are contiguous and in position order. */
struct fwd_batch {
    int n_tokens;
    const int32_t *tokens;    /* [n_tokens] */
    const int32_t *positions; /* [n_tokens] */
    const int32_t *slots;     /* [n_tokens] KV slot each token's K/V is written to */
    const int32_t *seq_of;    /* [n_tokens] index of the token's sequence in this batch */
    int n_seqs;
    const int32_t *const *block_tables; /* [n_seqs] -> block ids covering positions 0..pos */
    int n_logits;
    const int32_t *logit_rows; /* [n_logits] token rows whose logits are wanted, increasing */
};

struct model_scratch;
struct kv_cache;

/* Where a forward's time goes, summed over every forward run with one scratch (always on: a
 * few dozen clock reads a step). Each phase runs to the end before the next starts, so the
 * phases add up to the forward's wall time. */
enum model_phase {
    MODEL_PHASE_EMBED,      /* embedding rows, RoPE tables */
    MODEL_PHASE_NORM,       /* RMSNorms before blocks, residual adds, the final norm */
    MODEL_PHASE_QUANT_ACT,  /* matmul inputs quantized to Q8_0 or rounded to bf16 */
    MODEL_PHASE_QKV,        /* q, k, v projections */
    MODEL_PHASE_QK_ROPE,    /* QK-norm, RoPE, K/V written to the cache */
    MODEL_PHASE_ATTENTION,  /* scores, softmax, weighted V over the paged cache */
    MODEL_PHASE_O_PROJ,
    MODEL_PHASE_ROUTER,     /* router matmul, softmax, top-k */
    MODEL_PHASE_MOE_GATHER, /* grouping (token, expert) pairs by expert */
    MODEL_PHASE_GATE_UP,    /* expert (or dense MLP) gate and up projections */
    MODEL_PHASE_SWIGLU,
    MODEL_PHASE_DOWN,       /* expert (or dense MLP) down projections */
    MODEL_PHASE_COMBINE,    /* weighted sum of each token's expert outputs */
    MODEL_PHASE_LM_HEAD,
    MODEL_PHASE_COUNT
};

/* Buckets of the distinct-experts histogram: upper bounds 1, 2, 4, ... 128, then one for more
 * (models with more experts). Fixed, so the /metrics series stay the same for every model. */
#define MODEL_DISTINCT_BUCKETS 9

struct model_profile {
    double seconds[MODEL_PHASE_COUNT];
    uint64_t forwards, tokens, logit_rows;
    uint64_t weight_bytes; /* of the weights the matmuls read (each active expert once a forward) */
    /* Per (forward, sparse layer): how many distinct experts the batch's tokens chose, i.e. how
     * many experts' weights that layer read. distinct[i] counts the layer-forwards whose number
     * was in (2^(i-1), 2^i] (the last bucket: above 128); distinct_sum adds the numbers. Their
     * count is forwards x sparse layers. Dense models leave them 0. */
    uint64_t distinct[MODEL_DISTINCT_BUCKETS];
    uint64_t distinct_sum;
};

const char *model_phase_name(enum model_phase phase);

/* The running totals of forwards through s; the scratch's user reads them between forwards. */
const struct model_profile *model_scratch_profile(const struct model_scratch *s);

/* How often each expert was chosen, over every forward through s: [num_layers * num_experts]
 * (layer-major; a token choosing expert e in layer l adds 1 to [l * num_experts + e]; dense
 * layers stay 0). NULL for a dense model. Read between forwards, like the profile. */
const uint64_t *model_scratch_expert_selections(const struct model_scratch *s);

/* Scratch for forwards of up to max_tokens tokens and max_logits logit rows; no allocation
 * happens after this. NULL on failure (err set). */
struct model_scratch *model_scratch_create(const struct model *m, int max_tokens, struct ms_err *err);
void model_scratch_destroy(struct model_scratch *s);

/* Runs one batch: writes every token's K/V to its slot, attends causally over each sequence's
 * blocks (positions 0..pos of the token), and writes logits [n_logits, vocab]. Token ids and
 * sizes are checked by the caller (the engine validates at submit); out-of-range ids are an
 * MS_ERR_INVALID here too, never a crash. Each token's result depends only on its own sequence,
 * never on what else is in the batch (the kernels are batch-invariant). */
int model_forward(const struct model *m, struct model_scratch *s, struct kv_cache *kv,
                  struct threadpool *tp, const struct fwd_batch *b, float *logits,
                  struct ms_err *err);

#endif
