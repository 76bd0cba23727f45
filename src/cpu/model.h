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
//
// How it runs (cpu/par.h): the products of each stage go to the thread pool as
// one GEMM task list — q/k/v together, W1/W3 together, and in the backward each
// layer's input-gradient products next to its weight-gradient products, which
// have the same flops, so two threads each run one at full size. The
// classifier, softmax and cross-entropy are fused and chunked over the
// vocabulary (the backward rebuilds dlogits chunk by chunk from the saved
// log-sum-exp, so no [S,V] gradient is stored). Elementwise ops are threaded
// over positions or heads. Nothing is allocated after cpu_model_init.
//
// Precision CPU_BF16: every input of the linear and classifier products is
// rounded to bf16 (weights as they are used, activations and their gradients
// once), products accumulate in fp32, and everything else — master weights,
// gradients, norms, attention, softmax — stays fp32.
#pragma once
#include "cpu/ops.h"
#include "cpu/vocab_compact.h"
#include "cpu/ops_fast.h"
#include "model/lora.h"
#include "model/params.h"

typedef enum { CPU_FP32 = 0, CPU_BF16 = 1 } CpuPrecision;

typedef struct {
    float *x;      // (D,S)  layer input (residual stream)
    float *xn;     // (D,S)  RMSNorm(x)  (bf16-rounded in bf16 mode)
    float *rstd1;  // (S)
    float *q_pre;  // (QD,S) Wq xn (before QK-norm; NULL when no QK-norm)
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

// Cumulative milliseconds per part of the step, since init (for reports and benches).
typedef struct {
    double fwd_gemm, fwd_attn, fwd_cls, fwd_other;
    double bwd_gemm, bwd_attn, bwd_cls, bwd_other;
    double bwd_recompute;  // the layers' forward again (recompute)
} CpuPhaseTimes;

typedef struct {
    Config cfg;
    int S;               // window length used by this instance (<= cfg.seq_len)
    CpuPrecision precision;
    int recompute;       // CpuModelOptions.recompute: layers[l] shares layers[0]'s buffers but x
    int nthreads;        // threads the per-thread scratch below was sized for
    RopeTable rope;
    RopeT ropet;         // the same angles laid out [HD/2][S]
    LayerActs *layers;   // (L)
    float *act_block;    // one allocation behind all LayerActs and the buffers below
    size_t act_floats;   // its size
    float *x_out;        // (D,S) output of the last layer
    float *xf;           // (D,S) final RMSNorm
    float *rstdf;        // (S)
    float *logits;       // (S,V); NULL with recompute
    float *lse;          // (S) log-sum-exp of each logits row, for the backward
    int *tokens, *targets;  // (S) copies from the last forward
    float loss;          // mean CE of the last forward (0 if no targets)
    // backward scratch
    float *dx, *dx2, *dtmp, *dxn;     // (D,S)
    float *dq, *dk, *dv, *datt;       // (QD,S) (KVD,S) (KVD,S) (QD,S)
    float *dqk_tmp;                   // (QD+KVD,S) QK-norm backward outputs
    float *dh1, *dh3, *dg;            // (H,S)
    float *att_scratch;               // (nthreads,S,S) attention backward
    float *cls_stats;                 // (nthreads,3,S) classifier softmax statistics
    float *cls_dl;                    // (nthreads,S,CLS_CHUNK) dlogits chunks
    float *cls_dx;                    // (nthreads-1,D,S) classifier dx partials
    float *bf_act;                    // (D,S) bf16 copy of a residual gradient (bf16 only)
    ParScratch wscratch;              // bf16 weight slices (bf16 only)
    VocabCompact vc;                  // cpu_model_set_vocab: the classifier over these rows only
    // LoRA (cpu_model_set_lora): the base is frozen, the adapters trained
    const Params *lora;               // the adapters (model/lora.h), or NULL
    LoraConfig lora_cfg;
    uint64_t lora_seed;               // of the dropout masks, with lora_window: which window of the run
    uint64_t lora_window;
    int lora_training;                // 1 during a training step: dropout applies
    float **lora_u, **lora_xd;        // (L * LORA_N_TARGETS) U = A x̃ (r,S), x̃ (in,S) with dropout
    float *lora_v, *lora_tmp, *lora_block;
    // set by the caller: the next backward writes the gradients block instead
    // of adding to it (its contents are ignored); cleared by that backward
    int grads_fresh;
    // called by the backward once layer l's gradients are final (may be NULL)
    void (*layer_done)(void *ctx, int layer);
    void *layer_done_ctx;
    // time spent in the last forward/backward (ms)
    double ms_forward, ms_backward;
    CpuPhaseTimes phases;
} CpuModel;

// How a CpuModel computes (zero-initialized: fp32, every activation kept).
typedef struct {
    CpuPrecision precision;
    // keep only each layer's input and the classifier's statistics; the
    // backward recomputes a layer's activations (and each vocabulary chunk's
    // logits) from them, bit for bit: one layer's activations in memory
    // instead of all of them, for about a third more arithmetic
    int recompute;
} CpuModelOptions;

// fp32. Sizes per-thread scratch for threads_count() threads (set --threads first).
int cpu_model_init(CpuModel *m, const Config *cfg, int S);
// Same, with options (NULL: the defaults).
int cpu_model_init_opts(CpuModel *m, const Config *cfg, int S, const CpuModelOptions *o);
// "fp32" / "bf16" -> CpuPrecision; -1 (err_msg) for anything else.
int cpu_precision_parse(const char *name, CpuPrecision *out);
void cpu_model_free(CpuModel *m);
// Vocab compaction (ane-spec 7.1): the classifier, softmax and loss cover only
// rows[0..n) (ascending, unique, < vocab), e.g. the ids that occur in the data.
// Logits become (S,n) in compact ids; targets outside the set are ignored.
// This changes the loss: the softmax normalizer excludes every other token, so
// losses are lower than full-vocab losses of the same weights. n = 0 restores
// the full vocab. Gradients still land in the full classifier rows.
int cpu_model_set_vocab(CpuModel *m, const int *rows, int n);
// LoRA: the model's weights (the Params given to forward/backward) are frozen
// and the adapters' branches added to their targets; cpu_model_backward then
// accumulates into a block laid out like `adapters` (the adapters' gradients,
// and the trained norms' with train_norms), and computes no gradient of any
// base weight. seed: of the adapter dropout's masks. The adapters' values are
// read at each forward (the optimizer updates them in place).
int cpu_model_set_lora(CpuModel *m, const Params *adapters, const LoraConfig *lc, uint64_t seed);
void cpu_model_lora_free(CpuModel *m);
// The adapter branch of target t in layer l (model_lora.c): y += k·s·B·A·x̃ ...
void cpu_model_lora_forward(CpuModel *m, int l, LoraTarget t, const float *x, float *y, float k);
// ... and its backward from dy: the adapters' gradients into grads, dx += its input gradient.
void cpu_model_lora_backward(CpuModel *m, float *grads, int l, LoraTarget t, const float *x, const float *dy, float k,
                             float *dx);
// Runs the forward pass on tokens[S]. With targets (S ids, < 0 = ignore)
// returns the mean cross-entropy; m->logits holds (S,V) logits either way
// (but with recompute, which keeps none).
float cpu_model_forward(CpuModel *m, const Params *p, const int *tokens, const int *targets);
// Backward of the last forward (which must have had targets). Gradients, laid
// out like p->data, are ACCUMULATED into grads: grads += loss_scale * dLoss/dθ.
// May be called more than once after one forward.
void cpu_model_backward(CpuModel *m, const Params *p, float *grads, float loss_scale);
