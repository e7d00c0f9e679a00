/* tok_load on malformed or unsupported tokenizer.json files: each must fail with a message that
 * names the field. Also checks that a small well-formed file loads and encodes. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testhelp.h"
#include "tokenizer/tokenizer.h"

#define RE "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+"

static const char *NORM = "{\"type\":\"NFC\"}";
static const char *PRE = "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"" RE
                         "\"},\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
                         "\"trim_offsets\":false,\"use_regex\":false}]}";
static const char *DEC = "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":false,\"use_regex\":false}";
static const char *ADDED = "[{\"id\":4,\"content\":\"<x>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"
                           "\"normalized\":false,\"special\":true}]";
static const char *MODEL = "{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":\"\","
                           "\"end_of_word_suffix\":\"\",\"fuse_unk\":false,\"byte_fallback\":false,\"ignore_merges\":false,"
                           "\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"Ġ\":3},\"merges\":[[\"a\",\"b\"]]}";

static char dir[256];

static int write_file(const char *text)
{
    char path[300];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    fclose(f);
    return 0;
}

static char *make(const char *added, const char *norm, const char *pre, const char *dec, const char *model,
                  const char *extra)
{
    static char buf[8192];
    snprintf(buf, sizeof buf,
             "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":%s,\"normalizer\":%s,"
             "\"pre_tokenizer\":%s,\"post_processor\":null,\"decoder\":%s,\"model\":%s%s}",
             added, norm, pre, dec, model, extra);
    return buf;
}

/* Loading `text` must fail with a message containing `needle`. */
static void expect_fail(const char *what, const char *text, const char *needle)
{
    struct ms_err err;
    err.msg[0] = 0;
    if (write_file(text)) {
        test_cond("write temp file", 0);
        return;
    }
    struct tokenizer *t = tok_load(dir, &err);
    int ok = !t && (!needle || strstr(err.msg, needle));
    if (!ok) fprintf(stderr, "%s: got '%s'\n", what, t ? "(loaded)" : err.msg);
    else printf("%-34s -> %s\n", what, err.msg);
    test_cond(what, ok);
    tok_free(t);
}

static char *replace(const char *s, const char *from, const char *to)
{
    static char buf[8192];
    const char *p = strstr(s, from);
    if (!p) return NULL;
    snprintf(buf, sizeof buf, "%.*s%s%s", (int)(p - s), s, to, p + strlen(from));
    return buf;
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/tok_malformed.%d", (int)getpid());
    if (mkdir(dir, 0700) && errno != EEXIST) {
        perror(dir);
        return 1;
    }

    /* The well-formed base. */
    struct ms_err err;
    write_file(make(ADDED, NORM, PRE, DEC, MODEL, ""));
    struct tokenizer *t = tok_load(dir, &err);
    test_cond("small well-formed file loads", t != NULL);
    if (!t) fprintf(stderr, "base: %s\n", err.msg);
    if (t) {
        int32_t *ids;
        size_t n;
        test_cond("encodes with its merge", !tok_encode(t, "ab<x>a", 6, 1, &ids, &n, &err) && n == 3 && ids[0] == 2 &&
                                                 ids[1] == 4 && ids[2] == 0);
        free(ids);
        test_cond("vocab size counts added tokens", tok_vocab_size(t) == 5);
        tok_free(t);
    }

    expect_fail("bad JSON", "{\"model\": {\"type\": \"BPE\",", "invalid JSON");
    expect_fail("not an object", "[1,2]", "expected an object");
    expect_fail("missing model.merges", make(ADDED, NORM, PRE, DEC, replace(MODEL, ",\"merges\":[[\"a\",\"b\"]]", ""), ""), "model.merges: missing");
    expect_fail("missing model.vocab",
                make(ADDED, NORM, PRE, DEC, replace(MODEL, "\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"Ġ\":3},", ""), ""), "model.vocab: missing");
    expect_fail("missing model", "{\"normalizer\":null}", "model: missing");
    expect_fail("unknown normalizer type", make(ADDED, "{\"type\":\"Lowercase\"}", PRE, DEC, MODEL, ""), "normalizer.type");
    expect_fail("normalizer without type", make(ADDED, "{\"kind\":\"NFC\"}", PRE, DEC, MODEL, ""),
                "normalizer.type");
    expect_fail("unknown top-level field", make(ADDED, NORM, PRE, DEC, MODEL, ",\"extra\":1"),
                "tokenizer.extra: unknown field");
    expect_fail("unknown model field", make(ADDED, NORM, PRE, DEC, replace(MODEL, "\"dropout\"", "\"dropoutt\""), ""), "model.dropoutt: unknown field");
    expect_fail("merge of unknown token", make(ADDED, NORM, PRE, DEC, replace(MODEL, "[[\"a\",\"b\"]]", "[[\"a\",\"zz\"]]"), ""), "model.merges[0]: token 'zz'");
    expect_fail("malformed merge", make(ADDED, NORM, PRE, DEC, replace(MODEL, "[[\"a\",\"b\"]]", "[[\"a\"]]"), ""), "model.merges[0]");
    expect_fail("legacy merge string with no space", make(ADDED, NORM, PRE, DEC, replace(MODEL, "[[\"a\",\"b\"]]", "[\"ab\"]"), ""), "model.merges[0]");
    expect_fail("vocab id not an integer", make(ADDED, NORM, PRE, DEC, replace(MODEL, "\"a\":0", "\"a\":\"zero\""), ""), "model.vocab[\"a\"]");
    expect_fail("model type WordPiece", make(ADDED, NORM, PRE, DEC, replace(MODEL, "\"BPE\"", "\"WordPiece\""), ""), "model.type");
    expect_fail("byte_fallback true", make(ADDED, NORM, PRE, DEC, replace(MODEL, "\"byte_fallback\":false", "\"byte_fallback\":true"), ""), "model.byte_fallback");
    expect_fail("other pre-tokenizer regex", make(ADDED, NORM, replace(PRE, "\\\\s+(?!\\\\S)|", ""), DEC, MODEL, ""), "pre_tokenizer.pretokenizers[0].pattern.Regex");
    expect_fail("pre-tokenizer missing", make(ADDED, NORM, "null", DEC, MODEL, ""), "pre_tokenizer");
    expect_fail("decoder not ByteLevel", make(ADDED, NORM, PRE, "{\"type\":\"WordPiece\"}", MODEL, ""),
                "decoder.type");
    expect_fail("added token without content", make("[{\"id\":4,\"special\":true}]", NORM, PRE, DEC, MODEL, ""), "added_tokens[0].content");
    expect_fail("added token flag not a boolean",
                make(replace(ADDED, "\"lstrip\":false", "\"lstrip\":3"), NORM, PRE, DEC, MODEL, ""),
                "added_tokens[0].lstrip");
    expect_fail("added token unknown field", make(replace(ADDED, "\"lstrip\"", "\"lstripp\""), NORM, PRE, DEC, MODEL, ""), "added_tokens[0].lstripp: unknown field");
    expect_fail("truncation set", replace(make(ADDED, NORM, PRE, DEC, MODEL, ""), "\"truncation\":null", "\"truncation\":{}"), "truncation");

    /* A directory without tokenizer.json. */
    char path[300];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    unlink(path);
    t = tok_load(dir, &err);
    test_cond("missing file", !t && strstr(err.msg, "tokenizer.json"));
    if (!t) printf("%-34s -> %s\n", "missing file", err.msg);
    rmdir(dir);
    test_report();
}
