// Thread pool, split GEMMs, GEMM task lists, and the threaded CPU model against
// its single-threaded self and the double reference.
//
// The gradient and golden tests use tiny models that stay below every
// threading threshold; the model test here is large enough that every stage
// (split products, task lists, attention over heads/groups, the chunked
// classifier over vocabulary ranges, threaded norms) really runs on 2+ threads.
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/gemm.h"
#include "core/rng.h"
#include "core/threads.h"
#include "cpu/model.h"
#include "cpu/ops_ref.h"
#include "cpu/par.h"
#include "model/params.h"
#include "test.h"

typedef struct {
    atomic_int calls[THREADS_MAX];
    atomic_int nested_serial;
    int seen_n;
} PoolCtx;

static void nested_fn(void *ctx, int tid, int nt) {
    PoolCtx *c = ctx;
    if (tid == 0 && nt == 1) atomic_fetch_add(&c->nested_serial, 1);
}

static void pool_fn(void *ctx, int tid, int nt) {
    PoolCtx *c = ctx;
    atomic_fetch_add(&c->calls[tid], 1);
    c->seen_n = nt;
    CHECK(threads_in_job());
    threads_run(nested_fn, ctx);  // nested: must run serially, not deadlock
}

TEST(threads_run_calls_every_thread_once) {
    const int saved = threads_count();
    for (int n = 1; n <= 4; n++) {
        threads_set_count(n);
        PoolCtx c;
        memset(&c, 0, sizeof c);
        for (int rep = 0; rep < 200; rep++) CHECK(threads_run(pool_fn, &c) == n);
        for (int t = 0; t < n; t++) CHECKF(atomic_load(&c.calls[t]) == 200, "n=%d tid %d ran %d times", n, t,
                                           atomic_load(&c.calls[t]));
        CHECK(c.seen_n == n);
        CHECKF(atomic_load(&c.nested_serial) == 200 * n, "nested runs %d", atomic_load(&c.nested_serial));
        CHECK(!threads_in_job());
    }
    threads_set_count(saved);
}

TEST(threads_range_partitions) {
    for (size_t n = 0; n < 200; n += 7)
        for (int nt = 1; nt <= 5; nt++) {
            size_t next = 0;
            for (int t = 0; t < nt; t++) {
                size_t b, e;
                threads_range(n, t, nt, 16, &b, &e);
                CHECK(b == next && e >= b && e <= n);
                CHECK(b % 16 == 0 || b == n);
                next = e;
            }
            CHECK(next == n);
        }
}

static float *rand_buf(size_t n, Rng *r) {
    float *x = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = rng_normal(r);
    return x;
}

// gemm() above the split threshold (row and column splits, every transpose) vs one serial call
TEST(gemm_split_matches_serial) {
    const int saved = threads_count();
    threads_set_count(2);
    Rng r;
    rng_init(&r, 11);
    const int shapes[][3] = {{300, 96, 200}, {96, 300, 200}, {257, 255, 64}};
    for (int s = 0; s < 3; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
                float *A = rand_buf((size_t)M * K, &r), *B = rand_buf((size_t)K * N, &r);
                float *C1 = rand_buf((size_t)M * N, &r), *C2 = malloc(sizeof(float) * M * N);
                memcpy(C2, C1, sizeof(float) * M * N);
                const int lda = ta ? M : K, ldb = tb ? K : N;
                gemm(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 0.25f, C1, N);
                gemm_serial(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 0.25f, C2, N);
                char label[64];
                snprintf(label, sizeof label, "split %dx%dx%d t%d%d", M, N, K, ta, tb);
                test_allclose(C1, C2, (size_t)M * N, 1e-5f, 1e-5f, label);
                free(A), free(B), free(C1), free(C2);
            }
    threads_set_count(saved);
}

// A backward-like task list: a sum of two products next to two weight-gradient products.
TEST(par_gemm_tasks_match_serial) {
    const int saved = threads_count();
    Rng r;
    rng_init(&r, 12);
    enum { D = 96, H = 160, S = 128 };
    float *W1 = rand_buf(H * D, &r), *W3 = rand_buf(H * D, &r), *d1 = rand_buf(H * S, &r), *d3 = rand_buf(H * S, &r);
    float *x = rand_buf(D * S, &r);
    float *out[3][3];
    for (int nt = 1; nt <= 3; nt++) {
        threads_set_count(nt);
        float *dx = calloc(D * S, 4), *g1 = calloc(H * D, 4), *g3 = calloc(H * D, 4);
        for (int i = 0; i < H * D; i++) g1[i] = g3[i] = 1.0f;  // accumulation onto existing values
        const ParTask t[3] = {
            {D, S, S, 0.0f, dx, 2, {{1, 0, H, D, S, 1.0f, W1, d1, 0}, {1, 0, H, D, S, 1.0f, W3, d3, 0}}},
            {H, D, D, 1.0f, g1, 1, {{0, 1, S, S, S, 1.0f, d1, x, 0}}},
            {H, D, D, 1.0f, g3, 1, {{0, 1, S, S, S, 0.5f, d3, x, 0}}},
        };
        par_gemm_tasks(t, 3, NULL);
        out[nt - 1][0] = dx, out[nt - 1][1] = g1, out[nt - 1][2] = g3;
    }
    // reference: plain serial products
    float *dx = calloc(D * S, 4), *g1 = malloc(H * D * 4), *g3 = malloc(H * D * 4);
    for (int i = 0; i < H * D; i++) g1[i] = g3[i] = 1.0f;
    gemm_naive(1, 0, D, S, H, 1.0f, W1, D, d1, S, 0.0f, dx, S);
    gemm_naive(1, 0, D, S, H, 1.0f, W3, D, d3, S, 1.0f, dx, S);
    gemm_naive(0, 1, H, D, S, 1.0f, d1, S, x, S, 1.0f, g1, D);
    gemm_naive(0, 1, H, D, S, 0.5f, d3, S, x, S, 1.0f, g3, D);
    for (int nt = 0; nt < 3; nt++) {
        char label[48];
        snprintf(label, sizeof label, "tasks %d threads dx", nt + 1);
        test_allclose(out[nt][0], dx, D * S, 1e-4f, 1e-4f, label);
        snprintf(label, sizeof label, "tasks %d threads dW1", nt + 1);
        test_allclose(out[nt][1], g1, H * D, 1e-4f, 1e-4f, label);
        snprintf(label, sizeof label, "tasks %d threads dW3", nt + 1);
        test_allclose(out[nt][2], g3, H * D, 1e-4f, 1e-4f, label);
        for (int k = 0; k < 3; k++) free(out[nt][k]);
    }
    free(dx), free(g1), free(g3), free(W1), free(W3), free(d1), free(d3), free(x);
    threads_set_count(saved);
}

// Runs forward + backward of cfg with nt threads; returns loss, fills logits and grads.
static float model_run(const Config *cfg, const Params *p, const int *tok, const int *tgt, int S, int nt,
                       CpuPrecision prec, float *logits, float *grads) {
    threads_set_count(nt);
    CpuModel m;
    if (cpu_model_init_opts(&m, cfg, S, &(CpuModelOptions){.precision = prec}) != 0) return NAN;
    float loss = cpu_model_forward(&m, p, tok, tgt);
    memcpy(logits, m.logits, sizeof(float) * (size_t)S * cfg->vocab);
    memset(grads, 0, sizeof(float) * p->n);
    cpu_model_backward(&m, p, grads, 1.0f);
    cpu_model_free(&m);
    return loss;
}

// GQA + QK-norm + untied classifier, sized so every stage threads.
TEST(model_threaded_matches_serial_and_reference) {
    const int saved = threads_count();
    enum { S = 96 };
    Config cfg = {.dim = 192, .hidden = 384, .n_layers = 2, .n_heads = 6, .n_kv_heads = 2, .head_dim = 32,
                  .vocab = 3000, .seq_len = S, .norm_eps = 1e-5f, .rope_theta = 10000.0f, .rope_layout = ROPE_HALF,
                  .qk_norm = 1, .tied = 0, .res_scale = 1.0f};
    snprintf(cfg.name, sizeof cfg.name, "threads-test");
    Params p;
    REQUIRE(params_init(&p, &cfg) == 0);
    params_init_random(&p, 3);
    Rng r;
    rng_init(&r, 5);
    int tok[S], tgt[S];
    for (int t = 0; t < S; t++) tok[t] = (int)rng_below(&r, cfg.vocab), tgt[t] = (int)rng_below(&r, cfg.vocab);
    tgt[7] = -1;
    const size_t nl = (size_t)S * cfg.vocab;
    float *l1 = malloc(nl * 4), *l2 = malloc(nl * 4), *g1 = malloc(p.n * 4), *g2 = malloc(p.n * 4);
    const float loss1 = model_run(&cfg, &p, tok, tgt, S, 1, CPU_FP32, l1, g1);
    const float loss2 = model_run(&cfg, &p, tok, tgt, S, 2, CPU_FP32, l2, g2);
    CHECKF(fabsf(loss1 - loss2) <= 1e-5f * fabsf(loss1), "loss 1 thread %.8g, 2 threads %.8g", loss1, loss2);
    test_allclose(l2, l1, nl, 1e-5f, 1e-5f, "logits 2 threads vs 1");
    for (int i = 0; i < p.n_tensors; i++) {
        const TensorDesc *d = &p.t[i];
        double rel = test_rel_err(g2 + d->offset, g1 + d->offset, d->numel);
        CHECKF(rel < 1e-5, "grad %s: 2 threads vs 1 rel err %.3g", d->name, rel);
    }
    // and the threaded forward against the double reference model
    double *pd = malloc(sizeof(double) * p.n), *ld = malloc(sizeof(double) * nl);
    for (size_t i = 0; i < p.n; i++) pd[i] = p.data[i];
    const double want = ref_model_loss(&cfg, pd, tok, tgt, S, ld);
    CHECKF(fabs(loss2 - want) <= 1e-4 * fabs(want), "loss %.8g, reference %.8g", loss2, want);
    double maxd = 0, maxr = 0;
    for (size_t i = 0; i < nl; i++) {
        maxd = fmax(maxd, fabs(l2[i] - ld[i]));
        maxr = fmax(maxr, fabs(ld[i]));
    }
    CHECKF(maxd <= 1e-4 * maxr + 1e-5, "logits vs reference: max diff %.3g (max |logit| %.3g)", maxd, maxr);
    free(pd), free(ld), free(l1), free(l2), free(g1), free(g2);
    params_free(&p);
    threads_set_count(saved);
}
