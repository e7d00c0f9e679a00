#include "bench/bench_util.h"

#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/ms_common.h"

struct sum_job {
    const uint64_t *p;
    size_t n_per_task;
    uint64_t out[64];
};

__attribute__((target("avx2"))) static void sum_task(void *ctx, int task, int thread)
{
    struct sum_job *j = ctx;
    const __m256i *p = (const __m256i *)(j->p + (size_t)task * j->n_per_task);
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    for (size_t i = 0; i < j->n_per_task / 4; i += 4) {
        a = _mm256_add_epi64(a, _mm256_load_si256(p + i));
        b = _mm256_add_epi64(b, _mm256_load_si256(p + i + 1));
        c = _mm256_add_epi64(c, _mm256_load_si256(p + i + 2));
        d = _mm256_add_epi64(d, _mm256_load_si256(p + i + 3));
    }
    a = _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d));
    j->out[thread] += (uint64_t)_mm256_extract_epi64(a, 0);
}

double bench_read_bandwidth(struct threadpool *tp, size_t bytes, int reps)
{
    uint64_t *p = aligned_alloc(64, bytes);
    memset(p, 1, bytes);
    struct sum_job j = {p, (1u << 20) / 8, {0}};
    int tasks = (int)(bytes / (1u << 20));
    double best = 1e9;
    for (int r = 0; r < reps; r++) {
        double t0 = ms_now();
        tp_run(tp, tasks, sum_task, &j);
        double dt = ms_now() - t0;
        best = dt < best ? dt : best;
    }
    free(p);
    return (double)tasks * (1u << 20) / best / 1e9;
}

