/* Internals of the chat-template interpreter (tmpl_*.c): arena, values, tokens, syntax tree. */
#ifndef MS_TMPL_INTERNAL_H
#define MS_TMPL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/ms_common.h"

/* ---- arena: everything of one template (tree) or one render (values) ---- */
struct ta_block;
struct tarena {
    struct ta_block *head;
    int oom;
};
void *ta_alloc(struct tarena *a, size_t n); /* zeroed; NULL (and a->oom) on failure */
char *ta_strndup(struct tarena *a, const char *s, size_t n);
void ta_free(struct tarena *a);

/* ---- growable byte buffer (malloc) ---- */
struct tbuf {
    char *p;
    size_t n, cap;
    int oom;
};
void tb_put(struct tbuf *b, const char *s, size_t n);
void tb_puts(struct tbuf *b, const char *s);
void tb_putc(struct tbuf *b, char c);
void tb_printf(struct tbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- values ---- */
enum tv_type {
    TV_UNDEF,
    TV_NONE,
    TV_BOOL,
    TV_INT,
    TV_FLOAT,
    TV_STR,
    TV_LIST, /* list or tuple (l->tuple) */
    TV_DICT,
    TV_NS,     /* namespace(): a mutable dict with attribute access */
    TV_LOOP,   /* the loop variable */
    TV_FUNC,   /* a global function */
    TV_METHOD, /* a bound method: obj.name */
    TV_MACRO,  /* a {% macro %} of the template */
};

struct tlist;
struct tdict;
struct tloop;
struct tmethod;

struct tv {
    enum tv_type t;
    union {
        int64_t i; /* BOOL, INT; FUNC: id */
        double f;
        struct {
            const char *p;
            size_t n;
        } s;
        struct tlist *l;
        struct tdict *d;
        struct tloop *loop;
        struct tmethod *m;
        const struct node *macro;
        const char *undef; /* hint for UndefinedError, may be NULL */
    } u;
};

struct tlist {
    size_t n, cap;
    struct tv *v;
    int tuple;
};

struct tdict {
    size_t n, cap;
    struct tv *k, *v;
};

struct tloop {
    size_t index0, length;
    const struct tv *items;
};

struct tmethod {
    struct tv obj;
    const char *name;
};

enum tfunc {
    TF_NAMESPACE = 1,
    TF_RANGE,
    TF_DICT,
    TF_RAISE,
    TF_STRFTIME,
};

static inline struct tv tv_undef(const char *hint)
{
    struct tv v = {.t = TV_UNDEF};
    v.u.undef = hint;
    return v;
}
static inline struct tv tv_none(void) { return (struct tv){.t = TV_NONE}; }
static inline struct tv tv_bool(int b)
{
    struct tv v = {.t = TV_BOOL};
    v.u.i = b ? 1 : 0;
    return v;
}
static inline struct tv tv_int(int64_t i)
{
    struct tv v = {.t = TV_INT};
    v.u.i = i;
    return v;
}
static inline struct tv tv_float(double f)
{
    struct tv v = {.t = TV_FLOAT};
    v.u.f = f;
    return v;
}
static inline struct tv tv_str(const char *p, size_t n)
{
    struct tv v = {.t = TV_STR};
    v.u.s.p = p;
    v.u.s.n = n;
    return v;
}

struct tlist *tl_new(struct tarena *a, size_t cap);
int tl_push(struct tarena *a, struct tlist *l, struct tv v);
struct tdict *td_new(struct tarena *a, size_t cap);
struct tv *td_get(const struct tdict *d, struct tv key);
struct tv *td_gets(const struct tdict *d, const char *key, size_t n);
int td_set(struct tarena *a, struct tdict *d, struct tv key, struct tv v);

int tv_truthy(struct tv v);
int tv_equal(struct tv a, struct tv b);
const char *tv_typename(struct tv v);
/* str() and repr() as Python prints them */
void tv_str_to(struct tbuf *b, struct tv v);
void tv_repr_to(struct tbuf *b, struct tv v);
void py_float_repr(struct tbuf *b, double d);
/* json.dumps; returns 0 or -1 with *bad set to the unserializable value's type name */
struct json_opts {
    int ensure_ascii;
    int indent; /* -1: none */
    const char *indent_str;
    size_t indent_len;
    const char *item_sep, *key_sep;
    size_t item_sep_len, key_sep_len;
    int sort_keys;
};
int tv_tojson(struct tbuf *b, struct tv v, const struct json_opts *o, int level, const char **bad);
struct tv tv_from_json(struct tarena *a, const cJSON *j);

/* UTF-8 helpers */
size_t utf8_len(const char *s, size_t n);            /* code points */
size_t utf8_next(const char *s, size_t n, size_t i); /* offset of the next code point */
uint32_t utf8_decode(const char *s, size_t n, size_t i, size_t *next);
int py_isspace(uint32_t c);

/* ---- tokens ---- */
enum tk_type {
    TK_EOF,
    TK_TEXT,
    TK_BLOCK_BEGIN,
    TK_BLOCK_END,
    TK_VAR_BEGIN,
    TK_VAR_END,
    TK_NAME,
    TK_STRING,
    TK_INT,
    TK_FLOAT,
    TK_OP,
};

struct tk {
    enum tk_type t;
    int line;
    const char *p; /* TEXT, NAME, OP, STRING (decoded) */
    size_t n;
    int64_t i;
    double f;
};

struct tk_list {
    struct tk *v;
    size_t n, cap;
};

/* Lexes jinja source (already newline-normalized); 0 or MS_ERR_INVALID with "line N: ...". */
int tmpl_lex(struct tarena *a, const char *src, size_t len, struct tk_list *out,
             struct ms_err *err);

/* ---- syntax tree ---- */
enum nk {
    /* expressions */
    N_CONST,
    N_NAME,
    N_LIST,
    N_TUPLE,
    N_DICT,
    N_ATTR,
    N_ITEM,
    N_SLICE,
    N_CALL,
    N_FILTER,
    N_TEST,
    N_NEG,
    N_POS,
    N_NOT,
    N_BIN,
    N_CONCAT,
    N_CMP,
    N_AND,
    N_OR,
    N_COND,
    /* statements */
    S_TEXT,
    S_OUT,
    S_IF,
    S_FOR,
    S_SET,
    S_SETBLOCK,
    S_BREAK,
    S_CONTINUE,
    S_MACRO,
};

enum binop { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_FLOORDIV, OP_MOD, OP_POW };
enum cmpop { CMP_EQ, CMP_NE, CMP_LT, CMP_LE, CMP_GT, CMP_GE, CMP_IN, CMP_NOTIN };

struct node;
struct nlist {
    struct node **v;
    int n, cap;
};

struct node {
    enum nk k;
    int line;
    int op;           /* binop, filter/test id, cmp ops in ops[] */
    struct tv val;    /* N_CONST */
    const char *name; /* NAME, ATTR, FILTER, TEST, SET target, SET ns attribute */
    const char *name2;
    struct node *a, *b, *c;
    struct nlist args;  /* call/filter/test args, list/tuple items, dict k,v pairs, cmp operands */
    const char **kw;    /* per arg: keyword name or NULL */
    int *ops;           /* N_CMP */
    struct nlist body;  /* FOR body, SETBLOCK body */
    struct nlist body2; /* FOR else */
    struct nlist *bodies; /* IF: one per branch (nbranch = args.n conditions, + else) */
    int nbodies;
    int konst;            /* a literal-only expression jinja2's optimizer folds at compile time */
    const char **targets; /* FOR/SET tuple targets; MACRO parameter names (defaults in args) */
    int ntargets;
};

struct chat_template {
    struct tarena arena;
    char *source;
    struct nlist body;
    cJSON *special; /* object of special tokens or NULL */
};

int tmpl_parse(struct chat_template *t, const struct tk_list *toks, struct ms_err *err);

/* filters and tests known to the evaluator, by name; -1 if unknown */
int tmpl_filter_id(const char *name);
int tmpl_test_id(const char *name);
int tmpl_method_known(const char *name);
int tmpl_global_id(const char *name);

/* Marks the expressions jinja2 would constant-fold (node->konst), after parsing. */
void tmpl_mark_const(struct nlist *body);

int tmpl_exec(const struct chat_template *t, struct tdict *vars, struct tarena *a, struct tbuf *out,
              struct ms_err *err);

#endif
