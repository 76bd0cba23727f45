// devpipe: the parts every device pipeline shares (devpipe.h).
#include "train/devpipe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/gemm.h"
#include "core/threads.h"
#include "core/timer.h"
#include "cpu/ops_fast.h"

// --- the step ----------------------------------------------------------------------------

int devpipe_forward(Pipeline *pl, DevPipe *dp, const Params *p, const int *tok, const int *tgt, float *loss) {
    const DevStages *st = dp->stages;
    const double t0 = time_ms();
    p = devpipe_view(dp, p);
    if (st->prepare(pl, p) != 0) return -1;
    memcpy(dp->tok, tok, sizeof(int) * dp->S);
    for (int t = 0; t < dp->S; t++) dp->tgt[t] = tgt ? tgt[t] : -1;
    embed_forward(dp->x0, p->v.embed, tok, dp->cfg.dim, dp->S);
    for (int l = 0; l < dp->cfg.n_layers; l++)
        if (st->attn_forward(pl, p, l) != 0 || st->ffn_forward(pl, p, l) != 0) return -1;
    if (st->head_forward(pl, p, loss) != 0) return -1;
    if (!tgt) *loss = 0.0f;
    pl->times.forward += time_ms() - t0;
    return 0;
}

static int backward(Pipeline *pl, DevPipe *dp, const Params *p, float *grads, float scale) {
    const DevStages *st = dp->stages;
    const double t0 = time_ms();
    ParamViews g;
    p = devpipe_view(dp, p);
    if (dp->lora) {  // every model tensor frozen but the trained norms (in the adapters' block)
        memset(&g, 0, sizeof g), dp->lora_grads = grads;
        g.rms_att = lora_norm(dp->lora, grads, "rms_att"), g.rms_ffn = lora_norm(dp->lora, grads, "rms_ffn");
        g.rms_final = lora_norm(dp->lora, grads, "rms_final");
    } else {
        params_point(&dp->cfg, grads, &g);
    }
    if (st->head_backward(pl, p, &g, scale) != 0) return -1;
    for (int l = dp->cfg.n_layers - 1; l >= 0; l--)
        if (st->ffn_backward(pl, p, &g, l) != 0 || st->attn_backward(pl, p, &g, l) != 0) return -1;
    const double tw = time_ms();
    dwq_wait(&dp->dwq);  // the embedding and the optimizer must see complete gradients
    pl->times.dw_wait += time_ms() - tw;
    if (st->after_dw) st->after_dw(pl, &g);
    if (g.embed) embed_backward(g.embed, dp->dx, dp->tok, dp->cfg.dim, dp->S);
    pl->times.backward += time_ms() - t0;
    return 0;
}

int devpipe_step(Pipeline *pl, DevPipe *dp, const Params *p, const int *tok, const int *tgt, float *grads,
                 float scale, float *loss) {
    if (devpipe_forward(pl, dp, p, tok, tgt, loss) != 0) return -1;
    if (backward(pl, dp, p, grads, scale) != 0) {
        dwq_wait(&dp->dwq);  // no worker may still write into grads
        return -1;
    }
    return 0;
}

void devpipe_push_dw(DevPipe *dp, float *dW, const float *dY, const float *X, int rows, int cols) {
    dwq_push(&dp->dwq, (DwJob){0, 1, rows, cols, dp->S, 1.0f, 1.0f, dY, X, dW, dp->S, dp->S, cols});
}

void devpipe_weight_grad(DevPipe *dp, const ParamViews *g, LoraTarget t, int l, const float *dY, const float *X) {
    int in, out;
    lora_target_dims(&dp->cfg, t, &in, &out);
    if (!dp->lora) {
        devpipe_push_dw(dp, lora_base_grad(&dp->cfg, g, t, l), dY, X, out, in);
        return;
    }
    if (!(dp->lora_cfg.targets & (1u << t))) return;
    const LoraMat a = lora_mat(dp->lora, &dp->lora_cfg, t, l);
    const int S = dp->S, r = a.r;
    float *dA, *dB, *U = dp->lora_tmp + ((size_t)l * LORA_N_TARGETS + t) * 2 * r * S, *V = U + (size_t)r * S;
    lora_grad_mat(dp->lora, &dp->lora_cfg, dp->lora_grads, t, l, &dA, &dB);
    // in FIFO order on the one worker: U, then dB; V, then dA
    dwq_push(&dp->dwq, (DwJob){0, 0, r, S, in, 1.0f, 0.0f, a.A, X, U, in, S, S});        // U = A X
    dwq_push(&dp->dwq, (DwJob){0, 1, out, r, S, a.scale, 1.0f, dY, U, dB, S, S, r});   // dB += s dY Uᵀ
    dwq_push(&dp->dwq, (DwJob){1, 0, r, S, out, a.scale, 0.0f, a.B, dY, V, r, S, S});  // V = s Bᵀ dY
    dwq_push(&dp->dwq, (DwJob){0, 1, r, in, S, 1.0f, 1.0f, V, X, dA, S, S, in});       // dA += V Xᵀ
}

int devpipe_lora_init(DevPipe *dp, const Params *a, const LoraConfig *lc, int merge) {
    if (lc->dropout > 0)
        return err_set("--lora-dropout needs --pipeline cpu: the device kernels apply no dropout masks");
    dp->lora = a;
    dp->lora_cfg = *lc;
    if (merge && params_init(&dp->merged, &dp->cfg) != 0) return -1;
    dp->lora_tmp = calloc((size_t)dp->cfg.n_layers * LORA_N_TARGETS * 2 * lc->rank * dp->S, sizeof(float));
    if (!dp->lora_tmp) return err_set("out of memory for the adapters' products");
    return 0;
}

void devpipe_lora_free(DevPipe *dp) {
    if (dp->merged.data) params_free(&dp->merged);
    free(dp->lora_tmp);
    dp->lora_tmp = NULL;
    dp->lora = NULL;
}

const Params *devpipe_weights(DevPipe *dp, const Params *p) {
    if (!dp->lora || !dp->merged.data) return p;
    lora_merge_into(&dp->merged, p, dp->lora, &dp->lora_cfg);
    return &dp->merged;
}

const Params *devpipe_view(DevPipe *dp, const Params *p) {
    if (!dp->lora || !dp->lora_cfg.train_norms || p == &dp->view) return p;
    float *a = dp->lora->data;
    dp->view = *p;
    dp->view.v.rms_att = lora_norm(dp->lora, a, "rms_att"), dp->view.v.rms_ffn = lora_norm(dp->lora, a, "rms_ffn");
    dp->view.v.rms_final = lora_norm(dp->lora, a, "rms_final");
    return &dp->view;
}

// --- kernels ---------------------------------------------------------------------------

static int compile_program(DevKernel *x, Device *dev) {
    MilKernel *k = x->k;
    DeviceWeight w[32];
    if (k->n_blobs > 32) return err_set("kernel %s has %d weight files (at most 32)", k->name, k->n_blobs);
    for (int i = 0; i < k->n_blobs; i++) w[i] = (DeviceWeight){k->blobs[i].path, k->blobs[i].data, k->blobs[i].size};
    if (device_compile_either(dev, k->mil, k->mil_alt, w, k->n_blobs, &x->dk) != 0)
        return err_wrap("compiling %s", k->name);
    for (int i = 0; i < k->n_blobs; i++) {  // the device has its own copy now
        free(k->blobs[i].data);
        k->blobs[i].data = NULL;
    }
    return device_request_create(dev, x->dk, x->in, x->out, &x->req);
}

static int surfaces(DevKernel *x, Device *dev, DeviceSurface *in, DeviceSurface *out) {
    x->in = in, x->out = out;
    if (!in && device_surface_create(dev, x->k->in_c, x->k->in_w, &x->in) != 0) return -1;
    x->own_in = !in;
    if (!out && device_surface_create(dev, x->k->out_c, x->k->out_w, &x->out) != 0) return -1;
    x->own_out = !out;
    return 0;
}

int dk_compile(DevKernel *x, Device *dev, MilKernel *k, DeviceSurface *in, DeviceSurface *out) {
    memset(x, 0, sizeof *x);
    x->own = *k;
    memset(k, 0, sizeof *k);
    x->k = &x->own;
    x->own_k = 1;
    if (surfaces(x, dev, in, out) != 0) return -1;
    return compile_program(x, dev);
}

int dk_bind(DevKernel *x, Device *dev, const DevKernel *src, DeviceSurface *in, DeviceSurface *out) {
    memset(x, 0, sizeof *x);
    x->k = src->k;
    x->dk = src->dk;
    if (surfaces(x, dev, in, out) != 0) return -1;
    return device_request_create(dev, x->dk, x->in, x->out, &x->req);
}

// The request, and the compiled kernel and program if owned (the surfaces stay).
static void release(DevKernel *x, Device *dev) {
    device_request_free(dev, x->req);
    if (x->own_k) {
        device_kernel_free(dev, x->dk);
        mil_kernel_free(&x->own);
    }
    x->req = NULL, x->dk = NULL;
}

void dk_free(DevKernel *x, Device *dev) {
    release(x, dev);
    if (x->own_in) device_surface_free(dev, x->in);
    if (x->own_out) device_surface_free(dev, x->out);
    memset(x, 0, sizeof *x);
}

int dk_recompile(DevKernel *x, Device *dev, MilKernel *k) {
    release(x, dev);
    x->own = *k;
    memset(k, 0, sizeof *k);
    x->k = &x->own;
    x->own_k = 1;
    return compile_program(x, dev);
}

// --- timed surface I/O --------------------------------------------------------------------

// Surface reads and writes of activations are CPU ops (their conversions);
// weights written into input surfaces are staging. r: the region moved, at
// `bytes` per value (NULL when there is none: the call failed).
static void io_time(Pipeline *pl, double t0, const MilRegion *r, int bytes) {
    const double ms = time_ms() - t0;
    pl->times.cpu_ops += ms;
    pl->times.cpu_io += ms;
    if (r) pl->times.io_bytes += (double)bytes * r->nc * r->nw;
}

void dp_cls_time(Pipeline *pl, double t0) {
    const double ms = time_ms() - t0;
    pl->times.cpu_ops += ms;
    pl->times.cpu_cls += ms;
}

int dk_stage(Device *dev, DevKernel *x, const char *region, const float *src) {
    uint16_t *p = device_surface_lock(dev, x->in, 1);
    if (!p) return err_set("%s: cannot lock the input surface", x->k->name);
    int rc = mil_kernel_stage(x->k, p, region, src);
    device_surface_unlock(dev, x->in, 1);
    return rc;
}

int dp_stage(Pipeline *pl, Device *dev, DevKernel *x, const char *region, const float *src) {
    const double t0 = time_ms();
    const int rc = dk_stage(dev, x, region, src);
    io_time(pl, t0, rc ? NULL : mil_kernel_input(x->k, region), 6);
    return rc;
}

int dp_stage_weight(Pipeline *pl, Device *dev, DevKernel *x, const char *region, const float *src) {
    const double t0 = time_ms();
    const int rc = dk_stage(dev, x, region, src);
    pl->times.staging += time_ms() - t0;
    return rc;
}

int dp_fetch(Pipeline *pl, Device *dev, DevKernel *x, const char *region, float *dst) {
    double t0 = time_ms();
    uint16_t *p = device_surface_lock(dev, x->out, 0);
    if (!p) return err_set("%s: cannot lock the output surface", x->k->name);
    int rc = mil_kernel_fetch(x->k, p, region, dst);
    device_surface_unlock(dev, x->out, 0);
    io_time(pl, t0, rc ? NULL : mil_kernel_output(x->k, region), 6);
    return rc;
}

// Surfaces locked for a fused op, each once.
typedef struct {
    DeviceSurface *s[DP_FUSED_MAX];
    uint16_t *base[DP_FUSED_MAX];
    int write[DP_FUSED_MAX];
    int n;
} Locks;

// The index in l of region r's surface, locked now if it is not yet (-1 with err_msg()).
static int lock_once(Device *dev, const DpRegion *r, Locks *l) {
    DeviceSurface *want = r->output ? r->k->out : r->k->in;
    for (int j = 0; j < l->n; j++)
        if (l->s[j] == want)
            return l->write[j] == !r->output ? j : err_set("%s: a surface read and written", r->k->k->name);
    l->base[l->n] = device_surface_lock(dev, want, !r->output);
    if (!l->base[l->n]) return err_set("%s: cannot lock the %s surface", r->k->k->name, r->output ? "output" : "input");
    l->s[l->n] = want, l->write[l->n] = !r->output;
    return l->n++;
}

int dp_fused(Pipeline *pl, Device *dev, const DpRegion *r, int n, void (*fn)(void *ctx, const F16Rows *rows),
             void *ctx) {
    const double t0 = time_ms();
    Locks l = {.n = 0};
    F16Rows rows[DP_FUSED_MAX];
    int rc = n > DP_FUSED_MAX ? err_set("a fused op of %d regions (at most %d)", n, DP_FUSED_MAX) : 0;
    for (int i = 0; rc == 0 && i < n; i++) {
        const int j = lock_once(dev, &r[i], &l);
        const MilKernel *k = r[i].k->k;
        rc = j < 0 ? -1 : mil_kernel_rows(k, l.base[j], r[i].name, r[i].output, r[i].nc, k->S, &rows[i]);
    }
    if (rc == 0) fn(ctx, rows);
    for (int j = l.n - 1; j >= 0; j--) device_surface_unlock(dev, l.s[j], l.write[j]);
    pl->times.cpu_ops += time_ms() - t0;
    return rc;
}

int dp_eval(Pipeline *pl, Device *dev, DevKernel *x, int layer) {
    double t0 = time_ms();
    int rc = device_eval(dev, x->req);
    pl->times.device += time_ms() - t0;
    pl->times.device_evals++;
    if (rc != 0 && layer >= 0) return err_wrap("%s (layer %d)", x->k->name, layer);
    if (rc != 0) return err_wrap("%s", x->k->name);
    return 0;
}

int dp_copy(Pipeline *pl, Device *dev, DevKernel *dst, const char *dst_region, DevKernel *src,
            const char *src_region, int head_rows, int repeat) {
    double t0 = time_ms();
    uint16_t *s = device_surface_lock(dev, src->out, 0);
    uint16_t *d = s ? device_surface_lock(dev, dst->in, 1) : NULL;
    int rc;
    if (!s || !d) rc = err_set("%s -> %s: cannot lock the surfaces", src->k->name, dst->k->name);
    else if (repeat > 1)
        rc = mil_kernel_copy_heads(dst->k, d, dst_region, src->k, s, src_region, head_rows, repeat);
    else rc = mil_kernel_copy(dst->k, d, dst_region, src->k, s, src_region);
    if (d) device_surface_unlock(dev, dst->in, 1);
    if (s) device_surface_unlock(dev, src->out, 0);
    io_time(pl, t0, rc ? NULL : mil_kernel_input(dst->k, dst_region), 4);
    return rc;
}

// --- attention backward on the CPU ------------------------------------------------------------

int dp_rope_init(RopeT *rt, const Config *c, int S) {
    RopeTable t;
    if (rope_table_init(&t, S, c->head_dim, c->rope_theta) != 0) return -1;
    const int rc = ropet_init(rt, &t);
    rope_table_free(&t);
    return rc;
}

void dp_gqa_reduce(float *dst, const float *src, int NH, int NKV, int HD, int S) {
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

void dp_attn_backward_cpu(const Config *c, const RopeT *rope, const float *q_norm, const float *k_norm,
                          float *gq_norm, float *gk_norm, float *dq, float *dk, float *dv, const float *dk_full,
                          const float *dv_full, const float *q_pre, const float *k_pre, float *tmp, float *rstd, int S) {
    const int NH = c->n_heads, NKV = c->n_kv_heads, HD = c->head_dim;
    if (dk != dk_full) dp_gqa_reduce(dk, dk_full, NH, NKV, HD, S);  // the same buffer: nothing to sum
    if (dv != dv_full) dp_gqa_reduce(dv, dv_full, NH, NKV, HD, S);
    ropet_apply(dq, rope, NH, c->rope_layout, -1.0f);
    ropet_apply(dk, rope, NKV, c->rope_layout, -1.0f);
    if (!c->qk_norm) return;
    // the per-head rstd recomputed from the pre-norm q, k the kernel returned
    float *rq = rstd, *rk = rstd + (size_t)NH * S;
    headnorm_forward(tmp, rq, q_pre, q_norm, NH, HD, S, c->norm_eps);
    headnorm_forward(tmp, rk, k_pre, k_norm, NKV, HD, S, c->norm_eps);
    headnorm_backward(tmp, gq_norm, dq, q_pre, q_norm, rq, NH, HD, S);
    memcpy(dq, tmp, sizeof(float) * NH * HD * S);
    headnorm_backward(tmp, gk_norm, dk, k_pre, k_norm, rk, NKV, HD, S);
    memcpy(dk, tmp, sizeof(float) * NKV * HD * S);
}

// --- the CPU head ------------------------------------------------------------------------------

int cpu_head_init(CpuHead *h, const Config *c, int S, const int *vocab_rows, int n_vocab_rows, int classifier) {
    memset(h, 0, sizeof *h);
    h->D = c->dim, h->V = c->vocab, h->S = S, h->eps = c->norm_eps, h->nthreads = threads_count();
    const size_t D = h->D, V = h->V, T = h->nthreads, n_s = S, k = classifier ? 1 : 0;
    const size_t n[8] = {D * n_s, n_s, k * n_s * V, n_s, k * 3 * T * n_s, k * T * n_s * CLS_CHUNK, k * T * D * n_s,
                         D * n_s};
    size_t total = 0;
    for (int i = 0; i < 8; i++) total += (n[i] + 15) & ~(size_t)15;
    h->block = calloc(total, sizeof(float));
    h->tgt = calloc((size_t)S, sizeof(int));
    if (!h->block || !h->tgt) {
        cpu_head_free(h);
        return err_set("out of memory for the classifier (%zu x %zu)", n_s, V);
    }
    float **dst[8] = {&h->xf, &h->rstd, &h->logits, &h->lse, &h->stats, &h->dl, &h->dxs, &h->dxf};
    size_t off = 0;
    for (int i = 0; i < 8; i++) {
        *dst[i] = h->block + off;
        off += (n[i] + 15) & ~(size_t)15;
    }
    if (vocab_compact_init(&h->vc, c->vocab, c->dim, vocab_rows, n_vocab_rows) != 0) {
        cpu_head_free(h);
        return -1;
    }
    return 0;
}

void cpu_head_free(CpuHead *h) {
    vocab_compact_free(&h->vc);
    free(h->block);
    free(h->tgt);
    memset(h, 0, sizeof *h);
}

void cpu_head_forward(CpuHead *h, const Params *p, const float *x_out, const int *tgt, float *loss) {
    const int S = h->S;
    for (int t = 0; t < S; t++) h->tgt[t] = tgt ? tgt[t] : -1;
    rmsnorm_forward(h->xf, h->rstd, x_out, p->v.rms_final, h->D, S, h->eps);
    const float *W = p->v.wcls;
    int V = h->V;
    if (h->vc.n) {  // as the cpu pipeline: the active rows, targets in compact ids
        vocab_compact_gather(&h->vc, W, h->tgt, h->tgt, S);
        W = h->vc.W, V = h->vc.n;
    }
    *loss = classifier_forward(h->logits, h->lse, W, h->xf, h->tgt, S, V, h->D, h->stats, NULL, NULL, h->nthreads);
    if (!tgt) *loss = 0.0f;
}

void cpu_head_backward(CpuHead *h, const Params *p, const ParamViews *g, const float *x_out, float scale, float *dx) {
    const int S = h->S, D = h->D;
    if (h->vc.n) {
        classifier_backward(h->dxf, g->wcls ? h->vc.dW : NULL, 1.0f, h->logits, h->lse, h->vc.W, h->xf, h->tgt, S, h->vc.n,
                            D, scale, h->dl, h->dxs, NULL, h->nthreads);
        if (g->wcls) vocab_compact_scatter(&h->vc, g->wcls);
    } else {
        classifier_backward(h->dxf, g->wcls, 1.0f, h->logits, h->lse, p->v.wcls, h->xf, h->tgt, S, h->V, D, scale, h->dl,
                            h->dxs, NULL, h->nthreads);
    }
    rmsnorm_backward(dx, g->rms_final, h->dxf, x_out, p->v.rms_final, h->rstd, D, S);
}
