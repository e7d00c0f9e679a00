/* Renders every conversation of cases.json with the model's chat template, both with jinja2 as
 * transformers sets it up (reference.py) and with the C interpreter, and requires byte equality
 * (or an error from both).
 * usage: test_tmpl_cases PYTHON REFERENCE_PY MODEL_DIR CASES_JSON OUT_JSON */
#include "tests/template/tmpl_testutil.h"
#include "tests/testhelp.h"

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: %s PYTHON REFERENCE_PY MODEL_DIR CASES_JSON OUT_JSON\n", argv[0]);
        return 2;
    }
    const char *ref_argv[] = {argv[1], argv[2], "cases", argv[3], argv[4], argv[5], NULL};
    if (run_reference(ref_argv)) return 1;
    struct ms_err err;
    struct chat_template *t = tmpl_load(argv[3], &err);
    if (!t) {
        fprintf(stderr, "tmpl_load: %s\n", err.msg);
        return 1;
    }
    cJSON *cases_doc = load_json_file(argv[4]), *ref = load_json_file(argv[5]);
    if (!cases_doc || !ref) return 1;
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(cases_doc, "cases");
    test_cond("reference has one result per case",
              cJSON_GetArraySize(cases) == cJSON_GetArraySize(ref));
    int total = 0, matched = 0;
    const cJSON *c, *r = ref->child;
    cJSON_ArrayForEach (c, cases) {
        if (!r) break;
        const char *name = cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring;
        const cJSON *tools = cJSON_GetObjectItemCaseSensitive(c, "tools");
        const cJSON *agp = cJSON_GetObjectItemCaseSensitive(c, "add_generation_prompt");
        const cJSON *kw = cJSON_GetObjectItemCaseSensitive(c, "chat_template_kwargs");
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(r, "output");
        const cJSON *want_err = cJSON_GetObjectItemCaseSensitive(r, "error");
        char *out = NULL;
        size_t len = 0;
        int rc = tmpl_render_len(t, cJSON_GetObjectItemCaseSensitive(c, "messages"), tools,
                                 cJSON_IsTrue(agp), kw, &out, &len, &err);
        int ok = judge_case(name, rc, err.msg, out, len, want, want_err);
        total++;
        matched += ok;
        test_cond(name, ok);
        free(out);
        r = r->next;
    }
    printf("%d/%d conversations match jinja2\n", matched, total);
    test_cond("at least 40 conversations", total >= 40);
    cJSON_Delete(cases_doc);
    cJSON_Delete(ref);
    tmpl_free(t);
    test_report();
}
