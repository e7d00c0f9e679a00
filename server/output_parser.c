#include "server/output_parser.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

enum reasoning_state {
    REASONING_STATE_OFF,     /* thinking disabled: everything is content */
    REASONING_STATE_START,   /* nothing seen yet: <think> may come */
    REASONING_STATE_THINK,   /* inside <think> */
    REASONING_STATE_AFTER,   /* after </think>: drop leading newlines of the content */
    REASONING_STATE_CONTENT, /* the answer */
};

struct output_parser {
    struct parser_config cfg;
    struct sbuf stop_held;   /* stage 1 holdback */
    bool stopped;
    int stop_index;          /* which stop string matched */
    enum reasoning_state rs;
    bool reasoning_begun;    /* first non-newline reasoning text seen */
    struct sbuf think_held;  /* stage 2 holdback */
    bool in_call;
    struct sbuf tool_held;   /* stage 3 holdback: text, or the body of an open <tool_call> */
    struct sbuf ws_held;     /* whitespace-only content held while tools are on */
};

static const char THINK_OPEN[] = "<think>", THINK_CLOSE[] = "</think>";
static const char CALL_OPEN[] = "<tool_call>", CALL_CLOSE[] = "</tool_call>";

struct output_parser *output_parser_create(const struct parser_config *cfg)
{
    struct output_parser *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->cfg = *cfg;
    if (p->cfg.n_stops > OUTPUT_PARSER_MAX_STOPS) p->cfg.n_stops = OUTPUT_PARSER_MAX_STOPS;
    p->rs = !cfg->thinking ? REASONING_STATE_OFF
            : cfg->starts_in_thinking ? REASONING_STATE_THINK
                                      : REASONING_STATE_START;
    return p;
}

void output_parser_destroy(struct output_parser *p)
{
    if (!p) return;
    sbuf_free(&p->stop_held);
    sbuf_free(&p->think_held);
    sbuf_free(&p->tool_held);
    sbuf_free(&p->ws_held);
    free(p);
}

bool output_parser_stopped(const struct output_parser *p)
{
    return p->stopped;
}

int output_parser_stop_index(const struct output_parser *p)
{
    return p->stopped ? p->stop_index : -1;
}

bool output_parser_thinking(const struct output_parser *p)
{
    return p->rs == REASONING_STATE_THINK;
}

void parser_out_free(struct parser_out *out)
{
    sbuf_free(&out->reasoning);
    sbuf_free(&out->content);
    for (int i = 0; i < out->n_calls; i++) {
        free(out->calls[i].name);
        free(out->calls[i].arguments);
    }
    free(out->calls);
    *out = (struct parser_out){0};
}

/* Length of the longest tail of s[0..n) that is a proper prefix of tag. */
static size_t partial_suffix(const char *s, size_t n, const char *tag, size_t tag_len)
{
    if (tag_len == 0) return 0;
    size_t max = tag_len - 1 < n ? tag_len - 1 : n;
    for (size_t k = max; k > 0; k--)
        if (!memcmp(s + n - k, tag, k)) return k;
    return 0;
}

static const char *find_bytes(const char *s, size_t n, const char *needle, size_t m)
{
    if (m == 0 || m > n) return NULL;
    return memmem(s, n, needle, m);
}

/* ---- stage 3: tool calls ------------------------------------------------------------------ */

static int emit_content(struct output_parser *p, const char *s, size_t n, struct parser_out *out)
{
    if (!p->cfg.tools) return sbuf_append(&out->content, s, n);
    /* Trailing whitespace is held: it is dropped before and between tool calls. */
    size_t keep = n;
    while (keep > 0 && strchr(" \t\r\n", s[keep - 1])) keep--;
    if (keep == 0) return sbuf_append(&p->ws_held, s, n);
    if (p->ws_held.len && sbuf_append(&out->content, p->ws_held.s, p->ws_held.len)) return -1;
    sbuf_clear(&p->ws_held);
    if (sbuf_append(&out->content, s, keep)) return -1;
    return sbuf_append(&p->ws_held, s + keep, n - keep);
}

static int add_call(struct parser_out *out, const char *name, const char *args)
{
    if (out->n_calls == out->cap_calls) {
        int cap = out->cap_calls ? out->cap_calls * 2 : 4;
        struct parsed_tool_call *c = realloc(out->calls, (size_t)cap * sizeof *c);
        if (!c) return -1;
        out->calls = c;
        out->cap_calls = cap;
    }
    char *n = strdup(name), *a = strdup(args);
    if (!n || !a) {
        free(n);
        free(a);
        return -1;
    }
    out->calls[out->n_calls++] = (struct parsed_tool_call){n, a};
    return 0;
}

/* A complete <tool_call> body: a call when it is {"name": string, "arguments": object|string},
 * else 1 (the caller keeps it as text). */
static int parse_call(const char *body, size_t n, struct parser_out *out)
{
    cJSON *j = cJSON_ParseWithLength(body, n);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name");
    const cJSON *args = cJSON_GetObjectItemCaseSensitive(j, "arguments");
    if (!args) args = cJSON_GetObjectItemCaseSensitive(j, "parameters");
    int rc = 1;
    if (cJSON_IsObject(j) && cJSON_IsString(name) && name->valuestring[0]) {
        char *text = NULL;
        if (!args) text = strdup("{}");
        else if (cJSON_IsString(args)) text = strdup(args->valuestring);
        else if (cJSON_IsObject(args)) text = cJSON_PrintUnformatted(args);
        if (text) rc = add_call(out, name->valuestring, text);
        else if (!args || cJSON_IsString(args) || cJSON_IsObject(args)) rc = -1;
        free(text);
    }
    cJSON_Delete(j);
    return rc;
}

static int tools_push(struct output_parser *p, const char *s, size_t n, struct parser_out *out)
{
    if (!p->cfg.tools) return sbuf_append(&out->content, s, n);
    if (sbuf_append(&p->tool_held, s, n)) return -1;
    for (;;) {
        struct sbuf *h = &p->tool_held;
        if (!p->in_call) {
            const char *at = find_bytes(h->s, h->len, CALL_OPEN, sizeof CALL_OPEN - 1);
            if (at) {
                size_t pre = (size_t)(at - h->s);
                if (pre && emit_content(p, h->s, pre, out)) return -1;
                sbuf_consume(h, pre + sizeof CALL_OPEN - 1);
                p->in_call = true;
                continue;
            }
            size_t keep = partial_suffix(h->s, h->len, CALL_OPEN, sizeof CALL_OPEN - 1);
            if (h->len > keep && emit_content(p, h->s, h->len - keep, out)) return -1;
            sbuf_consume(h, h->len - keep);
            return 0;
        }
        const char *end = find_bytes(h->s, h->len, CALL_CLOSE, sizeof CALL_CLOSE - 1);
        if (!end) return 0;
        size_t body = (size_t)(end - h->s);
        int rc = parse_call(h->s, body, out);
        if (rc < 0) return -1;
        if (rc > 0) { /* malformed: the whole block is content */
            if (emit_content(p, CALL_OPEN, sizeof CALL_OPEN - 1, out) || emit_content(p, h->s, body, out) ||
                emit_content(p, CALL_CLOSE, sizeof CALL_CLOSE - 1, out))
                return -1;
        } else {
            sbuf_clear(&p->ws_held);
        }
        sbuf_consume(h, body + sizeof CALL_CLOSE - 1);
        p->in_call = false;
    }
}

static int tools_finish(struct output_parser *p, struct parser_out *out)
{
    if (!p->cfg.tools) return 0;
    struct sbuf *h = &p->tool_held;
    if (p->in_call) {
        if (emit_content(p, CALL_OPEN, sizeof CALL_OPEN - 1, out)) return -1;
        p->in_call = false;
    }
    if (h->len && emit_content(p, h->s, h->len, out)) return -1;
    sbuf_clear(h);
    if (p->ws_held.len && out->n_calls == 0 && sbuf_append(&out->content, p->ws_held.s, p->ws_held.len))
        return -1;
    sbuf_clear(&p->ws_held);
    return 0;
}

/* ---- stage 2: reasoning ------------------------------------------------------------------- */

static int reasoning_emit(struct output_parser *p, const char *s, size_t n, struct parser_out *out)
{
    if (!p->reasoning_begun) {
        while (n && (*s == '\n' || *s == '\r')) s++, n--;
        if (!n) return 0;
        p->reasoning_begun = true;
    }
    return sbuf_append(&out->reasoning, s, n);
}

static int reasoning_push(struct output_parser *p, const char *s, size_t n, struct parser_out *out)
{
    if (p->rs == REASONING_STATE_OFF || p->rs == REASONING_STATE_CONTENT) return tools_push(p, s, n, out);
    struct sbuf *h = &p->think_held;
    if (sbuf_append(h, s, n)) return -1;
    for (;;) {
        if (p->rs == REASONING_STATE_START) {
            size_t ws = 0;
            while (ws < h->len && strchr(" \t\r\n", h->s[ws])) ws++;
            size_t rest = h->len - ws, tl = sizeof THINK_OPEN - 1;
            if (rest >= tl && !memcmp(h->s + ws, THINK_OPEN, tl)) {
                sbuf_consume(h, ws + tl);
                p->rs = REASONING_STATE_THINK;
                continue;
            }
            if (rest < tl && !memcmp(h->s + ws, THINK_OPEN, rest)) return 0; /* undecided */
            p->rs = REASONING_STATE_CONTENT;
            int rc = tools_push(p, h->s, h->len, out);
            sbuf_clear(h);
            return rc;
        }
        if (p->rs == REASONING_STATE_THINK) {
            const char *end = find_bytes(h->s, h->len, THINK_CLOSE, sizeof THINK_CLOSE - 1);
            if (end) {
                size_t r = (size_t)(end - h->s);
                while (r && (h->s[r - 1] == '\n' || h->s[r - 1] == '\r')) r--;
                if (r && reasoning_emit(p, h->s, r, out)) return -1;
                sbuf_consume(h, (size_t)(end - h->s) + sizeof THINK_CLOSE - 1);
                p->rs = REASONING_STATE_AFTER;
                continue;
            }
            size_t keep = partial_suffix(h->s, h->len, THINK_CLOSE, sizeof THINK_CLOSE - 1);
            while (keep < h->len && (h->s[h->len - keep - 1] == '\n' || h->s[h->len - keep - 1] == '\r')) keep++;
            if (h->len > keep && reasoning_emit(p, h->s, h->len - keep, out)) return -1;
            sbuf_consume(h, h->len - keep);
            return 0;
        }
        /* REASONING_STATE_AFTER */
        size_t nl = 0;
        while (nl < h->len && (h->s[nl] == '\n' || h->s[nl] == '\r')) nl++;
        sbuf_consume(h, nl);
        if (!h->len) return 0;
        p->rs = REASONING_STATE_CONTENT;
        int rc = tools_push(p, h->s, h->len, out);
        sbuf_clear(h);
        return rc;
    }
}

static int reasoning_finish(struct output_parser *p, struct parser_out *out)
{
    struct sbuf *h = &p->think_held;
    int rc = 0;
    if (h->len) {
        if (p->rs == REASONING_STATE_THINK) {
            size_t r = h->len;
            while (r && (h->s[r - 1] == '\n' || h->s[r - 1] == '\r')) r--;
            rc = r ? reasoning_emit(p, h->s, r, out) : 0;
        } else if (p->rs == REASONING_STATE_START) {
            rc = tools_push(p, h->s, h->len, out);
        }
        sbuf_clear(h);
    }
    return rc ? rc : tools_finish(p, out);
}

/* ---- stage 1: stop strings ---------------------------------------------------------------- */

static int parser_push(struct output_parser *p, const char *text, size_t len, struct parser_out *out);

/* U+0000 cannot travel in the responses (cJSON strings end at the first NUL, which would cut the
 * rest of a delta or of the whole message): it becomes U+FFFD before any stage sees it. */
static int push_without_nul(struct output_parser *p, const char *text, size_t len, struct parser_out *out)
{
    struct sbuf b = {0};
    for (size_t i = 0; i < len; i++) {
        if (text[i]) sbuf_append(&b, text + i, 1);
        else sbuf_append(&b, "\xEF\xBF\xBD", 3);
    }
    int rc = b.oom ? -1 : parser_push(p, b.s, b.len, out);
    sbuf_free(&b);
    return rc;
}

int output_parser_push(struct output_parser *p, const char *text, size_t len, struct parser_out *out)
{
    if (len && memchr(text, '\0', len)) return push_without_nul(p, text, len, out);
    return parser_push(p, text, len, out);
}

static int parser_push(struct output_parser *p, const char *text, size_t len, struct parser_out *out)
{
    if (p->stopped) return 0;
    if (p->cfg.n_stops == 0) return reasoning_push(p, text, len, out);
    struct sbuf *h = &p->stop_held;
    if (sbuf_append(h, text, len)) return -1;
    const char *first = NULL;
    for (int i = 0; i < p->cfg.n_stops; i++) {
        const char *at = find_bytes(h->s, h->len, p->cfg.stops[i], strlen(p->cfg.stops[i]));
        if (at && (!first || at < first)) first = at, p->stop_index = i;
    }
    if (first) {
        p->stopped = true;
        int rc = reasoning_push(p, h->s, (size_t)(first - h->s), out);
        sbuf_clear(h);
        return rc;
    }
    size_t keep = 0;
    for (int i = 0; i < p->cfg.n_stops; i++) {
        size_t k = partial_suffix(h->s, h->len, p->cfg.stops[i], strlen(p->cfg.stops[i]));
        if (k > keep) keep = k;
    }
    int rc = h->len > keep ? reasoning_push(p, h->s, h->len - keep, out) : 0;
    sbuf_consume(h, h->len - keep);
    return rc;
}

int output_parser_finish(struct output_parser *p, struct parser_out *out)
{
    int rc = 0;
    if (!p->stopped && p->stop_held.len) rc = reasoning_push(p, p->stop_held.s, p->stop_held.len, out);
    sbuf_clear(&p->stop_held);
    if (!rc) rc = reasoning_finish(p, out);
    if (!rc && (out->reasoning.oom || out->content.oom)) rc = -1;
    return rc;
}
