#include "server/openai_response.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *finish(cJSON *o)
{
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

char *oa_error_body(const struct oa_error *e)
{
    cJSON *o = cJSON_CreateObject(), *err = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(err, "message", e->message);
    cJSON_AddStringToObject(err, "type", e->type ? e->type : "invalid_request_error");
    if (e->param[0]) cJSON_AddStringToObject(err, "param", e->param);
    else cJSON_AddNullToObject(err, "param");
    if (e->code) cJSON_AddStringToObject(err, "code", e->code);
    else cJSON_AddNumberToObject(err, "code", e->status);
    return finish(o);
}

cJSON *oa_usage_json(const struct oa_usage *u)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "prompt_tokens", u->prompt_tokens);
    cJSON_AddNumberToObject(o, "completion_tokens", u->completion_tokens);
    cJSON_AddNumberToObject(o, "total_tokens", u->prompt_tokens + u->completion_tokens);
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(o, "prompt_tokens_details"), "cached_tokens", u->cached_tokens);
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(o, "completion_tokens_details"), "reasoning_tokens",
                            u->reasoning_tokens);
    return o;
}

static cJSON *head(const struct oa_meta *m, const char *object)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", m->id);
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddNumberToObject(o, "created", (double)m->created);
    cJSON_AddStringToObject(o, "model", m->model);
    return o;
}

static void add_reasoning(cJSON *obj, enum reasoning_field rf, const char *text)
{
    if (rf != REASONING_FIELD_REASONING) cJSON_AddStringToObject(obj, "reasoning_content", text);
    if (rf != REASONING_FIELD_REASONING_CONTENT) cJSON_AddStringToObject(obj, "reasoning", text);
}

static void add_str_or_null(cJSON *obj, const char *name, const char *v)
{
    if (v) cJSON_AddStringToObject(obj, name, v);
    else cJSON_AddNullToObject(obj, name);
}

static void add_logprobs(cJSON *obj, cJSON *lp)
{
    if (lp) cJSON_AddItemToObject(obj, "logprobs", lp);
    else cJSON_AddNullToObject(obj, "logprobs");
}

void oa_tool_call_id(const char *response_id, int choice, int k, char out[40])
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = response_id; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211ull;
    uint64_t h2 = (h ^ (uint64_t)(choice * 131 + k + 1)) * 0x9E3779B97F4A7C15ull;
    h2 ^= h2 >> 29;
    snprintf(out, 40, "call_%016llx%08x", (unsigned long long)h2, (unsigned)((h >> 32) ^ (unsigned)k));
}

static cJSON *tool_calls_json(const struct parsed_tool_call *calls, const char (*ids)[40], int n)
{
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddStringToObject(c, "id", ids[i]);
        cJSON_AddStringToObject(c, "type", "function");
        cJSON *f = cJSON_AddObjectToObject(c, "function");
        cJSON_AddStringToObject(f, "name", calls[i].name);
        cJSON_AddStringToObject(f, "arguments", calls[i].arguments);
        cJSON_AddItemToArray(arr, c);
    }
    return arr;
}

char *oa_chat_response(const struct oa_meta *m, const struct oa_choice *choices, int n, const struct oa_usage *u)
{
    cJSON *o = head(m, "chat.completion");
    cJSON *arr = cJSON_AddArrayToObject(o, "choices");
    for (int i = 0; i < n; i++) {
        const struct oa_choice *c = &choices[i];
        cJSON *ch = cJSON_CreateObject();
        cJSON_AddNumberToObject(ch, "index", c->index);
        cJSON *msg = cJSON_AddObjectToObject(ch, "message");
        cJSON_AddStringToObject(msg, "role", "assistant");
        add_str_or_null(msg, "content", c->text);
        if (c->reasoning) add_reasoning(msg, m->reasoning_field, c->reasoning);
        if (c->n_calls) cJSON_AddItemToObject(msg, "tool_calls", tool_calls_json(c->calls, c->call_ids, c->n_calls));
        add_logprobs(ch, c->logprobs);
        cJSON_AddStringToObject(ch, "finish_reason", c->finish_reason);
        cJSON_AddItemToArray(arr, ch);
    }
    cJSON_AddItemToObject(o, "usage", oa_usage_json(u));
    return finish(o);
}

char *oa_completion_response(const struct oa_meta *m, const struct oa_choice *choices, int n,
                             const struct oa_usage *u)
{
    cJSON *o = head(m, "text_completion");
    cJSON *arr = cJSON_AddArrayToObject(o, "choices");
    for (int i = 0; i < n; i++) {
        cJSON *ch = cJSON_CreateObject();
        cJSON_AddNumberToObject(ch, "index", choices[i].index);
        cJSON_AddStringToObject(ch, "text", choices[i].text ? choices[i].text : "");
        add_logprobs(ch, choices[i].logprobs);
        cJSON_AddStringToObject(ch, "finish_reason", choices[i].finish_reason);
        cJSON_AddItemToArray(arr, ch);
    }
    cJSON_AddItemToObject(o, "usage", oa_usage_json(u));
    return finish(o);
}

char *oa_chat_chunk(const struct oa_meta *m, int index, const char *role, const char *reasoning, const char *content,
                    const struct parsed_tool_call *calls, const char (*call_ids)[40], int first_call, int n_calls,
                    const char *finish_reason, cJSON *logprobs)
{
    cJSON *o = head(m, "chat.completion.chunk");
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "choices"), ch);
    cJSON_AddNumberToObject(ch, "index", index);
    cJSON *d = cJSON_AddObjectToObject(ch, "delta");
    if (role) cJSON_AddStringToObject(d, "role", role);
    if (role && !content && !reasoning && first_call >= n_calls) cJSON_AddStringToObject(d, "content", "");
    if (reasoning) add_reasoning(d, m->reasoning_field, reasoning);
    if (content) cJSON_AddStringToObject(d, "content", content);
    if (first_call < n_calls) {
        cJSON *arr = cJSON_AddArrayToObject(d, "tool_calls");
        for (int k = first_call; k < n_calls; k++) {
            cJSON *c = cJSON_CreateObject();
            cJSON_AddNumberToObject(c, "index", k);
            cJSON_AddStringToObject(c, "id", call_ids[k]);
            cJSON_AddStringToObject(c, "type", "function");
            cJSON *f = cJSON_AddObjectToObject(c, "function");
            cJSON_AddStringToObject(f, "name", calls[k].name);
            cJSON_AddStringToObject(f, "arguments", "");
            cJSON_AddItemToArray(arr, c);
            c = cJSON_CreateObject();
            cJSON_AddNumberToObject(c, "index", k);
            cJSON_AddStringToObject(cJSON_AddObjectToObject(c, "function"), "arguments", calls[k].arguments);
            cJSON_AddItemToArray(arr, c);
        }
    }
    add_logprobs(ch, logprobs);
    add_str_or_null(ch, "finish_reason", finish_reason);
    if (m->usage_null) cJSON_AddNullToObject(o, "usage");
    return finish(o);
}

char *oa_completion_chunk(const struct oa_meta *m, int index, const char *text, const char *finish_reason,
                          cJSON *logprobs)
{
    cJSON *o = head(m, "text_completion");
    cJSON *ch = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "choices"), ch);
    cJSON_AddNumberToObject(ch, "index", index);
    cJSON_AddStringToObject(ch, "text", text ? text : "");
    add_logprobs(ch, logprobs);
    add_str_or_null(ch, "finish_reason", finish_reason);
    if (m->usage_null) cJSON_AddNullToObject(o, "usage");
    return finish(o);
}

char *oa_usage_chunk(const struct oa_meta *m, bool chat, const struct oa_usage *u)
{
    cJSON *o = head(m, chat ? "chat.completion.chunk" : "text_completion");
    cJSON_AddArrayToObject(o, "choices");
    cJSON_AddItemToObject(o, "usage", oa_usage_json(u));
    return finish(o);
}
