/* Tokenizer benchmark: encodes every document of a JSON-lines corpus ({"text": ...}) on one
 * thread and prints MB/s and tokens/s. Not part of the test suite; see run.sh.
 * Usage: bench_tok MODEL_DIR CORPUS.jsonl [REPEATS=3] */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_tok MODEL_DIR CORPUS.jsonl [REPEATS]\n");
        return 2;
    }
    int repeats = argc > 3 ? atoi(argv[3]) : 3;
    struct ms_err err;
    double t0 = ms_now();
    struct tokenizer *tok = tok_load(argv[1], &err);
    if (!tok) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double load = ms_now() - t0;
    FILE *f = fopen(argv[2], "r");
    if (!f) {
        perror(argv[2]);
        return 1;
    }
    char **docs = NULL, *line = NULL;
    size_t *lens = NULL, n = 0, cap = 0, bytes = 0;
    ssize_t got;
    while ((got = getline(&line, &cap, f)) > 0) {
        cJSON *j = cJSON_ParseWithLength(line, (size_t)got);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "text");
        if (cJSON_IsString(t)) {
            docs = realloc(docs, (n + 1) * sizeof *docs);
            lens = realloc(lens, (n + 1) * sizeof *lens);
            docs[n] = strdup(t->valuestring);
            lens[n] = strlen(docs[n]);
            bytes += lens[n++];
        }
        cJSON_Delete(j);
    }
    free(line);
    fclose(f);
    double best = 1e30;
    size_t tokens = 0;
    for (int r = 0; r < repeats; r++) {
        tokens = 0;
        t0 = ms_now();
        for (size_t i = 0; i < n; i++) {
            int32_t *ids;
            size_t nid;
            if (tok_encode(tok, docs[i], lens[i], 1, &ids, &nid, &err)) {
                fprintf(stderr, "doc %zu: %s\n", i, err.msg);
                return 1;
            }
            tokens += nid;
            free(ids);
        }
        double dt = ms_now() - t0;
        if (dt < best) best = dt;
    }
    printf("moeserve: %zu docs, %.2f MB, %zu tokens, best of %d: %.3f s = %.1f MB/s, %.2f M tokens/s "
           "(load %.2f s)\n",
           n, bytes / 1e6, tokens, repeats, best, bytes / 1e6 / best, tokens / 1e6 / best, load);
    for (size_t i = 0; i < n; i++) free(docs[i]);
    free(docs);
    free(lens);
    tok_free(tok);
    return 0;
}
