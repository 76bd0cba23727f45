// ops: CPU forward/backward operations (see ops.h for the math and layouts).
#include "cpu/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/gemm.h"

// --- embedding -----------------------------------------------------------------------

void embed_forward(float *x, const float *embed, const int *tok, int D, int S) {
    for (int t = 0; t < S; t++) {
        const float *row = embed + (size_t)tok[t] * D;
        for (int d = 0; d < D; d++) x[(size_t)d * S + t] = row[d];
    }
}

void embed_backward(float *dembed, const float *dx, const int *tok, int D, int S) {
    for (int t = 0; t < S; t++) {
        float *row = dembed + (size_t)tok[t] * D;
        for (int d = 0; d < D; d++) row[d] += dx[(size_t)d * S + t];
    }
}

// --- RMSNorm ---------------------------------------------------------------------------
// Channel-first means a position's channels are strided by S, so we accumulate
// per-position sums over channel rows: every inner loop runs along t (contiguous).

void rmsnorm_forward(float *y, float *rstd, const float *x, const float *w, int C, int S, float eps) {
    for (int t = 0; t < S; t++) rstd[t] = 0.0f;
    for (int c = 0; c < C; c++) {
        const float *xc = x + (size_t)c * S;
        for (int t = 0; t < S; t++) rstd[t] += xc[t] * xc[t];
    }
    for (int t = 0; t < S; t++) rstd[t] = 1.0f / sqrtf(rstd[t] / C + eps);
    for (int c = 0; c < C; c++) {
        const float *xc = x + (size_t)c * S;
        float *yc = y + (size_t)c * S;
        const float wc = w[c];
        for (int t = 0; t < S; t++) yc[t] = xc[t] * rstd[t] * wc;
    }
}

// y = w * x * r with r = (mean x^2 + eps)^-1/2. With g = dy*w:
//   dx = r*g - x * r^3 * mean_c(g*x)
// (the original system multiplied the second term by w as well; that is wrong
// whenever w != 1, ane-spec 1.3)
void rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w, const float *rstd,
                      int C, int S) {
    float dot[S];  // mean_c(dy*w*x) per position
    for (int t = 0; t < S; t++) dot[t] = 0.0f;
    for (int c = 0; c < C; c++) {
        const float *xc = x + (size_t)c * S, *dyc = dy + (size_t)c * S;
        const float wc = w[c];
        float dwc = 0.0f;
        for (int t = 0; t < S; t++) {
            dot[t] += dyc[t] * wc * xc[t];
            dwc += dyc[t] * xc[t] * rstd[t];
        }
        dw[c] += dwc;
    }
    for (int t = 0; t < S; t++) dot[t] = dot[t] / C * rstd[t] * rstd[t] * rstd[t];
    for (int c = 0; c < C; c++) {
        const float *xc = x + (size_t)c * S, *dyc = dy + (size_t)c * S;
        float *dxc = dx + (size_t)c * S;
        const float wc = w[c];
        for (int t = 0; t < S; t++) dxc[t] = dyc[t] * wc * rstd[t] - xc[t] * dot[t];
    }
}

// --- linear --------------------------------------------------------------------------------

void linear_forward(float *y, const float *W, const float *x, int OC, int IC, int S) {
    gemm(0, 0, OC, S, IC, 1.0f, W, IC, x, S, 0.0f, y, S);
}

void linear_backward(float *dx, float *dW, const float *dy, const float *W, const float *x, int OC, int IC, int S,
                     int accumulate_dx) {
    if (dx) gemm(1, 0, IC, S, OC, 1.0f, W, IC, dy, S, accumulate_dx ? 1.0f : 0.0f, dx, S);
    if (dW) gemm(0, 1, OC, IC, S, 1.0f, dy, S, x, S, 1.0f, dW, IC);
}

// --- RoPE ----------------------------------------------------------------------------------

int rope_table_init(RopeTable *rt, int S, int HD, float theta) {
    rt->S = S;
    rt->HD = HD;
    size_t n = (size_t)S * (HD / 2);
    rt->cos = malloc(n * sizeof(float));
    rt->sin = malloc(n * sizeof(float));
    if (!rt->cos || !rt->sin) {
        rope_table_free(rt);
        return err_set("out of memory for the RoPE table (%d x %d)", S, HD);
    }
    for (int i = 0; i < HD / 2; i++) {
        double freq = pow((double)theta, -2.0 * i / HD);
        for (int t = 0; t < S; t++) {
            double a = t * freq;
            rt->cos[(size_t)t * (HD / 2) + i] = (float)cos(a);
            rt->sin[(size_t)t * (HD / 2) + i] = (float)sin(a);
        }
    }
    return 0;
}

void rope_table_free(RopeTable *rt) {
    free(rt->cos);
    free(rt->sin);
    rt->cos = rt->sin = NULL;
}

// Rotates pairs (a, b) by +angle (sign = 1) or -angle (sign = -1):
//   a' = a cos - b sin,  b' = b cos + a sin
static void rope_apply(float *x, const RopeTable *rt, int nh, RopeLayout layout, float sign) {
    const int HD = rt->HD, S = rt->S, half = HD / 2;
    for (int h = 0; h < nh; h++) {
        float *xh = x + (size_t)h * HD * S;
        for (int i = 0; i < half; i++) {
            float *a = xh + (size_t)(layout == ROPE_HALF ? i : 2 * i) * S;
            float *b = xh + (size_t)(layout == ROPE_HALF ? i + half : 2 * i + 1) * S;
            for (int t = 0; t < S; t++) {
                const float c = rt->cos[(size_t)t * half + i], s = sign * rt->sin[(size_t)t * half + i];
                const float av = a[t], bv = b[t];
                a[t] = av * c - bv * s;
                b[t] = bv * c + av * s;
            }
        }
    }
}

void rope_forward(float *x, const RopeTable *rt, int nh, RopeLayout layout) { rope_apply(x, rt, nh, layout, 1.0f); }
void rope_backward(float *dx, const RopeTable *rt, int nh, RopeLayout layout) {
    rope_apply(dx, rt, nh, layout, -1.0f);
}

// --- QK-norm --------------------------------------------------------------------------------
// A head's HD channels are a contiguous [HD][S] slice, so each head is an RMSNorm of C=HD.

void headnorm_forward(float *y, float *rstd, const float *x, const float *w, int nh, int HD, int S, float eps) {
    for (int h = 0; h < nh; h++) {
        size_t off = (size_t)h * HD * S;
        rmsnorm_forward(y + off, rstd + (size_t)h * S, x + off, w, HD, S, eps);
    }
}

void headnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w, const float *rstd,
                       int nh, int HD, int S) {
    for (int h = 0; h < nh; h++) {
        size_t off = (size_t)h * HD * S;
        rmsnorm_backward(dx + off, dw, dy + off, x + off, w, rstd + (size_t)h * S, HD, S);
    }
}

// --- attention --------------------------------------------------------------------------------
// Per head: scores[t][s] = q_h[:,t]·k_g[:,s] = (q_hᵀ k_g)[t][s]   (q_h is [HD][S])
//           out_h = v_g · Pᵀ                                       ([HD][S])

void attention_forward(float *out, float *probs, const float *q, const float *k, const float *v, int NH, int NKV,
                       int HD, int S) {
    const int R = NH / NKV;
    const float scale = 1.0f / sqrtf((float)HD);
    for (int h = 0; h < NH; h++) {
        const int g = h / R;
        const float *qh = q + (size_t)h * HD * S, *kg = k + (size_t)g * HD * S, *vg = v + (size_t)g * HD * S;
        float *P = probs + (size_t)h * S * S;
        gemm(1, 0, S, S, HD, scale, qh, S, kg, S, 0.0f, P, S);
        for (int t = 0; t < S; t++) {
            float *row = P + (size_t)t * S;
            float mx = -INFINITY;
            for (int s = 0; s <= t; s++) mx = row[s] > mx ? row[s] : mx;
            float sum = 0.0f;
            for (int s = 0; s <= t; s++) {
                row[s] = expf(row[s] - mx);
                sum += row[s];
            }
            const float inv = 1.0f / sum;
            for (int s = 0; s <= t; s++) row[s] *= inv;
            for (int s = t + 1; s < S; s++) row[s] = 0.0f;
        }
        gemm(0, 1, HD, S, S, 1.0f, vg, S, P, S, 0.0f, out + (size_t)h * HD * S, S);
    }
}

// dP = dout_hᵀ v_g   ([S][S]: dP[t][s] = sum_i dout[i][t] v[i][s])
// dv_g += dout_h · P  ([HD][S]: dv[i][s] = sum_t dout[i][t] P[t][s])
// dS = P ∘ (dP − rowsum(P∘dP)) · scale
// dq_h = k_g · dSᵀ    (dq[i][t] = sum_s k[i][s] dS[t][s])
// dk_g += q_h · dS    (dk[i][s] = sum_t q[i][t] dS[t][s])
void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *probs, const float *q,
                        const float *k, const float *v, int NH, int NKV, int HD, int S, float *scratch) {
    const int R = NH / NKV;
    const float scale = 1.0f / sqrtf((float)HD);
    memset(dk, 0, sizeof(float) * (size_t)NKV * HD * S);
    memset(dv, 0, sizeof(float) * (size_t)NKV * HD * S);
    float *dP = scratch;  // (S,S)
    for (int h = 0; h < NH; h++) {
        const int g = h / R;
        const float *qh = q + (size_t)h * HD * S, *kg = k + (size_t)g * HD * S, *vg = v + (size_t)g * HD * S;
        const float *doh = dout + (size_t)h * HD * S, *P = probs + (size_t)h * S * S;
        float *dqh = dq + (size_t)h * HD * S, *dkg = dk + (size_t)g * HD * S, *dvg = dv + (size_t)g * HD * S;
        gemm(1, 0, S, S, HD, 1.0f, doh, S, vg, S, 0.0f, dP, S);
        gemm(0, 0, HD, S, S, 1.0f, doh, S, P, S, 1.0f, dvg, S);
        for (int t = 0; t < S; t++) {
            const float *p = P + (size_t)t * S;
            float *d = dP + (size_t)t * S;
            float dot = 0.0f;
            for (int s = 0; s <= t; s++) dot += p[s] * d[s];
            for (int s = 0; s <= t; s++) d[s] = p[s] * (d[s] - dot) * scale;
            for (int s = t + 1; s < S; s++) d[s] = 0.0f;
        }
        gemm(0, 1, HD, S, S, 1.0f, kg, S, dP, S, 0.0f, dqh, S);
        gemm(0, 0, HD, S, S, 1.0f, qh, S, dP, S, 1.0f, dkg, S);
    }
}

// --- SwiGLU ---------------------------------------------------------------------------------------

void swiglu_forward(float *g, const float *h1, const float *h3, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const float sig = 1.0f / (1.0f + expf(-h1[i]));
        g[i] = h1[i] * sig * h3[i];
    }
}

// silu'(z) = σ(z) (1 + z (1 − σ(z)))
void swiglu_backward(float *dh1, float *dh3, const float *dg, const float *h1, const float *h3, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const float z = h1[i], sig = 1.0f / (1.0f + expf(-z));
        dh3[i] = dg[i] * z * sig;
        dh1[i] = dg[i] * h3[i] * sig * (1.0f + z * (1.0f - sig));
    }
}

// --- cross-entropy ----------------------------------------------------------------------------------

float crossentropy_forward_backward(float *dlogits, const float *logits, const int *target, int S, int V,
                                    float scale) {
    int count = 0;
    for (int t = 0; t < S; t++) count += target[t] >= 0;
    double loss = 0.0;
    const float inv = count ? 1.0f / count : 0.0f;
    for (int t = 0; t < S; t++) {
        const float *row = logits + (size_t)t * V;
        float mx = row[0];
        for (int j = 1; j < V; j++) mx = row[j] > mx ? row[j] : mx;
        double sum = 0.0;
        for (int j = 0; j < V; j++) sum += expf(row[j] - mx);
        const int y = target[t];
        if (y >= 0) loss += -(row[y] - mx - log(sum));
        if (!dlogits) continue;
        float *d = dlogits + (size_t)t * V;
        if (y < 0) {
            memset(d, 0, sizeof(float) * V);
            continue;
        }
        const float k = scale * inv, is = (float)(1.0 / sum);
        for (int j = 0; j < V; j++) d[j] = k * expf(row[j] - mx) * is;
        d[y] -= k;
    }
    return count ? (float)(loss / count) : 0.0f;
}
