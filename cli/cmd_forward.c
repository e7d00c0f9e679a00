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
    "usage: moeserve forward --model DIR --prompt-ids 1,2,3 --out FILE [--threads N]\n"
    "\n"
    "Runs the prompt through the model once and writes the logits of every position to FILE as\n"
    "little-endian float32, shape [n_tokens, vocab_size]. Used by the reference tests.\n"
    "\n"
    "  --model DIR        Hugging Face model directory (config.json, *.safetensors), or FILE.gguf\n"
    "  --prompt-ids LIST  comma-separated token ids\n"
    "  --out FILE         where to write the logits\n"
    "  --threads N        compute threads (default: number of cores)\n"
    "  --kv-cache-dtype T f32 (default), bf16 or f16: storage of the K/V the attention reads\n"
    "  --quantize TYPE    convert the weights at load: q8_0 (matmul weights), or a `moeserve quantize`\n"
    "                     scheme (q4_k_m, q6_k, ...: see quantize --help),\n"
    "                     or nvfp4 (load only) (env MOESERVE_QUANTIZE)\n";

int cmd_forward(int argc, char **argv)
{
    const char *model_dir = NULL, *ids_text = NULL, *out_path = NULL, *quantize = NULL;
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
    if (!model_dir || !ids_text || !out_path) {
        fprintf(stderr, "moeserve forward: --model, --prompt-ids and --out are required (see --help)\n");
        return 2;
    }
    int32_t *ids = NULL;
    int n = 0;
    if (cli_parse_ids("--prompt-ids", ids_text, &ids, &n)) return 2;

    int rc = 1;
    struct ms_err err = {{0}};
    struct model *m = NULL;
    struct threadpool *tp = NULL;
    struct model_scratch *scratch = NULL;
    struct kv_cache *kv = NULL;
    float *logits = NULL;
    int32_t *pos = NULL, *rows = NULL, *seq = NULL, *table = NULL;
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
    size_t count = (size_t)n * (size_t)c->vocab_size;
    logits = malloc(count * sizeof *logits);
    pos = malloc((size_t)n * sizeof *pos);
    seq = calloc((size_t)n, sizeof *seq);
    table = malloc((size_t)blocks * sizeof *table);
    if (!logits || !pos || !seq || !table) {
        fprintf(stderr, "moeserve: out of memory for %d x %d logits\n", n, c->vocab_size);
        goto out;
    }
    for (int i = 0; i < n; i++) pos[i] = i;
    for (int b = 0; b < blocks; b++) table[b] = b;
    rows = pos; /* row i of the output is token i; slot i is position i */
    const int32_t *tables[1] = {table};
    struct fwd_batch batch = {n, ids, pos, pos, seq, 1, tables, n, rows};
    if (model_forward(m, scratch, kv, tp, &batch, logits, &err)) {
        fprintf(stderr, "moeserve: %s\n", err.msg);
        goto out;
    }
    if (!(f = fopen(out_path, "wb")) || fwrite(logits, sizeof *logits, count, f) != count) {
        fprintf(stderr, "moeserve: cannot write %s\n", out_path);
        goto out;
    }
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
    free(ids);
    return rc;
}
