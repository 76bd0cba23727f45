// threads: one small fork-join pool for the CPU pipeline.
//
// threads_run(fn, ctx) calls fn(ctx, tid, n) on n threads at once — tid 0 on
// the caller, tids 1..n-1 on the pool's workers — and returns when all are
// done. Between jobs a worker spins briefly (the next job of a training step
// usually follows within microseconds) and then sleeps on a condition
// variable, so an idle pool costs nothing and never sched_yield()s against
// other threads the way library thread pools do on small GEMMs.
//
// The pool is process-wide (the one documented global of src/core): gemm()
// and the optimizer use it without a handle being passed through their APIs.
// It is created on first use with threads_default_count() threads; the
// `--threads` flag sets the count through gemm_set_threads().
//
// Re-entrancy: a job that calls threads_run again (a gemm inside a parallel
// region), or a second thread calling while the pool is busy (the dW queue's
// worker), gets fn(ctx, 0, 1) on its own thread: never a deadlock, never
// oversubscription.
#pragma once
#include <stddef.h>

enum { THREADS_MAX = 16 };

typedef void (*ThreadsFn)(void *ctx, int tid, int nthreads);

// Online CPUs, capped at THREADS_MAX (and at $ANETRAIN_THREADS if set).
int threads_default_count(void);
// Sets the number of threads (caller included). n <= 0 = threads_default_count().
// Must not be called from inside a job.
void threads_set_count(int n);
int threads_count(void);
// fn(ctx, tid, n) on n = threads_count() threads (1 if nested or busy).
// Returns n: the number of threads fn ran on.
int threads_run(ThreadsFn fn, void *ctx);
// Same with at most max_threads threads.
int threads_run_n(ThreadsFn fn, void *ctx, int max_threads);
// 1 while the calling thread is executing a pool job.
int threads_in_job(void);
// Joins the workers (the next threads_run starts them again). For tests and exit.
void threads_shutdown(void);

// [*begin, *end) = the part of [0, n) that thread tid of nt takes: contiguous,
// near-equal, boundaries multiples of `align` (except n itself).
static inline void threads_range(size_t n, int tid, int nt, size_t align, size_t *begin, size_t *end) {
    if (align < 1) align = 1;
    size_t blocks = (n + align - 1) / align;
    size_t b0 = blocks * (size_t)tid / (size_t)nt, b1 = blocks * (size_t)(tid + 1) / (size_t)nt;
    *begin = b0 * align < n ? b0 * align : n;
    *end = b1 * align < n ? b1 * align : n;
}
