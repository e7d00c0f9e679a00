/* libFuzzer harness (c): the output pipeline as the server runs it for one choice: token ids ->
 * streaming decoder -> stop strings -> reasoning split -> tool calls -> SSE chunks.
 *
 * Input: byte 0 flags (bit 0 thinking, bit 1 the prompt left <think> open, bit 2 tools, bit 3
 * completions instead of chat, bit 4 ids given as text, bits 5-6 how many tokens pass between
 * two chunks: 1, 2, 3 or 7), byte 1 the number of stop strings (mod 4), each then a length byte
 * and its bytes (they go through the real request validation: oa_request_parse decides which
 * are accepted, as for a request); the rest are the tokens: with bit 4 clear, 3-byte little-endian
 * ids folded into [-4, vocab + 4) (unknown ids included); with bit 4 set, UTF-8 text cut at 0xFF
 * bytes into pieces, each encoded with special tokens allowed (so "<think>" is its token).
 *
 * Checks: every SSE frame is "data: " + JSON + "\n\n", valid UTF-8 and without a raw line break,
 * and parses back with cJSON; the streamed deltas (content, reasoning, tool calls) concatenate to
 * exactly what the non-streamed path gives for the same output, computed independently by one
 * parser fed tok_decode's text in one piece and rendered with oa_chat_response /
 * oa_completion_response. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <string.h>

#include "server/openai_request.h"
#include "server/openai_response.h"
#include "server/output_parser.h"
#include "tests/fuzz/fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_IDS 4096

struct collected {
    struct sbuf content, reasoning;
    struct sbuf names, args; /* every call's name and arguments, each followed by a 0x01 byte */
    int n_calls;
    bool content_null; /* non-streamed: "content": null */
};

static void collected_free(struct collected *c)
{
    sbuf_free(&c->content);
    sbuf_free(&c->reasoning);
    sbuf_free(&c->names);
    sbuf_free(&c->args);
}

static const char *str_field(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v)) return NULL;
    FUZZ_CHECK(cJSON_IsString(v), "'%s' is not a string", name);
    return v->valuestring;
}

static cJSON *check_json(const char *json)
{
    size_t n = strlen(json);
    FUZZ_CHECK(fuzz_utf8_valid((const unsigned char *)json, n), "JSON is not valid UTF-8: %s", json);
    FUZZ_CHECK(!memchr(json, '\n', n) && !memchr(json, '\r', n), "raw line break in an SSE frame: %s", json);
    cJSON *j = cJSON_Parse(json);
    FUZZ_CHECK(j, "frame does not parse back: %s", json);
    return j;
}

/* Takes one chunk JSON (owned), frames it as the server does, checks it and collects its delta. */
static void take_chunk(char *json, bool chat, struct collected *c)
{
    FUZZ_CHECK(json, "chunk NULL");
    struct sbuf frame = {0};
    sbuf_puts(&frame, "data: ");
    sbuf_puts(&frame, json);
    sbuf_puts(&frame, "\n\n");
    FUZZ_CHECK(!frame.oom && frame.len == strlen(json) + 8 && !memcmp(frame.s + frame.len - 2, "\n\n", 2), "framing");
    frame.s[frame.len - 2] = '\0'; /* the JSON between "data: " and the blank line */
    cJSON *j = check_json(frame.s + 6);
    free(json);
    sbuf_free(&frame);
    const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
    FUZZ_CHECK(cJSON_IsObject(ch), "no choice");
    if (!chat) {
        const char *t = str_field(ch, "text");
        FUZZ_CHECK(t, "no text");
        sbuf_puts(&c->content, t);
    } else {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(ch, "delta");
        FUZZ_CHECK(cJSON_IsObject(d), "no delta");
        const char *s;
        if ((s = str_field(d, "content"))) sbuf_puts(&c->content, s);
        if ((s = str_field(d, "reasoning_content"))) sbuf_puts(&c->reasoning, s);
        const cJSON *calls = cJSON_GetObjectItemCaseSensitive(d, "tool_calls"), *tc;
        cJSON_ArrayForEach(tc, calls)
        {
            const cJSON *f = cJSON_GetObjectItemCaseSensitive(tc, "function");
            const char *name = str_field(f, "name"), *args = str_field(f, "arguments");
            if (name) { /* the first delta of a call: id, type, name, "" arguments */
                FUZZ_CHECK(args && !args[0], "first call delta carries arguments");
                sbuf_puts(&c->names, name);
                sbuf_append(&c->names, "\x01", 1);
                c->n_calls++;
            } else {
                FUZZ_CHECK(args, "call delta without arguments");
                sbuf_puts(&c->args, args);
                sbuf_append(&c->args, "\x01", 1);
            }
        }
    }
    cJSON_Delete(j);
}

struct choice {
    struct output_parser *parser;
    struct parser_out out;
    bool chat, role_sent, stop_hit;
    char (*call_ids)[40];
    int cap_call_ids;
};

static void assign_call_ids(struct choice *ch)
{
    if (ch->out.n_calls <= ch->cap_call_ids) return;
    int cap = ch->out.n_calls + 4;
    char(*ids)[40] = realloc(ch->call_ids, (size_t)cap * sizeof *ids);
    FUZZ_CHECK(ids, "oom");
    for (int k = ch->cap_call_ids; k < cap; k++) oa_tool_call_id("chatcmpl-fuzz", 0, k, ids[k]);
    ch->call_ids = ids;
    ch->cap_call_ids = cap;
}

/* As http_server.c choice_emit. */
static void emit(struct choice *ch, const struct oa_meta *m, bool ending, struct collected *c)
{
    const char *role = NULL;
    if (ch->chat && !ch->role_sent) {
        ch->role_sent = true;
        role = "assistant";
    }
    bool has_text = ch->out.content.len || ch->out.reasoning.len || ch->out.n_calls > ch->out.n_calls_sent;
    if (!role && !has_text && !ending) return;
    if (role && ending && has_text) {
        take_chunk(oa_chat_chunk(m, 0, role, NULL, NULL, NULL, NULL, 0, 0, NULL, NULL), true, c);
        role = NULL;
    }
    const char *finish = ending ? (ch->stop_hit ? "stop" : "length") : NULL;
    if (ch->chat) {
        const char *reasoning = ch->out.reasoning.len ? ch->out.reasoning.s : NULL;
        const char *content = ch->out.content.len ? ch->out.content.s : NULL;
        assign_call_ids(ch);
        take_chunk(oa_chat_chunk(m, 0, role, reasoning, content, ch->out.calls, (const char(*)[40])ch->call_ids,
                                 ch->out.n_calls_sent, ch->out.n_calls, finish, NULL),
                   true, c);
        ch->out.n_calls_sent = ch->out.n_calls;
    } else {
        take_chunk(oa_completion_chunk(m, 0, ch->out.content.s, finish, NULL), false, c);
    }
    sbuf_clear(&ch->out.content);
    sbuf_clear(&ch->out.reasoning);
}

static void choice_text(struct choice *ch, const char *text, size_t len)
{
    if (!len || ch->stop_hit) return;
    FUZZ_CHECK(output_parser_push(ch->parser, text, len, &ch->out) == 0, "push failed");
    if (output_parser_stopped(ch->parser)) {
        ch->stop_hit = true;
        FUZZ_CHECK(output_parser_finish(ch->parser, &ch->out) == 0, "finish failed");
    }
}

/* The non-streamed reference: one parser, the whole text in one piece, the response JSON. */
static void reference(const struct parser_config *pc, bool chat, const struct oa_meta *m, const char *text,
                      size_t len, struct collected *c)
{
    struct output_parser *p = output_parser_create(pc);
    FUZZ_CHECK(p, "oom");
    struct parser_out out = {0};
    if (len) FUZZ_CHECK(output_parser_push(p, text, len, &out) == 0, "push failed");
    FUZZ_CHECK(output_parser_finish(p, &out) == 0, "finish failed");
    char(*ids)[40] = calloc((size_t)out.n_calls + 1, sizeof *ids);
    FUZZ_CHECK(ids, "oom");
    for (int k = 0; k < out.n_calls; k++) oa_tool_call_id("chatcmpl-fuzz", 0, k, ids[k]);
    struct oa_choice oc = {
        .index = 0,
        .text = out.content.s ? out.content.s : (chat && out.n_calls ? NULL : ""),
        .reasoning = out.reasoning.len ? out.reasoning.s : NULL,
        .calls = out.calls,
        .call_ids = (const char(*)[40])ids,
        .n_calls = out.n_calls,
        .finish_reason = output_parser_stopped(p) ? "stop" : "length",
    };
    struct oa_usage u = {1, 1, 0, 0};
    char *json = chat ? oa_chat_response(m, &oc, 1, &u) : oa_completion_response(m, &oc, 1, &u);
    FUZZ_CHECK(json, "response NULL");
    cJSON *j = check_json(json);
    free(json);
    const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
    if (chat) {
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(ch, "message");
        const char *s = str_field(msg, "content");
        c->content_null = !s;
        if (s) sbuf_puts(&c->content, s);
        if ((s = str_field(msg, "reasoning_content"))) sbuf_puts(&c->reasoning, s);
        const cJSON *tc;
        cJSON_ArrayForEach(tc, cJSON_GetObjectItemCaseSensitive(msg, "tool_calls"))
        {
            const cJSON *f = cJSON_GetObjectItemCaseSensitive(tc, "function");
            sbuf_puts(&c->names, str_field(f, "name"));
            sbuf_append(&c->names, "\x01", 1);
            sbuf_puts(&c->args, str_field(f, "arguments"));
            sbuf_append(&c->args, "\x01", 1);
            c->n_calls++;
        }
    } else {
        sbuf_puts(&c->content, str_field(ch, "text"));
    }
    cJSON_Delete(j);
    free(ids);
    parser_out_free(&out);
    output_parser_destroy(p);
}

static bool same(const struct sbuf *a, const struct sbuf *b)
{
    return a->len == b->len && (a->len == 0 || !memcmp(a->s, b->s, a->len));
}

/* Stop strings as the request validation accepts them; returns bytes consumed or -1. */
static int read_stops(const uint8_t *d, size_t n, struct oa_request *r)
{
    size_t at = 1;
    if (n < 1) return -1;
    int k = d[0] % 4;
    cJSON *body = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(body, "stop");
    cJSON_AddStringToObject(body, "prompt", "x");
    char buf[257];
    for (int i = 0; i < k; i++) {
        if (at >= n) break;
        size_t l = d[at++] % 24;
        if (at + l > n) l = n - at;
        memcpy(buf, d + at, l);
        buf[l] = '\0';
        at += l;
        cJSON_AddItemToArray(arr, cJSON_CreateString(buf));
    }
    char *json = cJSON_PrintUnformatted(body);
    cJSON_Delete(body);
    FUZZ_CHECK(json, "oom");
    struct oa_error e;
    int rc = oa_request_parse(json, strlen(json), OA_ROUTE_COMPLETION, r, &e);
    free(json);
    return rc ? -1 : (int)at;
}

/* The token ids of the input; NULL when it holds none usable. */
static int32_t *read_ids(const struct tokenizer *tok, const uint8_t *d, size_t n, bool text, size_t *n_ids)
{
    size_t vocab = tok_vocab_size(tok);
    int32_t *ids = malloc(MAX_IDS * sizeof *ids);
    FUZZ_CHECK(ids, "oom");
    *n_ids = 0;
    if (!text) {
        for (size_t i = 0; i + 3 <= n && *n_ids < MAX_IDS; i += 3) {
            uint32_t v = (uint32_t)d[i] | (uint32_t)d[i + 1] << 8 | (uint32_t)d[i + 2] << 16;
            ids[(*n_ids)++] = (int32_t)(v % (vocab + 8)) - 4;
        }
        return ids;
    }
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && d[i] != 0xFF) continue;
        int32_t *piece = NULL;
        size_t np = 0;
        if (tok_encode(tok, (const char *)d + start, i - start, 1, &piece, &np, NULL)) {
            free(ids);
            return NULL;
        }
        for (size_t k = 0; k < np && *n_ids < MAX_IDS; k++) ids[(*n_ids)++] = piece[k];
        free(piece);
        start = i + 1;
    }
    return ids;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || size > 1 << 15) return 0;
    const struct tokenizer *tok = fuzz_tokenizer();
    uint8_t f = data[0];
    bool chat = !(f & 8);
    static const int every_tab[4] = {1, 2, 3, 7};
    int every = every_tab[(f >> 5) & 3];
    struct oa_request r;
    int used = read_stops(data + 1, size - 1, &r);
    if (used < 0) {
        oa_request_free(&r);
        return 0;
    }
    size_t n_ids;
    int32_t *ids = read_ids(tok, data + 1 + used, size - 1 - (size_t)used, f & 16, &n_ids);
    if (!ids) {
        oa_request_free(&r);
        return 0;
    }
    struct parser_config pc = {
        .thinking = chat && (f & 1),
        .starts_in_thinking = chat && (f & 1) && (f & 2),
        .tools = chat && (f & 4),
        .stops = (const char *const *)r.stops,
        .n_stops = r.n_stops,
    };
    struct oa_meta m = {.id = "chatcmpl-fuzz", .model = "fuzz", .created = 1, .reasoning_field = REASONING_FIELD_BOTH};

    /* streamed, as the server does it */
    struct collected got = {0}, want = {0};
    struct sbuf all = {0}; /* every piece the decoder gave */
    struct choice ch = {.chat = chat};
    ch.parser = output_parser_create(&pc);
    struct tok_stream *ts = tok_stream_create(tok);
    FUZZ_CHECK(ch.parser && ts, "oom");
    const char *piece;
    size_t len;
    size_t fed = 0;
    for (size_t i = 0; i < n_ids && !ch.stop_hit; i++) {
        FUZZ_CHECK(tok_stream_push(ts, ids[i], &piece, &len, NULL) == 0, "stream push");
        sbuf_append(&all, piece, len);
        choice_text(&ch, piece, len);
        fed = i + 1;
        if ((i + 1) % (size_t)every == 0) emit(&ch, &m, false, &got);
    }
    if (!ch.stop_hit) {
        FUZZ_CHECK(tok_stream_finish(ts, &piece, &len, NULL) == 0, "stream finish");
        sbuf_append(&all, piece, len);
        choice_text(&ch, piece, len);
        if (!ch.stop_hit) FUZZ_CHECK(output_parser_finish(ch.parser, &ch.out) == 0, "finish");
    }
    emit(&ch, &m, true, &got);

    /* non-streamed reference over the same text: the decoder's pieces, which equal tok_decode of
     * the ids when the stream was finished (fuzz_tokenizer checks that in general) */
    if (!ch.stop_hit) {
        size_t tlen = 0;
        char *text = tok_decode(tok, ids, fed, &tlen);
        FUZZ_CHECK(text && tlen == all.len && (!tlen || !memcmp(text, all.s, tlen)), "decoder pieces != tok_decode");
        free(text);
    }
    FUZZ_CHECK(!all.oom, "oom");
    reference(&pc, chat, &m, all.s ? all.s : "", all.len, &want);

    FUZZ_CHECK(same(&got.content, &want.content), "content differs: streamed [%s] vs whole [%s]",
               got.content.s ? got.content.s : "", want.content.s ? want.content.s : "");
    FUZZ_CHECK(same(&got.reasoning, &want.reasoning), "reasoning differs: streamed [%s] vs whole [%s]",
               got.reasoning.s ? got.reasoning.s : "", want.reasoning.s ? want.reasoning.s : "");
    FUZZ_CHECK(got.n_calls == want.n_calls, "tool calls: %d streamed vs %d whole", got.n_calls, want.n_calls);
    FUZZ_CHECK(same(&got.names, &want.names) && same(&got.args, &want.args), "tool calls differ");
    if (want.content_null) FUZZ_CHECK(got.content.len == 0, "content null in the response but streamed");

    sbuf_free(&all);
    collected_free(&got);
    collected_free(&want);
    free(ch.call_ids);
    parser_out_free(&ch.out);
    output_parser_destroy(ch.parser);
    tok_stream_destroy(ts);
    free(ids);
    oa_request_free(&r);
    return 0;
}
