// kernels: generators of the 10 dynamic-pipeline MIL kernels (see kernels.h for
// every input and output region), plus staging / reading by region name.
#include "mil/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/fp16.h"
#include "mil/mil_blob.h"

static const char *KERNEL_NAMES[MIL_K_COUNT] = {
    "sdpaFwd", "woFwd", "ffnFused", "ffnBwdW2t", "ffnBwdW13t", "wotBwd", "sdpaBwd1", "sdpaBwd2", "qBwd", "kvBwd",
};

const char *mil_kernel_name(MilKernelKind kind) {
    return (kind >= 0 && kind < MIL_K_COUNT) ? KERNEL_NAMES[kind] : "?";
}

// ---------------------------------------------------------------------------------------------
// generator state

typedef struct {
    MilEmit e;
    MilKernel *k;
    const Config *cfg;
    int S, D, H, NH, NKV, HD, QD, KVD, R;
    int w_cursor, c_cursor;  // layout of input regions (spatial / channel stacking)
    int out_cursor;          // channels of output regions
    MilVal x;                // the function input
} Gen;

// Input region at the spatial cursor, channels [0, nc).
static void in_spatial(Gen *g, const char *name, MilRegionKind kind, int nc, int nw) {
    MilKernel *k = g->k;
    CHECK_OR_ABORT(k->n_in < MIL_KERNEL_MAX_REGIONS);
    k->in[k->n_in++] = (MilRegion){name, kind, 0, nc, g->w_cursor, nw};
    g->w_cursor += nw;
    if (nc > k->in_c) k->in_c = nc;
    k->in_w = g->w_cursor;
}

// Input region stacked on the channel axis at the channel cursor, spatial [0, S).
static void in_channels(Gen *g, const char *name, int nc) {
    MilKernel *k = g->k;
    CHECK_OR_ABORT(k->n_in < MIL_KERNEL_MAX_REGIONS);
    k->in[k->n_in++] = (MilRegion){name, MIL_REG_ACT, g->c_cursor, nc, 0, g->S};
    g->c_cursor += nc;
    k->in_c = g->c_cursor;
    k->in_w = g->S;
}

// Output region: the next nc channels of the output concat.
static void out_region(Gen *g, const char *name, int nc) {
    MilKernel *k = g->k;
    CHECK_OR_ABORT(k->n_out < MIL_KERNEL_MAX_REGIONS);
    k->out[k->n_out++] = (MilRegion){name, MIL_REG_ACT, g->out_cursor, nc, 0, g->S};
    g->out_cursor += nc;
}

// Declares the function input once the layout is complete.
static void declare_input(Gen *g) {
    g->x = mil_emit_input(&g->e, "x", 4, (const int[]){1, g->k->in_c, 1, g->k->in_w});
}

// slice_by_size of input region `name` -> [1, nc, 1, nw]
static MilVal take(Gen *g, const char *name, const char *vname) {
    const MilRegion *r = mil_kernel_input(g->k, name);
    CHECK_OR_ABORT(r != NULL);
    return mil_emit_slice(&g->e, g->x, (const int[]){0, r->c0, 0, r->w0}, (const int[]){1, r->nc, 1, r->nw}, vname);
}

// Names of intermediate values: "<prefix>_<suffix>" (prefixes are short and unique per call site).
static const char *nm(char *buf, const char *prefix, const char *suffix) {
    snprintf(buf, MIL_NAME_MAX, "%s_%s", prefix, suffix);
    return buf;
}

// Activation [1, C, 1, S] -> [1, 1, S, C] (the left operand of a dynamic matmul).
static MilVal act_rows(Gen *g, MilVal a, const char *p) {
    char n1[MIL_NAME_MAX], n2[MIL_NAME_MAX];
    const int C = mil_emit_dim(&g->e, a, 1);
    MilVal r = mil_emit_reshape(&g->e, a, 4, (const int[]){1, 1, C, g->S}, nm(n1, p, "r"));
    return mil_emit_transpose(&g->e, r, (const int[]){0, 1, 3, 2}, nm(n2, p, "t"));
}

// The dynamic matmul without the final layout change: at [1,1,S,IC] (act_rows),
// weight block b [1, IC, 1, OC] -> [1, 1, S, OC] = (Bᵀ·A)ᵀ.
static MilVal dyn_mm_rows(Gen *g, MilVal at, MilVal b, const char *p) {
    char n1[MIL_NAME_MAX], n2[MIL_NAME_MAX];
    const int IC = mil_emit_dim(&g->e, b, 1), OC = mil_emit_dim(&g->e, b, 3);
    MilVal br = mil_emit_reshape(&g->e, b, 4, (const int[]){1, 1, IC, OC}, nm(n1, p, "wr"));
    return mil_emit_matmul(&g->e, at, br, 0, 0, nm(n2, p, "mm"));
}

// [1, 1, S, OC] -> [1, 1, OC, S]
static MilVal rows_to_cols(Gen *g, MilVal m, const char *p) {
    char n1[MIL_NAME_MAX];
    return mil_emit_transpose(&g->e, m, (const int[]){0, 1, 3, 2}, nm(n1, p, "mt"));
}

// [..] -> flat [1, C, 1, S]
static MilVal flat(Gen *g, MilVal m, int C, const char *name) {
    return mil_emit_reshape(&g->e, m, 4, (const int[]){1, C, 1, g->S}, name);
}

// y = Bᵀ·A as [1, OC, 1, S]
static MilVal dyn_mm(Gen *g, MilVal at, MilVal b, const char *p, const char *name) {
    const int OC = mil_emit_dim(&g->e, b, 3);
    return flat(g, rows_to_cols(g, dyn_mm_rows(g, at, b, p), p), OC, name);
}

// Channels of heads: [1, nh*HD, 1, S] or [1, 1, nh*HD, S] -> [1, nh, S, HD]
static MilVal to_heads(Gen *g, MilVal a, int nh, const char *p) {
    char n1[MIL_NAME_MAX], n2[MIL_NAME_MAX];
    MilVal r = mil_emit_reshape(&g->e, a, 4, (const int[]){1, nh, g->HD, g->S}, nm(n1, p, "hr"));
    return mil_emit_transpose(&g->e, r, (const int[]){0, 1, 3, 2}, nm(n2, p, "ht"));
}

// [1, nh, S, HD] -> [1, nh*HD, 1, S]
static MilVal from_heads(Gen *g, MilVal a, const char *p, const char *name) {
    char n1[MIL_NAME_MAX];
    const int nh = mil_emit_dim(&g->e, a, 1);
    MilVal t = mil_emit_transpose(&g->e, a, (const int[]){0, 1, 3, 2}, nm(n1, p, "ft"));
    return flat(g, t, nh * g->HD, name);
}

// GQA: [1, NKV, S, HD] -> [1, NH, S, HD] with query head h reading kv head h/R
// (each kv head repeated R times in a row — NOT R copies of the whole tensor,
// which would give h mod NKV, the original's forward/backward mismatch).
static MilVal gqa_tile(Gen *g, MilVal kv, const char *p) {
    if (g->R == 1) return kv;
    MilVal parts[1024];
    CHECK_OR_ABORT(g->NH <= 1024);
    for (int j = 0; j < g->NKV; j++) {
        MilVal hj = kv;
        if (g->NKV > 1) {
            char n1[MIL_NAME_MAX], s[16];
            snprintf(s, sizeof s, "h%d", j);
            hj = mil_emit_slice(&g->e, kv, (const int[]){0, j, 0, 0}, (const int[]){1, 1, g->S, g->HD},
                                nm(n1, p, s));
        }
        for (int r = 0; r < g->R; r++) parts[j * g->R + r] = hj;
    }
    char n2[MIL_NAME_MAX];
    return mil_emit_concat(&g->e, g->NH, parts, 1, nm(n2, p, "tile"));
}

// Causal mask [1,1,S,S]: 0 where key s <= query t, -65504 (fp16 lowest) elsewhere.
static MilVal mask_const(Gen *g) {
    const int S = g->S;
    if (g->e.no_payload) return mil_emit_const_blob(&g->e, "mask", NULL, 4, (const int[]){1, 1, S, S});
    float *m = malloc(sizeof(float) * (size_t)S * S);
    if (!m) {
        err_set("out of memory for the %dx%d mask", S, S);
        g->e.failed = 1;
        return MIL_NONE;
    }
    for (int t = 0; t < S; t++)
        for (int s = 0; s < S; s++) m[(size_t)t * S + s] = s <= t ? 0.0f : -65504.0f;
    MilVal v = mil_emit_const_blob(&g->e, "mask", m, 4, (const int[]){1, 1, S, S});
    free(m);
    return v;
}

// scores -> probabilities: softmax(q·kᵀ/√HD + mask) over keys; q, k [1, NH, S, HD]
static MilVal attn_probs(Gen *g, MilVal q, MilVal k, MilVal mask, const char *p) {
    char n1[MIL_NAME_MAX], n2[MIL_NAME_MAX], n3[MIL_NAME_MAX], n4[MIL_NAME_MAX];
    MilVal sc = mil_emit_matmul(&g->e, q, k, 0, 1, nm(n1, p, "sc"));
    MilVal ss = mil_emit_mul_scalar(&g->e, sc, 1.0f / sqrtf((float)g->HD), nm(n2, p, "ss"));
    MilVal sm = mil_emit_add(&g->e, ss, mask, nm(n3, p, "sm"));
    return mil_emit_softmax(&g->e, sm, -1, nm(n4, p, "p"));
}

// ---------------------------------------------------------------------------------------------
// sdpaFwd

// Per-head RMSNorm over HD (last axis) of x [1, nh, S, HD] with weight w [1, HD, 1, 1].
// x is pre-scaled by 1/√HD before squaring so the fp16 sum of squares is the mean
// itself and cannot overflow unless the rms exceeds 256 (Σx² over 128 channels
// overflows fp16 already at rms 23).
static MilVal head_norm(Gen *g, MilVal x, MilVal w, const char *p) {
    char n[8][MIL_NAME_MAX];
    MilVal xs = mil_emit_mul_scalar(&g->e, x, 1.0f / sqrtf((float)g->HD), nm(n[0], p, "xs"));
    MilVal sq = mil_emit_mul(&g->e, xs, xs, nm(n[1], p, "sq"));
    MilVal ms = mil_emit_reduce_sum(&g->e, sq, 1, (const int[]){-1}, 1, nm(n[2], p, "ms"));
    MilVal me = mil_emit_add_scalar(&g->e, ms, g->cfg->norm_eps, nm(n[3], p, "me"));
    MilVal rr = mil_emit_pow(&g->e, me, -0.5f, nm(n[4], p, "rr"));
    MilVal xn = mil_emit_mul(&g->e, x, rr, nm(n[5], p, "xn"));
    MilVal wr = mil_emit_reshape(&g->e, w, 4, (const int[]){1, 1, 1, g->HD}, nm(n[6], p, "wr"));
    return mil_emit_mul(&g->e, xn, wr, nm(n[7], p, "y"));
}

// RoPE on x [1, nh, S, HD]: y = x·cos + swap(x)·sin_signed, where swap exchanges
// the two channels of each rotating pair and sin_signed carries the minus sign
// of the first channel of the pair (so no negation op is needed):
//   interleaved pairs (2i, 2i+1): reshape [1,nh,S·HD/2,2], slice even/odd, concat (odd, even)
//   rotate-half pairs (i, i+HD/2): slice the two halves, concat (second, first)
static MilVal rope(Gen *g, MilVal x, MilVal cos_t, MilVal sin_t, const char *p) {
    char n[8][MIL_NAME_MAX];
    const int nh = mil_emit_dim(&g->e, x, 1), S = g->S, HD = g->HD, h2 = HD / 2;
    MilVal sw;
    if (g->cfg->rope_layout == ROPE_INTERLEAVED) {
        const int np = S * h2;
        MilVal pr = mil_emit_reshape(&g->e, x, 4, (const int[]){1, nh, np, 2}, nm(n[0], p, "pr"));
        const int one[4] = {1, nh, np, 1};
        MilVal ev = mil_emit_slice(&g->e, pr, (const int[]){0, 0, 0, 0}, one, nm(n[1], p, "ev"));
        MilVal od = mil_emit_slice(&g->e, pr, (const int[]){0, 0, 0, 1}, one, nm(n[2], p, "od"));
        MilVal cc = mil_emit_concat(&g->e, 2, (const MilVal[]){od, ev}, 3, nm(n[3], p, "sw2"));
        sw = mil_emit_reshape(&g->e, cc, 4, (const int[]){1, nh, S, HD}, nm(n[4], p, "sw"));
    } else {
        const int half[4] = {1, nh, S, h2};
        MilVal lo = mil_emit_slice(&g->e, x, (const int[]){0, 0, 0, 0}, half, nm(n[0], p, "lo"));
        MilVal hi = mil_emit_slice(&g->e, x, (const int[]){0, 0, 0, h2}, half, nm(n[1], p, "hi"));
        sw = mil_emit_concat(&g->e, 2, (const MilVal[]){hi, lo}, 3, nm(n[4], p, "sw"));
    }
    MilVal a = mil_emit_mul(&g->e, x, cos_t, nm(n[5], p, "xc"));
    MilVal b = mil_emit_mul(&g->e, sw, sin_t, nm(n[6], p, "xs"));
    return mil_emit_add(&g->e, a, b, nm(n[7], p, "y"));
}

// RoPE tables [1,1,S,HD]: angle(t, i) = t·θ^(-2i/HD) for pair i (as cpu/ops.c);
// cos in both channels of a pair; sin with a minus sign on the pair's first channel.
static void rope_consts(Gen *g, MilVal *cos_t, MilVal *sin_t) {
    const int S = g->S, HD = g->HD, h2 = HD / 2;
    if (g->e.no_payload) {
        *cos_t = mil_emit_const_blob(&g->e, "rope_cos", NULL, 4, (const int[]){1, 1, S, HD});
        *sin_t = mil_emit_const_blob(&g->e, "rope_sin", NULL, 4, (const int[]){1, 1, S, HD});
        return;
    }
    float *c = malloc(sizeof(float) * (size_t)S * HD), *s = malloc(sizeof(float) * (size_t)S * HD);
    if (!c || !s) {
        free(c);
        free(s);
        err_set("out of memory for the RoPE tables (%d x %d)", S, HD);
        g->e.failed = 1;
        *cos_t = *sin_t = MIL_NONE;
        return;
    }
    for (int i = 0; i < h2; i++) {
        const double freq = pow((double)g->cfg->rope_theta, -2.0 * i / HD);
        const int a = g->cfg->rope_layout == ROPE_INTERLEAVED ? 2 * i : i;
        const int b = g->cfg->rope_layout == ROPE_INTERLEAVED ? 2 * i + 1 : i + h2;
        for (int t = 0; t < S; t++) {
            const float cv = (float)cos(t * freq), sv = (float)sin(t * freq);
            c[(size_t)t * HD + a] = cv;
            c[(size_t)t * HD + b] = cv;
            s[(size_t)t * HD + a] = -sv;
            s[(size_t)t * HD + b] = sv;
        }
    }
    *cos_t = mil_emit_const_blob(&g->e, "rope_cos", c, 4, (const int[]){1, 1, S, HD});
    *sin_t = mil_emit_const_blob(&g->e, "rope_sin", s, 4, (const int[]){1, 1, S, HD});
    free(c);
    free(s);
}

static MilVal gen_sdpa_fwd(Gen *g) {
    const int qkn = g->cfg->qk_norm;
    in_spatial(g, "xn", MIL_REG_ACT, g->D, g->S);
    in_spatial(g, "Wq^T", MIL_REG_WT, g->D, g->QD);
    in_spatial(g, "Wk^T", MIL_REG_WT, g->D, g->KVD);
    in_spatial(g, "Wv^T", MIL_REG_WT, g->D, g->KVD);
    if (qkn) {
        in_spatial(g, "q_norm", MIL_REG_VEC, g->HD, 1);
        in_spatial(g, "k_norm", MIL_REG_VEC, g->HD, 1);
    }
    out_region(g, "attn", g->QD);
    out_region(g, "q_rope", g->QD);
    out_region(g, "k_rope", g->KVD);
    out_region(g, "v", g->KVD);
    out_region(g, "xn", g->D);
    if (qkn) {
        out_region(g, "q_pre", g->QD);
        out_region(g, "k_pre", g->KVD);
    }
    declare_input(g);
    MilEmit *e = &g->e;

    MilVal xn = take(g, "xn", "xn");
    MilVal xt = act_rows(g, xn, "xn");
    MilVal q_mt = rows_to_cols(g, dyn_mm_rows(g, xt, take(g, "Wq^T", "wq"), "q"), "q");  // [1,1,QD,S]
    MilVal k_mt = rows_to_cols(g, dyn_mm_rows(g, xt, take(g, "Wk^T", "wk"), "k"), "k");  // [1,1,KVD,S]
    MilVal v_mt = rows_to_cols(g, dyn_mm_rows(g, xt, take(g, "Wv^T", "wv"), "v"), "v");

    MilVal q = to_heads(g, q_mt, g->NH, "q");    // [1,NH,S,HD]
    MilVal k = to_heads(g, k_mt, g->NKV, "k");   // [1,NKV,S,HD]
    MilVal v = to_heads(g, v_mt, g->NKV, "v");
    if (qkn) {
        q = head_norm(g, q, take(g, "q_norm", "qnw"), "qn");
        k = head_norm(g, k, take(g, "k_norm", "knw"), "kn");
    }
    MilVal cos_t, sin_t;
    rope_consts(g, &cos_t, &sin_t);
    MilVal qr = rope(g, q, cos_t, sin_t, "qr");
    MilVal kr = rope(g, k, cos_t, sin_t, "kr");

    MilVal mask = mask_const(g);
    MilVal P = attn_probs(g, qr, gqa_tile(g, kr, "kt"), mask, "at");
    MilVal a = mil_emit_matmul(e, P, gqa_tile(g, v, "vt"), 0, 0, "at_pv");  // [1,NH,S,HD]

    MilVal outs[7];
    int n = 0;
    outs[n++] = from_heads(g, a, "at", "attn");
    outs[n++] = from_heads(g, qr, "qr", "q_rope");
    outs[n++] = from_heads(g, kr, "kr", "k_rope");
    outs[n++] = flat(g, v_mt, g->KVD, "v_out");
    outs[n++] = xn;
    if (qkn) {
        outs[n++] = flat(g, q_mt, g->QD, "q_pre");
        outs[n++] = flat(g, k_mt, g->KVD, "k_pre");
    }
    return mil_emit_concat(e, n, outs, 1, "out");
}

// ---------------------------------------------------------------------------------------------
// woFwd, ffnFused

static MilVal gen_wo_fwd(Gen *g) {
    in_spatial(g, "attn", MIL_REG_ACT, g->QD, g->S);
    in_spatial(g, "Wo^T", MIL_REG_WT, g->QD, g->D);
    out_region(g, "o", g->D);
    declare_input(g);
    MilVal at = act_rows(g, take(g, "attn", "a"), "a");
    return dyn_mm(g, at, take(g, "Wo^T", "wo"), "o", "out");
}

static MilVal gen_ffn_fused(Gen *g) {
    in_spatial(g, "x2n", MIL_REG_ACT, g->D, g->S);
    in_spatial(g, "x2", MIL_REG_ACT, g->D, g->S);
    in_spatial(g, "W1^T", MIL_REG_WT, g->D, g->H);
    in_spatial(g, "W3^T", MIL_REG_WT, g->D, g->H);
    in_spatial(g, "W2", MIL_REG_W, g->D, g->H);
    out_region(g, "x_next", g->D);
    out_region(g, "h1", g->H);
    out_region(g, "h3", g->H);
    out_region(g, "g", g->H);
    declare_input(g);
    MilEmit *e = &g->e;

    MilVal xt = act_rows(g, take(g, "x2n", "x2n"), "x2n");
    MilVal x2 = take(g, "x2", "x2");
    MilVal h1 = dyn_mm(g, xt, take(g, "W1^T", "w1"), "h1", "h1");  // [1,H,1,S]
    MilVal h3 = dyn_mm(g, xt, take(g, "W3^T", "w3"), "h3", "h3");
    MilVal sg = mil_emit_sigmoid(e, h1, "sig");
    MilVal si = mil_emit_mul(e, h1, sg, "silu");
    MilVal gt = mil_emit_mul(e, si, h3, "gate");
    // f = W2·g: W2 [D,H] is staged as is, so it is the left operand directly
    MilVal w2 = mil_emit_reshape(e, take(g, "W2", "w2"), 4, (const int[]){1, 1, g->D, g->H}, "w2_r");
    MilVal gr = mil_emit_reshape(e, gt, 4, (const int[]){1, 1, g->H, g->S}, "gate_r");
    MilVal f = flat(g, mil_emit_matmul(e, w2, gr, 0, 0, "f_mm"), g->D, "f");
    if (g->cfg->res_scale != 1.0f) f = mil_emit_mul_scalar(e, f, g->cfg->res_scale, "f_scaled");
    MilVal xnext = mil_emit_add(e, x2, f, "x_next");
    return mil_emit_concat(e, 4, (const MilVal[]){xnext, h1, h3, gt}, 1, "out");
}

// ---------------------------------------------------------------------------------------------
// backward linears: y = Mᵀ·dy with M staged as is

// One activation and one weight: out = Wᵀ·act
static MilVal gen_bwd_1(Gen *g, const char *act, int C, const char *w, int OC, const char *out) {
    in_spatial(g, act, MIL_REG_ACT, C, g->S);
    in_spatial(g, w, MIL_REG_W, C, OC);
    out_region(g, out, OC);
    declare_input(g);
    MilVal at = act_rows(g, take(g, act, "dy"), "dy");
    return dyn_mm(g, at, take(g, w, "w"), "y", "out");
}

// Two activations, two weights: out = Waᵀ·a + Wbᵀ·b (summed before the layout change)
static MilVal gen_bwd_2(Gen *g, const char *a, const char *b, int C, const char *wa, const char *wb, int OC) {
    in_spatial(g, a, MIL_REG_ACT, C, g->S);
    in_spatial(g, b, MIL_REG_ACT, C, g->S);
    in_spatial(g, wa, MIL_REG_W, C, OC);
    in_spatial(g, wb, MIL_REG_W, C, OC);
    out_region(g, "dx", OC);
    declare_input(g);
    MilVal ya = dyn_mm_rows(g, act_rows(g, take(g, a, "da"), "da"), take(g, wa, "wa"), "ya");
    MilVal yb = dyn_mm_rows(g, act_rows(g, take(g, b, "db"), "db"), take(g, wb, "wb"), "yb");
    MilVal s = mil_emit_add(&g->e, ya, yb, "y_sum");
    return flat(g, rows_to_cols(g, s, "y"), OC, "out");
}

// ---------------------------------------------------------------------------------------------
// attention backward (weight-free; inputs stacked on channels)

static MilVal gen_sdpa_bwd1(Gen *g) {
    in_channels(g, "q", g->QD);
    in_channels(g, "k", g->QD);
    in_channels(g, "v", g->QD);
    in_channels(g, "da", g->QD);
    out_region(g, "dv", g->QD);
    out_region(g, "probs", g->NH * g->S);
    out_region(g, "dp", g->NH * g->S);
    declare_input(g);
    MilEmit *e = &g->e;
    MilVal q = to_heads(g, take(g, "q", "q"), g->NH, "q");
    MilVal k = to_heads(g, take(g, "k", "k"), g->NH, "k");
    MilVal v = to_heads(g, take(g, "v", "v"), g->NH, "v");
    MilVal da = to_heads(g, take(g, "da", "da"), g->NH, "da");
    MilVal P = attn_probs(g, q, k, mask_const(g), "at");
    MilVal dv = mil_emit_matmul(e, P, da, 1, 0, "dv_mm");   // Pᵀ·dA  [1,NH,S,HD]
    MilVal dp = mil_emit_matmul(e, da, v, 0, 1, "dp_mm");   // dA·Vᵀ  [1,NH,S,S]
    const int SC = g->NH * g->S;
    MilVal outs[3] = {
        from_heads(g, dv, "dv", "dv"),
        flat(g, P, SC, "probs"),
        flat(g, dp, SC, "dp"),
    };
    return mil_emit_concat(e, 3, outs, 1, "out");
}

static MilVal gen_sdpa_bwd2(Gen *g) {
    const int SC = g->NH * g->S;
    in_channels(g, "probs", SC);
    in_channels(g, "dp", SC);
    in_channels(g, "q", g->QD);
    in_channels(g, "k", g->QD);
    out_region(g, "dq", g->QD);
    out_region(g, "dk", g->QD);
    declare_input(g);
    MilEmit *e = &g->e;
    const int hs[4] = {1, g->NH, g->S, g->S};
    MilVal P = mil_emit_reshape(e, take(g, "probs", "p_in"), 4, hs, "p");
    MilVal dP = mil_emit_reshape(e, take(g, "dp", "dp_in"), 4, hs, "dp");
    MilVal q = to_heads(g, take(g, "q", "q"), g->NH, "q");
    MilVal k = to_heads(g, take(g, "k", "k"), g->NH, "k");
    MilVal pdp = mil_emit_mul(e, P, dP, "pdp");
    MilVal rs = mil_emit_reduce_sum(e, pdp, 1, (const int[]){-1}, 1, "rowsum");  // [1,NH,S,1]
    MilVal df = mil_emit_sub(e, dP, rs, "dp_c");
    MilVal ds0 = mil_emit_mul(e, df, P, "ds0");
    MilVal ds = mil_emit_mul_scalar(e, ds0, 1.0f / sqrtf((float)g->HD), "ds");
    MilVal dq = mil_emit_matmul(e, ds, k, 0, 0, "dq_mm");  // dS·K   [1,NH,S,HD]
    MilVal dk = mil_emit_matmul(e, ds, q, 1, 0, "dk_mm");  // dSᵀ·Q  [1,NH,S,HD]
    MilVal outs[2] = {from_heads(g, dq, "dq", "dq"), from_heads(g, dk, "dk", "dk")};
    return mil_emit_concat(e, 2, outs, 1, "out");
}

// ---------------------------------------------------------------------------------------------
// build

// Wraps a builder blob in the weight-file format (mil_blob.h: one fp16 chunk, MIL offset 64).
static int blob_file(MilBlob *b, const MilEmitBlob *src) {
    if (!src->data) b->size = 2 * MIL_BLOB_HEADER_BYTES + src->n * sizeof(uint16_t);  // text only: no bytes
    else if (mil_blob_build_fp16(src->data, src->n, &b->data, &b->size) != 0) return -1;
    snprintf(b->path, sizeof b->path, "@model_path/weights/%s.bin", src->name);
    return 0;
}

static int build(MilKernelKind kind, const Config *cfg, int S, MilDialect dialect, int with_blobs, MilKernel *out) {
    memset(out, 0, sizeof *out);
    if (kind < 0 || kind >= MIL_K_COUNT) return err_set("mil kernel: unknown kind %d", (int)kind);
    if (config_validate(cfg, cfg->name[0] ? cfg->name : "config") != 0) return -1;
    if (S < 1) return err_set("mil kernel %s: window S must be positive, found %d", KERNEL_NAMES[kind], S);
    if (kind == MIL_K_SDPA_FWD && cfg->qk_norm && cfg->head_dim > cfg->dim)
        return err_set("mil kernel %s: QK-norm weights are staged as one column of the D=%d channels; head_dim %d "
                       "does not fit", KERNEL_NAMES[kind], cfg->dim, cfg->head_dim);
    Gen g;
    memset(&g, 0, sizeof g);
    mil_emit_init(&g.e, dialect);
    g.e.no_payload = !with_blobs;
    g.k = out;
    g.cfg = cfg;
    g.S = S;
    g.D = cfg->dim;
    g.H = cfg->hidden;
    g.NH = cfg->n_heads;
    g.NKV = cfg->n_kv_heads;
    g.HD = cfg->head_dim;
    g.QD = config_q_dim(cfg);
    g.KVD = config_kv_dim(cfg);
    g.R = g.NH / g.NKV;
    out->kind = kind;
    out->name = KERNEL_NAMES[kind];
    out->out_w = S;

    MilVal res = MIL_NONE;
    switch (kind) {
    case MIL_K_SDPA_FWD: res = gen_sdpa_fwd(&g); break;
    case MIL_K_WO_FWD: res = gen_wo_fwd(&g); break;
    case MIL_K_FFN_FUSED: res = gen_ffn_fused(&g); break;
    case MIL_K_FFN_BWD_W2T: res = gen_bwd_1(&g, "dffn", g.D, "W2", g.H, "dg"); break;
    case MIL_K_FFN_BWD_W13T: res = gen_bwd_2(&g, "dh1", "dh3", g.H, "W1", "W3", g.D); break;
    case MIL_K_WOT_BWD: res = gen_bwd_1(&g, "dy", g.D, "Wo", g.QD, "da"); break;
    case MIL_K_SDPA_BWD1: res = gen_sdpa_bwd1(&g); break;
    case MIL_K_SDPA_BWD2: res = gen_sdpa_bwd2(&g); break;
    case MIL_K_Q_BWD: res = gen_bwd_1(&g, "dq", g.QD, "Wq", g.D, "dx"); break;
    case MIL_K_KV_BWD: res = gen_bwd_2(&g, "dk", "dv", g.KVD, "Wk", "Wv", g.D); break;
    default: break;
    }
    out->out_c = g.out_cursor;
    int rc = mil_emit_finish(&g.e, res, &out->mil, &out->mil_len);
    if (rc == 0) {
        // the builder's own shape of the result must be the declared output layout
        const MilValue *r = mil_emit_value(&g.e, res);
        if (r->rank != 4 || r->shape[0] != 1 || r->shape[1] != out->out_c || r->shape[2] != 1 || r->shape[3] != S)
            rc = err_set("mil kernel %s: result shape does not match its %d output channels", out->name, out->out_c);
    }
    if (rc == 0 && g.e.n_blobs > 0) {
        out->blobs = calloc((size_t)g.e.n_blobs, sizeof *out->blobs);
        if (!out->blobs) rc = err_set("out of memory for blobs");
        for (int i = 0; rc == 0 && i < g.e.n_blobs; i++) {
            rc = blob_file(&out->blobs[i], &g.e.blobs[i]);
            if (rc == 0) out->n_blobs++;
        }
    }
    mil_emit_free(&g.e);
    if (rc != 0) {
        err_wrap("mil kernel %s (%s, S=%d)", KERNEL_NAMES[kind], cfg->name[0] ? cfg->name : "config", S);
        mil_kernel_free(out);
        return -1;
    }
    return 0;
}

int mil_kernel_build_dialect(MilKernelKind kind, const Config *cfg, int S, MilDialect dialect, MilKernel *out) {
    return build(kind, cfg, S, dialect, 1, out);
}

int mil_kernel_build_text(MilKernelKind kind, const Config *cfg, int S, MilDialect dialect, MilKernel *out) {
    return build(kind, cfg, S, dialect, 0, out);
}

int mil_kernel_build(MilKernelKind kind, const Config *cfg, int S, MilKernel *out) {
    return mil_kernel_build_dialect(kind, cfg, S, MIL_DIALECT_IOS18, out);
}

void mil_kernel_free(MilKernel *k) {
    free(k->mil);
    for (int i = 0; i < k->n_blobs; i++) free(k->blobs[i].data);
    free(k->blobs);
    memset(k, 0, sizeof *k);
}

// ---------------------------------------------------------------------------------------------
// regions

static const MilRegion *find(const MilRegion *r, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (strcmp(r[i].name, name) == 0) return &r[i];
    return NULL;
}

const MilRegion *mil_kernel_input(const MilKernel *k, const char *name) { return find(k->in, k->n_in, name); }
const MilRegion *mil_kernel_output(const MilKernel *k, const char *name) { return find(k->out, k->n_out, name); }

int mil_kernel_stage(const MilKernel *k, uint16_t *in, const char *name, const float *src) {
    const MilRegion *r = mil_kernel_input(k, name);
    if (!r) return err_set("mil kernel %s: no input region '%s'", k->name, name);
    const size_t W = (size_t)k->in_w;
    if (r->kind == MIL_REG_WT) {  // row i = column i of M [nw][nc]
        fp16_from_f32_transposed(in + (size_t)r->c0 * W + r->w0, W, src, (size_t)r->nw, (size_t)r->nc);
        return 0;
    }
    for (int i = 0; i < r->nc; i++)
        fp16_from_f32_array(in + (size_t)(r->c0 + i) * W + r->w0, src + (size_t)i * r->nw, (size_t)r->nw);
    return 0;
}

int mil_kernel_fetch(const MilKernel *k, const uint16_t *out, const char *name, float *dst) {
    const MilRegion *r = mil_kernel_output(k, name);
    if (!r) return err_set("mil kernel %s: no output region '%s'", k->name, name);
    const size_t W = (size_t)k->out_w;
    for (int i = 0; i < r->nc; i++) {
        const uint16_t *row = out + (size_t)(r->c0 + i) * W + r->w0;
        fp16_to_f32_array(dst + (size_t)i * r->nw, row, (size_t)r->nw);
    }
    return 0;
}

int mil_kernel_copy(const MilKernel *dst_k, uint16_t *dst, const char *dst_name, const MilKernel *src_k,
                    const uint16_t *src, const char *src_name) {
    const MilRegion *d = mil_kernel_input(dst_k, dst_name), *s = mil_kernel_output(src_k, src_name);
    if (!d) return err_set("mil kernel %s: no input region '%s'", dst_k->name, dst_name);
    if (!s) return err_set("mil kernel %s: no output region '%s'", src_k->name, src_name);
    if (d->nc != s->nc || d->nw != s->nw || d->kind != MIL_REG_ACT)
        return err_set("mil kernel copy %s.%s <- %s.%s: regions differ ([%d,%d] vs [%d,%d])", dst_k->name, dst_name,
                       src_k->name, src_name, d->nc, d->nw, s->nc, s->nw);
    for (int i = 0; i < d->nc; i++)
        memcpy(dst + (size_t)(d->c0 + i) * dst_k->in_w + d->w0, src + (size_t)(s->c0 + i) * src_k->out_w + s->w0,
               sizeof(uint16_t) * (size_t)d->nw);
    return 0;
}
