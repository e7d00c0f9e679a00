/* Anthropic's Messages API (POST /v1/messages, /v1/messages/count_tokens) as a translation onto
 * chat completions: content blocks become chat messages (tool_use -> tool_calls, tool_result ->
 * "tool" messages, thinking -> reasoning_content), `thinking` becomes enable_thinking and the
 * thinking budget; replies come back as content blocks and Anthropic's stream events. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/api_format.h"

static const char *error_type(int status)
{
    switch (status) {
    case 401: return "authentication_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 503: case 529: return "overloaded_error";
    default: return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

static cJSON *error_json(const struct oa_error *e)
{
    cJSON *o = cJSON_CreateObject(), *err = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "error");
    cJSON_AddStringToObject(err, "type", error_type(e->status));
    if (e->param[0] && !strstr(e->message, e->param)) {
        char msg[700];
        snprintf(msg, sizeof msg, "%s: %s", e->param, e->message);
        cJSON_AddStringToObject(err, "message", msg);
    } else {
        cJSON_AddStringToObject(err, "message", e->message);
    }
    cJSON_AddItemToObject(o, "error", err);
    return o;
}

static char *an_error_body(const struct oa_error *e)
{
    cJSON *o = error_json(e);
    char *t = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return t;
}

/* ---- request ---- */

/* Text of a string or a list of {"type":"text"} blocks (what system and tool_result hold). */
static int block_text(const cJSON *v, const char *where, struct sbuf *out, struct oa_error *e)
{
    if (cJSON_IsString(v)) return sbuf_puts(out, v->valuestring) ? oa_error_set(e, 500, NULL, NULL, "out of memory") : 0;
    if (!cJSON_IsArray(v)) return oa_error_set(e, 400, NULL, NULL, "%s must be a string or a list of text blocks", where);
    const cJSON *b;
    cJSON_ArrayForEach(b, v)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(b, "type"), *text = cJSON_GetObjectItemCaseSensitive(b, "text");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") || !cJSON_IsString(text))
            return oa_error_set(e, 400, NULL, NULL, "%s: only text blocks are supported here", where);
        if (out->len) sbuf_puts(out, "\n");
        sbuf_puts(out, text->valuestring);
    }
    return out->oom ? oa_error_set(e, 500, NULL, NULL, "out of memory") : 0;
}

static int tool_result(const cJSON *b, const char *where, cJSON *msgs, struct oa_error *e)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(b, "tool_use_id");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(b, "content");
    if (!cJSON_IsString(id)) return oa_error_set(e, 400, NULL, NULL, "%s.tool_use_id must be a string", where);
    struct sbuf text = {0};
    char w[128];
    snprintf(w, sizeof w, "%s.content", where);
    if (content && block_text(content, w, &text, e)) {
        sbuf_free(&text);
        return -1;
    }
    cJSON *m = api_chat_message("tool", text.s ? text.s : "");
    cJSON_AddStringToObject(m, "tool_call_id", id->valuestring);
    cJSON_AddItemToArray(msgs, m);
    sbuf_free(&text);
    return 0;
}

/* One Anthropic message -> chat messages appended to msgs. */
static int message(const cJSON *m, int i, cJSON *msgs, struct oa_error *e)
{
    char where[64];
    snprintf(where, sizeof where, "messages.%d", i);
    if (!cJSON_IsObject(m)) return oa_error_set(e, 400, NULL, NULL, "%s must be an object", where);
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role"), *content = cJSON_GetObjectItemCaseSensitive(m, "content");
    if (!cJSON_IsString(role) || (strcmp(role->valuestring, "user") && strcmp(role->valuestring, "assistant")))
        return oa_error_set(e, 400, NULL, NULL, "%s.role must be \"user\" or \"assistant\"", where);
    bool user = !strcmp(role->valuestring, "user");
    if (cJSON_IsString(content)) {
        cJSON_AddItemToArray(msgs, api_chat_message(role->valuestring, content->valuestring));
        return 0;
    }
    if (!cJSON_IsArray(content)) return oa_error_set(e, 400, NULL, NULL, "%s.content must be a string or a list of blocks", where);
    struct sbuf text = {0}, thinking = {0};
    cJSON *out = api_chat_message(role->valuestring, "");
    int k = 0, rc = 0;
    const cJSON *b;
    cJSON_ArrayForEach(b, content)
    {
        char w[96];
        snprintf(w, sizeof w, "%s.content.%d", where, k++);
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(b, "type");
        const char *t = cJSON_IsString(type) ? type->valuestring : "";
        if (!cJSON_IsObject(b) || !t[0]) {
            rc = oa_error_set(e, 400, NULL, NULL, "%s must be a block with a \"type\"", w);
        } else if (!strcmp(t, "text")) {
            const cJSON *tx = cJSON_GetObjectItemCaseSensitive(b, "text");
            if (!cJSON_IsString(tx)) rc = oa_error_set(e, 400, NULL, NULL, "%s.text must be a string", w);
            else sbuf_puts(&text, tx->valuestring);
        } else if (!strcmp(t, "tool_use") && !user) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(b, "id"), *name = cJSON_GetObjectItemCaseSensitive(b, "name");
            const cJSON *input = cJSON_GetObjectItemCaseSensitive(b, "input");
            if (!cJSON_IsString(id) || !cJSON_IsString(name) || !cJSON_IsObject(input))
                rc = oa_error_set(e, 400, NULL, NULL, "%s: tool_use needs a string id and name and an object input", w);
            else rc = api_add_tool_call(out, id->valuestring, name->valuestring, cJSON_Duplicate(input, 1));
        } else if (!strcmp(t, "tool_result") && user) {
            rc = tool_result(b, w, msgs, e);
        } else if (!strcmp(t, "thinking") && !user) {
            const cJSON *th = cJSON_GetObjectItemCaseSensitive(b, "thinking");
            if (!cJSON_IsString(th)) rc = oa_error_set(e, 400, NULL, NULL, "%s.thinking must be a string", w);
            else sbuf_puts(&thinking, th->valuestring);
        } else if (!strcmp(t, "redacted_thinking") && !user) {
            /* opaque to us: nothing to render */
        } else {
            rc = oa_error_set(e, 400, NULL, NULL, "%s: a %s block is not supported in a %s message", w, t,
                              role->valuestring);
        }
        if (rc) break;
    }
    if (!rc && (text.oom || thinking.oom)) rc = oa_error_set(e, 500, NULL, NULL, "out of memory");
    bool has_calls = cJSON_GetObjectItemCaseSensitive(out, "tool_calls") != NULL;
    if (!rc && (text.len || has_calls || thinking.len || !cJSON_GetArraySize(content))) {
        cJSON_ReplaceItemInObjectCaseSensitive(out, "content", cJSON_CreateString(text.s ? text.s : ""));
        if (thinking.len) cJSON_AddStringToObject(out, "reasoning_content", thinking.s);
        cJSON_AddItemToArray(msgs, out);
        out = NULL;
    }
    cJSON_Delete(out);
    sbuf_free(&text);
    sbuf_free(&thinking);
    return rc;
}

static int tools(const cJSON *root, cJSON *out, struct oa_error *e)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "tools");
    if (!t || cJSON_IsNull(t)) return 0;
    if (!cJSON_IsArray(t)) return oa_error_set(e, 400, "tools", NULL, "'tools' must be a list");
    cJSON *arr = cJSON_AddArrayToObject(out, "tools");
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, t)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(it, "type");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "name");
        const cJSON *schema = cJSON_GetObjectItemCaseSensitive(it, "input_schema");
        if (type && !cJSON_IsNull(type) && !(cJSON_IsString(type) && !strcmp(type->valuestring, "custom")))
            return oa_error_set(e, 400, "tools", NULL, "tools.%d: only custom (client) tools are supported", i);
        if (!cJSON_IsString(name) || !cJSON_IsObject(schema))
            return oa_error_set(e, 400, "tools", NULL, "tools.%d needs a string name and an object input_schema", i);
        cJSON_AddItemToArray(arr, api_chat_tool(name, cJSON_GetObjectItemCaseSensitive(it, "description"), schema));
        i++;
    }
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(root, "tool_choice");
    if (!tc || cJSON_IsNull(tc)) return 0;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(tc, "type"), *name = cJSON_GetObjectItemCaseSensitive(tc, "name");
    const char *ty = cJSON_IsString(type) ? type->valuestring : "";
    if (!strcmp(ty, "auto")) cJSON_AddStringToObject(out, "tool_choice", "auto");
    else if (!strcmp(ty, "any")) cJSON_AddStringToObject(out, "tool_choice", "required");
    else if (!strcmp(ty, "none")) cJSON_AddStringToObject(out, "tool_choice", "none");
    else if (!strcmp(ty, "tool") && cJSON_IsString(name)) {
        cJSON *c = cJSON_AddObjectToObject(out, "tool_choice");
        cJSON_AddStringToObject(c, "type", "function");
        cJSON_AddStringToObject(cJSON_AddObjectToObject(c, "function"), "name", name->valuestring);
    } else {
        return oa_error_set(e, 400, "tool_choice", NULL,
                            "'tool_choice' must be {\"type\": \"auto\" | \"any\" | \"none\"} or {\"type\": \"tool\", \"name\": ...}");
    }
    return 0;
}

static int thinking(const cJSON *root, cJSON *out, struct oa_error *e)
{
    const cJSON *th = cJSON_GetObjectItemCaseSensitive(root, "thinking");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(th, "type");
    bool on = false;
    if (th && !cJSON_IsNull(th)) {
        if (!cJSON_IsObject(th) || !cJSON_IsString(type) ||
            (strcmp(type->valuestring, "enabled") && strcmp(type->valuestring, "disabled")))
            return oa_error_set(e, 400, "thinking", NULL,
                                "'thinking' must be {\"type\": \"enabled\", \"budget_tokens\": N} or {\"type\": \"disabled\"}");
        on = !strcmp(type->valuestring, "enabled");
        const cJSON *b = cJSON_GetObjectItemCaseSensitive(th, "budget_tokens");
        if (on && !cJSON_IsNumber(b))
            return oa_error_set(e, 400, "thinking.budget_tokens", NULL, "thinking.budget_tokens is required (a number)");
        if (on) cJSON_AddItemToObject(out, "thinking_token_budget", cJSON_Duplicate(b, 1));
    }
    /* thinking is off unless asked for, as on Anthropic's models */
    cJSON_AddBoolToObject(cJSON_AddObjectToObject(out, "chat_template_kwargs"), "enable_thinking", on);
    return 0;
}

static int build(struct api_ctx *c, const cJSON *root, cJSON *out, struct oa_error *e)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsString(model)) return oa_error_set(e, 400, "model", NULL, "'model' is required (a string)");
    snprintf(c->model, sizeof c->model, "%s", model->valuestring);
    api_copy(out, "model", root, "model");
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "max_tokens");
    if (!c->count_only && !mt) return oa_error_set(e, 400, "max_tokens", NULL, "'max_tokens' is required");
    if (!c->count_only) api_copy(out, "max_tokens", root, "max_tokens");
    api_copy(out, "temperature", root, "temperature");
    api_copy(out, "top_p", root, "top_p");
    api_copy(out, "top_k", root, "top_k");
    if (!c->count_only) api_copy(out, "stream", root, "stream");
    const cJSON *ss = cJSON_GetObjectItemCaseSensitive(root, "stop_sequences");
    if (ss && !cJSON_IsArray(ss)) return oa_error_set(e, 400, "stop_sequences", NULL, "'stop_sequences' must be a list of strings");
    if (ss) api_copy(out, "stop", root, "stop_sequences");

    cJSON *msgs = cJSON_AddArrayToObject(out, "messages");
    const cJSON *sys = cJSON_GetObjectItemCaseSensitive(root, "system");
    if (sys && !cJSON_IsNull(sys)) {
        struct sbuf text = {0};
        int rc = block_text(sys, "system", &text, e);
        if (!rc) cJSON_AddItemToArray(msgs, api_chat_message("system", text.s ? text.s : ""));
        sbuf_free(&text);
        if (rc) return -1;
    }
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (!cJSON_IsArray(in) || !cJSON_GetArraySize(in))
        return oa_error_set(e, 400, "messages", NULL, "'messages' is required (a non-empty list)");
    if (cJSON_GetArraySize(in) > OA_MAX_MESSAGES)
        return oa_error_set(e, 400, "messages", NULL, "'messages' may hold at most %d messages", OA_MAX_MESSAGES);
    int i = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, in)
    {
        if (message(m, i++, msgs, e)) return -1;
    }
    if (!cJSON_GetArraySize(msgs)) return oa_error_set(e, 400, "messages", NULL, "'messages' holds no content");
    return tools(root, out, e) || thinking(root, out, e) ? -1 : 0;
}

static int an_translate(struct api_ctx *c, const char *body, size_t len, struct sbuf *chat, struct oa_error *e)
{
    return api_translate_body(c, body, len, chat, e, build);
}

/* ---- response ---- */

static void tool_use_id(const char *call_id, char out[48])
{
    snprintf(out, 48, "toolu_%s", !strncmp(call_id, "call_", 5) ? call_id + 5 : call_id);
}

static const char *stop_reason(const struct api_output *o)
{
    switch (o->finish) {
    case API_FINISH_TOOL_CALLS: return "tool_use";
    case API_FINISH_LENGTH: return "max_tokens";
    default: return o->stop_sequence ? "stop_sequence" : "end_turn";
    }
}

static cJSON *usage_json(const struct oa_usage *u, bool with_input)
{
    cJSON *o = cJSON_CreateObject();
    if (with_input) {
        /* Anthropic counts cache reads apart from input_tokens */
        cJSON_AddNumberToObject(o, "input_tokens", u->prompt_tokens - u->cached_tokens);
        cJSON_AddNumberToObject(o, "cache_creation_input_tokens", 0);
        cJSON_AddNumberToObject(o, "cache_read_input_tokens", u->cached_tokens);
    }
    cJSON_AddNumberToObject(o, "output_tokens", u->completion_tokens);
    return o;
}

static cJSON *tool_use_block(const struct api_output *o, int k, bool with_input)
{
    char id[48];
    tool_use_id(o->call_ids[k], id);
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "type", "tool_use");
    cJSON_AddStringToObject(b, "id", id);
    cJSON_AddStringToObject(b, "name", o->calls[k].name);
    cJSON_AddItemToObject(b, "input", with_input ? api_arguments_json(o->calls[k].arguments) : cJSON_CreateObject());
    return b;
}

static cJSON *text_block(const char *type, const char *field, const char *text)
{
    cJSON *b = cJSON_CreateObject();
    cJSON_AddStringToObject(b, "type", type);
    cJSON_AddStringToObject(b, field, text);
    if (!strcmp(type, "thinking")) cJSON_AddStringToObject(b, "signature", "");
    return b;
}

static cJSON *message_json(const struct api_ctx *c, const struct api_output *o, bool begin)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "id", c->id);
    cJSON_AddStringToObject(m, "type", "message");
    cJSON_AddStringToObject(m, "role", "assistant");
    cJSON_AddStringToObject(m, "model", c->model);
    cJSON *content = cJSON_AddArrayToObject(m, "content");
    if (begin) {
        cJSON_AddNullToObject(m, "stop_reason");
        cJSON_AddNullToObject(m, "stop_sequence");
        struct oa_usage u = {.prompt_tokens = c->prompt_tokens};
        cJSON_AddItemToObject(m, "usage", usage_json(&u, true));
        return m;
    }
    if (o->reasoning[0]) cJSON_AddItemToArray(content, text_block("thinking", "thinking", o->reasoning));
    if (o->content[0] || (!o->reasoning[0] && !o->n_calls)) cJSON_AddItemToArray(content, text_block("text", "text", o->content));
    for (int k = 0; k < o->n_calls; k++) cJSON_AddItemToArray(content, tool_use_block(o, k, true));
    cJSON_AddStringToObject(m, "stop_reason", stop_reason(o));
    if (o->stop_sequence) cJSON_AddStringToObject(m, "stop_sequence", o->stop_sequence);
    else cJSON_AddNullToObject(m, "stop_sequence");
    cJSON_AddItemToObject(m, "usage", usage_json(&o->usage, true));
    return m;
}

static char *an_response(struct api_ctx *c, const struct api_output *o)
{
    cJSON *m = message_json(c, o, false);
    char *t = cJSON_PrintUnformatted(m);
    cJSON_Delete(m);
    return t;
}

/* ---- stream ---- */

static cJSON *event(const char *type)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", type);
    return o;
}

static void an_stream_begin(struct api_ctx *c, struct sbuf *out)
{
    cJSON *ev = event("message_start");
    cJSON_AddItemToObject(ev, "message", message_json(c, NULL, true));
    api_sse(out, "message_start", ev);
    api_sse(out, "ping", event("ping"));
}

static void block_stop(struct api_ctx *c, struct sbuf *out)
{
    if (!c->open) return;
    cJSON *ev = event("content_block_stop");
    cJSON_AddNumberToObject(ev, "index", c->n_items - 1);
    api_sse(out, "content_block_stop", ev);
    c->open = 0;
}

static void block_start(struct api_ctx *c, cJSON *block, struct sbuf *out)
{
    block_stop(c, out);
    cJSON *ev = event("content_block_start");
    cJSON_AddNumberToObject(ev, "index", c->n_items++);
    cJSON_AddItemToObject(ev, "content_block", block);
    api_sse(out, "content_block_start", ev);
}

static void block_delta(struct api_ctx *c, const char *type, const char *field, const char *text, struct sbuf *out)
{
    cJSON *ev = event("content_block_delta"), *d = cJSON_CreateObject();
    cJSON_AddNumberToObject(ev, "index", c->n_items - 1);
    cJSON_AddStringToObject(d, "type", type);
    cJSON_AddStringToObject(d, field, text);
    cJSON_AddItemToObject(ev, "delta", d);
    api_sse(out, "content_block_delta", ev);
}

static void text_delta(struct api_ctx *c, int kind, const char *text, struct sbuf *out)
{
    if (!text[0]) return;
    if (c->open != kind) {
        block_start(c, kind == 1 ? text_block("thinking", "thinking", "") : text_block("text", "text", ""), out);
        c->open = kind;
    }
    if (kind == 1) block_delta(c, "thinking_delta", "thinking", text, out);
    else block_delta(c, "text_delta", "text", text, out);
}

static void an_stream_delta(struct api_ctx *c, const struct api_output *o, struct sbuf *out)
{
    text_delta(c, 1, o->reasoning, out);
    text_delta(c, 2, o->content, out);
    for (int k = o->first_call; k < o->n_calls; k++) {
        block_start(c, tool_use_block(o, k, false), out);
        c->open = 3;
        cJSON *args = api_arguments_json(o->calls[k].arguments);
        char *t = cJSON_PrintUnformatted(args);
        cJSON_Delete(args);
        block_delta(c, "input_json_delta", "partial_json", t ? t : "{}", out);
        free(t);
        block_stop(c, out);
    }
}

static void an_stream_end(struct api_ctx *c, const struct api_output *o, struct sbuf *out)
{
    block_stop(c, out);
    cJSON *ev = event("message_delta"), *d = cJSON_CreateObject();
    cJSON_AddStringToObject(d, "stop_reason", stop_reason(o));
    if (o->stop_sequence) cJSON_AddStringToObject(d, "stop_sequence", o->stop_sequence);
    else cJSON_AddNullToObject(d, "stop_sequence");
    cJSON_AddItemToObject(ev, "delta", d);
    cJSON_AddItemToObject(ev, "usage", usage_json(&o->usage, true));
    api_sse(out, "message_delta", ev);
    api_sse(out, "message_stop", event("message_stop"));
}

static void an_stream_error(struct api_ctx *c, const struct oa_error *e, struct sbuf *out)
{
    (void)c;
    api_sse(out, "error", error_json(e));
}

static const char *const params[][2] = {{"stop", "stop_sequences"}, {"thinking_token_budget", "thinking.budget_tokens"}};

const struct api_ops api_anthropic = {
    .name = "anthropic",
    .translate = an_translate,
    .error_body = an_error_body,
    .response = an_response,
    .stream_begin = an_stream_begin,
    .stream_delta = an_stream_delta,
    .stream_end = an_stream_end,
    .stream_error = an_stream_error,
    .params = params,
    .n_params = sizeof params / sizeof params[0],
};
