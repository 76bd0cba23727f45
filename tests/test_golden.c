// Golden tests: the CPU model against PyTorch (tools/gen_fixtures.py) on four
// tiny models — logits, loss and every parameter gradient, with both GEMM
// backends — plus the losses of 5 AdamW steps, and the fixture loader's errors.
//
// Metric per tensor: max|a-b| / max|b| <= 1e-4. The references are float64
// (from the same fp32 weights), and an fp32 PyTorch run lands within ~1e-6 of
// them, so 1e-4 leaves room for summation order but not for a wrong formula.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/gemm.h"
#include "core/io.h"
#include "cpu/model.h"
#include "fixture.h"
#include "test.h"
#include "train/optim.h"

#define GOLDEN_TOL 1e-4

static const char *fixture_path(const char *name) {
    static char path[256];
    snprintf(path, sizeof path, "tests/fixtures/%s.bin", name);
    return path;
}

// rel err of a against ref under `label`, with the worst element; counts a failure above tol.
static double compare(const char *label, const float *a, const float *ref, size_t n) {
    size_t worst = 0;
    double maxd = -1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref[i]);
        if (isnan(d)) d = INFINITY;
        if (d > maxd) maxd = d, worst = i;
    }
    double rel = test_rel_err(a, ref, n);
    fprintf(stderr, "    %-16s rel %.2e  worst [%zu] %.8g vs %.8g%s\n", label, rel, worst, a[worst], ref[worst],
            rel <= GOLDEN_TOL ? "" : "  <-- MISMATCH");
    CHECKF(rel <= GOLDEN_TOL, "%s: relative error %.3g > %g", label, rel, GOLDEN_TOL);
    return rel;
}

static float *grads_alloc(const Params *p) {
    float *g = calloc(p->n, sizeof(float));
    if (!g) err_abort(__FILE__, __LINE__, "calloc grads");
    return g;
}

// Forward + backward of fixture `name` with the current GEMM backend.
static void check_fixture_once(Fixture *fx) {
    const Config *c = &fx->cfg;
    const int S = fx->S, V = c->vocab;
    CpuModel m;
    REQUIRE(cpu_model_init(&m, c, S) == 0);
    float *grads = grads_alloc(&fx->params);
    const float *ref_logits = fixture_f32(fx, "logits", (size_t)S * V);
    const float *ref_loss = fixture_f32(fx, "loss", 1);
    if (!ref_logits || !ref_loss) {
        CHECKF(0, "%s", err_msg());
        goto done;
    }
    float loss = cpu_model_forward(&m, &fx->params, fx->tokens, fx->targets);
    compare("logits", m.logits, ref_logits, (size_t)S * V);
    compare("loss", &loss, ref_loss, 1);
    cpu_model_backward(&m, &fx->params, grads, 1.0f);
    for (int i = 0; i < fx->params.n_tensors; i++) {
        const TensorDesc *d = &fx->params.t[i];
        char name[64];
        snprintf(name, sizeof name, "grad.%s", d->name);
        const float *ref = fixture_f32(fx, name, d->numel);
        if (!CHECKF(ref != NULL, "%s", err_msg())) continue;
        compare(name, grads + d->offset, ref, d->numel);
    }
done:
    free(grads);
    cpu_model_free(&m);
}

static void check_fixture(const char *name) {
    Fixture fx;
    if (!CHECKF(fixture_load(&fx, fixture_path(name)) == 0, "%s", err_msg())) return;
    const GemmBackend saved = gemm_get_backend();
    const GemmBackend backends[2] = {GEMM_BLAS, GEMM_BLOCKED};
    for (int b = 0; b < 2; b++) {
        if (backends[b] == GEMM_BLAS && !gemm_have_blas()) {
            fprintf(stderr, "  (no BLAS compiled in: GEMM_BLAS runs the blocked GEMM)\n");
        }
        gemm_set_backend(backends[b]);
        fprintf(stderr, "  %s, gemm %s:\n", name, gemm_backend_name());
        check_fixture_once(&fx);
    }
    gemm_set_backend(saved);
    fixture_free(&fx);
}

TEST(golden_mha) { check_fixture("golden_mha"); }
TEST(golden_gqa) { check_fixture("golden_gqa"); }
TEST(golden_qwen3) { check_fixture("golden_qwen3"); }
TEST(golden_untied) { check_fixture("golden_untied"); }

// cpu_model_backward accumulates grads += loss_scale * dL/dθ: two backwards
// with scales 1 and 0.5 into one block give 1.5x the reference gradients.
TEST(golden_backward_accumulates_scaled) {
    Fixture fx;
    if (!CHECKF(fixture_load(&fx, fixture_path("golden_qwen3")) == 0, "%s", err_msg())) return;
    CpuModel m;
    if (!CHECKF(cpu_model_init(&m, &fx.cfg, fx.S) == 0, "%s", err_msg())) goto out;
    float *grads = grads_alloc(&fx.params);
    cpu_model_forward(&m, &fx.params, fx.tokens, fx.targets);
    cpu_model_backward(&m, &fx.params, grads, 1.0f);
    cpu_model_backward(&m, &fx.params, grads, 0.5f);
    for (int i = 0; i < fx.params.n_tensors; i++) {
        const TensorDesc *d = &fx.params.t[i];
        char name[64];
        snprintf(name, sizeof name, "grad.%s", d->name);
        const float *ref = fixture_f32(&fx, name, d->numel);
        if (!CHECKF(ref != NULL, "%s", err_msg())) continue;
        float *want = malloc(d->numel * sizeof(float));
        for (size_t j = 0; j < d->numel; j++) want[j] = 1.5f * ref[j];
        compare(name, grads + d->offset, want, d->numel);
        free(want);
    }
    free(grads);
    cpu_model_free(&m);
out:
    fixture_free(&fx);
}

// 5 AdamW updates on the fixture's batch (lr 1e-3, betas 0.9/0.95, eps 1e-8,
// wd 0.1 on matrices and the embedding, none on norms, no clipping): the loss
// before each update matches torch.optim.AdamW.
static void check_adamw(const char *name) {
    Fixture fx;
    if (!CHECKF(fixture_load(&fx, fixture_path(name)) == 0, "%s", err_msg())) return;
    const float *ref = fixture_f32(&fx, "adamw_losses", 5);
    CpuModel m;
    if (!CHECKF(ref != NULL, "%s", err_msg()) || !CHECKF(cpu_model_init(&m, &fx.cfg, fx.S) == 0, "%s", err_msg())) {
        fixture_free(&fx);
        return;
    }
    TrainState st;
    memset(&st, 0, sizeof st);
    optim_defaults(&st);
    st.lr = 1e-3f;
    st.beta1 = 0.9f;
    st.beta2 = 0.95f;
    st.eps = 1e-8f;
    st.weight_decay = 0.1f;
    float *g = grads_alloc(&fx.params), *mom = grads_alloc(&fx.params), *var = grads_alloc(&fx.params);
    float got[5];
    for (int step = 0; step < 5; step++) {
        got[step] = cpu_model_forward(&m, &fx.params, fx.tokens, fx.targets);
        memset(g, 0, fx.params.n * sizeof(float));
        cpu_model_backward(&m, &fx.params, g, 1.0f);
        st.adam_t++;
        optim_adamw(&fx.params, g, mom, var, &st, st.lr, 1.0f, NULL);
    }
    fprintf(stderr, "  %s:\n", name);
    compare("adamw_losses", got, ref, 5);
    for (int i = 0; i < 5; i++) {
        double rel = fabs((double)got[i] - ref[i]) / fabs(ref[i]);
        CHECKF(rel <= GOLDEN_TOL, "%s: loss before update %d: %.7f, PyTorch %.7f", name, i, got[i], ref[i]);
    }
    free(g);
    free(mom);
    free(var);
    cpu_model_free(&m);
    fixture_free(&fx);
}

TEST(golden_adamw_losses) {
    check_adamw("golden_mha");
    check_adamw("golden_gqa");
    check_adamw("golden_qwen3");
    check_adamw("golden_untied");
}

// --- the loader's error paths ---------------------------------------------------------

static int write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, n, f);
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

// Loads a corrupted copy of golden_gqa and requires an error containing `expect`.
static void expect_load_error(const char *label, const char *buf, size_t n, const char *expect) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s.bin", test_tmpdir(), label);
    REQUIRE(write_file(path, buf, n) == 0);
    Fixture fx;
    int rc = fixture_load(&fx, path);
    CHECKF(rc != 0, "%s: corrupted fixture loaded without error", label);
    if (rc == 0) {
        fixture_free(&fx);
        return;
    }
    CHECKF(strstr(err_msg(), expect) != NULL && strstr(err_msg(), path) != NULL,
           "%s: error should name the file and say '%s', got: %s", label, expect, err_msg());
}

TEST(fixture_rejects_bad_files) {
    char *buf;
    size_t n;
    REQUIRE(io_read_all(fixture_path("golden_gqa"), &buf, &n) == 0);
    char *copy = malloc(n);
    REQUIRE(copy != NULL);

    memcpy(copy, buf, n);
    copy[0] = 'X';
    expect_load_error("bad_magic", copy, n, "magic");

    memcpy(copy, buf, n);
    copy[8] = 2;  // version
    expect_load_error("bad_version", copy, n, "version 1");

    expect_load_error("truncated", buf, n - 5, "truncated");

    char *longer = calloc(n + 4, 1);  // 4 stray bytes after the last record
    REQUIRE(longer != NULL);
    memcpy(longer, buf, n);
    expect_load_error("trailing", longer, n + 4, "expected the file to end");
    free(longer);

    // rename tensor "wq" to "xq": the params loader must name the missing tensor
    memcpy(copy, buf, n);
    const char rec[8] = {2, 0, 0, 0, 'w', 'q', 0, 0};
    char *hit = memmem(copy, n, rec, sizeof rec);
    REQUIRE(hit != NULL);
    hit[4] = 'x';
    expect_load_error("missing_wq", copy, n, "'wq'");

    // a dim that makes the record run past the end
    memcpy(copy, buf, n);
    hit = memmem(copy, n, rec, sizeof rec);
    REQUIRE(hit != NULL);
    hit[8 + 8] = (char)0xff;  // after name: dtype u32, ndim u32, then dims[0] (L)
    expect_load_error("huge_dim", copy, n, "past the end");

    Fixture fx;
    CHECK(fixture_load(&fx, "tests/fixtures/no_such_fixture.bin") != 0);
    CHECKF(strstr(err_msg(), "no_such_fixture.bin") != NULL, "missing file: error should name it, got: %s", err_msg());

    free(copy);
    free(buf);
}
