// kernels_gen: building blocks of the MIL kernel generators (kernels_gen.h).
#include "mil/kernels_gen.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "mil/mil_rules.h"



static int round_up(int n, int m) { return (n + m - 1) / m * m; }

int kg_chunk_rows(const Gen *g, int head) {
    if (g->w && g->w->rows > 0) return g->w->rows;
    int n, rows;
    if (head) mil_head_chunks(g->cfg->vocab, g->S_real, &n, &rows);
    else mil_vocab_chunks(g->cfg->vocab, &n, &rows);
    return rows;
}

int kg_inner(const Gen *g, int n) { return g->pad ? round_up(n, MIL_RULE_INNER_MULT) : n; }

void kg_in_spatial_pw(Gen *g, const char *name, MilRegionKind kind, int nc, int nw, int pw) {
    MilKernel *k = g->k;
    CHECK_OR_ABORT(k->n_in < MIL_KERNEL_MAX_REGIONS);
    const int w0 = g->pad ? round_up(g->w_cursor, MIL_RULE_SLICE_ELEMS) : g->w_cursor;
    const int pc = kind == MIL_REG_W || kind == MIL_REG_WT ? kg_inner(g, nc) : nc;
    k->in[k->n_in++] = (MilRegion){name, kind, 0, nc, w0, nw, pc, pw, 0};
    g->w_cursor = w0 + (kind == MIL_REG_VEC && g->pad ? MIL_RULE_SLICE_ELEMS : pw);
    if (pc > k->in_c) k->in_c = pc;
    k->in_w = g->w_cursor;
}

void kg_in_spatial(Gen *g, const char *name, MilRegionKind kind, int nc, int nw) {
    if (kind == MIL_REG_ACT) kg_in_spatial_pw(g, name, kind, nc, g->S_real, g->S);
    else kg_in_spatial_pw(g, name, kind, nc, nw, nw);
}

// Input region stacked on the channel axis at the channel cursor, spatial [0, S).
void kg_in_channels(Gen *g, const char *name, int nc) {
    MilKernel *k = g->k;
    CHECK_OR_ABORT(k->n_in < MIL_KERNEL_MAX_REGIONS);
    k->in[k->n_in++] = (MilRegion){name, MIL_REG_ACT, g->c_cursor, nc, 0, g->S_real, nc, g->S, 0};
    g->c_cursor += nc;
    k->in_c = g->c_cursor;
    if (k->in_w < g->S) k->in_w = g->S;
}

// Output region: the next nc channels of the output concat.
void kg_out_region(Gen *g, const char *name, int nc) {
    MilKernel *k = g->k;
    CHECK_OR_ABORT(k->n_out < MIL_KERNEL_MAX_REGIONS);
    k->out[k->n_out++] = (MilRegion){name, MIL_REG_ACT, g->out_cursor, nc, 0, g->S_real, nc, g->S, 0};
    g->out_cursor += nc;
}

// Declares the function input once the layout is complete: rows a multiple
// of 128 bytes, and at least the smallest surface the ANE evaluates (extra
// zero channels, never read).
void kg_declare_input(Gen *g) {
    MilKernel *k = g->k;
    if (g->pad) {
        k->in_w = round_up(k->in_w, MIL_RULE_ROW_BYTES / 2);
        const int min_c = (MIL_RULE_MIN_BYTES / 2 + k->in_w - 1) / k->in_w;
        if (k->in_c < min_c) k->in_c = min_c;
    }
    g->x = mil_emit_input(&g->e, "x", 4, (const int[]){1, k->in_c, 1, k->in_w});
}

MilVal kg_pad_last(Gen *g, MilVal x, int to, const char *p) {
    const MilValue *v = mil_emit_value(&g->e, x);
    if (!v || v->shape[v->rank - 1] >= to) return x;
    int shape[MIL_MAX_RANK];
    memcpy(shape, v->shape, sizeof shape);
    const int rank = v->rank;
    shape[rank - 1] = to - v->shape[rank - 1];
    char n1[MIL_NAME_MAX], n2[MIL_NAME_MAX];
    size_t n = 1;
    for (int i = 0; i < rank; i++) n *= (size_t)shape[i];
    float *z = g->e.no_payload ? NULL : calloc(n, sizeof(float));
    if (!g->e.no_payload && !z) {
        err_set("out of memory for %zu padding zeros", n);
        g->e.failed = 1;
        return MIL_NONE;
    }
    MilVal zv = mil_emit_const_blob(&g->e, kg_nm(n1, p, "zpad"), z, rank, shape);
    free(z);
    return mil_emit_concat(&g->e, 2, (const MilVal[]){x, zv}, rank - 1, kg_nm(n2, p, "pad"));
}

// slice_by_size of input region `name` -> [1, pc, 1, pw]
MilVal kg_take(Gen *g, const char *name, const char *vname) {
    const MilRegion *r = mil_kernel_input(g->k, name);
    CHECK_OR_ABORT(r != NULL);
    return mil_emit_slice(&g->e, g->x, (const int[]){0, r->c0, 0, r->w0}, (const int[]){1, r->pc, 1, r->pw}, vname);
}

// Names of intermediate values: "<prefix>_<suffix>" (prefixes are short and unique per call site).
const char *kg_nm(char *buf, const char *prefix, const char *suffix) {
    snprintf(buf, MIL_NAME_MAX, "%s_%s", prefix, suffix);
    return buf;
}

// Activation [1, C, 1, S] -> [1, 1, S, C] (the left operand of a dynamic matmul).
MilVal kg_act_rows(Gen *g, MilVal a, const char *p) {
    char n1[MIL_NAME_MAX], n2[MIL_NAME_MAX];
    const int C = mil_emit_dim(&g->e, a, 1);
    MilVal r = mil_emit_reshape(&g->e, a, 4, (const int[]){1, 1, C, g->S}, kg_nm(n1, p, "r"));
    return mil_emit_transpose(&g->e, r, (const int[]){0, 1, 3, 2}, kg_nm(n2, p, "t"));
}

// The dynamic matmul without the final layout change: at [1,1,S,IC] (act_rows),
// weight block b [1, IC, 1, OC] -> [1, 1, S, OC] = (Bᵀ·A)ᵀ.
MilVal kg_dyn_mm_rows(Gen *g, MilVal at, MilVal b, const char *p) {
    char n1[MIL_NAME_MAX], n2[MIL_NAME_MAX];
    const int IC = mil_emit_dim(&g->e, b, 1), OC = mil_emit_dim(&g->e, b, 3);
    at = kg_pad_last(g, at, IC, p);  // the weight block's channels are padded already
    MilVal br = mil_emit_reshape(&g->e, b, 4, (const int[]){1, 1, IC, OC}, kg_nm(n1, p, "wr"));
    return mil_emit_matmul(&g->e, at, br, 0, 0, kg_nm(n2, p, "mm"));
}

// [1, 1, S, OC] -> [1, 1, OC, S]
MilVal kg_rows_to_cols(Gen *g, MilVal m, const char *p) {
    char n1[MIL_NAME_MAX];
    return mil_emit_transpose(&g->e, m, (const int[]){0, 1, 3, 2}, kg_nm(n1, p, "mt"));
}

// [..] -> flat [1, C, 1, S]
MilVal kg_flat(Gen *g, MilVal m, int C, const char *name) {
    return mil_emit_reshape(&g->e, m, 4, (const int[]){1, C, 1, g->S}, name);
}

// y = Bᵀ·A as [1, OC, 1, S]
MilVal kg_dyn_mm(Gen *g, MilVal at, MilVal b, const char *p, const char *name) {
    const int OC = mil_emit_dim(&g->e, b, 3);
    return kg_flat(g, kg_rows_to_cols(g, kg_dyn_mm_rows(g, at, b, p), p), OC, name);
}

// Channels of heads: [1, nh*HD, 1, S] or [1, 1, nh*HD, S] -> [1, nh, S, HD]
MilVal kg_to_heads(Gen *g, MilVal a, int nh, const char *p) {
    char n1[MIL_NAME_MAX], n2[MIL_NAME_MAX];
    MilVal r = mil_emit_reshape(&g->e, a, 4, (const int[]){1, nh, g->HD, g->S}, kg_nm(n1, p, "hr"));
    return mil_emit_transpose(&g->e, r, (const int[]){0, 1, 3, 2}, kg_nm(n2, p, "ht"));
}

// [1, nh, S, HD] -> [1, nh*HD, 1, S]
MilVal kg_from_heads(Gen *g, MilVal a, const char *p, const char *name) {
    char n1[MIL_NAME_MAX];
    const int nh = mil_emit_dim(&g->e, a, 1);
    MilVal t = mil_emit_transpose(&g->e, a, (const int[]){0, 1, 3, 2}, kg_nm(n1, p, "ft"));
    return kg_flat(g, t, nh * g->HD, name);
}

// GQA: [1, NKV, S, HD] -> [1, NH, S, HD] with query head h reading kv head h/R
// (each kv head repeated R times in a row — NOT R copies of the whole tensor,
// which would give h mod NKV, the original's forward/backward mismatch).
MilVal kg_gqa_tile(Gen *g, MilVal kv, const char *p) {
    if (g->R == 1) return kv;
    if (g->gqa_perm) {  // the original's form: R whole copies (query position p reads kv head p mod NKV)
        MilVal copies[64];
        CHECK_OR_ABORT(g->R <= 64);
        for (int r = 0; r < g->R; r++) copies[r] = kv;
        char n1[MIL_NAME_MAX];
        return mil_emit_concat(&g->e, g->R, copies, 1, kg_nm(n1, p, "tile"));
    }
    MilVal parts[1024];
    CHECK_OR_ABORT(g->NH <= 1024);
    for (int j = 0; j < g->NKV; j++) {
        MilVal hj = kv;
        if (g->NKV > 1) {
            char n1[MIL_NAME_MAX], s[16];
            snprintf(s, sizeof s, "h%d", j);
            hj = mil_emit_slice(&g->e, kv, (const int[]){0, j, 0, 0}, (const int[]){1, 1, g->S, g->HD},
                                kg_nm(n1, p, s));
        }
        for (int r = 0; r < g->R; r++) parts[j * g->R + r] = hj;
    }
    char n2[MIL_NAME_MAX];
    return mil_emit_concat(&g->e, g->NH, parts, 1, kg_nm(n2, p, "tile"));
}

// Causal mask [1,1,S,S]: 0 where key s <= query t, -65504 (fp16 lowest) elsewhere.
MilVal kg_mask_const(Gen *g) {
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
MilVal kg_attn_probs(Gen *g, MilVal q, MilVal k, MilVal mask, const char *p) {
    char n1[MIL_NAME_MAX], n2[MIL_NAME_MAX], n3[MIL_NAME_MAX], n4[MIL_NAME_MAX];
    char z1[MIL_NAME_MAX], z2[MIL_NAME_MAX];
    const int K = kg_inner(g, g->HD);  // the head dimension is the scores' inner one
    q = kg_pad_last(g, q, K, kg_nm(z1, p, "q"));
    k = kg_pad_last(g, k, K, kg_nm(z2, p, "k"));
    MilVal sc = mil_emit_matmul(&g->e, q, k, 0, 1, kg_nm(n1, p, "sc"));
    MilVal ss = mil_emit_mul_scalar(&g->e, sc, 1.0f / sqrtf((float)g->HD), kg_nm(n2, p, "ss"));
    MilVal sm = mil_emit_add(&g->e, ss, mask, kg_nm(n3, p, "sm"));
    return mil_emit_softmax(&g->e, sm, -1, kg_nm(n4, p, "p"));
}


// Per-head RMSNorm over HD (last axis) of x [1, nh, S, HD] with weight w [1, HD, 1, 1].
// x is pre-scaled by 1/√HD before squaring so the fp16 sum of squares is the mean
// itself and cannot overflow unless the rms exceeds 256 (Σx² over 128 channels
// overflows fp16 already at rms 23).
MilVal kg_head_norm(Gen *g, MilVal x, MilVal w, const char *p) {
    char n[8][MIL_NAME_MAX];
    MilVal xs = mil_emit_mul_scalar(&g->e, x, 1.0f / sqrtf((float)g->HD), kg_nm(n[0], p, "xs"));
    MilVal sq = mil_emit_mul(&g->e, xs, xs, kg_nm(n[1], p, "sq"));
    MilVal ms = mil_emit_reduce_sum(&g->e, sq, 1, (const int[]){-1}, 1, kg_nm(n[2], p, "ms"));
    MilVal me = mil_emit_add_scalar(&g->e, ms, g->cfg->norm_eps, kg_nm(n[3], p, "me"));
    MilVal rr = mil_emit_pow(&g->e, me, -0.5f, kg_nm(n[4], p, "rr"));
    MilVal xn = mil_emit_mul(&g->e, x, rr, kg_nm(n[5], p, "xn"));
    MilVal wr = mil_emit_reshape(&g->e, w, 4, (const int[]){1, 1, 1, g->HD}, kg_nm(n[6], p, "wr"));
    return mil_emit_mul(&g->e, xn, wr, kg_nm(n[7], p, "y"));
}

// RoPE on x [1, nh, S, HD]: y = x·cos + swap(x)·sin_signed, where swap exchanges
// the two channels of each rotating pair and sin_signed carries the minus sign
// of the first channel of the pair (so no negation op is needed):
//   interleaved pairs (2i, 2i+1): reshape [1,nh,S·HD/2,2], slice even/odd, concat (odd, even)
//   rotate-half pairs (i, i+HD/2): slice the two halves, concat (second, first)
MilVal kg_rope(Gen *g, MilVal x, MilVal cos_t, MilVal sin_t, const char *p) {
    char n[8][MIL_NAME_MAX];
    const int nh = mil_emit_dim(&g->e, x, 1), S = g->S, HD = g->HD, h2 = HD / 2;
    MilVal sw;
    if (g->cfg->rope_layout == ROPE_INTERLEAVED) {
        const int np = S * h2;
        MilVal pr = mil_emit_reshape(&g->e, x, 4, (const int[]){1, nh, np, 2}, kg_nm(n[0], p, "pr"));
        const int one[4] = {1, nh, np, 1};
        MilVal ev = mil_emit_slice(&g->e, pr, (const int[]){0, 0, 0, 0}, one, kg_nm(n[1], p, "ev"));
        MilVal od = mil_emit_slice(&g->e, pr, (const int[]){0, 0, 0, 1}, one, kg_nm(n[2], p, "od"));
        MilVal cc = mil_emit_concat(&g->e, 2, (const MilVal[]){od, ev}, 3, kg_nm(n[3], p, "sw2"));
        sw = mil_emit_reshape(&g->e, cc, 4, (const int[]){1, nh, S, HD}, kg_nm(n[4], p, "sw"));
    } else {
        const int half[4] = {1, nh, S, h2};
        MilVal lo = mil_emit_slice(&g->e, x, (const int[]){0, 0, 0, 0}, half, kg_nm(n[0], p, "lo"));
        MilVal hi = mil_emit_slice(&g->e, x, (const int[]){0, 0, 0, h2}, half, kg_nm(n[1], p, "hi"));
        sw = mil_emit_concat(&g->e, 2, (const MilVal[]){hi, lo}, 3, kg_nm(n[4], p, "sw"));
    }
    MilVal a = mil_emit_mul(&g->e, x, cos_t, kg_nm(n[5], p, "xc"));
    MilVal b = mil_emit_mul(&g->e, sw, sin_t, kg_nm(n[6], p, "xs"));
    return mil_emit_add(&g->e, a, b, kg_nm(n[7], p, "y"));
}

// RoPE tables [1,1,S,HD]: angle(t, i) = t·θ^(-2i/HD) for pair i (as cpu/ops.c);
// cos in both channels of a pair; sin with a minus sign on the pair's first channel.
void kg_rope_consts(Gen *g, MilVal *cos_t, MilVal *sin_t) {
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

KgAttn kg_attention(Gen *g, MilVal q_mt, MilVal k_mt, MilVal v_mt, MilVal qnw, MilVal knw) {
    MilEmit *e = &g->e;
    MilVal q = kg_to_heads(g, q_mt, g->NH, "q");   // [1,NH,S,HD]
    MilVal k = kg_to_heads(g, k_mt, g->NKV, "k");  // [1,NKV,S,HD]
    MilVal v = kg_to_heads(g, v_mt, g->NKV, "v");
    if (qnw != MIL_NONE) {
        q = kg_head_norm(g, q, qnw, "qn");
        k = kg_head_norm(g, k, knw, "kn");
    }
    MilVal cos_t, sin_t;
    kg_rope_consts(g, &cos_t, &sin_t);
    KgAttn r;
    r.qr = kg_rope(g, q, cos_t, sin_t, "qr");
    r.kr = kg_rope(g, k, cos_t, sin_t, "kr");
    MilVal P = kg_attn_probs(g, r.qr, kg_gqa_tile(g, r.kr, "kt"), kg_mask_const(g), "at");
    r.a = mil_emit_matmul(e, P, kg_gqa_tile(g, v, "vt"), 0, 0, "at_pv");  // [1,NH,S,HD]
    return r;
}

// Marks the last region declared (input or output) as holding permuted heads.
static void mark_perm(Gen *g, int output) {
    if (!g->gqa_perm) return;
    MilRegion *r = output ? &g->k->out[g->k->n_out - 1] : &g->k->in[g->k->n_in - 1];
    r->perm = 1;
}

void kg_mark_perm_input(Gen *g) { mark_perm(g, 0); }

int kg_model_row(const Gen *g, int c) { return mil_kernel_model_row(g->k, c); }  // build() set k's GQA order

MilVal kg_weight_perm(Gen *g, const char *name, const float *m, int rows, int cols, int perm_rows, int perm_cols) {
    if (!g->gqa_perm || !m || g->e.no_payload) return kg_weight(g, name, m, rows, cols, 0);
    float *t = malloc(sizeof(float) * (size_t)rows * cols);
    if (!t) {
        err_set("out of memory for the permuted weight %s", name);
        g->e.failed = 1;
        return MIL_NONE;
    }
    for (int i = 0; i < rows; i++) {
        const int si = perm_rows ? kg_model_row(g, i) : i;
        for (int j = 0; j < cols; j++) t[(size_t)i * cols + j] = m[(size_t)si * cols + (perm_cols ? kg_model_row(g, j) : j)];
    }
    MilVal v = kg_weight(g, name, t, rows, cols, 0);
    free(t);
    return v;
}

void kg_attention_out_regions(Gen *g) {
    kg_out_region(g, "attn", g->QD);
    mark_perm(g, 1);
    kg_out_region(g, "q_rope", g->QD);
    mark_perm(g, 1);
    kg_out_region(g, "k_rope", g->KVD);
    kg_out_region(g, "v", g->KVD);
    kg_out_region(g, "xn", g->D);
    if (g->cfg->qk_norm) {
        kg_out_region(g, "q_pre", g->QD);
        mark_perm(g, 1);
        kg_out_region(g, "k_pre", g->KVD);
    }
}

int kg_attention_outs(Gen *g, const KgAttn *at, MilVal attn, MilVal v, MilVal xn, MilVal q_pre, MilVal k_pre,
                      MilVal *outs, int n) {
    outs[n++] = attn;
    outs[n++] = kg_from_heads(g, at->qr, "qr", "q_rope");
    outs[n++] = kg_from_heads(g, at->kr, "kr", "k_rope");
    outs[n++] = v;
    outs[n++] = xn;
    if (g->cfg->qk_norm) outs[n++] = q_pre, outs[n++] = k_pre;
    return n;
}

void kg_sdpa_bwd1_outputs(Gen *g) {
    kg_out_region(g, "dv", g->QD);
    kg_out_region(g, "probs", g->NH * g->S);
    kg_out_region(g, "dp", g->NH * g->S);
}

MilVal kg_sdpa_bwd1(Gen *g, MilVal da_flat) {
    MilEmit *e = &g->e;
    MilVal da = kg_to_heads(g, da_flat, g->NH, "da");
    MilVal q = kg_to_heads(g, kg_take(g, "q", "q"), g->NH, "q");
    MilVal k = kg_to_heads(g, kg_take(g, "k", "k"), g->NH, "k");
    MilVal v = kg_to_heads(g, kg_take(g, "v", "v"), g->NH, "v");
    MilVal P = kg_attn_probs(g, q, k, kg_mask_const(g), "at");
    MilVal dv = mil_emit_matmul(e, P, da, 1, 0, "dv_mm");  // Pᵀ·dA  [1,NH,S,HD]
    const int K = kg_inner(g, g->HD);
    MilVal dp = mil_emit_matmul(e, kg_pad_last(g, da, K, "dap"), kg_pad_last(g, v, K, "vp"), 0, 1,
                                "dp_mm");  // dA·Vᵀ  [1,NH,S,S]
    const int SC = g->NH * g->S;
    MilVal outs[3] = {
        kg_from_heads(g, dv, "dv", "dv"),
        kg_flat(g, P, SC, "probs"),
        kg_flat(g, dp, SC, "dp"),
    };
    return mil_emit_concat(e, 3, outs, 1, "out");
}

// mean(x²) is summed from (x/√C)² so the fp16 partial sums are already the mean
// and stay below the largest fp16 unless the rms itself exceeds 256.
MilVal kg_rms_inv(Gen *g, MilVal x, const char *p) {
    char n[5][MIL_NAME_MAX];
    const int C = mil_emit_dim(&g->e, x, 1);
    MilVal xs = mil_emit_mul_scalar(&g->e, x, 1.0f / sqrtf((float)C), kg_nm(n[0], p, "xs"));
    MilVal sq = mil_emit_mul(&g->e, xs, xs, kg_nm(n[1], p, "sq"));
    MilVal ms = mil_emit_reduce_sum(&g->e, sq, 1, (const int[]){1}, 1, kg_nm(n[2], p, "ms"));
    MilVal me = mil_emit_add_scalar(&g->e, ms, g->cfg->norm_eps, kg_nm(n[3], p, "me"));
    return mil_emit_pow(&g->e, me, -0.5f, kg_nm(n[4], p, "rr"));
}

MilVal kg_rmsnorm(Gen *g, MilVal x, MilVal w, const char *p, const char *name) {
    char n[MIL_NAME_MAX];
    MilVal xn = mil_emit_mul(&g->e, x, kg_rms_inv(g, x, p), kg_nm(n, p, "xr"));
    return mil_emit_mul(&g->e, xn, w, name);
}

MilVal kg_weight(Gen *g, const char *name, const float *m, int rows, int cols, int transpose) {
    const int shape[4] = {transpose ? cols : rows, transpose ? rows : cols, 1, 1};
    if (g->e.no_payload || !transpose) return mil_emit_const_blob(&g->e, name, m, 4, shape);
    float *t = malloc(sizeof(float) * (size_t)rows * cols);
    if (!t) {
        err_set("out of memory for the transposed weight %s [%d, %d]", name, rows, cols);
        g->e.failed = 1;
        return MIL_NONE;
    }
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) t[(size_t)j * rows + i] = m[(size_t)i * cols + j];
    MilVal v = mil_emit_const_blob(&g->e, name, t, 4, shape);
    free(t);
    return v;
}

MilVal kg_vector(Gen *g, const char *name, const float *v, int n) {
    return mil_emit_const_blob(&g->e, name, v, 4, (const int[]){1, n, 1, 1});
}
