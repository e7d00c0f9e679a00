#include "server/metrics.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define METRICS_MAX_BUCKETS 24

static const struct {
    const char *name, *help;
    int n;
    double le[METRICS_MAX_BUCKETS];
} hist_defs[METRICS_HIST_COUNT] = {
    [METRICS_HIST_TTFT] = {"time_to_first_token_seconds", "Histogram of time to first token in seconds.", 22,
                           {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5,
                            10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0}},
    [METRICS_HIST_ITL] = {"inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", 19,
                          {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                           20.0, 40.0, 80.0}},
    [METRICS_HIST_E2E] = {"e2e_request_latency_seconds", "Histogram of end to end request latency in seconds.", 21,
                          {0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0,
                           240.0, 480.0, 960.0, 1920.0, 7680.0}},
    [METRICS_HIST_QUEUE] = {"request_queue_time_seconds",
                            "Histogram of time spent waiting before the first scheduled step, in seconds.", 21,
                            {0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0,
                             120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0}},
};

static const char *const finish_names[METRICS_FINISH_COUNT] = {"stop", "length", "abort", "error"};

struct hist {
    uint64_t buckets[METRICS_MAX_BUCKETS + 1]; /* the last is +Inf */
    uint64_t count;
    double sum;
};

struct metrics {
    pthread_mutex_t lock;
    char *model;
    struct hist hists[METRICS_HIST_COUNT];
    uint64_t finished[METRICS_FINISH_COUNT];
    uint64_t disconnects, rejected;
    uint64_t http[6]; /* by status class 1xx..5xx */
};

struct metrics *metrics_create(const char *model_name)
{
    struct metrics *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    if (!(m->model = strdup(model_name))) {
        free(m);
        return NULL;
    }
    pthread_mutex_init(&m->lock, NULL);
    return m;
}

void metrics_destroy(struct metrics *m)
{
    if (!m) return;
    pthread_mutex_destroy(&m->lock);
    free(m->model);
    free(m);
}

void metrics_observe(struct metrics *m, enum metrics_hist h, double seconds)
{
    if (seconds < 0) seconds = 0;
    pthread_mutex_lock(&m->lock);
    struct hist *x = &m->hists[h];
    int i = 0;
    while (i < hist_defs[h].n && seconds > hist_defs[h].le[i]) i++;
    x->buckets[i]++;
    x->count++;
    x->sum += seconds;
    pthread_mutex_unlock(&m->lock);
}

void metrics_count_finish(struct metrics *m, enum metrics_finish f)
{
    pthread_mutex_lock(&m->lock);
    m->finished[f]++;
    pthread_mutex_unlock(&m->lock);
}

void metrics_count_disconnect(struct metrics *m)
{
    pthread_mutex_lock(&m->lock);
    m->disconnects++;
    pthread_mutex_unlock(&m->lock);
}

void metrics_count_rejected(struct metrics *m)
{
    pthread_mutex_lock(&m->lock);
    m->rejected++;
    pthread_mutex_unlock(&m->lock);
}

void metrics_count_http(struct metrics *m, int status)
{
    int c = status / 100;
    if (c < 1 || c > 5) return;
    pthread_mutex_lock(&m->lock);
    m->http[c]++;
    pthread_mutex_unlock(&m->lock);
}

static void metric_head(struct sbuf *o, const char *name, const char *type, const char *help)
{
    sbuf_printf(o, "# HELP moeserve:%s %s\n# TYPE moeserve:%s %s\n", name, help, name, type);
}

static void metric_value(struct sbuf *o, const struct metrics *m, const char *name, const char *type,
                         const char *help, double v)
{
    metric_head(o, name, type, help);
    sbuf_printf(o, "moeserve:%s{model_name=\"%s\"} %.17g\n", name, m->model, v);
}

/* Expert load: one counter per (layer, expert), so the series number num_layers x num_experts
 * (6,144 for Qwen3-30B-A3B), fixed by the model; and the distinct experts each sparse layer read
 * per step, a histogram with the model-independent buckets of model_profile.distinct. */
static void render_expert_load(struct sbuf *o, const struct metrics *m, const struct engine_stats *st,
                               const uint64_t *sel)
{
    metric_head(o, "moe_expert_selections_total", "counter",
                "Tokens routed to each expert, per layer (each token picks num_experts_per_tok experts a layer).");
    for (int l = 0; l < st->moe_layers; l++)
        for (int e = 0; e < st->moe_experts; e++)
            sbuf_printf(o, "moeserve:moe_expert_selections_total{layer=\"%d\",expert=\"%d\",model_name=\"%s\"} %llu\n",
                        l, e, m->model, (unsigned long long)sel[(size_t)l * st->moe_experts + e]);
    const char *name = "moe_distinct_experts_per_layer_step";
    metric_head(o, name, "histogram",
                "Distinct experts one sparse layer read in one engine step (one observation per step and layer).");
    uint64_t cum = 0;
    for (int i = 0; i < MODEL_DISTINCT_BUCKETS; i++) {
        cum += st->forward.distinct[i];
        if (i < MODEL_DISTINCT_BUCKETS - 1)
            sbuf_printf(o, "moeserve:%s_bucket{le=\"%d\",model_name=\"%s\"} %llu\n", name, 1 << i, m->model,
                        (unsigned long long)cum);
        else
            sbuf_printf(o, "moeserve:%s_bucket{le=\"+Inf\",model_name=\"%s\"} %llu\n", name, m->model,
                        (unsigned long long)cum);
    }
    sbuf_printf(o, "moeserve:%s_sum{model_name=\"%s\"} %llu\n", name, m->model,
                (unsigned long long)st->forward.distinct_sum);
    sbuf_printf(o, "moeserve:%s_count{model_name=\"%s\"} %llu\n", name, m->model, (unsigned long long)cum);
}

int metrics_render(struct metrics *m, const struct engine_stats *st, const uint64_t *selections, struct sbuf *o)
{
    double kv = st->kv_blocks_total ? (double)st->kv_blocks_used / st->kv_blocks_total : 0;
    metric_value(o, m, "num_requests_running", "gauge", "Number of requests in model execution batches.", st->running);
    metric_value(o, m, "num_requests_waiting", "gauge", "Number of requests waiting to be processed.", st->waiting);
    metric_value(o, m, "kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.", kv);
    metric_value(o, m, "prefix_cache_queries_total", "counter",
                 "Prefix cache queries, in terms of number of queried tokens.", (double)st->prefix_cache_queries);
    metric_value(o, m, "prefix_cache_hits_total", "counter", "Prefix cache hits, in terms of number of cached tokens.",
                 (double)st->prefix_cache_hits);
    metric_value(o, m, "num_preemptions_total", "counter", "Cumulative number of preemption from the engine.",
                 (double)st->preemptions);
    metric_value(o, m, "prompt_tokens_total", "counter", "Number of prefill tokens processed.",
                 (double)st->prompt_tokens);
    metric_value(o, m, "generation_tokens_total", "counter", "Number of generation tokens processed.",
                 (double)st->generation_tokens);
    metric_value(o, m, "spec_decode_num_drafts_total", "counter",
                 "Speculative decoding: verifications of a drafted continuation.", (double)st->spec_drafts);
    metric_value(o, m, "spec_decode_num_draft_tokens_total", "counter", "Speculative decoding: tokens drafted.",
                 (double)st->spec_draft_tokens);
    metric_value(o, m, "spec_decode_num_accepted_tokens_total", "counter",
                 "Speculative decoding: drafted tokens the model agreed with.", (double)st->spec_accepted_tokens);
    metric_value(o, m, "engine_alive", "gauge", "1 while the engine thread runs.", st->alive ? 1 : 0);
    metric_value(o, m, "engine_steps_total", "counter", "Engine steps (one forward each).", (double)st->steps);
    metric_value(o, m, "engine_step_seconds_total", "counter",
                 "Time in engine steps: scheduling, forward, sampling.", st->step_seconds);
    metric_value(o, m, "engine_sample_seconds_total", "counter", "Time picking and streaming tokens.",
                 st->sample_seconds);
    metric_value(o, m, "weight_bytes_read_total", "counter",
                 "Bytes of weights the forwards' matmuls streamed (each active expert once a step).",
                 (double)st->forward.weight_bytes);
    metric_head(o, "forward_phase_seconds_total", "counter", "Time in each phase of the forward pass.");
    for (int p = 0; p < MODEL_PHASE_COUNT; p++)
        sbuf_printf(o, "moeserve:forward_phase_seconds_total{phase=\"%s\",model_name=\"%s\"} %.9g\n",
                    model_phase_name((enum model_phase)p), m->model, st->forward.seconds[p]);
    if (st->moe_experts > 0 && selections) render_expert_load(o, m, st, selections);

    pthread_mutex_lock(&m->lock);
    metric_head(o, "request_success_total", "counter", "Count of successfully processed requests.");
    for (int f = 0; f < METRICS_FINISH_COUNT; f++)
        sbuf_printf(o, "moeserve:request_success_total{finished_reason=\"%s\",model_name=\"%s\"} %llu\n",
                    finish_names[f], m->model, (unsigned long long)m->finished[f]);
    metric_value(o, m, "client_disconnect_aborts_total", "counter",
                 "Requests aborted because the client disconnected before the end.", (double)m->disconnects);
    metric_value(o, m, "request_rejected_total", "counter",
                 "Requests answered 429 because the waiting queue was full.", (double)m->rejected);
    metric_head(o, "http_responses_total", "counter", "HTTP responses by status class.");
    for (int c = 1; c <= 5; c++)
        sbuf_printf(o, "moeserve:http_responses_total{status=\"%dxx\",model_name=\"%s\"} %llu\n", c, m->model,
                    (unsigned long long)m->http[c]);
    for (int h = 0; h < METRICS_HIST_COUNT; h++) {
        const struct hist *x = &m->hists[h];
        metric_head(o, hist_defs[h].name, "histogram", hist_defs[h].help);
        uint64_t cum = 0;
        for (int i = 0; i <= hist_defs[h].n; i++) {
            cum += x->buckets[i];
            if (i < hist_defs[h].n)
                sbuf_printf(o, "moeserve:%s_bucket{le=\"%g\",model_name=\"%s\"} %llu\n", hist_defs[h].name,
                            hist_defs[h].le[i], m->model, (unsigned long long)cum);
            else
                sbuf_printf(o, "moeserve:%s_bucket{le=\"+Inf\",model_name=\"%s\"} %llu\n", hist_defs[h].name,
                            m->model, (unsigned long long)cum);
        }
        sbuf_printf(o, "moeserve:%s_sum{model_name=\"%s\"} %.9g\n", hist_defs[h].name, m->model, x->sum);
        sbuf_printf(o, "moeserve:%s_count{model_name=\"%s\"} %llu\n", hist_defs[h].name, m->model,
                    (unsigned long long)x->count);
    }
    pthread_mutex_unlock(&m->lock);
    return o->oom ? -1 : 0;
}
