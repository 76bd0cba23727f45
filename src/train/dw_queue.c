#include "train/dw_queue.h"

#include <string.h>

#include "core/err.h"
#include "core/gemm.h"

static void *worker(void *arg) {
    DwQueue *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->count && !q->quit) pthread_cond_wait(&q->have_work, &q->mu);
        if (!q->count && q->quit) break;
        DwJob j = q->jobs[q->head];
        q->head = (q->head + 1) % DWQ_CAP;
        q->count--;
        q->busy = 1;
        pthread_mutex_unlock(&q->mu);
        gemm(j.transA, j.transB, j.M, j.N, j.K, j.alpha, j.A, j.lda, j.B, j.ldb, j.beta, j.C, j.ldc);
        pthread_mutex_lock(&q->mu);
        q->busy = 0;
        pthread_cond_broadcast(&q->drained);  // also wakes producers waiting for room
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

int dwq_init(DwQueue *q, int inline_jobs) {
    memset(q, 0, sizeof *q);
    q->inline_jobs = inline_jobs;
    if (inline_jobs) return 0;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->have_work, NULL);
    pthread_cond_init(&q->drained, NULL);
    if (pthread_create(&q->thread, NULL, worker, q) != 0) {
        pthread_mutex_destroy(&q->mu);
        pthread_cond_destroy(&q->have_work);
        pthread_cond_destroy(&q->drained);
        return err_set("cannot start the dW worker thread");
    }
    q->started = 1;
    return 0;
}

void dwq_free(DwQueue *q) {
    if (!q->started) return;
    pthread_mutex_lock(&q->mu);
    q->quit = 1;
    pthread_cond_signal(&q->have_work);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->thread, NULL);
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->have_work);
    pthread_cond_destroy(&q->drained);
    q->started = 0;
}

void dwq_push(DwQueue *q, DwJob job) {
    if (q->inline_jobs) {
        gemm(job.transA, job.transB, job.M, job.N, job.K, job.alpha, job.A, job.lda, job.B, job.ldb, job.beta, job.C,
             job.ldc);
        return;
    }
    pthread_mutex_lock(&q->mu);
    while (q->count == DWQ_CAP) pthread_cond_wait(&q->drained, &q->mu);
    q->jobs[(q->head + q->count) % DWQ_CAP] = job;
    q->count++;
    pthread_cond_signal(&q->have_work);
    pthread_mutex_unlock(&q->mu);
}

void dwq_wait(DwQueue *q) {
    if (!q->started) return;  // inline (or never started): nothing is pending
    pthread_mutex_lock(&q->mu);
    while (q->count || q->busy) pthread_cond_wait(&q->drained, &q->mu);
    pthread_mutex_unlock(&q->mu);
}
