// pipeline_dynamic: the seed's dynamic-weight pipeline (ane-spec 2.3) on a Device.
//
// Ten MIL kernels (src/mil/kernels.h) are compiled once. Every layer owns one
// input surface per weight-bearing kernel, holding that layer's weights staged
// after the activations along the spatial axis; they are restaged after each
// optimizer update (params_changed). Kernels share one output surface each.
// Between kernel evaluations the CPU does what the ANE does poorly: RMSNorm,
// SiLU backward, RoPE and QK-norm backward, GQA tile/reduce, the classifier and
// cross-entropy. Weight gradients are GEMMs on a worker thread (dw_queue),
// overlapped with the next device evaluation; the step waits for them before
// returning, so the optimizer never sees a partial gradient.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ane/device.h"
#include "core/err.h"
#include "core/gemm.h"
#include "core/timer.h"
#include "core/threads.h"
#include "cpu/ops.h"
#include "cpu/vocab_compact.h"
#include "cpu/ops_fast.h"
#include "mil/kernels.h"
#include "train/dw_queue.h"
#include "train/pipeline.h"

// kernels whose inputs carry weights get one input surface per layer
static const int PER_LAYER[MIL_K_DYN_COUNT] = {
    [MIL_K_SDPA_FWD] = 1, [MIL_K_WO_FWD] = 1,  [MIL_K_FFN_FUSED] = 1, [MIL_K_FFN_BWD_W2T] = 1,
    [MIL_K_FFN_BWD_W13T] = 1, [MIL_K_WOT_BWD] = 1, [MIL_K_Q_BWD] = 1, [MIL_K_KV_BWD] = 1,
};

typedef struct {
    // forward saves (fp32)
    float *x, *xn, *rstd1;         // (D,S) (D,S) (S)
    float *q, *k, *v;              // q_rope (QD,S), k_rope (KVD,S), v (KVD,S)
    float *q_pre, *k_pre;          // (QD,S) (KVD,S) qk_norm only
    float *att;                    // (QD,S)
    float *x2, *x2n, *rstd2;       // (D,S) (D,S) (S)
    float *h1, *h3, *g;            // (H,S)
    // backward buffers read by queued dW GEMMs: kept per layer so the worker
    // can still be reading them while the next layer's backward runs
    float *dffn, *dh1, *dh3, *dy2s, *dq, *dk, *dv;  // (D,S) (H,S) (H,S) (D,S) (QD,S) (KVD,S) (KVD,S)
} DynLayer;

typedef struct {
    Config cfg;
    int S;
    Device dev;
    MilKernel k[MIL_K_DYN_COUNT];
    DeviceKernel *dk[MIL_K_DYN_COUNT];
    DeviceSurface **in;    // (L * MIL_K_DYN_COUNT); shared kernels use slot 0
    DeviceSurface *out[MIL_K_DYN_COUNT];
    DeviceRequest **req;   // (L * MIL_K_DYN_COUNT)
    DynLayer *layers;
    float *block;          // behind every fp32 buffer
    float *x_out, *xf, *rstdf, *logits, *lse;  // logits (S,V), lse (S)
    float *cls_stats, *cls_dl, *cls_dx;        // fused classifier scratch (src/cpu/ops_fast.h)
    VocabCompact vc;                           // --compact-vocab: the classifier over these rows
    int nthreads;                              // threads that scratch was sized for
    float *dx, *dx2, *dxn, *dtmp, *datt;   // (D,S)x4, (QD,S)
    float *qt, *kt, *vt, *dv_full, *dk_full;  // (QD,S) tiled / per-query-head buffers
    float *scratch;        // (QD,S)
    int *tok, *tgt;
    RopeTable rope;
    DwQueue dwq;
    int staged;            // weights staged for the current params
} Dyn;

static DeviceSurface *in_surf(Dyn *d, int l, int k) { return d->in[(PER_LAYER[k] ? l : 0) * MIL_K_DYN_COUNT + k]; }
static DeviceRequest *request(Dyn *d, int l, int k) { return d->req[(PER_LAYER[k] ? l : 0) * MIL_K_DYN_COUNT + k]; }

// --- staging helpers (timed as "staging") --------------------------------------------

static int stage_raw(Dyn *d, int l, int k, const char *region, const float *src);

static int stage(Pipeline *pl, Dyn *d, int l, int k, const char *region, const float *src) {
    double t0 = time_ms();
    int rc = stage_raw(d, l, k, region, src);
    pl->times.staging += time_ms() - t0;
    return rc;
}

static int fetch(Pipeline *pl, Dyn *d, int k, const char *region, float *dst) {
    double t0 = time_ms();
    uint16_t *p = device_surface_lock(&d->dev, d->out[k], 0);
    if (!p) return err_set("%s: cannot lock the output surface", d->k[k].name);
    int rc = mil_kernel_fetch(&d->k[k], p, region, dst);
    device_surface_unlock(&d->dev, d->out[k], 0);
    pl->times.staging += time_ms() - t0;
    return rc;
}

static int eval(Pipeline *pl, Dyn *d, int l, int k) {
    double t0 = time_ms();
    int rc = device_eval(&d->dev, request(d, l, k));
    pl->times.device += time_ms() - t0;
    pl->times.device_evals++;
    if (rc != 0) err_wrap("%s (layer %d)", d->k[k].name, l);
    return rc;
}

// Weights of layer l into its surfaces. Regions say whether a block is M or Mᵀ.
// One region of layer l's input surface of kernel k, untimed (the callers time).
static int stage_raw(Dyn *d, int l, int k, const char *region, const float *src) {
    DeviceSurface *s = in_surf(d, l, k);
    uint16_t *p = device_surface_lock(&d->dev, s, 1);
    if (!p) return err_set("%s: cannot lock the input surface of layer %d", d->k[k].name, l);
    int rc = mil_kernel_stage(&d->k[k], p, region, src);
    device_surface_unlock(&d->dev, s, 1);
    return rc;
}

// Every weight of layer l into its surfaces (fp16, some transposed).
static int stage_layer(Dyn *d, const Params *p, int l) {
    const Config *c = &d->cfg;
    const size_t D = c->dim, H = c->hidden, QD = config_q_dim(c), KVD = config_kv_dim(c), HD = c->head_dim;
    const ParamViews *v = &p->v;
    const float *wq = v->wq + l * QD * D, *wk = v->wk + l * KVD * D, *wv = v->wv + l * KVD * D;
    const float *wo = v->wo + l * D * QD, *w1 = v->w1 + l * H * D, *w2 = v->w2 + l * D * H, *w3 = v->w3 + l * H * D;
    int rc = stage_raw(d, l, MIL_K_SDPA_FWD, "Wq^T", wq) | stage_raw(d, l, MIL_K_SDPA_FWD, "Wk^T", wk) |
             stage_raw(d, l, MIL_K_SDPA_FWD, "Wv^T", wv) | stage_raw(d, l, MIL_K_WO_FWD, "Wo^T", wo) |
             stage_raw(d, l, MIL_K_FFN_FUSED, "W1^T", w1) | stage_raw(d, l, MIL_K_FFN_FUSED, "W3^T", w3) |
             stage_raw(d, l, MIL_K_FFN_FUSED, "W2", w2) | stage_raw(d, l, MIL_K_FFN_BWD_W2T, "W2", w2) |
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
    for (int l = tid; l < j->d->cfg.n_layers; l += nt)
        if (stage_layer(j->d, j->p, l) != 0) j->failed[tid] = 1;
}

static int stage_weights(Pipeline *pl, Dyn *d, const Params *p) {
    const double t0 = time_ms();
    StageJob j = {.d = d, .p = p};
    const int nt = threads_run(stage_layers, &j);
    int failed = 0;
    for (int i = 0; i < nt; i++) failed |= j.failed[i];
    // a worker's message is its own thread's; find it again on this one
    for (int l = 0; failed && l < d->cfg.n_layers; l++)
        if (stage_layer(d, p, l) != 0) return err_wrap("staging the weights of layer %d", l);
    if (failed) return err_set("staging the weights failed on a worker thread");
    pl->times.staging += time_ms() - t0;
    d->staged = 1;
    return 0;
}

// --- GQA tile / reduce (query head h uses kv head h/R) -------------------------------

static void gqa_tile(float *dst, const float *src, int NH, int NKV, int HD, int S) {
    const int R = NH / NKV;
    for (int h = 0; h < NH; h++) memcpy(dst + (size_t)h * HD * S, src + (size_t)(h / R) * HD * S, sizeof(float) * HD * S);
}

static void gqa_reduce(float *dst, const float *src, int NH, int NKV, int HD, int S) {
    const int R = NH / NKV;
    const size_t n = (size_t)HD * S;
    for (int g = 0; g < NKV; g++) {
        float *o = dst + g * n;
        memcpy(o, src + (size_t)g * R * n, sizeof(float) * n);
        for (int r = 1; r < R; r++) {
            const float *s = src + (size_t)(g * R + r) * n;
            for (size_t i = 0; i < n; i++) o[i] += s[i];
        }
    }
}

// dW[rows,cols] += alpha * dY[rows,S] · X[cols,S]ᵀ, on the worker
static void push_dw(Dyn *d, float *dW, const float *dY, const float *X, int rows, int cols, float alpha) {
    dwq_push(&d->dwq, (DwJob){0, 1, rows, cols, d->S, alpha, 1.0f, dY, X, dW, d->S, d->S, cols});
}

// --- forward -----------------------------------------------------------------------------

// *loss = mean cross-entropy (0 without targets); -1 on a device error.
static int dyn_forward(Pipeline *pl, Dyn *d, const Params *p, const int *tok, const int *tgt, float *loss) {
    const Config *c = &d->cfg;
    const int S = d->S, D = c->dim, V = c->vocab, NH = c->n_heads, NKV = c->n_kv_heads, HD = c->head_dim;
    const float eps = c->norm_eps, alpha = c->res_scale;
    double t0 = time_ms(), cpu = 0, tc;
    if (!d->staged && stage_weights(pl, d, p) != 0) return -1;
    memcpy(d->tok, tok, sizeof(int) * S);
    for (int t = 0; t < S; t++) d->tgt[t] = tgt ? tgt[t] : -1;
    embed_forward(d->layers[0].x, p->v.embed, tok, D, S);
    for (int l = 0; l < c->n_layers; l++) {
        DynLayer *A = &d->layers[l];
        float *x_next = l + 1 < c->n_layers ? d->layers[l + 1].x : d->x_out;
        tc = time_ms();
        rmsnorm_forward(A->xn, A->rstd1, A->x, p->v.rms_att + (size_t)l * D, D, S, eps);
        cpu += time_ms() - tc;
        if (stage(pl, d, l, MIL_K_SDPA_FWD, "xn", A->xn) || eval(pl, d, l, MIL_K_SDPA_FWD) ||
            fetch(pl, d, MIL_K_SDPA_FWD, "attn", A->att) || fetch(pl, d, MIL_K_SDPA_FWD, "q_rope", A->q) ||
            fetch(pl, d, MIL_K_SDPA_FWD, "k_rope", A->k) || fetch(pl, d, MIL_K_SDPA_FWD, "v", A->v))
            return -1;
        if (c->qk_norm &&
            (fetch(pl, d, MIL_K_SDPA_FWD, "q_pre", A->q_pre) || fetch(pl, d, MIL_K_SDPA_FWD, "k_pre", A->k_pre)))
            return -1;
        if (stage(pl, d, l, MIL_K_WO_FWD, "attn", A->att) || eval(pl, d, l, MIL_K_WO_FWD) ||
            fetch(pl, d, MIL_K_WO_FWD, "o", A->x2))
            return -1;
        tc = time_ms();
        for (size_t i = 0; i < (size_t)D * S; i++) A->x2[i] = A->x[i] + alpha * A->x2[i];  // residual in fp32
        rmsnorm_forward(A->x2n, A->rstd2, A->x2, p->v.rms_ffn + (size_t)l * D, D, S, eps);
        cpu += time_ms() - tc;
        if (stage(pl, d, l, MIL_K_FFN_FUSED, "x2n", A->x2n) || stage(pl, d, l, MIL_K_FFN_FUSED, "x2", A->x2) ||
            eval(pl, d, l, MIL_K_FFN_FUSED) || fetch(pl, d, MIL_K_FFN_FUSED, "x_next", x_next) ||
            fetch(pl, d, MIL_K_FFN_FUSED, "h1", A->h1) || fetch(pl, d, MIL_K_FFN_FUSED, "h3", A->h3) ||
            fetch(pl, d, MIL_K_FFN_FUSED, "g", A->g))
            return -1;
        (void)NH, (void)NKV, (void)HD;
    }
    tc = time_ms();
    rmsnorm_forward(d->xf, d->rstdf, d->x_out, p->v.rms_final, D, S, eps);
    const float *wcls = p->v.wcls;
    int Vc = V;
    if (d->vc.n) {  // as the cpu pipeline: the active rows, targets in compact ids
        vocab_compact_gather(&d->vc, wcls, d->tgt, d->tgt, S);
        wcls = d->vc.W;
        Vc = d->vc.n;
    }
    *loss = classifier_forward(d->logits, d->lse, wcls, d->xf, d->tgt, S, Vc, D, d->cls_stats, NULL, d->nthreads);
    if (!tgt) *loss = 0.0f;
    cpu += time_ms() - tc;
    pl->times.cpu_ops += cpu;
    pl->times.forward += time_ms() - t0;
    return 0;
}

// --- backward -----------------------------------------------------------------------------

static int dyn_backward(Pipeline *pl, Dyn *d, const Params *p, float *grads, float loss_scale) {
    const Config *c = &d->cfg;
    const int S = d->S, D = c->dim, H = c->hidden, V = c->vocab, QD = config_q_dim(c), KVD = config_kv_dim(c);
    const int NH = c->n_heads, NKV = c->n_kv_heads, HD = c->head_dim;
    const float alpha = c->res_scale;
    const size_t DS = (size_t)D * S;
    double t0 = time_ms(), cpu = 0, tc = time_ms();
    ParamViews g;
    params_point(c, grads, &g);

    if (d->vc.n) {
        classifier_backward(d->dtmp, d->vc.dW, d->logits, d->lse, d->vc.W, d->xf, d->tgt, S, d->vc.n, D, loss_scale,
                            d->cls_dl, d->cls_dx, NULL, d->nthreads);
        vocab_compact_scatter(&d->vc, g.wcls);
    } else {
        classifier_backward(d->dtmp, g.wcls, d->logits, d->lse, p->v.wcls, d->xf, d->tgt, S, V, D, loss_scale,
                            d->cls_dl, d->cls_dx, NULL, d->nthreads);
    }
    rmsnorm_backward(d->dx, g.rms_final, d->dtmp, d->x_out, p->v.rms_final, d->rstdf, D, S);
    cpu += time_ms() - tc;

    for (int l = c->n_layers - 1; l >= 0; l--) {
        DynLayer *A = &d->layers[l];
        const size_t lD = (size_t)l * D;
        float *dy = d->dx;  // gradient at this layer's output
        // --- FFN ---
        tc = time_ms();
        for (size_t i = 0; i < DS; i++) A->dffn[i] = alpha * dy[i];
        cpu += time_ms() - tc;
        if (stage(pl, d, l, MIL_K_FFN_BWD_W2T, "dffn", A->dffn) || eval(pl, d, l, MIL_K_FFN_BWD_W2T) ||
            fetch(pl, d, MIL_K_FFN_BWD_W2T, "dg", A->dh1))
            return -1;
        tc = time_ms();
        memcpy(d->scratch, A->dh1, sizeof(float) * H * S);  // dg
        swiglu_backward(A->dh1, A->dh3, d->scratch, A->h1, A->h3, (size_t)H * S);
        cpu += time_ms() - tc;
        push_dw(d, g.w2 + (size_t)l * D * H, A->dffn, A->g, D, H, 1.0f);
        if (stage(pl, d, l, MIL_K_FFN_BWD_W13T, "dh1", A->dh1) || stage(pl, d, l, MIL_K_FFN_BWD_W13T, "dh3", A->dh3) ||
            eval(pl, d, l, MIL_K_FFN_BWD_W13T) || fetch(pl, d, MIL_K_FFN_BWD_W13T, "dx", d->dxn))
            return -1;
        push_dw(d, g.w1 + (size_t)l * H * D, A->dh1, A->x2n, H, D, 1.0f);
        push_dw(d, g.w3 + (size_t)l * H * D, A->dh3, A->x2n, H, D, 1.0f);
        tc = time_ms();
        rmsnorm_backward(d->dx2, g.rms_ffn + lD, d->dxn, A->x2, p->v.rms_ffn + lD, A->rstd2, D, S);
        for (size_t i = 0; i < DS; i++) {
            d->dx2[i] += dy[i];
            A->dy2s[i] = alpha * d->dx2[i];
        }
        cpu += time_ms() - tc;
        // --- attention ---
        if (stage(pl, d, l, MIL_K_WOT_BWD, "dy", A->dy2s) || eval(pl, d, l, MIL_K_WOT_BWD) ||
            fetch(pl, d, MIL_K_WOT_BWD, "da", d->datt))
            return -1;
        push_dw(d, g.wo + (size_t)l * D * QD, A->dy2s, A->att, D, QD, 1.0f);
        tc = time_ms();
        gqa_tile(d->kt, A->k, NH, NKV, HD, S);
        gqa_tile(d->vt, A->v, NH, NKV, HD, S);
        cpu += time_ms() - tc;
        if (stage(pl, d, l, MIL_K_SDPA_BWD1, "q", A->q) || stage(pl, d, l, MIL_K_SDPA_BWD1, "k", d->kt) ||
            stage(pl, d, l, MIL_K_SDPA_BWD1, "v", d->vt) || stage(pl, d, l, MIL_K_SDPA_BWD1, "da", d->datt) ||
            eval(pl, d, l, MIL_K_SDPA_BWD1) || fetch(pl, d, MIL_K_SDPA_BWD1, "dv", d->dv_full))
            return -1;
        {   // probs and dP go surface to surface, fp16 as they are
            double ts = time_ms();
            uint16_t *src = device_surface_lock(&d->dev, d->out[MIL_K_SDPA_BWD1], 0);
            uint16_t *dst = src ? device_surface_lock(&d->dev, in_surf(d, l, MIL_K_SDPA_BWD2), 1) : NULL;
            int rc = !src || !dst ? err_set("sdpaBwd: cannot lock the surfaces for the probs/dP copy")
                                  : mil_kernel_copy(&d->k[MIL_K_SDPA_BWD2], dst, "probs", &d->k[MIL_K_SDPA_BWD1],
                                                    src, "probs") |
                                        mil_kernel_copy(&d->k[MIL_K_SDPA_BWD2], dst, "dp", &d->k[MIL_K_SDPA_BWD1],
                                                        src, "dp");
            if (dst) device_surface_unlock(&d->dev, in_surf(d, l, MIL_K_SDPA_BWD2), 1);
            if (src) device_surface_unlock(&d->dev, d->out[MIL_K_SDPA_BWD1], 0);
            pl->times.staging += time_ms() - ts;
            if (rc) return -1;
        }
        if (stage(pl, d, l, MIL_K_SDPA_BWD2, "q", A->q) || stage(pl, d, l, MIL_K_SDPA_BWD2, "k", d->kt) ||
            eval(pl, d, l, MIL_K_SDPA_BWD2) || fetch(pl, d, MIL_K_SDPA_BWD2, "dq", A->dq) ||
            fetch(pl, d, MIL_K_SDPA_BWD2, "dk", d->dk_full))
            return -1;
        tc = time_ms();
        gqa_reduce(A->dk, d->dk_full, NH, NKV, HD, S);
        gqa_reduce(A->dv, d->dv_full, NH, NKV, HD, S);
        rope_backward(A->dq, &d->rope, NH, c->rope_layout);
        rope_backward(A->dk, &d->rope, NKV, c->rope_layout);
        if (c->qk_norm) {
            // recompute the per-head rstd from the pre-norm q, k the kernel returned
            float *tmp = d->scratch, *rq = d->dtmp, *rk = d->dtmp + (size_t)NH * S;  // dtmp is free here
            const float *wqn = p->v.q_norm + (size_t)l * HD, *wkn = p->v.k_norm + (size_t)l * HD;
            headnorm_forward(tmp, rq, A->q_pre, wqn, NH, HD, S, c->norm_eps);
            headnorm_forward(tmp, rk, A->k_pre, wkn, NKV, HD, S, c->norm_eps);
            headnorm_backward(tmp, g.q_norm + (size_t)l * HD, A->dq, A->q_pre, wqn, rq, NH, HD, S);
            memcpy(A->dq, tmp, sizeof(float) * QD * S);
            headnorm_backward(tmp, g.k_norm + (size_t)l * HD, A->dk, A->k_pre, wkn, rk, NKV, HD, S);
            memcpy(A->dk, tmp, sizeof(float) * KVD * S);
        }
        cpu += time_ms() - tc;
        push_dw(d, g.wq + (size_t)l * QD * D, A->dq, A->xn, QD, D, 1.0f);
        push_dw(d, g.wk + (size_t)l * KVD * D, A->dk, A->xn, KVD, D, 1.0f);
        push_dw(d, g.wv + (size_t)l * KVD * D, A->dv, A->xn, KVD, D, 1.0f);
        if (stage(pl, d, l, MIL_K_Q_BWD, "dq", A->dq) || eval(pl, d, l, MIL_K_Q_BWD) ||
            fetch(pl, d, MIL_K_Q_BWD, "dx", d->dxn))
            return -1;
        if (stage(pl, d, l, MIL_K_KV_BWD, "dk", A->dk) || stage(pl, d, l, MIL_K_KV_BWD, "dv", A->dv) ||
            eval(pl, d, l, MIL_K_KV_BWD) || fetch(pl, d, MIL_K_KV_BWD, "dx", d->dtmp))
            return -1;
        tc = time_ms();
        for (size_t i = 0; i < DS; i++) d->dxn[i] += d->dtmp[i];
        rmsnorm_backward(d->dx, g.rms_att + lD, d->dxn, A->x, p->v.rms_att + lD, A->rstd1, D, S);
        for (size_t i = 0; i < DS; i++) d->dx[i] += d->dx2[i];
        cpu += time_ms() - tc;
    }
    double tw = time_ms();
    dwq_wait(&d->dwq);  // the embedding and the optimizer must see complete gradients
    pl->times.dw_wait += time_ms() - tw;
    embed_backward(g.embed, d->dx, d->tok, D, S);
    pl->times.cpu_ops += cpu;
    pl->times.backward += time_ms() - t0;
    return 0;
}

// --- Pipeline methods -------------------------------------------------------------------

static int dyn_step(Pipeline *pl, const Params *p, const int *tok, const int *tgt, float *grads, float scale,
                    float *loss) {
    Dyn *d = pl->impl;
    if (dyn_forward(pl, d, p, tok, tgt, loss) != 0) return -1;
    if (dyn_backward(pl, d, p, grads, scale) != 0) {
        dwq_wait(&d->dwq);  // no worker may still write into grads
        return -1;
    }
    return 0;
}

static int dyn_eval(Pipeline *pl, const Params *p, const int *tok, const int *tgt, float *loss) {
    return dyn_forward(pl, pl->impl, p, tok, tgt, loss);
}

static int dyn_params_changed(Pipeline *pl, const Params *p) {
    Dyn *d = pl->impl;
    return stage_weights(pl, d, p);
}

static void dyn_free(Pipeline *pl) {
    Dyn *d = pl->impl;
    if (!d) return;
    dwq_free(&d->dwq);
    const int L = d->cfg.n_layers;
    for (int i = 0; d->req && i < L * MIL_K_DYN_COUNT; i++) device_request_free(&d->dev, d->req[i]);
    for (int i = 0; d->in && i < L * MIL_K_DYN_COUNT; i++) device_surface_free(&d->dev, d->in[i]);
    for (int k = 0; k < MIL_K_DYN_COUNT; k++) {
        device_surface_free(&d->dev, d->out[k]);
        device_kernel_free(&d->dev, d->dk[k]);
        mil_kernel_free(&d->k[k]);
    }
    if (d->dev.ops) device_free(&d->dev);
    rope_table_free(&d->rope);
    vocab_compact_free(&d->vc);
    free(d->req);
    free(d->in);
    free(d->layers);
    free(d->block);
    free(d->tok);
    free(d->tgt);
    free(d);
    pl->impl = NULL;
}

// Carves every fp32 buffer out of one block (first call sizes it).
static size_t carve(Dyn *d, float *base) {
    const Config *c = &d->cfg;
    const size_t S = d->S, D = c->dim, H = c->hidden, QD = config_q_dim(c), KVD = config_kv_dim(c), V = c->vocab;
    size_t used = 0;
#define TAKE(ptr, n) do { ptr = base ? base + used : NULL; used += ((n) + 15) & ~(size_t)15; } while (0)
    for (int l = 0; l < c->n_layers; l++) {
        DynLayer *A = &d->layers[l];
        TAKE(A->x, D * S); TAKE(A->xn, D * S); TAKE(A->rstd1, S);
        TAKE(A->q, QD * S); TAKE(A->k, KVD * S); TAKE(A->v, KVD * S);
        if (c->qk_norm) { TAKE(A->q_pre, QD * S); TAKE(A->k_pre, KVD * S); }
        TAKE(A->att, QD * S); TAKE(A->x2, D * S); TAKE(A->x2n, D * S); TAKE(A->rstd2, S);
        TAKE(A->h1, H * S); TAKE(A->h3, H * S); TAKE(A->g, H * S);
        TAKE(A->dffn, D * S); TAKE(A->dh1, H * S); TAKE(A->dh3, H * S); TAKE(A->dy2s, D * S);
        TAKE(A->dq, QD * S); TAKE(A->dk, KVD * S); TAKE(A->dv, KVD * S);
    }
    TAKE(d->x_out, D * S); TAKE(d->xf, D * S); TAKE(d->rstdf, S);
    const size_t T = d->nthreads;
    TAKE(d->logits, S * V); TAKE(d->lse, S);
    TAKE(d->cls_stats, 2 * T * S); TAKE(d->cls_dl, T * S * CLS_CHUNK); TAKE(d->cls_dx, T * D * S);
    TAKE(d->dx, D * S); TAKE(d->dx2, D * S); TAKE(d->dxn, D * S);
    TAKE(d->dtmp, (D > (size_t)(c->n_heads + c->n_kv_heads) ? D : (size_t)(c->n_heads + c->n_kv_heads)) * S);
    TAKE(d->datt, QD * S); TAKE(d->qt, QD * S); TAKE(d->kt, QD * S); TAKE(d->vt, QD * S);
    TAKE(d->dv_full, QD * S); TAKE(d->dk_full, QD * S);
    TAKE(d->scratch, (H > QD ? H : QD) * S);
#undef TAKE
    return used;
}

int pipeline_dynamic_init(Pipeline *pl, const Config *cfg, int seq, const PipelineOptions *o) {
    memset(pl, 0, sizeof *pl);
    Dyn *d = calloc(1, sizeof *d);
    if (!d) return err_set("out of memory");
    pl->impl = d;
    pl->name = "dynamic";
    pl->step = dyn_step;
    pl->eval = dyn_eval;
    pl->params_changed = dyn_params_changed;
    pl->free = dyn_free;
    d->cfg = *cfg;
    d->S = seq;
    d->nthreads = threads_count();
    const int L = cfg->n_layers;
    const char *devname = o && o->device ? o->device : "sim";
    if (device_init(&d->dev, devname, o ? o->compile_budget : 0) != 0) goto fail;
    d->layers = calloc(L, sizeof(DynLayer));
    d->in = calloc((size_t)L * MIL_K_DYN_COUNT, sizeof(DeviceSurface *));
    d->req = calloc((size_t)L * MIL_K_DYN_COUNT, sizeof(DeviceRequest *));
    d->tok = calloc(seq, sizeof(int));
    d->tgt = calloc(seq, sizeof(int));
    if (!d->layers || !d->in || !d->req || !d->tok || !d->tgt) goto oom;
    size_t n = carve(d, NULL);
    d->block = calloc(n, sizeof(float));
    if (!d->block) goto oom;
    carve(d, d->block);
    if (rope_table_init(&d->rope, seq, cfg->head_dim, cfg->rope_theta) != 0) goto fail;
    if (o && vocab_compact_init(&d->vc, cfg->vocab, cfg->dim, o->vocab_rows, o->n_vocab_rows) != 0) goto fail;
    // compile the 10 kernels once
    double t0 = time_ms();
    for (int k = 0; k < MIL_K_DYN_COUNT; k++) {
        if (mil_kernel_build((MilKernelKind)k, cfg, seq, &d->k[k]) != 0) goto fail;
        DeviceWeight w[8];
        int nw = d->k[k].n_blobs;
        if (nw > 8) {
            err_set("kernel %s has %d weight files", d->k[k].name, nw);
            goto fail;
        }
        for (int i = 0; i < nw; i++) w[i] = (DeviceWeight){d->k[k].blobs[i].path, d->k[k].blobs[i].data, d->k[k].blobs[i].size};
        if (device_compile(&d->dev, d->k[k].mil, w, nw, &d->dk[k]) != 0) {
            err_wrap("compiling %s", d->k[k].name);
            goto fail;
        }
        pl->times.kernels_compiled++;
        if (device_surface_create(&d->dev, d->k[k].out_c, d->k[k].out_w, &d->out[k]) != 0) goto fail;
        for (int l = 0; l < (PER_LAYER[k] ? L : 1); l++) {
            DeviceSurface **s = &d->in[l * MIL_K_DYN_COUNT + k];
            if (device_surface_create(&d->dev, d->k[k].in_c, d->k[k].in_w, s) != 0) goto fail;
            if (device_request_create(&d->dev, d->dk[k], *s, d->out[k], &d->req[l * MIL_K_DYN_COUNT + k]) != 0) goto fail;
        }
    }
    pl->times.compile = time_ms() - t0;
    if (dwq_init(&d->dwq) != 0) goto fail;
    return 0;
oom:
    err_set("out of memory for the dynamic pipeline (%s, window %d)", cfg->name, seq);
fail:
    err_wrap("dynamic pipeline on %s", devname);
    dyn_free(pl);
    memset(pl, 0, sizeof *pl);
    return -1;
}
