// model: whole-model forward/backward on the CPU (see model.h for the block math
// and for how the work is spread over threads).
#include "cpu/model.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/mem.h"
#include "core/gemm.h"
#include "core/threads.h"
#include "core/timer.h"

// Carves consecutive float arrays out of one block.
typedef struct { float *p; size_t used, cap; } Arena;
static float *take(Arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;  // keep every array 64-byte aligned
    float *r = a->p ? a->p + a->used : NULL;
    a->used += n;
    return r;
}

static size_t max3(size_t a, size_t b, size_t c) { return a > b ? (a > c ? a : c) : (b > c ? b : c); }

// Lays out every buffer; called once with a NULL block to size it, then for real.
static size_t carve(CpuModel *m, float *block) {
    const Config *c = &m->cfg;
    const size_t S = m->S, D = c->dim, H = c->hidden, QD = config_q_dim(c), KVD = config_kv_dim(c);
    const size_t V = c->vocab, NH = c->n_heads, NKV = c->n_kv_heads, T = m->nthreads;
    Arena a = {block, 0, 0};
    for (int l = 0; l < c->n_layers; l++) {
        LayerActs *A = &m->layers[l];
        A->x = take(&a, D * S);
        if (m->recompute && l > 0) {  // layer 0's buffers serve every layer in turn
            float *x = A->x;
            *A = m->layers[0];
            A->x = x;
            continue;
        }
        A->xn = take(&a, D * S);
        A->rstd1 = take(&a, S);
        A->q_pre = c->qk_norm ? take(&a, QD * S) : NULL;
        A->k_pre = c->qk_norm ? take(&a, KVD * S) : NULL;
        A->qn_rstd = c->qk_norm ? take(&a, NH * S) : NULL;
        A->kn_rstd = c->qk_norm ? take(&a, NKV * S) : NULL;
        A->q = take(&a, QD * S);
        A->k = take(&a, KVD * S);
        A->v = take(&a, KVD * S);
        A->probs = take(&a, NH * S * S);
        A->att = take(&a, QD * S);
        A->x2 = take(&a, D * S);
        A->x2n = take(&a, D * S);
        A->rstd2 = take(&a, S);
        A->h1 = take(&a, H * S);
        A->h3 = take(&a, H * S);
        A->g = take(&a, H * S);
    }
    m->x_out = take(&a, D * S);
    m->xf = take(&a, D * S);
    m->rstdf = take(&a, S);
    m->logits = m->recompute ? NULL : take(&a, S * V);
    m->lse = take(&a, S);
    m->dx = take(&a, D * S);
    m->dx2 = take(&a, D * S);
    m->dtmp = take(&a, D * S);
    m->dxn = take(&a, D * S);
    m->dq = take(&a, QD * S);
    m->dk = take(&a, KVD * S);
    m->dv = take(&a, KVD * S);
    m->datt = take(&a, QD * S);
    m->dqk_tmp = c->qk_norm ? take(&a, (QD + KVD) * S) : NULL;
    m->dh1 = take(&a, H * S);
    m->dh3 = take(&a, H * S);
    m->dg = take(&a, H * S);
    m->att_scratch = take(&a, T * S * S);
    m->cls_stats = take(&a, T * 3 * S);
    m->cls_dl = take(&a, T * S * CLS_CHUNK);
    m->cls_dx = take(&a, (T - 1) * D * S + 1);
    if (m->precision == CPU_BF16) {
        m->bf_act = take(&a, D * S);
        // the largest weight slice one thread rounds: a whole layer matrix or a classifier chunk
        size_t per = max3(QD * D, H * D, (size_t)CLS_CHUNK * D);
        per = (per + 15) & ~(size_t)15;
        m->wscratch.buf = take(&a, T * per);
        m->wscratch.per_thread = per;
        m->wscratch.nthreads = (int)T;
    }
    return a.used;
}

int cpu_precision_parse(const char *name, CpuPrecision *out) {
    if (!name || !strcmp(name, "fp32")) *out = CPU_FP32;
    else if (!strcmp(name, "bf16")) *out = CPU_BF16;
    else return err_set("precision '%s': expected fp32 or bf16", name);
    return 0;
}

int cpu_model_init_opts(CpuModel *m, const Config *cfg, int S, const CpuModelOptions *o) {
    static const CpuModelOptions defaults;
    if (!o) o = &defaults;
    memset(m, 0, sizeof *m);
    if (S <= 0 || S > cfg->seq_len) return err_set("window length %d outside [1, %d]", S, cfg->seq_len);
    m->cfg = *cfg;
    m->S = S;
    m->precision = o->precision;
    m->recompute = o->recompute;
    m->nthreads = threads_count();
    m->layers = calloc(cfg->n_layers, sizeof(LayerActs));
    m->tokens = calloc(S, sizeof(int));
    m->targets = calloc(S, sizeof(int));
    if (!m->layers || !m->tokens || !m->targets) goto oom;
    size_t n = carve(m, NULL);
    m->act_floats = n;
    m->act_block = mem_alloc_big(n * sizeof(float));
    if (!m->act_block) goto oom;
    carve(m, m->act_block);
    if (rope_table_init(&m->rope, S, cfg->head_dim, cfg->rope_theta) != 0) goto fail;
    if (ropet_init(&m->ropet, &m->rope) != 0) goto fail;
    return 0;
oom:
    err_set("out of memory allocating activations for window %d", S);
fail:
    cpu_model_free(m);
    return -1;
}

int cpu_model_init(CpuModel *m, const Config *cfg, int S) { return cpu_model_init_opts(m, cfg, S, NULL); }

void cpu_model_free(CpuModel *m) {
    cpu_model_set_vocab(m, NULL, 0);
    cpu_model_lora_free(m);
    free(m->layers);
    free(m->act_block);
    free(m->tokens);
    free(m->targets);
    rope_table_free(&m->rope);
    ropet_free(&m->ropet);
    memset(m, 0, sizeof *m);
}

int cpu_model_set_vocab(CpuModel *m, const int *rows, int n) {
    vocab_compact_free(&m->vc);
    return vocab_compact_init(&m->vc, m->cfg.vocab, m->cfg.dim, rows, n);
}

// Per-layer weight pointers from the stacked views.
typedef struct {
    const float *rms_att, *wq, *wk, *wv, *wo, *q_norm, *k_norm, *rms_ffn, *w1, *w2, *w3;
} LayerW;

// Layer l's tensors in views v; a NULL view (a frozen tensor's gradient) stays NULL.
static LayerW layer_weights(const Config *c, const ParamViews *v, int l) {
    const size_t D = c->dim, H = c->hidden, QD = config_q_dim(c), KVD = config_kv_dim(c), HD = c->head_dim;
#define AT(p, n) ((p) ? (p) + l * (n) : NULL)
    LayerW w = {
        AT(v->rms_att, D), AT(v->wq, QD * D), AT(v->wk, KVD * D), AT(v->wv, KVD * D), AT(v->wo, D * QD),
        AT(v->q_norm, HD), AT(v->k_norm, HD), AT(v->rms_ffn, D), AT(v->w1, H * D), AT(v->w2, D * H), AT(v->w3, H * D),
    };
#undef AT
    return w;
}

// The views the step reads: the model's, with LoRA's trained norms instead of its own.
static ParamViews weights_of(const CpuModel *m, const Params *p) {
    ParamViews v = p->v;
    if (m->lora && m->lora_cfg.train_norms) {
        float *a = m->lora->data;
        v.rms_att = lora_norm(m->lora, a, "rms_att"), v.rms_ffn = lora_norm(m->lora, a, "rms_ffn");
        v.rms_final = lora_norm(m->lora, a, "rms_final");
    }
    return v;
}

// The gradient views: the whole model's, or under LoRA only the trained norms
// (in the adapters' block); every other view NULL: frozen.
static ParamViews grads_of(const CpuModel *m, float *grads) {
    ParamViews g;
    if (!m->lora) {
        params_point(&m->cfg, grads, &g);
        return g;
    }
    memset(&g, 0, sizeof g);
    g.rms_att = lora_norm(m->lora, grads, "rms_att"), g.rms_ffn = lora_norm(m->lora, grads, "rms_ffn");
    g.rms_final = lora_norm(m->lora, grads, "rms_final");
    return g;
}

// One product as a task: C[M,N] (ldc N) = beta C + alpha op(A) op(B).
static ParTask task1(int M, int N, float beta, float *C, int ta, int tb, int K, const float *A, int lda,
                     const float *B, int ldb, float alpha, int round_a) {
    ParTask t = {M, N, N, beta, C, 1, {{ta, tb, K, lda, ldb, alpha, A, B, round_a}}};
    return t;
}

// Takes the one-shot grads_fresh request of this backward. Under LoRA the
// adapters' small block is zeroed here; otherwise the caller writes the weight
// gradients with beta 0 and zeroes the norms (zero_layer_norms) and the
// scattered blocks before adding into them, so no pass over the block is spent
// on zeros. Returns 1 when the caller must do so.
static int begin_grads(CpuModel *m, float *grads, const ParamViews *g) {
    const int fresh = m->grads_fresh;
    m->grads_fresh = 0;
    if (!fresh) return 0;
    if (m->lora) {
        memset(grads, 0, sizeof(float) * m->lora->n);
        return 0;
    }
    if (g->rms_final) memset(g->rms_final, 0, sizeof(float) * m->cfg.dim);
    return 1;
}

// The norm gradients of one layer, which its backward adds into.
static void zero_layer_norms(const Config *c, LayerW *gw) {
    const float *v[4] = {gw->rms_att, gw->rms_ffn, gw->q_norm, gw->k_norm};
    const int n[4] = {c->dim, c->dim, c->head_dim, c->head_dim};
    for (int i = 0; i < 4; i++)
        if (v[i]) memset((float *)v[i], 0, sizeof(float) * n[i]);
}

// Adds the time since *t to *acc and restarts *t.
static void lap(double *acc, double *t) {
    double now = time_ms();
    *acc += now - *t;
    *t = now;
}

// Layer l's attention half: xn, q, k, v, probs, att and x2 = x + α·Wo·att.
static void attn_forward(CpuModel *m, const LayerW *w, int l, double *t) {
    const Config *c = &m->cfg;
    CpuPhaseTimes *ph = &m->phases;
    const int S = m->S, D = c->dim, QD = config_q_dim(c), KVD = config_kv_dim(c);
    const int NH = c->n_heads, NKV = c->n_kv_heads, HD = c->head_dim, bf = m->precision == CPU_BF16;
    const ParScratch *ws = bf ? &m->wscratch : NULL;
    LayerActs *A = &m->layers[l];
    float *qd = c->qk_norm ? A->q_pre : A->q, *kd = c->qk_norm ? A->k_pre : A->k;
    rmsnorm_forward(A->xn, A->rstd1, A->x, w->rms_att, D, S, c->norm_eps);
    if (bf) bf16_round_inplace(A->xn, (size_t)D * S);
    lap(&ph->fwd_other, t);
    const ParTask qkv[3] = {
        task1(QD, S, 0.0f, qd, 0, 0, D, w->wq, D, A->xn, S, 1.0f, bf),
        task1(KVD, S, 0.0f, kd, 0, 0, D, w->wk, D, A->xn, S, 1.0f, bf),
        task1(KVD, S, 0.0f, A->v, 0, 0, D, w->wv, D, A->xn, S, 1.0f, bf),
    };
    par_gemm_tasks(qkv, 3, ws);
    cpu_model_lora_forward(m, l, LORA_Q, A->xn, qd, 1.0f);
    cpu_model_lora_forward(m, l, LORA_K, A->xn, kd, 1.0f);
    cpu_model_lora_forward(m, l, LORA_V, A->xn, A->v, 1.0f);
    lap(&ph->fwd_gemm, t);
    if (c->qk_norm) {
        headnorm_forward(A->q, A->qn_rstd, A->q_pre, w->q_norm, NH, HD, S, c->norm_eps);
        headnorm_forward(A->k, A->kn_rstd, A->k_pre, w->k_norm, NKV, HD, S, c->norm_eps);
    }
    ropet_apply(A->q, &m->ropet, NH, c->rope_layout, 1.0f);
    ropet_apply(A->k, &m->ropet, NKV, c->rope_layout, 1.0f);
    attention_forward_par(A->att, A->probs, A->q, A->k, A->v, NH, NKV, HD, S);
    if (bf) bf16_round_inplace(A->att, (size_t)QD * S);
    vec_copy(A->x2, A->x, (size_t)D * S);
    lap(&ph->fwd_attn, t);
    // x2 = x + alpha * Wo att
    const ParTask o = task1(D, S, 1.0f, A->x2, 0, 0, QD, w->wo, QD, A->att, S, c->res_scale, bf);
    par_gemm_tasks(&o, 1, ws);
    cpu_model_lora_forward(m, l, LORA_O, A->att, A->x2, c->res_scale);
    lap(&ph->fwd_gemm, t);
}

// Layer l's forward from layers[l].x: every activation the backward reads,
// and (x_next not NULL) the layer's output x_next = x2 + α·W2·g. The
// backward's recompute passes NULL: the output is the next layer's input,
// which it kept.
static void layer_forward(CpuModel *m, const ParamViews *pv, int l, float *x_next, double *t) {
    const Config *c = &m->cfg;
    CpuPhaseTimes *ph = &m->phases;
    const int S = m->S, D = c->dim, H = c->hidden, bf = m->precision == CPU_BF16;
    const ParScratch *ws = bf ? &m->wscratch : NULL;
    LayerActs *A = &m->layers[l];
    const LayerW w = layer_weights(c, pv, l);
    attn_forward(m, &w, l, t);
    rmsnorm_forward(A->x2n, A->rstd2, A->x2, w.rms_ffn, D, S, c->norm_eps);
    if (bf) bf16_round_inplace(A->x2n, (size_t)D * S);
    lap(&ph->fwd_other, t);
    const ParTask up[2] = {
        task1(H, S, 0.0f, A->h1, 0, 0, D, w.w1, D, A->x2n, S, 1.0f, bf),
        task1(H, S, 0.0f, A->h3, 0, 0, D, w.w3, D, A->x2n, S, 1.0f, bf),
    };
    par_gemm_tasks(up, 2, ws);
    cpu_model_lora_forward(m, l, LORA_W1, A->x2n, A->h1, 1.0f);
    cpu_model_lora_forward(m, l, LORA_W3, A->x2n, A->h3, 1.0f);
    lap(&ph->fwd_gemm, t);
    swiglu_forward(A->g, A->h1, A->h3, (size_t)H * S);
    if (bf) bf16_round_inplace(A->g, (size_t)H * S);
    lap(&ph->fwd_other, t);
    if (!x_next) return;
    vec_copy(x_next, A->x2, (size_t)D * S);
    const ParTask down = task1(D, S, 1.0f, x_next, 0, 0, H, w.w2, H, A->g, S, c->res_scale, bf);
    par_gemm_tasks(&down, 1, ws);
    cpu_model_lora_forward(m, l, LORA_W2, A->g, x_next, c->res_scale);
    lap(&ph->fwd_gemm, t);
}

float cpu_model_forward(CpuModel *m, const Params *p, const int *tokens, const int *targets) {
    const double t0 = time_ms();
    double t = t0;
    CpuPhaseTimes *ph = &m->phases;
    const Config *c = &m->cfg;
    const int S = m->S, D = c->dim, V = c->vocab;
    const int bf = m->precision == CPU_BF16;
    const ParScratch *ws = bf ? &m->wscratch : NULL;
    memcpy(m->tokens, tokens, sizeof(int) * S);
    if (targets) memcpy(m->targets, targets, sizeof(int) * S);
    else for (int i = 0; i < S; i++) m->targets[i] = -1;

    const ParamViews pv = weights_of(m, p);
    embed_forward(m->layers[0].x, p->v.embed, tokens, D, S);
    for (int l = 0; l < c->n_layers; l++)
        layer_forward(m, &pv, l, l + 1 < c->n_layers ? m->layers[l + 1].x : m->x_out, &t);
    rmsnorm_forward(m->xf, m->rstdf, m->x_out, pv.rms_final, D, S, c->norm_eps);
    if (bf) bf16_round_inplace(m->xf, (size_t)D * S);
    lap(&ph->fwd_other, &t);
    const float *wcls = p->v.wcls;
    int Vc = V;
    if (m->vc.n) {  // compacted classifier: the active rows, targets in compact ids
        vocab_compact_gather(&m->vc, wcls, m->targets, m->targets, S);
        wcls = m->vc.W;
        Vc = m->vc.n;
    }
    const float loss = classifier_forward(m->logits, m->lse, wcls, m->xf, m->targets, S, Vc, D, m->cls_stats,
                                          m->cls_dl, ws, m->nthreads);
    m->loss = targets ? loss : 0.0f;
    lap(&ph->fwd_cls, &t);
    m->ms_forward = time_ms() - t0;
    return m->loss;
}

void cpu_model_backward(CpuModel *m, const Params *p, float *grads, float loss_scale) {
    const double t0 = time_ms();
    double t = t0;
    CpuPhaseTimes *ph = &m->phases;
    const Config *c = &m->cfg;
    const int S = m->S, D = c->dim, H = c->hidden, QD = config_q_dim(c), KVD = config_kv_dim(c);
    const int NH = c->n_heads, NKV = c->n_kv_heads, HD = c->head_dim, V = c->vocab;
    const float alpha = c->res_scale;
    const int bf = m->precision == CPU_BF16;
    const ParScratch *ws = bf ? &m->wscratch : NULL;
    const ParamViews g = grads_of(m, grads), pv = weights_of(m, p);
    const int fresh = begin_grads(m, grads, &g);
    const float gb = fresh ? 0.0f : 1.0f;  // the weight-gradient products' beta

    // classifier + softmax + cross-entropy: dxf -> dtmp, dWcls += ...
    if (m->vc.n) {
        if (fresh && g.wcls) memset(g.wcls, 0, sizeof(float) * V * D);  // the scatter adds active rows only
        classifier_backward(m->dtmp, g.wcls ? m->vc.dW : NULL, 1.0f, m->logits, m->lse, m->vc.W, m->xf, m->targets, S,
                            m->vc.n, D, loss_scale, m->cls_dl, m->cls_dx, ws, m->nthreads);
        if (g.wcls) vocab_compact_scatter(&m->vc, g.wcls);
    } else {
        classifier_backward(m->dtmp, g.wcls, gb, m->logits, m->lse, p->v.wcls, m->xf, m->targets, S, V, D, loss_scale,
                            m->cls_dl, m->cls_dx, ws, m->nthreads);
    }
    lap(&ph->bwd_cls, &t);
    float *dx = m->dx;  // gradient w.r.t. the residual stream, flowing down
    rmsnorm_backward_add(dx, g.rms_final, m->dtmp, m->x_out, pv.rms_final, m->rstdf, D, S, NULL);
    lap(&ph->bwd_other, &t);

    for (int l = c->n_layers - 1; l >= 0; l--) {
        if (m->recompute && l + 1 < c->n_layers) {  // the last layer's are still in the shared buffers
            layer_forward(m, &pv, l, NULL, &t);
            lap(&ph->bwd_recompute, &t);
        }
        LayerActs *A = &m->layers[l];
        const LayerW w = layer_weights(c, &pv, l);
        LayerW gw = layer_weights(c, &g, l);  // NULL matrices: frozen (LoRA), their dW tasks left out
        if (fresh) zero_layer_norms(c, &gw);
        // --- FFN: x' = x2 + alpha * W2 g ---
        // dg[H,S] = alpha W2ᵀ dx ; dW2 += alpha dx gᵀ
        const float *dxin = dx;
        if (bf) {
            bf16_round_copy(m->bf_act, dx, (size_t)D * S);
            dxin = m->bf_act;
        }
        const ParTask ffn_down[2] = {
            task1(H, S, 0.0f, m->dg, 1, 0, D, w.w2, H, dxin, S, alpha, bf),
            task1(D, H, gb, (float *)gw.w2, 0, 1, S, dxin, S, A->g, S, alpha, 0),
        };
        par_gemm_tasks(ffn_down, gw.w2 ? 2 : 1, ws);
        cpu_model_lora_backward(m, grads, l, LORA_W2, A->g, dx, alpha, m->dg);
        lap(&ph->bwd_gemm, &t);
        swiglu_backward(m->dh1, m->dh3, m->dg, A->h1, A->h3, (size_t)H * S);
        if (bf) {
            bf16_round_inplace(m->dh1, (size_t)H * S);
            bf16_round_inplace(m->dh3, (size_t)H * S);
        }
        lap(&ph->bwd_other, &t);
        // dxn = W1ᵀ dh1 + W3ᵀ dh3 ; dW1 += dh1 x2nᵀ ; dW3 += dh3 x2nᵀ
        const ParTask ffn_up[3] = {
            {D, S, S, 0.0f, m->dxn, 2, {{1, 0, H, D, S, 1.0f, w.w1, m->dh1, bf}, {1, 0, H, D, S, 1.0f, w.w3, m->dh3, bf}}},
            task1(H, D, gb, (float *)gw.w1, 0, 1, S, m->dh1, S, A->x2n, S, 1.0f, 0),
            task1(H, D, gb, (float *)gw.w3, 0, 1, S, m->dh3, S, A->x2n, S, 1.0f, 0),
        };
        par_gemm_tasks(ffn_up, gw.w1 ? 3 : 1, ws);
        cpu_model_lora_backward(m, grads, l, LORA_W1, A->x2n, m->dh1, 1.0f, m->dxn);
        cpu_model_lora_backward(m, grads, l, LORA_W3, A->x2n, m->dh3, 1.0f, m->dxn);
        lap(&ph->bwd_gemm, &t);
        // dx2 = RMSNorm backward + the residual path
        rmsnorm_backward_add(m->dx2, (float *)gw.rms_ffn, m->dxn, A->x2, w.rms_ffn, A->rstd2, D, S, dx);
        const float *dx2in = m->dx2;
        if (bf) {
            bf16_round_copy(m->bf_act, m->dx2, (size_t)D * S);
            dx2in = m->bf_act;
        }
        lap(&ph->bwd_other, &t);
        // --- attention: x2 = x + alpha * Wo att ---
        const ParTask attn_out[2] = {
            task1(QD, S, 0.0f, m->datt, 1, 0, D, w.wo, QD, dx2in, S, alpha, bf),
            task1(D, QD, gb, (float *)gw.wo, 0, 1, S, dx2in, S, A->att, S, alpha, 0),
        };
        par_gemm_tasks(attn_out, gw.wo ? 2 : 1, ws);
        cpu_model_lora_backward(m, grads, l, LORA_O, A->att, m->dx2, alpha, m->datt);
        lap(&ph->bwd_gemm, &t);
        attention_backward_par(m->dq, m->dk, m->dv, m->datt, A->probs, A->q, A->k, A->v, NH, NKV, HD, S,
                               m->att_scratch, (size_t)m->nthreads * S * S);
        ropet_apply(m->dq, &m->ropet, NH, c->rope_layout, -1.0f);
        ropet_apply(m->dk, &m->ropet, NKV, c->rope_layout, -1.0f);
        float *dq = m->dq, *dk = m->dk;
        if (c->qk_norm) {
            float *tq = m->dqk_tmp, *tk = m->dqk_tmp + (size_t)QD * S;
            headnorm_backward(tq, (float *)gw.q_norm, m->dq, A->q_pre, w.q_norm, A->qn_rstd, NH, HD, S);
            headnorm_backward(tk, (float *)gw.k_norm, m->dk, A->k_pre, w.k_norm, A->kn_rstd, NKV, HD, S);
            dq = tq;
            dk = tk;
        }
        if (bf) {
            bf16_round_inplace(dq, (size_t)QD * S);
            bf16_round_inplace(dk, (size_t)KVD * S);
            bf16_round_inplace(m->dv, (size_t)KVD * S);
        }
        lap(&ph->bwd_attn, &t);
        // dxn = Wqᵀ dq + Wkᵀ dk + Wvᵀ dv ; dWq += dq xnᵀ ; dWk, dWv likewise
        const ParTask qkv[4] = {
            {D, S, S, 0.0f, m->dxn, 3,
             {{1, 0, QD, D, S, 1.0f, w.wq, dq, bf}, {1, 0, KVD, D, S, 1.0f, w.wk, dk, bf},
              {1, 0, KVD, D, S, 1.0f, w.wv, m->dv, bf}}},
            task1(QD, D, gb, (float *)gw.wq, 0, 1, S, dq, S, A->xn, S, 1.0f, 0),
            task1(KVD, D, gb, (float *)gw.wk, 0, 1, S, dk, S, A->xn, S, 1.0f, 0),
            task1(KVD, D, gb, (float *)gw.wv, 0, 1, S, m->dv, S, A->xn, S, 1.0f, 0),
        };
        par_gemm_tasks(qkv, gw.wq ? 4 : 1, ws);
        cpu_model_lora_backward(m, grads, l, LORA_Q, A->xn, dq, 1.0f, m->dxn);
        cpu_model_lora_backward(m, grads, l, LORA_K, A->xn, dk, 1.0f, m->dxn);
        cpu_model_lora_backward(m, grads, l, LORA_V, A->xn, m->dv, 1.0f, m->dxn);
        lap(&ph->bwd_gemm, &t);
        // dx = RMSNorm backward + the residual path (dx2)
        rmsnorm_backward_add(dx, (float *)gw.rms_att, m->dxn, A->x, w.rms_att, A->rstd1, D, S, m->dx2);
        lap(&ph->bwd_other, &t);
        if (m->layer_done) m->layer_done(m->layer_done_ctx, l);
    }
    if (g.embed) {
        if (fresh && g.embed != g.wcls) memset(g.embed, 0, sizeof(float) * V * D);  // untied: rows are scattered into
        embed_backward(g.embed, dx, m->tokens, D, S);
    }
    lap(&ph->bwd_other, &t);
    m->ms_backward = time_ms() - t0;
}
