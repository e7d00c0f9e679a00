/* Chat-template lexer: jinja2's lexer with trim_blocks and lstrip_blocks on, as transformers sets
 * it up. Whitespace control ({%- -%} {{- -}} {#- -#}, {%+) and comments are resolved here, so the
 * parser sees only text, tags and expression tokens. */
#include "tokenizer/tmpl_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lexer {
    struct tarena *a;
    const char *s;
    size_t n, pos;
    int line;
    int line_starting;
    struct tk_list *out;
    struct ms_err *err;
};

static int emit(struct lexer *L, struct tk t)
{
    struct tk_list *o = L->out;
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 256;
        struct tk *v = realloc(o->v, cap * sizeof *v);
        if (!v) return ms_err_set(L->err, MS_ERR_NOMEM, "out of memory lexing template");
        o->v = v;
        o->cap = cap;
    }
    o->v[o->n++] = t;
    return 0;
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' ||
           (c >= 0x1c && c <= 0x1f);
}
static int is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* Python's str.isspace / regex \s on the code point at i (UTF-8); *len gets its byte length. */
static int ws_at(const struct lexer *L, size_t i, size_t *len)
{
    unsigned char c = (unsigned char)L->s[i];
    if (c < 0x80) {
        *len = 1;
        return is_ws((char)c);
    }
    size_t next;
    uint32_t cp = utf8_decode(L->s, L->n, i, &next);
    *len = next - i;
    return py_isspace(cp);
}

static size_t skip_ws(const struct lexer *L, size_t i)
{
    size_t len;
    while (i < L->n && ws_at(L, i, &len)) i += len;
    return i;
}

/* Start of the whitespace run that ends at `end` (not before `a`). */
static size_t back_ws(const struct lexer *L, size_t a, size_t end)
{
    while (end > a) {
        size_t st = end - 1, len;
        while (st > a && ((unsigned char)L->s[st] & 0xC0) == 0x80) st--;
        if (!ws_at(L, st, &len) || st + len != end) break;
        end = st;
    }
    return end;
}

static int count_nl(const char *s, size_t a, size_t b)
{
    int n = 0;
    for (size_t i = a; i < b; i++) n += s[i] == '\n';
    return n;
}

static int starts(const struct lexer *L, size_t p, const char *lit)
{
    size_t k = strlen(lit);
    return p + k <= L->n && !memcmp(L->s + p, lit, k);
}

/* Emits text [a, tag) after the whitespace control jinja applies for a tag with `sign` ('-', '+'
 * or 0); `lstrip` says whether lstrip_blocks applies to this kind of tag. */
static int emit_text(struct lexer *L, size_t a, size_t tag, char sign, int lstrip)
{
    size_t end = tag;
    if (sign == '-') {
        end = back_ws(L, a, end);
    } else if (sign != '+' && lstrip) {
        size_t lp = tag;
        while (lp > a && L->s[lp - 1] != '\n') lp--;
        int found_nl = lp > a;
        if ((found_nl || L->line_starting) && lp < tag && back_ws(L, lp, tag) == lp) end = lp;
    }
    int rc = 0;
    if (end > a) {
        struct tk t = {.t = TK_TEXT, .line = L->line, .p = L->s + a, .n = end - a};
        rc = emit(L, t);
    }
    L->line += count_nl(L->s, a, tag);
    return rc;
}

static int lex_fail(struct lexer *L, const char *what)
{
    return ms_err_set(L->err, MS_ERR_INVALID, "line %d: %s", L->line, what);
}

static void put_utf8(char *o, size_t *k, uint32_t c)
{
    if (c < 0x80) {
        o[(*k)++] = (char)c;
    } else if (c < 0x800) {
        o[(*k)++] = (char)(0xC0 | (c >> 6));
        o[(*k)++] = (char)(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        o[(*k)++] = (char)(0xE0 | (c >> 12));
        o[(*k)++] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[(*k)++] = (char)(0x80 | (c & 0x3F));
    } else {
        o[(*k)++] = (char)(0xF0 | (c >> 18));
        o[(*k)++] = (char)(0x80 | ((c >> 12) & 0x3F));
        o[(*k)++] = (char)(0x80 | ((c >> 6) & 0x3F));
        o[(*k)++] = (char)(0x80 | (c & 0x3F));
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* A string literal: Python's unicode-escape decoding of the text between the quotes. */
static int lex_string(struct lexer *L)
{
    char q = L->s[L->pos];
    size_t i = L->pos + 1;
    while (i < L->n && L->s[i] != q) {
        if (L->s[i] == '\\') i++;
        i++;
    }
    if (i >= L->n) return lex_fail(L, "unexpected end of string literal");
    const char *s = L->s + L->pos + 1;
    size_t n = i - L->pos - 1;
    char *o = ta_alloc(L->a, n + 1);
    if (!o) return ms_err_set(L->err, MS_ERR_NOMEM, "out of memory");
    size_t k = 0;
    for (size_t j = 0; j < n; j++) {
        if (s[j] != '\\' || j + 1 >= n) {
            o[k++] = s[j];
            continue;
        }
        char e = s[++j];
        switch (e) {
        case '\n': break;
        case '\\': o[k++] = '\\'; break;
        case '\'': o[k++] = '\''; break;
        case '"': o[k++] = '"'; break;
        case 'a': o[k++] = '\a'; break;
        case 'b': o[k++] = '\b'; break;
        case 'f': o[k++] = '\f'; break;
        case 'n': o[k++] = '\n'; break;
        case 'r': o[k++] = '\r'; break;
        case 't': o[k++] = '\t'; break;
        case 'v': o[k++] = '\v'; break;
        case 'x':
        case 'u':
        case 'U': {
            int digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
            uint32_t c = 0;
            if (j + (size_t)digits >= n)
                return lex_fail(L, "truncated \\x/\\u escape in string literal");
            for (int d = 1; d <= digits; d++) {
                int h = hexval(s[j + (size_t)d]);
                if (h < 0) return lex_fail(L, "bad \\x/\\u escape in string literal");
                c = c * 16 + (uint32_t)h;
            }
            if (c > 0x10FFFF) return lex_fail(L, "bad \\U escape in string literal");
            j += (size_t)digits;
            put_utf8(o, &k, c);
            break;
        }
        case 'N': return lex_fail(L, "unsupported \\N{...} escape in string literal");
        default:
            if (e >= '0' && e <= '7') {
                uint32_t c = (uint32_t)(e - '0');
                for (int d = 0; d < 2 && j + 1 < n && s[j + 1] >= '0' && s[j + 1] <= '7'; d++)
                    c = c * 8 + (uint32_t)(s[++j] - '0');
                put_utf8(o, &k, c);
            } else {
                o[k++] = '\\';
                o[k++] = e;
            }
        }
    }
    o[k] = 0;
    struct tk t = {.t = TK_STRING, .line = L->line, .p = o, .n = k};
    L->line += count_nl(L->s, L->pos, i);
    L->pos = i + 1;
    return emit(L, t);
}

static size_t digits_us(const struct lexer *L, size_t i)
{
    /* (\d+_)*\d+ ; returns the end, or i when no digit */
    size_t j = i;
    if (j >= L->n || !is_digit(L->s[j])) return i;
    while (j < L->n &&
           (is_digit(L->s[j]) || (L->s[j] == '_' && j + 1 < L->n && is_digit(L->s[j + 1]))))
        j++;
    return j;
}

static int lex_number(struct lexer *L)
{
    size_t start = L->pos, j = digits_us(L, L->pos);
    int is_float = 0;
    if (j < L->n && L->s[j] == '.' && j + 1 < L->n && is_digit(L->s[j + 1])) {
        j = digits_us(L, j + 1);
        is_float = 1;
    }
    if (j < L->n && (L->s[j] == 'e' || L->s[j] == 'E')) {
        size_t k = j + 1;
        if (k < L->n && (L->s[k] == '+' || L->s[k] == '-')) k++;
        size_t e = digits_us(L, k);
        if (e > k) {
            j = e;
            is_float = 1;
        }
    }
    char buf[128];
    size_t m = 0;
    for (size_t i = start; i < j && m + 1 < sizeof buf; i++)
        if (L->s[i] != '_') buf[m++] = L->s[i];
    buf[m] = 0;
    struct tk t = {.t = is_float ? TK_FLOAT : TK_INT, .line = L->line};
    if (is_float)
        t.f = strtod(buf, NULL);
    else
        t.i = strtoll(buf, NULL, 10);
    L->pos = j;
    return emit(L, t);
}

static const char *const ops2[] = {"//", "**", "==", "!=", ">=", "<="};

/* Tokens inside {% %} or {{ }} up to and including the end tag. */
static int lex_tag(struct lexer *L, int is_block)
{
    int balance = 0;
    for (;;) {
        if (L->pos >= L->n)
            return lex_fail(L, is_block ? "unexpected end of template, expected '%}'"
                                        : "unexpected end of template, expected '}}'");
        size_t p = L->pos;
        if (balance == 0) {
            const char *endt = is_block ? "%}" : "}}";
            int matched = 0;
            size_t q = p;
            if (is_block && starts(L, p, "+%}")) {
                q = p + 3;
                matched = 1;
            } else if (L->s[p] == '-' && starts(L, p + 1, endt)) {
                q = p + 3;
                q = skip_ws(L, q);
                matched = 1;
            } else if (starts(L, p, endt)) {
                q = p + 2;
                if (is_block && q < L->n && L->s[q] == '\n') q++;
                matched = 1;
            }
            if (matched) {
                struct tk t = {.t = is_block ? TK_BLOCK_END : TK_VAR_END, .line = L->line};
                int rc = emit(L, t);
                if (rc) return rc;
                L->line += count_nl(L->s, p, q);
                L->line_starting = L->s[q - 1] == '\n';
                L->pos = q;
                return 0;
            }
        }
        char c = L->s[p];
        if (is_ws(c)) {
            if (c == '\n') L->line++;
            L->pos++;
            continue;
        }
        int rc;
        if (is_digit(c)) {
            rc = lex_number(L);
        } else if (is_alpha(c)) {
            size_t j = p;
            while (j < L->n && (is_alpha(L->s[j]) || is_digit(L->s[j]))) j++;
            struct tk t = {
                .t = TK_NAME, .line = L->line, .p = ta_strndup(L->a, L->s + p, j - p), .n = j - p};
            if (!t.p) return ms_err_set(L->err, MS_ERR_NOMEM, "out of memory");
            L->pos = j;
            rc = emit(L, t);
        } else if (c == '\'' || c == '"') {
            rc = lex_string(L);
        } else {
            size_t len = 0;
            for (size_t k = 0; k < sizeof ops2 / sizeof ops2[0]; k++)
                if (starts(L, p, ops2[k])) len = 2;
            if (!len) {
                if (!strchr("+-/*%~[](){}<>=.:|,;", c)) {
                    char msg[64];
                    snprintf(msg, sizeof msg, "unexpected character '%c'", c);
                    return lex_fail(L, msg);
                }
                len = 1;
                if (c == '(' || c == '[' || c == '{') balance++;
                if (c == ')' || c == ']' || c == '}') {
                    if (balance == 0) {
                        char msg[64];
                        snprintf(msg, sizeof msg, "unexpected '%c'", c);
                        return lex_fail(L, msg);
                    }
                    balance--;
                }
            }
            struct tk t = {.t = TK_OP, .line = L->line, .p = L->s + p, .n = len};
            L->pos = p + len;
            rc = emit(L, t);
        }
        if (rc) return rc;
    }
}

/* {% raw %}: returns 1 if the block tag at `after` (just past "{%" and its sign) opens a raw
 * block, setting *body to where its content starts. */
static int raw_begin(const struct lexer *L, size_t after, size_t *body)
{
    size_t q = after;
    q = skip_ws(L, q);
    if (!starts(L, q, "raw") || (q + 3 < L->n && (is_alpha(L->s[q + 3]) || is_digit(L->s[q + 3]))))
        return 0;
    q += 3;
    q = skip_ws(L, q);
    if (starts(L, q, "-%}")) {
        q += 3;
        q = skip_ws(L, q);
    } else if (starts(L, q, "%}")) {
        q += 2;
    } else {
        return 0;
    }
    *body = q;
    return 1;
}

static int lex_raw(struct lexer *L, size_t body)
{
    L->line += count_nl(L->s, L->pos, body);
    L->line_starting = body > 0 && L->s[body - 1] == '\n';
    for (size_t j = body; j + 1 < L->n; j++) {
        if (L->s[j] != '{' || L->s[j + 1] != '%') continue;
        size_t q = j + 2;
        char sign = 0;
        if (q < L->n && (L->s[q] == '-' || L->s[q] == '+')) sign = L->s[q++];
        q = skip_ws(L, q);
        if (!starts(L, q, "endraw")) continue;
        q += 6;
        q = skip_ws(L, q);
        if (starts(L, q, "+%}")) {
            q += 3;
        } else if (starts(L, q, "-%}")) {
            q += 3;
            q = skip_ws(L, q);
        } else if (starts(L, q, "%}")) {
            q += 2;
            if (q < L->n && L->s[q] == '\n') q++;
        } else {
            continue;
        }
        int rc = emit_text(L, body, j, sign, 1);
        if (rc) return rc;
        L->line += count_nl(L->s, j, q);
        L->line_starting = L->s[q - 1] == '\n';
        L->pos = q;
        return 0;
    }
    return lex_fail(L, "missing end of raw directive");
}

int tmpl_lex(struct tarena *a, const char *src, size_t len, struct tk_list *out, struct ms_err *err)
{
    struct lexer L = {
        .a = a, .s = src, .n = len, .line = 1, .line_starting = 1, .out = out, .err = err};
    while (L.pos < L.n) {
        size_t t = L.pos;
        while (t + 1 < L.n &&
               !(L.s[t] == '{' && (L.s[t + 1] == '{' || L.s[t + 1] == '%' || L.s[t + 1] == '#')))
            t++;
        if (t + 1 >= L.n) {
            struct tk tx = {.t = TK_TEXT, .line = L.line, .p = L.s + L.pos, .n = L.n - L.pos};
            int rc = emit(&L, tx);
            if (rc) return rc;
            L.pos = L.n;
            break;
        }
        char kind = L.s[t + 1];
        char sign = (t + 2 < L.n && (L.s[t + 2] == '-' || L.s[t + 2] == '+')) ? L.s[t + 2] : 0;
        size_t after = t + 2 + (sign ? 1 : 0);
        int rc = emit_text(&L, L.pos, t, sign, kind != '{');
        if (rc) return rc;
        L.pos = after;
        if (kind == '#') {
            size_t q = after, end = 0;
            for (; q + 1 < L.n; q++) {
                if ((L.s[q] == '+' || L.s[q] == '-') && q + 2 < L.n && L.s[q + 1] == '#' &&
                    L.s[q + 2] == '}') {
                    end = q + 3;
                    if (L.s[q] == '-') end = skip_ws(&L, end);
                    break;
                }
                if (L.s[q] == '#' && L.s[q + 1] == '}') {
                    end = q + 2;
                    if (end < L.n && L.s[end] == '\n') end++;
                    break;
                }
            }
            if (!end) return lex_fail(&L, "missing end of comment tag");
            L.line += count_nl(L.s, after, end);
            L.line_starting = L.s[end - 1] == '\n';
            L.pos = end;
            continue;
        }
        size_t body;
        if (kind == '%' && raw_begin(&L, after, &body)) {
            rc = lex_raw(&L, body);
            if (rc) return rc;
            continue;
        }
        struct tk b = {.t = kind == '%' ? TK_BLOCK_BEGIN : TK_VAR_BEGIN, .line = L.line};
        rc = emit(&L, b);
        if (!rc) rc = lex_tag(&L, kind == '%');
        if (rc) return rc;
    }
    struct tk e = {.t = TK_EOF, .line = L.line};
    return emit(&L, e);
}
