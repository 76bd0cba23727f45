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
#include "model/lora.h"

// --- the inputs that stay inputs: adapters and trained norms (MilBaked) ----------------

static const char *const LORA_REGION[2][LORA_N_TARGETS] = {
    {"A.q", "A.k", "A.v", "A.o", "A.w1", "A.w2", "A.w3"},
    {"B.q", "B.k", "B.v", "B.o", "B.w1", "B.w2", "B.w3"},
};

const char *mil_lora_region(int t, int b) {
    return t >= 0 && t < LORA_N_TARGETS && (b == 0 || b == 1) ? LORA_REGION[b][t] : NULL;
}

static int adapted(const Gen *g, LoraTarget t) {
    return g->w && g->w->lora_rank > 0 && (g->w->lora_targets >> t & 1u);
}

static int norms_in(const Gen *g) { return g->w && g->w->norms_in; }

// The spatial cursor past the channel-stacked activations (declared first).
static void past_activations(Gen *g) {
    if (g->w_cursor < g->S) g->w_cursor = g->S;
}

// Input regions of the adapters of the kernel's targets (a mask), side by
// side after the activations, each from channel 0.
static void lora_inputs(Gen *g, unsigned mask) {
    for (int t = 0; t < LORA_N_TARGETS; t++) {
        if (!(mask >> t & 1u) || !adapted(g, (LoraTarget)t)) continue;
        int in, out;
        lora_target_dims(g->cfg, (LoraTarget)t, &in, &out);
        past_activations(g);
        const int r = g->w->lora_rank, rp = kg_inner(g, r);  // r is an inner dimension
        kg_in_spatial_pw(g, LORA_REGION[0][t], MIL_REG_WT, in, r, rp);
        kg_in_spatial_pw(g, LORA_REGION[1][t], MIL_REG_W, out, r, rp);
    }
}

// A norm weight [D]: input region `name` with norms_in, else baked from v.
static void norm_input(Gen *g, const char *name) {
    if (!norms_in(g)) return;
    past_activations(g);
    kg_in_spatial(g, name, MIL_REG_VEC, g->D, 1);
}
static MilVal norm_weight(Gen *g, const char *name, const float *v) {
    return norms_in(g) ? kg_take(g, name, name) : kg_vector(g, name, v, g->D);
}

// s·B·(A·x) [1, out, 1, S] of x [1, in, 1, S], or with transposed = 1
// s·Aᵀ·(Bᵀ·x) [1, in, 1, S] of x [1, out, 1, S]. Computed on rows
// (x as [S, C]) so the staged matrices are the second operands, as in the
// dynamic kernels' matmul: (A·x)ᵀ = xᵀ·Aᵀ, (B·u)ᵀ = uᵀ·Bᵀ.
static MilVal lowrank(Gen *g, MilVal x, LoraTarget t, int transposed, const char *p) {
    char n[8][MIL_NAME_MAX];
    MilEmit *e = &g->e;
    int in, out;
    lora_target_dims(g->cfg, t, &in, &out);
    // the regions are read padded: channels to kg_inner(in | out), columns to kg_inner(r), zeros beyond
    const MilRegion *ra = mil_kernel_input(g->k, LORA_REGION[0][t]), *rb = mil_kernel_input(g->k, LORA_REGION[1][t]);
    MilVal at = mil_emit_reshape(e, kg_take(g, LORA_REGION[0][t], kg_nm(n[0], p, "a")), 4,
                                 (const int[]){1, 1, ra->pc, ra->pw}, kg_nm(n[1], p, "ar"));
    MilVal b = mil_emit_reshape(e, kg_take(g, LORA_REGION[1][t], kg_nm(n[2], p, "b")), 4,
                                (const int[]){1, 1, rb->pc, rb->pw}, kg_nm(n[3], p, "br"));
    MilVal xr = kg_pad_last(g, kg_act_rows(g, x, p), transposed ? rb->pc : ra->pc, kg_nm(n[6], p, "x"));
    MilVal u = mil_emit_matmul(e, xr, transposed ? b : at, 0, 0, kg_nm(n[4], p, "u"));  // [1,1,S,rp]
    MilVal v = mil_emit_matmul(e, u, transposed ? at : b, 0, 1, kg_nm(n[5], p, "v"));   // [1,1,S,out|in (padded)]
    const int C = transposed ? in : out;
    if (mil_emit_dim(e, v, 3) != C)
        v = mil_emit_slice(e, v, (const int[]){0, 0, 0, 0}, (const int[]){1, 1, g->S, C}, kg_nm(n[7], p, "vs"));
    MilVal y = kg_flat(g, kg_rows_to_cols(g, v, p), C, kg_nm(n[0], p, "y"));
    return mil_emit_mul_scalar(e, y, g->w->lora_scale, kg_nm(n[1], p, "s"));
}

// W·x (conv with the baked w), plus the adapters' term when t is adapted;
// transposed: w is Wᵀ and the term is the backward's.
static MilVal project(Gen *g, MilVal x, MilVal w, LoraTarget t, int transposed, const char *name) {
    if (!adapted(g, t)) return mil_emit_conv(&g->e, x, w, name);
    char n1[MIL_NAME_MAX], n2[MIL_NAME_MAX];
    MilVal y = mil_emit_conv(&g->e, x, w, kg_nm(n1, name, "w"));
    return mil_emit_add(&g->e, y, lowrank(g, x, t, transposed, kg_nm(n2, name, "l")), name);
}

#define T(x) (1u << (x))

// fwdAttn: xn = RMSNorm(x), q/k/v projections, QK-norm, RoPE, causal attention, o = Wo·attn.
static MilVal gen_attn_fwd(Gen *g) {
    const MilBaked *w = g->w;
    const int qkn = g->cfg->qk_norm;
    kg_in_channels(g, "x", g->D);
    lora_inputs(g, T(LORA_Q) | T(LORA_K) | T(LORA_V) | T(LORA_O));
    norm_input(g, "rms_att");
    kg_out_region(g, "o", g->D);
    kg_attention_out_regions(g);
    kg_declare_input(g);
    MilVal x = kg_take(g, "x", "x_in");
    MilVal xn = kg_rmsnorm(g, x, norm_weight(g, "rms_att", w ? w->rms_att : NULL), "n1", "xn");
    MilVal q = project(g, xn, kg_weight_perm(g, "wq", w ? w->wq : NULL, g->QD, g->D, 1, 0), LORA_Q, 0, "q_pre");
    MilVal k = project(g, xn, kg_weight(g, "wk", w ? w->wk : NULL, g->KVD, g->D, 0), LORA_K, 0, "k_pre");
    MilVal v = project(g, xn, kg_weight(g, "wv", w ? w->wv : NULL, g->KVD, g->D, 0), LORA_V, 0, "v_out");
    MilVal qnw = qkn ? kg_vector(g, "q_norm", w ? w->q_norm : NULL, g->HD) : MIL_NONE;
    MilVal knw = qkn ? kg_vector(g, "k_norm", w ? w->k_norm : NULL, g->HD) : MIL_NONE;
    KgAttn at = kg_attention(g, q, k, v, qnw, knw);
    MilVal a = kg_from_heads(g, at.a, "at", "attn");
    MilVal o = project(g, a, kg_weight_perm(g, "wo", w ? w->wo : NULL, g->D, g->QD, 0, 1), LORA_O, 0, "o");
    MilVal outs[8] = {o};
    const int n = kg_attention_outs(g, &at, a, v, xn, q, k, outs, 1);
    return mil_emit_concat(&g->e, n, outs, 1, "out");
}

// fwdFFN: x2n = RMSNorm(x2), h1 = W1·x2n, h3 = W3·x2n, g = silu(h1)·h3, f = W2·g.
static MilVal gen_ffn_fwd(Gen *g) {
    const MilBaked *w = g->w;
    kg_in_channels(g, "x2", g->D);
    lora_inputs(g, T(LORA_W1) | T(LORA_W2) | T(LORA_W3));
    norm_input(g, "rms_ffn");
    kg_out_region(g, "f", g->D);
    kg_out_region(g, "h1", g->H);
    kg_out_region(g, "h3", g->H);
    kg_out_region(g, "g", g->H);
    kg_out_region(g, "x2n", g->D);
    kg_declare_input(g);
    MilEmit *e = &g->e;
    MilVal x2 = kg_take(g, "x2", "x2");
    MilVal xn = kg_rmsnorm(g, x2, norm_weight(g, "rms_ffn", w ? w->rms_ffn : NULL), "n2", "x2n");
    MilVal h1 = project(g, xn, kg_weight(g, "w1", w ? w->w1 : NULL, g->H, g->D, 0), LORA_W1, 0, "h1");
    MilVal h3 = project(g, xn, kg_weight(g, "w3", w ? w->w3 : NULL, g->H, g->D, 0), LORA_W3, 0, "h3");
    MilVal si = mil_emit_mul(e, h1, mil_emit_sigmoid(e, h1, "sig"), "silu");
    MilVal gt = mil_emit_mul(e, si, h3, "gate");
    MilVal f = project(g, gt, kg_weight(g, "w2", w ? w->w2 : NULL, g->D, g->H, 0), LORA_W2, 0, "f");
    return mil_emit_concat(e, 5, (const MilVal[]){f, h1, h3, gt, xn}, 1, "out");
}

// ffnBwd: dg = W2ᵀ·dffn, the SwiGLU backward, dx = W1ᵀ·dh1 + W3ᵀ·dh3.
static MilVal gen_ffn_bwd(Gen *g) {
    const MilBaked *w = g->w;
    kg_in_channels(g, "dffn", g->D);
    kg_in_channels(g, "h1", g->H);
    kg_in_channels(g, "h3", g->H);
    lora_inputs(g, T(LORA_W1) | T(LORA_W2) | T(LORA_W3));
    kg_out_region(g, "dx", g->D);
    kg_out_region(g, "dh1", g->H);
    kg_out_region(g, "dh3", g->H);
    kg_declare_input(g);
    MilEmit *e = &g->e;
    MilVal dffn = kg_take(g, "dffn", "dffn"), h1 = kg_take(g, "h1", "h1"), h3 = kg_take(g, "h3", "h3");
    MilVal dg = project(g, dffn, kg_weight(g, "w2t", w ? w->w2 : NULL, g->D, g->H, 1), LORA_W2, 1, "dg");
    // silu'(h) = σ(h)·(1 + h·(1 − σ(h)))
    MilVal sg = mil_emit_sigmoid(e, h1, "sig");
    MilVal om = mil_emit_add_scalar(e, mil_emit_mul_scalar(e, sg, -1.0f, "sig_neg"), 1.0f, "sig_1m");
    MilVal ds = mil_emit_mul(e, sg, mil_emit_add_scalar(e, mil_emit_mul(e, h1, om, "h_1m"), 1.0f, "h_1p"), "dsilu");
    MilVal dgh = mil_emit_mul(e, dg, h3, "dg_h3");
    MilVal dh1 = mil_emit_mul(e, dgh, ds, "dh1");
    MilVal dh3 = mil_emit_mul(e, dg, mil_emit_mul(e, h1, sg, "silu"), "dh3");
    MilVal x1 = project(g, dh1, kg_weight(g, "w1t", w ? w->w1 : NULL, g->H, g->D, 1), LORA_W1, 1, "dx1");
    MilVal x3 = project(g, dh3, kg_weight(g, "w3t", w ? w->w3 : NULL, g->H, g->D, 1), LORA_W3, 1, "dx3");
    MilVal dx = mil_emit_add(e, x1, x3, "dx");
    return mil_emit_concat(e, 3, (const MilVal[]){dx, dh1, dh3}, 1, "out");
}

// woSdpaBwd1: da = Woᵀ·dy, then sdpaBwd1 (q, k, v tiled to NH heads by the caller).
static MilVal gen_wo_sdpa_bwd1(Gen *g) {
    kg_in_channels(g, "q", g->QD);
    kg_in_channels(g, "k", g->QD);
    kg_in_channels(g, "v", g->QD);
    kg_in_channels(g, "dy", g->D);
    lora_inputs(g, T(LORA_O));
    kg_sdpa_bwd1_outputs(g);
    kg_declare_input(g);
    MilVal wot = kg_weight(g, "wot", g->w ? g->w->wo : NULL, g->D, g->QD, 1);
    return kg_sdpa_bwd1(g, project(g, kg_take(g, "dy", "dy"), wot, LORA_O, 1, "da"));
}

// qkvBwd: dx = Wqᵀ·dq + Wkᵀ·dk + Wvᵀ·dv.
static MilVal gen_qkv_bwd(Gen *g) {
    const MilBaked *w = g->w;
    kg_in_channels(g, "dq", g->QD);
    kg_in_channels(g, "dk", g->KVD);
    kg_in_channels(g, "dv", g->KVD);
    lora_inputs(g, T(LORA_Q) | T(LORA_K) | T(LORA_V));
    kg_out_region(g, "dx", g->D);
    kg_declare_input(g);
    MilEmit *e = &g->e;
    MilVal xq = project(g, kg_take(g, "dq", "dq"), kg_weight(g, "wqt", w ? w->wq : NULL, g->QD, g->D, 1), LORA_Q, 1, "xq");
    MilVal xk = project(g, kg_take(g, "dk", "dk"), kg_weight(g, "wkt", w ? w->wk : NULL, g->KVD, g->D, 1), LORA_K, 1, "xk");
    MilVal xv = project(g, kg_take(g, "dv", "dv"), kg_weight(g, "wvt", w ? w->wv : NULL, g->KVD, g->D, 1), LORA_V, 1, "xv");
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
    norm_input(g, "rms");
    kg_out_region(g, "dx", g->D);
    kg_declare_input(g);
    MilEmit *e = &g->e;
    MilVal dy = kg_take(g, "dy", "dy"), x = kg_take(g, "x", "x_in");
    MilVal rr = kg_rms_inv(g, x, "n");
    MilVal xh = mil_emit_mul(e, x, rr, "xh");
    MilVal wdy = mil_emit_mul(e, dy, norm_weight(g, "rms", g->w ? g->w->rms : NULL), "wdy");
    MilVal t = mil_emit_mul_scalar(e, mil_emit_mul(e, wdy, xh, "wdyx"), 1.0f / (float)g->D, "wdyx_s");
    MilVal m = mil_emit_reduce_sum(e, t, 1, (const int[]){1}, 1, "mean");  // [1,1,1,S]
    MilVal d = mil_emit_sub(e, wdy, mil_emit_mul(e, xh, m, "xm"), "wdy_c");
    return mil_emit_mul(e, d, rr, "out");
}

// finalNorm: xf = RMSNorm(x; rms_final).
static MilVal gen_final_norm(Gen *g) {
    kg_in_channels(g, "x", g->D);
    norm_input(g, "rms");
    kg_out_region(g, "xf", g->D);
    kg_declare_input(g);
    MilVal w = norm_weight(g, "rms", g->w ? g->w->rms : NULL);
    return kg_rmsnorm(g, kg_take(g, "x", "x_in"), w, "nf", "out");
}

// decQKV: the projections of one layer's attention for generation; QK-norm,
// RoPE and attention over the KV cache run on the CPU (positions differ per
// call, and the cache grows by one position a token).
static MilVal gen_dec_qkv(Gen *g) {
    const MilBaked *w = g->w;
    kg_in_channels(g, "x", g->D);
    norm_input(g, "rms_att");
    kg_out_region(g, "q", g->QD);
    kg_out_region(g, "k", g->KVD);
    kg_out_region(g, "v", g->KVD);
    kg_declare_input(g);
    MilVal xn = kg_rmsnorm(g, kg_take(g, "x", "x_in"), norm_weight(g, "rms_att", w ? w->rms_att : NULL), "n1", "xn");
    MilVal q = mil_emit_conv(&g->e, xn, kg_weight(g, "wq", w ? w->wq : NULL, g->QD, g->D, 0), "q");
    MilVal k = mil_emit_conv(&g->e, xn, kg_weight(g, "wk", w ? w->wk : NULL, g->KVD, g->D, 0), "k");
    MilVal v = mil_emit_conv(&g->e, xn, kg_weight(g, "wv", w ? w->wv : NULL, g->KVD, g->D, 0), "v");
    return mil_emit_concat(&g->e, 3, (const MilVal[]){q, k, v}, 1, "out");
}

// decWo: the attention output's projection (the residual add stays on the CPU, in fp32).
static MilVal gen_dec_wo(Gen *g) {
    kg_in_channels(g, "attn", g->QD);
    kg_out_region(g, "o", g->D);
    kg_declare_input(g);
    return mil_emit_conv(&g->e, kg_take(g, "attn", "a"), kg_weight(g, "wo", g->w ? g->w->wo : NULL, g->D, g->QD, 0),
                         "out");
}

static int chunk_rows(const Gen *g) { return kg_chunk_rows(g, 0); }

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
    case MIL_K_DEC_QKV: return gen_dec_qkv(g);
    case MIL_K_DEC_WO: return gen_dec_wo(g);
    default: err_set("mil kernel %d is not a static kernel", (int)kind); g->e.failed = 1; return MIL_NONE;
    }
}

void mil_vocab_chunks(int vocab, int *n, int *rows) {
    *n = (vocab + MIL_MAX_OUT_CHANNELS - 1) / MIL_MAX_OUT_CHANNELS;
    if (*n < 1) *n = 1;
    *rows = (vocab + *n - 1) / *n;
}
