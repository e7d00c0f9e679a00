/* The HTTP front end: a libmicrohttpd daemon serving the OpenAI API (chat completions,
 * completions, models), /tokenize, /detokenize, /health, /metrics and the chat page at / in front of
 * one engine.
 *
 * Threading (the choice and why): MHD_USE_THREAD_PER_CONNECTION with an internal polling thread
 * that only accepts. Each connection runs on its own thread, so a request handler may block on
 * its request's output stream and a slow or stalled client (full socket buffer, slow reader)
 * only ever stalls its own thread; the engine thread never waits on HTTP. A connection waits on
 * a condition variable that stream_set_notify signals on every engine push, and wakes at least
 * every 50 ms to poll its socket for a hang-up, so a client that disconnects is noticed (and its
 * request aborted with engine_abort) within that time even while nothing is being sent. Costs:
 * one thread (small stack) per open connection, bounded by --max-connections.
 *
 * Lifecycle: http_server_create starts listening at once (so /health answers 503 "loading"
 * while the model loads); http_server_set_engine makes it ready. http_server_drain stops
 * taking new generation requests (503; /health turns 503);
 * http_server_active tells how many generation requests are still running;
 * http_server_destroy aborts what is left, stops the daemon (joining every connection thread)
 * and frees everything. Call these from one controlling thread. */
#ifndef MS_SERVER_HTTP_SERVER_H
#define MS_SERVER_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>

#include "common/ms_common.h"
#include "server/openai_response.h"

struct engine;
struct model;
struct tokenizer;
struct chat_template;

struct http_server_config {
    const char *host;            /* default "127.0.0.1" */
    int port;                    /* 0: any free port (see http_server_port) */
    const char *api_key;         /* NULL or "": no authentication */
    const char *served_model_name; /* the id clients use (borrowed) */
    const char *model_dir;       /* also accepted as the model name (borrowed) */
    size_t max_body_bytes;       /* larger bodies get 413 */
    int max_queued_requests;     /* choices waiting beyond max_num_seqs; more get 429 */
    int max_connections;
    int max_connections_per_ip;  /* 0: no per-IP limit */
    size_t connection_memory_bytes; /* per-connection buffer for the request line, headers and writes */
    int connection_timeout_s;    /* idle connections (and streams whose client reads nothing) are closed after this */
    double sse_ping_interval_s;  /* ": ping" comments while nothing else is sent; <= 0: off */
    int default_thinking_budget; /* -1: no budget unless the request sets one */
    enum reasoning_field reasoning_field;
    double engine_stall_s;       /* /health 503 when requests run but no step happened for this long */
    const char *cors_origin;     /* Access-Control-Allow-Origin ("*") */
    bool webui;                  /* serve the chat page at GET / (server/webui.h); default true */
    /* test hooks (0: off), from MOESERVE_TEST_* variables: the engine thread sleeps this long in the
     * first event of each request (a wedged engine); each choice fails after this many tokens as if
     * the engine had failed it (an error inside a stream) */
    int test_stall_engine_ms;
    int test_fail_after_tokens;
};

void http_server_config_defaults(struct http_server_config *cfg);

struct http_server;

/* Binds and starts serving (503 on every route but /metrics until http_server_set_engine).
 * NULL on failure with err set. The config's strings are borrowed for the server's life. */
struct http_server *http_server_create(const struct http_server_config *cfg, struct ms_err *err);

/* Makes the server ready. Everything is borrowed and must outlive the server; tmpl may be NULL
 * (then /v1/chat/completions answers 400). */
void http_server_set_engine(struct http_server *s, struct engine *e, const struct model *m,
                            const struct tokenizer *tok, const struct chat_template *tmpl);

int http_server_port(const struct http_server *s);

/* Stops taking new generation requests (they get 503 "shutting_down", which a load balancer
 * retries elsewhere); /health answers 503. Connections are still accepted so that health checks
 * see the 503. Requests already running continue. */
void http_server_drain(struct http_server *s);

/* Generation requests still in progress. Any thread. */
int http_server_active(struct http_server *s);

/* Ends every running generation request (they finish with "abort"; streams still end with
 * [DONE]). Their connections notice within 50 ms; watch http_server_active. */
void http_server_abort_all(struct http_server *s);

/* Aborts what still runs, stops the daemon and frees. The engine must not be destroyed yet (a dead
 * engine thread is fine: it ended every request when it exited). */
void http_server_destroy(struct http_server *s);

#endif
