/* OpenAI request bodies -> a validated plain struct, then -> token prompts.
 *
 * oa_request_parse validates every field it knows (unknown fields are ignored) and fills an
 * OpenAI-style error naming the field on failure. The parsed JSON tree stays attached (messages
 * and tools are rendered by the chat template from it) until oa_request_build_prompts, which
 * renders, tokenizes, checks the context and frees the tree.
 *
 * Any thread; a request belongs to one thread at a time. */
#ifndef MS_SERVER_OPENAI_REQUEST_H
#define MS_SERVER_OPENAI_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/sampler.h"
#include "server/output_parser.h"

struct cJSON;
struct tokenizer;
struct chat_template;
struct model_config;
struct gram;

#define OA_MAX_N 16          /* choices per prompt */
#define OA_MAX_CHOICES 64    /* prompts x n */
#define OA_MAX_STOP_LEN 256
#define OA_MAX_JSON_DEPTH 64 /* deeper request bodies are refused (400) before cJSON parses them */
#define OA_MAX_MESSAGES 4096  /* chat messages per request */
#define OA_MAX_LOGIT_BIAS 1024 /* logit_bias entries */

/* An error to send back: HTTP status and OpenAI's {"error":{message,type,param,code}}. */
struct oa_error {
    int status;
    char message[600];
    const char *type;  /* "invalid_request_error", ... */
    char param[64];    /* "" -> null */
    const char *code;  /* NULL -> null */
};

/* Fills e and returns -1 (so validators can `return oa_error_set(...)`). */
int oa_error_set(struct oa_error *e, int status, const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

enum oa_route {
    OA_ROUTE_CHAT,       /* /v1/chat/completions */
    OA_ROUTE_COMPLETION, /* /v1/completions */
};

enum oa_tool_choice {
    OA_TOOL_CHOICE_AUTO,
    OA_TOOL_CHOICE_NONE,
    OA_TOOL_CHOICE_REQUIRED,
    OA_TOOL_CHOICE_NAMED,
};

struct oa_prompt {
    int32_t *ids; /* owned */
    int n_ids;
};

struct oa_request {
    enum oa_route route;
    char model[256];            /* "" when absent */

    /* sampling (the *_given flags say whether the request set them) */
    int max_tokens;             /* 0: up to the context */
    bool temperature_given, top_p_given, top_k_given;
    double temperature, top_p, min_p;
    int top_k;
    double presence_penalty, frequency_penalty, repetition_penalty;
    struct logit_bias_entry *logit_bias; /* owned, [n_logit_bias] */
    int n_logit_bias;
    bool seed_given;
    uint64_t seed;
    int logprobs;               /* -1: none; else top-k count (chat: top_logprobs) */
    int n;
    char *stops[OUTPUT_PARSER_MAX_STOPS]; /* owned */
    int n_stops;
    int32_t *stop_token_ids;    /* owned (vLLM extension) */
    int n_stop_token_ids;
    bool ignore_eos;
    int priority;
    bool speculative_given, speculative; /* extension: speculative decoding on or off (given: else the server's) */
    bool stream, include_usage;
    bool echo;                  /* completions */

    /* thinking */
    bool thinking;              /* enable_thinking after every switch */
    int thinking_budget;        /* -1: not set by the request */
    char reasoning_effort[16];  /* "" when absent */

    /* tools */
    enum oa_tool_choice tool_choice;
    char tool_name[128];        /* NAMED */
    bool has_tools;

    /* structured outputs (server/constraint.h): the grammar the answer follows, a reference
     * (NULL: free text), released by oa_request_free */
    struct gram *grammar;

    /* after oa_request_build_prompts */
    struct oa_prompt *prompts;  /* owned, [n_prompts] */
    int n_prompts;
    bool starts_in_thinking;    /* the rendered prompt ends inside <think> */

    /* the parsed body (owned) until oa_request_build_prompts */
    struct cJSON *root;
};

/* What every body must pass before cJSON sees it: valid UTF-8 (cJSON passes anything through),
 * no NUL bytes, no \u0000 escapes (C strings would cut the text there), no unpaired surrogate
 * escapes, and nesting at most OA_MAX_JSON_DEPTH deep (cJSON recurses). 0, or -1 with e set (400). */
int oa_body_check(const char *body, size_t len, struct oa_error *e);

/* oa_body_check, then the strict JSON parse (no trailing bytes), then: an object, at most
 * OA_MAX_JSON_DEPTH deep. The tree (caller deletes), or NULL with e set (400). */
struct cJSON *oa_parse_object(const char *body, size_t len, struct oa_error *e);

/* Parses and validates a body (oa_body_check first). On failure returns -1 with e filled (nothing to free beyond
 * oa_request_free). */
int oa_request_parse(const char *body, size_t len, enum oa_route route, struct oa_request *r,
                     struct oa_error *e);

/* Budget for reasoning_effort low/medium/high; -1 for anything else. */
int oa_reasoning_effort_budget(const char *effort);

/* Renders messages with the template (chat) or encodes the prompts (completions) into r->prompts
 * and frees the JSON tree. Checks each prompt against max_model_len (both numbers named) and
 * max_tokens against what is left. `tmpl` may be NULL for completions. */
int oa_request_build_prompts(struct oa_request *r, const struct tokenizer *tok,
                             const struct chat_template *tmpl, int max_model_len, int vocab_size,
                             struct oa_error *e);

void oa_request_free(struct oa_request *r);

#endif
