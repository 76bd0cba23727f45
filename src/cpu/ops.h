// ops: the forward and backward operations of the model on the CPU.
//
// Layout: activations are channel-first [C][S] (element (c,t) at c*S+t), the
// ANE's layout, so the same buffers feed every pipeline. Weights are row-major
// [out][in]. Backward functions ACCUMULATE into weight gradients (dw +=) and
// OVERWRITE input gradients (dx =) unless stated otherwise.
//
// Each op here is the fast version; ops_ref.c holds naive double-precision
// references used by the finite-difference gradient tests.
#pragma once
#include <stddef.h>

#include "model/config.h"

// --- embedding ------------------------------------------------------------------
// x[D,S] = embed[tok[t], :] for each position t
void embed_forward(float *x, const float *embed, const int *tok, int D, int S);
// dembed[tok[t], :] += dx[:, t]  (only rows that occur are touched)
void embed_backward(float *dembed, const float *dx, const int *tok, int D, int S);

// --- RMSNorm over channels, per position ------------------------------------------
// y[C,S] = x * w[c] * rstd[t],  rstd[t] = (mean_c x[c,t]^2 + eps)^-1/2 (saved for backward)
void rmsnorm_forward(float *y, float *rstd, const float *x, const float *w, int C, int S, float eps);
// dx[C,S] = rstd*(w*dy - x*rstd^2 * mean_c(dy*w*x)),  dw[C] += sum_t dy*x*rstd
// (dw NULL: frozen, no weight gradient; dx NULL: only the weight gradient, dx computed elsewhere)
void rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w, const float *rstd,
                      int C, int S);

// --- linear: y[OC,S] = W[OC,IC] x[IC,S] --------------------------------------------
void linear_forward(float *y, const float *W, const float *x, int OC, int IC, int S);
// dx[IC,S] (= or += per accumulate_dx) W^T dy;  dW[OC,IC] += dy x^T (skipped if dW NULL)
void linear_backward(float *dx, float *dW, const float *dy, const float *W, const float *x, int OC, int IC, int S,
                     int accumulate_dx);

// --- RoPE ----------------------------------------------------------------------------
// Precomputed angles for positions [0, S) and head_dim HD.
typedef struct {
    int S, HD;
    float *cos, *sin;  // (S, HD/2): angle(t, i) = t * theta^(-2i/HD)
} RopeTable;
int rope_table_init(RopeTable *rt, int S, int HD, float theta);
void rope_table_free(RopeTable *rt);
// In place on x[nh*HD, S] (nh heads of HD channels each). Interleaved rotates
// channels (2i, 2i+1); half rotates (i, i+HD/2), both by angle(t, i).
void rope_forward(float *x, const RopeTable *rt, int nh, RopeLayout layout);
// The transpose of the rotation (= rotation by the negative angle), in place on dx.
void rope_backward(float *dx, const RopeTable *rt, int nh, RopeLayout layout);

// --- QK-norm: RMSNorm over HD channels of each head, weight w[HD] shared by heads ---
// y, x: [nh*HD, S]; rstd: [nh, S]
void headnorm_forward(float *y, float *rstd, const float *x, const float *w, int nh, int HD, int S, float eps);
// (dw NULL: frozen, no weight gradient)
void headnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w, const float *rstd,
                       int nh, int HD, int S);

// --- causal attention with GQA ---------------------------------------------------------
// q[NH*HD,S], k/v[NKV*HD,S]; query head h uses kv head h/(NH/NKV).
// probs[NH,S,S]: probs[h][t][s] = softmax_s(q_h[:,t]·k_g[:,s] / sqrt(HD)) for s <= t, 0 for s > t.
// out[NH*HD,S]: out[h*HD+i, t] = sum_s probs[h][t][s] v[g*HD+i, s]
void attention_forward(float *out, float *probs, const float *q, const float *k, const float *v, int NH, int NKV,
                       int HD, int S);
// dq[NH*HD,S] =, dk/dv[NKV*HD,S] = (summed over the query heads of each kv head).
// scratch: at least S*S floats.
void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *probs, const float *q,
                        const float *k, const float *v, int NH, int NKV, int HD, int S, float *scratch);

// --- SwiGLU: g = silu(h1) * h3 -------------------------------------------------------------
void swiglu_forward(float *g, const float *h1, const float *h3, size_t n);
// dh1 = dg*h3*silu'(h1), dh3 = dg*silu(h1)
void swiglu_backward(float *dh1, float *dh3, const float *dg, const float *h1, const float *h3, size_t n);

// --- classifier + mean cross-entropy ------------------------------------------------------
// logits[S,V] = (W[V,D] x[D,S])^T  — row per position, so softmax runs on contiguous rows.
// Returns the mean over the S positions of -log softmax(logits[t])[target[t]].
// If dlogits is non-NULL, writes dlogits[S,V] = scale * (softmax - onehot) / n_valid, where n_valid
// is the number of targets >= 0 (rows with ignored targets are zero; all zero if n_valid == 0).
// dlogits may alias logits: the probabilities overwrite the logits in place.
// Targets < 0 are ignored (no loss, no gradient) and excluded from the mean.
float crossentropy_forward_backward(float *dlogits, const float *logits, const int *target, int S, int V,
                                    float scale);

// --- naive references (ops_ref.c): double precision, plain loops --------------------------
void ref_rmsnorm_forward(double *y, const double *x, const double *w, int C, int S, double eps);
void ref_rope_forward(double *x, int nh, int HD, int S, double theta, RopeLayout layout);
void ref_attention_forward(double *out, const double *q, const double *k, const double *v, int NH, int NKV, int HD,
                           int S);
