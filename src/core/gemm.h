// gemm: the one matrix multiply everything goes through.
//
//   C[M,N] = alpha * op(A)[M,K] · op(B)[K,N] + beta * C     (row-major)
//
// op(X) = X, or Xᵀ when the trans flag is set; lda/ldb/ldc are row strides as
// stored. With BLAS compiled in (OpenBLAS / Accelerate) it calls cblas_sgemm;
// otherwise, or after gemm_set_backend(GEMM_BLOCKED), an in-tree blocked GEMM.
//
// Threads: BLAS runs single-threaded, and gemm() itself splits a large product
// (2·M·N·K >= GEMM_SPLIT_MIN_FLOPS) into row or column blocks run at once on the
// thread pool (core/threads.h), one full-size BLAS call per thread. Library
// thread pools spin and sched_yield against each other on the small GEMMs of a
// training step; ours splits only what pays, and elementwise work shares it.
// Called from inside a pool job, gemm() runs serially on the calling thread.
#pragma once

typedef enum { GEMM_BLAS = 0, GEMM_BLOCKED = 1 } GemmBackend;

// Below this many flops a product runs on one thread (~40 us of one core).
#define GEMM_SPLIT_MIN_FLOPS 4e6

void gemm(int transA, int transB, int M, int N, int K, float alpha,
          const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);
// Always on the calling thread, whatever the size (for code that splits work itself).
void gemm_serial(int transA, int transB, int M, int N, int K, float alpha,
                 const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

// The in-tree implementation (used when no BLAS exists); always compiled.
void gemm_blocked(int transA, int transB, int M, int N, int K, float alpha,
                  const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);
// Naive triple loop: the reference both are tested against.
void gemm_naive(int transA, int transB, int M, int N, int K, float alpha,
                const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

void gemm_set_backend(GemmBackend b);  // GEMM_BLAS falls back to blocked without BLAS
GemmBackend gemm_get_backend(void);
int gemm_have_blas(void);
const char *gemm_backend_name(void);
// A line worth telling the user about the backend's speed (OpenBLAS on a CPU
// it does not know), or NULL.
const char *gemm_backend_note(void);
// The kernels the linked OpenBLAS runs ("SkylakeX", "Prescott", ...), or NULL when the GEMM is not OpenBLAS.
const char *gemm_blas_core(void);
// When OpenBLAS runs its generic kernels on a CPU whose instructions allow
// better ones (and OPENBLAS_CORETYPE is not set): the core type to ask for
// ("SkylakeX" or "Haswell"); else NULL. The library reads OPENBLAS_CORETYPE
// when it loads, so only a new process can use it (the CLI's main).
const char *gemm_blas_core_for_cpu(void);
// Threads of the CPU pipeline: gemm() splits and elementwise work (the pool of
// core/threads.h). n <= 0 = one per online CPU.
void gemm_set_threads(int n);
// Threading policy, for measurement (bench/gemm_peak): 1 (default) = split on
// our pool with single-threaded BLAS; 0 = one BLAS call with the library's own
// threads (threads_count() of them). No effect on the blocked backend.
void gemm_set_split(int on);
