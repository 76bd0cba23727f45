// devpipe: what every device pipeline (dynamic, static, static-ane) shares —
// the step sequence itself (devpipe_step: a pipeline supplies its stages),
// timed surface I/O by region name, the CPU head (final RMSNorm, classifier,
// cross-entropy, with vocabulary compaction), and the CPU part of the
// attention backward (GQA reduce, RoPE and QK-norm backward).
//
// Times land in the pipeline's PhaseTimes: conversions and surface copies as
// staging, kernel evaluations as device, the rest as cpu_ops (callers time
// their own CPU ops with dp_cpu_begin/end).
#pragma once
#include "ane/device.h"
#include "cpu/ops.h"
#include "cpu/ops_fast.h"
#include "cpu/vocab_compact.h"
#include "mil/kernels.h"
#include "train/dw_queue.h"
#include "train/pipeline.h"

// --- the step ------------------------------------------------------------------------------

// The stages of one window, in the order devpipe_step runs them:
//   prepare; embed -> x0; for each layer: attn_forward, ffn_forward; head_forward;
//   head_backward; for each layer, last first: ffn_backward, attn_backward;
//   wait for the queued dW GEMMs; embedding backward from dx.
// Pipelines differ in which kernels run a stage and whether the weights are
// staged into input surfaces (dynamic) or baked into the programs (static).
typedef struct {
    // the device holds kernels for the weights p (staged or compiled)
    int (*prepare)(Pipeline *pl, const Params *p);
    int (*attn_forward)(Pipeline *pl, const Params *p, int l);
    int (*ffn_forward)(Pipeline *pl, const Params *p, int l);  // writes the next layer's input
    int (*head_forward)(Pipeline *pl, const Params *p, float *loss);
    int (*head_backward)(Pipeline *pl, const Params *p, const ParamViews *g, float scale);
    int (*ffn_backward)(Pipeline *pl, const Params *p, const ParamViews *g, int l);
    int (*attn_backward)(Pipeline *pl, const Params *p, const ParamViews *g, int l);
    // once the queued dW GEMMs have finished (NULL: nothing to do)
    void (*after_dw)(Pipeline *pl, const ParamViews *g);
} DevStages;

// The state the sequence needs; the first member of a device pipeline's impl.
typedef struct {
    Config cfg;
    int S;
    MilDialect dialect; // of the kernels' text (the other one is the retry)
    Device dev;
    DwQueue dwq;        // weight-gradient GEMMs, overlapped with device work
    int *tok, *tgt;     // (S) the window (targets -1 when there are none)
    float *x0;          // (D,S) the first layer's input
    float *dx;          // (D,S) the gradient at it, after the backward
    const DevStages *stages;
    // LoRA (devpipe_lora_init): the device runs the merged weights W + s·B·A
    // (dynamic) or the base with the adapters as kernel inputs (static); the
    // adapters' gradients come from the same dY and X a dW would use
    const Params *lora;
    LoraConfig lora_cfg;
    Params merged;      // with merge: staged instead of the model's weights
    Params view;        // the model's weights with the trained norms in place of its own
    float *lora_grads;  // the step's gradient block (the adapters' layout)
    float *lora_tmp;    // (L * LORA_N_TARGETS * 2 * r * S) U = A·X and V = s·Bᵀ·dY per matrix
} DevPipe;

// *loss of the window (0 without targets); -1 on a device error (err_msg()).
int devpipe_forward(Pipeline *pl, DevPipe *dp, const Params *p, const int *tok, const int *tgt, float *loss);
// The forward, then grads += scale · d loss / d params.
int devpipe_step(Pipeline *pl, DevPipe *dp, const Params *p, const int *tok, const int *tgt, float *grads,
                 float scale, float *loss);
// dW[rows,cols] += dY[rows,S] · X[cols,S]ᵀ on the dW worker.
void devpipe_push_dw(DevPipe *dp, float *dW, const float *dY, const float *X, int rows, int cols);
// The weight gradient of target t in layer l from dY [out,S] (the gradient at
// its output, residual scale included) and X [in,S] (its input), on the dW
// worker: dW of the model's matrix in views g, or under LoRA the adapters'
// dB += s·dY·(A·X)ᵀ and dA += (s·Bᵀ·dY)·Xᵀ.
void devpipe_weight_grad(DevPipe *dp, const ParamViews *g, LoraTarget t, int l, const float *dY, const float *X);
// LoRA on a device pipeline: adapters a (updated in place by the caller) over
// the model; merge: the pipeline runs merged weights (devpipe_weights), else
// it takes the adapters as kernel inputs. Trained norms reach the stages
// through devpipe_view; dropout is refused (the kernels have no masks).
// -1 with err_msg().
int devpipe_lora_init(DevPipe *dp, const Params *a, const LoraConfig *lc, int merge);
void devpipe_lora_free(DevPipe *dp);
// The weights the device gets for model p: p, or p with the adapters merged in (refreshed now).
const Params *devpipe_weights(DevPipe *dp, const Params *p);
// The weights the stages read for model p: p, or under LoRA with trained norms
// a view of p whose norm weights are the adapters' (devpipe_step passes it on).
const Params *devpipe_view(DevPipe *dp, const Params *p);
// p + off, or NULL for a NULL (frozen) gradient view.
static inline float *dp_at(float *p, size_t off) { return p ? p + off : NULL; }

// --- kernels --------------------------------------------------------------------------------

// One kernel evaluation's binding: a program (its regions), its compiled
// kernel, an input and an output surface, and their request. A DevKernel frees
// what it created; dk_bind shares another's program and compiled kernel (the
// dynamic pipeline: one kernel, an input surface of weights per layer).
// k may point into the DevKernel itself: a DevKernel is not moved once compiled.
typedef struct {
    MilKernel *k;          // the program's layout: &own, or the shared one's
    DeviceKernel *dk;
    DeviceSurface *in, *out;
    DeviceRequest *req;
    MilKernel own;         // the program, when this DevKernel compiled it
    int own_k, own_in, own_out;
} DevKernel;

// Compiles k (taking ownership of it) on dev, creates its surfaces (or uses
// the given shared ones when not NULL) and its request. -1 with err_msg().
int dk_compile(DevKernel *x, Device *dev, MilKernel *k, DeviceSurface *in, DeviceSurface *out);
// A second binding of src's compiled kernel, with its own request on the given
// surfaces (NULL: a new one of the kernel's size).
int dk_bind(DevKernel *x, Device *dev, const DevKernel *src, DeviceSurface *in, DeviceSurface *out);
// Frees the request, the compiled kernel and the program if owned, and the surfaces it created.
void dk_free(DevKernel *x, Device *dev);
// Recompiles k into x's existing surfaces (their sizes must not change).
int dk_recompile(DevKernel *x, Device *dev, MilKernel *k);

// fp32 src -> input region `region` of x (fp16), untimed (a stager thread times its own work).
int dk_stage(Device *dev, DevKernel *x, const char *region, const float *src);
// The CPU classifier's time since t0, as CPU ops and their classifier part.
void dp_cls_time(Pipeline *pl, double t0);
// fp32 src -> input region `region` of x (fp16): an activation, timed as CPU
// ops (surface I/O); dp_stage_weight: a weight, timed as staging.
int dp_stage(Pipeline *pl, Device *dev, DevKernel *x, const char *region, const float *src);
int dp_stage_weight(Pipeline *pl, Device *dev, DevKernel *x, const char *region, const float *src);
// Output region `region` of x -> fp32 dst; timed as CPU ops (surface I/O).
int dp_fetch(Pipeline *pl, Device *dev, DevKernel *x, const char *region, float *dst);
// A region of activations ([nc][S]) that a fused op reads (output = 1: of
// k's output surface) or writes (of k's input surface).
typedef struct {
    DevKernel *k;
    const char *name;
    int output, nc;
} DpRegion;
enum { DP_FUSED_MAX = 5 };
// Locks the surfaces of the n (<= DP_FUSED_MAX) regions, each surface once,
// and runs fn with their fp16 rows (rows[i] for r[i]): an op that converts
// while it computes (cpu/ops_fast.h). Timed as CPU ops; -1 with err_msg().
int dp_fused(Pipeline *pl, Device *dev, const DpRegion *r, int n, void (*fn)(void *ctx, const F16Rows *rows),
             void *ctx);
// Evaluates x (layer labels the error; -1 for none); timed as device.
int dp_eval(Pipeline *pl, Device *dev, DevKernel *x, int layer);
// Output region src_region of src -> input region dst_region of dst, fp16 as
// it is. repeat > 1: the source is heads of head_rows channels and dst head h
// is source head h / repeat (GQA tiling). Timed as CPU ops (surface I/O).
int dp_copy(Pipeline *pl, Device *dev, DevKernel *dst, const char *dst_region, DevKernel *src,
            const char *src_region, int head_rows, int repeat);

// The RoPE angles of c for a window of S, laid out [HD/2][S] for dp_attn_backward_cpu. -1 with err_msg().
int dp_rope_init(RopeT *rt, const Config *c, int S);
// GQA: query head h uses kv head h / (NH / NKV); [NH*HD,S] -> [NKV*HD,S], each group summed.
void dp_gqa_reduce(float *dst, const float *src, int NH, int NKV, int HD, int S);

// The attention backward between sdpaBwd2 and the projection backward, on the
// CPU: dk, dv [KVD,S] = GQA-reduced dk_full, dv_full [QD,S] (already there
// when dk == dk_full, dv == dv_full: without GQA); RoPE backward of
// dq [QD,S] (in place) and dk; QK-norm backward (q_pre, k_pre: the projections
// before it) adding its weight gradients into gq_norm, gk_norm. tmp: (QD,S)
// floats, rstd: (NH+NKV)*S floats.
void dp_attn_backward_cpu(const Config *c, const RopeT *rope, const float *q_norm, const float *k_norm,
                          float *gq_norm, float *gk_norm, float *dq, float *dk, float *dv, const float *dk_full,
                          const float *dv_full, const float *q_pre, const float *k_pre, float *tmp, float *rstd, int S);

// The CPU head: final RMSNorm, classifier (compacted with rows), mean cross-entropy.
typedef struct {
    int D, V, S, nthreads;
    float eps;
    float *xf, *rstd, *logits, *lse;   // (D,S) (S) (S,V) (S)
    float *stats, *dl, *dxs, *dxf;     // classifier scratch (cpu/ops_fast.h), dxf (D,S)
    int *tgt;                          // (S) targets (compact ids when compacted)
    VocabCompact vc;
    float *block;
} CpuHead;

// classifier 0: the device runs it (devhead.h), so no logits or classifier
// scratch are allocated (the final norm's buffers and the compaction are).
int cpu_head_init(CpuHead *h, const Config *c, int S, const int *vocab_rows, int n_vocab_rows, int classifier);
void cpu_head_free(CpuHead *h);
// *loss of x_out [D,S] against tgt (NULL: no targets, loss 0).
void cpu_head_forward(CpuHead *h, const Params *p, const float *x_out, const int *tgt, float *loss);
// dx [D,S] = the gradient at x_out; classifier and final-norm weight gradients into g.
void cpu_head_backward(CpuHead *h, const Params *p, const ParamViews *g, const float *x_out, float scale, float *dx);
