/* One .gguf is all a user needs: the tokenizer and chat template built from a GGUF's arrays
 * (tok_load_vocab, tmpl_load_gguf; the arrays come from tests/tokenizer/gguf_tokdump.py, which
 * reads a GGUF that tools/make_gguf.py made from a project checkpoint) must behave exactly as
 * tok_load / tmpl_load on that checkpoint's tokenizer.json and tokenizer_config.json, which the
 * tok_corpus and tmpl_conversations tests check against Hugging Face and jinja2.
 *
 *   tok_gguf_check tokenizer MODEL_DIR DUMP CASES...
 *       the whole vocabulary (pieces, bytes, specialness, lookups), then every case text (a JSON
 *       array of strings, or JSON lines {"text": ...} as gen_corpus.js writes) encoded with
 *       special tokens on, off and masked, and decoded; ids, text and errors must be identical
 *   tok_gguf_check template MODEL_DIR DUMP CASES_JSON WORK_DIR
 *       every conversation of CASES_JSON rendered by both templates, byte-identical (or the same
 *       error), and the special-token variables compared through a probe template */
#include <cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/testhelp.h"
#include "tests/tokenizer/tokdump.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc(n > 0 ? (size_t)n + 1 : 1);
    if (buf && n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n > 0 ? n : 0] = 0;
    *len = n > 0 ? (size_t)n : 0;
    return buf;
}

/* ---- tokenizer ------------------------------------------------------------------------------ */

static void check_vocab(const struct tokenizer *a, const struct tokenizer *b)
{
    size_t n = tok_vocab_size(a);
    test_cond("same vocab size", tok_vocab_size(b) == n);
    size_t bad_piece = 0, bad_bytes = 0, bad_special = 0, bad_lookup = 0, n_special = 0, n_added_checked = 0;
    for (size_t i = 0; i < n + 300; i++) { /* and past the end */
        int32_t id = (int32_t)i;
        const char *pa = tok_id_to_piece(a, id), *pb = tok_id_to_piece(b, id);
        if ((!pa) != (!pb) || (pa && strcmp(pa, pb))) bad_piece++;
        size_t la = 0, lb = 0;
        const char *ba = tok_id_to_bytes(a, id, &la), *bb = tok_id_to_bytes(b, id, &lb);
        if ((!ba) != (!bb) || (ba && (la != lb || memcmp(ba, bb, la)))) bad_bytes++;
        if (tok_is_special(a, id) != tok_is_special(b, id)) bad_special++;
        n_special += tok_is_special(a, id);
        if (pa && tok_token_id(a, pa) != tok_token_id(b, pa)) bad_lookup++;
        if (pa && tok_special_len(a, pa, strlen(pa)) != tok_special_len(b, pa, strlen(pa))) bad_lookup++;
        n_added_checked += pa && tok_special_len(a, pa, strlen(pa)) > 0;
    }
    if (bad_piece || bad_bytes || bad_special || bad_lookup)
        fprintf(stderr, "vocab: %zu pieces, %zu byte strings, %zu special flags, %zu lookups differ\n", bad_piece,
                bad_bytes, bad_special, bad_lookup);
    test_cond("every id has the same piece", bad_piece == 0);
    test_cond("every id decodes to the same bytes", bad_bytes == 0);
    test_cond("every id is special or not alike", bad_special == 0);
    test_cond("lookups by piece and special-token lengths agree", bad_lookup == 0);
    test_cond("specials were compared (Qwen3 has 14)", n_special >= 14 && n_added_checked >= 14);
    test_cond("no id for an absent piece", tok_token_id(b, "<nope>") == -1 && tok_token_id(b, "[PAD151700]") == -1);
}

struct texts {
    char **s;
    size_t *len, n, cap;
};

static void texts_add(struct texts *t, const char *s, size_t len)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 256;
        t->s = realloc(t->s, t->cap * sizeof *t->s);
        t->len = realloc(t->len, t->cap * sizeof *t->len);
        if (!t->s || !t->len) abort();
    }
    t->s[t->n] = malloc(len + 1);
    if (!t->s[t->n]) abort();
    memcpy(t->s[t->n], s, len);
    t->s[t->n][len] = 0;
    t->len[t->n++] = len;
}

/* A JSON array of strings, or JSON lines of {"text": ...}. */
static int load_cases(const char *path, struct texts *t)
{
    size_t len;
    char *buf = read_all(path, &len);
    if (!buf) {
        perror(path);
        return -1;
    }
    size_t before = t->n;
    cJSON *arr = buf[0] == '[' ? cJSON_ParseWithLength(buf, len) : NULL;
    if (arr) {
        const cJSON *e;
        cJSON_ArrayForEach (e, arr)
            if (cJSON_IsString(e)) texts_add(t, e->valuestring, strlen(e->valuestring));
        cJSON_Delete(arr);
    } else {
        for (char *line = buf, *nl; line < buf + len; line = nl + 1) {
            nl = memchr(line, '\n', (size_t)(buf + len - line));
            if (!nl) nl = buf + len;
            cJSON *o = cJSON_ParseWithLength(line, (size_t)(nl - line));
            const cJSON *s = cJSON_GetObjectItemCaseSensitive(o, "text");
            if (cJSON_IsString(s)) texts_add(t, s->valuestring, strlen(s->valuestring));
            cJSON_Delete(o);
        }
    }
    free(buf);
    printf("%s: %zu cases\n", path, t->n - before);
    return t->n > before ? 0 : -1;
}

static int same_ids(const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
    return na == nb && (!na || !memcmp(a, b, na * sizeof *a));
}

/* Encodes one text with both tokenizers in `mode` (0: specials off, 1: on, 2: masked where
 * mask_at says), then decodes; 1 if everything agrees. */
static int check_text(const struct tokenizer *a, const struct tokenizer *b, const char *s, size_t len, int mode,
                      size_t case_no)
{
    int32_t *ia = NULL, *ib = NULL;
    size_t na = 0, nb = 0;
    struct ms_err ea = {0}, eb = {0};
    int ra, rb;
    if (mode < 2) {
        ra = tok_encode(a, s, len, mode, &ia, &na, &ea);
        rb = tok_encode(b, s, len, mode, &ib, &nb, &eb);
    } else { /* the second half of the text spelled by a "user": its specials are text */
        uint8_t *mask = calloc(len ? len : 1, 1);
        if (!mask) abort();
        memset(mask + len / 2, 1, len - len / 2);
        ra = tok_encode_masked(a, s, len, mask, &ia, &na, &ea);
        rb = tok_encode_masked(b, s, len, mask, &ib, &nb, &eb);
        free(mask);
    }
    int ok = ra == rb && (ra ? !strcmp(ea.msg, eb.msg) : same_ids(ia, na, ib, nb));
    if (ok && !ra) {
        size_t da_len, db_len;
        char *da = tok_decode(a, ia, na, &da_len), *db = tok_decode(b, ib, nb, &db_len);
        ok = da && db && da_len == db_len && !memcmp(da, db, da_len);
        if (!ok) fprintf(stderr, "case %zu mode %d: decoded text differs\n", case_no, mode);
        free(da);
        free(db);
    } else if (!ok) {
        fprintf(stderr, "case %zu mode %d: ids differ (%zu vs %zu ids, rc %d vs %d) for \"%.80s\"\n", case_no, mode,
                na, nb, ra, rb, s);
    }
    free(ia);
    free(ib);
    return ok;
}

/* Random id sequences (some unknown, some specials) decode alike. */
static int check_random_decodes(const struct tokenizer *a, const struct tokenizer *b)
{
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    size_t n_ids = tok_vocab_size(a);
    int ok = 1;
    for (int round = 0; round < 2000 && ok; round++) {
        int32_t ids[24];
        for (int i = 0; i < 24; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            ids[i] = (int32_t)(x % (n_ids + 400));
        }
        size_t la, lb;
        char *da = tok_decode(a, ids, 24, &la), *db = tok_decode(b, ids, 24, &lb);
        ok = da && db && la == lb && !memcmp(da, db, la);
        free(da);
        free(db);
    }
    return ok;
}

static int run_tokenizer(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s tokenizer MODEL_DIR DUMP CASES...\n", argv[0]);
        return 2;
    }
    struct ms_err err;
    struct tokenizer *a = tok_load(argv[2], &err);
    if (!a) {
        fprintf(stderr, "tok_load: %s\n", err.msg);
        return 1;
    }
    struct tokdump d;
    if (tokdump_load(argv[3], &d)) return 1;
    struct tokenizer *b = tok_load_vocab(&d.v, &err);
    if (!b) {
        fprintf(stderr, "tok_load_vocab: %s\n", err.msg);
        return 1;
    }
    test_cond("the GGUF says gpt2 / qwen2", d.v.model.len == 4 && d.v.pre.len == 5);
    test_cond("the GGUF's token list is padded to the model's vocab_size", d.v.n_tokens > tok_vocab_size(b));
    check_vocab(a, b);

    struct texts t = {0};
    for (int i = 4; i < argc; i++)
        if (load_cases(argv[i], &t)) return 1;
    size_t agree[3] = {0};
    for (size_t c = 0; c < t.n; c++)
        for (int mode = 0; mode < 3; mode++) agree[mode] += check_text(a, b, t.s[c], t.len[c], mode, c);
    printf("%zu cases: same ids and text for %zu (specials on), %zu (off), %zu (masked)\n", t.n, agree[1], agree[0],
           agree[2]);
    test_cond("every case, specials on", agree[1] == t.n);
    test_cond("every case, specials off", agree[0] == t.n);
    test_cond("every case, masked", agree[2] == t.n);
    test_cond("invalid UTF-8 refused alike", check_text(a, b, "a\xff", 2, 1, 0));
    test_cond("random id sequences decode alike", check_random_decodes(a, b));
    for (size_t c = 0; c < t.n; c++) free(t.s[c]);
    free(t.s);
    free(t.len);
    tok_free(a);
    tok_free(b);
    tokdump_free(&d);
    test_report();
}

/* ---- chat template -------------------------------------------------------------------------- */

static int render_both(const struct chat_template *ta, const struct chat_template *tb, const cJSON *messages,
                       const cJSON *tools, int agp, const cJSON *kw, const char *name)
{
    char *oa = NULL, *ob = NULL;
    size_t la = 0, lb = 0;
    struct ms_err ea = {0}, eb = {0};
    int ra = tmpl_render_len(ta, messages, tools, agp, kw, &oa, &la, &ea);
    int rb = tmpl_render_len(tb, messages, tools, agp, kw, &ob, &lb, &eb);
    int ok = ra == rb && (ra ? !strcmp(ea.msg, eb.msg) : la == lb && !memcmp(oa, ob, la));
    if (!ok) fprintf(stderr, "%s: renderings differ (rc %d vs %d)\n", name, ra, rb);
    free(oa);
    free(ob);
    return ok;
}

/* The special-token variables: a probe template in a copy of the checkpoint's
 * tokenizer_config.json, against the same probe given the GGUF's ids. */
static int check_special_vars(const char *model_dir, const char *work, const struct tok_vocab *v)
{
    static const char probe[] = "[{{ bos_token }}][{{ eos_token }}][{{ pad_token }}][{{ unk_token }}]"
                                "[{{ bos_token is defined }}][{{ eos_token is defined }}]";
    char path[4096];
    size_t len;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", model_dir);
    char *cfg = read_all(path, &len);
    if (!cfg) return 0;
    char dir[2048];
    if ((size_t)snprintf(dir, sizeof dir, "%s/probe-template", work) >= sizeof dir) return 0;
    mkdir(work, 0755);
    mkdir(dir, 0755);
    int ok = 1;
    const char *names[] = {"tokenizer_config.json", "chat_template.jinja"};
    const char *bodies[] = {cfg, probe};
    size_t lens[] = {len, sizeof probe - 1};
    for (int i = 0; i < 2 && ok; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        FILE *f = fopen(path, "wb");
        ok = f && fwrite(bodies[i], 1, lens[i], f) == lens[i];
        if (f) fclose(f);
    }
    free(cfg);
    struct ms_err err;
    struct chat_template *ta = ok ? tmpl_load(dir, &err) : NULL;
    struct chat_template *tb = ok ? tmpl_load_gguf(probe, sizeof probe - 1, v, &err) : NULL;
    cJSON *messages = cJSON_CreateArray();
    ok = ta && tb && messages && render_both(ta, tb, messages, NULL, 0, NULL, "special-token probe");
    char *out = NULL;
    if (tb && !tmpl_render(tb, messages, NULL, 0, NULL, &out, &err)) printf("special-token probe: %s\n", out);
    free(out);
    cJSON_Delete(messages);
    tmpl_free(ta);
    tmpl_free(tb);
    return ok;
}

static int run_template(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s template MODEL_DIR DUMP CASES_JSON WORK_DIR\n", argv[0]);
        return 2;
    }
    struct ms_err err;
    struct chat_template *ta = tmpl_load(argv[2], &err);
    if (!ta) {
        fprintf(stderr, "tmpl_load: %s\n", err.msg);
        return 1;
    }
    struct tokdump d;
    if (tokdump_load(argv[3], &d)) return 1;
    test_cond("the GGUF has tokenizer.chat_template", d.have_template);
    struct chat_template *tb = tmpl_load_gguf(d.chat_template.p, d.chat_template.len, &d.v, &err);
    if (!tb) {
        fprintf(stderr, "tmpl_load_gguf: %s\n", err.msg);
        return 1;
    }
    test_cond("same template source", !strcmp(tmpl_source(ta), tmpl_source(tb)));
    size_t len;
    char *text = read_all(argv[4], &len);
    cJSON *doc = text ? cJSON_ParseWithLength(text, len) : NULL;
    free(text);
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(doc, "cases"), *c;
    int total = 0, same = 0;
    cJSON_ArrayForEach (c, cases) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(c, "name");
        total++;
        same += render_both(ta, tb, cJSON_GetObjectItemCaseSensitive(c, "messages"),
                            cJSON_GetObjectItemCaseSensitive(c, "tools"),
                            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c, "add_generation_prompt")),
                            cJSON_GetObjectItemCaseSensitive(c, "chat_template_kwargs"),
                            cJSON_IsString(name) ? name->valuestring : "?");
    }
    printf("%d/%d conversations render identically from the GGUF\n", same, total);
    test_cond("at least 40 conversations", total >= 40);
    test_cond("every conversation renders identically", same == total);
    test_cond("special-token variables as from tokenizer_config.json", check_special_vars(argv[2], argv[5], &d.v));
    cJSON_Delete(doc);
    tmpl_free(ta);
    tmpl_free(tb);
    tokdump_free(&d);
    test_report();
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "tokenizer")) return run_tokenizer(argc, argv);
    if (argc > 1 && !strcmp(argv[1], "template")) return run_template(argc, argv);
    fprintf(stderr, "usage: %s tokenizer|template ...\n", argv[0]);
    return 2;
}
