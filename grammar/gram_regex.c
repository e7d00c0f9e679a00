#include "grammar/gram_regex.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SOURCE 16384    /* bytes of regex text */
#define MAX_NESTING 64      /* nested groups */
#define MAX_NFA 200000      /* NFA states (a large {n,m} copies its body m times) */
/* NFA set members the subset construction may visit (~0.1-0.3 s): the state cap bounds the
 * DFA, not the work of finding it, and regexes come from requests */
#define MAX_BUILD_WORK 30000000
#define MAX_CP 0x10FFFFu

/* ---- code point sets -------------------------------------------------------------------- */

struct range {
    uint32_t lo, hi;
};

struct cpset {
    struct range *r;
    int n, cap;
};

static bool set_add(struct cpset *s, uint32_t lo, uint32_t hi)
{
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 8;
        struct range *r = realloc(s->r, (size_t)cap * sizeof *r);
        if (!r) return false;
        s->r = r;
        s->cap = cap;
    }
    s->r[s->n++] = (struct range){lo, hi};
    return true;
}

static int cmp_range(const void *a, const void *b)
{
    const struct range *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Sorted, disjoint, non-adjacent ranges. */
static void set_normalize(struct cpset *s)
{
    if (s->n < 2) return;
    qsort(s->r, (size_t)s->n, sizeof *s->r, cmp_range);
    int k = 0;
    for (int i = 1; i < s->n; i++) {
        if (s->r[i].lo <= s->r[k].hi + 1) {
            if (s->r[i].hi > s->r[k].hi) s->r[k].hi = s->r[i].hi;
        } else {
            s->r[++k] = s->r[i];
        }
    }
    s->n = k + 1;
}

/* s = every code point not in s (s normalized). */
static bool set_negate(struct cpset *s)
{
    struct cpset out = {0};
    uint32_t next = 0;
    bool ok = true;
    for (int i = 0; i < s->n && ok; i++) {
        if (s->r[i].lo > next) ok = set_add(&out, next, s->r[i].lo - 1);
        next = s->r[i].hi + 1;
    }
    if (ok && next <= MAX_CP) ok = set_add(&out, next, MAX_CP);
    free(s->r);
    *s = out;
    return ok;
}

/* ECMAScript's WhiteSpace and LineTerminator (what \s matches there) */
static const struct range ECMA_SPACE[] = {{0x09, 0x0D}, {0x20, 0x20}, {0xA0, 0xA0}, {0x1680, 0x1680},
                                          {0x2000, 0x200A}, {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F},
                                          {0x3000, 0x3000}, {0xFEFF, 0xFEFF}};
static const struct range PY_SPACE[] = {{0x09, 0x0D}, {0x20, 0x20}};
static const struct range DIGIT[] = {{'0', '9'}};
static const struct range WORD[] = {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}};

/* ---- UTF-8: a code point range as sequences of byte ranges ------------------------------ */

/* emit gets k byte ranges (lo[i]..hi[i]); returning true stops the walk (then so does this). */
typedef bool (*seq_fn)(void *ctx, const uint8_t *lo, const uint8_t *hi, int k);

static int utf8_encode(uint32_t cp, uint8_t *b)
{
    if (cp < 0x80) return b[0] = (uint8_t)cp, 1;
    if (cp < 0x800) return b[0] = (uint8_t)(0xC0 | cp >> 6), b[1] = (uint8_t)(0x80 | (cp & 0x3F)), 2;
    if (cp < 0x10000) {
        b[0] = (uint8_t)(0xE0 | cp >> 12);
        b[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        b[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    b[0] = (uint8_t)(0xF0 | cp >> 18);
    b[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    b[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    b[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* Splits [lo, hi] (no surrogates inside) until both ends encode to the same length and differ
 * only in a suffix of whole continuation bytes; then each byte position is one range. */
static bool utf8_split(uint32_t lo, uint32_t hi, seq_fn emit, void *ctx)
{
    if (lo > hi) return false;
    static const uint32_t len_max[] = {0x7F, 0x7FF, 0xFFFF};
    for (int i = 0; i < 3; i++)
        if (lo <= len_max[i] && hi > len_max[i])
            return utf8_split(lo, len_max[i], emit, ctx) || utf8_split(len_max[i] + 1, hi, emit, ctx);
    for (int i = 1; i < 4; i++) {
        uint32_t m = (1u << (6 * i)) - 1;
        if ((lo & ~m) != (hi & ~m)) {
            if ((lo & m) != 0) return utf8_split(lo, lo | m, emit, ctx) || utf8_split((lo | m) + 1, hi, emit, ctx);
            if ((hi & m) != m) return utf8_split(lo, (hi & ~m) - 1, emit, ctx) || utf8_split(hi & ~m, hi, emit, ctx);
        }
    }
    uint8_t a[4], b[4];
    if (hi < 0x80) return a[0] = (uint8_t)lo, b[0] = (uint8_t)hi, emit(ctx, a, b, 1);
    int k = utf8_encode(lo, a);
    utf8_encode(hi, b);
    return emit(ctx, a, b, k);
}

/* The same over a range that may hold surrogates (they are skipped). */
static bool utf8_split_valid(uint32_t lo, uint32_t hi, seq_fn emit, void *ctx)
{
    if (hi > MAX_CP) hi = MAX_CP;
    if (lo < 0xD800 && utf8_split(lo, hi < 0xD7FF ? hi : 0xD7FF, emit, ctx)) return true;
    return hi > 0xDFFF && utf8_split(lo > 0xE000 ? lo : 0xE000, hi, emit, ctx);
}

/* ---- the parser: regex text -> syntax tree ---------------------------------------------- */

enum ast_kind { A_EMPTY, A_SET, A_CAT, A_ALT, A_REP, A_BOL, A_EOL };

struct ast {
    enum ast_kind kind;
    int a, b;     /* CAT / ALT: the two sides; REP: a = body; SET: a = set index */
    int min, max; /* REP; max -1: unbounded */
};

struct parser {
    const char *s;
    size_t len, pos;
    enum gram_regex_flavor fl;
    struct ast *ast;
    int n_ast, cap_ast;
    struct cpset *sets;
    int n_sets, cap_sets;
    int depth;
    struct ms_err *err;
    bool failed, parsed; /* parsed: errors from then on are about the whole regex, not a place */
};

__attribute__((format(printf, 2, 3))) static int perr(struct parser *p, const char *fmt, ...)
{
    if (!p->failed) {
        char msg[300];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        if (p->parsed) ms_err_set(p->err, MS_ERR_INVALID, "%s", msg);
        else ms_err_set(p->err, MS_ERR_INVALID, "%s (at offset %zu of the regex)", msg, p->pos);
    }
    p->failed = true;
    return -1;
}

static int nomem(struct parser *p) { return perr(p, "out of memory compiling the regex"); }

static int new_ast(struct parser *p, enum ast_kind kind, int a, int b)
{
    if (p->n_ast == p->cap_ast) {
        int cap = p->cap_ast ? 2 * p->cap_ast : 64;
        struct ast *n = realloc(p->ast, (size_t)cap * sizeof *n);
        if (!n) return nomem(p);
        p->ast = n;
        p->cap_ast = cap;
    }
    p->ast[p->n_ast] = (struct ast){.kind = kind, .a = a, .b = b};
    return p->n_ast++;
}

/* A SET node owning s (normalized here); s is emptied either way. */
static int set_node(struct parser *p, struct cpset *s)
{
    if (p->n_sets == p->cap_sets) {
        int cap = p->cap_sets ? 2 * p->cap_sets : 16;
        struct cpset *n = realloc(p->sets, (size_t)cap * sizeof *n);
        if (!n) {
            free(s->r);
            *s = (struct cpset){0};
            return nomem(p);
        }
        p->sets = n;
        p->cap_sets = cap;
    }
    set_normalize(s);
    p->sets[p->n_sets] = *s;
    *s = (struct cpset){0};
    return new_ast(p, A_SET, p->n_sets++, 0);
}

static bool at_end(const struct parser *p) { return p->pos >= p->len; }
static int peek(const struct parser *p) { return at_end(p) ? -1 : (uint8_t)p->s[p->pos]; }
static int peek2(const struct parser *p) { return p->pos + 1 >= p->len ? -1 : (uint8_t)p->s[p->pos + 1]; }

/* The code point at pos (the regex text is UTF-8). */
static int read_cp(struct parser *p, uint32_t *cp)
{
    const uint8_t *s = (const uint8_t *)p->s + p->pos;
    size_t left = p->len - p->pos;
    uint32_t c = s[0];
    int k = c < 0x80 ? 0 : c >= 0xC2 && c <= 0xDF ? 1 : c >= 0xE0 && c <= 0xEF ? 2 : c >= 0xF0 && c <= 0xF4 ? 3 : -1;
    if (k < 0 || (size_t)k >= left) return perr(p, "the regex is not valid UTF-8");
    if (k) c &= 0x3Fu >> k;
    for (int i = 1; i <= k; i++) {
        if ((s[i] & 0xC0) != 0x80) return perr(p, "the regex is not valid UTF-8");
        c = c << 6 | (s[i] & 0x3F);
    }
    if ((k == 2 && c < 0x800) || (k == 3 && (c < 0x10000 || c > MAX_CP)) || (c >= 0xD800 && c <= 0xDFFF))
        return perr(p, "the regex is not valid UTF-8");
    p->pos += (size_t)k + 1;
    *cp = c;
    return 0;
}

static int hex_val(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* n hex digits at pos */
static int read_hex(struct parser *p, int n, uint32_t *out, const char *what)
{
    uint32_t v = 0;
    for (int i = 0; i < n; i++) {
        int h = hex_val(peek(p));
        if (h < 0) return perr(p, "a malformed %s escape", what);
        v = v << 4 | (uint32_t)h;
        p->pos++;
    }
    *out = v;
    return 0;
}

/* \u: XXXX (a surrogate pair \uD83D\uDE00 combines) or {X...} */
static int read_unicode_escape(struct parser *p, uint32_t *cp)
{
    if (peek(p) == '{') {
        uint32_t v = 0;
        int n = 0;
        for (p->pos++; hex_val(peek(p)) >= 0 && n < 8; p->pos++, n++) v = v << 4 | (uint32_t)hex_val(peek(p));
        if (peek(p) != '}' || n == 0 || v > MAX_CP) return perr(p, "a malformed \\u{...} escape");
        p->pos++;
        *cp = v;
    } else if (read_hex(p, 4, cp, "\\uXXXX")) {
        return -1;
    }
    if (*cp >= 0xD800 && *cp <= 0xDBFF && peek(p) == '\\' && peek2(p) == 'u') { /* a low half may follow */
        uint32_t lo = 0;
        int i = 0;
        for (int h; i < 4 && p->pos + 2 + (size_t)i < p->len && (h = hex_val((uint8_t)p->s[p->pos + 2 + (size_t)i])) >= 0; i++)
            lo = lo << 4 | (uint32_t)h;
        if (i == 4 && lo >= 0xDC00 && lo <= 0xDFFF) {
            p->pos += 6;
            *cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
            return 0;
        }
    }
    if (*cp >= 0xD800 && *cp <= 0xDFFF) return perr(p, "a lone surrogate \\u%04X cannot be matched", (unsigned)*cp);
    return 0;
}

/* One escape after the backslash: a code point (*cp) or a class (*set filled, returns 1). */
static int read_escape(struct parser *p, bool in_class, uint32_t *cp, struct cpset *set)
{
    if (at_end(p)) return perr(p, "the regex ends with a lone backslash");
    int c = peek(p);
    const char *cls = strchr("dDwWsS", c);
    if (c && cls) {
        p->pos++;
        int lower = c | 0x20;
        const struct range *r = lower == 'd' ? DIGIT : lower == 'w' ? WORD : p->fl == GRAM_RE_ECMA ? ECMA_SPACE : PY_SPACE;
        int n = lower == 'd' ? 1 : lower == 'w' ? 4 : p->fl == GRAM_RE_ECMA ? 10 : 2;
        for (int i = 0; i < n; i++)
            if (!set_add(set, r[i].lo, r[i].hi)) return nomem(p);
        set_normalize(set);
        if (c != lower && !set_negate(set)) return nomem(p);
        return 1;
    }
    p->pos++;
    switch (c) {
    case 'n': return *cp = '\n', 0;
    case 't': return *cp = '\t', 0;
    case 'r': return *cp = '\r', 0;
    case 'f': return *cp = '\f', 0;
    case 'v': return *cp = '\v', 0;
    case 'a': if (p->fl == GRAM_RE_PYTHON) return *cp = 7, 0; break;
    case '0':
        if (peek(p) >= '0' && peek(p) <= '9') return perr(p, "octal escapes are not supported");
        return *cp = 0, 0;
    case 'x': return read_hex(p, 2, cp, "\\xHH");
    case 'u': return read_unicode_escape(p, cp);
    case 'U':
        if (p->fl == GRAM_RE_PYTHON) return read_hex(p, 8, cp, "\\UXXXXXXXX") ? -1 : *cp > MAX_CP || (*cp >= 0xD800 && *cp <= 0xDFFF) ? perr(p, "\\U%08X is not a code point", (unsigned)*cp) : 0;
        break;
    case 'b':
        if (in_class) return *cp = 8, 0;
        return perr(p, "word boundaries \\b are not supported");
    case 'B': return perr(p, "non-word boundaries \\B are not supported");
    case 'p':
    case 'P': return perr(p, "Unicode property escapes \\%c{...} are not supported", c);
    case 'k': return perr(p, "named backreferences \\k<...> are not supported");
    case 'c': return perr(p, "control escapes \\cX are not supported");
    default: break;
    }
    if (c >= '1' && c <= '9') return perr(p, "backreferences \\%c are not supported", c);
    if (c == 'A' || c == 'Z' || c == 'z' || c == 'G') return perr(p, "the anchor \\%c is not supported (use ^ and $)", c);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return perr(p, "unknown escape \\%c", c);
    p->pos--; /* any other character stands for itself */
    return read_cp(p, cp);
}

static int parse_class(struct parser *p)
{
    struct cpset set = {0}, esc = {0};
    bool negate = peek(p) == '^';
    if (negate) p->pos++;
    bool first = true;
    for (;;) {
        if (at_end(p)) goto unterminated;
        int c = peek(p);
        if (c == ']' && (!first || p->fl == GRAM_RE_ECMA)) break; /* ECMAScript: [] is empty, [^] anything */
        first = false;
        uint32_t lo, hi;
        int kind = 0;
        if (c == '\\') {
            p->pos++;
            kind = read_escape(p, true, &lo, &esc);
        } else {
            kind = read_cp(p, &lo);
        }
        if (kind < 0) goto fail;
        if (kind == 1) {
            for (int i = 0; i < esc.n; i++)
                if (!set_add(&set, esc.r[i].lo, esc.r[i].hi)) goto oom;
            esc.n = 0;
            if (peek(p) == '-' && peek2(p) != ']' && peek2(p) >= 0) {
                perr(p, "a class range cannot start or end with a class escape such as \\d");
                goto fail;
            }
            continue;
        }
        hi = lo;
        if (peek(p) == '-' && peek2(p) != ']' && peek2(p) >= 0) {
            p->pos++;
            int k2;
            if (peek(p) == '\\') {
                p->pos++;
                k2 = read_escape(p, true, &hi, &esc);
            } else {
                k2 = read_cp(p, &hi);
            }
            if (k2 < 0) goto fail;
            if (k2 == 1) {
                perr(p, "a class range cannot start or end with a class escape such as \\d");
                goto fail;
            }
            if (hi < lo) {
                perr(p, "the class range is out of order");
                goto fail;
            }
        }
        if (!set_add(&set, lo, hi)) goto oom;
    }
    p->pos++;
    free(esc.r);
    set_normalize(&set);
    if (negate && !set_negate(&set)) {
        free(set.r);
        return nomem(p);
    }
    return set_node(p, &set);
unterminated:
    perr(p, "a '[' is never closed");
    goto fail;
oom:
    nomem(p);
fail:
    free(set.r);
    free(esc.r);
    return -1;
}

static int parse_alt(struct parser *p);

static int parse_group(struct parser *p)
{
    if (++p->depth > MAX_NESTING) return perr(p, "groups are nested more than %d deep", MAX_NESTING);
    if (peek(p) == '?') {
        p->pos++;
        int c = peek(p), c2 = peek2(p);
        if (c == ':') {
            p->pos++;
        } else if ((c == 'P' && c2 == '<') || (c == '<' && c2 != '=' && c2 != '!')) {
            p->pos += c == 'P' ? 2 : 1;
            size_t start = p->pos;
            while (!at_end(p) && (peek(p) == '_' || ((peek(p) | 0x20) >= 'a' && (peek(p) | 0x20) <= 'z') ||
                                  (peek(p) >= '0' && peek(p) <= '9')))
                p->pos++;
            if (peek(p) != '>' || p->pos == start) return perr(p, "a malformed group name");
            p->pos++;
        } else if (c == '=' || c == '!') {
            return perr(p, "lookahead (?%c...) is not supported", c);
        } else if (c == '<') {
            return perr(p, "lookbehind (?<%c...) is not supported", c2);
        } else if (c == 'P' && c2 == '=') {
            return perr(p, "backreferences (?P=name) are not supported");
        } else if (c == '>') {
            return perr(p, "atomic groups (?>...) are not supported");
        } else if (c == '#') {
            return perr(p, "comments (?#...) are not supported");
        } else if (c == '(') {
            return perr(p, "conditionals (?(...)...) are not supported");
        } else {
            return perr(p, "inline flags or modifiers (?%c...) are not supported", c < 0 ? '?' : c);
        }
    }
    int body = parse_alt(p);
    if (body < 0) return -1;
    if (peek(p) != ')') return perr(p, "a '(' is never closed");
    p->pos++;
    p->depth--;
    return body;
}

static int parse_atom(struct parser *p)
{
    int c = peek(p);
    uint32_t cp;
    struct cpset set = {0};
    switch (c) {
    case '(': p->pos++; return parse_group(p);
    case '[': p->pos++; return parse_class(p);
    case '^': p->pos++; return new_ast(p, A_BOL, 0, 0);
    case '$': p->pos++; return new_ast(p, A_EOL, 0, 0);
    case '*':
    case '+':
    case '?': return perr(p, "'%c' has nothing to repeat", c);
    case '.':
        p->pos++;
        if (!set_add(&set, '\n', '\n') || (p->fl == GRAM_RE_ECMA && (!set_add(&set, '\r', '\r') || !set_add(&set, 0x2028, 0x2029))))
            return free(set.r), nomem(p);
        set_normalize(&set);
        if (!set_negate(&set)) return free(set.r), nomem(p);
        return set_node(p, &set);
    case '\\': {
        p->pos++;
        int k = read_escape(p, false, &cp, &set);
        if (k < 0) return free(set.r), -1;
        if (k == 1) return set_node(p, &set);
        break;
    }
    default:
        if (read_cp(p, &cp)) return -1;
    }
    if (!set_add(&set, cp, cp)) return nomem(p);
    return set_node(p, &set);
}

/* {n}, {n,}, {n,m} (and {,m} for Python) at pos: 1 with *mn / *mx (-1: unbounded) and pos
 * past it; 0 (pos unchanged) if the brace is not a quantifier, then it is a literal '{'. */
static int read_braces(struct parser *p, int *mn, int *mx)
{
    size_t i = p->pos + 1;
    long a = -1, b = -1;
    bool comma = false;
    for (; i < p->len && p->s[i] >= '0' && p->s[i] <= '9'; i++) a = (a < 0 ? 0 : a) * 10 + (p->s[i] - '0'), a = a > 100000 ? 100000 : a;
    if (i < p->len && p->s[i] == ',') {
        comma = true;
        for (i++; i < p->len && p->s[i] >= '0' && p->s[i] <= '9'; i++) b = (b < 0 ? 0 : b) * 10 + (p->s[i] - '0'), b = b > 100000 ? 100000 : b;
    }
    if (i >= p->len || p->s[i] != '}' || (a < 0 && (!comma || b < 0 || p->fl != GRAM_RE_PYTHON))) return 0;
    p->pos = i + 1;
    *mn = a < 0 ? 0 : (int)a;
    *mx = comma ? (int)b : (int)a;
    if (*mn > GRAM_REGEX_MAX_REPEAT || *mx > GRAM_REGEX_MAX_REPEAT)
        return perr(p, "a repetition count is larger than %d", GRAM_REGEX_MAX_REPEAT);
    if (*mx >= 0 && *mx < *mn) return perr(p, "the repetition range {%d,%d} is out of order", *mn, *mx);
    return 1;
}

/* A quantifier at pos: 1 with its bounds, 0 if none, -1 on error. */
static int read_quantifier(struct parser *p, int *mn, int *mx)
{
    int c = peek(p);
    if (c == '*') *mn = 0, *mx = -1;
    else if (c == '+') *mn = 1, *mx = -1;
    else if (c == '?') *mn = 0, *mx = 1;
    else if (c == '{') return read_braces(p, mn, mx) ? (p->failed ? -1 : 1) : (p->failed ? -1 : 0);
    else return 0;
    p->pos++;
    return 1;
}

static int parse_repeat(struct parser *p)
{
    bool anchor = peek(p) == '^' || peek(p) == '$';
    int atom = parse_atom(p);
    if (atom < 0) return -1;
    int mn, mx, q = read_quantifier(p, &mn, &mx);
    if (q <= 0) return q < 0 ? -1 : atom;
    if (anchor) return perr(p, "an anchor ^ or $ has nothing to repeat");
    if (peek(p) == '?') p->pos++; /* lazy: the same language */
    else if (peek(p) == '+') return perr(p, "possessive quantifiers are not supported");
    int mn2, mx2;
    size_t save = p->pos;
    if (read_quantifier(p, &mn2, &mx2) != 0) {
        p->pos = save;
        return perr(p, "a quantifier follows a quantifier (nothing to repeat)");
    }
    int rep = new_ast(p, A_REP, atom, 0);
    if (rep < 0) return -1;
    p->ast[rep].min = mn;
    p->ast[rep].max = mx;
    return rep;
}

static int parse_cat(struct parser *p)
{
    int left = -1;
    while (!at_end(p) && peek(p) != '|' && peek(p) != ')') {
        int r = parse_repeat(p);
        if (r < 0) return -1;
        left = left < 0 ? r : new_ast(p, A_CAT, left, r);
        if (left < 0) return -1;
    }
    return left < 0 ? new_ast(p, A_EMPTY, 0, 0) : left;
}

static int parse_alt(struct parser *p)
{
    int left = parse_cat(p);
    while (left >= 0 && peek(p) == '|') {
        p->pos++;
        int r = parse_cat(p);
        left = r < 0 ? -1 : new_ast(p, A_ALT, left, r);
    }
    return left;
}

/* ---- Thompson NFA over bytes ------------------------------------------------------------ */

enum nkind { N_BYTE, N_SPLIT, N_BOL, N_EOL, N_MATCH, N_FAIL };

struct nst {
    uint8_t kind, lo, hi; /* BYTE: lo..hi -> out */
    int32_t out, out2;    /* SPLIT: both; EPS / BOL / EOL: out */
};

struct nfa {
    struct parser *p;
    struct nst *st;
    int n, cap;
};

static int nfa_add(struct nfa *a, enum nkind kind, int lo, int hi, int out, int out2)
{
    if (a->n >= MAX_NFA) return perr(a->p, "the regex is too large (more than %d NFA states)", MAX_NFA);
    if (a->n == a->cap) {
        int cap = a->cap ? 2 * a->cap : 256;
        struct nst *n = realloc(a->st, (size_t)cap * sizeof *n);
        if (!n) return nomem(a->p);
        a->st = n;
        a->cap = cap;
    }
    a->st[a->n] = (struct nst){(uint8_t)kind, (uint8_t)lo, (uint8_t)hi, out, out2};
    return a->n++;
}

struct seq_ctx {
    struct nfa *a;
    int cont, entry;
};

static bool emit_seq(void *ctx, const uint8_t *lo, const uint8_t *hi, int k)
{
    struct seq_ctx *c = ctx;
    int s = c->cont;
    for (int i = k - 1; i >= 0 && s >= 0; i--) s = nfa_add(c->a, N_BYTE, lo[i], hi[i], s, -1);
    if (s >= 0) s = c->entry < 0 ? s : nfa_add(c->a, N_SPLIT, 0, 0, s, c->entry);
    c->entry = s;
    return s < 0;
}

/* The NFA entry of a code point set, continuing at cont. */
static int nfa_set(struct nfa *a, const struct cpset *set, int cont)
{
    struct seq_ctx c = {a, cont, -1};
    for (int i = 0; i < set->n; i++)
        if (utf8_split_valid(set->r[i].lo, set->r[i].hi, emit_seq, &c)) return -1;
    return c.entry >= 0 ? c.entry : nfa_add(a, N_FAIL, 0, 0, -1, -1);
}

/* The entry state of tree node id, followed by cont (built backwards). */
static int nfa_build(struct nfa *a, int id, int cont)
{
    const struct parser *p = a->p;
    while (cont >= 0 && p->ast[id].kind == A_CAT) { /* left-nested: iterate, do not recurse */
        cont = nfa_build(a, p->ast[id].b, cont);
        id = p->ast[id].a;
    }
    if (cont < 0) return -1;
    const struct ast t = p->ast[id];
    switch (t.kind) {
    case A_EMPTY: return cont;
    case A_SET: return nfa_set(a, &p->sets[t.a], cont);
    case A_BOL: return nfa_add(a, N_BOL, 0, 0, cont, -1);
    case A_EOL: return nfa_add(a, N_EOL, 0, 0, cont, -1);
    case A_ALT: {
        int entry = nfa_build(a, t.b, cont);
        for (id = t.a; entry >= 0 && p->ast[id].kind == A_ALT; id = p->ast[id].a) {
            int e = nfa_build(a, p->ast[id].b, cont);
            entry = e < 0 ? -1 : nfa_add(a, N_SPLIT, 0, 0, e, entry);
        }
        int e = entry < 0 ? -1 : nfa_build(a, id, cont);
        return e < 0 ? -1 : nfa_add(a, N_SPLIT, 0, 0, e, entry);
    }
    case A_REP: {
        int c = cont;
        if (t.max < 0) { /* a loop: L = SPLIT(body -> L, cont) */
            int loop = nfa_add(a, N_SPLIT, 0, 0, -1, cont);
            int body = loop < 0 ? -1 : nfa_build(a, t.a, loop);
            if (body < 0) return -1;
            a->st[loop].out = body;
            c = loop;
        } else {
            for (int i = 0; i < t.max - t.min && c >= 0; i++) {
                int body = nfa_build(a, t.a, c);
                c = body < 0 ? -1 : nfa_add(a, N_SPLIT, 0, 0, body, cont);
            }
        }
        for (int i = 0; i < t.min && c >= 0; i++) c = nfa_build(a, t.a, c);
        return c;
    }
    default: return -1;
    }
}

/* ---- subset construction ---------------------------------------------------------------- */

struct gram_regex {
    int n_states, n_cls;
    uint8_t cls[256];  /* byte -> class: bytes no NFA transition tells apart share one */
    int32_t *next;     /* [n_states * n_cls], -1: refused */
    uint8_t *accept;
};

struct dfa_build {
    struct nfa *a;
    struct gram_regex *re;
    int32_t *pool;                /* the states' NFA sets, one after the other */
    size_t pool_n, pool_cap;
    size_t *set_off;
    int *set_len;
    int cap_states;
    size_t work;                  /* set members visited so far (MAX_BUILD_WORK) */
    int32_t table[2 * GRAM_REGEX_MAX_STATES]; /* hash of sets -> state (not the start) */
    int *mark, stamp, *stack, *list;
};

static int cmp_int(const void *x, const void *y)
{
    int a = *(const int *)x, b = *(const int *)y;
    return a < b ? -1 : a > b;
}

/* The NFA states reachable from in[] without reading a byte (^ only at the start, $ never:
 * EOL states are kept as members and crossed only by the acceptance test), sorted into list. */
static int closure(struct dfa_build *d, const int *in, int n_in, bool at_start)
{
    const struct nst *st = d->a->st;
    int sp = 0, n = 0;
    d->stamp++;
    for (int i = 0; i < n_in; i++) d->stack[sp++] = in[i];
    while (sp) {
        int s = d->stack[--sp];
        if (d->mark[s] == d->stamp) continue;
        d->mark[s] = d->stamp;
        switch (st[s].kind) {
        case N_BYTE:
        case N_MATCH:
        case N_EOL: d->list[n++] = s; break;
        case N_SPLIT: d->stack[sp++] = st[s].out2; d->stack[sp++] = st[s].out; break;
        case N_BOL: if (at_start) d->stack[sp++] = st[s].out; break;
        default: break;
        }
    }
    qsort(d->list, (size_t)n, sizeof *d->list, cmp_int);
    return n;
}

/* Is MATCH reachable from the set when the text ends here ($ holds; ^ too at the start)? */
static bool set_accepts(struct dfa_build *d, const int32_t *set, int n, bool at_start)
{
    const struct nst *st = d->a->st;
    int sp = 0;
    d->stamp++;
    for (int i = 0; i < n; i++) d->stack[sp++] = set[i];
    while (sp) {
        int s = d->stack[--sp];
        if (d->mark[s] == d->stamp) continue;
        d->mark[s] = d->stamp;
        switch (st[s].kind) {
        case N_MATCH: return true;
        case N_SPLIT: d->stack[sp++] = st[s].out2; /* fall through */
        case N_EOL: d->stack[sp++] = st[s].out; break;
        case N_BOL: if (at_start) d->stack[sp++] = st[s].out; break;
        default: break;
        }
    }
    return false;
}

static uint32_t hash_set(const int *s, int n)
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < n; i++) h = (h ^ (uint32_t)s[i]) * 16777619u;
    return h;
}

/* The state for list[0..n) (added if new), or -1 (err set) past the state cap. */
static int dfa_state(struct dfa_build *d, int n, bool is_start)
{
    uint32_t mask = 2 * GRAM_REGEX_MAX_STATES - 1, h = hash_set(d->list, n) & mask;
    for (; !is_start && d->table[h] >= 0; h = (h + 1) & mask) {
        int t = d->table[h];
        if (d->set_len[t] == n && !memcmp(d->pool + d->set_off[t], d->list, (size_t)n * sizeof *d->list)) return t;
    }
    struct gram_regex *re = d->re;
    if (re->n_states == GRAM_REGEX_MAX_STATES)
        return perr(d->a->p, "the regex needs more than %d DFA states (simplify it, e.g. smaller repetition counts)",
                    GRAM_REGEX_MAX_STATES);
    if (re->n_states == d->cap_states) {
        int cap = d->cap_states ? 2 * d->cap_states : 64;
        size_t *off = realloc(d->set_off, (size_t)cap * sizeof *off);
        if (off) d->set_off = off;
        int *len = realloc(d->set_len, (size_t)cap * sizeof *len);
        if (len) d->set_len = len;
        int32_t *next = realloc(re->next, (size_t)cap * (size_t)re->n_cls * sizeof *next);
        if (next) re->next = next;
        uint8_t *acc = realloc(re->accept, (size_t)cap);
        if (acc) re->accept = acc;
        if (!off || !len || !next || !acc) return nomem(d->a->p);
        d->cap_states = cap;
    }
    if (d->pool_n + (size_t)n > d->pool_cap) {
        size_t cap = d->pool_cap ? 2 * d->pool_cap : 4096;
        while (cap < d->pool_n + (size_t)n) cap *= 2;
        int32_t *pool = realloc(d->pool, cap * sizeof *pool);
        if (!pool) return nomem(d->a->p);
        d->pool = pool;
        d->pool_cap = cap;
    }
    int id = re->n_states++;
    if (n) memcpy(d->pool + d->pool_n, d->list, (size_t)n * sizeof *d->list); /* the start set may be empty */
    d->set_off[id] = d->pool_n;
    d->set_len[id] = n;
    d->pool_n += (size_t)n;
    re->accept[id] = set_accepts(d, d->pool + d->set_off[id], n, is_start);
    if (!is_start) d->table[h] = id;
    return id;
}

/* Byte classes: bytes that every NFA transition treats alike. */
static void byte_classes(const struct nfa *a, struct gram_regex *re)
{
    uint8_t edge[257] = {0}; /* edge[b]: a range starts at b */
    edge[0] = edge[0x80] = edge[0xC0] = 1; /* no class mixes ASCII, continuation and lead bytes */
    for (int i = 0; i < a->n; i++)
        if (a->st[i].kind == N_BYTE) edge[a->st[i].lo] = 1, edge[a->st[i].hi + 1] = 1;
    int c = -1;
    for (int b = 0; b < 256; b++) {
        if (edge[b]) c++;
        re->cls[b] = (uint8_t)c;
    }
    re->n_cls = c + 1;
}

static int subset_construct(struct dfa_build *d, int start)
{
    struct gram_regex *re = d->re;
    const struct nst *st = d->a->st;
    int rep[256], *in = malloc((size_t)d->a->n * sizeof *in);
    if (!in) return nomem(d->a->p);
    for (int b = 255; b >= 0; b--) rep[re->cls[b]] = b;
    if (dfa_state(d, closure(d, &start, 1, true), true) < 0) return free(in), -1;
    for (int s = 0; s < re->n_states; s++) { /* n_states grows as the loop discovers states */
        d->work += (size_t)d->set_len[s] * (size_t)re->n_cls;
        if (d->work > MAX_BUILD_WORK)
            return free(in), perr(d->a->p, "the regex is too costly to compile (%d DFA states so far; simplify it, "
                                           "e.g. smaller repetition counts)", re->n_states);
        for (int c = 0; c < re->n_cls; c++) {
            int n_in = 0, b = rep[c];
            const int32_t *set = d->pool + d->set_off[s];
            for (int i = 0; i < d->set_len[s]; i++) {
                const struct nst *x = &st[set[i]];
                if (x->kind == N_BYTE && b >= x->lo && b <= x->hi) in[n_in++] = x->out;
            }
            int t = -1;
            if (n_in) {
                int n = closure(d, in, n_in, false);
                t = n ? dfa_state(d, n, false) : -1;
                if (n && t < 0) return free(in), -1;
            }
            re->next[(size_t)s * (size_t)re->n_cls + (size_t)c] = t;
        }
    }
    free(in);
    return 0;
}

/* Cuts every transition into a state from which no accepting state can be reached. */
static int prune_dead(struct parser *p, struct gram_regex *re)
{
    size_t n = (size_t)re->n_states, k = (size_t)re->n_cls;
    int *head = malloc((n + 1) * sizeof *head), *src = malloc(n * k * sizeof *src + 1), *queue = malloc(n * sizeof *queue);
    uint8_t *live = calloc(n, 1);
    int rc = 0;
    if (!head || !src || !queue || !live) {
        rc = nomem(p);
        goto out;
    }
    memset(head, 0, (n + 1) * sizeof *head);
    for (size_t i = 0; i < n * k; i++)
        if (re->next[i] >= 0) head[re->next[i] + 1]++;
    for (size_t t = 0; t < n; t++) head[t + 1] += head[t];
    int *fill = queue; /* borrowed as per-state fill counters, then reset */
    memcpy(fill, head, n * sizeof *fill);
    for (size_t i = 0; i < n * k; i++)
        if (re->next[i] >= 0) src[fill[re->next[i]]++] = (int)(i / k);
    int qn = 0;
    for (size_t s = 0; s < n; s++)
        if (re->accept[s]) live[s] = 1, queue[qn++] = (int)s;
    for (int qi = 0; qi < qn; qi++)
        for (int e = head[queue[qi]]; e < head[queue[qi] + 1]; e++)
            if (!live[src[e]]) live[src[e]] = 1, queue[qn++] = src[e];
    for (size_t i = 0; i < n * k; i++)
        if (re->next[i] >= 0 && !live[re->next[i]]) re->next[i] = -1;
    if (!live[0]) rc = perr(p, "the regex matches no text");
out:
    free(head);
    free(src);
    free(queue);
    free(live);
    return rc;
}

static int build_dfa(struct parser *p, int root, struct gram_regex *re)
{
    struct nfa a = {.p = p};
    struct dfa_build d = {.a = &a, .re = re};
    int rc = -1, match = nfa_add(&a, N_MATCH, 0, 0, -1, -1), start = -1;
    if (match >= 0 && p->fl == GRAM_RE_ECMA) { /* a search: any text before and after */
        struct cpset any = {0};
        if (!set_add(&any, 0, MAX_CP)) goto out;
        int tail = nfa_add(&a, N_SPLIT, 0, 0, -1, match), body = tail < 0 ? -1 : nfa_set(&a, &any, tail);
        if (body >= 0) a.st[tail].out = body;
        int mid = body < 0 ? -1 : nfa_build(&a, root, tail);
        int head = mid < 0 ? -1 : nfa_add(&a, N_SPLIT, 0, 0, -1, mid);
        body = head < 0 ? -1 : nfa_set(&a, &any, head);
        if (body >= 0) a.st[head].out = body, start = head;
        free(any.r);
    } else if (match >= 0) {
        start = nfa_build(&a, root, match);
    }
    if (start < 0) goto out;
    byte_classes(&a, re);
    memset(d.table, 0xFF, sizeof d.table);
    d.mark = calloc((size_t)a.n, sizeof *d.mark);
    d.stack = malloc(((size_t)a.n * 3 + 2) * sizeof *d.stack); /* each state pushes at most 2 once */
    d.list = malloc(((size_t)a.n + 1) * sizeof *d.list);
    if (!d.mark || !d.stack || !d.list) {
        nomem(p);
        goto out;
    }
    if (subset_construct(&d, start) == 0) rc = prune_dead(p, re);
out:
    if (rc < 0 && !p->failed) nomem(p);
    free(a.st);
    free(d.pool);
    free(d.set_off);
    free(d.set_len);
    free(d.mark);
    free(d.stack);
    free(d.list);
    return rc;
}

/* ---- entry points ----------------------------------------------------------------------- */

struct gram_regex *gram_regex_compile(const char *src, size_t len, enum gram_regex_flavor flavor,
                                      struct ms_err *err)
{
    struct parser p = {.s = src, .len = len, .fl = flavor, .err = err};
    struct gram_regex *re = calloc(1, sizeof *re);
    if (!re) {
        ms_err_set(err, MS_ERR_NOMEM, "out of memory compiling the regex");
        return NULL;
    }
    int root = -1;
    if (len > MAX_SOURCE) perr(&p, "the regex is longer than %d bytes", MAX_SOURCE);
    else if ((root = parse_alt(&p)) >= 0 && !at_end(&p)) root = perr(&p, "an unmatched ')'");
    p.parsed = true;
    if (root >= 0) build_dfa(&p, root, re);
    for (int i = 0; i < p.n_sets; i++) free(p.sets[i].r);
    free(p.sets);
    free(p.ast);
    if (p.failed || root < 0) {
        gram_regex_free(re);
        return NULL;
    }
    return re;
}

/* The product of re with a code point counter (0..cap, cap = max, or min when unbounded: past
 * min every count is alike): a state is (re's state, count). */
struct gram_regex *gram_regex_with_length(const struct gram_regex *re, int min, int max, struct ms_err *err)
{
    struct parser p = {.err = err, .parsed = true};
    int cap = max >= 0 ? max : min, rep[256], n_cls = re->n_cls;
    struct gram_regex *out = calloc(1, sizeof *out);
    int32_t *pair = malloc(2 * GRAM_REGEX_MAX_STATES * sizeof *pair), *table = malloc(4 * GRAM_REGEX_MAX_STATES * sizeof *table);
    if (out) {
        out->next = malloc((size_t)GRAM_REGEX_MAX_STATES * (size_t)n_cls * sizeof *out->next);
        out->accept = malloc(GRAM_REGEX_MAX_STATES);
    }
    if (!out || !pair || !table || !out->next || !out->accept) {
        nomem(&p);
        goto out;
    }
    memcpy(out->cls, re->cls, sizeof out->cls);
    out->n_cls = n_cls;
    for (int b = 255; b >= 0; b--) rep[re->cls[b]] = b;
    memset(table, 0xFF, 4 * GRAM_REGEX_MAX_STATES * sizeof *table);
    pair[0] = pair[1] = 0;
    out->n_states = 1;
    table[0] = 0; /* the key of (0, 0) hashes to slot 0 */
    for (int i = 0; i < out->n_states && !p.failed; i++) {
        int s = pair[2 * i], c = pair[2 * i + 1];
        out->accept[i] = re->accept[s] && c >= min;
        for (int k = 0; k < n_cls; k++) {
            int t = re->next[(size_t)s * (size_t)n_cls + (size_t)k], c2 = c + ((rep[k] & 0xC0) != 0x80), id = -1;
            if (c2 > cap) c2 = max >= 0 ? -1 : cap;
            if (t >= 0 && c2 >= 0) {
                uint32_t key = (uint32_t)t * 1009u + (uint32_t)c2, mask = 4 * GRAM_REGEX_MAX_STATES - 1, h = (key * 2654435761u) & mask;
                for (h = key == 0 ? 0 : h; table[h] >= 0 && (pair[2 * table[h]] != t || pair[2 * table[h] + 1] != c2); h = (h + 1) & mask) {}
                if (table[h] < 0) {
                    if (out->n_states == GRAM_REGEX_MAX_STATES) {
                        perr(&p, "the pattern with minLength / maxLength needs more than %d DFA states", GRAM_REGEX_MAX_STATES);
                        break;
                    }
                    table[h] = out->n_states;
                    pair[2 * out->n_states] = t;
                    pair[2 * out->n_states + 1] = c2;
                    out->n_states++;
                }
                id = table[h];
            }
            out->next[(size_t)i * (size_t)n_cls + (size_t)k] = id;
        }
    }
    if (!p.failed) prune_dead(&p, out);
out:
    free(pair);
    free(table);
    if (p.failed) {
        gram_regex_free(out);
        return NULL;
    }
    return out;
}

void gram_regex_free(struct gram_regex *re)
{
    if (!re) return;
    free(re->next);
    free(re->accept);
    free(re);
}

int gram_regex_states(const struct gram_regex *re) { return re->n_states; }

int gram_regex_next(const struct gram_regex *re, int state, uint8_t b)
{
    return re->next[(size_t)state * (size_t)re->n_cls + re->cls[b]];
}

int gram_regex_next_cp(const struct gram_regex *re, int state, uint32_t cp)
{
    uint8_t b[4];
    int n = utf8_encode(cp, b);
    for (int i = 0; i < n && state >= 0; i++) state = gram_regex_next(re, state, b[i]);
    return state;
}

bool gram_regex_accepting(const struct gram_regex *re, int state) { return re->accept[state]; }

struct viable_ctx {
    const struct gram_regex *re;
    int state;
};

/* Does some byte path through the ranges lead from the state somewhere (dead ends are cut, so
 * anywhere is live)? A breadth-first walk over the distinct states of each depth. */
static bool seq_viable(void *ctx, const uint8_t *lo, const uint8_t *hi, int k)
{
    const struct viable_ctx *v = ctx;
    int16_t cur[GRAM_REGEX_MAX_STATES], nxt[GRAM_REGEX_MAX_STATES];
    int nc = 1;
    uint8_t seen[GRAM_REGEX_MAX_STATES / 8];
    cur[0] = (int16_t)v->state;
    for (int i = 0; i < k && nc; i++) {
        int nn = 0;
        memset(seen, 0, sizeof seen);
        for (int j = 0; j < nc; j++)
            for (int b = lo[i]; b <= hi[i]; b++) {
                int t = gram_regex_next(v->re, cur[j], (uint8_t)b);
                if (t >= 0 && !(seen[t >> 3] >> (t & 7) & 1)) seen[t >> 3] |= (uint8_t)(1 << (t & 7)), nxt[nn++] = (int16_t)t;
            }
        memcpy(cur, nxt, (size_t)nn * sizeof *cur);
        nc = nn;
    }
    return nc > 0;
}

bool gram_regex_range_viable(const struct gram_regex *re, int state, uint32_t lo, uint32_t hi)
{
    struct viable_ctx v = {re, state};
    return utf8_split_valid(lo, hi, seq_viable, &v);
}
