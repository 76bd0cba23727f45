// pipeline_static: the seed's static pipelines (ane-spec §2.1–2.2) on a Device.
//
// Each layer has its own kernels with the weights baked in (fwdAttn, fwdFFN,
// ffnBwd, woSdpaBwd1, qkvBwd; kernels.h), compiled from the current weights
// before the first window after every optimizer update; sdpaBwd2 is
// weight-free and compiled once per process. Activations stay fp16 on the
// kernels' own surfaces between the forward and the backward and are copied
// surface to surface (h1/h3, q/k/v, probs/dP); the residual adds, RoPE and
// QK-norm backward, GQA reduce, RMSNorm backward, the classifier and the
// cross-entropy run on the CPU.
//
// static-ane adds device kernels (its "ANE extras"): RMSNorm backward dx for
// both norms of every layer (the CPU computes only their weight gradients),
// the final RMSNorm, the classifier as 1x1 convs over chunks of at most
// MIL_MAX_OUT_CHANNELS rows, and a softmax per chunk that also returns the
// chunk's max and sum, from which the CPU forms the softmax over the whole
// vocabulary, the loss (logsumexp − the target's logit) and p − onehot. The
// classifier backward and the final norm's backward stay on the CPU.
//
// Compiles are counted against the process's budget (device.h): restart_due()
// says when the next update's kernels would not fit, so the trainer can save
// and replace the process.
//
// Under LoRA the base is frozen: it is baked once, and the adapters (and the
// trained norms with --train-norms) are input regions of the kernels
// (MilBaked), restaged after every update — no recompile, no restart.
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/gemm.h"
#include "core/timer.h"
#include "cpu/ops_fast.h"
#include "train/devhead.h"
#include "train/devpipe.h"
#include "train/pipeline.h"

// the kernels of one layer; the last two only with the extras
enum { SK_ATTN, SK_FFN, SK_FFN_BWD, SK_ATTN_BWD, SK_QKV_BWD, SK_NORM1_BWD, SK_NORM2_BWD, SK_PER_LAYER };
static const MilKernelKind SK_KIND[SK_PER_LAYER] = {
    MIL_K_ATTN_FWD, MIL_K_FFN_FWD, MIL_K_FFN_BWD, MIL_K_WO_SDPA_BWD1, MIL_K_QKV_BWD, MIL_K_RMSNORM_BWD,
    MIL_K_RMSNORM_BWD,
};

typedef struct {
    DevKernel k[SK_PER_LAYER];
    // forward saves (fp32) for the CPU's share of the backward
    float *x, *rstd1, *xn, *q_pre, *k_pre, *att;  // (D,S) (S) (D,S) (QD,S) (KVD,S) (QD,S)
    float *x2, *rstd2, *x2n, *g;                  // (D,S) (S) (D,S) (H,S)
    // backward buffers read by queued dW GEMMs (per layer: the worker may still read them)
    float *dffn, *dh1, *dh3, *dy2s, *dq, *dk, *dv;
} StLayer;

typedef struct {
    DevPipe dp;           // first: the shared step's state (devpipe.h)
    int extras;
    int n_layer_kernels;  // per layer: 5, or 7 with the extras
    int per_update;       // weight-bearing compiles per update
    StLayer *layers;
    DevKernel bwd2;       // sdpaBwd2 (weight-free)
    CpuHead head;
    DevKernel norm;       // static-ane: finalNorm
    DevHead dh;           // static-ane: the classifier chunks and their softmax
    float *x_out, *dx, *dx2, *dxn, *tmp, *ynorm;  // (D,S) each
    float *dv_full, *dk_full, *qk_tmp, *qk_rstd;  // (QD,S) x3, (NH+NKV)·S
    float *block;
    RopeT rope;            // the angles laid out [HD/2][S], for the RoPE backward
    int compiled;         // the baked weights are the current ones
    int has_kernels;      // kernels were compiled once (surfaces exist)
    int inputs_staged;    // LoRA: the kernels' adapter and norm inputs are the current ones
} St;

static void axpy_into(float *dst, const float *x, float a, const float *y, size_t n) {  // dst = x + a·y
    for (size_t i = 0; i < n; i++) dst[i] = x[i] + a * y[i];
}

// --- compiling the baked weights ------------------------------------------------------------

// Under LoRA the kernels take the adapters (and trained norms) as inputs.
static void lora_inputs(const St *s, MilBaked *w) {
    const DevPipe *dp = &s->dp;
    if (!dp->lora) return;
    w->lora_rank = dp->lora_cfg.rank, w->lora_targets = dp->lora_cfg.targets;
    w->lora_scale = dp->lora_cfg.alpha / (float)dp->lora_cfg.rank;
    w->norms_in = dp->lora_cfg.train_norms;
}

static MilBaked layer_weights(const St *s, const Params *p, int l) {
    const Config *c = &s->dp.cfg;
    const size_t D = c->dim, H = c->hidden, QD = config_q_dim(c), KVD = config_kv_dim(c), HD = c->head_dim;
    const ParamViews *v = &p->v;
    MilBaked w = {
        .wq = v->wq + l * QD * D, .wk = v->wk + l * KVD * D, .wv = v->wv + l * KVD * D, .wo = v->wo + l * D * QD,
        .w1 = v->w1 + l * H * D, .w2 = v->w2 + l * D * H, .w3 = v->w3 + l * H * D,
        .rms_att = v->rms_att + l * D, .rms_ffn = v->rms_ffn + l * D,
        .q_norm = c->qk_norm ? v->q_norm + l * HD : NULL, .k_norm = c->qk_norm ? v->k_norm + l * HD : NULL,
    };
    lora_inputs(s, &w);
    return w;
}

// Builds kernel kind from w into x: compiled into new surfaces the first time,
// into x's surfaces after that.
static int bake(St *s, DevKernel *x, MilKernelKind kind, const MilBaked *w) {
    MilKernel k;
    if (mil_kernel_build_baked_dialect(kind, &s->dp.cfg, s->dp.S, s->dp.dialect, w, &k) != 0) return -1;
    int rc = s->has_kernels ? dk_recompile(x, &s->dp.dev, &k) : dk_compile(x, &s->dp.dev, &k, NULL, NULL);
    mil_kernel_free(&k);  // no-op when the kernel took it
    return rc;
}

static int bake_head(St *s, const Params *p) {
    DevHead *h = &s->dh;
    MilBaked wn = {.rms = p->v.rms_final};
    lora_inputs(s, &wn);
    if (bake(s, &s->norm, MIL_K_FINAL_NORM, &wn) != 0) return -1;
    VocabCompact *vc = &s->head.vc;
    if (vc->n) vocab_compact_gather(vc, p->v.wcls, NULL, NULL, 0);  // the rows in use, baked as one table
    for (int c = 0; c < h->n; c++) {
        const int row0 = c * h->rows, rows = devhead_rows(h, c);
        const MilBaked wc = {.cls = vc->n ? vc->W : p->v.wcls, .row0 = row0, .rows = rows};
        if (bake(s, &h->cls[c], MIL_K_CLASSIFIER, &wc) != 0) return err_wrap("classifier chunk %d", c);
    }
    return 0;
}

static int compile_weights(Pipeline *pl, St *s, const Params *p) {
    const double t0 = time_ms();
    const int before = s->dp.dev.compiles;
    for (int l = 0; l < s->dp.cfg.n_layers; l++) {
        MilBaked w = layer_weights(s, p, l);
        for (int i = 0; i < s->n_layer_kernels; i++) {
            w.rms = i == SK_NORM1_BWD ? w.rms_att : w.rms_ffn;
            if (bake(s, &s->layers[l].k[i], SK_KIND[i], &w) != 0) return err_wrap("layer %d", l);
        }
    }
    if (s->extras && bake_head(s, p) != 0) return -1;
    s->has_kernels = s->compiled = 1;
    pl->times.compile += time_ms() - t0;
    pl->times.kernels_compiled += s->dp.dev.compiles - before;
    pl->times.dialect_fallbacks = s->dp.dev.dialect_fallbacks;
    return 0;
}

// --- forward ---------------------------------------------------------------------------------

static int attn_forward(Pipeline *pl, const Params *p, int l) {
    St *s = pl->impl;
    const Config *c = &s->dp.cfg;
    const int D = c->dim, S = s->dp.S;
    StLayer *A = &s->layers[l];
    DevKernel *k = &A->k[SK_ATTN];
    double tc = time_ms();
    rmsnorm_forward(s->ynorm, A->rstd1, A->x, p->v.rms_att + (size_t)l * D, D, S, c->norm_eps);  // rstd for the backward
    pl->times.cpu_ops += time_ms() - tc;
    if (dp_stage(pl, &s->dp.dev, k, "x", A->x) || dp_eval(pl, &s->dp.dev, k, l) || dp_fetch(pl, &s->dp.dev, k, "o", s->tmp) ||
        dp_fetch(pl, &s->dp.dev, k, "attn", A->att) || dp_fetch(pl, &s->dp.dev, k, "xn", A->xn))
        return -1;
    if (c->qk_norm && (dp_fetch(pl, &s->dp.dev, k, "q_pre", A->q_pre) || dp_fetch(pl, &s->dp.dev, k, "k_pre", A->k_pre)))
        return -1;
    tc = time_ms();
    axpy_into(A->x2, A->x, c->res_scale, s->tmp, (size_t)D * S);  // residual in fp32
    rmsnorm_forward(s->ynorm, A->rstd2, A->x2, p->v.rms_ffn + (size_t)l * D, D, S, c->norm_eps);
    pl->times.cpu_ops += time_ms() - tc;
    return 0;
}

static int ffn_forward(Pipeline *pl, const Params *p, int l) {
    (void)p;
    St *s = pl->impl;
    float *x_next = l + 1 < s->dp.cfg.n_layers ? s->layers[l + 1].x : s->x_out;
    const Config *c = &s->dp.cfg;
    StLayer *A = &s->layers[l];
    DevKernel *k = &A->k[SK_FFN];
    if (dp_stage(pl, &s->dp.dev, k, "x2", A->x2) || dp_eval(pl, &s->dp.dev, k, l) || dp_fetch(pl, &s->dp.dev, k, "f", s->tmp) ||
        dp_fetch(pl, &s->dp.dev, k, "g", A->g) || dp_fetch(pl, &s->dp.dev, k, "x2n", A->x2n))
        return -1;
    double tc = time_ms();
    axpy_into(x_next, A->x2, c->res_scale, s->tmp, (size_t)c->dim * s->dp.S);
    pl->times.cpu_ops += time_ms() - tc;
    return 0;
}

static int chunk_forward(Pipeline *pl, St *s, int c) {
    DevKernel *cls = &s->dh.cls[c];
    return dp_copy(pl, &s->dp.dev, cls, "xf", &s->norm, "xf", 0, 1) || dp_eval(pl, &s->dp.dev, cls, -1) ||
                   devhead_chunk_softmax(pl, &s->dp.dev, &s->dh, c)
               ? -1
               : 0;
}

static int head_forward(Pipeline *pl, const Params *p, float *loss) {
    St *s = pl->impl;
    const int D = s->dp.cfg.dim, S = s->dp.S;
    if (!s->extras) {
        double tc = time_ms();
        cpu_head_forward(&s->head, p, s->x_out, s->dp.tgt, loss);
        dp_cls_time(pl, tc);
        return 0;
    }
    double tc = time_ms();
    rmsnorm_forward(s->ynorm, s->head.rstd, s->x_out, p->v.rms_final, D, S, s->dp.cfg.norm_eps);  // rstd for the backward
    pl->times.cpu_ops += time_ms() - tc;
    if (dp_stage(pl, &s->dp.dev, &s->norm, "x", s->x_out) || dp_eval(pl, &s->dp.dev, &s->norm, -1) ||
        dp_fetch(pl, &s->dp.dev, &s->norm, "xf", s->head.xf))
        return -1;
    // targets as classifier rows: compact ids when compacted (an unused id: no loss)
    devhead_targets(&s->dh, &s->head.vc, s->dp.tgt);
    for (int c = 0; c < s->dh.n; c++)
        if (chunk_forward(pl, s, c) != 0) return err_wrap("classifier chunk %d", c);
    tc = time_ms();
    devhead_combine(&s->dh, loss);
    pl->times.cpu_ops += time_ms() - tc;
    return 0;
}

// Layer l's adapters of every target kernel x takes, and the norm weight w
// when x takes one (trained norms).
static int stage_layer_inputs(Pipeline *pl, St *s, DevKernel *x, int l, const char *norm, const float *w) {
    const DevPipe *dp = &s->dp;
    for (int t = 0; t < LORA_N_TARGETS; t++) {
        if (!mil_kernel_input(x->k, mil_lora_region(t, 0))) continue;
        const LoraMat m = lora_mat(dp->lora, &dp->lora_cfg, (LoraTarget)t, l);
        if (dp_stage_weight(pl, &s->dp.dev, x, mil_lora_region(t, 0), m.A) ||
            dp_stage_weight(pl, &s->dp.dev, x, mil_lora_region(t, 1), m.B))
            return -1;
    }
    return mil_kernel_input(x->k, norm) ? dp_stage_weight(pl, &s->dp.dev, x, norm, w) : 0;
}

// Under LoRA: the adapters and trained norms p holds into every kernel's inputs.
static int stage_inputs(Pipeline *pl, St *s, const Params *p) {
    const int D = s->dp.cfg.dim;
    static const char *const NORM[SK_PER_LAYER] = {"rms_att", "rms_ffn", "", "", "", "rms", "rms"};
    for (int l = 0; l < s->dp.cfg.n_layers; l++)
        for (int i = 0; i < s->n_layer_kernels; i++) {
            const float *w = (i == SK_ATTN || i == SK_NORM1_BWD ? p->v.rms_att : p->v.rms_ffn) + (size_t)l * D;
            if (stage_layer_inputs(pl, s, &s->layers[l].k[i], l, NORM[i], w) != 0) return err_wrap("layer %d", l);
        }
    if (s->extras && stage_layer_inputs(pl, s, &s->norm, 0, "rms", p->v.rms_final) != 0) return -1;
    s->inputs_staged = 1;
    return 0;
}

// The kernels hold the current weights: compiled now if an update changed
// them (under LoRA: compiled once, the adapters restaged after an update).
static int prepare(Pipeline *pl, const Params *p) {
    St *s = pl->impl;
    if (!s->compiled && compile_weights(pl, s, devpipe_weights(&s->dp, p)) != 0) return -1;
    return s->dp.lora && !s->inputs_staged ? stage_inputs(pl, s, p) : 0;
}

// --- backward --------------------------------------------------------------------------------

// dl = scale·(p − onehot)/n_valid (rows of ignored targets zero); dW += dl·xfᵀ, dxf = Wᵀ·dl.
static int head_backward_extras(Pipeline *pl, St *s, const Params *p, const ParamViews *g, float scale) {
    DevHead *h = &s->dh;
    const int S = s->dp.S, D = s->dp.cfg.dim, V = h->V;
    for (int c = 0; c < h->n; c++)
        if (devhead_dlogits(pl, &s->dp.dev, h, c, scale, NULL) != 0) return err_wrap("classifier chunk %d", c);
    const double tc = time_ms();
    VocabCompact *vc = &s->head.vc;  // compacted: the rows in use, their gradient scattered back
    const float *W = vc->n ? vc->W : p->v.wcls;
    float *dW = vc->n ? vc->dW : g->wcls;
    if (g->wcls) gemm(0, 1, V, D, S, 1.0f, h->dl, S, s->head.xf, S, 1.0f, dW, D);  // dW [V,D]
    if (g->wcls && vc->n) vocab_compact_scatter(vc, g->wcls);
    gemm(1, 0, D, S, V, 1.0f, W, D, h->dl, S, 0.0f, s->head.dxf, S);  // dxf [D,S]
    rmsnorm_backward(s->dx, g->rms_final, s->head.dxf, s->x_out, p->v.rms_final, s->head.rstd, D, S);
    pl->times.cpu_ops += time_ms() - tc;
    return 0;
}

// dx = RMSNorm backward of dy at x (norm weight w, rstd), dw into gw: the extras'
// kernel computes dx, the CPU the weight gradient; without them all on the CPU.
static int norm_backward(Pipeline *pl, St *s, DevKernel *k, float *dx, float *gw, const float *dy, const float *x,
                         const float *w, const float *rstd) {
    const int D = s->dp.cfg.dim, S = s->dp.S;
    if (s->extras &&
        (dp_stage(pl, &s->dp.dev, k, "dy", dy) || dp_stage(pl, &s->dp.dev, k, "x", x) || dp_eval(pl, &s->dp.dev, k, -1) ||
         dp_fetch(pl, &s->dp.dev, k, "dx", dx)))
        return -1;
    double tc = time_ms();
    float *cpu_dx = s->extras ? NULL : dx;  // with the extras the device computed dx
    if (cpu_dx || gw) rmsnorm_backward(cpu_dx, gw, dy, x, w, rstd, D, S);  // (gw NULL: frozen under LoRA)
    pl->times.cpu_ops += time_ms() - tc;
    return 0;
}

// dy: the gradient at the layer's output (s->dx); leaves the gradient at the FFN's input in s->dx2.
static int ffn_backward(Pipeline *pl, const Params *p, const ParamViews *g, int l) {
    St *s = pl->impl;
    const Config *c = &s->dp.cfg;
    const int D = c->dim, S = s->dp.S;
    const size_t DS = (size_t)D * S;
    StLayer *A = &s->layers[l];
    DevKernel *k = &A->k[SK_FFN_BWD];
    for (size_t i = 0; i < DS; i++) A->dffn[i] = c->res_scale * s->dx[i];
    if (dp_stage(pl, &s->dp.dev, k, "dffn", A->dffn) || dp_copy(pl, &s->dp.dev, k, "h1", &A->k[SK_FFN], "h1", 0, 1) ||
        dp_copy(pl, &s->dp.dev, k, "h3", &A->k[SK_FFN], "h3", 0, 1) || dp_eval(pl, &s->dp.dev, k, l) ||
        dp_fetch(pl, &s->dp.dev, k, "dx", s->dxn) || dp_fetch(pl, &s->dp.dev, k, "dh1", A->dh1) ||
        dp_fetch(pl, &s->dp.dev, k, "dh3", A->dh3))
        return -1;
    devpipe_weight_grad(&s->dp, g, LORA_W2, l, A->dffn, A->g);
    devpipe_weight_grad(&s->dp, g, LORA_W1, l, A->dh1, A->x2n);
    devpipe_weight_grad(&s->dp, g, LORA_W3, l, A->dh3, A->x2n);
    const size_t lD = (size_t)l * D;
    if (norm_backward(pl, s, &A->k[SK_NORM2_BWD], s->dx2, dp_at(g->rms_ffn, lD), s->dxn, A->x2, p->v.rms_ffn + lD,
                      A->rstd2) != 0)
        return -1;
    vec_add(s->dx2, s->dx, DS);
    return 0;
}

// q, k, v tiled to the query heads straight from fwdAttn's output surface, then sdpaBwd1 and sdpaBwd2.
static int sdpa_backward(Pipeline *pl, St *s, const ParamViews *g, int l) {
    const Config *c = &s->dp.cfg;
    const int D = c->dim, S = s->dp.S, HD = c->head_dim, R = c->n_heads / c->n_kv_heads;
    StLayer *A = &s->layers[l];
    DevKernel *fa = &A->k[SK_ATTN], *b1 = &A->k[SK_ATTN_BWD], *b2 = &s->bwd2;
    for (size_t i = 0; i < (size_t)D * S; i++) A->dy2s[i] = c->res_scale * s->dx2[i];
    if (dp_stage(pl, &s->dp.dev, b1, "dy", A->dy2s) || dp_copy(pl, &s->dp.dev, b1, "q", fa, "q_rope", 0, 1) ||
        dp_copy(pl, &s->dp.dev, b1, "k", fa, "k_rope", HD, R) || dp_copy(pl, &s->dp.dev, b1, "v", fa, "v", HD, R) ||
        dp_eval(pl, &s->dp.dev, b1, l) || dp_fetch(pl, &s->dp.dev, b1, "dv", s->dv_full))
        return -1;
    devpipe_weight_grad(&s->dp, g, LORA_O, l, A->dy2s, A->att);
    if (dp_copy(pl, &s->dp.dev, b2, "probs", b1, "probs", 0, 1) || dp_copy(pl, &s->dp.dev, b2, "dp", b1, "dp", 0, 1) ||
        dp_copy(pl, &s->dp.dev, b2, "q", fa, "q_rope", 0, 1) || dp_copy(pl, &s->dp.dev, b2, "k", fa, "k_rope", HD, R) ||
        dp_eval(pl, &s->dp.dev, b2, l) || dp_fetch(pl, &s->dp.dev, b2, "dq", A->dq) ||
        dp_fetch(pl, &s->dp.dev, b2, "dk", s->dk_full))
        return -1;
    return 0;
}

// From the gradient at the attention's output (s->dx2) to the layer input's (s->dx).
static int attn_backward(Pipeline *pl, const Params *p, const ParamViews *g, int l) {
    St *s = pl->impl;
    const Config *c = &s->dp.cfg;
    const int D = c->dim, S = s->dp.S, HD = c->head_dim;
    StLayer *A = &s->layers[l];
    if (sdpa_backward(pl, s, g, l) != 0) return -1;
    double tc = time_ms();
    const size_t lh = (size_t)l * HD;
    dp_attn_backward_cpu(c, &s->rope, c->qk_norm ? p->v.q_norm + lh : NULL, c->qk_norm ? p->v.k_norm + lh : NULL,
                         dp_at(g->q_norm, lh), dp_at(g->k_norm, lh), A->dq, A->dk, A->dv,
                         s->dk_full, s->dv_full, A->q_pre, A->k_pre, s->qk_tmp, s->qk_rstd, S);
    pl->times.cpu_ops += time_ms() - tc;
    devpipe_weight_grad(&s->dp, g, LORA_Q, l, A->dq, A->xn);
    devpipe_weight_grad(&s->dp, g, LORA_K, l, A->dk, A->xn);
    devpipe_weight_grad(&s->dp, g, LORA_V, l, A->dv, A->xn);
    DevKernel *k = &A->k[SK_QKV_BWD];
    if (dp_stage(pl, &s->dp.dev, k, "dq", A->dq) || dp_stage(pl, &s->dp.dev, k, "dk", A->dk) ||
        dp_stage(pl, &s->dp.dev, k, "dv", A->dv) || dp_eval(pl, &s->dp.dev, k, l) || dp_fetch(pl, &s->dp.dev, k, "dx", s->dxn))
        return -1;
    const size_t lD = (size_t)l * D;
    if (norm_backward(pl, s, &A->k[SK_NORM1_BWD], s->dx, dp_at(g->rms_att, lD), s->dxn, A->x, p->v.rms_att + lD,
                      A->rstd1) != 0)
        return -1;
    vec_add(s->dx, s->dx2, (size_t)D * S);
    return 0;
}

static int head_backward(Pipeline *pl, const Params *p, const ParamViews *g, float scale) {
    St *s = pl->impl;
    if (s->extras) return head_backward_extras(pl, s, p, g, scale);
    const double tc = time_ms();
    cpu_head_backward(&s->head, p, g, s->x_out, scale, s->dx);
    dp_cls_time(pl, tc);
    return 0;
}

static const DevStages STAGES = {prepare,      attn_forward,  ffn_forward, head_forward,
                                 head_backward, ffn_backward, attn_backward, NULL};

// --- Pipeline methods ------------------------------------------------------------------------

static int st_step(Pipeline *pl, const Params *p, const int *tok, const int *tgt, float *grads, float scale,
                   float *loss) {
    St *s = pl->impl;
    return devpipe_step(pl, &s->dp, p, tok, tgt, grads, scale, loss);
}

static int st_eval(Pipeline *pl, const Params *p, const int *tok, const int *tgt, float *loss) {
    St *s = pl->impl;
    return devpipe_forward(pl, &s->dp, p, tok, tgt, loss);
}

static int st_params_changed(Pipeline *pl, const Params *p) {
    (void)p;
    St *s = pl->impl;
    if (s->dp.lora) s->inputs_staged = 0;  // the next window restages the adapters
    else s->compiled = 0;                  // the next window compiles the new weights
    return 0;
}

static int st_restart_due(Pipeline *pl) {
    const St *s = pl->impl;
    return !s->compiled && device_process_compiles() + s->per_update > s->dp.dev.compile_budget;
}

static void st_free(Pipeline *pl) {
    St *s = pl->impl;
    if (!s) return;
    dwq_free(&s->dp.dwq);
    for (int l = 0; s->layers && l < s->dp.cfg.n_layers; l++)
        for (int i = 0; i < SK_PER_LAYER; i++) dk_free(&s->layers[l].k[i], &s->dp.dev);
    dk_free(&s->bwd2, &s->dp.dev);
    dk_free(&s->norm, &s->dp.dev);
    devhead_free(&s->dh, &s->dp.dev);
    if (s->dp.dev.ops) device_free(&s->dp.dev);
    cpu_head_free(&s->head);
    devpipe_lora_free(&s->dp);
    ropet_free(&s->rope);
    free(s->layers);
    free(s->block);
    free(s->dp.tok);
    free(s->dp.tgt);
    free(s);
    pl->impl = NULL;
}

// Carves every fp32 buffer out of one block (first call sizes it).
static size_t carve(St *s, float *base) {
    const Config *c = &s->dp.cfg;
    const size_t S = s->dp.S, D = c->dim, H = c->hidden, QD = config_q_dim(c), KVD = config_kv_dim(c);
    const size_t NHK = (size_t)c->n_heads + c->n_kv_heads;
    size_t used = 0;
#define TAKE(ptr, n) do { ptr = base ? base + used : NULL; used += ((n) + 15) & ~(size_t)15; } while (0)
    for (int l = 0; l < c->n_layers; l++) {
        StLayer *A = &s->layers[l];
        TAKE(A->x, D * S); TAKE(A->rstd1, S); TAKE(A->xn, D * S); TAKE(A->att, QD * S);
        if (c->qk_norm) { TAKE(A->q_pre, QD * S); TAKE(A->k_pre, KVD * S); }
        TAKE(A->x2, D * S); TAKE(A->rstd2, S); TAKE(A->x2n, D * S); TAKE(A->g, H * S);
        TAKE(A->dffn, D * S); TAKE(A->dh1, H * S); TAKE(A->dh3, H * S); TAKE(A->dy2s, D * S);
        TAKE(A->dq, QD * S); TAKE(A->dk, KVD * S); TAKE(A->dv, KVD * S);
    }
    TAKE(s->x_out, D * S); TAKE(s->dx, D * S); TAKE(s->dx2, D * S); TAKE(s->dxn, D * S);
    TAKE(s->tmp, D * S); TAKE(s->ynorm, D * S);
    TAKE(s->dv_full, QD * S); TAKE(s->dk_full, QD * S); TAKE(s->qk_tmp, QD * S); TAKE(s->qk_rstd, NHK * S);
#undef TAKE
    return used;
}

// The kernels compiled once per process: sdpaBwd2, and the extras' vocabulary softmaxes.
static int compile_fixed(Pipeline *pl, St *s) {
    const double t0 = time_ms();
    MilKernel k;
    if (mil_kernel_build_dialect(MIL_K_SDPA_BWD2, &s->dp.cfg, s->dp.S, s->dp.dialect, &k) != 0 || dk_compile(&s->bwd2, &s->dp.dev, &k, NULL, NULL))
        return -1;
    if (s->extras && devhead_compile_softmax(&s->dh, &s->dp.dev, &s->dp.cfg, s->dp.dialect) != 0) return -1;
    pl->times.compile += time_ms() - t0;
    pl->times.kernels_compiled += s->dp.dev.compiles;
    pl->times.dialect_fallbacks = s->dp.dev.dialect_fallbacks;
    return 0;
}

static int st_setup(Pipeline *pl, St *s, const Config *cfg, int seq, const PipelineOptions *o) {
    const int L = cfg->n_layers;
    if (device_init(&s->dp.dev, o->device ? o->device : "sim", o->compile_budget) != 0) return -1;
    s->layers = calloc(L, sizeof(StLayer));
    s->dp.tok = calloc(seq, sizeof(int));
    s->dp.tgt = calloc(seq, sizeof(int));
    if (!s->layers || !s->dp.tok || !s->dp.tgt) return err_set("out of memory");
    if (s->extras && devhead_init(&s->dh, o->n_vocab_rows > 0 ? o->n_vocab_rows : cfg->vocab, seq, 0) != 0) return -1;
    s->block = calloc(carve(s, NULL), sizeof(float));
    if (!s->block) return err_set("out of memory for the %s pipeline (%s, window %d)", pl->name, cfg->name, seq);
    carve(s, s->block);
    s->dp.x0 = s->layers[0].x, s->dp.dx = s->dx, s->dp.stages = &STAGES;
    if (dp_rope_init(&s->rope, cfg, seq) != 0 ||
        cpu_head_init(&s->head, cfg, seq, o->vocab_rows, o->n_vocab_rows, !s->extras) != 0 ||
        (o->lora && devpipe_lora_init(&s->dp, o->lora, o->lora_cfg, 0) != 0) || compile_fixed(pl, s) != 0)
        return -1;
    if (s->dp.dev.compiles + s->per_update > s->dp.dev.compile_budget)
        return err_set("the %s pipeline compiles %d kernels per update and %d once per process: a compile budget "
                       "of %d cannot hold them (--compile-budget)", pl->name, s->per_update, s->dp.dev.compiles,
                       s->dp.dev.compile_budget);
    return dwq_init(&s->dp.dwq, s->dp.dev.on_host && !o->dw_thread);
}

int pipeline_static_init(Pipeline *pl, const Config *cfg, int seq, const PipelineOptions *o) {
    static const PipelineOptions none;
    if (!o) o = &none;
    memset(pl, 0, sizeof *pl);
    St *s = calloc(1, sizeof *s);
    if (!s) return err_set("out of memory");
    pl->impl = s;
    pl->name = o->name && !strcmp(o->name, "static-ane") ? "static-ane" : "static";
    pl->step = st_step;
    pl->eval = st_eval;
    pl->params_changed = st_params_changed;
    pl->restart_due = st_restart_due;
    pl->free = st_free;
    s->dp.cfg = *cfg;
    s->dp.S = seq;
    s->dp.dialect = o->mil_dialect ? MIL_DIALECT_IOS16 : MIL_DIALECT_IOS18;
    s->extras = !strcmp(pl->name, "static-ane") && !o->no_ane_extras;
    s->n_layer_kernels = s->extras ? SK_PER_LAYER : SK_NORM1_BWD;
    int chunks = 0, rows;
    if (s->extras) mil_vocab_chunks(o->n_vocab_rows > 0 ? o->n_vocab_rows : cfg->vocab, &chunks, &rows);
    s->per_update = cfg->n_layers * s->n_layer_kernels + (s->extras ? 1 + chunks : 0);
    if (st_setup(pl, s, cfg, seq, o) != 0) {
        err_wrap("%s pipeline on %s", pl->name, o->device ? o->device : "sim");
        st_free(pl);
        memset(pl, 0, sizeof *pl);
        return -1;
    }
    return 0;
}
