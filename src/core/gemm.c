#include "core/gemm.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/threads.h"

#if defined(USE_CBLAS) && !defined(USE_ACCELERATE)
#include <dlfcn.h>  // OpenBLAS's thread and core-name calls are looked up (below)
#endif
#ifdef USE_CBLAS
#ifdef USE_ACCELERATE
#include <Accelerate/Accelerate.h>
#else
#include <cblas.h>
#endif
static GemmBackend g_backend = GEMM_BLAS;
#else
static GemmBackend g_backend = GEMM_BLOCKED;
#endif

int gemm_have_blas(void) {
#ifdef USE_CBLAS
    return 1;
#else
    return 0;
#endif
}

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static void blas_single(void);

void gemm_set_backend(GemmBackend b) {
    pthread_once(&g_once, blas_single);  // an explicit choice is never undone by the default below
    g_backend = gemm_have_blas() ? b : GEMM_BLOCKED;
}
GemmBackend gemm_get_backend(void) {
    pthread_once(&g_once, blas_single);
    return g_backend;
}

// BLAS thread count. gemm() splits products on our own pool, so the library
// must stay single-threaded. Only OpenBLAS has the call, so only a build linked
// against it by name (-DHAVE_OPENBLAS from the Makefile) references it. The
// system -lblas (-DUSE_CBLAS alone) may be netlib, which lacks the symbol (a
// reference would not link), or OpenBLAS behind Debian's libblas.so.3
// alternative, whose own threads would then fight ours: there the call is
// looked up at run time and used when present.
typedef void (*BlasThreadsFn)(int);
static BlasThreadsFn g_blas_threads;

#if defined(HAVE_OPENBLAS)
void openblas_set_num_threads(int);
static BlasThreadsFn blas_threads_lookup(void) { return openblas_set_num_threads; }
#elif defined(USE_CBLAS) && !defined(USE_ACCELERATE)
static BlasThreadsFn blas_threads_lookup(void) {
    void *sym = dlsym(RTLD_DEFAULT, "openblas_set_num_threads");
    BlasThreadsFn fn;
    memcpy(&fn, &sym, sizeof fn);  // ISO C has no cast from object to function pointer; POSIX makes this valid
    return fn;
}
#else
static BlasThreadsFn blas_threads_lookup(void) { return NULL; }
#endif

static void blas_threads(int n) {
    if (g_blas_threads) g_blas_threads(n);
}

static int g_split = 1;
static void blas_single(void) {  // we split; BLAS must not spawn its own
    g_blas_threads = blas_threads_lookup();
    blas_threads(1);
#if defined(USE_CBLAS) && !defined(USE_ACCELERATE) && !defined(HAVE_OPENBLAS)
    // The system -lblas is whatever libblas.so.3 names at run time: OpenBLAS
    // behind Debian's alternative, or the reference (netlib) BLAS, which runs
    // the step's GEMMs at 5 GFLOPS where the in-tree GEMM reaches 26 on this
    // project's machine. So the reference library is linked (installing
    // OpenBLAS later makes the same binary fast) but not used by default;
    // gemm_set_backend(GEMM_BLAS) still selects it (the tests do).
    if (!g_blas_threads) g_backend = GEMM_BLOCKED;
#endif
}

const char *gemm_backend_name(void) {
    pthread_once(&g_once, blas_single);
    if (g_backend != GEMM_BLAS) return "blocked (in-tree)";
#if defined(USE_ACCELERATE)
    return "Accelerate";
#elif defined(HAVE_OPENBLAS)
    return "OpenBLAS";
#elif defined(USE_CBLAS)
    pthread_once(&g_once, blas_single);  // the lookup tells which library -lblas is
    return g_blas_threads ? "cblas (system -lblas = OpenBLAS)" : "cblas (system -lblas)";
#else
    return "blocked (in-tree)";
#endif
}

// The kernels OpenBLAS chose (NULL when the GEMM is not OpenBLAS's).
const char *gemm_blas_core(void) {
#if defined(USE_CBLAS) && !defined(USE_ACCELERATE)
    void *sym = dlsym(RTLD_DEFAULT, "openblas_get_corename");
    char *(*corename)(void);
    if (!sym) return NULL;
    memcpy(&corename, &sym, sizeof corename);
    return corename();
#else
    return NULL;
#endif
}

static int blas_core_generic(const char *core) {
    return core && (!strcmp(core, "Prescott") || !strcmp(core, "prescott") || !strcmp(core, "Core2"));
}

// OpenBLAS picks its kernels from the CPU model at load time; a model it
// does not know gets the generic SSE3 ones (1.9x slower per update on this
// project's newest VMs), though the CPU has the instructions of newer ones.
const char *gemm_blas_core_for_cpu(void) {
#if defined(USE_CBLAS) && !defined(USE_ACCELERATE) && defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (getenv("OPENBLAS_CORETYPE") || !blas_core_generic(gemm_blas_core())) return NULL;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
    return NULL;
}

const char *gemm_backend_note(void) {
    if (gemm_get_backend() != GEMM_BLAS) return NULL;
    const char *chosen = getenv("ANETRAIN_BLAS_CORE");
    if (chosen && !strcmp(chosen, "chosen") && getenv("OPENBLAS_CORETYPE"))
        return "OpenBLAS does not know this CPU's model: anetrain chose its kernels from the CPU's instructions "
               "(OPENBLAS_CORETYPE; ANETRAIN_BLAS_CORE=keep keeps the generic ones)";
    if (!getenv("OPENBLAS_CORETYPE") && blas_core_generic(gemm_blas_core()))
        return "OpenBLAS runs its generic kernels on this CPU; OPENBLAS_CORETYPE=Haswell (AVX2) or SkylakeX "
               "(AVX-512) may be much faster";
    return NULL;
}

void gemm_set_threads(int n) {
    pthread_once(&g_once, blas_single);
    threads_set_count(n);
    if (!g_split) blas_threads(threads_count());
}

void gemm_set_split(int on) {
    pthread_once(&g_once, blas_single);
    g_split = on != 0;
    blas_threads(g_split ? 1 : threads_count());
}

// element (i,j) of op(X) where X is row-major with stride ld
#define OP(X, t, i, j, ld) ((t) ? (X)[(size_t)(j) * (ld) + (i)] : (X)[(size_t)(i) * (ld) + (j)])

void gemm_naive(int transA, int transB, int M, int N, int K, float alpha,
                const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double acc = 0;
            for (int k = 0; k < K; k++) acc += (double)OP(A, transA, i, k, lda) * OP(B, transB, k, j, ldb);
            float *c = &C[(size_t)i * ldc + j];
            *c = (float)(alpha * acc + (beta == 0.0f ? 0.0 : (double)beta * *c));
        }
}

// Blocked GEMM: pack an MC×KC block of op(A) and a KC×NC block of op(B) into
// contiguous row-major tiles, then run an i-k-j inner loop the compiler
// vectorizes along j. Not BLAS speed, but within a small factor, and it makes
// `make` work with only a C compiler.
enum { MC = 64, KC = 256, NC = 1024 };

void gemm_blocked(int transA, int transB, int M, int N, int K, float alpha,
                  const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    for (int i = 0; i < M; i++) {
        float *c = &C[(size_t)i * ldc];
        if (beta == 0.0f) memset(c, 0, sizeof(float) * (size_t)N);
        else if (beta != 1.0f) for (int j = 0; j < N; j++) c[j] *= beta;
    }
    if (K == 0 || alpha == 0.0f) return;
    float *pa = malloc(sizeof(float) * MC * KC);
    float *pb = malloc(sizeof(float) * KC * NC);
    if (!pa || !pb) { free(pa); free(pb); gemm_naive(transA, transB, M, N, K, alpha, A, lda, B, ldb, 1.0f, C, ldc); return; }
    for (int j0 = 0; j0 < N; j0 += NC) {
        int nb = N - j0 < NC ? N - j0 : NC;
        for (int k0 = 0; k0 < K; k0 += KC) {
            int kb = K - k0 < KC ? K - k0 : KC;
            for (int k = 0; k < kb; k++)
                for (int j = 0; j < nb; j++) pb[k * nb + j] = OP(B, transB, k0 + k, j0 + j, ldb);
            for (int i0 = 0; i0 < M; i0 += MC) {
                int mb = M - i0 < MC ? M - i0 : MC;
                for (int i = 0; i < mb; i++)
                    for (int k = 0; k < kb; k++) pa[i * kb + k] = alpha * OP(A, transA, i0 + i, k0 + k, lda);
                for (int i = 0; i < mb; i++) {
                    float *restrict c = &C[(size_t)(i0 + i) * ldc + j0];
                    for (int k = 0; k < kb; k++) {
                        const float a = pa[i * kb + k];
                        const float *restrict b = &pb[k * nb];
                        for (int j = 0; j < nb; j++) c[j] += a * b[j];
                    }
                }
            }
        }
    }
    free(pa);
    free(pb);
}

void gemm_serial(int transA, int transB, int M, int N, int K, float alpha,
                 const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    pthread_once(&g_once, blas_single);
#ifdef USE_CBLAS
    if (g_backend == GEMM_BLAS) {
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
#endif
    gemm_blocked(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// One product split into row blocks of C (split_m) or column blocks, one per thread.
typedef struct {
    int ta, tb, M, N, K, lda, ldb, ldc, split_m;
    float alpha, beta;
    const float *A, *B;
    float *C;
} SplitJob;

static void split_run(void *ctx, int tid, int nt) {
    const SplitJob *j = ctx;
    size_t b, e;
    if (j->split_m) {
        threads_range((size_t)j->M, tid, nt, 16, &b, &e);
        if (e > b)
            gemm_serial(j->ta, j->tb, (int)(e - b), j->N, j->K, j->alpha, j->A + (j->ta ? b : b * j->lda), j->lda, j->B,
                        j->ldb, j->beta, j->C + b * j->ldc, j->ldc);
    } else {
        threads_range((size_t)j->N, tid, nt, 16, &b, &e);
        if (e > b)
            gemm_serial(j->ta, j->tb, j->M, (int)(e - b), j->K, j->alpha, j->A, j->lda, j->B + (j->tb ? b * j->ldb : b),
                        j->ldb, j->beta, j->C + b, j->ldc);
    }
}

void gemm(int transA, int transB, int M, int N, int K, float alpha,
          const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    pthread_once(&g_once, blas_single);
    const double flops = 2.0 * M * N * K;
    const int big = M > N ? M : N;
    if (flops < GEMM_SPLIT_MIN_FLOPS || big < 64 || threads_in_job() || threads_count() < 2 ||
        (!g_split && g_backend == GEMM_BLAS)) {
        gemm_serial(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    SplitJob j = {transA, transB, M, N, K, lda, ldb, ldc, M >= N, alpha, beta, A, B, C};
    threads_run(split_run, &j);
}
