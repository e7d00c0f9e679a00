#include "grammar/gram_cache.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    char *key;
    struct gram *g;
    uint64_t used; /* tick of the last lookup or insertion */
};

struct gram_cache {
    pthread_mutex_t lock;
    struct entry *e;
    int n, cap;
    uint64_t tick;
};

struct gram_cache *gram_cache_create(int cap)
{
    struct gram_cache *c = calloc(1, sizeof *c);
    if (!c || cap < 1 || !(c->e = calloc((size_t)cap, sizeof *c->e))) {
        free(c);
        return NULL;
    }
    c->cap = cap;
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

void gram_cache_destroy(struct gram_cache *c)
{
    if (!c) return;
    for (int i = 0; i < c->n; i++) {
        free(c->e[i].key);
        gram_release(c->e[i].g);
    }
    free(c->e);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

struct gram *gram_cache_get(struct gram_cache *c, const char *key)
{
    struct gram *g = NULL;
    pthread_mutex_lock(&c->lock);
    for (int i = 0; i < c->n && !g; i++)
        if (!strcmp(c->e[i].key, key)) {
            c->e[i].used = ++c->tick;
            g = gram_retain(c->e[i].g);
        }
    pthread_mutex_unlock(&c->lock);
    return g;
}

void gram_cache_put(struct gram_cache *c, const char *key, struct gram *g)
{
    char *k = strdup(key);
    if (!k) return; /* not cached: only costs a compile next time */
    pthread_mutex_lock(&c->lock);
    int slot = -1;
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->e[i].key, key)) slot = -2;
    if (slot == -1 && c->n < c->cap) slot = c->n++;
    else if (slot == -1) {
        slot = 0;
        for (int i = 1; i < c->n; i++)
            if (c->e[i].used < c->e[slot].used) slot = i;
        free(c->e[slot].key);
        gram_release(c->e[slot].g);
    }
    if (slot >= 0) {
        c->e[slot] = (struct entry){k, gram_retain(g), ++c->tick};
        k = NULL;
    }
    pthread_mutex_unlock(&c->lock);
    free(k);
}
