// threads: see threads.h. Workers wait for a job generation counter to move:
// first spinning (SPIN_NS), then on a condition variable. The caller runs tid 0
// itself and waits for the others the same way. Handoffs use the Dekker pattern
// with seq_cst atomics: the side that publishes (generation / pending count)
// then checks the other side's "sleeping" flag, and the sleeper sets its flag
// under the mutex and re-checks before waiting, so no wakeup is lost.
#include "core/threads.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define cpu_relax() _mm_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield")
#else
#define cpu_relax() ((void)0)
#endif

// How long an idle thread spins before sleeping. Jobs inside a training step
// follow each other within a few microseconds; between steps (optimizer, data)
// the worker goes to sleep.
enum { SPIN_NS = 100000 };

static struct {
    pthread_mutex_t mu;         // guards sleeping/waiting transitions and start/stop
    pthread_cond_t wake;        // workers wait here for a new generation
    pthread_cond_t done;        // the caller waits here for pending == 0
    pthread_t th[THREADS_MAX];
    int n;                      // threads including the caller (0 = not configured yet)
    int started;                // workers running
    atomic_uint gen;            // job generation
    atomic_int pending;         // workers that have not finished the current job
    atomic_int sleepers;        // workers blocked on `wake`
    atomic_int caller_waiting;  // the caller blocked on `done`
    atomic_int quit;
    atomic_flag busy;           // held by the thread that is running a job on the pool
    ThreadsFn fn;
    void *ctx;
    int job_n;
    unsigned start_gen;         // the generation when the workers were started
} P = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, {0}, 0, 0, 0, 0, 0, 0, 0,
       ATOMIC_FLAG_INIT, NULL, NULL, 0, 0};

static _Thread_local int t_in_job;

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int threads_default_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    const char *env = getenv("ANETRAIN_THREADS");
    if (env && atoi(env) > 0) n = atoi(env);
    if (n < 1) n = 1;
    if (n > THREADS_MAX) n = THREADS_MAX;
    return (int)n;
}

static void *worker_main(void *arg) {
    const int tid = (int)(size_t)arg;
    unsigned seen = P.start_gen;  // written before pthread_create
    for (;;) {
        unsigned g = atomic_load(&P.gen);
        if (g == seen && !atomic_load(&P.quit)) {
            long long t0 = now_ns();
            for (int i = 0; (g = atomic_load(&P.gen)) == seen && !atomic_load(&P.quit); i++) {
                cpu_relax();
                if ((i & 255) == 255 && now_ns() - t0 > SPIN_NS) break;
            }
            if (g == seen) {
                pthread_mutex_lock(&P.mu);
                atomic_fetch_add(&P.sleepers, 1);
                while ((g = atomic_load(&P.gen)) == seen && !atomic_load(&P.quit)) pthread_cond_wait(&P.wake, &P.mu);
                atomic_fetch_sub(&P.sleepers, 1);
                pthread_mutex_unlock(&P.mu);
            }
        }
        if (atomic_load(&P.quit)) return NULL;
        seen = g;
        if (tid < P.job_n) {
            t_in_job = 1;
            P.fn(P.ctx, tid, P.job_n);
            t_in_job = 0;
        }
        if (atomic_fetch_sub(&P.pending, 1) == 1 && atomic_load(&P.caller_waiting)) {
            pthread_mutex_lock(&P.mu);
            pthread_cond_signal(&P.done);
            pthread_mutex_unlock(&P.mu);
        }
    }
}

// Called with P.busy held.
static void start_workers(void) {
    if (P.n == 0) P.n = threads_default_count();
    if (P.started) return;
    atomic_store(&P.quit, 0);
    P.start_gen = atomic_load(&P.gen);
    for (int i = 1; i < P.n; i++)
        if (pthread_create(&P.th[i], NULL, worker_main, (void *)(size_t)i) != 0) {
            P.n = i;  // cannot start more threads: run with the ones we have
            break;
        }
    P.started = 1;
}

static void stop_workers(void) {
    if (!P.started) return;
    pthread_mutex_lock(&P.mu);
    atomic_store(&P.quit, 1);
    pthread_cond_broadcast(&P.wake);
    pthread_mutex_unlock(&P.mu);
    for (int i = 1; i < P.n; i++) pthread_join(P.th[i], NULL);
    P.started = 0;
    atomic_store(&P.quit, 0);
}

void threads_set_count(int n) {
    if (n <= 0) n = threads_default_count();
    if (n > THREADS_MAX) n = THREADS_MAX;
    while (atomic_flag_test_and_set(&P.busy)) cpu_relax();
    if (n != P.n) {
        stop_workers();
        P.n = n;
    }
    atomic_flag_clear(&P.busy);
}

int threads_count(void) { return P.n ? P.n : threads_default_count(); }

int threads_in_job(void) { return t_in_job; }

void threads_shutdown(void) {
    while (atomic_flag_test_and_set(&P.busy)) cpu_relax();
    stop_workers();
    atomic_flag_clear(&P.busy);
}

int threads_run_n(ThreadsFn fn, void *ctx, int max_threads) {
    int want = threads_count();
    if (max_threads < want) want = max_threads;
    if (want <= 1 || t_in_job || atomic_flag_test_and_set(&P.busy)) {
        int saved = t_in_job;
        t_in_job = 1;  // code inside fn sees a job: nested gemm() stays serial
        fn(ctx, 0, 1);
        t_in_job = saved;
        return 1;
    }
    start_workers();
    if (want > P.n) want = P.n;
    const int workers = P.n - 1;
    if (want <= 1 || workers == 0) {
        t_in_job = 1;
        fn(ctx, 0, 1);
        t_in_job = 0;
        atomic_flag_clear(&P.busy);
        return 1;
    }
    P.fn = fn;
    P.ctx = ctx;
    P.job_n = want;
    atomic_store(&P.pending, workers);
    atomic_fetch_add(&P.gen, 1);
    if (atomic_load(&P.sleepers) > 0) {
        pthread_mutex_lock(&P.mu);
        pthread_cond_broadcast(&P.wake);
        pthread_mutex_unlock(&P.mu);
    }
    t_in_job = 1;
    fn(ctx, 0, want);
    t_in_job = 0;
    if (atomic_load(&P.pending) > 0) {
        long long t0 = now_ns();
        for (int i = 0; atomic_load(&P.pending) > 0; i++) {
            cpu_relax();
            if ((i & 255) == 255 && now_ns() - t0 > SPIN_NS) break;
        }
        if (atomic_load(&P.pending) > 0) {
            pthread_mutex_lock(&P.mu);
            atomic_store(&P.caller_waiting, 1);
            while (atomic_load(&P.pending) > 0) pthread_cond_wait(&P.done, &P.mu);
            atomic_store(&P.caller_waiting, 0);
            pthread_mutex_unlock(&P.mu);
        }
    }
    atomic_flag_clear(&P.busy);
    return want;
}

int threads_run(ThreadsFn fn, void *ctx) { return threads_run_n(fn, ctx, THREADS_MAX); }
