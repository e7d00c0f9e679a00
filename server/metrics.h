/* Prometheus metrics with vLLM's names and semantics under the prefix "moeserve:", so vLLM
 * dashboards map one to one. Engine gauges and counters (running, waiting, KV usage, prefix
 * cache, preemptions, tokens) are read from engine_get_stats at scrape time; the latency
 * histograms and finish counters are observed by the HTTP layer per request. Any thread. */
#ifndef MS_SERVER_METRICS_H
#define MS_SERVER_METRICS_H

#include "engine/engine.h"
#include "server/sbuf.h"

enum metrics_hist {
    METRICS_HIST_TTFT,      /* time_to_first_token_seconds */
    METRICS_HIST_ITL,       /* inter_token_latency_seconds */
    METRICS_HIST_E2E,       /* e2e_request_latency_seconds */
    METRICS_HIST_QUEUE,     /* request_queue_time_seconds */
    METRICS_HIST_COUNT,
};

enum metrics_finish {
    METRICS_FINISH_STOP,
    METRICS_FINISH_LENGTH,
    METRICS_FINISH_ABORT,
    METRICS_FINISH_ERROR,
    METRICS_FINISH_COUNT,
};

struct metrics;

/* model_name labels every series (copied). NULL on allocation failure. */
struct metrics *metrics_create(const char *model_name);
void metrics_destroy(struct metrics *m);

void metrics_observe(struct metrics *m, enum metrics_hist h, double seconds);
void metrics_count_finish(struct metrics *m, enum metrics_finish f);
void metrics_count_disconnect(struct metrics *m);   /* a client went away mid-request */
void metrics_count_rejected(struct metrics *m);     /* 429: the waiting queue was full */
void metrics_count_http(struct metrics *m, int status);

/* Appends the Prometheus text exposition (format 0.0.4) to out. `selections` holds
 * st->moe_layers x st->moe_experts expert selection counts (engine_get_stats_experts); the
 * expert-load series are written only for a MoE model (st->moe_experts > 0) and selections
 * not NULL. */
int metrics_render(struct metrics *m, const struct engine_stats *st, const uint64_t *selections, struct sbuf *out);

#endif
