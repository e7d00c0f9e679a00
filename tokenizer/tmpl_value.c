/* Chat-template values: arena, buffers, containers, Python str()/repr(), json.dumps, UTF-8. */
#include "tokenizer/tmpl_internal.h"

#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena ---- */
struct ta_block {
    struct ta_block *next;
    size_t used, cap;
    max_align_t data[];
};

#define TA_BLOCK (64 * 1024)

void *ta_alloc(struct tarena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n == 0) n = 16;
    struct ta_block *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > TA_BLOCK ? n : TA_BLOCK;
        b = malloc(sizeof *b + cap);
        if (!b) {
            a->oom = 1;
            return NULL;
        }
        b->cap = cap;
        b->used = 0;
        if (a->head && n > TA_BLOCK) { /* keep the current block in front for small objects */
            b->next = a->head->next;
            a->head->next = b;
        } else {
            b->next = a->head;
            a->head = b;
        }
    }
    void *p = (char *)b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

char *ta_strndup(struct tarena *a, const char *s, size_t n)
{
    char *p = ta_alloc(a, n + 1);
    if (!p) return NULL;
    if (n) memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void ta_free(struct tarena *a)
{
    struct ta_block *b = a->head;
    while (b) {
        struct ta_block *next = b->next;
        free(b);
        b = next;
    }
    a->head = NULL;
}

/* ---- buffer ---- */
void tb_put(struct tbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->cap - b->n < n + 1) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->n < n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

void tb_puts(struct tbuf *b, const char *s) { tb_put(b, s, strlen(s)); }
void tb_putc(struct tbuf *b, char c) { tb_put(b, &c, 1); }

void tb_printf(struct tbuf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof tmp) {
        tb_put(b, tmp, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    tb_put(b, big, (size_t)n);
    free(big);
}

/* ---- containers ---- */
struct tlist *tl_new(struct tarena *a, size_t cap)
{
    struct tlist *l = ta_alloc(a, sizeof *l);
    if (!l) return NULL;
    if (cap) {
        l->v = ta_alloc(a, cap * sizeof *l->v);
        if (!l->v) return NULL;
        l->cap = cap;
    }
    return l;
}

int tl_push(struct tarena *a, struct tlist *l, struct tv v)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        struct tv *nv = ta_alloc(a, cap * sizeof *nv);
        if (!nv) return MS_ERR_NOMEM;
        if (l->n) memcpy(nv, l->v, l->n * sizeof *nv);
        l->v = nv;
        l->cap = cap;
    }
    l->v[l->n++] = v;
    return 0;
}

struct tdict *td_new(struct tarena *a, size_t cap)
{
    struct tdict *d = ta_alloc(a, sizeof *d);
    if (!d) return NULL;
    if (cap) {
        d->k = ta_alloc(a, cap * sizeof *d->k);
        d->v = ta_alloc(a, cap * sizeof *d->v);
        if (!d->k || !d->v) return NULL;
        d->cap = cap;
    }
    return d;
}

struct tv *td_gets(const struct tdict *d, const char *key, size_t n)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].t == TV_STR && d->k[i].u.s.n == n && !memcmp(d->k[i].u.s.p, key, n))
            return &d->v[i];
    return NULL;
}

struct tv *td_get(const struct tdict *d, struct tv key)
{
    if (key.t == TV_STR) return td_gets(d, key.u.s.p, key.u.s.n);
    for (size_t i = 0; i < d->n; i++)
        if (tv_equal(d->k[i], key)) return &d->v[i];
    return NULL;
}

int td_set(struct tarena *a, struct tdict *d, struct tv key, struct tv v)
{
    struct tv *slot = td_get(d, key);
    if (slot) {
        *slot = v;
        return 0;
    }
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 4;
        struct tv *nk = ta_alloc(a, cap * sizeof *nk), *nv = ta_alloc(a, cap * sizeof *nv);
        if (!nk || !nv) return MS_ERR_NOMEM;
        if (d->n) {
            memcpy(nk, d->k, d->n * sizeof *nk);
            memcpy(nv, d->v, d->n * sizeof *nv);
        }
        d->k = nk;
        d->v = nv;
        d->cap = cap;
    }
    d->k[d->n] = key;
    d->v[d->n] = v;
    d->n++;
    return 0;
}

/* ---- UTF-8 ---- */
size_t utf8_next(const char *s, size_t n, size_t i)
{
    i++;
    while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80) i++;
    return i;
}

size_t utf8_len(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) c++;
    return c;
}

uint32_t utf8_decode(const char *s, size_t n, size_t i, size_t *next)
{
    const unsigned char *u = (const unsigned char *)s;
    uint32_t c = u[i];
    size_t len = 1;
    if (c >= 0xF0 && i + 3 < n) {
        c = ((c & 7) << 18) | ((u[i + 1] & 0x3Fu) << 12) | ((u[i + 2] & 0x3Fu) << 6) |
            (u[i + 3] & 0x3Fu);
        len = 4;
    } else if (c >= 0xE0 && c < 0xF0 && i + 2 < n) {
        c = ((c & 15) << 12) | ((u[i + 1] & 0x3Fu) << 6) | (u[i + 2] & 0x3Fu);
        len = 3;
    } else if (c >= 0xC0 && c < 0xE0 && i + 1 < n) {
        c = ((c & 31) << 6) | (u[i + 1] & 0x3Fu);
        len = 2;
    }
    if (next) *next = i + len;
    return c;
}

int py_isspace(uint32_t c)
{
    return (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

/* ---- truthiness, equality ---- */
int tv_truthy(struct tv v)
{
    switch (v.t) {
    case TV_UNDEF:
    case TV_NONE: return 0;
    case TV_BOOL:
    case TV_INT: return v.u.i != 0;
    case TV_FLOAT: return v.u.f != 0.0;
    case TV_STR: return v.u.s.n > 0;
    case TV_LIST: return v.u.l->n > 0;
    case TV_DICT: return v.u.d->n > 0;
    default: return 1;
    }
}

static int is_num(struct tv v) { return v.t == TV_BOOL || v.t == TV_INT || v.t == TV_FLOAT; }

int tv_equal(struct tv a, struct tv b)
{
    if (is_num(a) && is_num(b)) {
        if (a.t != TV_FLOAT && b.t != TV_FLOAT) return a.u.i == b.u.i;
        double x = a.t == TV_FLOAT ? a.u.f : (double)a.u.i;
        double y = b.t == TV_FLOAT ? b.u.f : (double)b.u.i;
        return x == y;
    }
    if (a.t != b.t) return 0;
    switch (a.t) {
    case TV_UNDEF:
    case TV_NONE: return 1;
    case TV_STR: return a.u.s.n == b.u.s.n && !memcmp(a.u.s.p, b.u.s.p, a.u.s.n);
    case TV_LIST:
        if (a.u.l->tuple != b.u.l->tuple || a.u.l->n != b.u.l->n) return 0;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!tv_equal(a.u.l->v[i], b.u.l->v[i])) return 0;
        return 1;
    case TV_DICT:
        if (a.u.d->n != b.u.d->n) return 0;
        for (size_t i = 0; i < a.u.d->n; i++) {
            struct tv *o = td_get(b.u.d, a.u.d->k[i]);
            if (!o || !tv_equal(a.u.d->v[i], *o)) return 0;
        }
        return 1;
    case TV_NS: return a.u.d == b.u.d;
    case TV_LOOP: return a.u.loop == b.u.loop;
    case TV_FUNC: return a.u.i == b.u.i;
    case TV_METHOD: return a.u.m == b.u.m;
    case TV_MACRO: return a.u.macro == b.u.macro;
    default: return 0;
    }
}

const char *tv_typename(struct tv v)
{
    switch (v.t) {
    case TV_UNDEF: return "Undefined";
    case TV_NONE: return "NoneType";
    case TV_BOOL: return "bool";
    case TV_INT: return "int";
    case TV_FLOAT: return "float";
    case TV_STR: return "str";
    case TV_LIST: return v.u.l->tuple ? "tuple" : "list";
    case TV_DICT: return "dict";
    case TV_NS: return "Namespace";
    case TV_LOOP: return "LoopContext";
    case TV_FUNC: return "function";
    case TV_METHOD: return "builtin_function_or_method";
    case TV_MACRO: return "Macro";
    }
    return "object";
}

/* ---- Python float repr ---- */
void py_float_repr(struct tbuf *b, double d)
{
    if (isnan(d)) {
        tb_puts(b, "nan");
        return;
    }
    if (isinf(d)) {
        tb_puts(b, d < 0 ? "-inf" : "inf");
        return;
    }
    if (d == 0) {
        tb_puts(b, signbit(d) ? "-0.0" : "0.0");
        return;
    }
    char tmp[64];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, d);
        if (strtod(tmp, NULL) == d) break;
    }
    /* tmp: [-]D[.DDD]e[+-]XX */
    const char *p = tmp;
    char digits[32];
    int nd = 0;
    if (*p == '-') {
        tb_putc(b, '-');
        p++;
    }
    while (*p && *p != 'e') {
        if (*p >= '0' && *p <= '9') digits[nd++] = *p;
        p++;
    }
    int exp10 = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    int decpt = exp10 + 1;
    if (decpt > -4 && decpt <= 16) {
        if (decpt <= 0) {
            tb_puts(b, "0.");
            for (int i = 0; i < -decpt; i++) tb_putc(b, '0');
            tb_put(b, digits, (size_t)nd);
        } else if (decpt >= nd) {
            tb_put(b, digits, (size_t)nd);
            for (int i = nd; i < decpt; i++) tb_putc(b, '0');
            tb_puts(b, ".0");
        } else {
            tb_put(b, digits, (size_t)decpt);
            tb_putc(b, '.');
            tb_put(b, digits + decpt, (size_t)(nd - decpt));
        }
    } else {
        tb_putc(b, digits[0]);
        if (nd > 1) {
            tb_putc(b, '.');
            tb_put(b, digits + 1, (size_t)(nd - 1));
        }
        int e = decpt - 1;
        tb_printf(b, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    }
}

/* ---- str / repr ---- */
static int py_printable(uint32_t c)
{
    if (c < 0x20 || c == 0x7f) return 0;
    if (c < 0x7f) return 1;
    if (c <= 0xA0 || c == 0xAD) return 0;
    if ((c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F) ||
        (c >= 0x205F && c <= 0x206F) || c == 0x3000 || c == 0xFEFF || c == 0x1680 ||
        (c >= 0xFFF9 && c <= 0xFFFB) || (c >= 0xD800 && c <= 0xF8FF) || c == 0x180E ||
        c == 0x061C || (c >= 0x0600 && c <= 0x0605) || c == 0x06DD || c == 0x070F ||
        (c >= 0xE0000 && c <= 0xE007F) || c >= 0xF0000)
        return 0;
    return 1;
}

static void repr_str(struct tbuf *b, const char *s, size_t n)
{
    int has_sq = memchr(s, '\'', n) != NULL, has_dq = memchr(s, '"', n) != NULL;
    char q = (has_sq && !has_dq) ? '"' : '\'';
    tb_putc(b, q);
    for (size_t i = 0; i < n;) {
        size_t next;
        uint32_t c = utf8_decode(s, n, i, &next);
        if (c == (uint32_t)q || c == '\\') {
            tb_putc(b, '\\');
            tb_putc(b, (char)c);
        } else if (c == '\n') {
            tb_puts(b, "\\n");
        } else if (c == '\r') {
            tb_puts(b, "\\r");
        } else if (c == '\t') {
            tb_puts(b, "\\t");
        } else if (!py_printable(c)) {
            if (c < 0x100)
                tb_printf(b, "\\x%02x", c);
            else if (c < 0x10000)
                tb_printf(b, "\\u%04x", c);
            else
                tb_printf(b, "\\U%08x", c);
        } else {
            tb_put(b, s + i, next - i);
        }
        i = next;
    }
    tb_putc(b, q);
}

static void seq_to(struct tbuf *b, struct tv v)
{
    struct tlist *l = v.u.l;
    tb_putc(b, l->tuple ? '(' : '[');
    for (size_t i = 0; i < l->n; i++) {
        if (i) tb_puts(b, ", ");
        tv_repr_to(b, l->v[i]);
    }
    if (l->tuple && l->n == 1) tb_putc(b, ',');
    tb_putc(b, l->tuple ? ')' : ']');
}

static void dict_to(struct tbuf *b, const struct tdict *d)
{
    tb_putc(b, '{');
    for (size_t i = 0; i < d->n; i++) {
        if (i) tb_puts(b, ", ");
        tv_repr_to(b, d->k[i]);
        tb_puts(b, ": ");
        tv_repr_to(b, d->v[i]);
    }
    tb_putc(b, '}');
}

void tv_str_to(struct tbuf *b, struct tv v)
{
    switch (v.t) {
    case TV_UNDEF: return;
    case TV_NONE: tb_puts(b, "None"); return;
    case TV_BOOL: tb_puts(b, v.u.i ? "True" : "False"); return;
    case TV_INT: tb_printf(b, "%lld", (long long)v.u.i); return;
    case TV_FLOAT: py_float_repr(b, v.u.f); return;
    case TV_STR: tb_put(b, v.u.s.p, v.u.s.n); return;
    case TV_LIST: seq_to(b, v); return;
    case TV_DICT: dict_to(b, v.u.d); return;
    case TV_NS:
        tb_puts(b, "<Namespace ");
        dict_to(b, v.u.d);
        tb_putc(b, '>');
        return;
    case TV_LOOP:
        tb_printf(b, "<LoopContext %zu/%zu>", v.u.loop->index0 + 1, v.u.loop->length);
        return;
    case TV_FUNC: tb_puts(b, "<function>"); return;
    case TV_METHOD: tb_printf(b, "<built-in method %s>", v.u.m->name); return;
    case TV_MACRO: tb_printf(b, "<Macro '%s'>", v.u.macro->name); return;
    }
}

void tv_repr_to(struct tbuf *b, struct tv v)
{
    if (v.t == TV_STR)
        repr_str(b, v.u.s.p, v.u.s.n);
    else if (v.t == TV_UNDEF)
        tb_puts(b, "Undefined");
    else
        tv_str_to(b, v);
}

/* ---- json.dumps ---- */
static void json_str(struct tbuf *b, const char *s, size_t n, int ensure_ascii)
{
    tb_putc(b, '"');
    size_t run = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char tmp[16];
        size_t next = i + 1;
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default:
            if (c < 0x20 || (ensure_ascii && c == 0x7f)) {
                snprintf(tmp, sizeof tmp, "\\u%04x", c);
                esc = tmp;
            } else if (c >= 0x80 && ensure_ascii) {
                uint32_t cp = utf8_decode(s, n, i, &next);
                if (cp >= 0x10000) {
                    cp -= 0x10000;
                    snprintf(tmp, sizeof tmp, "\\u%04x\\u%04x", 0xD800 + (cp >> 10),
                             0xDC00 + (cp & 0x3FF));
                } else {
                    snprintf(tmp, sizeof tmp, "\\u%04x", cp);
                }
                esc = tmp;
            }
        }
        if (esc) {
            tb_put(b, s + i - run, run);
            run = 0;
            tb_puts(b, esc);
            i = next;
        } else {
            run++;
            i++;
        }
    }
    tb_put(b, s + n - run, run);
    tb_putc(b, '"');
}

static void json_newline(struct tbuf *b, const struct json_opts *o, int level)
{
    tb_putc(b, '\n');
    for (int i = 0; i < level; i++) tb_put(b, o->indent_str, o->indent_len);
}

static int key_cmp(const void *x, const void *y)
{
    const struct tv *a = *(const struct tv *const *)x, *b = *(const struct tv *const *)y;
    if (a->t != TV_STR || b->t != TV_STR) return 0;
    size_t n = a->u.s.n < b->u.s.n ? a->u.s.n : b->u.s.n;
    int c = memcmp(a->u.s.p, b->u.s.p, n);
    if (c) return c;
    return a->u.s.n < b->u.s.n ? -1 : a->u.s.n > b->u.s.n;
}

int tv_tojson(struct tbuf *b, struct tv v, const struct json_opts *o, int level, const char **bad)
{
    switch (v.t) {
    case TV_NONE: tb_puts(b, "null"); return 0;
    case TV_BOOL: tb_puts(b, v.u.i ? "true" : "false"); return 0;
    case TV_INT: tb_printf(b, "%lld", (long long)v.u.i); return 0;
    case TV_FLOAT:
        if (isnan(v.u.f))
            tb_puts(b, "NaN");
        else if (isinf(v.u.f))
            tb_puts(b, v.u.f < 0 ? "-Infinity" : "Infinity");
        else
            py_float_repr(b, v.u.f);
        return 0;
    case TV_STR: json_str(b, v.u.s.p, v.u.s.n, o->ensure_ascii); return 0;
    case TV_LIST: {
        struct tlist *l = v.u.l;
        if (!l->n) {
            tb_puts(b, "[]");
            return 0;
        }
        tb_putc(b, '[');
        for (size_t i = 0; i < l->n; i++) {
            if (i) tb_put(b, o->item_sep, o->item_sep_len);
            if (o->indent >= 0) json_newline(b, o, level + 1);
            if (tv_tojson(b, l->v[i], o, level + 1, bad)) return -1;
        }
        if (o->indent >= 0) json_newline(b, o, level);
        tb_putc(b, ']');
        return 0;
    }
    case TV_DICT: {
        struct tdict *d = v.u.d;
        if (!d->n) {
            tb_puts(b, "{}");
            return 0;
        }
        const struct tv **order = malloc(d->n * sizeof *order);
        if (!order) {
            b->oom = 1;
            return 0;
        }
        for (size_t i = 0; i < d->n; i++) order[i] = &d->k[i];
        if (o->sort_keys) qsort(order, d->n, sizeof *order, key_cmp);
        tb_putc(b, '{');
        for (size_t j = 0; j < d->n; j++) {
            size_t i = (size_t)(order[j] - d->k);
            struct tv k = d->k[i];
            if (j) tb_put(b, o->item_sep, o->item_sep_len);
            if (o->indent >= 0) json_newline(b, o, level + 1);
            if (k.t == TV_STR) {
                json_str(b, k.u.s.p, k.u.s.n, o->ensure_ascii);
            } else if (k.t == TV_INT || k.t == TV_FLOAT || k.t == TV_BOOL || k.t == TV_NONE) {
                tb_putc(b, '"');
                if (k.t == TV_FLOAT || k.t == TV_INT) {
                    if (tv_tojson(b, k, o, 0, bad)) {
                        free(order);
                        return -1;
                    }
                } else {
                    tb_puts(b, k.t == TV_NONE ? "null" : k.u.i ? "true" : "false");
                }
                tb_putc(b, '"');
            } else {
                *bad = "keys must be str, int, float, bool or None";
                free(order);
                return -1;
            }
            tb_put(b, o->key_sep, o->key_sep_len);
            if (tv_tojson(b, d->v[i], o, level + 1, bad)) {
                free(order);
                return -1;
            }
        }
        free(order);
        if (o->indent >= 0) json_newline(b, o, level);
        tb_putc(b, '}');
        return 0;
    }
    default: *bad = tv_typename(v); return -1;
    }
}

/* ---- from cJSON ---- */
static struct tv num_from_json(const cJSON *j)
{
    if (j->valuestring) {
        const char *s = j->valuestring;
        if (!strpbrk(s, ".eE")) {
            char *end;
            long long x = strtoll(s, &end, 10);
            if (*end == 0 && x != LLONG_MAX && x != LLONG_MIN) return tv_int(x);
        }
        return tv_float(j->valuedouble);
    }
    double d = j->valuedouble;
    if (d == floor(d) && fabs(d) < 9007199254740992.0) return tv_int((int64_t)d);
    return tv_float(d);
}

struct tv tv_from_json(struct tarena *a, const cJSON *j)
{
    if (!j) return tv_none();
    if (cJSON_IsBool(j)) return tv_bool(cJSON_IsTrue(j));
    if (cJSON_IsNull(j)) return tv_none();
    if (cJSON_IsNumber(j)) return num_from_json(j);
    if (cJSON_IsString(j) || cJSON_IsRaw(j)) {
        const char *s = j->valuestring ? j->valuestring : "";
        return tv_str(s, strlen(s));
    }
    if (cJSON_IsArray(j)) {
        struct tlist *l = tl_new(a, (size_t)cJSON_GetArraySize(j));
        if (!l) return tv_none();
        const cJSON *c;
        cJSON_ArrayForEach (c, j) tl_push(a, l, tv_from_json(a, c));
        struct tv v = {.t = TV_LIST};
        v.u.l = l;
        return v;
    }
    if (cJSON_IsObject(j)) {
        struct tdict *d = td_new(a, (size_t)cJSON_GetArraySize(j));
        if (!d) return tv_none();
        const cJSON *c;
        cJSON_ArrayForEach (c, j) {
            const char *k = c->string ? c->string : "";
            td_set(a, d, tv_str(k, strlen(k)), tv_from_json(a, c));
        }
        struct tv v = {.t = TV_DICT};
        v.u.d = d;
        return v;
    }
    return tv_none();
}
