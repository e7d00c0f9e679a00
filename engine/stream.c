#include "engine/stream.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* `lock` guards the queue, the notify hook and `notifying`; refs is atomic. */
struct stream {
    atomic_int refs;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct stream_event *events; /* ring buffer, grown by doubling */
    int cap, head, count;
    void (*notify)(void *);
    void *notify_arg;
    int notifying;               /* hook calls in progress */
    pthread_cond_t notify_done;
};

const char *finish_reason_name(enum finish_reason r)
{
    switch (r) {
    case FINISH_NONE: return "none";
    case FINISH_STOP: return "stop";
    case FINISH_LENGTH: return "length";
    case FINISH_ABORT: return "abort";
    case FINISH_ERROR: return "error";
    }
    return "?";
}

struct stream *stream_create(void)
{
    struct stream *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->cap = 16;
    if (!(s->events = malloc((size_t)s->cap * sizeof *s->events))) {
        free(s);
        return NULL;
    }
    atomic_init(&s->refs, 1);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    pthread_cond_init(&s->notify_done, NULL);
    return s;
}

void stream_retain(struct stream *s)
{
    atomic_fetch_add(&s->refs, 1);
}

void stream_release(struct stream *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1) return;
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    pthread_cond_destroy(&s->notify_done);
    free(s->events);
    free(s);
}

/* Doubles the ring. On allocation failure the event is dropped unless it is final, in which case
 * the newest queued token event is overwritten: the consumer must always see the end. */
static bool grow(struct stream *s)
{
    struct stream_event *ev = malloc((size_t)s->cap * 2 * sizeof *ev);
    if (!ev) return false;
    for (int i = 0; i < s->count; i++) ev[i] = s->events[(s->head + i) % s->cap];
    free(s->events);
    s->events = ev;
    s->head = 0;
    s->cap *= 2;
    return true;
}

void stream_push(struct stream *s, const struct stream_event *ev)
{
    pthread_mutex_lock(&s->lock);
    bool room = s->count < s->cap || grow(s);
    if (room)
        s->events[(s->head + s->count++) % s->cap] = *ev;
    else if (ev->finish != FINISH_NONE)
        s->events[(s->head + s->count - 1) % s->cap] = *ev;
    pthread_cond_signal(&s->cond);
    void (*fn)(void *) = s->notify;
    void *arg = s->notify_arg;
    if (fn) s->notifying++;
    pthread_mutex_unlock(&s->lock);
    if (!fn) return;
    fn(arg);
    pthread_mutex_lock(&s->lock);
    if (--s->notifying == 0) pthread_cond_broadcast(&s->notify_done);
    pthread_mutex_unlock(&s->lock);
}

bool stream_pop(struct stream *s, struct stream_event *out, double timeout_s)
{
    pthread_mutex_lock(&s->lock);
    if (s->count == 0 && timeout_s != 0) {
        if (timeout_s < 0) {
            while (s->count == 0) pthread_cond_wait(&s->cond, &s->lock);
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            double whole = floor(timeout_s);
            ts.tv_sec += (time_t)whole;
            ts.tv_nsec += (long)((timeout_s - whole) * 1e9);
            if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
            while (s->count == 0)
                if (pthread_cond_timedwait(&s->cond, &s->lock, &ts) == ETIMEDOUT) break;
        }
    }
    bool got = s->count > 0;
    if (got) {
        *out = s->events[s->head];
        s->head = (s->head + 1) % s->cap;
        s->count--;
    }
    pthread_mutex_unlock(&s->lock);
    return got;
}

void stream_set_notify(struct stream *s, void (*fn)(void *arg), void *arg)
{
    pthread_mutex_lock(&s->lock);
    s->notify = fn;
    s->notify_arg = arg;
    while (!fn && s->notifying > 0) pthread_cond_wait(&s->notify_done, &s->lock);
    pthread_mutex_unlock(&s->lock);
}
