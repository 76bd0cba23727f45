// worker: see worker.h. One mutex guards the series; the thread signals
// `progress` after every item, so a waiter wakes as soon as its item is done.
#include "core/worker.h"

#include <string.h>

#include "core/err.h"
#include "core/timer.h"

static void *worker_main_loop(void *arg) {
    Worker *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->quit && !(w->running && w->done < w->n && !w->failed)) pthread_cond_wait(&w->go, &w->mu);
        if (w->quit) break;
        const int item = w->done;
        pthread_mutex_unlock(&w->mu);
        const double t0 = time_ms();
        const int rc = w->fn(w->ctx, item);
        const double ms = time_ms() - t0;
        pthread_mutex_lock(&w->mu);
        w->ms += ms;
        if (rc != 0) w->failed = 1;
        else w->done++;
        if (w->failed || w->done == w->n) w->running = 0;
        pthread_cond_broadcast(&w->progress);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int worker_init(Worker *w) {
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->go, NULL);
    pthread_cond_init(&w->progress, NULL);
    if (pthread_create(&w->thread, NULL, worker_main_loop, w) != 0) {
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->go);
        pthread_cond_destroy(&w->progress);
        return err_set("cannot start a worker thread");
    }
    w->started = 1;
    return 0;
}

void worker_free(Worker *w) {
    if (!w->started) return;
    pthread_mutex_lock(&w->mu);
    w->quit = 1;
    pthread_cond_broadcast(&w->go);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->go);
    pthread_cond_destroy(&w->progress);
    w->started = 0;
}

void worker_start(Worker *w, WorkerFn fn, void *ctx, int n) {
    pthread_mutex_lock(&w->mu);
    while (w->running) pthread_cond_wait(&w->progress, &w->mu);
    w->fn = fn, w->ctx = ctx, w->n = n, w->done = 0, w->failed = 0;
    w->running = n > 0;
    pthread_cond_broadcast(&w->go);
    pthread_mutex_unlock(&w->mu);
}

int worker_wait(Worker *w, int i) {
    pthread_mutex_lock(&w->mu);
    if (i >= w->n) i = w->n - 1;
    while (w->done <= i && !w->failed) pthread_cond_wait(&w->progress, &w->mu);
    const int rc = w->done > i ? 0 : -1;
    pthread_mutex_unlock(&w->mu);
    return rc;
}

double worker_ms(Worker *w) {
    pthread_mutex_lock(&w->mu);
    const double ms = w->ms;
    pthread_mutex_unlock(&w->mu);
    return ms;
}
