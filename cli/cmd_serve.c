/* moeserve serve: the OpenAI-compatible HTTP server (server/http_server.h) in front of the engine.
 *
 * Order of start: listen first (so /health answers 503 while the model loads), load the model,
 * tokenizer and chat template, start the engine, then mark the server ready. SIGTERM or SIGINT:
 * stop accepting, let running requests finish for up to --shutdown-timeout seconds, abort the
 * rest, stop the engine and exit 0. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_util.h"
#include "cli/engine_opts.h"
#include "engine/engine.h"
#include "engine/kernels/matmul.h"
#include "server/http_server.h"
#include "server/server_log.h"
#include "tokenizer/chat_template.h"
#include "cli/cli_model.h"
#include "tokenizer/tokenizer.h"

static volatile sig_atomic_t serve_stop = 0; /* the one global the style allows */

static void on_signal(int sig)
{
    (void)sig;
    serve_stop = 1;
}

static const struct {
    const char *flag, *env, *help;
} serve_options[] = {
    {"--model", "MOESERVE_MODEL", "Hugging Face model directory or FILE.gguf (required)"},
    {"--tokenizer", "MOESERVE_TOKENIZER", "take tokenizer.json (and, for a .gguf, the chat template) from DIR (a .gguf's default: the vocabulary and template stored in the file)"},
    {"--quantize", "MOESERVE_QUANTIZE", "convert at load: q8_0 (matmul weights), or a `moeserve quantize` scheme such as q4_k_m or q6_k, or nvfp4 (load only: NVIDIA's FP4) (default none: as stored)"},
    {"--load-mode", "MOESERVE_LOAD_MODE", "copy (default): the weights are read into memory of their own, in huge pages where the kernel gives them (faster decode: docs/BENCHMARKS.md); mmap: served from the file mapping (loads at page-cache speed when the file is cached; the kernel may page it back to the file)"},
    {"--host", "MOESERVE_HOST", "address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)"},
    {"--port", "MOESERVE_PORT", "TCP port (default 8000; 0 picks a free one, printed at start)"},
    {"--api-key", "MOESERVE_API_KEY", "require 'Authorization: Bearer KEY' (/health and /metrics stay open)"},
    {"--served-model-name", "MOESERVE_SERVED_MODEL_NAME", "model id in the API (default: the directory's name)"},
    {"--max-body-size", "MOESERVE_MAX_BODY_SIZE", "largest request body, e.g. 8MiB (default); larger gets 413"},
    {"--max-queued-requests", "MOESERVE_MAX_QUEUED_REQUESTS",
     "sequences waiting beyond --max-num-seqs before new requests get 429 (default 1024)"},
    {"--max-connections", "MOESERVE_MAX_CONNECTIONS", "open connections at most (default 512); more are closed at once"},
    {"--max-connections-per-ip", "MOESERVE_MAX_CONNECTIONS_PER_IP",
     "open connections from one client address at most (default 256; 0 = only --max-connections)"},
    {"--max-connection-memory", "MOESERVE_MAX_CONNECTION_MEMORY",
     "buffer per connection for the request line and headers, e.g. 256KiB (default); larger heads are refused"},
    {"--keep-alive-timeout", "MOESERVE_KEEP_ALIVE_TIMEOUT",
     "connection timeout: seconds an idle connection, or a stream whose client reads nothing, stays open (default 300)"},
    {"--sse-ping-interval", "MOESERVE_SSE_PING_INTERVAL",
     "seconds between ': ping' comments on a quiet stream (default 15; 0 = off)"},
    {"--thinking-budget", "MOESERVE_THINKING_BUDGET",
     "default thinking_token_budget for chat requests (default -1 = none)"},
    {"--reasoning-field", "MOESERVE_REASONING_FIELD",
     "both (default), reasoning_content or reasoning: the name(s) the thinking is sent under"},
    {"--shutdown-timeout", "MOESERVE_SHUTDOWN_TIMEOUT",
     "seconds running requests may take to finish after SIGTERM/SIGINT (default 30)"},
    {"--engine-stall-timeout", "MOESERVE_ENGINE_STALL_TIMEOUT",
     "/health answers 503 when requests run but the engine made no step for this long (default 60)"},
    {"--cors-origin", "MOESERVE_CORS_ORIGIN", "Access-Control-Allow-Origin value (default *)"},
    {"--log-level", "MOESERVE_LOG_LEVEL", "error, warn, info (default: one access line per request) or debug"},
};

static const char serve_help[] =
    "usage: moeserve serve --model DIR [options]\n"
    "\n"
    "Serves the model over an OpenAI-compatible HTTP API: POST /v1/chat/completions, /v1/completions,\n"
    "/v1/responses (OpenAI's Responses API), /v1/messages and /v1/messages/count_tokens (Anthropic's\n"
    "Messages API), /tokenize, /detokenize; GET /v1/models, /v1/responses/{id}, /health, /metrics\n"
    "(see docs/API.md), and a chat page for the browser at GET / (turn it off with --no-webui, or\n"
    "MOESERVE_NO_WEBUI=1).\n"
    "\n"
    "server options (each also read from the environment variable shown):\n";

struct serve_opts {
    const char *model_dir, *served_name, *api_key, *host, *cors, *quantize, *load_mode, *tokenizer_dir;
    long port, max_queued, max_conns, max_conns_per_ip, keep_alive, thinking_budget, log_level;
    double ping, shutdown_timeout, stall;
    size_t max_body, conn_memory;
    enum reasoning_field reasoning_field;
    bool no_webui;
    struct engine_config engine;
};

static int parse_value(struct serve_opts *o, const char *a, const char *v)
{
    int e = engine_opts_parse(&o->engine, a, v);
    if (e) return e < 0 ? -1 : 0;
    if (!strcmp(a, "--model")) o->model_dir = v;
    else if (!strcmp(a, "--tokenizer")) o->tokenizer_dir = v;
    else if (!strcmp(a, "--quantize")) o->quantize = v;
    else if (!strcmp(a, "--load-mode")) o->load_mode = v;
    else if (!strcmp(a, "--host")) o->host = v;
    else if (!strcmp(a, "--port")) return cli_parse_int(a, v, 0, 65535, &o->port);
    else if (!strcmp(a, "--api-key")) o->api_key = v;
    else if (!strcmp(a, "--served-model-name")) o->served_name = v;
    else if (!strcmp(a, "--cors-origin")) o->cors = v;
    else if (!strcmp(a, "--max-queued-requests")) return cli_parse_int(a, v, 0, 1 << 20, &o->max_queued);
    else if (!strcmp(a, "--max-connections")) return cli_parse_int(a, v, 1, 65536, &o->max_conns);
    else if (!strcmp(a, "--max-connections-per-ip")) return cli_parse_int(a, v, 0, 65536, &o->max_conns_per_ip);
    else if (!strcmp(a, "--keep-alive-timeout")) return cli_parse_int(a, v, 1, 86400, &o->keep_alive);
    else if (!strcmp(a, "--thinking-budget")) return cli_parse_int(a, v, -1, 1 << 24, &o->thinking_budget);
    else if (!strcmp(a, "--sse-ping-interval")) return cli_parse_double(a, v, 0, 3600, &o->ping);
    else if (!strcmp(a, "--shutdown-timeout")) return cli_parse_double(a, v, 0, 86400, &o->shutdown_timeout);
    else if (!strcmp(a, "--engine-stall-timeout")) return cli_parse_double(a, v, 0.1, 86400, &o->stall);
    else if (!strcmp(a, "--max-body-size")) {
        if (engine_opts_parse_bytes(v, &o->max_body) || o->max_body < 1024) {
            fprintf(stderr, "moeserve serve: %s expects a size of at least 1KiB such as 8MiB, got '%s'\n", a, v);
            return -1;
        }
    } else if (!strcmp(a, "--max-connection-memory")) {
        if (engine_opts_parse_bytes(v, &o->conn_memory) || o->conn_memory < (64u << 10) || o->conn_memory > (64u << 20)) {
            fprintf(stderr, "moeserve serve: %s expects a size from 64KiB to 64MiB such as 256KiB, got '%s'\n", a, v);
            return -1;
        }
    } else if (!strcmp(a, "--reasoning-field")) {
        if (!strcmp(v, "both")) o->reasoning_field = REASONING_FIELD_BOTH;
        else if (!strcmp(v, "reasoning_content")) o->reasoning_field = REASONING_FIELD_REASONING_CONTENT;
        else if (!strcmp(v, "reasoning")) o->reasoning_field = REASONING_FIELD_REASONING;
        else {
            fprintf(stderr, "moeserve serve: %s expects both, reasoning_content or reasoning, got '%s'\n", a, v);
            return -1;
        }
    } else if (!strcmp(a, "--log-level")) {
        if ((o->log_level = server_log_parse_level(v)) < 0) {
            fprintf(stderr, "moeserve serve: %s expects error, warn, info or debug, got '%s'\n", a, v);
            return -1;
        }
    } else {
        fprintf(stderr, "moeserve serve: unknown option %s (see --help)\n", a);
        return -1;
    }
    return 0;
}

/* Returns 0 to run, 1 after --help, -1 on a usage error. */
static int parse_opts(int argc, char **argv, struct serve_opts *o)
{
    *o = (struct serve_opts){.host = "127.0.0.1", .port = 8000, .cors = "*", .max_queued = 1024, .max_conns = 512, .max_conns_per_ip = 256,
                             .keep_alive = 300, .thinking_budget = -1, .log_level = LOG_LEVEL_INFO, .ping = 15,
                             .shutdown_timeout = 30, .stall = 60, .max_body = 8u << 20,
                             .conn_memory = 256u << 10};
    o->engine.prefix_caching = true;
    o->engine.threads = cli_default_threads();
    if (engine_opts_from_env(&o->engine)) return -1;
    const char *nw = getenv("MOESERVE_NO_WEBUI");
    o->no_webui = nw && (!strcmp(nw, "1") || !strcasecmp(nw, "true"));
    for (size_t i = 0; i < sizeof serve_options / sizeof serve_options[0]; i++) {
        const char *v = getenv(serve_options[i].env);
        if (!v || !*v) continue;
        if (parse_value(o, serve_options[i].flag, v)) {
            fprintf(stderr, "moeserve serve: (from environment variable %s)\n", serve_options[i].env);
            return -1;
        }
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(serve_help, stdout);
            for (size_t k = 0; k < sizeof serve_options / sizeof serve_options[0]; k++)
                printf("  %-26s %s\n  %-26s [env %s]\n", serve_options[k].flag, serve_options[k].help, "",
                       serve_options[k].env);
            printf("  %-26s %s\n  %-26s [env %s]\n", "--no-webui", "do not serve the chat page at / (GET / is then a 404)", "",
                   "MOESERVE_NO_WEBUI=1");
            engine_opts_help(stdout);
            return 1;
        }
        if (!strcmp(a, "--no-prefix-caching")) o->engine.prefix_caching = false;
        else if (!strcmp(a, "--no-webui")) o->no_webui = true;
        else if (i + 1 >= argc) {
            fprintf(stderr, "moeserve serve: unknown option or missing value: %s (see --help)\n", a);
            return -1;
        } else if (parse_value(o, a, argv[++i])) {
            return -1;
        }
    }
    if (!o->model_dir) {
        fprintf(stderr, "moeserve serve: --model DIR (or MOESERVE_MODEL) is required (see --help)\n");
        return -1;
    }
    return 0;
}

/* The directory's last component: "models/Qwen3-30B-A3B/" -> "Qwen3-30B-A3B". */
static void dir_name(const char *dir, char *out, size_t cap)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    size_t start = n;
    while (start > 0 && dir[start - 1] != '/') start--;
    /* a GGUF is named without its extension and split suffix (-00001-of-00003) */
    if (n - start > 5 && !strcmp(dir + n - 5, ".gguf")) {
        n -= 5;
        if (n - start > 15 && !strncmp(dir + n - 9, "-of-", 4) && dir[n - 15] == '-') n -= 15;
    }
    snprintf(out, cap, "%.*s", (int)(n - start), dir + start);
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

int cmd_serve(int argc, char **argv)
{
    struct serve_opts o;
    int prc = parse_opts(argc, argv, &o);
    if (prc) return prc > 0 ? 0 : 2;
    server_log_level = (enum log_level)o.log_level;
    char name[256], url[320];
    dir_name(o.model_dir, name, sizeof name);

    struct http_server_config hc;
    http_server_config_defaults(&hc);
    hc.host = o.host;
    hc.port = (int)o.port;
    hc.api_key = o.api_key;
    hc.served_model_name = o.served_name ? o.served_name : name;
    hc.model_dir = o.model_dir;
    hc.max_body_bytes = o.max_body;
    hc.max_queued_requests = (int)o.max_queued;
    hc.max_connections = (int)o.max_conns;
    hc.max_connections_per_ip = (int)o.max_conns_per_ip;
    hc.connection_memory_bytes = o.conn_memory;
    /* test hooks (tests/hardening): never set in production */
    const char *t = getenv("MOESERVE_TEST_STALL_ENGINE_MS");
    hc.test_stall_engine_ms = t ? atoi(t) : 0;
    t = getenv("MOESERVE_TEST_FAIL_AFTER_TOKENS");
    hc.test_fail_after_tokens = t ? atoi(t) : 0;
    t = getenv("MOESERVE_TEST_KILL_ENGINE_AFTER_STEPS"); /* the engine thread dies after N steps */
    o.engine.test_exit_after_steps = t ? atoi(t) : 0;
    hc.connection_timeout_s = (int)o.keep_alive;
    hc.sse_ping_interval_s = o.ping;
    hc.default_thinking_budget = (int)o.thinking_budget;
    hc.reasoning_field = o.reasoning_field;
    hc.engine_stall_s = o.stall;
    hc.cors_origin = o.cors;
    hc.webui = !o.no_webui;

    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    int rc = 1;
    struct ms_err err = {{0}};
    struct model *model = NULL;
    struct tokenizer *tok = NULL;
    struct chat_template *tmpl = NULL;
    struct engine *engine = NULL;
    struct http_server *srv = http_server_create(&hc, &err);
    if (!srv) {
        fprintf(stderr, "moeserve serve: %s\n", err.msg);
        return 1;
    }
    snprintf(url, sizeof url, strchr(o.host, ':') ? "http://[%s]:%d" : "http://%s:%d", o.host, http_server_port(srv));
    server_log(LOG_LEVEL_INFO, NULL, "listening on %s (loading %s)", url, o.model_dir);
    if (cli_load_model_quant(o.model_dir, o.quantize, o.load_mode, &model)) goto out;
    if (!(tok = cli_load_tokenizer(o.model_dir, o.tokenizer_dir, &err))) {
        fprintf(stderr, "moeserve serve: %s\n", err.msg);
        goto out;
    }
    if (!(tmpl = cli_load_template(o.model_dir, o.tokenizer_dir, &err)))
        server_log(LOG_LEVEL_WARN, NULL, "no usable chat template (%s); /v1/chat/completions will answer 400", err.msg);
    if (engine_config_resolve(&o.engine, model, &err) || !(engine = engine_create(model, &o.engine, &err))) {
        fprintf(stderr, "moeserve serve: %s\n", err.msg);
        goto out;
    }
    http_server_set_engine(srv, engine, model, tok, tmpl);
    struct engine_stats st;
    engine_get_stats(engine, &st);
    server_log(LOG_LEVEL_INFO, NULL,
               "ready: model '%s' on %s (max_model_len %d, max_num_seqs %d, KV cache %d tokens in %.2f GiB %s; "
               "%d threads, %s kernels)",
               hc.served_model_name, url, o.engine.max_model_len, o.engine.max_num_seqs,
               st.kv_blocks_total * o.engine.block_size, o.engine.kv_cache_bytes / 1073741824.0,
               tensor_dtype_name(o.engine.kv_dtype), o.engine.threads, kern_isa_name(kern_isa_best()));
    while (!serve_stop) sleep_s(0.02);

    server_log(LOG_LEVEL_INFO, NULL, "shutting down: no new requests; %d running (waiting up to %.0f s)",
               http_server_active(srv), o.shutdown_timeout);
    http_server_drain(srv);
    double until = ms_now() + o.shutdown_timeout;
    while (http_server_active(srv) > 0 && ms_now() < until) sleep_s(0.05);
    if (http_server_active(srv) > 0) {
        server_log(LOG_LEVEL_WARN, NULL, "aborting %d request(s) still running", http_server_active(srv));
        http_server_abort_all(srv);
        until = ms_now() + 5;
        while (http_server_active(srv) > 0 && ms_now() < until) sleep_s(0.02);
    }
    rc = 0;
out:
    http_server_destroy(srv);
    engine_destroy(engine);
    tmpl_free(tmpl);
    tok_free(tok);
    model_free(model);
    if (!rc) server_log(LOG_LEVEL_INFO, NULL, "stopped");
    return rc;
}
