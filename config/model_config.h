/* A model's Hugging Face configuration (config.json + generation_config.json) as a plain struct.
 *
 * Promise: a struct that model_config_load() returned OK for is complete and self-consistent
 * (positive sizes, heads divide evenly, top-k <= experts); everything the engine cannot run is
 * refused here, at load, with the field and value named. */
#ifndef MS_CONFIG_MODEL_CONFIG_H
#define MS_CONFIG_MODEL_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "common/ms_common.h"

#define MODEL_CONFIG_MAX_EOS 8
#define MODEL_CONFIG_MAX_LAYERS 1024

enum model_family {
    MODEL_FAMILY_QWEN3_MOE, /* model_type "qwen3_moe" */
    MODEL_FAMILY_QWEN3,     /* model_type "qwen3": dense, one SwiGLU MLP per layer */
};

enum rope_scaling_type {
    ROPE_SCALING_NONE,
    ROPE_SCALING_YARN,
};

struct model_config {
    enum model_family family;
    int vocab_size;
    int hidden_size;
    int num_layers;
    int num_heads;          /* query heads */
    int num_kv_heads;
    int head_dim;
    int intermediate_size;  /* dense MLP width (dense family and mlp_only_layers) */
    int moe_intermediate_size;
    int num_experts;        /* 0 for the dense family */
    int num_experts_per_tok;
    int decoder_sparse_step;
    bool norm_topk_prob;
    bool tie_word_embeddings;
    double rope_theta;
    double rms_norm_eps;
    int max_position_embeddings;
    bool layer_is_sparse[MODEL_CONFIG_MAX_LAYERS]; /* resolved from sparse step + mlp_only_layers */

    struct {
        enum rope_scaling_type type;
        double factor;
        int original_max_position_embeddings;
        double beta_fast, beta_slow;
        double attention_factor; /* multiplies cos and sin (yarn's mscale) */
        bool truncate;
    } rope_scaling;

    /* generation_config.json (all optional; absent sampling fields are < 0) */
    int32_t eos_token_ids[MODEL_CONFIG_MAX_EOS];
    int num_eos_token_ids;
    int32_t bos_token_id;   /* -1 if absent */
    double default_temperature, default_top_p;
    int default_top_k;
};

/* How a source spells the fields in its messages: config.json's names, or a GGUF's keys. */
struct model_config_names {
    const char *vocab_size, *hidden_size, *num_layers, *num_heads, *num_kv_heads, *head_dim,
        *intermediate_size, *moe_intermediate_size, *num_experts, *num_experts_per_tok,
        *max_position_embeddings, *rope_theta, *rms_norm_eps, *rope_factor, *rope_original, *eos;
};
extern const struct model_config_names model_config_hf_names;

/* A zeroed config with the "absent" markers set (bos -1, sampling defaults -1), for a source
 * that fills the struct itself before model_config_validate. */
void model_config_init(struct model_config *cfg);

/* The checks every source goes through once the struct is filled (model_config_parse runs
 * them too): sizes in range, heads divisible, top-k within the experts, yarn parameters,
 * eos ids inside the vocabulary, dense layers having an intermediate size. The message names
 * `src` and the field as `names` spells it. */
int model_config_validate(const struct model_config *cfg, const struct model_config_names *names, const char *src,
                          struct ms_err *err);

/* Reads MODEL_DIR/config.json and, if present, MODEL_DIR/generation_config.json.
 * Returns MS_OK, or an error whose message names the file, the field and its value. */
int model_config_load(struct model_config *cfg, const char *model_dir, struct ms_err *err);

/* Parses config JSON text (the contents of config.json). `source` names it in messages. */
int model_config_parse(struct model_config *cfg, const char *json_text, const char *source,
                       struct ms_err *err);

/* Parses generation_config.json text into the generation fields of cfg. */
int model_config_parse_generation(struct model_config *cfg, const char *json_text,
                                  const char *source, struct ms_err *err);

/* Whether token id is one of the end-of-sequence ids. */
bool model_config_is_eos(const struct model_config *cfg, int32_t token);

#endif
