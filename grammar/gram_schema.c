#include "grammar/gram_schema.h"

#include <cJSON.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/gram_regex.h"

/* The compiler's state: the grammar being built, the schema's root (for $ref) and a memo from
 * schema objects to their node (so a $ref cycle becomes a cycle of nodes). */
struct comp {
    struct gram *g;
    const cJSON *root;
    const cJSON **memo_key;
    int *memo_node;
    int n_memo, cap_memo;
    struct ms_err *err;
    bool failed;
};

static int fail(struct comp *c, const char *path, const char *fmt, const char *arg)
{
    if (!c->failed) {
        char msg[440];
        snprintf(msg, sizeof msg, fmt, arg);
        ms_err_set(c->err, MS_ERR_INVALID, "%s (at %s)", msg, path[0] ? path : "#");
    }
    c->failed = true;
    return -1;
}

static int new_node(struct comp *c, enum gram_kind kind)
{
    struct gram *g = c->g;
    if (g->n_nodes >= GRAM_MAX_SCHEMA_NODES) return fail(c, "", "the schema is too large (more than %s nodes)", "100000");
    if (g->n_nodes == g->cap) {
        int cap = g->cap ? 2 * g->cap : 16;
        struct gram_node *n = realloc(g->nodes, (size_t)cap * sizeof *n);
        if (!n) return fail(c, "", "out of memory%s", "");
        g->nodes = n;
        g->cap = cap;
    }
    struct gram_node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->additional = n->items = n->target = -1;
    n->max_items = n->max_len = -1;
    n->min = INT64_MIN;
    n->max = INT64_MAX;
    return g->n_nodes++;
}

static struct gram_node *node(struct comp *c, int id) { return &c->g->nodes[id]; }

/* The memo: open addressing on the schema object's address (schemas can have many nodes). */
static size_t memo_slot(const struct comp *c, const cJSON *s)
{
    size_t h = (size_t)(((uintptr_t)s >> 4) * 0x9E3779B97F4A7C15ull), mask = (size_t)c->cap_memo - 1;
    for (h &= mask; c->memo_key[h] && c->memo_key[h] != s; h = (h + 1) & mask) {}
    return h;
}

static int memo_find(const struct comp *c, const cJSON *s)
{
    if (!c->cap_memo) return -1;
    size_t h = memo_slot(c, s);
    return c->memo_key[h] ? c->memo_node[h] : -1;
}

static int memo_add(struct comp *c, const cJSON *s, int id)
{
    if (2 * (c->n_memo + 1) > c->cap_memo) { /* grow to keep the table at most half full */
        int cap = c->cap_memo ? 2 * c->cap_memo : 64;
        const cJSON **old_k = c->memo_key;
        int *old_v = c->memo_node, old_cap = c->cap_memo;
        c->memo_key = calloc((size_t)cap, sizeof *c->memo_key);
        c->memo_node = calloc((size_t)cap, sizeof *c->memo_node);
        if (!c->memo_key || !c->memo_node) {
            free(c->memo_key);
            free(c->memo_node);
            c->memo_key = old_k;
            c->memo_node = old_v;
            return fail(c, "", "out of memory%s", "");
        }
        c->cap_memo = cap;
        for (int i = 0; i < old_cap; i++)
            if (old_k[i]) {
                size_t h = memo_slot(c, old_k[i]);
                c->memo_key[h] = old_k[i];
                c->memo_node[h] = old_v[i];
            }
        free(old_k);
        free(old_v);
    }
    size_t h = memo_slot(c, s);
    c->memo_key[h] = s;
    c->memo_node[h] = id;
    c->n_memo++;
    return 0;
}

/* ---- literal sets ----------------------------------------------------------------------- */

static int cmp_bytes(const char *a, int la, const char *b, int lb)
{
    int m = la < lb ? la : lb, r = memcmp(a, b, (size_t)m);
    return r ? r : la - lb;
}

/* A LITERALS node from n byte strings (copied, sorted, duplicates dropped). */
static int literals_node(struct comp *c, int n, char **texts)
{
    int id = new_node(c, GRAM_LITERALS);
    if (id < 0) return -1;
    struct gram_node *nd = node(c, id);
    nd->lits = calloc((size_t)n + 1, sizeof *nd->lits);
    nd->lit_len = calloc((size_t)n + 1, sizeof *nd->lit_len);
    if (!nd->lits || !nd->lit_len) return fail(c, "", "out of memory%s", "");
    for (int i = 0; i < n; i++) { /* insertion sort: enums are small */
        int len = (int)strlen(texts[i]), j = nd->n, dup = 0;
        for (int k = 0; k < nd->n; k++) dup |= !cmp_bytes(nd->lits[k], nd->lit_len[k], texts[i], len);
        if (dup) continue;
        char *copy = strdup(texts[i]);
        if (!copy) return fail(c, "", "out of memory%s", "");
        while (j > 0 && cmp_bytes(nd->lits[j - 1], nd->lit_len[j - 1], texts[i], len) > 0) {
            nd->lits[j] = nd->lits[j - 1];
            nd->lit_len[j] = nd->lit_len[j - 1];
            j--;
        }
        nd->lits[j] = copy;
        nd->lit_len[j] = len;
        nd->n++;
    }
    return id;
}

static int literal_node(struct comp *c, const char *text)
{
    char *t = (char *)text;
    return literals_node(c, 1, &t);
}

static int list_node(struct comp *c, enum gram_kind kind, int n, const int *ids)
{
    int id = new_node(c, kind);
    if (id < 0) return -1;
    int *alts = malloc(((size_t)n + 1) * sizeof *alts);
    if (!alts) return fail(c, "", "out of memory%s", "");
    memcpy(alts, ids, (size_t)n * sizeof *alts);
    node(c, id)->alts = alts;
    node(c, id)->n = n;
    return id;
}

/* ---- keywords --------------------------------------------------------------------------- */

static const char *const IGNORED[] = {"title", "description", "$schema", "$id", "$comment", "default", "examples",
                                      "deprecated", "readOnly", "writeOnly", "$defs", "definitions", "strict", NULL};
static const char *const KNOWN[] = {"type", "properties", "required", "additionalProperties", "items", "minItems",
                                    "maxItems", "minLength", "maxLength", "enum", "const", "anyOf", "allOf", "nullable",
                                    "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "format", "$ref", "pattern",
                                    NULL};

static bool in_list(const char *const *list, const char *s)
{
    for (int i = 0; list[i]; i++)
        if (!strcmp(list[i], s)) return true;
    return false;
}

static int compile(struct comp *c, const cJSON *s, const char *path);

static void child_path(char *out, size_t cap, const char *path, const char *a, const char *b)
{
    snprintf(out, cap, "%s/%s%s%s", path[0] ? path : "#", a, b ? "/" : "", b ? b : "");
}

static int nonneg_int(struct comp *c, const cJSON *s, const char *key, const char *path, int dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, key);
    if (!v) return dflt;
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e6 || v->valuedouble != floor(v->valuedouble))
        return fail(c, path, "'%s' must be a non-negative integer (at most 1000000)", key), -2;
    return (int)v->valuedouble;
}

/* Resolves a local JSON pointer ("#", "#/a/b", with ~0 ~1 escapes). */
static const cJSON *resolve_pointer(const cJSON *root, const char *ref)
{
    if (ref[0] != '#') return NULL;
    const cJSON *cur = root;
    const char *p = ref + 1;
    while (*p == '/') {
        char tok[256];
        size_t n = 0;
        for (p++; *p && *p != '/'; p++) {
            char ch = *p;
            if (ch == '~' && (p[1] == '0' || p[1] == '1')) ch = *++p == '0' ? '~' : '/';
            if (n + 1 >= sizeof tok) return NULL;
            tok[n++] = ch;
        }
        tok[n] = 0;
        if (cJSON_IsArray(cur)) {
            char *end;
            long i = strtol(tok, &end, 10);
            cur = *end || n == 0 ? NULL : cJSON_GetArrayItem(cur, (int)i);
        } else {
            cur = cJSON_IsObject(cur) ? cJSON_GetObjectItemCaseSensitive(cur, tok) : NULL;
        }
        if (!cur) return NULL;
    }
    return *p ? NULL : cur;
}

static int compile_ref(struct comp *c, const cJSON *s, const cJSON *ref, const char *path, int id)
{
    if (!cJSON_IsString(ref)) return fail(c, path, "'$ref' must be a string%s", "");
    for (const cJSON *k = s->child; k; k = k->next)
        if (strcmp(k->string, "$ref") && !in_list(IGNORED, k->string))
            return fail(c, path, "keyword '%s' beside '$ref' is not supported", k->string);
    const cJSON *t = resolve_pointer(c->root, ref->valuestring);
    if (!t) return fail(c, path, "'$ref' '%s' does not resolve (only local references such as #/$defs/X are supported)", ref->valuestring);
    int target = compile(c, t, ref->valuestring);
    if (target < 0) return -1;
    node(c, id)->kind = GRAM_REF;
    node(c, id)->target = target;
    return id;
}

/* JSON text of a value, compact (enum / const members). */
static char *print_value(const cJSON *v)
{
    return cJSON_PrintUnformatted(v);
}

static const char *json_type(const cJSON *v)
{
    if (cJSON_IsString(v)) return "string";
    if (cJSON_IsBool(v)) return "boolean";
    if (cJSON_IsNull(v)) return "null";
    if (cJSON_IsNumber(v)) return "number";
    if (cJSON_IsArray(v)) return "array";
    return "object";
}

static bool type_allows(const cJSON *type, const cJSON *v)
{
    if (!type) return true;
    const char *t = json_type(v);
    bool integral = cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble);
    for (const cJSON *e = cJSON_IsArray(type) ? type->child : type; e; e = cJSON_IsArray(type) ? e->next : NULL)
        if (cJSON_IsString(e) && (!strcmp(e->valuestring, t) || (integral && !strcmp(e->valuestring, "integer"))))
            return true;
    return false;
}

static int compile_enum(struct comp *c, const cJSON *s, const char *path)
{
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(s, "enum"), *cn = cJSON_GetObjectItemCaseSensitive(s, "const");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(s, "type");
    if (en && !cJSON_IsArray(en)) return fail(c, path, "'enum' must be an array%s", "");
    int n = en ? cJSON_GetArraySize(en) : 1;
    if (n > GRAM_MAX_ENUM) return fail(c, path, "'enum' has more than %s values", "1024");
    char **texts = calloc((size_t)n + 1, sizeof *texts);
    if (!texts) return fail(c, path, "out of memory%s", "");
    int k = 0;
    for (const cJSON *v = en ? en->child : cn; v; v = en ? v->next : NULL)
        if (type_allows(type, v) && (texts[k] = print_value(v))) k++;
    int id = k ? literals_node(c, k, texts) : fail(c, path, "'%s' has no value of the schema's type", en ? "enum" : "const");
    for (int i = 0; i < k; i++) free(texts[i]);
    free(texts);
    for (const cJSON *kw = s->child; id >= 0 && kw; kw = kw->next)
        if (!in_list(IGNORED, kw->string) && strcmp(kw->string, "enum") && strcmp(kw->string, "const") &&
            strcmp(kw->string, "type"))
            return fail(c, path, "keyword '%s' beside 'enum' / 'const' is not supported", kw->string);
    return id;
}

static int compile_object(struct comp *c, const cJSON *s, const char *path)
{
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
    const cJSON *req = cJSON_GetObjectItemCaseSensitive(s, "required");
    const cJSON *add = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
    if (props && !cJSON_IsObject(props)) return fail(c, path, "'properties' must be an object%s", "");
    if (req && !cJSON_IsArray(req)) return fail(c, path, "'required' must be an array%s", "");
    int n = props ? cJSON_GetArraySize(props) : 0;
    if (n > GRAM_MAX_PROPS) return fail(c, path, "'properties' has more than %s entries", "2048");
    if (req && cJSON_GetArraySize(req) > GRAM_MAX_PROPS) return fail(c, path, "'required' has more than %s entries", "2048");
    int id = new_node(c, GRAM_OBJECT);
    if (id < 0) return -1;
    struct gram_node *o = node(c, id);
    o->keys = calloc((size_t)n + 1, sizeof *o->keys);
    o->key_len = calloc((size_t)n + 1, sizeof(int));
    o->prop_node = calloc((size_t)n + 1, sizeof(int));
    o->sorted = calloc((size_t)n + 1, sizeof(int));
    o->req_after = calloc((size_t)n + 1, sizeof(int));
    o->required = calloc((size_t)n + 1, sizeof(bool));
    if (!o->keys || !o->key_len || !o->prop_node || !o->sorted || !o->req_after || !o->required)
        return fail(c, path, "out of memory%s", "");
    o->n_props = n;
    int i = 0;
    for (const cJSON *p = props ? props->child : NULL; p; p = p->next, i++) {
        char *quoted = cJSON_PrintUnformatted(&(cJSON){.type = cJSON_String, .valuestring = p->string});
        if (!quoted) return fail(c, path, "out of memory%s", "");
        size_t len = strlen(quoted);
        memmove(quoted, quoted + 1, len - 2);
        quoted[len - 2] = 0;
        node(c, id)->keys[i] = quoted;
        node(c, id)->key_len[i] = (int)len - 2;
        char sub[512];
        child_path(sub, sizeof sub, path, "properties", p->string);
        int child = compile(c, p, sub);
        if (child < 0) return -1;
        node(c, id)->prop_node[i] = child;
    }
    o = node(c, id);
    for (const cJSON *r = req ? req->child : NULL; r; r = r->next) {
        if (!cJSON_IsString(r)) return fail(c, path, "'required' must list strings%s", "");
        int k = 0;
        const cJSON *p = props ? props->child : NULL;
        for (; p && strcmp(p->string, r->valuestring); p = p->next) k++;
        if (!p) return fail(c, path, "required property '%s' is not in 'properties' (not supported)", r->valuestring);
        o->required[k] = true;
    }
    o->req_after[n] = n;
    for (int k = n - 1; k >= 0; k--) o->req_after[k] = o->required[k] ? k : o->req_after[k + 1];
    for (int k = 0; k < n; k++) { /* sorted by key bytes */
        int j = k;
        while (j > 0 && cmp_bytes(o->keys[o->sorted[j - 1]], o->key_len[o->sorted[j - 1]], o->keys[k], o->key_len[k]) > 0) {
            o->sorted[j] = o->sorted[j - 1];
            j--;
        }
        o->sorted[j] = k;
    }
    if (add && cJSON_IsFalse(add)) return id;
    char sub[512];
    child_path(sub, sizeof sub, path, "additionalProperties", NULL);
    int a = compile(c, add ? add : cJSON_GetObjectItemCaseSensitive(c->root, "\x01any"), sub);
    if (a < 0) return -1;
    node(c, id)->additional = a;
    return id;
}

static int compile_array(struct comp *c, const cJSON *s, const char *path)
{
    int id = new_node(c, GRAM_ARRAY);
    if (id < 0) return -1;
    int mn = nonneg_int(c, s, "minItems", path, 0), mx = nonneg_int(c, s, "maxItems", path, -1);
    if (mn < -1 || mx < -1) return -1;
    if (mx >= 0 && mn > mx) return fail(c, path, "'minItems' is larger than 'maxItems'%s", "");
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items");
    if (items && cJSON_IsArray(items)) return fail(c, path, "'items' as an array (tuple) is not supported%s", "");
    char sub[512];
    child_path(sub, sizeof sub, path, "items", NULL);
    int it = compile(c, items ? items : cJSON_GetObjectItemCaseSensitive(c->root, "\x01any"), sub);
    if (it < 0) return -1;
    struct gram_node *a = node(c, id);
    a->items = it;
    a->min_items = mn;
    a->max_items = mx;
    return id;
}

static int compile_string(struct comp *c, const cJSON *s, const char *path)
{
    int id = new_node(c, GRAM_STRING);
    if (id < 0) return -1;
    int mn = nonneg_int(c, s, "minLength", path, 0), mx = nonneg_int(c, s, "maxLength", path, -1);
    if (mn < -1 || mx < -1) return -1;
    if (mx >= 0 && mn > mx) return fail(c, path, "'minLength' is larger than 'maxLength'%s", "");
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(s, "format");
    enum gram_format fmt = GRAM_FMT_NONE;
    if (f) {
        static const char *const names[] = {"", "date", "time", "date-time", "uuid", "email"};
        for (int k = 1; k < 6; k++)
            if (cJSON_IsString(f) && !strcmp(f->valuestring, names[k])) fmt = (enum gram_format)k;
        if (fmt == GRAM_FMT_NONE)
            return fail(c, path, "string format '%s' is not supported (date, time, date-time, uuid, email are)",
                        cJSON_IsString(f) ? f->valuestring : "?");
        if (mn > 0 || mx >= 0) return fail(c, path, "'minLength' / 'maxLength' with 'format' is not supported%s", "");
    }
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(s, "pattern");
    if (pat) {
        if (!cJSON_IsString(pat)) return fail(c, path, "'pattern' must be a string%s", "");
        if (f) return fail(c, path, "'pattern' with 'format' is not supported%s", "");
        struct ms_err rerr = {{0}};
        struct gram_regex *re = gram_regex_compile(pat->valuestring, strlen(pat->valuestring), GRAM_RE_ECMA, &rerr);
        if (re && (mn > 0 || mx >= 0)) { /* the lengths go into the DFA, so no dead end is left */
            struct gram_regex *limited = gram_regex_with_length(re, mn, mx, &rerr);
            gram_regex_free(re);
            re = limited;
            mn = 0;
            mx = -1;
        }
        char why[320];
        ms_strlcpy(why, rerr.msg, sizeof why);
        if (!re) return fail(c, path, "'pattern' cannot be enforced: %s", why);
        node(c, id)->re = re;
    }
    struct gram_node *n = node(c, id);
    n->min_len = mn;
    n->max_len = mx;
    n->format = fmt;
    return id;
}

/* integer, or number with bounds (then generated as an integer inside them) */
static int compile_numeric(struct comp *c, const cJSON *s, const char *path, bool integer)
{
    double lo = -9e15, hi = 9e15;
    bool bounded = false;
    static const char *const kw[] = {"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"};
    for (int k = 0; k < 4; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, kw[k]);
        if (!v) continue;
        if (!cJSON_IsNumber(v) || fabs(v->valuedouble) > 9e15)
            return fail(c, path, "'%s' must be a number of magnitude at most 9e15", kw[k]);
        double x = v->valuedouble;
        bounded = true;
        if (k == 0) lo = fmax(lo, ceil(x));
        if (k == 1) lo = fmax(lo, floor(x) + 1);
        if (k == 2) hi = fmin(hi, floor(x));
        if (k == 3) hi = fmin(hi, ceil(x) - 1);
    }
    if (lo > hi) return fail(c, path, "the range of '%s' has no integer in it", "minimum / maximum");
    int id = new_node(c, integer || bounded ? GRAM_INTEGER : GRAM_NUMBER);
    if (id < 0) return -1;
    if (integer || bounded) {
        node(c, id)->min = (int64_t)lo;
        node(c, id)->max = (int64_t)hi;
    }
    return id;
}

static int compile_type(struct comp *c, const cJSON *s, const char *type, const char *path)
{
    if (!strcmp(type, "object")) return compile_object(c, s, path);
    if (!strcmp(type, "array")) return compile_array(c, s, path);
    if (!strcmp(type, "string")) return compile_string(c, s, path);
    if (!strcmp(type, "number")) return compile_numeric(c, s, path, false);
    if (!strcmp(type, "integer")) return compile_numeric(c, s, path, true);
    if (!strcmp(type, "boolean")) {
        char *t[] = {"true", "false"};
        return literals_node(c, 2, t);
    }
    if (!strcmp(type, "null")) return literal_node(c, "null");
    return fail(c, path, "unknown type '%s'", type);
}

/* A schema with no "type": what its keywords imply, or any value. */
static const char *implied_type(const cJSON *s)
{
    static const char *const obj[] = {"properties", "required", "additionalProperties", NULL};
    static const char *const arr[] = {"items", "minItems", "maxItems", NULL};
    static const char *const str[] = {"minLength", "maxLength", "format", "pattern", NULL};
    static const char *const num[] = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", NULL};
    const char *const *lists[] = {obj, arr, str, num};
    const char *names[] = {"object", "array", "string", "number"};
    for (int l = 0; l < 4; l++)
        for (int k = 0; lists[l][k]; k++)
            if (cJSON_GetObjectItemCaseSensitive(s, lists[l][k])) return names[l];
    return NULL;
}

static int compile_anyof(struct comp *c, const cJSON *list, const char *path, const char *kw)
{
    if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) == 0) return fail(c, path, "'%s' must be a non-empty array", kw);
    int n = cJSON_GetArraySize(list), ids[256], k = 0;
    if (n > 256) return fail(c, path, "'%s' has more than 256 members", kw);
    for (const cJSON *a = list->child; a; a = a->next, k++) {
        char sub[512], idx[16];
        snprintf(idx, sizeof idx, "%d", k);
        child_path(sub, sizeof sub, path, kw, idx);
        if ((ids[k] = compile(c, a, sub)) < 0) return -1;
    }
    return n == 1 ? ids[0] : list_node(c, GRAM_ANYOF, n, ids);
}

static int compile_body(struct comp *c, const cJSON *s, const char *path, int id)
{
    for (const cJSON *k = s->child; k; k = k->next)
        if (!in_list(IGNORED, k->string) && !in_list(KNOWN, k->string))
            return fail(c, path, "JSON Schema keyword '%s' is not supported", k->string);
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive(s, "$ref");
    if (ref) return compile_ref(c, s, ref, path, id);
    const cJSON *any = cJSON_GetObjectItemCaseSensitive(s, "anyOf"), *all = cJSON_GetObjectItemCaseSensitive(s, "allOf");
    const cJSON *nullable = cJSON_GetObjectItemCaseSensitive(s, "nullable");
    int body;
    if (any || all) {
        for (const cJSON *k = s->child; k; k = k->next)
            if (!in_list(IGNORED, k->string) && strcmp(k->string, any ? "anyOf" : "allOf"))
                return fail(c, path, "keyword '%s' beside 'anyOf' / 'allOf' is not supported", k->string);
        if (all && cJSON_GetArraySize(all) != 1) return fail(c, path, "'allOf' with more than one member is not supported%s", "");
        body = compile_anyof(c, any ? any : all, path, any ? "anyOf" : "allOf");
    } else if (cJSON_GetObjectItemCaseSensitive(s, "enum") || cJSON_GetObjectItemCaseSensitive(s, "const")) {
        body = compile_enum(c, s, path);
    } else {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(s, "type");
        if (type && !cJSON_IsString(type) && !cJSON_IsArray(type)) return fail(c, path, "'type' must be a string or an array%s", "");
        if (cJSON_IsArray(type)) {
            int ids[8], k = 0;
            for (const cJSON *t = type->child; t; t = t->next) {
                if (!cJSON_IsString(t) || k == 8) return fail(c, path, "'type' must list at most 8 type names%s", "");
                if ((ids[k++] = compile_type(c, s, t->valuestring, path)) < 0) return -1;
            }
            if (k == 0) return fail(c, path, "'type' is an empty list%s", "");
            body = k == 1 ? ids[0] : list_node(c, GRAM_ANYOF, k, ids);
        } else {
            const char *t = type ? type->valuestring : implied_type(s);
            body = t ? compile_type(c, s, t, path) : compile(c, cJSON_GetObjectItemCaseSensitive(c->root, "\x01any"), path);
        }
    }
    if (body < 0) return -1;
    if (nullable && cJSON_IsTrue(nullable)) {
        int null_id = literal_node(c, "null");
        if (null_id < 0) return -1;
        int pair[2] = {body, null_id};
        body = list_node(c, GRAM_ANYOF, 2, pair);
        if (body < 0) return -1;
    }
    node(c, id)->kind = GRAM_REF;
    node(c, id)->target = body;
    return id;
}

/* The built-in "any JSON value" (schema `true` or `{}`). */
static int compile_any(struct comp *c, int id)
{
    int obj = new_node(c, GRAM_OBJECT), arr = new_node(c, GRAM_ARRAY), str = new_node(c, GRAM_STRING);
    int num = new_node(c, GRAM_NUMBER);
    char *bools[] = {"true", "false", "null"};
    int lits = literals_node(c, 3, bools);
    if (obj < 0 || arr < 0 || str < 0 || num < 0 || lits < 0) return -1;
    struct gram_node *o = node(c, obj);
    o->keys = calloc(1, sizeof *o->keys);
    o->key_len = calloc(1, sizeof(int));
    o->prop_node = calloc(1, sizeof(int));
    o->sorted = calloc(1, sizeof(int));
    o->req_after = calloc(1, sizeof(int));
    o->required = calloc(1, sizeof(bool));
    if (!o->keys || !o->key_len || !o->prop_node || !o->sorted || !o->req_after || !o->required)
        return fail(c, "", "out of memory%s", "");
    o->additional = id;
    node(c, arr)->items = id;
    node(c, arr)->min_items = 0;
    int alts[] = {obj, arr, str, num, lits};
    int any = list_node(c, GRAM_ANYOF, 5, alts);
    if (any < 0) return -1;
    node(c, id)->kind = GRAM_REF;
    node(c, id)->target = any;
    return id;
}

static int compile(struct comp *c, const cJSON *s, const char *path)
{
    if (c->failed) return -1;
    if (!s) { /* the "\x01any" lookups above: the built-in any-value node, made once */
        static const cJSON any_key; /* a unique address for the memo */
        int id = memo_find(c, &any_key);
        if (id >= 0) return id;
        if ((id = new_node(c, GRAM_REF)) < 0 || memo_add(c, &any_key, id)) return -1;
        return compile_any(c, id);
    }
    int id = memo_find(c, s);
    if (id >= 0) return id;
    if (cJSON_IsTrue(s)) return compile(c, NULL, path);
    if (cJSON_IsFalse(s)) return fail(c, path, "the schema 'false' has no instance%s", "");
    if (!cJSON_IsObject(s)) return fail(c, path, "a schema must be an object or a boolean%s", "");
    if ((id = new_node(c, GRAM_REF)) < 0 || memo_add(c, s, id)) return -1;
    return compile_body(c, s, path, id);
}

/* ---- checks on the whole graph ---------------------------------------------------------- */

int gram_resolve(const struct gram *g, int id)
{
    for (int hops = 0; id >= 0 && g->nodes[id].kind == GRAM_REF && hops <= g->n_nodes; hops++) id = g->nodes[id].target;
    return id;
}

/* Every node must have a finite instance (else a constrained model could never end) and no REF
 * or ANYOF cycle may lead back to itself without consuming a byte (it would never start). */
static int check_graph(struct comp *c)
{
    struct gram *g = c->g;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].kind == GRAM_REF && (gram_resolve(g, i) < 0 || g->nodes[gram_resolve(g, i)].kind == GRAM_REF))
            return fail(c, "", "a '$ref' cycle refers to itself without ever describing a value%s", "");
    bool *fin = calloc((size_t)g->n_nodes + 1, sizeof *fin);
    if (!fin) return fail(c, "", "out of memory%s", "");
    for (bool changed = true; changed;) {
        changed = false;
        for (int i = 0; i < g->n_nodes; i++) {
            if (fin[i]) continue;
            const struct gram_node *n = &g->nodes[i];
            bool f = true;
            if (n->kind == GRAM_REF) f = fin[n->target];
            else if (n->kind == GRAM_ARRAY) f = n->min_items == 0 || fin[n->items];
            else if (n->kind == GRAM_OBJECT)
                for (int k = 0; k < n->n_props; k++) f = f && (!n->required[k] || fin[n->prop_node[k]]);
            else if (n->kind == GRAM_ANYOF) {
                f = false;
                for (int k = 0; k < n->n; k++) f = f || fin[n->alts[k]];
            } else if (n->kind == GRAM_SEQ)
                for (int k = 0; k < n->n; k++) f = f && fin[n->alts[k]];
            if (f) fin[i] = changed = true;
        }
    }
    int bad = -1;
    for (int i = 0; i < g->n_nodes && bad < 0; i++)
        if (!fin[i]) bad = i;
    free(fin);
    if (bad >= 0) return fail(c, "", "a recursive schema has no finite instance (a required property or minItems always recurses)%s", "");
    return 0;
}

/* ---- entry points ----------------------------------------------------------------------- */

static struct gram *finish(struct comp *c, int root)
{
    if (root >= 0 && !c->failed) check_graph(c);
    free(c->memo_key);
    free(c->memo_node);
    if (root < 0 || c->failed) {
        gram_release(c->g);
        return NULL;
    }
    c->g->root = root;
    return c->g;
}

static bool start(struct comp *c, const cJSON *root, struct ms_err *err)
{
    *c = (struct comp){.root = root, .err = err};
    c->g = calloc(1, sizeof *c->g);
    if (!c->g) ms_err_set(err, MS_ERR_NOMEM, "out of memory compiling a schema");
    else c->g->refs = 1;
    return c->g != NULL;
}

struct gram *gram_compile_json_schema(const cJSON *schema, struct ms_err *err)
{
    struct comp c;
    if (!start(&c, schema, err)) return NULL;
    if (!cJSON_IsObject(schema) && !cJSON_IsBool(schema)) {
        fail(&c, "", "the schema must be a JSON object%s", "");
        return finish(&c, -1);
    }
    return finish(&c, compile(&c, schema, ""));
}

struct gram *gram_compile_json_object(struct ms_err *err)
{
    cJSON *s = cJSON_Parse("{\"type\":\"object\"}");
    if (!s) {
        ms_err_set(err, MS_ERR_NOMEM, "out of memory compiling a schema");
        return NULL;
    }
    struct gram *g = gram_compile_json_schema(s, err);
    cJSON_Delete(s);
    return g;
}

/* Each tool: SEQ("<tool_call>\n", object {name: const, arguments: params}, "\n</tool_call>"). */
struct gram *gram_compile_tool_call(int n, const char *const *names, const cJSON *const *params, struct ms_err *err)
{
    cJSON *wrap = cJSON_CreateArray(); /* one schema per tool, so $refs resolve inside their own */
    int ids[256], k = 0;
    struct comp c;
    if (!wrap || n < 1 || n > 256 || !start(&c, NULL, err)) {
        cJSON_Delete(wrap);
        if (n < 1 || n > 256) ms_err_set(err, MS_ERR_INVALID, "between 1 and 256 tools are supported");
        else ms_err_set(err, MS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    c.g->tool_call = true;
    for (; k < n && !c.failed; k++) {
        cJSON *obj = cJSON_CreateObject(), *props = cJSON_AddObjectToObject(obj, "properties");
        cJSON *name = cJSON_AddObjectToObject(props, "name");
        cJSON_AddStringToObject(name, "const", names[k]);
        cJSON_AddItemToObject(props, "arguments",
                              params[k] ? cJSON_Duplicate(params[k], 1) : cJSON_Parse("{\"type\":\"object\"}"));
        cJSON *req = cJSON_AddArrayToObject(obj, "required");
        cJSON_AddItemToArray(req, cJSON_CreateString("name"));
        cJSON_AddItemToArray(req, cJSON_CreateString("arguments"));
        cJSON_AddFalseToObject(obj, "additionalProperties");
        cJSON_AddStringToObject(obj, "type", "object");
        cJSON_AddItemToArray(wrap, obj);
        c.root = cJSON_GetObjectItemCaseSensitive(props, "arguments"); /* $ref "#" inside the parameters */
        int body = compile(&c, obj, "#/tools");
        int head = literal_node(&c, "<tool_call>\n"), tail = literal_node(&c, "\n</tool_call>");
        if (body < 0 || head < 0 || tail < 0) break;
        int parts[3] = {head, body, tail};
        ids[k] = list_node(&c, GRAM_SEQ, 3, parts);
    }
    int root = c.failed ? -1 : n == 1 ? ids[0] : list_node(&c, GRAM_ANYOF, n, ids);
    struct gram *g = finish(&c, root);
    cJSON_Delete(wrap);
    return g;
}

struct gram *gram_compile_choice(int n, const char *const *texts, struct ms_err *err)
{
    if (n < 1 || n > GRAM_MAX_ENUM) {
        ms_err_set(err, MS_ERR_INVALID, "between 1 and %d choices are supported, got %d", GRAM_MAX_ENUM, n);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        size_t len = strlen(texts[i]);
        if (len == 0 || len > GRAM_MAX_CHOICE_BYTES) {
            ms_err_set(err, MS_ERR_INVALID, "choice %d is %s", i, len ? "longer than 4096 bytes" : "empty");
            return NULL;
        }
    }
    struct comp c;
    if (!start(&c, NULL, err)) return NULL;
    c.g->raw = true;
    return finish(&c, literals_node(&c, n, (char **)texts));
}

struct gram *gram_compile_regex(const char *regex, struct ms_err *err)
{
    struct ms_err rerr = {{0}};
    struct gram_regex *re = gram_regex_compile(regex, strlen(regex), GRAM_RE_PYTHON, &rerr);
    if (!re) {
        ms_err_set(err, strstr(rerr.msg, "out of memory") ? MS_ERR_NOMEM : MS_ERR_INVALID, "%s", rerr.msg);
        return NULL;
    }
    struct comp c;
    if (!start(&c, NULL, err)) {
        gram_regex_free(re);
        return NULL;
    }
    c.g->raw = true;
    int id = new_node(&c, GRAM_REGEX);
    if (id < 0) gram_regex_free(re);
    else node(&c, id)->re = re;
    return finish(&c, id);
}

struct gram *gram_retain(struct gram *g)
{
    if (g) atomic_fetch_add(&g->refs, 1);
    return g;
}

void gram_release(struct gram *g)
{
    if (!g || atomic_fetch_sub(&g->refs, 1) > 1) return;
    for (int i = 0; i < g->n_nodes; i++) {
        struct gram_node *n = &g->nodes[i];
        for (int k = 0; n->keys && k < n->n_props; k++) free(n->keys[k]);
        for (int k = 0; n->lits && k < n->n; k++) free(n->lits[k]);
        free(n->keys);
        free(n->key_len);
        free(n->prop_node);
        free(n->sorted);
        free(n->req_after);
        free(n->required);
        free(n->lits);
        free(n->lit_len);
        free(n->alts);
        gram_regex_free(n->re);
    }
    free(g->nodes);
    free(g);
}
