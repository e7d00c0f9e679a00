/* Compiled grammars by the text they were compiled from, so a schema sent with every request is
 * compiled once. Bounded: at most `cap` grammars; the least recently used goes first. Entries
 * hold a reference; what a lookup returns is the caller's own reference. Any thread. */
#ifndef MS_GRAMMAR_GRAM_CACHE_H
#define MS_GRAMMAR_GRAM_CACHE_H

#include "grammar/gram_schema.h"

struct gram_cache;

struct gram_cache *gram_cache_create(int cap); /* NULL on allocation failure */
void gram_cache_destroy(struct gram_cache *c); /* NULL allowed */

/* A new reference to the grammar cached under key, or NULL. */
struct gram *gram_cache_get(struct gram_cache *c, const char *key);

/* Caches g under key (takes its own reference; a key already present keeps its grammar). */
void gram_cache_put(struct gram_cache *c, const char *key, struct gram *g);

#endif
