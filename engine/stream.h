/* A request's output: a thread-safe queue of events from the engine thread to whoever consumes
 * the request (an HTTP connection, the CLI). Shared by reference count: the engine holds one
 * reference until it has pushed the final event, the consumer holds one until it is done.
 *
 * Every accepted request ends with exactly one final event (finish != FINISH_NONE), which
 * carries the usage. Token events come before it in generation order. */
#ifndef MS_ENGINE_STREAM_H
#define MS_ENGINE_STREAM_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/sampler.h"

enum finish_reason {
    FINISH_NONE = 0, /* a token event */
    FINISH_STOP,     /* an end-of-sequence or stop token (not emitted as a token) */
    FINISH_LENGTH,   /* max_tokens or the context length */
    FINISH_ABORT,    /* cancelled (engine_abort, or engine shutdown) */
    FINISH_ERROR,    /* the engine failed on this request; see `error` */
};

const char *finish_reason_name(enum finish_reason r);

struct stream_event {
    enum finish_reason finish;
    int32_t token;             /* token events: the new token id */
    struct sample_result sample; /* logprob data when requested */
    double queue_time;         /* seconds from submit to first scheduled step (token and final events) */
    /* final event: usage */
    int prompt_tokens, completion_tokens, cached_tokens;
    char error[160];
};

struct stream;

/* A new stream with one reference (the caller's). NULL on allocation failure. */
struct stream *stream_create(void);
void stream_retain(struct stream *s);
void stream_release(struct stream *s); /* frees on the last reference */

/* Engine side: appends an event and wakes the consumer (and calls the notify hook). */
void stream_push(struct stream *s, const struct stream_event *ev);

/* Consumer side: takes the oldest event. Waits up to timeout_s (< 0: forever, 0: no wait).
 * Returns true if an event was taken. */
bool stream_pop(struct stream *s, struct stream_event *out, double timeout_s);

/* Consumer side: a hook called (from the engine thread, without the stream's lock) after each
 * push, e.g. to resume a suspended HTTP connection. NULL clears it; clearing waits for a hook
 * call in progress to return, so `arg` may be freed afterwards. */
void stream_set_notify(struct stream *s, void (*fn)(void *arg), void *arg);

#endif
