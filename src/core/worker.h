// worker: one background thread that runs a numbered series of items in
// order, while the caller goes on and waits for each item only when it needs
// its result (the dynamic pipeline stages layer l+1's weights while the
// device runs layer l).
//
//   worker_start(w, fn, ctx, n)   runs fn(ctx, 0) ... fn(ctx, n-1) in the background
//   worker_wait(w, i)             returns once items 0..i are done (i >= n: all)
//
// One series at a time: worker_start waits for the previous one first. fn
// returns 0, or -1 to stop the series there (worker_wait then returns -1 for
// that item and every later one).
#pragma once
#include <pthread.h>

typedef int (*WorkerFn)(void *ctx, int item);

typedef struct {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t go, progress;
    WorkerFn fn;
    void *ctx;
    int n;        // items in the series
    int done;     // items finished
    int failed;   // the series stopped at item `done` with an error
    int running;  // a series is in progress
    int quit, started;
    double ms;    // time the worker spent on items since worker_init
} Worker;

int worker_init(Worker *w);  // -1 + err_msg when the thread cannot start
void worker_free(Worker *w);
void worker_start(Worker *w, WorkerFn fn, void *ctx, int n);
// 0 once items 0..i are done; -1 if the series stopped at or before item i.
int worker_wait(Worker *w, int i);
// Milliseconds the worker has spent running items (after a wait, complete up to it).
double worker_ms(Worker *w);
