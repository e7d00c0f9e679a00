/* moeserve tokenize: encode (or decode) JSON lines with the model's tokenizer. */
#include <cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "tokenizer/tokenizer.h"
#include "cli/cli_model.h"

static void tokenize_usage(FILE *out)
{
    fprintf(out,
            "usage: moeserve tokenize --model DIR [--decode]\n"
            "\n"
            "Reads JSON lines from stdin and writes one JSON line per input line to stdout.\n"
            "  encode (default): {\"text\": \"...\", \"special\": true|false} -> {\"ids\": [...]}\n"
            "      special (default true): match special added tokens such as <|im_start|>;\n"
            "      false encodes them as plain text (non-special ones such as <think> still match)\n"
            "  --decode:         {\"ids\": [...]} -> {\"text\": \"...\"}\n"
            "A line that fails gives {\"error\": \"...\"} and the exit code is 1.\n"
            "\n"
            "options:\n"
            "  --model DIR   directory holding tokenizer.json, or a FILE.gguf\n"
            "  --tokenizer DIR  take tokenizer.json from DIR (env MOESERVE_TOKENIZER; for a .gguf\n"
            "                the default is the vocabulary stored in the file)\n"
            "  --decode      decode ids instead of encoding text\n"
            "  --help        this text\n");
}

static int print_error(const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    char *s = cJSON_PrintUnformatted(o);
    if (s) printf("%s\n", s);
    free(s);
    cJSON_Delete(o);
    return 1;
}

/* cJSON ends its strings at U+0000, so a line holding one (raw or as \u0000) would be tokenized cut
 * short: it is refused instead, as the HTTP routes refuse such bodies (oa_body_check). */
static bool holds_nul(const char *s, size_t n)
{
    if (memchr(s, 0, n)) return true;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\') continue;
        if (i + 5 < n && s[i + 1] == 'u' && !memcmp(s + i + 2, "0000", 4)) return true;
        i++; /* the escaped character */
    }
    return false;
}

static int encode_line(const struct tokenizer *tok, const cJSON *in)
{
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(in, "text");
    const cJSON *special = cJSON_GetObjectItemCaseSensitive(in, "special");
    if (!cJSON_IsString(text)) return print_error("\"text\" missing or not a string");
    if (special && !cJSON_IsBool(special)) return print_error("\"special\" must be a boolean");
    int32_t *ids;
    size_t n;
    struct ms_err err;
    if (tok_encode(tok, text->valuestring, strlen(text->valuestring), !special || cJSON_IsTrue(special), &ids,
                   &n, &err))
        return print_error(err.msg);
    fputs("{\"ids\":[", stdout);
    for (size_t i = 0; i < n; i++) printf(i ? ",%d" : "%d", (int)ids[i]);
    fputs("]}\n", stdout);
    free(ids);
    return 0;
}

static int decode_line(const struct tokenizer *tok, const cJSON *in)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(in, "ids");
    if (!cJSON_IsArray(arr)) return print_error("\"ids\" missing or not an array");
    size_t n = (size_t)cJSON_GetArraySize(arr), i = 0;
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids) return print_error("out of memory");
    for (const cJSON *e = arr->child; e; e = e->next, i++) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 2147483647.0) {
            free(ids);
            return print_error("\"ids\" must hold non-negative integers");
        }
        ids[i] = (int32_t)e->valuedouble;
    }
    size_t len;
    char *text = tok_decode(tok, ids, n, &len);
    free(ids);
    if (!text) return print_error("out of memory");
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "text", text);
    char *s = cJSON_PrintUnformatted(o);
    if (s) printf("%s\n", s);
    free(s);
    cJSON_Delete(o);
    free(text);
    return 0;
}

int cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL, *tokenizer_dir = getenv("MOESERVE_TOKENIZER");
    int decode = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            tokenize_usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--model") && i + 1 < argc) {
            model = argv[++i];
        } else if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc) {
            tokenizer_dir = argv[++i];
        } else if (!strcmp(argv[i], "--decode")) {
            decode = 1;
        } else {
            fprintf(stderr, "moeserve tokenize: unknown or incomplete option '%s'\n", argv[i]);
            tokenize_usage(stderr);
            return 2;
        }
    }
    if (!model) {
        fprintf(stderr, "moeserve tokenize: --model DIR is required\n");
        tokenize_usage(stderr);
        return 2;
    }
    struct ms_err err;
    struct tokenizer *tok = cli_load_tokenizer(model, tokenizer_dir, &err);
    if (!tok) {
        fprintf(stderr, "moeserve tokenize: %s\n", err.msg);
        return 1;
    }
    int status = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, stdin)) >= 0) {
        if (got == 0 || (got == 1 && line[0] == '\n')) continue;
        cJSON *in = holds_nul(line, (size_t)got) ? NULL : cJSON_ParseWithLength(line, (size_t)got);
        if (!in && holds_nul(line, (size_t)got))
            status |= print_error("the line holds U+0000 (NUL), which moeserve refuses on every path");
        else if (!in || !cJSON_IsObject(in))
            status |= print_error("input line is not a JSON object");
        else
            status |= decode ? decode_line(tok, in) : encode_line(tok, in);
        cJSON_Delete(in);
        fflush(stdout);
    }
    free(line);
    tok_free(tok);
    return status;
}
