#include "engine/model/gguf_meta.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* llama.cpp's llama_token_type values */
enum { TOKEN_NORMAL = 1, TOKEN_CONTROL = 3, TOKEN_USER_DEFINED = 4, TOKEN_UNUSED = 5 };

const char *gguf_meta_arch(const struct model_config *cfg)
{
    return cfg->family == MODEL_FAMILY_QWEN3_MOE ? "qwen3moe" : "qwen3";
}

static int kv_u32(struct gguf_w *w, const char *arch, const char *key, uint32_t v, struct ms_err *err)
{
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    return gguf_w_kv_u32(w, k, v, err);
}

static int kv_f32(struct gguf_w *w, const char *arch, const char *key, double v, struct ms_err *err)
{
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    return gguf_w_kv_f32(w, k, (float)v, err);
}

static int kv_cstr(struct gguf_w *w, const char *key, const char *s, struct ms_err *err)
{
    return gguf_w_kv_str(w, key, s, strlen(s), err);
}

static int model_kvs(struct gguf_w *w, const struct model_config *c, const char *name, struct ms_err *err)
{
    const char *a = gguf_meta_arch(c);
    int rc = kv_cstr(w, "general.architecture", a, err);
    if (!rc) rc = kv_cstr(w, "general.type", "model", err);
    if (!rc) rc = kv_cstr(w, "general.name", name, err);
    if (!rc) rc = gguf_w_kv_u32(w, "general.alignment", GGUF_W_DEFAULT_ALIGNMENT, err);
    if (!rc) rc = kv_u32(w, a, "block_count", (uint32_t)c->num_layers, err);
    if (!rc) rc = kv_u32(w, a, "context_length", (uint32_t)c->max_position_embeddings, err);
    if (!rc) rc = kv_u32(w, a, "embedding_length", (uint32_t)c->hidden_size, err);
    if (!rc) rc = kv_u32(w, a, "feed_forward_length", (uint32_t)c->intermediate_size, err);
    if (!rc) rc = kv_u32(w, a, "attention.head_count", (uint32_t)c->num_heads, err);
    if (!rc) rc = kv_u32(w, a, "attention.head_count_kv", (uint32_t)c->num_kv_heads, err);
    if (!rc) rc = kv_f32(w, a, "rope.freq_base", c->rope_theta, err);
    if (!rc) rc = kv_f32(w, a, "attention.layer_norm_rms_epsilon", c->rms_norm_eps, err);
    if (!rc) rc = kv_u32(w, a, "attention.key_length", (uint32_t)c->head_dim, err);
    if (!rc) rc = kv_u32(w, a, "attention.value_length", (uint32_t)c->head_dim, err);
    if (!rc && c->family == MODEL_FAMILY_QWEN3_MOE) {
        rc = kv_u32(w, a, "expert_used_count", (uint32_t)c->num_experts_per_tok, err);
        if (!rc) rc = kv_u32(w, a, "expert_count", (uint32_t)c->num_experts, err);
        if (!rc) rc = kv_u32(w, a, "expert_feed_forward_length", (uint32_t)c->moe_intermediate_size, err);
        if (!c->norm_topk_prob) /* llama.cpp's qwen3moe graph always renormalises the top-k weights */
            fprintf(stderr, "moeserve quantize: warning: norm_topk_prob false is not expressible in GGUF\n");
    }
    if (!rc && c->rope_scaling.type == ROPE_SCALING_YARN) {
        char k[128];
        snprintf(k, sizeof k, "%s.rope.scaling.type", a);
        rc = kv_cstr(w, k, "yarn", err);
        if (!rc) rc = kv_f32(w, a, "rope.scaling.factor", c->rope_scaling.factor, err);
        if (!rc)
            rc = kv_u32(w, a, "rope.scaling.original_context_length",
                        (uint32_t)c->rope_scaling.original_max_position_embeddings, err);
    }
    return rc;
}

/* ---- the tokenizer */

struct vocab {
    int n;
    const char **text; /* [n] borrowed from the JSON, or pad[i] */
    char **pad;        /* [n] owned "[PADi]" names of ids nothing defines */
    int32_t *type;     /* [n] */
};

static void vocab_free(struct vocab *v)
{
    for (int i = 0; v->pad && i < v->n; i++) free(v->pad[i]);
    free(v->pad);
    free(v->text);
    free(v->type);
}

static int vocab_build(struct vocab *v, const cJSON *tok, int vocab_size, const char *path, struct ms_err *err)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(tok, "model");
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(tok, "added_tokens");
    if (!cJSON_IsObject(map)) return ms_err_set(err, MS_ERR_INVALID, "%s: no model.vocab object", path);
    int n = vocab_size;
    const cJSON *e;
    cJSON_ArrayForEach(e, map)
    {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= 1 << 24)
            return ms_err_set(err, MS_ERR_INVALID, "%s: model.vocab entry %s has no valid id", path, e->string);
        if (e->valueint + 1 > n) n = e->valueint + 1;
    }
    cJSON_ArrayForEach(e, added)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(e, "content");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= 1 << 24 || !cJSON_IsString(content))
            return ms_err_set(err, MS_ERR_INVALID, "%s: an added_tokens entry has no valid id and content", path);
        if (id->valueint + 1 > n) n = id->valueint + 1;
    }
    v->n = n;
    v->text = calloc((size_t)n, sizeof *v->text);
    v->pad = calloc((size_t)n, sizeof *v->pad);
    v->type = calloc((size_t)n, sizeof *v->type);
    if (!v->text || !v->pad || !v->type) return ms_err_set(err, MS_ERR_NOMEM, "out of memory");
    cJSON_ArrayForEach(e, map)
    {
        v->text[e->valueint] = e->string;
        v->type[e->valueint] = TOKEN_NORMAL;
    }
    cJSON_ArrayForEach(e, added)
    {
        int id = cJSON_GetObjectItemCaseSensitive(e, "id")->valueint;
        v->text[id] = cJSON_GetObjectItemCaseSensitive(e, "content")->valuestring;
        v->type[id] = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "special")) ? TOKEN_CONTROL : TOKEN_USER_DEFINED;
    }
    for (int i = 0; i < n; i++) {
        if (v->text[i]) continue;
        char buf[32];
        snprintf(buf, sizeof buf, "[PAD%d]", i);
        if (!(v->pad[i] = strdup(buf))) return ms_err_set(err, MS_ERR_NOMEM, "out of memory");
        v->text[i] = v->pad[i];
        v->type[i] = TOKEN_UNUSED;
    }
    return MS_OK;
}

/* The id of token text `s` (the last id holding it, as make_gguf.py's dict), or -1. */
static int64_t vocab_find(const struct vocab *v, const char *s)
{
    for (int i = v->n - 1; i >= 0; i--)
        if (v->type[i] != TOKEN_UNUSED && !strcmp(v->text[i], s)) return i;
    return -1;
}

/* tokenizer_config.json's special token `key`: a string or {"content": ...}. */
static const char *special_text(const cJSON *tcfg, const char *key)
{
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(tcfg, key);
    if (cJSON_IsObject(e)) e = cJSON_GetObjectItemCaseSensitive(e, "content");
    return cJSON_IsString(e) ? e->valuestring : NULL;
}

static int merges_kv(struct gguf_w *w, const cJSON *tok, const char *path, struct ms_err *err)
{
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(tok, "model"), "merges");
    if (!cJSON_IsArray(merges)) return ms_err_set(err, MS_ERR_INVALID, "%s: no model.merges array", path);
    int n = cJSON_GetArraySize(merges), i = 0, rc = MS_OK;
    char **m = calloc((size_t)n + 1, sizeof *m);
    if (!m) return ms_err_set(err, MS_ERR_NOMEM, "out of memory");
    const cJSON *e;
    cJSON_ArrayForEach(e, merges)
    {
        if (cJSON_IsString(e)) {
            m[i] = strdup(e->valuestring);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(e->child) &&
                   cJSON_IsString(e->child->next)) {
            size_t a = strlen(e->child->valuestring), b = strlen(e->child->next->valuestring);
            if ((m[i] = malloc(a + b + 2))) {
                memcpy(m[i], e->child->valuestring, a);
                m[i][a] = ' ';
                memcpy(m[i] + a + 1, e->child->next->valuestring, b + 1);
            }
        } else {
            rc = ms_err_set(err, MS_ERR_INVALID, "%s: merge %d is neither \"a b\" nor [\"a\", \"b\"]", path, i);
            break;
        }
        if (!m[i++]) {
            rc = ms_err_set(err, MS_ERR_NOMEM, "out of memory");
            break;
        }
    }
    if (!rc) rc = gguf_w_kv_str_array(w, "tokenizer.ggml.merges", (const char *const *)m, NULL, (uint64_t)n, err);
    for (int k = 0; k < n; k++) free(m[k]);
    free(m);
    return rc;
}

static int special_kvs(struct gguf_w *w, const struct vocab *v, const cJSON *tcfg, struct ms_err *err)
{
    const char *eos = special_text(tcfg, "eos_token"), *pad = special_text(tcfg, "pad_token");
    const char *bos = special_text(tcfg, "bos_token");
    int64_t ids[3] = {eos ? vocab_find(v, eos) : -1, pad ? vocab_find(v, pad) : -1,
                      bos ? vocab_find(v, bos) : -1};
    if (ids[2] < 0) ids[2] = vocab_find(v, "<|endoftext|>"); /* what convert_hf_to_gguf writes for Qwen (unused) */
    static const char *const keys[3] = {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.padding_token_id",
                                        "tokenizer.ggml.bos_token_id"};
    int rc = MS_OK;
    for (int i = 0; !rc && i < 3; i++)
        if (ids[i] >= 0) rc = gguf_w_kv_u32(w, keys[i], (uint32_t)ids[i], err);
    const cJSON *add_bos = cJSON_GetObjectItemCaseSensitive(tcfg, "add_bos_token");
    if (!rc) rc = gguf_w_kv_bool(w, "tokenizer.ggml.add_bos_token", cJSON_IsTrue(add_bos), err);
    const cJSON *tmpl = cJSON_GetObjectItemCaseSensitive(tcfg, "chat_template");
    if (!rc && cJSON_IsString(tmpl) && tmpl->valuestring[0])
        rc = kv_cstr(w, "tokenizer.chat_template", tmpl->valuestring, err);
    return rc;
}

static cJSON *read_json(const char *dir, const char *file, char *path, size_t cap, struct ms_err *err)
{
    snprintf(path, cap, "%s/%s", dir, file);
    char *text;
    if (ms_read_file(path, &text, NULL, err)) return NULL;
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j) ms_err_set(err, MS_ERR_INVALID, "%s: not valid JSON", path);
    return j;
}

static int tokenizer_kvs(struct gguf_w *w, const char *dir, int vocab_size, struct ms_err *err)
{
    char tpath[4096], cpath[4096];
    cJSON *tok = read_json(dir, "tokenizer.json", tpath, sizeof tpath, err);
    if (!tok) return MS_ERR_INVALID;
    cJSON *tcfg = read_json(dir, "tokenizer_config.json", cpath, sizeof cpath, err);
    if (!tcfg) {
        cJSON_Delete(tok);
        return MS_ERR_INVALID;
    }
    struct vocab v = {0};
    int rc = vocab_build(&v, tok, vocab_size, tpath, err);
    if (!rc) rc = kv_cstr(w, "tokenizer.ggml.model", "gpt2", err);
    if (!rc) rc = kv_cstr(w, "tokenizer.ggml.pre", "qwen2", err);
    if (!rc) rc = gguf_w_kv_str_array(w, "tokenizer.ggml.tokens", v.text, NULL, (uint64_t)v.n, err);
    if (!rc) rc = gguf_w_kv_array(w, "tokenizer.ggml.token_type", GGUF_W_INT32, v.type, (uint64_t)v.n, err);
    if (!rc) rc = merges_kv(w, tok, tpath, err);
    if (!rc) rc = special_kvs(w, &v, tcfg, err);
    vocab_free(&v);
    cJSON_Delete(tok);
    cJSON_Delete(tcfg);
    return rc;
}

int gguf_meta_add(struct gguf_w *w, const struct model_config *cfg, const char *model_dir,
                  const struct quant_scheme *scheme, const char *name, struct ms_err *err)
{
    int rc = model_kvs(w, cfg, name, err);
    if (!rc) rc = gguf_w_kv_u32(w, "general.file_type", scheme->file_type, err);
    if (!rc && scheme->quantized) rc = gguf_w_kv_u32(w, "general.quantization_version", 2, err);
    if (!rc) rc = tokenizer_kvs(w, model_dir, cfg->vocab_size, err);
    if (!rc && scheme->description) rc = kv_cstr(w, "general.description", scheme->description, err);
    return rc;
}

/* ---- metadata carried over from a GGUF */

static int copy_scalar(struct gguf_w *w, const struct gguf_file *g, const char *key, int type, struct ms_err *err)
{
    union {
        uint8_t u8;
        int8_t i8;
        uint16_t u16;
        int16_t i16;
        uint32_t u32;
        int32_t i32;
        uint64_t u64;
        int64_t i64;
        float f32;
        double f64;
    } v = {0};
    bool b = false;
    int rc;
    switch (type) {
    case GGUF_TYPE_UINT8: rc = gguf_get_u8(g, key, &v.u8, err); break;
    case GGUF_TYPE_INT8: rc = gguf_get_i8(g, key, &v.i8, err); break;
    case GGUF_TYPE_UINT16: rc = gguf_get_u16(g, key, &v.u16, err); break;
    case GGUF_TYPE_INT16: rc = gguf_get_i16(g, key, &v.i16, err); break;
    case GGUF_TYPE_UINT32: rc = gguf_get_u32(g, key, &v.u32, err); break;
    case GGUF_TYPE_INT32: rc = gguf_get_i32(g, key, &v.i32, err); break;
    case GGUF_TYPE_UINT64: rc = gguf_get_u64(g, key, &v.u64, err); break;
    case GGUF_TYPE_INT64: rc = gguf_get_i64(g, key, &v.i64, err); break;
    case GGUF_TYPE_FLOAT32: rc = gguf_get_f32(g, key, &v.f32, err); break;
    case GGUF_TYPE_FLOAT64: rc = gguf_get_f64(g, key, &v.f64, err); break;
    case GGUF_TYPE_BOOL:
        rc = gguf_get_bool(g, key, &b, err);
        v.u8 = b;
        break;
    default: return ms_err_set(err, MS_ERR_INVALID, "%s: key %s has value type %d", gguf_path(g), key, type);
    }
    return rc ? rc : gguf_w_kv(w, key, (enum gguf_w_type)type, &v, err);
}

static int copy_str_array(struct gguf_w *w, const char *key, const struct gguf_array *a, struct ms_err *err)
{
    const char **s = malloc((a->n ? a->n : 1) * sizeof *s);
    size_t *lens = malloc((a->n ? a->n : 1) * sizeof *lens);
    int rc = s && lens ? MS_OK : ms_err_set(err, MS_ERR_NOMEM, "out of memory for %s", key);
    for (uint64_t i = 0; !rc && i < a->n; i++) {
        struct gguf_str e = gguf_array_str(a, i);
        s[i] = e.ptr;
        lens[i] = e.len;
    }
    if (!rc) rc = gguf_w_kv_str_array(w, key, s, lens, a->n, err);
    free(s);
    free(lens);
    return rc;
}

/* One key of g, as stored (the reader's value types are numbered as the writer's). */
static int copy_kv(struct gguf_w *w, const struct gguf_file *g, const char *key, struct ms_err *err)
{
    int type = gguf_key_type(g, key);
    if (type == GGUF_TYPE_STRING) {
        struct gguf_str s;
        int rc = gguf_get_str(g, key, &s, err);
        return rc ? rc : gguf_w_kv_str(w, key, s.ptr, s.len, err);
    }
    if (type != GGUF_TYPE_ARRAY) return copy_scalar(w, g, key, type, err);
    struct gguf_array a;
    int rc = gguf_get_array(g, key, &a, err);
    if (rc) return rc;
    if (a.type == GGUF_TYPE_STRING) return copy_str_array(w, key, &a, err);
    return gguf_w_kv_array(w, key, (enum gguf_w_type)a.type, a.data, a.n, err);
}

int gguf_meta_add_from_gguf(struct gguf_w *w, const struct model_config *cfg, const struct gguf_file *in,
                            const struct quant_scheme *scheme, const char *name, struct ms_err *err)
{
    if (!gguf_has(in, "tokenizer.ggml.tokens"))
        return ms_err_set(err, MS_ERR_INVALID, "%s: no tokenizer.ggml.tokens (the output needs the tokenizer)",
                          gguf_path(in));
    int rc = model_kvs(w, cfg, name, err);
    if (!rc) rc = gguf_w_kv_u32(w, "general.file_type", scheme->file_type, err);
    if (!rc && scheme->quantized) rc = gguf_w_kv_u32(w, "general.quantization_version", 2, err);
    for (int i = 0; !rc && i < gguf_n_kv(in); i++) {
        const char *key = gguf_key_at(in, i);
        if (!strncmp(key, "tokenizer.", 10)) rc = copy_kv(w, in, key, err);
    }
    if (!rc && scheme->description) rc = kv_cstr(w, "general.description", scheme->description, err);
    return rc;
}
