// Gradient checks: every CPU op (cpu/ops.h) and the whole CPU model (cpu/model.h)
// against central finite differences of the double-precision references in
// cpu/ops_ref.c, which share no code with the fp32 ops.
//
// Each op test: random fp32 inputs and weights (copied exactly to double), a scalar
// L = sum(r * y) with a fixed random r, analytic gradients = our fp32 backward with
// dy = r, numeric gradients = (L(p+h) - L(p-h)) / 2h of the double reference forward
// for every element of every input and weight. The fp32 forward is also compared
// with the reference forward.
//
// Tolerances: |a-b| <= atol + rtol*|b| with b the double side. The numeric gradient
// is good to ~1e-9 here (truncation ~h^2 f''' and rounding ~1e-16*|L|/h), so the
// tolerance only absorbs the fp32 rounding of the analytic side (~1e-6 relative for
// these sizes and O(1) values); a wrong formula is off by O(1e-2..1).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "cpu/model.h"
#include "cpu/ops.h"
#include "cpu/ops_ref.h"
#include "model/params.h"
#include "test.h"

#define FD_H 1e-5  // central-difference step (double)
static const float FWD_ATOL = 1e-5f, FWD_RTOL = 1e-5f;
static const float GRAD_ATOL = 1e-5f, GRAD_RTOL = 1e-4f;
static const float GARBAGE = 1234.5f;  // prefill for outputs a backward must overwrite

// --- helpers --------------------------------------------------------------------------------------

static float *fnew(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) abort();
    return p;
}
static double *dnew(size_t n) {
    double *p = calloc(n ? n : 1, sizeof(double));
    if (!p) abort();
    return p;
}
static void fill_normal(float *x, size_t n, Rng *r, float scale, float offset) {
    for (size_t i = 0; i < n; i++) x[i] = offset + scale * rng_normal(r);
}
static void fill(float *x, size_t n, float v) {
    for (size_t i = 0; i < n; i++) x[i] = v;
}
static double *to_double(const float *f, size_t n) {
    double *d = dnew(n);
    for (size_t i = 0; i < n; i++) d[i] = f[i];
    return d;
}
static double dot_d(const double *a, const double *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}
// x - base, in place: the part a backward accumulated onto a prefilled buffer
static void sub_base(float *x, size_t n, float base) {
    for (size_t i = 0; i < n; i++) x[i] -= base;
}

typedef double (*LossFn)(void *ctx);

// g[i] = dL/dp[i] by central differences; p is perturbed in place and restored.
static void num_grad(double *g, double *p, size_t n, LossFn f, void *ctx) {
    for (size_t i = 0; i < n; i++) {
        const double old = p[i];
        p[i] = old + FD_H;
        const double lp = f(ctx);
        p[i] = old - FD_H;
        const double lm = f(ctx);
        p[i] = old;
        g[i] = (lp - lm) / (2 * FD_H);
    }
}

// test_allclose of fp32 values a against the double reference b.
static int close_to_ref(const float *a, const double *b, size_t n, float atol, float rtol, const char *label) {
    float *bf = fnew(n);
    for (size_t i = 0; i < n; i++) bf[i] = (float)b[i];
    const int ok = test_allclose(a, bf, n, atol, rtol, label);
    free(bf);
    return ok;
}

// Numeric gradient of f with respect to p[n], compared with the analytic one.
static int check_grad(const float *analytic, double *p, size_t n, LossFn f, void *ctx, const char *label) {
    double *g = dnew(n);
    num_grad(g, p, n, f, ctx);
    const int ok = close_to_ref(analytic, g, n, GRAD_ATOL, GRAD_RTOL, label);
    free(g);
    return ok;
}

// --- embedding --------------------------------------------------------------------------------------

typedef struct { const double *embed, *r; const int *tok; int D, S; double *x; } EmbedCtx;
static double embed_loss(void *p) {
    EmbedCtx *c = p;
    ref_embed_forward(c->x, c->embed, c->tok, c->D, c->S);
    return dot_d(c->r, c->x, (size_t)c->D * c->S);
}

TEST(grad_embedding) {
    enum { V = 6, D = 5, S = 7 };
    const int tok[S] = {0, 3, 3, 5, 1, 3, 0};  // repeats: gradients of a row add up; rows 2, 4 unused
    Rng rng;
    rng_init(&rng, 101);
    float *embed = fnew(V * D), *x = fnew(D * S), *r = fnew(D * S), *dembed = fnew(V * D);
    fill_normal(embed, V * D, &rng, 1, 0);
    fill_normal(r, D * S, &rng, 1, 0);
    double *embed_d = to_double(embed, V * D), *r_d = to_double(r, D * S), *x_d = dnew(D * S);

    embed_forward(x, embed, tok, D, S);
    ref_embed_forward(x_d, embed_d, tok, D, S);
    close_to_ref(x, x_d, D * S, 0, 0, "embed y");  // a copy: exact

    fill(dembed, V * D, 0.5f);  // backward accumulates
    embed_backward(dembed, r, tok, D, S);
    for (int d = 0; d < D; d++) {
        CHECKF(dembed[2 * D + d] == 0.5f && dembed[4 * D + d] == 0.5f, "unused embedding row touched at d=%d", d);
    }
    sub_base(dembed, V * D, 0.5f);
    EmbedCtx c = {embed_d, r_d, tok, D, S, x_d};
    check_grad(dembed, embed_d, V * D, embed_loss, &c, "embed dembed");
    free(embed), free(x), free(r), free(dembed), free(embed_d), free(r_d), free(x_d);
}

// --- RMSNorm ------------------------------------------------------------------------------------------

typedef struct { const double *x, *w, *r; int C, S; double eps; double *y; } NormCtx;
static double rmsnorm_loss(void *p) {
    NormCtx *c = p;
    ref_rmsnorm_forward(c->y, c->x, c->w, c->C, c->S, c->eps);
    return dot_d(c->r, c->y, (size_t)c->C * c->S);
}

TEST(grad_rmsnorm) {
    enum { C = 7, S = 5 };
    const float eps = 1e-5f;
    Rng rng;
    rng_init(&rng, 202);
    float *x = fnew(C * S), *w = fnew(C), *r = fnew(C * S), *y = fnew(C * S), *rstd = fnew(S);
    float *dx = fnew(C * S), *dw = fnew(C);
    fill_normal(x, C * S, &rng, 1, 0);
    for (int c = 0; c < C; c++) x[c * S + S - 1] *= 0.05f;  // a small position, where eps matters
    fill_normal(w, C, &rng, 0.3f, 1);  // away from 1: exposes the w-times-correction bug (ane-spec 1.3)
    fill_normal(r, C * S, &rng, 1, 0);
    double *x_d = to_double(x, C * S), *w_d = to_double(w, C), *r_d = to_double(r, C * S);
    double *y_d = dnew(C * S), *rstd_d = dnew(S);

    rmsnorm_forward(y, rstd, x, w, C, S, eps);
    ref_rmsnorm_forward(y_d, x_d, w_d, C, S, eps);
    ref_rmsnorm_rstd(rstd_d, x_d, C, S, eps);
    close_to_ref(y, y_d, C * S, FWD_ATOL, FWD_RTOL, "rmsnorm y");
    close_to_ref(rstd, rstd_d, S, FWD_ATOL, FWD_RTOL, "rmsnorm rstd");

    fill(dx, C * S, GARBAGE);  // dx is overwritten
    fill(dw, C, 0.25f);        // dw accumulates
    rmsnorm_backward(dx, dw, r, x, w, rstd, C, S);
    sub_base(dw, C, 0.25f);
    NormCtx c = {x_d, w_d, r_d, C, S, eps, y_d};
    check_grad(dx, x_d, C * S, rmsnorm_loss, &c, "rmsnorm dx");
    check_grad(dw, w_d, C, rmsnorm_loss, &c, "rmsnorm dw");

    // The check must be able to see the original system's bug: dx = w*r*(dy - x*c)
    // with c = r^2/C * sum(dy*w*x) differs from the numeric gradient by far more
    // than the tolerance for these weights.
    double *g = dnew(C * S);
    float *bug = fnew(C * S), *gf = fnew(C * S);
    num_grad(g, x_d, C * S, rmsnorm_loss, &c);
    for (int t = 0; t < S; t++) {
        double s = 0, rs = rstd_d[t];
        for (int k = 0; k < C; k++) s += r_d[k * S + t] * w_d[k] * x_d[k * S + t];
        for (int k = 0; k < C; k++)
            bug[k * S + t] = (float)(w_d[k] * rs * (r_d[k * S + t] - x_d[k * S + t] * rs * rs / C * s));
    }
    for (int i = 0; i < C * S; i++) gf[i] = (float)g[i];
    CHECKF(test_rel_err(bug, gf, C * S) > 1e-2, "the buggy RMSNorm backward is within %.2g of the numeric one",
           test_rel_err(bug, gf, C * S));
    free(g), free(bug), free(gf);
    free(x), free(w), free(r), free(y), free(rstd), free(dx), free(dw);
    free(x_d), free(w_d), free(r_d), free(y_d), free(rstd_d);
}

// --- linear ---------------------------------------------------------------------------------------------

typedef struct { const double *W, *x, *r; int OC, IC, S; double *y; } LinCtx;
static double linear_loss(void *p) {
    LinCtx *c = p;
    ref_linear_forward(c->y, c->W, c->x, c->OC, c->IC, c->S);
    return dot_d(c->r, c->y, (size_t)c->OC * c->S);
}

TEST(grad_linear) {
    enum { OC = 5, IC = 7, S = 4 };
    Rng rng;
    rng_init(&rng, 303);
    float *W = fnew(OC * IC), *x = fnew(IC * S), *r = fnew(OC * S), *y = fnew(OC * S);
    float *dx = fnew(IC * S), *dW = fnew(OC * IC), *dx2 = fnew(IC * S);
    fill_normal(W, OC * IC, &rng, 1, 0);
    fill_normal(x, IC * S, &rng, 1, 0);
    fill_normal(r, OC * S, &rng, 1, 0);
    double *W_d = to_double(W, OC * IC), *x_d = to_double(x, IC * S), *r_d = to_double(r, OC * S);
    double *y_d = dnew(OC * S);

    linear_forward(y, W, x, OC, IC, S);
    ref_linear_forward(y_d, W_d, x_d, OC, IC, S);
    close_to_ref(y, y_d, OC * S, FWD_ATOL, FWD_RTOL, "linear y");

    fill(dx, IC * S, GARBAGE);
    fill(dW, OC * IC, 0.25f);
    linear_backward(dx, dW, r, W, x, OC, IC, S, 0);
    sub_base(dW, OC * IC, 0.25f);
    LinCtx c = {W_d, x_d, r_d, OC, IC, S, y_d};
    check_grad(dx, x_d, IC * S, linear_loss, &c, "linear dx");
    check_grad(dW, W_d, OC * IC, linear_loss, &c, "linear dW");

    // accumulate_dx = 1 adds onto dx; dW = NULL skips the weight gradient
    fill(dx2, IC * S, 0.5f);
    linear_backward(dx2, NULL, r, W, x, OC, IC, S, 1);
    sub_base(dx2, IC * S, 0.5f);
    test_allclose(dx2, dx, IC * S, 1e-6f, 1e-6f, "linear dx accumulated");
    free(W), free(x), free(r), free(y), free(dx), free(dW), free(dx2);
    free(W_d), free(x_d), free(r_d), free(y_d);
}

// --- RoPE -------------------------------------------------------------------------------------------------

typedef struct { const double *x, *r; int nh, HD, S; double theta; RopeLayout layout; double *y; } RopeCtx;
static double rope_loss(void *p) {
    RopeCtx *c = p;
    const size_t n = (size_t)c->nh * c->HD * c->S;
    memcpy(c->y, c->x, n * sizeof(double));
    ref_rope_forward(c->y, c->nh, c->HD, c->S, c->theta, c->layout);
    return dot_d(c->r, c->y, n);
}

static void check_rope(RopeLayout layout, float theta) {
    enum { NHR = 3, HD = 8, S = 6, N = NHR * HD * S };
    char label[64];
    const char *ln = layout == ROPE_HALF ? "half" : "interleaved";
    Rng rng;
    rng_init(&rng, 404 + (uint64_t)theta);
    RopeTable rt;
    if (!CHECK(rope_table_init(&rt, S, HD, theta) == 0)) return;
    float *x = fnew(N), *r = fnew(N), *y = fnew(N), *dx = fnew(N), *other = fnew(N);
    fill_normal(x, N, &rng, 1, 0);
    fill_normal(r, N, &rng, 1, 0);
    double *x_d = to_double(x, N), *r_d = to_double(r, N), *y_d = dnew(N);

    memcpy(y, x, sizeof(float) * N);
    rope_forward(y, &rt, NHR, layout);
    memcpy(y_d, x_d, sizeof(double) * N);
    ref_rope_forward(y_d, NHR, HD, S, theta, layout);
    snprintf(label, sizeof label, "rope %s theta %g y", ln, theta);
    close_to_ref(y, y_d, N, FWD_ATOL, FWD_RTOL, label);

    // the two layouts must really differ (else one of them is ignored)
    memcpy(other, x, sizeof(float) * N);
    rope_forward(other, &rt, NHR, layout == ROPE_HALF ? ROPE_INTERLEAVED : ROPE_HALF);
    CHECKF(test_rel_err(other, y, N) > 1e-2, "rope %s: both layouts give the same output", ln);

    memcpy(dx, r, sizeof(float) * N);
    rope_backward(dx, &rt, NHR, layout);
    RopeCtx c = {x_d, r_d, NHR, HD, S, theta, layout, y_d};
    snprintf(label, sizeof label, "rope %s theta %g dx", ln, theta);
    check_grad(dx, x_d, N, rope_loss, &c, label);
    rope_table_free(&rt);
    free(x), free(r), free(y), free(dx), free(other), free(x_d), free(r_d), free(y_d);
}

// theta 10 makes every pair rotate visibly over 6 positions; 1e4 is the llama value
TEST(grad_rope_interleaved) {
    check_rope(ROPE_INTERLEAVED, 10.0f);
    check_rope(ROPE_INTERLEAVED, 10000.0f);
}
TEST(grad_rope_half) {
    check_rope(ROPE_HALF, 10.0f);
    check_rope(ROPE_HALF, 10000.0f);
}

// --- QK headnorm ---------------------------------------------------------------------------------------------

typedef struct { const double *x, *w, *r; int nh, HD, S; double eps; double *y; } HeadNormCtx;
static double headnorm_loss(void *p) {
    HeadNormCtx *c = p;
    ref_headnorm_forward(c->y, c->x, c->w, c->nh, c->HD, c->S, c->eps);
    return dot_d(c->r, c->y, (size_t)c->nh * c->HD * c->S);
}

TEST(grad_headnorm) {
    enum { NHN = 3, HD = 6, S = 4, N = NHN * HD * S };
    const float eps = 1e-6f;  // the Qwen3 value
    Rng rng;
    rng_init(&rng, 505);
    float *x = fnew(N), *w = fnew(HD), *r = fnew(N), *y = fnew(N), *rstd = fnew(NHN * S);
    float *dx = fnew(N), *dw = fnew(HD);
    fill_normal(x, N, &rng, 1, 0);
    fill_normal(w, HD, &rng, 0.3f, 1);
    fill_normal(r, N, &rng, 1, 0);
    double *x_d = to_double(x, N), *w_d = to_double(w, HD), *r_d = to_double(r, N), *y_d = dnew(N);
    double *rstd_d = dnew(NHN * S);

    headnorm_forward(y, rstd, x, w, NHN, HD, S, eps);
    ref_headnorm_forward(y_d, x_d, w_d, NHN, HD, S, eps);
    for (int h = 0; h < NHN; h++) ref_rmsnorm_rstd(rstd_d + h * S, x_d + h * HD * S, HD, S, eps);
    close_to_ref(y, y_d, N, FWD_ATOL, FWD_RTOL, "headnorm y");
    close_to_ref(rstd, rstd_d, NHN * S, FWD_ATOL, FWD_RTOL, "headnorm rstd");

    fill(dx, N, GARBAGE);
    fill(dw, HD, 0.25f);  // accumulates, over heads too
    headnorm_backward(dx, dw, r, x, w, rstd, NHN, HD, S);
    sub_base(dw, HD, 0.25f);
    HeadNormCtx c = {x_d, w_d, r_d, NHN, HD, S, eps, y_d};
    check_grad(dx, x_d, N, headnorm_loss, &c, "headnorm dx");
    check_grad(dw, w_d, HD, headnorm_loss, &c, "headnorm dw");
    free(x), free(w), free(r), free(y), free(rstd), free(dx), free(dw);
    free(x_d), free(w_d), free(r_d), free(y_d), free(rstd_d);
}

// --- attention -------------------------------------------------------------------------------------------------

typedef struct { const double *q, *k, *v, *r; int NH, NKV, HD, S; double *out; } AttCtx;
static double attention_loss(void *p) {
    AttCtx *c = p;
    ref_attention_forward(c->out, c->q, c->k, c->v, c->NH, c->NKV, c->HD, c->S);
    return dot_d(c->r, c->out, (size_t)c->NH * c->HD * c->S);
}

static void check_attention(int NH, int NKV, int HD, int S, uint64_t seed) {
    const size_t NQ = (size_t)NH * HD * S, NK = (size_t)NKV * HD * S, NP = (size_t)NH * S * S;
    char label[64];
    Rng rng;
    rng_init(&rng, seed);
    float *q = fnew(NQ), *k = fnew(NK), *v = fnew(NK), *r = fnew(NQ), *out = fnew(NQ), *probs = fnew(NP);
    float *dq = fnew(NQ), *dk = fnew(NK), *dv = fnew(NK), *scratch = fnew((size_t)S * S);
    // scores q·k/sqrt(HD) ~ N(0,1): softmax neither uniform nor one-hot
    fill_normal(q, NQ, &rng, 1, 0);
    fill_normal(k, NK, &rng, 1, 0);
    fill_normal(v, NK, &rng, 1, 0);
    fill_normal(r, NQ, &rng, 1, 0);
    double *q_d = to_double(q, NQ), *k_d = to_double(k, NK), *v_d = to_double(v, NK), *r_d = to_double(r, NQ);
    double *out_d = dnew(NQ), *probs_d = dnew(NP);

    attention_forward(out, probs, q, k, v, NH, NKV, HD, S);
    ref_attention_forward(out_d, q_d, k_d, v_d, NH, NKV, HD, S);
    ref_attention_probs(probs_d, q_d, k_d, NH, NKV, HD, S);
    snprintf(label, sizeof label, "attention %d/%d out", NH, NKV);
    close_to_ref(out, out_d, NQ, FWD_ATOL, FWD_RTOL, label);
    snprintf(label, sizeof label, "attention %d/%d probs", NH, NKV);
    close_to_ref(probs, probs_d, NP, FWD_ATOL, FWD_RTOL, label);  // includes the zeros above the diagonal

    fill(dq, NQ, GARBAGE);
    fill(dk, NK, GARBAGE);
    fill(dv, NK, GARBAGE);
    fill(scratch, (size_t)S * S, GARBAGE);
    attention_backward(dq, dk, dv, r, probs, q, k, v, NH, NKV, HD, S, scratch);
    AttCtx c = {q_d, k_d, v_d, r_d, NH, NKV, HD, S, out_d};
    snprintf(label, sizeof label, "attention %d/%d dq", NH, NKV);
    check_grad(dq, q_d, NQ, attention_loss, &c, label);
    snprintf(label, sizeof label, "attention %d/%d dk", NH, NKV);
    check_grad(dk, k_d, NK, attention_loss, &c, label);
    snprintf(label, sizeof label, "attention %d/%d dv", NH, NKV);
    check_grad(dv, v_d, NK, attention_loss, &c, label);
    free(q), free(k), free(v), free(r), free(out), free(probs), free(dq), free(dk), free(dv), free(scratch);
    free(q_d), free(k_d), free(v_d), free(r_d), free(out_d), free(probs_d);
}

TEST(grad_attention_mha) { check_attention(4, 4, 4, 6, 601); }
TEST(grad_attention_gqa2) { check_attention(4, 2, 4, 6, 602); }
TEST(grad_attention_gqa4) {
    check_attention(8, 2, 8, 5, 603);
    check_attention(4, 1, 4, 6, 604);  // multi-query: every head shares one kv head
}

// --- SwiGLU ------------------------------------------------------------------------------------------------------

typedef struct { const double *h1, *h3, *r; size_t n; double *g; } SwigluCtx;
static double swiglu_loss(void *p) {
    SwigluCtx *c = p;
    ref_swiglu_forward(c->g, c->h1, c->h3, c->n);
    return dot_d(c->r, c->g, c->n);
}

TEST(grad_swiglu) {
    enum { N = 40 };
    Rng rng;
    rng_init(&rng, 707);
    float *h1 = fnew(N), *h3 = fnew(N), *r = fnew(N), *g = fnew(N), *dh1 = fnew(N), *dh3 = fnew(N);
    fill_normal(h1, N, &rng, 3, 0);  // both tails of the sigmoid
    fill_normal(h3, N, &rng, 1, 0);
    fill_normal(r, N, &rng, 1, 0);
    double *h1_d = to_double(h1, N), *h3_d = to_double(h3, N), *r_d = to_double(r, N), *g_d = dnew(N);

    swiglu_forward(g, h1, h3, N);
    ref_swiglu_forward(g_d, h1_d, h3_d, N);
    close_to_ref(g, g_d, N, FWD_ATOL, FWD_RTOL, "swiglu g");

    fill(dh1, N, GARBAGE);
    fill(dh3, N, GARBAGE);
    swiglu_backward(dh1, dh3, r, h1, h3, N);
    SwigluCtx c = {h1_d, h3_d, r_d, N, g_d};
    check_grad(dh1, h1_d, N, swiglu_loss, &c, "swiglu dh1");
    check_grad(dh3, h3_d, N, swiglu_loss, &c, "swiglu dh3");
    free(h1), free(h3), free(r), free(g), free(dh1), free(dh3), free(h1_d), free(h3_d), free(r_d), free(g_d);
}

// --- cross-entropy -------------------------------------------------------------------------------------------------

typedef struct { const double *logits; const int *target; int S, V; double scale; } CeCtx;
static double ce_loss(void *p) {
    CeCtx *c = p;
    return c->scale * ref_crossentropy(c->logits, c->target, c->S, c->V);
}

TEST(grad_crossentropy) {
    enum { S = 6, V = 11 };
    const int target[S] = {3, -1, 0, 10, -5, 7};  // two ignored positions
    const float scale = 0.7f;
    Rng rng;
    rng_init(&rng, 808);
    float *logits = fnew(S * V), *dl = fnew(S * V), *alias = fnew(S * V);
    fill_normal(logits, S * V, &rng, 2, 0);
    double *logits_d = to_double(logits, S * V);

    const double want = ref_crossentropy(logits_d, target, S, V);
    fill(dl, S * V, GARBAGE);
    const float loss = crossentropy_forward_backward(dl, logits, target, S, V, scale);
    CHECKF(fabs(loss - want) <= FWD_ATOL + FWD_RTOL * fabs(want), "CE loss %.8g, reference %.8g", loss, want);
    const float loss_nograd = crossentropy_forward_backward(NULL, logits, target, S, V, scale);
    CHECKF(loss_nograd == loss, "CE loss without gradient %.8g vs %.8g with", loss_nograd, loss);
    // the returned loss is the unscaled mean; the gradient carries the scale
    CeCtx c = {logits_d, target, S, V, scale};
    check_grad(dl, logits_d, S * V, ce_loss, &c, "crossentropy dlogits");
    for (int j = 0; j < V; j++) CHECKF(dl[1 * V + j] == 0 && dl[4 * V + j] == 0, "ignored row has gradient at %d", j);

    // dlogits may alias logits
    memcpy(alias, logits, sizeof(float) * S * V);
    const float loss_alias = crossentropy_forward_backward(alias, alias, target, S, V, scale);
    CHECKF(loss_alias == loss, "CE loss in place %.8g vs %.8g", loss_alias, loss);
    test_allclose(alias, dl, S * V, 1e-7f, 1e-6f, "crossentropy dlogits in place");
    free(logits), free(dl), free(alias), free(logits_d);
}

TEST(grad_crossentropy_edge_cases) {
    enum { S = 4, V = 9 };
    Rng rng;
    rng_init(&rng, 809);
    float *logits = fnew(S * V), *dl = fnew(S * V);
    // every target ignored: loss 0, gradient 0
    const int none[S] = {-1, -1, -1, -1};
    fill_normal(logits, S * V, &rng, 1, 0);
    fill(dl, S * V, GARBAGE);
    float loss = crossentropy_forward_backward(dl, logits, none, S, V, 1.0f);
    CHECKF(loss == 0.0f, "all-ignored CE loss %g", loss);
    int nonzero = 0;
    for (int i = 0; i < S * V; i++) nonzero += dl[i] != 0.0f;
    CHECKF(nonzero == 0, "all-ignored CE: %d nonzero gradient entries", nonzero);

    // large logits (fp32 spacing 6e-5 at 1000): no overflow, same loss and gradient
    const int target[S] = {0, 8, 4, 2};
    fill_normal(logits, S * V, &rng, 3, 1000);
    double *logits_d = to_double(logits, S * V);
    const double want = ref_crossentropy(logits_d, target, S, V);
    loss = crossentropy_forward_backward(dl, logits, target, S, V, 1.0f);
    CHECKF(fabs(loss - want) <= FWD_ATOL + FWD_RTOL * fabs(want), "CE loss at logits ~1000: %.8g, reference %.8g",
           loss, want);
    CeCtx c = {logits_d, target, S, V, 1.0};
    check_grad(dl, logits_d, S * V, ce_loss, &c, "crossentropy dlogits at ~1000");
    free(logits), free(dl), free(logits_d);
}

// --- whole model ---------------------------------------------------------------------------------------------------

typedef struct { const Config *cfg; const double *params; const int *tokens, *targets; int S; } ModelCtx;
static double model_loss(void *p) {
    ModelCtx *c = p;
    return ref_model_loss(c->cfg, c->params, c->tokens, c->targets, c->S, NULL);
}

static const float MODEL_FWD_ATOL = 1e-5f, MODEL_FWD_RTOL = 1e-5f;

// Tiny model through cpu_model_forward/backward vs the double reference model:
// loss, logits, and the gradient of a stratified sample of every tensor.
static void check_model(RopeLayout layout, int qk_norm, int tied, int samples) {
    enum { S = 8 };
    Config cfg = {.dim = 16, .hidden = 24, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .head_dim = 8,
                  .vocab = 32, .seq_len = S, .norm_eps = 1e-5f, .rope_theta = 10000.0f, .rope_layout = layout,
                  .qk_norm = qk_norm, .tied = tied, .res_scale = 0.5f};
    char name[64], label[96];
    snprintf(name, sizeof name, "%s%s%s", layout == ROPE_HALF ? "half" : "interleaved", qk_norm ? "+qknorm" : "",
             tied ? "+tied" : "+untied");
    snprintf(cfg.name, sizeof cfg.name, "grad-%.26s", name);
    Params p;
    REQUIRE(params_init(&p, &cfg) == 0);
    Rng rng;
    rng_init(&rng, 900 + 4 * layout + 2 * qk_norm + tied);
    // O(1) activations everywhere: matrices ~ N(0, 1/fan_in), embedding 0.5 (tied
    // logits then ~2), norm weights away from 1
    for (int i = 0; i < p.n_tensors; i++) {
        const TensorDesc *d = &p.t[i];
        float *w = p.data + d->offset;
        if (d->is_norm) fill_normal(w, d->numel, &rng, 0.3f, 1);
        else if (!strcmp(d->name, "embed")) fill_normal(w, d->numel, &rng, 0.5f, 0);
        else fill_normal(w, d->numel, &rng, 1.0f / sqrtf((float)d->cols), 0);
    }
    int tokens[S], targets[S];
    for (int t = 0; t < S; t++) {
        tokens[t] = (int)rng_below(&rng, cfg.vocab);
        targets[t] = (int)rng_below(&rng, cfg.vocab);
    }
    targets[3] = -1;  // one ignored position
    CpuModel m;
    if (!CHECK(cpu_model_init(&m, &cfg, S) == 0)) {
        params_free(&p);
        return;
    }
    double *pd = to_double(p.data, p.n), *logits_d = dnew((size_t)S * cfg.vocab);
    float *grads = fnew(p.n), *grads2 = fnew(p.n);

    const float loss = cpu_model_forward(&m, &p, tokens, targets);
    const double want = ref_model_loss(&cfg, pd, tokens, targets, S, logits_d);
    CHECKF(fabs(loss - want) <= MODEL_FWD_ATOL + MODEL_FWD_RTOL * fabs(want), "model %s loss %.8g, reference %.8g",
           name, loss, want);
    snprintf(label, sizeof label, "model %s logits", name);
    close_to_ref(m.logits, logits_d, (size_t)S * cfg.vocab, MODEL_FWD_ATOL, MODEL_FWD_RTOL, label);

    cpu_model_backward(&m, &p, grads, 1.0f);
    size_t nonfinite = 0;
    for (size_t i = 0; i < p.n; i++) nonfinite += !isfinite(grads[i]);
    CHECKF(nonfinite == 0, "model %s: %zu non-finite gradients", name, nonfinite);
    // backward accumulates and applies loss_scale: from zero, scale 2 then scale 1 gives 3 g
    cpu_model_backward(&m, &p, grads2, 2.0f);
    cpu_model_backward(&m, &p, grads2, 1.0f);
    for (size_t i = 0; i < p.n; i++) grads2[i] /= 3.0f;
    snprintf(label, sizeof label, "model %s grads(2)+grads(1) / 3", name);
    test_allclose(grads2, grads, p.n, 1e-7f, 1e-5f, label);

    ModelCtx ctx = {&cfg, pd, tokens, targets, S};
    for (int i = 0; i < p.n_tensors; i++) {
        const TensorDesc *d = &p.t[i];
        const int n = (size_t)samples < d->numel ? samples : (int)d->numel;
        float *ga = fnew(n);
        double *gn = dnew(n);
        for (int j = 0; j < n; j++) {
            // stratified over the stacked tensor (so every layer is sampled); half the
            // embedding samples from rows that occur, the others have zero gradient (untied)
            size_t idx = n == (int)d->numel ? (size_t)j : (size_t)((j + rng_f32(&rng)) * d->numel / n);
            if (!strcmp(d->name, "embed") && j % 2 == 0)
                idx = (size_t)tokens[rng_below(&rng, S)] * cfg.dim + rng_below(&rng, cfg.dim);
            idx += d->offset;
            ga[j] = grads[idx];
            num_grad(gn + j, pd + idx, 1, model_loss, &ctx);
        }
        snprintf(label, sizeof label, "model %s d%s", name, d->name);
        close_to_ref(ga, gn, n, GRAD_ATOL, GRAD_RTOL, label);
        free(ga), free(gn);
    }
    cpu_model_free(&m);
    params_free(&p);
    free(pd), free(logits_d), free(grads), free(grads2);
}

TEST(grad_model_half_qknorm_untied) { check_model(ROPE_HALF, 1, 0, 48); }
TEST(grad_model_half_qknorm_tied) { check_model(ROPE_HALF, 1, 1, 24); }
TEST(grad_model_half_untied) { check_model(ROPE_HALF, 0, 0, 24); }
TEST(grad_model_half_tied) { check_model(ROPE_HALF, 0, 1, 24); }
TEST(grad_model_interleaved_qknorm_untied) { check_model(ROPE_INTERLEAVED, 1, 0, 24); }
TEST(grad_model_interleaved_qknorm_tied) { check_model(ROPE_INTERLEAVED, 1, 1, 24); }
TEST(grad_model_interleaved_untied) { check_model(ROPE_INTERLEAVED, 0, 0, 24); }
TEST(grad_model_interleaved_tied) { check_model(ROPE_INTERLEAVED, 0, 1, 24); }
