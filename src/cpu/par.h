// par: how the CPU pipeline spreads its work over the thread pool (core/threads.h).
//
// GEMM task lists: the products of one stage (the q/k/v projections, the
// input- and weight-gradient products of a layer's backward, ...) are listed
// as tasks and cut into one contiguous share of flops per thread, each task
// split only by rows of its output where a share boundary falls inside it.
// Every product still reaches BLAS at (nearly) full size, and two independent
// products of equal size — W1/W3 forward, or dX next to dW in a backward —
// simply run side by side. A task is a sum of up to three products into the
// same output (dxn = Wqᵀdq + Wkᵀdk + Wvᵀdv), kept in order on one thread.
//
// bf16 mode: a product with round_a set takes A as a weight matrix whose rows
// (op(A) rows) this thread uses are rounded to bf16 into its scratch first, so
// the product sees bf16 weights without a second copy of the model in memory.
#pragma once
#include <stddef.h>

typedef struct {
    int ta, tb, K, lda, ldb;
    float alpha;
    const float *A, *B;
    int round_a;  // bf16: round the used slice of A (a weight) into scratch
} ParProduct;

// C[M,N] = beta*C + sum_i alpha_i op(A_i) op(B_i); products run in order.
typedef struct {
    int M, N, ldc;
    float beta;
    float *C;
    int np;
    ParProduct p[3];
} ParTask;

// Per-thread scratch for bf16 weight slices (NULL/0 in fp32 mode).
typedef struct {
    float *buf;      // nthreads * per_thread floats
    size_t per_thread;
    int nthreads;
} ParScratch;

// Runs the tasks; returns when all are done. Small lists run on the caller.
void par_gemm_tasks(const ParTask *tasks, int n, const ParScratch *scratch);

// fn(ctx, begin, end) over [0, n) split into one range per thread (boundaries
// multiples of align). Runs serially when n * cost_per_item < ~64k.
typedef void (*ParRangeFn)(void *ctx, size_t begin, size_t end);
void par_for(size_t n, size_t align, double cost_per_item, ParRangeFn fn, void *ctx);

// Number of threads the next parallel region will use.
int par_threads(void);
