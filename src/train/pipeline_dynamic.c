// pipeline_dynamic: the seed's dynamic-weight pipeline (ane-spec 2.3) on a Device.
//
// Ten MIL kernels (src/mil/kernels.h) are compiled once. Every layer owns one
// input surface per weight-bearing kernel, holding that layer's weights staged
// after the activations along the spatial axis; they are restaged after each
// optimizer update (params_changed). Kernels share one output surface each,
// but the two whose outputs the layer's backward reads again: sdpaFwd (q, k, v
// copied surface to surface, tiled to the query heads under GQA, into sdpaBwd1
// and sdpaBwd2) and ffnFused (h1, h3 read by SwiGLU's backward as fp16).
// Between kernel evaluations the CPU does what the ANE does poorly: RMSNorm,
// SiLU backward, RoPE and QK-norm backward, the GQA reduce, the classifier and
// cross-entropy (with device_head: the classifier, its softmax and its input
// gradient as device kernels over chunks of rows, devhead.h, the classifier
// staged once per update like a layer). The step's sequence is devpipe_step's
// (devpipe.h); this file supplies its stages. Weight gradients are GEMMs on
// the dW worker, overlapped with the next device evaluation (on sim, whose evaluations use the same
// cores, they run inline: dw_queue.h). After an update the weights are staged
// layer by layer on a stager thread while the forward runs.
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/threads.h"
#include "core/timer.h"
#include "core/worker.h"
#include "cpu/ops.h"
#include "cpu/ops_fast.h"
#include "train/devhead.h"
#include "train/devpipe.h"
#include "train/pipeline.h"

enum { K = MIL_K_DYN_COUNT };

// kernels whose inputs carry weights get one input surface per layer
static const int PER_LAYER[K] = {
    [MIL_K_SDPA_FWD] = 1, [MIL_K_WO_FWD] = 1,  [MIL_K_FFN_FUSED] = 1, [MIL_K_FFN_BWD_W2T] = 1,
    [MIL_K_FFN_BWD_W13T] = 1, [MIL_K_WOT_BWD] = 1, [MIL_K_Q_BWD] = 1, [MIL_K_KV_BWD] = 1,
};
// and one output surface per layer when the backward reads it again
static const int OWN_OUTPUT[K] = {[MIL_K_SDPA_FWD] = 1, [MIL_K_FFN_FUSED] = 1};

typedef struct {
    // forward saves (fp32)
    float *x, *xn, *rstd1;         // (D,S) (D,S) (S)
    float *q_pre, *k_pre;          // (QD,S) (KVD,S) qk_norm only
    float *att;                    // (QD,S)
    float *x2, *x2n, *rstd2;       // (D,S) (D,S) (S)
    float *g;                      // (H,S) the FFN's gate product (h1, h3 stay in the layer's ffnFused output)
    // backward buffers read by queued dW GEMMs: kept per layer so the worker
    // can still be reading them while the next layer's backward runs
    float *dffn, *dh1, *dh3, *dy2s, *dq, *dk, *dv;  // (D,S) (H,S) (H,S) (D,S) (QD,S) (KVD,S) (KVD,S)
} DynLayer;

typedef struct {
    DevPipe dp;            // first: the shared step's state (devpipe.h)
    DevKernel *kern;       // (L * K): layer l's binding of kernel k; shared kernels use layer 0's
    DynLayer *layers;
    CpuHead head;          // the CPU head; with the device head its final norm and compaction
    DevHead dh;            // device_head: the classifier's chunks (dh.n 0 without)
    float *block;          // behind every fp32 buffer
    float *x_out;                          // (D,S) the last layer's output
    float *dx, *dx2, *dxn;                 // (D,S)
    float *dv_full, *dk_full;              // (QD,S) per query head (GQA)
    float *qk_tmp, *qk_rstd;               // (QD,S), (NH+NKV)·S: the QK-norm backward
    RopeT rope;            // the angles laid out [HD/2][S], for the RoPE backward
    int staged;            // weights staged (or being staged) for the current params
    // Overlapped staging: after an update the layers are staged in order on
    // the stager thread, and the forward waits for layer l only before it
    // runs layer l (serial_staging: all of them before the forward, here)
    int serial_staging;
    Worker stager;
    const Params *stage_p; // the weights being staged
    double stager_ms;      // the stager's time already counted as staging
} Dyn;

static DevKernel *kern(Dyn *d, int l, int k) { return &d->kern[(PER_LAYER[k] ? l : 0) * K + k]; }

// What the stager stages in order: the layers, then the device head's classifier.
static int stage_items(const Dyn *d) { return d->dp.cfg.n_layers + (d->dh.n > 0); }

// --- staging the weights -------------------------------------------------------------------

// One region of layer l's input surface of kernel k, untimed (stage_weights times it).
static int stage_raw(Dyn *d, int l, int k, const char *region, const float *src) {
    return dk_stage(&d->dp.dev, kern(d, l, k), region, src) ? err_wrap("layer %d", l) : 0;
}

// The classifier's rows (compacted: the ones in use) into every chunk's
// clsFwd (as Eᵀ) and clsBwd (as E) input surfaces.
static int stage_head(Dyn *d, const Params *p) {
    DevHead *h = &d->dh;
    VocabCompact *vc = &d->head.vc;
    if (vc->n) vocab_compact_gather(vc, p->v.wcls, NULL, NULL, 0);
    const float *E = vc->n ? vc->W : p->v.wcls;
    for (int c = 0; c < h->n; c++) {
        const float *rows = E + (size_t)c * h->rows * d->dp.cfg.dim;
        if (dk_stage(&d->dp.dev, &h->cls[c], "E^T", rows) || dk_stage(&d->dp.dev, &h->bwd[c], "E", rows))
            return err_wrap("classifier chunk %d", c);
    }
    return 0;
}

// Every weight of layer l into its surfaces (fp16; regions say whether a block is M or Mᵀ);
// l = n_layers: the device head's.
static int stage_layer(Dyn *d, const Params *p, int l) {
    if (l == d->dp.cfg.n_layers) return stage_head(d, p);
    const Config *c = &d->dp.cfg;
    const size_t D = c->dim, H = c->hidden, QD = config_q_dim(c), KVD = config_kv_dim(c), HD = c->head_dim;
    const ParamViews *v = &p->v;
    const float *wq = v->wq + l * QD * D, *wk = v->wk + l * KVD * D, *wv = v->wv + l * KVD * D;
    const float *wo = v->wo + l * D * QD, *w1 = v->w1 + l * H * D, *w2 = v->w2 + l * D * H, *w3 = v->w3 + l * H * D;
    int rc = stage_raw(d, l, MIL_K_SDPA_FWD, "Wq^T", wq) | stage_raw(d, l, MIL_K_SDPA_FWD, "Wk^T", wk) |
             stage_raw(d, l, MIL_K_SDPA_FWD, "Wv^T", wv) | stage_raw(d, l, MIL_K_WO_FWD, "Wo^T", wo) |
             stage_raw(d, l, MIL_K_FFN_FUSED, "W1^T", w1) | stage_raw(d, l, MIL_K_FFN_FUSED, "W3^T", w3) |
             stage_raw(d, l, MIL_K_FFN_FUSED, "W2^T", w2) | stage_raw(d, l, MIL_K_FFN_BWD_W2T, "W2", w2) |
             stage_raw(d, l, MIL_K_FFN_BWD_W13T, "W1", w1) | stage_raw(d, l, MIL_K_FFN_BWD_W13T, "W3", w3) |
             stage_raw(d, l, MIL_K_WOT_BWD, "Wo", wo) | stage_raw(d, l, MIL_K_Q_BWD, "Wq", wq) |
             stage_raw(d, l, MIL_K_KV_BWD, "Wk", wk) | stage_raw(d, l, MIL_K_KV_BWD, "Wv", wv);
    if (c->qk_norm)
        rc |= stage_raw(d, l, MIL_K_SDPA_FWD, "q_norm", v->q_norm + l * HD) |
              stage_raw(d, l, MIL_K_SDPA_FWD, "k_norm", v->k_norm + l * HD);
    return rc ? -1 : 0;
}

typedef struct {
    Dyn *d;
    const Params *p;
    int failed[THREADS_MAX];
} StageJob;

// Layers are independent surfaces: the pool's threads take every nt-th one.
static void stage_layers(void *ctx, int tid, int nt) {
    StageJob *j = ctx;
    for (int l = tid; l < stage_items(j->d); l += nt)
        if (stage_layer(j->d, j->p, l) != 0) j->failed[tid] = 1;
}

static int stage_serial(Pipeline *pl, Dyn *d, const Params *p) {
    const double t0 = time_ms();
    StageJob j = {.d = d, .p = p};
    const int nt = threads_run(stage_layers, &j);
    int failed = 0;
    for (int i = 0; i < nt; i++) failed |= j.failed[i];
    // a worker's message is its own thread's; find it again on this one
    for (int l = 0; failed && l < stage_items(d); l++)
        if (stage_layer(d, p, l) != 0) return err_wrap("staging the weights of layer %d", l);
    if (failed) return err_set("staging the weights failed on a worker thread");
    pl->times.staging += time_ms() - t0;
    return 0;
}

typedef struct {
    Dyn *d;
    int l, rc;
} StageItem;

static void stage_item_run(void *ctx, int tid, int nt) {
    (void)tid, (void)nt;
    StageItem *it = ctx;
    it->rc = stage_layer(it->d, it->d->stage_p, it->l);
}

// One layer on the stager thread, as a one-thread job: its conversions stay
// on the stager and leave the pool to the forward.
static int stage_item(void *ctx, int l) {
    StageItem it = {ctx, l, 0};
    threads_run_n(stage_item_run, &it, 1);
    return it.rc;
}

// Layer l's weights are in its surfaces (overlapped staging: waits for the
// stager; the last layer adds the stager's time to the staging phase).
static int stage_wait(Pipeline *pl, Dyn *d, int l) {
    if (d->serial_staging) return 0;
    if (worker_wait(&d->stager, l) != 0) {  // the message is the stager's: find it again here
        if (stage_layer(d, d->stage_p, l) != 0) return err_wrap("staging the weights of layer %d", l);
        return err_set("staging the weights of layer %d failed on the stager thread", l);
    }
    if (l + 1 >= stage_items(d)) {
        const double ms = worker_ms(&d->stager);
        pl->times.staging += ms - d->stager_ms;
        d->stager_ms = ms;
    }
    return 0;
}

static int stage_weights(Pipeline *pl, Dyn *d, const Params *p) {
    if (d->serial_staging) {
        const int rc = stage_serial(pl, d, p);
        d->staged = rc == 0;
        return rc;
    }
    d->staged = 1;  // a failure is reported by every stage_wait of the series
    d->stage_p = p;
    worker_start(&d->stager, stage_item, d, stage_items(d));
    return 0;
}

static int prepare(Pipeline *pl, const Params *p) {
    Dyn *d = pl->impl;
    return d->staged ? 0 : stage_weights(pl, d, devpipe_weights(&d->dp, p));
}

// --- forward stages ----------------------------------------------------------------------------

// An RMSNorm whose output also goes into a kernel's input region (dp_fused).
typedef struct {
    float *y, *rstd;
    const float *x, *w;
    int C, S;
    float eps;
} NormInto;

static void norm_into(void *ctx, const F16Rows *rows) {
    const NormInto *n = ctx;
    rmsnorm_forward_f16(n->y, rows[0], n->rstd, n->x, n->w, n->C, n->S, n->eps);
}

// y [C,S] = x + s·o, o a kernel's output region (with add), else s·x; into a
// kernel's input region too (with into). The regions: the input first.
typedef struct {
    float *y;
    const float *x;
    float s;
    int C, S, into, add;
} AxpyInto;

static void axpy_into(void *ctx, const F16Rows *rows) {
    const AxpyInto *a = ctx;
    axpy_f16(a->y, a->into ? rows[0] : (F16Rows){0}, a->x, a->add ? rows[a->into] : (F16Rows){0}, a->s, a->C, a->S);
}

// y = s·x [D,S], also into kernel k's input region `name` (the backward's scaled residual gradients).
static int scale_into(Pipeline *pl, Dyn *d, DevKernel *k, const char *name, float *y, const float *x) {
    AxpyInto a = {y, x, d->dp.cfg.res_scale, d->dp.cfg.dim, d->dp.S, 1, 0};
    return dp_fused(pl, &d->dp.dev, (DpRegion[]){{k, name, 0, a.C}}, 1, axpy_into, &a);
}

// y [D,S] += kernel k's output region `name` (the input gradient's second part).
static int add_from(Pipeline *pl, Dyn *d, DevKernel *k, const char *name, float *y) {
    AxpyInto a = {y, y, 1.0f, d->dp.cfg.dim, d->dp.S, 0, 1};
    return dp_fused(pl, &d->dp.dev, (DpRegion[]){{k, name, 1, a.C}}, 1, axpy_into, &a);
}

// The CPU RMSNorm straight into sdpaFwd's input, then sdpaFwd and woFwd
// (whose output ffn_forward adds to the residual).
static int attn_forward(Pipeline *pl, const Params *p, int l) {
    Dyn *d = pl->impl;
    const Config *c = &d->dp.cfg;
    const int S = d->dp.S, D = c->dim;
    Device *dev = &d->dp.dev;
    DynLayer *A = &d->layers[l];
    DevKernel *sf = kern(d, l, MIL_K_SDPA_FWD), *wo = kern(d, l, MIL_K_WO_FWD);
    if (stage_wait(pl, d, l) != 0) return -1;
    NormInto n = {A->xn, A->rstd1, A->x, p->v.rms_att + (size_t)l * D, D, S, c->norm_eps};
    if (dp_fused(pl, dev, (DpRegion[]){{sf, "xn", 0, D}}, 1, norm_into, &n) || dp_eval(pl, dev, sf, l) ||
        dp_fetch(pl, dev, sf, "attn", A->att))
        return -1;
    if (c->qk_norm && (dp_fetch(pl, dev, sf, "q_pre", A->q_pre) || dp_fetch(pl, dev, sf, "k_pre", A->k_pre)))
        return -1;
    return dp_copy(pl, dev, wo, "attn", sf, "attn", 0, 1) || dp_eval(pl, dev, wo, l) ? -1 : 0;
}

// The attention's residual x2 = x + s·o in fp32 and its RMSNorm, both into
// ffnFused's input, then ffnFused: the SwiGLU FFN and its residual, into the next layer's input.
static int ffn_forward(Pipeline *pl, const Params *p, int l) {
    Dyn *d = pl->impl;
    const Config *c = &d->dp.cfg;
    const int S = d->dp.S, D = c->dim;
    Device *dev = &d->dp.dev;
    DynLayer *A = &d->layers[l];
    DevKernel *f = kern(d, l, MIL_K_FFN_FUSED), *wo = kern(d, l, MIL_K_WO_FWD);
    float *x_next = l + 1 < c->n_layers ? d->layers[l + 1].x : d->x_out;
    AxpyInto res = {A->x2, A->x, c->res_scale, D, S, 1, 1};
    NormInto n = {A->x2n, A->rstd2, A->x2, p->v.rms_ffn + (size_t)l * D, D, S, c->norm_eps};
    return dp_fused(pl, dev, (DpRegion[]){{f, "x2", 0, D}, {wo, "o", 1, D}}, 2, axpy_into, &res) ||
                   dp_fused(pl, dev, (DpRegion[]){{f, "x2n", 0, D}}, 1, norm_into, &n) || dp_eval(pl, dev, f, l) ||
                   dp_fetch(pl, dev, f, "x_next", x_next) || dp_fetch(pl, dev, f, "g", A->g)
               ? -1
               : 0;
}

// The final RMSNorm on the CPU straight into the first chunk's clsFwd input
// (staged into the others), then per chunk clsFwd and vocabSoftmax; the CPU
// combines the chunks into the loss.
static int head_forward_device(Pipeline *pl, Dyn *d, const Params *p, float *loss) {
    DevHead *h = &d->dh;
    CpuHead *ch = &d->head;
    Device *dev = &d->dp.dev;
    if (stage_wait(pl, d, d->dp.cfg.n_layers) != 0) return -1;
    NormInto n = {ch->xf, ch->rstd, d->x_out, p->v.rms_final, ch->D, d->dp.S, ch->eps};
    if (dp_fused(pl, dev, (DpRegion[]){{&h->cls[0], "xf", 0, ch->D}}, 1, norm_into, &n) != 0) return -1;
    double tc = time_ms();
    devhead_targets(h, &ch->vc, d->dp.tgt);
    pl->times.cpu_ops += time_ms() - tc;
    for (int c = 0; c < h->n; c++)
        if ((c > 0 && dp_stage(pl, dev, &h->cls[c], "xf", ch->xf)) || dp_eval(pl, dev, &h->cls[c], -1) ||
            devhead_chunk_softmax(pl, dev, h, c))
            return err_wrap("classifier chunk %d", c);
    tc = time_ms();
    devhead_combine(h, loss);
    dp_cls_time(pl, tc);
    return 0;
}

static int head_forward(Pipeline *pl, const Params *p, float *loss) {
    Dyn *d = pl->impl;
    if (d->dh.n) return head_forward_device(pl, d, p, loss);
    const double tc = time_ms();
    cpu_head_forward(&d->head, p, d->x_out, d->dp.tgt, loss);
    dp_cls_time(pl, tc);
    return 0;
}

// --- backward stages ----------------------------------------------------------------------------

// Per chunk: dl on the CPU from the chunk's softmax straight into clsBwd's
// input, then clsBwd gives its share of dxf, and its rows'
// weight gradient dE += dl·xfᵀ goes to the dW worker (compacted: into the
// compact block, scattered once the worker is done: head_after_dw).
static int head_backward_device(Pipeline *pl, Dyn *d, const Params *p, const ParamViews *g, float scale) {
    DevHead *h = &d->dh;
    CpuHead *ch = &d->head;
    const int S = d->dp.S, D = ch->D;
    float *dE = g->wcls ? (ch->vc.n ? ch->vc.dW : g->wcls) : NULL;
    for (int c = 0; c < h->n; c++) {
        const size_t row0 = (size_t)c * h->rows;
        const double t0 = pl->times.cpu_ops;
        const int rc = devhead_dlogits(pl, &d->dp.dev, h, c, scale, &h->bwd[c]);
        pl->times.cpu_cls += pl->times.cpu_ops - t0;
        if (rc || dp_eval(pl, &d->dp.dev, &h->bwd[c], -1) ||
            (c ? add_from(pl, d, &h->bwd[c], "dx", ch->dxf) : dp_fetch(pl, &d->dp.dev, &h->bwd[c], "dx", ch->dxf)))
            return err_wrap("classifier chunk %d", c);
        if (dE) devpipe_push_dw(&d->dp, dE + row0 * D, h->dl + row0 * S, ch->xf, devhead_rows(h, c), D);
    }
    const double tc = time_ms();
    rmsnorm_backward(d->dx, g->rms_final, ch->dxf, d->x_out, p->v.rms_final, ch->rstd, D, S);
    pl->times.cpu_ops += time_ms() - tc;
    return 0;
}

static void head_after_dw(Pipeline *pl, const ParamViews *g) {
    Dyn *d = pl->impl;
    if (d->dh.n && d->head.vc.n && g->wcls) vocab_compact_scatter(&d->head.vc, g->wcls);
}

static int head_backward(Pipeline *pl, const Params *p, const ParamViews *g, float scale) {
    Dyn *d = pl->impl;
    if (d->dh.n) return head_backward_device(pl, d, p, g, scale);
    const double tc = time_ms();
    cpu_head_backward(&d->head, p, g, d->x_out, scale, d->dx);
    dp_cls_time(pl, tc);
    return 0;
}

// SwiGLU's backward from ffnBwdW2t's dg and the layer's ffnFused h1, h3 into
// ffnBwdW13t's dh1, dh3 (dp_fused).
typedef struct {
    DynLayer *A;
    int H, S;
} SwiInto;

static void swiglu_into(void *ctx, const F16Rows *rows) {
    const SwiInto *s = ctx;
    swiglu_backward_f16(s->A->dh1, s->A->dh3, rows[3], rows[4], rows[0], rows[1], rows[2], s->H, s->S);
}

// From the gradient at the layer's output (d->dx) to the one at the FFN's input (d->dx2).
static int ffn_backward(Pipeline *pl, const Params *p, const ParamViews *g, int l) {
    Dyn *d = pl->impl;
    const Config *c = &d->dp.cfg;
    const int S = d->dp.S, D = c->dim, H = c->hidden;
    const size_t lD = (size_t)l * D;
    Device *dev = &d->dp.dev;
    DynLayer *A = &d->layers[l];
    DevKernel *w2t = kern(d, l, MIL_K_FFN_BWD_W2T), *w13 = kern(d, l, MIL_K_FFN_BWD_W13T);
    DevKernel *f = kern(d, l, MIL_K_FFN_FUSED);
    SwiInto si = {A, H, S};
    const DpRegion swi[5] = {
        {w2t, "dg", 1, H}, {f, "h1", 1, H}, {f, "h3", 1, H}, {w13, "dh1", 0, H}, {w13, "dh3", 0, H}};
    if (scale_into(pl, d, w2t, "dffn", A->dffn, d->dx) || dp_eval(pl, dev, w2t, l) ||
        dp_fused(pl, dev, swi, 5, swiglu_into, &si))
        return -1;
    devpipe_weight_grad(&d->dp, g, LORA_W2, l, A->dffn, A->g);
    if (dp_eval(pl, dev, w13, l) || dp_fetch(pl, dev, w13, "dx", d->dxn)) return -1;
    devpipe_weight_grad(&d->dp, g, LORA_W1, l, A->dh1, A->x2n);
    devpipe_weight_grad(&d->dp, g, LORA_W3, l, A->dh3, A->x2n);
    const double tc = time_ms();
    rmsnorm_backward_add(d->dx2, dp_at(g->rms_ffn, lD), d->dxn, A->x2, p->v.rms_ffn + lD, A->rstd2, D, S, d->dx);
    pl->times.cpu_ops += time_ms() - tc;
    return 0;
}

// A buffer per query head: under GQA the pipeline's (k, v tiled to the query
// heads; dk, dv summed back per kv group), without it the layer's own.
static float *per_query_head(const Dyn *d, float *gqa, float *own) {
    return d->dp.cfg.n_heads != d->dp.cfg.n_kv_heads ? gqa : own;
}

// wotBwd, then sdpaBwd1 and sdpaBwd2; surface to surface: q, k, v (tiled to
// the query heads) from the layer's sdpaFwd output, da from wotBwd's, probs
// and dP from sdpaBwd1's.
static int sdpa_backward(Pipeline *pl, const ParamViews *g, int l) {
    Dyn *d = pl->impl;
    const Config *c = &d->dp.cfg;
    Device *dev = &d->dp.dev;
    DynLayer *A = &d->layers[l];
    const int HD = c->head_dim, R = c->n_heads / c->n_kv_heads;
    DevKernel *wot = kern(d, l, MIL_K_WOT_BWD), *b1 = kern(d, l, MIL_K_SDPA_BWD1), *b2 = kern(d, l, MIL_K_SDPA_BWD2);
    DevKernel *sf = kern(d, l, MIL_K_SDPA_FWD);
    if (scale_into(pl, d, wot, "dy", A->dy2s, d->dx2) || dp_eval(pl, dev, wot, l)) return -1;
    devpipe_weight_grad(&d->dp, g, LORA_O, l, A->dy2s, A->att);
    float *dk = per_query_head(d, d->dk_full, A->dk), *dv = per_query_head(d, d->dv_full, A->dv);
    if (dp_copy(pl, dev, b1, "q", sf, "q_rope", 0, 1) || dp_copy(pl, dev, b1, "k", sf, "k_rope", HD, R) ||
        dp_copy(pl, dev, b1, "v", sf, "v", HD, R) || dp_copy(pl, dev, b1, "da", wot, "da", 0, 1) ||
        dp_eval(pl, dev, b1, l) || dp_fetch(pl, dev, b1, "dv", dv))
        return -1;
    return dp_copy(pl, dev, b2, "probs", b1, "probs", 0, 1) || dp_copy(pl, dev, b2, "dp", b1, "dp", 0, 1) ||
                   dp_copy(pl, dev, b2, "q", sf, "q_rope", 0, 1) || dp_copy(pl, dev, b2, "k", sf, "k_rope", HD, R) ||
                   dp_eval(pl, dev, b2, l) || dp_fetch(pl, dev, b2, "dq", A->dq) || dp_fetch(pl, dev, b2, "dk", dk)
               ? -1
               : 0;
}

// From the gradient at the attention's output (d->dx2) to the layer input's (d->dx).
static int attn_backward(Pipeline *pl, const Params *p, const ParamViews *g, int l) {
    Dyn *d = pl->impl;
    const Config *c = &d->dp.cfg;
    const int S = d->dp.S, D = c->dim;
    const size_t lD = (size_t)l * D, lh = (size_t)l * c->head_dim;
    Device *dev = &d->dp.dev;
    DynLayer *A = &d->layers[l];
    if (sdpa_backward(pl, g, l) != 0) return -1;
    double tc = time_ms();
    dp_attn_backward_cpu(c, &d->rope, c->qk_norm ? p->v.q_norm + lh : NULL, c->qk_norm ? p->v.k_norm + lh : NULL,
                         dp_at(g->q_norm, lh), dp_at(g->k_norm, lh), A->dq, A->dk, A->dv,
                         per_query_head(d, d->dk_full, A->dk), per_query_head(d, d->dv_full, A->dv), A->q_pre,
                         A->k_pre, d->qk_tmp, d->qk_rstd, S);
    pl->times.cpu_ops += time_ms() - tc;
    devpipe_weight_grad(&d->dp, g, LORA_Q, l, A->dq, A->xn);
    devpipe_weight_grad(&d->dp, g, LORA_K, l, A->dk, A->xn);
    devpipe_weight_grad(&d->dp, g, LORA_V, l, A->dv, A->xn);
    DevKernel *qb = kern(d, l, MIL_K_Q_BWD), *kvb = kern(d, l, MIL_K_KV_BWD);
    if (dp_stage(pl, dev, qb, "dq", A->dq) || dp_eval(pl, dev, qb, l) || dp_fetch(pl, dev, qb, "dx", d->dxn) ||
        dp_stage(pl, dev, kvb, "dk", A->dk) || dp_stage(pl, dev, kvb, "dv", A->dv) || dp_eval(pl, dev, kvb, l) ||
        add_from(pl, d, kvb, "dx", d->dxn))
        return -1;
    tc = time_ms();
    rmsnorm_backward_add(d->dx, dp_at(g->rms_att, lD), d->dxn, A->x, p->v.rms_att + lD, A->rstd1, D, S, d->dx2);
    pl->times.cpu_ops += time_ms() - tc;
    return 0;
}

static const DevStages STAGES = {prepare,      attn_forward,  ffn_forward,  head_forward,
                                 head_backward, ffn_backward, attn_backward, head_after_dw};

// --- Pipeline methods -------------------------------------------------------------------

static int dyn_step(Pipeline *pl, const Params *p, const int *tok, const int *tgt, float *grads, float scale,
                    float *loss) {
    Dyn *d = pl->impl;
    return devpipe_step(pl, &d->dp, p, tok, tgt, grads, scale, loss);
}

static int dyn_eval(Pipeline *pl, const Params *p, const int *tok, const int *tgt, float *loss) {
    Dyn *d = pl->impl;
    return devpipe_forward(pl, &d->dp, p, tok, tgt, loss);
}

static int dyn_params_changed(Pipeline *pl, const Params *p) {
    Dyn *d = pl->impl;
    // the previous series may still read the weights (or LoRA's merged copy) devpipe_weights rewrites
    if (!d->serial_staging && worker_wait(&d->stager, stage_items(d)) != 0)
        for (int l = 0; l < stage_items(d); l++)
            if (stage_wait(pl, d, l) != 0) return -1;
    return stage_weights(pl, d, devpipe_weights(&d->dp, p));
}

static void dyn_free(Pipeline *pl) {
    Dyn *d = pl->impl;
    if (!d) return;
    worker_free(&d->stager);  // finishes the layer in progress first
    dwq_free(&d->dp.dwq);
    devhead_free(&d->dh, &d->dp.dev);
    // bindings first: they share layer 0's compiled kernels
    for (int i = d->dp.cfg.n_layers * K - 1; d->kern && i >= 0; i--) dk_free(&d->kern[i], &d->dp.dev);
    if (d->dp.dev.ops) device_free(&d->dp.dev);
    cpu_head_free(&d->head);
    devpipe_lora_free(&d->dp);
    ropet_free(&d->rope);
    free(d->kern);
    free(d->layers);
    free(d->block);
    free(d->dp.tok);
    free(d->dp.tgt);
    free(d);
    pl->impl = NULL;
}

// Carves every fp32 buffer out of one block (first call sizes it).
static size_t carve(Dyn *d, float *base) {
    const Config *c = &d->dp.cfg;
    const size_t S = d->dp.S, D = c->dim, H = c->hidden, QD = config_q_dim(c), KVD = config_kv_dim(c);
    const size_t NHK = (size_t)c->n_heads + c->n_kv_heads;
    size_t used = 0;
#define TAKE(ptr, n) do { ptr = base ? base + used : NULL; used += ((n) + 15) & ~(size_t)15; } while (0)
    for (int l = 0; l < c->n_layers; l++) {
        DynLayer *A = &d->layers[l];
        TAKE(A->x, D * S); TAKE(A->xn, D * S); TAKE(A->rstd1, S);
        if (c->qk_norm) { TAKE(A->q_pre, QD * S); TAKE(A->k_pre, KVD * S); }
        TAKE(A->att, QD * S); TAKE(A->x2, D * S); TAKE(A->x2n, D * S); TAKE(A->rstd2, S);
        TAKE(A->g, H * S);
        TAKE(A->dffn, D * S); TAKE(A->dh1, H * S); TAKE(A->dh3, H * S); TAKE(A->dy2s, D * S);
        TAKE(A->dq, QD * S); TAKE(A->dk, KVD * S); TAKE(A->dv, KVD * S);
    }
    TAKE(d->x_out, D * S); TAKE(d->dx, D * S); TAKE(d->dx2, D * S); TAKE(d->dxn, D * S);
    TAKE(d->dv_full, QD * S); TAKE(d->dk_full, QD * S);
    TAKE(d->qk_tmp, QD * S); TAKE(d->qk_rstd, NHK * S);
#undef TAKE
    return used;
}

// The 10 kernels once; weight-bearing ones bound again to an input surface per
// layer (and an output surface per layer where OWN_OUTPUT says so).
static int compile_kernels(Pipeline *pl, Dyn *d) {
    const double t0 = time_ms();
    const int L = d->dp.cfg.n_layers;
    for (int k = 0; k < K; k++) {
        MilKernel mk;
        if (mil_kernel_build_dialect((MilKernelKind)k, &d->dp.cfg, d->dp.S, d->dp.dialect, &mk) != 0 ||
            dk_compile(&d->kern[k], &d->dp.dev, &mk, NULL, NULL) != 0)
            return -1;
        pl->times.kernels_compiled++;
        pl->times.dialect_fallbacks = d->dp.dev.dialect_fallbacks;
        for (int l = 1; PER_LAYER[k] && l < L; l++)
            if (dk_bind(&d->kern[l * K + k], &d->dp.dev, &d->kern[k], NULL, OWN_OUTPUT[k] ? NULL : d->kern[k].out) != 0)
                return -1;
    }
    pl->times.compile = time_ms() - t0;
    return 0;
}

// The device head's kernels: clsFwd and clsBwd compiled once per chunk size and
// bound to every chunk (each its own input surface of rows; the outputs are
// read before the next chunk runs), and the softmaxes.
static int compile_head(Pipeline *pl, Dyn *d) {
    const double t0 = time_ms();
    DevHead *h = &d->dh;
    Device *dev = &d->dp.dev;
    const int before = dev->compiles;
    for (int c = 0; c < h->n; c++)
        for (int b = 0; b < 2; b++) {
            DevKernel *x = b ? h->bwd : h->cls;
            if (c > 0 && devhead_rows(h, c) == h->rows) {
                if (dk_bind(&x[c], dev, &x[0], NULL, x[0].out) != 0) return -1;
                continue;
            }
            MilKernel mk;
            if (mil_kernel_build_chunk(b ? MIL_K_CLS_BWD : MIL_K_CLS_FWD, &d->dp.cfg, d->dp.S, d->dp.dialect,
                                       devhead_rows(h, c), &mk) != 0 ||
                dk_compile(&x[c], dev, &mk, NULL, NULL) != 0)
                return -1;
        }
    if (devhead_compile_softmax(h, dev, &d->dp.cfg, d->dp.dialect) != 0) return -1;
    pl->times.kernels_compiled += dev->compiles - before;
    pl->times.dialect_fallbacks = dev->dialect_fallbacks;
    pl->times.compile += time_ms() - t0;
    return 0;
}

static int dyn_setup(Pipeline *pl, Dyn *d, const Config *cfg, int seq, const PipelineOptions *o) {
    const int L = cfg->n_layers;
    if (device_init(&d->dp.dev, o->device ? o->device : "sim", o->compile_budget) != 0) return -1;
    d->serial_staging = o->serial_staging;
    if (!d->serial_staging && worker_init(&d->stager) != 0) return -1;
    d->layers = calloc(L, sizeof(DynLayer));
    d->kern = calloc((size_t)L * K, sizeof(DevKernel));
    d->dp.tok = calloc(seq, sizeof(int));
    d->dp.tgt = calloc(seq, sizeof(int));
    if (!d->layers || !d->kern || !d->dp.tok || !d->dp.tgt) return err_set("out of memory");
    d->block = calloc(carve(d, NULL), sizeof(float));
    if (!d->block) return err_set("out of memory for the dynamic pipeline (%s, window %d)", cfg->name, seq);
    carve(d, d->block);
    d->dp.x0 = d->layers[0].x, d->dp.dx = d->dx, d->dp.stages = &STAGES;
    if (dp_rope_init(&d->rope, cfg, seq) != 0 ||
        cpu_head_init(&d->head, cfg, seq, o->vocab_rows, o->n_vocab_rows, !o->device_head) != 0 ||
        (o->lora && devpipe_lora_init(&d->dp, o->lora, o->lora_cfg, 1) != 0) || compile_kernels(pl, d) != 0)
        return -1;
    if (o->device_head && (devhead_init(&d->dh, o->n_vocab_rows > 0 ? o->n_vocab_rows : cfg->vocab, seq, 1) != 0 ||
                           compile_head(pl, d) != 0))
        return -1;
    return dwq_init(&d->dp.dwq, d->dp.dev.on_host && !o->dw_thread);
}

int pipeline_dynamic_init(Pipeline *pl, const Config *cfg, int seq, const PipelineOptions *o) {
    static const PipelineOptions none;
    if (!o) o = &none;
    memset(pl, 0, sizeof *pl);
    Dyn *d = calloc(1, sizeof *d);
    if (!d) return err_set("out of memory");
    pl->impl = d;
    pl->name = "dynamic";
    pl->step = dyn_step;
    pl->eval = dyn_eval;
    pl->params_changed = dyn_params_changed;
    pl->free = dyn_free;
    d->dp.cfg = *cfg;
    d->dp.S = seq;
    d->dp.dialect = o->mil_dialect ? MIL_DIALECT_IOS16 : MIL_DIALECT_IOS18;
    if (dyn_setup(pl, d, cfg, seq, o) != 0) {
        err_wrap("dynamic pipeline on %s", o->device ? o->device : "sim");
        dyn_free(pl);
        memset(pl, 0, sizeof *pl);
        return -1;
    }
    return 0;
}
