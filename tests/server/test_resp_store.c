/* The Responses store (server/resp_store.c): what comes back, and that both bounds hold (entry
 * count and bytes), oldest out first. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/resp_store.h"
#include "tests/testhelp.h"

static int has(struct resp_store *s, const char *id)
{
    char *c = resp_store_get(s, id, 0);
    free(c);
    return c != NULL;
}

int main(void)
{
    struct resp_store *s = resp_store_create();
    test_cond("created", s != NULL);
    resp_store_put(s, "resp_a", "[1]", "{\"id\":\"resp_a\"}");
    char *conv = resp_store_get(s, "resp_a", 0), *resp = resp_store_get(s, "resp_a", 1);
    test_cond("conversation back", conv && !strcmp(conv, "[1]"));
    test_cond("response back", resp && !strcmp(resp, "{\"id\":\"resp_a\"}"));
    free(conv), free(resp);
    test_cond("unknown id", resp_store_get(s, "resp_b", 0) == NULL);

    /* the entry bound: one more than the limit pushes the oldest out, and only it */
    char id[32];
    for (int i = 0; i < RESP_STORE_MAX_ENTRIES; i++) {
        snprintf(id, sizeof id, "r%d", i);
        resp_store_put(s, id, "[]", "{}");
    }
    test_cond("oldest evicted at the entry limit", !has(s, "resp_a"));
    test_cond("the next one kept", has(s, "r0"));
    test_cond("the newest kept", has(s, "r1023"));

    /* the byte bound: two entries of 40 MiB do not fit 64 MiB together */
    size_t n = (size_t)40 << 20;
    char *big = malloc(n + 1);
    memset(big, 'x', n);
    big[n] = 0;
    resp_store_put(s, "big1", big, "{}");
    test_cond("a 40 MiB entry kept", has(s, "big1"));
    resp_store_put(s, "big2", big, "{}");
    test_cond("the byte limit evicts the first big entry", !has(s, "big1") && has(s, "big2"));
    test_cond("and everything older", !has(s, "r1023"));
    free(big);

    /* an entry larger than the whole limit is not kept (and evicts nothing) */
    n = RESP_STORE_MAX_BYTES + 1;
    big = malloc(n + 1);
    memset(big, 'y', n);
    big[n] = 0;
    resp_store_put(s, "huge", big, "{}");
    free(big);
    test_cond("an entry over the limit is refused", !has(s, "huge") && has(s, "big2"));
    resp_store_destroy(s);
    test_report();
}
