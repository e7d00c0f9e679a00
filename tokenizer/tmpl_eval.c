/* Chat-template evaluator: runs the syntax tree with jinja2's semantics under
 * ImmutableSandboxedEnvironment (Python truthiness, str(), arithmetic and comparison rules, default
 * Undefined), transformers' tojson, raise_exception and strftime_now. All state lives in the
 * caller's arena, so renders of one template are independent. */
#include "tokenizer/tmpl_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { FLOW_BREAK = 1, FLOW_CONTINUE = 2 };
#define MAX_STR ((size_t)1 << 28)

struct scope {
    struct scope *parent;
    struct tdict *vars;
};

struct ctx {
    struct tarena *a;
    struct tbuf *out;
    struct ms_err *err;
    struct scope *sc;
    struct scope *root;
    int folding; /* evaluating a {{ }} expression that jinja2 folds at compile time */
};

/* ---- names the parser checks ---- */
enum filt {
    F_TOJSON,
    F_TRIM,
    F_LENGTH,
    F_DEFAULT,
    F_STRING,
    F_LOWER,
    F_UPPER,
    F_ITEMS,
    F_JOIN,
    F_SAFE,
    F_FIRST,
    F_LAST,
    F_LIST,
    F_INT,
    F_FLOAT,
    F_ABS,
    F_CAPITALIZE,
    F_TITLE,
    F_REPLACE,
    F_REVERSE,
    F_ESCAPE,
    F_SELECTATTR,
    F_REJECTATTR,
    F_MAP,
    F_UNIQUE,
    F_DICTSORT,
    F_SORT,
    F_SUM,
    F_MIN,
    F_MAX,
    F_WORDCOUNT,
    F_INDENT,
    F_ROUND,
    F_BOOL,
};
static const struct {
    const char *name;
    int id;
} filters[] = {
    {"tojson", F_TOJSON},
    {"trim", F_TRIM},
    {"length", F_LENGTH},
    {"count", F_LENGTH},
    {"default", F_DEFAULT},
    {"d", F_DEFAULT},
    {"string", F_STRING},
    {"lower", F_LOWER},
    {"upper", F_UPPER},
    {"items", F_ITEMS},
    {"join", F_JOIN},
    {"safe", F_SAFE},
    {"first", F_FIRST},
    {"last", F_LAST},
    {"list", F_LIST},
    {"int", F_INT},
    {"float", F_FLOAT},
    {"abs", F_ABS},
    {"capitalize", F_CAPITALIZE},
    {"title", F_TITLE},
    {"replace", F_REPLACE},
    {"reverse", F_REVERSE},
    {"e", F_ESCAPE},
    {"escape", F_ESCAPE},
    {"selectattr", F_SELECTATTR},
    {"rejectattr", F_REJECTATTR},
    {"map", F_MAP},
    {"unique", F_UNIQUE},
};

enum test {
    T_DEFINED,
    T_UNDEFINED,
    T_NONE,
    T_STRING,
    T_MAPPING,
    T_SEQUENCE,
    T_ITERABLE,
    T_NUMBER,
    T_INTEGER,
    T_FLOAT,
    T_BOOLEAN,
    T_TRUE,
    T_FALSE,
    T_CALLABLE,
    T_EVEN,
    T_ODD,
    T_DIVISIBLEBY,
    T_EQ,
    T_NE,
    T_LT,
    T_LE,
    T_GT,
    T_GE,
    T_IN,
    T_SAMEAS,
    T_LOWER,
    T_UPPER,
};
static const struct {
    const char *name;
    int id;
} tests[] = {
    {"defined", T_DEFINED},
    {"undefined", T_UNDEFINED},
    {"none", T_NONE},
    {"string", T_STRING},
    {"mapping", T_MAPPING},
    {"sequence", T_SEQUENCE},
    {"iterable", T_ITERABLE},
    {"number", T_NUMBER},
    {"integer", T_INTEGER},
    {"float", T_FLOAT},
    {"boolean", T_BOOLEAN},
    {"true", T_TRUE},
    {"false", T_FALSE},
    {"callable", T_CALLABLE},
    {"even", T_EVEN},
    {"odd", T_ODD},
    {"divisibleby", T_DIVISIBLEBY},
    {"eq", T_EQ},
    {"equalto", T_EQ},
    {"==", T_EQ},
    {"ne", T_NE},
    {"!=", T_NE},
    {"lt", T_LT},
    {"lessthan", T_LT},
    {"le", T_LE},
    {"gt", T_GT},
    {"greaterthan", T_GT},
    {"ge", T_GE},
    {"in", T_IN},
    {"sameas", T_SAMEAS},
    {"lower", T_LOWER},
    {"upper", T_UPPER},
};

static const char *const str_methods[] = {
    "startswith", "endswith", "split",   "rsplit",     "strip",   "lstrip",  "rstrip", "replace",
    "upper",      "lower",    "title",   "capitalize", "find",    "rfind",   "count",  "join",
    "isdigit",    "isalpha",  "isalnum", "isspace",    "islower", "isupper", NULL,
};
static const char *const dict_methods[] = {"get", "items", "keys", "values", NULL};
static const char *const dict_attr_methods[] = {
    "get",      "items", "keys",    "values",     "clear",  "copy",
    "fromkeys", "pop",   "popitem", "setdefault", "update", NULL,
};

static int in_list(const char *const *l, const char *name)
{
    for (int i = 0; l[i]; i++)
        if (!strcmp(l[i], name)) return 1;
    return 0;
}

int tmpl_filter_id(const char *name)
{
    for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++)
        if (!strcmp(filters[i].name, name)) return filters[i].id;
    return -1;
}

int tmpl_test_id(const char *name)
{
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
        if (!strcmp(tests[i].name, name)) return tests[i].id;
    return -1;
}

int tmpl_method_known(const char *name)
{
    return in_list(str_methods, name) || in_list(dict_methods, name) || !strcmp(name, "cycle") ||
           !strcmp(name, "index");
}

int tmpl_global_id(const char *name)
{
    if (!strcmp(name, "namespace")) return TF_NAMESPACE;
    if (!strcmp(name, "range")) return TF_RANGE;
    if (!strcmp(name, "dict")) return TF_DICT;
    if (!strcmp(name, "raise_exception")) return TF_RAISE;
    if (!strcmp(name, "strftime_now")) return TF_STRFTIME;
    return -1;
}

/* ---- errors ---- */
static int rt(struct ctx *c, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int rt(struct ctx *c, int line, const char *fmt, ...)
{
    char msg[450];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ms_err_set(c->err, MS_ERR_INVALID, "chat template line %d: %s", line, msg);
}

static int nomem(struct ctx *c)
{
    return ms_err_set(c->err, MS_ERR_NOMEM, "out of memory rendering template");
}

static int undef_err(struct ctx *c, int line, struct tv u)
{
    return rt(c, line, "%s", u.u.undef ? u.u.undef : "value is undefined");
}

static const char *hint(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static const char *hint(struct ctx *c, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ta_strndup(c->a, msg, strlen(msg));
}

static const char *obj_desc(struct tv v)
{
    switch (v.t) {
    case TV_NONE: return "None";
    case TV_DICT: return "dict object";
    case TV_LIST: return v.u.l->tuple ? "tuple object" : "list object";
    case TV_STR: return "str object";
    case TV_INT: return "int object";
    case TV_FLOAT: return "float object";
    case TV_BOOL: return "bool object";
    case TV_NS: return "jinja2.utils.Namespace object";
    case TV_LOOP: return "jinja2.runtime.LoopContext object";
    default: return "object";
    }
}

/* ---- value helpers ---- */
static int buf_to_str(struct ctx *c, struct tbuf *b, struct tv *out)
{
    if (b->oom) {
        free(b->p);
        return nomem(c);
    }
    char *s = ta_strndup(c->a, b->p ? b->p : "", b->n);
    size_t n = b->n;
    free(b->p);
    if (!s) return nomem(c);
    *out = tv_str(s, n);
    return 0;
}

static int to_str(struct ctx *c, struct tv v, struct tv *out)
{
    if (v.t == TV_STR) {
        *out = v;
        return 0;
    }
    struct tbuf b = {0};
    tv_str_to(&b, v);
    return buf_to_str(c, &b, out);
}

static struct tv mk_list(struct tlist *l)
{
    struct tv v = {.t = TV_LIST};
    v.u.l = l;
    return v;
}

static struct tv mk_dict(struct tdict *d, enum tv_type t)
{
    struct tv v = {.t = t};
    v.u.d = d;
    return v;
}

static int is_int(struct tv v) { return v.t == TV_INT || v.t == TV_BOOL; }
static int is_num(struct tv v) { return v.t == TV_INT || v.t == TV_BOOL || v.t == TV_FLOAT; }
static double num_f(struct tv v) { return v.t == TV_FLOAT ? v.u.f : (double)v.u.i; }

/* code point offsets of a string: off[i] for i in 0..cnt (off[cnt] == n) */
static size_t *cp_offsets(struct ctx *c, const char *s, size_t n, size_t *cnt)
{
    size_t k = utf8_len(s, n);
    size_t *off = ta_alloc(c->a, (k + 1) * sizeof *off);
    if (!off) return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n; i = utf8_next(s, n, i)) off[j++] = i;
    off[j] = n;
    *cnt = k;
    return off;
}

static struct tv substr(const char *s, size_t a, size_t b) { return tv_str(s + a, b - a); }

/* Items of an iterable as Python iterates it; UNDEF iterates as empty. */
static int iterate(struct ctx *c, int line, struct tv v, struct tlist **out)
{
    struct tlist *l;
    switch (v.t) {
    case TV_UNDEF: *out = tl_new(c->a, 0); return *out ? 0 : nomem(c);
    case TV_LIST: *out = v.u.l; return 0;
    case TV_DICT:
        l = tl_new(c->a, v.u.d->n);
        if (!l) return nomem(c);
        for (size_t i = 0; i < v.u.d->n; i++) tl_push(c->a, l, v.u.d->k[i]);
        *out = l;
        return 0;
    case TV_STR: {
        l = tl_new(c->a, v.u.s.n);
        if (!l) return nomem(c);
        for (size_t i = 0; i < v.u.s.n;) {
            size_t j = utf8_next(v.u.s.p, v.u.s.n, i);
            if (tl_push(c->a, l, substr(v.u.s.p, i, j))) return nomem(c);
            i = j;
        }
        *out = l;
        return 0;
    }
    default: return rt(c, line, "'%s' object is not iterable", tv_typename(v));
    }
}

/* ---- case mapping (ASCII, Latin-1, Greek, Cyrillic) ---- */
static uint32_t cp_upper(uint32_t c)
{
    if (c >= 'a' && c <= 'z') return c - 32;
    if (c < 0x80) return c;
    if ((c >= 0xE0 && c <= 0xFE && c != 0xF7)) return c - 32;
    if (c >= 0x3B1 && c <= 0x3C9 && c != 0x3C2) return c - 32;
    if (c == 0x3C2) return 0x3A3;
    if (c >= 0x430 && c <= 0x44F) return c - 32;
    if (c >= 0x450 && c <= 0x45F) return c - 80;
    return c;
}

static uint32_t cp_lower(uint32_t c)
{
    if (c >= 'A' && c <= 'Z') return c + 32;
    if (c < 0x80) return c;
    if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
    if (c >= 0x391 && c <= 0x3A9 && c != 0x3A2) return c + 32;
    if (c >= 0x410 && c <= 0x42F) return c + 32;
    if (c >= 0x400 && c <= 0x40F) return c + 80;
    return c;
}

static int cp_cased(uint32_t c) { return cp_upper(c) != c || cp_lower(c) != c; }

static void put_cp(struct tbuf *b, uint32_t c)
{
    char o[4];
    size_t k = 0;
    if (c < 0x80) {
        o[k++] = (char)c;
    } else if (c < 0x800) {
        o[k++] = (char)(0xC0 | (c >> 6));
        o[k++] = (char)(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        o[k++] = (char)(0xE0 | (c >> 12));
        o[k++] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[k++] = (char)(0x80 | (c & 0x3F));
    } else {
        o[k++] = (char)(0xF0 | (c >> 18));
        o[k++] = (char)(0x80 | ((c >> 12) & 0x3F));
        o[k++] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[k++] = (char)(0x80 | (c & 0x3F));
    }
    tb_put(b, o, k);
}

/* mode: 'u' upper, 'l' lower, 'c' capitalize, 't' Python title, 'j' jinja title */
static int str_case(struct ctx *c, struct tv s, char mode, struct tv *out)
{
    struct tbuf b = {0};
    int prev_cased = 0, first = 1, word_start = 1;
    for (size_t i = 0; i < s.u.s.n;) {
        size_t next;
        uint32_t cp = utf8_decode(s.u.s.p, s.u.s.n, i, &next);
        uint32_t r = cp;
        switch (mode) {
        case 'u': r = cp_upper(cp); break;
        case 'l': r = cp_lower(cp); break;
        case 'c': r = first ? cp_upper(cp) : cp_lower(cp); break;
        case 't':
            r = prev_cased ? cp_lower(cp) : cp_upper(cp);
            prev_cased = cp_cased(cp);
            break;
        case 'j': {
            int sep =
                cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || py_isspace(cp);
            r = sep ? cp : word_start ? cp_upper(cp) : cp_lower(cp);
            word_start = sep;
            break;
        }
        }
        first = 0;
        put_cp(&b, r);
        i = next;
    }
    return buf_to_str(c, &b, out);
}

/* ---- strip / split / replace ---- */
static int in_chars(uint32_t cp, const struct tv *chars)
{
    if (!chars) return py_isspace(cp);
    for (size_t i = 0; i < chars->u.s.n;) {
        size_t next;
        if (utf8_decode(chars->u.s.p, chars->u.s.n, i, &next) == cp) return 1;
        i = next;
    }
    return 0;
}

static struct tv str_strip(struct tv s, const struct tv *chars, int left, int right)
{
    const char *p = s.u.s.p;
    size_t a = 0, b = s.u.s.n;
    if (left)
        while (a < b) {
            size_t next;
            uint32_t cp = utf8_decode(p, b, a, &next);
            if (!in_chars(cp, chars)) break;
            a = next;
        }
    if (right)
        while (b > a) {
            size_t st = b - 1;
            while (st > a && ((unsigned char)p[st] & 0xC0) == 0x80) st--;
            uint32_t cp = utf8_decode(p, b, st, NULL);
            if (!in_chars(cp, chars)) break;
            b = st;
        }
    return tv_str(p + a, b - a);
}

static const char *memfind(const char *h, size_t hn, const char *nd, size_t nn)
{
    if (nn == 0) return h;
    if (nn > hn) return NULL;
    for (size_t i = 0; i + nn <= hn; i++)
        if (h[i] == nd[0] && !memcmp(h + i, nd, nn)) return h + i;
    return NULL;
}

static const char *memrfind(const char *h, size_t hn, const char *nd, size_t nn)
{
    if (nn > hn) return NULL;
    for (size_t i = hn - nn + 1; i-- > 0;)
        if (!memcmp(h + i, nd, nn)) return h + i;
    return NULL;
}

static int str_split(struct ctx *c, int line, struct tv s, const struct tv *sep, int64_t maxsplit,
                     int from_right, struct tv *out)
{
    struct tlist *l = tl_new(c->a, 4);
    if (!l) return nomem(c);
    const char *p = s.u.s.p;
    size_t n = s.u.s.n;
    if (sep && sep->t != TV_NONE) {
        if (sep->t != TV_STR) return rt(c, line, "must be str or None, not %s", tv_typename(*sep));
        if (sep->u.s.n == 0) return rt(c, line, "empty separator");
        if (from_right && maxsplit >= 0) {
            struct tlist *r = tl_new(c->a, 4);
            if (!r) return nomem(c);
            size_t end = n;
            int64_t splits = 0;
            const char *f;
            while (splits < maxsplit && (f = memrfind(p, end, sep->u.s.p, sep->u.s.n))) {
                size_t at = (size_t)(f - p);
                tl_push(c->a, r, substr(p, at + sep->u.s.n, end));
                end = at;
                splits++;
            }
            tl_push(c->a, r, substr(p, 0, end));
            for (size_t i = r->n; i-- > 0;) tl_push(c->a, l, r->v[i]);
        } else {
            size_t start = 0;
            int64_t splits = 0;
            const char *f;
            while ((maxsplit < 0 || splits < maxsplit) &&
                   (f = memfind(p + start, n - start, sep->u.s.p, sep->u.s.n))) {
                size_t at = (size_t)(f - p);
                tl_push(c->a, l, substr(p, start, at));
                start = at + sep->u.s.n;
                splits++;
            }
            tl_push(c->a, l, substr(p, start, n));
        }
    } else {
        if (from_right && maxsplit >= 0)
            return rt(c, line, "rsplit(None, maxsplit) is not supported");
        size_t i = 0;
        int64_t splits = 0;
        for (;;) {
            while (i < n) {
                size_t next;
                if (!py_isspace(utf8_decode(p, n, i, &next))) break;
                i = next;
            }
            if (i >= n) break;
            if (maxsplit >= 0 && splits >= maxsplit) {
                tl_push(c->a, l, substr(p, i, n));
                break;
            }
            size_t st = i;
            while (i < n) {
                size_t next;
                if (py_isspace(utf8_decode(p, n, i, &next))) break;
                i = next;
            }
            tl_push(c->a, l, substr(p, st, i));
            splits++;
        }
    }
    if (c->a->oom) return nomem(c);
    *out = mk_list(l);
    return 0;
}

static int str_replace(struct ctx *c, struct tv s, struct tv old, struct tv nw, int64_t count,
                       struct tv *out)
{
    struct tbuf b = {0};
    const char *p = s.u.s.p;
    size_t n = s.u.s.n;
    int64_t done = 0;
    if (old.u.s.n == 0) {
        size_t i = 0;
        for (;;) {
            if (count < 0 || done < count) {
                tb_put(&b, nw.u.s.p, nw.u.s.n);
                done++;
            } else {
                tb_put(&b, p + i, n - i);
                break;
            }
            if (i >= n) break;
            size_t j = utf8_next(p, n, i);
            tb_put(&b, p + i, j - i);
            i = j;
        }
        return buf_to_str(c, &b, out);
    }
    size_t start = 0;
    const char *f;
    while ((count < 0 || done < count) &&
           (f = memfind(p + start, n - start, old.u.s.p, old.u.s.n))) {
        size_t at = (size_t)(f - p);
        tb_put(&b, p + start, at - start);
        tb_put(&b, nw.u.s.p, nw.u.s.n);
        start = at + old.u.s.n;
        done++;
    }
    tb_put(&b, p + start, n - start);
    return buf_to_str(c, &b, out);
}

/* ---- arguments ---- */
struct args {
    int n;           /* positional */
    struct tv v[16]; /* positional */
    int nkw;
    const char *kwn[8];
    struct tv kwv[8];
};

static int eval(struct ctx *c, const struct node *n, struct tv *out);

static int eval_args(struct ctx *c, const struct node *n, struct args *A)
{
    memset(A, 0, sizeof *A);
    for (int i = 0; i < n->args.n; i++) {
        struct tv v;
        int rc = eval(c, n->args.v[i], &v);
        if (rc) return rc;
        if (n->kw && n->kw[i]) {
            if (A->nkw == 8) return rt(c, n->line, "too many keyword arguments");
            A->kwn[A->nkw] = n->kw[i];
            A->kwv[A->nkw++] = v;
        } else {
            if (A->n == 16) return rt(c, n->line, "too many arguments");
            A->v[A->n++] = v;
        }
    }
    return 0;
}

/* Binds positional and keyword arguments to the parameter names (NULL-terminated); unset
 * parameters are left as TV_UNDEF with a NULL hint (check with `set[i]`). */
static int bind(struct ctx *c, int line, const char *fname, const struct args *A,
                const char *const *params, struct tv *vals, int *set)
{
    int np = 0;
    while (params[np]) np++;
    for (int i = 0; i < np; i++) {
        vals[i] = tv_undef(NULL);
        set[i] = 0;
    }
    if (A->n > np)
        return rt(c, line, "%s() takes at most %d arguments (%d given)", fname, np, A->n);
    for (int i = 0; i < A->n; i++) {
        vals[i] = A->v[i];
        set[i] = 1;
    }
    for (int k = 0; k < A->nkw; k++) {
        int found = 0;
        for (int i = 0; i < np; i++)
            if (!strcmp(params[i], A->kwn[k])) {
                if (set[i])
                    return rt(c, line, "%s() got multiple values for argument '%s'", fname,
                              params[i]);
                vals[i] = A->kwv[k];
                set[i] = 1;
                found = 1;
            }
        if (!found)
            return rt(c, line, "%s() got an unexpected keyword argument '%s'", fname, A->kwn[k]);
    }
    return 0;
}

static int need_str(struct ctx *c, int line, const char *what, struct tv v)
{
    if (v.t == TV_UNDEF) return undef_err(c, line, v);
    if (v.t != TV_STR) return rt(c, line, "%s must be str, not %s", what, tv_typename(v));
    return 0;
}

static int need_int(struct ctx *c, int line, const char *what, struct tv v)
{
    if (v.t == TV_UNDEF) return undef_err(c, line, v);
    if (!is_int(v)) return rt(c, line, "%s must be an integer, not %s", what, tv_typename(v));
    return 0;
}

/* ---- comparison ---- */
static int compare_order(struct ctx *c, int line, struct tv a, struct tv b, int *res)
{
    if (a.t == TV_UNDEF) return undef_err(c, line, a);
    if (b.t == TV_UNDEF) return undef_err(c, line, b);
    if (is_num(a) && is_num(b)) {
        if (is_int(a) && is_int(b))
            *res = a.u.i < b.u.i ? -1 : a.u.i > b.u.i;
        else {
            double x = num_f(a), y = num_f(b);
            *res = x < y ? -1 : x > y ? 1 : 0;
            if (isnan(x) || isnan(y)) *res = 2; /* unordered */
        }
        return 0;
    }
    if (a.t == TV_STR && b.t == TV_STR) {
        size_t n = a.u.s.n < b.u.s.n ? a.u.s.n : b.u.s.n;
        int r = memcmp(a.u.s.p, b.u.s.p, n);
        *res = r ? (r < 0 ? -1 : 1) : (a.u.s.n < b.u.s.n ? -1 : a.u.s.n > b.u.s.n);
        return 0;
    }
    if (a.t == TV_LIST && b.t == TV_LIST && a.u.l->tuple == b.u.l->tuple) {
        for (size_t i = 0; i < a.u.l->n && i < b.u.l->n; i++) {
            if (tv_equal(a.u.l->v[i], b.u.l->v[i])) continue;
            return compare_order(c, line, a.u.l->v[i], b.u.l->v[i], res);
        }
        *res = a.u.l->n < b.u.l->n ? -1 : a.u.l->n > b.u.l->n;
        return 0;
    }
    return rt(c, line, "'<' not supported between instances of '%s' and '%s'", tv_typename(a),
              tv_typename(b));
}

static int contains(struct ctx *c, int line, struct tv needle, struct tv hay, int *res)
{
    switch (hay.t) {
    case TV_UNDEF: *res = 0; return 0;
    case TV_STR:
        if (needle.t == TV_UNDEF) return undef_err(c, line, needle);
        if (needle.t != TV_STR)
            return rt(c, line, "'in <string>' requires string as left operand, not %s",
                      tv_typename(needle));
        *res = memfind(hay.u.s.p, hay.u.s.n, needle.u.s.p, needle.u.s.n) != NULL;
        return 0;
    case TV_LIST:
        *res = 0;
        for (size_t i = 0; i < hay.u.l->n; i++)
            if (tv_equal(hay.u.l->v[i], needle)) {
                *res = 1;
                break;
            }
        return 0;
    case TV_DICT: *res = td_get(hay.u.d, needle) != NULL; return 0;
    default: return rt(c, line, "argument of type '%s' is not iterable", tv_typename(hay));
    }
}

static int cmp_op(struct ctx *c, int line, int op, struct tv a, struct tv b, int *res)
{
    int r, rc;
    switch (op) {
    case CMP_EQ: *res = tv_equal(a, b); return 0;
    case CMP_NE: *res = !tv_equal(a, b); return 0;
    case CMP_IN: return contains(c, line, a, b, res);
    case CMP_NOTIN:
        rc = contains(c, line, a, b, res);
        *res = !*res;
        return rc;
    default:
        rc = compare_order(c, line, a, b, &r);
        if (rc) return rc;
        if (r == 2) {
            *res = 0;
            return 0;
        }
        *res = op == CMP_LT ? r < 0 : op == CMP_LE ? r <= 0 : op == CMP_GT ? r > 0 : r >= 0;
        return 0;
    }
}

/* ---- arithmetic ---- */
static int repeat(struct ctx *c, int line, struct tv seq, int64_t times, struct tv *out)
{
    if (times < 0) times = 0;
    if (seq.t == TV_STR) {
        if (seq.u.s.n && (uint64_t)times > MAX_STR / seq.u.s.n)
            return rt(c, line, "string repetition too large");
        struct tbuf b = {0};
        for (int64_t i = 0; i < times; i++) tb_put(&b, seq.u.s.p, seq.u.s.n);
        return buf_to_str(c, &b, out);
    }
    if (seq.u.l->n && (uint64_t)times > (1u << 24) / seq.u.l->n)
        return rt(c, line, "list repetition too large");
    struct tlist *l = tl_new(c->a, seq.u.l->n * (size_t)times);
    if (!l) return nomem(c);
    l->tuple = seq.u.l->tuple;
    for (int64_t i = 0; i < times; i++)
        for (size_t j = 0; j < seq.u.l->n; j++) tl_push(c->a, l, seq.u.l->v[j]);
    *out = mk_list(l);
    return 0;
}

static const char *op_sym(int op)
{
    static const char *const s[] = {"+", "-", "*", "/", "//", "%", "**"};
    return s[op];
}

static int binop(struct ctx *c, int line, int op, struct tv a, struct tv b, struct tv *out)
{
    if (a.t == TV_UNDEF) return undef_err(c, line, a);
    if (b.t == TV_UNDEF) return undef_err(c, line, b);
    if (is_num(a) && is_num(b)) {
        if (is_int(a) && is_int(b)) {
            int64_t x = a.u.i, y = b.u.i, r;
            switch (op) {
            case OP_ADD:
                if (__builtin_add_overflow(x, y, &r)) goto overflow;
                *out = tv_int(r);
                return 0;
            case OP_SUB:
                if (__builtin_sub_overflow(x, y, &r)) goto overflow;
                *out = tv_int(r);
                return 0;
            case OP_MUL:
                if (__builtin_mul_overflow(x, y, &r)) goto overflow;
                *out = tv_int(r);
                return 0;
            case OP_DIV:
                if (y == 0) return rt(c, line, "division by zero");
                *out = tv_float((double)x / (double)y);
                return 0;
            case OP_FLOORDIV:
            case OP_MOD: {
                if (y == 0)
                    return rt(c, line,
                              op == OP_MOD ? "integer modulo by zero"
                                           : "integer division or modulo by zero");
                if (x == INT64_MIN && y == -1) goto overflow;
                int64_t q = x / y, m = x % y;
                if (m != 0 && ((m < 0) != (y < 0))) {
                    q--;
                    m += y;
                }
                *out = tv_int(op == OP_MOD ? m : q);
                return 0;
            }
            case OP_POW:
                if (y >= 0) {
                    int64_t acc = 1;
                    for (int64_t i = 0; i < y; i++) {
                        if (__builtin_mul_overflow(acc, x, &acc)) goto overflow;
                        if (acc == 0 || acc == 1) break;
                    }
                    *out = tv_int(acc);
                    return 0;
                }
                *out = tv_float(pow((double)x, (double)y));
                return 0;
            }
        }
        double x = num_f(a), y = num_f(b);
        switch (op) {
        case OP_ADD: *out = tv_float(x + y); return 0;
        case OP_SUB: *out = tv_float(x - y); return 0;
        case OP_MUL: *out = tv_float(x * y); return 0;
        case OP_DIV:
            if (y == 0) return rt(c, line, "float division by zero");
            *out = tv_float(x / y);
            return 0;
        case OP_FLOORDIV:
        case OP_MOD: {
            if (y == 0) return rt(c, line, "float modulo");
            double m = fmod(x, y);
            if (m != 0 && ((m < 0) != (y < 0))) m += y;
            double q = floor((x - m) / y + 0.5);
            if (op == OP_MOD) {
                if (m == 0) m = copysign(0.0, y);
                *out = tv_float(m);
            } else {
                *out = tv_float(floor(x / y) == q ? q : floor(x / y));
            }
            return 0;
        }
        case OP_POW: *out = tv_float(pow(x, y)); return 0;
        }
    }
    if (op == OP_ADD && a.t == TV_STR && b.t == TV_STR) {
        struct tbuf bb = {0};
        tb_put(&bb, a.u.s.p, a.u.s.n);
        tb_put(&bb, b.u.s.p, b.u.s.n);
        return buf_to_str(c, &bb, out);
    }
    if (op == OP_ADD && a.t == TV_LIST && b.t == TV_LIST && a.u.l->tuple == b.u.l->tuple) {
        struct tlist *l = tl_new(c->a, a.u.l->n + b.u.l->n);
        if (!l) return nomem(c);
        l->tuple = a.u.l->tuple;
        for (size_t i = 0; i < a.u.l->n; i++) tl_push(c->a, l, a.u.l->v[i]);
        for (size_t i = 0; i < b.u.l->n; i++) tl_push(c->a, l, b.u.l->v[i]);
        *out = mk_list(l);
        return 0;
    }
    if (op == OP_MUL && (a.t == TV_STR || a.t == TV_LIST) && is_int(b))
        return repeat(c, line, a, b.u.i, out);
    if (op == OP_MUL && (b.t == TV_STR || b.t == TV_LIST) && is_int(a))
        return repeat(c, line, b, a.u.i, out);
    if (op == OP_ADD && a.t == TV_STR)
        return rt(c, line, "can only concatenate str (not \"%s\") to str", tv_typename(b));
    if (op == OP_ADD && a.t == TV_LIST)
        return rt(c, line, "can only concatenate %s (not \"%s\") to %s", tv_typename(a),
                  tv_typename(b), tv_typename(a));
    if (op == OP_MOD && a.t == TV_STR)
        return rt(c, line, "printf-style string formatting ('%%' on str) is not supported");
    return rt(c, line, "unsupported operand type(s) for %s: '%s' and '%s'", op_sym(op),
              tv_typename(a), tv_typename(b));
overflow:
    return rt(c, line, "integer overflow (integers beyond 64 bits are not supported)");
}

/* ---- attribute and item access ---- */
static int mk_method(struct ctx *c, struct tv obj, const char *name, struct tv *out)
{
    struct tmethod *m = ta_alloc(c->a, sizeof *m);
    if (!m) return nomem(c);
    m->obj = obj;
    m->name = name;
    out->t = TV_METHOD;
    out->u.m = m;
    return 0;
}

static int loop_attr(struct ctx *c, struct tloop *L, const char *name, struct tv *out)
{
    int64_t i0 = (int64_t)L->index0, len = (int64_t)L->length;
    if (!strcmp(name, "index0"))
        *out = tv_int(i0);
    else if (!strcmp(name, "index"))
        *out = tv_int(i0 + 1);
    else if (!strcmp(name, "revindex"))
        *out = tv_int(len - i0);
    else if (!strcmp(name, "revindex0"))
        *out = tv_int(len - i0 - 1);
    else if (!strcmp(name, "first"))
        *out = tv_bool(i0 == 0);
    else if (!strcmp(name, "last"))
        *out = tv_bool(i0 == len - 1);
    else if (!strcmp(name, "length"))
        *out = tv_int(len);
    else if (!strcmp(name, "depth"))
        *out = tv_int(1);
    else if (!strcmp(name, "depth0"))
        *out = tv_int(0);
    else if (!strcmp(name, "previtem"))
        *out = i0 > 0 ? L->items[i0 - 1] : tv_undef(hint(c, "there is no previous item"));
    else if (!strcmp(name, "nextitem"))
        *out = i0 + 1 < len ? L->items[i0 + 1] : tv_undef(hint(c, "there is no next item"));
    else
        return 0;
    return 1;
}

static int getattr(struct ctx *c, int line, struct tv obj, const char *name, struct tv *out)
{
    struct tv *v;
    switch (obj.t) {
    case TV_UNDEF: return undef_err(c, line, obj);
    case TV_DICT:
        if (in_list(dict_attr_methods, name)) return mk_method(c, obj, name, out);
        v = td_gets(obj.u.d, name, strlen(name));
        if (v) {
            *out = *v;
            return 0;
        }
        break;
    case TV_NS:
        v = td_gets(obj.u.d, name, strlen(name));
        if (v) {
            *out = *v;
            return 0;
        }
        break;
    case TV_STR:
        if (in_list(str_methods, name)) return mk_method(c, obj, name, out);
        break;
    case TV_LIST:
        if (!strcmp(name, "count") || !strcmp(name, "index")) return mk_method(c, obj, name, out);
        break;
    case TV_LOOP:
        if (!strcmp(name, "cycle")) return mk_method(c, obj, name, out);
        if (loop_attr(c, obj.u.loop, name, out)) return 0;
        break;
    default: break;
    }
    *out = tv_undef(hint(c, "'%s' has no attribute '%s'", obj_desc(obj), name));
    return 0;
}

static int64_t adj_index(int64_t i, size_t n) { return i < 0 ? i + (int64_t)n : i; }

static int getitem(struct ctx *c, int line, struct tv obj, struct tv key, struct tv *out)
{
    if (obj.t == TV_UNDEF) return undef_err(c, line, obj);
    if (obj.t == TV_DICT) {
        struct tv *v = td_get(obj.u.d, key);
        if (v) {
            *out = *v;
            return 0;
        }
    } else if (obj.t == TV_LIST && is_int(key)) {
        int64_t i = adj_index(key.u.i, obj.u.l->n);
        if (i >= 0 && (size_t)i < obj.u.l->n) {
            *out = obj.u.l->v[i];
            return 0;
        }
    } else if (obj.t == TV_STR && is_int(key)) {
        size_t cnt, *off = cp_offsets(c, obj.u.s.p, obj.u.s.n, &cnt);
        if (!off) return nomem(c);
        int64_t i = adj_index(key.u.i, cnt);
        if (i >= 0 && (size_t)i < cnt) {
            *out = substr(obj.u.s.p, off[i], off[i + 1]);
            return 0;
        }
    }
    if (key.t == TV_STR && obj.t != TV_DICT)
        return getattr(c, line, obj, ta_strndup(c->a, key.u.s.p, key.u.s.n), out);
    if (key.t == TV_STR && obj.t == TV_DICT) {
        const char *k = ta_strndup(c->a, key.u.s.p, key.u.s.n);
        if (!k) return nomem(c);
        if (in_list(dict_attr_methods, k)) return mk_method(c, obj, k, out);
        *out = tv_undef(hint(c, "'%s' has no attribute '%s'", obj_desc(obj), k));
        return 0;
    }
    struct tbuf b = {0};
    tv_repr_to(&b, key);
    *out = tv_undef(hint(c, "'%s' has no element %s", obj_desc(obj), b.p ? b.p : ""));
    free(b.p);
    return 0;
}

static int slice_arg(struct ctx *c, int line, const struct node *n, int64_t *v, int *present)
{
    *present = 0;
    if (!n) return 0;
    struct tv x;
    int rc = eval(c, n, &x);
    if (rc) return rc;
    if (x.t == TV_NONE) return 0;
    if (x.t == TV_UNDEF) return undef_err(c, line, x);
    if (!is_int(x)) return rt(c, line, "slice indices must be integers or None");
    *v = x.u.i;
    *present = 1;
    return 0;
}

/* Whether jinja2's optimizer folds this expression at compile time (only literals, operators,
 * filters, tests, attribute and item access). Folding subscribes through the sandbox, so a failed
 * slice of a constant is undefined, while at run time slices bypass the sandbox and raise. */
static int const_expr(const struct node *n)
{
    if (!n) return 1;
    switch (n->k) {
    case N_CONST: return 1;
    case N_LIST:
    case N_TUPLE:
    case N_DICT:
    case N_CONCAT:
    case N_CMP:
    case N_FILTER:
    case N_TEST:
        for (int i = 0; i < n->args.n; i++)
            if (!const_expr(n->args.v[i])) return 0;
        return n->k == N_FILTER || n->k == N_TEST ? const_expr(n->a) : 1;
    case N_SLICE:
    case N_BIN:
    case N_NEG:
    case N_POS:
    case N_NOT:
    case N_AND:
    case N_OR:
    case N_COND:
    case N_ATTR:
    case N_ITEM: return const_expr(n->a) && const_expr(n->b) && const_expr(n->c);
    default: return 0;
    }
}

static void mark_expr(struct node *n)
{
    if (!n) return;
    mark_expr(n->a);
    mark_expr(n->b);
    mark_expr(n->c);
    for (int i = 0; i < n->args.n; i++) mark_expr(n->args.v[i]);
    n->konst = n->k != N_CONST && n->k != N_SLICE && const_expr(n);
}

void tmpl_mark_const(struct nlist *body)
{
    for (int i = 0; i < body->n; i++) {
        struct node *n = body->v[i];
        mark_expr(n->a);
        mark_expr(n->b);
        for (int k = 0; k < n->args.n; k++) mark_expr(n->args.v[k]);
        for (int k = 0; k < n->nbodies; k++) tmpl_mark_const(&n->bodies[k]);
        tmpl_mark_const(&n->body);
        tmpl_mark_const(&n->body2);
    }
}

static int do_slice(struct ctx *c, int line, struct tv obj, const struct node *s, struct tv *out,
                    int folded)
{
    int64_t start = 0, stop = 0, step = 1;
    int has_start, has_stop, has_step;
    int rc = slice_arg(c, line, s->a, &start, &has_start);
    if (!rc) rc = slice_arg(c, line, s->b, &stop, &has_stop);
    if (!rc) rc = slice_arg(c, line, s->c, &step, &has_step);
    if (rc) return rc;
    if (!has_step) step = 1;
    if (step == 0) return rt(c, line, "slice step cannot be zero");
    if (obj.t == TV_UNDEF) return undef_err(c, line, obj);
    size_t len, *off = NULL;
    if (obj.t == TV_LIST)
        len = obj.u.l->n;
    else if (obj.t == TV_STR) {
        off = cp_offsets(c, obj.u.s.p, obj.u.s.n, &len);
        if (!off) return nomem(c);
    } else if (folded) {
        *out = tv_undef(hint(c, "'%s' has no element slice", obj_desc(obj)));
        return 0;
    } else if (obj.t == TV_DICT) {
        return rt(c, line, "unhashable type: 'slice'");
    } else {
        /* jinja2 slices with Python's subscript directly, not the sandbox's getitem */
        return rt(c, line, "'%s' object is not subscriptable", tv_typename(obj));
    }
    int64_t L = (int64_t)len;
    /* PySlice_AdjustIndices */
    if (!has_start)
        start = step < 0 ? L - 1 : 0;
    else {
        if (start < 0) {
            start += L;
            if (start < 0) start = step < 0 ? -1 : 0;
        } else if (start >= L)
            start = step < 0 ? L - 1 : L;
    }
    if (!has_stop)
        stop = step < 0 ? -1 : L;
    else {
        if (stop < 0) {
            stop += L;
            if (stop < 0) stop = step < 0 ? -1 : 0;
        } else if (stop >= L)
            stop = step < 0 ? L - 1 : L;
    }
    if (obj.t == TV_LIST) {
        struct tlist *l = tl_new(c->a, 4);
        if (!l) return nomem(c);
        l->tuple = obj.u.l->tuple;
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step)
            if (tl_push(c->a, l, obj.u.l->v[i])) return nomem(c);
        *out = mk_list(l);
        return 0;
    }
    if (step == 1) {
        *out = start < stop ? substr(obj.u.s.p, off[start], off[stop]) : tv_str("", 0);
        return 0;
    }
    struct tbuf b = {0};
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step)
        tb_put(&b, obj.u.s.p + off[i], off[i + 1] - off[i]);
    return buf_to_str(c, &b, out);
}

/* ---- tojson ---- */
static int do_tojson(struct ctx *c, int line, struct tv v, const struct args *A, struct tv *out)
{
    static const char *const params[] = {"ensure_ascii", "indent", "separators", "sort_keys", NULL};
    struct tv p[4];
    int set[4];
    int rc = bind(c, line, "tojson", A, params, p, set);
    if (rc) return rc;
    struct json_opts o = {
        .indent = -1, .item_sep = ", ", .key_sep = ": ", .item_sep_len = 2, .key_sep_len = 2};
    char spaces[64];
    if (set[0]) o.ensure_ascii = tv_truthy(p[0]);
    if (set[1] && p[1].t != TV_NONE) {
        if (is_int(p[1])) {
            int64_t k = p[1].u.i < 0 ? 0 : p[1].u.i > 60 ? 60 : p[1].u.i;
            memset(spaces, ' ', (size_t)k);
            o.indent = 1;
            o.indent_str = spaces;
            o.indent_len = (size_t)k;
        } else if (p[1].t == TV_STR) {
            o.indent = 1;
            o.indent_str = p[1].u.s.p;
            o.indent_len = p[1].u.s.n;
        } else {
            return rt(c, line, "tojson indent must be an int or a string");
        }
        o.item_sep = ",";
        o.item_sep_len = 1;
    }
    if (set[2] && p[2].t != TV_NONE) {
        if (p[2].t != TV_LIST || p[2].u.l->n != 2 || p[2].u.l->v[0].t != TV_STR ||
            p[2].u.l->v[1].t != TV_STR)
            return rt(c, line, "tojson separators must be a pair of strings");
        o.item_sep = p[2].u.l->v[0].u.s.p;
        o.item_sep_len = p[2].u.l->v[0].u.s.n;
        o.key_sep = p[2].u.l->v[1].u.s.p;
        o.key_sep_len = p[2].u.l->v[1].u.s.n;
    }
    if (set[3]) o.sort_keys = tv_truthy(p[3]);
    struct tbuf b = {0};
    const char *bad = NULL;
    if (tv_tojson(&b, v, &o, 0, &bad)) {
        free(b.p);
        if (v.t == TV_UNDEF || (bad && !strcmp(bad, "Undefined")))
            return rt(c, line, "Object of type Undefined is not JSON serializable");
        return rt(c, line, "Object of type %s is not JSON serializable", bad ? bad : "?");
    }
    return buf_to_str(c, &b, out);
}

/* ---- filters ---- */
static int length_of(struct ctx *c, int line, struct tv v, int64_t *n)
{
    switch (v.t) {
    case TV_UNDEF: *n = 0; return 0;
    case TV_STR: *n = (int64_t)utf8_len(v.u.s.p, v.u.s.n); return 0;
    case TV_LIST: *n = (int64_t)v.u.l->n; return 0;
    case TV_DICT: *n = (int64_t)v.u.d->n; return 0;
    default: return rt(c, line, "object of type '%s' has no len()", tv_typename(v));
    }
}

static int attr_path(struct ctx *c, int line, struct tv obj, struct tv attr, struct tv *out)
{
    if (attr.t == TV_INT) return getitem(c, line, obj, attr, out);
    if (attr.t != TV_STR) return rt(c, line, "attribute name must be a string");
    /* dotted path, each part an item lookup (jinja's make_attrgetter uses getitem) */
    const char *p = attr.u.s.p, *end = p + attr.u.s.n;
    struct tv cur = obj;
    while (p <= end) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        const char *e = dot ? dot : end;
        struct tv key = tv_str(p, (size_t)(e - p));
        int rc = getitem(c, line, cur, key, &cur);
        if (rc) return rc;
        if (!dot) break;
        p = dot + 1;
    }
    *out = cur;
    return 0;
}

static int run_test(struct ctx *c, int line, int id, struct tv v, const struct args *A, int *res);

static int do_filter(struct ctx *c, const struct node *n, struct tv v, const struct args *A,
                     struct tv *out)
{
    int line = n->line, rc;
    struct tv s;
    switch (n->op) {
    case F_TOJSON: return do_tojson(c, line, v, A, out);
    case F_TRIM: {
        static const char *const params[] = {"chars", NULL};
        struct tv p[1];
        int set[1];
        if ((rc = bind(c, line, "trim", A, params, p, set)) || (rc = to_str(c, v, &s))) return rc;
        if (set[0] && p[0].t != TV_NONE && (rc = need_str(c, line, "trim chars", p[0]))) return rc;
        *out = str_strip(s, set[0] && p[0].t == TV_STR ? &p[0] : NULL, 1, 1);
        return 0;
    }
    case F_LENGTH: {
        int64_t len = 0;
        if ((rc = length_of(c, line, v, &len))) return rc;
        *out = tv_int(len);
        return 0;
    }
    case F_DEFAULT: {
        static const char *const params[] = {"default_value", "boolean", NULL};
        struct tv p[2];
        int set[2];
        if ((rc = bind(c, line, "default", A, params, p, set))) return rc;
        int use = v.t == TV_UNDEF || (set[1] && tv_truthy(p[1]) && !tv_truthy(v));
        *out = use ? (set[0] ? p[0] : tv_str("", 0)) : v;
        return 0;
    }
    case F_STRING:
    case F_SAFE: return to_str(c, v, out);
    case F_LOWER:
    case F_UPPER:
    case F_CAPITALIZE:
    case F_TITLE:
        if ((rc = to_str(c, v, &s))) return rc;
        return str_case(c, s,
                        n->op == F_LOWER        ? 'l'
                        : n->op == F_UPPER      ? 'u'
                        : n->op == F_CAPITALIZE ? 'c'
                                                : 'j',
                        out);
    case F_ITEMS: {
        if (v.t == TV_UNDEF) {
            *out = mk_list(tl_new(c->a, 0));
            return out->u.l ? 0 : nomem(c);
        }
        if (v.t != TV_DICT) return rt(c, line, "Can only get item pairs from a mapping.");
        struct tlist *l = tl_new(c->a, v.u.d->n);
        if (!l) return nomem(c);
        for (size_t i = 0; i < v.u.d->n; i++) {
            struct tlist *pair = tl_new(c->a, 2);
            if (!pair) return nomem(c);
            pair->tuple = 1;
            tl_push(c->a, pair, v.u.d->k[i]);
            tl_push(c->a, pair, v.u.d->v[i]);
            tl_push(c->a, l, mk_list(pair));
        }
        *out = mk_list(l);
        return 0;
    }
    case F_JOIN: {
        static const char *const params[] = {"d", "attribute", NULL};
        struct tv p[2];
        int set[2];
        struct tlist *items;
        if ((rc = bind(c, line, "join", A, params, p, set)) || (rc = iterate(c, line, v, &items)))
            return rc;
        struct tv sep = tv_str("", 0);
        if (set[0] && (rc = to_str(c, p[0], &sep))) return rc;
        struct tbuf b = {0};
        for (size_t i = 0; i < items->n; i++) {
            struct tv it = items->v[i];
            if (set[1] && p[1].t != TV_NONE && (rc = attr_path(c, line, it, p[1], &it))) {
                free(b.p);
                return rc;
            }
            if (i) tb_put(&b, sep.u.s.p, sep.u.s.n);
            tv_str_to(&b, it);
        }
        return buf_to_str(c, &b, out);
    }
    case F_FIRST:
    case F_LAST: {
        struct tlist *items;
        if ((rc = iterate(c, line, v, &items))) return rc;
        if (!items->n) {
            *out = tv_undef(
                hint(c, "No %s item, sequence was empty.", n->op == F_FIRST ? "first" : "last"));
            return 0;
        }
        *out = items->v[n->op == F_FIRST ? 0 : items->n - 1];
        return 0;
    }
    case F_LIST: {
        struct tlist *items;
        if ((rc = iterate(c, line, v, &items))) return rc;
        struct tlist *l = tl_new(c->a, items->n);
        if (!l) return nomem(c);
        for (size_t i = 0; i < items->n; i++) tl_push(c->a, l, items->v[i]);
        *out = mk_list(l);
        return 0;
    }
    case F_REVERSE: {
        if (v.t == TV_STR) {
            struct tlist *items;
            if ((rc = iterate(c, line, v, &items))) return rc;
            struct tbuf b = {0};
            for (size_t i = items->n; i-- > 0;) tb_put(&b, items->v[i].u.s.p, items->v[i].u.s.n);
            return buf_to_str(c, &b, out);
        }
        struct tlist *items;
        if ((rc = iterate(c, line, v, &items))) return rc;
        struct tlist *l = tl_new(c->a, items->n);
        if (!l) return nomem(c);
        for (size_t i = items->n; i-- > 0;) tl_push(c->a, l, items->v[i]);
        *out = mk_list(l);
        return 0;
    }
    case F_INT:
    case F_FLOAT: {
        static const char *const params[] = {"default", NULL};
        struct tv p[1];
        int set[1];
        if ((rc = bind(c, line, n->op == F_INT ? "int" : "float", A, params, p, set))) return rc;
        struct tv dflt = set[0] ? p[0] : (n->op == F_INT ? tv_int(0) : tv_float(0.0));
        if (v.t == TV_UNDEF) return undef_err(c, line, v);
        double d = 0;
        int ok = 1;
        if (is_num(v))
            d = num_f(v);
        else if (v.t == TV_STR) {
            char buf[64];
            struct tv t = str_strip(v, NULL, 1, 1);
            if (t.u.s.n == 0 || t.u.s.n >= sizeof buf)
                ok = 0;
            else {
                memcpy(buf, t.u.s.p, t.u.s.n);
                buf[t.u.s.n] = 0;
                char *end;
                if (n->op == F_INT && !strpbrk(buf, ".eEnN")) {
                    long long x = strtoll(buf, &end, 10);
                    if (*end)
                        ok = 0;
                    else {
                        *out = tv_int(x);
                        return 0;
                    }
                } else {
                    d = strtod(buf, &end);
                    if (*end) ok = 0;
                }
            }
        } else
            ok = 0;
        if (!ok) {
            *out = dflt;
            return 0;
        }
        if (n->op == F_FLOAT)
            *out = tv_float(d);
        else if (is_int(v))
            *out = tv_int(v.u.i);
        else if (isnan(d) || isinf(d))
            *out = dflt;
        else
            *out = tv_int((int64_t)d);
        return 0;
    }
    case F_ABS:
        if (is_int(v))
            *out = tv_int(v.u.i < 0 ? -v.u.i : v.u.i);
        else if (v.t == TV_FLOAT)
            *out = tv_float(fabs(v.u.f));
        else
            return rt(c, line, "bad operand type for abs(): '%s'", tv_typename(v));
        return 0;
    case F_REPLACE: {
        static const char *const params[] = {"old", "new", "count", NULL};
        struct tv p[3];
        int set[3];
        if ((rc = bind(c, line, "replace", A, params, p, set)) || (rc = to_str(c, v, &s)))
            return rc;
        struct tv o, nw;
        if ((rc = to_str(c, p[0], &o)) || (rc = to_str(c, p[1], &nw))) return rc;
        int64_t count = -1;
        if (set[2] && p[2].t != TV_NONE) {
            if ((rc = need_int(c, line, "replace count", p[2]))) return rc;
            count = p[2].u.i;
        }
        return str_replace(c, s, o, nw, count, out);
    }
    case F_ESCAPE: {
        if ((rc = to_str(c, v, &s))) return rc;
        struct tbuf b = {0};
        for (size_t i = 0; i < s.u.s.n; i++) {
            char ch = s.u.s.p[i];
            switch (ch) {
            case '&': tb_puts(&b, "&amp;"); break;
            case '<': tb_puts(&b, "&lt;"); break;
            case '>': tb_puts(&b, "&gt;"); break;
            case '"': tb_puts(&b, "&#34;"); break;
            case '\'': tb_puts(&b, "&#39;"); break;
            default: tb_putc(&b, ch);
            }
        }
        return buf_to_str(c, &b, out);
    }
    case F_SELECTATTR:
    case F_REJECTATTR: {
        struct tlist *items;
        if ((rc = iterate(c, line, v, &items))) return rc;
        if (A->n < 1 || A->nkw) return rt(c, line, "%s needs an attribute name", n->name);
        struct tlist *l = tl_new(c->a, items->n);
        if (!l) return nomem(c);
        int tid = -1;
        struct args targs = {0};
        if (A->n >= 2) {
            if (A->v[1].t != TV_STR) return rt(c, line, "%s test name must be a string", n->name);
            char tname[64];
            snprintf(tname, sizeof tname, "%.*s", (int)A->v[1].u.s.n, A->v[1].u.s.p);
            tid = tmpl_test_id(tname);
            if (tid < 0) return rt(c, line, "no test named '%s'", tname);
            for (int i = 2; i < A->n; i++) targs.v[targs.n++] = A->v[i];
        }
        for (size_t i = 0; i < items->n; i++) {
            struct tv av;
            int keep;
            if ((rc = attr_path(c, line, items->v[i], A->v[0], &av))) return rc;
            if (tid < 0)
                keep = tv_truthy(av);
            else if ((rc = run_test(c, line, tid, av, &targs, &keep)))
                return rc;
            if (keep == (n->op == F_SELECTATTR)) tl_push(c->a, l, items->v[i]);
        }
        *out = mk_list(l);
        return 0;
    }
    case F_MAP: {
        struct tlist *items;
        if ((rc = iterate(c, line, v, &items))) return rc;
        struct tv attr = tv_undef(NULL), dflt = tv_undef(NULL);
        int has_default = 0;
        for (int k = 0; k < A->nkw; k++) {
            if (!strcmp(A->kwn[k], "attribute"))
                attr = A->kwv[k];
            else if (!strcmp(A->kwn[k], "default")) {
                dflt = A->kwv[k];
                has_default = 1;
            } else
                return rt(c, line, "map: unexpected keyword argument '%s'", A->kwn[k]);
        }
        if (attr.t == TV_UNDEF || A->n) return rt(c, line, "map is only supported with attribute=");
        struct tlist *l = tl_new(c->a, items->n);
        if (!l) return nomem(c);
        for (size_t i = 0; i < items->n; i++) {
            struct tv av;
            if ((rc = attr_path(c, line, items->v[i], attr, &av))) return rc;
            if (av.t == TV_UNDEF && has_default) av = dflt;
            tl_push(c->a, l, av);
        }
        *out = mk_list(l);
        return 0;
    }
    case F_UNIQUE: {
        struct tlist *items;
        if ((rc = iterate(c, line, v, &items))) return rc;
        struct tlist *l = tl_new(c->a, items->n);
        if (!l) return nomem(c);
        for (size_t i = 0; i < items->n; i++) {
            int dup = 0;
            for (size_t j = 0; j < l->n && !dup; j++) dup = tv_equal(l->v[j], items->v[i]);
            if (!dup) tl_push(c->a, l, items->v[i]);
        }
        *out = mk_list(l);
        return 0;
    }
    }
    return rt(c, line, "filter '%s' is not implemented", n->name);
}

/* ---- tests ---- */
static int run_test(struct ctx *c, int line, int id, struct tv v, const struct args *A, int *res)
{
    struct tv arg = A->n ? A->v[0] : (A->nkw ? A->kwv[0] : tv_undef(NULL));
    int has_arg = A->n + A->nkw > 0;
    int takes_arg = id == T_DIVISIBLEBY || id == T_EQ || id == T_NE || id == T_LT || id == T_LE ||
                    id == T_GT || id == T_GE || id == T_IN || id == T_SAMEAS;
    if (A->n + A->nkw > (takes_arg ? 1 : 0))
        return rt(c, line, "test takes %d positional argument%s but %d were given",
                  takes_arg ? 2 : 1, takes_arg ? "s" : "", 1 + A->n + A->nkw);
    switch (id) {
    case T_DEFINED: *res = v.t != TV_UNDEF; return 0;
    case T_UNDEFINED: *res = v.t == TV_UNDEF; return 0;
    case T_NONE: *res = v.t == TV_NONE; return 0;
    case T_STRING: *res = v.t == TV_STR; return 0;
    case T_MAPPING: *res = v.t == TV_DICT; return 0;
    case T_SEQUENCE:
        *res = v.t == TV_STR || v.t == TV_LIST || v.t == TV_DICT || v.t == TV_UNDEF;
        return 0;
    case T_ITERABLE:
        *res = v.t == TV_STR || v.t == TV_LIST || v.t == TV_DICT || v.t == TV_UNDEF;
        return 0;
    case T_NUMBER: *res = is_num(v); return 0;
    case T_INTEGER: *res = v.t == TV_INT; return 0;
    case T_FLOAT: *res = v.t == TV_FLOAT; return 0;
    case T_BOOLEAN: *res = v.t == TV_BOOL; return 0;
    case T_TRUE: *res = v.t == TV_BOOL && v.u.i; return 0;
    case T_FALSE: *res = v.t == TV_BOOL && !v.u.i; return 0;
    case T_CALLABLE: *res = v.t == TV_FUNC || v.t == TV_METHOD || v.t == TV_MACRO; return 0;
    case T_EVEN:
    case T_ODD:
    case T_DIVISIBLEBY: {
        /* value % 2 == 1, value % 2 == 0, value % num == 0 */
        struct tv m;
        int rc = binop(c, line, OP_MOD, v, id == T_DIVISIBLEBY ? arg : tv_int(2), &m);
        if (rc) return rc;
        *res = tv_equal(m, tv_int(id == T_ODD ? 1 : 0));
        return 0;
    }
    case T_EQ:
    case T_NE:
    case T_LT:
    case T_LE:
    case T_GT:
    case T_GE: {
        if (!has_arg) return rt(c, line, "comparison test needs an argument");
        static const int map[] = {[T_EQ] = CMP_EQ, [T_NE] = CMP_NE, [T_LT] = CMP_LT,
                                  [T_LE] = CMP_LE, [T_GT] = CMP_GT, [T_GE] = CMP_GE};
        return cmp_op(c, line, map[id], v, arg, res);
    }
    case T_IN:
        if (!has_arg) return rt(c, line, "test 'in' needs an argument");
        return contains(c, line, v, arg, res);
    case T_SAMEAS:
        if (v.t != arg.t)
            *res = 0;
        else if (v.t == TV_NONE || v.t == TV_UNDEF)
            *res = 1;
        else if (v.t == TV_BOOL || (v.t == TV_INT && v.u.i >= -5 && v.u.i <= 256))
            *res = v.u.i == arg.u.i;
        else if (v.t == TV_LIST)
            *res = v.u.l == arg.u.l;
        else if (v.t == TV_DICT || v.t == TV_NS)
            *res = v.u.d == arg.u.d;
        else
            *res = 0;
        return 0;
    case T_LOWER:
    case T_UPPER: {
        struct tv s;
        int rc = to_str(c, v, &s), cased = 0, ok = 1;
        if (rc) return rc;
        for (size_t i = 0; i < s.u.s.n;) {
            size_t next;
            uint32_t cp = utf8_decode(s.u.s.p, s.u.s.n, i, &next);
            if (cp_cased(cp)) {
                cased = 1;
                if (id == T_LOWER ? cp_lower(cp) != cp : cp_upper(cp) != cp) ok = 0;
            }
            i = next;
        }
        *res = cased && ok;
        return 0;
    }
    }
    return rt(c, line, "test is not implemented");
}

/* ---- calls ---- */
static int call_global(struct ctx *c, const struct node *n, int fn, const struct args *A,
                       struct tv *out)
{
    int line = n->line, rc;
    switch (fn) {
    case TF_NAMESPACE:
    case TF_DICT: {
        struct tdict *d = td_new(c->a, 4);
        if (!d) return nomem(c);
        if (A->n > 1)
            return rt(c, line, "%s() takes at most 1 positional argument",
                      fn == TF_DICT ? "dict" : "namespace");
        if (A->n == 1) {
            if (A->v[0].t != TV_DICT && A->v[0].t != TV_NS)
                return rt(c, line, "%s() argument must be a mapping",
                          fn == TF_DICT ? "dict" : "namespace");
            for (size_t i = 0; i < A->v[0].u.d->n; i++)
                td_set(c->a, d, A->v[0].u.d->k[i], A->v[0].u.d->v[i]);
        }
        for (int k = 0; k < A->nkw; k++)
            if (td_set(c->a, d, tv_str(A->kwn[k], strlen(A->kwn[k])), A->kwv[k])) return nomem(c);
        *out = mk_dict(d, fn == TF_DICT ? TV_DICT : TV_NS);
        return 0;
    }
    case TF_RANGE: {
        if (A->nkw || A->n < 1 || A->n > 3)
            return rt(c, line, "range expects 1 to 3 integer arguments");
        for (int i = 0; i < A->n; i++)
            if ((rc = need_int(c, line, "range argument", A->v[i]))) return rc;
        int64_t start = 0, stop, step = 1;
        if (A->n == 1)
            stop = A->v[0].u.i;
        else {
            start = A->v[0].u.i;
            stop = A->v[1].u.i;
            if (A->n == 3) step = A->v[2].u.i;
        }
        if (step == 0) return rt(c, line, "range() arg 3 must not be zero");
        struct tlist *l = tl_new(c->a, 4);
        if (!l) return nomem(c);
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
            if (l->n >= 100000)
                return rt(
                    c, line,
                    "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
            if (tl_push(c->a, l, tv_int(i))) return nomem(c);
        }
        *out = mk_list(l);
        return 0;
    }
    case TF_RAISE: {
        struct tv msg = A->n ? A->v[0] : A->nkw ? A->kwv[0] : tv_str("", 0);
        struct tbuf b = {0};
        tv_str_to(&b, msg);
        ms_err_set(c->err, MS_ERR_INVALID, "%s", b.p ? b.p : "");
        free(b.p);
        return MS_ERR_INVALID;
    }
    case TF_STRFTIME: {
        struct tv fmt = A->n ? A->v[0] : A->nkw ? A->kwv[0] : tv_undef(NULL);
        if ((rc = need_str(c, line, "strftime_now format", fmt))) return rc;
        char *f = ta_strndup(c->a, fmt.u.s.p, fmt.u.s.n);
        if (!f) return nomem(c);
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        char buf[512];
        size_t len = fmt.u.s.n ? strftime(buf, sizeof buf, f, &tm) : 0;
        char *s = ta_strndup(c->a, buf, len);
        if (!s) return nomem(c);
        *out = tv_str(s, len);
        return 0;
    }
    }
    return rt(c, line, "unknown function");
}

static int str_affix(struct ctx *c, int line, struct tv s, struct tv arg, int suffix, int *res)
{
    const struct tv *cands = &arg;
    size_t nc = 1;
    if (arg.t == TV_LIST && arg.u.l->tuple) {
        cands = arg.u.l->v;
        nc = arg.u.l->n;
    } else if (arg.t != TV_STR) {
        return rt(c, line, "%s first arg must be str or a tuple of str, not %s",
                  suffix ? "endswith" : "startswith", tv_typename(arg));
    }
    *res = 0;
    for (size_t i = 0; i < nc; i++) {
        if (cands[i].t != TV_STR)
            return rt(c, line, "tuple for %s must only contain str",
                      suffix ? "endswith" : "startswith");
        size_t k = cands[i].u.s.n;
        if (k <= s.u.s.n && !memcmp(s.u.s.p + (suffix ? s.u.s.n - k : 0), cands[i].u.s.p, k))
            *res = 1;
    }
    return 0;
}

static int str_method(struct ctx *c, int line, struct tv s, const char *name, const struct args *A,
                      struct tv *out)
{
    int rc, r = 0;
    if (!strcmp(name, "startswith") || !strcmp(name, "endswith")) {
        if (A->n != 1 || A->nkw) return rt(c, line, "%s() takes exactly one argument here", name);
        if ((rc = str_affix(c, line, s, A->v[0], name[0] == 'e', &r))) return rc;
        *out = tv_bool(r);
        return 0;
    }
    if (!strcmp(name, "split") || !strcmp(name, "rsplit")) {
        static const char *const params[] = {"sep", "maxsplit", NULL};
        struct tv p[2];
        int set[2];
        if ((rc = bind(c, line, name, A, params, p, set))) return rc;
        int64_t maxsplit = -1;
        if (set[1]) {
            if ((rc = need_int(c, line, "maxsplit", p[1]))) return rc;
            maxsplit = p[1].u.i;
        }
        return str_split(c, line, s, set[0] ? &p[0] : NULL, maxsplit, name[0] == 'r', out);
    }
    if (!strcmp(name, "strip") || !strcmp(name, "lstrip") || !strcmp(name, "rstrip")) {
        static const char *const params[] = {"chars", NULL};
        struct tv p[1];
        int set[1];
        if ((rc = bind(c, line, name, A, params, p, set))) return rc;
        const struct tv *chars = NULL;
        if (set[0] && p[0].t != TV_NONE) {
            if (p[0].t != TV_STR) return rt(c, line, "%s arg must be None or str", name);
            chars = &p[0];
        }
        *out = str_strip(s, chars, name[0] != 'r', name[0] != 'l');
        return 0;
    }
    if (!strcmp(name, "replace")) {
        static const char *const params[] = {"old", "new", "count", NULL};
        struct tv p[3];
        int set[3];
        if ((rc = bind(c, line, name, A, params, p, set))) return rc;
        if (!set[0] || !set[1]) return rt(c, line, "replace() takes at least 2 arguments");
        if ((rc = need_str(c, line, "replace() argument 1", p[0])) ||
            (rc = need_str(c, line, "replace() argument 2", p[1])))
            return rc;
        int64_t count = -1;
        if (set[2]) {
            if ((rc = need_int(c, line, "replace count", p[2]))) return rc;
            count = p[2].u.i;
        }
        return str_replace(c, s, p[0], p[1], count, out);
    }
    if (!strcmp(name, "upper") || !strcmp(name, "lower") || !strcmp(name, "title") ||
        !strcmp(name, "capitalize")) {
        if (A->n || A->nkw) return rt(c, line, "%s() takes no arguments", name);
        return str_case(c, s,
                        name[0] == 'u'   ? 'u'
                        : name[0] == 'l' ? 'l'
                        : name[0] == 't' ? 't'
                                         : 'c',
                        out);
    }
    if (!strcmp(name, "find") || !strcmp(name, "rfind") || !strcmp(name, "count")) {
        if (A->n != 1 || A->nkw) return rt(c, line, "%s() takes exactly one argument here", name);
        if ((rc = need_str(c, line, "substring", A->v[0]))) return rc;
        struct tv sub = A->v[0];
        if (name[0] == 'c') {
            int64_t cnt = 0;
            if (sub.u.s.n == 0)
                cnt = (int64_t)utf8_len(s.u.s.p, s.u.s.n) + 1;
            else
                for (size_t i = 0; i + sub.u.s.n <= s.u.s.n;) {
                    const char *f = memfind(s.u.s.p + i, s.u.s.n - i, sub.u.s.p, sub.u.s.n);
                    if (!f) break;
                    cnt++;
                    i = (size_t)(f - s.u.s.p) + sub.u.s.n;
                }
            *out = tv_int(cnt);
            return 0;
        }
        const char *f = name[0] == 'f' ? memfind(s.u.s.p, s.u.s.n, sub.u.s.p, sub.u.s.n)
                                       : memrfind(s.u.s.p, s.u.s.n, sub.u.s.p, sub.u.s.n);
        *out = tv_int(f ? (int64_t)utf8_len(s.u.s.p, (size_t)(f - s.u.s.p)) : -1);
        return 0;
    }
    if (!strcmp(name, "join")) {
        if (A->n != 1 || A->nkw) return rt(c, line, "join() takes exactly one argument");
        struct tlist *items;
        if ((rc = iterate(c, line, A->v[0], &items))) return rc;
        struct tbuf b = {0};
        for (size_t i = 0; i < items->n; i++) {
            if (items->v[i].t != TV_STR) {
                free(b.p);
                return rt(c, line, "sequence item %zu: expected str instance, %s found", i,
                          tv_typename(items->v[i]));
            }
            if (i) tb_put(&b, s.u.s.p, s.u.s.n);
            tb_put(&b, items->v[i].u.s.p, items->v[i].u.s.n);
        }
        return buf_to_str(c, &b, out);
    }
    if (!strncmp(name, "is", 2)) {
        if (A->n || A->nkw) return rt(c, line, "%s() takes no arguments", name);
        int all = s.u.s.n > 0, cased = 0, anylower = 0, anyupper = 0;
        for (size_t i = 0; i < s.u.s.n;) {
            size_t next;
            uint32_t cp = utf8_decode(s.u.s.p, s.u.s.n, i, &next);
            int digit = cp >= '0' && cp <= '9';
            int alpha = (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') ||
                        (cp >= 0x80 && !py_isspace(cp));
            if (cp_cased(cp)) {
                cased = 1;
                if (cp_lower(cp) != cp) anyupper = 1;
                if (cp_upper(cp) != cp) anylower = 1;
            }
            if (!strcmp(name, "isdigit") && !digit) all = 0;
            if (!strcmp(name, "isalpha") && !alpha) all = 0;
            if (!strcmp(name, "isalnum") && !alpha && !digit) all = 0;
            if (!strcmp(name, "isspace") && !py_isspace(cp)) all = 0;
            i = next;
        }
        if (!strcmp(name, "islower")) all = cased && !anyupper;
        if (!strcmp(name, "isupper")) all = cased && !anylower;
        *out = tv_bool(all);
        return 0;
    }
    return rt(c, line, "str has no method '%s'", name);
}

static int call_method(struct ctx *c, int line, struct tv obj, const char *name,
                       const struct args *A, struct tv *out)
{
    if (obj.t == TV_UNDEF) return undef_err(c, line, obj);
    if (obj.t == TV_STR && in_list(str_methods, name))
        return str_method(c, line, obj, name, A, out);
    if (obj.t == TV_DICT && in_list(dict_methods, name)) {
        struct tdict *d = obj.u.d;
        if (!strcmp(name, "get")) {
            static const char *const params[] = {"key", "default", NULL};
            struct tv p[2];
            int set[2];
            int rc = bind(c, line, "get", A, params, p, set);
            if (rc) return rc;
            if (!set[0]) return rt(c, line, "get expected at least 1 argument, got 0");
            struct tv *v = td_get(d, p[0]);
            *out = v ? *v : set[1] ? p[1] : tv_none();
            return 0;
        }
        if (A->n || A->nkw) return rt(c, line, "%s() takes no arguments", name);
        struct tlist *l = tl_new(c->a, d->n);
        if (!l) return nomem(c);
        for (size_t i = 0; i < d->n; i++) {
            if (name[0] == 'k')
                tl_push(c->a, l, d->k[i]);
            else if (name[0] == 'v')
                tl_push(c->a, l, d->v[i]);
            else {
                struct tlist *pair = tl_new(c->a, 2);
                if (!pair) return nomem(c);
                pair->tuple = 1;
                tl_push(c->a, pair, d->k[i]);
                tl_push(c->a, pair, d->v[i]);
                tl_push(c->a, l, mk_list(pair));
            }
        }
        *out = mk_list(l);
        return 0;
    }
    if (obj.t == TV_LIST && (!strcmp(name, "count") || !strcmp(name, "index"))) {
        if (A->n != 1 || A->nkw) return rt(c, line, "%s() takes exactly one argument here", name);
        int64_t cnt = 0;
        for (size_t i = 0; i < obj.u.l->n; i++)
            if (tv_equal(obj.u.l->v[i], A->v[0])) {
                if (name[0] == 'i') {
                    *out = tv_int((int64_t)i);
                    return 0;
                }
                cnt++;
            }
        if (name[0] == 'i') return rt(c, line, "value is not in %s", tv_typename(obj));
        *out = tv_int(cnt);
        return 0;
    }
    if (obj.t == TV_LOOP && !strcmp(name, "cycle")) {
        if (!A->n) return rt(c, line, "no items for cycling given");
        *out = A->v[obj.u.loop->index0 % (size_t)A->n];
        return 0;
    }
    if (obj.t == TV_METHOD)
        return rt(c, line, "'builtin_function_or_method' object has no attribute '%s'", name);
    return rt(c, line, "'%s' object has no callable attribute '%s'", tv_typename(obj), name);
}

/* ---- expressions ---- */
static int lookup(struct ctx *c, const char *name, struct tv *out)
{
    size_t n = strlen(name);
    for (struct scope *s = c->sc; s; s = s->parent) {
        struct tv *v = td_gets(s->vars, name, n);
        if (v) {
            *out = *v;
            return 1;
        }
    }
    int g = tmpl_global_id(name);
    if (g > 0) {
        out->t = TV_FUNC;
        out->u.i = g;
        return 1;
    }
    return 0;
}

static int safe_repr(struct tv v)
{
    switch (v.t) {
    case TV_NONE:
    case TV_BOOL:
    case TV_INT:
    case TV_FLOAT:
    case TV_STR: return 1;
    case TV_LIST:
        for (size_t i = 0; i < v.u.l->n; i++)
            if (!safe_repr(v.u.l->v[i])) return 0;
        return 1;
    case TV_DICT:
        for (size_t i = 0; i < v.u.d->n; i++)
            if (!safe_repr(v.u.d->k[i]) || !safe_repr(v.u.d->v[i])) return 0;
        return 1;
    default: return 0;
    }
}

static int eval_node(struct ctx *c, const struct node *n, struct tv *out);
static int call_macro(struct ctx *c, int line, const struct node *m, const struct args *A,
                      struct tv *out);

/* jinja2's optimizer replaces a literal-only expression by its value when that evaluates (with the
 * sandbox's item access, also for slices) to a plain value; otherwise it runs at render time. */
static int eval(struct ctx *c, const struct node *n, struct tv *out)
{
    if (!n->konst || c->folding) return eval_node(c, n, out);
    c->folding = 1;
    int rc = eval_node(c, n, out);
    c->folding = 0;
    if (!rc && safe_repr(*out)) return 0;
    return eval_node(c, n, out);
}

static int eval_node(struct ctx *c, const struct node *n, struct tv *out)
{
    int rc;
    struct tv a, b;
    switch (n->k) {
    case N_CONST: *out = n->val; return 0;
    case N_NAME:
        if (!lookup(c, n->name, out)) *out = tv_undef(hint(c, "'%s' is undefined", n->name));
        return 0;
    case N_LIST:
    case N_TUPLE: {
        struct tlist *l = tl_new(c->a, (size_t)n->args.n);
        if (!l) return nomem(c);
        l->tuple = n->k == N_TUPLE;
        for (int i = 0; i < n->args.n; i++) {
            if ((rc = eval(c, n->args.v[i], &a))) return rc;
            tl_push(c->a, l, a);
        }
        *out = mk_list(l);
        return 0;
    }
    case N_DICT: {
        struct tdict *d = td_new(c->a, (size_t)n->args.n / 2);
        if (!d) return nomem(c);
        for (int i = 0; i + 1 < n->args.n; i += 2) {
            if ((rc = eval(c, n->args.v[i], &a)) || (rc = eval(c, n->args.v[i + 1], &b))) return rc;
            if (a.t == TV_LIST && !a.u.l->tuple) return rt(c, n->line, "unhashable type: 'list'");
            if (a.t == TV_DICT) return rt(c, n->line, "unhashable type: 'dict'");
            if (td_set(c->a, d, a, b)) return nomem(c);
        }
        *out = mk_dict(d, TV_DICT);
        return 0;
    }
    case N_ATTR:
        if ((rc = eval(c, n->a, &a))) return rc;
        return getattr(c, n->line, a, n->name, out);
    case N_ITEM:
        if ((rc = eval(c, n->a, &a))) return rc;
        if (n->b->k == N_SLICE) return do_slice(c, n->line, a, n->b, out, c->folding);
        if ((rc = eval(c, n->b, &b))) return rc;
        return getitem(c, n->line, a, b, out);
    case N_SLICE: return rt(c, n->line, "slice outside of a subscript");
    case N_CALL: {
        struct args A;
        if (n->a->k == N_ATTR) {
            struct tv obj;
            if ((rc = eval(c, n->a->a, &obj))) return rc;
            if ((rc = eval_args(c, n, &A))) return rc;
            if (obj.t == TV_DICT && !in_list(dict_methods, n->a->name)) {
                struct tv *v = td_gets(obj.u.d, n->a->name, strlen(n->a->name));
                if (!v) return rt(c, n->line, "'dict object' has no attribute '%s'", n->a->name);
                return rt(c, n->line, "'%s' object is not callable", tv_typename(*v));
            }
            return call_method(c, n->line, obj, n->a->name, &A, out);
        }
        struct tv f;
        if ((rc = eval(c, n->a, &f))) return rc;
        if (f.t == TV_UNDEF) return undef_err(c, n->line, f);
        if (f.t == TV_MACRO) {
            if ((rc = eval_args(c, n, &A))) return rc;
            return call_macro(c, n->line, f.u.macro, &A, out);
        }
        if (f.t != TV_FUNC) return rt(c, n->line, "'%s' object is not callable", tv_typename(f));
        if ((rc = eval_args(c, n, &A))) return rc;
        return call_global(c, n, (int)f.u.i, &A, out);
    }
    case N_FILTER: {
        struct args A;
        if ((rc = eval(c, n->a, &a)) || (rc = eval_args(c, n, &A))) return rc;
        return do_filter(c, n, a, &A, out);
    }
    case N_TEST: {
        struct args A;
        int r = 0;
        if ((rc = eval(c, n->a, &a)) || (rc = eval_args(c, n, &A))) return rc;
        if ((rc = run_test(c, n->line, n->op, a, &A, &r))) return rc;
        *out = tv_bool(r);
        return 0;
    }
    case N_NEG:
    case N_POS:
        if ((rc = eval(c, n->a, &a))) return rc;
        if (a.t == TV_UNDEF) return undef_err(c, n->line, a);
        if (a.t == TV_FLOAT)
            *out = tv_float(n->k == N_NEG ? -a.u.f : a.u.f);
        else if (is_int(a)) {
            if (n->k == N_NEG && a.u.i == INT64_MIN) return rt(c, n->line, "integer overflow");
            *out = tv_int(n->k == N_NEG ? -a.u.i : a.u.i);
        } else
            return rt(c, n->line, "bad operand type for unary %c: '%s'", n->k == N_NEG ? '-' : '+',
                      tv_typename(a));
        return 0;
    case N_NOT:
        if ((rc = eval(c, n->a, &a))) return rc;
        *out = tv_bool(!tv_truthy(a));
        return 0;
    case N_BIN:
        if ((rc = eval(c, n->a, &a)) || (rc = eval(c, n->b, &b))) return rc;
        return binop(c, n->line, n->op, a, b, out);
    case N_CONCAT: {
        struct tbuf buf = {0};
        for (int i = 0; i < n->args.n; i++) {
            if ((rc = eval(c, n->args.v[i], &a))) {
                free(buf.p);
                return rc;
            }
            tv_str_to(&buf, a);
        }
        return buf_to_str(c, &buf, out);
    }
    case N_CMP: {
        if ((rc = eval(c, n->args.v[0], &a))) return rc;
        int r = 1;
        for (int i = 1; i < n->args.n && r; i++) {
            if ((rc = eval(c, n->args.v[i], &b))) return rc;
            if ((rc = cmp_op(c, n->line, n->ops[i - 1], a, b, &r))) return rc;
            a = b;
        }
        *out = tv_bool(r);
        return 0;
    }
    case N_AND:
    case N_OR:
        if ((rc = eval(c, n->a, &a))) return rc;
        if (tv_truthy(a) == (n->k == N_OR)) {
            *out = a;
            return 0;
        }
        return eval(c, n->b, out);
    case N_COND:
        if ((rc = eval(c, n->a, &a))) return rc;
        if (tv_truthy(a)) return eval(c, n->b, out);
        if (n->c) return eval(c, n->c, out);
        *out = tv_undef(hint(c,
                             "the inline if-expression on line %d evaluated to false and no else "
                             "section was defined.",
                             n->line));
        return 0;
    default: return rt(c, n->line, "statement used as an expression");
    }
}

/* ---- statements ---- */
static int exec_body(struct ctx *c, const struct nlist *body);

/* A macro runs in its own scope under the template's top level (not the caller's locals) and
 * returns what its body renders. */
static int call_macro(struct ctx *c, int line, const struct node *m, const struct args *A,
                      struct tv *out)
{
    if (A->n > m->ntargets)
        return rt(c, line, "macro '%s' takes not more than %d argument(s)", m->name, m->ntargets);
    struct scope sc = {.parent = c->root, .vars = td_new(c->a, (size_t)m->ntargets + 1)};
    if (!sc.vars) return nomem(c);
    for (int k = 0; k < A->nkw; k++) {
        int found = 0;
        for (int i = 0; i < m->ntargets; i++) found |= !strcmp(m->targets[i], A->kwn[k]);
        if (!found)
            return rt(c, line, "macro '%s' takes no keyword argument '%s'", m->name, A->kwn[k]);
    }
    struct scope *saved = c->sc;
    struct tbuf b = {0}, *saved_out = c->out;
    c->sc = &sc;
    int rc = 0;
    for (int i = 0; i < m->ntargets && !rc; i++) {
        struct tv v;
        int have = 0;
        if (i < A->n) {
            v = A->v[i];
            have = 1;
        }
        for (int k = 0; k < A->nkw; k++)
            if (!strcmp(m->targets[i], A->kwn[k])) {
                if (have)
                    rc = rt(c, line, "macro '%s' got multiple values for argument '%s'", m->name,
                            m->targets[i]);
                v = A->kwv[k];
                have = 1;
            }
        if (rc) break;
        if (!have && m->args.v[i])
            rc = eval(c, m->args.v[i], &v);
        else if (!have)
            v = tv_undef(hint(c, "parameter '%s' was not provided", m->targets[i]));
        if (!rc && td_set(c->a, sc.vars, tv_str(m->targets[i], strlen(m->targets[i])), v))
            rc = nomem(c);
    }
    if (!rc) {
        c->out = &b;
        rc = exec_body(c, &m->body);
        c->out = saved_out;
    }
    c->sc = saved;
    if (rc < 0) {
        free(b.p);
        return rc;
    }
    return buf_to_str(c, &b, out);
}

static int assign_targets(struct ctx *c, const struct node *n, struct tdict *vars, struct tv v)
{
    if (!n->op)
        return td_set(c->a, vars, tv_str(n->targets[0], strlen(n->targets[0])), v) ? nomem(c) : 0;
    struct tlist *items;
    int rc = iterate(c, n->line, v, &items);
    if (rc) return rc;
    if (items->n != (size_t)n->ntargets)
        return rt(c, n->line,
                  items->n > (size_t)n->ntargets ? "too many values to unpack (expected %d)"
                                                 : "not enough values to unpack (expected %d)",
                  n->ntargets);
    for (int i = 0; i < n->ntargets; i++)
        if (td_set(c->a, vars, tv_str(n->targets[i], strlen(n->targets[i])), items->v[i]))
            return nomem(c);
    return 0;
}

static int exec_for(struct ctx *c, const struct node *n)
{
    struct tv it;
    struct tlist *items;
    int rc = eval(c, n->a, &it);
    if (rc) return rc;
    if ((rc = iterate(c, n->line, it, &items))) return rc;
    struct scope *outer = c->sc;
    if (n->b) { /* {% for x in xs if cond %}: filter first, loop.length counts kept items */
        struct tlist *kept = tl_new(c->a, items->n);
        if (!kept) return nomem(c);
        for (size_t i = 0; i < items->n; i++) {
            struct scope sc = {.parent = outer, .vars = td_new(c->a, 4)};
            if (!sc.vars) return nomem(c);
            if ((rc = assign_targets(c, n, sc.vars, items->v[i]))) return rc;
            c->sc = &sc;
            struct tv t;
            rc = eval(c, n->b, &t);
            c->sc = outer;
            if (rc) return rc;
            if (tv_truthy(t)) tl_push(c->a, kept, items->v[i]);
        }
        items = kept;
    }
    /* in the arena, not on the stack: the template may keep `loop` in a namespace */
    struct tloop *L = ta_alloc(c->a, sizeof *L);
    if (!L) return nomem(c);
    L->length = items->n;
    L->items = items->v;
    struct tv loopv = {.t = TV_LOOP};
    loopv.u.loop = L;
    for (size_t i = 0; i < items->n; i++) {
        L->index0 = i;
        struct scope sc = {.parent = outer, .vars = td_new(c->a, 4)};
        if (!sc.vars) return nomem(c);
        if ((rc = assign_targets(c, n, sc.vars, items->v[i]))) return rc;
        if (td_set(c->a, sc.vars, tv_str("loop", 4), loopv)) return nomem(c);
        c->sc = &sc;
        rc = exec_body(c, &n->body);
        c->sc = outer;
        if (rc < 0) return rc;
        if (rc == FLOW_BREAK) break;
    }
    if (items->n == 0 && n->body2.n) return exec_body(c, &n->body2);
    return 0;
}

static int exec_set(struct ctx *c, const struct node *n)
{
    struct tv v;
    int rc;
    if (n->k == S_SETBLOCK) {
        struct tbuf b = {0}, *saved = c->out;
        c->out = &b;
        rc = exec_body(c, &n->body);
        c->out = saved;
        if (rc < 0) {
            free(b.p);
            return rc;
        }
        if ((rc = buf_to_str(c, &b, &v))) return rc;
    } else if ((rc = eval(c, n->a, &v))) {
        return rc;
    }
    if (n->name2) {
        struct tv ns;
        if (!lookup(c, n->name, &ns) || ns.t != TV_NS)
            return rt(c, n->line, "cannot assign attribute on non-namespace object");
        return td_set(c->a, ns.u.d, tv_str(n->name2, strlen(n->name2)), v) ? nomem(c) : 0;
    }
    if (n->k == S_SETBLOCK)
        return td_set(c->a, c->sc->vars, tv_str(n->name, strlen(n->name)), v) ? nomem(c) : 0;
    return assign_targets(c, n, c->sc->vars, v);
}

static int exec_body(struct ctx *c, const struct nlist *body)
{
    for (int i = 0; i < body->n; i++) {
        const struct node *n = body->v[i];
        int rc = 0;
        struct tv v;
        switch (n->k) {
        case S_TEXT: tb_put(c->out, n->val.u.s.p, n->val.u.s.n); break;
        case S_OUT:
            /* a literal-only {{ }} is folded even to undefined (rendering ""), unless it fails */
            if (n->a->konst) {
                c->folding = 1;
                rc = eval_node(c, n->a, &v);
                c->folding = 0;
                if (rc) rc = eval_node(c, n->a, &v);
            } else {
                rc = eval(c, n->a, &v);
            }
            if (!rc) tv_str_to(c->out, v);
            break;
        case S_IF: {
            int branch = -1;
            for (int k = 0; k < n->args.n; k++) {
                if ((rc = eval(c, n->args.v[k], &v))) return rc;
                if (tv_truthy(v)) {
                    branch = k;
                    break;
                }
            }
            if (branch < 0 && n->nbodies > n->args.n) branch = n->args.n;
            if (branch >= 0) rc = exec_body(c, &n->bodies[branch]);
            break;
        }
        case S_FOR: rc = exec_for(c, n); break;
        case S_SET:
        case S_SETBLOCK: rc = exec_set(c, n); break;
        case S_MACRO: {
            struct tv mv = {.t = TV_MACRO};
            mv.u.macro = n;
            if (td_set(c->a, c->sc->vars, tv_str(n->name, strlen(n->name)), mv)) rc = nomem(c);
            break;
        }
        case S_BREAK: return FLOW_BREAK;
        case S_CONTINUE: return FLOW_CONTINUE;
        default: rc = rt(c, n->line, "expression used as a statement");
        }
        if (rc) return rc;
        if (c->out->oom || c->a->oom) return nomem(c);
    }
    return 0;
}

int tmpl_exec(const struct chat_template *t, struct tdict *vars, struct tarena *a, struct tbuf *out,
              struct ms_err *err)
{
    struct scope root = {.parent = NULL, .vars = vars};
    struct ctx c = {.a = a, .out = out, .err = err, .sc = &root, .root = &root};
    int rc = exec_body(&c, &t->body);
    if (rc > 0) rc = 0;
    if (!rc && (out->oom || a->oom)) rc = nomem(&c);
    return rc;
}
