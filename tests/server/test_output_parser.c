/* Unit tests of server/output_parser.c: stop strings across piece boundaries, the <think>
 * splitter (template-opened and model-emitted), tool-call parsing, and every split of the input
 * into pieces giving the same result as one piece. */
#include <stdlib.h>
#include <string.h>

#include "server/output_parser.h"
#include "tests/testhelp.h"

struct result {
    char reasoning[512], content[512];
    int n_calls;
    char names[4][64], args[4][256];
    int stopped;
};

/* Feeds `pieces` (NULL-terminated) and collects everything. */
static void run(const struct parser_config *cfg, const char *const *pieces, struct result *r)
{
    memset(r, 0, sizeof *r);
    struct output_parser *p = output_parser_create(cfg);
    struct parser_out out = {0};
    for (int i = 0; pieces[i]; i++) {
        output_parser_push(p, pieces[i], strlen(pieces[i]), &out);
        /* drain as the server does after each token */
        if (out.reasoning.len) strcat(r->reasoning, out.reasoning.s);
        if (out.content.len) strcat(r->content, out.content.s);
        sbuf_clear(&out.reasoning);
        sbuf_clear(&out.content);
    }
    output_parser_finish(p, &out);
    if (out.reasoning.len) strcat(r->reasoning, out.reasoning.s);
    if (out.content.len) strcat(r->content, out.content.s);
    r->n_calls = out.n_calls;
    for (int i = 0; i < out.n_calls && i < 4; i++) {
        strcpy(r->names[i], out.calls[i].name);
        strcpy(r->args[i], out.calls[i].arguments);
    }
    r->stopped = output_parser_stopped(p);
    parser_out_free(&out);
    output_parser_destroy(p);
}

/* Runs `text` as one piece, then byte by byte, then split at every position into two pieces;
 * every run must give the same result. */
static int run_all_splits(const struct parser_config *cfg, const char *text, struct result *r)
{
    const char *one[] = {text, NULL};
    run(cfg, one, r);
    size_t n = strlen(text);
    int same = 1;
    char **bytes = calloc(n + 1, sizeof *bytes);
    for (size_t i = 0; i < n; i++) {
        bytes[i] = calloc(2, 1);
        bytes[i][0] = text[i];
    }
    struct result b;
    run(cfg, (const char *const *)bytes, &b);
    same &= !memcmp(&b, r, sizeof b);
    for (size_t i = 0; i < n; i++) free(bytes[i]);
    free(bytes);
    for (size_t cut = 1; cut < n; cut++) {
        char first[512];
        memcpy(first, text, cut);
        first[cut] = 0;
        const char *two[] = {first, text + cut, NULL};
        run(cfg, two, &b);
        same &= !memcmp(&b, r, sizeof b);
    }
    return same;
}

int main(void)
{
    struct result r;
    const char *stops[] = {"STOP", "\n\n"};

    /* ---- stop strings ---- */
    struct parser_config plain = {.stops = stops, .n_stops = 1};
    test_cond("stop splits", run_all_splits(&plain, "hello STOP world", &r));
    test_cond("stop: text before the stop", !strcmp(r.content, "hello "));
    test_cond("stop: stopped", r.stopped);
    test_cond("stop prefix that is not a stop is released", run_all_splits(&plain, "a STO b ST", &r));
    test_cond("stop prefix released at finish", !strcmp(r.content, "a STO b ST") && !r.stopped);
    struct parser_config two = {.stops = stops, .n_stops = 2};
    test_cond("two stops, earliest wins", run_all_splits(&two, "x\n\ny STOP", &r) && !strcmp(r.content, "x"));
    const char *held[] = {"ab", "ST", NULL};
    struct output_parser *p = output_parser_create(&plain);
    struct parser_out out = {0};
    output_parser_push(p, held[0], 2, &out);
    output_parser_push(p, held[1], 2, &out);
    test_cond("partial stop held back from the stream", out.content.len == 2 && !strcmp(out.content.s, "ab"));
    parser_out_free(&out);
    output_parser_destroy(p);
    const char *utf8_stop[] = {"é!"};
    struct parser_config u = {.stops = utf8_stop, .n_stops = 1};
    test_cond("UTF-8 stop", run_all_splits(&u, "caf\xc3\xa9!x", &r) && !strcmp(r.content, "caf") && r.stopped);

    /* ---- reasoning ---- */
    struct parser_config think = {.thinking = true};
    test_cond("model-emitted think splits",
              run_all_splits(&think, "<think>\nI reason.\nMore.\n</think>\n\nThe answer.", &r));
    test_cond("reasoning without tags and newlines", !strcmp(r.reasoning, "I reason.\nMore."));
    test_cond("content without leading newlines", !strcmp(r.content, "The answer."));
    struct parser_config opened = {.thinking = true, .starts_in_thinking = true};
    test_cond("template-opened think", run_all_splits(&opened, "\nplan\n</think>\n\nanswer", &r) &&
                                           !strcmp(r.reasoning, "plan") && !strcmp(r.content, "answer"));
    test_cond("no think tag: all content", run_all_splits(&think, "just an answer", &r) &&
                                               !strcmp(r.content, "just an answer") && !r.reasoning[0]);
    test_cond("empty think block", run_all_splits(&think, "<think>\n\n</think>\n\nok", &r) && !r.reasoning[0] &&
                                       !strcmp(r.content, "ok"));
    test_cond("unterminated think is reasoning", run_all_splits(&think, "<think>\nstill going", &r) &&
                                                     !strcmp(r.reasoning, "still going") && !r.content[0]);
    struct parser_config off = {0};
    test_cond("thinking off: tags stay content", run_all_splits(&off, "<think>x</think>y", &r) &&
                                                     !strcmp(r.content, "<think>x</think>y") && !r.reasoning[0]);
    struct parser_config think_stop = {.thinking = true, .stops = stops, .n_stops = 1};
    test_cond("stop inside reasoning", run_all_splits(&think_stop, "<think>\nabc STOP def</think>x", &r) &&
                                           !strcmp(r.reasoning, "abc ") && r.stopped);

    /* ---- tool calls ---- */
    struct parser_config tools = {.thinking = true, .tools = true};
    const char *call = "<think>\nneed weather\n</think>\n\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
                       "{\"city\": \"Paris\"}}\n</tool_call>";
    test_cond("tool call splits", run_all_splits(&tools, call, &r));
    test_cond("tool call parsed", r.n_calls == 1 && !strcmp(r.names[0], "get_weather") &&
                                      !strcmp(r.args[0], "{\"city\":\"Paris\"}"));
    test_cond("no content around the call", !r.content[0] && !strcmp(r.reasoning, "need weather"));
    const char *twocalls = "<tool_call>\n{\"name\":\"a\",\"arguments\":{}}\n</tool_call>\n<tool_call>\n"
                           "{\"name\":\"b\",\"arguments\":\"{\\\"x\\\":1}\"}\n</tool_call>";
    test_cond("two calls", run_all_splits(&tools, twocalls, &r) && r.n_calls == 2 && !strcmp(r.names[1], "b") &&
                               !strcmp(r.args[1], "{\"x\":1}") && !r.content[0]);
    test_cond("text then call", run_all_splits(&tools, "Let me check.\n<tool_call>{\"name\":\"f\",\"arguments\":{}}</tool_call>",
                                               &r) &&
                                    r.n_calls == 1 && !strcmp(r.content, "Let me check."));
    test_cond("malformed call is content", run_all_splits(&tools, "<tool_call>{not json}</tool_call>", &r) &&
                                               r.n_calls == 0 && !strcmp(r.content, "<tool_call>{not json}</tool_call>"));
    test_cond("missing name is content", run_all_splits(&tools, "<tool_call>{\"arguments\":{}}</tool_call>", &r) &&
                                             r.n_calls == 0);
    test_cond("unterminated call is content", run_all_splits(&tools, "<tool_call>{\"name\":\"f\"", &r) &&
                                                  r.n_calls == 0 && !strcmp(r.content, "<tool_call>{\"name\":\"f\""));
    struct parser_config notools = {.thinking = true};
    test_cond("tools off: the tag is content", run_all_splits(&notools, "<tool_call>{\"name\":\"f\"}</tool_call>", &r) &&
                                                   r.n_calls == 0 && strstr(r.content, "<tool_call>"));
    test_cond("plain text with tools on", run_all_splits(&tools, "Hello <tool there", &r) &&
                                              !strcmp(r.content, "Hello <tool there"));
    test_report();
}
