/* Quantization schemes (`moeserve quantize --type`, `serve --quantize`): which ggml type each
 * tensor of a Qwen3(-MoE) model gets under a scheme name such as q4_k_m, following
 * llama-quantize's rules as tools/make_gguf.py encodes them, and ggml's type ids and block
 * sizes (what a GGUF file records).
 *
 * The choice is made from ggml's block sizes alone, not from what this build can produce: the
 * caller looks the chosen name up in the format table (fmt_by_name) and refuses, naming the
 * format, when it is not registered, so a format added to engine/kernels/format.c becomes
 * usable here without an edit. Tables only: any thread. */
#ifndef MS_ENGINE_MODEL_QUANT_SCHEME_H
#define MS_ENGINE_MODEL_QUANT_SCHEME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One ggml tensor type (enum ggml_type in ggml.h). */
struct qscheme_ggml_type {
    const char *name; /* as ggml and our format table spell it: "Q4_K" */
    uint32_t id;
    int block_values;
    int block_bytes;
};

const struct qscheme_ggml_type *qscheme_ggml_by_name(const char *name);
const struct qscheme_ggml_type *qscheme_ggml_by_id(uint32_t id);
/* Bytes of a row of `cols` values; 0 when cols is not a whole number of blocks. */
uint64_t qscheme_ggml_row_bytes(const struct qscheme_ggml_type *t, int64_t cols);

/* What a tensor is, for the rules. */
enum qscheme_role {
    QSCHEME_EMBD,     /* token_embd */
    QSCHEME_ATTN_Q,
    QSCHEME_ATTN_K,
    QSCHEME_ATTN_V,
    QSCHEME_ATTN_OUT,
    QSCHEME_FFN_GATE, /* dense ffn_gate, or ffn_gate_exps when `experts` */
    QSCHEME_FFN_UP,
    QSCHEME_FFN_DOWN,
    QSCHEME_OUTPUT,   /* lm_head */
    QSCHEME_NORM,     /* every RMSNorm weight */
    QSCHEME_ROUTER,   /* ffn_gate_inp */
};

struct qscheme_tensor {
    enum qscheme_role role;
    bool experts;     /* stacked over experts (a 3-D ffn_*_exps tensor) */
    int ndim;
    int64_t row_len;  /* the innermost dimension */
    int layer;        /* -1 outside the blocks */
};

struct qscheme_model {
    int n_layers;
    int n_gqa; /* query heads per KV head */
};

struct quant_scheme {
    const char *name;       /* "q4_k_m" */
    uint32_t file_type;     /* llama_ftype, for general.file_type */
    bool quantized;         /* writes general.quantization_version */
    const char *base;       /* the ggml type of most 2-D weights */
    const char *output;     /* of output.weight (before the row-length fallback) */
    const char *description; /* general.description, or NULL */
    /* the scheme's own exceptions (use_more_bits layers, ...), or NULL: returns the type name */
    const char *(*adjust)(const struct qscheme_tensor *t, const struct qscheme_model *m, const char *type);
    const char *summary;    /* one line for --help */
};

/* The type name a load-time scheme gives a tensor that stays in its stored dtype. */
#define QSCHEME_KEEP "stored"

/* A load-time scheme (`serve --quantize`) only: its base type is a format of this build that
 * ggml does not define (NVFP4, HIF4), so `moeserve quantize` (the GGUF writer) refuses it. */
bool qscheme_load_only(const struct quant_scheme *s);
/* The scheme called `name` (case-insensitive), or NULL. */
const struct quant_scheme *qscheme_by_name(const char *name);
/* Schemes in the table's order, for listing; NULL past the end. */
const struct quant_scheme *qscheme_at(int i);

/* The ggml type name the tensor gets: F32 for norms, the router and 1-D tensors; the scheme's
 * choice otherwise, then llama-quantize's fallback when the row cannot hold its blocks
 * (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, Q2_K/Q3_K -> Q4_0, IQ4_XS -> IQ4_NL, then F16).
 * A load-only scheme may also name a moeserve-only type (NVFP4, whose super-block of 256 the
 * row must hold) or QSCHEME_KEEP, which is also its answer when a row cannot hold its type. */
const char *qscheme_choose(const struct quant_scheme *s, const struct qscheme_tensor *t,
                           const struct qscheme_model *m);

/* llama-quantize's choice of the layers that get more bits in the _M mixes. */
bool qscheme_use_more_bits(int layer, int n_layers);

#endif
