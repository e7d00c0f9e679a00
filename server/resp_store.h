/* Stored Responses (store: true) for previous_response_id and GET /v1/responses/{id}: a bounded
 * in-memory map, oldest first out. At most RESP_STORE_MAX_ENTRIES responses and
 * RESP_STORE_MAX_BYTES bytes of stored text; a response bigger than the byte limit is not kept.
 * Nothing survives a restart. Thread-safe: one lock guards the whole store. */
#ifndef MS_SERVER_RESP_STORE_H
#define MS_SERVER_RESP_STORE_H

#include <stddef.h>

#define RESP_STORE_MAX_ENTRIES 1024
#define RESP_STORE_MAX_BYTES ((size_t)64 << 20)

struct resp_store;

struct resp_store *resp_store_create(void);
void resp_store_destroy(struct resp_store *s);

/* Keeps copies of the conversation (a JSON list of chat messages, this response's output
 * included) and of the response body under id; evicts the oldest entries to make room. */
void resp_store_put(struct resp_store *s, const char *id, const char *conversation, const char *response);

/* A malloc'd copy of the stored conversation (which = 0) or response body (which = 1); NULL
 * when the id is unknown (or evicted). */
char *resp_store_get(struct resp_store *s, const char *id, int which);

#endif
