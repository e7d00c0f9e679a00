/* Our side of the regex reference check (tests/grammar/regex_reference.mjs): reads one JSON
 * request per line on stdin and answers one line each on stdout.
 *
 *   {"re": R, "mode": "regex", "texts": [...], "samples": N}
 *       each text fed raw through gram_compile_regex(R) (guided_regex: a full match)
 *   {"re": R, "mode": "pattern", "texts": [...], "samples": N}
 *       each text is a JSON string literal fed through the schema {"type":"string","pattern":R}
 *       (with "minLength" / "maxLength" when the request has them; samples ignore those)
 *   -> {"verdicts": [bool...], "samples": [N random texts the DFA accepts]} or {"error": msg}
 *
 * The verdicts are compared against Python's re / JavaScript's RegExp by the script: nothing
 * here decides what is right. */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grammar/gram_match.h"
#include "grammar/gram_regex.h"
#include "grammar/gram_schema.h"

static uint64_t rng = 42;
static uint32_t next_rand(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng >> 33);
}

static bool accepts(const struct gram *g, const char *text)
{
    static struct gram_state s, scratch;
    gram_state_init(&s, g);
    return gram_state_feed_bytes(g, &s, (const uint8_t *)text, (int)strlen(text), &scratch) && gram_state_complete(g, &s);
}

/* A random walk through the DFA (no NUL bytes), stopping at accepting states now and then. */
static void sample(const struct gram_regex *re, char *out, int cap)
{
    int s = 0, n = 0;
    for (;;) {
        int cand[256], nc = 0;
        for (int b = 1; b < 256; b++)
            if (gram_regex_next(re, s, (uint8_t)b) >= 0) cand[nc++] = b;
        bool acc = gram_regex_accepting(re, s);
        if ((acc && (nc == 0 || next_rand() % 4 == 0 || n > cap - 8)) || nc == 0 || n >= cap - 5) break;
        int b = cand[next_rand() % (uint32_t)nc];
        out[n++] = (char)b;
        s = gram_regex_next(re, s, (uint8_t)b);
    }
    out[n] = 0;
    if (!gram_regex_accepting(re, s)) out[0] = 0; /* only ran out of room mid-way: drop it */
}

static cJSON *answer(const cJSON *req)
{
    cJSON *out = cJSON_CreateObject();
    const char *re_text = cJSON_GetStringValue(cJSON_GetObjectItem(req, "re"));
    const char *mode = cJSON_GetStringValue(cJSON_GetObjectItem(req, "mode"));
    bool pattern = mode && !strcmp(mode, "pattern");
    struct ms_err err = {{0}};
    struct gram *g = NULL;
    if (pattern) {
        cJSON *schema = cJSON_CreateObject();
        cJSON_AddStringToObject(schema, "type", "string");
        cJSON_AddStringToObject(schema, "pattern", re_text ? re_text : "");
        for (int k = 0; k < 2; k++) { /* optional lengths, passed on to the schema */
            const char *kw = k ? "maxLength" : "minLength";
            const cJSON *v = cJSON_GetObjectItem(req, kw);
            if (cJSON_IsNumber(v)) cJSON_AddNumberToObject(schema, kw, v->valuedouble);
        }
        g = gram_compile_json_schema(schema, &err);
        cJSON_Delete(schema);
    } else {
        g = gram_compile_regex(re_text ? re_text : "", &err);
    }
    struct gram_regex *re = g ? gram_regex_compile(re_text, strlen(re_text), pattern ? GRAM_RE_ECMA : GRAM_RE_PYTHON, &err) : NULL;
    if (!g || !re) {
        cJSON_AddStringToObject(out, "error", err.msg);
        gram_release(g);
        return out;
    }
    cJSON *verdicts = cJSON_AddArrayToObject(out, "verdicts"), *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItem(req, "texts"))
        cJSON_AddItemToArray(verdicts, cJSON_CreateBool(accepts(g, t->valuestring)));
    cJSON *samples = cJSON_AddArrayToObject(out, "samples");
    int n = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(req, "samples"));
    for (int i = 0; i < n; i++) {
        char buf[64];
        sample(re, buf, sizeof buf);
        cJSON_AddItemToArray(samples, cJSON_CreateString(buf));
    }
    cJSON_AddNumberToObject(out, "states", gram_regex_states(re));
    gram_regex_free(re);
    gram_release(g);
    return out;
}

int main(void)
{
    static char line[1 << 20];
    while (fgets(line, sizeof line, stdin)) {
        cJSON *req = cJSON_Parse(line);
        cJSON *out = req ? answer(req) : cJSON_CreateObject();
        char *text = cJSON_PrintUnformatted(out);
        puts(text ? text : "{}");
        fflush(stdout);
        free(text);
        cJSON_Delete(out);
        cJSON_Delete(req);
    }
    return 0;
}
