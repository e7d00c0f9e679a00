#include "grammar/gram_vocab.h"

#include <stdlib.h>
#include <string.h>

#include "grammar/gram_match.h"
#include "grammar/gram_regex.h"

/* A byte trie: children as first-child / next-sibling lists; tokens hang off the node their
 * last byte reaches (several tokens may share one). */
struct trie {
    int32_t *child, *sibling, *tok_head;
    uint8_t *byte;
    int n, cap;
};

struct gram_vocab {
    int n_tokens, max_len;
    uint8_t *kind;
    int32_t *tok_next;         /* per token: the next token on the same trie node */
    int32_t *tok_next_rest;    /* the same for the `rest` trie */
    struct trie all;           /* every TEXT / TOOL token */
    struct trie rest;          /* those that are not plain string characters */
    int32_t *plain;            /* tokens made of plain string characters only */
    int32_t *plain_chars;      /* their code point counts */
    int n_plain;
    uint32_t *plain_bits;      /* the plain tokens as a bitmask */
    struct trie nonkey;        /* tokens not made only of gram_free_key_byte bytes */
    int32_t *tok_next_nonkey;
    int32_t *key;              /* tokens made only of those bytes, */
    int32_t *key_len;          /* and their lengths */
    int n_key;
    int32_t *other;            /* the tokens that are not TEXT */
    int n_other;
    char *text;                /* every token's bytes, token i at text + off[i] */
    size_t *off;               /* [n_tokens + 1] */
};

#define DFA_CACHE 4

struct gram_matcher {
    struct gram *g;
    const struct gram_vocab *v;
    struct gram_state *lvl;    /* [max_len + 1]: the state after each depth of the trie walk */
    /* the last DFA walks (regex text revisits its states, e.g. the loop of a search pattern):
     * tokens allowed from (re, state, in string), round robin */
    struct {
        const struct gram_regex *re;
        int state;
        bool in_string;
        uint32_t *bits;
    } dfa[DFA_CACHE];
    int dfa_next;
};

static int trie_node(struct trie *t)
{
    if (t->n == t->cap) {
        int cap = t->cap ? 2 * t->cap : 4096;
        int32_t *c = realloc(t->child, (size_t)cap * sizeof *c);
        if (c) t->child = c;
        int32_t *s = realloc(t->sibling, (size_t)cap * sizeof *s);
        if (s) t->sibling = s;
        int32_t *h = realloc(t->tok_head, (size_t)cap * sizeof *h);
        if (h) t->tok_head = h;
        uint8_t *b = realloc(t->byte, (size_t)cap);
        if (b) t->byte = b;
        if (!c || !s || !h || !b) return -1;
        t->cap = cap;
    }
    t->child[t->n] = t->sibling[t->n] = t->tok_head[t->n] = -1;
    t->byte[t->n] = 0;
    return t->n++;
}

static int trie_insert(struct trie *t, const uint8_t *s, size_t len, int32_t tok, int32_t *next)
{
    if (t->n == 0 && trie_node(t) < 0) return -1;
    int cur = 0;
    for (size_t i = 0; i < len; i++) {
        int c = t->child[cur];
        while (c >= 0 && t->byte[c] != s[i]) c = t->sibling[c];
        if (c < 0) {
            if ((c = trie_node(t)) < 0) return -1;
            t->byte[c] = s[i];
            t->sibling[c] = t->child[cur];
            t->child[cur] = c;
        }
        cur = c;
    }
    next[tok] = t->tok_head[cur];
    t->tok_head[cur] = tok;
    return 0;
}

static void trie_free(struct trie *t)
{
    free(t->child);
    free(t->sibling);
    free(t->tok_head);
    free(t->byte);
}

/* Code points of s if it is whole UTF-8 characters none of which needs escaping in a JSON
 * string; -1 otherwise. */
static int plain_chars(const uint8_t *s, size_t len)
{
    int n = 0;
    for (size_t i = 0; i < len; n++) {
        uint8_t b = s[i];
        if (b < 0x80) {
            if (b < 0x20 || b == '"' || b == '\\') return -1;
            i++;
            continue;
        }
        int k = b >= 0xC2 && b <= 0xDF ? 1 : b >= 0xE0 && b <= 0xEF ? 2 : b >= 0xF0 && b <= 0xF4 ? 3 : -1;
        if (k < 0 || i + (size_t)k >= len) return -1;
        uint8_t lo = 0x80, hi = 0xBF;
        if (b == 0xE0) lo = 0xA0;
        if (b == 0xED) hi = 0x9F;
        if (b == 0xF0) lo = 0x90;
        if (b == 0xF4) hi = 0x8F;
        for (int j = 1; j <= k; j++, lo = 0x80, hi = 0xBF)
            if (s[i + (size_t)j] < lo || s[i + (size_t)j] > hi) return -1;
        i += (size_t)k + 1;
    }
    return n;
}

struct gram_vocab *gram_vocab_create(int n_tokens, const char *const *bytes, const size_t *lens,
                                     const uint8_t *kinds, struct ms_err *err)
{
    struct gram_vocab *v = calloc(1, sizeof *v);
    if (!v) goto nomem;
    v->n_tokens = n_tokens;
    v->kind = malloc((size_t)n_tokens + 1);
    v->tok_next = malloc(((size_t)n_tokens + 1) * sizeof *v->tok_next);
    v->tok_next_rest = malloc(((size_t)n_tokens + 1) * sizeof *v->tok_next_rest);
    v->plain = malloc(((size_t)n_tokens + 1) * sizeof *v->plain);
    v->plain_chars = malloc(((size_t)n_tokens + 1) * sizeof *v->plain_chars);
    v->off = malloc(((size_t)n_tokens + 1) * sizeof *v->off);
    v->plain_bits = calloc(((size_t)n_tokens + 31) / 32 + 1, sizeof *v->plain_bits);
    v->other = malloc(((size_t)n_tokens + 1) * sizeof *v->other);
    v->tok_next_nonkey = malloc(((size_t)n_tokens + 1) * sizeof *v->tok_next_nonkey);
    v->key = malloc(((size_t)n_tokens + 1) * sizeof *v->key);
    v->key_len = malloc(((size_t)n_tokens + 1) * sizeof *v->key_len);
    if (!v->tok_next_nonkey || !v->key || !v->key_len || trie_node(&v->nonkey) < 0 || !v->plain_bits || !v->other || !v->kind || !v->tok_next || !v->tok_next_rest || !v->plain || !v->plain_chars || !v->off) goto nomem;
    size_t total = 0;
    for (int i = 0; i < n_tokens; i++) total += bytes[i] ? lens[i] : 0;
    if (!(v->text = malloc(total + 1))) goto nomem;
    total = 0;
    for (int i = 0; i < n_tokens; i++) {
        v->off[i] = total;
        if (bytes[i]) memcpy(v->text + total, bytes[i], lens[i]), total += lens[i];
    }
    v->off[n_tokens] = total;
    if (trie_node(&v->all) < 0 || trie_node(&v->rest) < 0) goto nomem;
    for (int i = 0; i < n_tokens; i++) {
        v->kind[i] = kinds[i];
        if ((kinds[i] != GRAM_TOK_TEXT && kinds[i] != GRAM_TOK_TOOL) || !bytes[i] || lens[i] == 0) {
            if (kinds[i] == GRAM_TOK_TEXT || kinds[i] == GRAM_TOK_TOOL) v->kind[i] = GRAM_TOK_NEVER;
            continue;
        }
        const uint8_t *s = (const uint8_t *)bytes[i];
        if ((int)lens[i] > v->max_len) v->max_len = (int)lens[i];
        if (trie_insert(&v->all, s, lens[i], i, v->tok_next) < 0) goto nomem;
        bool keyish = kinds[i] == GRAM_TOK_TEXT;
        for (size_t k = 0; k < lens[i] && keyish; k++) keyish = gram_free_key_byte(s[k]);
        if (keyish) {
            v->key[v->n_key] = i;
            v->key_len[v->n_key++] = (int)lens[i];
        } else if (trie_insert(&v->nonkey, s, lens[i], i, v->tok_next_nonkey) < 0) {
            goto nomem;
        }
        int pc = kinds[i] == GRAM_TOK_TEXT ? plain_chars(s, lens[i]) : -1;
        if (pc >= 0) {
            v->plain_bits[i >> 5] |= 1u << (i & 31);
            v->plain[v->n_plain] = i;
            v->plain_chars[v->n_plain++] = pc;
        } else if (trie_insert(&v->rest, s, lens[i], i, v->tok_next_rest) < 0) {
            goto nomem;
        }
    }
    for (int i = 0; i < n_tokens; i++)
        if (v->kind[i] != GRAM_TOK_TEXT) v->other[v->n_other++] = i;
    return v;
nomem:
    gram_vocab_destroy(v);
    ms_err_set(err, MS_ERR_NOMEM, "out of memory building the grammar vocabulary");
    return NULL;
}

void gram_vocab_destroy(struct gram_vocab *v)
{
    if (!v) return;
    trie_free(&v->all);
    trie_free(&v->rest);
    free(v->kind);
    free(v->tok_next);
    free(v->tok_next_rest);
    free(v->plain);
    free(v->plain_chars);
    free(v->text);
    free(v->off);
    free(v->plain_bits);
    trie_free(&v->nonkey);
    free(v->tok_next_nonkey);
    free(v->key);
    free(v->key_len);
    free(v->other);
    free(v);
}

int gram_vocab_size(const struct gram_vocab *v) { return v->n_tokens; }

struct gram_matcher *gram_matcher_create(struct gram *g, const struct gram_vocab *v, struct ms_err *err)
{
    struct gram_matcher *m = calloc(1, sizeof *m);
    if (m) {
        m->v = v;
        m->lvl = malloc(((size_t)v->max_len + 3) * sizeof *m->lvl);
    }
    if (!m || !m->lvl) {
        gram_matcher_destroy(m);
        ms_err_set(err, MS_ERR_NOMEM, "out of memory creating a grammar matcher");
        return NULL;
    }
    m->g = gram_retain(g);
    gram_state_init(&m->lvl[0], g);
    return m;
}

void gram_matcher_destroy(struct gram_matcher *m)
{
    if (!m) return;
    gram_release(m->g);
    free(m->lvl);
    for (int i = 0; i < DFA_CACHE; i++) free(m->dfa[i].bits);
    free(m);
}

static void walk(struct gram_matcher *m, const struct trie *t, const int32_t *next, int node, int d, uint32_t *bits)
{
    for (int c = t->child[node]; c >= 0; c = t->sibling[c]) {
        if (!gram_state_feed(m->g, &m->lvl[d], t->byte[c], &m->lvl[d + 1])) continue;
        for (int tok = t->tok_head[c]; tok >= 0; tok = next[tok]) bits[tok >> 5] |= 1u << (tok & 31);
        if (t->child[c] >= 0) walk(m, t, next, c, d + 1, bits);
    }
}

/* The trie against a DFA alone (regex text: one table lookup per trie node, no matcher state);
 * in a string, bytes the matcher must judge ('"', '\\', control) are not descended into. */
static void walk_dfa(const struct trie *t, const int32_t *next, const struct gram_regex *re, int node, int state,
                     bool in_string, uint32_t *bits)
{
    for (int c = t->child[node]; c >= 0; c = t->sibling[c]) {
        int b = t->byte[c], s;
        if ((in_string && (b == '"' || b == '\\' || b < 0x20)) || (s = gram_regex_next(re, state, (uint8_t)b)) < 0) continue;
        for (int tok = t->tok_head[c]; tok >= 0; tok = next[tok]) bits[tok >> 5] |= 1u << (tok & 31);
        if (t->child[c] >= 0) walk_dfa(t, next, re, c, s, in_string, bits);
    }
}

/* bits |= the tokens walk_dfa allows from (re, state), through the matcher's cache. */
static void dfa_tokens(struct gram_matcher *m, const struct gram_regex *re, int state, bool in_string, uint32_t *bits)
{
    const struct gram_vocab *v = m->v;
    size_t words = ((size_t)v->n_tokens + 31) / 32;
    int k = 0;
    while (k < DFA_CACHE && !(m->dfa[k].bits && m->dfa[k].re == re && m->dfa[k].state == state && m->dfa[k].in_string == in_string)) k++;
    if (k == DFA_CACHE) {
        k = m->dfa_next;
        if (!m->dfa[k].bits && !(m->dfa[k].bits = malloc(words * sizeof *bits))) { /* no memory: walk uncached */
            walk_dfa(&v->all, v->tok_next, re, 0, state, in_string, bits);
            return;
        }
        m->dfa_next = (k + 1) % DFA_CACHE;
        memset(m->dfa[k].bits, 0, words * sizeof *bits);
        walk_dfa(&v->all, v->tok_next, re, 0, state, in_string, m->dfa[k].bits);
        m->dfa[k].re = re;
        m->dfa[k].state = state;
        m->dfa[k].in_string = in_string;
    }
    for (size_t i = 0; i < words; i++) bits[i] |= m->dfa[k].bits[i];
}

void gram_matcher_mask(struct gram_matcher *m, uint32_t *bits)
{
    const struct gram_vocab *v = m->v;
    size_t words = ((size_t)v->n_tokens + 31) / 32;
    int room;
    bool plain = gram_state_in_plain_string(m->g, &m->lvl[0], &room), in_string;
    const struct gram_regex *re;
    int rs;
    if (plain && room < 0) memcpy(bits, v->plain_bits, words * sizeof *bits);
    else memset(bits, 0, words * sizeof *bits);
    if (plain) {
        for (int i = 0; room >= 0 && i < v->n_plain; i++)
            if (room < 0 || v->plain_chars[i] <= room) bits[v->plain[i] >> 5] |= 1u << (v->plain[i] & 31);
        walk(m, &v->rest, v->tok_next_rest, 0, 0, bits);
    } else if (gram_state_in_regex(m->g, &m->lvl[0], &re, &rs, &in_string)) { /* tokens holding '"' or '\\': the rest trie */
        dfa_tokens(m, re, rs, in_string, bits);
        if (in_string) walk(m, &v->rest, v->tok_next_rest, 0, 0, bits);
    } else if (gram_state_in_free_key(m->g, &m->lvl[0], &room)) {
        for (int i = 0; i < v->n_key; i++)
            if (v->key_len[i] <= room) bits[v->key[i] >> 5] |= 1u << (v->key[i] & 31);
        walk(m, &v->nonkey, v->tok_next_nonkey, 0, 0, bits);
    } else {
        walk(m, &v->all, v->tok_next, 0, 0, bits);
    }
    bool complete = gram_state_complete(m->g, &m->lvl[0]);
    for (int k = 0; k < v->n_other; k++) {
        int i = v->other[k];
        bool on = v->kind[i] == GRAM_TOK_END ? complete : v->kind[i] == GRAM_TOK_TOOL && m->g->tool_call;
        if (!on) bits[i >> 5] &= ~(1u << (i & 31));
        else if (v->kind[i] == GRAM_TOK_END) bits[i >> 5] |= 1u << (i & 31);
    }
}

int gram_matcher_accept(struct gram_matcher *m, int32_t t)
{
    const struct gram_vocab *v = m->v;
    if (t < 0 || t >= v->n_tokens) return -1;
    if (v->kind[t] == GRAM_TOK_END) return gram_state_complete(m->g, &m->lvl[0]) ? 0 : -1;
    if (v->kind[t] == GRAM_TOK_NEVER || (v->kind[t] == GRAM_TOK_TOOL && !m->g->tool_call)) return -1;
    struct gram_state *work = &m->lvl[2], *scratch = &m->lvl[1];
    gram_state_copy(work, &m->lvl[0]);
    const uint8_t *b = (const uint8_t *)v->text + v->off[t];
    if (!gram_state_feed_bytes(m->g, work, b, (int)(v->off[t + 1] - v->off[t]), scratch)) return -1;
    gram_state_copy(&m->lvl[0], work);
    return 0;
}

bool gram_matcher_complete(const struct gram_matcher *m)
{
    return gram_state_complete(m->g, &m->lvl[0]);
}

int gram_matcher_vocab_size(const struct gram_matcher *m) { return m->v->n_tokens; }
