#include "cli/cli_util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cli_parse_int(const char *flag, const char *text, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < lo || v > hi) {
        fprintf(stderr, "moeserve: %s expects an integer in [%ld, %ld], got '%s'\n", flag, lo, hi, text);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_double(const char *flag, const char *text, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || *end || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "moeserve: %s expects a number in [%g, %g], got '%s'\n", flag, lo, hi, text);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse_ids(const char *flag, const char *text, int32_t **ids, int *n)
{
    size_t cap = 16, count = 0;
    int32_t *out = malloc(cap * sizeof *out);
    const char *p = text;
    while (out && *p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v < 0 || v > INT32_MAX || (*end && *end != ',')) {
            fprintf(stderr, "moeserve: %s expects comma-separated token ids, got '%s'\n", flag, text);
            free(out);
            return -1;
        }
        if (count == cap) {
            int32_t *grown = realloc(out, (cap *= 2) * sizeof *out);
            if (!grown) break;
            out = grown;
        }
        out[count++] = (int32_t)v;
        p = *end ? end + 1 : end;
    }
    if (!out || *p) {
        free(out);
        fprintf(stderr, "moeserve: out of memory parsing %s\n", flag);
        return -1;
    }
    if (count == 0) {
        free(out);
        fprintf(stderr, "moeserve: %s is empty\n", flag);
        return -1;
    }
    *ids = out;
    *n = (int)count;
    return 0;
}

int cli_default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

#include "engine/model/model.h"
#include "engine/model/quant_scheme.h"

int cli_load_model(const char *dir, struct model **out)
{
    return cli_load_model_quant(dir, NULL, NULL, out);
}

int cli_load_model_quant(const char *dir, const char *quantize, const char *load_mode, struct model **out)
{
    struct ms_err err = {{0}};
    struct model_load_opts o = {.show_progress = isatty(2), .threads = cli_default_threads()};
    if (!quantize) quantize = getenv("MOESERVE_QUANTIZE");
    if (quantize && *quantize && strcmp(quantize, "none")) {
        if (!qscheme_by_name(quantize)) {
            fprintf(stderr, "moeserve: --quantize (MOESERVE_QUANTIZE) expects none or one of");
            for (int i = 0; qscheme_at(i); i++) fprintf(stderr, " %s", qscheme_at(i)->name);
            fprintf(stderr, ", got '%s'\n", quantize);
            return -1;
        }
        o.quantize_scheme = quantize;
    }
    const char *mode = load_mode ? load_mode : getenv("MOESERVE_LOAD_MODE");
    if (mode && *mode && strcmp(mode, "copy") && strcmp(mode, "mmap")) {
        fprintf(stderr, "moeserve: --load-mode (MOESERVE_LOAD_MODE) expects copy or mmap, got '%s'\n", mode);
        return -1;
    }
    o.keep_mapping = mode && !strcmp(mode, "mmap");
    const char *bf16 = getenv("MOESERVE_BF16_ACTIVATIONS");
    o.bf16_activations = bf16 && !strcmp(bf16, "1");
    double t0 = ms_now();
    if (model_load_with_opts(dir, &o, out, &err)) {
        fprintf(stderr, "moeserve: %s\n", err.msg);
        return -1;
    }
    const struct model *m = *out;
    fprintf(stderr, "moeserve: loaded %s (%s, %d layers, %s%d experts, %.2f GB mapped%s%s) in %.2f s\n", dir,
            m->cfg.family == MODEL_FAMILY_QWEN3_MOE ? "qwen3_moe" : "qwen3", m->cfg.num_layers,
            m->cfg.num_experts ? "" : "dense, ", m->cfg.num_experts, m->weights->mapped_bytes / 1e9,
            model_is_quantized(m) ? ", weights quantized to " : m->bf16_activations ? ", bf16 activations" : "",
            model_is_quantized(m) ? o.quantize_scheme : "", ms_now() - t0);
    return 0;
}
