/* A fixed pool of compute threads that split the work inside one forward step.
 *
 * The thread that calls tp_run() takes part as thread 0, so a pool of n threads starts n-1
 * workers. Workers own no state: they run tasks and return. Idle workers spin for about 100 us
 * before sleeping, so the hundreds of short runs of a decode step do not pay for wake-ups; a
 * worker the OS has not scheduled never holds a run up (the caller does the tasks and waits
 * only for workers that took part). Each thread has its own scratch
 * buffer (tp_scratch) so kernels never allocate. One tp_run at a time: the pool belongs to the
 * engine thread (or, in the CLI, the main thread). */
#ifndef MS_ENGINE_THREADPOOL_H
#define MS_ENGINE_THREADPOOL_H

#include <stddef.h>

#include "common/ms_common.h"

struct threadpool;

typedef void (*tp_task_fn)(void *ctx, int task, int thread);

/* n_threads >= 1 in all; each gets scratch_floats floats of scratch. NULL on failure (err set). */
struct threadpool *tp_create(int n_threads, size_t scratch_floats, struct ms_err *err);
void tp_destroy(struct threadpool *tp);

int tp_size(const struct threadpool *tp);

/* Scratch of thread `thread`, valid for the pool's lifetime. */
float *tp_scratch(struct threadpool *tp, int thread);

/* Runs fn(ctx, task, thread) for task in [0, n_tasks), spread over the threads; returns when all
 * tasks are done. Tasks are taken in order from a shared counter, so uneven tasks balance. */
void tp_run(struct threadpool *tp, int n_tasks, tp_task_fn fn, void *ctx);

#endif
