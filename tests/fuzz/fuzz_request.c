/* libFuzzer harness (a): an HTTP request body -> request validation -> prompts.
 *
 * Input: byte 0 picks the route (bit 0: chat / completions) and whether the prompts are built
 * (bit 1: oa_request_build_prompts with the real Qwen3 tokenizer and chat template, as the server
 * does after validation); bits 2-3 first translate the body as another API does (1: Anthropic's
 * Messages, 2: the Responses API, 3: Messages count_tokens) into the chat body then validated,
 * their errors checked in their own shape; the rest is the body. Checks: no crash, no leak (LeakSanitizer: every
 * path ends in oa_request_free), every error is a 4xx/500 with a message, and its OpenAI error
 * body is valid JSON, and valid UTF-8 whenever the request body was. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <string.h>

#include "server/api_format.h"
#include "server/openai_request.h"
#include "server/openai_response.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_error(const struct oa_error *e, bool body_utf8, const struct api_ops *api)
{
    FUZZ_CHECK(e->status >= 400 && e->status <= 599, "status %d", e->status);
    FUZZ_CHECK(e->message[0], "empty error message");
    char *body = api ? api->error_body(e) : oa_error_body(e);
    FUZZ_CHECK(body, "oa_error_body returned NULL");
    cJSON *j = cJSON_Parse(body);
    FUZZ_CHECK(j, "error body is not JSON: %s", body);
    cJSON_Delete(j);
    if (body_utf8) FUZZ_CHECK(fuzz_utf8_valid((const unsigned char *)body, strlen(body)), "error body is not UTF-8: %s", body);
    free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static const struct api_ops *const apis[4] = {NULL, &api_anthropic, &api_responses, &api_anthropic};
    const struct api_ops *api = apis[(data[0] >> 2) & 3];
    enum oa_route route = data[0] & 1 && !api ? OA_ROUTE_COMPLETION : OA_ROUTE_CHAT;
    bool build = data[0] & 2;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    bool utf8 = fuzz_utf8_valid((const unsigned char *)body, len);

    /* the server hands the body over without a terminating NUL guarantee: copy it exactly */
    char *copy = malloc(len ? len : 1);
    if (!copy) return 0;
    memcpy(copy, body, len);
    struct oa_request r;
    struct oa_error e;
    memset(&e, 0, sizeof e);
    memset(&r, 0, sizeof r);
    struct api_ctx ctx = {.count_only = ((data[0] >> 2) & 3) == 3};
    struct sbuf chat = {0};
    int rc = api ? api->translate(&ctx, copy, len, &chat, &e) : 0;
    if (!rc && api) FUZZ_CHECK(chat.s && !chat.oom, "translation gave no body");
    if (!rc) rc = api ? oa_request_parse(chat.s, chat.len, route, &r, &e) : oa_request_parse(copy, len, route, &r, &e);
    free(copy);
    sbuf_free(&chat);
    api_ctx_free(&ctx);
    if (rc) {
        check_error(&e, utf8, api);
    } else {
        FUZZ_CHECK(r.n >= 1 && r.n <= OA_MAX_N, "n %d", r.n);
        FUZZ_CHECK(r.n_stops <= OUTPUT_PARSER_MAX_STOPS, "n_stops %d", r.n_stops);
        if (build) {
            const struct tokenizer *tok = fuzz_tokenizer();
            rc = oa_request_build_prompts(&r, tok, fuzz_template(), 4096, (int)tok_vocab_size(tok), &e);
            if (rc) {
                check_error(&e, utf8, api);
            } else {
                FUZZ_CHECK(r.n_prompts >= 1, "no prompts");
                for (int i = 0; i < r.n_prompts; i++) {
                    FUZZ_CHECK(r.prompts[i].n_ids > 0 && r.prompts[i].n_ids < 4096, "prompt %d has %d ids", i,
                               r.prompts[i].n_ids);
                    for (int k = 0; k < r.prompts[i].n_ids; k++)
                        FUZZ_CHECK(r.prompts[i].ids[k] >= 0 && (size_t)r.prompts[i].ids[k] < tok_vocab_size(tok),
                                   "id %d", r.prompts[i].ids[k]);
                }
            }
        }
    }
    oa_request_free(&r);
    return 0;
}
