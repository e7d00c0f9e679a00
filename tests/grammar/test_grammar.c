/* The grammar module: schemas compile or fail naming the keyword; the byte matcher accepts
 * hand-written valid texts and refuses invalid ones; and on states sampled along random walks,
 * the token mask over the real Qwen3 vocabulary equals brute force (each token's bytes fed
 * through the matcher one by one). */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/gram_match.h"
#include "grammar/gram_schema.h"
#include "grammar/gram_vocab.h"
#include "tests/testhelp.h"
#include "tokenizer/tokenizer.h"

static struct gram *compile_text(const char *schema, struct ms_err *err)
{
    cJSON *s = cJSON_Parse(schema);
    if (!s) return NULL;
    struct gram *g = gram_compile_json_schema(s, err);
    cJSON_Delete(s);
    return g;
}

/* 1 if the whole text is accepted and complete, 0 if refused or incomplete */
static int matches(const struct gram *g, const char *text)
{
    static struct gram_state s, scratch;
    gram_state_init(&s, g);
    if (!gram_state_feed_bytes(g, &s, (const uint8_t *)text, (int)strlen(text), &scratch)) return 0;
    return gram_state_complete(g, &s);
}

/* 1 if the text is a viable prefix (every byte accepted) */
static int prefix_ok(const struct gram *g, const char *text)
{
    static struct gram_state s, scratch;
    gram_state_init(&s, g);
    return gram_state_feed_bytes(g, &s, (const uint8_t *)text, (int)strlen(text), &scratch);
}

struct tcase {
    const char *schema;
    const char *good[6];
    const char *bad[6];
};

static const struct tcase CASES[] = {
    {"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"string\"}},"
     "\"required\":[\"a\",\"b\"],\"additionalProperties\":false}",
     {"{\"a\":1,\"b\":\"x\"}", "{ \"a\" : -12 , \"b\" : \"\" }", "{\"a\":0,\"b\":\"\\u00e9\\n\"}", " {\"a\":5,\"b\":\"é\"}\n"},
     {"{\"a\":1}", "{\"b\":\"x\",\"a\":1}", "{\"a\":1.5,\"b\":\"x\"}", "{\"a\":01,\"b\":\"x\"}", "{\"a\":1,\"b\":\"x\",}",
      "{\"a\":1,\"b\":\"x\",\"c\":1}"}},
    {"{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"boolean\"},\"y\":{\"type\":\"null\"}}}",
     {"{}", "{\"x\":true}", "{\"y\":null}", "{\"x\":false,\"y\":null}", "{\"x\":true,\"other\":[1,{\"k\":\"v\"}]}"},
     {"{\"x\":1}", "{\"y\":null,\"x\":true}", "{\"x\":tru}", "{\"x\":true,\"x\":true}"}},
    {"{\"type\":\"array\",\"items\":{\"enum\":[\"red\",\"green\",1,null]},\"minItems\":1,\"maxItems\":2}",
     {"[\"red\"]", "[1,null]", "[ \"green\" , \"red\" ]"},
     {"[]", "[\"blue\"]", "[1,1,1]", "[\"re\"]", "[2]"}},
    {"{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}",
     {"\"ab\"", "\"abc\"", "\"日本\"", "\"\\n\\t\""},
     {"\"a\"", "\"abcd\"", "\"\xff\"", "\"\xc3\"", "\"\\x\""}},
    {"{\"type\":\"integer\",\"minimum\":-5,\"maximum\":120}",
     {"0", "-5", "120", "99", "-1"},
     {"-6", "121", "1000", "-0", "1.0", "00"}},
    {"{\"anyOf\":[{\"type\":\"object\",\"properties\":{\"k\":{\"const\":\"a\"},\"v\":{\"type\":\"number\"}},\"required\":[\"k\",\"v\"],\"additionalProperties\":false},"
     "{\"type\":\"object\",\"properties\":{\"k\":{\"const\":\"b\"},\"w\":{\"type\":\"string\"}},\"required\":[\"k\",\"w\"],\"additionalProperties\":false}]}",
     {"{\"k\":\"a\",\"v\":1.5e3}", "{\"k\":\"b\",\"w\":\"z\"}"},
     {"{\"k\":\"a\",\"w\":\"z\"}", "{\"k\":\"b\",\"v\":1}", "{\"k\":\"c\"}"}},
    {"{\"$schema\":\"http://json-schema.org/draft-07/schema#\",\"$ref\":\"#/definitions/T\",\"definitions\":{\"T\":{\"type\":\"object\","
     "\"properties\":{\"n\":{\"type\":\"integer\"},\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/definitions/T\"}}},"
     "\"required\":[\"n\",\"kids\"],\"additionalProperties\":false}}}",
     {"{\"n\":1,\"kids\":[]}", "{\"n\":1,\"kids\":[{\"n\":2,\"kids\":[{\"n\":3,\"kids\":[]}]}]}"},
     {"{\"n\":1}", "{\"n\":1,\"kids\":[{\"n\":2}]}"}},
    {"{\"type\":\"object\",\"properties\":{\"d\":{\"type\":\"string\",\"format\":\"date\"},\"u\":{\"type\":\"string\",\"format\":\"uuid\"},"
     "\"t\":{\"type\":\"string\",\"format\":\"date-time\"},\"e\":{\"type\":\"string\",\"format\":\"email\"}},\"required\":[\"d\",\"u\",\"t\",\"e\"],\"additionalProperties\":false}",
     {"{\"d\":\"2024-02-28\",\"u\":\"123e4567-e89b-12d3-a456-426614174000\",\"t\":\"2024-12-01T23:59:00Z\",\"e\":\"a@b.cd\"}"},
     {"{\"d\":\"2024-13-01\",\"u\":\"123e4567-e89b-12d3-a456-426614174000\",\"t\":\"2024-12-01T23:59:00Z\",\"e\":\"a@b.cd\"}",
      "{\"d\":\"2024-02-28\",\"u\":\"123e4567\",\"t\":\"2024-12-01T23:59:00Z\",\"e\":\"a@b.cd\"}",
      "{\"d\":\"2024-02-28\",\"u\":\"123e4567-e89b-12d3-a456-426614174000\",\"t\":\"2024-12-01T24:00:00Z\",\"e\":\"a@b.cd\"}",
      "{\"d\":\"2024-02-28\",\"u\":\"123e4567-e89b-12d3-a456-426614174000\",\"t\":\"2024-12-01T23:59:00Z\",\"e\":\"ab.cd\"}"}},
    {"{\"type\":\"object\",\"properties\":{\"zip\":{\"type\":\"string\",\"pattern\":\"^\\\\d{5}(-\\\\d{4})?$\"},"
     "\"tag\":{\"type\":\"string\",\"pattern\":\"[a-z]+x\"},\"fr\":{\"pattern\":\"^[à-ÿ]{2}$\"}},\"required\":[\"zip\",\"tag\"],\"additionalProperties\":false}",
     {"{\"zip\":\"12345\",\"tag\":\"abx\"}", "{\"zip\":\"12345-6789\",\"tag\":\"--abx--\"}", "{\"zip\":\"12345\",\"tag\":\"\\u0061x\"}",
      "{\"zip\":\"12345\",\"tag\":\"\xc3\xa9\\nax\\\"\"}", "{\"zip\":\"00000\",\"tag\":\"ax\",\"fr\":\"\xc3\xa9\\u00e8\"}"},
     {"{\"zip\":\"1234\",\"tag\":\"ax\"}", "{\"zip\":\"12345\",\"tag\":\"x\"}", "{\"zip\":\"123456\",\"tag\":\"ax\"}",
      "{\"zip\":\"12345\",\"tag\":\"\\u0041x\"}", "{\"zip\":\"12345\",\"tag\":\"ax\",\"fr\":\"\xc3\xa9" "e\"}", "{\"zip\":\"1234\\u0035\",\"tag\":\"a\\x\"}"}},
    {"{\"type\":\"string\",\"pattern\":\"[a-z]\",\"minLength\":2,\"maxLength\":4}",
     {"\"ab\"", "\"1a\"", "\"\\u0041b\"", "\"z\xc3\xa9\xc3\xa9\xc3\xa9\"", "\"a\\n\\\"\\\\\""},
     {"\"a\"", "\"12\"", "\"abcde\"", "\"ABC\"", "\"a\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\""}},
    /* a closing quote only past minLength; extra keys of up to GRAM_MAX_FREE_KEY bytes */
    {"{\"type\":\"object\",\"properties\":{\"s\":{\"type\":\"string\",\"minLength\":3,\"maxLength\":20}},"
     "\"required\":[\"s\"],\"additionalProperties\":{\"type\":\"string\"}}",
     {"{\"s\":\"abc\"}", "{\"s\":\"abcdefghijklmnopqrst\",\"k k\":\"\"}", "{\"s\":\"\\\"\\\"\\\"\"}"},
     {"{\"s\":\"ab\"}", "{\"s\":\"abcdefghijklmnopqrstu\"}", "{\"s\":\"abc\",\"k\":1}", "{\"s\":\"abc\",\"\\u0041\":\"\"}"}},
    {"{\"type\":[\"number\",\"null\"],\"description\":\"nullable\",\"default\":null,\"title\":\"x\"}",
     {"1", "-0.5", "null", "3e+10", "0.25E-2"},
     {"nul", "1.", "-", ".5", "1e", "\"1\""}},
};

static void test_cases(void)
{
    for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++) {
        struct ms_err err = {{0}};
        struct gram *g = compile_text(CASES[i].schema, &err);
        test_cond("case schema compiles", g != NULL);
        if (!g) {
            fprintf(stderr, "  case %zu: %s\n", i, err.msg);
            continue;
        }
        for (int k = 0; k < 6 && CASES[i].good[k]; k++) {
            int ok = matches(g, CASES[i].good[k]);
            test_cond("valid text accepted", ok);
            if (!ok) fprintf(stderr, "  case %zu: refused %s\n", i, CASES[i].good[k]);
        }
        for (int k = 0; k < 6 && CASES[i].bad[k]; k++) {
            int ok = matches(g, CASES[i].bad[k]);
            test_cond("invalid text refused", !ok);
            if (ok) fprintf(stderr, "  case %zu: accepted %s\n", i, CASES[i].bad[k]);
        }
        gram_release(g);
    }
}

static void test_errors(void)
{
    static const char *const bad[][2] = {
        {"{\"type\":\"string\",\"pattern\":\"^a(?=b)\"}", "lookahead"},
        {"{\"type\":\"string\",\"pattern\":\"^a+$\",\"format\":\"date\"}", "pattern"},
        {"{\"type\":\"string\",\"pattern\":\"^a{5}$\",\"maxLength\":3}", "matches no text"},
        {"{\"type\":\"string\",\"pattern\":\"[\"}", "never closed"},
        {"{\"oneOf\":[{\"type\":\"string\"}]}", "oneOf"},
        {"{\"type\":\"object\",\"patternProperties\":{}}", "patternProperties"},
        {"{\"$ref\":\"#/$defs/missing\"}", "does not resolve"},
        {"{\"$ref\":\"http://example.com/s.json\"}", "does not resolve"},
        {"{\"type\":\"string\",\"format\":\"ipv4\"}", "ipv4"},
        {"{\"type\":\"wat\"}", "wat"},
        {"{\"$ref\":\"#/$defs/a\",\"$defs\":{\"a\":{\"type\":\"object\",\"properties\":{\"a\":{\"$ref\":\"#/$defs/a\"}},\"required\":[\"a\"]}}}",
         "no finite instance"},
        {"{\"$ref\":\"#/$defs/a\",\"$defs\":{\"a\":{\"$ref\":\"#/$defs/b\"},\"b\":{\"$ref\":\"#/$defs/a\"}}}", "cycle"},
        {"{\"type\":\"array\",\"minItems\":3,\"maxItems\":2}", "minItems"},
        {"{\"type\":\"object\",\"required\":[\"q\"],\"additionalProperties\":false}", "q"},
        {"[1]", "object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct ms_err err = {{0}};
        cJSON *s = cJSON_Parse(bad[i][0]);
        struct gram *g = s ? gram_compile_json_schema(s, &err) : NULL;
        cJSON_Delete(s);
        test_cond("bad schema refused, naming the problem", !g && strstr(err.msg, bad[i][1]));
        if (g || !strstr(err.msg, bad[i][1])) fprintf(stderr, "  %s -> '%s'\n", bad[i][0], err.msg);
        gram_release(g);
    }
}

static void test_choice(void)
{
    struct ms_err err = {{0}};
    const char *texts[] = {"yes", "no", "not sure", "no"};
    struct gram *g = gram_compile_choice(4, texts, &err);
    test_cond("choice compiles", g != NULL);
    if (g) {
        test_cond("each choice", matches(g, "yes") && matches(g, "no") && matches(g, "not sure"));
        test_cond("a prefix of a longer choice is also a choice", prefix_ok(g, "not") && !matches(g, "not"));
        test_cond("nothing else", !prefix_ok(g, "maybe") && !matches(g, "yes ") && !matches(g, "\"yes\"") &&
                                      !matches(g, ""));
        gram_release(g);
    }
    const char *empty[] = {"a", ""};
    test_cond("an empty choice is refused", !gram_compile_choice(2, empty, &err) && strstr(err.msg, "empty"));
    test_cond("no choices is refused", !gram_compile_choice(0, texts, &err));
}

static void test_regex(void)
{
    struct ms_err err = {{0}};
    struct gram *g = gram_compile_regex("(\\d+|none)(, \\d+)*", &err);
    test_cond("regex compiles", g != NULL);
    if (g) {
        test_cond("regex texts", matches(g, "12") && matches(g, "none, 3, 45") && matches(g, "0"));
        test_cond("a viable prefix is not complete", prefix_ok(g, "12, ") && !matches(g, "12, ") && !matches(g, "no"));
        test_cond("nothing else", !prefix_ok(g, "x") && !prefix_ok(g, " 1") && !matches(g, "") && !prefix_ok(g, "1,2"));
        gram_release(g);
    }
    g = gram_compile_regex("(ab)*", &err);
    test_cond("a regex matching the empty text may end at once", g && matches(g, "") && matches(g, "abab") && !matches(g, "aba"));
    gram_release(g);
    test_cond("a bad regex is refused, naming the problem", !gram_compile_regex("a(?<=b)", &err) && strstr(err.msg, "lookbehind"));
    test_cond("a regex that matches nothing is refused", !gram_compile_regex("[^\\s\\S]", &err) && strstr(err.msg, "matches no text"));
}

static void test_json_object_and_tools(void)
{
    struct ms_err err = {{0}};
    struct gram *g = gram_compile_json_object(&err);
    test_cond("json_object compiles", g != NULL);
    if (g) {
        test_cond("object", matches(g, "{\"a\":[1,2,{\"b\":null}],\"c\":\"d\"}"));
        test_cond("not an array", !matches(g, "[1]"));
        test_cond("not a string", !matches(g, "\"x\""));
        gram_release(g);
    }
    cJSON *params = cJSON_Parse("{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"],\"additionalProperties\":false}");
    const char *names[] = {"get_weather", "noop"};
    const cJSON *ps[] = {params, NULL};
    g = gram_compile_tool_call(2, names, ps, &err);
    test_cond("tool call grammar compiles", g != NULL);
    if (g) {
        test_cond("call", matches(g, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"));
        test_cond("other tool", matches(g, "<tool_call>\n{\"name\": \"noop\", \"arguments\": {}}\n</tool_call>"));
        test_cond("unknown tool", !prefix_ok(g, "<tool_call>\n{\"name\": \"nope"));
        test_cond("bad args", !prefix_ok(g, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"town\""));
        test_cond("unterminated", !matches(g, "<tool_call>\n{\"name\": \"noop\", \"arguments\": {}}"));
        gram_release(g);
    }
    cJSON_Delete(params);
}

/* ---- the mask against brute force on the real vocabulary -------------------------------- */

static uint64_t rng = 0x1234567;
static uint32_t next_rand(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng >> 33);
}

static struct gram_vocab *load_vocab(const struct tokenizer *tok, int32_t eos)
{
    int n = (int)tok_vocab_size(tok);
    const char **bytes = calloc((size_t)n, sizeof *bytes);
    size_t *lens = calloc((size_t)n, sizeof *lens);
    uint8_t *kinds = calloc((size_t)n, 1);
    for (int i = 0; i < n; i++) {
        bytes[i] = tok_id_to_bytes(tok, i, &lens[i]);
        const char *piece = tok_id_to_piece(tok, i);
        kinds[i] = i == eos ? GRAM_TOK_END : tok_is_special(tok, i) ? GRAM_TOK_NEVER : GRAM_TOK_TEXT;
        if (piece && (!strcmp(piece, "<tool_call>") || !strcmp(piece, "</tool_call>"))) kinds[i] = GRAM_TOK_TOOL;
        else if (piece && piece[0] == '<' && kinds[i] == GRAM_TOK_TEXT && i >= 151643) kinds[i] = GRAM_TOK_NEVER;
    }
    struct ms_err err = {{0}};
    struct gram_vocab *v = gram_vocab_create(n, bytes, lens, kinds, &err);
    free(bytes);
    free(lens);
    free(kinds);
    return v;
}

/* brute force: is token t allowed in state s? */
/* A random token allowed by `bits`, preferring short ones (a longer one is taken one time in
 * long_odds) so walks get deep; -1 if none is found. */
static int pick_allowed(const struct tokenizer *tok, const uint32_t *bits, int n, uint32_t long_odds)
{
    for (int tries = 0; tries < 200000; tries++) {
        int t = (int)(next_rand() % (uint32_t)n);
        size_t len = 0;
        tok_id_to_bytes(tok, t, &len);
        if ((bits[t >> 5] >> (t & 31) & 1) && (len <= 2 || next_rand() % long_odds == 0)) return t;
    }
    return -1;
}

static int brute(const struct gram *g, const struct tokenizer *tok, const struct gram_state *s, int t, int32_t eos)
{
    static struct gram_state a, b;
    if (t == eos) return gram_state_complete(g, s);
    const char *piece = tok_id_to_piece(tok, t);
    if (tok_is_special(tok, t) || (t >= 151643 && piece && piece[0] == '<' &&
                                   !(g->tool_call && (!strcmp(piece, "<tool_call>") || !strcmp(piece, "</tool_call>")))))
        return 0;
    size_t len;
    const char *bytes = tok_id_to_bytes(tok, t, &len);
    if (!bytes || len == 0) return 0;
    gram_state_copy(&a, s);
    return gram_state_feed_bytes(g, &a, (const uint8_t *)bytes, (int)len, &b);
}


/* The mask cache's premise: states with equal keys (gram_state_key) accept the same bytes next
 * and are equally complete. Checked on every pair of states after these texts, chosen where a
 * frame field is easily dropped from the key: \u escapes (the surrogate check reads the first
 * digit), bounded and pattern strings. */
static void test_state_keys(void)
{
    static const struct { const char *schema, *text; } at[] = {
        {"{\"type\":\"string\"}", "\"\\u"},   {"{\"type\":\"string\"}", "\"\\u0"},
        {"{\"type\":\"string\"}", "\"\\uD"},  {"{\"type\":\"string\"}", "\"\\u00"},
        {"{\"type\":\"string\"}", "\"\\uD7"}, {"{\"type\":\"string\"}", "\"\\u0D"},
        {"{\"type\":\"string\"}", "\"a\\u0"}, {"{\"type\":\"string\"}", "\"a\\uD"},
        {"{\"type\":\"string\"}", "\"abc"},   {"{\"type\":\"string\"}", "\"ab"},
        {"{\"type\":\"string\",\"maxLength\":3}", "\"ab"}, {"{\"type\":\"string\",\"maxLength\":3}", "\"a\\uD"},
        {"{\"type\":\"string\",\"maxLength\":3}", "\"a\\u0"}, {"{\"type\":\"string\",\"maxLength\":3}", "\"abc"},
        {"{\"type\":\"string\",\"pattern\":\"^[a-f]+$\"}", "\"\\u00"}, {"{\"type\":\"string\",\"pattern\":\"^[a-f]+$\"}", "\"\\u0"},
        {"{\"type\":\"string\",\"pattern\":\"^[a-f]+$\"}", "\"ab"}, {"{\"type\":\"string\",\"pattern\":\"^[a-f]+$\"}", "\"a"},
    };
    enum { N = sizeof at / sizeof *at };
    static struct gram_state st[N], key_a, key_b, scratch, next;
    struct gram *g[N] = {0};
    int fed = 0, pairs = 0, bad = 0;
    for (int i = 0; i < N; i++) {
        struct ms_err err = {{0}};
        g[i] = compile_text(at[i].schema, &err);
        if (!g[i]) continue;
        gram_state_init(&st[i], g[i]);
        fed += gram_state_feed_bytes(g[i], &st[i], (const uint8_t *)at[i].text, (int)strlen(at[i].text), &scratch);
    }
    test_cond("every key-test text is accepted", fed == N);
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++) {
            if (!g[i] || strcmp(at[i].schema, at[j].schema)) continue; /* keys compare within one grammar */
            size_t la = gram_state_key(g[i], &st[i], &key_a), lb = gram_state_key(g[j], &st[j], &key_b);
            if (la != lb || memcmp(&key_a, &key_b, la)) continue;
            pairs++;
            bool same = gram_state_complete(g[i], &st[i]) == gram_state_complete(g[j], &st[j]);
            for (int b = 0; b < 256 && same; b++)
                same = gram_state_feed(g[i], &st[i], (uint8_t)b, &next) == gram_state_feed(g[j], &st[j], (uint8_t)b, &next);
            if (!same) {
                bad++;
                fprintf(stderr, "  one key for %s and %s (schema %s), which accept different bytes\n", at[i].text,
                        at[j].text, at[i].schema);
            }
        }
    printf("state keys: %d pairs share a key, %d of them accept different bytes\n", pairs, bad);
    test_cond("states with equal keys accept the same bytes", bad == 0);
    for (int i = 0; i < N; i++) gram_release(g[i]);
}
static void test_mask(const struct tokenizer *tok, const struct gram_vocab *v)
{
    int32_t eos = tok_token_id(tok, "<|im_end|>");
    int n = gram_vocab_size(v), words = (n + 31) / 32;
    uint32_t *bits = malloc((size_t)words * sizeof *bits);
    static struct gram_state mirror, scratch;
    int checked = 0, mismatches = 0;
    for (size_t c = 0; c < sizeof CASES / sizeof *CASES + 4; c++) {
        struct ms_err err = {{0}};
        struct gram *g;
        const char *choices[] = {"positive", "negative", "neutral", "日本語", " yes"};
        if (c < sizeof CASES / sizeof *CASES) g = compile_text(CASES[c].schema, &err);
        else if (c == sizeof CASES / sizeof *CASES) g = gram_compile_json_object(&err);
        else if (c == sizeof CASES / sizeof *CASES + 2) g = gram_compile_choice(5, choices, &err);
        else if (c == sizeof CASES / sizeof *CASES + 3)
            g = gram_compile_regex("(Yes|No|[A-Z][a-z]{2,8}( [a-zé]{1,6}){0,3})[.!]?\\n?( \\d{1,3}(\\.\\d{1,3}){3})?", &err);
        else {
            cJSON *p = cJSON_Parse("{\"type\":\"object\",\"properties\":{\"q\":{\"type\":\"string\",\"maxLength\":5}},\"required\":[\"q\"]}");
            const char *nm[] = {"search"};
            const cJSON *ps[] = {p};
            g = gram_compile_tool_call(1, nm, ps, &err);
            cJSON_Delete(p);
        }
        if (!g) continue;
        for (int walkno = 0; walkno < 2; walkno++) {
            struct gram_matcher *m = gram_matcher_create(g, v, &err);
            gram_state_init(&mirror, g);
            for (int step = 0; step < 40; step++) {
                gram_matcher_mask(m, bits);
                int allowed = 0, first_bad = -1;
                for (int t = 0; t < n; t++) {
                    int fast = bits[t >> 5] >> (t & 31) & 1, slow = brute(g, tok, &mirror, t, eos);
                    allowed += fast;
                    if (fast != slow && first_bad < 0) first_bad = t;
                }
                checked++;
                if (first_bad >= 0) {
                    mismatches++;
                    fprintf(stderr, "  case %zu step %d: token %d (%s) differs\n", c, step, first_bad,
                            tok_id_to_piece(tok, first_bad));
                }
                if (allowed == 0) {
                    fprintf(stderr, "  case %zu step %d: empty mask\n", c, step);
                    mismatches++;
                    break;
                }
                int pick = pick_allowed(tok, bits, n, 4);
                if (pick < 0 || pick == eos) break;
                test_cond("accept an allowed token", gram_matcher_accept(m, pick) == 0);
                size_t len;
                const char *b = tok_id_to_bytes(tok, pick, &len);
                gram_state_feed_bytes(g, &mirror, (const uint8_t *)b, (int)len, &scratch);
            }
            gram_matcher_destroy(m);
        }
        gram_release(g);
    }
    printf("mask vs brute force: %d states checked, %d mismatches\n", checked, mismatches);
    test_cond("mask equals brute force on every sampled state", mismatches == 0 && checked > 100);
    free(bits);
}

/* Masks at chosen states against brute force: after a backslash (the escape classes), at and
 * below a string's bounds, near a free key's bound, inside a tool call's string, in each part of
 * an email (the word classes). */
static void test_mask_at(const struct tokenizer *tok, const struct gram_vocab *v)
{
    int32_t eos = tok_token_id(tok, "<|im_end|>");
    int n = gram_vocab_size(v), words = (n + 31) / 32;
    uint32_t *bits = malloc((size_t)words * sizeof *bits);
    static struct gram_state mirror, scratch;
    const char *bounded = "{\"type\":\"object\",\"properties\":{\"s\":{\"type\":\"string\",\"minLength\":3,\"maxLength\":20}},"
                          "\"required\":[\"s\"],\"additionalProperties\":{\"type\":\"string\"}}";
    static const struct { int schema; const char *prefix; } at[] = {
        {0, "{\"a\":1,\"b\":\"x\\"},
        {1, "{\"s\":\"a\\"},
        {1, "{\"s\":\"abcdefghijklmnopqrs\\"},
        {1, "{\"s\":\"abcdefghijklmnopqrs"},
        {1, "{\"s\":\"abcdefghijklmnopqrst"},
        {1, "{\"s\":\"ab"},
        {1, "{\"s\":\"ab\\u00e"},
        {1, "{\"s\":\"abc\",\"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"},
        {2, "\"a\\"},
        {4, "\"ab"},
        {4, "\"a@bcdefghijklmnopqrstuvw"},
        {4, "\"a@b.cde"},
        {4, "\"a1@b"},
        {3, "<tool_call>\n{\"name\": \"search\", \"arguments\": {\"q\": \"ab\\"},
        {3, "<tool_call>\n{\"name\": \"search\", \"arguments\": {\"q\": \"ab"},
    };
    int checked = 0, mismatches = 0;
    for (size_t i = 0; i < sizeof at / sizeof *at; i++) {
        struct ms_err err = {{0}};
        struct gram *g = NULL;
        if (at[i].schema == 0) g = compile_text(CASES[0].schema, &err);
        else if (at[i].schema == 1) g = compile_text(bounded, &err);
        else if (at[i].schema == 2) g = compile_text(CASES[3].schema, &err);
        else if (at[i].schema == 4) g = compile_text("{\"type\":\"string\",\"format\":\"email\"}", &err);
        else {
            cJSON *p = cJSON_Parse("{\"type\":\"object\",\"properties\":{\"q\":{\"type\":\"string\",\"maxLength\":5}},\"required\":[\"q\"]}");
            const char *nm[] = {"search"};
            const cJSON *ps[] = {p};
            g = gram_compile_tool_call(1, nm, ps, &err);
            cJSON_Delete(p);
        }
        int32_t *ids = NULL;
        size_t n_ids = 0;
        struct gram_matcher *m = g ? gram_matcher_create(g, v, &err) : NULL;
        int ok = m && tok_encode(tok, at[i].prefix, strlen(at[i].prefix), 1, &ids, &n_ids, &err) == 0;
        if (ok) gram_state_init(&mirror, g);
        for (size_t k = 0; ok && k < n_ids; k++) {
            size_t len;
            const char *b = tok_id_to_bytes(tok, ids[k], &len);
            ok = gram_matcher_accept(m, ids[k]) == 0 && gram_state_feed_bytes(g, &mirror, (const uint8_t *)b, (int)len, &scratch);
        }
        test_cond("prefix accepted", ok);
        if (ok) {
            gram_matcher_mask(m, bits);
            int first_bad = -1;
            for (int t = 0; t < n && first_bad < 0; t++)
                if ((int)(bits[t >> 5] >> (t & 31) & 1) != brute(g, tok, &mirror, t, eos)) first_bad = t;
            checked++;
            if (first_bad >= 0) {
                mismatches++;
                fprintf(stderr, "  after %s: token %d (%s) differs\n", at[i].prefix, first_bad, tok_id_to_piece(tok, first_bad));
            }
        } else {
            fprintf(stderr, "  prefix %s refused\n", at[i].prefix);
        }
        free(ids);
        gram_matcher_destroy(m);
        gram_release(g);
    }
    printf("mask vs brute force at chosen states: %d checked, %d mismatches\n", checked, mismatches);
    test_cond("mask equals brute force at chosen states", mismatches == 0 && checked == (int)(sizeof at / sizeof *at));
    free(bits);
}

/* The matcher's mask cache returns masks computed for other states with the same canonical key:
 * along long random walks (strings long enough to pass their minimum, keys near their bound,
 * the same states again in later array items), every cached mask must equal a fresh one. */
static void test_cache(const struct tokenizer *tok, const struct gram_vocab *v)
{
    int32_t eos = tok_token_id(tok, "<|im_end|>");
    int n = gram_vocab_size(v), words = (n + 31) / 32;
    uint32_t *cached = malloc((size_t)words * sizeof *cached), *fresh = malloc((size_t)words * sizeof *fresh);
    static const char *const schemas[] = {
        "{\"type\":\"array\",\"items\":{\"type\":\"object\",\"properties\":{\"s\":{\"type\":\"string\",\"minLength\":3},"
        "\"t\":{\"type\":\"string\",\"maxLength\":20},\"n\":{\"type\":\"number\"}},\"required\":[\"s\",\"t\",\"n\"],\"additionalProperties\":false}}",
        "{\"type\":\"object\",\"additionalProperties\":{\"type\":\"array\",\"items\":{\"type\":[\"string\",\"integer\",\"null\"]}}}",
        "{\"type\":\"array\",\"items\":{\"anyOf\":[{\"type\":\"string\",\"minLength\":2,\"maxLength\":4},{\"enum\":[\"abc\",\"abd\",7]},"
        "{\"type\":\"string\",\"format\":\"date\"}]}}",
    };
    int masks = 0, hits_checked = 0, bad = 0;
    for (size_t c = 0; c < sizeof schemas / sizeof *schemas + 2; c++) {
        struct ms_err err = {{0}};
        struct gram *g = c < sizeof schemas / sizeof *schemas ? compile_text(schemas[c], &err)
                         : c == sizeof schemas / sizeof *schemas ? gram_compile_json_object(&err)
                                                                 : compile_text(CASES[0].schema, &err);
        test_cond("cache schema compiles", g != NULL);
        if (!g) continue;
        for (int walkno = 0; walkno < 3; walkno++) {
            struct gram_matcher *m = gram_matcher_create(g, v, &err);
            for (int step = 0; step < 150; step++) {
                gram_matcher_mask(m, cached);
                gram_matcher_mask(m, cached); /* the second is certainly a cache hit */
                gram_matcher_mask_uncached(m, fresh);
                masks++;
                hits_checked++;
                if (memcmp(cached, fresh, (size_t)words * sizeof *fresh)) {
                    bad++;
                    fprintf(stderr, "  cache schema %zu walk %d step %d: cached mask differs\n", c, walkno, step);
                    break;
                }
                int pick = pick_allowed(tok, fresh, n, 8);
                if (pick < 0 || pick == eos) break;
                test_cond("accept an allowed token", gram_matcher_accept(m, pick) == 0);
            }
            gram_matcher_destroy(m);
        }
        gram_release(g);
    }
    printf("mask cache: %d states, cached masks equal fresh ones: %s\n", masks, bad ? "NO" : "yes");
    test_cond("cached masks equal fresh ones", bad == 0 && hits_checked > 500);
    free(cached);
    free(fresh);
}

/* Regex text has its own mask walk (the DFA alone, the matcher only for '"', '\\' and control
 * bytes in a pattern string): along random walks of a guided_regex (with quotes and backslashes
 * as plain text, and a loop the walk revisits) and of pattern strings (a search pattern; one
 * whose quotes, backslashes and non-ASCII come as escapes or raw UTF-8; one with lengths folded
 * in), both the cached and the uncached mask must equal brute force, and most states sampled
 * must be ones that walk takes. */
static void test_mask_regex(const struct tokenizer *tok, const struct gram_vocab *v)
{
    int32_t eos = tok_token_id(tok, "<|im_end|>");
    int n = gram_vocab_size(v), words = (n + 31) / 32;
    uint32_t *cached = malloc((size_t)words * sizeof *cached), *fresh = malloc((size_t)words * sizeof *fresh);
    static struct gram_state mirror, scratch;
    static const char *const schemas[] = {
        NULL, /* the guided_regex below */
        "{\"type\":\"string\",\"pattern\":\"ab+c|[0-9]{2}\"}",
        "{\"type\":\"string\",\"pattern\":\"^[a-z \\\"\\\\\\\\é日\\\\u0001]{0,10}(\\\\d+|x{2,3}\\\\.)+$\"}",
        "{\"type\":\"object\",\"properties\":{\"p\":{\"type\":\"string\",\"pattern\":\"^[A-Z][a-z ]*$\",\"minLength\":3,\"maxLength\":9}},"
        "\"required\":[\"p\"],\"additionalProperties\":false}",
    };
    int checked = 0, in_regex = 0, mismatches = 0;
    for (size_t c = 0; c < sizeof schemas / sizeof *schemas; c++) {
        struct ms_err err = {{0}};
        struct gram *g = schemas[c] ? compile_text(schemas[c], &err)
                                    : gram_compile_regex("(\"[a-z\\\\ ]{0,8}\"|[A-Z]\\w{0,6})(, ?(\\d{1,4}|'[^\\n]{0,5}'))*\\.?", &err);
        test_cond("regex mask grammar compiles", g != NULL);
        if (!g) continue;
        for (int walkno = 0; walkno < 2; walkno++) {
            struct gram_matcher *m = gram_matcher_create(g, v, &err);
            gram_state_init(&mirror, g);
            for (int step = 0; step < 12; step++) {
                const struct gram_regex *re;
                int rs;
                bool in_string;
                in_regex += gram_state_in_regex(g, &mirror, &re, &rs, &in_string);
                gram_matcher_mask_uncached(m, fresh);
                gram_matcher_mask(m, cached);
                gram_matcher_mask(m, cached); /* certainly a cache hit */
                int first_bad = -1, allowed = 0;
                for (int t = 0; t < n; t++) {
                    int slow = brute(g, tok, &mirror, t, eos);
                    allowed += slow;
                    if (((fresh[t >> 5] >> (t & 31) & 1) != (uint32_t)slow || (cached[t >> 5] >> (t & 31) & 1) != (uint32_t)slow) &&
                        first_bad < 0)
                        first_bad = t;
                }
                checked++;
                if (first_bad >= 0) {
                    mismatches++;
                    fprintf(stderr, "  regex case %zu step %d: token %d (%s) differs\n", c, step, first_bad, tok_id_to_piece(tok, first_bad));
                }
                int pick = allowed ? pick_allowed(tok, fresh, n, 4) : -1;
                if (pick < 0 || pick == eos) break;
                test_cond("accept an allowed token", gram_matcher_accept(m, pick) == 0);
                size_t len;
                const char *b = tok_id_to_bytes(tok, pick, &len);
                gram_state_feed_bytes(g, &mirror, (const uint8_t *)b, (int)len, &scratch);
            }
            gram_matcher_destroy(m);
        }
        gram_release(g);
    }
    printf("regex masks vs brute force: %d states checked (%d in regex text), %d mismatches\n", checked, in_regex, mismatches);
    test_cond("regex-text masks (cached and fresh) equal brute force", mismatches == 0 && checked >= 40 && in_regex >= 30);
    free(cached);
    free(fresh);
}

int main(int argc, char **argv)
{
    test_cases();
    test_errors();
    test_json_object_and_tools();
    test_choice();
    test_regex();
    test_state_keys();
    if (argc > 1) {
        struct ms_err err = {{0}};
        struct tokenizer *tok = tok_load(argv[1], &err);
        test_cond("tokenizer loads", tok != NULL);
        struct gram_vocab *v = tok ? load_vocab(tok, tok_token_id(tok, "<|im_end|>")) : NULL;
        test_cond("vocabulary builds", v != NULL);
        if (v) {
            test_mask(tok, v);
            test_cache(tok, v);
            test_mask_at(tok, v);
            test_mask_regex(tok, v);
        }
        gram_vocab_destroy(v);
        tok_free(tok);
    }
    test_report();
}
