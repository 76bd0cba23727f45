// generate: the per-token transformer forward with a KV cache.
#include "infer/generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "infer/generate_device.h"

// y[OC] = W[OC,IC] x[IC]. Eight independent partial sums let the compiler
// vectorize the reduction without -ffast-math.
static void matvec(float *y, const float *W, const float *x, int OC, int IC) {
    for (int o = 0; o < OC; o++) {
        const float *w = W + (size_t)o * IC;
        float acc[8] = {0};
        int i = 0;
        for (; i + 8 <= IC; i += 8)
            for (int u = 0; u < 8; u++) acc[u] += w[i + u] * x[i + u];
        float s = 0.0f;
        for (; i < IC; i++) s += w[i] * x[i];
        y[o] = s + ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    }
}

// y[n] = x * w * (mean x^2 + eps)^-1/2  (y may alias x)
static void rmsnorm(float *y, const float *x, const float *w, int n, float eps) {
    float ss = 0.0f;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    const float r = 1.0f / sqrtf(ss / n + eps);
    for (int i = 0; i < n; i++) y[i] = x[i] * r * w[i];
}

// Rotates each of the nh heads of v[nh*HD] by the angles of one position.
static void rope(float *v, const float *cs, const float *sn, int nh, int HD, RopeLayout layout) {
    const int half = HD / 2;
    for (int h = 0; h < nh; h++) {
        float *x = v + (size_t)h * HD;
        for (int i = 0; i < half; i++) {
            // interleaved pairs (2i, 2i+1) as llama2.c; rotate-half pairs (i, i+HD/2) as HF
            const int a = layout == ROPE_INTERLEAVED ? 2 * i : i;
            const int b = layout == ROPE_INTERLEAVED ? 2 * i + 1 : i + half;
            const float x0 = x[a], x1 = x[b];
            x[a] = x0 * cs[i] - x1 * sn[i];
            x[b] = x0 * sn[i] + x1 * cs[i];
        }
    }
}

int gen_init(Generator *g, const Params *p, int max_seq) {
    memset(g, 0, sizeof *g);
    const Config *c = &p->cfg;
    if (max_seq <= 0) max_seq = c->seq_len;
    if (max_seq > c->seq_len) return err_set("generator: %d positions requested, the model allows %d", max_seq, c->seq_len);
    if (c->head_dim % 2) return err_set("generator: head_dim %d must be even for RoPE", c->head_dim);
    g->cfg = *c;
    g->p = p;
    g->max_seq = max_seq;
    const size_t D = c->dim, H = c->hidden, QD = config_q_dim(c), KVD = config_kv_dim(c), V = c->vocab;
    const size_t cache = (size_t)c->n_layers * max_seq * KVD;
    const size_t n = D + D + QD + QD + (size_t)max_seq + H + H + V + 2 * cache;
    g->block = calloc(n, sizeof(float));
    if (!g->block) return err_set("generator: out of memory for %zu floats (KV cache of %d positions)", n, max_seq);
    float *f = g->block;
    g->x = f, f += D;
    g->xn = f, f += D;
    g->q = f, f += QD;
    g->att = f, f += QD;
    g->scores = f, f += max_seq;
    g->h1 = f, f += H;
    g->h3 = f, f += H;
    g->logits = f, f += V;
    g->key_cache = f, f += cache;
    g->value_cache = f;
    if (rope_table_init(&g->rope, max_seq, c->head_dim, c->rope_theta) != 0) {
        gen_free(g);
        return -1;
    }
    return 0;
}

void gen_free(Generator *g) {
    free(g->block);
    if (g->rope.cos || g->rope.sin) rope_table_free(&g->rope);
    memset(g, 0, sizeof *g);
}

// QK-norm and RoPE of this position's q and k, then causal GQA attention of q
// over layer l's cached keys/values 0..pos into g->att.
static void attend(Generator *g, int l, int pos, float *k) {
    const Config *c = &g->cfg;
    const ParamViews *w = &g->p->v;
    const int KVD = config_kv_dim(c), NH = c->n_heads, NKV = c->n_kv_heads, HD = c->head_dim, R = NH / NKV;
    const float eps = c->norm_eps, scale = 1.0f / sqrtf((float)HD);
    const float *kc = g->key_cache + (size_t)l * g->max_seq * KVD, *vc = g->value_cache + (size_t)l * g->max_seq * KVD;
    const float *cs = g->rope.cos + (size_t)pos * (HD / 2), *sn = g->rope.sin + (size_t)pos * (HD / 2);
    if (c->qk_norm) {  // per-head RMSNorm over HD, after projection, before RoPE
        for (int h = 0; h < NH; h++)
            rmsnorm(g->q + (size_t)h * HD, g->q + (size_t)h * HD, w->q_norm + (size_t)l * HD, HD, eps);
        for (int h = 0; h < NKV; h++) rmsnorm(k + (size_t)h * HD, k + (size_t)h * HD, w->k_norm + (size_t)l * HD, HD, eps);
    }
    rope(g->q, cs, sn, NH, HD, c->rope_layout);
    rope(k, cs, sn, NKV, HD, c->rope_layout);
    for (int h = 0; h < NH; h++) {
        const int kvh = h / R;  // GQA: query head h reads kv head h/(NH/NKV)
        const float *qh = g->q + (size_t)h * HD;
        float mx = -INFINITY;
        for (int t = 0; t <= pos; t++) {
            const float *kt = kc + (size_t)t * KVD + (size_t)kvh * HD;
            float sc = 0.0f;
            for (int i = 0; i < HD; i++) sc += qh[i] * kt[i];
            sc *= scale;
            g->scores[t] = sc;
            if (sc > mx) mx = sc;
        }
        float sum = 0.0f;
        for (int t = 0; t <= pos; t++) sum += g->scores[t] = expf(g->scores[t] - mx);
        const float inv = 1.0f / sum;
        float *out = g->att + (size_t)h * HD;
        memset(out, 0, sizeof(float) * HD);
        for (int t = 0; t <= pos; t++) {
            const float a = g->scores[t] * inv;
            const float *vt = vc + (size_t)t * KVD + (size_t)kvh * HD;
            for (int i = 0; i < HD; i++) out[i] += a * vt[i];
        }
    }
}

// q, k, v of layer l from the residual stream (before QK-norm and RoPE).
static int project_qkv(Generator *g, int l, float *k, float *v) {
    const Config *c = &g->cfg;
    const ParamViews *w = &g->p->v;
    const int D = c->dim, QD = config_q_dim(c), KVD = config_kv_dim(c);
    if (g->dev) return gen_device_qkv(g->dev, l, g->x, g->q, k, v);
    rmsnorm(g->xn, g->x, w->rms_att + (size_t)l * D, D, c->norm_eps);
    matvec(g->q, w->wq + (size_t)l * QD * D, g->xn, QD, D);
    matvec(k, w->wk + (size_t)l * KVD * D, g->xn, KVD, D);
    matvec(v, w->wv + (size_t)l * KVD * D, g->xn, KVD, D);
    return 0;
}

// g->xn = Wo·att of layer l
static int project_out(Generator *g, int l) {
    const int D = g->cfg.dim, QD = config_q_dim(&g->cfg);
    if (g->dev) return gen_device_wo(g->dev, l, g->att, g->xn);
    matvec(g->xn, g->p->v.wo + (size_t)l * D * QD, g->att, D, QD);
    return 0;
}

// g->xn = W2 (silu(W1 xn) * W3 xn), xn = RMSNorm(x; rms_ffn) of layer l
static int ffn(Generator *g, int l) {
    const Config *c = &g->cfg;
    const ParamViews *w = &g->p->v;
    const int D = c->dim, H = c->hidden;
    if (g->dev) return gen_device_ffn(g->dev, l, g->x, g->xn);
    rmsnorm(g->xn, g->x, w->rms_ffn + (size_t)l * D, D, c->norm_eps);
    matvec(g->h1, w->w1 + (size_t)l * H * D, g->xn, H, D);
    matvec(g->h3, w->w3 + (size_t)l * H * D, g->xn, H, D);
    for (int i = 0; i < H; i++) g->h1[i] = g->h1[i] / (1.0f + expf(-g->h1[i])) * g->h3[i];
    matvec(g->xn, w->w2 + (size_t)l * D * H, g->h1, D, H);
    return 0;
}

const float *gen_step(Generator *g, int token, int pos) {
    const Config *c = &g->cfg;
    const ParamViews *w = &g->p->v;
    const int D = c->dim, KVD = config_kv_dim(c), V = c->vocab;
    const float alpha = c->res_scale;
    if (token < 0 || token >= V) {
        err_set("generator: token %d outside the vocab [0, %d)", token, V);
        return NULL;
    }
    if (pos < 0 || pos >= g->max_seq) {
        err_set("generator: position %d outside [0, %d)", pos, g->max_seq);
        return NULL;
    }
    memcpy(g->x, w->embed + (size_t)token * D, sizeof(float) * D);
    for (int l = 0; l < c->n_layers; l++) {
        float *k = g->key_cache + ((size_t)l * g->max_seq + pos) * KVD;
        float *v = g->value_cache + ((size_t)l * g->max_seq + pos) * KVD;
        if (project_qkv(g, l, k, v) != 0) return NULL;
        attend(g, l, pos, k);
        if (project_out(g, l) != 0) return NULL;  // x += res_scale * Wo att
        for (int i = 0; i < D; i++) g->x[i] += alpha * g->xn[i];
        if (ffn(g, l) != 0) return NULL;          // x += res_scale * FFN(x)
        for (int i = 0; i < D; i++) g->x[i] += alpha * g->xn[i];
    }
    if (g->dev) return gen_device_logits(g->dev, g->x, g->logits) == 0 ? g->logits : NULL;
    rmsnorm(g->xn, g->x, w->rms_final, D, c->norm_eps);
    matvec(g->logits, w->wcls, g->xn, V, D);
    return g->logits;
}
