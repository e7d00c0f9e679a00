#include "engine/threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

/* One job at a time. `lock` guards generation, job fields and `stopping`; `next_task` and
 * `pending` are atomics so tasks are taken without the lock. */
struct threadpool {
    int n_threads;
    pthread_t *workers; /* [n_threads - 1] */
    float **scratch;    /* [n_threads] */
    pthread_mutex_t lock;
    pthread_cond_t wake; /* workers wait here for a new generation */
    pthread_cond_t done; /* the caller waits here for pending == 0 */
    unsigned long generation;
    int stopping;
    tp_task_fn fn;
    void *ctx;
    int n_tasks;
    atomic_int next_task;
    atomic_int pending; /* threads still working on the current job */
};

struct worker_arg {
    struct threadpool *tp;
    int thread;
};

static void run_tasks(struct threadpool *tp, int thread)
{
    for (;;) {
        int t = atomic_fetch_add(&tp->next_task, 1);
        if (t >= tp->n_tasks) break;
        tp->fn(tp->ctx, t, thread);
    }
}

static void *worker_main(void *p)
{
    struct worker_arg arg = *(struct worker_arg *)p;
    free(p);
    struct threadpool *tp = arg.tp;
    unsigned long seen = 0;
    for (;;) {
        pthread_mutex_lock(&tp->lock);
        while (tp->generation == seen && !tp->stopping) pthread_cond_wait(&tp->wake, &tp->lock);
        if (tp->stopping) {
            pthread_mutex_unlock(&tp->lock);
            return NULL;
        }
        seen = tp->generation;
        pthread_mutex_unlock(&tp->lock);
        run_tasks(tp, arg.thread);
        if (atomic_fetch_sub(&tp->pending, 1) == 1) {
            pthread_mutex_lock(&tp->lock);
            pthread_cond_signal(&tp->done);
            pthread_mutex_unlock(&tp->lock);
        }
    }
}

struct threadpool *tp_create(int n_threads, size_t scratch_floats, struct ms_err *err)
{
    if (n_threads < 1) n_threads = 1;
    struct threadpool *tp = calloc(1, sizeof *tp);
    if (!tp) goto nomem;
    tp->n_threads = n_threads;
    pthread_mutex_init(&tp->lock, NULL);
    pthread_cond_init(&tp->wake, NULL);
    pthread_cond_init(&tp->done, NULL);
    tp->scratch = ms_calloc((size_t)n_threads, sizeof *tp->scratch);
    tp->workers = ms_calloc((size_t)n_threads, sizeof *tp->workers);
    if (!tp->scratch || !tp->workers) goto nomem;
    for (int i = 0; i < n_threads; i++)
        if (!(tp->scratch[i] = aligned_alloc(64, ((scratch_floats * sizeof(float) + 63) / 64 + 1) * 64))) goto nomem;
    for (int i = 1; i < n_threads; i++) {
        struct worker_arg *arg = malloc(sizeof *arg);
        if (!arg) goto nomem;
        *arg = (struct worker_arg){tp, i};
        if (pthread_create(&tp->workers[i - 1], NULL, worker_main, arg) != 0) {
            free(arg);
            tp->n_threads = i; /* destroy joins only the started ones */
            tp_destroy(tp);
            ms_err_set(err, MS_ERR_INTERNAL, "could not start compute thread %d", i);
            return NULL;
        }
    }
    return tp;
nomem:
    if (tp) tp->n_threads = 1;
    tp_destroy(tp);
    ms_err_set(err, MS_ERR_NOMEM, "out of memory creating the thread pool");
    return NULL;
}

void tp_destroy(struct threadpool *tp)
{
    if (!tp) return;
    pthread_mutex_lock(&tp->lock);
    tp->stopping = 1;
    pthread_cond_broadcast(&tp->wake);
    pthread_mutex_unlock(&tp->lock);
    for (int i = 1; i < tp->n_threads; i++) pthread_join(tp->workers[i - 1], NULL);
    if (tp->scratch)
        for (int i = 0; i < tp->n_threads; i++) free(tp->scratch[i]);
    free(tp->scratch);
    free(tp->workers);
    pthread_mutex_destroy(&tp->lock);
    pthread_cond_destroy(&tp->wake);
    pthread_cond_destroy(&tp->done);
    free(tp);
}

int tp_size(const struct threadpool *tp)
{
    return tp->n_threads;
}

float *tp_scratch(struct threadpool *tp, int thread)
{
    return tp->scratch[thread];
}

void tp_run(struct threadpool *tp, int n_tasks, tp_task_fn fn, void *ctx)
{
    if (n_tasks <= 0) return;
    if (tp->n_threads == 1 || n_tasks == 1) {
        for (int t = 0; t < n_tasks; t++) fn(ctx, t, 0);
        return;
    }
    pthread_mutex_lock(&tp->lock);
    tp->fn = fn;
    tp->ctx = ctx;
    tp->n_tasks = n_tasks;
    atomic_store(&tp->next_task, 0);
    atomic_store(&tp->pending, tp->n_threads - 1);
    tp->generation++;
    pthread_cond_broadcast(&tp->wake);
    pthread_mutex_unlock(&tp->lock);
    run_tasks(tp, 0);
    pthread_mutex_lock(&tp->lock);
    while (atomic_load(&tp->pending) > 0) pthread_cond_wait(&tp->done, &tp->lock);
    pthread_mutex_unlock(&tp->lock);
}
