/* Chat-template API: loading from a model directory, rendering with transformers' variables, and a
 * JSON parser that keeps number literals (1 vs 1.0). */
#include "tokenizer/chat_template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tokenizer/tmpl_internal.h"

const char *tmpl_source(const struct chat_template *t) { return t ? t->source : NULL; }

void tmpl_free(struct chat_template *t)
{
    if (!t) return;
    ta_free(&t->arena);
    free(t->source);
    cJSON_Delete(t->special);
    free(t);
}

struct chat_template *tmpl_load_string(const char *source, size_t len, const char *name,
                                       struct ms_err *err)
{
    struct chat_template *t = calloc(1, sizeof *t);
    if (!t) {
        ms_err_set(err, MS_ERR_NOMEM, "out of memory loading chat template");
        return NULL;
    }
    /* jinja2: \r\n and \r become \n, and one trailing newline is dropped (keep_trailing_newline
     * is off) */
    t->source = malloc(len + 1);
    if (!t->source) {
        free(t);
        ms_err_set(err, MS_ERR_NOMEM, "out of memory loading chat template");
        return NULL;
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (source[i] == '\r') {
            t->source[n++] = '\n';
            if (i + 1 < len && source[i + 1] == '\n') i++;
        } else {
            t->source[n++] = source[i];
        }
    }
    if (n && t->source[n - 1] == '\n') n--;
    t->source[n] = 0;

    struct tk_list toks = {0};
    int rc = tmpl_lex(&t->arena, t->source, n, &toks, err);
    if (!rc) rc = tmpl_parse(t, &toks, err);
    free(toks.v);
    if (rc) {
        if (name) ms_err_prefix(err, "%s", name);
        tmpl_free(t);
        return NULL;
    }
    return t;
}

static cJSON *special_tokens(const cJSON *cfg)
{
    static const char *const keys[] = {"bos_token", "eos_token", "unk_token",  "sep_token",
                                       "pad_token", "cls_token", "mask_token", NULL};
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    for (int i = 0; keys[i]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, keys[i]);
        if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
        if (cJSON_IsString(v)) cJSON_AddStringToObject(o, keys[i], v->valuestring);
    }
    const cJSON *add = cJSON_GetObjectItemCaseSensitive(cfg, "additional_special_tokens");
    if (cJSON_IsArray(add)) {
        cJSON *arr = cJSON_AddArrayToObject(o, "additional_special_tokens");
        const cJSON *e;
        cJSON_ArrayForEach (e, add) {
            const cJSON *v = cJSON_IsObject(e) ? cJSON_GetObjectItemCaseSensitive(e, "content") : e;
            if (arr && cJSON_IsString(v))
                cJSON_AddItemToArray(arr, cJSON_CreateString(v->valuestring));
        }
    }
    return o;
}

/* Adds name = the text of token id (if id is one) to o. */
static int add_token_var(cJSON *o, const char *name, const struct tok_vocab *v, int64_t id)
{
    if (id < 0 || (uint64_t)id >= v->n_tokens || !v->tokens[id].p) return 0;
    const struct tok_str s = v->tokens[id];
    char *text = malloc(s.len + 1);
    if (!text) return MS_ERR_NOMEM;
    memcpy(text, s.p, s.len);
    text[s.len] = 0;
    cJSON *item = cJSON_CreateString(text);
    free(text);
    if (!item) return MS_ERR_NOMEM;
    cJSON_AddItemToObject(o, name, item);
    return 0;
}

struct chat_template *tmpl_load_gguf(const char *source, size_t len, const struct tok_vocab *v,
                                     struct ms_err *err)
{
    struct chat_template *t = tmpl_load_string(source, len, "tokenizer.chat_template", err);
    if (!t) return NULL;
    t->special = cJSON_CreateObject();
    if (!t->special || add_token_var(t->special, "eos_token", v, v->eos_id) ||
        add_token_var(t->special, "pad_token", v, v->pad_id) ||
        (v->add_bos == 1 && add_token_var(t->special, "bos_token", v, v->bos_id))) {
        tmpl_free(t);
        ms_err_set(err, MS_ERR_NOMEM, "out of memory loading chat template");
        return NULL;
    }
    return t;
}

struct chat_template *tmpl_load(const char *model_dir, struct ms_err *err)
{
    char path[4096], cfg_path[4096];
    snprintf(path, sizeof path, "%s/chat_template.jinja", model_dir);
    snprintf(cfg_path, sizeof cfg_path, "%s/tokenizer_config.json", model_dir);
    char *text = NULL, *cfg_text = NULL;
    size_t len = 0, cfg_len = 0;
    cJSON *cfg = NULL;
    struct stat st;
    int have_jinja = stat(path, &st) == 0;
    if (stat(cfg_path, &st) == 0) {
        if (ms_read_file(cfg_path, &cfg_text, &cfg_len, err)) return NULL;
        const char *end = NULL;
        cfg = cJSON_ParseWithLengthOpts(cfg_text, cfg_len, &end, 0);
        if (!cfg || !cJSON_IsObject(cfg)) {
            size_t off = (end && end >= cfg_text && end <= cfg_text + cfg_len)
                             ? (size_t)(end - cfg_text)
                             : 0;
            ms_err_set(err, MS_ERR_INVALID, "%s: %s", cfg_path,
                       cfg ? "not a JSON object" : "invalid JSON");
            if (!cfg) {
                char tmp[64];
                snprintf(tmp, sizeof tmp, " near byte %zu", off);
                size_t l = strlen(err ? err->msg : "");
                if (err && l + strlen(tmp) < sizeof err->msg) strcat(err->msg, tmp);
            }
            cJSON_Delete(cfg);
            free(cfg_text);
            return NULL;
        }
    } else if (!have_jinja) {
        ms_err_set(err, MS_ERR_IO, "%s: no chat_template.jinja or tokenizer_config.json",
                   model_dir);
        return NULL;
    }
    struct chat_template *t = NULL;
    if (have_jinja) {
        if (ms_read_file(path, &text, &len, err)) goto out;
        t = tmpl_load_string(text, len, path, err);
    } else {
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
        if (cJSON_IsArray(ct)) {
            const cJSON *e, *found = NULL;
            cJSON_ArrayForEach (e, ct) {
                const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name");
                if (cJSON_IsString(nm) && !strcmp(nm->valuestring, "default"))
                    found = cJSON_GetObjectItemCaseSensitive(e, "template");
            }
            ct = found;
        }
        if (!cJSON_IsString(ct)) {
            ms_err_set(err, MS_ERR_INVALID,
                       "%s: no \"chat_template\" string (and no chat_template.jinja)", cfg_path);
            goto out;
        }
        char label[4200];
        snprintf(label, sizeof label, "%s: chat_template", cfg_path);
        t = tmpl_load_string(ct->valuestring, strlen(ct->valuestring), label, err);
    }
    if (t && cfg) {
        t->special = special_tokens(cfg);
        if (!t->special) {
            tmpl_free(t);
            t = NULL;
            ms_err_set(err, MS_ERR_NOMEM, "out of memory loading chat template");
        }
    }
out:
    free(text);
    free(cfg_text);
    cJSON_Delete(cfg);
    return t;
}

static int set_var(struct tarena *a, struct tdict *vars, const char *name, struct tv v)
{
    return td_set(a, vars, tv_str(name, strlen(name)), v);
}

int tmpl_render_len(const struct chat_template *t, const cJSON *messages, const cJSON *tools,
                    int add_generation_prompt, const cJSON *kwargs, char **out, size_t *out_len,
                    struct ms_err *err)
{
    *out = NULL;
    if (out_len) *out_len = 0;
    if (!t) return ms_err_set(err, MS_ERR_INVALID, "no chat template loaded");
    if (!cJSON_IsArray(messages))
        return ms_err_set(err, MS_ERR_INVALID, "messages must be a JSON array");
    if (tools && !cJSON_IsArray(tools) && !cJSON_IsNull(tools))
        return ms_err_set(err, MS_ERR_INVALID, "tools must be a JSON array");
    if (kwargs && !cJSON_IsObject(kwargs) && !cJSON_IsNull(kwargs))
        return ms_err_set(err, MS_ERR_INVALID, "chat template kwargs must be a JSON object");
    /* transformers: render(messages=..., **kwargs) with a second "messages" is a TypeError */
    if (kwargs && cJSON_GetObjectItemCaseSensitive(kwargs, "messages"))
        return ms_err_set(err, MS_ERR_INVALID, "chat template kwargs may not set \"messages\"");
    struct tarena a = {0};
    struct tbuf b = {0};
    int rc = 0;
    struct tdict *vars = td_new(&a, 16);
    if (!vars) {
        rc = ms_err_set(err, MS_ERR_NOMEM, "out of memory rendering template");
        goto done;
    }
    if (t->special) {
        const cJSON *e;
        cJSON_ArrayForEach (e, t->special) set_var(&a, vars, e->string, tv_from_json(&a, e));
    }
    set_var(&a, vars, "messages", tv_from_json(&a, messages));
    set_var(&a, vars, "tools", tools && cJSON_IsArray(tools) ? tv_from_json(&a, tools) : tv_none());
    set_var(&a, vars, "documents", tv_none());
    set_var(&a, vars, "add_generation_prompt", tv_bool(add_generation_prompt));
    if (kwargs && cJSON_IsObject(kwargs)) {
        const cJSON *e;
        cJSON_ArrayForEach (e, kwargs)
            set_var(&a, vars, e->string ? e->string : "", tv_from_json(&a, e));
    }
    if (a.oom) {
        rc = ms_err_set(err, MS_ERR_NOMEM, "out of memory rendering template");
        goto done;
    }
    rc = tmpl_exec(t, vars, &a, &b, err);
    if (!rc && b.oom) rc = ms_err_set(err, MS_ERR_NOMEM, "out of memory rendering template");
done:
    ta_free(&a);
    if (rc) {
        free(b.p);
        return rc;
    }
    if (!b.p) {
        b.p = calloc(1, 1);
        if (!b.p) return ms_err_set(err, MS_ERR_NOMEM, "out of memory rendering template");
    }
    *out = b.p;
    if (out_len) *out_len = b.n;
    return 0;
}

int tmpl_render(const struct chat_template *t, const cJSON *messages, const cJSON *tools,
                int add_generation_prompt, const cJSON *kwargs, char **out, struct ms_err *err)
{
    return tmpl_render_len(t, messages, tools, add_generation_prompt, kwargs, out, NULL, err);
}

/* ---- JSON with number literals ---- */
struct numlits {
    const char **p;
    size_t *n;
    size_t cnt, cap, next;
};

static int collect_numbers(const char *s, size_t len, struct numlits *nl)
{
    for (size_t i = 0; i < len;) {
        char c = s[i];
        if (c == '"') {
            i++;
            while (i < len && s[i] != '"') i += s[i] == '\\' ? 2 : 1;
            i++;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            size_t j = i;
            while (j < len && (strchr("+-.eE", s[j]) || (s[j] >= '0' && s[j] <= '9'))) j++;
            if (nl->cnt == nl->cap) {
                size_t cap = nl->cap ? nl->cap * 2 : 64;
                const char **p = realloc(nl->p, cap * sizeof *p);
                if (!p) return -1;
                nl->p = p;
                size_t *n = realloc(nl->n, cap * sizeof *n);
                if (!n) return -1;
                nl->n = n;
                nl->cap = cap;
            }
            nl->p[nl->cnt] = s + i;
            nl->n[nl->cnt++] = j - i;
            i = j;
        } else {
            i++;
        }
    }
    return 0;
}

static int annotate(cJSON *j, struct numlits *nl)
{
    if (cJSON_IsNumber(j)) {
        if (nl->next >= nl->cnt) return -1;
        size_t k = nl->next++;
        if (!j->valuestring) {
            j->valuestring = cJSON_malloc(nl->n[k] + 1);
            if (!j->valuestring) return -1;
            memcpy(j->valuestring, nl->p[k], nl->n[k]);
            j->valuestring[nl->n[k]] = 0;
        }
        return 0;
    }
    cJSON *c;
    cJSON_ArrayForEach (c, j)
        if (annotate(c, nl)) return -1;
    return 0;
}

cJSON *tmpl_json_parse(const char *text, size_t len, struct ms_err *err)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!j) {
        size_t off = (end && end >= text && end <= text + len) ? (size_t)(end - text) : 0;
        ms_err_set(err, MS_ERR_INVALID, "invalid JSON near byte %zu", off);
        return NULL;
    }
    if (end) {
        while (end < text + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
            end++;
        if (end < text + len && *end) {
            ms_err_set(err, MS_ERR_INVALID, "invalid JSON: trailing data at byte %zu",
                       (size_t)(end - text));
            cJSON_Delete(j);
            return NULL;
        }
    }
    struct numlits nl = {0};
    int ok = collect_numbers(text, len, &nl) == 0 && annotate(j, &nl) == 0 && nl.next == nl.cnt;
    free(nl.p);
    free(nl.n);
    if (!ok) {
        /* numbers could not be matched to literals (should not happen): drop the annotations */
        cJSON_Delete(j);
        j = cJSON_ParseWithLengthOpts(text, len, NULL, 0);
        if (!j) ms_err_set(err, MS_ERR_NOMEM, "out of memory parsing JSON");
    }
    return j;
}
