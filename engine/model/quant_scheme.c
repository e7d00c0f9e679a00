#include "engine/model/quant_scheme.h"

#include <string.h>
#include <strings.h>

#include "engine/kernels/format.h"

/* ggml.h's type ids and ggml-common.h's block sizes (the GGUF format's facts, whatever this
 * build implements). */
static const struct qscheme_ggml_type ggml_types[] = {
    {"F32", 0, 1, 4},        {"F16", 1, 1, 2},        {"Q4_0", 2, 32, 18},     {"Q4_1", 3, 32, 20},
    {"Q5_0", 6, 32, 22},     {"Q5_1", 7, 32, 24},     {"Q8_0", 8, 32, 34},     {"Q8_1", 9, 32, 36},
    {"Q2_K", 10, 256, 84},   {"Q3_K", 11, 256, 110},  {"Q4_K", 12, 256, 144},  {"Q5_K", 13, 256, 176},
    {"Q6_K", 14, 256, 210},  {"Q8_K", 15, 256, 292},  {"IQ4_NL", 20, 32, 18},  {"IQ4_XS", 23, 256, 136},
    {"BF16", 30, 1, 2},      {"MXFP4", 39, 32, 17},
};
#define N_GGML_TYPES (int)(sizeof ggml_types / sizeof ggml_types[0])

const struct qscheme_ggml_type *qscheme_ggml_by_name(const char *name)
{
    for (int i = 0; i < N_GGML_TYPES; i++)
        if (!strcasecmp(ggml_types[i].name, name)) return &ggml_types[i];
    return NULL;
}

const struct qscheme_ggml_type *qscheme_ggml_by_id(uint32_t id)
{
    for (int i = 0; i < N_GGML_TYPES; i++)
        if (ggml_types[i].id == id) return &ggml_types[i];
    return NULL;
}

uint64_t qscheme_ggml_row_bytes(const struct qscheme_ggml_type *t, int64_t cols)
{
    if (cols <= 0 || cols % t->block_values) return 0;
    return (uint64_t)(cols / t->block_values) * (uint64_t)t->block_bytes;
}

bool qscheme_use_more_bits(int layer, int n_layers)
{
    return layer < n_layers / 8 || layer >= 7 * n_layers / 8 || (layer - n_layers / 8) % 3 == 2;
}

/* ---- the mixes' exceptions (llama-quantize's llama_tensor_get_type for this architecture:
 * 128 experts, so none of its 8-expert (Mixtral) rules; make_gguf.py encodes q4_k_m the same) */

static bool is_v_or_down(const struct qscheme_tensor *t)
{
    return t->role == QSCHEME_ATTN_V || t->role == QSCHEME_FFN_DOWN;
}

static const char *adjust_q4_k_m(const struct qscheme_tensor *t, const struct qscheme_model *m, const char *type)
{
    return is_v_or_down(t) && qscheme_use_more_bits(t->layer, m->n_layers) ? "Q6_K" : type;
}

static const char *adjust_q3_k_m(const struct qscheme_tensor *t, const struct qscheme_model *m, const char *type)
{
    if (t->role == QSCHEME_ATTN_V) return t->layer < 2 ? "Q5_K" : "Q4_K";
    if (t->role == QSCHEME_FFN_DOWN) return t->layer < m->n_layers / 16 ? "Q5_K" : "Q4_K";
    if (t->role == QSCHEME_ATTN_OUT) return "Q4_K";
    return type;
}

static const char *adjust_q2_k(const struct qscheme_tensor *t, const struct qscheme_model *m, const char *type)
{
    if (t->role == QSCHEME_ATTN_V) return m->n_gqa >= 4 ? "Q4_K" : "Q3_K";
    if (t->role == QSCHEME_FFN_DOWN || t->role == QSCHEME_ATTN_OUT) return "Q3_K";
    return type;
}

static const char *adjust_iq4_xs(const struct qscheme_tensor *t, const struct qscheme_model *m, const char *type)
{
    if (t->role == QSCHEME_ATTN_V && m->n_gqa >= 4) return "Q5_K";
    if (t->role == QSCHEME_FFN_DOWN && t->layer < m->n_layers / 8) return "Q5_K";
    return type;
}

static const char *adjust_mxfp4_moe(const struct qscheme_tensor *t, const struct qscheme_model *m, const char *type)
{
    (void)m;
    return t->experts ? "MXFP4" : type;
}

/* The load-time 4-bit float schemes (nvfp4, hif4): every matmul weight of the blocks (experts,
 * attention, a dense FFN) in the format; the embedding and the output as stored, as llama.cpp's
 * MXFP4_MOE keeps the non-expert tensors in higher precision (here: as they came) */
static const char *adjust_fp4_blocks(const struct qscheme_tensor *t, const struct qscheme_model *m, const char *type)
{
    (void)m;
    return t->role == QSCHEME_EMBD ? QSCHEME_KEEP : type;
}

/* make_gguf.py writes output.weight as Q8_0 for these (llama-quantize: Q6_K) and says so */
#define LEGACY_DESC "made by moeserve tools/make_gguf.py; output.weight is Q8_0 where llama-quantize would use Q6_K"

static const struct quant_scheme schemes[] = {
    {"f32", 0, false, "F32", "F32", NULL, NULL, "every 2-D weight F32"},
    {"f16", 1, false, "F16", "F16", NULL, NULL, "every 2-D weight F16"},
    {"bf16", 32, false, "BF16", "BF16", NULL, NULL, "every 2-D weight BF16"},
    {"q8_0", 7, true, "Q8_0", "Q8_0", NULL, NULL, "every 2-D weight Q8_0 (8.5 bits)"},
    {"q4_0", 2, true, "Q4_0", "Q8_0", LEGACY_DESC, NULL, "Q4_0, output Q8_0"},
    {"q4_1", 3, true, "Q4_1", "Q8_0", LEGACY_DESC, NULL, "Q4_1, output Q8_0"},
    {"q5_0", 8, true, "Q5_0", "Q8_0", LEGACY_DESC, NULL, "Q5_0, output Q8_0"},
    {"q5_1", 9, true, "Q5_1", "Q8_0", LEGACY_DESC, NULL, "Q5_1, output Q8_0"},
    {"iq4_nl", 25, true, "IQ4_NL", "Q8_0", LEGACY_DESC, NULL, "IQ4_NL, output Q8_0"},
    {"mxfp4_moe", 38, true, "Q8_0", "Q8_0", NULL, adjust_mxfp4_moe, "experts MXFP4, everything else Q8_0"},
    {"q6_k", 18, true, "Q6_K", "Q6_K", NULL, NULL, "every 2-D weight Q6_K (6.6 bits)"},
    {"q4_k_m", 15, true, "Q4_K", "Q6_K", NULL, adjust_q4_k_m,
     "Q4_K; Q6_K for output and for attn_v/ffn_down in the use_more_bits layers"},
    {"q5_k_m", 17, true, "Q5_K", "Q6_K", NULL, adjust_q4_k_m,
     "Q5_K; Q6_K as in q4_k_m"},
    {"q3_k_m", 12, true, "Q3_K", "Q6_K", NULL, adjust_q3_k_m,
     "Q3_K; attn_v, ffn_down Q5_K/Q4_K, attn_output Q4_K, output Q6_K"},
    {"q2_k", 10, true, "Q2_K", "Q6_K", NULL, adjust_q2_k,
     "Q2_K; attn_v Q4_K, ffn_down and attn_output Q3_K, output Q6_K"},
    {"iq4_xs", 30, true, "IQ4_XS", "Q6_K", NULL, adjust_iq4_xs,
     "IQ4_XS; attn_v Q5_K, ffn_down Q5_K (first 1/8), output Q6_K"},
    /* load-only (no ggml type, qscheme_load_only): never written, so no llama_ftype */
    {"nvfp4", 0, true, "NVFP4", QSCHEME_KEEP, NULL, adjust_fp4_blocks,
     "experts and attention NVFP4 (4.625 bits), embedding and output as stored"},
    {"hif4", 0, true, "HIF4", QSCHEME_KEEP, NULL, adjust_fp4_blocks,
     "experts and attention HiFloat4 (4.5 bits), embedding and output as stored"},
};
#define N_SCHEMES (int)(sizeof schemes / sizeof schemes[0])

bool qscheme_load_only(const struct quant_scheme *s) { return !qscheme_ggml_by_name(s->base); }

const struct quant_scheme *qscheme_by_name(const char *name)
{
    for (int i = 0; i < N_SCHEMES; i++)
        if (!strcasecmp(schemes[i].name, name)) return &schemes[i];
    return NULL;
}

const struct quant_scheme *qscheme_at(int i)
{
    return i >= 0 && i < N_SCHEMES ? &schemes[i] : NULL;
}

/* llama-quantize's tensor_type_fallback */
static const struct {
    const char *from, *to;
} fallbacks[] = {
    {"Q4_K", "Q5_0"}, {"Q5_K", "Q5_1"}, {"Q6_K", "Q8_0"}, {"Q2_K", "IQ4_NL"}, {"Q3_K", "IQ4_NL"}, {"IQ4_XS", "IQ4_NL"},
};

/* Whether a row of row_len values holds whole blocks of `type`: a ggml type, or (load-only
 * schemes) a format of this build that ggml lacks, with the registry's block size */
static bool fits(const char *type, int64_t row_len)
{
    const struct qscheme_ggml_type *g = qscheme_ggml_by_name(type);
    if (g) return row_len % g->block_values == 0;
    const struct weight_format *f = fmt_by_name(type);
    return f && row_len % f->block_values == 0;
}

const char *qscheme_choose(const struct quant_scheme *s, const struct qscheme_tensor *t,
                           const struct qscheme_model *m)
{
    if (t->ndim < 2 || t->role == QSCHEME_NORM || t->role == QSCHEME_ROUTER) return "F32";
    const char *type = t->role == QSCHEME_OUTPUT ? s->output : s->base;
    if (s->adjust && t->role != QSCHEME_OUTPUT) type = s->adjust(t, m, type);
    if (!strcmp(type, QSCHEME_KEEP) || fits(type, t->row_len)) return type;
    if (qscheme_load_only(s)) return QSCHEME_KEEP;
    for (size_t i = 0; i < sizeof fallbacks / sizeof fallbacks[0]; i++)
        if (!strcmp(fallbacks[i].from, type)) {
            type = fallbacks[i].to;
            break;
        }
    return fits(type, t->row_len) ? type : "F16";
}
