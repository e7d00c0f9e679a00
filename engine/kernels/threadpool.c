#include "engine/kernels/threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

/* One job at a time, described by `state`: the job's generation (high 32 bits), a CLOSED bit
 * and the number of workers that joined it (low bits). The caller writes the job fields, then
 * publishes a new generation; a worker that sees it joins by incrementing the count (only while
 * the job is open and still that generation), takes tasks from the shared counter, and leaves by
 * decrementing. When the caller runs out of tasks it closes the job and waits only for the
 * workers that joined: a worker the OS has not scheduled (the 2 cores are shared) never holds
 * the step up, it finds the next job when it runs.
 *
 * Workers spin on `state` for a while (TP_SPIN rounds) before sleeping on `wake`, so the
 * hundreds of tp_runs of a decode step cost no futex round trip; the caller spins likewise
 * before sleeping on `done`. Sleepers register (`sleepers`, `caller_sleeping`) before
 * re-checking under `lock`, and the other side checks the flag after its atomic update (all
 * sequentially consistent), so no wake-up is lost. */
struct threadpool {
    int n_threads;
    pthread_t *workers; /* [n_threads - 1] */
    float **scratch;    /* [n_threads] */
    pthread_mutex_t lock;
    pthread_cond_t wake; /* workers wait here for a new generation */
    pthread_cond_t done; /* the caller waits here for the joined workers to leave */
    atomic_ullong state;
    atomic_int stopping;
    atomic_int sleepers;        /* workers asleep (or about to be) on `wake` */
    atomic_int caller_sleeping; /* the caller asleep (or about to be) on `done` */
    tp_task_fn fn;
    void *ctx;
    int n_tasks;
    atomic_int next_task;
};

#define TP_CLOSED (1ull << 31)
#define TP_JOINED_MASK (TP_CLOSED - 1)
#define TP_GEN(s) ((s) >> 32)

/* About 50-100 us of spinning on current CPUs. */
#define TP_SPIN 20000

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

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

/* Waits until the generation differs from `seen` or the pool stops; returns the state seen. */
static unsigned long long wait_generation(struct threadpool *tp, unsigned long long seen)
{
    unsigned long long s;
    for (int i = 0; i < TP_SPIN; i++) {
        s = atomic_load(&tp->state);
        if (TP_GEN(s) != seen || atomic_load(&tp->stopping)) return s;
        cpu_relax();
    }
    pthread_mutex_lock(&tp->lock);
    atomic_fetch_add(&tp->sleepers, 1);
    while (TP_GEN(s = atomic_load(&tp->state)) == seen && !atomic_load(&tp->stopping))
        pthread_cond_wait(&tp->wake, &tp->lock);
    atomic_fetch_sub(&tp->sleepers, 1);
    pthread_mutex_unlock(&tp->lock);
    return s;
}

static void *worker_main(void *p)
{
    struct worker_arg arg = *(struct worker_arg *)p;
    free(p);
    struct threadpool *tp = arg.tp;
    unsigned long long seen = 0;
    for (;;) {
        unsigned long long s = wait_generation(tp, seen);
        if (atomic_load(&tp->stopping)) return NULL;
        seen = TP_GEN(s);
        /* join, unless the caller already closed this job */
        while (!(s & TP_CLOSED) && TP_GEN(s) == seen && !atomic_compare_exchange_weak(&tp->state, &s, s + 1)) {
        }
        if ((s & TP_CLOSED) || TP_GEN(s) != seen) continue;
        run_tasks(tp, arg.thread);
        unsigned long long left = atomic_fetch_sub(&tp->state, 1) - 1;
        if ((left & TP_JOINED_MASK) == 0 && atomic_load(&tp->caller_sleeping)) {
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
    atomic_store(&tp->stopping, 1);
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
    /* the previous job is closed with no worker inside, so the fields are ours to write; the
     * new generation publishes them */
    tp->fn = fn;
    tp->ctx = ctx;
    tp->n_tasks = n_tasks;
    atomic_store(&tp->next_task, 0);
    unsigned long long gen = TP_GEN(atomic_load(&tp->state)) + 1;
    atomic_store(&tp->state, gen << 32);
    if (atomic_load(&tp->sleepers) > 0) {
        pthread_mutex_lock(&tp->lock);
        pthread_cond_broadcast(&tp->wake);
        pthread_mutex_unlock(&tp->lock);
    }
    run_tasks(tp, 0);
    unsigned long long s = atomic_fetch_or(&tp->state, TP_CLOSED) | TP_CLOSED;
    for (int i = 0; i < TP_SPIN && (s & TP_JOINED_MASK); i++) {
        cpu_relax();
        s = atomic_load(&tp->state);
    }
    if (s & TP_JOINED_MASK) {
        pthread_mutex_lock(&tp->lock);
        atomic_store(&tp->caller_sleeping, 1);
        while (atomic_load(&tp->state) & TP_JOINED_MASK) pthread_cond_wait(&tp->done, &tp->lock);
        atomic_store(&tp->caller_sleeping, 0);
        pthread_mutex_unlock(&tp->lock);
    }
}
