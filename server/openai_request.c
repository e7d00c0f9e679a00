#include "server/openai_request.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/gram_schema.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

int oa_error_set(struct oa_error *e, int status, const char *param, const char *code, const char *fmt, ...)
{
    e->status = status;
    e->type = status == 401   ? "authentication_error"
              : status == 404 ? "invalid_request_error"
              : status == 429 ? "rate_limit_error"
              : status >= 500 ? "server_error"
                              : "invalid_request_error";
    ms_strlcpy(e->param, param ? param : "", sizeof e->param);
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof e->message) { /* truncated: do not end inside a UTF-8 character */
        size_t len = strlen(e->message), k = 0;
        while (k < 3 && k < len && ((unsigned char)e->message[len - 1 - k] & 0xc0) == 0x80) k++;
        unsigned char lead = (unsigned char)e->message[len - 1 - k];
        size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
        if (lead >= 0x80 && need > k + 1) e->message[len - 1 - k] = '\0';
    }
    return -1;
}

int oa_reasoning_effort_budget(const char *effort)
{
    if (!strcmp(effort, "low")) return 1024;
    if (!strcmp(effort, "medium")) return 8192;
    if (!strcmp(effort, "high")) return 32768;
    return -1;
}

/* ---- field readers: each returns 0 (absent or valid) or -1 with e set ------------------------ */

static const cJSON *field(const cJSON *root, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);
    return cJSON_IsNull(v) ? NULL : v; /* null means "not given", as in OpenAI's API */
}

static int read_number(const cJSON *root, const char *name, double lo, double hi, bool *given, double *out,
                       struct oa_error *e)
{
    const cJSON *v = field(root, name);
    if (!v) return 0;
    if (!cJSON_IsNumber(v)) return oa_error_set(e, 400, name, NULL, "'%s' must be a number", name);
    if (!(v->valuedouble >= lo && v->valuedouble <= hi))
        return oa_error_set(e, 400, name, NULL, "'%s' must be between %g and %g, got %g", name, lo, hi, v->valuedouble);
    *out = v->valuedouble;
    if (given) *given = true;
    return 0;
}

static int read_int(const cJSON *root, const char *name, double lo, double hi, bool *given, long long *out,
                    struct oa_error *e)
{
    const cJSON *v = field(root, name);
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        return oa_error_set(e, 400, name, NULL, "'%s' must be an integer", name);
    if (!(v->valuedouble >= lo && v->valuedouble <= hi))
        return oa_error_set(e, 400, name, NULL, "'%s' must be between %.0f and %.0f, got %.0f", name, lo, hi,
                            v->valuedouble);
    *out = (long long)v->valuedouble;
    if (given) *given = true;
    return 0;
}

static int read_bool(const cJSON *root, const char *name, bool *out, struct oa_error *e)
{
    const cJSON *v = field(root, name);
    if (!v) return 0;
    if (!cJSON_IsBool(v)) return oa_error_set(e, 400, name, NULL, "'%s' must be a boolean", name);
    *out = cJSON_IsTrue(v);
    return 0;
}

static int read_string(const cJSON *root, const char *name, char *out, size_t cap, struct oa_error *e)
{
    const cJSON *v = field(root, name);
    if (!v) return 0;
    if (!cJSON_IsString(v)) return oa_error_set(e, 400, name, NULL, "'%s' must be a string", name);
    if (strlen(v->valuestring) >= cap)
        return oa_error_set(e, 400, name, NULL, "'%s' is longer than %zu bytes", name, cap - 1);
    ms_strlcpy(out, v->valuestring, cap);
    return 0;
}

static int read_stop(const cJSON *root, struct oa_request *r, struct oa_error *e)
{
    const cJSON *v = field(root, "stop");
    if (!v) return 0;
    if (cJSON_IsString(v)) {
        if (!v->valuestring[0]) return 0;
        if (strlen(v->valuestring) > OA_MAX_STOP_LEN)
            return oa_error_set(e, 400, "stop", NULL, "'stop' strings may be at most %d bytes", OA_MAX_STOP_LEN);
        return (r->stops[r->n_stops++] = strdup(v->valuestring)) ? 0
                                                                  : oa_error_set(e, 500, NULL, NULL, "out of memory");
    }
    if (!cJSON_IsArray(v)) return oa_error_set(e, 400, "stop", NULL, "'stop' must be a string or a list of strings");
    if (cJSON_GetArraySize(v) > OUTPUT_PARSER_MAX_STOPS)
        return oa_error_set(e, 400, "stop", NULL, "'stop' may hold at most %d strings", OUTPUT_PARSER_MAX_STOPS);
    const cJSON *it;
    cJSON_ArrayForEach(it, v)
    {
        if (!cJSON_IsString(it)) return oa_error_set(e, 400, "stop", NULL, "'stop' must be a list of strings");
        if (!it->valuestring[0]) continue;
        if (strlen(it->valuestring) > OA_MAX_STOP_LEN)
            return oa_error_set(e, 400, "stop", NULL, "'stop' strings may be at most %d bytes", OA_MAX_STOP_LEN);
        if (!(r->stops[r->n_stops++] = strdup(it->valuestring)))
            return oa_error_set(e, 500, NULL, NULL, "out of memory");
    }
    return 0;
}

static int read_logit_bias(const cJSON *root, struct oa_request *r, struct oa_error *e)
{
    const cJSON *v = field(root, "logit_bias");
    if (!v) return 0;
    if (!cJSON_IsObject(v)) return oa_error_set(e, 400, "logit_bias", NULL, "'logit_bias' must be an object");
    int n = cJSON_GetArraySize(v);
    if (n > OA_MAX_LOGIT_BIAS)
        return oa_error_set(e, 400, "logit_bias", NULL, "'logit_bias' may hold at most %d entries", OA_MAX_LOGIT_BIAS);
    if (n == 0) return 0;
    if (!(r->logit_bias = calloc((size_t)n, sizeof *r->logit_bias)))
        return oa_error_set(e, 500, NULL, NULL, "out of memory");
    const cJSON *it;
    cJSON_ArrayForEach(it, v)
    {
        char *end;
        long id = strtol(it->string, &end, 10);
        if (it->string[0] < '0' || it->string[0] > '9' || *end || id < 0 || id > INT32_MAX)
            return oa_error_set(e, 400, "logit_bias", NULL, "'logit_bias' keys must be token ids, got '%s'", it->string);
        if (!cJSON_IsNumber(it) || !(it->valuedouble >= -100 && it->valuedouble <= 100))
            return oa_error_set(e, 400, "logit_bias", NULL, "'logit_bias' values must be numbers in [-100, 100]");
        r->logit_bias[r->n_logit_bias++] = (struct logit_bias_entry){(int32_t)id, (float)it->valuedouble};
    }
    return 0;
}

static int read_ids(const cJSON *arr, const char *name, int32_t **out, int *n, struct oa_error *e)
{
    int cnt = cJSON_GetArraySize(arr);
    *out = malloc((size_t)(cnt ? cnt : 1) * sizeof **out);
    if (!*out) return oa_error_set(e, 500, NULL, NULL, "out of memory");
    *n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || it->valuedouble < 0 ||
            it->valuedouble > INT32_MAX)
            return oa_error_set(e, 400, name, NULL, "'%s' must hold non-negative integer token ids", name);
        (*out)[(*n)++] = (int32_t)it->valuedouble;
    }
    return 0;
}

/* ---- chat-only fields ---------------------------------------------------------------------- */

/* Content given as a list of parts becomes the concatenated text parts (the template wants text). */
static int normalize_content(cJSON *msg, int i, struct oa_error *e)
{
    cJSON *c = cJSON_GetObjectItemCaseSensitive(msg, "content");
    if (!c || cJSON_IsString(c) || cJSON_IsNull(c)) return 0;
    if (!cJSON_IsArray(c))
        return oa_error_set(e, 400, "messages", NULL, "messages[%d].content must be a string or a list of parts", i);
    size_t total = 1;
    const cJSON *p;
    cJSON_ArrayForEach(p, c)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(p, "type");
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(p, "text");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") || !cJSON_IsString(text))
            return oa_error_set(e, 400, "messages", NULL,
                                "messages[%d].content: only parts of type \"text\" are supported", i);
        total += strlen(text->valuestring);
    }
    char *joined = calloc(1, total);
    if (!joined) return oa_error_set(e, 500, NULL, NULL, "out of memory");
    cJSON_ArrayForEach(p, c) strcat(joined, cJSON_GetObjectItemCaseSensitive(p, "text")->valuestring);
    cJSON *s = cJSON_CreateString(joined);
    free(joined);
    if (!s) return oa_error_set(e, 500, NULL, NULL, "out of memory");
    cJSON_ReplaceItemInObjectCaseSensitive(msg, "content", s);
    return 0;
}

static int check_messages(cJSON *root, struct oa_error *e)
{
    cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (!msgs) return oa_error_set(e, 400, "messages", NULL, "'messages' is required");
    if (!cJSON_IsArray(msgs)) return oa_error_set(e, 400, "messages", NULL, "'messages' must be a list");
    if (cJSON_GetArraySize(msgs) == 0) return oa_error_set(e, 400, "messages", NULL, "'messages' must not be empty");
    if (cJSON_GetArraySize(msgs) > OA_MAX_MESSAGES)
        return oa_error_set(e, 400, "messages", NULL, "'messages' may hold at most %d messages", OA_MAX_MESSAGES);
    static const char *const roles[] = {"system", "developer", "user", "assistant", "tool"};
    int i = 0;
    cJSON *m;
    cJSON_ArrayForEach(m, msgs)
    {
        if (!cJSON_IsObject(m)) return oa_error_set(e, 400, "messages", NULL, "messages[%d] must be an object", i);
        cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsString(role)) return oa_error_set(e, 400, "messages", NULL, "messages[%d].role must be a string", i);
        size_t k = 0;
        while (k < 5 && strcmp(role->valuestring, roles[k])) k++;
        if (k == 5)
            return oa_error_set(e, 400, "messages", NULL,
                                "messages[%d].role must be system, developer, user, assistant or tool, got '%s'", i,
                                role->valuestring);
        if (k == 1) cJSON_SetValuestring(role, "system");
        if (normalize_content(m, i, e)) return -1;
        cJSON *c = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!c && !cJSON_GetObjectItemCaseSensitive(m, "tool_calls"))
            return oa_error_set(e, 400, "messages", NULL, "messages[%d].content is required", i);
        i++;
    }
    return 0;
}

static int read_tools(cJSON *root, struct oa_request *r, struct oa_error *e)
{
    const cJSON *tools = field(root, "tools");
    if (tools) {
        if (!cJSON_IsArray(tools)) return oa_error_set(e, 400, "tools", NULL, "'tools' must be a list");
        int i = 0;
        const cJSON *t;
        cJSON_ArrayForEach(t, tools)
        {
            const cJSON *fn = cJSON_GetObjectItemCaseSensitive(t, "function");
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
            if (!cJSON_IsObject(t) || !cJSON_IsObject(fn) || !cJSON_IsString(name))
                return oa_error_set(e, 400, "tools", NULL, "tools[%d] must be {\"type\":\"function\",\"function\":{\"name\":...}}", i);
            const cJSON *params = cJSON_GetObjectItemCaseSensitive(fn, "parameters");
            if (params && !cJSON_IsNull(params) && !cJSON_IsObject(params))
                return oa_error_set(e, 400, "tools", NULL, "tools[%d].function.parameters must be a JSON Schema object", i);
            i++;
        }
        r->has_tools = i > 0;
    }
    const cJSON *tc = field(root, "tool_choice");
    if (!tc) return 0;
    if (cJSON_IsString(tc)) {
        if (!strcmp(tc->valuestring, "none")) r->tool_choice = OA_TOOL_CHOICE_NONE;
        else if (!strcmp(tc->valuestring, "auto")) r->tool_choice = OA_TOOL_CHOICE_AUTO;
        else if (!strcmp(tc->valuestring, "required")) r->tool_choice = OA_TOOL_CHOICE_REQUIRED;
        else return oa_error_set(e, 400, "tool_choice", NULL, "'tool_choice' must be none, auto, required or a function");
    } else {
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive(tc, "function");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(fn, "name");
        if (!cJSON_IsString(name) || strlen(name->valuestring) >= sizeof r->tool_name)
            return oa_error_set(e, 400, "tool_choice", NULL,
                                "'tool_choice' must be none, auto, required or {\"type\":\"function\",\"function\":{\"name\":...}}");
        r->tool_choice = OA_TOOL_CHOICE_NAMED;
        ms_strlcpy(r->tool_name, name->valuestring, sizeof r->tool_name);
    }
    if (r->tool_choice != OA_TOOL_CHOICE_NONE && r->tool_choice != OA_TOOL_CHOICE_AUTO && !r->has_tools)
        return oa_error_set(e, 400, "tool_choice", NULL, "'tool_choice' needs 'tools'");
    return 0;
}

static int read_thinking(cJSON *root, struct oa_request *r, struct oa_error *e)
{
    r->thinking = true;
    const cJSON *kw = field(root, "chat_template_kwargs");
    if (kw && !cJSON_IsObject(kw))
        return oa_error_set(e, 400, "chat_template_kwargs", NULL, "'chat_template_kwargs' must be an object");
    const cJSON *et = cJSON_GetObjectItemCaseSensitive(kw, "enable_thinking");
    if (et && cJSON_IsFalse(et)) r->thinking = false;
    bool top = true;
    if (read_bool(root, "enable_thinking", &top, e)) return -1;
    if (!top) r->thinking = false;
    if (read_string(root, "reasoning_effort", r->reasoning_effort, sizeof r->reasoning_effort, e)) return -1;
    if (r->reasoning_effort[0]) {
        if (!strcmp(r->reasoning_effort, "none")) r->thinking = false;
        else if (oa_reasoning_effort_budget(r->reasoning_effort) < 0)
            return oa_error_set(e, 400, "reasoning_effort", NULL, "'reasoning_effort' must be none, low, medium or high");
    }
    long long b = -1;
    if (read_int(root, "thinking_token_budget", -1, 1 << 24, NULL, &b, e)) return -1;
    r->thinking_budget = (int)b;
    return 0;
}

/* ---- the whole body ------------------------------------------------------------------------ */

static int read_sampling(cJSON *root, struct oa_request *r, struct oa_error *e)
{
    long long v;
    bool given = false;
    if (read_string(root, "model", r->model, sizeof r->model, e)) return -1;
    v = 0;
    if (read_int(root, "max_tokens", 1, 1 << 24, NULL, &v, e)) return -1;
    if (read_int(root, "max_completion_tokens", 1, 1 << 24, NULL, &v, e)) return -1;
    r->max_tokens = (int)v;
    if (read_number(root, "temperature", 0, 2, &r->temperature_given, &r->temperature, e) ||
        read_number(root, "top_p", 1e-9, 1, &r->top_p_given, &r->top_p, e) ||
        read_number(root, "min_p", 0, 1, NULL, &r->min_p, e) ||
        read_number(root, "presence_penalty", -2, 2, NULL, &r->presence_penalty, e) ||
        read_number(root, "frequency_penalty", -2, 2, NULL, &r->frequency_penalty, e) ||
        read_number(root, "repetition_penalty", 1e-6, 10, NULL, &r->repetition_penalty, e))
        return -1;
    v = -1;
    if (read_int(root, "top_k", -1, 1 << 24, &r->top_k_given, &v, e)) return -1;
    r->top_k = v == 0 ? -1 : (int)v;
    v = 1;
    if (read_int(root, "n", 1, OA_MAX_N, NULL, &v, e)) return -1;
    r->n = (int)v;
    if (read_int(root, "seed", -9.2e18, 9.2e18, &r->seed_given, &v, e)) return -1;
    r->seed = (uint64_t)v;
    v = 0;
    if (read_int(root, "priority", -1e9, 1e9, NULL, &v, e)) return -1;
    r->priority = (int)v;
    if (read_bool(root, "stream", &r->stream, e) || read_bool(root, "ignore_eos", &r->ignore_eos, e) ||
        read_bool(root, "echo", &r->echo, e) || read_stop(root, r, e) || read_logit_bias(root, r, e))
        return -1;
    r->speculative_given = field(root, "speculative") != NULL;
    if (read_bool(root, "speculative", &r->speculative, e)) return -1;
    const cJSON *so = field(root, "stream_options");
    if (so) {
        if (!cJSON_IsObject(so)) return oa_error_set(e, 400, "stream_options", NULL, "'stream_options' must be an object");
        if (read_bool(so, "include_usage", &r->include_usage, e)) return -1;
    }
    const cJSON *sti = field(root, "stop_token_ids");
    if (sti) {
        if (!cJSON_IsArray(sti)) return oa_error_set(e, 400, "stop_token_ids", NULL, "'stop_token_ids' must be a list");
        if (read_ids(sti, "stop_token_ids", &r->stop_token_ids, &r->n_stop_token_ids, e)) return -1;
    }
    const cJSON *user = field(root, "user");
    if (user && !cJSON_IsString(user)) return oa_error_set(e, 400, "user", NULL, "'user' must be a string");
    (void)given;
    return 0;
}

static int read_logprobs(cJSON *root, struct oa_request *r, struct oa_error *e)
{
    r->logprobs = -1;
    long long k = 0;
    if (r->route == OA_ROUTE_CHAT) {
        bool on = false, given = false;
        if (read_bool(root, "logprobs", &on, e)) return -1;
        if (read_int(root, "top_logprobs", 0, SAMPLER_MAX_TOP_LOGPROBS, &given, &k, e)) return -1;
        if (given && !on)
            return oa_error_set(e, 400, "top_logprobs", NULL, "'top_logprobs' needs 'logprobs' set to true");
        if (on) r->logprobs = (int)k;
        return 0;
    }
    bool given = false;
    if (read_int(root, "logprobs", 0, SAMPLER_MAX_TOP_LOGPROBS, &given, &k, e)) return -1;
    if (given) r->logprobs = (int)k;
    return 0;
}

/* Length of the UTF-8 sequence at s (at most n bytes), 0 when it is not valid UTF-8 (overlong
 * forms, surrogates and code points above U+10FFFF are not). */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t k = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
    if (!k || k > n) return 0;
    unsigned cp = k == 1 ? c : k == 2 ? c & 0x1f : k == 3 ? c & 0x0f : c & 0x07;
    for (size_t i = 1; i < k; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    static const unsigned min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[k] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return k;
}

static int hex4(const char *s)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

int oa_body_check(const char *body, size_t len, struct oa_error *e)
{
    int depth = 0;
    bool in_str = false;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)body[i];
        if (c >= 0x80) {
            size_t k = utf8_len((const unsigned char *)body + i, len - i);
            if (!k) return oa_error_set(e, 400, NULL, "invalid_utf8", "the body is not valid UTF-8 (byte %zu)", i);
            i += k;
            continue;
        }
        if (!c) return oa_error_set(e, 400, NULL, NULL, "the body contains a NUL byte (byte %zu)", i);
        if (in_str) {
            if (c == '"') in_str = false;
            else if (c == '\\' && i + 1 < len && body[i + 1] == 'u') {
                int u = i + 6 <= len ? hex4(body + i + 2) : -1;
                if (u < 0) { /* not an escape: cJSON refuses it */
                    i += 2;
                    continue;
                }
                if (u == 0)
                    return oa_error_set(e, 400, NULL, NULL, "strings must not contain \\u0000 (byte %zu)", i);
                bool pair = u >= 0xd800 && u <= 0xdbff && i + 12 <= len && body[i + 6] == '\\' && body[i + 7] == 'u' &&
                            hex4(body + i + 8) >= 0xdc00 && hex4(body + i + 8) <= 0xdfff;
                if (u >= 0xd800 && u <= 0xdfff && !pair)
                    return oa_error_set(e, 400, NULL, NULL, "the body has a lone UTF-16 surrogate escape (byte %zu)", i);
                i += pair ? 12 : 6;
                continue;
            } else if (c == '\\') {
                i += 2;
                continue;
            }
        } else if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > OA_MAX_JSON_DEPTH)
                return oa_error_set(e, 400, NULL, "json_too_deep", "the body nests deeper than %d levels", OA_MAX_JSON_DEPTH);
        } else if (c == ']' || c == '}') {
            depth--;
        }
        i++;
    }
    return 0;
}

/* Nesting depth of a JSON tree (recursion bounded by cJSON's own parse limit of 1000). */
static int json_depth(const cJSON *j)
{
    int max = 0;
    for (const cJSON *c = j->child; c; c = c->next) {
        int d = json_depth(c);
        if (d > max) max = d;
    }
    return max + 1;
}

cJSON *oa_parse_object(const char *body, size_t len, struct oa_error *e)
{
    struct ms_err perr = {{0}};
    if (oa_body_check(body, len, e)) return NULL;
    cJSON *root = tmpl_json_parse(body, len, &perr);
    if (!root) {
        oa_error_set(e, 400, NULL, NULL, "the body is not valid JSON: %s", perr.msg);
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        oa_error_set(e, 400, NULL, NULL, "the body must be a JSON object");
    } else if (json_depth(root) > OA_MAX_JSON_DEPTH) {
        /* the chat template walks values recursively: bound the depth it can be handed */
        oa_error_set(e, 400, NULL, NULL, "the body nests deeper than %d levels", OA_MAX_JSON_DEPTH);
    } else {
        return root;
    }
    cJSON_Delete(root);
    return NULL;
}

int oa_request_parse(const char *body, size_t len, enum oa_route route, struct oa_request *r, struct oa_error *e)
{
    memset(r, 0, sizeof *r);
    r->route = route;
    r->repetition_penalty = 1;
    r->thinking_budget = -1;
    if (!(r->root = oa_parse_object(body, len, e))) return -1;
    if (read_sampling(r->root, r, e) || read_logprobs(r->root, r, e)) return -1;
    if (route == OA_ROUTE_CHAT) {
        if (check_messages(r->root, e) || read_tools(r->root, r, e) || read_thinking(r->root, r, e)) return -1;
        if (r->echo) return oa_error_set(e, 400, "echo", NULL, "'echo' is only supported by /v1/completions");
    } else {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(r->root, "prompt");
        if (!p || cJSON_IsNull(p)) return oa_error_set(e, 400, "prompt", NULL, "'prompt' is required");
        if (r->echo) return oa_error_set(e, 400, "echo", NULL, "'echo' is not supported");
        r->thinking = false;
    }
    return 0;
}

/* ---- prompts ------------------------------------------------------------------------------- */

static int encode(const struct tokenizer *tok, const char *text, const char *param, struct oa_prompt *out,
                  struct oa_error *e)
{
    struct ms_err err = {{0}};
    size_t n = 0;
    if (tok_encode(tok, text, strlen(text), 1, &out->ids, &n, &err))
        return oa_error_set(e, 400, param, NULL, "'%s' cannot be tokenized: %s", param, err.msg);
    out->n_ids = (int)n;
    return 0;
}

static int add_prompt(struct oa_request *r, struct oa_error *e)
{
    if (r->n_prompts >= OA_MAX_CHOICES)
        return oa_error_set(e, 400, "prompt", NULL, "at most %d prompts per request", OA_MAX_CHOICES);
    struct oa_prompt *p = realloc(r->prompts, (size_t)(r->n_prompts + 1) * sizeof *p);
    if (!p) return oa_error_set(e, 500, NULL, NULL, "out of memory");
    r->prompts = p;
    p[r->n_prompts++] = (struct oa_prompt){0};
    return 0;
}

static int completion_prompts(struct oa_request *r, const struct tokenizer *tok, struct oa_error *e)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(r->root, "prompt");
    static const char bad[] = "'prompt' must be a string, a list of strings, a list of token ids or a list of lists of token ids";
    if (cJSON_IsString(p)) {
        if (add_prompt(r, e)) return -1;
        return encode(tok, p->valuestring, "prompt", &r->prompts[0], e);
    }
    if (!cJSON_IsArray(p) || cJSON_GetArraySize(p) == 0) return oa_error_set(e, 400, "prompt", NULL, bad);
    if (cJSON_IsNumber(p->child)) {
        if (add_prompt(r, e)) return -1;
        return read_ids(p, "prompt", &r->prompts[0].ids, &r->prompts[0].n_ids, e);
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, p)
    {
        if (add_prompt(r, e)) return -1;
        struct oa_prompt *dst = &r->prompts[r->n_prompts - 1];
        if (cJSON_IsString(it)) {
            if (encode(tok, it->valuestring, "prompt", dst, e)) return -1;
        } else if (cJSON_IsArray(it)) {
            if (read_ids(it, "prompt", &dst->ids, &dst->n_ids, e)) return -1;
        } else {
            return oa_error_set(e, 400, "prompt", NULL, bad);
        }
    }
    return 0;
}

/* ---- user-written special tokens ------------------------------------------------------------
 * The rendered prompt mixes the template's text with the request's strings. Encoding all of it with
 * special tokens on would turn "<|im_start|>" written inside a message into the real control token,
 * letting a user forge system, tool or assistant turns (prompt injection). So, before rendering,
 * every special token spelled out in a request string gets a marker in front (U+E000, a private-use
 * character; a marker the request itself holds is doubled), and after rendering the markers are
 * taken out and the bytes they flagged are encoded as plain text (tok_encode_masked). Non-special
 * added tokens (<think>, <tool_call>, ...) stay tokens, as in HF with split_special_tokens=True:
 * the template itself parses them out of assistant messages. */
#define SPECIAL_MARK "\xEE\x80\x80"
#define SPECIAL_MARK_LEN 3

/* At s[0..n): the length of what to copy as one unit, *mark set when a marker goes before it (a
 * special token's text, or the marker character itself). */
static size_t mark_unit(const struct tokenizer *tok, const char *s, size_t n, bool *mark)
{
    size_t sl;
    *mark = true;
    if (n >= SPECIAL_MARK_LEN && !memcmp(s, SPECIAL_MARK, SPECIAL_MARK_LEN)) return SPECIAL_MARK_LEN;
    if ((sl = tok_special_len(tok, s, n))) return sl;
    *mark = false;
    return 1;
}

/* A malloc'd copy of s with the markers added; NULL when s needs none (or, with *oom set, when
 * memory ran out). */
static char *mark_string(const struct tokenizer *tok, const char *s, bool *oom)
{
    size_t n = strlen(s), marks = 0;
    bool mark;
    for (size_t i = 0; i < n; marks += mark) i += mark_unit(tok, s + i, n - i, &mark);
    if (!marks) return NULL;
    char *out = malloc(n + marks * SPECIAL_MARK_LEN + 1), *o = out;
    if (!out) {
        *oom = true;
        return NULL;
    }
    for (size_t i = 0; i < n;) {
        size_t k = mark_unit(tok, s + i, n - i, &mark);
        if (mark) memcpy(o, SPECIAL_MARK, SPECIAL_MARK_LEN), o += SPECIAL_MARK_LEN;
        memcpy(o, s + i, k);
        o += k;
        i += k;
    }
    *o = '\0';
    return out;
}

/* Marks every string and key of a JSON tree in place (depth bounded by OA_MAX_JSON_DEPTH). */
static int mark_tree(const struct tokenizer *tok, cJSON *j)
{
    bool oom = false;
    char *m;
    if (j->string && !(j->type & cJSON_StringIsConst) && (m = mark_string(tok, j->string, &oom))) {
        cJSON_free(j->string);
        j->string = m;
    }
    if (cJSON_IsString(j) && j->valuestring && !(j->type & cJSON_IsReference) &&
        (m = mark_string(tok, j->valuestring, &oom))) {
        cJSON_free(j->valuestring);
        j->valuestring = m;
    }
    if (oom) return -1;
    for (cJSON *c = j->child; c; c = c->next)
        if (mark_tree(tok, c)) return -1;
    return 0;
}

/* Takes the markers out of the rendered text (in place) and encodes it, special tokens off where
 * a marker stood. */
static int encode_marked(const struct tokenizer *tok, char *text, struct oa_prompt *out, struct oa_error *e)
{
    size_t n = strlen(text), len = 0;
    uint8_t *mask = calloc(n + 1, 1);
    if (!mask) return oa_error_set(e, 500, NULL, NULL, "out of memory");
    for (size_t i = 0; i < n;) {
        size_t k = 1;
        if (n - i >= SPECIAL_MARK_LEN && !memcmp(text + i, SPECIAL_MARK, SPECIAL_MARK_LEN)) {
            const char *next = text + i + SPECIAL_MARK_LEN;
            size_t rest = n - i - SPECIAL_MARK_LEN, sl;
            if (rest >= SPECIAL_MARK_LEN && !memcmp(next, SPECIAL_MARK, SPECIAL_MARK_LEN)) {
                i += SPECIAL_MARK_LEN; /* a doubled marker is the request's own U+E000 */
                k = SPECIAL_MARK_LEN;
            } else if ((sl = tok_special_len(tok, next, rest))) {
                i += SPECIAL_MARK_LEN;
                memset(mask + len, 1, sl);
                k = sl;
            } else {
                k = SPECIAL_MARK_LEN; /* a marker the template cut off its token: kept as text */
            }
        }
        memmove(text + len, text + i, k);
        len += k;
        i += k;
    }
    text[len] = '\0';
    struct ms_err err = {{0}};
    size_t n_ids = 0;
    int rc = tok_encode_masked(tok, text, len, mask, &out->ids, &n_ids, &err);
    free(mask);
    if (rc) return oa_error_set(e, 400, "messages", NULL, "'messages' cannot be tokenized: %s", err.msg);
    out->n_ids = (int)n_ids;
    return 0;
}

/* Whether the rendered prompt leaves a <think> open (the template started the thinking). */
static bool ends_in_think(const char *text)
{
    const char *open = NULL, *at = text;
    while ((at = strstr(at, "<think>"))) open = at++;
    return open && !strstr(open, "</think>");
}

static int chat_prompt(struct oa_request *r, const struct tokenizer *tok, const struct chat_template *tmpl,
                       struct oa_error *e)
{
    if (!tmpl) return oa_error_set(e, 400, "messages", NULL, "this model has no chat template; use /v1/completions");
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(r->root, "messages");
    const cJSON *tools = r->has_tools && r->tool_choice != OA_TOOL_CHOICE_NONE ? field(r->root, "tools") : NULL;
    cJSON *named = NULL;
    if (tools && r->tool_choice == OA_TOOL_CHOICE_NAMED) {
        named = cJSON_CreateArray();
        const cJSON *t;
        cJSON_ArrayForEach(t, tools)
        {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(t, "function"), "name");
            if (!strcmp(name->valuestring, r->tool_name)) cJSON_AddItemToArray(named, cJSON_Duplicate(t, 1));
        }
        if (cJSON_GetArraySize(named) == 0) {
            cJSON_Delete(named);
            return oa_error_set(e, 400, "tool_choice", NULL, "'tool_choice' names '%s', which is not in 'tools'", r->tool_name);
        }
        tools = named;
    }
    const cJSON *kw0 = field(r->root, "chat_template_kwargs");
    cJSON *kwargs = kw0 ? cJSON_Duplicate(kw0, 1) : cJSON_CreateObject();
    if (!kwargs) {
        cJSON_Delete(named);
        return oa_error_set(e, 500, NULL, NULL, "out of memory");
    }
    cJSON_DeleteItemFromObjectCaseSensitive(kwargs, "enable_thinking");
    cJSON_AddBoolToObject(kwargs, "enable_thinking", r->thinking);
    /* the tree is freed after this call: the strings are marked in place */
    if (mark_tree(tok, (cJSON *)msgs) || (tools && mark_tree(tok, (cJSON *)tools)) || mark_tree(tok, kwargs)) {
        cJSON_Delete(kwargs);
        cJSON_Delete(named);
        return oa_error_set(e, 500, NULL, NULL, "out of memory");
    }
    char *text = NULL;
    struct ms_err err = {{0}};
    int rc = tmpl_render(tmpl, msgs, tools, 1, kwargs, &text, &err);
    cJSON_Delete(kwargs);
    cJSON_Delete(named);
    if (rc) return oa_error_set(e, 400, "messages", NULL, "the chat template failed: %s", err.msg);
    rc = add_prompt(r, e);
    if (!rc) rc = encode_marked(tok, text, &r->prompts[0], e);
    if (!rc) r->starts_in_thinking = r->thinking && ends_in_think(text);
    free(text);
    return rc;
}

int oa_request_build_prompts(struct oa_request *r, const struct tokenizer *tok, const struct chat_template *tmpl,
                             int max_model_len, int vocab_size, struct oa_error *e)
{
    int rc = r->route == OA_ROUTE_CHAT ? chat_prompt(r, tok, tmpl, e) : completion_prompts(r, tok, e);
    cJSON_Delete(r->root);
    r->root = NULL;
    if (rc) return rc;
    const char *param = r->route == OA_ROUTE_CHAT ? "messages" : "prompt";
    if (r->n_prompts * r->n > OA_MAX_CHOICES)
        return oa_error_set(e, 400, "n", NULL, "prompts x n must be at most %d", OA_MAX_CHOICES);
    for (int i = 0; i < r->n_prompts; i++) {
        const struct oa_prompt *p = &r->prompts[i];
        if (p->n_ids == 0) return oa_error_set(e, 400, param, NULL, "the prompt is empty");
        for (int k = 0; k < p->n_ids; k++)
            if (p->ids[k] >= vocab_size)
                return oa_error_set(e, 400, param, NULL, "token id %d is outside the vocabulary (size %d)", p->ids[k],
                                    vocab_size);
        if (p->n_ids >= max_model_len)
            return oa_error_set(e, 400, param, "context_length_exceeded",
                                "This model's maximum context length is %d tokens. However, your request has %d input "
                                "tokens. Please reduce the length of the input.",
                                max_model_len, p->n_ids);
        if (r->max_tokens && p->n_ids + r->max_tokens > max_model_len)
            return oa_error_set(e, 400, "max_tokens", "context_length_exceeded",
                                "This model's maximum context length is %d tokens. However, you requested %d tokens "
                                "(%d in the input, %d for the completion). Please reduce the length of the input or "
                                "of max_tokens.",
                                max_model_len, p->n_ids + r->max_tokens, p->n_ids, r->max_tokens);
    }
    for (int i = 0; i < r->n_logit_bias; i++)
        if (r->logit_bias[i].token >= vocab_size)
            return oa_error_set(e, 400, "logit_bias", NULL, "'logit_bias' token %d is outside the vocabulary (size %d)",
                                r->logit_bias[i].token, vocab_size);
    return 0;
}

void oa_request_free(struct oa_request *r)
{
    free(r->logit_bias);
    for (int i = 0; i < r->n_stops; i++) free(r->stops[i]);
    free(r->stop_token_ids);
    for (int i = 0; i < r->n_prompts; i++) free(r->prompts[i].ids);
    free(r->prompts);
    cJSON_Delete(r->root);
    gram_release(r->grammar);
    memset(r, 0, sizeof *r);
}
