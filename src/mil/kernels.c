// kernels: generators of the 10 dynamic-pipeline MIL kernels (see kernels.h for
// every input and output region), plus staging / reading by region name.
#include "mil/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/fp16.h"
#include "core/threads.h"
#include "mil/kernels_gen.h"
#include "mil/mil_blob.h"
#include "mil/mil_rules.h"
#include "model/lora.h"

static const char *KERNEL_NAMES[MIL_K_COUNT] = {
    "sdpaFwd", "woFwd", "ffnFused", "ffnBwdW2t", "ffnBwdW13t", "wotBwd", "sdpaBwd1", "sdpaBwd2", "qBwd", "kvBwd",
    "fwdAttn", "fwdFFN", "ffnBwd", "woSdpaBwd1", "qkvBwd", "rmsnormBwd", "finalNorm", "classifier", "vocabSoftmax",
    "decQKV", "decWo", "clsFwd", "clsBwd",
};

const char *mil_kernel_name(MilKernelKind kind) {
    return (kind >= 0 && kind < MIL_K_COUNT) ? KERNEL_NAMES[kind] : "?";
}

int mil_kernel_is_baked(MilKernelKind kind) { return kind >= MIL_K_DYN_COUNT && kind < MIL_K_CLS_FWD; }

static MilVal gen_sdpa_fwd(Gen *g) {
    const int qkn = g->cfg->qk_norm;
    kg_in_spatial(g, "xn", MIL_REG_ACT, g->D, g->S);
    kg_in_spatial(g, "Wq^T", MIL_REG_WT, g->D, g->QD);
    kg_mark_perm_input(g);
    kg_in_spatial(g, "Wk^T", MIL_REG_WT, g->D, g->KVD);
    kg_in_spatial(g, "Wv^T", MIL_REG_WT, g->D, g->KVD);
    if (qkn) {
        kg_in_spatial(g, "q_norm", MIL_REG_VEC, g->HD, 1);
        kg_in_spatial(g, "k_norm", MIL_REG_VEC, g->HD, 1);
    }
    kg_attention_out_regions(g);
    kg_declare_input(g);
    MilEmit *e = &g->e;

    MilVal xn = kg_take(g, "xn", "xn");
    MilVal xt = kg_act_rows(g, xn, "xn");
    MilVal q_mt = kg_rows_to_cols(g, kg_dyn_mm_rows(g, xt, kg_take(g, "Wq^T", "wq"), "q"), "q");  // [1,1,QD,S]
    MilVal k_mt = kg_rows_to_cols(g, kg_dyn_mm_rows(g, xt, kg_take(g, "Wk^T", "wk"), "k"), "k");  // [1,1,KVD,S]
    MilVal v_mt = kg_rows_to_cols(g, kg_dyn_mm_rows(g, xt, kg_take(g, "Wv^T", "wv"), "v"), "v");

    MilVal qnw = qkn ? kg_take(g, "q_norm", "qnw") : MIL_NONE, knw = qkn ? kg_take(g, "k_norm", "knw") : MIL_NONE;
    KgAttn at = kg_attention(g, q_mt, k_mt, v_mt, qnw, knw);

    MilVal attn = kg_from_heads(g, at.a, "at", "attn"), v_out = kg_flat(g, v_mt, g->KVD, "v_out");
    MilVal q_pre = qkn ? kg_flat(g, q_mt, g->QD, "q_pre") : MIL_NONE;
    MilVal k_pre = qkn ? kg_flat(g, k_mt, g->KVD, "k_pre") : MIL_NONE;
    MilVal outs[7];
    const int n = kg_attention_outs(g, &at, attn, v_out, xn, q_pre, k_pre, outs, 0);
    return mil_emit_concat(e, n, outs, 1, "out");
}

// ---------------------------------------------------------------------------------------------
// woFwd, ffnFused

static MilVal gen_wo_fwd(Gen *g) {
    kg_in_spatial(g, "attn", MIL_REG_ACT, g->QD, g->S);
    kg_in_spatial(g, "Wo^T", MIL_REG_WT, g->QD, g->D);
    kg_out_region(g, "o", g->D);
    kg_declare_input(g);
    MilVal at = kg_act_rows(g, kg_take(g, "attn", "a"), "a");
    return kg_dyn_mm(g, at, kg_take(g, "Wo^T", "wo"), "o", "out");
}

static MilVal gen_ffn_fused(Gen *g) {
    kg_in_spatial(g, "x2n", MIL_REG_ACT, g->D, g->S);
    kg_in_spatial(g, "x2", MIL_REG_ACT, g->D, g->S);
    kg_in_spatial(g, "W1^T", MIL_REG_WT, g->D, g->H);
    kg_in_spatial(g, "W3^T", MIL_REG_WT, g->D, g->H);
    kg_in_spatial(g, "W2^T", MIL_REG_WT, g->H, g->D);
    kg_out_region(g, "x_next", g->D);
    kg_out_region(g, "h1", g->H);
    kg_out_region(g, "h3", g->H);
    kg_out_region(g, "g", g->H);
    kg_declare_input(g);
    MilEmit *e = &g->e;

    MilVal xt = kg_act_rows(g, kg_take(g, "x2n", "x2n"), "x2n");
    MilVal x2 = kg_take(g, "x2", "x2");
    MilVal h1 = kg_dyn_mm(g, xt, kg_take(g, "W1^T", "w1"), "h1", "h1");  // [1,H,1,S]
    MilVal h3 = kg_dyn_mm(g, xt, kg_take(g, "W3^T", "w3"), "h3", "h3");
    MilVal sg = mil_emit_sigmoid(e, h1, "sig");
    MilVal si = mil_emit_mul(e, h1, sg, "silu");
    MilVal gt = mil_emit_mul(e, si, h3, "gate");
    // f = W2·g with W2ᵀ staged, the weight the second operand as in every other kernel
    MilVal f = kg_dyn_mm(g, kg_act_rows(g, gt, "gate"), kg_take(g, "W2^T", "w2"), "f", "f");
    if (g->cfg->res_scale != 1.0f) f = mil_emit_mul_scalar(e, f, g->cfg->res_scale, "f_scaled");
    MilVal xnext = mil_emit_add(e, x2, f, "x_next");
    return mil_emit_concat(e, 4, (const MilVal[]){xnext, h1, h3, gt}, 1, "out");
}

// ---------------------------------------------------------------------------------------------
// backward linears: y = Mᵀ·dy with M staged as is

// One activation and one weight: out = Wᵀ·act
static MilVal gen_bwd_1(Gen *g, const char *act, int C, const char *w, int OC, const char *out) {
    kg_in_spatial(g, act, MIL_REG_ACT, C, g->S);
    kg_in_spatial(g, w, MIL_REG_W, C, OC);
    kg_out_region(g, out, OC);
    kg_declare_input(g);
    MilVal at = kg_act_rows(g, kg_take(g, act, "dy"), "dy");
    return kg_dyn_mm(g, at, kg_take(g, w, "w"), "y", "out");
}

// Two activations, two weights: out = Waᵀ·a + Wbᵀ·b (summed before the layout change)
static MilVal gen_bwd_2(Gen *g, const char *a, const char *b, int C, const char *wa, const char *wb, int OC) {
    kg_in_spatial(g, a, MIL_REG_ACT, C, g->S);
    kg_in_spatial(g, b, MIL_REG_ACT, C, g->S);
    kg_in_spatial(g, wa, MIL_REG_W, C, OC);
    kg_in_spatial(g, wb, MIL_REG_W, C, OC);
    kg_out_region(g, "dx", OC);
    kg_declare_input(g);
    MilVal ya = kg_dyn_mm_rows(g, kg_act_rows(g, kg_take(g, a, "da"), "da"), kg_take(g, wa, "wa"), "ya");
    MilVal yb = kg_dyn_mm_rows(g, kg_act_rows(g, kg_take(g, b, "db"), "db"), kg_take(g, wb, "wb"), "yb");
    MilVal s = mil_emit_add(&g->e, ya, yb, "y_sum");
    return kg_flat(g, kg_rows_to_cols(g, s, "y"), OC, "out");
}

// ---------------------------------------------------------------------------------------------
// the device head: a chunk of the classifier's rows, staged

static int head_rows(const Gen *g) { return kg_chunk_rows(g, 1); }

static MilVal gen_cls_fwd(Gen *g) {
    const int rows = head_rows(g);
    kg_in_spatial(g, "xf", MIL_REG_ACT, g->D, g->S);
    kg_in_spatial(g, "E^T", MIL_REG_WT, g->D, rows);
    kg_out_region(g, "logits", rows);
    kg_declare_input(g);
    MilVal xt = kg_act_rows(g, kg_take(g, "xf", "xf"), "xf");
    return kg_dyn_mm(g, xt, kg_take(g, "E^T", "e"), "l", "out");
}

void mil_head_chunks(int vocab, int S, int *n, int *rows) {
    const int row = MIL_RULE_ROW_BYTES / 2, width = (S + row - 1) / row * row;  // clsFwd's padded window
    int most = (MIL_RULE_DIM_MAX - 1) / row * row - width;  // the input's width, rounded up, stays below the limit
    if (most < row || most > MIL_MAX_IN_CHANNELS) most = MIL_MAX_IN_CHANNELS;  // a window that long breaks it anyway
    *n = (vocab + most - 1) / most;
    if (*n < 1) *n = 1;
    *rows = (vocab + *n - 1) / *n;
}

// ---------------------------------------------------------------------------------------------
// attention backward (weight-free; inputs stacked on channels)

static MilVal gen_sdpa_bwd1(Gen *g) {
    kg_in_channels(g, "q", g->QD);
    kg_in_channels(g, "k", g->QD);
    kg_in_channels(g, "v", g->QD);
    kg_in_channels(g, "da", g->QD);
    kg_sdpa_bwd1_outputs(g);
    kg_declare_input(g);
    return kg_sdpa_bwd1(g, kg_take(g, "da", "da"));
}

static MilVal gen_sdpa_bwd2(Gen *g) {
    const int SC = g->NH * g->S;
    kg_in_channels(g, "probs", SC);
    kg_in_channels(g, "dp", SC);
    kg_in_channels(g, "q", g->QD);
    kg_in_channels(g, "k", g->QD);
    kg_out_region(g, "dq", g->QD);
    kg_out_region(g, "dk", g->QD);
    kg_declare_input(g);
    MilEmit *e = &g->e;
    const int hs[4] = {1, g->NH, g->S, g->S};
    MilVal P = mil_emit_reshape(e, kg_take(g, "probs", "p_in"), 4, hs, "p");
    MilVal dP = mil_emit_reshape(e, kg_take(g, "dp", "dp_in"), 4, hs, "dp");
    MilVal q = kg_to_heads(g, kg_take(g, "q", "q"), g->NH, "q");
    MilVal k = kg_to_heads(g, kg_take(g, "k", "k"), g->NH, "k");
    MilVal pdp = mil_emit_mul(e, P, dP, "pdp");
    MilVal rs = mil_emit_reduce_sum(e, pdp, 1, (const int[]){-1}, 1, "rowsum");  // [1,NH,S,1]
    MilVal df = mil_emit_sub(e, dP, rs, "dp_c");
    MilVal ds0 = mil_emit_mul(e, df, P, "ds0");
    MilVal ds = mil_emit_mul_scalar(e, ds0, 1.0f / sqrtf((float)g->HD), "ds");
    MilVal dq = mil_emit_matmul(e, ds, k, 0, 0, "dq_mm");  // dS·K   [1,NH,S,HD]
    MilVal dk = mil_emit_matmul(e, ds, q, 1, 0, "dk_mm");  // dSᵀ·Q  [1,NH,S,HD]
    MilVal outs[2] = {kg_from_heads(g, dq, "dq", "dq"), kg_from_heads(g, dk, "dk", "dk")};
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

// The smallest output surface the ANE evaluates: zero channels after the
// result's, in no region.
static MilVal pad_output(Gen *g, MilVal res) {
    const int min_c = (MIL_RULE_MIN_BYTES / 2 + g->S - 1) / g->S;
    if (res == MIL_NONE || g->out_cursor >= min_c) return res;
    const int extra = min_c - g->out_cursor;
    float *z = g->e.no_payload ? NULL : calloc((size_t)extra * g->S, sizeof(float));
    if (!g->e.no_payload && !z) {
        g->e.failed = 1;
        err_set("out of memory for the output padding");
        return MIL_NONE;
    }
    MilVal zv = mil_emit_const_blob(&g->e, "out_zpad", z, 4, (const int[]){1, extra, 1, g->S});
    free(z);
    g->out_cursor = min_c;
    return mil_emit_concat(&g->e, 2, (const MilVal[]){res, zv}, 1, "out_padded");
}

// The forms of a kernel (build's `form` bits): padded to the ANE's rules, and
// GQA by the NH-input concat of single kv heads instead of R whole copies.
enum { FORM_PAD = 1, FORM_GQA_CONCAT = 2, FORM_ANE = FORM_PAD };

// 1 if kind's GQA runs on permuted query heads: the attention kernels of a
// model with R > 1, unless LoRA adapts Wq or Wo (their adapters are staged in
// the model's order).
static int gqa_permuted(MilKernelKind kind, const Config *cfg, const MilBaked *w, int form) {
    if (form & FORM_GQA_CONCAT || cfg->n_heads == cfg->n_kv_heads) return 0;
    if (kind == MIL_K_SDPA_FWD) return 1;
    const int lora_qo = w && w->lora_rank > 0 && (w->lora_targets & (1u << LORA_Q | 1u << LORA_O));
    return kind == MIL_K_ATTN_FWD && !lora_qo;
}

static int build(MilKernelKind kind, const Config *cfg, int S, MilDialect dialect, const MilBaked *w, int with_blobs,
                 int form, MilKernel *out) {
    const int pad = form & FORM_PAD;
    memset(out, 0, sizeof *out);
    if (kind < 0 || kind >= MIL_K_COUNT) return err_set("mil kernel: unknown kind %d", (int)kind);
    if (config_validate(cfg, cfg->name[0] ? cfg->name : "config") != 0) return -1;
    if (S < 1) return err_set("mil kernel %s: window S must be positive, found %d", KERNEL_NAMES[kind], S);
    if (kind == MIL_K_SDPA_FWD && cfg->qk_norm && cfg->head_dim > cfg->dim)
        return err_set("mil kernel %s: QK-norm weights are staged as one column of the D=%d channels; head_dim %d "
                       "does not fit", KERNEL_NAMES[kind], cfg->dim, cfg->head_dim);
    if (mil_kernel_is_baked(kind) && with_blobs && !w)
        return err_set("mil kernel %s bakes its weights: build it with mil_kernel_build_baked", KERNEL_NAMES[kind]);
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
    g.w = w;
    g.pad = pad;
    g.gqa_perm = gqa_permuted(kind, cfg, w, form);
    if (g.gqa_perm) out->gqa_r = g.R, out->gqa_nkv = g.NKV, out->gqa_hd = g.HD;
    g.S_real = S;
    g.S = pad ? (S + MIL_RULE_ROW_BYTES / 2 - 1) / (MIL_RULE_ROW_BYTES / 2) * (MIL_RULE_ROW_BYTES / 2) : S;
    out->kind = kind;
    out->name = KERNEL_NAMES[kind];
    out->S = S;
    out->S_pad = out->out_w = g.S;

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
    case MIL_K_CLS_FWD: res = gen_cls_fwd(&g); break;
    case MIL_K_CLS_BWD: res = gen_bwd_1(&g, "dl", head_rows(&g), "E", g.D, "dx"); break;
    default: res = mil_kernel_gen_static(&g, kind); break;
    }
    if (pad) res = pad_output(&g, res);
    out->out_c = g.out_cursor;
    int rc = mil_emit_finish(&g.e, res, &out->mil, &out->mil_len);
    if (rc == 0) {
        // the builder's own shape of the result must be the declared output layout
        const MilValue *r = mil_emit_value(&g.e, res);
        if (r->rank != 4 || r->shape[0] != 1 || r->shape[1] != out->out_c || r->shape[2] != 1 || r->shape[3] != g.S)
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
    out->dialect = dialect;
    if (rc == 0 && with_blobs) {  // the other dialect's text (no weight bytes are made twice)
        MilKernel alt;
        rc = build(kind, cfg, S, dialect == MIL_DIALECT_IOS18 ? MIL_DIALECT_IOS16 : MIL_DIALECT_IOS18, w, 0, form, &alt);
        if (rc == 0) out->mil_alt = alt.mil, alt.mil = NULL;
        mil_kernel_free(&alt);
    }
    if (rc != 0) {
        err_wrap("mil kernel %s (%s, S=%d)", KERNEL_NAMES[kind], cfg->name[0] ? cfg->name : "config", S);
        mil_kernel_free(out);
        return -1;
    }
    return 0;
}

int mil_kernel_build_dialect(MilKernelKind kind, const Config *cfg, int S, MilDialect dialect, MilKernel *out) {
    return build(kind, cfg, S, dialect, NULL, 1, FORM_ANE, out);
}

int mil_kernel_build_text(MilKernelKind kind, const Config *cfg, int S, MilDialect dialect, MilKernel *out) {
    return build(kind, cfg, S, dialect, NULL, 0, FORM_ANE, out);
}

int mil_kernel_build_baked(MilKernelKind kind, const Config *cfg, int S, const MilBaked *w, MilKernel *out) {
    return build(kind, cfg, S, MIL_DIALECT_IOS18, w, 1, FORM_ANE, out);
}

int mil_kernel_build_baked_dialect(MilKernelKind kind, const Config *cfg, int S, MilDialect dialect,
                                   const MilBaked *w, MilKernel *out) {
    return build(kind, cfg, S, dialect, w, 1, FORM_ANE, out);
}

int mil_kernel_build_chunk(MilKernelKind kind, const Config *cfg, int S, MilDialect dialect, int rows,
                           MilKernel *out) {
    const MilBaked w = {.rows = rows};
    return build(kind, cfg, S, dialect, &w, 1, FORM_ANE, out);
}

int mil_kernel_build_baked_text(MilKernelKind kind, const Config *cfg, int S, MilDialect dialect, const MilBaked *w,
                                MilKernel *out) {
    return build(kind, cfg, S, dialect, w, 0, FORM_ANE, out);
}

int mil_kernel_build_unpadded(MilKernelKind kind, const Config *cfg, int S, const MilBaked *w, MilKernel *out) {
    return build(kind, cfg, S, MIL_DIALECT_IOS18, w, 1, FORM_GQA_CONCAT, out);
}

int mil_kernel_build_gqa_concat(MilKernelKind kind, const Config *cfg, int S, const MilBaked *w, MilKernel *out) {
    return build(kind, cfg, S, MIL_DIALECT_IOS18, w, 1, FORM_PAD | FORM_GQA_CONCAT, out);
}

int mil_kernel_model_row(const MilKernel *k, int c) {
    if (!k->gqa_r) return c;
    const int p = c / k->gqa_hd, h = (p % k->gqa_nkv) * k->gqa_r + p / k->gqa_nkv;
    return h * k->gqa_hd + c % k->gqa_hd;
}

int mil_kernel_build(MilKernelKind kind, const Config *cfg, int S, MilKernel *out) {
    return mil_kernel_build_dialect(kind, cfg, S, MIL_DIALECT_IOS18, out);
}

void mil_kernel_free(MilKernel *k) {
    free(k->mil);
    free(k->mil_alt);
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

// Rows of a region converted on the pool (each row exactly as on one thread):
// fp32 rows (nw apart) into surface rows (W apart), or back.
typedef struct {
    const MilKernel *k;
    const MilRegion *r;
    size_t W;
    const float *from32;     // staging: these rows ...
    uint16_t *to16;          // ... into the surface
    const uint16_t *from16;  // fetching: surface rows ...
    float *to32;             // ... into these
} RowJob;

static void rows_run(void *ctx, int tid, int nt) {
    const RowJob *j = ctx;
    const size_t nw = (size_t)j->r->nw;
    size_t b, e;
    threads_range((size_t)j->r->nc, tid, nt, 1, &b, &e);
    for (size_t i = b; i < e; i++) {
        const size_t m = j->r->perm ? (size_t)mil_kernel_model_row(j->k, (int)i) : i;  // the fp32 side's row
        if (j->to16) fp16_from_f32_array(j->to16 + i * j->W, j->from32 + m * nw, nw);
        else fp16_to_f32_array(j->to32 + m * nw, j->from16 + i * j->W, nw);
    }
}

static void convert_rows(const RowJob *j) {
    if ((size_t)j->r->nc * j->r->nw < (1u << 16)) rows_run((void *)j, 0, 1);  // small: not worth a handoff
    else threads_run(rows_run, (void *)j);
}

int mil_kernel_stage(const MilKernel *k, uint16_t *in, const char *name, const float *src) {
    const MilRegion *r = mil_kernel_input(k, name);
    if (!r) return err_set("mil kernel %s: no input region '%s'", k->name, name);
    const size_t W = (size_t)k->in_w;
    if (r->kind == MIL_REG_WT) {  // row i = column i of M [nw][nc]
        float *perm = NULL;
        if (r->perm) {  // M's rows (the block's columns) in the kernel's head order
            perm = malloc(sizeof(float) * (size_t)r->nw * r->nc);
            if (!perm) return err_set("mil kernel %s: out of memory staging %s", k->name, name);
            for (int c = 0; c < r->nw; c++)
                memcpy(perm + (size_t)c * r->nc, src + (size_t)mil_kernel_model_row(k, c) * r->nc,
                       sizeof(float) * (size_t)r->nc);
        }
        fp16_from_f32_transposed(in + (size_t)r->c0 * W + r->w0, W, perm ? perm : src, (size_t)r->nw, (size_t)r->nc);
        free(perm);
        return 0;
    }
    const RowJob j = {k, r, W, src, in + (size_t)r->c0 * W + r->w0, NULL, NULL};
    convert_rows(&j);
    return 0;
}

int mil_kernel_fetch(const MilKernel *k, const uint16_t *out, const char *name, float *dst) {
    const MilRegion *r = mil_kernel_output(k, name);
    if (!r) return err_set("mil kernel %s: no output region '%s'", k->name, name);
    const size_t W = (size_t)k->out_w;
    const RowJob j = {k, r, W, NULL, NULL, out + (size_t)r->c0 * W + r->w0, dst};
    convert_rows(&j);
    return 0;
}

int mil_kernel_rows(const MilKernel *k, uint16_t *s, const char *name, int output, int nc, int nw, F16Rows *rows) {
    const MilRegion *r = output ? mil_kernel_output(k, name) : mil_kernel_input(k, name);
    const char *side = output ? "output" : "input";
    if (!r) return err_set("mil kernel %s: no %s region '%s'", k->name, side, name);
    if (r->kind != MIL_REG_ACT || r->perm || r->nc != nc || r->nw != nw)
        return err_set("mil kernel %s: %s region '%s' is [%d,%d]%s, expected activations [%d,%d] in the model's order",
                       k->name, side, name, r->nc, r->nw, r->perm ? " in permuted head order" : "", nc, nw);
    rows->ld = (size_t)(output ? k->out_w : k->in_w);
    rows->p = s + (size_t)r->c0 * rows->ld + r->w0;
    return 0;
}

// The row of source region s holding model row i (its permuted head order undone).
static int source_row(const MilKernel *k, const MilRegion *s, int i) {
    if (!s->perm) return i;
    const int hd = k->gqa_hd, h = i / hd, p = (h % k->gqa_r) * k->gqa_nkv + h / k->gqa_r;
    return p * hd + i % hd;
}

int mil_kernel_copy(const MilKernel *dst_k, uint16_t *dst, const char *dst_name, const MilKernel *src_k,
                    const uint16_t *src, const char *src_name) {
    const MilRegion *d = mil_kernel_input(dst_k, dst_name), *s = mil_kernel_output(src_k, src_name);
    if (!d) return err_set("mil kernel %s: no input region '%s'", dst_k->name, dst_name);
    if (!s) return err_set("mil kernel %s: no output region '%s'", src_k->name, src_name);
    if (d->nc != s->nc || d->nw != s->nw || d->kind != MIL_REG_ACT)
        return err_set("mil kernel copy %s.%s <- %s.%s: regions differ ([%d,%d] vs [%d,%d])", dst_k->name, dst_name,
                       src_k->name, src_name, d->nc, d->nw, s->nc, s->nw);
    if (d->perm) return err_set("mil kernel copy %s.%s: a destination in permuted head order", dst_k->name, dst_name);
    for (int i = 0; i < d->nc; i++)
        memcpy(dst + (size_t)(d->c0 + i) * dst_k->in_w + d->w0,
               src + (size_t)(s->c0 + source_row(src_k, s, i)) * src_k->out_w + s->w0, sizeof(uint16_t) * (size_t)d->nw);
    return 0;
}

int mil_kernel_copy_heads(const MilKernel *dst_k, uint16_t *dst, const char *dst_name, const MilKernel *src_k,
                          const uint16_t *src, const char *src_name, int head_rows, int repeat) {
    const MilRegion *d = mil_kernel_input(dst_k, dst_name), *s = mil_kernel_output(src_k, src_name);
    if (!d) return err_set("mil kernel %s: no input region '%s'", dst_k->name, dst_name);
    if (!s) return err_set("mil kernel %s: no output region '%s'", src_k->name, src_name);
    if (head_rows < 1 || repeat < 1 || s->nc % head_rows || d->nc != s->nc * repeat || d->nw != s->nw ||
        d->kind != MIL_REG_ACT)
        return err_set("mil kernel copy %s.%s <- %s.%s: [%d,%d] is not %d repeats of [%d,%d] in heads of %d",
                       dst_k->name, dst_name, src_k->name, src_name, d->nc, d->nw, repeat, s->nc, s->nw, head_rows);
    for (int i = 0; i < d->nc; i++) {
        const int h = i / head_rows, row = source_row(src_k, s, (h / repeat) * head_rows + i % head_rows);
        memcpy(dst + (size_t)(d->c0 + i) * dst_k->in_w + d->w0, src + (size_t)(s->c0 + row) * src_k->out_w + s->w0,
               sizeof(uint16_t) * (size_t)d->nw);
    }
    return 0;
}
