// ops_ref: naive double-precision reference forwards of every CPU op and of the
// whole model, written from the definitions in ops.h / model.h with plain loops
// (no gemm, no fp32 op). The finite-difference gradient tests differentiate these
// numerically and compare with the fp32 analytic backwards.
//
// Same layouts as ops.h: activations channel-first [C][S], weights row-major [out][in].
// ops.h already declares ref_rmsnorm_forward, ref_rope_forward and ref_attention_forward.
#pragma once
#include <stddef.h>

#include "cpu/ops.h"
#include "model/config.h"

// x[D,S] = embed[tok[t], :]
void ref_embed_forward(double *x, const double *embed, const int *tok, int D, int S);
// rstd[S] = (mean_c x[c,t]^2 + eps)^-1/2  (the statistic rmsnorm_forward saves)
void ref_rmsnorm_rstd(double *rstd, const double *x, int C, int S, double eps);
// y[OC,S] = W[OC,IC] x[IC,S]
void ref_linear_forward(double *y, const double *W, const double *x, int OC, int IC, int S);
// y[nh*HD,S]: RMSNorm over the HD channels of each head, weight w[HD] shared by heads
void ref_headnorm_forward(double *y, const double *x, const double *w, int nh, int HD, int S, double eps);
// probs[NH,S,S]: causal softmax of q_h·k_g/sqrt(HD), 0 above the diagonal
void ref_attention_probs(double *probs, const double *q, const double *k, int NH, int NKV, int HD, int S);
// g[n] = silu(h1) * h3
void ref_swiglu_forward(double *g, const double *h1, const double *h3, size_t n);
// Mean over positions with target >= 0 of -log softmax(logits[t])[target[t]];
// logits[S,V] (row per position). 0 when every target is ignored.
double ref_crossentropy(const double *logits, const int *target, int S, int V);
// The whole model (model.h block math) in double. params is laid out like a
// Params block of cfg (params_layout; the classifier is the embedding when tied).
// Returns the mean cross-entropy over targets >= 0; fills logits[S,V] if non-NULL.
// Returns NAN if scratch memory cannot be allocated.
double ref_model_loss(const Config *cfg, const double *params, const int *tokens, const int *targets, int S,
                      double *logits);
