/* Unit tests of the chat-template interpreter: every small template of units.json must render
 * exactly as jinja2 renders it (or fail where jinja2 fails); templates with unsupported constructs
 * must fail at load with the construct and line; model directories with a bad or missing template
 * must fail with a clear message; renders from several threads at once must agree.
 * usage: test_tmpl_units PYTHON REFERENCE_PY UNITS_JSON OUT_JSON MODEL_DIR */
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/template/tmpl_testutil.h"
#include "tests/testhelp.h"

static int run_units(const char *units_path, const char *ref_path)
{
    cJSON *doc = load_json_file(units_path), *ref = load_json_file(ref_path);
    if (!doc || !ref) return -1;
    const cJSON *units = cJSON_GetObjectItemCaseSensitive(doc, "units"), *u, *r = ref->child;
    int total = 0, matched = 0;
    cJSON *empty = cJSON_CreateArray();
    cJSON_ArrayForEach (u, units) {
        const char *name = cJSON_GetObjectItemCaseSensitive(u, "name")->valuestring;
        const char *src = cJSON_GetObjectItemCaseSensitive(u, "template")->valuestring;
        const cJSON *vars = cJSON_GetObjectItemCaseSensitive(u, "vars");
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(r, "output");
        const cJSON *want_err = cJSON_GetObjectItemCaseSensitive(r, "error");
        struct ms_err err;
        char *out = NULL;
        size_t len = 0;
        int rc = -1, ok;
        struct chat_template *t = tmpl_load_string(src, strlen(src), name, &err);
        if (t) rc = tmpl_render_len(t, empty, NULL, 0, vars, &out, &len, &err);
        ok = judge_case(name, rc, err.msg, out, len, want, want_err);
        total++;
        matched += ok;
        test_cond(name, ok);
        free(out);
        tmpl_free(t);
        r = r ? r->next : NULL;
    }
    printf("%d/%d unit templates match jinja2\n", matched, total);
    cJSON_Delete(empty);
    cJSON_Delete(doc);
    cJSON_Delete(ref);
    return 0;
}

/* The template must fail to load with an error naming `what` and "line N". */
static void load_fails(const char *src, const char *what, int line)
{
    struct ms_err err = {{0}};
    struct chat_template *t = tmpl_load_string(src, strlen(src), "test", &err);
    char needle[32];
    snprintf(needle, sizeof needle, "line %d:", line);
    int ok = !t && strstr(err.msg, what) && strstr(err.msg, needle);
    if (!ok)
        fprintf(stderr, "  load of '%s' gave '%s', expected '%s' at %s\n", src,
                t ? "(loaded)" : err.msg, what, needle);
    else
        printf("ok load fails: %s\n", err.msg);
    test_cond("unsupported construct fails at load with its line", ok);
    tmpl_free(t);
}

static void load_failures(void)
{
    load_fails("{% macro f() %}x{% endmacro %}\n{{ g() }}", "unsupported function 'g'", 2);
    load_fails("a\nb\n{% if x %}\n{% call f() %}{% endcall %}{% endif %}", "call", 4);
    load_fails("\n{{ x|wordwrap }}", "unsupported filter 'wordwrap'", 2);
    load_fails("{{ x is foo }}", "unsupported test 'foo'", 1);
    load_fails("\n\n{{ l.append(1) }}", "unsupported method 'append'", 3);
    load_fails("{{ lipsum() }}", "unsupported function 'lipsum'", 1);
    load_fails("{% include 'x.j2' %}", "include", 1);
    load_fails("{% extends 'base' %}", "extends", 1);
    load_fails("{% for x in y recursive %}{% endfor %}", "recursive", 1);
    load_fails("{% if x %}\nno end", "or 'endif'", 2);
    load_fails("{% for x in y %}{% endif %}", "unexpected 'endif'", 1);
    load_fails("{{ 'unterminated }}", "string", 1);
    load_fails("{{ 1 + }}", "unexpected", 1);
    load_fails("{% break %}", "outside of a loop", 1);
    load_fails("{# open comment", "comment", 1);
    load_fails("{{ x @ y }}", "unexpected character '@'", 1);
    load_fails("{% frobnicate %}", "unknown statement 'frobnicate'", 1);
    load_fails("line1\n{{ range(*args) }}", "*args", 2);
    load_fails("{{ 'Hello %s' % name }}", "printf-style", 1);
}

static char tmpdir[256];

static void write_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void remove_file(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    unlink(path);
}

static char *render_simple(struct chat_template *t, const char *messages_json, struct ms_err *err)
{
    cJSON *m = cJSON_Parse(messages_json);
    char *out = NULL;
    tmpl_render(t, m, NULL, 1, NULL, &out, err);
    cJSON_Delete(m);
    return out;
}

static void model_dir_tests(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tmpl_test_%d", (int)getpid());
    mkdir(tmpdir, 0700);
    struct ms_err err = {{0}};
    struct chat_template *t;

    t = tmpl_load(tmpdir, &err);
    test_cond("empty dir fails",
              !t && strstr(err.msg, "no chat_template.jinja or tokenizer_config.json"));

    write_file("tokenizer_config.json", "{\"chat_template\": \"{{ x }\", ");
    t = tmpl_load(tmpdir, &err);
    test_cond("invalid tokenizer_config.json names the file and says invalid JSON",
              !t && strstr(err.msg, "tokenizer_config.json") && strstr(err.msg, "invalid JSON"));
    printf("bad config: %s\n", err.msg);

    write_file("tokenizer_config.json", "{\"eos_token\": \"</s>\"}");
    t = tmpl_load(tmpdir, &err);
    test_cond("config without chat_template fails", !t && strstr(err.msg, "no \"chat_template\""));
    printf("no template: %s\n", err.msg);

    write_file("tokenizer_config.json", "[1, 2]");
    t = tmpl_load(tmpdir, &err);
    test_cond("config that is not an object fails", !t && strstr(err.msg, "not a JSON object"));

    write_file("tokenizer_config.json",
               "{\"chat_template\": \"{% for m in messages %}\\n{{ m.content }}\\n{% endfor %}{% "
               "call x() %}{% endcall %}\"}");
    t = tmpl_load(tmpdir, &err);
    test_cond("unsupported construct in config template names file and line",
              !t && strstr(err.msg, "tokenizer_config.json") && strstr(err.msg, "line 3") &&
                  strstr(err.msg, "call"));
    printf("unsupported: %s\n", err.msg);

    write_file("tokenizer_config.json",
               "{\"chat_template\": \"{{ bos_token }}{% for m in messages %}{{ m.content }}{{ "
               "eos_token }}{% endfor %}\","
               " \"eos_token\": {\"content\": \"</s>\"}, \"bos_token\": \"<s>\"}");
    t = tmpl_load(tmpdir, &err);
    char *out = t ? render_simple(t, "[{\"role\":\"user\",\"content\":\"hi\"}]", &err) : NULL;
    test_cond("special tokens are template variables", out && !strcmp(out, "<s>hi</s>"));
    free(out);
    tmpl_free(t);

    write_file("tokenizer_config.json",
               "{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"T\"}, {\"name\": "
               "\"default\", \"template\": \"D\"}]}");
    t = tmpl_load(tmpdir, &err);
    out = t ? render_simple(t, "[]", &err) : NULL;
    test_cond("named template list picks default", out && !strcmp(out, "D"));
    free(out);
    tmpl_free(t);

    write_file("chat_template.jinja", "J{{ messages|length }}\n");
    t = tmpl_load(tmpdir, &err);
    out = t ? render_simple(t, "[1, 2]", &err) : NULL;
    test_cond("chat_template.jinja wins and loses its trailing newline", out && !strcmp(out, "J2"));
    free(out);
    tmpl_free(t);

    write_file("chat_template.jinja", "{{ raise_exception('No user message found') }}");
    t = tmpl_load(tmpdir, &err);
    out = t ? render_simple(t, "[]", &err) : (char *)1;
    test_cond("raise_exception is a render error with its message",
              !out && !strcmp(err.msg, "No user message found"));
    tmpl_free(t);

    write_file("chat_template.jinja", "{{ messages[0].content.nope.deeper }}");
    t = tmpl_load(tmpdir, &err);
    out = t ? render_simple(t, "[{\"content\": \"x\"}]", &err) : (char *)1;
    test_cond("undefined attribute of undefined is a render error with line",
              !out && strstr(err.msg, "line 1") && strstr(err.msg, "has no attribute 'nope'"));
    printf("runtime error: %s\n", err.msg);
    tmpl_free(t);

    remove_file("chat_template.jinja");
    remove_file("tokenizer_config.json");
    rmdir(tmpdir);
}

static void json_number_tests(void)
{
    const char *text = "[1, 1.0, -0.0, 1e2, 12345678901234567, {\"a\": [2.50]}]";
    struct ms_err err;
    cJSON *j = tmpl_json_parse(text, strlen(text), &err);
    struct chat_template *t = tmpl_load_string("{{ messages|tojson }}", 21, "json", &err);
    char *out = NULL;
    if (j && t) tmpl_render(t, j, NULL, 0, NULL, &out, &err);
    test_cond("tmpl_json_parse keeps ints and floats apart",
              out && !strcmp(out, "[1, 1.0, -0.0, 100.0, 12345678901234567, {\"a\": [2.5]}]"));
    if (out) printf("json numbers: %s\n", out);
    free(out);
    cJSON_Delete(j);
    j = cJSON_Parse("[1, 1.5, 3.0]"); /* plain cJSON: integral values are ints */
    out = NULL;
    if (j && t) tmpl_render(t, j, NULL, 0, NULL, &out, &err);
    test_cond("plain cJSON numbers: integral ones are ints", out && !strcmp(out, "[1, 1.5, 3]"));
    free(out);
    cJSON_Delete(j);
    test_cond("invalid JSON is rejected",
              tmpl_json_parse("[1,", 3, &err) == NULL && strstr(err.msg, "invalid JSON"));
    tmpl_free(t);
}

struct thread_arg {
    const struct chat_template *t;
    const cJSON *messages;
    const char *want;
    int ok;
};

static void *render_thread(void *p)
{
    struct thread_arg *a = p;
    a->ok = 1;
    for (int i = 0; i < 200; i++) {
        char *out = NULL;
        struct ms_err err;
        if (tmpl_render(a->t, a->messages, NULL, 1, NULL, &out, &err) || strcmp(out, a->want))
            a->ok = 0;
        free(out);
    }
    return NULL;
}

static void thread_tests(const char *model_dir)
{
    struct ms_err err;
    struct chat_template *t = tmpl_load(model_dir, &err);
    if (!t) {
        fprintf(stderr, "tmpl_load %s: %s\n", model_dir, err.msg);
        test_cond("model template loads", 0);
        return;
    }
    cJSON *m = cJSON_Parse(
        "[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"user\",\"content\":\"q\"},"
        "{\"role\":\"assistant\",\"content\":\"a\",\"reasoning_content\":\"r\"},"
        "{\"role\":\"user\",\"content\":\"q2\"}]");
    char *want = NULL;
    tmpl_render(t, m, NULL, 1, NULL, &want, &err);
    test_cond("model template renders", want != NULL);
    struct thread_arg args[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (struct thread_arg){.t = t, .messages = m, .want = want ? want : ""};
        pthread_create(&th[i], NULL, render_thread, &args[i]);
    }
    int ok = 1;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ok &= args[i].ok;
    }
    test_cond("concurrent renders of one template agree", ok);
    free(want);
    cJSON_Delete(m);
    tmpl_free(t);
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s PYTHON REFERENCE_PY UNITS_JSON OUT_JSON MODEL_DIR\n", argv[0]);
        return 2;
    }
    const char *ref_argv[] = {argv[1], argv[2], "units", argv[3], argv[4], NULL};
    if (run_reference(ref_argv)) return 1;
    if (run_units(argv[3], argv[4])) return 1;
    load_failures();
    model_dir_tests();
    json_number_tests();
    thread_tests(argv[5]);
    test_report();
}
