#include "grammar/gram_match.h"

#include <stddef.h>
#include <string.h>

#include "grammar/gram_regex.h"

#define EOF_BYTE 256 /* fed by gram_state_complete: accepted only where the text may end */

enum step { ACCEPT, ACCEPT_POP, REJECT, POP_REFEED, PUSH };

/* one reading being advanced */
struct thread {
    int depth;
    struct gram_frame f[GRAM_MAX_DEPTH];
};

static bool is_ws(int b) { return b == ' ' || b == '\n' || b == '\t'; }

static void frame_init(struct gram_frame *f, int node)
{
    memset(f, 0, sizeof *f);
    f->node = node;
}

void gram_state_init(struct gram_state *s, const struct gram *g)
{
    (void)g;
    s->n = 1;
    s->len[0] = 1;
    frame_init(&s->f[0], -1);
}

static int total_frames(const struct gram_state *s)
{
    int t = 0;
    for (int i = 0; i < s->n; i++) t += s->len[i];
    return t;
}

void gram_state_copy(struct gram_state *dst, const struct gram_state *src)
{
    dst->n = src->n;
    memcpy(dst->len, src->len, (size_t)src->n * sizeof *dst->len);
    memcpy(dst->f, src->f, (size_t)total_frames(src) * sizeof *dst->f);
}

static void emit(struct gram_state *out, const struct thread *t)
{
    int used = total_frames(out);
    if (out->n == GRAM_MAX_THREADS || used + t->depth > GRAM_MAX_FRAMES) return;
    memcpy(&out->f[used], t->f, (size_t)t->depth * sizeof *t->f);
    out->len[out->n++] = (uint16_t)t->depth;
}

/* ---- formats: fixed templates ('D' digit, 'H' hex) checked per position ----------------- */

static const char *format_template(enum gram_format f)
{
    switch (f) {
    case GRAM_FMT_DATE: return "DDDD-MM-XY";
    case GRAM_FMT_TIME: return "hh:mm:mmZ";
    case GRAM_FMT_DATE_TIME: return "DDDD-MM-XYThh:mm:mmZ";
    case GRAM_FMT_UUID: return "HHHHHHHH-HHHH-HHHH-HHHH-HHHHHHHHHHHH";
    default: return "";
    }
}

/* Byte b at template position pos, prev the byte before it: months 01-12, days 01-28, hours
 * 00-23, minutes and seconds 00-59, so every completed text is a real date / time. */
static bool template_byte(const char *t, int pos, int prev, int b)
{
    bool digit = b >= '0' && b <= '9';
    switch (t[pos]) {
    case 'D': return digit;
    case 'H': return digit || (b >= 'a' && b <= 'f');
    case 'M': return t[pos + 1] == 'M' ? b == '0' || b == '1' : prev == '1' ? b >= '0' && b <= '2' : b >= '1' && b <= '9';
    case 'X': return b >= '0' && b <= '2';
    case 'Y': return prev == '0' ? b >= '1' && b <= '9' : prev == '2' ? b >= '0' && b <= '8' : digit;
    case 'h': return t[pos + 1] == 'h' ? b >= '0' && b <= '2' : prev == '2' ? b >= '0' && b <= '3' : digit;
    case 'm': return t[pos + 1] == 'm' ? b >= '0' && b <= '5' : digit;
    default: return b == t[pos];
    }
}

/* email: [a-z0-9]{1,24} "@" [a-z0-9]{1,24} "." [a-z]{2,6}; off = part, count = its length */
#define EMAIL_WORD 24
#define EMAIL_TLD 6
static bool email_byte(struct gram_frame *f, int b)
{
    bool alnum = (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9');
    if (f->off < 2 && alnum && f->count < EMAIL_WORD) return f->count++, true;
    if (f->off == 0 && b == '@' && f->count > 0) return f->off = 1, f->count = 0, true;
    if (f->off == 1 && b == '.' && f->count > 0) return f->off = 2, f->count = 0, true;
    if (f->off == 2 && b >= 'a' && b <= 'z' && f->count < EMAIL_TLD) return f->count++, true;
    return false;
}

static enum step step_format(const struct gram_node *n, struct gram_frame *f, int b)
{
    if (n->format == GRAM_FMT_EMAIL) {
        if (b == '"') return f->off == 2 && f->count >= 2 ? ACCEPT_POP : REJECT;
        return email_byte(f, b) ? ACCEPT : REJECT;
    }
    const char *t = format_template(n->format);
    int len = (int)strlen(t);
    if (b == '"') return f->off == len ? ACCEPT_POP : REJECT;
    if (f->off >= len || !template_byte(t, f->off, (int)f->val, b)) return REJECT;
    f->off++;
    f->val = b;
    return ACCEPT;
}

/* ---- strings ----------------------------------------------------------------------------- */

/* A string with a pattern runs its decoded characters through the DFA, whose state is f->val
 * (unused otherwise without a format); while a \uXXXX escape is typed, f->lo holds the code
 * point's digits so far (lo / hi only mean a UTF-8 range while pend > 0, never inside an
 * escape). A prefix is only accepted if the DFA can still complete it. */
static bool re_byte(const struct gram_node *n, struct gram_frame *f, int b)
{
    if (!n->re) return true;
    int t = gram_regex_next(n->re, (int)f->val, (uint8_t)b);
    if (t < 0) return false;
    f->val = t;
    return true;
}

static enum step string_escape(const struct gram_node *n, struct gram_frame *f, int b)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    if (f->phase == 2) { /* after a backslash */
        if (b == 'u') return f->phase = 3, f->off = 0, f->lo = 0, ACCEPT;
        const char *e = b == EOF_BYTE || b == 0 ? NULL : strchr(from, b);
        if (!e || !re_byte(n, f, to[e - from])) return REJECT;
        f->count++;
        f->phase = 1;
        return ACCEPT;
    }
    /* \uXXXX, no surrogates D800-DFFF (their pairs would count as two characters) */
    int h = b >= '0' && b <= '9' ? b - '0' : b >= 'a' && b <= 'f' ? b - 'a' + 10 : b >= 'A' && b <= 'F' ? b - 'A' + 10 : -1;
    if (h < 0 || (f->off == 1 && f->lo == 0xD && h >= 8)) return REJECT;
    uint32_t cp = (uint32_t)f->lo << 4 | (uint32_t)h;
    int rest = 4 * (3 - f->off);
    if (n->re && !gram_regex_range_viable(n->re, (int)f->val, cp << rest, (cp << rest) | ((1u << rest) - 1))) return REJECT;
    f->lo = (int32_t)cp;
    if (++f->off < 4) return ACCEPT;
    if (n->re) f->val = gram_regex_next_cp(n->re, (int)f->val, cp);
    f->count++;
    f->phase = 1;
    f->lo = 0;
    return ACCEPT;
}

static enum step step_string(const struct gram_node *n, struct gram_frame *f, int b)
{
    if (f->phase == 0) {
        if (b != '"') return REJECT;
        f->phase = 1;
        return ACCEPT;
    }
    if (n->format != GRAM_FMT_NONE) return step_format(n, f, b);
    bool room = n->max_len < 0 || f->count < n->max_len;
    if (f->pend) { /* inside a UTF-8 sequence: lo..hi is the range of the next byte */
        if (b < f->lo || b > f->hi || !re_byte(n, f, b)) return REJECT;
        f->pend--;
        f->lo = 0x80;
        f->hi = 0xBF;
        return ACCEPT;
    }
    if (f->phase >= 2) return string_escape(n, f, b);
    if (b == '"') return f->count >= n->min_len && (!n->re || gram_regex_accepting(n->re, (int)f->val)) ? ACCEPT_POP : REJECT;
    if (b == EOF_BYTE || b < 0x20 || !room) return REJECT;
    if (b == '\\') { /* some escaped character must be allowed next */
        if (n->re && !gram_regex_range_viable(n->re, (int)f->val, 0, 0xFFFF)) return REJECT;
        return f->phase = 2, ACCEPT;
    }
    if (!re_byte(n, f, b)) return REJECT;
    if (b < 0x80) return f->count++, ACCEPT;
    int lo = 0x80, hi = 0xBF, pend;
    if (b >= 0xC2 && b <= 0xDF) pend = 1;
    else if (b >= 0xE0 && b <= 0xEF) pend = 2, lo = b == 0xE0 ? 0xA0 : 0x80, hi = b == 0xED ? 0x9F : 0xBF;
    else if (b >= 0xF0 && b <= 0xF4) pend = 3, lo = b == 0xF0 ? 0x90 : 0x80, hi = b == 0xF4 ? 0x8F : 0xBF;
    else return REJECT;
    f->pend = (uint8_t)pend;
    f->lo = lo;
    f->hi = hi;
    f->count++;
    return ACCEPT;
}

/* ---- raw regex text: f->val is the DFA state (0, the start, after frame_init) ------------- */

static enum step step_regex(const struct gram_node *n, struct gram_frame *f, int b)
{
    int t = b == EOF_BYTE ? -1 : gram_regex_next(n->re, (int)f->val, (uint8_t)b);
    if (t >= 0) return f->val = t, ACCEPT;
    return gram_regex_accepting(n->re, (int)f->val) ? POP_REFEED : REJECT;
}

/* ---- numbers ---------------------------------------------------------------------------- */

/* phases: 0 start, 1 after '-', 2 after a leading 0, 3 integer digits, 4 after '.', 5 fraction
 * digits, 6 after 'e', 7 after the exponent's sign, 8 exponent digits; off counts digits */
static bool number_complete(int phase) { return phase == 2 || phase == 3 || phase == 5 || phase == 8; }

static enum step step_number(struct gram_frame *f, int b)
{
    bool digit = b >= '0' && b <= '9';
    switch (f->phase) {
    case 0:
        if (b == '-') return f->phase = 1, ACCEPT;
        /* fall through */
    case 1:
        if (!digit) return REJECT;
        f->phase = b == '0' ? 2 : 3;
        f->off = 1;
        return ACCEPT;
    case 3:
        if (digit && f->off < 15) return f->off++, ACCEPT;
        /* fall through */
    case 2:
        if (b == '.') return f->phase = 4, f->off = 0, ACCEPT;
        if (b == 'e' || b == 'E') return f->phase = 6, f->off = 0, ACCEPT;
        break;
    case 4:
    case 5:
        if (digit && f->off < 15) return f->phase = 5, f->off++, ACCEPT;
        if (f->phase == 5 && (b == 'e' || b == 'E')) return f->phase = 6, f->off = 0, ACCEPT;
        break;
    case 6:
        if (b == '+' || b == '-') return f->phase = 7, ACCEPT;
        /* fall through */
    case 7:
    case 8:
        if (digit && f->off < 2) return f->phase = 8, f->off++, ACCEPT;
        break;
    }
    return number_complete(f->phase) ? POP_REFEED : REJECT;
}

/* Can a value with sign `neg`, magnitude prefix v (nd digits typed, 0 = none yet) still land in
 * [min, max] with at most 16 digits? */
static bool int_viable(const struct gram_node *n, bool neg, int64_t v, int nd)
{
    if (nd > 0 && v == 0) return n->min <= 0 && n->max >= 0; /* a leading 0 cannot grow */
    int64_t scale = 1;
    for (int j = 0; nd + j <= 16; j++, scale *= 10) {
        if (nd == 0 && j == 0) continue;
        int64_t lo = v * scale, hi = v * scale + scale - 1;
        if (nd == 0) lo = scale / 10 > 1 ? scale / 10 : 1; /* j digits, no leading zero */
        if (nd == 0 && j == 1) lo = neg ? 1 : 0;
        int64_t a = neg ? -hi : lo, c = neg ? -lo : hi;
        if (a <= n->max && c >= n->min) return true;
        if (!neg && lo > n->max) return false;
        if (neg && -lo < n->min) return false;
        if (scale > INT64_MAX / 100) break;
    }
    return false;
}

static enum step step_integer(const struct gram_node *n, struct gram_frame *f, int b)
{
    bool digit = b >= '0' && b <= '9', neg = f->flags;
    if (f->phase == 0 && b == '-') {
        if (!int_viable(n, true, 0, 0)) return REJECT;
        f->flags = 1;
        f->phase = 1;
        return ACCEPT;
    }
    if (digit && f->phase < 2 && !(neg && b == '0')) {
        if (!int_viable(n, neg, b - '0', 1)) return REJECT;
        f->val = b - '0';
        f->off = 1;
        f->phase = b == '0' ? 2 : 3;
        return ACCEPT;
    }
    if (digit && f->phase == 3 && f->off < 16) {
        int64_t v = f->val * 10 + (b - '0');
        if (!int_viable(n, neg, v, f->off + 1)) return REJECT;
        f->val = v;
        f->off++;
        return ACCEPT;
    }
    if (f->phase >= 2) {
        int64_t v = neg ? -f->val : f->val;
        return v >= n->min && v <= n->max ? POP_REFEED : REJECT;
    }
    return REJECT;
}

/* ---- literal sets ----------------------------------------------------------------------- */

static enum step step_literals(const struct gram_node *n, struct gram_frame *f, int b)
{
    if (f->phase == 0) f->phase = 1, f->lo = 0, f->hi = n->n, f->off = 0;
    int lo = f->lo, hi = f->hi, off = f->off;
    bool exact = lo < hi && n->lit_len[lo] == off;
    int a = lo;
    while (a < hi && (n->lit_len[a] <= off || (uint8_t)n->lits[a][off] != b)) a++;
    if (a == hi) return exact ? POP_REFEED : REJECT;
    int z = a;
    while (z < hi && n->lit_len[z] > off && (uint8_t)n->lits[z][off] == b) z++;
    f->lo = a;
    f->hi = z;
    f->off = off + 1;
    return z - a == 1 && n->lit_len[a] == off + 1 ? ACCEPT_POP : ACCEPT;
}

/* ---- objects ---------------------------------------------------------------------------- */

/* phases: 0 before '{', 1 after '{' or ',', 2 in a key, 3 after the key, 4 after ':', 5 after a
 * value. count = the first property index still allowed; val = the key being written (-1: an
 * extra one); flags bit 0 = after ',', bit 1 = the key is an extra one (matches no property). */
static bool prop_allowed(const struct gram_node *n, const struct gram_frame *f, int i)
{
    return i >= f->count && i <= n->req_after[f->count];
}

bool gram_free_key_byte(int b) { return b >= 0x20 && b < 0x7F && b != '"' && b != '\\'; }

static enum step step_key(const struct gram_node *n, struct gram_frame *f, int b)
{
    bool extra_ok = n->additional >= 0;
    if (b == '"') {
        if (!(f->flags & 2) && f->lo < f->hi && n->key_len[n->sorted[f->lo]] == f->off) {
            int i = n->sorted[f->lo];
            if (!prop_allowed(n, f, i)) return REJECT; /* this name is taken by a property */
            f->val = i;
        } else {
            if (!extra_ok) return REJECT;
            f->val = -1;
        }
        f->phase = 3;
        f->ws = 0;
        return ACCEPT;
    }
    if (b == EOF_BYTE) return REJECT;
    if (!(f->flags & 2)) {
        int a = f->lo, z;
        while (a < f->hi && (n->key_len[n->sorted[a]] <= f->off || (uint8_t)n->keys[n->sorted[a]][f->off] != b)) a++;
        for (z = a; z < f->hi && n->key_len[n->sorted[z]] > f->off && (uint8_t)n->keys[n->sorted[z]][f->off] == b; z++) {}
        bool live = false;
        for (int k = a; k < z && !live; k++) live = prop_allowed(n, f, n->sorted[k]);
        if (live || (extra_ok && gram_free_key_byte(b) && f->off < GRAM_MAX_FREE_KEY)) {
            f->lo = a;
            f->hi = z;
            f->off++;
            if (a == z) f->flags |= 2;
            return ACCEPT;
        }
        return REJECT;
    }
    if (!gram_free_key_byte(b) || f->off >= GRAM_MAX_FREE_KEY) return REJECT;
    f->off++;
    return ACCEPT;
}

static bool ws_step(struct gram_frame *f, int b)
{
    if (!is_ws(b) || f->ws >= GRAM_MAX_WS) return false;
    f->ws++;
    return true;
}

static enum step step_object(const struct gram_node *n, struct gram_frame *f, int b, int *child)
{
    bool more = f->count < n->n_props || n->additional >= 0, done = n->req_after[f->count] == n->n_props;
    switch (f->phase) {
    case 0:
        if (b != '{') return REJECT;
        f->phase = 1;
        return ACCEPT;
    case 1:
        if (ws_step(f, b)) return ACCEPT;
        if (b == '"' && more) {
            f->phase = 2;
            f->lo = 0;
            f->hi = n->n_props;
            f->off = 0;
            f->flags &= 1;
            return ACCEPT;
        }
        return b == '}' && done && !(f->flags & 1) ? ACCEPT_POP : REJECT;
    case 2: return step_key(n, f, b);
    case 3:
        if (ws_step(f, b)) return ACCEPT;
        if (b != ':') return REJECT;
        f->phase = 4;
        f->ws = 0;
        return ACCEPT;
    case 4:
        if (ws_step(f, b)) return ACCEPT;
        *child = f->val >= 0 ? n->prop_node[f->val] : n->additional;
        return PUSH;
    default:
        if (ws_step(f, b)) return ACCEPT;
        if (b == ',' && more) {
            f->phase = 1;
            f->ws = 0;
            f->flags = 1;
            return ACCEPT;
        }
        return b == '}' && done ? ACCEPT_POP : REJECT;
    }
}

/* ---- arrays: phases 0 before '[', 1 after '[', 2 after an item, 3 after ',' -------------- */

static enum step step_array(const struct gram_node *n, struct gram_frame *f, int b, int *child)
{
    switch (f->phase) {
    case 0:
        if (b != '[') return REJECT;
        f->phase = 1;
        return ACCEPT;
    case 1:
    case 3:
        if (ws_step(f, b)) return ACCEPT;
        if (f->phase == 1 && b == ']' && n->min_items == 0) return ACCEPT_POP;
        if (n->max_items == 0 || b == EOF_BYTE) return REJECT;
        *child = n->items;
        return PUSH;
    default:
        if (ws_step(f, b)) return ACCEPT;
        if (b == ',' && (n->max_items < 0 || f->count < n->max_items)) {
            f->phase = 3;
            f->ws = 0;
            return ACCEPT;
        }
        return b == ']' && f->count >= n->min_items ? ACCEPT_POP : REJECT;
    }
}

/* ---- the driver ------------------------------------------------------------------------- */

static enum step step_frame(const struct gram *g, struct gram_frame *f, int b, int *child)
{
    if (f->node < 0) { /* root: whitespace (not around raw text), the value, whitespace, the end */
        if (!g->raw && ws_step(f, b)) return ACCEPT;
        if (f->phase == 0 && b != EOF_BYTE) return *child = g->root, PUSH;
        if (f->phase == 0 && g->nodes[gram_resolve(g, g->root)].kind == GRAM_REGEX) /* a regex matching "" */
            return gram_regex_accepting(g->nodes[gram_resolve(g, g->root)].re, 0) ? ACCEPT : REJECT;
        return f->phase == 1 && b == EOF_BYTE ? ACCEPT : REJECT;
    }
    const struct gram_node *n = &g->nodes[f->node];
    switch (n->kind) {
    case GRAM_OBJECT: return step_object(n, f, b, child);
    case GRAM_ARRAY: return step_array(n, f, b, child);
    case GRAM_STRING: return step_string(n, f, b);
    case GRAM_NUMBER: return step_number(f, b);
    case GRAM_INTEGER: return step_integer(n, f, b);
    case GRAM_LITERALS: return step_literals(n, f, b);
    case GRAM_REGEX: return step_regex(n, f, b);
    case GRAM_SEQ:
        if (f->phase >= n->n) return POP_REFEED;
        *child = n->alts[f->phase];
        return PUSH;
    default: return REJECT; /* REF and ANYOF never sit on a stack */
    }
}

/* The parent of a finished value moves on; true if that finishes the parent too. */
static bool child_done(const struct gram *g, struct gram_frame *p)
{
    p->ws = 0;
    if (p->node < 0) return p->phase = 1, false;
    const struct gram_node *n = &g->nodes[p->node];
    if (n->kind == GRAM_OBJECT) {
        if (p->val >= 0) p->count = (int32_t)p->val + 1;
        p->phase = 5;
    } else if (n->kind == GRAM_ARRAY) {
        p->count++;
        p->phase = 2;
    } else if (n->kind == GRAM_SEQ) {
        return ++p->phase == n->n;
    }
    return false;
}

static void pop(const struct gram *g, struct thread *t)
{
    while (--t->depth > 0 && child_done(g, &t->f[t->depth - 1])) {}
}

static void run(const struct gram *g, struct thread *t, int b, struct gram_state *out, int forks);

/* Pushes `node` (an anyOf forks a copy of the reading per member) and feeds b to it. */
static void push_and_run(const struct gram *g, struct thread *t, int node, int b, struct gram_state *out, int forks)
{
    node = gram_resolve(g, node);
    if (t->depth == GRAM_MAX_DEPTH || forks > 64) return;
    const struct gram_node *n = &g->nodes[node];
    if (n->kind == GRAM_ANYOF) {
        for (int k = 0; k < n->n && out->n < GRAM_MAX_THREADS; k++) {
            struct thread copy;
            copy.depth = t->depth;
            memcpy(copy.f, t->f, (size_t)t->depth * sizeof *t->f);
            push_and_run(g, &copy, n->alts[k], b, out, forks + 1);
        }
        return;
    }
    frame_init(&t->f[t->depth++], node);
    run(g, t, b, out, forks);
}

static void run(const struct gram *g, struct thread *t, int b, struct gram_state *out, int forks)
{
    for (;;) {
        int child = -1;
        switch (step_frame(g, &t->f[t->depth - 1], b, &child)) {
        case ACCEPT: emit(out, t); return;
        case ACCEPT_POP: pop(g, t); emit(out, t); return;
        case REJECT: return;
        case POP_REFEED:
            if (t->depth == 1) return;
            pop(g, t);
            break;
        case PUSH: push_and_run(g, t, child, b, out, forks); return;
        }
    }
}

static bool feed(const struct gram *g, const struct gram_state *in, int b, struct gram_state *out)
{
    out->n = 0;
    const struct gram_frame *f = in->f;
    for (int i = 0; i < in->n; f += in->len[i++]) {
        struct thread t;
        t.depth = in->len[i];
        memcpy(t.f, f, (size_t)t.depth * sizeof *f);
        run(g, &t, b, out, 0);
    }
    return out->n > 0;
}

bool gram_state_feed(const struct gram *g, const struct gram_state *in, uint8_t b, struct gram_state *out)
{
    /* The common case, one reading whose top frame just accepts or refuses the byte, without
     * copying the reading twice (step_frame changes nothing but the frame it is given). */
    if (in->n == 1) {
        int d = in->len[0], child = -1;
        struct gram_frame top = in->f[d - 1];
        enum step st = step_frame(g, &top, b, &child);
        if (st == REJECT) return out->n = 0, false;
        if (st == ACCEPT) {
            out->n = 1;
            out->len[0] = (uint16_t)d;
            memcpy(out->f, in->f, (size_t)(d - 1) * sizeof *out->f);
            out->f[d - 1] = top;
            return true;
        }
    }
    return feed(g, in, b, out);
}

bool gram_state_feed_bytes(const struct gram *g, struct gram_state *s, const uint8_t *bytes, int n,
                           struct gram_state *scratch)
{
    for (int i = 0; i < n; i++) {
        if (!feed(g, s, bytes[i], scratch)) return false;
        gram_state_copy(s, scratch);
    }
    return true;
}

bool gram_state_complete(const struct gram *g, const struct gram_state *s)
{
    const struct gram_frame *f = s->f;
    for (int i = 0; i < s->n; f += s->len[i++]) {
        struct thread t;
        struct gram_state one; /* EOF never pushes or forks: one reading in, at most one out */
        t.depth = s->len[i];
        memcpy(t.f, f, (size_t)t.depth * sizeof *f);
        one.n = 0;
        run(g, &t, EOF_BYTE, &one, 0);
        if (one.n) return true;
    }
    return false;
}

bool gram_state_in_plain_string(const struct gram *g, const struct gram_state *s, int *room)
{
    if (s->n != 1) return false;
    const struct gram_frame *f = &s->f[s->len[0] - 1];
    if (f->node < 0) return false;
    const struct gram_node *n = &g->nodes[f->node];
    if (n->kind != GRAM_STRING || f->phase != 1 || f->pend || n->format != GRAM_FMT_NONE || n->re) return false;
    *room = n->max_len < 0 ? -1 : n->max_len - f->count;
    return true;
}

bool gram_state_in_free_key(const struct gram *g, const struct gram_state *s, int *room)
{
    if (s->n != 1) return false;
    const struct gram_frame *f = &s->f[s->len[0] - 1];
    if (f->node < 0) return false;
    const struct gram_node *n = &g->nodes[f->node];
    if (n->kind != GRAM_OBJECT || f->phase != 2 || n->additional < 0 || (!(f->flags & 2) && f->lo < f->hi)) return false;
    *room = GRAM_MAX_FREE_KEY - f->off;
    return true;
}

bool gram_state_in_regex(const struct gram *g, const struct gram_state *s, const struct gram_regex **re, int *state,
                         bool *in_string)
{
    if (s->n != 1) return false;
    const struct gram_frame *f = &s->f[s->len[0] - 1];
    if (f->node < 0) return false;
    const struct gram_node *n = &g->nodes[f->node];
    if (n->kind == GRAM_STRING && n->re && n->format == GRAM_FMT_NONE && f->phase == 1 && n->max_len < 0)
        *in_string = true; /* step_string: re_byte, and UTF-8 checks the DFA implies */
    else if (n->kind == GRAM_REGEX && g->raw && s->len[0] == 2)
        *in_string = false; /* step_regex: a refused byte goes back to the root, which takes only the end */
    else
        return false;
    *re = n->re;
    *state = (int)f->val;
    return true;
}

enum gram_word gram_state_in_word(const struct gram *g, const struct gram_state *s, int *room)
{
    if (s->n != 1) return GRAM_WORD_NONE;
    const struct gram_frame *f = &s->f[s->len[0] - 1];
    if (f->node < 0) return GRAM_WORD_NONE;
    const struct gram_node *n = &g->nodes[f->node];
    if (n->kind != GRAM_STRING || n->format != GRAM_FMT_EMAIL || f->phase != 1) return GRAM_WORD_NONE;
    *room = (f->off < 2 ? EMAIL_WORD : EMAIL_TLD) - f->count;
    return f->off < 2 ? GRAM_WORD_ALNUM : GRAM_WORD_LOWER;
}

/* The top frame of a single reading inside a format-free string, in the given phase. */
static const struct gram_frame *string_top(const struct gram *g, const struct gram_state *s, int phase)
{
    if (s->n != 1) return NULL;
    const struct gram_frame *f = &s->f[s->len[0] - 1];
    if (f->node < 0) return NULL;
    const struct gram_node *n = &g->nodes[f->node];
    bool ok = n->kind == GRAM_STRING && f->phase == phase && !f->pend && n->format == GRAM_FMT_NONE && !n->re;
    return ok ? f : NULL;
}

bool gram_state_in_string_escape(const struct gram *g, const struct gram_state *s, int *room)
{
    const struct gram_frame *f = string_top(g, s, 2);
    if (!f) return false;
    const struct gram_node *n = &g->nodes[f->node];
    *room = n->max_len < 0 ? -1 : n->max_len - f->count;
    return true;
}

bool gram_state_close_string(const struct gram *g, const struct gram_state *s, struct gram_state *out, int *count,
                             int *min_len)
{
    if (!string_top(g, s, 1) && !string_top(g, s, 2)) return false;
    struct gram_state met;
    gram_state_copy(&met, s);
    struct gram_frame *f = &met.f[met.len[0] - 1];
    const struct gram_node *n = &g->nodes[f->node];
    *count = f->count;
    *min_len = n->min_len;
    if (f->count < n->min_len) f->count = n->min_len; /* the closing quote reads nothing else */
    f->phase = 1; /* after a backslash: the state after the string is the same */
    return feed(g, &met, '"', out);
}

/* A frame with the fields its node will never read again zeroed (see step_string, step_object,
 * step_array): states that differ only there accept the same texts. Kinds not listed here are
 * kept whole, which is always exact. Whoever makes those three steps read a field in a new way
 * (a pattern kept in a string's frame, say) must keep that field here, or cached masks go wrong
 * (test_grammar's cache check compares them with fresh ones). */
static void canonical_frame(const struct gram *g, struct gram_frame *f)
{
    if (f->node < 0) return;
    const struct gram_node *n = &g->nodes[f->node];
    if (n->kind == GRAM_STRING && n->format == GRAM_FMT_NONE && f->phase > 0) {
        f->ws = f->flags = 0;
        if (!n->re) f->val = 0;                         /* a pattern's DFA state is read */
        if (!f->pend && f->phase != 3) f->lo = f->hi = 0; /* a \\u escape's digits are read (surrogates) */
        if (f->phase != 3) f->off = 0;
        if (n->max_len < 0 && f->count > n->min_len) f->count = n->min_len; /* only `count >= min_len` is read */
    } else if (n->kind == GRAM_OBJECT && f->phase != 2) {
        f->lo = f->hi = f->off = 0;
        f->pend = 0;
        if (f->phase == 1) f->flags &= 1, f->val = 0;  /* bit 0: after ','; the key starts afresh */
        else if (f->phase == 5) f->flags = 0, f->val = 0; /* val was read when the value ended */
        else if (f->phase >= 3) f->flags = 0;
    } else if (n->kind == GRAM_ARRAY) {
        f->lo = f->hi = f->off = 0;
        f->flags = f->pend = 0;
        f->val = 0;
    }
}

size_t gram_state_key(const struct gram *g, const struct gram_state *s, struct gram_state *key)
{
    int frames = total_frames(s);
    memset(key, 0, offsetof(struct gram_state, f)); /* unused lengths and padding too */
    key->n = s->n;
    memcpy(key->len, s->len, (size_t)s->n * sizeof *s->len);
    memcpy(key->f, s->f, (size_t)frames * sizeof *s->f);
    for (int i = 0; i < frames; i++) canonical_frame(g, &key->f[i]);
    return offsetof(struct gram_state, f) + (size_t)frames * sizeof *s->f;
}
