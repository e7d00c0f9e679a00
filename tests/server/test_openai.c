/* Unit tests of the OpenAI JSON layer: request validation (server/openai_request.c), response
 * and chunk shapes (server/openai_response.c) and the Prometheus text (server/metrics.c). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "server/metrics.h"
#include "server/openai_request.h"
#include "server/openai_response.h"
#include "tests/testhelp.h"

/* Parses `body` for `route`; returns the HTTP status (200 when valid) and frees. */
static int status_of(enum oa_route route, const char *body, char *param_out)
{
    struct oa_request r;
    struct oa_error e = {0};
    int rc = oa_request_parse(body, strlen(body), route, &r, &e);
    if (param_out) strcpy(param_out, rc ? e.param : "");
    oa_request_free(&r);
    return rc ? e.status : 200;
}

static void test_requests(void)
{
    char param[64];
    static const struct {
        const char *body, *param;
        int status;
    } chat[] = {
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", "", 200},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":null}", "", 200},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":2.5}", "temperature", 400},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":true}", "temperature", 400},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":0}", "max_tokens", 400},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"n\":17}", "n", 400},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"top_logprobs\":2}", "top_logprobs", 400},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"logprobs\":true,\"top_logprobs\":21}", "top_logprobs", 400},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"reasoning_effort\":\"max\"}", "reasoning_effort", 400},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"stop\":[1]}", "stop", 400},
        {"{\"messages\":[]}", "messages", 400},
        {"{\"messages\":[{\"content\":\"hi\"}]}", "messages", 400},
        {"{}", "messages", 400},
        {"[1]", "", 400},
        {"{\"messages\":", "", 400},
    };
    for (size_t i = 0; i < sizeof chat / sizeof chat[0]; i++) {
        int st = status_of(OA_ROUTE_CHAT, chat[i].body, param);
        test_cond(chat[i].body, st == chat[i].status && !strcmp(param, chat[i].param));
    }
    test_cond("completions need a prompt", status_of(OA_ROUTE_COMPLETION, "{}", param) == 400 && !strcmp(param, "prompt"));
    test_cond("completions: logprobs is an integer", status_of(OA_ROUTE_COMPLETION, "{\"prompt\":\"x\",\"logprobs\":true}", param) == 400);

    struct oa_request r;
    struct oa_error e;
    const char *body = "{\"messages\":[{\"role\":\"developer\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
                       "{\"type\":\"text\",\"text\":\"b\"}]}],\"chat_template_kwargs\":{\"enable_thinking\":false},"
                       "\"stop\":[\"x\",\"\",\"yz\"],\"seed\":5,\"n\":2,\"max_completion_tokens\":7,\"top_k\":0}";
    test_cond("a full request parses", oa_request_parse(body, strlen(body), OA_ROUTE_CHAT, &r, &e) == 0);
    test_cond("thinking off via kwargs", !r.thinking);
    test_cond("empty stop strings are dropped", r.n_stops == 2 && !strcmp(r.stops[1], "yz"));
    test_cond("seed, n, max_completion_tokens", r.seed_given && r.seed == 5 && r.n == 2 && r.max_tokens == 7);
    test_cond("top_k 0 means off", r.top_k == -1 && r.top_k_given);
    const cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItem(r.root, "messages"), 0);
    test_cond("developer becomes system", !strcmp(cJSON_GetObjectItem(m, "role")->valuestring, "system"));
    test_cond("text parts are joined", !strcmp(cJSON_GetObjectItem(m, "content")->valuestring, "ab"));
    oa_request_free(&r);
    test_cond("effort budgets", oa_reasoning_effort_budget("low") == 1024 && oa_reasoning_effort_budget("medium") == 8192 &&
                                    oa_reasoning_effort_budget("high") == 32768 && oa_reasoning_effort_budget("none") < 0);
    body = "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"reasoning_effort\":\"none\"}";
    test_cond("reasoning_effort none", oa_request_parse(body, strlen(body), OA_ROUTE_CHAT, &r, &e) == 0 && !r.thinking);
    oa_request_free(&r);
}

static void test_responses(void)
{
    struct oa_meta m = {.id = "chatcmpl-1", .model = "tiny", .created = 1, .reasoning_field = REASONING_FIELD_BOTH};
    struct oa_usage u = {.prompt_tokens = 3, .completion_tokens = 4, .cached_tokens = 1, .reasoning_tokens = 2};
    struct parsed_tool_call call = {"get_weather", "{\"city\":\"Paris\"}"};
    char ids[1][40];
    oa_tool_call_id("chatcmpl-1", 0, 0, ids[0]);
    test_cond("tool call id", !strncmp(ids[0], "call_", 5) && strlen(ids[0]) == 29);
    struct oa_choice c = {.index = 0, .text = NULL, .reasoning = "r", .calls = &call, .call_ids = (const char(*)[40])ids,
                          .n_calls = 1, .finish_reason = "tool_calls"};
    char *s = oa_chat_response(&m, &c, 1, &u);
    cJSON *j = cJSON_Parse(s);
    cJSON *msg = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0), "message");
    test_cond("content null with tool calls", cJSON_IsNull(cJSON_GetObjectItem(msg, "content")));
    test_cond("both reasoning fields", cJSON_IsString(cJSON_GetObjectItem(msg, "reasoning_content")) &&
                                           cJSON_IsString(cJSON_GetObjectItem(msg, "reasoning")));
    cJSON *fn = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(msg, "tool_calls"), 0), "function");
    test_cond("arguments are a JSON string", !strcmp(cJSON_GetObjectItem(fn, "arguments")->valuestring, "{\"city\":\"Paris\"}"));
    cJSON *usage = cJSON_GetObjectItem(j, "usage");
    test_cond("usage totals", cJSON_GetObjectItem(usage, "total_tokens")->valueint == 7 &&
                                  cJSON_GetObjectItem(cJSON_GetObjectItem(usage, "prompt_tokens_details"), "cached_tokens")->valueint == 1 &&
                                  cJSON_GetObjectItem(cJSON_GetObjectItem(usage, "completion_tokens_details"), "reasoning_tokens")->valueint == 2);
    cJSON_Delete(j);
    free(s);

    m.reasoning_field = REASONING_FIELD_REASONING;
    s = oa_chat_chunk(&m, 0, "assistant", NULL, NULL, NULL, NULL, 0, 0, NULL, NULL);
    test_cond("role chunk", strstr(s, "\"delta\":{\"role\":\"assistant\",\"content\":\"\"}") && strstr(s, "\"finish_reason\":null"));
    free(s);
    s = oa_chat_chunk(&m, 1, NULL, "think", NULL, NULL, NULL, 0, 0, NULL, NULL);
    test_cond("--reasoning-field reasoning", strstr(s, "\"delta\":{\"reasoning\":\"think\"}") && !strstr(s, "reasoning_content"));
    free(s);
    s = oa_chat_chunk(&m, 0, NULL, NULL, NULL, &call, (const char(*)[40])ids, 0, 1, "tool_calls", NULL);
    j = cJSON_Parse(s);
    cJSON *tcs = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0), "delta"), "tool_calls");
    test_cond("tool call deltas: name then arguments", cJSON_GetArraySize(tcs) == 2 &&
                                                       cJSON_GetObjectItem(cJSON_GetArrayItem(tcs, 0), "id") &&
                                                       !cJSON_GetObjectItem(cJSON_GetArrayItem(tcs, 1), "id"));
    cJSON_Delete(j);
    free(s);
    m.usage_null = true;
    s = oa_usage_chunk(&m, true, &u);
    test_cond("usage chunk has empty choices", strstr(s, "\"choices\":[]") && strstr(s, "\"usage\":{"));
    free(s);
    struct oa_error e;
    oa_error_set(&e, 400, "temperature", NULL, "bad %s", "value");
    s = oa_error_body(&e);
    test_cond("error body", !strcmp(s, "{\"error\":{\"message\":\"bad value\",\"type\":\"invalid_request_error\","
                                       "\"param\":\"temperature\",\"code\":400}}"));
    free(s);
}

static void test_metrics(void)
{
    struct metrics *m = metrics_create("tiny");
    metrics_observe(m, METRICS_HIST_TTFT, 0.003);
    metrics_observe(m, METRICS_HIST_TTFT, 100);
    metrics_count_finish(m, METRICS_FINISH_LENGTH);
    metrics_count_disconnect(m);
    struct engine_stats st = {.running = 2, .kv_blocks_total = 8, .kv_blocks_used = 2, .prompt_tokens = 11};
    struct sbuf out = {0};
    test_cond("render", metrics_render(m, &st, NULL, &out) == 0);
    test_cond("dense: no expert series", strstr(out.s, "moeserve:moe_") == NULL);
    test_cond("gauge", strstr(out.s, "moeserve:num_requests_running{model_name=\"tiny\"} 2\n") != NULL);
    test_cond("kv usage fraction", strstr(out.s, "moeserve:kv_cache_usage_perc{model_name=\"tiny\"} 0.25\n") != NULL);
    test_cond("finish counter", strstr(out.s, "moeserve:request_success_total{finished_reason=\"length\",model_name=\"tiny\"} 1\n") != NULL);
    test_cond("bucket 0.005 holds one", strstr(out.s, "moeserve:time_to_first_token_seconds_bucket{le=\"0.005\",model_name=\"tiny\"} 1\n") != NULL);
    test_cond("+Inf holds both", strstr(out.s, "moeserve:time_to_first_token_seconds_bucket{le=\"+Inf\",model_name=\"tiny\"} 2\n") != NULL);
    test_cond("count", strstr(out.s, "moeserve:time_to_first_token_seconds_count{model_name=\"tiny\"} 2\n") != NULL);
    test_cond("disconnects", strstr(out.s, "moeserve:client_disconnect_aborts_total{model_name=\"tiny\"} 1\n") != NULL);
    sbuf_free(&out);
    metrics_destroy(m);
}

/* The expert-load series of a 2-layer, 3-expert model: one counter per (layer, expert) from the
 * layer-major counts, and the distinct-experts histogram cumulated over its fixed buckets. */
static void test_metrics_experts(void)
{
    struct metrics *m = metrics_create("tiny");
    struct engine_stats st = {.moe_layers = 2, .moe_experts = 3};
    st.forward.distinct[0] = 1; /* one layer-step read 1 expert */
    st.forward.distinct[2] = 3; /* three read 3 or 4 */
    st.forward.distinct_sum = 1 + 3 + 3 + 4;
    const uint64_t sel[6] = {5, 0, 1, 2, 3, 7};
    struct sbuf out = {0};
    test_cond("render experts", metrics_render(m, &st, sel, &out) == 0);
    test_cond("layer 1 expert 2", strstr(out.s, "moeserve:moe_expert_selections_total{layer=\"1\",expert=\"2\",model_name=\"tiny\"} 7\n") != NULL);
    test_cond("layer 0 expert 1", strstr(out.s, "moeserve:moe_expert_selections_total{layer=\"0\",expert=\"1\",model_name=\"tiny\"} 0\n") != NULL);
    test_cond("no layer 2", strstr(out.s, "layer=\"2\"") == NULL);
    test_cond("no expert 3", strstr(out.s, "expert=\"3\"") == NULL);
    test_cond("le 2 cumulates", strstr(out.s, "moeserve:moe_distinct_experts_per_layer_step_bucket{le=\"2\",model_name=\"tiny\"} 1\n") != NULL);
    test_cond("le 4 cumulates", strstr(out.s, "moeserve:moe_distinct_experts_per_layer_step_bucket{le=\"4\",model_name=\"tiny\"} 4\n") != NULL);
    test_cond("le 128", strstr(out.s, "moeserve:moe_distinct_experts_per_layer_step_bucket{le=\"128\",model_name=\"tiny\"} 4\n") != NULL);
    test_cond("+Inf", strstr(out.s, "moeserve:moe_distinct_experts_per_layer_step_bucket{le=\"+Inf\",model_name=\"tiny\"} 4\n") != NULL);
    test_cond("sum", strstr(out.s, "moeserve:moe_distinct_experts_per_layer_step_sum{model_name=\"tiny\"} 11\n") != NULL);
    test_cond("count", strstr(out.s, "moeserve:moe_distinct_experts_per_layer_step_count{model_name=\"tiny\"} 4\n") != NULL);
    sbuf_free(&out);
    metrics_destroy(m);
}

int main(void)
{
    test_requests();
    test_responses();
    test_metrics();
    test_metrics_experts();
    test_report();
}
