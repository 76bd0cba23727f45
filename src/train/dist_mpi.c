// dist_mpi: the job over MPI (OpenMPI). See dist.h.
//
// Started without mpirun (no launcher variables in the environment) it never
// calls MPI_Init and behaves as dist_single.c: a plain `anetrain train` pays
// nothing and cannot fail in MPI's startup.
#ifdef USE_MPI
#include <limits.h>
#include <mpi.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/timer.h"
#include "train/dist.h"

static int g_on;  // MPI_Init was called (we are in a job started by mpirun)
static int g_serialized;  // the library allows the communication thread (MPI_THREAD_SERIALIZED)
static int g_rank, g_size = 1, g_local = 1;
static char g_name[MPI_MAX_LIBRARY_VERSION_STRING + 64] = "single process (not started by mpirun)";

// Every launcher we know sets one of these in each rank's environment.
static int launched_by_mpirun(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
}

static int check(int rc, const char *what) {
    if (rc == MPI_SUCCESS) return 0;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return err_set("rank %d of %d: %s failed: %s", g_rank, g_size, what, msg);
}

int dist_init(int *argc, char ***argv) {
    if (g_on || !launched_by_mpirun()) return 0;
    int provided = 0;
    // SERIALIZED: this thread, and the communication thread while it owns MPI
    // (dist_sum_push .. dist_sum_wait); the compute threads never call MPI
    if (check(MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread") != 0) return -1;
    g_on = 1;
    g_serialized = provided >= MPI_THREAD_SERIALIZED;
    // errors come back as codes (and err_set messages) instead of MPI's own abort
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    MPI_Comm local;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &local) == MPI_SUCCESS) {
        MPI_Comm_size(local, &g_local);
        MPI_Comm_free(&local);
    }
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(lib, &len);
    for (int i = 0; i < len; i++)  // the first line, up to the first comma
        if (lib[i] == ',' || lib[i] == '\n') {
            lib[i] = 0;
            break;
        }
    snprintf(g_name, sizeof g_name, "MPI (%s), %d ranks", lib, g_size);
    return 0;
}

static void async_stop(void);

void dist_finalize(void) {
    async_stop();
    if (g_on) MPI_Finalize();
    g_on = 0;
}

void dist_abort(int code) {
    if (g_on && g_size > 1) MPI_Abort(MPI_COMM_WORLD, code);
}

int dist_rank(void) { return g_rank; }
int dist_size(void) { return g_size; }
int dist_local_size(void) { return g_local; }
const char *dist_name(void) { return g_name; }

// MPI counts are int: large blocks go in chunks of at most 2^30 elements.
enum { CHUNK = 1 << 30 };

static int ring_sum(float *buf, size_t n);

// Large blocks go around the ring (ring_sum); small ones, where latency
// rules, through the library's all-reduce.
enum { RING_MIN = 1 << 16 };

int dist_sum_f32(float *buf, size_t n) {
    if (!g_on || g_size == 1) return 0;
    if (n >= RING_MIN && n <= INT_MAX) return ring_sum(buf, n);
    for (size_t i = 0; i < n; i += CHUNK) {
        const int c = (int)(n - i < CHUNK ? n - i : CHUNK);
        if (check(MPI_Allreduce(MPI_IN_PLACE, buf + i, c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce") != 0)
            return -1;
    }
    return 0;
}

int dist_sum_f64(double *buf, size_t n) {
    if (!g_on || g_size == 1) return 0;
    for (size_t i = 0; i < n; i += CHUNK) {
        const int c = (int)(n - i < CHUNK ? n - i : CHUNK);
        if (check(MPI_Allreduce(MPI_IN_PLACE, buf + i, c, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce") != 0)
            return -1;
    }
    return 0;
}

// --- sums overlapped with the caller's computation ---------------------------------------

typedef struct {
    float *buf;
    size_t n;
} Bucket;

static struct {
    pthread_t th;
    int started, quit, no_thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;    // work queued, or quit
    pthread_cond_t done;  // the queue ran empty
    Bucket *q;
    size_t n, cap, next;  // queued, capacity, the next to run
    int running, failed;
    char err[512];
    double busy_ms;
} g_async = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .done = PTHREAD_COND_INITIALIZER};

// The first failed sum's message (under the lock): the wait returns it.
static void async_failed(void) {
    if (g_async.failed) return;
    g_async.failed = 1;
    snprintf(g_async.err, sizeof g_async.err, "%s", err_msg());
}

static void *async_main(void *arg) {
    (void)arg;
    pthread_mutex_lock(&g_async.mu);
    for (;;) {
        while (!g_async.quit && g_async.next == g_async.n) pthread_cond_wait(&g_async.cv, &g_async.mu);
        if (g_async.quit) break;
        const Bucket b = g_async.q[g_async.next];
        g_async.running = 1;
        pthread_mutex_unlock(&g_async.mu);
        const double t0 = time_ms();
        const int rc = g_async.failed ? -1 : dist_sum_f32(b.buf, b.n);
        pthread_mutex_lock(&g_async.mu);
        g_async.busy_ms += time_ms() - t0;
        if (rc != 0) async_failed();
        g_async.running = 0;
        if (++g_async.next == g_async.n) pthread_cond_broadcast(&g_async.done);
    }
    pthread_mutex_unlock(&g_async.mu);
    return NULL;
}

static void async_stop(void) {
    if (!g_async.started) return;
    pthread_mutex_lock(&g_async.mu);
    g_async.quit = 1;
    pthread_cond_signal(&g_async.cv);
    pthread_mutex_unlock(&g_async.mu);
    pthread_join(g_async.th, NULL);
    free(g_async.q);
    g_async.q = NULL;
    g_async.started = g_async.quit = 0;
    g_async.n = g_async.cap = g_async.next = 0;
}

// With no thread (the library is not SERIALIZED, or it could not start) or
// no room left in the queue: the sum here and now, once the thread (if any)
// is idle, so that one thread at a time calls MPI and the order stays the
// one every rank follows. Called with the lock held; returns with it held.
static int sum_here(float *buf, size_t n) {
    while (g_async.next < g_async.n || g_async.running) pthread_cond_wait(&g_async.done, &g_async.mu);
    pthread_mutex_unlock(&g_async.mu);
    const double t0 = time_ms();
    const int rc = dist_sum_f32(buf, n);
    pthread_mutex_lock(&g_async.mu);
    g_async.busy_ms += time_ms() - t0;
    if (rc != 0) async_failed();
    return rc;
}

int dist_sum_push(float *buf, size_t n) {
    if (!g_on || g_size == 1) return 0;
    pthread_mutex_lock(&g_async.mu);
    if (g_serialized && !g_async.started && !g_async.no_thread) {
        if (pthread_create(&g_async.th, NULL, async_main, NULL) == 0) g_async.started = 1;
        else g_async.no_thread = 1;
    }
    if (g_async.started && g_async.n == g_async.cap) {
        const size_t cap = g_async.cap ? 2 * g_async.cap : 256;
        Bucket *q = realloc(g_async.q, cap * sizeof *q);
        if (q) g_async.q = q, g_async.cap = cap;
    }
    int rc = 0;
    if (!g_async.started || g_async.n == g_async.cap) {
        rc = sum_here(buf, n);
    } else {
        g_async.q[g_async.n++] = (Bucket){buf, n};
        pthread_cond_signal(&g_async.cv);
    }
    pthread_mutex_unlock(&g_async.mu);
    return rc;
}

int dist_can_overlap(void) { return g_on && g_serialized; }

int dist_sum_wait(double *busy_ms) {
    pthread_mutex_lock(&g_async.mu);
    while (g_async.next < g_async.n || g_async.running) pthread_cond_wait(&g_async.done, &g_async.mu);
    const int failed = g_async.failed;
    if (busy_ms) *busy_ms = g_async.busy_ms;
    g_async.n = g_async.next = 0, g_async.busy_ms = 0, g_async.failed = 0;
    pthread_mutex_unlock(&g_async.mu);
    return failed ? err_set("%s", g_async.err) : 0;
}

// --- ZeRO-1's segmented collectives ---------------------------------------------------------

// counts and displacements as MPI's ints; -1 when a segment or offset does not fit.
static int segments(const size_t *counts, int **c, int **d) {
    *c = malloc(sizeof(int) * (size_t)g_size), *d = malloc(sizeof(int) * (size_t)g_size);
    if (!*c || !*d) return err_set("out of memory");
    size_t off = 0;
    for (int r = 0; r < g_size; r++) {
        if (counts[r] > INT_MAX || off > INT_MAX)
            return err_set("a ZeRO-1 shard of %zu floats at %zu is beyond MPI's int counts", counts[r], off);
        (*c)[r] = (int)counts[r], (*d)[r] = (int)off;
        off += counts[r];
    }
    return 0;
}

// A ring: at step k (0 .. N-2) rank r passes its partial sum of segment
// r-k-1 to rank r+1 and adds the partial sum of segment r-k-2 that rank r-1
// passes it, so after N-1 steps segment r holds every rank's contribution.
// Each rank sends (N-1)/N of the block, the least any reduce-scatter can,
// through a fixed buffer (the library's own may allocate the whole block).
enum { RING_CHUNK = 1 << 20 };

static size_t seg_start(const size_t *counts, int r) {
    size_t off = 0;
    for (int i = 0; i < r; i++) off += counts[i];
    return off;
}

// Step k: the segment sent to rank r+1 is the one it receives, so both ends
// of an edge cut it into the same chunks; a side with no chunk left talks to
// MPI_PROC_NULL (a no-op) and every message is matched within its step (tag).
static int ring_step(float *buf, const size_t *counts, int k, int send_seg, int recv_seg, float *tmp, size_t chunk) {
    const int next = (g_rank + 1) % g_size, prev = (g_rank + g_size - 1) % g_size, tag = 100 + k;
    float *s = buf + seg_start(counts, send_seg), *d = buf + seg_start(counts, recv_seg);
    const size_t ns = counts[send_seg], nd = counts[recv_seg];
    for (size_t i = 0; i < ns || i < nd; i += chunk) {
        const int cs = (int)(i < ns ? (ns - i < chunk ? ns - i : chunk) : 0);
        const int cd = (int)(i < nd ? (nd - i < chunk ? nd - i : chunk) : 0);
        if (check(MPI_Sendrecv(s + i, cs, MPI_FLOAT, cs ? next : MPI_PROC_NULL, tag, tmp, cd, MPI_FLOAT,
                               cd ? prev : MPI_PROC_NULL, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE),
                  "MPI_Sendrecv (reduce-scatter)") != 0)
            return -1;
        for (int j = 0; j < cd; j++) d[i + j] += tmp[j];
    }
    return 0;
}

// ANETRAIN_RING_CHUNK (floats) makes the chunks small, so that tests on tiny
// models cut segments of different sizes into different numbers of chunks.
static size_t ring_chunk(void) {
    const char *e = getenv("ANETRAIN_RING_CHUNK");
    const long v = e ? strtol(e, NULL, 10) : 0;
    return v > 0 && v < RING_CHUNK ? (size_t)v : RING_CHUNK;
}

int dist_reduce_scatter_f32(float *buf, const size_t *counts) {
    if (!g_on || g_size == 1) return 0;
    const size_t chunk = ring_chunk();
    float *tmp = malloc(sizeof(float) * chunk);
    if (!tmp) return err_set("out of memory for the reduce-scatter");
    int rc = 0;
    for (int k = 0; rc == 0 && k < g_size - 1; k++)
        rc = ring_step(buf, counts, k, (g_rank - k - 1 + 2 * g_size) % g_size, (g_rank - k - 2 + 2 * g_size) % g_size,
                       tmp, chunk);
    free(tmp);
    return rc;
}

// The sum as a reduce-scatter and an all-gather over equal segments: each
// rank sends 2·(N−1)/N of the block, the bandwidth-optimal all-reduce (on
// shared memory here twice as fast as Open MPI's own for stories110m's block).
static int ring_sum(float *buf, size_t n) {
    size_t *counts = malloc(sizeof(size_t) * (size_t)g_size);
    if (!counts) return err_set("out of memory");
    dist_split(n, g_size, counts);
    const int rc = dist_reduce_scatter_f32(buf, counts) != 0 || dist_allgather_f32(buf, counts) != 0 ? -1 : 0;
    free(counts);
    return rc;
}

int dist_allgather_f32(float *buf, const size_t *counts) {
    if (!g_on || g_size == 1) return 0;
    int *c = NULL, *d = NULL;
    int rc = segments(counts, &c, &d);
    if (rc == 0)
        rc = check(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, c, d, MPI_FLOAT, MPI_COMM_WORLD),
                   "MPI_Allgatherv");
    free(c), free(d);
    return rc;
}

int dist_gather_f32(const float *seg, float *full, const size_t *counts, int root) {
    if (!g_on || g_size == 1) {
        memmove(full, seg, counts[0] * sizeof(float));
        return 0;
    }
    int *c = NULL, *d = NULL;
    int rc = segments(counts, &c, &d);
    if (rc == 0)
        rc = check(MPI_Gatherv(seg, c[g_rank], MPI_FLOAT, full, c, d, MPI_FLOAT, root, MPI_COMM_WORLD), "MPI_Gatherv");
    free(c), free(d);
    return rc;
}

int dist_any(int *flag) {
    *flag = *flag != 0;
    if (!g_on || g_size == 1) return 0;
    return check(MPI_Allreduce(MPI_IN_PLACE, flag, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce (stop)");
}

int dist_bcast(void *buf, size_t bytes, int root) {
    if (!g_on || g_size == 1) return 0;
    for (size_t i = 0; i < bytes; i += CHUNK) {
        const int c = (int)(bytes - i < CHUNK ? bytes - i : CHUNK);
        if (check(MPI_Bcast((char *)buf + i, c, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast") != 0) return -1;
    }
    return 0;
}

int dist_barrier(void) {
    if (!g_on || g_size == 1) return 0;
    return check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
}
#else
typedef int dist_mpi_unused;  // ISO C: a translation unit is not empty
#endif
