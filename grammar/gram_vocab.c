#include "grammar/gram_vocab.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/gram_match.h"
#include "grammar/gram_regex.h"

/* A byte trie, built as first-child / next-sibling lists, then frozen into one array in
 * depth-first order (a node's subtree follows it; `end` is one past the subtree), which the mask
 * walks front to back instead of chasing four arrays per node. Tokens hang off the node their
 * last byte reaches (several tokens may share one). */
struct fnode {
    int32_t end, tok;
    uint8_t byte;
    uint8_t mixed;             /* gram_word bits: the subtree has a token not purely of that class */
};

struct trie {
    int32_t *child, *sibling, *tok_head;
    uint8_t *byte;
    int n, cap;
    struct fnode *node;        /* [n] once frozen */
};

/* A set of tokens each with a weight (code points, or bytes), so that "the tokens of weight at
 * most r" is a copy of a precomputed bitmask for small r, and the full set minus a short tail
 * of heavy tokens otherwise. */
#define GRADE_TABLE 16
struct graded {
    int n, max_weight;
    int32_t *tok, *weight;     /* sorted by weight, ascending */
    uint32_t *all;             /* every token of the set */
    uint32_t *upto[GRADE_TABLE]; /* weight <= r */
};

/* Inside a string, the TEXT tokens fall in three classes, found at creation by running each
 * through an unbounded string (so they do not depend on the grammar): */
struct strclass {
    struct graded body;        /* stay inside the string: weight = characters started */
    struct trie close;         /* close it: the trie of what follows the quote, */
    int32_t *tok_next;
    int32_t *chars;            /* per token: characters before the quote */
};                             /* the rest are never allowed there */

struct gram_vocab {
    int n_tokens, max_len;
    size_t words;              /* uint32 words of a mask */
    uint8_t *kind;
    int32_t *tok_next;         /* per token: the next token on the same trie node */
    struct trie all;           /* every TEXT / TOOL token */
    struct strclass plain;     /* a string's plain text */
    struct strclass escape;    /* just after a backslash in a string */
    struct graded alnum, lower; /* TEXT tokens purely of a gram_word class, weight = bytes */
    struct trie misc;          /* TOOL tokens: walked as they are (the rest is never allowed) */
    int32_t *tok_next_misc;
    /* Likewise in an extra property's name: */
    struct graded key;         /* TEXT tokens made only of gram_free_key_byte bytes, weight = bytes */
    struct trie key_close;     /* key bytes then '"': the trie of what follows the quote, */
    int32_t *tok_next_key_close;
    int32_t *key_close_len;    /* per token: the key bytes before it */
    int32_t *other;            /* the tokens that are not TEXT */
    int n_other;
    char *text;                /* every token's bytes, token i at text + off[i] */
    size_t *off;               /* [n_tokens + 1] */
};

/* Masks already computed, by canonical state (gram_state_key): exact, since a mask is a
 * function of the state alone. Bounded: the least recently used entry is replaced. */
#define MASK_CACHE 32
struct mask_entry {
    uint64_t hash, used;
    size_t len;                /* 0: empty */
    uint8_t *key;
    uint32_t *bits;
};

struct gram_matcher {
    struct gram *g;
    const struct gram_vocab *v;
    struct gram_state *lvl;    /* [max_len + 3]: the state after each depth of the trie walk */
    struct gram_state key;     /* scratch: the canonical current state */
    uint8_t *path;             /* [max_len + 1]: the bytes of the trie walk's current path */
    struct mask_entry cache[MASK_CACHE];
    uint64_t tick;
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

static void trie_free_lists(struct trie *t)
{
    free(t->child);
    free(t->sibling);
    free(t->tok_head);
    free(t->byte);
    t->child = t->sibling = t->tok_head = NULL;
    t->byte = NULL;
}

static void trie_free(struct trie *t)
{
    trie_free_lists(t);
    free(t->node);
}

/* mixed: per token, its gram_word bits (NULL: none); next: the token lists */
static uint8_t freeze_node(const struct trie *t, int node, const uint8_t *mixed, const int32_t *next,
                           struct fnode *out, int *k)
{
    int me = (*k)++;
    uint8_t mix = 0;
    out[me].byte = t->byte[node];
    out[me].tok = t->tok_head[node];
    for (int tok = t->tok_head[node]; mixed && tok >= 0; tok = next[tok]) mix |= mixed[tok];
    for (int c = t->child[node]; c >= 0; c = t->sibling[c]) mix |= freeze_node(t, c, mixed, next, out, k);
    out[me].end = *k;
    out[me].mixed = mix;
    return mix;
}

static int trie_freeze(struct trie *t, const uint8_t *mixed, const int32_t *next)
{
    if (!(t->node = malloc((size_t)t->n * sizeof *t->node))) return -1;
    int k = 0;
    freeze_node(t, 0, mixed, next, t->node, &k);
    trie_free_lists(t);
    return 0;
}

static int cmp_weight(const void *a, const void *b)
{
    const int32_t *x = a, *y = b; /* (weight, token) pairs */
    return x[0] != y[0] ? (x[0] > y[0]) - (x[0] < y[0]) : (x[1] > y[1]) - (x[1] < y[1]);
}

/* g->tok / weight hold n unsorted pairs; sorts them and builds the bitmasks. */
static int graded_finish(struct graded *g, size_t words)
{
    int32_t *pairs = malloc(((size_t)g->n + 1) * 2 * sizeof *pairs);
    if (!pairs || !(g->all = calloc(words, sizeof *g->all))) return free(pairs), -1;
    for (int i = 0; i < g->n; i++) pairs[2 * i] = g->weight[i], pairs[2 * i + 1] = g->tok[i];
    qsort(pairs, (size_t)g->n, 2 * sizeof *pairs, cmp_weight);
    for (int i = 0; i < g->n; i++) g->weight[i] = pairs[2 * i], g->tok[i] = pairs[2 * i + 1];
    free(pairs);
    g->max_weight = g->n ? g->weight[g->n - 1] : 0;
    int k = 0;
    for (int r = 0; r < GRADE_TABLE; r++) {
        if (!(g->upto[r] = malloc(words * sizeof *g->upto[r]))) return -1;
        if (r == 0) memset(g->upto[0], 0, words * sizeof *g->upto[0]);
        else memcpy(g->upto[r], g->upto[r - 1], words * sizeof *g->upto[r]);
        for (; k < g->n && g->weight[k] <= r; k++) g->upto[r][g->tok[k] >> 5] |= 1u << (g->tok[k] & 31);
    }
    for (int i = 0; i < g->n; i++) g->all[g->tok[i] >> 5] |= 1u << (g->tok[i] & 31);
    return 0;
}

static void graded_free(struct graded *g)
{
    free(g->tok);
    free(g->weight);
    free(g->all);
    for (int r = 0; r < GRADE_TABLE; r++) free(g->upto[r]);
}

/* bits = the tokens of weight <= room (-1: all) */
static void graded_mask(const struct graded *g, int room, uint32_t *bits, size_t words)
{
    if (room >= 0 && room < GRADE_TABLE) {
        memcpy(bits, g->upto[room], words * sizeof *bits);
        return;
    }
    memcpy(bits, g->all, words * sizeof *bits);
    for (int k = g->n - 1; room >= 0 && k >= 0 && g->weight[k] > room; k--)
        bits[g->tok[k] >> 5] &= ~(1u << (g->tok[k] & 31));
}

/* Where token s goes in a plain string: 0 body (*chars started), 1 closes it (*chars before the
 * quote, *suffix = bytes after it), -1 refused inside the string. str: the state just inside
 * an unbounded string's opening quote. */
static int string_class(const struct gram *g, const struct gram_state *str, const uint8_t *s, size_t len,
                        int *chars, size_t *suffix, struct gram_state *a, struct gram_state *b)
{
    gram_state_copy(a, str);
    for (size_t i = 0; i < len; i++) {
        const struct gram_frame *f = &a->f[a->len[0] - 1];
        int before = f->count;
        if (!gram_state_feed(g, a, s[i], b)) return -1;
        if (b->len[0] == 1) return *chars = before, *suffix = i + 1, 1; /* the string frame popped */
        struct gram_state *t = a;
        a = b, b = t;
    }
    const struct gram_frame *f = &a->f[a->len[0] - 1];
    *chars = f->count + (f->phase == 2 || f->phase == 3); /* an escape counts when it ends */
    return 0;
}

static int strclass_alloc(struct strclass *c, size_t nt)
{
    c->tok_next = malloc(nt * sizeof *c->tok_next);
    c->chars = malloc(nt * sizeof *c->chars);
    c->body.tok = malloc(nt * sizeof *c->body.tok);
    c->body.weight = malloc(nt * sizeof *c->body.weight);
    return c->tok_next && c->chars && c->body.tok && c->body.weight && trie_node(&c->close) >= 0 ? 0 : -1;
}

static void strclass_free(struct strclass *c)
{
    graded_free(&c->body);
    trie_free(&c->close);
    free(c->tok_next);
    free(c->chars);
}

/* Classifies the TEXT tokens from the state after `prefix` (the opening quote, and maybe a
 * backslash) in an unbounded string. */
static int classify_strings(struct gram_vocab *v, const char *prefix, struct strclass *c, struct ms_err *err)
{
    cJSON *schema = cJSON_Parse("{\"type\":\"string\"}");
    struct gram *g = schema ? gram_compile_json_schema(schema, err) : NULL;
    cJSON_Delete(schema);
    struct gram_state *st = malloc(3 * sizeof *st);
    int rc = -1;
    if (!g || !st) goto out;
    gram_state_init(&st[0], g);
    if (!gram_state_feed_bytes(g, &st[0], (const uint8_t *)prefix, (int)strlen(prefix), &st[1])) goto out;
    for (int i = 0; i < v->n_tokens; i++) {
        if (v->kind[i] != GRAM_TOK_TEXT) continue;
        const uint8_t *s = (const uint8_t *)v->text + v->off[i];
        size_t len = v->off[i + 1] - v->off[i], suffix = 0;
        int chars = 0, cls = string_class(g, &st[0], s, len, &chars, &suffix, &st[1], &st[2]);
        if (cls == 0) {
            c->body.tok[c->body.n] = i;
            c->body.weight[c->body.n++] = chars;
        } else if (cls == 1) {
            c->chars[i] = chars;
            if (trie_insert(&c->close, s + suffix, len - suffix, i, c->tok_next) < 0) goto out;
        }
    }
    rc = graded_finish(&c->body, v->words) < 0 || trie_freeze(&c->close, NULL, c->tok_next) < 0 ? -1 : 0;
out:
    free(st);
    gram_release(g);
    return rc;
}

static bool word_byte(enum gram_word w, int b)
{
    return (b >= 'a' && b <= 'z') || (w == GRAM_WORD_ALNUM && b >= '0' && b <= '9');
}

/* The TEXT tokens purely of each gram_word class (v->alnum, v->lower), and per token the classes
 * it is not pure of (what the trie walk must still visit in such a state). NULL: no memory. */
static uint8_t *word_classes(struct gram_vocab *v)
{
    size_t nt = (size_t)v->n_tokens + 1;
    uint8_t *mixed = malloc(nt);
    struct graded *set[2] = {&v->alnum, &v->lower};
    for (int w = 0; w < 2; w++) {
        set[w]->tok = malloc(nt * sizeof *set[w]->tok);
        set[w]->weight = malloc(nt * sizeof *set[w]->weight);
        if (!set[w]->tok || !set[w]->weight) return free(mixed), NULL;
    }
    if (!mixed) return NULL;
    for (int i = 0; i < v->n_tokens; i++) {
        const uint8_t *s = (const uint8_t *)v->text + v->off[i];
        int len = (int)(v->off[i + 1] - v->off[i]);
        mixed[i] = 0;
        for (int w = 0; w < 2; w++) {
            enum gram_word word = w ? GRAM_WORD_LOWER : GRAM_WORD_ALNUM;
            int k = 0;
            while (k < len && word_byte(word, s[k])) k++;
            if (v->kind[i] == GRAM_TOK_TEXT && k == len) {
                set[w]->tok[set[w]->n] = i;
                set[w]->weight[set[w]->n++] = len;
            } else {
                mixed[i] |= (uint8_t)word;
            }
        }
    }
    if (graded_finish(&v->alnum, v->words) < 0 || graded_finish(&v->lower, v->words) < 0) return free(mixed), NULL;
    return mixed;
}

struct gram_vocab *gram_vocab_create(int n_tokens, const char *const *bytes, const size_t *lens,
                                     const uint8_t *kinds, struct ms_err *err)
{
    uint8_t *mixed = NULL;
    struct gram_vocab *v = calloc(1, sizeof *v);
    if (!v) goto nomem;
    size_t nt = (size_t)n_tokens + 1;
    v->n_tokens = n_tokens;
    v->words = ((size_t)n_tokens + 31) / 32;
    v->kind = malloc(nt);
    v->tok_next = malloc(nt * sizeof *v->tok_next);
    v->tok_next_misc = malloc(nt * sizeof *v->tok_next_misc);
    v->key.tok = malloc(nt * sizeof *v->key.tok);
    v->key.weight = malloc(nt * sizeof *v->key.weight);
    v->off = malloc(nt * sizeof *v->off);
    v->other = malloc(nt * sizeof *v->other);
    v->tok_next_key_close = malloc(nt * sizeof *v->tok_next_key_close);
    v->key_close_len = malloc(nt * sizeof *v->key_close_len);
    if (!v->kind || !v->tok_next || !v->tok_next_misc || !v->key.tok || !v->key.weight || !v->off || !v->other || !v->tok_next_key_close ||
        !v->key_close_len)
        goto nomem;
    if (trie_node(&v->all) < 0 || trie_node(&v->key_close) < 0 || strclass_alloc(&v->plain, nt) < 0 || strclass_alloc(&v->escape, nt) < 0 || trie_node(&v->misc) < 0)
        goto nomem;
    size_t total = 0;
    for (int i = 0; i < n_tokens; i++) total += bytes[i] ? lens[i] : 0;
    if (!(v->text = malloc(total + 1))) goto nomem;
    total = 0;
    for (int i = 0; i < n_tokens; i++) {
        v->off[i] = total;
        if (bytes[i]) memcpy(v->text + total, bytes[i], lens[i]), total += lens[i];
    }
    v->off[n_tokens] = total;
    for (int i = 0; i < n_tokens; i++) {
        v->kind[i] = kinds[i];
        if ((kinds[i] != GRAM_TOK_TEXT && kinds[i] != GRAM_TOK_TOOL) || !bytes[i] || lens[i] == 0) {
            if (kinds[i] == GRAM_TOK_TEXT || kinds[i] == GRAM_TOK_TOOL) v->kind[i] = GRAM_TOK_NEVER;
            continue;
        }
        const uint8_t *s = (const uint8_t *)bytes[i];
        if ((int)lens[i] > v->max_len) v->max_len = (int)lens[i];
        if (trie_insert(&v->all, s, lens[i], i, v->tok_next) < 0) goto nomem;
        size_t k = 0;
        while (k < lens[i] && gram_free_key_byte(s[k])) k++;
        if (kinds[i] != GRAM_TOK_TEXT) { /* TOOL tokens: walked as they are */
            if (trie_insert(&v->misc, s, lens[i], i, v->tok_next_misc) < 0) goto nomem;
            continue;
        }
        if (k == lens[i]) {
            v->key.tok[v->key.n] = i;
            v->key.weight[v->key.n++] = (int)lens[i];
        } else if (s[k] == '"') { /* else a byte no free key has: never allowed there */
            v->key_close_len[i] = (int32_t)k;
            if (trie_insert(&v->key_close, s + k + 1, lens[i] - k - 1, i, v->tok_next_key_close) < 0) goto nomem;
        }
    }
    if (graded_finish(&v->key, v->words) < 0) goto nomem;
    if (classify_strings(v, "\"", &v->plain, err) < 0 || classify_strings(v, "\"\\", &v->escape, err) < 0)
        goto nomem;
    if (!(mixed = word_classes(v)) || trie_freeze(&v->all, mixed, v->tok_next) < 0 || trie_freeze(&v->misc, NULL, v->tok_next_misc) < 0 ||
        trie_freeze(&v->key_close, NULL, v->tok_next_key_close) < 0)
        goto nomem;
    free(mixed);
    for (int i = 0; i < n_tokens; i++)
        if (v->kind[i] != GRAM_TOK_TEXT) v->other[v->n_other++] = i;
    return v;
nomem:
    free(mixed);
    gram_vocab_destroy(v);
    ms_err_set(err, MS_ERR_NOMEM, "out of memory building the grammar vocabulary");
    return NULL;
}

void gram_vocab_destroy(struct gram_vocab *v)
{
    if (!v) return;
    trie_free(&v->all);
    strclass_free(&v->plain);
    strclass_free(&v->escape);
    trie_free(&v->misc);
    trie_free(&v->key_close);
    graded_free(&v->key);
    graded_free(&v->alnum);
    graded_free(&v->lower);
    free(v->kind);
    free(v->tok_next);
    free(v->tok_next_misc);
    free(v->tok_next_key_close);
    free(v->key_close_len);
    free(v->text);
    free(v->off);
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
        m->path = malloc((size_t)v->max_len + 1);
    }
    if (!m || !m->lvl || !m->path) {
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
    for (int i = 0; i < MASK_CACHE; i++) free(m->cache[i].key), free(m->cache[i].bits);
    free(m->lvl);
    free(m->path);
    free(m);
}

/* Tokens of a close trie pass only if their characters before the quote fit: at most `room`
 * (-1: any), and with the `count` already written at least `min_len`. */
struct close_filter {
    const int32_t *chars;      /* NULL: no filter */
    int room, count, min_len;
    uint8_t word;              /* a gram_word: skip subtrees of only such tokens (their bits are set) */
};

static bool close_ok(const struct close_filter *f, int tok)
{
    if (!f->chars) return true;
    int c = f->chars[tok];
    return (f->room < 0 || c <= f->room) && f->count + c >= f->min_len;
}

/* Sets the bits of the tokens in the subtrees [c, end) whose bytes m->lvl[d] accepts. */
static void walk(struct gram_matcher *m, const struct fnode *node, const int32_t *next, int c, int end, int d,
                 const struct close_filter *cf, uint32_t *bits)
{
    while (c < end) {
        const struct fnode *n = &node[c];
        if (cf->word && !(n->mixed & cf->word)) { /* only tokens of the word class: already set */
            c = n->end;
            continue;
        }
        if (gram_state_feed(m->g, &m->lvl[d], n->byte, &m->lvl[d + 1])) {
            for (int tok = n->tok; tok >= 0; tok = next[tok])
                if (close_ok(cf, tok)) bits[tok >> 5] |= 1u << (tok & 31);
            if (n->end > c + 1) walk(m, node, next, c + 1, n->end, d + 1, cf, bits);
        }
        c = n->end;
    }
}

/* The tokens of the whole trie t that m->lvl[d] accepts (the root's: those of no bytes). */
static void walk_trie(struct gram_matcher *m, const struct trie *t, const int32_t *next, int d,
                      const struct close_filter *cf, uint32_t *bits)
{
    for (int tok = t->node[0].tok; tok >= 0; tok = next[tok])
        if (close_ok(cf, tok)) bits[tok >> 5] |= 1u << (tok & 31);
    walk(m, t->node, next, 1, t->node[0].end, d, cf, bits);
}

/* Inside a string (plain text, or just after a backslash): the body tokens that fit, the closing
 * tokens whose rest the state after the quote accepts, and the TOOL tokens walked as they are. */
static void mask_string(struct gram_matcher *m, const struct strclass *c, int room, uint32_t *bits)
{
    const struct gram_vocab *v = m->v;
    graded_mask(&c->body, room, bits, v->words);
    struct close_filter cf = {.chars = c->chars, .room = room};
    if (gram_state_close_string(m->g, &m->lvl[0], &m->lvl[1], &cf.count, &cf.min_len))
        walk_trie(m, &c->close, c->tok_next, 1, &cf, bits); /* from lvl[1], the state after the quote */
    struct close_filter none = {0};
    walk_trie(m, &v->misc, v->tok_next_misc, 0, &none, bits);
}

/* Writing an extra property's name: the key tokens that fit, and the closing ones whose rest the
 * state after the quote accepts (closing a free key reads nothing but that it is free). */
static void mask_free_key(struct gram_matcher *m, int room, uint32_t *bits)
{
    const struct gram_vocab *v = m->v;
    graded_mask(&v->key, room, bits, v->words);
    struct close_filter cf = {.chars = v->key_close_len, .room = room};
    if (gram_state_feed(m->g, &m->lvl[0], '"', &m->lvl[1])) {
        walk_trie(m, &v->key_close, v->tok_next_key_close, 1, &cf, bits);
    }
    struct close_filter none = {0};
    walk_trie(m, &v->misc, v->tok_next_misc, 0, &none, bits);
}

/* Regex text (gram_state_in_regex): the trie is walked against the DFA alone, one table lookup
 * per node and no matcher state. Only where a byte the matcher must judge ('"', '\\', control,
 * in a string) starts a subtree is m->lvl brought up to that depth, feeding the path's bytes from
 * the deepest level still valid for it, and that subtree walked as usual. */
struct re_walk {
    const struct gram_regex *re;
    bool in_string;
    int valid;                 /* m->lvl[0..valid] are the states along the current path */
};

/* m->lvl[d] for the current path; false if the matcher refuses its bytes (never, for bytes the DFA took). */
static bool re_sync(struct gram_matcher *m, struct re_walk *w, int d)
{
    for (; w->valid < d; w->valid++)
        if (!gram_state_feed(m->g, &m->lvl[w->valid], m->path[w->valid], &m->lvl[w->valid + 1])) return false;
    return true;
}

static void walk_regex(struct gram_matcher *m, struct re_walk *w, int c, int end, int d, int state, uint32_t *bits);

/* The matcher's walk of the subtree [c, node[c].end) from m->lvl[d], back to walk_regex wherever
 * a byte lands in regex text again (after an escape, or in the next pattern string). */
static void walk_mixed(struct gram_matcher *m, int c, int d, uint32_t *bits)
{
    const struct fnode *node = m->v->all.node;
    const struct fnode *n = &node[c];
    const int32_t *next = m->v->tok_next;
    if (!gram_state_feed(m->g, &m->lvl[d], n->byte, &m->lvl[d + 1])) return;
    for (int tok = n->tok; tok >= 0; tok = next[tok]) bits[tok >> 5] |= 1u << (tok & 31);
    if (n->end == c + 1) return;
    m->path[d] = n->byte;
    struct re_walk w = {.valid = d + 1};
    int state;
    if (gram_state_in_regex(m->g, &m->lvl[d + 1], &w.re, &state, &w.in_string)) {
        walk_regex(m, &w, c + 1, n->end, d + 1, state, bits);
        return;
    }
    for (int k = c + 1; k < n->end; k = node[k].end) walk_mixed(m, k, d + 1, bits);
}

static void walk_regex(struct gram_matcher *m, struct re_walk *w, int c, int end, int d, int state, uint32_t *bits)
{
    const struct fnode *node = m->v->all.node;
    const int32_t *next = m->v->tok_next;
    while (c < end) {
        const struct fnode *n = &node[c];
        int b = n->byte, s;
        if (w->valid > d) w->valid = d; /* the levels past d belonged to the previous sibling's path */
        if (w->in_string && (b == '"' || b == '\\' || b < 0x20)) {
            if (re_sync(m, w, d)) walk_mixed(m, c, d, bits);
        } else if ((s = gram_regex_next(w->re, state, (uint8_t)b)) >= 0) {
            for (int tok = n->tok; tok >= 0; tok = next[tok]) bits[tok >> 5] |= 1u << (tok & 31);
            m->path[d] = (uint8_t)b;
            if (n->end > c + 1) walk_regex(m, w, c + 1, n->end, d + 1, s, bits);
        } /* else the DFA is dead: so is the whole subtree */
        c = n->end;
    }
}

static void mask_regex(struct gram_matcher *m, const struct gram_regex *re, int state, bool in_string, uint32_t *bits)
{
    const struct trie *t = &m->v->all;
    struct re_walk w = {.re = re, .in_string = in_string, .valid = 0};
    memset(bits, 0, m->v->words * sizeof *bits);
    for (int tok = t->node[0].tok; tok >= 0; tok = m->v->tok_next[tok]) bits[tok >> 5] |= 1u << (tok & 31);
    walk_regex(m, &w, 1, t->node[0].end, 0, state, bits);
}

static void compute_mask(struct gram_matcher *m, uint32_t *bits)
{
    const struct gram_vocab *v = m->v;
    struct close_filter none = {0};
    int room, re_state;
    enum gram_word word;
    const struct gram_regex *re;
    bool in_string;
    if (gram_state_in_regex(m->g, &m->lvl[0], &re, &re_state, &in_string)) {
        mask_regex(m, re, re_state, in_string, bits);
    } else if (gram_state_in_plain_string(m->g, &m->lvl[0], &room)) {
        mask_string(m, &v->plain, room, bits);
    } else if (gram_state_in_string_escape(m->g, &m->lvl[0], &room)) {
        mask_string(m, &v->escape, room, bits);
    } else if (gram_state_in_free_key(m->g, &m->lvl[0], &room)) {
        mask_free_key(m, room, bits);
    } else if ((word = gram_state_in_word(m->g, &m->lvl[0], &room)) != GRAM_WORD_NONE) {
        graded_mask(word == GRAM_WORD_ALNUM ? &v->alnum : &v->lower, room, bits, v->words);
        struct close_filter skip = {.word = (uint8_t)word};
        walk_trie(m, &v->all, v->tok_next, 0, &skip, bits);
    } else {
        memset(bits, 0, v->words * sizeof *bits);
        walk_trie(m, &v->all, v->tok_next, 0, &none, bits);
    }
    bool complete = gram_state_complete(m->g, &m->lvl[0]);
    for (int k = 0; k < v->n_other; k++) {
        int i = v->other[k];
        bool on = v->kind[i] == GRAM_TOK_END ? complete : v->kind[i] == GRAM_TOK_TOOL && m->g->tool_call;
        if (!on) bits[i >> 5] &= ~(1u << (i & 31));
        else if (v->kind[i] == GRAM_TOK_END) bits[i >> 5] |= 1u << (i & 31);
    }
}

static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

void gram_matcher_mask_uncached(struct gram_matcher *m, uint32_t *bits) { compute_mask(m, bits); }

void gram_matcher_mask(struct gram_matcher *m, uint32_t *bits)
{
    size_t words = m->v->words, len = gram_state_key(m->g, &m->lvl[0], &m->key);
    const uint8_t *key = (const uint8_t *)&m->key;
    uint64_t h = hash_bytes(key, len);
    struct mask_entry *victim = &m->cache[0];
    m->tick++;
    for (int i = 0; i < MASK_CACHE; i++) {
        struct mask_entry *e = &m->cache[i];
        if (e->len == len && e->hash == h && !memcmp(e->key, key, len)) {
            e->used = m->tick;
            memcpy(bits, e->bits, words * sizeof *bits);
            return;
        }
        if (e->used < victim->used) victim = e;
    }
    compute_mask(m, bits);
    /* remember it; on allocation failure the entry just stays empty */
    uint8_t *k = realloc(victim->key, len);
    if (k) victim->key = k;
    if (!victim->bits) victim->bits = malloc(words * sizeof *bits);
    if (!k || !victim->bits) {
        victim->len = 0;
        return;
    }
    memcpy(k, key, len);
    memcpy(victim->bits, bits, words * sizeof *bits);
    victim->len = len;
    victim->hash = h;
    victim->used = m->tick;
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
