/* OpenAI's Responses API (POST /v1/responses) as a translation onto chat completions: input items
 * become chat messages (function_call -> tool_calls, function_call_output -> "tool" messages,
 * reasoning -> reasoning_content), previous_response_id prepends a stored conversation; replies
 * come back as output items (reasoning, message, function_call) and the typed stream events. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/api_format.h"
#include "server/resp_store.h"

static char *rs_error_body(const struct oa_error *e)
{
    return oa_error_body(e);
}

/* ---- request ---- */

/* A string, or a list of input_text / output_text parts, joined. */
static int content_text(const cJSON *v, const char *where, struct sbuf *out, struct oa_error *e)
{
    if (cJSON_IsString(v)) return sbuf_puts(out, v->valuestring) ? oa_error_set(e, 500, NULL, NULL, "out of memory") : 0;
    if (!cJSON_IsArray(v)) return oa_error_set(e, 400, "input", NULL, "%s must be a string or a list of parts", where);
    const cJSON *p;
    cJSON_ArrayForEach(p, v)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(p, "type"), *text = cJSON_GetObjectItemCaseSensitive(p, "text");
        const char *t = cJSON_IsString(type) ? type->valuestring : "";
        if (strcmp(t, "input_text") && strcmp(t, "output_text") && strcmp(t, "text") && strcmp(t, "reasoning_text"))
            return oa_error_set(e, 400, "input", NULL, "%s: a part of type '%s' is not supported (text only)", where,
                                t[0] ? t : "?");
        if (!cJSON_IsString(text)) return oa_error_set(e, 400, "input", NULL, "%s: a text part needs a string 'text'", where);
        sbuf_puts(out, text->valuestring);
    }
    return out->oom ? oa_error_set(e, 500, NULL, NULL, "out of memory") : 0;
}

/* The assistant message a function_call item joins: the last message when it is the assistant's. */
static cJSON *assistant_tail(cJSON *conv)
{
    int n = cJSON_GetArraySize(conv);
    cJSON *last = n ? cJSON_GetArrayItem(conv, n - 1) : NULL;
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(last, "role");
    if (last && cJSON_IsString(role) && !strcmp(role->valuestring, "assistant")) return last;
    cJSON *m = api_chat_message("assistant", "");
    cJSON_AddItemToArray(conv, m);
    return m;
}

static int item(const cJSON *it, int i, cJSON *conv, struct sbuf *reasoning, struct oa_error *e)
{
    char where[48];
    snprintf(where, sizeof where, "input[%d]", i);
    if (!cJSON_IsObject(it)) return oa_error_set(e, 400, "input", NULL, "%s must be an object", where);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(it, "type"), *role = cJSON_GetObjectItemCaseSensitive(it, "role");
    const char *t = cJSON_IsString(type) ? type->valuestring : type ? "" : "message";
    struct sbuf text = {0};
    int rc = 0;
    if (!strcmp(t, "message")) {
        static const char *const roles[] = {"user", "system", "developer", "assistant"};
        int k = 0;
        while (k < 4 && !(cJSON_IsString(role) && !strcmp(role->valuestring, roles[k]))) k++;
        if (k == 4) return oa_error_set(e, 400, "input", NULL, "%s.role must be user, system, developer or assistant", where);
        char w[64];
        snprintf(w, sizeof w, "%s.content", where);
        rc = content_text(cJSON_GetObjectItemCaseSensitive(it, "content"), w, &text, e);
        if (!rc) {
            cJSON *m = api_chat_message(k == 2 ? "system" : roles[k], text.s ? text.s : "");
            if (k == 3 && reasoning->len) cJSON_AddStringToObject(m, "reasoning_content", reasoning->s), sbuf_clear(reasoning);
            cJSON_AddItemToArray(conv, m);
        }
    } else if (!strcmp(t, "function_call")) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "call_id"), *name = cJSON_GetObjectItemCaseSensitive(it, "name");
        const cJSON *args = cJSON_GetObjectItemCaseSensitive(it, "arguments");
        if (!cJSON_IsString(id) || !cJSON_IsString(name) || !cJSON_IsString(args))
            return oa_error_set(e, 400, "input", NULL, "%s: a function_call needs string call_id, name and arguments", where);
        cJSON *m = assistant_tail(conv);
        if (reasoning->len && !cJSON_GetObjectItemCaseSensitive(m, "reasoning_content"))
            cJSON_AddStringToObject(m, "reasoning_content", reasoning->s), sbuf_clear(reasoning);
        rc = api_add_tool_call(m, id->valuestring, name->valuestring, cJSON_CreateString(args->valuestring));
        if (rc) rc = oa_error_set(e, 500, NULL, NULL, "out of memory");
    } else if (!strcmp(t, "function_call_output")) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "call_id");
        if (!cJSON_IsString(id)) return oa_error_set(e, 400, "input", NULL, "%s: a function_call_output needs a string call_id", where);
        char w[64];
        snprintf(w, sizeof w, "%s.output", where);
        rc = content_text(cJSON_GetObjectItemCaseSensitive(it, "output"), w, &text, e);
        if (!rc) {
            cJSON *m = api_chat_message("tool", text.s ? text.s : "");
            cJSON_AddStringToObject(m, "tool_call_id", id->valuestring);
            cJSON_AddItemToArray(conv, m);
        }
    } else if (!strcmp(t, "reasoning")) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (c && !cJSON_IsNull(c)) rc = content_text(c, where, reasoning, e);
    } else {
        rc = oa_error_set(e, 400, "input", NULL, "%s: items of type '%s' are not supported", where, t[0] ? t : "?");
    }
    sbuf_free(&text);
    return rc;
}

static int input(struct api_ctx *c, const cJSON *root, struct oa_error *e)
{
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(root, "input");
    if (cJSON_IsString(in)) {
        cJSON_AddItemToArray(c->conv, api_chat_message("user", in->valuestring));
        return 0;
    }
    if (!cJSON_IsArray(in) || !cJSON_GetArraySize(in))
        return oa_error_set(e, 400, "input", NULL, "'input' is required: a string or a non-empty list of items");
    if (cJSON_GetArraySize(in) > OA_MAX_MESSAGES)
        return oa_error_set(e, 400, "input", NULL, "'input' may hold at most %d items", OA_MAX_MESSAGES);
    struct sbuf reasoning = {0};
    int i = 0, rc = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, in)
    {
        if ((rc = item(it, i++, c->conv, &reasoning, e))) break;
    }
    sbuf_free(&reasoning);
    return rc;
}

static int previous(struct api_ctx *c, const cJSON *root, struct oa_error *e)
{
    const cJSON *prev = cJSON_GetObjectItemCaseSensitive(root, "previous_response_id");
    if (!prev || cJSON_IsNull(prev)) {
        c->conv = cJSON_CreateArray();
        return 0;
    }
    if (!cJSON_IsString(prev)) return oa_error_set(e, 400, "previous_response_id", NULL, "'previous_response_id' must be a string");
    char *conv = resp_store_get(c->rs, prev->valuestring, 0);
    if (!conv)
        return oa_error_set(e, 404, "previous_response_id", "previous_response_not_found",
                            "Previous response with id '%.200s' not found.", prev->valuestring);
    c->conv = cJSON_Parse(conv);
    free(conv);
    return c->conv ? 0 : oa_error_set(e, 500, NULL, NULL, "out of memory");
}

static int tools(const cJSON *root, cJSON *out, struct oa_error *e)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "tools");
    if (t && !cJSON_IsNull(t)) {
        if (!cJSON_IsArray(t)) return oa_error_set(e, 400, "tools", NULL, "'tools' must be a list");
        cJSON *arr = cJSON_AddArrayToObject(out, "tools");
        int i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, t)
        {
            const cJSON *type = cJSON_GetObjectItemCaseSensitive(it, "type"), *name = cJSON_GetObjectItemCaseSensitive(it, "name");
            if (!cJSON_IsString(type) || strcmp(type->valuestring, "function"))
                return oa_error_set(e, 400, "tools", NULL, "tools[%d]: only function tools are supported", i);
            if (!cJSON_IsString(name)) return oa_error_set(e, 400, "tools", NULL, "tools[%d].name must be a string", i);
            cJSON_AddItemToArray(arr, api_chat_tool(name, cJSON_GetObjectItemCaseSensitive(it, "description"),
                                                    cJSON_GetObjectItemCaseSensitive(it, "parameters")));
            i++;
        }
    }
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(root, "tool_choice");
    if (!tc || cJSON_IsNull(tc) || cJSON_IsString(tc)) {
        api_copy(out, "tool_choice", root, "tool_choice");
        return 0;
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(tc, "type"), *name = cJSON_GetObjectItemCaseSensitive(tc, "name");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "function") || !cJSON_IsString(name))
        return oa_error_set(e, 400, "tool_choice", NULL,
                            "'tool_choice' must be none, auto, required or {\"type\": \"function\", \"name\": ...}");
    cJSON *c = cJSON_AddObjectToObject(out, "tool_choice");
    cJSON_AddStringToObject(c, "type", "function");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(c, "function"), "name", name->valuestring);
    return 0;
}

/* text.format, Responses' spelling of response_format: {"type": "text" | "json_object"} or
 * {"type": "json_schema", "name", "schema", "strict", "description"} (the json_schema fields
 * one level up), into the chat request's response_format; the grammar is the chat path's. */
static int text_format(const cJSON *root, cJSON *out, struct oa_error *e)
{
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(root, "text");
    if (text && !cJSON_IsNull(text) && !cJSON_IsObject(text))
        return oa_error_set(e, 400, "text", NULL, "'text' must be an object");
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(text, "format");
    if (!f || cJSON_IsNull(f)) return 0;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(f, "type");
    if (!cJSON_IsObject(f) || !cJSON_IsString(type))
        return oa_error_set(e, 400, "text.format", NULL, "'text.format' must be an object with a 'type'");
    const char *t = type->valuestring;
    if (!strcmp(t, "text")) return 0;
    cJSON *rf = cJSON_AddObjectToObject(out, "response_format");
    if (!strcmp(t, "json_object")) {
        cJSON_AddStringToObject(rf, "type", "json_object");
        return 0;
    }
    if (strcmp(t, "json_schema"))
        return oa_error_set(e, 400, "text.format", NULL,
                            "'text.format.type' must be text, json_object or json_schema, got '%s'", t);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(f, "name"), *schema = cJSON_GetObjectItemCaseSensitive(f, "schema");
    if (!cJSON_IsString(name)) return oa_error_set(e, 400, "text.format", NULL, "'text.format.name' must be a string");
    if (!cJSON_IsObject(schema))
        return oa_error_set(e, 400, "text.format", NULL, "'text.format.schema' must be a JSON Schema object");
    cJSON_AddStringToObject(rf, "type", "json_schema");
    cJSON *js = cJSON_AddObjectToObject(rf, "json_schema");
    cJSON_AddStringToObject(js, "name", name->valuestring);
    cJSON_AddItemToObject(js, "schema", cJSON_Duplicate(schema, 1));
    const cJSON *strict = cJSON_GetObjectItemCaseSensitive(f, "strict");
    if (cJSON_IsBool(strict)) cJSON_AddBoolToObject(js, "strict", cJSON_IsTrue(strict));
    return 0;
}

static int options(struct api_ctx *c, const cJSON *root, cJSON *out, struct oa_error *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (v && !cJSON_IsString(v)) return oa_error_set(e, 400, "model", NULL, "'model' must be a string");
    if (v) snprintf(c->model, sizeof c->model, "%s", v->valuestring);
    api_copy(out, "model", root, "model");
    api_copy(out, "max_tokens", root, "max_output_tokens");
    api_copy(out, "temperature", root, "temperature");
    api_copy(out, "top_p", root, "top_p");
    api_copy(out, "top_k", root, "top_k");
    api_copy(out, "stream", root, "stream");
    v = cJSON_GetObjectItemCaseSensitive(root, "store");
    if (v && !cJSON_IsBool(v) && !cJSON_IsNull(v)) return oa_error_set(e, 400, "store", NULL, "'store' must be a boolean");
    c->store = !cJSON_IsFalse(v);
    v = cJSON_GetObjectItemCaseSensitive(root, "background");
    if (cJSON_IsTrue(v)) return oa_error_set(e, 400, "background", NULL, "'background' responses are not supported");
    if (text_format(root, out, e)) return -1;
    v = cJSON_GetObjectItemCaseSensitive(root, "reasoning");
    if (v && !cJSON_IsNull(v)) {
        const cJSON *eff = cJSON_GetObjectItemCaseSensitive(v, "effort");
        if (!cJSON_IsObject(v) || (eff && !cJSON_IsNull(eff) && !cJSON_IsString(eff)))
            return oa_error_set(e, 400, "reasoning", NULL, "'reasoning' must be {\"effort\": \"low\" | \"medium\" | \"high\" | ...}");
        if (cJSON_IsString(eff))
            cJSON_AddStringToObject(out, "reasoning_effort", !strcmp(eff->valuestring, "minimal") ? "low" : eff->valuestring);
    }
    return tools(root, out, e);
}

/* The request fields a response object repeats. */
static void keep_echo(struct api_ctx *c, const cJSON *root)
{
    static const char *const keys[] = {"instructions", "max_output_tokens", "previous_response_id", "temperature",
                                       "top_p", "tool_choice", "tools", "metadata", "reasoning"};
    c->echo = cJSON_CreateObject();
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, keys[i]);
        cJSON_AddItemToObject(c->echo, keys[i], v ? cJSON_Duplicate(v, 1) : cJSON_CreateNull());
    }
    /* text.format as asked (the default {"type": "text"} is added when the response is made) */
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "text"), "format");
    if (cJSON_IsObject(f)) cJSON_AddItemToObject(cJSON_AddObjectToObject(c->echo, "text"), "format", cJSON_Duplicate(f, 1));
}

static int build(struct api_ctx *c, const cJSON *root, cJSON *out, struct oa_error *e)
{
    if (options(c, root, out, e) || previous(c, root, e) || input(c, root, e)) return -1;
    cJSON *msgs = cJSON_AddArrayToObject(out, "messages");
    const cJSON *ins = cJSON_GetObjectItemCaseSensitive(root, "instructions");
    if (ins && !cJSON_IsNull(ins) && !cJSON_IsString(ins))
        return oa_error_set(e, 400, "instructions", NULL, "'instructions' must be a string");
    if (cJSON_IsString(ins)) cJSON_AddItemToArray(msgs, api_chat_message("system", ins->valuestring));
    const cJSON *m;
    cJSON_ArrayForEach(m, c->conv) cJSON_AddItemToArray(msgs, cJSON_Duplicate(m, 1));
    keep_echo(c, root);
    return 0;
}

static int rs_translate(struct api_ctx *c, const char *body, size_t len, struct sbuf *chat, struct oa_error *e)
{
    return api_translate_body(c, body, len, chat, e, build);
}

/* ---- output items ---- */

static void item_id(const struct api_ctx *c, const char *prefix, int k, char out[96])
{
    const char *hex = strchr(c->id, '_') ? strchr(c->id, '_') + 1 : c->id;
    if (k >= 0) snprintf(out, 96, "%s_%s%d", prefix, hex, k);
    else snprintf(out, 96, "%s_%s", prefix, hex);
}

static cJSON *text_part(const char *type, const char *text)
{
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "type", type);
    cJSON_AddStringToObject(p, "text", text);
    if (!strcmp(type, "output_text")) {
        cJSON_AddArrayToObject(p, "annotations");
        cJSON_AddArrayToObject(p, "logprobs");
    }
    return p;
}

/* An output item with its id and type. */
static cJSON *item_new(const struct api_ctx *c, const char *prefix, int k, const char *type)
{
    char id[96];
    item_id(c, prefix, k, id);
    cJSON *it = cJSON_CreateObject();
    cJSON_AddStringToObject(it, "id", id);
    cJSON_AddStringToObject(it, "type", type);
    return it;
}

static cJSON *reasoning_item(const struct api_ctx *c, const char *text)
{
    cJSON *it = item_new(c, "rs", -1, "reasoning");
    cJSON_AddArrayToObject(it, "summary");
    cJSON *content = cJSON_AddArrayToObject(it, "content");
    if (text) cJSON_AddItemToArray(content, text_part("reasoning_text", text));
    return it;
}

static cJSON *message_item(const struct api_ctx *c, const char *text)
{
    cJSON *it = item_new(c, "msg", -1, "message");
    cJSON_AddStringToObject(it, "status", text ? "completed" : "in_progress");
    cJSON_AddStringToObject(it, "role", "assistant");
    cJSON *content = cJSON_AddArrayToObject(it, "content");
    if (text) cJSON_AddItemToArray(content, text_part("output_text", text));
    return it;
}

static cJSON *call_item(const struct api_ctx *c, const struct api_output *o, int k, bool done)
{
    cJSON *it = item_new(c, "fc", k, "function_call");
    cJSON_AddStringToObject(it, "status", done ? "completed" : "in_progress");
    cJSON_AddStringToObject(it, "call_id", o->call_ids[k]);
    cJSON_AddStringToObject(it, "name", o->calls[k].name);
    cJSON_AddStringToObject(it, "arguments", done ? o->calls[k].arguments : "");
    return it;
}

static cJSON *usage_json(const struct oa_usage *u)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "input_tokens", u->prompt_tokens);
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(o, "input_tokens_details"), "cached_tokens", u->cached_tokens);
    cJSON_AddNumberToObject(o, "output_tokens", u->completion_tokens);
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(o, "output_tokens_details"), "reasoning_tokens", u->reasoning_tokens);
    cJSON_AddNumberToObject(o, "total_tokens", u->prompt_tokens + u->completion_tokens);
    return o;
}

/* The response object: o NULL while in progress. */
static cJSON *response_json(const struct api_ctx *c, const struct api_output *o)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "id", c->id);
    cJSON_AddStringToObject(r, "object", "response");
    cJSON_AddNumberToObject(r, "created_at", (double)c->created);
    bool incomplete = o && o->finish == API_FINISH_LENGTH;
    cJSON_AddStringToObject(r, "status", !o ? "in_progress" : incomplete ? "incomplete" : "completed");
    cJSON_AddNullToObject(r, "error");
    if (incomplete) cJSON_AddStringToObject(cJSON_AddObjectToObject(r, "incomplete_details"), "reason", "max_output_tokens");
    else cJSON_AddNullToObject(r, "incomplete_details");
    cJSON_AddStringToObject(r, "model", c->model);
    cJSON *out = cJSON_AddArrayToObject(r, "output");
    if (o) {
        if (o->reasoning[0]) cJSON_AddItemToArray(out, reasoning_item(c, o->reasoning));
        if (o->content[0] || !o->n_calls) cJSON_AddItemToArray(out, message_item(c, o->content));
        for (int k = 0; k < o->n_calls; k++) cJSON_AddItemToArray(out, call_item(c, o, k, true));
    }
    const cJSON *v;
    cJSON_ArrayForEach(v, c->echo) cJSON_AddItemToObject(r, v->string, cJSON_Duplicate(v, 1));
    cJSON *tools = cJSON_GetObjectItemCaseSensitive(r, "tools"), *tc = cJSON_GetObjectItemCaseSensitive(r, "tool_choice");
    if (cJSON_IsNull(tools)) cJSON_ReplaceItemInObjectCaseSensitive(r, "tools", cJSON_CreateArray());
    if (cJSON_IsNull(tc)) cJSON_ReplaceItemInObjectCaseSensitive(r, "tool_choice", cJSON_CreateString("auto"));
    if (cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r, "metadata")))
        cJSON_ReplaceItemInObjectCaseSensitive(r, "metadata", cJSON_CreateObject());
    cJSON_AddBoolToObject(r, "parallel_tool_calls", true);
    cJSON_AddBoolToObject(r, "store", c->store);
    if (!cJSON_GetObjectItemCaseSensitive(r, "text"))
        cJSON_AddStringToObject(cJSON_AddObjectToObject(cJSON_AddObjectToObject(r, "text"), "format"), "type", "text");
    if (o) cJSON_AddItemToObject(r, "usage", usage_json(&o->usage));
    else cJSON_AddNullToObject(r, "usage");
    return r;
}

/* Stores the conversation with this response's output as an assistant message. */
static void store(struct api_ctx *c, const struct api_output *o, const char *body)
{
    if (!c->store || !c->rs || !c->conv) return;
    cJSON *m = api_chat_message("assistant", o->content);
    if (o->reasoning[0]) cJSON_AddStringToObject(m, "reasoning_content", o->reasoning);
    for (int k = 0; k < o->n_calls; k++)
        api_add_tool_call(m, o->call_ids[k], o->calls[k].name, cJSON_CreateString(o->calls[k].arguments));
    cJSON_AddItemToArray(c->conv, m);
    char *conv = cJSON_PrintUnformatted(c->conv);
    if (conv) resp_store_put(c->rs, c->id, conv, body);
    free(conv);
}

static char *rs_response(struct api_ctx *c, const struct api_output *o)
{
    cJSON *r = response_json(c, o);
    char *t = cJSON_PrintUnformatted(r);
    cJSON_Delete(r);
    if (t) store(c, o, t);
    return t;
}

/* ---- stream ---- */

static void emit(struct api_ctx *c, const char *type, cJSON *ev, struct sbuf *out)
{
    cJSON_AddStringToObject(ev, "type", type);
    cJSON_AddNumberToObject(ev, "sequence_number", c->seq++);
    api_sse(out, type, ev);
}

static cJSON *at(const struct api_ctx *c, const char *id)
{
    cJSON *ev = cJSON_CreateObject();
    if (id) cJSON_AddStringToObject(ev, "item_id", id);
    cJSON_AddNumberToObject(ev, "output_index", c->n_items - 1);
    return ev;
}

static void rs_stream_begin(struct api_ctx *c, struct sbuf *out)
{
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddItemToObject(ev, "response", response_json(c, NULL));
    emit(c, "response.created", ev, out);
    ev = cJSON_CreateObject();
    cJSON_AddItemToObject(ev, "response", response_json(c, NULL));
    emit(c, "response.in_progress", ev, out);
}

static void item_done(struct api_ctx *c, struct sbuf *out)
{
    if (!c->open) return;
    bool reasoning = c->open == 1;
    const char *text = reasoning ? (c->reasoning.s ? c->reasoning.s : "") : (c->content.s ? c->content.s : "");
    cJSON *it = reasoning ? reasoning_item(c, text) : message_item(c, text);
    const char *id = cJSON_GetObjectItemCaseSensitive(it, "id")->valuestring;
    cJSON *ev = at(c, id);
    cJSON_AddNumberToObject(ev, "content_index", 0);
    cJSON_AddStringToObject(ev, "text", text);
    emit(c, reasoning ? "response.reasoning_text.done" : "response.output_text.done", ev, out);
    ev = at(c, id);
    cJSON_AddNumberToObject(ev, "content_index", 0);
    cJSON_AddItemToObject(ev, "part", text_part(reasoning ? "reasoning_text" : "output_text", text));
    emit(c, "response.content_part.done", ev, out);
    ev = at(c, NULL);
    cJSON_AddItemToObject(ev, "item", it);
    emit(c, "response.output_item.done", ev, out);
    c->open = 0;
}

static void text_delta(struct api_ctx *c, int kind, const char *text, struct sbuf *out)
{
    if (!text[0]) return;
    bool reasoning = kind == 1;
    if (c->open != kind) {
        item_done(c, out);
        c->n_items++;
        c->open = kind;
        cJSON *it = reasoning ? reasoning_item(c, NULL) : message_item(c, NULL);
        char id[96];
        snprintf(id, sizeof id, "%s", cJSON_GetObjectItemCaseSensitive(it, "id")->valuestring);
        cJSON *ev = at(c, NULL);
        cJSON_AddItemToObject(ev, "item", it);
        emit(c, "response.output_item.added", ev, out);
        ev = at(c, id);
        cJSON_AddNumberToObject(ev, "content_index", 0);
        cJSON_AddItemToObject(ev, "part", text_part(reasoning ? "reasoning_text" : "output_text", ""));
        emit(c, "response.content_part.added", ev, out);
    }
    sbuf_puts(reasoning ? &c->reasoning : &c->content, text);
    char id[96];
    item_id(c, reasoning ? "rs" : "msg", -1, id);
    cJSON *ev = at(c, id);
    cJSON_AddNumberToObject(ev, "content_index", 0);
    cJSON_AddStringToObject(ev, "delta", text);
    if (!reasoning) cJSON_AddArrayToObject(ev, "logprobs");
    emit(c, reasoning ? "response.reasoning_text.delta" : "response.output_text.delta", ev, out);
}

static void rs_stream_delta(struct api_ctx *c, const struct api_output *o, struct sbuf *out)
{
    text_delta(c, 1, o->reasoning, out);
    text_delta(c, 2, o->content, out);
    for (int k = o->first_call; k < o->n_calls; k++) {
        item_done(c, out);
        c->n_items++;
        char id[96];
        item_id(c, "fc", k, id);
        cJSON *ev = at(c, NULL);
        cJSON_AddItemToObject(ev, "item", call_item(c, o, k, false));
        emit(c, "response.output_item.added", ev, out);
        ev = at(c, id);
        cJSON_AddStringToObject(ev, "delta", o->calls[k].arguments);
        emit(c, "response.function_call_arguments.delta", ev, out);
        ev = at(c, id);
        cJSON_AddStringToObject(ev, "arguments", o->calls[k].arguments);
        emit(c, "response.function_call_arguments.done", ev, out);
        ev = at(c, NULL);
        cJSON_AddItemToObject(ev, "item", call_item(c, o, k, true));
        emit(c, "response.output_item.done", ev, out);
    }
}

static void rs_stream_end(struct api_ctx *c, const struct api_output *o, struct sbuf *out)
{
    item_done(c, out);
    struct api_output all = *o;
    all.reasoning = c->reasoning.s ? c->reasoning.s : "";
    all.content = c->content.s ? c->content.s : "";
    all.first_call = 0;
    cJSON *r = response_json(c, &all);
    char *body = cJSON_PrintUnformatted(r);
    if (body) store(c, &all, body);
    free(body);
    cJSON *ev = cJSON_CreateObject();
    cJSON_AddItemToObject(ev, "response", r);
    emit(c, o->finish == API_FINISH_LENGTH ? "response.incomplete" : "response.completed", ev, out);
}

static void rs_stream_error(struct api_ctx *c, const struct oa_error *e, struct sbuf *out)
{
    cJSON *ev = cJSON_CreateObject();
    if (e->code) cJSON_AddStringToObject(ev, "code", e->code);
    else cJSON_AddStringToObject(ev, "code", e->status >= 500 ? "server_error" : "invalid_request_error");
    cJSON_AddStringToObject(ev, "message", e->message);
    if (e->param[0]) cJSON_AddStringToObject(ev, "param", e->param);
    else cJSON_AddNullToObject(ev, "param");
    emit(c, "error", ev, out);
    /* then the terminal event, as OpenAI ends a failed stream */
    cJSON *r = response_json(c, NULL), *err = cJSON_CreateObject();
    cJSON_AddStringToObject(err, "code", "server_error");
    cJSON_AddStringToObject(err, "message", e->message);
    cJSON_ReplaceItemInObjectCaseSensitive(r, "status", cJSON_CreateString("failed"));
    cJSON_ReplaceItemInObjectCaseSensitive(r, "error", err);
    ev = cJSON_CreateObject();
    cJSON_AddItemToObject(ev, "response", r);
    emit(c, "response.failed", ev, out);
}

static const char *const params[][2] = {
    {"max_tokens", "max_output_tokens"}, {"reasoning_effort", "reasoning.effort"}, {"messages", "input"},
    {"response_format", "text.format"}};

const struct api_ops api_responses = {
    .name = "responses",
    .translate = rs_translate,
    .error_body = rs_error_body,
    .response = rs_response,
    .stream_begin = rs_stream_begin,
    .stream_delta = rs_stream_delta,
    .stream_end = rs_stream_end,
    .stream_error = rs_stream_error,
    .params = params,
    .n_params = sizeof params / sizeof params[0],
};
