// kernels_static: generators of the static pipelines' kernels (kernels.h), whose
// weights are baked into the program as BLOBFILE constants and 1x1 convs, as
// in the seed's train_large (ane-spec §2.1, §3.3), with the same math as the
// dynamic kernels: RoPE, GQA, QK-norm and the residual scale (applied on the
// CPU, where the residual adds are done in fp32).
//
// Every input and output region is an activation stacked on the channel axis
// (width S). Weights: conv(x, W) with W [OC, IC, 1, 1] computes W·x, so a
// forward projection bakes M as stored and a backward one bakes Mᵀ.
#include <math.h>

#include "core/err.h"
#include "mil/kernels_gen.h"

// fwdAttn: xn = RMSNorm(x), q/k/v projections, QK-norm, RoPE, causal attention, o = Wo·attn.
static MilVal gen_attn_fwd(Gen *g) {
    const MilBaked *w = g->w;
    const int qkn = g->cfg->qk_norm;
    kg_in_channels(g, "x", g->D);
    kg_out_region(g, "o", g->D);
    kg_attention_out_regions(g);
    kg_declare_input(g);
    MilEmit *e = &g->e;
    MilVal x = kg_take(g, "x", "x_in");
    MilVal xn = kg_rmsnorm(g, x, kg_vector(g, "rms_att", w ? w->rms_att : NULL, g->D), "n1", "xn");
    MilVal q = mil_emit_conv(e, xn, kg_weight(g, "wq", w ? w->wq : NULL, g->QD, g->D, 0), "q_pre");
    MilVal k = mil_emit_conv(e, xn, kg_weight(g, "wk", w ? w->wk : NULL, g->KVD, g->D, 0), "k_pre");
    MilVal v = mil_emit_conv(e, xn, kg_weight(g, "wv", w ? w->wv : NULL, g->KVD, g->D, 0), "v_out");
    MilVal qnw = qkn ? kg_vector(g, "q_norm", w ? w->q_norm : NULL, g->HD) : MIL_NONE;
    MilVal knw = qkn ? kg_vector(g, "k_norm", w ? w->k_norm : NULL, g->HD) : MIL_NONE;
    KgAttn at = kg_attention(g, q, k, v, qnw, knw);
    MilVal a = kg_from_heads(g, at.a, "at", "attn");
    MilVal o = mil_emit_conv(e, a, kg_weight(g, "wo", w ? w->wo : NULL, g->D, g->QD, 0), "o");
    MilVal outs[8] = {o};
    const int n = kg_attention_outs(g, &at, a, v, xn, q, k, outs, 1);
    return mil_emit_concat(e, n, outs, 1, "out");
}

// fwdFFN: x2n = RMSNorm(x2), h1 = W1·x2n, h3 = W3·x2n, g = silu(h1)·h3, f = W2·g.
static MilVal gen_ffn_fwd(Gen *g) {
    const MilBaked *w = g->w;
    kg_in_channels(g, "x2", g->D);
    kg_out_region(g, "f", g->D);
    kg_out_region(g, "h1", g->H);
    kg_out_region(g, "h3", g->H);
    kg_out_region(g, "g", g->H);
    kg_out_region(g, "x2n", g->D);
    kg_declare_input(g);
    MilEmit *e = &g->e;
    MilVal x2 = kg_take(g, "x2", "x2");
    MilVal xn = kg_rmsnorm(g, x2, kg_vector(g, "rms_ffn", w ? w->rms_ffn : NULL, g->D), "n2", "x2n");
    MilVal h1 = mil_emit_conv(e, xn, kg_weight(g, "w1", w ? w->w1 : NULL, g->H, g->D, 0), "h1");
    MilVal h3 = mil_emit_conv(e, xn, kg_weight(g, "w3", w ? w->w3 : NULL, g->H, g->D, 0), "h3");
    MilVal si = mil_emit_mul(e, h1, mil_emit_sigmoid(e, h1, "sig"), "silu");
    MilVal gt = mil_emit_mul(e, si, h3, "gate");
    MilVal f = mil_emit_conv(e, gt, kg_weight(g, "w2", w ? w->w2 : NULL, g->D, g->H, 0), "f");
    return mil_emit_concat(e, 5, (const MilVal[]){f, h1, h3, gt, xn}, 1, "out");
}

// ffnBwd: dg = W2ᵀ·dffn, the SwiGLU backward, dx = W1ᵀ·dh1 + W3ᵀ·dh3.
static MilVal gen_ffn_bwd(Gen *g) {
    const MilBaked *w = g->w;
    kg_in_channels(g, "dffn", g->D);
    kg_in_channels(g, "h1", g->H);
    kg_in_channels(g, "h3", g->H);
    kg_out_region(g, "dx", g->D);
    kg_out_region(g, "dh1", g->H);
    kg_out_region(g, "dh3", g->H);
    kg_declare_input(g);
    MilEmit *e = &g->e;
    MilVal dffn = kg_take(g, "dffn", "dffn"), h1 = kg_take(g, "h1", "h1"), h3 = kg_take(g, "h3", "h3");
    MilVal dg = mil_emit_conv(e, dffn, kg_weight(g, "w2t", w ? w->w2 : NULL, g->D, g->H, 1), "dg");
    // silu'(h) = σ(h)·(1 + h·(1 − σ(h)))
    MilVal sg = mil_emit_sigmoid(e, h1, "sig");
    MilVal om = mil_emit_add_scalar(e, mil_emit_mul_scalar(e, sg, -1.0f, "sig_neg"), 1.0f, "sig_1m");
    MilVal ds = mil_emit_mul(e, sg, mil_emit_add_scalar(e, mil_emit_mul(e, h1, om, "h_1m"), 1.0f, "h_1p"), "dsilu");
    MilVal dgh = mil_emit_mul(e, dg, h3, "dg_h3");
    MilVal dh1 = mil_emit_mul(e, dgh, ds, "dh1");
    MilVal dh3 = mil_emit_mul(e, dg, mil_emit_mul(e, h1, sg, "silu"), "dh3");
    MilVal x1 = mil_emit_conv(e, dh1, kg_weight(g, "w1t", w ? w->w1 : NULL, g->H, g->D, 1), "dx1");
    MilVal x3 = mil_emit_conv(e, dh3, kg_weight(g, "w3t", w ? w->w3 : NULL, g->H, g->D, 1), "dx3");
    MilVal dx = mil_emit_add(e, x1, x3, "dx");
    return mil_emit_concat(e, 3, (const MilVal[]){dx, dh1, dh3}, 1, "out");
}

// woSdpaBwd1: da = Woᵀ·dy, then sdpaBwd1 (q, k, v tiled to NH heads by the caller).
static MilVal gen_wo_sdpa_bwd1(Gen *g) {
    kg_in_channels(g, "q", g->QD);
    kg_in_channels(g, "k", g->QD);
    kg_in_channels(g, "v", g->QD);
    kg_in_channels(g, "dy", g->D);
    kg_sdpa_bwd1_outputs(g);
    kg_declare_input(g);
    MilVal wot = kg_weight(g, "wot", g->w ? g->w->wo : NULL, g->D, g->QD, 1);
    return kg_sdpa_bwd1(g, mil_emit_conv(&g->e, kg_take(g, "dy", "dy"), wot, "da"));
}

// qkvBwd: dx = Wqᵀ·dq + Wkᵀ·dk + Wvᵀ·dv.
static MilVal gen_qkv_bwd(Gen *g) {
    const MilBaked *w = g->w;
    kg_in_channels(g, "dq", g->QD);
    kg_in_channels(g, "dk", g->KVD);
    kg_in_channels(g, "dv", g->KVD);
    kg_out_region(g, "dx", g->D);
    kg_declare_input(g);
    MilEmit *e = &g->e;
    MilVal xq = mil_emit_conv(e, kg_take(g, "dq", "dq"), kg_weight(g, "wqt", w ? w->wq : NULL, g->QD, g->D, 1), "xq");
    MilVal xk = mil_emit_conv(e, kg_take(g, "dk", "dk"), kg_weight(g, "wkt", w ? w->wk : NULL, g->KVD, g->D, 1), "xk");
    MilVal xv = mil_emit_conv(e, kg_take(g, "dv", "dv"), kg_weight(g, "wvt", w ? w->wv : NULL, g->KVD, g->D, 1), "xv");
    return mil_emit_add(e, mil_emit_add(e, xq, xk, "xqk"), xv, "out");
}

// rmsnormBwd: dx of y = RMSNorm(x; w), r = rms(x)⁻¹, x̂ = x·r:
//   dx = r·(w∘dy − x̂·mean(w∘dy∘x̂))   (= r·w∘dy − x·r³·mean(w∘dy∘x))
// in this form: r³ alone overflows fp16 once rms(x) < 0.025 (embedding-sized
// activations), while x̂ is O(1). The mean is summed from terms already
// divided by D, so loss-scaled gradients cannot overflow the fp16 sum.
static MilVal gen_rmsnorm_bwd(Gen *g) {
    kg_in_channels(g, "dy", g->D);
    kg_in_channels(g, "x", g->D);
    kg_out_region(g, "dx", g->D);
    kg_declare_input(g);
    MilEmit *e = &g->e;
    MilVal dy = kg_take(g, "dy", "dy"), x = kg_take(g, "x", "x_in");
    MilVal rr = kg_rms_inv(g, x, "n");
    MilVal xh = mil_emit_mul(e, x, rr, "xh");
    MilVal wdy = mil_emit_mul(e, dy, kg_vector(g, "rms", g->w ? g->w->rms : NULL, g->D), "wdy");
    MilVal t = mil_emit_mul_scalar(e, mil_emit_mul(e, wdy, xh, "wdyx"), 1.0f / (float)g->D, "wdyx_s");
    MilVal m = mil_emit_reduce_sum(e, t, 1, (const int[]){1}, 1, "mean");  // [1,1,1,S]
    MilVal d = mil_emit_sub(e, wdy, mil_emit_mul(e, xh, m, "xm"), "wdy_c");
    return mil_emit_mul(e, d, rr, "out");
}

// finalNorm: xf = RMSNorm(x; rms_final).
static MilVal gen_final_norm(Gen *g) {
    kg_in_channels(g, "x", g->D);
    kg_out_region(g, "xf", g->D);
    kg_declare_input(g);
    MilVal w = kg_vector(g, "rms", g->w ? g->w->rms : NULL, g->D);
    return kg_rmsnorm(g, kg_take(g, "x", "x_in"), w, "nf", "out");
}

static int chunk_rows(const Gen *g) {
    if (g->w && g->w->rows > 0) return g->w->rows;
    int n, rows;
    mil_vocab_chunks(g->cfg->vocab, &n, &rows);
    return rows;
}

// classifier: logits of one chunk of rows = E[row0 : row0 + rows]·xf.
static MilVal gen_classifier(Gen *g) {
    const int rows = chunk_rows(g);
    kg_in_channels(g, "xf", g->D);
    kg_out_region(g, "logits", rows);
    kg_declare_input(g);
    const float *E = g->w && g->w->cls ? g->w->cls + (size_t)g->w->row0 * g->D : NULL;
    return mil_emit_conv(&g->e, kg_take(g, "xf", "xf"), kg_weight(g, "cls", E, rows, g->D, 0), "out");
}

// vocabSoftmax: the softmax over a chunk's logits, with the chunk's max and
// Σ exp(logit − max), which combine the chunks into the softmax over the
// whole vocabulary (p = probs·sum·exp(max − logsumexp)).
static MilVal gen_vocab_softmax(Gen *g) {
    const int rows = chunk_rows(g);
    kg_in_channels(g, "logits", rows);
    kg_out_region(g, "probs", rows);
    kg_out_region(g, "max", 1);
    kg_out_region(g, "sum", 1);
    kg_declare_input(g);
    MilEmit *e = &g->e;
    MilVal l = kg_take(g, "logits", "l");
    MilVal p = mil_emit_softmax(e, l, 1, "probs");
    MilVal m = mil_emit_reduce_max(e, l, 1, (const int[]){1}, 1, "max");
    MilVal ex = mil_emit_exp(e, mil_emit_sub(e, l, m, "l_m"), "ex");
    MilVal s = mil_emit_reduce_sum(e, ex, 1, (const int[]){1}, 1, "sum");
    return mil_emit_concat(e, 3, (const MilVal[]){p, m, s}, 1, "out");
}

MilVal mil_kernel_gen_static(Gen *g, MilKernelKind kind) {
    switch (kind) {
    case MIL_K_ATTN_FWD: return gen_attn_fwd(g);
    case MIL_K_FFN_FWD: return gen_ffn_fwd(g);
    case MIL_K_FFN_BWD: return gen_ffn_bwd(g);
    case MIL_K_WO_SDPA_BWD1: return gen_wo_sdpa_bwd1(g);
    case MIL_K_QKV_BWD: return gen_qkv_bwd(g);
    case MIL_K_RMSNORM_BWD: return gen_rmsnorm_bwd(g);
    case MIL_K_FINAL_NORM: return gen_final_norm(g);
    case MIL_K_CLASSIFIER: return gen_classifier(g);
    case MIL_K_VOCAB_SOFTMAX: return gen_vocab_softmax(g);
    default: err_set("mil kernel %d is not a static kernel", (int)kind); g->e.failed = 1; return MIL_NONE;
    }
}

void mil_vocab_chunks(int vocab, int *n, int *rows) {
    *n = (vocab + MIL_MAX_OUT_CHANNELS - 1) / MIL_MAX_OUT_CHANNELS;
    if (*n < 1) *n = 1;
    *rows = (vocab + *n - 1) / *n;
}
