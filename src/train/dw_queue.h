// dw_queue: weight-gradient GEMMs on a worker thread, overlapped with device work.
//
// The original dispatched its dW cblas_sgemm calls to a serial GCD queue while
// the ANE ran the next backward kernel; this is the portable version: a FIFO of
// GEMM descriptors drained by one thread, and an explicit barrier (dwq_wait)
// before anything reads the gradients (the optimizer) or overwrites an input.
// When the device is the host's own CPU (sim) the overlap only makes the
// GEMMs compete with the device's work for the same cores: inline queues run
// each job at push time instead, with no thread.
#pragma once
#include <pthread.h>

typedef struct {
    int transA, transB, M, N, K;
    float alpha, beta;
    const float *A, *B;
    float *C;
    int lda, ldb, ldc;
} DwJob;

enum { DWQ_CAP = 256 };

typedef struct {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t have_work, drained;
    DwJob jobs[DWQ_CAP];
    int head, count, busy, quit, started;
    int inline_jobs;
} DwQueue;

int dwq_init(DwQueue *q, int inline_jobs);
void dwq_free(DwQueue *q);
// Enqueues C = alpha op(A) op(B) + beta C (gemm() semantics); blocks if full.
void dwq_push(DwQueue *q, DwJob job);
// Returns when every queued job has finished.
void dwq_wait(DwQueue *q);
