// model: whole-model forward/backward on the CPU (see model.h for the block math).
#include "cpu/model.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/gemm.h"
#include "core/timer.h"

// Carves consecutive float arrays out of one block.
typedef struct { float *p; size_t used, cap; } Arena;
static float *take(Arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;  // keep every array 64-byte aligned
    float *r = a->p ? a->p + a->used : NULL;
    a->used += n;
    return r;
}

// Lays out every buffer; called once with a NULL block to size it, then for real.
static size_t carve(CpuModel *m, float *block) {
    const Config *c = &m->cfg;
    const size_t S = m->S, D = c->dim, H = c->hidden, QD = config_q_dim(c), KVD = config_kv_dim(c);
    const size_t V = c->vocab, NH = c->n_heads, NKV = c->n_kv_heads;
    Arena a = {block, 0, 0};
    for (int l = 0; l < c->n_layers; l++) {
        LayerActs *A = &m->layers[l];
        A->x = take(&a, D * S);
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
    m->logits = take(&a, S * V);
    m->dlogits = take(&a, S * V);
    m->dx = take(&a, D * S);
    m->dx2 = take(&a, D * S);
    m->dtmp = take(&a, D * S);
    m->dxn = take(&a, D * S);
    m->dq = take(&a, QD * S);
    m->dk = take(&a, KVD * S);
    m->dv = take(&a, KVD * S);
    m->datt = take(&a, QD * S);
    m->dh1 = take(&a, H * S);
    m->dh3 = take(&a, H * S);
    m->dg = take(&a, H * S);
    m->dscratch = take(&a, S * S + QD * S);
    return a.used;
}

int cpu_model_init(CpuModel *m, const Config *cfg, int S) {
    memset(m, 0, sizeof *m);
    if (S <= 0 || S > cfg->seq_len) return err_set("window length %d outside [1, %d]", S, cfg->seq_len);
    m->cfg = *cfg;
    m->S = S;
    m->layers = calloc(cfg->n_layers, sizeof(LayerActs));
    m->tokens = calloc(S, sizeof(int));
    m->targets = calloc(S, sizeof(int));
    if (!m->layers || !m->tokens || !m->targets) goto oom;
    size_t n = carve(m, NULL);
    m->act_block = aligned_alloc(64, n * sizeof(float));
    if (!m->act_block) goto oom;
    memset(m->act_block, 0, n * sizeof(float));
    carve(m, m->act_block);
    if (rope_table_init(&m->rope, S, cfg->head_dim, cfg->rope_theta) != 0) goto fail;
    return 0;
oom:
    err_set("out of memory allocating activations for window %d", S);
fail:
    cpu_model_free(m);
    return -1;
}

void cpu_model_free(CpuModel *m) {
    free(m->layers);
    free(m->act_block);
    free(m->tokens);
    free(m->targets);
    rope_table_free(&m->rope);
    memset(m, 0, sizeof *m);
}

// Per-layer weight pointers from the stacked views.
typedef struct {
    const float *rms_att, *wq, *wk, *wv, *wo, *q_norm, *k_norm, *rms_ffn, *w1, *w2, *w3;
} LayerW;

static LayerW layer_weights(const Config *c, const ParamViews *v, int l) {
    const size_t D = c->dim, H = c->hidden, QD = config_q_dim(c), KVD = config_kv_dim(c), HD = c->head_dim;
    LayerW w = {
        v->rms_att + l * D, v->wq + l * QD * D, v->wk + l * KVD * D, v->wv + l * KVD * D, v->wo + l * D * QD,
        v->q_norm ? v->q_norm + l * HD : NULL, v->k_norm ? v->k_norm + l * HD : NULL,
        v->rms_ffn + l * D, v->w1 + l * H * D, v->w2 + l * D * H, v->w3 + l * H * D,
    };
    return w;
}

float cpu_model_forward(CpuModel *m, const Params *p, const int *tokens, const int *targets) {
    const double t0 = time_ms();
    const Config *c = &m->cfg;
    const int S = m->S, D = c->dim, H = c->hidden, QD = config_q_dim(c), KVD = config_kv_dim(c);
    const int NH = c->n_heads, NKV = c->n_kv_heads, HD = c->head_dim, V = c->vocab;
    const float eps = c->norm_eps, alpha = c->res_scale;
    memcpy(m->tokens, tokens, sizeof(int) * S);
    if (targets) memcpy(m->targets, targets, sizeof(int) * S);
    else for (int t = 0; t < S; t++) m->targets[t] = -1;

    embed_forward(m->layers[0].x, p->v.embed, tokens, D, S);
    for (int l = 0; l < c->n_layers; l++) {
        LayerActs *A = &m->layers[l];
        const LayerW w = layer_weights(c, &p->v, l);
        float *x_next = l + 1 < c->n_layers ? m->layers[l + 1].x : m->x_out;

        rmsnorm_forward(A->xn, A->rstd1, A->x, w.rms_att, D, S, eps);
        linear_forward(c->qk_norm ? A->q_pre : A->q, w.wq, A->xn, QD, D, S);
        linear_forward(c->qk_norm ? A->k_pre : A->k, w.wk, A->xn, KVD, D, S);
        linear_forward(A->v, w.wv, A->xn, KVD, D, S);
        if (c->qk_norm) {
            headnorm_forward(A->q, A->qn_rstd, A->q_pre, w.q_norm, NH, HD, S, eps);
            headnorm_forward(A->k, A->kn_rstd, A->k_pre, w.k_norm, NKV, HD, S, eps);
        }
        rope_forward(A->q, &m->rope, NH, c->rope_layout);
        rope_forward(A->k, &m->rope, NKV, c->rope_layout);
        attention_forward(A->att, A->probs, A->q, A->k, A->v, NH, NKV, HD, S);
        // x2 = x + alpha * Wo att
        memcpy(A->x2, A->x, sizeof(float) * D * S);
        gemm(0, 0, D, S, QD, alpha, w.wo, QD, A->att, S, 1.0f, A->x2, S);

        rmsnorm_forward(A->x2n, A->rstd2, A->x2, w.rms_ffn, D, S, eps);
        linear_forward(A->h1, w.w1, A->x2n, H, D, S);
        linear_forward(A->h3, w.w3, A->x2n, H, D, S);
        swiglu_forward(A->g, A->h1, A->h3, (size_t)H * S);
        memcpy(x_next, A->x2, sizeof(float) * D * S);
        gemm(0, 0, D, S, H, alpha, w.w2, H, A->g, S, 1.0f, x_next, S);
    }
    rmsnorm_forward(m->xf, m->rstdf, m->x_out, p->v.rms_final, D, S, eps);
    // logits[S,V] = xfᵀ Wclsᵀ
    gemm(1, 1, S, V, D, 1.0f, m->xf, S, p->v.wcls, D, 0.0f, m->logits, V);
    m->loss = targets ? crossentropy_forward_backward(NULL, m->logits, m->targets, S, V, 1.0f) : 0.0f;
    m->ms_forward = time_ms() - t0;
    return m->loss;
}

void cpu_model_backward(CpuModel *m, const Params *p, float *grads, float loss_scale) {
    const double t0 = time_ms();
    const Config *c = &m->cfg;
    const int S = m->S, D = c->dim, H = c->hidden, QD = config_q_dim(c), KVD = config_kv_dim(c);
    const int NH = c->n_heads, NKV = c->n_kv_heads, HD = c->head_dim, V = c->vocab;
    const float alpha = c->res_scale;
    ParamViews g;
    params_point(c, grads, &g);

    crossentropy_forward_backward(m->dlogits, m->logits, m->targets, S, V, loss_scale);
    // classifier: dxf[D,S] = Wclsᵀ dlogitsᵀ;  dWcls[V,D] += dlogitsᵀ xfᵀ
    gemm(1, 1, D, S, V, 1.0f, p->v.wcls, D, m->dlogits, V, 0.0f, m->dtmp, S);
    gemm(1, 1, V, D, S, 1.0f, m->dlogits, V, m->xf, S, 1.0f, g.wcls, D);
    float *dx = m->dx;  // gradient w.r.t. the residual stream, flowing down
    rmsnorm_backward(dx, g.rms_final, m->dtmp, m->x_out, p->v.rms_final, m->rstdf, D, S);

    for (int l = c->n_layers - 1; l >= 0; l--) {
        LayerActs *A = &m->layers[l];
        const LayerW w = layer_weights(c, &p->v, l);
        LayerW gw = layer_weights(c, &g, l);
        // --- FFN: x' = x2 + alpha * W2 g ---
        // dg[H,S] = alpha W2ᵀ dx ; dW2 += alpha dx gᵀ
        gemm(1, 0, H, S, D, alpha, w.w2, H, dx, S, 0.0f, m->dg, S);
        gemm(0, 1, D, H, S, alpha, dx, S, A->g, S, 1.0f, (float *)gw.w2, H);
        swiglu_backward(m->dh1, m->dh3, m->dg, A->h1, A->h3, (size_t)H * S);
        linear_backward(m->dxn, (float *)gw.w1, m->dh1, w.w1, A->x2n, H, D, S, 0);
        linear_backward(m->dxn, (float *)gw.w3, m->dh3, w.w3, A->x2n, H, D, S, 1);
        rmsnorm_backward(m->dx2, (float *)gw.rms_ffn, m->dxn, A->x2, w.rms_ffn, A->rstd2, D, S);
        for (size_t i = 0; i < (size_t)D * S; i++) m->dx2[i] += dx[i];  // residual path
        // --- attention: x2 = x + alpha * Wo att ---
        gemm(1, 0, QD, S, D, alpha, w.wo, QD, m->dx2, S, 0.0f, m->datt, S);
        gemm(0, 1, D, QD, S, alpha, m->dx2, S, A->att, S, 1.0f, (float *)gw.wo, QD);
        attention_backward(m->dq, m->dk, m->dv, m->datt, A->probs, A->q, A->k, A->v, NH, NKV, HD, S, m->dscratch);
        rope_backward(m->dq, &m->rope, NH, c->rope_layout);
        rope_backward(m->dk, &m->rope, NKV, c->rope_layout);
        if (c->qk_norm) {
            // headnorm backward writes dx; reuse dscratch as the pre-norm gradient buffer
            float *tmp = m->dscratch;
            headnorm_backward(tmp, (float *)gw.q_norm, m->dq, A->q_pre, w.q_norm, A->qn_rstd, NH, HD, S);
            memcpy(m->dq, tmp, sizeof(float) * QD * S);
            headnorm_backward(tmp, (float *)gw.k_norm, m->dk, A->k_pre, w.k_norm, A->kn_rstd, NKV, HD, S);
            memcpy(m->dk, tmp, sizeof(float) * KVD * S);
        }
        linear_backward(m->dxn, (float *)gw.wq, m->dq, w.wq, A->xn, QD, D, S, 0);
        linear_backward(m->dxn, (float *)gw.wk, m->dk, w.wk, A->xn, KVD, D, S, 1);
        linear_backward(m->dxn, (float *)gw.wv, m->dv, w.wv, A->xn, KVD, D, S, 1);
        rmsnorm_backward(dx, (float *)gw.rms_att, m->dxn, A->x, w.rms_att, A->rstd1, D, S);
        for (size_t i = 0; i < (size_t)D * S; i++) dx[i] += m->dx2[i];
    }
    embed_backward(g.embed, dx, m->tokens, D, S);
    m->ms_backward = time_ms() - t0;
}
