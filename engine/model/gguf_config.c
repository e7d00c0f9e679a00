#include "engine/model/gguf_config.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define KEY_CAP 128

/* The full key names of one architecture ("qwen3moe.embedding_length"), for lookups and for
 * model_config_validate's messages. */
struct arch_keys {
    char vocab[KEY_CAP], hidden[KEY_CAP], layers[KEY_CAP], heads[KEY_CAP], kv_heads[KEY_CAP], head_dim[KEY_CAP],
        value_len[KEY_CAP], ffn[KEY_CAP], moe_ffn[KEY_CAP], experts[KEY_CAP], used[KEY_CAP], ctx[KEY_CAP],
        theta[KEY_CAP], eps[KEY_CAP], rope_dims[KEY_CAP], rs_type[KEY_CAP], rs_factor[KEY_CAP], rs_orig[KEY_CAP],
        beta_fast[KEY_CAP], beta_slow[KEY_CAP], w_norm[KEY_CAP], shared[KEY_CAP];
    struct model_config_names names;
};

static void make_keys(struct arch_keys *k, const char *arch)
{
#define K(field, suffix) snprintf(k->field, KEY_CAP, "%s.%s", arch, suffix)
    snprintf(k->vocab, KEY_CAP, "tokenizer.ggml.tokens");
    K(hidden, "embedding_length");
    K(layers, "block_count");
    K(heads, "attention.head_count");
    K(kv_heads, "attention.head_count_kv");
    K(head_dim, "attention.key_length");
    K(value_len, "attention.value_length");
    K(ffn, "feed_forward_length");
    K(moe_ffn, "expert_feed_forward_length");
    K(experts, "expert_count");
    K(used, "expert_used_count");
    K(ctx, "context_length");
    K(theta, "rope.freq_base");
    K(eps, "attention.layer_norm_rms_epsilon");
    K(rope_dims, "rope.dimension_count");
    K(rs_type, "rope.scaling.type");
    K(rs_factor, "rope.scaling.factor");
    K(rs_orig, "rope.scaling.original_context_length");
    K(beta_fast, "rope.scaling.yarn_beta_fast");
    K(beta_slow, "rope.scaling.yarn_beta_slow");
    K(w_norm, "expert_weights_norm");
    K(shared, "expert_shared_count");
#undef K
    k->names = (struct model_config_names){
        .vocab_size = k->vocab, .hidden_size = k->hidden, .num_layers = k->layers, .num_heads = k->heads,
        .num_kv_heads = k->kv_heads, .head_dim = k->head_dim, .intermediate_size = k->ffn,
        .moe_intermediate_size = k->moe_ffn, .num_experts = k->experts, .num_experts_per_tok = k->used,
        .max_position_embeddings = k->ctx, .rope_theta = k->theta, .rms_norm_eps = k->eps,
        .rope_factor = k->rs_factor, .rope_original = k->rs_orig, .eos = "tokenizer.ggml.eos_token_id"};
}

/* An integer hyperparameter: absent gives `def` unless required; present must fit an int. */
static int get_int(const struct gguf_file *g, const char *key, bool required, int def, int *out,
                   struct ms_err *err)
{
    if (!gguf_has(g, key)) {
        *out = def;
        if (required) return ms_err_set(err, MS_ERR_INVALID, "%s: required key %s is missing", gguf_path(g), key);
        return MS_OK;
    }
    int64_t v;
    int rc = gguf_get_int(g, key, &v, err);
    if (rc) return rc;
    if (v < INT_MIN || v > INT_MAX)
        return ms_err_set(err, MS_ERR_INVALID, "%s: %s = %lld is out of range", gguf_path(g), key, (long long)v);
    *out = (int)v;
    return MS_OK;
}

static int get_float(const struct gguf_file *g, const char *key, bool required, double def, double *out,
                     struct ms_err *err)
{
    if (!gguf_has(g, key)) {
        *out = def;
        if (required) return ms_err_set(err, MS_ERR_INVALID, "%s: required key %s is missing", gguf_path(g), key);
        return MS_OK;
    }
    return gguf_get_float(g, key, out, err);
}

static int read_arch(const struct gguf_file *g, struct model_config *c, char *arch, size_t cap, struct ms_err *err)
{
    struct gguf_str s;
    int rc = gguf_get_str(g, "general.architecture", &s, err);
    if (rc) return rc;
    gguf_str_printable(s, arch, cap < 65 ? cap : 65);
    if (s.len == 8 && !memcmp(s.ptr, "qwen3moe", 8)) c->family = MODEL_FAMILY_QWEN3_MOE;
    else if (s.len == 5 && !memcmp(s.ptr, "qwen3", 5)) c->family = MODEL_FAMILY_QWEN3;
    else
        return ms_err_set(err, MS_ERR_UNSUPPORTED,
                          "%s: general.architecture \"%s\" is not supported (expected \"qwen3moe\" or \"qwen3\")",
                          gguf_path(g), arch);
    return MS_OK;
}

static int read_sizes(const struct gguf_file *g, const struct arch_keys *k, struct model_config *c, struct ms_err *err)
{
    bool moe = c->family == MODEL_FAMILY_QWEN3_MOE;
    int rc = get_int(g, k->layers, true, 0, &c->num_layers, err);
    if (!rc) rc = get_int(g, k->hidden, true, 0, &c->hidden_size, err);
    if (!rc) rc = get_int(g, k->heads, true, 0, &c->num_heads, err);
    if (!rc) rc = get_int(g, k->kv_heads, false, c->num_heads, &c->num_kv_heads, err);
    if (!rc && c->num_heads <= 0) rc = ms_err_set(err, MS_ERR_INVALID, "%s: %s = %d must be positive", gguf_path(g), k->heads, c->num_heads);
    if (!rc) rc = get_int(g, k->head_dim, false, c->hidden_size / (c->num_heads > 0 ? c->num_heads : 1), &c->head_dim, err);
    if (!rc) rc = get_int(g, k->ffn, !moe, 0, &c->intermediate_size, err);
    if (!rc && moe) rc = get_int(g, k->moe_ffn, true, 0, &c->moe_intermediate_size, err);
    if (!rc && moe) rc = get_int(g, k->experts, true, 0, &c->num_experts, err);
    if (!rc && moe) rc = get_int(g, k->used, true, 0, &c->num_experts_per_tok, err);
    if (!rc) rc = get_int(g, k->ctx, true, 0, &c->max_position_embeddings, err);
    if (!rc) rc = get_float(g, k->theta, false, 10000.0, &c->rope_theta, err);
    if (!rc) rc = get_float(g, k->eps, true, 0, &c->rms_norm_eps, err);
    if (rc) return rc;
    /* what the engine cannot run is refused by name, as config.json's unsupported fields are */
    int v;
    if ((rc = get_int(g, k->value_len, false, c->head_dim, &v, err))) return rc;
    if (v != c->head_dim)
        return ms_err_set(err, MS_ERR_UNSUPPORTED, "%s: %s %d differs from %s %d (not supported)", gguf_path(g),
                          k->value_len, v, k->head_dim, c->head_dim);
    if ((rc = get_int(g, k->rope_dims, false, c->head_dim, &v, err))) return rc;
    if (v != c->head_dim)
        return ms_err_set(err, MS_ERR_UNSUPPORTED, "%s: %s %d is not %s %d (partial rotary is not supported)",
                          gguf_path(g), k->rope_dims, v, k->head_dim, c->head_dim);
    if ((rc = get_int(g, k->shared, false, 0, &v, err))) return rc;
    if (v != 0)
        return ms_err_set(err, MS_ERR_UNSUPPORTED, "%s: %s %d is not supported (only 0)", gguf_path(g), k->shared, v);
    c->norm_topk_prob = true; /* llama.cpp's qwen3moe always renormalises the top-k weights */
    if (gguf_has(g, k->w_norm)) rc = gguf_get_bool(g, k->w_norm, &c->norm_topk_prob, err);
    return rc;
}

static int read_rope_scaling(const struct gguf_file *g, const struct arch_keys *k, struct model_config *c,
                             struct ms_err *err)
{
    c->rope_scaling.type = ROPE_SCALING_NONE;
    if (!gguf_has(g, k->rs_type)) return MS_OK;
    struct gguf_str s;
    int rc = gguf_get_str(g, k->rs_type, &s, err);
    if (rc) return rc;
    if (s.len == 4 && !memcmp(s.ptr, "none", 4)) return MS_OK;
    if (!(s.len == 4 && !memcmp(s.ptr, "yarn", 4)))
    {
        char type[65];
        gguf_str_printable(s, type, sizeof type);
        return ms_err_set(err, MS_ERR_UNSUPPORTED, "%s: %s \"%s\" is not supported (only \"yarn\")", gguf_path(g),
                          k->rs_type, type);
    }
    c->rope_scaling.type = ROPE_SCALING_YARN;
    rc = get_float(g, k->rs_factor, true, 0, &c->rope_scaling.factor, err);
    if (!rc) rc = get_int(g, k->rs_orig, false, c->max_position_embeddings, &c->rope_scaling.original_max_position_embeddings, err);
    if (!rc) rc = get_float(g, k->beta_fast, false, 32, &c->rope_scaling.beta_fast, err);
    if (!rc) rc = get_float(g, k->beta_slow, false, 1, &c->rope_scaling.beta_slow, err);
    double f = c->rope_scaling.factor;
    c->rope_scaling.attention_factor = f > 1 ? 0.1 * log(f) + 1.0 : 1.0;
    c->rope_scaling.truncate = true;
    return rc;
}

/* Which layers are sparse: in a qwen3moe file, those with a router (a layer with a dense
 * ffn_gate and no router is an mlp_only layer); none in a qwen3 file. */
static void read_layers(const struct gguf_file *g, struct model_config *c)
{
    c->decoder_sparse_step = 1;
    for (int l = 0; l < c->num_layers && l < MODEL_CONFIG_MAX_LAYERS; l++) {
        char n[64];
        snprintf(n, sizeof n, "blk.%d.ffn_gate_inp.weight", l);
        bool router = gguf_find_tensor(g, n) != NULL;
        snprintf(n, sizeof n, "blk.%d.ffn_gate.weight", l);
        bool dense = gguf_find_tensor(g, n) != NULL;
        c->layer_is_sparse[l] = c->family == MODEL_FAMILY_QWEN3_MOE && (router || !dense);
    }
    c->tie_word_embeddings = gguf_find_tensor(g, "output.weight") == NULL;
}

static void add_eos(struct model_config *c, int64_t id)
{
    for (int i = 0; i < c->num_eos_token_ids; i++)
        if (c->eos_token_ids[i] == id) return;
    if (c->num_eos_token_ids < MODEL_CONFIG_MAX_EOS && id >= 0 && id <= INT32_MAX)
        c->eos_token_ids[c->num_eos_token_ids++] = (int32_t)id;
}

/* The vocabulary, bos, and the end-of-generation set as llama.cpp builds it: eos, eot, eom,
 * and the tokens spelled <|im_end|> or <|endoftext|> (Qwen's generation_config lists both). */
static int read_tokens(const struct gguf_file *g, struct model_config *c, struct ms_err *err)
{
    struct gguf_array toks = {0};
    bool have_tokens = gguf_has(g, "tokenizer.ggml.tokens");
    int rc = MS_OK;
    if (have_tokens) {
        if ((rc = gguf_get_array(g, "tokenizer.ggml.tokens", &toks, err))) return rc;
        if (toks.type != GGUF_TYPE_STRING)
            return ms_err_set(err, MS_ERR_INVALID, "%s: tokenizer.ggml.tokens is not an array of strings", gguf_path(g));
        c->vocab_size = toks.n > INT_MAX ? INT_MAX : (int)toks.n;
    } else {
        const struct gguf_tensor *e = gguf_find_tensor(g, "token_embd.weight");
        if (!e)
            return ms_err_set(err, MS_ERR_INVALID, "%s: neither tokenizer.ggml.tokens nor token_embd.weight gives the vocabulary",
                              gguf_path(g));
        c->vocab_size = e->n_dims < 2 || e->ne[1] > INT_MAX ? INT_MAX : (int)e->ne[1];
    }
    static const char *const ids[] = {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id",
                                      "tokenizer.ggml.eom_token_id"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        int64_t v;
        if (!gguf_has(g, ids[i])) continue;
        if ((rc = gguf_get_int(g, ids[i], &v, err))) return rc;
        if (v < 0 || v >= c->vocab_size)
            return ms_err_set(err, MS_ERR_INVALID, "%s: %s = %lld is outside the vocabulary [0, %d)", gguf_path(g), ids[i],
                              (long long)v, c->vocab_size);
        add_eos(c, v);
    }
    for (uint64_t i = 0; have_tokens && i < toks.n; i++) {
        struct gguf_str s = gguf_array_str(&toks, i);
        if ((s.len == 10 && !memcmp(s.ptr, "<|im_end|>", 10)) || (s.len == 13 && !memcmp(s.ptr, "<|endoftext|>", 13)))
            add_eos(c, (int64_t)i);
    }
    if (gguf_has(g, "tokenizer.ggml.bos_token_id")) {
        int64_t v;
        if ((rc = gguf_get_int(g, "tokenizer.ggml.bos_token_id", &v, err))) return rc;
        if (v < 0 || v >= c->vocab_size)
            return ms_err_set(err, MS_ERR_INVALID, "%s: tokenizer.ggml.bos_token_id = %lld is outside the vocabulary",
                              gguf_path(g), (long long)v);
        c->bos_token_id = (int32_t)v;
    }
    return MS_OK;
}

/* general.sampling.* (llama.cpp's names for a model's recommended sampling), when present. */
static int read_sampling(const struct gguf_file *g, struct model_config *c, struct ms_err *err)
{
    int rc = get_float(g, "general.sampling.temp", false, -1, &c->default_temperature, err);
    if (!rc) rc = get_float(g, "general.sampling.top_p", false, -1, &c->default_top_p, err);
    if (!rc) rc = get_int(g, "general.sampling.top_k", false, -1, &c->default_top_k, err);
    if (!rc && !(c->default_temperature == -1 || (c->default_temperature >= 0 && c->default_temperature <= 1e6)))
        rc = ms_err_set(err, MS_ERR_INVALID, "%s: general.sampling.temp is out of range", gguf_path(g));
    if (!rc && !(c->default_top_p == -1 || (c->default_top_p >= 0 && c->default_top_p <= 1)))
        rc = ms_err_set(err, MS_ERR_INVALID, "%s: general.sampling.top_p is out of range", gguf_path(g));
    if (!rc && c->default_top_k < -1)
        rc = ms_err_set(err, MS_ERR_INVALID, "%s: general.sampling.top_k is out of range", gguf_path(g));
    return rc;
}

int gguf_config_read(const struct gguf_file *g, struct model_config *c, struct ms_err *err)
{
    model_config_init(c);
    char arch[80];
    int rc = read_arch(g, c, arch, sizeof arch, err);
    struct arch_keys k;
    if (!rc) make_keys(&k, arch);
    if (!rc) rc = read_sizes(g, &k, c, err);
    if (!rc) rc = read_rope_scaling(g, &k, c, err);
    if (!rc) rc = read_tokens(g, c, err);
    if (!rc) rc = read_sampling(g, c, err);
    if (rc) return rc;
    if (c->num_layers < 1 || c->num_layers > MODEL_CONFIG_MAX_LAYERS)
        return ms_err_set(err, MS_ERR_INVALID, "%s: %s = %d is out of range [1, %d]", gguf_path(g), k.layers,
                          c->num_layers, MODEL_CONFIG_MAX_LAYERS);
    read_layers(g, c);
    return model_config_validate(c, &k.names, gguf_path(g), err);
}

bool gguf_config_is_gguf_path(const char *path)
{
    size_t n = strlen(path);
    return n > 5 && !strcasecmp(path + n - 5, ".gguf");
}
