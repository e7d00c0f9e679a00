#include "server/http_server.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "config/model_config.h"
#include "engine/engine.h"
#include "server/api_format.h"
#include "server/constraint.h"
#include "server/metrics.h"
#include "server/openai_request.h"
#include "server/output_parser.h"
#include "server/resp_store.h"
#include "server/sbuf.h"
#include "server/server_log.h"
#include "server/webui.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

#define HTTP_WAIT_SLICE_S 0.05  /* longest sleep between hang-up checks of a waiting connection */
#define HTTP_SSE_BLOCK 16384

static const char EARLY_STOP_TEXT[] =
    "\n\nConsidering the limited time by the user, I have to give the solution based on the thinking "
    "directly now.\n</think>\n\n";

struct http_server {
    struct http_server_config cfg;
    struct MHD_Daemon *daemon;
    int port;
    struct metrics *metrics;
    struct resp_store *rstore; /* stored Responses (thread-safe) */
    /* set once by http_server_set_engine, then read-only */
    struct engine *engine;
    const struct model *model;
    const struct tokenizer *tok;
    const struct chat_template *tmpl;
    int max_model_len, max_num_seqs;
    int32_t think_start_id, think_end_id;
    int32_t *early_stop_ids;
    int n_early_stop_ids;
    struct gram_vocab *gvocab;   /* structured outputs' view of the vocabulary (NULL: unavailable) */
    struct gram_cache *gcache;   /* compiled grammars (thread-safe) */
    atomic_bool ready, draining, stopping;
    atomic_int active_jobs;      /* generation requests not yet freed */
    atomic_int inflight_choices; /* engine requests submitted and not finished */
    _Atomic double busy_since;   /* when inflight_choices last rose from 0 (liveness) */
    long created;
};

/* ---- per-request state ---------------------------------------------------------------------- */

struct choice {
    int index;
    const struct oa_prompt *prompt;
    struct stream *stream;
    uint64_t eid;
    bool submitted, final, counted;
    struct tok_stream *ts;
    struct output_parser *parser;
    struct parser_out out;
    int n_tokens, reasoning_tokens, stop_at_tokens;
    int max_tokens;            /* the most the engine will produce (the final event follows) */
    bool stop_hit, role_sent, finish_sent;
    enum finish_reason finish;
    char error[160];
    int prompt_tokens, cached_tokens;
    double t_last;
    struct sample_result *lp;  /* [n_lp] logprob data not yet sent */
    int n_lp, cap_lp;
    long text_offset;          /* completions logprobs: bytes of text before the next token */
    char (*call_ids)[40];
    int cap_call_ids;
};

struct job {
    atomic_int refs;
    struct http_server *srv;
    struct MHD_Connection *conn;
    int fd;
    char req_id[72];
    char resp_id[64];
    struct oa_request req;
    struct oa_meta meta;
    struct choice *choices;
    int n_choices;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned signals, seen;
    double t_submit, t_first, t_last_write;
    bool done, gone, gone_counted, stop_sent, stream_end, stalled;
    struct sbuf pending; /* SSE bytes not yet handed to MHD */
    size_t pending_off;
    /* for the access log */
    int prompt_tokens, completion_tokens;
    /* the Responses / Messages APIs: NULL for chat and text completions */
    const struct api_ops *api;
    struct api_ctx actx;
};

struct conn {
    struct http_server *srv;
    char req_id[72];
    char route[96];
    bool post, too_large, responded;
    const struct api_ops *api; /* the route's API when not OpenAI's chat/completions shape */
    struct sbuf body;
    double t_start;
    int status;
    struct job *job;
};

static void job_put(struct job *j);

/* ---- small helpers -------------------------------------------------------------------------- */

static void random_hex(char *out, int n_hex)
{
    unsigned char raw[32];
    int n = (n_hex + 1) / 2;
    if (n > 32) n = 32;
    if (getrandom(raw, (size_t)n, 0) != n) {
        uint64_t x = (uint64_t)(ms_now() * 1e9) ^ (uint64_t)(uintptr_t)out;
        for (int i = 0; i < n; i++) x = x * 6364136223846793005ull + 1442695040888963407ull, raw[i] = (unsigned char)(x >> 56);
    }
    for (int i = 0; i < n_hex && i / 2 < n; i++) out[i] = "0123456789abcdef"[(raw[i / 2] >> ((i & 1) ? 0 : 4)) & 15];
    out[n_hex] = 0;
}

static bool sane_request_id(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64) return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < 0x21 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\') return false;
    return true;
}

static bool key_matches(const char *given, size_t a, const char *key)
{
    size_t b = strlen(key);
    unsigned diff = (unsigned)(a ^ b);
    for (size_t i = 0; i < b; i++) diff |= (unsigned char)(i < a ? given[i] : 0) ^ (unsigned char)key[i];
    return diff == 0;
}

static void add_common_headers(struct http_server *s, struct MHD_Response *r, const char *req_id)
{
    MHD_add_response_header(r, "X-Request-Id", req_id);
    MHD_add_response_header(r, "Access-Control-Allow-Origin", s->cfg.cors_origin);
    MHD_add_response_header(r, "Access-Control-Expose-Headers", "X-Request-Id, Retry-After");
}

static enum MHD_Result respond(struct MHD_Connection *c, struct conn *k, int status, const char *ctype, char *body,
                               const char *retry_after)
{
    size_t len = body ? strlen(body) : 0;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, body ? body : (void *)"", body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    if (ctype) MHD_add_response_header(r, "Content-Type", ctype);
    if (retry_after) MHD_add_response_header(r, "Retry-After", retry_after);
    add_common_headers(k->srv, r, k->req_id);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    k->status = status;
    k->responded = true;
    return ret;
}

static enum MHD_Result respond_json(struct MHD_Connection *c, struct conn *k, int status, char *body)
{
    if (!body) return respond(c, k, 500, "text/plain", strdup("out of memory\n"), NULL);
    return respond(c, k, status, "application/json", body, NULL);
}

static enum MHD_Result respond_error(struct MHD_Connection *c, struct conn *k, const struct oa_error *e)
{
    server_log(LOG_LEVEL_INFO, k->req_id, "%s -> %d: %s", k->route, e->status, e->message);
    char *body = k->api ? k->api->error_body(e) : oa_error_body(e);
    if (!body) return respond(c, k, 500, "text/plain", strdup("out of memory\n"), NULL);
    return respond(c, k, e->status, "application/json", body, e->status == 429 ? "1" : NULL);
}

static enum MHD_Result error_reply(struct MHD_Connection *c, struct conn *k, int status, const char *param,
                                   const char *code, const char *msg)
{
    struct oa_error e;
    oa_error_set(&e, status, param, code, "%s", msg);
    return respond_error(c, k, &e);
}

/* ---- the job: a generation request and its choices ------------------------------------------ */

static void job_notify(void *arg)
{
    struct job *j = arg;
    int stall_ms = j->srv->cfg.test_stall_engine_ms; /* test hook: this runs on the engine thread */
    if (stall_ms > 0 && !j->stalled) {
        j->stalled = true;
        struct timespec ts = {stall_ms / 1000, (long)(stall_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    pthread_mutex_lock(&j->lock);
    j->signals++;
    pthread_cond_signal(&j->cond);
    pthread_mutex_unlock(&j->lock);
}

static void job_wait(struct job *j, double timeout_s)
{
    pthread_mutex_lock(&j->lock);
    if (j->signals == j->seen) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        long ns = ts.tv_nsec + (long)(timeout_s * 1e9);
        ts.tv_sec += ns / 1000000000L;
        ts.tv_nsec = ns % 1000000000L;
        pthread_cond_timedwait(&j->cond, &j->lock, &ts);
    }
    j->seen = j->signals;
    pthread_mutex_unlock(&j->lock);
}

static bool client_gone(struct job *j)
{
    if (j->gone) return true;
    if (j->fd < 0) return false;
    struct pollfd p = {.fd = j->fd, .events = POLLRDHUP};
    if (poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))) j->gone = true;
    return j->gone;
}

static void choice_release_engine(struct http_server *s, struct choice *ch)
{
    if (ch->submitted && !ch->counted) {
        ch->counted = true;
        atomic_fetch_sub(&s->inflight_choices, 1);
    }
}

/* The client went away (or the server is shutting down): abort every unfinished choice.
 * engine_abort ignores ids that already finished, so repeating this is harmless. */
static void job_abort(struct job *j, bool disconnect)
{
    for (int i = 0; i < j->n_choices; i++) {
        struct choice *ch = &j->choices[i];
        if (ch->submitted && !ch->final) engine_abort(j->srv->engine, ch->eid);
    }
    if (disconnect && !j->done && !j->gone_counted) {
        j->gone_counted = true;
        metrics_count_disconnect(j->srv->metrics);
        server_log(LOG_LEVEL_INFO, j->req_id, "client disconnected; request aborted");
    }
    j->gone = j->gone || disconnect;
}

/* Server shutdown past its grace period: end the job's requests (they finish with "abort"). */
static void job_check_stopping(struct job *j)
{
    if (!j->stop_sent && atomic_load(&j->srv->stopping)) {
        j->stop_sent = true;
        job_abort(j, false);
    }
}

static void job_free(struct job *j)
{
    struct http_server *s = j->srv;
    for (int i = 0; i < j->n_choices; i++) {
        struct choice *ch = &j->choices[i];
        if (ch->submitted && !ch->final) {
            engine_abort(s->engine, ch->eid);
            metrics_count_finish(s->metrics, METRICS_FINISH_ABORT);
        }
        choice_release_engine(s, ch);
        if (ch->stream) {
            stream_set_notify(ch->stream, NULL, NULL);
            stream_release(ch->stream);
        }
        tok_stream_destroy(ch->ts);
        output_parser_destroy(ch->parser);
        parser_out_free(&ch->out);
        free(ch->lp);
        free(ch->call_ids);
    }
    free(j->choices);
    oa_request_free(&j->req);
    api_ctx_free(&j->actx);
    sbuf_free(&j->pending);
    pthread_mutex_destroy(&j->lock);
    pthread_cond_destroy(&j->cond);
    atomic_fetch_sub(&s->active_jobs, 1);
    free(j);
}

static void job_put(struct job *j)
{
    if (j && atomic_fetch_sub(&j->refs, 1) == 1) job_free(j);
}

static const char *finish_name(const struct job *j, const struct choice *ch)
{
    switch (ch->finish) {
    case FINISH_STOP: return j->req.route == OA_ROUTE_CHAT && ch->out.n_calls ? "tool_calls" : "stop";
    case FINISH_LENGTH: return "length";
    case FINISH_ABORT: return "abort";
    case FINISH_ERROR: return "error";
    default: return "stop";
    }
}

static enum metrics_finish metrics_finish_of(enum finish_reason f)
{
    return f == FINISH_LENGTH ? METRICS_FINISH_LENGTH
           : f == FINISH_ABORT ? METRICS_FINISH_ABORT
           : f == FINISH_ERROR ? METRICS_FINISH_ERROR
                               : METRICS_FINISH_STOP;
}

/* ---- logprobs ------------------------------------------------------------------------------- */

static cJSON *token_bytes(const struct tokenizer *tok, int32_t id)
{
    size_t n = 0;
    const char *b = tok_id_to_bytes(tok, id, &n);
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; b && i < n; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber((unsigned char)b[i]));
    return arr;
}

static char *token_text(const struct tokenizer *tok, int32_t id)
{
    char *t = tok_decode(tok, &id, 1, NULL);
    return t ? t : strdup("");
}

static cJSON *chat_logprobs(const struct http_server *s, const struct sample_result *lp, int n, int top)
{
    cJSON *o = cJSON_CreateObject(), *content = cJSON_AddArrayToObject(o, "content");
    for (int i = 0; i < n; i++) {
        cJSON *e = cJSON_CreateObject();
        char *t = token_text(s->tok, lp[i].token);
        cJSON_AddStringToObject(e, "token", t ? t : "");
        free(t);
        cJSON_AddNumberToObject(e, "logprob", lp[i].logprob);
        cJSON_AddItemToObject(e, "bytes", token_bytes(s->tok, lp[i].token));
        cJSON *tops = cJSON_AddArrayToObject(e, "top_logprobs");
        for (int k = 0; k < lp[i].n_top && k < top; k++) {
            cJSON *x = cJSON_CreateObject();
            t = token_text(s->tok, lp[i].top_ids[k]);
            cJSON_AddStringToObject(x, "token", t ? t : "");
            free(t);
            cJSON_AddNumberToObject(x, "logprob", lp[i].top_logprobs[k]);
            cJSON_AddItemToObject(x, "bytes", token_bytes(s->tok, lp[i].top_ids[k]));
            cJSON_AddItemToArray(tops, x);
        }
        cJSON_AddItemToArray(content, e);
    }
    return o;
}

static cJSON *completion_logprobs(const struct http_server *s, struct choice *ch, int top)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *tokens = cJSON_AddArrayToObject(o, "tokens"), *lps = cJSON_AddArrayToObject(o, "token_logprobs");
    cJSON *tops = cJSON_AddArrayToObject(o, "top_logprobs"), *offs = cJSON_AddArrayToObject(o, "text_offset");
    for (int i = 0; i < ch->n_lp; i++) {
        char *t = token_text(s->tok, ch->lp[i].token);
        cJSON_AddItemToArray(tokens, cJSON_CreateString(t ? t : ""));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)ch->text_offset));
        ch->text_offset += t ? (long)strlen(t) : 0;
        free(t);
        cJSON_AddItemToArray(lps, cJSON_CreateNumber(ch->lp[i].logprob));
        cJSON *m = cJSON_CreateObject();
        for (int k = 0; k < ch->lp[i].n_top && k < top; k++) {
            t = token_text(s->tok, ch->lp[i].top_ids[k]);
            if (!cJSON_GetObjectItemCaseSensitive(m, t ? t : ""))
                cJSON_AddNumberToObject(m, t ? t : "", ch->lp[i].top_logprobs[k]);
            free(t);
        }
        cJSON_AddItemToArray(tops, m);
    }
    return o;
}

/* Logprobs of the tokens not yet sent (NULL when not requested); clears them. */
static cJSON *take_logprobs(struct job *j, struct choice *ch)
{
    if (j->req.logprobs < 0) return NULL;
    cJSON *o = j->req.route == OA_ROUTE_CHAT ? chat_logprobs(j->srv, ch->lp, ch->n_lp, j->req.logprobs)
                                             : completion_logprobs(j->srv, ch, j->req.logprobs);
    ch->n_lp = 0;
    return o;
}

/* ---- events --------------------------------------------------------------------------------- */

static int choice_text(struct job *j, struct choice *ch, const char *text, size_t len)
{
    if (!len || ch->stop_hit) return 0;
    int rc = output_parser_push(ch->parser, text, len, &ch->out);
    if (output_parser_stopped(ch->parser)) {
        /* a stop string: the choice ends here; the engine's final event follows the abort */
        ch->stop_hit = true;
        ch->finish = FINISH_STOP;
        ch->stop_at_tokens = ch->n_tokens;
        engine_abort(j->srv->engine, ch->eid);
        if (!rc) rc = output_parser_finish(ch->parser, &ch->out);
    }
    return rc;
}

static void choice_token(struct job *j, struct choice *ch, const struct stream_event *ev)
{
    struct http_server *s = j->srv;
    double now = ms_now();
    if (ch->stop_hit) return;
    ch->n_tokens++;
    if (ch->n_tokens == 1) {
        metrics_observe(s->metrics, METRICS_HIST_TTFT, now - j->t_submit);
        metrics_observe(s->metrics, METRICS_HIST_QUEUE, ev->queue_time);
        if (j->t_first == 0) j->t_first = now;
    } else {
        metrics_observe(s->metrics, METRICS_HIST_ITL, now - ch->t_last);
    }
    ch->t_last = now;
    if (j->req.logprobs >= 0) {
        if (ch->n_lp == ch->cap_lp) {
            int cap = ch->cap_lp ? ch->cap_lp * 2 : 16;
            struct sample_result *g = realloc(ch->lp, (size_t)cap * sizeof *g);
            if (g) ch->lp = g, ch->cap_lp = cap;
        }
        if (ch->n_lp < ch->cap_lp) {
            ch->lp[ch->n_lp] = ev->sample;
            ch->lp[ch->n_lp++].token = ev->token;
        }
    }
    bool thinking_before = output_parser_thinking(ch->parser);
    const char *text;
    size_t len;
    struct ms_err err;
    if (tok_stream_push(ch->ts, ev->token, &text, &len, &err) == 0) choice_text(j, ch, text, len);
    if (thinking_before || output_parser_thinking(ch->parser)) ch->reasoning_tokens++;
}

static void choice_final(struct job *j, struct choice *ch, const struct stream_event *ev)
{
    ch->final = true;
    choice_release_engine(j->srv, ch);
    ch->prompt_tokens = ev->prompt_tokens;
    ch->cached_tokens = ev->cached_tokens;
    if (ch->stop_hit) {
        ch->finish = FINISH_STOP;
        ch->n_tokens = ch->stop_at_tokens;
    } else {
        ch->finish = ev->finish;
        if (ev->finish == FINISH_ERROR) ms_strlcpy(ch->error, ev->error, sizeof ch->error);
        const char *text;
        size_t len;
        struct ms_err err;
        if (tok_stream_finish(ch->ts, &text, &len, &err) == 0) choice_text(j, ch, text, len);
        if (!ch->stop_hit) output_parser_finish(ch->parser, &ch->out);
    }
    if (ch->reasoning_tokens > ch->n_tokens) ch->reasoning_tokens = ch->n_tokens;
    metrics_count_finish(j->srv->metrics, metrics_finish_of(ch->finish));
}

static void assign_call_ids(struct job *j, struct choice *ch)
{
    if (ch->out.n_calls <= ch->cap_call_ids) return;
    int cap = ch->out.n_calls + 4;
    char(*ids)[40] = realloc(ch->call_ids, (size_t)cap * sizeof *ids);
    if (!ids) return;
    for (int k = ch->cap_call_ids; k < cap; k++) oa_tool_call_id(j->resp_id, ch->index, k, ids[k]);
    ch->call_ids = ids;
    ch->cap_call_ids = cap;
}

/* Takes every event available now; returns how many. */
static int job_poll_events(struct job *j)
{
    int got = 0;
    for (int i = 0; i < j->n_choices; i++) {
        struct choice *ch = &j->choices[i];
        struct stream_event ev;
        while (ch->submitted && !ch->final && stream_pop(ch->stream, &ev, 0)) {
            got++;
            if (ev.finish == FINISH_NONE) choice_token(j, ch, &ev);
            else choice_final(j, ch, &ev);
            int fail_at = j->srv->cfg.test_fail_after_tokens;
            if (fail_at > 0 && !ch->final && !ch->stop_hit && ch->n_tokens >= fail_at) {
                /* test hook: the engine "fails" this choice */
                engine_abort(j->srv->engine, ch->eid);
                struct stream_event fail = {.finish = FINISH_ERROR, .token = -1};
                ms_strlcpy(fail.error, "injected failure (MOESERVE_TEST_FAIL_AFTER_TOKENS)", sizeof fail.error);
                choice_final(j, ch, &fail);
            }
        }
        assign_call_ids(j, ch);
    }
    return got;
}

static bool job_all_final(const struct job *j)
{
    for (int i = 0; i < j->n_choices; i++)
        if (!j->choices[i].final) return false;
    return true;
}

static struct oa_usage job_usage(struct job *j)
{
    struct oa_usage u = {0};
    for (int i = 0; i < j->n_choices; i++) {
        const struct choice *ch = &j->choices[i];
        u.completion_tokens += ch->n_tokens;
        u.reasoning_tokens += ch->reasoning_tokens;
        /* n samples of one prompt count the prompt once, as OpenAI does */
        if (ch->index % j->req.n == 0) {
            u.prompt_tokens += ch->prompt_tokens ? ch->prompt_tokens : ch->prompt->n_ids;
            u.cached_tokens += ch->cached_tokens;
        }
    }
    j->prompt_tokens = u.prompt_tokens;
    j->completion_tokens = u.completion_tokens;
    return u;
}

/* ---- streaming ------------------------------------------------------------------------------ */

static void sse_data(struct job *j, char *json)
{
    if (!json) return;
    sbuf_puts(&j->pending, "data: ");
    sbuf_puts(&j->pending, json);
    sbuf_puts(&j->pending, "\n\n");
    free(json);
    j->t_last_write = ms_now();
}

/* Appends the chunks that the choice's new output makes. */
static void choice_emit(struct job *j, struct choice *ch)
{
    bool chat = j->req.route == OA_ROUTE_CHAT;
    const char *role = NULL;
    if (chat && !ch->role_sent) {
        ch->role_sent = true;
        role = "assistant";
    }
    bool has_text = ch->out.content.len || ch->out.reasoning.len || ch->out.n_calls > ch->out.n_calls_sent;
    bool ending = (ch->final || ch->stop_hit) && !ch->finish_sent;
    /* At max_tokens the final event is right behind the last token: wait for it, so that the
     * last content chunk carries finish_reason. */
    if (!ending && !role && ch->n_tokens >= ch->max_tokens) return;
    if (!role && !has_text && !ending) return; /* logprobs wait for their text */
    if (ending && ch->finish == FINISH_ERROR) {
        struct oa_error e;
        oa_error_set(&e, 500, NULL, NULL, "generation failed: %s", ch->error);
        sse_data(j, oa_error_body(&e));
        ch->finish_sent = true;
        return;
    }
    if (role && ending && has_text) {
        /* the role goes in a chunk of its own so that the first chunk is the same every time */
        sse_data(j, oa_chat_chunk(&j->meta, ch->index, role, NULL, NULL, NULL, NULL, 0, 0, NULL, NULL));
        role = NULL;
    }
    const char *finish = ending ? finish_name(j, ch) : NULL;
    cJSON *lp = take_logprobs(j, ch);
    if (chat) {
        const char *reasoning = ch->out.reasoning.len ? ch->out.reasoning.s : NULL;
        const char *content = ch->out.content.len ? ch->out.content.s : NULL;
        assign_call_ids(j, ch);
        sse_data(j, oa_chat_chunk(&j->meta, ch->index, role, reasoning, content, ch->out.calls,
                                  (const char(*)[40])ch->call_ids, ch->out.n_calls_sent,
                                  ch->call_ids ? ch->out.n_calls : ch->out.n_calls_sent, finish, lp));
        if (ch->call_ids) ch->out.n_calls_sent = ch->out.n_calls;
    } else {
        sse_data(j, oa_completion_chunk(&j->meta, ch->index, ch->out.content.s, finish, lp));
    }
    sbuf_clear(&ch->out.content);
    sbuf_clear(&ch->out.reasoning);
    if (ending) ch->finish_sent = true;
}

static void api_stream_step(struct job *j);

static void job_stream_step(struct job *j)
{
    if (j->api) {
        api_stream_step(j);
        return;
    }
    for (int i = 0; i < j->n_choices; i++) choice_emit(j, &j->choices[i]);
    if (!j->done && job_all_final(j)) {
        j->done = true;
        struct oa_usage u = job_usage(j);
        if (j->req.include_usage) sse_data(j, oa_usage_chunk(&j->meta, j->req.route == OA_ROUTE_CHAT, &u));
        sbuf_puts(&j->pending, "data: [DONE]\n\n");
        metrics_observe(j->srv->metrics, METRICS_HIST_E2E, ms_now() - j->t_submit);
    }
}

static ssize_t sse_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct job *j = cls;
    for (;;) {
        if (j->pending_off < j->pending.len) {
            size_t n = j->pending.len - j->pending_off;
            if (n > max) n = max;
            memcpy(buf, j->pending.s + j->pending_off, n);
            j->pending_off += n;
            if (j->pending_off == j->pending.len) {
                sbuf_clear(&j->pending);
                j->pending_off = 0;
            }
            return (ssize_t)n;
        }
        if (j->done) {
            if (!j->stream_end) {
                j->stream_end = true;
                MHD_set_connection_option(j->conn, MHD_CONNECTION_OPTION_TIMEOUT,
                                          (unsigned)j->srv->cfg.connection_timeout_s);
            }
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (client_gone(j)) {
            job_abort(j, true);
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        job_check_stopping(j);
        if (job_poll_events(j)) {
            job_stream_step(j);
            continue;
        }
        double ping = j->srv->cfg.sse_ping_interval_s;
        if (ping > 0 && ms_now() - j->t_last_write >= ping) {
            sbuf_puts(&j->pending, ": ping\n\n");
            j->t_last_write = ms_now();
            continue;
        }
        job_wait(j, HTTP_WAIT_SLICE_S);
    }
}

static void sse_free(void *cls)
{
    job_put(cls);
}

/* ---- non-streamed --------------------------------------------------------------------------- */

static char *api_response(struct job *j);

static char *job_response(struct job *j)
{
    if (j->api) return api_response(j);
    if (j->n_choices <= 0) return NULL;
    struct oa_choice *out = calloc((size_t)j->n_choices, sizeof *out);
    if (!out) return NULL;
    bool chat = j->req.route == OA_ROUTE_CHAT;
    for (int i = 0; i < j->n_choices; i++) {
        struct choice *ch = &j->choices[i];
        assign_call_ids(j, ch);
        out[i].index = ch->index;
        out[i].text = ch->out.content.s ? ch->out.content.s : (chat && ch->out.n_calls ? NULL : "");
        out[i].reasoning = ch->out.reasoning.len ? ch->out.reasoning.s : NULL;
        out[i].calls = ch->out.calls;
        out[i].n_calls = ch->call_ids ? ch->out.n_calls : 0;
        out[i].call_ids = (const char(*)[40])ch->call_ids;
        out[i].finish_reason = finish_name(j, ch);
        out[i].logprobs = take_logprobs(j, ch);
    }
    struct oa_usage u = job_usage(j);
    char *body = chat ? oa_chat_response(&j->meta, out, j->n_choices, &u)
                      : oa_completion_response(&j->meta, out, j->n_choices, &u);
    free(out);
    return body;
}

/* ---- building and submitting ---------------------------------------------------------------- */

static void fill_params(struct job *j, struct choice *ch, int sample, struct engine_request_params *p)
{
    struct http_server *s = j->srv;
    const struct oa_request *r = &j->req;
    const struct model_config *mc = &s->model->cfg;
    memset(p, 0, sizeof *p);
    p->prompt = ch->prompt->ids;
    p->n_prompt = ch->prompt->n_ids;
    p->max_tokens = r->max_tokens ? r->max_tokens : s->max_model_len - ch->prompt->n_ids;
    ch->max_tokens = p->max_tokens < s->max_model_len - ch->prompt->n_ids ? p->max_tokens
                                                                          : s->max_model_len - ch->prompt->n_ids;
    sampling_params_init(&p->sampling);
    struct sampling_params *sp = &p->sampling;
    sp->temperature = (float)(r->temperature_given ? r->temperature : mc->default_temperature >= 0 ? mc->default_temperature : 1.0);
    sp->top_p = (float)(r->top_p_given ? r->top_p : mc->default_top_p > 0 ? mc->default_top_p : 1.0);
    sp->top_k = r->top_k_given ? r->top_k : mc->default_top_k > 0 ? mc->default_top_k : -1;
    sp->min_p = (float)r->min_p;
    sp->presence_penalty = (float)r->presence_penalty;
    sp->frequency_penalty = (float)r->frequency_penalty;
    sp->repetition_penalty = (float)r->repetition_penalty;
    sp->logit_bias = r->logit_bias;
    sp->n_logit_bias = r->n_logit_bias;
    sp->logprobs = r->logprobs;
    sp->seed = r->seed + (uint64_t)sample;
    p->seed_given = r->seed_given;
    p->stop_token_ids = r->stop_token_ids;
    p->n_stop_token_ids = r->n_stop_token_ids;
    p->ignore_eos = r->ignore_eos;
    p->priority = r->priority;
    p->speculative = !r->speculative_given ? SPEC_DEFAULT : r->speculative ? SPEC_ON : SPEC_OFF;
    p->grammar_start_id = p->grammar_open_id = -1;
    if (r->grammar) {
        struct ms_err gerr = {{0}};
        p->grammar = gram_matcher_create(r->grammar, s->gvocab, &gerr); /* NULL: job_submit refuses */
        /* thinking stays free: the answer after </think> is what the grammar constrains; a
         * prompt that did not open <think> lets the model open it as its first token */
        if (r->route == OA_ROUTE_CHAT && r->thinking && s->think_end_id >= 0 && s->think_start_id >= 0) {
            p->grammar_start_id = s->think_end_id;
            if (!r->starts_in_thinking) p->grammar_open_id = s->think_start_id;
        }
    }
    if (r->route == OA_ROUTE_CHAT && r->thinking && s->think_start_id >= 0 && s->think_end_id >= 0 &&
        s->n_early_stop_ids > 0) {
        int budget = r->thinking_budget >= 0        ? r->thinking_budget
                     : r->reasoning_effort[0]       ? oa_reasoning_effort_budget(r->reasoning_effort)
                                                    : s->cfg.default_thinking_budget;
        if (budget >= 0) {
            p->thinking_budget = budget;
            p->starts_in_thinking = r->starts_in_thinking;
            p->think_start_id = s->think_start_id;
            p->think_end_id = s->think_end_id;
            p->forced_ids = s->early_stop_ids;
            p->n_forced_ids = s->n_early_stop_ids;
        }
    }
}

static int job_setup_choices(struct job *j, struct oa_error *e)
{
    const struct oa_request *r = &j->req;
    j->n_choices = r->n_prompts * r->n;
    if (!(j->choices = calloc((size_t)j->n_choices, sizeof *j->choices)))
        return oa_error_set(e, 500, NULL, NULL, "out of memory");
    struct parser_config pc = {
        .thinking = r->route == OA_ROUTE_CHAT && r->thinking,
        .starts_in_thinking = r->starts_in_thinking,
        .tools = r->route == OA_ROUTE_CHAT && r->has_tools && r->tool_choice != OA_TOOL_CHOICE_NONE,
        .stops = (const char *const *)r->stops,
        .n_stops = r->n_stops,
    };
    for (int i = 0; i < j->n_choices; i++) {
        struct choice *ch = &j->choices[i];
        ch->index = i;
        ch->prompt = &r->prompts[i / r->n];
        ch->stream = stream_create();
        ch->ts = tok_stream_create(j->srv->tok);
        ch->parser = output_parser_create(&pc);
        if (!ch->stream || !ch->ts || !ch->parser) return oa_error_set(e, 500, NULL, NULL, "out of memory");
        stream_set_notify(ch->stream, job_notify, j);
    }
    return 0;
}

static int job_submit(struct job *j, struct oa_error *e)
{
    struct http_server *s = j->srv;
    int limit = s->max_num_seqs + s->cfg.max_queued_requests;
    int before = atomic_fetch_add(&s->inflight_choices, j->n_choices);
    if (before == 0) atomic_store(&s->busy_since, ms_now());
    if (before + j->n_choices > limit && before > 0) {
        atomic_fetch_sub(&s->inflight_choices, j->n_choices);
        metrics_count_rejected(s->metrics);
        return oa_error_set(e, 429, NULL, "queue_full",
                            "the server is busy: %d requests are running or waiting (limit %d); retry later", before,
                            limit);
    }
    j->t_submit = j->t_last_write = ms_now();
    for (int i = 0; i < j->n_choices; i++) {
        struct choice *ch = &j->choices[i];
        struct engine_request_params p;
        fill_params(j, ch, i % j->req.n, &p);
        struct ms_err err = {{0}};
        int rc = j->req.grammar && !p.grammar ? ms_err_set(&err, MS_ERR_NOMEM, "out of memory for a grammar matcher")
                                              : engine_submit(s->engine, &p, ch->stream, &ch->eid, &err);
        if (rc) {
            /* the ones submitted stay counted until they finish or job_free releases them */
            atomic_fetch_sub(&s->inflight_choices, j->n_choices - i);
            job_abort(j, false);
            if (rc == MS_ERR_INVALID) return oa_error_set(e, 400, NULL, NULL, "%s", err.msg);
            /* the request is fine but the engine cannot take it: it is stopping, or it died
             * (then /health is 503 and a load balancer retries elsewhere) */
            if (rc == MS_ERR_UNSUPPORTED) return oa_error_set(e, 503, NULL, "shutting_down", "%s", err.msg);
            if (rc == MS_ERR_IO) return oa_error_set(e, 503, NULL, "engine_unavailable", "%s", err.msg);
            return oa_error_set(e, 500, NULL, NULL, "%s", err.msg);
        }
        ch->submitted = true;
    }
    return 0;
}

/* ---- route handlers ------------------------------------------------------------------------- */

static bool model_name_ok(struct http_server *s, const char *name)
{
    return !name[0] || !strcmp(name, s->cfg.served_model_name) || (s->cfg.model_dir && !strcmp(name, s->cfg.model_dir));
}

/* ---- the Responses and Messages APIs (server/api_format.h) ------------------------------------ */

/* Translates the body into a chat-completions body, which replaces it. */
static int api_translate(struct job *j, struct conn *k, struct oa_error *e)
{
    struct api_ctx *c = &j->actx;
    j->api = k->api;
    snprintf(c->id, sizeof c->id, "%s", k->api == &api_anthropic ? "msg_" : "resp_");
    random_hex(c->id + strlen(c->id), 32);
    snprintf(c->model, sizeof c->model, "%s", k->srv->cfg.served_model_name);
    c->created = (long)time(NULL);
    c->rs = k->srv->rstore;
    struct sbuf chat = {0};
    int rc = k->api->translate(c, k->body.s ? k->body.s : "", k->body.len, &chat, e);
    sbuf_free(&k->body);
    k->body = chat;
    return rc;
}

/* What the job's one choice (these APIs take no n) holds now. */
static struct api_output api_output_of(struct job *j, struct choice *ch)
{
    assign_call_ids(j, ch);
    struct api_output o = {
        .reasoning = ch->out.reasoning.s ? ch->out.reasoning.s : "",
        .content = ch->out.content.s ? ch->out.content.s : "",
        .calls = ch->out.calls,
        .call_ids = (const char(*)[40])ch->call_ids,
        .n_calls = ch->call_ids ? ch->out.n_calls : 0,
    };
    o.finish = ch->finish == FINISH_LENGTH ? API_FINISH_LENGTH
               : ch->finish == FINISH_ABORT ? API_FINISH_ABORT
               : o.n_calls                  ? API_FINISH_TOOL_CALLS
                                            : API_FINISH_STOP;
    int si = output_parser_stop_index(ch->parser);
    if (si >= 0 && si < j->req.n_stops) o.stop_sequence = j->req.stops[si];
    return o;
}

static void api_stream_step(struct job *j)
{
    struct choice *ch = &j->choices[0];
    bool failed = ch->final && ch->finish == FINISH_ERROR;
    struct api_output o = api_output_of(j, ch);
    o.first_call = ch->out.n_calls_sent;
    if (!failed && (o.reasoning[0] || o.content[0] || o.n_calls > o.first_call)) {
        j->api->stream_delta(&j->actx, &o, &j->pending);
        ch->out.n_calls_sent = o.n_calls;
        sbuf_clear(&ch->out.reasoning);
        sbuf_clear(&ch->out.content);
        j->t_last_write = ms_now();
    }
    if (j->done || !job_all_final(j)) return;
    j->done = true;
    o = api_output_of(j, ch);
    o.usage = job_usage(j);
    if (failed) {
        struct oa_error e;
        oa_error_set(&e, 500, NULL, NULL, "generation failed: %s", ch->error);
        j->api->stream_error(&j->actx, &e, &j->pending);
    } else {
        j->api->stream_end(&j->actx, &o, &j->pending);
    }
    metrics_observe(j->srv->metrics, METRICS_HIST_E2E, ms_now() - j->t_submit);
}

static char *api_response(struct job *j)
{
    struct api_output o = api_output_of(j, &j->choices[0]);
    o.usage = job_usage(j);
    return j->api->response(&j->actx, &o);
}

/* POST /v1/messages/count_tokens: the prompt /v1/messages would render, counted. */
static enum MHD_Result handle_count_tokens(struct MHD_Connection *c, struct conn *k)
{
    struct http_server *s = k->srv;
    struct api_ctx ctx = {.count_only = true};
    struct oa_error e = {0};
    struct sbuf chat = {0};
    struct oa_request r = {0};
    int rc = api_anthropic.translate(&ctx, k->body.s ? k->body.s : "", k->body.len, &chat, &e);
    sbuf_free(&k->body);
    if (!rc) rc = oa_request_parse(chat.s, chat.len, OA_ROUTE_CHAT, &r, &e);
    if (!rc && !model_name_ok(s, r.model))
        rc = oa_error_set(&e, 404, "model", "model_not_found", "The model `%s` does not exist.", r.model);
    if (!rc) rc = oa_request_build_prompts(&r, s->tok, s->tmpl, INT32_MAX, s->model->cfg.vocab_size, &e);
    char body[64];
    if (!rc) snprintf(body, sizeof body, "{\"input_tokens\":%d}", r.prompts[0].n_ids);
    oa_request_free(&r);
    sbuf_free(&chat);
    api_ctx_free(&ctx);
    if (rc) return respond_error(c, k, &e);
    return respond_json(c, k, 200, strdup(body));
}

/* GET /v1/responses/{id}: a stored response. */
static enum MHD_Result handle_get_response(struct MHD_Connection *c, struct conn *k, const char *id)
{
    char *body = resp_store_get(k->srv->rstore, id, 1);
    if (body) return respond_json(c, k, 200, body);
    struct oa_error e;
    oa_error_set(&e, 404, NULL, "not_found", "Response with id '%.200s' not found.", id);
    return respond_error(c, k, &e);
}

static enum MHD_Result handle_generate(struct MHD_Connection *c, struct conn *k, enum oa_route route)
{
    struct http_server *s = k->srv;
    struct oa_error e = {0};
    struct job *j = calloc(1, sizeof *j);
    if (!j) return error_reply(c, k, 500, NULL, NULL, "out of memory");
    atomic_init(&j->refs, 1);
    atomic_fetch_add(&s->active_jobs, 1);
    j->srv = s;
    j->conn = c;
    pthread_mutex_init(&j->lock, NULL);
    pthread_cond_init(&j->cond, NULL);
    ms_strlcpy(j->req_id, k->req_id, sizeof j->req_id);
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    j->fd = ci ? ci->connect_fd : -1;
    k->job = j; /* the connection's reference, dropped when the request completes */

    int rc = 0;
    if (k->api) rc = api_translate(j, k, &e);
    if (!rc) rc = oa_request_parse(k->body.s ? k->body.s : "", k->body.len, route, &j->req, &e);
    if (!rc) rc = constraint_compile(&j->req, s->gcache, &e);
    if (!rc && j->req.grammar && !s->gvocab)
        rc = oa_error_set(&e, 500, NULL, NULL, "structured outputs are unavailable on this server (see its log)");
    sbuf_free(&k->body);
    if (!rc && !model_name_ok(s, j->req.model))
        rc = oa_error_set(&e, 404, "model", "model_not_found", "The model `%s` does not exist.", j->req.model);
    if (!rc)
        rc = oa_request_build_prompts(&j->req, s->tok, s->tmpl, s->max_model_len, s->model->cfg.vocab_size, &e);
    snprintf(j->resp_id, sizeof j->resp_id, "%s", k->api ? j->actx.id : route == OA_ROUTE_CHAT ? "chatcmpl-" : "cmpl-");
    if (!k->api) random_hex(j->resp_id + strlen(j->resp_id), 32);
    if (!rc && k->api) j->actx.prompt_tokens = j->req.prompts[0].n_ids;
    j->meta = (struct oa_meta){.id = j->resp_id,
                               .model = s->cfg.served_model_name,
                               .created = (long)time(NULL),
                               .reasoning_field = s->cfg.reasoning_field,
                               .usage_null = j->req.include_usage};
    if (!rc) rc = job_setup_choices(j, &e);
    if (!rc) rc = job_submit(j, &e);
    if (rc && k->api) api_error_param(k->api, &e);
    if (rc) return respond_error(c, k, &e);
    server_log(LOG_LEVEL_DEBUG, k->req_id, "%s: %d choice(s), prompt %d tokens", k->route, j->n_choices,
               j->req.prompts[0].n_ids);
    /* generation may outlast the idle timeout; the timeout is restored when the response ends */
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, 0);

    if (j->req.stream) {
        struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, HTTP_SSE_BLOCK, sse_reader, j, sse_free);
        if (!r) return MHD_NO;
        atomic_fetch_add(&j->refs, 1); /* the response's reference, dropped by sse_free */
        if (j->api) j->api->stream_begin(&j->actx, &j->pending);
        else for (int i = 0; i < j->n_choices; i++) choice_emit(j, &j->choices[i]); /* role chunks at once */
        MHD_add_response_header(r, "Content-Type", "text/event-stream; charset=utf-8");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        MHD_add_response_header(r, "X-Accel-Buffering", "no");
        add_common_headers(s, r, k->req_id);
        enum MHD_Result ret = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        k->status = 200;
        k->responded = true;
        return ret;
    }
    while (!job_all_final(j)) {
        if (client_gone(j)) {
            job_abort(j, true);
            MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)s->cfg.connection_timeout_s);
            return MHD_NO; /* closes the connection */
        }
        job_check_stopping(j);
        if (!job_poll_events(j)) job_wait(j, HTTP_WAIT_SLICE_S);
    }
    j->done = true;
    metrics_observe(s->metrics, METRICS_HIST_E2E, ms_now() - j->t_submit);
    MHD_set_connection_option(c, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)s->cfg.connection_timeout_s);
    for (int i = 0; i < j->n_choices; i++) {
        if (j->choices[i].finish == FINISH_ERROR) {
            oa_error_set(&e, 500, NULL, NULL, "generation failed: %s", j->choices[i].error);
            return respond_error(c, k, &e);
        }
    }
    return respond_json(c, k, 200, job_response(j));
}

/* GET /v1/models (the list) or GET /v1/models/{id} (one model, 404 for another id). */
static enum MHD_Result handle_models(struct MHD_Connection *c, struct conn *k, const char *id)
{
    struct http_server *s = k->srv;
    if (id && !model_name_ok(s, id)) {
        struct oa_error e;
        oa_error_set(&e, 404, "model", "model_not_found", "The model `%.200s` does not exist.", id);
        return respond_error(c, k, &e);
    }
    cJSON *o = cJSON_CreateObject(), *m = o;
    if (!id) {
        cJSON_AddStringToObject(o, "object", "list");
        m = cJSON_CreateObject();
        cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "data"), m);
    }
    cJSON_AddStringToObject(m, "id", s->cfg.served_model_name);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", (double)s->created);
    cJSON_AddStringToObject(m, "owned_by", "moeserve");
    cJSON_AddStringToObject(m, "root", s->cfg.model_dir ? s->cfg.model_dir : s->cfg.served_model_name);
    cJSON_AddNullToObject(m, "parent");
    cJSON_AddNumberToObject(m, "max_model_len", s->max_model_len);
    char *body = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return respond_json(c, k, 200, body);
}

static enum MHD_Result handle_tokenize(struct MHD_Connection *c, struct conn *k, bool detok)
{
    struct http_server *s = k->srv;
    struct oa_error e = {0};
    cJSON *root = NULL;
    if (!oa_body_check(k->body.s ? k->body.s : "", k->body.len, &e))
        root = cJSON_ParseWithLength(k->body.s ? k->body.s : "", k->body.len);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    char *body = NULL;
    if (e.status) {
        /* refused before parsing */
    } else if (!cJSON_IsObject(root)) {
        oa_error_set(&e, 400, NULL, NULL, "the body must be a JSON object");
    } else if (model && !cJSON_IsNull(model) && (!cJSON_IsString(model) || !model_name_ok(s, model->valuestring))) {
        oa_error_set(&e, 404, "model", "model_not_found", "The model `%s` does not exist.",
                     cJSON_IsString(model) ? model->valuestring : "?");
    } else if (detok) {
        const cJSON *toks = cJSON_GetObjectItemCaseSensitive(root, "tokens");
        int n = cJSON_GetArraySize(toks), i = 0;
        int32_t *ids = malloc((size_t)(n + 1) * sizeof *ids);
        const cJSON *it;
        bool ok = cJSON_IsArray(toks) && ids;
        cJSON_ArrayForEach(it, toks)
        {
            if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || it->valuedouble < 0 ||
                it->valuedouble >= s->model->cfg.vocab_size)
                ok = false;
            else ids[i++] = (int32_t)it->valuedouble;
        }
        if (!ok) {
            oa_error_set(&e, 400, "tokens", NULL, "'tokens' must be a list of token ids below %d", s->model->cfg.vocab_size);
        } else {
            char *text = tok_decode(s->tok, ids, (size_t)n, NULL);
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "prompt", text ? text : "");
            free(text);
            body = cJSON_PrintUnformatted(o);
            cJSON_Delete(o);
        }
        free(ids);
    } else {
        /* {"prompt": text} or a chat request's {"messages": [...]}: rendered as the chat route would */
        const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(root, "messages");
        struct oa_request r = {0};
        char *copy = cJSON_PrintUnformatted(root);
        int rc = -1;
        if (!copy) {
            oa_error_set(&e, 500, NULL, NULL, "out of memory");
        } else if (msgs) {
            rc = oa_request_parse(copy, strlen(copy), OA_ROUTE_CHAT, &r, &e);
        } else {
            rc = oa_request_parse(copy, strlen(copy), OA_ROUTE_COMPLETION, &r, &e);
            if (!rc && !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(root, "prompt"))) {
                rc = oa_error_set(&e, 400, "prompt", NULL, "'prompt' must be a string");
            }
        }
        free(copy);
        if (!rc) rc = oa_request_build_prompts(&r, s->tok, s->tmpl, INT32_MAX, s->model->cfg.vocab_size, &e);
        if (!rc) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddNumberToObject(o, "count", r.prompts[0].n_ids);
            cJSON_AddNumberToObject(o, "max_model_len", s->max_model_len);
            cJSON *arr = cJSON_AddArrayToObject(o, "tokens");
            for (int i = 0; i < r.prompts[0].n_ids; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(r.prompts[0].ids[i]));
            body = cJSON_PrintUnformatted(o);
            cJSON_Delete(o);
        }
        oa_request_free(&r);
    }
    cJSON_Delete(root);
    sbuf_free(&k->body);
    if (e.status) return respond_error(c, k, &e);
    return respond_json(c, k, 200, body);
}

static enum MHD_Result handle_health(struct MHD_Connection *c, struct conn *k)
{
    struct http_server *s = k->srv;
    const char *why = NULL;
    if (atomic_load(&s->draining)) why = "shutting down";
    else if (!atomic_load(&s->ready)) why = "loading";
    else {
        struct engine_stats st;
        engine_get_stats(s->engine, &st);
        /* an idle engine still passes its loop once a second; work submitted but not yet taken
         * (a wedged loop never takes it) counts as work through inflight_choices */
        double idle = ms_now() - st.last_step_at;
        bool busy = st.running + st.waiting > 0 || atomic_load(&s->inflight_choices) > 0;
        double since_busy = ms_now() - atomic_load(&s->busy_since); /* an idle engine wakes on work */
        if (busy && since_busy < idle) idle = since_busy;
        if (!st.alive) why = "engine thread is not running";
        else if (idle > s->cfg.engine_stall_s && (busy || idle > s->cfg.engine_stall_s + 2)) why = "engine stalled";
    }
    char body[128];
    if (why) snprintf(body, sizeof body, "{\"status\":\"unavailable\",\"reason\":\"%s\"}", why);
    else snprintf(body, sizeof body, "{\"status\":\"ok\"}");
    return respond_json(c, k, why ? 503 : 200, strdup(body));
}

static enum MHD_Result handle_metrics(struct MHD_Connection *c, struct conn *k)
{
    struct http_server *s = k->srv;
    struct engine_stats st = {0};
    uint64_t *sel = NULL; /* the expert selection counts, one copy per scrape */
    bool ready = atomic_load(&s->ready);
    size_t slots = ready ? engine_expert_slots(s->engine) : 0;
    if (slots && !(sel = malloc(slots * sizeof *sel)))
        return respond(c, k, 500, "text/plain", strdup("out of memory\n"), NULL);
    if (ready) engine_get_stats_experts(s->engine, &st, sel);
    struct sbuf out = {0};
    int rc = metrics_render(s->metrics, &st, sel, &out);
    free(sel);
    if (rc) {
        sbuf_free(&out);
        return respond(c, k, 500, "text/plain", strdup("out of memory\n"), NULL);
    }
    return respond(c, k, 200, "text/plain; version=0.0.4; charset=utf-8", sbuf_take(&out), NULL);
}

static enum MHD_Result handle_options(struct MHD_Connection *c, struct conn *k)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    const char *req_headers = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Access-Control-Request-Headers");
    add_common_headers(k->srv, r, k->req_id);
    MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST, OPTIONS");
    MHD_add_response_header(r, "Access-Control-Allow-Headers",
                            req_headers ? req_headers : "Authorization, Content-Type, X-Request-Id");
    MHD_add_response_header(r, "Access-Control-Max-Age", "86400");
    enum MHD_Result ret = MHD_queue_response(c, 204, r);
    MHD_destroy_response(r);
    k->status = 204;
    k->responded = true;
    return ret;
}

/* ---- dispatch ------------------------------------------------------------------------------- */

static bool authorized(struct http_server *s, struct MHD_Connection *c, bool x_api_key)
{
    if (!s->cfg.api_key || !s->cfg.api_key[0]) return true;
    const char *h = NULL;
    size_t n = 0; /* the header's length: a NUL inside it must not cut the comparison short */
    /* Anthropic's clients send the key as x-api-key (taken on the Messages routes only) */
    if (x_api_key && MHD_lookup_connection_value_n(c, MHD_HEADER_KIND, "x-api-key", 9, &h, &n) == MHD_YES && h)
        return key_matches(h, n, s->cfg.api_key);
    if (MHD_lookup_connection_value_n(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION,
                                      strlen(MHD_HTTP_HEADER_AUTHORIZATION), &h, &n) != MHD_YES ||
        !h || n < 7 || strncasecmp(h, "Bearer ", 7))
        return false;
    h += 7, n -= 7;
    while (n && *h == ' ') h++, n--;
    return key_matches(h, n, s->cfg.api_key);
}

/* The bodies taken: no Content-Type, application/json, any +json type, or text/plain (what fetch()
 * sends for a string body); parameters such as charset allowed. HTML forms' types are refused. */
static bool json_content_type(const char *ct)
{
    if (!ct) return true;
    while (*ct == ' ') ct++;
    size_t n = strcspn(ct, "; \t");
    return n == 0 || (n == 16 && !strncasecmp(ct, "application/json", 16)) ||
           (n == 10 && !strncasecmp(ct, "text/plain", 10)) || (n > 5 && !strncasecmp(ct + n - 5, "+json", 5));
}

static enum MHD_Result handle_webui(struct MHD_Connection *c, struct conn *k, const struct webui_asset *a)
{
    unsigned status;
    struct MHD_Response *r = webui_response(a, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "If-None-Match"), &status);
    if (!r) return MHD_NO;
    add_common_headers(k->srv, r, k->req_id);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    k->status = (int)status;
    k->responded = true;
    return ret;
}

static enum MHD_Result dispatch(struct MHD_Connection *c, struct conn *k, const char *url, const char *method)
{
    struct http_server *s = k->srv;
    bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD"), post = !strcmp(method, "POST");
    if (!strcmp(method, "OPTIONS")) return handle_options(c, k);
    if (k->too_large) {
        char msg[128];
        snprintf(msg, sizeof msg, "the request body is larger than the limit of %zu bytes", s->cfg.max_body_bytes);
        return error_reply(c, k, 413, NULL, "request_too_large", msg);
    }
    if (!strcmp(url, "/health")) return handle_health(c, k);
    if (!strcmp(url, "/metrics")) return handle_metrics(c, k);
    const struct webui_asset *page = s->cfg.webui && get ? webui_find(url) : NULL;
    if (page) return handle_webui(c, k, page); /* no key needed: the page asks for it */
    static const struct {
        const char *path;
        bool post;
    } routes[] = {{"/v1/chat/completions", true}, {"/v1/completions", true}, {"/v1/models", false},
                  {"/tokenize", true},            {"/detokenize", true},     {"/v1/tokenize", true},
                  {"/v1/detokenize", true},
                  {"/v1/responses", true},        {"/v1/messages", true},    {"/v1/messages/count_tokens", true},
                  {"/v1/responses/{id}", false}};
    size_t i = 0, n = sizeof routes / sizeof routes[0];
    const char *model_id = NULL;
    if (!strncmp(url, "/v1/models/", 11) && url[11]) model_id = url + 11, url = "/v1/models";
    const char *resp_id = NULL;
    if (!strncmp(url, "/v1/responses/", 14) && url[14]) resp_id = url + 14, url = "/v1/responses/{id}";
    while (i < n && strcmp(url, routes[i].path)) i++;
    if (i == n) {
        char msg[160];
        snprintf(msg, sizeof msg, "no route %s %.100s", method, url);
        return error_reply(c, k, 404, NULL, "not_found", msg);
    }
    if (i == 8 || i == 9) k->api = &api_anthropic;
    if (i == 7 || i == 10) k->api = &api_responses;
    if (routes[i].post ? !post : !get) return error_reply(c, k, 405, NULL, "method_not_allowed", "method not allowed");
    if (!authorized(s, c, k->api == &api_anthropic))
        return error_reply(c, k, 401, NULL, "invalid_api_key",
                           "missing or invalid API key (Authorization: Bearer ... or x-api-key: ...)");
    if (!atomic_load(&s->ready)) return error_reply(c, k, 503, NULL, "loading", "the model is still loading");
    if ((i <= 1 || i == 7 || i == 8) && atomic_load(&s->draining))
        return error_reply(c, k, 503, NULL, "shutting_down", "the server is shutting down");
    if (routes[i].post && !json_content_type(MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type")))
        return error_reply(c, k, 415, NULL, "unsupported_media_type",
                           "Content-Type must be application/json (with curl: -H 'Content-Type: application/json')");
    switch (i) {
    case 0: return handle_generate(c, k, OA_ROUTE_CHAT);
    case 1: return handle_generate(c, k, OA_ROUTE_COMPLETION);
    case 2: return handle_models(c, k, model_id);
    case 3: case 5: return handle_tokenize(c, k, false);
    case 7: case 8: return handle_generate(c, k, OA_ROUTE_CHAT);
    case 9: return handle_count_tokens(c, k);
    case 10: return handle_get_response(c, k, resp_id);
    default: return handle_tokenize(c, k, true);
    }
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct http_server *s = cls;
    struct conn *k = *con_cls;
    if (!k) {
        if (!(k = calloc(1, sizeof *k))) return MHD_NO;
        k->srv = s;
        k->t_start = ms_now();
        snprintf(k->route, sizeof k->route, "%s %.80s", method, url);
        const char *rid = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Id");
        if (rid && sane_request_id(rid)) ms_strlcpy(k->req_id, rid, sizeof k->req_id);
        else random_hex(k->req_id, 32);
        *con_cls = k;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > s->cfg.max_body_bytes) {
            k->too_large = true;
            return dispatch(c, k, url, method); /* answer 413 before reading the body */
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!k->too_large && !k->responded) {
            if (k->body.len + *upload_data_size > s->cfg.max_body_bytes) {
                /* a chunked body (no Content-Length) past the limit: answer now, read no more */
                k->too_large = true;
                sbuf_free(&k->body);
                *upload_data_size = 0;
                return dispatch(c, k, url, method);
            } else if (sbuf_append(&k->body, upload_data, *upload_data_size)) {
                return MHD_NO;
            }
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (k->responded) return MHD_YES;
    return dispatch(c, k, url, method);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)c;
    struct http_server *s = cls;
    struct conn *k = *con_cls;
    if (!k) return;
    *con_cls = NULL;
    int pt = 0, ct = 0;
    double ttft = -1;
    if (k->job) {
        struct job *j = k->job;
        if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && !j->done) job_abort(j, true);
        if (!j->done) job_usage(j);
        pt = j->prompt_tokens;
        ct = j->completion_tokens;
        if (j->t_first > 0) ttft = j->t_first - j->t_submit;
        job_put(j);
    }
    int status = k->status ? k->status : 499;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && status == 200) status = 499; /* client closed */
    metrics_count_http(s->metrics, k->status ? k->status : 400);
    if (strcmp(k->route, "GET /health") && strcmp(k->route, "GET /metrics"))
        server_log(LOG_LEVEL_INFO, k->req_id, "%s %d prompt_tokens=%d completion_tokens=%d ttft=%.3fs total=%.3fs",
                   k->route, status, pt, ct, ttft, ms_now() - k->t_start);
    else
        server_log(LOG_LEVEL_DEBUG, k->req_id, "%s %d total=%.3fs", k->route, status, ms_now() - k->t_start);
    sbuf_free(&k->body);
    free(k);
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

void http_server_config_defaults(struct http_server_config *cfg)
{
    *cfg = (struct http_server_config){
        .host = "127.0.0.1",
        .port = 8000,
        .served_model_name = "model",
        .max_body_bytes = 8u << 20,
        .max_queued_requests = 1024,
        .max_connections = 512,
        .max_connections_per_ip = 0,
        .connection_memory_bytes = 256 * 1024,
        .connection_timeout_s = 300,
        .sse_ping_interval_s = 15,
        .default_thinking_budget = -1,
        .reasoning_field = REASONING_FIELD_BOTH,
        .engine_stall_s = 60,
        .cors_origin = "*",
        .webui = true,
    };
}

struct http_server *http_server_create(const struct http_server_config *cfg, struct ms_err *err)
{
    struct http_server *s = calloc(1, sizeof *s);
    if (!s) {
        ms_err_set(err, MS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    s->cfg = *cfg;
    s->created = (long)time(NULL);
    s->think_start_id = s->think_end_id = -1;
    if (!(s->metrics = metrics_create(cfg->served_model_name))) goto nomem;
    if (!(s->rstore = resp_store_create())) goto nomem;
    if (!(s->gcache = gram_cache_create(CONSTRAINT_CACHE_SIZE))) goto nomem;

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV | AI_PASSIVE};
    struct addrinfo *ai = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->port);
    int gai = getaddrinfo(cfg->host, port, &hints, &ai);
    if (gai) {
        ms_err_set(err, MS_ERR_INVALID, "--host %s: %s", cfg->host, gai_strerror(gai));
        goto fail;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                     (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    s->daemon = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
                                 MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->connection_timeout_s,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
                                 MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->max_connections_per_ip,
                                 MHD_OPTION_CONNECTION_MEMORY_LIMIT, cfg->connection_memory_bytes,
                                 MHD_OPTION_THREAD_STACK_SIZE, (size_t)(4 << 20), /* template rendering recurses */
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                 MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u,
                                 MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->daemon) {
        ms_err_set(err, MS_ERR_IO, "cannot listen on %s:%d (%s)", cfg->host, cfg->port,
                   errno ? strerror(errno) : "libmicrohttpd failed to start");
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : cfg->port;
    return s;
nomem:
    ms_err_set(err, MS_ERR_NOMEM, "out of memory");
fail:
    metrics_destroy(s->metrics);
    resp_store_destroy(s->rstore);
    gram_cache_destroy(s->gcache);
    free(s);
    return NULL;
}

void http_server_set_engine(struct http_server *s, struct engine *e, const struct model *m,
                            const struct tokenizer *tok, const struct chat_template *tmpl)
{
    s->engine = e;
    s->model = m;
    s->tok = tok;
    s->tmpl = tmpl;
    const struct engine_config *ec = engine_get_config(e);
    s->max_model_len = ec->max_model_len;
    s->max_num_seqs = ec->max_num_seqs;
    s->think_start_id = tok_token_id(tok, "<think>");
    s->think_end_id = tok_token_id(tok, "</think>");
    size_t n = 0;
    struct ms_err err;
    if (s->think_start_id >= 0 && s->think_end_id >= 0 &&
        tok_encode(tok, EARLY_STOP_TEXT, strlen(EARLY_STOP_TEXT), 1, &s->early_stop_ids, &n, &err) == 0)
        s->n_early_stop_ids = (int)n;
    if (!(s->gvocab = constraint_vocab(tok, &m->cfg, &err)))
        server_log(LOG_LEVEL_WARN, NULL, "structured outputs are unavailable: %s", err.msg);
    atomic_store(&s->ready, true);
}

int http_server_port(const struct http_server *s)
{
    return s->port;
}

void http_server_drain(struct http_server *s)
{
    /* The listener stays open: a load balancer's health check must read 503 (not a refused
     * connection, which looks like a crash), and a refused generation request gets 503 so that
     * the balancer retries it elsewhere (nginx: proxy_next_upstream http_503). */
    atomic_store(&s->draining, true);
}

void http_server_abort_all(struct http_server *s)
{
    atomic_store(&s->stopping, true);
}

int http_server_active(struct http_server *s)
{
    return atomic_load(&s->active_jobs);
}

void http_server_destroy(struct http_server *s)
{
    if (!s) return;
    atomic_store(&s->draining, true);
    atomic_store(&s->stopping, true);
    /* Connection threads still streaming see their requests end once the engine aborts them;
     * MHD_stop_daemon closes every socket and joins the threads. */
    MHD_stop_daemon(s->daemon);
    metrics_destroy(s->metrics);
    resp_store_destroy(s->rstore);
    gram_cache_destroy(s->gcache);
    gram_vocab_destroy(s->gvocab);
    free(s->early_stop_ids);
    free(s);
}
