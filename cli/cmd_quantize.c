/* moeserve quantize: a Hugging Face checkpoint directory, or a GGUF, -> one GGUF file that llama.cpp loads,
 * under a quantization scheme (engine/model/quant_scheme.h), written tensor by tensor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cli_util.h"
#include "config/model_config.h"
#include "engine/kernels/format.h"
#include "engine/model/gguf.h"
#include "engine/model/gguf_config.h"
#include "engine/model/gguf_export.h"
#include "engine/model/gguf_meta.h"
#include "engine/model/gguf_writer.h"
#include "engine/model/quant_scheme.h"
#include "engine/model/weights.h"

/* Whether this build can write every format scheme s chooses for Qwen3-30B-A3B's shapes (48
 * layers, rows of 2048 or 768, 8 query heads per KV head), for --help's list. */
static bool scheme_available(const struct quant_scheme *s)
{
    const struct qscheme_model m = {48, 8};
    for (int role = QSCHEME_EMBD; role <= QSCHEME_ROUTER; role++)
        for (int layer = 0; layer < m.n_layers; layer++)
            for (int experts = 0; experts < 2; experts++) {
                struct qscheme_tensor t = {(enum qscheme_role)role, experts, 2 + experts, 2048, layer};
                const struct weight_format *f = fmt_by_name(qscheme_choose(s, &t, &m));
                if (!f || !f->quantize_row) return false;
            }
    return true;
}

static void quantize_usage(FILE *out)
{
    fprintf(out,
            "usage: moeserve quantize IN OUT.gguf --type TYPE [--force] [--threads N] [--name NAME]\n"
            "\n"
            "Converts IN, a Hugging Face checkpoint directory (config.json, model.safetensors or\n"
            "model.safetensors.index.json + shards, tokenizer.json, tokenizer_config.json) or a GGUF file\n"
            "(IN.gguf, or the first of NAME-0000i-of-0000N.gguf; any type moeserve reads), into one GGUF\n"
            "file: architecture qwen3moe (qwen3 for a dense model), the hyperparameters, tokenizer and\n"
            "chat template under llama.cpp's names, and the weights in TYPE's per-tensor mix. From a GGUF,\n"
            "its tokenizer.* keys (chat template included) are copied as stored, each tensor is\n"
            "dequantized and quantized again, and one already in the type TYPE gives it is copied as is\n"
            "(re-quantizing a quantized file still adds the new type's error to the old one). Tensors\n"
            "are converted one at a time, so memory stays near one chunk of one tensor; the file is\n"
            "written as OUT.gguf.tmp.PID, fsynced and renamed into place only when complete.\n"
            "\n"
            "options:\n"
            "  --type TYPE   the scheme (required); norms and the router are F32 in every one, and a\n"
            "                row that cannot hold a type's blocks falls back as llama-quantize does\n"
            "                (Q4_K->Q5_0, Q5_K->Q5_1, Q6_K->Q8_0, Q2_K/Q3_K->Q4_0, IQ4_XS->IQ4_NL, then F16):\n");
    for (int i = 0; qscheme_at(i); i++) {
        const struct quant_scheme *s = qscheme_at(i);
        fprintf(out, "      %-10s %s%s\n", s->name, s->summary,
                qscheme_load_only(s)   ? " [at load only]"
                : scheme_available(s) ? ""
                                      : " [not in this build yet]");
    }
    fprintf(out, "                formats this build writes:");
    for (int i = 0; i < TENSOR_DTYPE_COUNT; i++)
        if (fmt_get((enum tensor_dtype)i)->quantize_row && qscheme_ggml_by_name(fmt_get((enum tensor_dtype)i)->name))
            fprintf(out, " %s", fmt_get((enum tensor_dtype)i)->name);
    fprintf(out, "\n");
    fprintf(out,
            "  --force       overwrite OUT.gguf if it exists (default: refuse)\n"
            "  --threads N   quantizing threads (default: the number of cores)\n"
            "  --name NAME   general.name (default: the checkpoint directory's name; a GGUF's own\n"
            "                general.name, else its file name)\n"
            "  --help        this text\n"
            "\n"
            "Progress: a rewritten line on a terminal (tensor i/n, GB written, rate), else one line per\n"
            "tensor. Exit 0 on success, 1 when converting fails, 2 on a usage error.\n");
}

struct progress {
    bool terminal;
    double t0;
};

static void on_progress(void *ctx, const struct gguf_export_plan *p, int ti, uint64_t done, bool tensor_done)
{
    struct progress *pr = ctx;
    const struct gguf_export_tensor *t = &p->t[ti];
    double dt = ms_now() - pr->t0, rate = dt > 0 ? done / 1e9 / dt : 0;
    if (pr->terminal)
        fprintf(stderr, "\rquantize: tensor %d/%d %-28s %-6s %.2f / %.2f GB %.3f GB/s ", ti + 1, p->n, t->name,
                t->type->name, done / 1e9, p->total_bytes / 1e9, rate);
    else if (tensor_done)
        fprintf(stderr, "moeserve quantize: [%d/%d] %s %s, %.3f / %.3f GB written, %.3f GB/s\n", ti + 1, p->n,
                t->name, t->type->name, done / 1e9, p->total_bytes / 1e9, rate);
}

struct quantize_args {
    const char *in, *out, *type, *name;
    bool force;
    long threads;
};

/* 0 ok, 1 done (--help), 2 usage error */
static int parse_args(int argc, char **argv, struct quantize_args *a)
{
    int pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            quantize_usage(stdout);
            return 1;
        }
        if (!strcmp(s, "--force")) {
            a->force = true;
        } else if (!strcmp(s, "--type") || !strcmp(s, "--threads") || !strcmp(s, "--name")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "moeserve quantize: %s needs a value (see moeserve quantize --help)\n", s);
                return 2;
            }
            const char *v = argv[++i];
            if (!strcmp(s, "--type")) a->type = v;
            else if (!strcmp(s, "--name")) a->name = v;
            else if (cli_parse_int("--threads", v, 1, 1024, &a->threads)) return 2;
        } else if (s[0] == '-' && s[1]) {
            fprintf(stderr, "moeserve quantize: unknown option '%s' (see moeserve quantize --help)\n", s);
            return 2;
        } else if (pos < 2) {
            *(pos++ ? &a->out : &a->in) = s;
        } else {
            fprintf(stderr, "moeserve quantize: unexpected argument '%s' (see moeserve quantize --help)\n", s);
            return 2;
        }
    }
    if (!a->in || !a->out || !a->type) {
        fprintf(stderr, "moeserve quantize: IN, OUT.gguf and --type are required (see moeserve quantize --help)\n");
        return 2;
    }
    return 0;
}

/* The checkpoint directory's or the file's name (without .gguf), for general.name. */
static void dir_name(const char *dir, char *out, size_t cap)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && dir[b - 1] != '/') b--;
    if (gguf_config_is_gguf_path(dir) && n - b > 5) n -= 5;
    snprintf(out, cap, "%.*s", (int)(n - b), dir + b);
}

/* A GGUF's configuration comes from its metadata (weights_load parses the header again and
 * keeps the mapping, whose tokenizer keys the output gets). */
static int config_load(struct model_config *cfg, const char *in, char *name, size_t cap, struct ms_err *err)
{
    if (!gguf_config_is_gguf_path(in)) return model_config_load(cfg, in, err);
    struct gguf_file *g;
    int rc = gguf_open(in, &g, err);
    if (rc) return rc;
    rc = gguf_config_read(g, cfg, err);
    struct gguf_str s;
    if (!rc && gguf_key_type(g, "general.name") == GGUF_TYPE_STRING && !gguf_get_str(g, "general.name", &s, NULL) &&
        s.len)
        snprintf(name, cap, "%.*s", (int)s.len, s.ptr);
    gguf_close(g);
    return rc;
}

static int convert(const struct quantize_args *a, const struct quant_scheme *s, struct ms_err *err)
{
    struct model_config cfg;
    struct model_weights *w = NULL;
    struct gguf_export_plan plan = {0};
    struct gguf_w *out = NULL;
    char name[256];
    dir_name(a->in, name, sizeof name);
    int rc = config_load(&cfg, a->in, name, sizeof name, err);
    if (!rc) rc = weights_load(&cfg, a->in, &w, err);
    if (!rc) rc = gguf_export_plan(&cfg, w, s, &plan, err);
    if (!rc) rc = gguf_w_open(a->out, a->force, &out, err);
    const char *gname = a->name ? a->name : name;
    if (!rc && w->gguf) rc = gguf_meta_add_from_gguf(out, &cfg, w->gguf, s, gname, err);
    else if (!rc) rc = gguf_meta_add(out, &cfg, a->in, s, gname, err);
    struct progress pr = {isatty(2), ms_now()};
    if (!rc) rc = gguf_export_write(&plan, out, (int)a->threads, on_progress, &pr, err);
    if (pr.terminal && plan.n) fprintf(stderr, "\n");
    if (!rc) {
        uint64_t bytes = gguf_w_bytes_written(out);
        rc = gguf_w_finish(out, err);
        out = NULL;
        if (!rc)
            fprintf(stderr, "moeserve quantize: wrote %s: %s %s, %d tensors, %.3f GB in %.1f s\n", a->out,
                    gguf_meta_arch(&cfg), s->name, plan.n, bytes / 1e9, ms_now() - pr.t0);
    }
    gguf_w_abort(out);
    gguf_export_plan_free(&plan);
    weights_free(w);
    return rc;
}

int cmd_quantize(int argc, char **argv)
{
    struct quantize_args a = {.threads = cli_default_threads()};
    int r = parse_args(argc, argv, &a);
    if (r) return r == 1 ? 0 : 2;
    const struct quant_scheme *s = qscheme_by_name(a.type);
    if (!s) {
        fprintf(stderr, "moeserve quantize: unknown --type '%s' (one of:", a.type);
        for (int i = 0; qscheme_at(i); i++) fprintf(stderr, " %s", qscheme_at(i)->name);
        fprintf(stderr, ")\n");
        return 2;
    }
    if (qscheme_load_only(s)) {
        fprintf(stderr, "moeserve quantize: --type %s is a load-time scheme (serve --quantize %s): ggml has no type "
                        "for its formats that this build writes\n", s->name, s->name);
        return 2;
    }
    struct ms_err err = {{0}};
    if (convert(&a, s, &err)) {
        fprintf(stderr, "moeserve quantize: %s\n", err.msg);
        return 1;
    }
    return 0;
}
