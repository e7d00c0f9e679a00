#include "server/constraint.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/model_config.h"
#include "tokenizer/tokenizer.h"

/* Through the cache: key is the grammar's source text. */
static struct gram *cached(struct gram_cache *cache, const char *key, const cJSON *schema, int n_tools,
                           const char *const *names, const cJSON *const *params, struct ms_err *err)
{
    struct gram *g = cache ? gram_cache_get(cache, key) : NULL;
    if (g) return g;
    g = n_tools ? gram_compile_tool_call(n_tools, names, params, err)
        : schema ? gram_compile_json_schema(schema, err)
                 : gram_compile_json_object(err);
    if (g && cache) gram_cache_put(cache, key, g);
    return g;
}

/* The cache key of a grammar made from `v`: "<kind>:<v as compact JSON>" (malloc'd; NULL: out of memory). */
static char *cache_key(const char *kind, const cJSON *v)
{
    char *text = cJSON_PrintUnformatted(v);
    size_t n = text ? strlen(kind) + strlen(text) + 2 : 0;
    char *key = text ? malloc(n) : NULL;
    if (key) snprintf(key, n, "%s:%s", kind, text);
    free(text);
    return key;
}

static int schema_grammar(struct oa_request *r, struct gram_cache *cache, const cJSON *schema, const char *param,
                          struct oa_error *e)
{
    char *key = cache_key("schema", schema);
    if (!key) return oa_error_set(e, 500, NULL, NULL, "out of memory");
    struct ms_err err = {{0}};
    r->grammar = cached(cache, key, schema, 0, NULL, NULL, &err);
    free(key);
    if (!r->grammar)
        return oa_error_set(e, strstr(err.msg, "out of memory") ? 500 : 400, param, NULL,
                            "'%s' schema cannot be enforced: %s", param, err.msg);
    return 0;
}

/* guided_choice / structured_outputs.choice: a list of non-empty strings, the answer exactly one. */
static int choice_grammar(struct oa_request *r, struct gram_cache *cache, const cJSON *list, const char *param,
                          struct oa_error *e)
{
    int n = cJSON_IsArray(list) ? cJSON_GetArraySize(list) : 0;
    if (n < 1 || n > GRAM_MAX_ENUM)
        return oa_error_set(e, 400, param, NULL, "'%s' must be a list of 1 to %d strings", param, GRAM_MAX_ENUM);
    const char **texts = calloc((size_t)n, sizeof *texts);
    if (!texts) return oa_error_set(e, 500, NULL, NULL, "out of memory");
    int k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, list)
    {
        if (!cJSON_IsString(it)) {
            free(texts);
            return oa_error_set(e, 400, param, NULL, "'%s' must be a list of strings", param);
        }
        texts[k++] = it->valuestring;
    }
    char *key = cache_key("choice", list);
    struct ms_err err = {{0}};
    struct gram *g = key && cache ? gram_cache_get(cache, key) : NULL;
    if (!g && key && (g = gram_compile_choice(n, texts, &err)) && cache) gram_cache_put(cache, key, g);
    free(texts);
    free(key);
    r->grammar = g;
    if (!g)
        return oa_error_set(e, err.msg[0] && !strstr(err.msg, "out of memory") ? 400 : 500, param, NULL,
                            "'%s': %s", param, err.msg[0] ? err.msg : "out of memory");
    return 0;
}

/* guided_regex / structured_outputs.regex: the whole answer, raw, matches the regex. */
static int regex_grammar(struct oa_request *r, struct gram_cache *cache, const cJSON *v, const char *param,
                         struct oa_error *e)
{
    if (!cJSON_IsString(v)) return oa_error_set(e, 400, param, NULL, "'%s' must be a string (a regular expression)", param);
    char *key = cache_key("regex", v);
    struct ms_err err = {{0}};
    struct gram *g = key && cache ? gram_cache_get(cache, key) : NULL;
    if (!g && key && (g = gram_compile_regex(v->valuestring, &err)) && cache) gram_cache_put(cache, key, g);
    free(key);
    r->grammar = g;
    if (!g)
        return oa_error_set(e, err.msg[0] && !strstr(err.msg, "out of memory") ? 400 : 500, param, NULL,
                            "'%s' cannot be enforced: %s", param, err.msg[0] ? err.msg : "out of memory");
    return 0;
}

/* A JSON Schema given as an object or as its JSON text (vLLM takes both). */
static int json_grammar(struct oa_request *r, struct gram_cache *cache, const cJSON *v, const char *param,
                        struct oa_error *e)
{
    cJSON *parsed = cJSON_IsString(v) ? cJSON_Parse(v->valuestring) : NULL;
    const cJSON *schema = parsed ? parsed : v;
    int rc = cJSON_IsObject(schema) ? schema_grammar(r, cache, schema, param, e)
                                    : oa_error_set(e, 400, param, NULL, "'%s' must be a JSON Schema object", param);
    cJSON_Delete(parsed);
    return rc;
}

/* vLLM's spellings: "guided_json" (a schema, or its JSON text), "guided_choice" (a list of
 * strings), "guided_regex", and {"structured_outputs": {"json" | "choice" | "regex" |
 * "json_object": true}}. */
static const char *const VLLM_FIELDS[] = {"structured_outputs", "guided_json", "guided_choice", "guided_regex"};

/* The vLLM field the request gives (*v NULL: none); a 400 when it gives more than one, since
 * all but one would be ignored. */
static int vllm_field(const struct oa_request *r, const cJSON **v, const char **name, struct oa_error *e)
{
    *v = NULL;
    *name = NULL;
    for (size_t i = 0; i < sizeof VLLM_FIELDS / sizeof *VLLM_FIELDS; i++) {
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(r->root, VLLM_FIELDS[i]);
        if (!f || cJSON_IsNull(f)) continue;
        if (*v)
            return oa_error_set(e, 400, VLLM_FIELDS[i], NULL, "give one of 'structured_outputs', 'guided_json', "
                                "'guided_choice' and 'guided_regex', not both '%s' and '%s'", *name, VLLM_FIELDS[i]);
        *v = f;
        *name = VLLM_FIELDS[i];
    }
    return 0;
}

static int structured_outputs(struct oa_request *r, struct gram_cache *cache, const cJSON *so, struct oa_error *e)
{
    if (!cJSON_IsObject(so) || cJSON_GetArraySize(so) != 1)
        return oa_error_set(e, 400, "structured_outputs", NULL,
                            "'structured_outputs' must be an object with one of 'json', 'choice', 'regex' or 'json_object'");
    const cJSON *k = so->child;
    if (!strcmp(k->string, "json")) return json_grammar(r, cache, k, "structured_outputs", e);
    if (!strcmp(k->string, "choice")) return choice_grammar(r, cache, k, "structured_outputs", e);
    if (!strcmp(k->string, "regex")) return regex_grammar(r, cache, k, "structured_outputs", e);
    if (!strcmp(k->string, "json_object") && cJSON_IsTrue(k)) {
        struct ms_err err = {{0}};
        if (!(r->grammar = cached(cache, "json_object", NULL, 0, NULL, NULL, &err)))
            return oa_error_set(e, 500, NULL, NULL, "out of memory");
        return 0;
    }
    return oa_error_set(e, 400, "structured_outputs", NULL,
                        "'structured_outputs.%s' is not supported (json, choice, regex and json_object: true are)",
                        k->string);
}

/* The grammar of vLLM field `name` (as vllm_field found it). */
static int vllm_structured(struct oa_request *r, struct gram_cache *cache, const cJSON *v, const char *name,
                           struct oa_error *e)
{
    if (!v) return 0;
    if (!strcmp(name, "structured_outputs")) return structured_outputs(r, cache, v, e);
    if (!strcmp(name, "guided_regex")) return regex_grammar(r, cache, v, name, e);
    if (!strcmp(name, "guided_choice")) return choice_grammar(r, cache, v, name, e);
    return json_grammar(r, cache, v, name, e);
}

/* response_format's grammar (rf given, not null, and not {"type": "text"}). */
static int response_format(struct oa_request *r, struct gram_cache *cache, const cJSON *rf, struct oa_error *e)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(rf, "type");
    if (!cJSON_IsObject(rf) || !cJSON_IsString(type))
        return oa_error_set(e, 400, "response_format", NULL, "'response_format' must be an object with a 'type'");
    const char *t = type->valuestring;
    struct ms_err err = {{0}};
    if (!strcmp(t, "json_object")) {
        r->grammar = cached(cache, "json_object", NULL, 0, NULL, NULL, &err);
    } else if (!strcmp(t, "json_schema")) {
        const cJSON *js = cJSON_GetObjectItemCaseSensitive(rf, "json_schema");
        const cJSON *schema = cJSON_GetObjectItemCaseSensitive(js, "schema");
        if (!cJSON_IsObject(js) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(js, "name")))
            return oa_error_set(e, 400, "response_format", NULL,
                                "'response_format.json_schema' must be an object with a 'name' and a 'schema'");
        if (!cJSON_IsObject(schema))
            return oa_error_set(e, 400, "response_format", NULL, "'response_format.json_schema.schema' must be a JSON Schema object");
        return schema_grammar(r, cache, schema, "response_format", e);
    } else {
        return oa_error_set(e, 400, "response_format", NULL,
                            "'response_format.type' must be text, json_object or json_schema, got '%s'", t);
    }
    if (!r->grammar)
        return oa_error_set(e, strstr(err.msg, "out of memory") ? 500 : 400, "response_format", NULL,
                            "'response_format' schema cannot be enforced: %s", err.msg);
    return 0;
}

static int forced_tool_call(struct oa_request *r, struct gram_cache *cache, struct oa_error *e)
{
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(r->root, "tools"), *t;
    const char *names[256];
    const cJSON *params[256];
    int n = 0;
    cJSON *keyj = cJSON_CreateArray();
    if (!keyj) return oa_error_set(e, 500, NULL, NULL, "out of memory");
    cJSON_ArrayForEach(t, tools)
    {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
        if (r->tool_choice == OA_TOOL_CHOICE_NAMED && strcmp(name->valuestring, r->tool_name)) continue;
        if (n == 256) {
            cJSON_Delete(keyj);
            return oa_error_set(e, 400, "tools", NULL, "at most 256 tools can be forced");
        }
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(fn, "parameters");
        names[n] = name->valuestring;
        params[n++] = cJSON_IsObject(p) ? p : NULL;
        cJSON_AddItemToArray(keyj, cJSON_Duplicate(fn, 1));
    }
    if (n == 0) {
        cJSON_Delete(keyj);
        return oa_error_set(e, 400, "tool_choice", NULL, "'tool_choice' names '%s', which is not in 'tools'", r->tool_name);
    }
    char *key = cache_key("tools", keyj);
    cJSON_Delete(keyj);
    if (!key) return oa_error_set(e, 500, NULL, NULL, "out of memory");
    struct ms_err err = {{0}};
    r->grammar = cached(cache, key, NULL, n, names, params, &err);
    free(key);
    if (!r->grammar)
        return oa_error_set(e, strstr(err.msg, "out of memory") ? 500 : 400, "tools", NULL,
                            "a tool's parameters schema cannot be enforced: %s", err.msg);
    return 0;
}

int constraint_compile(struct oa_request *r, struct gram_cache *cache, struct oa_error *e)
{
    r->grammar = NULL;
    /* constraints we cannot enforce are refused, whatever else the request asks: never ignored */
    static const char *const unsupported[] = {"guided_grammar", "grammar"};
    for (size_t i = 0; i < sizeof unsupported / sizeof *unsupported; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(r->root, unsupported[i]);
        if (v && !cJSON_IsNull(v))
            return oa_error_set(e, 400, unsupported[i], NULL,
                                "'%s' is not supported (JSON Schema, json_object, guided_choice and guided_regex are)",
                                unsupported[i]);
    }
    bool forced = r->route == OA_ROUTE_CHAT && r->has_tools &&
                  (r->tool_choice == OA_TOOL_CHOICE_REQUIRED || r->tool_choice == OA_TOOL_CHOICE_NAMED);
    const cJSON *rf = cJSON_GetObjectItemCaseSensitive(r->root, "response_format");
    const char *rf_type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rf, "type"));
    bool rf_text = !rf || cJSON_IsNull(rf) || (rf_type && !strcmp(rf_type, "text"));
    const cJSON *vllm;
    const char *vllm_name;
    int rc = vllm_field(r, &vllm, &vllm_name, e);
    if (rc) return rc;
    if (vllm && (forced || !rf_text)) /* one of them would be ignored */
        return oa_error_set(e, 400, vllm_name, NULL,
                            "'%s' cannot be combined with 'response_format' or a forced tool call", vllm_name);
    if (forced) return forced_tool_call(r, cache, e);
    if (!rf_text) return response_format(r, cache, rf, e);
    return vllm_structured(r, cache, vllm, vllm_name, e);
}

struct gram_vocab *constraint_vocab(const struct tokenizer *tok, const struct model_config *mc, struct ms_err *err)
{
    int n = (int)tok_vocab_size(tok);
    const char **bytes = calloc((size_t)n + 1, sizeof *bytes);
    size_t *lens = calloc((size_t)n + 1, sizeof *lens);
    uint8_t *kinds = calloc((size_t)n + 1, 1);
    struct gram_vocab *v = NULL;
    if (bytes && lens && kinds) {
        int first_added = n; /* added tokens follow the byte-level vocabulary in Qwen's files */
        for (int i = 0; i < n; i++)
            if (tok_is_special(tok, i) && i < first_added) first_added = i;
        for (int i = 0; i < n; i++) {
            bytes[i] = tok_id_to_bytes(tok, i, &lens[i]);
            const char *piece = tok_id_to_piece(tok, i);
            if (model_config_is_eos(mc, i)) kinds[i] = GRAM_TOK_END;
            else if (piece && (!strcmp(piece, "<tool_call>") || !strcmp(piece, "</tool_call>"))) kinds[i] = GRAM_TOK_TOOL;
            else if (i >= first_added || tok_is_special(tok, i) || !bytes[i]) kinds[i] = GRAM_TOK_NEVER;
            else kinds[i] = GRAM_TOK_TEXT;
        }
        v = gram_vocab_create(n, bytes, lens, kinds, err);
    } else {
        ms_err_set(err, MS_ERR_NOMEM, "out of memory building the grammar vocabulary");
    }
    free(bytes);
    free(lens);
    free(kinds);
    return v;
}
