// ops_fast: the fused and threaded forms of the ops that cpu/model.c runs in a
// training step, next to the single-op API of cpu/ops.h (which the gradient
// tests call one by one, and which shares the code below). Same layouts:
// activations channel-first [C][S], weights row-major [out][in].
#pragma once
#include <stddef.h>

#include "core/fp16.h"
#include "cpu/ops.h"
#include "cpu/par.h"

// RoPE with tables transposed to [HD/2][S] so the inner loop runs along t.
typedef struct {
    int S, HD;
    float *cos, *sin;  // (HD/2, S)
} RopeT;
int ropet_init(RopeT *rt, const RopeTable *src);
void ropet_free(RopeT *rt);
// In place on nh heads of x[nh*HD, S]; sign +1 forward, -1 backward. Threaded over heads.
void ropet_apply(float *x, const RopeT *rt, int nh, RopeLayout layout, float sign);

// rmsnorm_forward of positions [b, e) only, on this thread.
void rmsnorm_forward_range(float *y, float *rstd, const float *x, const float *w, int C, int S, float eps, size_t b,
                           size_t e);
// swiglu_backward of n elements on this thread: the first n_vector through
// the vector math (where the build has it), the rest through expf. An
// element's value depends only on which of the two it gets, so callers decide
// by its index in the whole array of N: below SWIGLU_VECTOR_END(N), vector
// (what swiglu_backward does: all but the array's last N % 8).
#define SWIGLU_VECTOR_END(N) ((N) & ~(size_t)7)
void swiglu_backward_span(float *dh1, float *dh3, const float *dg, const float *h1, const float *h3, size_t n,
                          size_t n_vector);

// --- fused with the device pipelines' surface I/O (ops_f16.c) -------------------------------
// An input read from fp16 rows (F16Rows: a surface region) or an output
// written as fp32 and as fp16 rows, in one pass while each slice is in cache:
// exactly what the op and mil_kernel_fetch / mil_kernel_stage give one after the other.

// y[rows][cols] = x + s·o (o: fp16 rows; y may be x), y also into y16 unless
// its .p is NULL; o.p NULL: y = s·x. Threaded over rows.
void axpy_f16(float *y, F16Rows y16, const float *x, F16Rows o, float s, int rows, int cols);
// rmsnorm_forward; y also into y16 ([C] rows of S). Threaded over positions.
void rmsnorm_forward_f16(float *y, F16Rows y16, float *rstd, const float *x, const float *w, int C, int S, float eps);
// swiglu_backward of [rows][cols] with dg, h1, h3 read from fp16 rows, dh1
// and dh3 also into dh1_16, dh3_16. Threaded over rows.
void swiglu_backward_f16(float *dh1, float *dh3, F16Rows dh1_16, F16Rows dh3_16, F16Rows dg, F16Rows h1, F16Rows h3,
                         int rows, int cols);

// rmsnorm_backward, then dx += residual (residual may be NULL). Threaded.
void rmsnorm_backward_add(float *dx, float *dw, const float *dy, const float *x, const float *w, const float *rstd,
                          int C, int S, const float *residual);

// Causal attention threaded over heads (forward) and kv groups (backward), the
// causal triangle computed in blocks of rows. Same math as ops.h.
// Backward scratch: nthreads * S*S floats; uses as many threads as it holds.
void attention_forward_par(float *out, float *probs, const float *q, const float *k, const float *v, int NH,
                           int NKV, int HD, int S);
void attention_backward_par(float *dq, float *dk, float *dv, const float *dout, const float *probs, const float *q,
                            const float *k, const float *v, int NH, int NKV, int HD, int S, float *scratch,
                            size_t scratch_floats);

// --- classifier + cross-entropy, chunked over the vocabulary ---------------------------------
// logits[S,V] = (W[V,D] x[D,S])ᵀ, computed per thread in chunks of CLS_CHUNK rows of W;
// each chunk's softmax statistics are folded in while it is in cache. lse[t] receives
// log(sum_v exp(logits[t,v])) (saved for the backward). Returns the mean CE over
// targets >= 0 (0 if none; NaN if any logit of a counted row is NaN/inf).
// scratch: 2 * nthreads * S floats. bf16: round W chunks (into wscratch,
// nthreads * CLS_CHUNK * D floats) — x must already be rounded by the caller.
enum { CLS_CHUNK = 1024 };
// At most max_threads threads (what the scratch was sized for).
// scratch: nthreads * 3 * S floats. logits NULL: none are kept (the backward
// recomputes them chunk by chunk) and chunks (nthreads * S * CLS_CHUNK floats) holds them
// meanwhile; the loss, lse and the backward's results are the same bit for bit.
float classifier_forward(float *logits, float *lse, const float *W, const float *x, const int *target, int S, int V,
                         int D, float *scratch, float *chunks, const ParScratch *wscratch, int max_threads);
// dlogits = scale * (softmax - onehot) / n_valid, rebuilt chunk by chunk from logits
// and lse into per-thread chunk buffers (dscratch: nthreads * S * CLS_CHUNK floats),
// then dW[V,D] = dw_beta dW + dlogitsᵀ xᵀ (skipped if dW is NULL: frozen; dw_beta 0
// writes dW without reading it) and dx[D,S] = Wᵀ dlogitsᵀ (per-thread partials in
// xscratch: nthreads * D * S floats, summed into dx). bf16: dlogits chunks and W
// chunks are rounded (wscratch as above).
void classifier_backward(float *dx, float *dW, float dw_beta, const float *logits, const float *lse, const float *W, const float *x,
                         const int *target, int S, int V, int D, float scale, float *dscratch, float *xscratch,
                         const ParScratch *wscratch, int max_threads);

// In place, threaded: x[i] = bf16_round(x[i]).
void bf16_round_inplace(float *x, size_t n);
// dst = bf16_round(src), threaded.
void bf16_round_copy(float *dst, const float *src, size_t n);
// Plain helpers used between GEMMs, threaded:
void vec_copy(float *dst, const float *src, size_t n);
void vec_add(float *dst, const float *src, size_t n);  // dst += src
