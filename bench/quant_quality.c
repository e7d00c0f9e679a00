/* Reconstruction error of the weight formats (issue 16, point 3): each format of the registry
 * quantizes and dequantizes the same rows, and we report the relative MSE
 * sum (x - y)^2 / sum x^2, the SQNR -10 log10(relative MSE) in dB, and the bits per value
 * (block_bytes * 8 / block_values) as a Markdown table (docs/QUANTIZATION.md).
 *
 * The rows: N(0,1) and Student-t with 3 degrees of freedom (heavy tails) from a fixed seed, and,
 * with --model, the 2-D weight tensors of a Hugging Face checkpoint's model.safetensors
 * (BF16/F16/F32 as stored), in groups: the experts, the attention projections, the router, the
 * embedding and lm_head; rows are sampled evenly over every tensor of a group up to --values
 * values per group. All sums are in double.
 *
 * usage: bench_quant_quality [--values N] [--seed S] [--cols C] [--model DIR]
 *   defaults: 4194304 values per data set, seed 1, rows of 4096 values. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/ms_common.h"
#include "engine/kernels/format.h"
#include "engine/kernels/tensor.h"
#include "engine/model/safetensors.h"

static const char *const fmt_names[] = {"BF16", "Q8_0", "Q4_0", "Q4_K", "IQ4_XS", "MXFP4", "NVFP4", "HIF4"};
#define N_FMT ((int)(sizeof fmt_names / sizeof fmt_names[0]))

enum { SET_GAUSS, SET_T3, SET_EXPERTS, SET_ATTN, SET_ROUTER, SET_EMBED, N_SET };
static const char *const set_names[N_SET] = {"N(0,1)", "t(3)", "experts", "attention", "router", "embed+lm_head"};

struct err_sum {
    double err; /* sum (x - y)^2 */
    double ref; /* sum x^2 */
    int64_t n;  /* values measured */
};

struct opts {
    int64_t values;
    uint64_t seed;
    int cols;
    const char *model;
};

/* splitmix64: a small, well-mixed generator whose whole state is the caller's. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* uniform in (0, 1): never 0, so the log in Box-Muller stays finite */
static double rng_unit(uint64_t *s) { return ((double)(rng_next(s) >> 11) + 0.5) / 9007199254740992.0; }

static double rng_normal(uint64_t *s)
{
    double u = rng_unit(s), v = rng_unit(s);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

/* Student-t with 3 degrees of freedom: Z / sqrt(chi2_3 / 3), chi2_3 a sum of 3 squared normals. */
static double rng_t3(uint64_t *s)
{
    double z = rng_normal(s), c = 0;
    for (int i = 0; i < 3; i++) {
        double g = rng_normal(s);
        c += g * g;
    }
    return z / sqrt(c / 3.0);
}

/* Quantizes and dequantizes `rows` rows of `cols` values of x with format f, adding to *acc.
 * Returns -1 when cols is not a whole number of blocks or memory runs out (nothing added). */
static int measure(const struct weight_format *f, const float *x, int64_t rows, int cols, struct err_sum *acc)
{
    size_t rb = fmt_row_bytes(f, cols);
    if (rb == 0 || !f->quantize_row) return -1;
    void *q = malloc(rb);
    float *y = malloc((size_t)cols * sizeof *y);
    if (!q || !y) {
        free(q);
        free(y);
        return -1;
    }
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        f->quantize_row(xr, q, cols);
        f->dequant_row(q, y, cols);
        for (int i = 0; i < cols; i++) {
            double d = (double)xr[i] - (double)y[i];
            acc->err += d * d;
            acc->ref += (double)xr[i] * (double)xr[i];
        }
        acc->n += cols;
    }
    free(q);
    free(y);
    return 0;
}

static void measure_all(const float *x, int64_t rows, int cols, struct err_sum acc[N_FMT])
{
    for (int k = 0; k < N_FMT; k++) {
        const struct weight_format *f = fmt_by_name(fmt_names[k]);
        if (f && measure(f, x, rows, cols, &acc[k]) != 0)
            fprintf(stderr, "%s: rows of %d values skipped\n", fmt_names[k], cols);
    }
}

static int synthetic(const struct opts *o, int set, struct err_sum acc[N_FMT])
{
    int64_t rows = o->values / o->cols;
    float *x = malloc((size_t)(rows * o->cols) * sizeof *x);
    if (!x) return -1;
    uint64_t s = o->seed * 1000003u + (uint64_t)set; /* one stream per data set */
    for (int64_t i = 0; i < rows * o->cols; i++) x[i] = (float)(set == SET_GAUSS ? rng_normal(&s) : rng_t3(&s));
    measure_all(x, rows, o->cols, acc);
    free(x);
    return 0;
}

/* The group of a checkpoint tensor, or -1 for tensors no --quantize scheme would touch. */
static int tensor_set(const char *name, const struct tensor *t)
{
    if (t->ndim != 2) return -1;
    if (strstr(name, ".mlp.experts.")) return SET_EXPERTS;
    if (strstr(name, ".self_attn.") && strstr(name, "_proj.weight")) return SET_ATTN;
    if (strstr(name, ".mlp.gate.weight")) return SET_ROUTER;
    if (strstr(name, "embed_tokens") || strstr(name, "lm_head")) return SET_EMBED;
    return -1;
}

/* Rows of one tensor, evenly spaced, `take` of them, as float32 in *buf (grown as needed). */
static int sample_rows(const struct tensor *t, int64_t take, float **buf, size_t *cap)
{
    int64_t rows = t->shape[0], cols = t->shape[1];
    size_t need = (size_t)(take * cols);
    if (need > *cap) {
        float *nb = realloc(*buf, need * sizeof *nb);
        if (!nb) return -1;
        *buf = nb;
        *cap = need;
    }
    for (int64_t i = 0; i < take; i++) tensor_to_f32(t, (i * rows / take) * cols, cols, *buf + i * cols);
    return 0;
}

static int checkpoint(const struct opts *o, struct err_sum acc[N_SET][N_FMT])
{
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", o->model);
    struct ms_err err;
    struct st_file *f = NULL;
    if (st_open(path, &f, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    int64_t in_set[N_SET] = {0};
    for (int i = 0; i < f->n_entries; i++) {
        int s = tensor_set(f->entries[i].name, &f->entries[i].tensor);
        if (s >= 0) in_set[s]++;
    }
    float *buf = NULL;
    size_t cap = 0;
    int rc = 0;
    for (int i = 0; i < f->n_entries && rc == 0; i++) {
        const struct tensor *t = &f->entries[i].tensor;
        int s = tensor_set(f->entries[i].name, t);
        if (s < 0) continue;
        /* an equal share of the group's budget for every tensor, at least one row */
        int64_t take = (o->values / in_set[s] + t->shape[1] - 1) / t->shape[1];
        if (take > t->shape[0]) take = t->shape[0];
        rc = sample_rows(t, take, &buf, &cap);
        if (rc == 0) measure_all(buf, take, (int)t->shape[1], acc[s]);
    }
    free(buf);
    st_close(f);
    return rc;
}

/* One Markdown table: a row per format, a column per data set, of relative MSE (sqnr false) or
 * of SQNR in dB. */
static void print_table(const struct err_sum acc[N_SET][N_FMT], int n_set, int sqnr)
{
    printf("| %s | bits/value |", sqnr ? "SQNR dB" : "relative MSE");
    for (int s = 0; s < n_set; s++) printf(" %s |", set_names[s]);
    printf("\n|---|---:|");
    for (int s = 0; s < n_set; s++) printf("---:|");
    printf("\n");
    for (int k = 0; k < N_FMT; k++) {
        const struct weight_format *f = fmt_by_name(fmt_names[k]);
        if (!f) continue;
        printf("| %s | %.4g |", f->name, (double)f->block_bytes * 8.0 / f->block_values);
        for (int s = 0; s < n_set; s++) {
            const struct err_sum *a = &acc[s][k];
            double r = a->ref > 0 ? a->err / a->ref : 0;
            if (a->n == 0 || a->ref == 0)
                printf(" - |");
            else if (a->err == 0)
                printf(" %s |", sqnr ? "inf" : "0 (exact)");
            else if (sqnr)
                printf(" %.2f |", -10.0 * log10(r));
            else
                printf(" %.4g |", r);
        }
        printf("\n");
    }
    printf("\n");
}

static double rel(const struct err_sum *a) { return a->err / a->ref; }

static int index_of(const char *name)
{
    for (int k = 0; k < N_FMT; k++)
        if (!strcmp(fmt_names[k], name)) return k;
    return -1;
}

static void print_ratios(const struct err_sum acc[N_SET][N_FMT], int n_set)
{
    int h = index_of("HIF4"), nv = index_of("NVFP4"), mx = index_of("MXFP4");
    for (int s = 0; s < n_set; s++) {
        if (acc[s][h].n == 0) continue;
        double vs_nv = 100.0 * (rel(&acc[s][h]) / rel(&acc[s][nv]) - 1.0);
        double vs_mx = 100.0 * (rel(&acc[s][h]) / rel(&acc[s][mx]) - 1.0);
        printf("%s: HIF4 relative MSE %+.1f%% against NVFP4's, %+.1f%% against MXFP4's\n", set_names[s], vs_nv, vs_mx);
    }
}

static int parse(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.values = 1 << 22, .seed = 1, .cols = 4096, .model = NULL};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return -1;
        if (!strcmp(a, "--values")) o->values = strtoll(v, NULL, 10);
        else if (!strcmp(a, "--seed")) o->seed = strtoull(v, NULL, 10);
        else if (!strcmp(a, "--cols")) o->cols = atoi(v);
        else if (!strcmp(a, "--model")) o->model = v;
        else return -1;
        i++;
    }
    /* 256: the largest block of the formats measured (Q4_K, IQ4_XS, NVFP4) */
    return o->cols > 0 && o->cols % 256 == 0 && o->values >= o->cols ? 0 : -1;
}

int main(int argc, char **argv)
{
    struct opts o;
    if (parse(argc, argv, &o) != 0) {
        fprintf(stderr, "usage: %s [--values N] [--seed S] [--cols C (a multiple of 256)] [--model DIR]\n", argv[0]);
        return 2;
    }
    struct err_sum(*acc)[N_FMT] = calloc(N_SET, sizeof *acc);
    if (!acc || synthetic(&o, SET_GAUSS, acc[SET_GAUSS]) != 0 || synthetic(&o, SET_T3, acc[SET_T3]) != 0) {
        fprintf(stderr, "out of memory\n");
        free(acc);
        return 1;
    }
    int n_set = SET_T3 + 1;
    if (o.model) {
        if (checkpoint(&o, acc) != 0) {
            free(acc);
            return 1;
        }
        n_set = N_SET;
    }
    printf("seed %llu, synthetic rows of %d values; values per data set:", (unsigned long long)o.seed, o.cols);
    for (int s = 0; s < n_set; s++) printf(" %s %lld", set_names[s], (long long)acc[s][0].n);
    printf("\n\n");
    print_table(acc, n_set, 0);
    print_table(acc, n_set, 1);
    print_ratios(acc, n_set);
    free(acc);
    return 0;
}
