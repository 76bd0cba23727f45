// Core utilities: gemm backends against the naive reference, atomic files, presets.
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/gemm.h"
#include "core/io.h"
#include "core/rng.h"
#include "model/config.h"
#include "model/params.h"
#include "test.h"

TEST(gemm_backends_match_naive) {
    Rng r;
    rng_init(&r, 1);
    int shapes[][3] = {{1, 1, 1}, {7, 5, 3}, {65, 130, 300}, {64, 1025, 257}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
                float *C0 = malloc(sizeof(float) * M * N), *C1 = malloc(sizeof(float) * M * N),
                      *C2 = malloc(sizeof(float) * M * N);
                for (int i = 0; i < M * K; i++) A[i] = rng_normal(&r);
                for (int i = 0; i < K * N; i++) B[i] = rng_normal(&r);
                for (int i = 0; i < M * N; i++) C0[i] = C1[i] = C2[i] = rng_normal(&r);
                int lda = ta ? M : K, ldb = tb ? K : N;
                gemm_naive(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 0.25f, C0, N);
                gemm_blocked(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 0.25f, C1, N);
                gemm(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, 0.25f, C2, N);
                char label[64];
                snprintf(label, sizeof label, "blocked %dx%dx%d t%d%d", M, N, K, ta, tb);
                test_allclose(C1, C0, (size_t)M * N, 1e-4f, 1e-4f, label);
                snprintf(label, sizeof label, "%s %dx%dx%d t%d%d", gemm_backend_name(), M, N, K, ta, tb);
                test_allclose(C2, C0, (size_t)M * N, 1e-4f, 1e-4f, label);
                free(A), free(B), free(C0), free(C1), free(C2);
            }
    }
}

// The CLI asks OpenBLAS for the kernels the CPU's instructions allow when the
// library, not knowing the CPU's model, chose its generic ones (it restarts
// itself with OPENBLAS_CORETYPE set); ANETRAIN_BLAS_CORE=keep keeps them.
// Where OpenBLAS knows the CPU, or is not the GEMM, nothing changes.
TEST(cli_runs_the_blas_kernels_the_cpu_allows) {
    const char *here = gemm_blas_core(), *want = gemm_blas_core_for_cpu();
    // the test runner itself may have started again with better kernels (as the CLI does)
    const char *how = getenv("ANETRAIN_BLAS_CORE");
    const int chosen = how && !strcmp(how, "chosen");
    if (!here || (getenv("OPENBLAS_CORETYPE") && !chosen)) {  // (then the library's own choice is not known here)
        test_skip(here ? "OPENBLAS_CORETYPE is set" : "the GEMM is not OpenBLAS");
        return;
    }
    char *out = NULL, expect[64];
    if (chosen) {  // here are the kernels asked for; the library's own choice was generic ones
        snprintf(expect, sizeof expect, "%s kernels", here);
        int rc = test_runf(&out, "env -u OPENBLAS_CORETYPE -u ANETRAIN_BLAS_CORE %s --version", test_bin());
        CHECKF(rc == 0 && out && strstr(out, expect), "want '%s': %s", expect, out ? out : "");
        free(out);
        rc = test_runf(&out, "env -u OPENBLAS_CORETYPE ANETRAIN_BLAS_CORE=keep %s --version", test_bin());
        CHECKF(rc == 0 && out && strstr(out, " kernels") && !strstr(out, expect), "with keep, want other kernels "
               "than '%s': %s", expect, out ? out : "");
        free(out);
        return;
    }
    snprintf(expect, sizeof expect, "%s kernels", want ? want : here);
    int rc = test_runf(&out, "env -u OPENBLAS_CORETYPE -u ANETRAIN_BLAS_CORE %s --version", test_bin());
    CHECKF(rc == 0 && out && strstr(out, expect), "want '%s' (the library chose %s here): %s", expect, here,
           out ? out : "");
    free(out);
    snprintf(expect, sizeof expect, "%s kernels", here);
    rc = test_runf(&out, "env -u OPENBLAS_CORETYPE ANETRAIN_BLAS_CORE=keep %s --version", test_bin());
    CHECKF(rc == 0 && out && strstr(out, expect), "with keep, want '%s': %s", expect, out ? out : "");
    free(out);
}

TEST(atomic_file_replaces_or_keeps_old) {
    char path[512];
    snprintf(path, sizeof path, "%s/atomic.bin", test_tmpdir());
    AtomicFile af;
    REQUIRE(io_atomic_open(&af, path) == 0);
    io_atomic_write(&af, "old", 3);
    REQUIRE(io_atomic_commit(&af) == 0);
    // an aborted write leaves the old content and no tmp file
    REQUIRE(io_atomic_open(&af, path) == 0);
    io_atomic_write(&af, "new-but-aborted", 15);
    io_atomic_abort(&af);
    char *txt = NULL;
    REQUIRE(io_read_all(path, &txt, NULL) == 0);
    CHECK(strcmp(txt, "old") == 0);
    free(txt);
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(access(tmp, F_OK) != 0);
    // writing into a missing directory fails with the path in the message
    CHECK(io_atomic_open(&af, "/nonexistent-dir/x.bin") != 0);
    CHECK(strstr(err_msg(), "/nonexistent-dir/x.bin.tmp") != NULL);
}

TEST(presets_valid_and_param_counts) {
    const char *names[] = {"stories260k", "stories15m", "stories42m", "stories110m", "qwen3-0.6b",
                           "tiny-mha",    "tiny-gqa",   "tiny-qwen3"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        Config c;
        REQUIRE(config_preset(&c, names[i]) == 0);
        CHECKF(config_validate(&c, names[i]) == 0, "%s: %s", names[i], err_msg());
        size_t total;
        TensorDesc t[PARAMS_MAX_TENSORS];
        params_layout(&c, t, &total);
        CHECKF(total == config_num_params(&c), "%s: layout %zu vs count %zu", names[i], total, config_num_params(&c));
    }
    Config c;
    config_preset(&c, "stories110m");
    // 109.53M = 84.95M transformer + 24.58M embed (+768 rms_final), ane-spec 1.1
    CHECKF(config_num_params(&c) == 109529856, "stories110m params %zu", config_num_params(&c));
    config_preset(&c, "qwen3-0.6b");
    // Qwen3-0.6B as published: 596,049,920 (incl. 28*2*128 QK-norm weights, tied lm_head)
    CHECKF(config_num_params(&c) == 596049920, "qwen3 params %zu", config_num_params(&c));
    CHECK(config_preset(&c, "nope") != 0);
}
