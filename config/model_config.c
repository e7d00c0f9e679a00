#include "config/model_config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reads an integer field. A missing field takes `def` unless `required`; a present field must be
 * an integral number in [lo, hi]. */
static int get_int(const cJSON *obj, const char *src, const char *name, bool required, int def,
                   int lo, int hi, int *out, struct ms_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!v || cJSON_IsNull(v)) {
        if (required) return ms_err_set(err, MS_ERR_INVALID, "%s: required field \"%s\" is missing", src, name);
        *out = def;
        return MS_OK;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return ms_err_set(err, MS_ERR_INVALID, "%s: field \"%s\" must be an integer", src, name);
    if (v->valuedouble < lo || v->valuedouble > hi)
        return ms_err_set(err, MS_ERR_INVALID, "%s: field \"%s\" = %.17g is out of range [%d, %d]",
                          src, name, v->valuedouble, lo, hi);
    *out = (int)v->valuedouble;
    return MS_OK;
}

static int get_double(const cJSON *obj, const char *src, const char *name, double def, double lo,
                      double hi, double *out, struct ms_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return MS_OK;
    }
    if (!cJSON_IsNumber(v))
        return ms_err_set(err, MS_ERR_INVALID, "%s: field \"%s\" must be a number", src, name);
    if (!(v->valuedouble >= lo && v->valuedouble <= hi))
        return ms_err_set(err, MS_ERR_INVALID, "%s: field \"%s\" = %.17g is out of range [%g, %g]",
                          src, name, v->valuedouble, lo, hi);
    *out = v->valuedouble;
    return MS_OK;
}

static int get_bool(const cJSON *obj, const char *src, const char *name, bool def, bool *out,
                    struct ms_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return MS_OK;
    }
    if (!cJSON_IsBool(v))
        return ms_err_set(err, MS_ERR_INVALID, "%s: field \"%s\" must be true or false", src, name);
    *out = cJSON_IsTrue(v);
    return MS_OK;
}

/* Fields whose only supported value is one setting: anything else is refused by name. */
static int check_unsupported(const cJSON *root, const char *src, struct ms_err *err)
{
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (act && !(cJSON_IsString(act) && !strcmp(act->valuestring, "silu")))
        return ms_err_set(err, MS_ERR_UNSUPPORTED, "%s: hidden_act %s is not supported (only \"silu\")",
                          src, cJSON_IsString(act) ? act->valuestring : "(not a string)");
    static const char *must_be_false[] = {"attention_bias", "use_sliding_window", "mlp_bias"};
    for (size_t i = 0; i < sizeof must_be_false / sizeof must_be_false[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, must_be_false[i]);
        if (v && !cJSON_IsNull(v) && !cJSON_IsFalse(v))
            return ms_err_set(err, MS_ERR_UNSUPPORTED, "%s: %s = %s is not supported (only false)", src,
                              must_be_false[i], cJSON_IsTrue(v) ? "true" : "a non-boolean value");
    }
    double partial = 1.0;
    int rc = get_double(root, src, "partial_rotary_factor", 1.0, 0, 1, &partial, err);
    if (rc) return rc;
    if (partial != 1.0)
        return ms_err_set(err, MS_ERR_UNSUPPORTED, "%s: partial_rotary_factor = %g is not supported (only 1.0)",
                          src, partial);
    return MS_OK;
}

/* rope_scaling: null, or yarn. The yarn factor is taken from rope_scaling.factor, as vLLM and
 * llama.cpp do; attention_factor defaults to 0.1*ln(factor)+1 (YaRN's mscale). */
static int parse_rope_scaling(struct model_config *cfg, const cJSON *root, const char *src,
                              struct ms_err *err)
{
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    cfg->rope_scaling.type = ROPE_SCALING_NONE;
    if (!rs || cJSON_IsNull(rs)) return MS_OK;
    if (!cJSON_IsObject(rs))
        return ms_err_set(err, MS_ERR_INVALID, "%s: rope_scaling must be an object or null", src);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!type) type = cJSON_GetObjectItemCaseSensitive(rs, "type");
    if (!cJSON_IsString(type))
        return ms_err_set(err, MS_ERR_INVALID, "%s: rope_scaling has no rope_type", src);
    if (!strcmp(type->valuestring, "default")) return MS_OK;
    if (strcmp(type->valuestring, "yarn"))
        return ms_err_set(err, MS_ERR_UNSUPPORTED,
                          "%s: rope_scaling.rope_type \"%s\" is not supported (only \"yarn\")", src,
                          type->valuestring);
    cfg->rope_scaling.type = ROPE_SCALING_YARN;
    char s[300];
    snprintf(s, sizeof s, "%s: rope_scaling", src);
    int rc = get_double(rs, s, "factor", -1, 1.0, 1024, &cfg->rope_scaling.factor, err);
    if (!rc && cfg->rope_scaling.factor < 0)
        rc = ms_err_set(err, MS_ERR_INVALID, "%s: rope_scaling.factor is missing", src);
    if (!rc)
        rc = get_int(rs, s, "original_max_position_embeddings", false, cfg->max_position_embeddings, 1,
                     1 << 30, &cfg->rope_scaling.original_max_position_embeddings, err);
    if (!rc) rc = get_double(rs, s, "beta_fast", 32, 0, 1e6, &cfg->rope_scaling.beta_fast, err);
    if (!rc) rc = get_double(rs, s, "beta_slow", 1, 0, 1e6, &cfg->rope_scaling.beta_slow, err);
    double f = cfg->rope_scaling.factor;
    if (!rc)
        rc = get_double(rs, s, "attention_factor", f > 1 ? 0.1 * log(f) + 1.0 : 1.0, 0, 100,
                        &cfg->rope_scaling.attention_factor, err);
    if (!rc) rc = get_bool(rs, s, "truncate", true, &cfg->rope_scaling.truncate, err);
    if (!rc && (cJSON_GetObjectItemCaseSensitive(rs, "mscale") ||
                cJSON_GetObjectItemCaseSensitive(rs, "mscale_all_dim")))
        rc = ms_err_set(err, MS_ERR_UNSUPPORTED, "%s: rope_scaling.mscale is not supported", src);
    return rc;
}

static int parse_layers(struct model_config *cfg, const cJSON *root, const char *src,
                        struct ms_err *err)
{
    const cJSON *only = cJSON_GetObjectItemCaseSensitive(root, "mlp_only_layers");
    if (only && !cJSON_IsNull(only) && !cJSON_IsArray(only))
        return ms_err_set(err, MS_ERR_INVALID, "%s: mlp_only_layers must be a list of layer indices", src);
    for (int i = 0; i < cfg->num_layers; i++)
        cfg->layer_is_sparse[i] = cfg->family == MODEL_FAMILY_QWEN3_MOE && cfg->num_experts > 0 &&
                                  (i + 1) % cfg->decoder_sparse_step == 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, only)
    {
        if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || it->valuedouble < 0 ||
            it->valuedouble >= cfg->num_layers)
            return ms_err_set(err, MS_ERR_INVALID, "%s: mlp_only_layers entry %g is not a layer index", src,
                              cJSON_IsNumber(it) ? it->valuedouble : NAN);
        cfg->layer_is_sparse[(int)it->valuedouble] = false;
    }
    return MS_OK;
}

static int parse_model_type(struct model_config *cfg, const cJSON *root, const char *src,
                            struct ms_err *err)
{
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (!cJSON_IsString(mt))
        return ms_err_set(err, MS_ERR_INVALID, "%s: required field \"model_type\" is missing", src);
    if (!strcmp(mt->valuestring, "qwen3_moe"))
        cfg->family = MODEL_FAMILY_QWEN3_MOE;
    else if (!strcmp(mt->valuestring, "qwen3"))
        cfg->family = MODEL_FAMILY_QWEN3;
    else
        return ms_err_set(err, MS_ERR_UNSUPPORTED,
                          "%s: model_type \"%s\" is not supported (expected \"qwen3_moe\" or \"qwen3\")",
                          src, mt->valuestring);
    return MS_OK;
}

static int parse_sizes(struct model_config *cfg, const cJSON *root, const char *src,
                       struct ms_err *err)
{
    const int big = 1 << 24;
    bool moe = cfg->family == MODEL_FAMILY_QWEN3_MOE;
    int rc = get_int(root, src, "vocab_size", true, 0, 1, big, &cfg->vocab_size, err);
    if (!rc) rc = get_int(root, src, "hidden_size", true, 0, 1, big, &cfg->hidden_size, err);
    if (!rc)
        rc = get_int(root, src, "num_hidden_layers", true, 0, 1, MODEL_CONFIG_MAX_LAYERS, &cfg->num_layers, err);
    if (!rc) rc = get_int(root, src, "num_attention_heads", true, 0, 1, 4096, &cfg->num_heads, err);
    if (!rc)
        rc = get_int(root, src, "num_key_value_heads", false, cfg->num_heads, 1, 4096, &cfg->num_kv_heads, err);
    if (!rc)
        rc = get_int(root, src, "head_dim", false, cfg->hidden_size / cfg->num_heads, 2, 4096, &cfg->head_dim, err);
    if (!rc) rc = get_int(root, src, "intermediate_size", !moe, 0, 0, big, &cfg->intermediate_size, err);
    if (!rc) rc = get_int(root, src, "moe_intermediate_size", moe, 0, 1, big, &cfg->moe_intermediate_size, err);
    if (!rc) rc = get_int(root, src, "num_experts", moe, 0, 0, 65536, &cfg->num_experts, err);
    if (!rc) rc = get_int(root, src, "num_experts_per_tok", moe, 0, 0, 65536, &cfg->num_experts_per_tok, err);
    if (!rc) rc = get_int(root, src, "decoder_sparse_step", false, 1, 1, 4096, &cfg->decoder_sparse_step, err);
    if (!rc)
        rc = get_int(root, src, "max_position_embeddings", false, 32768, 1, 1 << 30,
                     &cfg->max_position_embeddings, err);
    if (rc) return rc;
    if (!moe) cfg->num_experts = cfg->num_experts_per_tok = cfg->moe_intermediate_size = 0;
    return MS_OK;
}

const struct model_config_names model_config_hf_names = {
    .vocab_size = "vocab_size",
    .hidden_size = "hidden_size",
    .num_layers = "num_hidden_layers",
    .num_heads = "num_attention_heads",
    .num_kv_heads = "num_key_value_heads",
    .head_dim = "head_dim",
    .intermediate_size = "intermediate_size",
    .moe_intermediate_size = "moe_intermediate_size",
    .num_experts = "num_experts",
    .num_experts_per_tok = "num_experts_per_tok",
    .max_position_embeddings = "max_position_embeddings",
    .rope_theta = "rope_theta",
    .rms_norm_eps = "rms_norm_eps",
    .rope_factor = "rope_scaling.factor",
    .rope_original = "rope_scaling.original_max_position_embeddings",
    .eos = "eos_token_id",
};

void model_config_init(struct model_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->bos_token_id = -1;
    cfg->default_temperature = cfg->default_top_p = -1;
    cfg->default_top_k = -1;
}

static int check_range(const char *src, const char *name, long long v, long long lo, long long hi, struct ms_err *err)
{
    if (v < lo || v > hi)
        return ms_err_set(err, MS_ERR_INVALID, "%s: %s = %lld is out of range [%lld, %lld]", src, name, v, lo, hi);
    return MS_OK;
}

static int check_range_f(const char *src, const char *name, double v, double lo, double hi, struct ms_err *err)
{
    if (!(v >= lo && v <= hi))
        return ms_err_set(err, MS_ERR_INVALID, "%s: %s = %.17g is out of range [%g, %g]", src, name, v, lo, hi);
    return MS_OK;
}

static int validate_sizes(const struct model_config *c, const struct model_config_names *n, const char *src,
                          struct ms_err *err)
{
    const int big = 1 << 24;
    bool moe = c->family == MODEL_FAMILY_QWEN3_MOE;
    int rc = check_range(src, n->vocab_size, c->vocab_size, 1, big, err);
    if (!rc) rc = check_range(src, n->hidden_size, c->hidden_size, 1, big, err);
    if (!rc) rc = check_range(src, n->num_layers, c->num_layers, 1, MODEL_CONFIG_MAX_LAYERS, err);
    if (!rc) rc = check_range(src, n->num_heads, c->num_heads, 1, 4096, err);
    if (!rc) rc = check_range(src, n->num_kv_heads, c->num_kv_heads, 1, 4096, err);
    if (!rc) rc = check_range(src, n->head_dim, c->head_dim, 2, 4096, err);
    if (!rc) rc = check_range(src, n->intermediate_size, c->intermediate_size, 0, big, err);
    if (!rc && moe) rc = check_range(src, n->moe_intermediate_size, c->moe_intermediate_size, 1, big, err);
    if (!rc && moe) rc = check_range(src, n->num_experts, c->num_experts, 0, 65536, err);
    if (!rc) rc = check_range(src, n->max_position_embeddings, c->max_position_embeddings, 1, 1 << 30, err);
    if (!rc) rc = check_range(src, "decoder_sparse_step", c->decoder_sparse_step, 1, 4096, err);
    if (rc) return rc;
    if (c->num_heads % c->num_kv_heads)
        return ms_err_set(err, MS_ERR_INVALID, "%s: %s %d is not a multiple of %s %d", src, n->num_heads, c->num_heads,
                          n->num_kv_heads, c->num_kv_heads);
    if (c->head_dim % 2)
        return ms_err_set(err, MS_ERR_INVALID, "%s: %s %d must be even for RoPE", src, n->head_dim, c->head_dim);
    if (moe && (c->num_experts_per_tok < 1 || c->num_experts_per_tok > c->num_experts))
        return ms_err_set(err, MS_ERR_INVALID, "%s: %s %d must be in [1, %s %d]", src, n->num_experts_per_tok,
                          c->num_experts_per_tok, n->num_experts, c->num_experts);
    bool any_dense = false;
    for (int i = 0; i < c->num_layers; i++) any_dense |= !c->layer_is_sparse[i];
    if (any_dense && c->intermediate_size < 1)
        return ms_err_set(err, MS_ERR_INVALID, "%s: %s is required for dense MLP layers", src, n->intermediate_size);
    return MS_OK;
}

int model_config_validate(const struct model_config *c, const struct model_config_names *n, const char *src,
                          struct ms_err *err)
{
    int rc = validate_sizes(c, n, src, err);
    if (!rc) rc = check_range_f(src, n->rope_theta, c->rope_theta, 1e-6, 1e30, err);
    if (!rc) rc = check_range_f(src, n->rms_norm_eps, c->rms_norm_eps, 0, 1, err);
    if (!rc && c->rope_scaling.type == ROPE_SCALING_YARN) {
        rc = check_range_f(src, n->rope_factor, c->rope_scaling.factor, 1.0, 1024, err);
        if (!rc)
            rc = check_range(src, n->rope_original, c->rope_scaling.original_max_position_embeddings, 1, 1 << 30, err);
    }
    for (int i = 0; !rc && i < c->num_eos_token_ids; i++)
        rc = check_range(src, n->eos, c->eos_token_ids[i], 0, c->vocab_size - 1, err);
    return rc;
}

int model_config_parse(struct model_config *cfg, const char *json_text, const char *src,
                       struct ms_err *err)
{
    model_config_init(cfg);
    cJSON *root = cJSON_Parse(json_text);
    if (!root) return ms_err_set(err, MS_ERR_INVALID, "%s: not valid JSON", src);
    int rc = MS_OK;
    if (!cJSON_IsObject(root)) rc = ms_err_set(err, MS_ERR_INVALID, "%s: not a JSON object", src);
    if (!rc) rc = parse_model_type(cfg, root, src, err);
    if (!rc) rc = check_unsupported(root, src, err);
    if (!rc) rc = parse_sizes(cfg, root, src, err);
    if (!rc) rc = get_bool(root, src, "norm_topk_prob", false, &cfg->norm_topk_prob, err);
    if (!rc) rc = get_bool(root, src, "tie_word_embeddings", false, &cfg->tie_word_embeddings, err);
    if (!rc) rc = get_double(root, src, "rope_theta", 10000.0, 1e-6, 1e30, &cfg->rope_theta, err);
    if (!rc) rc = get_double(root, src, "rms_norm_eps", 1e-6, 0, 1, &cfg->rms_norm_eps, err);
    if (!rc) rc = parse_rope_scaling(cfg, root, src, err);
    if (!rc) rc = parse_layers(cfg, root, src, err);
    /* config.json may carry eos_token_id too; generation_config.json, read later, takes precedence */
    const cJSON *eos = cJSON_GetObjectItemCaseSensitive(root, "eos_token_id");
    if (!rc && cJSON_IsNumber(eos) && eos->valuedouble >= 0 && eos->valuedouble < 1 << 30) {
        cfg->eos_token_ids[0] = (int32_t)eos->valuedouble;
        cfg->num_eos_token_ids = 1;
    }
    if (!rc) rc = model_config_validate(cfg, &model_config_hf_names, src, err);
    cJSON_Delete(root);
    return rc;
}

static int parse_eos(struct model_config *cfg, const cJSON *eos, const char *src, struct ms_err *err)
{
    if (!eos || cJSON_IsNull(eos)) return MS_OK;
    int n = 0;
    const cJSON *it;
    if (cJSON_IsNumber(eos)) {
        cfg->eos_token_ids[n++] = (int32_t)eos->valuedouble;
    } else if (cJSON_IsArray(eos)) {
        cJSON_ArrayForEach(it, eos)
        {
            if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble >= cfg->vocab_size)
                return ms_err_set(err, MS_ERR_INVALID, "%s: eos_token_id entries must be token ids", src);
            if (n == MODEL_CONFIG_MAX_EOS)
                return ms_err_set(err, MS_ERR_UNSUPPORTED, "%s: more than %d eos_token_id entries", src,
                                  MODEL_CONFIG_MAX_EOS);
            cfg->eos_token_ids[n++] = (int32_t)it->valuedouble;
        }
    } else {
        return ms_err_set(err, MS_ERR_INVALID, "%s: eos_token_id must be an integer or a list", src);
    }
    cfg->num_eos_token_ids = n;
    return MS_OK;
}

int model_config_parse_generation(struct model_config *cfg, const char *json_text,
                                  const char *src, struct ms_err *err)
{
    cJSON *root = cJSON_Parse(json_text);
    if (!root) return ms_err_set(err, MS_ERR_INVALID, "%s: not valid JSON", src);
    int rc = MS_OK;
    if (!cJSON_IsObject(root)) rc = ms_err_set(err, MS_ERR_INVALID, "%s: not a JSON object", src);
    if (!rc) rc = parse_eos(cfg, cJSON_GetObjectItemCaseSensitive(root, "eos_token_id"), src, err);
    if (!rc) rc = get_int(root, src, "bos_token_id", false, -1, -1, 1 << 30, &cfg->bos_token_id, err);
    if (!rc) rc = get_double(root, src, "temperature", -1, 0, 1e6, &cfg->default_temperature, err);
    if (!rc) rc = get_double(root, src, "top_p", -1, 0, 1, &cfg->default_top_p, err);
    if (!rc) rc = get_int(root, src, "top_k", false, -1, -1, 1 << 30, &cfg->default_top_k, err);
    cJSON_Delete(root);
    return rc;
}

int model_config_load(struct model_config *cfg, const char *model_dir, struct ms_err *err)
{
    char path[4096];
    char *text = NULL;
    snprintf(path, sizeof path, "%s/config.json", model_dir);
    int rc = ms_read_file(path, &text, NULL, err);
    if (rc) return rc;
    rc = model_config_parse(cfg, text, path, err);
    free(text);
    if (rc) return rc;
    snprintf(path, sizeof path, "%s/generation_config.json", model_dir);
    FILE *probe = fopen(path, "rb");
    if (!probe) return MS_OK; /* optional */
    fclose(probe);
    rc = ms_read_file(path, &text, NULL, err);
    if (rc) return rc;
    rc = model_config_parse_generation(cfg, text, path, err);
    free(text);
    return rc;
}

bool model_config_is_eos(const struct model_config *cfg, int32_t token)
{
    for (int i = 0; i < cfg->num_eos_token_ids; i++)
        if (cfg->eos_token_ids[i] == token) return true;
    return false;
}
