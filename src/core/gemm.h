// gemm: the one matrix multiply everything goes through.
//
//   C[M,N] = alpha * op(A)[M,K] · op(B)[K,N] + beta * C     (row-major)
//
// op(X) = X, or Xᵀ when the trans flag is set; lda/ldb/ldc are row strides as
// stored. With BLAS compiled in (OpenBLAS / Accelerate) it calls cblas_sgemm;
// otherwise, or after gemm_set_backend(GEMM_NAIVE...), an in-tree blocked GEMM.
#pragma once

typedef enum { GEMM_BLAS = 0, GEMM_BLOCKED = 1 } GemmBackend;

void gemm(int transA, int transB, int M, int N, int K, float alpha,
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
void gemm_set_threads(int n);          // BLAS threads (no-op for the blocked path)
