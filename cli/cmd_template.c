/* moeserve template: render a model's chat template for one JSON request read from stdin. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "tokenizer/chat_template.h"
#include "cli/cli_model.h"

static void template_usage(FILE *out)
{
    fprintf(out,
            "usage: moeserve template --model DIR < request.json\n"
            "\n"
            "Reads one JSON object from stdin and writes the rendered prompt to stdout exactly\n"
            "(no newline added), as transformers' apply_chat_template(tokenize=False) would:\n"
            "  {\"messages\": [...],              required\n"
            "   \"tools\": [...],                 optional list of {\"type\":\"function\",...}\n"
            "   \"add_generation_prompt\": true,  optional, default false\n"
            "   \"chat_template_kwargs\": {...}}  optional extra template variables,\n"
            "                                   e.g. {\"enable_thinking\": false}\n"
            "The template is DIR/chat_template.jinja if present, else the chat_template of\n"
            "DIR/tokenizer_config.json. Errors print one line on stderr and exit 1.\n"
            "\n"
            "options:\n"
            "  --model DIR   model directory, or a FILE.gguf (its tokenizer.chat_template)\n"
            "  --tokenizer DIR  take the template from DIR instead (env MOESERVE_TOKENIZER)\n"
            "  --help        this text\n");
}

static char *read_stdin(size_t *len)
{
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    for (;;) {
        if (cap - n < 4096) {
            char *p = realloc(buf, cap * 2);
            if (!p) {
                free(buf);
                return NULL;
            }
            buf = p;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, stdin);
        n += got;
        if (got == 0) break;
    }
    if (ferror(stdin)) {
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

static int fail(const char *msg)
{
    fprintf(stderr, "moeserve template: %s\n", msg);
    return 1;
}

int cmd_template(int argc, char **argv)
{
    const char *model = NULL, *tokenizer_dir = getenv("MOESERVE_TOKENIZER");
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            template_usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--model") && i + 1 < argc) {
            model = argv[++i];
        } else if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc) {
            tokenizer_dir = argv[++i];
        } else {
            fprintf(stderr, "moeserve template: unknown or incomplete option '%s' (see --help)\n",
                    argv[i]);
            return 2;
        }
    }
    if (!model) {
        fprintf(stderr, "moeserve template: --model DIR is required (see --help)\n");
        return 2;
    }
    struct ms_err err;
    struct chat_template *t = cli_load_template(model, tokenizer_dir, &err);
    if (!t) return fail(err.msg);
    size_t len;
    char *text = read_stdin(&len);
    if (!text) {
        tmpl_free(t);
        return fail("cannot read stdin");
    }
    int rc = 1;
    cJSON *req = tmpl_json_parse(text, len, &err);
    free(text);
    if (!req) {
        char msg[600];
        snprintf(msg, sizeof msg, "stdin: %s", err.msg);
        rc = fail(msg);
        goto out;
    }
    if (!cJSON_IsObject(req)) {
        rc = fail("stdin: expected a JSON object");
        goto out;
    }
    const cJSON *messages = cJSON_GetObjectItemCaseSensitive(req, "messages");
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(req, "tools");
    const cJSON *agp = cJSON_GetObjectItemCaseSensitive(req, "add_generation_prompt");
    const cJSON *kwargs = cJSON_GetObjectItemCaseSensitive(req, "chat_template_kwargs");
    if (!cJSON_IsArray(messages)) {
        rc = fail("stdin: \"messages\" missing or not an array");
        goto out;
    }
    if (tools && !cJSON_IsArray(tools) && !cJSON_IsNull(tools)) {
        rc = fail("stdin: \"tools\" must be an array");
        goto out;
    }
    if (agp && !cJSON_IsBool(agp)) {
        rc = fail("stdin: \"add_generation_prompt\" must be a boolean");
        goto out;
    }
    if (kwargs && !cJSON_IsObject(kwargs) && !cJSON_IsNull(kwargs)) {
        rc = fail("stdin: \"chat_template_kwargs\" must be an object");
        goto out;
    }
    char *prompt;
    size_t plen;
    if (tmpl_render_len(t, messages, cJSON_IsArray(tools) ? tools : NULL, cJSON_IsTrue(agp),
                        cJSON_IsObject(kwargs) ? kwargs : NULL, &prompt, &plen, &err)) {
        rc = fail(err.msg);
        goto out;
    }
    rc = fwrite(prompt, 1, plen, stdout) == plen && fflush(stdout) == 0
             ? 0
             : fail("cannot write stdout");
    free(prompt);
out:
    cJSON_Delete(req);
    tmpl_free(t);
    return rc;
}
