/* The Responses and Messages APIs, translated onto the chat-completions request path.
 *
 * Each API is a table of functions (struct api_ops): `translate` turns its request body into a
 * chat-completions body, which then takes the one path every request takes (oa_request_parse,
 * the template, the limits, the scheduler, the output parser); the other functions shape what
 * came out (a whole response, stream events, errors) in the API's own format. One api_ctx per
 * request, owned by the connection thread serving it. */
#ifndef MS_SERVER_API_FORMAT_H
#define MS_SERVER_API_FORMAT_H

#include <stdbool.h>
#include <stddef.h>

#include "server/openai_request.h"
#include "server/openai_response.h"
#include "server/output_parser.h"
#include "server/sbuf.h"

struct cJSON;
struct resp_store;

enum api_finish { API_FINISH_STOP, API_FINISH_LENGTH, API_FINISH_TOOL_CALLS, API_FINISH_ABORT };

/* What a request produced: the whole of it (response, stream_end) or what is new (stream_delta).
 * Borrowed. */
struct api_output {
    const char *reasoning, *content; /* never NULL; "" when none */
    const struct parsed_tool_call *calls;
    const char (*call_ids)[40];      /* "call_" ids, [n_calls] */
    int first_call, n_calls;         /* the calls in play are [first_call, n_calls) */
    enum api_finish finish;
    const char *stop_sequence;       /* the stop string that ended the output, or NULL */
    struct oa_usage usage;
};

struct api_ctx {
    char id[64];                 /* "msg_..." / "resp_..." */
    char model[256];
    long created;
    bool count_only;             /* /v1/messages/count_tokens: max_tokens not required */
    int prompt_tokens;           /* known before the stream begins */
    /* streaming state */
    int seq;                     /* Responses' sequence_number */
    int n_items;                 /* content blocks / output items opened */
    int open;                    /* the open one: 0 none, 1 reasoning, 2 text */
    struct sbuf reasoning, content; /* everything so far */
    /* Responses */
    struct cJSON *echo;          /* request fields a response repeats; owned */
    struct cJSON *conv;          /* the conversation (chat messages, no instructions); owned */
    bool store;
    struct resp_store *rs;       /* borrowed; the server's */
};

struct api_ops {
    const char *name;
    /* body -> chat-completions body appended to `chat`; 0, or -1 with e set */
    int (*translate)(struct api_ctx *c, const char *body, size_t len, struct sbuf *chat, struct oa_error *e);
    char *(*error_body)(const struct oa_error *e); /* malloc'd */
    char *(*response)(struct api_ctx *c, const struct api_output *o); /* malloc'd */
    void (*stream_begin)(struct api_ctx *c, struct sbuf *out);
    void (*stream_delta)(struct api_ctx *c, const struct api_output *o, struct sbuf *out);
    void (*stream_end)(struct api_ctx *c, const struct api_output *o, struct sbuf *out);
    void (*stream_error)(struct api_ctx *c, const struct oa_error *e, struct sbuf *out);
    /* {chat-completions field, this API's field}: an error the chat path reports names the
     * field the client sent */
    const char *const (*params)[2];
    int n_params;
};

extern const struct api_ops api_anthropic; /* anthropic_api.c */
extern const struct api_ops api_responses; /* responses_api.c */

void api_ctx_free(struct api_ctx *c);

/* Renames e->param by api->params, and the field where the message quotes it ('max_tokens' ...). */
void api_error_param(const struct api_ops *api, struct oa_error *e);

/* ---- shared by the translations (api_common.c) ---- */

/* "event: <name>\ndata: <json>\n\n"; takes o. */
void api_sse(struct sbuf *out, const char *event, struct cJSON *o);
/* A tool call's arguments as a JSON value (an object when they parse as one, else {}). */
struct cJSON *api_arguments_json(const char *arguments);
/* {"type":"function","function":{"name":..,"arguments":..}} with "id" appended to an assistant
 * message's tool_calls (created when missing). Takes arguments. */
int api_add_tool_call(struct cJSON *msg, const char *id, const char *name, struct cJSON *arguments);
/* A chat tool {"type":"function","function":{name, description, parameters}} from borrowed parts. */
struct cJSON *api_chat_tool(const struct cJSON *name, const struct cJSON *description, const struct cJSON *params);
/* Copies root[from] into out[to] when present. */
void api_copy(struct cJSON *out, const char *to, const struct cJSON *root, const char *from);
/* {"role": role, "content": content} */
struct cJSON *api_chat_message(const char *role, const char *content);
/* A translate function: parses the body (oa_parse_object), has `build` fill the chat body from
 * it, appends that body's text to chat. 0, or -1 with e set. */
int api_translate_body(struct api_ctx *c, const char *body, size_t len, struct sbuf *chat, struct oa_error *e,
                       int (*build)(struct api_ctx *, const struct cJSON *, struct cJSON *, struct oa_error *));

#endif
