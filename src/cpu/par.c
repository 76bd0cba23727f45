// par: GEMM task lists and parallel ranges on the thread pool (see par.h).
#include "cpu/par.h"

#include "core/gemm.h"
#include "core/threads.h"
#include "cpu/vmath.h"

int par_threads(void) { return threads_in_job() ? 1 : threads_count(); }

// --- GEMM task lists -------------------------------------------------------------------------

enum { ROW_ALIGN = 16, MAX_TASKS = 32 };

typedef struct {
    const ParTask *t;
    int n;
    const ParScratch *scratch;
    double cum[MAX_TASKS + 1];  // flops before task i
} TaskList;

static double task_flops(const ParTask *t) {
    double k = 0;
    for (int i = 0; i < t->np; i++) k += t->p[i].K;
    return 2.0 * t->M * t->N * k;
}

// Share boundary b of nt as (task, row): the flop position b/nt of the total,
// rounded to a multiple of ROW_ALIGN rows. Adjacent threads compute the same point.
static void boundary(const TaskList *L, int b, int nt, int *task, int *row) {
    if (b >= nt) {
        *task = L->n;
        *row = 0;
        return;
    }
    const double f = L->cum[L->n] * b / nt;
    int i = 0;
    while (i + 1 < L->n && L->cum[i + 1] <= f) i++;
    const double per_row = task_flops(&L->t[i]) / L->t[i].M;
    int r = per_row > 0 ? (int)((f - L->cum[i]) / per_row / ROW_ALIGN + 0.5) * ROW_ALIGN : 0;
    if (r >= L->t[i].M) {
        i++;
        r = 0;
    }
    *task = i;
    *row = r < 0 ? 0 : r;
}

// Rows [r0, r1) of task t on this thread.
static void run_rows(const ParTask *t, int r0, int r1, float *scratch, size_t scratch_n) {
    const int m = r1 - r0;
    if (m <= 0) return;
    for (int i = 0; i < t->np; i++) {
        const ParProduct *p = &t->p[i];
        const float *A = p->ta ? p->A + r0 : p->A + (size_t)r0 * p->lda;
        int lda = p->lda;
        if (p->round_a && scratch && (size_t)m * p->K <= scratch_n) {
            if (!p->ta) {  // rows r0..r1 of A, each K long
                for (int r = 0; r < m; r++) bf16_round_array(scratch + (size_t)r * p->K, A + (size_t)r * p->lda, p->K);
                lda = p->K;
            } else {  // op(A) rows = columns r0..r1 of A: K rows of m
                for (int k = 0; k < p->K; k++) bf16_round_array(scratch + (size_t)k * m, A + (size_t)k * p->lda, m);
                lda = m;
            }
            A = scratch;
        }
        gemm_serial(p->ta, p->tb, m, t->N, p->K, p->alpha, A, lda, p->B, p->ldb, i == 0 ? t->beta : 1.0f,
                    t->C + (size_t)r0 * t->ldc, t->ldc);
    }
}

static void tasks_run(void *ctx, int tid, int nt) {
    const TaskList *L = ctx;
    int t0, r0, t1, r1;
    boundary(L, tid, nt, &t0, &r0);
    boundary(L, tid + 1, nt, &t1, &r1);
    float *scratch = NULL;
    size_t scratch_n = 0;
    if (L->scratch && L->scratch->buf && tid < L->scratch->nthreads) {
        scratch = L->scratch->buf + (size_t)tid * L->scratch->per_thread;
        scratch_n = L->scratch->per_thread;
    }
    for (int i = t0; i <= t1 && i < L->n; i++) {
        const int a = i == t0 ? r0 : 0, b = i == t1 ? r1 : L->t[i].M;
        run_rows(&L->t[i], a, b, scratch, scratch_n);
    }
}

void par_gemm_tasks(const ParTask *tasks, int n, const ParScratch *scratch) {
    TaskList L = {tasks, n, scratch, {0}};
    if (n > MAX_TASKS) {  // never in the model; keep it correct anyway
        par_gemm_tasks(tasks, MAX_TASKS, scratch);
        par_gemm_tasks(tasks + MAX_TASKS, n - MAX_TASKS, scratch);
        return;
    }
    for (int i = 0; i < n; i++) L.cum[i + 1] = L.cum[i] + task_flops(&tasks[i]);
    int nt = par_threads();
    if (scratch && scratch->buf && scratch->nthreads < nt) nt = scratch->nthreads;
    if (nt <= 1 || L.cum[n] < GEMM_SPLIT_MIN_FLOPS) {
        tasks_run(&L, 0, 1);
        return;
    }
    threads_run_n(tasks_run, &L, nt);
}

// --- ranges ----------------------------------------------------------------------------------

typedef struct {
    size_t n, align;
    ParRangeFn fn;
    void *ctx;
} RangeJob;

static void range_run(void *ctx, int tid, int nt) {
    const RangeJob *j = ctx;
    size_t b, e;
    threads_range(j->n, tid, nt, j->align, &b, &e);
    if (e > b) j->fn(j->ctx, b, e);
}

void par_for(size_t n, size_t align, double cost_per_item, ParRangeFn fn, void *ctx) {
    if (n == 0) return;
    if ((double)n * cost_per_item < 65536.0 || par_threads() < 2 || n < 2 * align) {
        fn(ctx, 0, n);
        return;
    }
    RangeJob j = {n, align, fn, ctx};
    threads_run(range_run, &j);
}
