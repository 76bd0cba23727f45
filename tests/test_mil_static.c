// The static pipelines' kernels (src/mil/kernels_static.c), each run by the
// MIL interpreter in its fp32 reference mode against the same computation done
// by src/cpu/ops, on tiny-mha, tiny-gqa, tiny-qwen3 and a GQA-4 model.
//
// Bound. In fp32 mode nothing is rounded but the program's constants: the
// baked weights (the test rounds the model's weights to fp16 first, so both
// sides use the same values) and the fp16 literals (1/√D and 1/√HD scales,
// eps). Each literal is off by at most u = 2^-11 relative, and a result
// depends on at most two of them multiplicatively (1/√D inside the RMSNorm,
// 1/√HD in the scores), so every output tensor is held to 4u relative to its
// largest element (test_rel_err). A wrong layout, transpose, head mapping or
// formula is O(1). The fp16 behaviour of the whole chain is checked by the
// pipelines' gradient tests (tests/test_static.c).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/fp16.h"
#include "core/rng.h"
#include "cpu/ops.h"
#include "mil/kernels.h"
#include "mil/mil_blob.h"
#include "mil/mil_interp.h"
#include "model/lora.h"
#include "model/params.h"
#include "test.h"

#define BOUND (4.0 / 2048.0)

typedef struct {
    Config c;
    int S, D, H, QD, KVD, HD, NH, NKV;
    Params p;
    MilBaked w;  // layer 0
    Rng rng;
} Model;

static void model_init(Model *m, int which) {
    const char *names[3] = {"tiny-mha", "tiny-gqa", "tiny-qwen3"};
    const int S[4] = {16, 16, 24, 20};
    CHECK_OR_ABORT(config_preset(&m->c, which < 3 ? names[which] : "tiny-gqa") == 0);
    if (which == 3) {  // GQA-4: 8 query heads over 2 kv heads, QK-norm with interleaved RoPE
        snprintf(m->c.name, sizeof m->c.name, "tiny-gqa4");
        m->c.n_heads = 8, m->c.n_kv_heads = 2, m->c.head_dim = 8, m->c.hidden = 96;
        m->c.qk_norm = 1, m->c.rope_layout = ROPE_INTERLEAVED;
    }
    m->S = S[which];
    m->D = m->c.dim, m->H = m->c.hidden, m->QD = config_q_dim(&m->c), m->KVD = config_kv_dim(&m->c);
    m->HD = m->c.head_dim, m->NH = m->c.n_heads, m->NKV = m->c.n_kv_heads;
    CHECK_OR_ABORT(params_init(&m->p, &m->c) == 0);
    params_init_random(&m->p, 3);
    rng_init(&m->rng, 13);
    for (int i = 0; i < m->p.n_tensors; i++) {  // matrices 4x larger; norms 1 + 0.3 N(0,1) per channel and layer
        const TensorDesc *d = &m->p.t[i];
        float *w = m->p.data + d->offset;
        for (size_t k = 0; k < d->numel; k++) w[k] = d->is_norm ? 1.0f + 0.3f * rng_normal(&m->rng) : 4.0f * w[k];
    }
    for (size_t i = 0; i < m->p.n; i++) m->p.data[i] = fp16_to_f32(fp16_from_f32(m->p.data[i]));  // fp16 values
    const ParamViews *v = &m->p.v;
    m->w = (MilBaked){.wq = v->wq, .wk = v->wk, .wv = v->wv, .wo = v->wo, .w1 = v->w1, .w2 = v->w2, .w3 = v->w3,
                      .rms_att = v->rms_att, .rms_ffn = v->rms_ffn, .q_norm = v->q_norm, .k_norm = v->k_norm,
                      .rms = v->rms_att, .cls = v->wcls};
    rng_init(&m->rng, 9);
}

static float *randn(Model *m, size_t n, float scale) {
    float *x = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) x[i] = scale * rng_normal(&m->rng);
    return x;
}

// Runs kernel k in fp32 mode on inputs given per input region (in k->in order).
static float *run(const MilKernel *k, const float *const *inputs) {
    MilWeightFile wf[32];
    for (int i = 0; i < k->n_blobs; i++) wf[i] = (MilWeightFile){k->blobs[i].path, k->blobs[i].data, k->blobs[i].size};
    MilProgram *prog;
    if (!CHECKF(mil_program_compile(k->mil, wf, k->n_blobs, &prog) == 0, "%s: %s", k->name, err_msg())) return NULL;
    float *in = calloc((size_t)k->in_c * k->in_w, sizeof(float)), *out = calloc((size_t)k->out_c * k->out_w, 4);
    for (int r = 0; r < k->n_in; r++)
        for (int i = 0; i < k->in[r].nc; i++)
            memcpy(in + (size_t)(k->in[r].c0 + i) * k->in_w + k->in[r].w0, inputs[r] + (size_t)i * k->in[r].nw,
                   sizeof(float) * k->in[r].nw);
    CHECKF(mil_program_run_f32(prog, in, out) == 0, "%s: %s", k->name, err_msg());
    mil_program_free(prog);
    free(in);
    return out;
}

static void expect(const MilKernel *k, const float *out, const char *region, const float *want, const Model *m) {
    const MilRegion *r = mil_kernel_output(k, region);
    if (!CHECKF(r != NULL, "%s has no output %s", k->name, region)) return;
    const double e = test_rel_err(out + (size_t)r->c0 * k->out_w, want, (size_t)r->nc * k->out_w);
    CHECKF(e <= BOUND, "%s %s %s: relative error %.3g > %.3g", m->c.name, k->name, region, e, BOUND);
}

static int build(Model *m, MilKernelKind kind, MilKernel *k) {
    return CHECKF(mil_kernel_build_unpadded(kind, &m->c, m->S, &m->w, k) == 0, "%s %s: %s", m->c.name,
                  mil_kernel_name(kind), err_msg());
}

static void check_attn_fwd(Model *m) {
    const int S = m->S, D = m->D, QD = m->QD, KVD = m->KVD;
    MilKernel k;
    if (!build(m, MIL_K_ATTN_FWD, &k)) return;
    float *x = randn(m, (size_t)D * S, 1.0f), *out = run(&k, (const float *[]){x});
    float *xn = malloc(4 * D * S), *rstd = malloc(4 * S), *qp = malloc(4 * QD * S), *kp = malloc(4 * KVD * S);
    float *q = malloc(4 * QD * S), *kk = malloc(4 * KVD * S), *v = malloc(4 * KVD * S), *a = malloc(4 * QD * S);
    float *probs = malloc(4 * (size_t)m->NH * S * S), *o = malloc(4 * D * S), *hr = malloc(4 * (m->NH + m->NKV) * S);
    rmsnorm_forward(xn, rstd, x, m->w.rms_att, D, S, m->c.norm_eps);
    linear_forward(qp, m->w.wq, xn, QD, D, S);
    linear_forward(kp, m->w.wk, xn, KVD, D, S);
    linear_forward(v, m->w.wv, xn, KVD, D, S);
    memcpy(q, qp, 4 * QD * S), memcpy(kk, kp, 4 * KVD * S);
    if (m->c.qk_norm) {
        headnorm_forward(q, hr, qp, m->w.q_norm, m->NH, m->HD, S, m->c.norm_eps);
        headnorm_forward(kk, hr, kp, m->w.k_norm, m->NKV, m->HD, S, m->c.norm_eps);
    }
    RopeTable rt;
    rope_table_init(&rt, S, m->HD, m->c.rope_theta);
    rope_forward(q, &rt, m->NH, m->c.rope_layout);
    rope_forward(kk, &rt, m->NKV, m->c.rope_layout);
    attention_forward(a, probs, q, kk, v, m->NH, m->NKV, m->HD, S);
    linear_forward(o, m->w.wo, a, D, QD, S);
    if (out) {
        expect(&k, out, "xn", xn, m), expect(&k, out, "q_rope", q, m), expect(&k, out, "k_rope", kk, m);
        expect(&k, out, "v", v, m), expect(&k, out, "attn", a, m), expect(&k, out, "o", o, m);
        if (m->c.qk_norm) expect(&k, out, "q_pre", qp, m), expect(&k, out, "k_pre", kp, m);
    }
    rope_table_free(&rt);
    free(x), free(out), free(xn), free(rstd), free(qp), free(kp), free(q), free(kk), free(v), free(a), free(probs);
    free(o), free(hr);
    mil_kernel_free(&k);
}

static void check_ffn(Model *m) {
    const int S = m->S, D = m->D, H = m->H;
    MilKernel f, b;
    if (!build(m, MIL_K_FFN_FWD, &f) || !build(m, MIL_K_FFN_BWD, &b)) return;
    float *x2 = randn(m, (size_t)D * S, 1.0f), *out = run(&f, (const float *[]){x2});
    float *xn = malloc(4 * D * S), *rstd = malloc(4 * S), *h1 = malloc(4 * H * S), *h3 = malloc(4 * H * S);
    float *g = malloc(4 * H * S), *y = malloc(4 * D * S);
    rmsnorm_forward(xn, rstd, x2, m->w.rms_ffn, D, S, m->c.norm_eps);
    linear_forward(h1, m->w.w1, xn, H, D, S);
    linear_forward(h3, m->w.w3, xn, H, D, S);
    swiglu_forward(g, h1, h3, (size_t)H * S);
    linear_forward(y, m->w.w2, g, D, H, S);
    if (out) {
        expect(&f, out, "x2n", xn, m), expect(&f, out, "h1", h1, m), expect(&f, out, "h3", h3, m);
        expect(&f, out, "g", g, m), expect(&f, out, "f", y, m);
    }
    // backward from a random gradient at f
    float *dffn = randn(m, (size_t)D * S, 1.0f), *dg = malloc(4 * H * S), *dh1 = malloc(4 * H * S);
    float *dh3 = malloc(4 * H * S), *dx = malloc(4 * D * S);
    float *bo = run(&b, (const float *[]){dffn, h1, h3});
    linear_backward(dg, NULL, dffn, m->w.w2, g, D, H, S, 0);
    swiglu_backward(dh1, dh3, dg, h1, h3, (size_t)H * S);
    linear_backward(dx, NULL, dh1, m->w.w1, xn, H, D, S, 0);
    linear_backward(dx, NULL, dh3, m->w.w3, xn, H, D, S, 1);
    if (bo) expect(&b, bo, "dh1", dh1, m), expect(&b, bo, "dh3", dh3, m), expect(&b, bo, "dx", dx, m);
    free(x2), free(out), free(xn), free(rstd), free(h1), free(h3), free(g), free(y);
    free(dffn), free(dg), free(dh1), free(dh3), free(dx), free(bo);
    mil_kernel_free(&f);
    mil_kernel_free(&b);
}

// woSdpaBwd1 (da = Woᵀ·dy, probs, dv, dp) and qkvBwd, with q, k, v already tiled to NH heads.
static void check_attn_bwd(Model *m) {
    const int S = m->S, D = m->D, QD = m->QD, KVD = m->KVD, NH = m->NH, HD = m->HD;
    MilKernel b1, qkv;
    if (!build(m, MIL_K_WO_SDPA_BWD1, &b1) || !build(m, MIL_K_QKV_BWD, &qkv)) return;
    float *q = randn(m, (size_t)QD * S, 1.0f), *k = randn(m, (size_t)QD * S, 1.0f), *v = randn(m, (size_t)QD * S, 1.0f);
    float *dy = randn(m, (size_t)D * S, 1.0f), *out = run(&b1, (const float *[]){q, k, v, dy});
    float *da = malloc(4 * QD * S), *probs = malloc(4 * (size_t)NH * S * S), *a = malloc(4 * QD * S);
    float *dv = calloc((size_t)QD * S, 4), *dp = calloc((size_t)NH * S * S, 4);
    linear_backward(da, NULL, dy, m->w.wo, v, D, QD, S, 0);
    attention_forward(a, probs, q, k, v, NH, NH, HD, S);
    for (int h = 0; h < NH; h++)
        for (int t = 0; t < S; t++)
            for (int s = 0; s < S; s++) {
                const float p = probs[((size_t)h * S + t) * S + s];
                double acc = 0;
                for (int i = 0; i < HD; i++) {
                    dv[(size_t)(h * HD + i) * S + s] += p * da[(size_t)(h * HD + i) * S + t];
                    acc += (double)da[(size_t)(h * HD + i) * S + t] * v[(size_t)(h * HD + i) * S + s];
                }
                dp[((size_t)h * S + t) * S + s] = (float)acc;
            }
    if (out) expect(&b1, out, "probs", probs, m), expect(&b1, out, "dp", dp, m), expect(&b1, out, "dv", dv, m);
    float *dq = randn(m, (size_t)QD * S, 1.0f), *dk = randn(m, (size_t)KVD * S, 1.0f), *dvv = randn(m, (size_t)KVD * S, 1.0f);
    float *dx = malloc(4 * D * S), *qo = run(&qkv, (const float *[]){dq, dk, dvv});
    linear_backward(dx, NULL, dq, m->w.wq, q, QD, D, S, 0);
    linear_backward(dx, NULL, dk, m->w.wk, q, KVD, D, S, 1);
    linear_backward(dx, NULL, dvv, m->w.wv, q, KVD, D, S, 1);
    if (qo) expect(&qkv, qo, "dx", dx, m);
    free(q), free(k), free(v), free(dy), free(out), free(da), free(probs), free(a), free(dv), free(dp);
    free(dq), free(dk), free(dvv), free(dx), free(qo);
    mil_kernel_free(&b1);
    mil_kernel_free(&qkv);
}

// The extras: RMSNorm backward, the final norm, a classifier chunk, the chunk softmax.
static void check_extras(Model *m) {
    const int S = m->S, D = m->D, V = m->c.vocab;
    MilKernel nb, fn, cl, sm;
    m->w.rms = m->w.rms_ffn;
    m->w.row0 = V / 4, m->w.rows = V / 2;  // a chunk from the middle of the table
    if (!build(m, MIL_K_RMSNORM_BWD, &nb) || !build(m, MIL_K_FINAL_NORM, &fn) || !build(m, MIL_K_CLASSIFIER, &cl) ||
        !build(m, MIL_K_VOCAB_SOFTMAX, &sm))
        return;
    float *dy = randn(m, (size_t)D * S, 1.0f), *x = randn(m, (size_t)D * S, 0.02f);  // embedding-sized x
    float *y = malloc(4 * D * S), *rstd = malloc(4 * S), *dx = malloc(4 * D * S), *dw = calloc(D, 4);
    rmsnorm_forward(y, rstd, x, m->w.rms, D, S, m->c.norm_eps);
    rmsnorm_backward(dx, dw, dy, x, m->w.rms, rstd, D, S);
    float *o1 = run(&nb, (const float *[]){dy, x}), *o2 = run(&fn, (const float *[]){x});
    if (o1) expect(&nb, o1, "dx", dx, m);
    if (o2) expect(&fn, o2, "xf", y, m);
    const int R = m->w.rows;
    float *lg = malloc(4 * (size_t)R * S), *o3 = run(&cl, (const float *[]){y});
    linear_forward(lg, m->p.v.wcls + (size_t)m->w.row0 * D, y, R, D, S);
    if (o3) expect(&cl, o3, "logits", lg, m);
    float *p = malloc(4 * (size_t)R * S), *mx = malloc(4 * S), *sum = malloc(4 * S), *o4 = run(&sm, (const float *[]){lg});
    for (int t = 0; t < S; t++) {
        double mm = -INFINITY, z = 0;
        for (int r = 0; r < R; r++) mm = fmax(mm, lg[(size_t)r * S + t]);
        for (int r = 0; r < R; r++) z += exp(lg[(size_t)r * S + t] - mm);
        for (int r = 0; r < R; r++) p[(size_t)r * S + t] = (float)(exp(lg[(size_t)r * S + t] - mm) / z);
        mx[t] = (float)mm, sum[t] = (float)z;
    }
    if (o4) expect(&sm, o4, "probs", p, m), expect(&sm, o4, "max", mx, m), expect(&sm, o4, "sum", sum, m);
    free(dy), free(x), free(y), free(rstd), free(dx), free(dw), free(o1), free(o2), free(lg), free(o3);
    free(p), free(mx), free(sum), free(o4);
    mil_kernel_free(&nb), mil_kernel_free(&fn), mil_kernel_free(&cl), mil_kernel_free(&sm);
}

TEST(mil_static_kernels_match_cpu_ops) {
    for (int which = 0; which < 4; which++) {
        Model m;
        model_init(&m, which);
        check_attn_fwd(&m);
        check_ffn(&m);
        check_attn_bwd(&m);
        check_extras(&m);
        params_free(&m.p);
    }
}

// The sim's rewrites (mil_fuse.c) leave every static kernel's outputs as
// they are, bit for bit, in both precisions.
TEST(mil_static_fused_equal_as_written) {
    const MilCompileOptions written = {.as_written = 1};
    for (int run = 0; run < 6; run++) {
        const int which = run % 4;
        Model m;
        model_init(&m, which);
        if (run >= 4) m.S = 32 * (run - 3);  // longer windows: other GEMM shapes
        m.w.rows = m.c.vocab, m.w.row0 = 0;  // the whole vocabulary in one chunk
        for (int kind = MIL_K_DYN_COUNT; kind < MIL_K_COUNT; kind++) {
            MilKernel k;
            if (!build(&m, (MilKernelKind)kind, &k)) continue;
            MilWeightFile wf[32];
            for (int i = 0; i < k.n_blobs; i++) wf[i] = (MilWeightFile){k.blobs[i].path, k.blobs[i].data, k.blobs[i].size};
            MilProgram *p[2] = {NULL, NULL};
            REQUIRE(mil_program_compile(k.mil, wf, k.n_blobs, &p[0]) == 0);
            REQUIRE(mil_program_compile_opts(k.mil, wf, k.n_blobs, &written, &p[1]) == 0);
            const size_t nin = (size_t)k.in_c * k.in_w, nout = (size_t)k.out_c * k.out_w;
            float *x = randn(&m, nin, 1.0f), *y[2] = {malloc(4 * nout), malloc(4 * nout)};
            uint16_t *x16 = malloc(2 * nin), *o16[2] = {malloc(2 * nout), malloc(2 * nout)};
            fp16_from_f32_array(x16, x, nin);
            for (int f = 0; f < 2; f++)
                REQUIRE(mil_program_run(p[f], x16, o16[f]) == 0 && mil_program_run_f32(p[f], x, y[f]) == 0);
            CHECKF(!memcmp(o16[0], o16[1], 2 * nout), "%s %s: fp16 outputs differ", m.c.name, k.name);
            CHECKF(!memcmp(y[0], y[1], 4 * nout), "%s %s: fp32 outputs differ", m.c.name, k.name);
            free(x), free(y[0]), free(y[1]), free(x16), free(o16[0]), free(o16[1]);
            mil_program_free(p[0]), mil_program_free(p[1]);
            mil_kernel_free(&k);
        }
        params_free(&m.p);
    }
}

// --- LoRA: the base baked, the adapters and norms as inputs -----------------------------------
//
// Each layer kernel built with the adapters as input regions (and the norm
// weights as inputs) against the same kernel baked from the merged weights
// W + s·B·A. The values are chosen so that the merged weights are exact in
// fp16: W on a grid of 2^-10 below 1 in magnitude, A and B on a grid of 2^-5
// below 1/2, r = 4 and s = 2, so s·B·A lies on the 2^-10 grid below 2
// (11 significant bits: fp16 holds it). Both sides then compute in fp32 from
// the same values, and only the summation order differs: products of at most
// K = 128 terms through at most 4 chained matmuls give 4·K·2^-24 ≈ 3.1e-5
// relative to the largest element.
#define LORA_BOUND (4.0 * 128 / 16777216.0)

static float grid(Rng *r, float step, float lim) {
    const float v = roundf(rng_normal(r) * lim / 3 / step) * step;
    return fminf(fmaxf(v, -lim + step), lim - step);
}

// The layer-0 inputs of kernel k: activations from act (by region name order),
// Aᵀ and B of every adapter region, the norms; NULL-terminated per region.
static float *lora_input(const Model *m, const MilRegion *rg, const Params *a, const LoraConfig *lc, Rng *r) {
    float *x = malloc(sizeof(float) * (size_t)rg->nc * rg->nw);
    for (int t = 0; t < LORA_N_TARGETS; t++)
        for (int b = 0; b < 2; b++) {
            if (strcmp(rg->name, mil_lora_region(t, b))) continue;
            const LoraMat mt = lora_mat(a, lc, (LoraTarget)t, 0);
            for (int i = 0; i < rg->nc; i++)
                for (int j = 0; j < rg->nw; j++)  // Aᵀ [in, r], B [out, r]
                    x[(size_t)i * rg->nw + j] = b ? mt.B[(size_t)i * mt.r + j] : mt.A[(size_t)j * mt.in + i];
            return x;
        }
    const float *norm = !strcmp(rg->name, "rms_att") || !strcmp(rg->name, "rms") ? m->w.rms_att
                        : !strcmp(rg->name, "rms_ffn")                            ? m->w.rms_ffn : NULL;
    for (size_t i = 0; i < (size_t)rg->nc * rg->nw; i++) x[i] = norm ? norm[i] : rng_normal(r);
    return x;
}

static void check_lora_kind(Model *m, MilKernelKind kind, const Params *a, const LoraConfig *lc, const Params *merged) {
    MilBaked wl = m->w, wm = m->w;
    wl.lora_rank = lc->rank, wl.lora_targets = lc->targets, wl.lora_scale = lc->alpha / lc->rank, wl.norms_in = 1;
    float *twos = malloc(sizeof(float) * m->D);  // what the kernel would bake if it ignored norms_in
    for (int i = 0; i < m->D; i++) twos[i] = 2.0f;
    wl.rms_att = wl.rms_ffn = wl.rms = twos;
    const ParamViews *v = &merged->v;
    wm.wq = v->wq, wm.wk = v->wk, wm.wv = v->wv, wm.wo = v->wo, wm.w1 = v->w1, wm.w2 = v->w2, wm.w3 = v->w3;
    MilKernel kl, km;
    // both in the NH-input GQA form: the adapters of Wq and Wo keep the model's head order
    if (!CHECKF(mil_kernel_build_gqa_concat(kind, &m->c, m->S, &wl, &kl) == 0 &&
                    mil_kernel_build_gqa_concat(kind, &m->c, m->S, &wm, &km) == 0, "%s", err_msg())) {
        free(twos);
        return;
    }
    CHECKF(kl.n_in > km.n_in || kind == MIL_K_FINAL_NORM, "%s: no adapter inputs", kl.name);
    Rng r;
    rng_init(&r, 21);
    float *in[MIL_KERNEL_MAX_REGIONS];
    for (int i = 0; i < kl.n_in; i++) in[i] = lora_input(m, &kl.in[i], a, lc, &r);
    for (int i = 0; i < km.n_in; i++) CHECK(!strcmp(km.in[i].name, kl.in[i].name));  // activations first
    float *ol = run(&kl, (const float *const *)in), *om = run(&km, (const float *const *)in);
    for (int i = 0; ol && om && i < km.n_out; i++) {
        const MilRegion *ro = &km.out[i];
        const double e = test_rel_err(ol + (size_t)ro->c0 * m->S, om + (size_t)ro->c0 * m->S, (size_t)ro->nc * m->S);
        CHECKF(e <= LORA_BOUND, "%s %s %s: adapters as inputs vs merged: %.3g > %.3g", m->c.name, kl.name, ro->name,
               e, LORA_BOUND);
    }
    for (int i = 0; i < kl.n_in; i++) free(in[i]);
    free(ol), free(om), free(twos);
    mil_kernel_free(&kl), mil_kernel_free(&km);
}

TEST(mil_static_lora_inputs_match_merged) {
    const MilKernelKind kinds[] = {MIL_K_ATTN_FWD, MIL_K_FFN_FWD, MIL_K_FFN_BWD, MIL_K_WO_SDPA_BWD1, MIL_K_QKV_BWD,
                                   MIL_K_RMSNORM_BWD, MIL_K_FINAL_NORM};
    for (int which = 0; which < 4; which++) {
        Model m;
        model_init(&m, which);
        Rng r;
        rng_init(&r, 5);
        for (int i = 0; i < m.p.n_tensors; i++)
            if (!m.p.t[i].is_norm)
                for (size_t k = 0; k < m.p.t[i].numel; k++) m.p.data[m.p.t[i].offset + k] = grid(&r, 1.0f / 1024, 1.0f);
        LoraConfig lc = {.rank = 4, .alpha = 8, .targets = (1u << LORA_N_TARGETS) - 1};
        Params a, merged;
        REQUIRE(lora_init(&a, &m.c, &lc) == 0);
        for (size_t k = 0; k < a.n; k++) a.data[k] = grid(&r, 1.0f / 32, 0.5f);
        REQUIRE(lora_merge(&merged, &m.p, &a, &lc) == 0);
        for (size_t k = 0; k < merged.n; k++)  // exact in fp16, as the bound needs
            if (!CHECKF(fp16_to_f32(fp16_from_f32(merged.data[k])) == merged.data[k], "merged %g", merged.data[k])) break;
        for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) check_lora_kind(&m, kinds[i], &a, &lc, &merged);
        params_free(&a), params_free(&merged), params_free(&m.p);
    }
}

// The channel limits: a classifier over more rows than MIL_MAX_OUT_CHANNELS
// does not compile, and mil_vocab_chunks splits vocabularies to fit.
TEST(mil_static_vocab_chunks_fit_the_channel_limit) {
    int n, rows;
    mil_vocab_chunks(32000, &n, &rows), CHECK(n == 1 && rows == 32000);
    mil_vocab_chunks(32001, &n, &rows), CHECK(n == 2 && rows == 16001);
    mil_vocab_chunks(151936, &n, &rows), CHECK(n == 5 && rows == 30388 && 4 * rows < 151936);
    // one conv with MIL_MAX_OUT_CHANNELS + 1 outputs, and the same at the limit
    for (int extra = 0; extra < 2; extra++) {
        const int oc = MIL_MAX_OUT_CHANNELS + extra;
        MilEmit e;
        mil_emit_init(&e, MIL_DIALECT_IOS18);
        MilVal x = mil_emit_input(&e, "x", 4, (const int[]){1, 4, 1, 2});
        float *w = calloc((size_t)oc * 4, sizeof(float));
        MilVal y = mil_emit_conv(&e, x, mil_emit_const_blob(&e, "w", w, 4, (const int[]){oc, 4, 1, 1}), "y");
        char *text = NULL;
        size_t len;
        REQUIRE(mil_emit_finish(&e, y, &text, &len) == 0);
        uint8_t *blob;
        size_t bytes;
        REQUIRE(mil_blob_build_fp16(e.blobs[0].data, e.blobs[0].n, &blob, &bytes) == 0);
        const MilWeightFile wf = {"@model_path/weights/w.bin", blob, bytes};
        MilProgram *prog = NULL;
        const int rc = mil_program_compile(text, &wf, 1, &prog);
        if (extra) CHECKF(rc != 0 && strstr(err_msg(), "at most 16384 and 32000"), "rc %d: %s", rc, err_msg());
        else CHECKF(rc == 0, "%s", err_msg());
        mil_program_free(prog);
        free(w), free(text), free(blob);
        mil_emit_free(&e);
    }
}
