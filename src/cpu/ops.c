// ops: CPU forward/backward operations (see ops.h for the math and layouts, and
// ops_fast.h for the fused/threaded forms the model runs).
//
// Threads: every op splits its work over the pool (par_for / par_gemm_tasks)
// when it is large enough to pay, and runs on the caller otherwise, so the
// small shapes of the gradient tests take the same code as a 110M model.
// Vectorization: inner loops run along t (contiguous in [C][S]) and are
// written for the compiler to vectorize; exp goes through vmath.h.
#include "cpu/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/gemm.h"
#include "core/threads.h"
#include "cpu/ops_fast.h"
#include "cpu/par.h"
#include "cpu/vmath.h"

// --- small threaded helpers --------------------------------------------------------------

typedef struct {
    float *dst;
    const float *src;
    int mode;  // 0 copy, 1 add, 2 bf16 round
} VecJob;

static void vec_run(void *ctx, size_t b, size_t e) {
    const VecJob *j = ctx;
    float *restrict d = j->dst + b;
    const float *restrict s = j->src + b;
    const size_t n = e - b;
    if (j->mode == 0) memcpy(d, s, n * sizeof(float));
    else if (j->mode == 1)
        for (size_t i = 0; i < n; i++) d[i] += s[i];
    else bf16_round_array(j->dst + b, j->src + b, n);
}

void vec_copy(float *dst, const float *src, size_t n) { par_for(n, 64, 0.25, vec_run, &(VecJob){dst, src, 0}); }
void vec_add(float *dst, const float *src, size_t n) { par_for(n, 64, 0.5, vec_run, &(VecJob){dst, src, 1}); }
void bf16_round_inplace(float *x, size_t n) { par_for(n, 64, 0.5, vec_run, &(VecJob){x, x, 2}); }
void bf16_round_copy(float *dst, const float *src, size_t n) { par_for(n, 64, 0.5, vec_run, &(VecJob){dst, src, 2}); }

// --- embedding -----------------------------------------------------------------------

typedef struct {
    float *x;
    const float *embed;
    const int *tok;
    int D, S;
} EmbedJob;

static void embed_run(void *ctx, size_t b, size_t e) {
    const EmbedJob *j = ctx;
    for (int t = 0; t < j->S; t++) {
        const float *row = j->embed + (size_t)j->tok[t] * j->D;
        for (size_t d = b; d < e; d++) j->x[d * j->S + t] = row[d];
    }
}

void embed_forward(float *x, const float *embed, const int *tok, int D, int S) {
    EmbedJob j = {x, embed, tok, D, S};
    par_for((size_t)D, 16, S, embed_run, &j);
}

// Only the rows of tokens that occur are touched (a scatter, not a dense pass).
void embed_backward(float *dembed, const float *dx, const int *tok, int D, int S) {
    for (int t = 0; t < S; t++) {
        float *row = dembed + (size_t)tok[t] * D;
        for (int d = 0; d < D; d++) row[d] += dx[(size_t)d * S + t];
    }
}

// --- RMSNorm ---------------------------------------------------------------------------
// Channel-first means a position's channels are strided by S, so we accumulate
// per-position sums over channel rows: every inner loop runs along t (contiguous),
// and threads take ranges of positions.

typedef struct {
    float *y, *rstd;
    const float *x, *w;
    int C, S;
    float eps;
} NormFwd;

void rmsnorm_forward_range(float *restrict y, float *restrict rstd, const float *restrict x, const float *w, int C,
                           int S, float eps, size_t b, size_t e) {
    for (size_t t = b; t < e; t++) rstd[t] = 0.0f;
    for (int c = 0; c < C; c++) {
        const float *restrict xc = x + (size_t)c * S;
        for (size_t t = b; t < e; t++) rstd[t] += xc[t] * xc[t];
    }
    for (size_t t = b; t < e; t++) rstd[t] = 1.0f / sqrtf(rstd[t] / C + eps);
    for (int c = 0; c < C; c++) {
        const float *restrict xc = x + (size_t)c * S;
        float *restrict yc = y + (size_t)c * S;
        const float wc = w[c];
        for (size_t t = b; t < e; t++) yc[t] = xc[t] * rstd[t] * wc;
    }
}

static void norm_fwd_run(void *ctx, size_t b, size_t e) {
    const NormFwd *j = ctx;
    rmsnorm_forward_range(j->y, j->rstd, j->x, j->w, j->C, j->S, j->eps, b, e);
}

void rmsnorm_forward(float *y, float *rstd, const float *x, const float *w, int C, int S, float eps) {
    NormFwd j = {y, rstd, x, w, C, S, eps};
    par_for((size_t)S, 8, 3.0 * C, norm_fwd_run, &j);
}

// y = w * x * r with r = (mean x^2 + eps)^-1/2. With g = dy*w:
//   dx = r*g - x * r^3 * mean_c(g*x)
// (the original system multiplied the second term by w as well; that is wrong
// whenever w != 1, ane-spec 1.3)
typedef struct {
    float *dx, *dw;
    const float *dy, *x, *w, *rstd, *res;
    int C, S;
} NormBwd;

// dx for positions [b, e) (+ residual)
static void rmsnorm_bwd_dx_range(float *restrict dx, const float *restrict dy, const float *restrict x,
                                 const float *w, const float *restrict rstd, int C, int S, const float *res,
                                 size_t b, size_t e) {
    float dot[e - b];  // mean_c(dy*w*x) * r^3 per position
    for (size_t t = 0; t < e - b; t++) dot[t] = 0.0f;
    for (int c = 0; c < C; c++) {
        const float *restrict xc = x + (size_t)c * S + b, *restrict dyc = dy + (size_t)c * S + b;
        const float wc = w[c];
        for (size_t t = 0; t < e - b; t++) dot[t] += dyc[t] * wc * xc[t];
    }
    for (size_t t = 0; t < e - b; t++) {
        const float r = rstd[b + t];
        dot[t] = dot[t] / C * r * r * r;
    }
    for (int c = 0; c < C; c++) {
        const float *restrict xc = x + (size_t)c * S + b, *restrict dyc = dy + (size_t)c * S + b;
        float *restrict dxc = dx + (size_t)c * S + b;
        const float *restrict rc = rstd + b;
        const float wc = w[c];
        if (res) {
            const float *restrict rr = res + (size_t)c * S + b;
            for (size_t t = 0; t < e - b; t++) dxc[t] = dyc[t] * wc * rc[t] - xc[t] * dot[t] + rr[t];
        } else {
            for (size_t t = 0; t < e - b; t++) dxc[t] = dyc[t] * wc * rc[t] - xc[t] * dot[t];
        }
    }
}

static void norm_bwd_dx_run(void *ctx, size_t b, size_t e) {
    const NormBwd *j = ctx;
    rmsnorm_bwd_dx_range(j->dx, j->dy, j->x, j->w, j->rstd, j->C, j->S, j->res, b, e);
}

// dw[c] += sum_t dy*x*rstd for channels [b, e)
static void norm_bwd_dw_run(void *ctx, size_t b, size_t e) {
    const NormBwd *j = ctx;
    const int S = j->S;
    for (size_t c = b; c < e; c++) {
        const float *restrict xc = j->x + c * S, *restrict dyc = j->dy + c * S, *restrict r = j->rstd;
        float acc[8] = {0};
        int t = 0;
        for (; t + 8 <= S; t += 8)
            for (int k = 0; k < 8; k++) acc[k] += dyc[t + k] * xc[t + k] * r[t + k];
        float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        for (; t < S; t++) s += dyc[t] * xc[t] * r[t];
        j->dw[c] += s;
    }
}

void rmsnorm_backward_add(float *dx, float *dw, const float *dy, const float *x, const float *w, const float *rstd,
                          int C, int S, const float *residual) {
    NormBwd j = {dx, dw, dy, x, w, rstd, residual, C, S};
    if (dw) par_for((size_t)C, 4, 2.0 * S, norm_bwd_dw_run, &j);  // before dx: dx may alias nothing we read
    if (dx) par_for((size_t)S, 8, 4.0 * C, norm_bwd_dx_run, &j);
}

void rmsnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w, const float *rstd,
                      int C, int S) {
    rmsnorm_backward_add(dx, dw, dy, x, w, rstd, C, S, NULL);
}

// --- linear --------------------------------------------------------------------------------

void linear_forward(float *y, const float *W, const float *x, int OC, int IC, int S) {
    gemm(0, 0, OC, S, IC, 1.0f, W, IC, x, S, 0.0f, y, S);
}

void linear_backward(float *dx, float *dW, const float *dy, const float *W, const float *x, int OC, int IC, int S,
                     int accumulate_dx) {
    ParTask t[2];
    int n = 0;
    if (dx)
        t[n++] = (ParTask){IC, S, S, accumulate_dx ? 1.0f : 0.0f, dx, 1, {{1, 0, OC, IC, S, 1.0f, W, dy, 0}}};
    if (dW) t[n++] = (ParTask){OC, IC, IC, 1.0f, dW, 1, {{0, 1, S, S, S, 1.0f, dy, x, 0}}};
    par_gemm_tasks(t, n, NULL);
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

int ropet_init(RopeT *rt, const RopeTable *src) {
    const int S = src->S, half = src->HD / 2;
    rt->S = S;
    rt->HD = src->HD;
    rt->cos = malloc((size_t)S * half * sizeof(float));
    rt->sin = malloc((size_t)S * half * sizeof(float));
    if (!rt->cos || !rt->sin) {
        ropet_free(rt);
        return err_set("out of memory for the RoPE table (%d x %d)", S, src->HD);
    }
    for (int i = 0; i < half; i++)
        for (int t = 0; t < S; t++) {
            rt->cos[(size_t)i * S + t] = src->cos[(size_t)t * half + i];
            rt->sin[(size_t)i * S + t] = src->sin[(size_t)t * half + i];
        }
    return 0;
}

void ropet_free(RopeT *rt) {
    free(rt->cos);
    free(rt->sin);
    rt->cos = rt->sin = NULL;
}

// Rotates pairs (a, b) by +angle (sign = 1) or -angle (sign = -1):
//   a' = a cos - b sin,  b' = b cos + a sin
typedef struct {
    float *x;
    const float *cos, *sin;
    int HD, S, half, cstride, tstride;  // table element (t, i) at i*cstride + t*tstride
    RopeLayout layout;
    float sign;
} RopeJob;

static void rope_run(void *ctx, size_t b, size_t e) {
    const RopeJob *j = ctx;
    const int S = j->S, half = j->half;
    for (size_t hi = b; hi < e; hi++) {  // (head, pair) index
        const size_t h = hi / half;
        const int i = (int)(hi % half);
        float *xh = j->x + h * j->HD * S;
        float *restrict a = xh + (size_t)(j->layout == ROPE_HALF ? i : 2 * i) * S;
        float *restrict bb = xh + (size_t)(j->layout == ROPE_HALF ? i + half : 2 * i + 1) * S;
        const float *c = j->cos + (size_t)i * j->cstride, *s = j->sin + (size_t)i * j->cstride;
        const int ts = j->tstride;
        const float sg = j->sign;
        for (int t = 0; t < S; t++) {
            const float cv = c[(size_t)t * ts], sv = sg * s[(size_t)t * ts];
            const float av = a[t], bv = bb[t];
            a[t] = av * cv - bv * sv;
            bb[t] = bv * cv + av * sv;
        }
    }
}

static void rope_apply(float *x, const RopeTable *rt, int nh, RopeLayout layout, float sign) {
    RopeJob j = {x, rt->cos, rt->sin, rt->HD, rt->S, rt->HD / 2, 1, rt->HD / 2, layout, sign};
    par_for((size_t)nh * (rt->HD / 2), 1, 6.0 * rt->S, rope_run, &j);
}

void ropet_apply(float *x, const RopeT *rt, int nh, RopeLayout layout, float sign) {
    RopeJob j = {x, rt->cos, rt->sin, rt->HD, rt->S, rt->HD / 2, rt->S, 1, layout, sign};
    par_for((size_t)nh * (rt->HD / 2), 1, 6.0 * rt->S, rope_run, &j);
}

void rope_forward(float *x, const RopeTable *rt, int nh, RopeLayout layout) { rope_apply(x, rt, nh, layout, 1.0f); }
void rope_backward(float *dx, const RopeTable *rt, int nh, RopeLayout layout) {
    rope_apply(dx, rt, nh, layout, -1.0f);
}

// --- QK-norm --------------------------------------------------------------------------------
// A head's HD channels are a contiguous [HD][S] slice, so each head is an RMSNorm of C=HD.

typedef struct {
    float *y, *rstd, *dw;
    const float *x, *w, *dy, *rs;
    int HD, S;
    float eps;
} HeadJob;

static void headnorm_fwd_run(void *ctx, size_t b, size_t e) {
    const HeadJob *j = ctx;
    for (size_t h = b; h < e; h++) {
        size_t off = h * j->HD * j->S;
        rmsnorm_forward_range(j->y + off, j->rstd + h * j->S, j->x + off, j->w, j->HD, j->S, j->eps, 0, j->S);
    }
}

void headnorm_forward(float *y, float *rstd, const float *x, const float *w, int nh, int HD, int S, float eps) {
    HeadJob j = {y, rstd, NULL, x, w, NULL, NULL, HD, S, eps};
    par_for((size_t)nh, 1, 3.0 * HD * S, headnorm_fwd_run, &j);
}

static void headnorm_bwd_run(void *ctx, size_t b, size_t e) {
    const HeadJob *j = ctx;
    for (size_t h = b; h < e; h++) {
        size_t off = h * j->HD * j->S;
        rmsnorm_bwd_dx_range(j->y + off, j->dy + off, j->x + off, j->w, j->rs + h * j->S, j->HD, j->S, NULL, 0, j->S);
    }
}

void headnorm_backward(float *dx, float *dw, const float *dy, const float *x, const float *w, const float *rstd,
                       int nh, int HD, int S) {
    // dw is shared by the heads: accumulated serially (HD*S per head, cheap);
    // the dx part, independent per head, is threaded
    for (int h = 0; dw && h < nh; h++) {
        size_t off = (size_t)h * HD * S;
        NormBwd nb = {NULL, dw, dy + off, x + off, w, rstd + (size_t)h * S, NULL, HD, S};
        norm_bwd_dw_run(&nb, 0, HD);
    }
    HeadJob j = {dx, NULL, NULL, x, w, dy, rstd, HD, S, 0.0f};
    par_for((size_t)nh, 1, 4.0 * HD * S, headnorm_bwd_run, &j);
}

// --- attention --------------------------------------------------------------------------------
// Per head: scores[t][s] = q_h[:,t]·k_g[:,s] = (q_hᵀ k_g)[t][s]   (q_h is [HD][S])
//           out_h = v_g · Pᵀ                                       ([HD][S])
// Causal: row block [t0, t1) only needs columns [0, t1), so products run per
// block of ATT_BLOCK rows over that trapezoid (about 5/8 of the square at S=256).

enum { ATT_BLOCK = 64 };

typedef struct {
    float *out, *probs;
    const float *q, *k, *v;
    int NH, NKV, HD, S;
} AttFwd;

static void softmax_causal_row(float *row, int t, int S) {
    const float mx = vmax(row, (size_t)t + 1);
    const float sum = vexp_sub_sum(row, row, (size_t)t + 1, mx);
    const float inv = 1.0f / sum;
    for (int s = 0; s <= t; s++) row[s] *= inv;
    for (int s = t + 1; s < S; s++) row[s] = 0.0f;
}

static void att_fwd_run(void *ctx, size_t hb, size_t he) {
    const AttFwd *j = ctx;
    const int S = j->S, HD = j->HD, R = j->NH / j->NKV;
    const float scale = 1.0f / sqrtf((float)HD);
    for (size_t h = hb; h < he; h++) {
        const int g = (int)h / R;
        const float *qh = j->q + h * HD * S, *kg = j->k + (size_t)g * HD * S, *vg = j->v + (size_t)g * HD * S;
        float *P = j->probs + h * S * S, *oh = j->out + h * HD * S;
        for (int t0 = 0; t0 < S; t0 += ATT_BLOCK) {
            const int t1 = t0 + ATT_BLOCK < S ? t0 + ATT_BLOCK : S, nb = t1 - t0;
            gemm_serial(1, 0, nb, t1, HD, scale, qh + t0, S, kg, S, 0.0f, P + (size_t)t0 * S, S);
            for (int t = t0; t < t1; t++) softmax_causal_row(P + (size_t)t * S, t, S);
            gemm_serial(0, 1, HD, nb, t1, 1.0f, vg, S, P + (size_t)t0 * S, S, 0.0f, oh + t0, S);
        }
    }
}

void attention_forward_par(float *out, float *probs, const float *q, const float *k, const float *v, int NH,
                           int NKV, int HD, int S) {
    AttFwd j = {out, probs, q, k, v, NH, NKV, HD, S};
    par_for((size_t)NH, 1, 3.0 * S * S * HD, att_fwd_run, &j);
}

void attention_forward(float *out, float *probs, const float *q, const float *k, const float *v, int NH, int NKV,
                       int HD, int S) {
    attention_forward_par(out, probs, q, k, v, NH, NKV, HD, S);
}

// dP = dout_hᵀ v_g   ([S][S]: dP[t][s] = sum_i dout[i][t] v[i][s])
// dv_g += dout_h · P  ([HD][S]: dv[i][s] = sum_t dout[i][t] P[t][s])
// dS = P ∘ (dP − rowsum(P∘dP)) · scale
// dq_h = k_g · dSᵀ    (dq[i][t] = sum_s k[i][s] dS[t][s])
// dk_g += q_h · dS    (dk[i][s] = sum_t q[i][t] dS[t][s])
// Threads take whole kv groups, since dk_g and dv_g sum over the group's heads.
typedef struct {
    float *dq, *dk, *dv;
    const float *dout, *probs, *q, *k, *v;
    int NH, NKV, HD, S;
    float *scratch;
} AttBwd;

static void att_bwd_group(const AttBwd *j, int g, float *dP) {
    const int S = j->S, HD = j->HD, R = j->NH / j->NKV;
    const float scale = 1.0f / sqrtf((float)HD);
    const float *kg = j->k + (size_t)g * HD * S, *vg = j->v + (size_t)g * HD * S;
    float *dkg = j->dk + (size_t)g * HD * S, *dvg = j->dv + (size_t)g * HD * S;
    memset(dkg, 0, sizeof(float) * (size_t)HD * S);
    memset(dvg, 0, sizeof(float) * (size_t)HD * S);
    for (int h = g * R; h < (g + 1) * R; h++) {
        const float *qh = j->q + (size_t)h * HD * S, *doh = j->dout + (size_t)h * HD * S;
        const float *P = j->probs + (size_t)h * S * S;
        float *dqh = j->dq + (size_t)h * HD * S;
        for (int t0 = 0; t0 < S; t0 += ATT_BLOCK) {
            const int t1 = t0 + ATT_BLOCK < S ? t0 + ATT_BLOCK : S, nb = t1 - t0;
            const float *Pb = P + (size_t)t0 * S;
            float *dPb = dP + (size_t)t0 * S;
            gemm_serial(1, 0, nb, t1, HD, 1.0f, doh + t0, S, vg, S, 0.0f, dPb, S);
            gemm_serial(0, 0, HD, t1, nb, 1.0f, doh + t0, S, Pb, S, 1.0f, dvg, S);
            for (int t = t0; t < t1; t++) {
                const float *restrict p = P + (size_t)t * S;
                float *restrict d = dP + (size_t)t * S;
                float dot = 0.0f;
                for (int s = 0; s <= t; s++) dot += p[s] * d[s];
                for (int s = 0; s <= t; s++) d[s] = p[s] * (d[s] - dot) * scale;
                for (int s = t + 1; s < t1; s++) d[s] = 0.0f;
            }
            gemm_serial(0, 1, HD, nb, t1, 1.0f, kg, S, dPb, S, 0.0f, dqh + t0, S);
            gemm_serial(0, 0, HD, t1, nb, 1.0f, qh + t0, S, dPb, S, 1.0f, dkg, S);
        }
    }
}

static void att_bwd_run(void *ctx, int tid, int nt) {
    const AttBwd *j = ctx;
    size_t b, e;
    threads_range((size_t)j->NKV, tid, nt, 1, &b, &e);
    for (size_t g = b; g < e; g++) att_bwd_group(j, (int)g, j->scratch + (size_t)tid * j->S * j->S);
}

void attention_backward_par(float *dq, float *dk, float *dv, const float *dout, const float *probs, const float *q,
                            const float *k, const float *v, int NH, int NKV, int HD, int S, float *scratch,
                            size_t scratch_floats) {
    AttBwd j = {dq, dk, dv, dout, probs, q, k, v, NH, NKV, HD, S, scratch};
    int nt = (int)(scratch_floats / ((size_t)S * S));
    if (nt > NKV) nt = NKV;
    if (4.0 * NH * S * S * HD < GEMM_SPLIT_MIN_FLOPS) nt = 1;
    threads_run_n(att_bwd_run, &j, nt < 1 ? 1 : nt);
}

void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *probs, const float *q,
                        const float *k, const float *v, int NH, int NKV, int HD, int S, float *scratch) {
    attention_backward_par(dq, dk, dv, dout, probs, q, k, v, NH, NKV, HD, S, scratch, (size_t)S * S);
}

// --- SwiGLU ---------------------------------------------------------------------------------------

typedef struct {
    float *g, *dh1, *dh3;
    const float *h1, *h3, *dg;
    size_t n;  // the whole array's elements (the backward's vector/scalar boundary)
} SwiJob;

static void swiglu_fwd_run(void *ctx, size_t b, size_t e) {
    const SwiJob *j = ctx;
    size_t i = b;
#ifdef VMATH_AVX2
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    for (; i + 8 <= e; i += 8) {
        __m256 z = _mm256_loadu_ps(j->h1 + i);
        __m256 sig = _mm256_div_ps(one, _mm256_add_ps(one, vexp8(_mm256_sub_ps(zero, z))));
        _mm256_storeu_ps(j->g + i, _mm256_mul_ps(_mm256_mul_ps(z, sig), _mm256_loadu_ps(j->h3 + i)));
    }
#endif
    for (; i < e; i++) {
        const float sig = 1.0f / (1.0f + expf(-j->h1[i]));
        j->g[i] = j->h1[i] * sig * j->h3[i];
    }
}

void swiglu_forward(float *g, const float *h1, const float *h3, size_t n) {
    SwiJob j = {g, NULL, NULL, h1, h3, NULL, n};
    par_for(n, 64, 8.0, swiglu_fwd_run, &j);
}

// silu'(z) = σ(z) (1 + z (1 − σ(z)))
#ifdef VMATH_AVX2
static void swiglu_bwd8(float *dh1, float *dh3, const float *dg, const float *h1, const float *h3) {
    const __m256 one = _mm256_set1_ps(1.0f), zero = _mm256_setzero_ps();
    __m256 z = _mm256_loadu_ps(h1), g = _mm256_loadu_ps(dg);
    __m256 sig = _mm256_div_ps(one, _mm256_add_ps(one, vexp8(_mm256_sub_ps(zero, z))));
    _mm256_storeu_ps(dh3, _mm256_mul_ps(g, _mm256_mul_ps(z, sig)));
    __m256 ds = _mm256_mul_ps(sig, _mm256_add_ps(one, _mm256_mul_ps(z, _mm256_sub_ps(one, sig))));
    _mm256_storeu_ps(dh1, _mm256_mul_ps(_mm256_mul_ps(g, _mm256_loadu_ps(h3)), ds));
}
#endif

void swiglu_backward_span(float *dh1, float *dh3, const float *dg, const float *h1, const float *h3, size_t n,
                          size_t n_vector) {
    size_t i = 0;
#ifdef VMATH_AVX2
    if (n_vector > n) n_vector = n;
    for (; i + 8 <= n_vector; i += 8) swiglu_bwd8(dh1 + i, dh3 + i, dg + i, h1 + i, h3 + i);
    if (i < n_vector) {  // a part of a block: through the same vector math, padded
        float in[3][8] = {{0}}, out[2][8];
        const size_t m = n_vector - i;
        memcpy(in[0], dg + i, m * sizeof(float)), memcpy(in[1], h1 + i, m * sizeof(float));
        memcpy(in[2], h3 + i, m * sizeof(float));
        swiglu_bwd8(out[0], out[1], in[0], in[1], in[2]);
        memcpy(dh1 + i, out[0], m * sizeof(float)), memcpy(dh3 + i, out[1], m * sizeof(float));
        i = n_vector;
    }
#else
    (void)n_vector;
#endif
    for (; i < n; i++) {
        const float z = h1[i], sig = 1.0f / (1.0f + expf(-z));
        dh3[i] = dg[i] * z * sig;
        dh1[i] = dg[i] * h3[i] * sig * (1.0f + z * (1.0f - sig));
    }
}

static void swiglu_bwd_run(void *ctx, size_t b, size_t e) {
    const SwiJob *j = ctx;
    const size_t vec_end = SWIGLU_VECTOR_END(j->n);
    swiglu_backward_span(j->dh1 + b, j->dh3 + b, j->dg + b, j->h1 + b, j->h3 + b, e - b,
                         vec_end > b ? vec_end - b : 0);
}

void swiglu_backward(float *dh1, float *dh3, const float *dg, const float *h1, const float *h3, size_t n) {
    SwiJob j = {NULL, dh1, dh3, h1, h3, dg, n};
    par_for(n, 64, 10.0, swiglu_bwd_run, &j);
}

// --- cross-entropy ----------------------------------------------------------------------------------

float crossentropy_forward_backward(float *dlogits, const float *logits, const int *target, int S, int V,
                                    float scale) {
    int count = 0;
    for (int t = 0; t < S; t++) count += target[t] >= 0;
    double loss = 0.0;
    const float inv = count ? 1.0f / count : 0.0f;
    float *tmp = dlogits ? NULL : malloc(sizeof(float) * (size_t)V);
    for (int t = 0; t < S; t++) {
        const float *row = logits + (size_t)t * V;
        const int y = target[t];
        const float yl = y >= 0 ? row[y] : 0.0f;  // read before an aliased dlogits overwrites it
        const float mx = vmax(row, (size_t)V);
        float *d = dlogits ? dlogits + (size_t)t * V : tmp;
        double sum;
        if (d) sum = vexp_sub_sum(d, row, (size_t)V, mx);
        else {  // no memory for a row: scalar
            sum = 0.0;
            for (int v = 0; v < V; v++) sum += expf(row[v] - mx);
        }
        if (y >= 0) loss += -(yl - mx - log(sum));
        if (!dlogits) continue;
        if (y < 0) {
            memset(d, 0, sizeof(float) * V);
            continue;
        }
        const float k = scale * inv * (float)(1.0 / sum);
        for (int j = 0; j < V; j++) d[j] *= k;
        d[y] -= scale * inv;
    }
    free(tmp);
    return count ? (float)(loss / count) : 0.0f;
}

// --- classifier, chunked over the vocabulary ----------------------------------------------------

typedef struct {
    float *logits, *lse, *stats;  // stats: per thread m[S], s[S], the target's logit[S] (0 off its range)
    float *chunks;                // logits NULL: per thread one chunk of logits (S, CLS_CHUNK)
    const float *W, *x;
    const int *target;
    int S, V, D, nt;
    const ParScratch *ws;
    // backward
    float *dx, *dW, *dscratch, *xscratch;
    float dw_beta, scale;
    int count;
} ClsJob;

// W rows [v0, v0+n) as the product wants them: rounded into scratch in bf16 mode
static const float *cls_weights(const ClsJob *j, int tid, int v0, int n) {
    const float *W = j->W + (size_t)v0 * j->D;
    if (!j->ws || !j->ws->buf || tid >= j->ws->nthreads || (size_t)n * j->D > j->ws->per_thread) return W;
    float *buf = j->ws->buf + (size_t)tid * j->ws->per_thread;
    bf16_round_array(buf, W, (size_t)n * j->D);
    return buf;
}

// Logits of rows [v0, v0+n) for every position: into the full (S,V) logits at
// column v0, or (logits NULL) into chunk, (S,n). The forward and the backward
// cut the vocabulary alike, so a recomputed chunk is the same product.
static float *cls_chunk_logits(const ClsJob *j, float *chunk, size_t v0, int n, const float *W, size_t *ld) {
    float *L = j->logits ? j->logits + v0 : chunk;
    *ld = j->logits ? (size_t)j->V : (size_t)n;
    gemm_serial(1, 1, j->S, n, j->D, 1.0f, j->x, j->S, W, j->D, 0.0f, L, (int)*ld);
    return L;
}

static void cls_fwd_run(void *ctx, int tid, int nt) {
    const ClsJob *j = ctx;
    const int S = j->S, V = j->V;
    float *m = j->stats + (size_t)tid * 3 * S, *s = m + S, *tl = s + S;
    for (int t = 0; t < S; t++) m[t] = -INFINITY, s[t] = 0.0f, tl[t] = 0.0f;
    size_t b, e;
    threads_range((size_t)V, tid, nt, 16, &b, &e);
    for (size_t v0 = b; v0 < e; v0 += CLS_CHUNK) {
        const int n = (int)(e - v0 < CLS_CHUNK ? e - v0 : CLS_CHUNK);
        size_t ld;
        const float *L = cls_chunk_logits(j, j->chunks ? j->chunks + (size_t)tid * S * CLS_CHUNK : NULL, v0, n,
                                          cls_weights(j, tid, (int)v0, n), &ld);
        for (int t = 0; t < S; t++) {
            const float *row = L + (size_t)t * ld;
            const int y = j->target[t];
            if (y >= (int)v0 && y < (int)v0 + n) tl[t] = row[y - v0];
            const float cm = vmax(row, (size_t)n);
            if (!(cm == cm)) {  // NaN: poison the row
                m[t] = NAN;
                continue;
            }
            const float nm = cm > m[t] ? cm : m[t];
            // sum of exp(row - nm) without storing (the logits must survive)
            float sum = 0.0f;
            size_t i = 0;
#ifdef VMATH_AVX2
            __m256 acc = _mm256_setzero_ps(), vs = _mm256_set1_ps(nm);
            for (; i + 8 <= (size_t)n; i += 8) acc = _mm256_add_ps(acc, vexp8(_mm256_sub_ps(_mm256_loadu_ps(row + i), vs)));
            sum = vhsum8(acc);
#endif
            for (; i < (size_t)n; i++) sum += expf(row[i] - nm);
            s[t] = s[t] * expf(m[t] - nm) + sum;
            m[t] = nm;
        }
    }
}

float classifier_forward(float *logits, float *lse, const float *W, const float *x, const int *target, int S, int V,
                         int D, float *scratch, float *chunks, const ParScratch *wscratch, int max_threads) {
    int nt = par_threads();
    if (nt > max_threads) nt = max_threads;
    if (wscratch && wscratch->buf && wscratch->nthreads < nt) nt = wscratch->nthreads;
    if (2.0 * S * V * D < GEMM_SPLIT_MIN_FLOPS) nt = 1;
    ClsJob j = {logits, lse, scratch, chunks, W, x, target, S, V, D, nt, wscratch, NULL, NULL, NULL, NULL, 0, 0, 0};
    const int used = threads_run_n(cls_fwd_run, &j, nt);
    // fold the per-thread statistics (threads that got no columns left m = -inf, s = 0)
    double loss = 0.0;
    int count = 0;
    for (int t = 0; t < S; t++) {
        float M = -INFINITY;
        int nan = 0;
        float tlogit = 0.0f;  // one thread's range holds the target; the others left 0
        for (int i = 0; i < used; i++) {
            const float mi = scratch[(size_t)i * 3 * S + t];
            if (!(mi == mi)) nan = 1;
            else if (mi > M) M = mi;
            tlogit += scratch[(size_t)i * 3 * S + 2 * S + t];
        }
        double sum = 0.0;
        for (int i = 0; i < used; i++) {
            const float mi = scratch[(size_t)i * 3 * S + t], si = scratch[(size_t)i * 3 * S + S + t];
            if (si > 0) sum += si * exp((double)mi - M);
        }
        lse[t] = nan || !isfinite(M) ? NAN : (float)(M + log(sum));
        if (target[t] >= 0) {
            count++;
            loss += lse[t] - tlogit;
        }
    }
    return count ? (float)(loss / count) : 0.0f;
}

static void cls_bwd_run(void *ctx, int tid, int nt) {
    const ClsJob *j = ctx;
    const int S = j->S, V = j->V, D = j->D;
    float *dl = j->dscratch + (size_t)tid * S * CLS_CHUNK;
    float *dx = tid == 0 ? j->dx : j->xscratch + (size_t)(tid - 1) * D * S;
    const float k = j->count ? j->scale / j->count : 0.0f;
    const int bf16 = j->ws && j->ws->buf;
    size_t b, e;
    threads_range((size_t)V, tid, nt, 16, &b, &e);
    int first = 1;
    for (size_t v0 = b; v0 < e; v0 += CLS_CHUNK) {
        const int n = (int)(e - v0 < CLS_CHUNK ? e - v0 : CLS_CHUNK);
        const float *W = cls_weights(j, tid, (int)v0, n);
        size_t ld;
        if (!j->logits) cls_chunk_logits(j, dl, v0, n, W, &ld);  // the chunk's logits again, into dl itself
        for (int t = 0; t < S; t++) {
            float *d = dl + (size_t)t * n;
            const int y = j->target[t];
            if (y < 0) {
                memset(d, 0, sizeof(float) * n);
                continue;
            }
            vexp_sub_sum(d, j->logits ? j->logits + (size_t)t * V + v0 : d, (size_t)n, j->lse[t]);
            for (int i = 0; i < n; i++) d[i] *= k;
            if (y >= (int)v0 && y < (int)v0 + n) d[y - v0] -= k;
        }
        if (bf16) bf16_round_array(dl, dl, (size_t)S * n);
        // dW[v0:v0+n, :] += dlᵀ xᵀ ;  dx += W[v0:v0+n]ᵀ dlᵀ
        if (j->dW) gemm_serial(1, 1, n, D, S, 1.0f, dl, n, j->x, S, j->dw_beta, j->dW + v0 * D, D);
        gemm_serial(1, 1, D, S, n, 1.0f, W, D, dl, n, first ? 0.0f : 1.0f, dx, S);
        first = 0;
    }
    if (first) memset(dx, 0, sizeof(float) * (size_t)D * S);
}

typedef struct {
    float *dx;
    const float *parts;
    int nparts;
    size_t stride;
} SumJob;

static void sum_run(void *ctx, size_t b, size_t e) {
    const SumJob *j = ctx;
    for (int p = 0; p < j->nparts; p++) {
        const float *restrict s = j->parts + p * j->stride;
        float *restrict d = j->dx;
        for (size_t i = b; i < e; i++) d[i] += s[i];
    }
}

void classifier_backward(float *dx, float *dW, float dw_beta, const float *logits, const float *lse, const float *W, const float *x,
                         const int *target, int S, int V, int D, float scale, float *dscratch, float *xscratch,
                         const ParScratch *wscratch, int max_threads) {
    int count = 0;
    for (int t = 0; t < S; t++) count += target[t] >= 0;
    int nt = par_threads();
    if (nt > max_threads) nt = max_threads;
    if (wscratch && wscratch->buf && wscratch->nthreads < nt) nt = wscratch->nthreads;
    if (2.0 * S * V * D < GEMM_SPLIT_MIN_FLOPS) nt = 1;
    ClsJob j = {(float *)logits, (float *)lse, NULL, NULL, W, x, target, S, V, D, nt, wscratch, dx, dW, dscratch,
                xscratch, dw_beta, scale, count};
    const int used = threads_run_n(cls_bwd_run, &j, nt);
    if (used > 1) {
        SumJob sj = {dx, xscratch, used - 1, (size_t)D * S};
        par_for((size_t)D * S, 64, used, sum_run, &sj);
    }
}
