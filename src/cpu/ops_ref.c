// ops_ref: naive double-precision references (see ops_ref.h). Deliberately the
// slowest obvious loops, written from the formulas and sharing no code with ops.c,
// so the gradient tests compare two independent derivations.
#include "cpu/ops_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/params.h"

// --- per-op references ----------------------------------------------------------------------

void ref_embed_forward(double *x, const double *embed, const int *tok, int D, int S) {
    for (int d = 0; d < D; d++)
        for (int t = 0; t < S; t++) x[(size_t)d * S + t] = embed[(size_t)tok[t] * D + d];
}

void ref_rmsnorm_rstd(double *rstd, const double *x, int C, int S, double eps) {
    for (int t = 0; t < S; t++) {
        double ss = 0.0;
        for (int c = 0; c < C; c++) ss += x[(size_t)c * S + t] * x[(size_t)c * S + t];
        rstd[t] = 1.0 / sqrt(ss / C + eps);
    }
}

void ref_rmsnorm_forward(double *y, const double *x, const double *w, int C, int S, double eps) {
    for (int t = 0; t < S; t++) {
        double ss = 0.0;
        for (int c = 0; c < C; c++) ss += x[(size_t)c * S + t] * x[(size_t)c * S + t];
        const double r = 1.0 / sqrt(ss / C + eps);
        for (int c = 0; c < C; c++) y[(size_t)c * S + t] = x[(size_t)c * S + t] * w[c] * r;
    }
}

void ref_linear_forward(double *y, const double *W, const double *x, int OC, int IC, int S) {
    for (int o = 0; o < OC; o++)
        for (int t = 0; t < S; t++) {
            double acc = 0.0;
            for (int i = 0; i < IC; i++) acc += W[(size_t)o * IC + i] * x[(size_t)i * S + t];
            y[(size_t)o * S + t] = acc;
        }
}

void ref_rope_forward(double *x, int nh, int HD, int S, double theta, RopeLayout layout) {
    const int half = HD / 2;
    for (int h = 0; h < nh; h++)
        for (int i = 0; i < half; i++) {
            // the two channels of head h that rotate together
            const int ca = layout == ROPE_HALF ? i : 2 * i;
            const int cb = layout == ROPE_HALF ? i + half : 2 * i + 1;
            double *a = x + ((size_t)h * HD + ca) * S, *b = x + ((size_t)h * HD + cb) * S;
            for (int t = 0; t < S; t++) {
                const double ang = t * pow(theta, -2.0 * i / HD);
                const double av = a[t], bv = b[t];
                a[t] = av * cos(ang) - bv * sin(ang);
                b[t] = av * sin(ang) + bv * cos(ang);
            }
        }
}

void ref_headnorm_forward(double *y, const double *x, const double *w, int nh, int HD, int S, double eps) {
    for (int h = 0; h < nh; h++) {
        const size_t off = (size_t)h * HD * S;
        ref_rmsnorm_forward(y + off, x + off, w, HD, S, eps);
    }
}

void ref_attention_probs(double *probs, const double *q, const double *k, int NH, int NKV, int HD, int S) {
    const int R = NH / NKV;
    for (int h = 0; h < NH; h++) {
        const int g = h / R;
        for (int t = 0; t < S; t++) {
            double *row = probs + ((size_t)h * S + t) * S;
            double mx = -INFINITY;
            for (int s = 0; s < S; s++) {
                if (s > t) {
                    row[s] = 0.0;
                    continue;
                }
                double dot = 0.0;
                for (int i = 0; i < HD; i++) dot += q[((size_t)h * HD + i) * S + t] * k[((size_t)g * HD + i) * S + s];
                row[s] = dot / sqrt((double)HD);
                if (row[s] > mx) mx = row[s];
            }
            double sum = 0.0;
            for (int s = 0; s <= t; s++) sum += exp(row[s] - mx);
            for (int s = 0; s <= t; s++) row[s] = exp(row[s] - mx) / sum;
        }
    }
}

void ref_attention_forward(double *out, const double *q, const double *k, const double *v, int NH, int NKV, int HD,
                           int S) {
    const int R = NH / NKV;
    double *probs = malloc(sizeof(double) * (size_t)NH * S * S);
    if (!probs) {
        for (size_t i = 0; i < (size_t)NH * HD * S; i++) out[i] = NAN;
        return;
    }
    ref_attention_probs(probs, q, k, NH, NKV, HD, S);
    for (int h = 0; h < NH; h++) {
        const int g = h / R;
        for (int i = 0; i < HD; i++)
            for (int t = 0; t < S; t++) {
                double acc = 0.0;
                for (int s = 0; s <= t; s++) acc += probs[((size_t)h * S + t) * S + s] * v[((size_t)g * HD + i) * S + s];
                out[((size_t)h * HD + i) * S + t] = acc;
            }
    }
    free(probs);
}

void ref_swiglu_forward(double *g, const double *h1, const double *h3, size_t n) {
    for (size_t i = 0; i < n; i++) g[i] = h1[i] / (1.0 + exp(-h1[i])) * h3[i];
}

double ref_crossentropy(const double *logits, const int *target, int S, int V) {
    double loss = 0.0;
    int count = 0;
    for (int t = 0; t < S; t++) {
        if (target[t] < 0) continue;
        const double *row = logits + (size_t)t * V;
        double mx = row[0];
        for (int j = 1; j < V; j++) mx = row[j] > mx ? row[j] : mx;
        double sum = 0.0;
        for (int j = 0; j < V; j++) sum += exp(row[j] - mx);
        loss += -(row[target[t]] - mx - log(sum));
        count++;
    }
    return count ? loss / count : 0.0;
}

// --- whole model ------------------------------------------------------------------------------

// Start of the named tensor in a block laid out by params_layout (NULL if absent).
static const double *ref_tensor(const double *params, const TensorDesc *t, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(t[i].name, name)) return params + t[i].offset;
    return NULL;
}

double ref_model_loss(const Config *c, const double *params, const int *tokens, const int *targets, int S,
                      double *logits) {
    TensorDesc td[PARAMS_MAX_TENSORS];
    const int nt = params_layout(c, td, NULL);
    const int D = c->dim, H = c->hidden, NH = c->n_heads, NKV = c->n_kv_heads, HD = c->head_dim, V = c->vocab;
    const int QD = NH * HD, KVD = NKV * HD;
    const double eps = c->norm_eps, alpha = c->res_scale, theta = c->rope_theta;
    const double *embed = ref_tensor(params, td, nt, "embed"), *rms_att = ref_tensor(params, td, nt, "rms_att");
    const double *wq = ref_tensor(params, td, nt, "wq"), *wk = ref_tensor(params, td, nt, "wk");
    const double *wv = ref_tensor(params, td, nt, "wv"), *wo = ref_tensor(params, td, nt, "wo");
    const double *q_norm = ref_tensor(params, td, nt, "q_norm"), *k_norm = ref_tensor(params, td, nt, "k_norm");
    const double *rms_ffn = ref_tensor(params, td, nt, "rms_ffn"), *w1 = ref_tensor(params, td, nt, "w1");
    const double *w2 = ref_tensor(params, td, nt, "w2"), *w3 = ref_tensor(params, td, nt, "w3");
    const double *rms_final = ref_tensor(params, td, nt, "rms_final");
    const double *wcls = c->tied ? embed : ref_tensor(params, td, nt, "wcls");

    // scratch, one block: x xn x2 x2n (D,S) q qp att (QD,S) k kp v (KVD,S) h1 h3 g (H,S) o (D,S) lg (S,V)
    const size_t n = (size_t)S * (5 * D + 3 * QD + 3 * KVD + 3 * H + V);
    double *blk = malloc(n * sizeof(double));
    if (!blk) return NAN;
    double *x = blk, *xn = x + D * S, *x2 = xn + D * S, *x2n = x2 + D * S, *o = x2n + D * S;
    double *q = o + D * S, *qp = q + QD * S, *att = qp + QD * S;
    double *k = att + QD * S, *kp = k + KVD * S, *v = kp + KVD * S;
    double *h1 = v + KVD * S, *h3 = h1 + H * S, *g = h3 + H * S, *lg = g + H * S;

    ref_embed_forward(x, embed, tokens, D, S);
    for (int l = 0; l < c->n_layers; l++) {
        ref_rmsnorm_forward(xn, x, rms_att + (size_t)l * D, D, S, eps);
        ref_linear_forward(qp, wq + (size_t)l * QD * D, xn, QD, D, S);
        ref_linear_forward(kp, wk + (size_t)l * KVD * D, xn, KVD, D, S);
        ref_linear_forward(v, wv + (size_t)l * KVD * D, xn, KVD, D, S);
        if (c->qk_norm) {
            ref_headnorm_forward(q, qp, q_norm + (size_t)l * HD, NH, HD, S, eps);
            ref_headnorm_forward(k, kp, k_norm + (size_t)l * HD, NKV, HD, S, eps);
        } else {
            memcpy(q, qp, sizeof(double) * QD * S);
            memcpy(k, kp, sizeof(double) * KVD * S);
        }
        ref_rope_forward(q, NH, HD, S, theta, c->rope_layout);
        ref_rope_forward(k, NKV, HD, S, theta, c->rope_layout);
        ref_attention_forward(att, q, k, v, NH, NKV, HD, S);
        ref_linear_forward(o, wo + (size_t)l * D * QD, att, D, QD, S);
        for (size_t i = 0; i < (size_t)D * S; i++) x2[i] = x[i] + alpha * o[i];
        ref_rmsnorm_forward(x2n, x2, rms_ffn + (size_t)l * D, D, S, eps);
        ref_linear_forward(h1, w1 + (size_t)l * H * D, x2n, H, D, S);
        ref_linear_forward(h3, w3 + (size_t)l * H * D, x2n, H, D, S);
        ref_swiglu_forward(g, h1, h3, (size_t)H * S);
        ref_linear_forward(o, w2 + (size_t)l * D * H, g, D, H, S);
        for (size_t i = 0; i < (size_t)D * S; i++) x[i] = x2[i] + alpha * o[i];
    }
    ref_rmsnorm_forward(xn, x, rms_final, D, S, eps);
    // logits[t][j] = sum_d wcls[j][d] xf[d][t]
    for (int t = 0; t < S; t++)
        for (int j = 0; j < V; j++) {
            double acc = 0.0;
            for (int d = 0; d < D; d++) acc += wcls[(size_t)j * D + d] * xn[(size_t)d * S + t];
            lg[(size_t)t * V + j] = acc;
        }
    const double loss = ref_crossentropy(lg, targets, S, V);
    if (logits) memcpy(logits, lg, sizeof(double) * S * V);
    free(blk);
    return loss;
}
