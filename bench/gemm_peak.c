// gemm_peak: this machine's sgemm peak on the GEMM shapes of one training step.
//
//   gemm_peak MODEL SEQ THREADS [ROUNDS]
//
// Enumerates the products of a step of MODEL on SEQ tokens — per layer the
// forward (y = W x), input-gradient (dx = Wᵀ dy) and weight-gradient
// (dW += dy xᵀ) products of the seven projections, and the classifier's three —
// and times each one alone, best of ROUNDS (default 5), in three ways:
//   split  gemm() splitting it across THREADS pool threads, BLAS single-threaded
//   blas   one cblas_sgemm call with BLAS's own THREADS threads
//   pair   THREADS copies of the whole product at once, one per thread (the
//          throughput of independent products run side by side)
// The peak of a shape is its best of the three; the model's peak is
// sum(flops) / sum(flops / best GFLOPS) over every product of the step, counts
// included: the time a step's products would take if each ran at its own best.
// Attention's per-head products are not included (they are small and slow; the
// peak is what the big products allow). Prints a table on stderr and one JSON
// line on stdout.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/restart.h"
#include "core/err.h"
#include "core/gemm.h"
#include "core/rng.h"
#include "core/threads.h"
#include "core/timer.h"
#include "model/config.h"

typedef struct {
    const char *name;
    int ta, tb, M, N, K;
    int count;  // per step
} Shape;

typedef struct {
    const Shape *s;
    float *A[THREADS_MAX], *B[THREADS_MAX], *C[THREADS_MAX];
} PairCtx;

static void pair_run(void *ctx, int tid, int nt) {
    (void)nt;
    PairCtx *p = ctx;
    const Shape *s = p->s;
    gemm_serial(s->ta, s->tb, s->M, s->N, s->K, 1.0f, p->A[tid], s->ta ? s->M : s->K, p->B[tid], s->tb ? s->K : s->N,
                0.0f, p->C[tid], s->N);
}

static float *rnd(size_t n, Rng *r) {
    float *x = malloc(n * sizeof(float));
    if (!x) exit(1);
    for (size_t i = 0; i < n; i++) x[i] = rng_normal(r) * 0.1f;
    return x;
}

int main(int argc, char **argv) {
    restart_for_blas_kernels(argv);  // the kernels anetrain runs with
    if (argc < 4) {
        fprintf(stderr, "usage: gemm_peak MODEL SEQ THREADS [REPS]\n");
        return 2;
    }
    Config c;
    if (config_preset(&c, argv[1]) != 0) {
        fprintf(stderr, "gemm_peak: %s\n", err_msg());
        return 1;
    }
    const int S = atoi(argv[2]), T = atoi(argv[3]), reps = argc > 4 ? atoi(argv[4]) : 5;
    gemm_set_threads(T);
    const int D = c.dim, H = c.hidden, QD = config_q_dim(&c), KVD = config_kv_dim(&c), V = c.vocab, L = c.n_layers;
    const Shape shapes[] = {
        {"fwd wq", 0, 0, QD, S, D, L},        {"fwd wk+wv", 0, 0, KVD, S, D, 2 * L},
        {"fwd wo", 0, 0, D, S, QD, L},        {"fwd w1+w3", 0, 0, H, S, D, 2 * L},
        {"fwd w2", 0, 0, D, S, H, L},         {"fwd cls", 1, 1, S, V, D, 1},
        {"dx wq", 1, 0, D, S, QD, L},         {"dx wk+wv", 1, 0, D, S, KVD, 2 * L},
        {"dx wo", 1, 0, QD, S, D, L},         {"dx w1+w3", 1, 0, D, S, H, 2 * L},
        {"dx w2", 1, 0, H, S, D, L},          {"dx cls", 1, 1, D, S, V, 1},
        {"dw wq", 0, 1, QD, D, S, L},         {"dw wk+wv", 0, 1, KVD, D, S, 2 * L},
        {"dw wo", 0, 1, D, QD, S, L},         {"dw w1+w3", 0, 1, H, D, S, 2 * L},
        {"dw w2", 0, 1, D, H, S, L},          {"dw cls", 1, 1, V, D, S, 1},
    };
    const int ns = sizeof shapes / sizeof shapes[0];
    Rng r;
    rng_init(&r, 3);
    // Rounds over every (product, mode) so that a burst of other load on the
    // machine spoils one sample of many products rather than all samples of one.
    PairCtx *pc = calloc(ns, sizeof(PairCtx));
    double (*best)[3] = malloc(sizeof(double[3]) * ns);
    if (!pc || !best) return 1;
    for (int i = 0; i < ns; i++) {
        const Shape *s = &shapes[i];
        pc[i].s = s;
        for (int t = 0; t < T; t++) {
            pc[i].A[t] = rnd((size_t)s->M * s->K, &r);
            pc[i].B[t] = rnd((size_t)s->K * s->N, &r);
            pc[i].C[t] = rnd((size_t)s->M * s->N, &r);
        }
        best[i][0] = best[i][1] = best[i][2] = 1e30;
    }
    for (int round = 0; round < reps + 1; round++)
        for (int mode = 0; mode < 3; mode++) {
            gemm_set_split(mode != 1);
            for (int i = 0; i < ns; i++) {
                const Shape *s = &shapes[i];
                const int lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N;
                double t0 = time_ms();
                if (mode == 2) threads_run(pair_run, &pc[i]);
                else gemm(s->ta, s->tb, s->M, s->N, s->K, 1.0f, pc[i].A[0], lda, pc[i].B[0], ldb, 0.0f, pc[i].C[0], s->N);
                double dt = time_ms() - t0;
                if (mode == 2) dt /= T;  // T products in that time
                if (round > 0 && dt < best[i][mode]) best[i][mode] = dt;  // round 0 warms up
            }
        }
    gemm_set_split(1);
    double sum_flops = 0, sum_time = 0, best_any = 0;
    fprintf(stderr, "%-10s %6s %6s %6s  %8s %8s %8s  (GFLOPS, %d threads, best of %d)\n", "product", "M", "N", "K",
            "split", "blas", "pair", T, reps);
    for (int i = 0; i < ns; i++) {
        const Shape *s = &shapes[i];
        const double flops = 2.0 * s->M * s->N * s->K;
        double g[3], gbest = 0;
        for (int m = 0; m < 3; m++) {
            g[m] = flops / (best[i][m] * 1e6);
            if (g[m] > gbest) gbest = g[m];
        }
        if (gbest > best_any) best_any = gbest;
        sum_flops += flops * s->count;
        sum_time += flops * s->count / gbest;
        fprintf(stderr, "%-10s %6d %6d %6d  %8.1f %8.1f %8.1f  x%d\n", s->name, s->M, s->N, s->K, g[0], g[1], g[2],
                s->count);
        for (int t = 0; t < T; t++) free(pc[i].A[t]), free(pc[i].B[t]), free(pc[i].C[t]);
    }
    free(pc);
    free(best);
    const double peak = sum_flops / sum_time;
    fprintf(stderr, "peak over the step's products: %.1f GFLOPS (best single product %.1f)\n", peak, best_any);
    printf("{\"model\":\"%s\",\"seq\":%d,\"threads\":%d,\"peak_gflops\":%.1f,\"best_shape_gflops\":%.1f,"
           "\"gemm\":\"%s\"}\n",
           argv[1], S, T, peak, best_any, gemm_backend_name());
    threads_shutdown();
    return 0;
}
