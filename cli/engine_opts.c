#include "cli/engine_opts.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli/cli_util.h"
#include "engine/model/kv_cache.h"

static const struct {
    const char *flag, *env, *help;
} options[] = {
    {"--threads", "MOESERVE_THREADS", "compute threads (default: number of cores)"},
    {"--max-num-seqs", "MOESERVE_MAX_NUM_SEQS", "requests running at once (default 8)"},
    {"--max-num-batched-tokens", "MOESERVE_MAX_NUM_BATCHED_TOKENS",
     "tokens per engine step; long prompts are prefilled in chunks of this size (default 512)"},
    {"--max-model-len", "MOESERVE_MAX_MODEL_LEN",
     "context length in tokens (default: the model's, at most 8192)"},
    {"--kv-cache-memory", "MOESERVE_KV_CACHE_MEMORY",
     "KV cache size, e.g. 4GiB or 512MiB (default: max-model-len x max-num-seqs tokens)"},
    {"--kv-cache-dtype", "MOESERVE_KV_CACHE_DTYPE", "f32 (default), bf16 or f16: 16-bit halves KV memory"},
    {"--block-size", "MOESERVE_BLOCK_SIZE", "tokens per KV block (default 16)"},
    {"--no-prefix-caching", "MOESERVE_NO_PREFIX_CACHING",
     "do not reuse KV blocks of identical prompt prefixes (flag; env: 1)"},
    {"--speculative", "MOESERVE_SPECULATIVE",
     "ngram or off (default): speculative decoding by prompt lookup, for\n"
     "                             requests that do not choose (request field \"speculative\"): tokens\n"
     "                             drafted from n-gram matches in the request's own text are verified\n"
     "                             in one forward; outputs stay exactly the same, faster when text repeats"},
    {"--speculative-tokens", "MOESERVE_SPECULATIVE_TOKENS", "draft tokens a step at most (default 4, 1-16)"},
    {"--speculative-ngram-min", "MOESERVE_SPECULATIVE_NGRAM_MIN", "shortest n-gram a draft matches (default 2)"},
    {"--speculative-ngram-max", "MOESERVE_SPECULATIVE_NGRAM_MAX", "longest n-gram tried first (default 4)"},
};

int engine_opts_parse_bytes(const char *text, size_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || !isfinite(v) || v <= 0) return -1;
    double mult = 1;
    static const struct {
        const char *suffix;
        double mult;
    } units[] = {{"", 1}, {"b", 1}, {"k", 1e3}, {"kb", 1e3}, {"kib", 1024.0}, {"m", 1e6}, {"mb", 1e6},
                 {"mib", 1048576.0}, {"g", 1e9}, {"gb", 1e9}, {"gib", 1073741824.0}, {"t", 1e12},
                 {"tb", 1e12}, {"tib", 1099511627776.0}};
    size_t i = 0;
    for (; i < sizeof units / sizeof units[0]; i++)
        if (!strcasecmp(end, units[i].suffix)) break;
    if (i == sizeof units / sizeof units[0]) return -1;
    mult = units[i].mult;
    if (v * mult > 1e15) return -1;
    *out = (size_t)(v * mult);
    return 0;
}

int engine_opts_parse(struct engine_config *c, const char *flag, const char *v)
{
    long n;
    if (!strcmp(flag, "--threads")) return cli_parse_int(flag, v, 1, 1024, &n) ? -1 : (c->threads = (int)n, 1);
    if (!strcmp(flag, "--max-num-seqs"))
        return cli_parse_int(flag, v, 1, 4096, &n) ? -1 : (c->max_num_seqs = (int)n, 1);
    if (!strcmp(flag, "--max-num-batched-tokens"))
        return cli_parse_int(flag, v, 1, 1 << 20, &n) ? -1 : (c->max_num_batched_tokens = (int)n, 1);
    if (!strcmp(flag, "--max-model-len"))
        return cli_parse_int(flag, v, 2, 1 << 24, &n) ? -1 : (c->max_model_len = (int)n, 1);
    if (!strcmp(flag, "--block-size")) return cli_parse_int(flag, v, 1, 1024, &n) ? -1 : (c->block_size = (int)n, 1);
    if (!strcmp(flag, "--speculative")) {
        if (!strcmp(v, "ngram") || !strcmp(v, "off")) return c->speculative = !strcmp(v, "ngram"), 1;
        fprintf(stderr, "moeserve: %s expects ngram or off, got '%s'\n", flag, v);
        return -1;
    }
    if (!strcmp(flag, "--speculative-tokens"))
        return cli_parse_int(flag, v, 1, 16, &n) ? -1 : (c->spec_tokens = (int)n, 1);
    if (!strcmp(flag, "--speculative-ngram-min"))
        return cli_parse_int(flag, v, 1, 16, &n) ? -1 : (c->spec_ngram_min = (int)n, 1);
    if (!strcmp(flag, "--speculative-ngram-max"))
        return cli_parse_int(flag, v, 1, 16, &n) ? -1 : (c->spec_ngram_max = (int)n, 1);
    if (!strcmp(flag, "--kv-cache-memory")) {
        if (engine_opts_parse_bytes(v, &c->kv_cache_bytes) == 0) return 1;
        fprintf(stderr, "moeserve: %s expects a size such as 4GiB, 512MiB or 1000000000, got '%s'\n", flag, v);
        return -1;
    }
    if (!strcmp(flag, "--kv-cache-dtype")) {
        if (kv_cache_parse_dtype(v, &c->kv_dtype) == MS_OK) return 1;
        fprintf(stderr, "moeserve: %s expects f32, bf16 or f16, got '%s'\n", flag, v);
        return -1;
    }
    return 0;
}

int engine_opts_from_env(struct engine_config *c)
{
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        const char *v = getenv(options[i].env);
        if (!v || !*v) continue;
        if (!strcmp(options[i].flag, "--no-prefix-caching")) {
            c->prefix_caching = !(strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0);
            continue;
        }
        if (engine_opts_parse(c, options[i].flag, v) < 0) {
            fprintf(stderr, "moeserve: (from environment variable %s)\n", options[i].env);
            return -1;
        }
    }
    return 0;
}

void engine_opts_help(FILE *out)
{
    fprintf(out, "engine options (each also read from the environment variable shown):\n");
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
        fprintf(out, "  %-26s %s\n  %-26s [env %s]\n", options[i].flag, options[i].help, "", options[i].env);
    fprintf(out, "kernels: chosen from the CPU at start (amx, avx512, avx2 or portable; the ready line names\n"
                 "them); MOESERVE_KERNEL_ISA=avx512, avx2 or portable caps the choice.\n"
                 "MOESERVE_BF16_ACTIVATIONS=1: BF16 weights multiply bf16-rounded activations (VDPBF16PS,\n"
                 "faster prefill where the CPU has AVX512_BF16; float32 activations otherwise).\n");
}
