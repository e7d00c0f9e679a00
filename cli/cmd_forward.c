/* moeserve forward: the logits of every prompt position, as raw float32 [n_tokens, vocab].
 * It exists so that tests can compare the engine with the numpy reference. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cli_util.h"
#include "engine/model/kv_cache.h"
#include "engine/model/model.h"

static const char forward_help[] =
    "usage: moeserve forward --model DIR (--prompt-ids 1,2,3 | --prompt-ids-file F) --out FILE [--threads N]\n"
    "\n"
    "Runs the prompt through the model once and writes the logits of every position to FILE as\n"
    "little-endian float32, shape [n_tokens, vocab_size]. Used by the reference tests and\n"
    "bench/quant_e2e.py.\n"
    "\n"
    "  --model DIR        Hugging Face model directory (config.json, *.safetensors), or FILE.gguf\n"
    "  --prompt-ids LIST  comma-separated token ids\n"
    "  --prompt-ids-file F  one prompt per line (comma-separated ids), each run alone from\n"
    "                     position 0 after one model load; FILE holds their logits one after\n"
    "                     the other\n"
    "  --out FILE         where to write the logits\n"
    "  --threads N        compute threads (default: number of cores)\n"
    "  --kv-cache-dtype T f32 (default), bf16 or f16: storage of the K/V the attention reads\n"
    "  --quantize TYPE    convert the weights at load: q8_0 (matmul weights), or a `moeserve quantize`\n"
    "                     scheme (q4_k_m, q6_k, ...: see quantize --help), or nvfp4 or hif4\n"
    "                     (4-bit floats, load only) (env MOESERVE_QUANTIZE)\n";

/* The prompts of --prompt-ids or of each non-empty line of --prompt-ids-file: ids[k], n[k]. */
struct prompts {
    int count, max_n;
    int32_t **ids;
    int *n;
};

static void prompts_free(struct prompts *p)
{
    for (int k = 0; k < p->count; k++) free(p->ids[k]);
    free(p->ids);
    free(p->n);
}

static int prompts_add(struct prompts *p, const char *flag, const char *text)
{
    int32_t **ids = realloc(p->ids, (size_t)(p->count + 1) * sizeof *ids);
    if (ids) p->ids = ids;
    int *n = realloc(p->n, (size_t)(p->count + 1) * sizeof *n);
    if (n) p->n = n;
    if (!ids || !n) {
        fprintf(stderr, "moeserve forward: out of memory reading the prompts\n");
        return 1;
    }
    if (cli_parse_ids(flag, text, &p->ids[p->count], &p->n[p->count])) return 2;
    if (p->n[p->count] > p->max_n) p->max_n = p->n[p->count];
    p->count++;
    return 0;
}

static int prompts_read(struct prompts *p, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "moeserve forward: cannot read --prompt-ids-file %s\n", path);
        return 2;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0, lineno = 0;
    while (!rc && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ')) line[--len] = 0;
        if (!len) continue;
        char flag[64];
        snprintf(flag, sizeof flag, "--prompt-ids-file line %d", lineno);
        rc = prompts_add(p, flag, line);
    }
    free(line);
    fclose(f);
    if (!rc && !p->count) {
        fprintf(stderr, "moeserve forward: --prompt-ids-file %s holds no prompt\n", path);
        rc = 2;
    }
    return rc;
}

/* One prompt alone (one sequence from position 0, blocks 0.. of kv), its logits appended to f. */
static int forward_prompt(struct model *m, struct model_scratch *scratch, struct kv_cache *kv, struct threadpool *tp,
                          const int32_t *ids, int n, float *logits, int32_t *pos, int32_t *seq, const int32_t *table,
                          FILE *f, const char *out_path)
{
    struct ms_err err = {{0}};
    for (int i = 0; i < n; i++) {
        pos[i] = i;
        seq[i] = 0;
    }
    const int32_t *tables[1] = {table};
    /* row i of the output is token i; slot i is position i */
    struct fwd_batch batch = {n, ids, pos, pos, seq, 1, tables, n, pos};
    if (model_forward(m, scratch, kv, tp, &batch, logits, &err)) {
        fprintf(stderr, "moeserve: %s\n", err.msg);
        return 1;
    }
    size_t count = (size_t)n * (size_t)m->cfg.vocab_size;
    if (fwrite(logits, sizeof *logits, count, f) != count) {
        fprintf(stderr, "moeserve: cannot write %s\n", out_path);
        return 1;
    }
    return 0;
}

int cmd_forward(int argc, char **argv)
{
    const char *model_dir = NULL, *ids_text = NULL, *ids_file = NULL, *out_path = NULL, *quantize = NULL;
    long threads = cli_default_threads();
    enum tensor_dtype kv_dtype = TENSOR_DTYPE_F32;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(forward_help, stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "moeserve forward: unknown option or missing value: %s\n", a);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--model")) model_dir = v;
        else if (!strcmp(a, "--prompt-ids")) ids_text = v;
        else if (!strcmp(a, "--prompt-ids-file")) ids_file = v;
        else if (!strcmp(a, "--out")) out_path = v;
        else if (!strcmp(a, "--quantize")) quantize = v;
        else if (!strcmp(a, "--kv-cache-dtype")) {
            if (kv_cache_parse_dtype(v, &kv_dtype)) {
                fprintf(stderr, "moeserve forward: --kv-cache-dtype expects f32, bf16 or f16, got '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--threads")) {
            if (cli_parse_int(a, v, 1, 1024, &threads)) return 2;
        } else {
            fprintf(stderr, "moeserve forward: unknown option %s (see --help)\n", a);
            return 2;
        }
    }
    if (!model_dir || !out_path || !ids_text == !ids_file) {
        fprintf(stderr, "moeserve forward: --model, --out and one of --prompt-ids or --prompt-ids-file are required "
                        "(see --help)\n");
        return 2;
    }
    struct prompts p = {0};
    int rc = ids_file ? prompts_read(&p, ids_file) : prompts_add(&p, "--prompt-ids", ids_text);
    if (rc) {
        prompts_free(&p);
        return rc;
    }

    rc = 1;
    const int n = p.max_n;
    struct ms_err err = {{0}};
    struct model *m = NULL;
    struct threadpool *tp = NULL;
    struct model_scratch *scratch = NULL;
    struct kv_cache *kv = NULL;
    float *logits = NULL;
    int32_t *pos = NULL, *seq = NULL, *table = NULL;
    FILE *f = NULL;
    if (cli_load_model_quant(model_dir, quantize, NULL, &m)) goto out;
    /* one sequence in one batch: blocks 0..n/bs in order, every row's logits wanted */
    const int bs = 16, blocks = (n + bs - 1) / bs;
    const struct model_config *c = &m->cfg;
    if (!(tp = tp_create((int)threads, model_scratch_floats(m, n), &err)) ||
        !(scratch = model_scratch_create(m, n, &err)) ||
        !(kv = kv_cache_create(c->num_layers, blocks, bs, c->num_kv_heads, c->head_dim, kv_dtype, &err))) {
        fprintf(stderr, "moeserve: %s\n", err.msg);
        goto out;
    }
    logits = malloc((size_t)n * (size_t)c->vocab_size * sizeof *logits);
    pos = malloc((size_t)n * sizeof *pos);
    seq = malloc((size_t)n * sizeof *seq);
    table = malloc((size_t)blocks * sizeof *table);
    if (!logits || !pos || !seq || !table) {
        fprintf(stderr, "moeserve: out of memory for %d x %d logits\n", n, c->vocab_size);
        goto out;
    }
    for (int b = 0; b < blocks; b++) table[b] = b;
    if (!(f = fopen(out_path, "wb"))) {
        fprintf(stderr, "moeserve: cannot write %s\n", out_path);
        goto out;
    }
    for (int k = 0; k < p.count; k++)
        if (forward_prompt(m, scratch, kv, tp, p.ids[k], p.n[k], logits, pos, seq, table, f, out_path)) goto out;
    rc = 0;
out:
    if (f && fclose(f) && rc == 0) {
        fprintf(stderr, "moeserve: cannot write %s\n", out_path);
        rc = 1;
    }
    free(logits);
    free(pos);
    free(seq);
    free(table);
    kv_cache_destroy(kv);
    model_scratch_destroy(scratch);
    tp_destroy(tp);
    model_free(m);
    prompts_free(&p);
    return rc;
}
