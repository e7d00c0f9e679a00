#include "server/api_format.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


void api_ctx_free(struct api_ctx *c)
{
    sbuf_free(&c->reasoning);
    sbuf_free(&c->content);
    cJSON_Delete(c->echo);
    cJSON_Delete(c->conv);
    c->echo = c->conv = NULL;
}

/* The first 'from' or 'from.… in msg (a field the chat path named) spelled 'to' instead. */
static void rename_quoted(char *msg, size_t size, const char *from, const char *to)
{
    char quoted[80];
    snprintf(quoted, sizeof quoted, "'%s", from);
    char *at = strstr(msg, quoted);
    size_t n = strlen(quoted);
    if (!at || (at[n] != '\'' && at[n] != '.')) return;
    char rest[sizeof ((struct oa_error *)0)->message];
    snprintf(rest, sizeof rest, "%s", at + n);
    snprintf(at, size - (size_t)(at - msg), "'%s%s", to, rest);
}

void api_error_param(const struct api_ops *api, struct oa_error *e)
{
    for (int i = 0; i < api->n_params; i++) {
        if (!strcmp(e->param, api->params[i][0])) {
            snprintf(e->param, sizeof e->param, "%s", api->params[i][1]);
            rename_quoted(e->message, sizeof e->message, api->params[i][0], api->params[i][1]);
            return;
        }
    }
}

void api_sse(struct sbuf *out, const char *event, cJSON *o)
{
    char *t = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!t) {
        out->oom = true;
        return;
    }
    sbuf_printf(out, "event: %s\ndata: %s\n\n", event, t);
    free(t);
}

cJSON *api_arguments_json(const char *arguments)
{
    cJSON *v = cJSON_Parse(arguments ? arguments : "");
    if (cJSON_IsObject(v)) return v;
    cJSON_Delete(v);
    return cJSON_CreateObject();
}

int api_add_tool_call(cJSON *msg, const char *id, const char *name, cJSON *arguments)
{
    cJSON *calls = cJSON_GetObjectItemCaseSensitive(msg, "tool_calls");
    if (!calls) calls = cJSON_AddArrayToObject(msg, "tool_calls");
    cJSON *tc = cJSON_CreateObject(), *fn = cJSON_CreateObject();
    if (!calls || !tc || !fn) {
        cJSON_Delete(tc), cJSON_Delete(fn), cJSON_Delete(arguments);
        return -1;
    }
    if (id) cJSON_AddStringToObject(tc, "id", id);
    cJSON_AddStringToObject(tc, "type", "function");
    cJSON_AddStringToObject(fn, "name", name);
    cJSON_AddItemToObject(fn, "arguments", arguments);
    cJSON_AddItemToObject(tc, "function", fn);
    cJSON_AddItemToArray(calls, tc);
    return 0;
}

cJSON *api_chat_tool(const cJSON *name, const cJSON *description, const cJSON *params)
{
    cJSON *t = cJSON_CreateObject(), *fn = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "type", "function");
    cJSON_AddItemToObject(fn, "name", cJSON_Duplicate(name, 1));
    if (description && !cJSON_IsNull(description)) cJSON_AddItemToObject(fn, "description", cJSON_Duplicate(description, 1));
    if (params && !cJSON_IsNull(params)) cJSON_AddItemToObject(fn, "parameters", cJSON_Duplicate(params, 1));
    cJSON_AddItemToObject(t, "function", fn);
    return t;
}

void api_copy(cJSON *out, const char *to, const cJSON *root, const char *from)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, from);
    if (v) cJSON_AddItemToObject(out, to, cJSON_Duplicate(v, 1));
}

cJSON *api_chat_message(const char *role, const char *content)
{
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", role);
    cJSON_AddStringToObject(m, "content", content);
    return m;
}

int api_translate_body(struct api_ctx *c, const char *body, size_t len, struct sbuf *chat, struct oa_error *e,
                       int (*build)(struct api_ctx *, const cJSON *, cJSON *, struct oa_error *))
{
    cJSON *root = oa_parse_object(body, len, e);
    if (!root) return -1;
    cJSON *out = cJSON_CreateObject();
    int rc = out ? build(c, root, out, e) : oa_error_set(e, 500, NULL, NULL, "out of memory");
    char *t = rc ? NULL : cJSON_PrintUnformatted(out);
    if (!rc && (!t || sbuf_puts(chat, t))) rc = oa_error_set(e, 500, NULL, NULL, "out of memory");
    free(t);
    cJSON_Delete(out);
    cJSON_Delete(root);
    return rc;
}
