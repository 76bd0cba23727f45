// devpipe: what every device pipeline (dynamic, static, static-ane) shares —
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
#include "cpu/vocab_compact.h"
#include "mil/kernels.h"
#include "train/pipeline.h"

// One compiled kernel with its surfaces and request.
typedef struct {
    MilKernel k;
    DeviceKernel *dk;
    DeviceSurface *in, *out;
    DeviceRequest *req;
    int own_in, own_out;  // the surfaces were created for this kernel
} DevKernel;

// Compiles k (taking ownership of it) on dev, creates its surfaces (or uses
// the given shared ones when not NULL) and its request. -1 with err_msg().
int dk_compile(DevKernel *x, Device *dev, MilKernel *k, DeviceSurface *in, DeviceSurface *out);
// Frees the request, the compiled kernel and the program, and the surfaces it created.
void dk_free(DevKernel *x, Device *dev);
// Frees the request and the compiled kernel only (the surfaces stay for the next compile).
void dk_release(DevKernel *x, Device *dev);
// Recompiles k into x's existing surfaces (their sizes must not change).
int dk_recompile(DevKernel *x, Device *dev, MilKernel *k);

// fp32 src -> input region `region` of x (fp16); timed as staging.
int dp_stage(Pipeline *pl, Device *dev, DevKernel *x, const char *region, const float *src);
// Output region `region` of x -> fp32 dst; timed as staging.
int dp_fetch(Pipeline *pl, Device *dev, DevKernel *x, const char *region, float *dst);
// Evaluates x (layer labels the error; -1 for none); timed as device.
int dp_eval(Pipeline *pl, Device *dev, DevKernel *x, int layer);
// Output region src_region of src -> input region dst_region of dst, fp16 as
// it is. repeat > 1: the source is heads of head_rows channels and dst head h
// is source head h / repeat (GQA tiling). Timed as staging.
int dp_copy(Pipeline *pl, Device *dev, DevKernel *dst, const char *dst_region, DevKernel *src,
            const char *src_region, int head_rows, int repeat);

// GQA: query head h uses kv head h / (NH / NKV).
void dp_gqa_tile(float *dst, const float *src, int NH, int NKV, int HD, int S);    // [NKV*HD,S] -> [NH*HD,S]
void dp_gqa_reduce(float *dst, const float *src, int NH, int NKV, int HD, int S);  // sums each group back

// The attention backward between sdpaBwd2 and the projection backward, on the
// CPU: dk, dv [KVD,S] = GQA-reduced dk_full, dv_full [QD,S]; RoPE backward of
// dq [QD,S] (in place) and dk; QK-norm backward (q_pre, k_pre: the projections
// before it) adding its weight gradients into gq_norm, gk_norm. tmp: (QD,S)
// floats, rstd: (NH+NKV)*S floats.
void dp_attn_backward_cpu(const Config *c, const RopeTable *rope, const float *q_norm, const float *k_norm,
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

int cpu_head_init(CpuHead *h, const Config *c, int S, const int *vocab_rows, int n_vocab_rows);
void cpu_head_free(CpuHead *h);
// *loss of x_out [D,S] against tgt (NULL: no targets, loss 0).
void cpu_head_forward(CpuHead *h, const Params *p, const float *x_out, const int *tgt, float *loss);
// dx [D,S] = the gradient at x_out; classifier and final-norm weight gradients into g.
void cpu_head_backward(CpuHead *h, const Params *p, const ParamViews *g, const float *x_out, float scale, float *dx);
