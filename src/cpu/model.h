// model: the whole transformer forward and backward on the CPU (the reference pipeline).
//
// Per layer (pre-norm Llama / Qwen3 block, channel-first [C][S]):
//   xn  = RMSNorm(x; rms_att)
//   q   = Wq xn, k = Wk xn, v = Wv xn          q:[QD,S] k,v:[KVD,S]
//   q,k = headnorm(q; q_norm), headnorm(k; k_norm)   (Qwen3 only)
//   q,k = RoPE(q), RoPE(k)                        (interleaved or rotate-half)
//   a   = causal attention, query head h uses kv head h/(NH/NKV)
//   x2  = x + res_scale * Wo a
//   x2n = RMSNorm(x2; rms_ffn)
//   x'  = x2 + res_scale * W2 (silu(W1 x2n) * W3 x2n)
// then xf = RMSNorm(x; rms_final), logits = Wcls xf, mean cross-entropy.
#pragma once
#include "cpu/ops.h"
#include "model/params.h"

typedef struct {
    float *x;      // (D,S)  layer input (residual stream)
    float *xn;     // (D,S)  RMSNorm(x)
    float *rstd1;  // (S)
    float *q_pre;  // (QD,S) Wq xn (before QK-norm; == q when no QK-norm)
    float *k_pre;  // (KVD,S)
    float *qn_rstd, *kn_rstd;  // (NH,S), (NKV,S)  QK-norm stats
    float *q;      // (QD,S)  after QK-norm and RoPE
    float *k;      // (KVD,S)
    float *v;      // (KVD,S)
    float *probs;  // (NH,S,S)
    float *att;    // (QD,S)  attention output before Wo
    float *x2;     // (D,S)  after the attention residual
    float *x2n;    // (D,S)
    float *rstd2;  // (S)
    float *h1, *h3, *g;  // (H,S)
} LayerActs;

typedef struct {
    Config cfg;
    int S;               // window length used by this instance (<= cfg.seq_len)
    RopeTable rope;
    LayerActs *layers;   // (L)
    float *act_block;    // one allocation behind all LayerActs
    float *x_out;        // (D,S) output of the last layer
    float *xf;           // (D,S) final RMSNorm
    float *rstdf;        // (S)
    float *logits;       // (S,V)
    float *dlogits;      // (S,V)
    int *tokens, *targets;  // (S) copies from the last forward
    float loss;          // mean CE of the last forward (0 if no targets)
    // backward scratch
    float *dx, *dx2, *dtmp, *dxn;     // (D,S)
    float *dq, *dk, *dv, *datt;       // (QD,S) (KVD,S) (KVD,S) (QD,S)
    float *dh1, *dh3, *dg;            // (H,S)
    float *dscratch;                  // (S,S) + (QD,S)
    // time spent in the last forward/backward (ms)
    double ms_forward, ms_backward;
} CpuModel;

int cpu_model_init(CpuModel *m, const Config *cfg, int S);
void cpu_model_free(CpuModel *m);
// Runs the forward pass on tokens[S]. With targets (S ids, < 0 = ignore)
// returns the mean cross-entropy; m->logits holds (S,V) logits either way.
float cpu_model_forward(CpuModel *m, const Params *p, const int *tokens, const int *targets);
// Backward of the last forward (which must have had targets). Gradients, laid
// out like p->data, are ACCUMULATED into grads: grads += loss_scale * dLoss/dθ.
void cpu_model_backward(CpuModel *m, const Params *p, float *grads, float loss_scale);
