/* OpenAI response bodies: chat completions, text completions, their SSE chunks, usage and errors.
 * Every function returns a malloc'd JSON text (caller frees), or NULL when memory ran out.
 * Any thread. */
#ifndef MS_SERVER_OPENAI_RESPONSE_H
#define MS_SERVER_OPENAI_RESPONSE_H

#include <stdbool.h>

#include "server/openai_request.h"
#include "server/output_parser.h"

struct cJSON;

enum reasoning_field {
    REASONING_FIELD_BOTH,              /* reasoning_content and reasoning */
    REASONING_FIELD_REASONING_CONTENT, /* SGLang, llama.cpp, DeepSeek */
    REASONING_FIELD_REASONING,         /* vLLM >= 0.10, Ollama */
};

struct oa_meta {
    const char *id;     /* "chatcmpl-..." or "cmpl-..." */
    const char *model;
    long created;
    enum reasoning_field reasoning_field;
    bool usage_null;    /* streamed with include_usage: every chunk carries "usage": null */
};

struct oa_usage {
    int prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens;
};

/* One finished choice of a non-streamed response. Borrowed pointers. */
struct oa_choice {
    int index;
    const char *text;      /* chat: content (NULL -> null); completions: text */
    const char *reasoning; /* NULL: no reasoning field */
    const struct parsed_tool_call *calls;
    const char (*call_ids)[40]; /* [n_calls] */
    int n_calls;
    const char *finish_reason;
    struct cJSON *logprobs; /* NULL -> null; the response takes ownership */
};

char *oa_error_body(const struct oa_error *e);

char *oa_chat_response(const struct oa_meta *m, const struct oa_choice *choices, int n, const struct oa_usage *u);
char *oa_completion_response(const struct oa_meta *m, const struct oa_choice *choices, int n,
                             const struct oa_usage *u);

/* A chat chunk for one choice. role, reasoning, content, finish_reason may be NULL (left out of
 * the delta / null). calls[first_call .. n_calls) are sent as tool-call deltas: one with id,
 * type and name, then one with the arguments. logprobs: ownership taken, NULL -> null. */
char *oa_chat_chunk(const struct oa_meta *m, int index, const char *role, const char *reasoning, const char *content,
                    const struct parsed_tool_call *calls, const char (*call_ids)[40], int first_call, int n_calls,
                    const char *finish_reason, struct cJSON *logprobs);
char *oa_completion_chunk(const struct oa_meta *m, int index, const char *text, const char *finish_reason,
                          struct cJSON *logprobs);
/* The include_usage chunk: "choices": [] and the usage. */
char *oa_usage_chunk(const struct oa_meta *m, bool chat, const struct oa_usage *u);

struct cJSON *oa_usage_json(const struct oa_usage *u);

/* Tool-call id for call k of a choice: "call_" and 24 hex digits derived from the response id. */
void oa_tool_call_id(const char *response_id, int choice, int k, char out[40]);

#endif
