/* Shared by the benchmarks: the machine's read bandwidth, the yardstick of every decode figure. */
#ifndef MS_BENCH_UTIL_H
#define MS_BENCH_UTIL_H

#include <stddef.h>

#include "engine/kernels/threadpool.h"

/* GB/s of reading `bytes` (a multiple of 1 MiB) with every thread of tp, best of `reps`. */
double bench_read_bandwidth(struct threadpool *tp, size_t bytes, int reps);

#endif
