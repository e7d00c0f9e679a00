/* Chat-template parser: tokens to a syntax tree, following jinja2's parser (operator precedence,
 * tuples, tests without parentheses, slices). Unsupported statements, filters, tests, functions
 * and methods are rejected here with their line. */
#include "tokenizer/tmpl_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct parser {
    struct tarena *a;
    const struct tk *v;
    size_t n, i;
    struct ms_err *err;
    int failed;
    int loop_depth;
    int depth;      /* nesting of expressions and blocks, bounded to keep recursion shallow */
    int expr_nodes; /* nodes of the current tag, bounded so that trees stay shallow */
    /* calls of names that are not global functions: each must be a macro of the template */
    struct nlist calls;
    struct nlist macros;
};

#define MAX_TAG_NODES 2000

#define MAX_DEPTH 200

#define CUR(P) (&(P)->v[(P)->i])

static void *pfail(struct parser *P, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void *pfail(struct parser *P, int line, const char *fmt, ...)
{
    if (P->failed) return NULL;
    P->failed = 1;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ms_err_set(P->err, MS_ERR_INVALID, "line %d: %s", line, msg);
    return NULL;
}

static void *oom(struct parser *P)
{
    if (!P->failed) ms_err_set(P->err, MS_ERR_NOMEM, "out of memory parsing template");
    P->failed = 1;
    return NULL;
}

static int is_op(const struct tk *t, const char *op)
{
    return t->t == TK_OP && t->n == strlen(op) && !memcmp(t->p, op, t->n);
}

static int is_name(const struct tk *t, const char *name)
{
    return t->t == TK_NAME && !strcmp(t->p, name);
}

static const char *tk_desc(const struct tk *t, char *buf, size_t cap)
{
    switch (t->t) {
    case TK_EOF: return "end of template";
    case TK_BLOCK_END: return "end of statement block '%}'";
    case TK_VAR_END: return "end of print statement '}}'";
    case TK_BLOCK_BEGIN: return "'{%'";
    case TK_VAR_BEGIN: return "'{{'";
    case TK_TEXT: return "template text";
    case TK_STRING: return "string literal";
    case TK_INT:
    case TK_FLOAT: return "number";
    default: snprintf(buf, cap, "'%.*s'", (int)(t->n > 40 ? 40 : t->n), t->p); return buf;
    }
}

static int expect_op(struct parser *P, const char *op)
{
    if (P->failed) return -1;
    if (!is_op(CUR(P), op)) {
        char b[64];
        pfail(P, CUR(P)->line, "expected '%s', got %s", op, tk_desc(CUR(P), b, sizeof b));
        return -1;
    }
    P->i++;
    return 0;
}

static int expect_type(struct parser *P, enum tk_type t, const char *what)
{
    if (P->failed) return -1;
    if (CUR(P)->t != t) {
        char b[64];
        pfail(P, CUR(P)->line, "expected %s, got %s", what, tk_desc(CUR(P), b, sizeof b));
        return -1;
    }
    P->i++;
    return 0;
}

static struct node *mk(struct parser *P, enum nk k, int line)
{
    if (++P->expr_nodes > MAX_TAG_NODES) return pfail(P, line, "expression too long");
    struct node *n = ta_alloc(P->a, sizeof *n);
    if (!n) return oom(P);
    n->k = k;
    n->line = line;
    return n;
}

static int nl_push(struct parser *P, struct nlist *l, struct node *n)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 4;
        struct node **v = ta_alloc(P->a, (size_t)cap * sizeof *v);
        if (!v) {
            oom(P);
            return -1;
        }
        if (l->n) memcpy(v, l->v, (size_t)l->n * sizeof *v);
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = n;
    return 0;
}

static struct node *parse_expression(struct parser *P, int with_condexpr);
static struct node *parse_tuple(struct parser *P, int with_condexpr, const char *extra_end,
                                int explicit_parens);
static struct node *parse_unary(struct parser *P, int with_filter);
static struct node *parse_or(struct parser *P);
static struct node *parse_postfix(struct parser *P, struct node *node);

/* Call arguments "(a, b, name=c)" with the current token at "(". */
static int parse_call_args(struct parser *P, struct node *n)
{
    if (expect_op(P, "(")) return -1;
    const char *kw[64];
    int nkw = 0;
    while (!is_op(CUR(P), ")")) {
        if (n->args.n) {
            if (expect_op(P, ",")) return -1;
            if (is_op(CUR(P), ")")) break;
        }
        if (is_op(CUR(P), "*") || is_op(CUR(P), "**")) {
            pfail(P, CUR(P)->line, "unsupported construct: *args/**kwargs in a call");
            return -1;
        }
        const char *name = NULL;
        if (CUR(P)->t == TK_NAME && P->i + 1 < P->n && is_op(&P->v[P->i + 1], "=")) {
            name = CUR(P)->p;
            P->i += 2;
        } else if (nkw) {
            pfail(P, CUR(P)->line, "positional argument follows keyword argument");
            return -1;
        }
        struct node *e = parse_expression(P, 1);
        if (!e) return -1;
        if (n->args.n >= 64) {
            pfail(P, CUR(P)->line, "too many call arguments");
            return -1;
        }
        kw[n->args.n] = name;
        if (name) nkw++;
        if (nl_push(P, &n->args, e)) return -1;
    }
    P->i++;
    n->kw = ta_alloc(P->a, (size_t)(n->args.n + 1) * sizeof *n->kw);
    if (!n->kw) {
        oom(P);
        return -1;
    }
    for (int i = 0; i < n->args.n; i++) n->kw[i] = kw[i];
    return 0;
}

static struct node *parse_list(struct parser *P)
{
    struct node *n = mk(P, N_LIST, CUR(P)->line);
    if (!n || expect_op(P, "[")) return NULL;
    while (!is_op(CUR(P), "]")) {
        if (n->args.n && expect_op(P, ",")) return NULL;
        if (is_op(CUR(P), "]")) break;
        struct node *e = parse_expression(P, 1);
        if (!e || nl_push(P, &n->args, e)) return NULL;
    }
    P->i++;
    return n;
}

static struct node *parse_dict(struct parser *P)
{
    struct node *n = mk(P, N_DICT, CUR(P)->line);
    if (!n || expect_op(P, "{")) return NULL;
    while (!is_op(CUR(P), "}")) {
        if (n->args.n && expect_op(P, ",")) return NULL;
        if (is_op(CUR(P), "}")) break;
        struct node *k = parse_expression(P, 1);
        if (!k || expect_op(P, ":")) return NULL;
        struct node *v = parse_expression(P, 1);
        if (!v || nl_push(P, &n->args, k) || nl_push(P, &n->args, v)) return NULL;
    }
    P->i++;
    return n;
}

static struct node *parse_primary(struct parser *P)
{
    const struct tk *t = CUR(P);
    struct node *n;
    if (t->t == TK_NAME) {
        n = mk(P, N_CONST, t->line);
        if (!n) return NULL;
        if (!strcmp(t->p, "true") || !strcmp(t->p, "True")) {
            n->val = tv_bool(1);
        } else if (!strcmp(t->p, "false") || !strcmp(t->p, "False")) {
            n->val = tv_bool(0);
        } else if (!strcmp(t->p, "none") || !strcmp(t->p, "None")) {
            n->val = tv_none();
        } else {
            n->k = N_NAME;
            n->name = t->p;
        }
        P->i++;
        return n;
    }
    if (t->t == TK_STRING) {
        n = mk(P, N_CONST, t->line);
        if (!n) return NULL;
        P->i++;
        if (CUR(P)->t != TK_STRING) {
            n->val = tv_str(t->p, t->n);
            return n;
        }
        struct tbuf b = {0};
        tb_put(&b, t->p, t->n);
        while (CUR(P)->t == TK_STRING) {
            tb_put(&b, CUR(P)->p, CUR(P)->n);
            P->i++;
        }
        char *s = b.oom ? NULL : ta_strndup(P->a, b.p ? b.p : "", b.n);
        size_t len = b.n;
        free(b.p);
        if (!s) return oom(P);
        n->val = tv_str(s, len);
        return n;
    }
    if (t->t == TK_INT || t->t == TK_FLOAT) {
        n = mk(P, N_CONST, t->line);
        if (!n) return NULL;
        n->val = t->t == TK_INT ? tv_int(t->i) : tv_float(t->f);
        P->i++;
        return n;
    }
    if (is_op(t, "(")) {
        P->i++;
        n = parse_tuple(P, 1, NULL, 1);
        if (!n || expect_op(P, ")")) return NULL;
        return n;
    }
    if (is_op(t, "[")) return parse_list(P);
    if (is_op(t, "{")) return parse_dict(P);
    char b[64];
    return pfail(P, t->line, "unexpected %s", tk_desc(t, b, sizeof b));
}

static int is_tuple_end(struct parser *P, const char *extra_end)
{
    const struct tk *t = CUR(P);
    if (t->t == TK_VAR_END || t->t == TK_BLOCK_END || is_op(t, ")")) return 1;
    return extra_end && is_name(t, extra_end);
}

static struct node *parse_tuple(struct parser *P, int with_condexpr, const char *extra_end,
                                int explicit_parens)
{
    int line = CUR(P)->line;
    struct node *tup = mk(P, N_TUPLE, line);
    if (!tup) return NULL;
    int is_tuple = 0;
    for (;;) {
        if (tup->args.n && expect_op(P, ",")) return NULL;
        if (is_tuple_end(P, extra_end)) break;
        struct node *e = with_condexpr ? parse_expression(P, 1) : parse_or(P);
        if (!e || nl_push(P, &tup->args, e)) return NULL;
        if (is_op(CUR(P), ","))
            is_tuple = 1;
        else
            break;
    }
    if (!is_tuple) {
        if (tup->args.n) return tup->args.v[0];
        if (!explicit_parens) {
            char b[64];
            return pfail(P, CUR(P)->line, "expected an expression, got %s",
                         tk_desc(CUR(P), b, sizeof b));
        }
    }
    return tup;
}

static struct node *parse_subscribed(struct parser *P)
{
    int line = CUR(P)->line;
    struct node *parts[3] = {NULL, NULL, NULL};
    if (is_op(CUR(P), ":")) {
        P->i++;
    } else {
        struct node *e = parse_expression(P, 1);
        if (!e) return NULL;
        if (!is_op(CUR(P), ":")) return e;
        P->i++;
        parts[0] = e;
    }
    if (!is_op(CUR(P), ":") && !is_op(CUR(P), "]") && !is_op(CUR(P), ",")) {
        parts[1] = parse_expression(P, 1);
        if (!parts[1]) return NULL;
    }
    if (is_op(CUR(P), ":")) {
        P->i++;
        if (!is_op(CUR(P), "]") && !is_op(CUR(P), ",")) {
            parts[2] = parse_expression(P, 1);
            if (!parts[2]) return NULL;
        }
    }
    struct node *s = mk(P, N_SLICE, line);
    if (!s) return NULL;
    s->a = parts[0];
    s->b = parts[1];
    s->c = parts[2];
    return s;
}

static struct node *parse_call(struct parser *P, struct node *callee)
{
    struct node *n = mk(P, N_CALL, CUR(P)->line);
    if (!n) return NULL;
    n->a = callee;
    if (callee->k == N_NAME) {
        if (tmpl_global_id(callee->name) < 0 && nl_push(P, &P->calls, callee)) return NULL;
    } else if (callee->k == N_ATTR) {
        if (!tmpl_method_known(callee->name))
            return pfail(P, callee->line, "unsupported method '%s'", callee->name);
    } else {
        return pfail(P, callee->line, "unsupported call of a computed value");
    }
    if (parse_call_args(P, n)) return NULL;
    return n;
}

static struct node *parse_postfix(struct parser *P, struct node *node)
{
    for (;;) {
        const struct tk *t = CUR(P);
        if (is_op(t, ".")) {
            P->i++;
            const struct tk *a = CUR(P);
            if (a->t == TK_NAME) {
                struct node *n = mk(P, N_ATTR, t->line);
                if (!n) return NULL;
                n->a = node;
                n->name = a->p;
                P->i++;
                node = n;
            } else if (a->t == TK_INT) {
                struct node *n = mk(P, N_ITEM, t->line), *c = mk(P, N_CONST, t->line);
                if (!n || !c) return NULL;
                c->val = tv_int(a->i);
                n->a = node;
                n->b = c;
                P->i++;
                node = n;
            } else {
                return pfail(P, a->line, "expected name or number after '.'");
            }
        } else if (is_op(t, "[")) {
            P->i++;
            struct node *n = mk(P, N_ITEM, t->line);
            if (!n) return NULL;
            struct nlist args = {0};
            while (!is_op(CUR(P), "]")) {
                if (args.n && expect_op(P, ",")) return NULL;
                struct node *e = parse_subscribed(P);
                if (!e || nl_push(P, &args, e)) return NULL;
            }
            P->i++;
            if (args.n == 0) return pfail(P, t->line, "expected a subscript");
            n->a = node;
            if (args.n == 1) {
                n->b = args.v[0];
            } else {
                struct node *tup = mk(P, N_TUPLE, t->line);
                if (!tup) return NULL;
                tup->args = args;
                n->b = tup;
            }
            node = n;
        } else if (is_op(t, "(")) {
            node = parse_call(P, node);
            if (!node) return NULL;
        } else {
            return node;
        }
    }
}

static int dotted_name(struct parser *P, char *buf, size_t cap)
{
    const struct tk *t = CUR(P);
    if (t->t != TK_NAME) {
        char b[64];
        pfail(P, t->line, "expected a name, got %s", tk_desc(t, b, sizeof b));
        return -1;
    }
    snprintf(buf, cap, "%s", t->p);
    P->i++;
    while (is_op(CUR(P), ".") && P->v[P->i + 1].t == TK_NAME) {
        size_t l = strlen(buf);
        snprintf(buf + l, cap - l, ".%s", P->v[P->i + 1].p);
        P->i += 2;
    }
    return 0;
}

static struct node *parse_filter_expr(struct parser *P, struct node *node)
{
    for (;;) {
        const struct tk *t = CUR(P);
        if (is_op(t, "|")) {
            P->i++;
            char name[128];
            int line = CUR(P)->line;
            if (dotted_name(P, name, sizeof name)) return NULL;
            int id = tmpl_filter_id(name);
            if (id < 0) return pfail(P, line, "unsupported filter '%s'", name);
            struct node *n = mk(P, N_FILTER, line);
            if (!n) return NULL;
            n->a = node;
            n->op = id;
            n->name = ta_strndup(P->a, name, strlen(name));
            if (is_op(CUR(P), "(")) {
                if (parse_call_args(P, n)) return NULL;
            } else {
                n->kw = ta_alloc(P->a, sizeof *n->kw);
                if (!n->kw) return oom(P);
            }
            node = n;
        } else if (is_name(t, "is")) {
            P->i++;
            int negated = 0;
            if (is_name(CUR(P), "not")) {
                negated = 1;
                P->i++;
            }
            char name[128];
            int line = CUR(P)->line;
            if (dotted_name(P, name, sizeof name)) return NULL;
            int id = tmpl_test_id(name);
            if (id < 0) return pfail(P, line, "unsupported test '%s'", name);
            struct node *n = mk(P, N_TEST, line);
            if (!n) return NULL;
            n->a = node;
            n->op = id;
            n->name = ta_strndup(P->a, name, strlen(name));
            const struct tk *c = CUR(P);
            if (is_op(c, "(")) {
                if (parse_call_args(P, n)) return NULL;
            } else {
                n->kw = ta_alloc(P->a, 2 * sizeof *n->kw);
                if (!n->kw) return oom(P);
                if ((c->t == TK_NAME || c->t == TK_STRING || c->t == TK_INT || c->t == TK_FLOAT ||
                     is_op(c, "[") || is_op(c, "{")) &&
                    !is_name(c, "else") && !is_name(c, "or") && !is_name(c, "and")) {
                    if (is_name(c, "is"))
                        return pfail(P, c->line, "you cannot chain multiple tests with is");
                    struct node *arg = parse_primary(P);
                    if (!arg) return NULL;
                    arg = parse_postfix(P, arg);
                    if (!arg || nl_push(P, &n->args, arg)) return NULL;
                }
            }
            if (negated) {
                struct node *no = mk(P, N_NOT, line);
                if (!no) return NULL;
                no->a = n;
                n = no;
            }
            node = n;
        } else if (is_op(t, "(")) {
            return pfail(P, t->line, "unsupported call of a filter or test result");
        } else {
            return node;
        }
    }
}

static struct node *parse_unary(struct parser *P, int with_filter)
{
    const struct tk *t = CUR(P);
    struct node *node;
    if (P->depth + 1 > MAX_DEPTH) return pfail(P, t->line, "expression nested too deeply");
    if (is_op(t, "-") || is_op(t, "+")) {
        P->i++;
        node = mk(P, is_op(t, "-") ? N_NEG : N_POS, t->line);
        if (!node) return NULL;
        P->depth++;
        node->a = parse_unary(P, 0);
        P->depth--;
        if (!node->a) return NULL;
    } else {
        node = parse_primary(P);
        if (!node) return NULL;
    }
    node = parse_postfix(P, node);
    if (node && with_filter) node = parse_filter_expr(P, node);
    return node;
}

static struct node *mk_bin(struct parser *P, int op, int line, struct node *l, struct node *r)
{
    if (!r) return NULL;
    struct node *n = mk(P, N_BIN, line);
    if (!n) return NULL;
    n->op = op;
    n->a = l;
    n->b = r;
    return n;
}

static struct node *parse_pow(struct parser *P)
{
    struct node *l = parse_unary(P, 1);
    while (l && is_op(CUR(P), "**")) {
        int line = CUR(P)->line;
        P->i++;
        l = mk_bin(P, OP_POW, line, l, parse_unary(P, 1));
    }
    return l;
}

static struct node *parse_math2(struct parser *P)
{
    struct node *l = parse_pow(P);
    for (;;) {
        if (!l) return NULL;
        const struct tk *t = CUR(P);
        int op = is_op(t, "*")    ? OP_MUL
                 : is_op(t, "/")  ? OP_DIV
                 : is_op(t, "//") ? OP_FLOORDIV
                 : is_op(t, "%")  ? OP_MOD
                                  : -1;
        if (op < 0) return l;
        if (op == OP_MOD && l->k == N_CONST && l->val.t == TV_STR)
            return pfail(P, t->line, "unsupported construct: printf-style '%%' string formatting");
        P->i++;
        l = mk_bin(P, op, t->line, l, parse_pow(P));
    }
}

static struct node *parse_concat(struct parser *P)
{
    struct node *first = parse_math2(P);
    if (!first || !is_op(CUR(P), "~")) return first;
    struct node *n = mk(P, N_CONCAT, CUR(P)->line);
    if (!n || nl_push(P, &n->args, first)) return NULL;
    while (is_op(CUR(P), "~")) {
        P->i++;
        struct node *e = parse_math2(P);
        if (!e || nl_push(P, &n->args, e)) return NULL;
    }
    return n;
}

static struct node *parse_math1(struct parser *P)
{
    struct node *l = parse_concat(P);
    for (;;) {
        if (!l) return NULL;
        const struct tk *t = CUR(P);
        int op = is_op(t, "+") ? OP_ADD : is_op(t, "-") ? OP_SUB : -1;
        if (op < 0) return l;
        P->i++;
        l = mk_bin(P, op, t->line, l, parse_concat(P));
    }
}

static struct node *parse_compare(struct parser *P)
{
    int line = CUR(P)->line;
    struct node *e = parse_math1(P);
    if (!e) return NULL;
    struct node *n = NULL;
    int ops[32];
    for (;;) {
        const struct tk *t = CUR(P);
        int op = is_op(t, "==")     ? CMP_EQ
                 : is_op(t, "!=")   ? CMP_NE
                 : is_op(t, "<")    ? CMP_LT
                 : is_op(t, "<=")   ? CMP_LE
                 : is_op(t, ">")    ? CMP_GT
                 : is_op(t, ">=")   ? CMP_GE
                 : is_name(t, "in") ? CMP_IN
                                    : -1;
        if (op < 0 && is_name(t, "not") && is_name(&P->v[P->i + 1], "in")) {
            op = CMP_NOTIN;
            P->i++;
        }
        if (op < 0) break;
        P->i++;
        if (!n) {
            n = mk(P, N_CMP, line);
            if (!n || nl_push(P, &n->args, e)) return NULL;
        }
        if (n->args.n > 31) return pfail(P, t->line, "comparison chain too long");
        ops[n->args.n - 1] = op;
        struct node *r = parse_math1(P);
        if (!r || nl_push(P, &n->args, r)) return NULL;
    }
    if (!n) return e;
    n->ops = ta_alloc(P->a, (size_t)n->args.n * sizeof *n->ops);
    if (!n->ops) return oom(P);
    memcpy(n->ops, ops, (size_t)(n->args.n - 1) * sizeof *ops);
    return n;
}

static struct node *parse_not(struct parser *P)
{
    if (is_name(CUR(P), "not")) {
        struct node *n = mk(P, N_NOT, CUR(P)->line);
        if (!n) return NULL;
        if (P->depth + 1 > MAX_DEPTH) return pfail(P, n->line, "expression nested too deeply");
        P->i++;
        P->depth++;
        n->a = parse_not(P);
        P->depth--;
        return n->a ? n : NULL;
    }
    return parse_compare(P);
}

static struct node *parse_and(struct parser *P)
{
    struct node *l = parse_not(P);
    while (l && is_name(CUR(P), "and")) {
        struct node *n = mk(P, N_AND, CUR(P)->line);
        if (!n) return NULL;
        P->i++;
        n->a = l;
        n->b = parse_not(P);
        if (!n->b) return NULL;
        l = n;
    }
    return l;
}

static struct node *parse_or(struct parser *P)
{
    struct node *l = parse_and(P);
    while (l && is_name(CUR(P), "or")) {
        struct node *n = mk(P, N_OR, CUR(P)->line);
        if (!n) return NULL;
        P->i++;
        n->a = l;
        n->b = parse_and(P);
        if (!n->b) return NULL;
        l = n;
    }
    return l;
}

static struct node *parse_condexpr(struct parser *P)
{
    struct node *e1 = parse_or(P);
    while (e1 && is_name(CUR(P), "if")) {
        struct node *n = mk(P, N_COND, CUR(P)->line);
        if (!n) return NULL;
        P->i++;
        n->a = parse_or(P); /* test */
        if (!n->a) return NULL;
        n->b = e1;
        if (is_name(CUR(P), "else")) {
            P->i++;
            n->c = parse_condexpr(P);
            if (!n->c) return NULL;
        }
        e1 = n;
    }
    return e1;
}

static struct node *parse_expression(struct parser *P, int with_condexpr)
{
    if (++P->depth > MAX_DEPTH) return pfail(P, CUR(P)->line, "expression nested too deeply");
    struct node *n = with_condexpr ? parse_condexpr(P) : parse_or(P);
    P->depth--;
    return n;
}

/* ---- statements ---- */
static int subparse(struct parser *P, struct nlist *body, const char *const *end_names);

static const char *const unsupported_stmts[] = {
    "call",    "filter",        "include",  "import",     "from",
    "extends", "block",         "with",     "autoescape", "do",
    "trans",   "pluralize",     "endcall",  "endfilter",  "endblock",
    "endwith", "endautoescape", "endtrans", NULL,
};

static int block_end(struct parser *P)
{
    return expect_type(P, TK_BLOCK_END, "end of statement block '%}'");
}

static int parse_targets(struct parser *P, struct node *n, const char *what)
{
    const char *names[16];
    int cnt = 0, paren = 0;
    if (is_op(CUR(P), "(")) {
        paren = 1;
        P->i++;
    }
    for (;;) {
        if (CUR(P)->t != TK_NAME) {
            char b[64];
            pfail(P, CUR(P)->line, "expected a name as %s target, got %s", what,
                  tk_desc(CUR(P), b, sizeof b));
            return -1;
        }
        if (cnt == 16) {
            pfail(P, CUR(P)->line, "too many %s targets", what);
            return -1;
        }
        names[cnt++] = CUR(P)->p;
        P->i++;
        if (!is_op(CUR(P), ",")) break;
        P->i++;
        if (is_name(CUR(P), "in") || is_op(CUR(P), ")") || is_op(CUR(P), "=")) break;
    }
    if (paren && expect_op(P, ")")) return -1;
    n->targets = ta_alloc(P->a, (size_t)cnt * sizeof *n->targets);
    if (!n->targets) {
        oom(P);
        return -1;
    }
    memcpy(n->targets, names, (size_t)cnt * sizeof *names);
    n->ntargets = cnt;
    if (cnt > 1 || paren) n->op = 1; /* unpack */
    return 0;
}

static struct node *parse_if(struct parser *P, int line)
{
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    static const char *const endif[] = {"endif", NULL};
    struct node *n = mk(P, S_IF, line);
    if (!n) return NULL;
    struct nlist bodies[64];
    int nb = 0;
    for (;;) {
        struct node *cond = parse_tuple(P, 0, NULL, 0);
        if (!cond || nl_push(P, &n->args, cond) || block_end(P)) return NULL;
        if (nb == 63) return pfail(P, line, "too many elif branches");
        memset(&bodies[nb], 0, sizeof bodies[nb]);
        if (subparse(P, &bodies[nb++], ends)) return NULL;
        const struct tk *t = CUR(P);
        P->i++;
        if (is_name(t, "elif")) continue;
        if (is_name(t, "else")) {
            if (block_end(P)) return NULL;
            memset(&bodies[nb], 0, sizeof bodies[nb]);
            if (subparse(P, &bodies[nb++], endif)) return NULL;
            P->i++;
        }
        break;
    }
    if (block_end(P)) return NULL;
    n->bodies = ta_alloc(P->a, (size_t)nb * sizeof *n->bodies);
    if (!n->bodies) return oom(P);
    memcpy(n->bodies, bodies, (size_t)nb * sizeof *bodies);
    n->nbodies = nb;
    return n;
}

static struct node *parse_for(struct parser *P, int line)
{
    static const char *const ends[] = {"endfor", "else", NULL};
    static const char *const endfor[] = {"endfor", NULL};
    struct node *n = mk(P, S_FOR, line);
    if (!n || parse_targets(P, n, "for loop")) return NULL;
    if (!is_name(CUR(P), "in")) return pfail(P, CUR(P)->line, "expected 'in' in for loop");
    P->i++;
    n->a = parse_tuple(P, 0, "recursive", 0);
    if (!n->a) return NULL;
    if (is_name(CUR(P), "if")) {
        P->i++;
        n->b = parse_expression(P, 1);
        if (!n->b) return NULL;
    }
    if (is_name(CUR(P), "recursive"))
        return pfail(P, CUR(P)->line, "unsupported construct: recursive for loop");
    if (block_end(P)) return NULL;
    P->loop_depth++;
    if (subparse(P, &n->body, ends)) return NULL;
    P->loop_depth--;
    const struct tk *t = CUR(P);
    P->i++;
    if (is_name(t, "else")) {
        if (block_end(P) || subparse(P, &n->body2, endfor)) return NULL;
        P->i++;
    }
    if (block_end(P)) return NULL;
    return n;
}

static struct node *parse_set(struct parser *P, int line)
{
    static const char *const endset[] = {"endset", NULL};
    struct node *n = mk(P, S_SET, line);
    if (!n) return NULL;
    if (CUR(P)->t == TK_NAME && is_op(&P->v[P->i + 1], ".") && P->v[P->i + 2].t == TK_NAME) {
        n->name = CUR(P)->p;
        n->name2 = P->v[P->i + 2].p;
        P->i += 3;
    } else {
        if (parse_targets(P, n, "set")) return NULL;
        if (n->ntargets == 1 && !n->op) n->name = n->targets[0];
    }
    if (is_op(CUR(P), "=")) {
        P->i++;
        n->a = parse_tuple(P, 1, NULL, 0);
        if (!n->a || block_end(P)) return NULL;
        return n;
    }
    if (!n->name || n->name2) return pfail(P, CUR(P)->line, "expected '=' in set");
    if (is_op(CUR(P), "|"))
        return pfail(P, CUR(P)->line, "unsupported construct: filtered block set");
    if (block_end(P)) return NULL;
    n->k = S_SETBLOCK;
    if (subparse(P, &n->body, endset)) return NULL;
    P->i++;
    if (block_end(P)) return NULL;
    return n;
}

static struct node *parse_macro(struct parser *P, int line)
{
    static const char *const endmacro[] = {"endmacro", NULL};
    struct node *n = mk(P, S_MACRO, line);
    if (!n) return NULL;
    if (CUR(P)->t != TK_NAME) return pfail(P, CUR(P)->line, "expected a macro name");
    n->name = CUR(P)->p;
    P->i++;
    if (expect_op(P, "(")) return NULL;
    const char *names[32];
    int cnt = 0;
    while (!is_op(CUR(P), ")")) {
        if (cnt && expect_op(P, ",")) return NULL;
        if (is_op(CUR(P), ")")) break;
        if (CUR(P)->t != TK_NAME) return pfail(P, CUR(P)->line, "expected a macro parameter name");
        if (cnt == 32) return pfail(P, CUR(P)->line, "too many macro parameters");
        names[cnt++] = CUR(P)->p;
        P->i++;
        struct node *dflt = NULL;
        if (is_op(CUR(P), "=")) {
            P->i++;
            dflt = parse_expression(P, 1);
            if (!dflt) return NULL;
        } else if (n->args.n && n->args.v[n->args.n - 1]) {
            return pfail(P, CUR(P)->line, "non-default argument follows default argument");
        }
        if (nl_push(P, &n->args, dflt)) return NULL;
    }
    P->i++;
    n->targets = ta_alloc(P->a, (size_t)(cnt ? cnt : 1) * sizeof *n->targets);
    if (!n->targets) return oom(P);
    memcpy(n->targets, names, (size_t)cnt * sizeof *names);
    n->ntargets = cnt;
    if (block_end(P)) return NULL;
    int saved_loops = P->loop_depth;
    P->loop_depth = 0;
    if (subparse(P, &n->body, endmacro)) return NULL;
    P->loop_depth = saved_loops;
    P->i++;
    if (CUR(P)->t == TK_NAME && !strcmp(CUR(P)->p, n->name)) P->i++;
    if (block_end(P) || nl_push(P, &P->macros, n)) return NULL;
    return n;
}

static int is_end(const struct tk *t, const char *const *end_names)
{
    if (!end_names || t->t != TK_NAME) return 0;
    for (int i = 0; end_names[i]; i++)
        if (!strcmp(t->p, end_names[i])) return 1;
    return 0;
}

static const char *join_names(const char *const *names, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = 0;
    for (int i = 0; names[i] && n < cap; i++) {
        int w = snprintf(buf + n, cap - n, "%s'%s'", i ? " or " : "", names[i]);
        if (w < 0) break;
        n += (size_t)w;
    }
    return buf;
}

/* Parses nodes into body until a block whose first name is in end_names; leaves the current
 * token at that name. With end_names NULL parses to the end of the template. */
static int subparse_inner(struct parser *P, struct nlist *body, const char *const *end_names);

static int subparse(struct parser *P, struct nlist *body, const char *const *end_names)
{
    if (++P->depth > MAX_DEPTH) {
        pfail(P, CUR(P)->line, "blocks nested too deeply");
        return -1;
    }
    int rc = subparse_inner(P, body, end_names);
    P->depth--;
    return rc;
}

static int subparse_inner(struct parser *P, struct nlist *body, const char *const *end_names)
{
    for (;;) {
        if (P->failed) return -1;
        P->expr_nodes = 0;
        const struct tk *t = CUR(P);
        if (t->t == TK_EOF) {
            if (end_names) {
                char want[128];
                pfail(P, t->line, "unexpected end of template, expected %s",
                      join_names(end_names, want, sizeof want));
                return -1;
            }
            return 0;
        }
        if (t->t == TK_TEXT) {
            struct node *n = mk(P, S_TEXT, t->line);
            if (!n) return -1;
            n->val = tv_str(t->p, t->n);
            P->i++;
            if (nl_push(P, body, n)) return -1;
            continue;
        }
        if (t->t == TK_VAR_BEGIN) {
            P->i++;
            struct node *n = mk(P, S_OUT, t->line);
            if (!n) return -1;
            n->a = parse_tuple(P, 1, NULL, 0);
            if (!n->a || expect_type(P, TK_VAR_END, "end of print statement '}}'") ||
                nl_push(P, body, n))
                return -1;
            continue;
        }
        if (t->t != TK_BLOCK_BEGIN) {
            char b[64];
            pfail(P, t->line, "unexpected %s", tk_desc(t, b, sizeof b));
            return -1;
        }
        P->i++;
        const struct tk *kw = CUR(P);
        if (kw->t != TK_NAME) {
            pfail(P, kw->line, "expected a statement name after '{%%'");
            return -1;
        }
        if (is_end(kw, end_names)) return 0;
        P->i++;
        struct node *n = NULL;
        int line = kw->line;
        if (!strcmp(kw->p, "if")) {
            n = parse_if(P, line);
        } else if (!strcmp(kw->p, "for")) {
            n = parse_for(P, line);
        } else if (!strcmp(kw->p, "set")) {
            n = parse_set(P, line);
        } else if (!strcmp(kw->p, "macro")) {
            n = parse_macro(P, line);
        } else if (!strcmp(kw->p, "break") || !strcmp(kw->p, "continue")) {
            if (!P->loop_depth) {
                pfail(P, line, "'%s' outside of a loop", kw->p);
                return -1;
            }
            n = mk(P, kw->p[0] == 'b' ? S_BREAK : S_CONTINUE, line);
            if (!n || block_end(P)) return -1;
        } else if (!strcmp(kw->p, "generation")) {
            /* transformers' AssistantTracker: renders its body unchanged */
            static const char *const endgen[] = {"endgeneration", NULL};
            if (block_end(P) || subparse(P, body, endgen)) return -1;
            P->i++;
            if (block_end(P)) return -1;
            continue;
        } else {
            for (int i = 0; unsupported_stmts[i]; i++)
                if (!strcmp(kw->p, unsupported_stmts[i])) {
                    pfail(P, line, "unsupported statement '{%% %s %%}'", kw->p);
                    return -1;
                }
            char want[128];
            if (end_names)
                pfail(P, line, "unexpected '%s', expected %s", kw->p,
                      join_names(end_names, want, sizeof want));
            else
                pfail(P, line, "unknown statement '%s'", kw->p);
            return -1;
        }
        if (!n || nl_push(P, body, n)) return -1;
    }
}

int tmpl_parse(struct chat_template *t, const struct tk_list *toks, struct ms_err *err)
{
    struct parser P = {.a = &t->arena, .v = toks->v, .n = toks->n, .err = err};
    if (subparse(&P, &t->body, NULL) || P.failed)
        return P.failed ? (t->arena.oom ? MS_ERR_NOMEM : MS_ERR_INVALID) : MS_ERR_INVALID;
    for (int i = 0; i < P.calls.n; i++) {
        const struct node *call = P.calls.v[i];
        int found = 0;
        for (int k = 0; k < P.macros.n && !found; k++)
            found = !strcmp(P.macros.v[k]->name, call->name);
        if (!found) {
            pfail(&P, call->line,
                  "unsupported function '%s' (neither a global function nor a macro of this "
                  "template)",
                  call->name);
            return MS_ERR_INVALID;
        }
    }
    tmpl_mark_const(&t->body);
    return 0;
}
