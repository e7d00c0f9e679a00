#include "server/resp_store.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    char *id, *conv, *resp;
    size_t bytes;
};

/* A ring of entries in insertion order; lookups scan it (at most RESP_STORE_MAX_ENTRIES). */
struct resp_store {
    pthread_mutex_t lock; /* guards everything below */
    struct entry ring[RESP_STORE_MAX_ENTRIES];
    int head, n;          /* oldest at head */
    size_t bytes;
};

struct resp_store *resp_store_create(void)
{
    struct resp_store *s = calloc(1, sizeof *s);
    if (s) pthread_mutex_init(&s->lock, NULL);
    return s;
}

static void entry_free(struct entry *e)
{
    free(e->id), free(e->conv), free(e->resp);
    memset(e, 0, sizeof *e);
}

static void evict_oldest(struct resp_store *s)
{
    struct entry *e = &s->ring[s->head];
    s->bytes -= e->bytes;
    entry_free(e);
    s->head = (s->head + 1) % RESP_STORE_MAX_ENTRIES;
    s->n--;
}

void resp_store_destroy(struct resp_store *s)
{
    if (!s) return;
    while (s->n) evict_oldest(s);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

void resp_store_put(struct resp_store *s, const char *id, const char *conversation, const char *response)
{
    size_t bytes = strlen(id) + strlen(conversation) + strlen(response);
    if (!s || bytes > RESP_STORE_MAX_BYTES) return;
    struct entry e = {strdup(id), strdup(conversation), strdup(response), bytes};
    if (!e.id || !e.conv || !e.resp) {
        entry_free(&e);
        return;
    }
    pthread_mutex_lock(&s->lock);
    while (s->n && (s->n == RESP_STORE_MAX_ENTRIES || s->bytes + bytes > RESP_STORE_MAX_BYTES)) evict_oldest(s);
    s->ring[(s->head + s->n) % RESP_STORE_MAX_ENTRIES] = e;
    s->n++;
    s->bytes += bytes;
    pthread_mutex_unlock(&s->lock);
}

char *resp_store_get(struct resp_store *s, const char *id, int which)
{
    char *out = NULL;
    if (!s) return NULL;
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < s->n; i++) {
        const struct entry *e = &s->ring[(s->head + i) % RESP_STORE_MAX_ENTRIES];
        if (!strcmp(e->id, id)) {
            out = strdup(which ? e->resp : e->conv);
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return out;
}
