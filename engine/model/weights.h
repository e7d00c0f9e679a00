/* A model's weights, mapped from a Hugging Face checkpoint directory and checked against its
 * config: every tensor the model needs exists with the expected shape and a supported dtype.
 * Weights stay in their stored dtype; nothing is copied into float32. */
#ifndef MS_ENGINE_WEIGHTS_H
#define MS_ENGINE_WEIGHTS_H

#include "common/ms_common.h"
#include "config/model_config.h"
#include "engine/kernels/tensor.h"
#include "engine/model/quant_scheme.h"

struct expert_weights {
    struct tensor gate; /* [inter, hidden] */
    struct tensor up;   /* [inter, hidden] */
    struct tensor down; /* [hidden, inter] */
};

struct layer_weights {
    struct tensor attn_norm; /* [hidden] input_layernorm */
    struct tensor q, k, v;   /* [heads*head_dim, hidden], [kv_heads*head_dim, hidden] x2 */
    struct tensor o;         /* [hidden, heads*head_dim] */
    struct tensor q_norm, k_norm; /* [head_dim] */
    struct tensor ffn_norm;  /* [hidden] post_attention_layernorm */
    bool sparse;
    struct tensor router;    /* [experts, hidden] mlp.gate; sparse layers only */
    struct expert_weights *experts; /* [experts]; sparse layers only */
    struct expert_weights mlp;      /* dense layers only */
};

struct gguf_file;

struct model_weights {
    struct tensor embed;      /* [vocab, hidden] */
    int num_layers, n_experts;
    struct layer_weights *layers; /* [num_layers] */
    struct tensor final_norm; /* [hidden] */
    struct tensor lm_head;    /* [vocab, hidden]; the embedding when tie_word_embeddings */
    size_t mapped_bytes;      /* total size of the mapped files */
    void *quant_arena;        /* owned: the converted copies of the weights (weights_quantize*) */
    size_t quant_bytes;
    int n_files;
    struct st_file **files;
    struct gguf_file *gguf;   /* owned: the mapped GGUF (all its parts), when loaded from one */
};

/* Maps model.safetensors or the shards listed in model.safetensors.index.json and validates
 * every tensor against cfg; reads no weight data. On success the caller owns *out
 * (weights_free). Errors name the file and tensor.
 *
 * `model_dir` may instead be a FILE.gguf (or the first of NAME-0000i-of-0000N.gguf): its
 * tensors (token_embd, blk.N.*, output_norm, output; ffn_*_exps stacked over experts, each
 * expert a view into the mapping) are served from the mapping in their stored type, which must
 * be one the format registry knows by ggml's name; any other is refused naming the tensor and
 * the type. */
int weights_load(const struct model_config *cfg, const char *model_dir, struct model_weights **out,
                 struct ms_err *err);

/* Touches every mapped page so the first request does not wait for the disk (a real
 * Qwen3-30B-A3B is 61 GB: minutes from a cold disk), with progress on stderr: a rewritten line
 * when `show_progress` (a terminal), else a log line per 10% of a load of 4 GB or more. */
void weights_page_in(const struct model_weights *w, bool show_progress);

/* Instead of weights_page_in: replaces the file mappings with anonymous memory holding the same
 * bytes, at the same addresses (tensors keep their pointers), in transparent huge pages where
 * the kernel gives them. File-backed pages cost more to reach than anonymous ones where experts
 * are read at random (one thread over expert-sized pieces of a 4 GB region, AMD EPYC VM: 10-13
 * GB/s mapped, 21-24 GB/s anonymous); the price is memory the kernel cannot page back to the
 * file, and a load that reads the file even when the page cache could have served it. Progress as weights_page_in. Returns
 * 0, or -1 when memory ran out part way (said on stderr; the rest stays mapped and works). */
int weights_copy_in(const struct model_weights *w, bool show_progress);

/* Replaces every matmul weight (attention, experts, dense MLPs, lm_head; not the router, the
 * embedding or the norms) whose rows are a multiple of 32 long by a Q8_0 copy in one owned
 * arena, using `threads` threads, then drops the mapped pages from the process (they are read
 * again from the page cache only for what stays in the file's dtype). Loading thread. */
int weights_quantize(struct model_weights *w, enum tensor_dtype to, int threads, bool show_progress,
                     struct ms_err *err);

/* The same under a quantization scheme (quant_scheme.h, as `moeserve quantize --type`): each
 * matmul weight and the embedding get the format the scheme gives the same tensor of a GGUF,
 * so the loaded model computes with the weights `moeserve quantize` would write (a tied
 * lm_head is the converted embedding, as llama.cpp reads a GGUF without output.weight). A row
 * too short for the scheme's blocks keeps its stored dtype. Fails, naming the format, when the
 * scheme needs one this build cannot convert to. Loading thread. */
int weights_quantize_scheme(struct model_weights *w, const struct model_config *cfg, const struct quant_scheme *s,
                            int threads, bool show_progress, struct ms_err *err);

void weights_free(struct model_weights *w);

#endif
