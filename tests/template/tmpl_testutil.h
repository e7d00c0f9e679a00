/* Helpers shared by the chat-template tests: running the jinja2 reference and comparing output. */
#ifndef MS_TMPL_TESTUTIL_H
#define MS_TMPL_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "tokenizer/chat_template.h"

/* Runs `python reference.py ARGS...` (each argument single-quoted); 0 on success. */
static int run_reference(const char *const *argv)
{
    char cmd[8192];
    size_t n = 0;
    for (int i = 0; argv[i]; i++) {
        int w = snprintf(cmd + n, sizeof cmd - n, "%s'%s'", i ? " " : "", argv[i]);
        if (w < 0 || (size_t)w >= sizeof cmd - n || strchr(argv[i], '\'')) return -1;
        n += (size_t)w;
    }
    int rc = system(cmd);
    if (rc != 0) fprintf(stderr, "reference failed (%d): %s\n", rc, cmd);
    return rc;
}

static cJSON *load_json_file(const char *path)
{
    char *text;
    size_t len;
    struct ms_err err;
    if (ms_read_file(path, &text, &len, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return NULL;
    }
    cJSON *j = tmpl_json_parse(text, len, &err);
    if (!j) fprintf(stderr, "%s: %s\n", path, err.msg);
    free(text);
    return j;
}

/* Prints where got and want first differ; returns 1 if equal. */
static int same_output(const char *name, const char *got, size_t got_len, const char *want)
{
    size_t want_len = strlen(want);
    if (got_len == want_len && !memcmp(got, want, want_len)) return 1;
    size_t i = 0;
    while (i < got_len && i < want_len && got[i] == want[i]) i++;
    size_t from = i > 40 ? i - 40 : 0;
    fprintf(stderr, "FAIL %s: outputs differ at byte %zu (got %zu bytes, want %zu)\n", name, i,
            got_len, want_len);
    fprintf(stderr, "  got : ...%.*s<<<HERE>>>%.*s\n", (int)(i - from), got + from,
            (int)(got_len - i < 60 ? got_len - i : 60), got + i);
    fprintf(stderr, "  want: ...%.*s<<<HERE>>>%.*s\n", (int)(i - from), want + from,
            (int)(want_len - i < 60 ? want_len - i : 60), want + i);
    return 0;
}

/* The verdict on one case: C's render (rc, its error, its output) against jinja2's (the expected
 * output, or the error jinja2 raised: then C must fail too). Prints one line; 1 if they agree. */
static int judge_case(const char *name, int rc, const char *c_err, const char *out, size_t len,
                      const cJSON *want, const cJSON *want_err)
{
    if (cJSON_IsString(want_err)) {
        if (rc == 0) {
            fprintf(stderr, "FAIL %s: jinja2 failed (%s) but C rendered '%s'\n", name, want_err->valuestring,
                    out ? out : "");
            return 0;
        }
        printf("ok %s (both fail: C '%s' / jinja2 '%s')\n", name, c_err, want_err->valuestring);
        return 1;
    }
    if (rc) {
        fprintf(stderr, "FAIL %s: C failed: %s\n", name, c_err);
        return 0;
    }
    if (!same_output(name, out, len, want->valuestring)) return 0;
    printf("ok %s (%zu bytes)\n", name, len);
    return 1;
}

#endif
