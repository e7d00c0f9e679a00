/* tok_load_vocab on small hand-made vocabularies: how each token type maps back (checked against
 * the same vocabulary written as a tokenizer.json and loaded by tok_load_file), and a refusal
 * naming the GGUF key for everything it cannot run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/testhelp.h"
#include "tokenizer/tokenizer.h"

#define S(x) {x, sizeof x - 1}

/* ids: 0 a, 1 b, 2 ab, 3 Ġ (space), 4 <|x|> (control), 5 <y> (user-defined), 6 pad (unused),
 * 7 c, 8 [PAD8] (unused, trailing) */
static struct tok_str tokens[] = {S("a"), S("b"), S("ab"), S("\xc4\xa0"), S("<|x|>"), S("<y>"), S("[PAD6]"), S("c"),
                                  S("[PAD8]")};
static int32_t types[] = {1, 1, 1, 1, 3, 4, 5, 1, 5};
static struct tok_str merges[] = {S("a b")};

static struct tok_vocab base(void)
{
    struct tok_vocab v = {.model = S("gpt2"),
                          .pre = S("qwen2"),
                          .n_tokens = 9,
                          .tokens = tokens,
                          .n_token_type = 9,
                          .token_type = types,
                          .n_merges = 1,
                          .merges = merges,
                          .bos_id = -1,
                          .eos_id = 4,
                          .pad_id = -1,
                          .add_bos = 0,
                          .add_eos = -1};
    return v;
}

/* The same vocabulary as tokenizer.json, as Hugging Face would have it. */
static const char tokenizer_json[] =
    "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,"
    "\"added_tokens\":[{\"id\":4,\"content\":\"<|x|>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,"
    "\"normalized\":false,\"special\":true},{\"id\":5,\"content\":\"<y>\",\"single_word\":false,\"lstrip\":false,"
    "\"rstrip\":false,\"normalized\":false,\"special\":false}],"
    "\"normalizer\":{\"type\":\"NFC\"},"
    "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":"
    "\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| ?[^\\\\s\\\\p{L}\\\\p{N}]+"
    "[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"},\"behavior\":\"Isolated\",\"invert\":false},"
    "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":false,\"use_regex\":false}]},"
    "\"post_processor\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":false,\"use_regex\":false},"
    "\"decoder\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":false,\"use_regex\":false},"
    "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":\"\","
    "\"end_of_word_suffix\":\"\",\"fuse_unk\":false,\"byte_fallback\":false,\"ignore_merges\":false,"
    "\"vocab\":{\"a\":0,\"b\":1,\"ab\":2,\"\xc4\xa0\":3,\"c\":7},\"merges\":[[\"a\",\"b\"]]}}";

static int encodes_to(const struct tokenizer *t, const char *text, int special, const int32_t *want, size_t n_want)
{
    int32_t *ids;
    size_t n;
    struct ms_err err;
    if (tok_encode(t, text, strlen(text), special, &ids, &n, &err)) return 0;
    int ok = n == n_want && (!n || !memcmp(ids, want, n * sizeof *ids));
    free(ids);
    return ok;
}

static void test_mapping(void)
{
    struct ms_err err;
    struct tok_vocab v = base();
    struct tokenizer *t = tok_load_vocab(&v, &err);
    test_cond("small vocabulary loads", t != NULL);
    if (!t) {
        fprintf(stderr, "  %s\n", err.msg);
        return;
    }
    test_cond("trailing unused ids are no tokens", tok_vocab_size(t) == 8);
    test_cond("unused id has no piece", !tok_id_to_piece(t, 6) && !tok_id_to_piece(t, 8));
    test_cond("unused piece is not looked up", tok_token_id(t, "[PAD6]") == -1);
    test_cond("control is special", tok_is_special(t, 4) && tok_token_id(t, "<|x|>") == 4);
    test_cond("user-defined is not special", !tok_is_special(t, 5) && tok_token_id(t, "<y>") == 5);
    test_cond("normal is not special", !tok_is_special(t, 2));
    test_cond("special length", tok_special_len(t, "<|x|>a", 6) == 5 && tok_special_len(t, "<y>", 3) == 0);
    static const int32_t w1[] = {2, 4, 5, 3, 7};
    test_cond("merge, control and user-defined tokens", encodes_to(t, "ab<|x|><y> c", 1, w1, 5));
    static const int32_t w2[] = {5};
    test_cond("specials off: control is text, user-defined still matched", encodes_to(t, "<|x|><y>", 0, w2, 1));

    /* the same vocabulary from tokenizer.json: identical on these texts, both modes */
    const char *path = "tok_vocab_unit.tokenizer.json";
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(tokenizer_json, 1, sizeof tokenizer_json - 1, f);
        fclose(f);
    }
    struct tokenizer *j = tok_load_file(path, &err);
    test_cond("tokenizer.json twin loads", j != NULL);
    if (!j) fprintf(stderr, "  %s\n", err.msg);
    static const char *const texts[] = {"ab<|x|><y> c", "<|x|><y>", "abab c<y>ab", "<|x|", "x|>", "", "ba  a"};
    int same = j && tok_vocab_size(j) == tok_vocab_size(t);
    for (size_t i = 0; j && i < sizeof texts / sizeof *texts; i++)
        for (int sp = 0; sp < 2; sp++) {
            int32_t *a, *b;
            size_t na, nb;
            if (tok_encode(t, texts[i], strlen(texts[i]), sp, &a, &na, &err) ||
                tok_encode(j, texts[i], strlen(texts[i]), sp, &b, &nb, &err)) {
                same = 0;
                continue;
            }
            same &= na == nb && (!na || !memcmp(a, b, na * sizeof *a));
            char *da = tok_decode(t, a, na, NULL), *db = tok_decode(j, b, nb, NULL);
            same &= da && db && !strcmp(da, db);
            free(da);
            free(db);
            free(a);
            free(b);
        }
    for (int32_t id = -1; j && id < 10; id++)
        same &= tok_is_special(t, id) == tok_is_special(j, id) &&
                (!tok_id_to_piece(t, id)) == (!tok_id_to_piece(j, id));
    test_cond("same behaviour as the tokenizer.json twin", same);
    remove(path);
    tok_free(j);
    tok_free(t);

    /* token types read in place from an unaligned array, as in a mapped GGUF */
    static char raw[sizeof types + 1];
    memcpy(raw + 1, types, sizeof types);
    v = base();
    v.token_type = raw + 1;
    t = tok_load_vocab(&v, &err);
    test_cond("unaligned token types", t && tok_vocab_size(t) == 8 && tok_is_special(t, 4) && !tok_is_special(t, 5));
    tok_free(t);

    /* not NUL-terminated strings, an embedded NUL and bytes that are not UTF-8 */
    char buf[] = "abXYZ";
    struct tok_str odd[] = {{buf, 1}, {buf + 1, 1}, {buf, 2}, {"\0z", 2}, {"\xff\xfe", 2}};
    int32_t odd_types[] = {1, 1, 1, 1, 4};
    struct tok_str odd_merge[] = {{"a bXYZ", 3}};
    v = base();
    v.tokens = odd;
    v.token_type = odd_types;
    v.n_tokens = v.n_token_type = 5;
    v.merges = odd_merge;
    v.eos_id = -1;
    t = tok_load_vocab(&v, &err);
    static const int32_t w3[] = {2};
    test_cond("strings are taken by length", t && tok_vocab_size(t) == 5 && encodes_to(t, "ab", 1, w3, 1));
    tok_free(t);
}

static void expect_refusal(const char *what, const struct tok_vocab *v, const char *needle)
{
    struct ms_err err = {0};
    struct tokenizer *t = tok_load_vocab(v, &err);
    int ok = !t && strstr(err.msg, needle) != NULL;
    if (!ok) fprintf(stderr, "  %s: got \"%s\", want \"%s\"\n", what, t ? "(loaded)" : err.msg, needle);
    test_cond(what, ok);
    tok_free(t);
}

static void test_refusals(void)
{
    struct tok_vocab v;
    v = base(), v.model = (struct tok_str)S("llama");
    expect_refusal("model not gpt2", &v, "tokenizer.ggml.model: 'llama'");
    v = base(), v.model = (struct tok_str){NULL, 0};
    expect_refusal("model missing", &v, "tokenizer.ggml.model");
    v = base(), v.pre = (struct tok_str)S("llama-bpe");
    expect_refusal("pre not qwen2", &v, "tokenizer.ggml.pre: 'llama-bpe'");
    v = base(), v.pre = (struct tok_str){NULL, 0};
    expect_refusal("pre missing", &v, "tokenizer.ggml.pre");
    v = base(), v.pre = (struct tok_str){"qwen2\0x", 7};
    expect_refusal("pre with a NUL", &v, "tokenizer.ggml.pre: '(binary)'");
    v = base(), v.token_type = NULL;
    expect_refusal("token_type missing", &v, "tokenizer.ggml.token_type: missing");
    v = base(), v.n_token_type = 8;
    expect_refusal("token_type shorter than tokens", &v, "tokenizer.ggml.token_type: 8 entries for 9 tokens");
    v = base(), v.n_tokens = 0;
    expect_refusal("no tokens", &v, "tokenizer.ggml.tokens: missing or empty");
    v = base(), v.n_tokens = v.n_token_type = (uint64_t)1 << 40;
    expect_refusal("too many tokens", &v, "tokenizer.ggml.tokens: 1099511627776 tokens");
    v = base(), v.add_bos = 1;
    expect_refusal("add_bos_token true", &v, "tokenizer.ggml.add_bos_token");
    v = base(), v.add_eos = 1;
    expect_refusal("add_eos_token true", &v, "tokenizer.ggml.add_eos_token");
    v = base(), v.eos_id = 6;
    expect_refusal("eos id of an unused token", &v, "tokenizer.ggml.eos_token_id: 6 is not a token");
    v = base(), v.bos_id = 9;
    expect_refusal("bos id past the tokens", &v, "tokenizer.ggml.bos_token_id: 9");
    v = base(), v.pad_id = -7;
    expect_refusal("negative pad id", &v, "tokenizer.ggml.padding_token_id: -7");

    int32_t ty[9];
    memcpy(ty, types, sizeof ty);
    v = base(), v.token_type = ty;
    ty[1] = 6;
    expect_refusal("byte type", &v, "tokenizer.ggml.token_type[1]: type 6 (byte)");
    ty[1] = 2;
    expect_refusal("unknown type", &v, "tokenizer.ggml.token_type[1]: type 2 (unknown)");
    ty[1] = 0;
    expect_refusal("type 0", &v, "tokenizer.ggml.token_type[1]: invalid type 0");
    ty[1] = 1;
    for (int i = 0; i < 9; i++) ty[i] = i == 4 ? 3 : 5;
    expect_refusal("no normal token", &v, "tokenizer.ggml.tokens: no normal token");

    struct tok_str tk[9];
    memcpy(tk, tokens, sizeof tk);
    v = base(), v.tokens = tk;
    tk[5] = (struct tok_str){"", 0};
    expect_refusal("empty added token", &v, "tokenizer.ggml.tokens[5]: empty added token");
    tk[5] = (struct tok_str){NULL, 3};
    expect_refusal("token without data", &v, "tokenizer.ggml.tokens[5]: no data");
    tk[5] = (struct tok_str){"x", 70000};
    expect_refusal("token too long", &v, "tokenizer.ggml.tokens[5]: 70000 bytes");

    static const struct {
        const char *what, *merge, *needle;
    } bad_merges[] = {
        {"merge without a space", "ab", "tokenizer.ggml.merges[0]: expected \"left right\""},
        {"merge with two spaces", "a b c", "tokenizer.ggml.merges[0]: expected \"left right\""},
        {"merge of an unknown piece", "a zz", "tokenizer.ggml.merges[0]: 'zz' is not a normal token"},
        {"merge of an added token", "<y> a", "tokenizer.ggml.merges[0]: '<y>' is not a normal token"},
        {"merge of an unused token", "[PAD6] a", "tokenizer.ggml.merges[0]: '[PAD6]' is not a normal token"},
        {"merge whose result is absent", "b a", "tokenizer.ggml.merges[0]: '(their concatenation)'"},
    };
    for (size_t i = 0; i < sizeof bad_merges / sizeof *bad_merges; i++) {
        struct tok_str m = {bad_merges[i].merge, strlen(bad_merges[i].merge)};
        v = base(), v.merges = &m;
        expect_refusal(bad_merges[i].what, &v, bad_merges[i].needle);
    }
    v = base(), v.merges = NULL;
    expect_refusal("merges missing", &v, "tokenizer.ggml.merges: missing");
    v = base(), v.n_merges = 0, v.merges = NULL;
    struct ms_err err;
    struct tokenizer *t = tok_load_vocab(&v, &err);
    test_cond("no merges at all is a valid (if poor) BPE", t != NULL);
    tok_free(t);
}

int main(void)
{
    test_mapping();
    test_refusals();
    test_report();
}
