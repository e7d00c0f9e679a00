/* moeserve generate: run prompts through the engine from the command line.
 *
 * One prompt (--prompt, --prompt-ids, or a chat built from --message) streams its continuation
 * to stdout. A prompt file (--prompt-file, JSON lines) is submitted all at once, so the requests
 * share the engine's batches exactly as concurrent HTTP requests would, and one JSON line per
 * request is printed in input order. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_util.h"
#include "cli/engine_opts.h"
#include "engine/engine.h"
#include "tokenizer/chat_template.h"
#include "cli/cli_model.h"
#include "tokenizer/tokenizer.h"

static const char generate_help[] =
    "usage: moeserve generate --model DIR (--prompt TEXT | --prompt-ids LIST | --chat --message ROLE:TEXT...\n"
    "                         | --prompt-file FILE) [options]\n"
    "\n"
    "Continues a prompt with the model. A single prompt streams its continuation to stdout (text,\n"
    "or token ids with --ids). --prompt-file submits every line at once to the batching engine and\n"
    "prints one JSON line per request, in input order:\n"
    "  {\"ids\":[...],\"text\":\"...\",\"finish_reason\":\"stop|length\",\"prompt_tokens\":N,\n"
    "   \"completion_tokens\":N,\"cached_tokens\":N}\n"
    "Each input line is {\"prompt\":\"...\"} or {\"prompt_ids\":[...]} or {\"messages\":[...]} plus any of\n"
    "max_tokens, temperature, top_p, top_k, min_p, seed, repetition_penalty, presence_penalty,\n"
    "frequency_penalty, logit_bias ({\"id\": bias}), stop_token_ids, ignore_eos, priority,\n"
    "speculative (true/false: speculative decoding for this line; default: --speculative).\n"
    "\n"
    "prompt:\n"
    "  --model DIR            Hugging Face model directory or FILE.gguf (env MOESERVE_MODEL)\n"
    "  --tokenizer DIR        tokenizer.json from DIR (env MOESERVE_TOKENIZER; a .gguf's default:\n"
    "                         the vocabulary stored in the file)\n"
    "  --quantize TYPE        convert the weights at load: q8_0 (matmul weights), or a `moeserve\n"
    "                         quantize` scheme (q4_k_m, q6_k, ...: see quantize --help),\n"
    "                         or nvfp4 (load only) (env MOESERVE_QUANTIZE)\n"
    "  --load-mode MODE       copy (default: the weights read into memory of their own) or mmap\n"
    "                         (served from the file mapping) (env MOESERVE_LOAD_MODE)\n"
    "  --prompt TEXT          raw prompt text (special tokens such as <|im_start|> are recognised);\n"
    "                         with --chat, the user message\n"
    "  --prompt-ids LIST      the prompt as comma-separated token ids\n"
    "  --chat                 render the messages with the model's chat template\n"
    "  --message ROLE:TEXT    a chat message (repeatable; implies --chat), e.g. --message user:Hi\n"
    "  --no-think             chat: render with enable_thinking=false\n"
    "  --prompt-file FILE     JSON lines, one request each (see above)\n"
    "sampling (defaults for every request; a prompt-file line may override them):\n"
    "  --max-tokens N         most new tokens (default 64)\n"
    "  --temperature T        0 = greedy (default 0)\n"
    "  --top-k K, --top-p P, --min-p P   sampling filters (default off)\n"
    "  --seed N               sampling seed (default: random per request)\n"
    "  --ignore-eos           keep generating past end-of-sequence tokens\n"
    "output:\n"
    "  --ids                  print token ids instead of text\n";

struct gen_opts {
    const char *model_dir, *prompt, *prompt_ids, *prompt_file, *quantize, *load_mode, *tokenizer_dir;
    cJSON *messages;
    bool chat, no_think, ids, ignore_eos, seed_given;
    long max_tokens, top_k, seed;
    double temperature, top_p, min_p;
    struct engine_config engine;
};

/* One request of this run: its prompt, what it asked, and what came back. */
struct gen_job {
    struct engine_request_params p;
    int32_t *prompt;
    struct logit_bias_entry *bias;
    int32_t *stop_ids;
    struct stream *stream;
    int32_t *out;
    int n_out, cap_out;
    struct stream_event final;
};

static void append_message(struct gen_opts *o, const char *role, const char *content)
{
    if (!o->messages) o->messages = cJSON_CreateArray();
    cJSON *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", role);
    cJSON_AddStringToObject(m, "content", content);
    cJSON_AddItemToArray(o->messages, m);
    o->chat = true;
}

static int add_message(struct gen_opts *o, const char *spec)
{
    const char *colon = strchr(spec, ':');
    if (!colon || colon == spec || colon - spec >= 64) {
        fprintf(stderr, "moeserve generate: --message expects ROLE:TEXT, got '%s'\n", spec);
        return -1;
    }
    char role[64];
    snprintf(role, sizeof role, "%.*s", (int)(colon - spec), spec);
    append_message(o, role, colon + 1);
    return 0;
}

static int parse_flag_value(struct gen_opts *o, const char *a, const char *v)
{
    int e = engine_opts_parse(&o->engine, a, v);
    if (e) return e < 0 ? -1 : 0;
    if (!strcmp(a, "--model")) o->model_dir = v;
    else if (!strcmp(a, "--tokenizer")) o->tokenizer_dir = v;
    else if (!strcmp(a, "--prompt")) o->prompt = v;
    else if (!strcmp(a, "--prompt-ids")) o->prompt_ids = v;
    else if (!strcmp(a, "--prompt-file")) o->prompt_file = v;
    else if (!strcmp(a, "--quantize")) o->quantize = v;
    else if (!strcmp(a, "--load-mode")) o->load_mode = v;
    else if (!strcmp(a, "--message")) return add_message(o, v);
    else if (!strcmp(a, "--max-tokens")) return cli_parse_int(a, v, 1, 1 << 24, &o->max_tokens);
    else if (!strcmp(a, "--temperature")) return cli_parse_double(a, v, 0, 100, &o->temperature);
    else if (!strcmp(a, "--top-p")) return cli_parse_double(a, v, 1e-9, 1, &o->top_p);
    else if (!strcmp(a, "--min-p")) return cli_parse_double(a, v, 0, 1, &o->min_p);
    else if (!strcmp(a, "--top-k")) return cli_parse_int(a, v, -1, 1 << 24, &o->top_k);
    else if (!strcmp(a, "--seed")) return (o->seed_given = true), cli_parse_int(a, v, 0, INT64_MAX, &o->seed);
    else {
        fprintf(stderr, "moeserve generate: unknown option %s (see --help)\n", a);
        return -1;
    }
    return 0;
}

/* Returns 0 to run, 1 after --help, -1 on a usage error. */
static int parse_opts(int argc, char **argv, struct gen_opts *o)
{
    *o = (struct gen_opts){.model_dir = getenv("MOESERVE_MODEL"), .tokenizer_dir = getenv("MOESERVE_TOKENIZER"),
                           .max_tokens = 64, .top_p = 1};
    o->engine.prefix_caching = true;
    o->engine.threads = cli_default_threads();
    if (engine_opts_from_env(&o->engine)) return -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(generate_help, stdout);
            engine_opts_help(stdout);
            return 1;
        }
        if (!strcmp(a, "--ids")) o->ids = true;
        else if (!strcmp(a, "--chat")) o->chat = true;
        else if (!strcmp(a, "--no-think")) o->no_think = true;
        else if (!strcmp(a, "--ignore-eos")) o->ignore_eos = true;
        else if (!strcmp(a, "--no-prefix-caching")) o->engine.prefix_caching = false;
        else if (i + 1 >= argc) {
            fprintf(stderr, "moeserve generate: unknown option or missing value: %s (see --help)\n", a);
            return -1;
        } else if (parse_flag_value(o, a, argv[++i])) {
            return -1;
        }
    }
    int sources = !!o->prompt_ids + !!o->prompt_file + !!(o->prompt || o->messages);
    if (!o->model_dir || sources != 1) {
        fprintf(stderr, "moeserve generate: --model and exactly one of --prompt, --prompt-ids, --message or "
                        "--prompt-file are required (see --help)\n");
        return -1;
    }
    if (o->chat && o->prompt) append_message(o, "user", o->prompt); /* --chat --prompt TEXT */
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Building prompts */

struct gen_ctx {
    struct gen_opts o;
    struct model *model;
    struct tokenizer *tok;
    struct chat_template *tmpl;
    struct engine *engine;
    struct gen_job *jobs;
    int n_jobs;
};

static int encode_text(struct gen_ctx *g, const char *text, struct gen_job *j)
{
    struct ms_err err = {{0}};
    if (!g->tok) {
        fprintf(stderr, "moeserve: %s has no usable tokenizer.json; give --prompt-ids instead\n", g->o.model_dir);
        return -1;
    }
    size_t n = 0;
    if (tok_encode(g->tok, text, strlen(text), 1, &j->prompt, &n, &err)) {
        fprintf(stderr, "moeserve: cannot encode the prompt: %s\n", err.msg);
        return -1;
    }
    j->p.n_prompt = (int)n;
    return 0;
}

static int render_chat(struct gen_ctx *g, const cJSON *messages, struct gen_job *j)
{
    struct ms_err err = {{0}};
    if (!g->tmpl && !(g->tmpl = cli_load_template(g->o.model_dir, g->o.tokenizer_dir, &err))) {
        fprintf(stderr, "moeserve: %s\n", err.msg);
        return -1;
    }
    cJSON *kwargs = cJSON_CreateObject();
    cJSON_AddBoolToObject(kwargs, "enable_thinking", !g->o.no_think);
    char *text = NULL;
    int rc = tmpl_render(g->tmpl, messages, NULL, 1, kwargs, &text, &err);
    cJSON_Delete(kwargs);
    if (rc) {
        fprintf(stderr, "moeserve: chat template: %s\n", err.msg);
        return -1;
    }
    rc = encode_text(g, text, j);
    free(text);
    return rc;
}

static void job_defaults(const struct gen_opts *o, struct gen_job *j)
{
    struct sampling_params *s = &j->p.sampling;
    sampling_params_init(s);
    s->temperature = (float)o->temperature;
    s->top_k = (int)o->top_k;
    s->top_p = (float)o->top_p;
    s->min_p = (float)o->min_p;
    s->seed = (uint64_t)o->seed;
    j->p.seed_given = o->seed_given;
    j->p.max_tokens = (int)o->max_tokens;
    j->p.ignore_eos = o->ignore_eos;
}

static int json_ids(const cJSON *arr, const char *field, int32_t **out, int *n)
{
    if (!cJSON_IsArray(arr)) {
        fprintf(stderr, "moeserve: %s must be a list of token ids\n", field);
        return -1;
    }
    *n = cJSON_GetArraySize(arr);
    *out = malloc((size_t)(*n + 1) * sizeof **out);
    if (!*out) return -1;
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, arr)
    {
        if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || fabs(it->valuedouble) > 2e9) {
            fprintf(stderr, "moeserve: %s must hold integers\n", field);
            return -1;
        }
        (*out)[i++] = (int32_t)it->valuedouble;
    }
    return 0;
}

/* Reads the sampling fields of one prompt-file line over the defaults. */
static int line_sampling(const cJSON *line, struct gen_job *j)
{
    struct sampling_params *s = &j->p.sampling;
    const cJSON *v;
#define NUM(name) ((v = cJSON_GetObjectItemCaseSensitive(line, name)) && cJSON_IsNumber(v))
    if (NUM("max_tokens")) j->p.max_tokens = (int)v->valuedouble;
    if (NUM("temperature")) s->temperature = (float)v->valuedouble;
    if (NUM("top_p")) s->top_p = (float)v->valuedouble;
    if (NUM("top_k")) s->top_k = (int)v->valuedouble;
    if (NUM("min_p")) s->min_p = (float)v->valuedouble;
    if (NUM("repetition_penalty")) s->repetition_penalty = (float)v->valuedouble;
    if (NUM("presence_penalty")) s->presence_penalty = (float)v->valuedouble;
    if (NUM("frequency_penalty")) s->frequency_penalty = (float)v->valuedouble;
    if (NUM("priority")) j->p.priority = (int)v->valuedouble;
    if (NUM("seed")) s->seed = (uint64_t)v->valuedouble, j->p.seed_given = true;
#undef NUM
    if ((v = cJSON_GetObjectItemCaseSensitive(line, "ignore_eos"))) j->p.ignore_eos = cJSON_IsTrue(v);
    if ((v = cJSON_GetObjectItemCaseSensitive(line, "speculative")))
        j->p.speculative = cJSON_IsTrue(v) ? SPEC_ON : SPEC_OFF;
    if ((v = cJSON_GetObjectItemCaseSensitive(line, "stop_token_ids")) &&
        json_ids(v, "stop_token_ids", &j->stop_ids, &j->p.n_stop_token_ids))
        return -1;
    j->p.stop_token_ids = j->stop_ids;
    if ((v = cJSON_GetObjectItemCaseSensitive(line, "logit_bias")) && cJSON_IsObject(v)) {
        j->bias = malloc((size_t)(cJSON_GetArraySize(v) + 1) * sizeof *j->bias);
        if (!j->bias) return -1;
        const cJSON *it;
        cJSON_ArrayForEach(it, v) j->bias[s->n_logit_bias++] = (struct logit_bias_entry){
            (int32_t)atol(it->string), cJSON_IsNumber(it) ? (float)it->valuedouble : NAN};
        s->logit_bias = j->bias;
    }
    return 0;
}

static int job_from_line(struct gen_ctx *g, const char *text, int lineno, struct gen_job *j)
{
    cJSON *line = cJSON_Parse(text);
    int rc = -1;
    const cJSON *v;
    job_defaults(&g->o, j);
    if (!cJSON_IsObject(line))
        fprintf(stderr, "moeserve: %s:%d: not a JSON object\n", g->o.prompt_file, lineno);
    else if ((v = cJSON_GetObjectItemCaseSensitive(line, "prompt_ids")))
        rc = json_ids(v, "prompt_ids", &j->prompt, &j->p.n_prompt);
    else if ((v = cJSON_GetObjectItemCaseSensitive(line, "prompt")) && cJSON_IsString(v))
        rc = encode_text(g, v->valuestring, j);
    else if ((v = cJSON_GetObjectItemCaseSensitive(line, "messages")))
        rc = render_chat(g, v, j);
    else
        fprintf(stderr, "moeserve: %s:%d: needs \"prompt\", \"prompt_ids\" or \"messages\"\n", g->o.prompt_file,
                lineno);
    if (!rc) rc = line_sampling(line, j);
    cJSON_Delete(line);
    return rc;
}

static int load_prompt_file(struct gen_ctx *g)
{
    FILE *f = fopen(g->o.prompt_file, "r");
    if (!f) {
        fprintf(stderr, "moeserve: cannot open %s\n", g->o.prompt_file);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    int cap_jobs = 0, lineno = 0, rc = 0;
    while (!rc && getline(&line, &cap, f) >= 0) {
        lineno++;
        if (strspn(line, " \t\r\n") == strlen(line)) continue;
        if (g->n_jobs == cap_jobs) {
            cap_jobs = cap_jobs ? cap_jobs * 2 : 16;
            struct gen_job *grown = realloc(g->jobs, (size_t)cap_jobs * sizeof *grown);
            if (!grown) {
                rc = -1;
                break;
            }
            g->jobs = grown;
        }
        memset(&g->jobs[g->n_jobs], 0, sizeof *g->jobs);
        rc = job_from_line(g, line, lineno, &g->jobs[g->n_jobs++]);
    }
    free(line);
    fclose(f);
    if (!rc && g->n_jobs == 0) {
        fprintf(stderr, "moeserve: %s holds no requests\n", g->o.prompt_file);
        rc = -1;
    }
    return rc;
}

static int build_jobs(struct gen_ctx *g)
{
    if (g->o.prompt_file) return load_prompt_file(g);
    g->jobs = calloc(1, sizeof *g->jobs);
    if (!g->jobs) return -1;
    g->n_jobs = 1;
    struct gen_job *j = &g->jobs[0];
    job_defaults(&g->o, j);
    if (g->o.prompt_ids) return cli_parse_ids("--prompt-ids", g->o.prompt_ids, &j->prompt, &j->p.n_prompt);
    if (g->o.chat) return render_chat(g, g->o.messages, j);
    return encode_text(g, g->o.prompt, j);
}

/* ---------------------------------------------------------------------------------------------
 * Running */

static void print_piece(struct gen_ctx *g, struct tok_stream *ts, int32_t token, bool first)
{
    if (g->o.ids || !ts) {
        printf(first ? "%d" : " %d", token);
    } else {
        const char *text;
        size_t len;
        struct ms_err err;
        if (!tok_stream_push(ts, token, &text, &len, &err)) fwrite(text, 1, len, stdout);
    }
    fflush(stdout);
}

/* Collects a job's events until its final one; streams them to stdout when `live`. */
static void collect(struct gen_ctx *g, struct gen_job *j, bool live)
{
    struct tok_stream *ts = live && g->tok && !g->o.ids ? tok_stream_create(g->tok) : NULL;
    struct stream_event ev;
    for (;;) {
        stream_pop(j->stream, &ev, -1);
        if (ev.finish != FINISH_NONE) break;
        if (j->n_out == j->cap_out) {
            j->cap_out = j->cap_out ? j->cap_out * 2 : 64;
            j->out = realloc(j->out, (size_t)j->cap_out * sizeof *j->out);
            if (!j->out) abort(); /* CLI only: a few bytes per token */
        }
        j->out[j->n_out++] = ev.token;
        if (live) print_piece(g, ts, ev.token, j->n_out == 1);
    }
    if (ts) {
        const char *text;
        size_t len;
        struct ms_err err;
        if (!tok_stream_finish(ts, &text, &len, &err)) fwrite(text, 1, len, stdout);
        tok_stream_destroy(ts);
    }
    if (live) printf("\n");
    j->final = ev;
}

static void print_json_line(struct gen_ctx *g, const struct gen_job *j)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *ids = cJSON_AddArrayToObject(o, "ids");
    for (int i = 0; i < j->n_out; i++) cJSON_AddItemToArray(ids, cJSON_CreateNumber(j->out[i]));
    if (g->tok) {
        char *text = tok_decode(g->tok, j->out, (size_t)j->n_out, NULL);
        cJSON_AddStringToObject(o, "text", text ? text : "");
        free(text);
    }
    cJSON_AddStringToObject(o, "finish_reason", finish_reason_name(j->final.finish));
    cJSON_AddNumberToObject(o, "prompt_tokens", j->final.prompt_tokens);
    cJSON_AddNumberToObject(o, "completion_tokens", j->final.completion_tokens);
    cJSON_AddNumberToObject(o, "cached_tokens", j->final.cached_tokens);
    if (j->final.finish == FINISH_ERROR) cJSON_AddStringToObject(o, "error", j->final.error);
    char *s = cJSON_PrintUnformatted(o);
    puts(s);
    free(s);
    cJSON_Delete(o);
}

static int run_jobs(struct gen_ctx *g)
{
    struct ms_err err = {{0}};
    for (int i = 0; i < g->n_jobs; i++) {
        struct gen_job *j = &g->jobs[i];
        j->p.prompt = j->prompt;
        uint64_t id;
        if (!(j->stream = stream_create())) return -1;
        if (engine_submit(g->engine, &j->p, j->stream, &id, &err)) {
            fprintf(stderr, "moeserve: request %d: %s\n", i + 1, err.msg);
            return -1;
        }
    }
    double t0 = ms_now();
    long produced = 0;
    for (int i = 0; i < g->n_jobs; i++) {
        collect(g, &g->jobs[i], !g->o.prompt_file);
        produced += g->jobs[i].n_out;
        if (g->o.prompt_file) print_json_line(g, &g->jobs[i]);
        if (g->jobs[i].final.finish == FINISH_ERROR)
            fprintf(stderr, "moeserve: request %d failed: %s\n", i + 1, g->jobs[i].final.error);
    }
    double dt = ms_now() - t0;
    fprintf(stderr, "moeserve: %d request(s), %ld tokens generated in %.2f s (%.1f tok/s)\n", g->n_jobs, produced,
            dt, dt > 0 ? produced / dt : 0.0);
    return 0;
}

static void free_ctx(struct gen_ctx *g)
{
    engine_destroy(g->engine);
    for (int i = 0; i < g->n_jobs; i++) {
        struct gen_job *j = &g->jobs[i];
        if (j->stream) stream_release(j->stream);
        free(j->prompt);
        free(j->bias);
        free(j->stop_ids);
        free(j->out);
    }
    free(g->jobs);
    tmpl_free(g->tmpl);
    tok_free(g->tok);
    model_free(g->model);
    cJSON_Delete(g->o.messages);
}

int cmd_generate(int argc, char **argv)
{
    struct gen_ctx g = {0};
    int prc = parse_opts(argc, argv, &g.o);
    if (prc) {
        cJSON_Delete(g.o.messages);
        return prc > 0 ? 0 : 2;
    }
    int rc = 1;
    struct ms_err err = {{0}};
    if (cli_load_model_quant(g.o.model_dir, g.o.quantize, g.o.load_mode, &g.model)) goto out;
    g.tok = cli_load_tokenizer(g.o.model_dir, g.o.tokenizer_dir, &err); /* optional: --prompt-ids with --ids needs none */
    if (!g.tok && (g.o.prompt || g.o.messages || !g.o.ids))
        fprintf(stderr, "moeserve: warning: no tokenizer (%s)\n", err.msg);
    if (build_jobs(&g)) goto out;
    if (engine_config_resolve(&g.o.engine, g.model, &err) ||
        !(g.engine = engine_create(g.model, &g.o.engine, &err))) {
        fprintf(stderr, "moeserve: %s\n", err.msg);
        goto out;
    }
    rc = run_jobs(&g) ? 1 : 0;
out:
    free_ctx(&g);
    return rc;
}
