// MIL emitter and the 10 dynamic-pipeline kernels: the text they print, their
// surface layouts, and their numbers (each kernel run by the MIL interpreter in
// fp16 mode against the same computation done by src/cpu/ops in fp32).
//
// Error bounds (derived, not tuned). u = 2^-11 is the unit roundoff of fp16
// (round to nearest even). The interpreter's fp16 mode rounds every op output to
// fp16 and accumulates matmuls and reductions in fp32 (reference.md D.6). Inputs
// are the same fp16 values on both sides, so every difference comes from the
// kernel's own roundings: each rounding of a value y adds at most u·|y|, an fp32
// dot product of length K adds at most γ_K·Σ|a||b| (γ_K = K·2^-24) on each side,
// and constants baked as fp16 (1/√HD, α, RoPE tables) are off by u relative.
// For each output element we add these up to first order, from the actual
// values (a running error analysis: bound_i uses |y_i|, Σ|a||b| of its dot
// product, the softmax row it came from, ...), and check every element:
//     |kernel_i - cpu_i| <= SLACK · bound_i + FLOOR
// where SLACK = 1.05 covers second-order terms (O((k·u)²)) and fp32 exp/pow
// errors (~1e-7 relative), and FLOOR = 2^-22 covers results in the fp16
// subnormal range (absolute rounding error 2^-25 each). Each bound is derived in
// a comment next to its check; MIL_TEST_VERBOSE=1 prints, per region, the largest
// error and the largest error/bound ratio (when written: 11% to 93%).
// Where a stage consumes values that an earlier stage of the same kernel also
// outputs (attention after RoPE, the gate after h1/h3), the CPU reference for that
// stage starts from the kernel's own fp16 outputs: the stage is then checked with
// its own (tight) bound, and the chain of checks covers the whole kernel.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/fp16.h"
#include "core/gemm.h"
#include "core/rng.h"
#include "cpu/ops.h"
#include "mil/emit.h"
#include "mil/kernels.h"
#include "mil/mil_interp.h"
#include "mil/mil_prog.h"
#include "model/config.h"
#include "test.h"

// The kernels as the layout table of kernels.h describes them, without the
// padding the ANE's rules add (tests/test_mil_rules.c shows that padding
// changes no value).
static int bare_build(MilKernelKind kind, const Config *c, int S, MilKernel *k) {
    return mil_kernel_build_unpadded(kind, c, S, NULL, k);
}

#define U16 (1.0 / 2048.0)  // fp16 unit roundoff 2^-11
#define SLACK 1.05
#define FLOOR (1.0 / 4194304.0)  // 2^-22
static double gamma_k(int K) { return K / 16777216.0; }

static float h16(float x) { return fp16_to_f32(fp16_from_f32(x)); }

// ---------------------------------------------------------------------------------------------
// emitter

// Text of one statement-producing snippet (program with a single input).
static char *emit_text(MilEmit *e, MilVal out) {
    char *t = NULL;
    size_t n = 0;
    if (mil_emit_finish(e, out, &t, &n) != 0) return NULL;
    if (strlen(t) != n) {
        free(t);
        return NULL;
    }
    return t;
}

TEST(mil_emit_infers_shapes) {
    MilEmit e;
    mil_emit_init(&e, MIL_DIALECT_IOS18);
    MilVal x = mil_emit_input(&e, "x", 4, (const int[]){1, 6, 1, 10});
    MilVal a = mil_emit_slice(&e, x, (const int[]){0, 2, 0, 3}, (const int[]){1, 4, 1, -1}, "a");
    CHECK(mil_emit_dim(&e, a, 1) == 4 && mil_emit_dim(&e, a, 3) == 7);
    MilVal r = mil_emit_reshape(&e, a, 4, (const int[]){1, 2, -1, 7}, "r");
    CHECK(mil_emit_dim(&e, r, 2) == 2);
    MilVal t = mil_emit_transpose(&e, r, (const int[]){0, 1, 3, 2}, "t");
    CHECK(mil_emit_dim(&e, t, 2) == 7 && mil_emit_dim(&e, t, 3) == 2);
    MilVal m = mil_emit_matmul(&e, t, r, 0, 0, "m");  // [1,2,7,2] x [1,2,2,7]
    CHECK(mil_emit_dim(&e, m, -1) == 7 && mil_emit_dim(&e, m, -2) == 7);
    MilVal mt = mil_emit_matmul(&e, r, r, 1, 0, "mt");  // [1,2,7,2] x [1,2,2,7] -> [1,2,7,7]
    CHECK(mil_emit_dim(&e, mt, -1) == 7 && mil_emit_dim(&e, mt, -2) == 7);
    MilVal my = mil_emit_matmul(&e, r, r, 0, 1, "my");  // [1,2,2,7] x [1,2,7,2] -> [1,2,2,2]
    CHECK(mil_emit_dim(&e, my, -1) == 2 && mil_emit_dim(&e, my, -2) == 2);
    MilVal rs = mil_emit_reduce_sum(&e, m, 1, (const int[]){-1}, 1, "rs");
    CHECK(mil_emit_dim(&e, rs, 3) == 1 && mil_emit_dim(&e, rs, 2) == 7);
    MilVal rn = mil_emit_reduce_sum(&e, m, 1, (const int[]){1}, 0, "rn");
    CHECK(mil_emit_value(&e, rn)->rank == 3);
    MilVal b = mil_emit_sub(&e, m, rs, "b");  // [1,2,7,7] - [1,2,7,1] broadcast
    CHECK(mil_emit_dim(&e, b, 3) == 7);
    MilVal sm = mil_emit_softmax(&e, b, -1, "sm");
    MilVal sg = mil_emit_sigmoid(&e, sm, "sg");
    MilVal p = mil_emit_pow(&e, sg, -0.5f, "p");
    MilVal c = mil_emit_concat(&e, 3, (const MilVal[]){p, p, sm}, 1, "c");
    CHECK(mil_emit_dim(&e, c, 1) == 6);
    float w[3 * 6];
    for (int i = 0; i < 18; i++) w[i] = 0.25f * i;
    MilVal W = mil_emit_const_blob(&e, "W", w, 4, (const int[]){3, 6, 1, 1});
    MilVal cv = mil_emit_conv(&e, x, W, "cv");
    const uint16_t hb[2] = {0x3c00, 0xc000};  // fp16 1, -2
    CHECK(mil_emit_const_blob_f16(&e, "B", hb, 1, (const int[]){2}) != MIL_NONE);
    CHECK(mil_emit_dim(&e, cv, 1) == 3 && mil_emit_dim(&e, cv, 3) == 10);
    char *text = emit_text(&e, c);
    REQUIRE(text != NULL);
    CHECK(strstr(text, "tensor<fp16, [1, 4, 1, 7]> a = slice_by_size(begin=a_begin, size=a_size, x=x)"
                       "[name=string(\"a\")];\n") != NULL);
    CHECK(strstr(text, "tensor<int32, [4]> a_size = const()[name=string(\"a_size\"), "
                       "val=tensor<int32, [4]>([1, 4, 1, -1])];\n") != NULL);
    CHECK(strstr(text, "tensor<fp16, [1, 2, 7, 7]> mt = matmul(transpose_x=c_true, transpose_y=c_false, x=r, y=r)") !=
          NULL);
    CHECK(strstr(text, "tensor<fp16, [1, 7, 7]> rn = reduce_sum(axes=rn_axes, keep_dims=c_false, x=m)") != NULL);
    CHECK(strstr(text, "fp16 p_y = const()[name=string(\"p_y\"), val=fp16(-0.5)];\n") != NULL);
    CHECK(strstr(text, "concat(axis=c_axis, interleave=c_false, values=(p, p, sm))[name=string(\"c\")];") != NULL);
    CHECK(strstr(text, "tensor<fp16, [3, 6, 1, 1]> W = const()[name=string(\"W\"), val=tensor<fp16, [3, 6, 1, 1]>("
                       "BLOBFILE(path=string(\"@model_path/weights/W.bin\"), offset=uint64(64)))];\n") != NULL);
    CHECK(strstr(text, "string cv_pad_type = const()[name=string(\"cv_pad_type\"), val=string(\"valid\")];") != NULL);
    CHECK(strstr(text, "tensor<fp16, [1, 3, 1, 10]> cv = conv(dilations=cv_dilations, groups=cv_groups, pad=cv_pad, "
                       "pad_type=cv_pad_type, strides=cv_strides, weight=W, x=x)") != NULL);
    CHECK(strstr(text, "    } -> (c);\n}\n") != NULL);
    // the blob payload is fp16 of the data, row-major
    CHECK(e.n_blobs == 2 && e.blobs[0].n == 18 && e.blobs[0].data[5] == fp16_from_f32(1.25f));
    CHECK(e.blobs[1].n == 2 && e.blobs[1].data[1] == 0xc000 && strcmp(e.blobs[1].name, "B") == 0);
    CHECK(strstr(text, "tensor<fp16, [2]> B = const()[name=string(\"B\"), val=tensor<fp16, [2]>(BLOBFILE(") != NULL);
    free(text);
    mil_emit_free(&e);
}

// Each malformed statement is rejected with a message naming it, and the
// first error sticks: later calls return MIL_NONE and finish fails.
TEST(mil_emit_rejects_bad_shapes) {
    struct {
        const char *want;
        int which;
    } cases[] = {
        {"slice s of x: axis 3", 0}, {"inner dims 8 and 1 differ", 1}, {"do not broadcast", 2},
        {"reshape of x: 48 elements into a shape of 50", 3}, {"defined twice", 4}, {"not a valid MIL identifier", 5},
        {"concat cc on axis 1: x and y differ on axis 3", 6}, {"not a permutation", 7}, {"does not fit fp16", 8},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        MilEmit e;
        mil_emit_init(&e, MIL_DIALECT_IOS18);
        MilVal x = mil_emit_input(&e, "x", 4, (const int[]){1, 6, 1, 8});
        MilVal y = mil_emit_input(&e, "y", 4, (const int[]){1, 6, 1, 4});
        MilVal bad = MIL_NONE;
        switch (cases[i].which) {
        case 0: bad = mil_emit_slice(&e, x, (const int[]){0, 0, 0, 6}, (const int[]){1, 6, 1, 3}, "s"); break;
        case 1: bad = mil_emit_matmul(&e, x, x, 0, 0, "m"); break;
        case 2: bad = mil_emit_add(&e, x, y, "a"); break;
        case 3: bad = mil_emit_reshape(&e, x, 2, (const int[]){5, 10}, "r"); break;
        case 4: bad = mil_emit_sigmoid(&e, x, "y"); break;
        case 5: bad = mil_emit_sigmoid(&e, x, "a-b"); break;
        case 6: bad = mil_emit_concat(&e, 2, (const MilVal[]){x, y}, 1, "cc"); break;
        case 7: bad = mil_emit_transpose(&e, x, (const int[]){0, 1, 1, 2}, "t"); break;
        case 8: bad = mil_emit_mul_scalar(&e, x, 1e6f, "big"); break;
        }
        CHECK(bad == MIL_NONE);
        CHECKF(strstr(err_msg(), cases[i].want) != NULL, "case %zu: message '%s' lacks '%s'", i, err_msg(),
               cases[i].want);
        // sticky: a valid op after the error is refused, and finish fails
        CHECK(mil_emit_sigmoid(&e, x, "later") == MIL_NONE);
        char *t = NULL;
        size_t n;
        CHECK(mil_emit_finish(&e, x, &t, &n) == -1 && t == NULL);
        CHECKF(strstr(err_msg(), cases[i].want) != NULL, "case %zu: first error kept: '%s'", i, err_msg());
        mil_emit_free(&e);
    }
}

// fp16 literals are rounded to fp16 and printed, in fixed notation, so that they parse back exactly.
TEST(mil_emit_fp16_literals_round_trip) {
    const float vals[] = {0.1f, 1.0f / 3, 0.125f, -65504.0f, 1e-6f, 1.0f / 768, 0.2041241f, 3.14159265f, 6e-8f};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        MilEmit e;
        mil_emit_init(&e, MIL_DIALECT_IOS18);
        MilVal x = mil_emit_input(&e, "x", 1, (const int[]){4});
        MilVal y = mil_emit_mul_scalar(&e, x, vals[i], "y");
        char *t = emit_text(&e, y);
        REQUIRE(t != NULL);
        const char *p = strstr(t, "val=fp16(");
        REQUIRE(p != NULL);
        float back = strtof(p + 9, NULL);
        CHECKF(back == h16(vals[i]), "%g printed as %.20s, parses to %.9g, fp16 value %.9g", (double)vals[i], p + 9,
               (double)back, (double)h16(vals[i]));
        const size_t len = strcspn(p + 9, ")");
        CHECKF(!memchr(p + 9, 'e', len) && !memchr(p + 9, 'E', len), "%g printed with an exponent: %.*s",
               (double)vals[i], (int)len, p + 9);  // fixed notation, as the MIL the ANE compiles is written
        free(t);
        mil_emit_free(&e);
    }
}

// The text buffer grows without limit (thousands of statements).
TEST(mil_emit_large_program) {
    MilEmit e;
    mil_emit_init(&e, MIL_DIALECT_IOS18);
    MilVal x = mil_emit_input(&e, "x", 4, (const int[]){1, 8, 1, 8});
    MilVal v = x;
    for (int i = 0; i < 5000; i++) v = mil_emit_add(&e, v, x, NULL);
    char *t = emit_text(&e, v);
    REQUIRE(t != NULL);
    CHECK(strlen(t) > 5000 * 60);
    CHECK(strstr(t, "v_4999 = add(x=v_4998, y=x)") != NULL);
    free(t);
    mil_emit_free(&e);
}

// The older-chip dialect (maderix/ANE PR #6): program(1.0), ios16, verbose scalars.
TEST(mil_emit_ios16_dialect) {
    MilEmit e;
    mil_emit_init(&e, MIL_DIALECT_IOS16);
    MilVal x = mil_emit_input(&e, "x", 4, (const int[]){1, 4, 1, 2});
    float w[4] = {1, 2, 3, 4};
    MilVal W = mil_emit_const_blob(&e, "w", w, 4, (const int[]){1, 4, 1, 1});
    MilVal m = mil_emit_mul(&e, x, W, "m");
    MilVal s = mil_emit_softmax(&e, mil_emit_mul_scalar(&e, m, 0.5f, "h"), 1, "s");
    MilVal t = mil_emit_matmul(&e, s, s, 0, 1, "t");
    char *text = emit_text(&e, t);
    REQUIRE(text != NULL);
    CHECK(strncmp(text, "program(1.0)\n[buildInfo = dict<tensor<string, []>, tensor<string, []>>({{", 73) == 0);
    CHECK(strstr(text, "    func main<ios16>(tensor<fp16, [1, 4, 1, 2]> x) {\n") != NULL);
    CHECK(strstr(text, "        tensor<fp16, []> h_y = const()[name = tensor<string, []>(\"h_y\"), "
                       "val = tensor<fp16, []>(0.5)];\n") != NULL);
    CHECK(strstr(text, "        tensor<int32, []> s_axis = const()[name = tensor<string, []>(\"s_axis\"), "
                       "val = tensor<int32, []>(1)];\n") != NULL);
    CHECK(strstr(text, "tensor<bool, []> c_true = const()[name = tensor<string, []>(\"c_true\"), "
                       "val = tensor<bool, []>(true)];") != NULL);
    CHECK(strstr(text, "val = tensor<fp16, [1, 4, 1, 1]>(BLOBFILE(path = tensor<string, []>("
                       "\"@model_path/weights/w.bin\"), offset = tensor<uint64, []>(64)))];") != NULL);
    CHECK(strstr(text, "tensor<fp16, [1, 4, 1, 2]> m = mul(x = x, y = w)[name = tensor<string, []>(\"m\")];") != NULL);
    // no shorthand scalar anywhere
    CHECK(strstr(text, "string(") == NULL && strstr(text, "fp16(") == NULL && strstr(text, "uint64(") == NULL &&
          strstr(text, "bool(") == NULL && strstr(text, "int32(") == NULL);
    free(text);
    mil_emit_free(&e);
}

// ---------------------------------------------------------------------------------------------
// kernels: text and layout

static const char *WO_FWD_TEXT =
    "program(1.3)\n"
    "[buildInfo = dict<string, string>({{\"coremlc-component-MIL\", \"3510.2.1\"}, {\"coremlc-version\", "
    "\"3505.4.1\"}, {\"coremltools-component-milinternal\", \"\"}, {\"coremltools-version\", \"9.0\"}})]\n"
    "{\n"
    "    func main<ios18>(tensor<fp16, [1, 12, 1, 13]> x) {\n"
    "        tensor<int32, [4]> a_begin = const()[name=string(\"a_begin\"), val=tensor<int32, [4]>([0, 0, 0, 0])];\n"
    "        tensor<int32, [4]> a_size = const()[name=string(\"a_size\"), val=tensor<int32, [4]>([1, 12, 1, 5])];\n"
    "        tensor<fp16, [1, 12, 1, 5]> a = slice_by_size(begin=a_begin, size=a_size, x=x)[name=string(\"a\")];\n"
    "        tensor<int32, [4]> a_r_shape = const()[name=string(\"a_r_shape\"), val=tensor<int32, [4]>([1, 1, 12, "
    "5])];\n"
    "        tensor<fp16, [1, 1, 12, 5]> a_r = reshape(shape=a_r_shape, x=a)[name=string(\"a_r\")];\n"
    "        tensor<int32, [4]> a_t_perm = const()[name=string(\"a_t_perm\"), val=tensor<int32, [4]>([0, 1, 3, "
    "2])];\n"
    "        tensor<fp16, [1, 1, 5, 12]> a_t = transpose(perm=a_t_perm, x=a_r)[name=string(\"a_t\")];\n"
    "        tensor<int32, [4]> wo_begin = const()[name=string(\"wo_begin\"), val=tensor<int32, [4]>([0, 0, 0, "
    "5])];\n"
    "        tensor<int32, [4]> wo_size = const()[name=string(\"wo_size\"), val=tensor<int32, [4]>([1, 12, 1, 8])];\n"
    "        tensor<fp16, [1, 12, 1, 8]> wo = slice_by_size(begin=wo_begin, size=wo_size, x=x)[name=string(\"wo\")];\n"
    "        tensor<int32, [4]> o_wr_shape = const()[name=string(\"o_wr_shape\"), val=tensor<int32, [4]>([1, 1, 12, "
    "8])];\n"
    "        tensor<fp16, [1, 1, 12, 8]> o_wr = reshape(shape=o_wr_shape, x=wo)[name=string(\"o_wr\")];\n"
    "        bool c_false = const()[name=string(\"c_false\"), val=bool(false)];\n"
    "        tensor<fp16, [1, 1, 5, 8]> o_mm = matmul(transpose_x=c_false, transpose_y=c_false, x=a_t, "
    "y=o_wr)[name=string(\"o_mm\")];\n"
    "        tensor<int32, [4]> o_mt_perm = const()[name=string(\"o_mt_perm\"), val=tensor<int32, [4]>([0, 1, 3, "
    "2])];\n"
    "        tensor<fp16, [1, 1, 8, 5]> o_mt = transpose(perm=o_mt_perm, x=o_mm)[name=string(\"o_mt\")];\n"
    "        tensor<int32, [4]> out_shape = const()[name=string(\"out_shape\"), val=tensor<int32, [4]>([1, 8, 1, "
    "5])];\n"
    "        tensor<fp16, [1, 8, 1, 5]> out = reshape(shape=out_shape, x=o_mt)[name=string(\"out\")];\n"
    "    } -> (out);\n"
    "}\n";

// A small config with every dimension distinct: D 8, QD 12 (3 heads of 4), one kv head.
static Config small_config(void) {
    Config c;
    config_preset(&c, "tiny-mha");
    snprintf(c.name, sizeof c.name, "small");
    c.dim = 8, c.hidden = 16, c.n_heads = 3, c.n_kv_heads = 1, c.head_dim = 4;
    return c;
}

// woFwd byte for byte: attn [QD=12, S=5] at spatial [0,5), Woᵀ [12, D=8] at [5,13),
// y = (Woᵀ)ᵀ·attn through reshape / transpose / matmul / transpose / reshape.
TEST(mil_kernel_wo_fwd_text) {
    Config c = small_config();
    MilKernel k;
    REQUIRE(bare_build(MIL_K_WO_FWD, &c, 5, &k) == 0);
    CHECK(k.mil_len == strlen(k.mil));
    if (strcmp(k.mil, WO_FWD_TEXT) != 0) {
        size_t i = 0;
        while (k.mil[i] && k.mil[i] == WO_FWD_TEXT[i]) i++;
        CHECKF(0, "woFwd text differs at byte %zu: got \"%.60s\" want \"%.60s\"", i, k.mil + i, WO_FWD_TEXT + i);
    }
    CHECK(k.n_blobs == 0);
    const MilRegion *a = mil_kernel_input(&k, "attn"), *w = mil_kernel_input(&k, "Wo^T");
    REQUIRE(a && w);
    CHECK(a->kind == MIL_REG_ACT && a->c0 == 0 && a->nc == 12 && a->w0 == 0 && a->nw == 5);
    CHECK(w->kind == MIL_REG_WT && w->c0 == 0 && w->nc == 12 && w->w0 == 5 && w->nw == 8);
    CHECK(mil_kernel_output(&k, "o") && mil_kernel_output(&k, "o")->nc == 8);
    CHECK(mil_kernel_input(&k, "Wo") == NULL);
    mil_kernel_free(&k);
}

// The test models: tiny-mha (R = 1), tiny-gqa (R = 2), tiny-qwen3 (QK-norm,
// rotate-half RoPE, head_dim 32 != dim/heads = 16, R = 2), and a GQA-4 model
// (8 query heads over 2 kv heads, QK-norm with interleaved RoPE, residual scale 0.3).
enum { N_MODELS = 4 };
typedef struct {
    Config c;
    int S;
} TestModel;

static void test_models(TestModel m[N_MODELS]) {
    const char *names[3] = {"tiny-mha", "tiny-gqa", "tiny-qwen3"};
    const int S[N_MODELS] = {16, 16, 24, 20};
    for (int i = 0; i < N_MODELS; i++) {
        CHECK_OR_ABORT(config_preset(&m[i].c, i < 3 ? names[i] : "tiny-gqa") == 0);
        m[i].S = S[i];
    }
    Config *g4 = &m[3].c;
    snprintf(g4->name, sizeof g4->name, "tiny-gqa4");
    g4->n_heads = 8, g4->n_kv_heads = 2, g4->head_dim = 8, g4->hidden = 96;
    g4->qk_norm = 1, g4->rope_layout = ROPE_INTERLEAVED, g4->res_scale = 0.3f;
    CHECK_OR_ABORT(config_validate(g4, "tiny-gqa4") == 0);
}

// Expected surfaces from ane-spec §2.3's table (plus the QK-norm columns/outputs).
static void expected_shape(MilKernelKind kind, const Config *c, int S, int *in_c, int *in_w, int *out_c) {
    const int D = c->dim, H = c->hidden, QD = config_q_dim(c), KVD = config_kv_dim(c), SC = c->n_heads * S;
    const int qk = c->qk_norm;
    switch (kind) {
    case MIL_K_SDPA_FWD:
        *in_c = D, *in_w = S + QD + 2 * KVD + 2 * qk, *out_c = 2 * QD + 2 * KVD + D + qk * (QD + KVD);
        break;
    case MIL_K_WO_FWD: *in_c = QD, *in_w = S + D, *out_c = D; break;
    case MIL_K_FFN_FUSED: *in_c = H > D ? H : D, *in_w = 2 * S + 2 * H + D, *out_c = D + 3 * H; break;
    case MIL_K_FFN_BWD_W2T: *in_c = D, *in_w = S + H, *out_c = H; break;
    case MIL_K_FFN_BWD_W13T: *in_c = H, *in_w = 2 * S + 2 * D, *out_c = D; break;
    case MIL_K_WOT_BWD: *in_c = D, *in_w = S + QD, *out_c = QD; break;
    case MIL_K_SDPA_BWD1: *in_c = 4 * QD, *in_w = S, *out_c = QD + 2 * SC; break;
    case MIL_K_SDPA_BWD2: *in_c = 2 * SC + 2 * QD, *in_w = S, *out_c = 2 * QD; break;
    case MIL_K_Q_BWD: *in_c = QD, *in_w = S + D, *out_c = D; break;
    case MIL_K_KV_BWD: *in_c = KVD, *in_w = 2 * S + 2 * D, *out_c = D; break;
    default: *in_c = *in_w = *out_c = -1;
    }
}

static int overlap(const MilRegion *a, const MilRegion *b) {
    return a->c0 < b->c0 + b->nc && b->c0 < a->c0 + a->nc && a->w0 < b->w0 + b->nw && b->w0 < a->w0 + a->nw;
}

// Every kernel's surfaces match the table; input regions lie inside the input,
// never overlap and leave no spatial column unused; output regions tile the
// output channels in order; a "^T" name is exactly a transposed weight.
TEST(mil_kernel_layouts_follow_the_table) {
    TestModel m[N_MODELS];
    test_models(m);
    for (int mi = 0; mi < N_MODELS; mi++)
        for (int kind = 0; kind < MIL_K_DYN_COUNT; kind++) {
            const Config *c = &m[mi].c;
            const int S = m[mi].S;
            MilKernel k;
            if (!CHECKF(bare_build(kind, c, S, &k) == 0, "%s %s: %s", c->name, mil_kernel_name(kind),
                        err_msg()))
                continue;
            int in_c, in_w, out_c;
            expected_shape(kind, c, S, &in_c, &in_w, &out_c);
            CHECKF(k.in_c == in_c && k.in_w == in_w && k.out_c == out_c && k.out_w == S,
                   "%s %s: in [%d,%d] out [%d,%d], table says in [%d,%d] out [%d,%d]", c->name, k.name, k.in_c,
                   k.in_w, k.out_c, k.out_w, in_c, in_w, out_c, S);
            char want[128];
            snprintf(want, sizeof want, "    func main<ios18>(tensor<fp16, [1, %d, 1, %d]> x) {\n", in_c, in_w);
            CHECKF(strstr(k.mil, want) != NULL, "%s %s: no '%s'", c->name, k.name, want);
            snprintf(want, sizeof want, "        tensor<fp16, [1, %d, 1, %d]> out = ", out_c, S);
            CHECKF(strstr(k.mil, want) != NULL && strstr(k.mil, "    } -> (out);\n}\n"), "%s %s: result", c->name,
                   k.name);
            char *cols = calloc((size_t)k.in_w, 1);
            for (int i = 0; i < k.n_in; i++) {
                const MilRegion *r = &k.in[i];
                CHECKF(r->c0 >= 0 && r->nc > 0 && r->c0 + r->nc <= k.in_c && r->w0 >= 0 && r->nw > 0 &&
                           r->w0 + r->nw <= k.in_w,
                       "%s %s: input region %s outside the surface", c->name, k.name, r->name);
                const size_t len = strlen(r->name);
                const int is_t = len > 2 && strcmp(r->name + len - 2, "^T") == 0;
                CHECKF(is_t == (r->kind == MIL_REG_WT), "%s %s: region %s kind %d", c->name, k.name, r->name,
                       r->kind);
                if (r->kind == MIL_REG_ACT) CHECK(r->nw == S);
                if (r->kind == MIL_REG_VEC) CHECK(r->nw == 1 && r->nc == c->head_dim);
                for (int j = 0; j < i; j++)
                    CHECKF(!overlap(r, &k.in[j]), "%s %s: %s overlaps %s", c->name, k.name, r->name, k.in[j].name);
                for (int w = r->w0; w < r->w0 + r->nw && w < k.in_w; w++) cols[w] = 1;
            }
            for (int w = 0; w < k.in_w; w++) CHECKF(cols[w], "%s %s: column %d unused", c->name, k.name, w);
            free(cols);
            int c0 = 0;
            for (int i = 0; i < k.n_out; i++) {
                CHECKF(k.out[i].c0 == c0 && k.out[i].w0 == 0 && k.out[i].nw == S, "%s %s: output %s at %d", c->name,
                       k.name, k.out[i].name, k.out[i].c0);
                c0 += k.out[i].nc;
            }
            CHECK(c0 == k.out_c);
            mil_kernel_free(&k);
        }
}

// sdpaFwd's baked constants: blob files in the §3.4 format holding the causal
// mask and the RoPE tables of the model's layout (same angles as cpu/ops).
TEST(mil_kernel_constants) {
    TestModel m[N_MODELS];
    test_models(m);
    for (int mi = 1; mi < 3; mi++) {  // tiny-gqa (interleaved), tiny-qwen3 (rotate-half)
        const Config *c = &m[mi].c;
        const int S = m[mi].S, HD = c->head_dim, h2 = HD / 2;
        MilKernel k;
        REQUIRE(bare_build(MIL_K_SDPA_FWD, c, S, &k) == 0);
        REQUIRE(k.n_blobs == 3);
        const uint16_t *tab[3] = {NULL, NULL, NULL};
        const char *names[3] = {"@model_path/weights/rope_cos.bin", "@model_path/weights/rope_sin.bin",
                                "@model_path/weights/mask.bin"};
        const size_t sizes[3] = {(size_t)S * HD, (size_t)S * HD, (size_t)S * S};
        for (int b = 0; b < k.n_blobs; b++) {
            const MilBlob *bl = &k.blobs[b];
            for (int j = 0; j < 3; j++) {
                if (strcmp(bl->path, names[j]) != 0) continue;
                const uint8_t *p = bl->data;
                CHECK(bl->size == 128 + 2 * sizes[j]);
                CHECK(p[0] == 1 && p[4] == 2 && p[64] == 0xEF && p[65] == 0xBE && p[66] == 0xAD && p[67] == 0xDE &&
                      p[68] == 1);
                CHECK((p[72] | p[73] << 8 | p[74] << 16) == (int)(2 * sizes[j]) && p[80] == 128);
                tab[j] = (const uint16_t *)(p + 128);  // little-endian host assumed by the test
            }
        }
        REQUIRE(tab[0] && tab[1] && tab[2]);
        int bad = 0;
        for (int t = 0; t < S; t++)
            for (int s = 0; s < S; s++) bad += tab[2][t * S + s] != (s <= t ? 0x0000 : 0xfbff);
        CHECKF(bad == 0, "%s: %d mask entries wrong", c->name, bad);
        RopeTable rt;
        REQUIRE(rope_table_init(&rt, S, HD, c->rope_theta) == 0);
        bad = 0;
        for (int t = 0; t < S; t++)
            for (int i = 0; i < h2; i++) {
                const int half = c->rope_layout == ROPE_HALF;
                const int a = half ? i : 2 * i, b = half ? i + h2 : 2 * i + 1;
                const uint16_t cv = fp16_from_f32(rt.cos[t * h2 + i]), sv = fp16_from_f32(rt.sin[t * h2 + i]);
                bad += tab[0][t * HD + a] != cv || tab[0][t * HD + b] != cv;
                bad += tab[1][t * HD + a] != fp16_from_f32(-fp16_to_f32(sv)) || tab[1][t * HD + b] != sv;
            }
        CHECKF(bad == 0, "%s: %d RoPE table entries wrong", c->name, bad);
        rope_table_free(&rt);
        mil_kernel_free(&k);
    }
}

// QK-norm weights are staged inputs (they train), and a bad config is refused with a message.
TEST(mil_kernel_qk_norm_inputs_and_errors) {
    TestModel m[N_MODELS];
    test_models(m);
    MilKernel k;
    REQUIRE(bare_build(MIL_K_SDPA_FWD, &m[2].c, 8, &k) == 0);
    const MilRegion *qn = mil_kernel_input(&k, "q_norm"), *kn = mil_kernel_input(&k, "k_norm");
    REQUIRE(qn && kn);
    CHECK(qn->kind == MIL_REG_VEC && qn->nc == 32 && qn->nw == 1 && kn->w0 == qn->w0 + 1);
    CHECK(mil_kernel_output(&k, "q_pre") && mil_kernel_output(&k, "k_pre"));
    CHECK(k.n_blobs == 3);  // only mask and RoPE tables are constants
    mil_kernel_free(&k);
    REQUIRE(bare_build(MIL_K_SDPA_FWD, &m[0].c, 8, &k) == 0);
    CHECK(!mil_kernel_input(&k, "q_norm") && !mil_kernel_output(&k, "q_pre"));
    mil_kernel_free(&k);
    Config bad = m[1].c;
    bad.n_kv_heads = 3;
    CHECK(mil_kernel_build(MIL_K_SDPA_FWD, &bad, 8, &k) == -1 && strstr(err_msg(), "multiple of n_kv_heads"));
    CHECK(k.mil == NULL);
    CHECK(mil_kernel_build(MIL_K_WO_FWD, &m[1].c, 0, &k) == -1 && strstr(err_msg(), "S must be positive"));
    bad = m[2].c;
    bad.dim = 16;
    CHECK(mil_kernel_build(MIL_K_SDPA_FWD, &bad, 8, &k) == -1 && strstr(err_msg(), "head_dim 32 does not fit"));
    CHECK(mil_kernel_build(MIL_K_WO_FWD, &bad, 8, &k) == 0);  // only sdpaFwd stages the QK-norm weights
    mil_kernel_free(&k);
    // the older-chip dialect builds the same kernels
    REQUIRE(mil_kernel_build_dialect(MIL_K_SDPA_FWD, &m[2].c, 8, MIL_DIALECT_IOS16, &k) == 0);
    CHECK(strncmp(k.mil, "program(1.0)\n", 13) == 0 && strstr(k.mil, "func main<ios16>"));
    mil_kernel_free(&k);
}

// ---------------------------------------------------------------------------------------------
// kernels: numbers

typedef struct {
    const TestModel *m;
    Rng rng;
    MilKernel k;
    MilProgram *prog;  // the kernel compiled by the interpreter
    uint16_t *in, *out;
} Run;

static int verbose(void) { return getenv("MIL_TEST_VERBOSE") != NULL; }

static float *falloc(size_t n) {
    float *a = calloc(n ? n : 1, sizeof(float));
    CHECK_OR_ABORT(a != NULL);
    return a;
}

// n values mean + scale·N(0,1), rounded to fp16 (the inputs both sides see)
static float *rnd16(Rng *g, size_t n, float mean, float scale) {
    float *a = falloc(n);
    for (size_t i = 0; i < n; i++) a[i] = h16(mean + scale * rng_normal(g));
    return a;
}

static void round16(float *a, size_t n) {
    for (size_t i = 0; i < n; i++) a[i] = h16(a[i]);
}

static double maxabs(const float *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(a[i]) > m ? fabs(a[i]) : m;
    return m;
}

static float *linear(const float *W, const float *x, int OC, int IC, int S) {
    float *y = falloc((size_t)OC * S);
    linear_forward(y, W, x, OC, IC, S);
    return y;
}

static float *linear_t(const float *W, const float *dy, int OC, int IC, int S) {
    float *y = falloc((size_t)IC * S);
    linear_backward(y, NULL, dy, W, NULL, OC, IC, S, 0);
    return y;
}

// (|W|·|x|)_i for y = W x (W [OC,IC], x [IC,S]), or (|W|ᵀ·|x|)_i for y = Wᵀ x (x [OC,S]):
// the Σ|a||b| that bounds the fp32 rounding of each dot product.
static float *mag_linear(const float *W, const float *x, int OC, int IC, int S, int transposed) {
    const size_t nw = (size_t)OC * IC, nx = (size_t)(transposed ? OC : IC) * S;
    float *aw = falloc(nw), *ax = falloc(nx);
    for (size_t i = 0; i < nw; i++) aw[i] = fabsf(W[i]);
    for (size_t i = 0; i < nx; i++) ax[i] = fabsf(x[i]);
    float *y = transposed ? linear_t(aw, ax, OC, IC, S) : linear(aw, ax, OC, IC, S);
    free(aw), free(ax);
    return y;
}

// Bound of one rounded fp32 dot product per element: u·|y| + 2γ_K·Σ|a||b|
// (the 2: the CPU's fp32 accumulation differs from the exact sum too).
static float *bound_linear(const float *y, const float *mag, size_t n, int K) {
    float *b = falloc(n);
    for (size_t i = 0; i < n; i++) b[i] = (float)(U16 * fabs(y[i]) + 2 * gamma_k(K) * mag[i]);
    return b;
}

// GQA tile on the CPU, as the pipelines' surface copies do before sdpaBwd1: query head h gets kv head h/R.
static float *tile_kv(const float *kv, int NH, int NKV, int HD, int S) {
    float *t = falloc((size_t)NH * HD * S);
    for (int h = 0; h < NH; h++)
        memcpy(t + (size_t)h * HD * S, kv + (size_t)(h / (NH / NKV)) * HD * S, sizeof(float) * (size_t)HD * S);
    return t;
}

// Error bound of the kernel's attention probabilities, elementwise [NH][S][S],
// for q [NH·HD, S], k [NKV·HD, S] (query head h reads kv head h/R) and the
// exact probabilities P. Scores s = q·k/√HD: the matmul, fp16(1/√HD) and the
// product each round, |δs| <= 3u·|s| + 2γ_HD·Σ|q||k|/√HD (the mask add is exact
// on allowed pairs). Softmax: δP_j = P_j·(δs_j − Σ_k P_k δs_k), so
// |δP_j| <= P_j·(|δs_j| + Σ_k P_k |δs_k|), plus u·P_j for rounding P.
static float *probs_bound(const float *q, const float *k, const float *P, int NH, int NKV, int HD, int S) {
    float *b = falloc((size_t)NH * S * S);
    double *ds = malloc(sizeof(double) * (size_t)S);
    CHECK_OR_ABORT(ds != NULL);
    const double c = 1 / sqrt((double)HD);
    for (int h = 0; h < NH; h++) {
        const float *qh = q + (size_t)h * HD * S, *kg = k + (size_t)(h / (NH / NKV)) * HD * S;
        for (int t = 0; t < S; t++) {
            const float *Pt = P + ((size_t)h * S + t) * S;
            double avg = 0;
            for (int s = 0; s <= t; s++) {
                double d = 0, a = 0;
                for (int i = 0; i < HD; i++) {
                    d += (double)qh[i * S + t] * kg[i * S + s];
                    a += fabs((double)qh[i * S + t] * kg[i * S + s]);
                }
                ds[s] = 3 * U16 * fabs(d) * c + 2 * gamma_k(HD) * a * c;
                avg += Pt[s] * ds[s];
            }
            for (int s = 0; s < S; s++)
                b[((size_t)h * S + t) * S + s] = s <= t ? (float)(Pt[s] * (ds[s] + avg + U16)) : 0.0f;
        }
    }
    free(ds);
    return b;
}

// Error bound of out = P·V per query head (out[h·HD+i, t] = Σ_s P[h][t][s]·v[g·HD+i, s],
// g = h/R) when P carries the elementwise error eP and out is rounded:
// Σ_s eP·|v| + u·|out| + 2γ_S·Σ_s P·|v|.
static float *pv_bound(const float *P, const float *eP, const float *v, const float *out, int NH, int NKV, int HD,
                       int S) {
    float *b = falloc((size_t)NH * HD * S);
    for (int h = 0; h < NH; h++) {
        const float *vg = v + (size_t)(h / (NH / NKV)) * HD * S;
        for (int i = 0; i < HD; i++)
            for (int t = 0; t < S; t++) {
                double e = 0, m = 0;
                for (int s = 0; s < S; s++) {
                    const size_t ps = ((size_t)h * S + t) * S + s;
                    e += eP[ps] * fabs(vg[i * S + s]);
                    m += P[ps] * fabs(vg[i * S + s]);
                }
                const size_t o = ((size_t)h * HD + i) * S + t;
                b[o] = (float)(e + U16 * fabs(out[o]) + 2 * gamma_k(S) * m);
            }
    }
    return b;
}

// sdpaBwd2's math, per head, in double from the values it is given (P, dP [NH][S][S],
// q, k [NH·HD, S]): dS = P∘(dP − rowsum(P∘dP))/√HD, dq = dS·K, dk = dSᵀ·Q, and the
// elementwise error bounds of the kernel's dq, dk. Its own roundings (ue = u + γ_S):
// P∘dP: u·|P dP|; rowsum: + u·Σ|P dP| + u|rs| + γ·Σ|P dP| =: δrs; dP − rs: + u|df|;
// ·P: + u·P|df|; ·fp16(1/√HD): + 2u·|dS|  =>  δdS <= c·P·(δrs + 4u·|df|).
// When P, dP themselves carry errors eP, edP (bounds, NULL = exact), dS moves by
// c·(eP·|df| + P·(edP + Σ_j (eP_j |dP_j| + P_j edP_j))) more. dq, dk add u·|result|
// and the fp32 term 2γ_S·Σ|dS||k| (|q|); their dS errors sum against |k| (|q|).
static void bwd2_reference(const float *P, const float *dP, const float *eP, const float *edP, const float *q,
                           const float *k, int NH, int HD, int S, float *dq, float *dk, float *bq, float *bk) {
    const double c = 1 / sqrt((double)HD), ue = U16 + gamma_k(S);
    double *dS = malloc(sizeof(double) * (size_t)S * S), *eS = malloc(sizeof(double) * (size_t)S * S);
    CHECK_OR_ABORT(dS && eS);
    for (int h = 0; h < NH; h++) {
        const float *Ph = P + (size_t)h * S * S, *dPh = dP + (size_t)h * S * S;
        const float *qh = q + (size_t)h * HD * S, *kh = k + (size_t)h * HD * S;
        for (int t = 0; t < S; t++) {
            double rs = 0, a = 0, ein = 0;
            for (int s = 0; s < S; s++) {
                rs += (double)Ph[t * S + s] * dPh[t * S + s];
                a += fabs((double)Ph[t * S + s] * dPh[t * S + s]);
                if (eP) ein += eP[(size_t)h * S * S + t * S + s] * fabs(dPh[t * S + s]) +
                               Ph[t * S + s] * edP[(size_t)h * S * S + t * S + s];
            }
            const double drs = 2 * ue * a + U16 * fabs(rs);
            for (int s = 0; s < S; s++) {
                const double p = Ph[t * S + s], df = dPh[t * S + s] - rs;
                dS[t * S + s] = c * p * df;
                double e = c * p * (drs + 4 * U16 * fabs(df));
                const size_t ps = (size_t)h * S * S + t * S + s;
                if (eP) e += c * (eP[ps] * fabs(df) + p * (edP[ps] + ein));
                eS[t * S + s] = e;
            }
        }
        for (int i = 0; i < HD; i++)
            for (int t = 0; t < S; t++) {
                double aq = 0, ak = 0, eq = 0, ek = 0, mq = 0, mk = 0;
                for (int s = 0; s < S; s++) {
                    aq += dS[t * S + s] * kh[i * S + s];  // dq[i][t] = Σ_s dS[t][s] k[i][s]
                    ak += dS[s * S + t] * qh[i * S + s];  // dk[i][t] = Σ_s dS[s][t] q[i][s]
                    eq += eS[t * S + s] * fabs(kh[i * S + s]);
                    ek += eS[s * S + t] * fabs(qh[i * S + s]);
                    mq += fabs(dS[t * S + s] * kh[i * S + s]);
                    mk += fabs(dS[s * S + t] * qh[i * S + s]);
                }
                const size_t o = ((size_t)h * HD + i) * S + t;
                if (dq) dq[o] = (float)aq, dk[o] = (float)ak;
                bq[o] = (float)(eq + U16 * fabs(aq) + 2 * gamma_k(S) * mq);
                bk[o] = (float)(ek + U16 * fabs(ak) + 2 * gamma_k(S) * mk);
            }
    }
    free(dS), free(eS);
}

static int run_begin(Run *r, MilKernelKind kind, const TestModel *m, uint64_t seed) {
    memset(r, 0, sizeof *r);
    r->m = m;
    rng_init(&r->rng, seed);
    if (!CHECKF(bare_build(kind, &m->c, m->S, &r->k) == 0, "%s %s: %s", m->c.name, mil_kernel_name(kind),
                err_msg()))
        return -1;
    // the interpreter compiles exactly the text and weight files the ANE would get
    MilWeightFile wf[8];
    CHECK_OR_ABORT(r->k.n_blobs <= 8);
    for (int i = 0; i < r->k.n_blobs; i++)
        wf[i] = (MilWeightFile){r->k.blobs[i].path, r->k.blobs[i].data, r->k.blobs[i].size};
    if (!CHECKF(mil_program_compile(r->k.mil, wf, r->k.n_blobs, &r->prog) == 0, "%s %s: %s", m->c.name, r->k.name,
                err_msg())) {
        mil_kernel_free(&r->k);
        return -1;
    }
    MilIoDesc in, out;
    mil_program_io(r->prog, &in, &out);
    CHECK(in.numel == (size_t)r->k.in_c * r->k.in_w && out.numel == (size_t)r->k.out_c * r->k.out_w);
    r->in = calloc((size_t)r->k.in_c * r->k.in_w, sizeof(uint16_t));
    r->out = calloc((size_t)r->k.out_c * r->k.out_w, sizeof(uint16_t));
    CHECK_OR_ABORT(r->in && r->out);
    return 0;
}

static void run_end(Run *r) {
    mil_program_free(r->prog);
    free(r->in);
    free(r->out);
    mil_kernel_free(&r->k);
}

static void run_stage(Run *r, const char *name, const float *src) {
    CHECKF(mil_kernel_stage(&r->k, r->in, name, src) == 0, "%s", err_msg());
}

static float *run_fetch(Run *r, const char *name) {
    const MilRegion *g = mil_kernel_output(&r->k, name);
    CHECK_OR_ABORT(g != NULL);
    float *a = falloc((size_t)g->nc * g->nw);
    CHECK_OR_ABORT(mil_kernel_fetch(&r->k, r->out, name, a) == 0);
    return a;
}

// fp16 in, fp16 out, every op rounded to fp16 (the sim device's mode)
static int run_eval(Run *r) {
    const int rc = mil_program_run(r->prog, r->in, r->out);
    return CHECKF(rc == 0, "%s %s: %s", r->m->c.name, r->k.name, err_msg()) ? 0 : -1;
}

// |got_i - ref_i| <= SLACK·bound_i + FLOOR for every element; frees bound.
static void run_check(Run *r, const char *region, const float *got, const float *ref, size_t n, float *bound) {
    double worst = 0, worst_ratio = 0;
    size_t wi = 0, bad = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = fabs((double)got[i] - ref[i]), lim = SLACK * bound[i] + FLOOR;
        const double ratio = isnan(d) ? INFINITY : d / lim;
        if (d > worst) worst = d;
        if (ratio > worst_ratio) worst_ratio = ratio, wi = i;
        bad += !(d <= lim);
    }
    CHECKF(bad == 0, "%s %s/%s: %zu of %zu elements beyond their bound; worst [%zu]: kernel %.7g, cpu %.7g, bound %.3g",
           r->m->c.name, r->k.name, region, bad, n, wi, got[wi], ref[wi], SLACK * bound[wi] + FLOOR);
    if (verbose())
        fprintf(stderr, "    %-10s %-10s %-8s max|err| %.2e  max|ref| %.2e  worst err/bound %3.0f%%\n", r->m->c.name,
                r->k.name, region, worst, maxabs(ref, n), 100 * worst_ratio);
    free(bound);
}

// --- sdpaFwd ---------------------------------------------------------------------------------------

static void check_sdpa_fwd(const TestModel *m, uint64_t seed) {
    const Config *c = &m->c;
    const int S = m->S, D = c->dim, QD = config_q_dim(c), KVD = config_kv_dim(c), NH = c->n_heads,
              NKV = c->n_kv_heads, HD = c->head_dim, qk = c->qk_norm, h2 = HD / 2;
    const double u = U16;
    Run r;
    if (run_begin(&r, MIL_K_SDPA_FWD, m, seed) != 0) return;
    // xn = RMSNorm(x) as the pipeline computes it on the CPU, then fp16
    float *x = rnd16(&r.rng, (size_t)D * S, 0, 1), *wn = rnd16(&r.rng, D, 1, 0.1f), *rstd = falloc(S);
    float *xn = falloc((size_t)D * S);
    rmsnorm_forward(xn, rstd, x, wn, D, S, c->norm_eps);
    round16(xn, (size_t)D * S);
    float *Wq = rnd16(&r.rng, (size_t)QD * D, 0, 1 / sqrtf(D)), *Wk = rnd16(&r.rng, (size_t)KVD * D, 0, 1 / sqrtf(D));
    float *Wv = rnd16(&r.rng, (size_t)KVD * D, 0, 1 / sqrtf(D));
    float *qw = rnd16(&r.rng, HD, 1, 0.1f), *kw = rnd16(&r.rng, HD, 1, 0.1f);
    run_stage(&r, "xn", xn);
    run_stage(&r, "Wq^T", Wq);
    run_stage(&r, "Wk^T", Wk);
    run_stage(&r, "Wv^T", Wv);
    if (qk) {
        run_stage(&r, "q_norm", qw);
        run_stage(&r, "k_norm", kw);
    }
    if (run_eval(&r) == 0) {
        float *o_attn = run_fetch(&r, "attn"), *o_q = run_fetch(&r, "q_rope"), *o_k = run_fetch(&r, "k_rope");
        float *o_v = run_fetch(&r, "v"), *o_xn = run_fetch(&r, "xn");
        // projections: one rounded fp32 dot product each
        float *q = linear(Wq, xn, QD, D, S), *k = linear(Wk, xn, KVD, D, S), *v = linear(Wv, xn, KVD, D, S);
        float *mq = mag_linear(Wq, xn, QD, D, S, 0), *mk = mag_linear(Wk, xn, KVD, D, S, 0);
        float *mv = mag_linear(Wv, xn, KVD, D, S, 0);
        run_check(&r, "v", o_v, v, (size_t)KVD * S, bound_linear(v, mv, (size_t)KVD * S, D));
        run_check(&r, "xn", o_xn, xn, (size_t)D * S, falloc((size_t)D * S));  // pass-through: exact
        if (qk) {
            float *o_qp = run_fetch(&r, "q_pre"), *o_kp = run_fetch(&r, "k_pre");
            run_check(&r, "q_pre", o_qp, q, (size_t)QD * S, bound_linear(q, mq, (size_t)QD * S, D));
            run_check(&r, "k_pre", o_kp, k, (size_t)KVD * S, bound_linear(k, mk, (size_t)KVD * S, D));
            free(o_qp), free(o_kp);
        }
        // QK-norm + RoPE end to end from the projections. y = RoPE input with an
        // elementwise error bound ey:
        //   no QK-norm: ey = u·|q| + 2γ_D·Σ|W||xn| (the projection);
        //   QK-norm: relative errors add up along the chain (q carries u): q·fp16(1/√HD)
        //   3u, squared 7u, Σ 8u, + eps 9u, pow(-1/2) 4.5u + u, q·rrms 7.5u, ·w 8.5u, so
        //   ey = 8.5u·|y| + the projection's fp32 term a_j = 2γ_D·Σ|W||xn| through the
        //   norm's Jacobian: |w_i|·r·(a_i + |x_i|·r²/HD·Σ_j |x_j| a_j).
        // A rotated pair: y'_a = y_a·cos − y_b·sin with fp16 tables (u) and rounded
        // products (u) and sum (u): |δy'_a| <= (ey_a + 2u|y_a|)|cos| + (ey_b + 2u|y_b|)|sin| + u|y'_a|.
        RopeTable rt;
        REQUIRE(rope_table_init(&rt, S, HD, c->rope_theta) == 0);
        float *outs[2] = {o_q, o_k}, *pre[2] = {q, k}, *nw[2] = {qw, kw}, *mag[2] = {mq, mk};
        const char *names[2] = {"q_rope", "k_rope"};
        const int nh[2] = {NH, NKV};
        for (int j = 0; j < 2; j++) {
            const size_t n = (size_t)nh[j] * HD * S;
            float *y = falloc(n), *ey = falloc(n), *hr = falloc((size_t)nh[j] * S), *b = falloc(n);
            if (qk) {
                headnorm_forward(y, hr, pre[j], nw[j], nh[j], HD, S, c->norm_eps);
                for (int h = 0; h < nh[j]; h++)
                    for (int t = 0; t < S; t++) {
                        const double rr = hr[h * S + t];
                        double sum = 0;
                        for (int i = 0; i < HD; i++) {
                            const size_t e = ((size_t)h * HD + i) * S + t;
                            sum += fabs(pre[j][e]) * 2 * gamma_k(D) * mag[j][e];
                        }
                        for (int i = 0; i < HD; i++) {
                            const size_t e = ((size_t)h * HD + i) * S + t;
                            const double a = 2 * gamma_k(D) * mag[j][e];
                            const double jac = fabs(nw[j][i]) * rr * (a + fabs(pre[j][e]) * rr * rr / HD * sum);
                            ey[e] = (float)(8.5 * u * fabs(y[e]) + jac);
                        }
                    }
            } else {
                memcpy(y, pre[j], n * sizeof(float));
                for (size_t e = 0; e < n; e++) ey[e] = (float)(u * fabs(y[e]) + 2 * gamma_k(D) * mag[j][e]);
            }
            float *ref = falloc(n);
            memcpy(ref, y, n * sizeof(float));
            rope_forward(ref, &rt, nh[j], c->rope_layout);
            for (int h = 0; h < nh[j]; h++)
                for (int i = 0; i < h2; i++) {
                    const size_t a = (size_t)h * HD + (c->rope_layout == ROPE_HALF ? i : 2 * i);
                    const size_t bb = (size_t)h * HD + (c->rope_layout == ROPE_HALF ? i + h2 : 2 * i + 1);
                    for (int t = 0; t < S; t++) {
                        const double cs = fabs(rt.cos[t * h2 + i]), sn = fabs(rt.sin[t * h2 + i]);
                        const size_t ea = a * S + t, eb = bb * S + t;
                        const double ta = ey[ea] + 2 * u * fabs(y[ea]), tb = ey[eb] + 2 * u * fabs(y[eb]);
                        b[ea] = (float)(ta * cs + tb * sn + u * fabs(ref[ea]));
                        b[eb] = (float)(tb * cs + ta * sn + u * fabs(ref[eb]));
                    }
                }
            run_check(&r, names[j], outs[j], ref, n, b);
            free(y), free(ey), free(hr), free(ref);
        }
        rope_table_free(&rt);
        // attention, chained on the kernel's own q_rope, k_rope, v (GQA: kv head h/R)
        float *P = falloc((size_t)NH * S * S), *a = falloc((size_t)QD * S);
        attention_forward(a, P, o_q, o_k, o_v, NH, NKV, HD, S);
        float *eP = probs_bound(o_q, o_k, P, NH, NKV, HD, S);
        run_check(&r, "attn", o_attn, a, (size_t)QD * S, pv_bound(P, eP, o_v, a, NH, NKV, HD, S));
        free(P), free(eP), free(a), free(q), free(k), free(v), free(mq), free(mk), free(mv);
        free(o_attn), free(o_q), free(o_k), free(o_v), free(o_xn);
    }
    free(x), free(wn), free(rstd), free(xn), free(Wq), free(Wk), free(Wv), free(qw), free(kw);
    run_end(&r);
}

TEST(mil_kernel_sdpa_fwd_matches_cpu) {
    TestModel m[N_MODELS];
    test_models(m);
    for (int i = 0; i < N_MODELS; i++) check_sdpa_fwd(&m[i], 1000 + i);
}

// Changing the token at position t0 (its xn column, hence its q, k and v) leaves
// the attention output at every earlier position bit-identical and changes it at t0.
TEST(mil_kernel_sdpa_fwd_is_causal) {
    TestModel m[N_MODELS];
    test_models(m);
    for (int mi = 0; mi < N_MODELS; mi++) {
        const Config *c = &m[mi].c;
        const int S = m[mi].S, D = c->dim, QD = config_q_dim(c), KVD = config_kv_dim(c), t0 = S / 2;
        Run r;
        if (run_begin(&r, MIL_K_SDPA_FWD, &m[mi], 77 + mi) != 0) continue;
        float *xn = rnd16(&r.rng, (size_t)D * S, 0, 1);
        float *Wq = rnd16(&r.rng, (size_t)QD * D, 0, 1 / sqrtf(D));
        float *Wk = rnd16(&r.rng, (size_t)KVD * D, 0, 1 / sqrtf(D));
        float *Wv = rnd16(&r.rng, (size_t)KVD * D, 0, 1 / sqrtf(D)), *nw = rnd16(&r.rng, c->head_dim, 1, 0.1f);
        run_stage(&r, "xn", xn);
        run_stage(&r, "Wq^T", Wq);
        run_stage(&r, "Wk^T", Wk);
        run_stage(&r, "Wv^T", Wv);
        if (c->qk_norm) run_stage(&r, "q_norm", nw), run_stage(&r, "k_norm", nw);
        if (run_eval(&r) == 0) {
            float *a0 = run_fetch(&r, "attn");
            for (int d = 0; d < D; d++) xn[(size_t)d * S + t0] = h16(-2.0f * xn[(size_t)d * S + t0] + 0.5f);
            run_stage(&r, "xn", xn);
            if (run_eval(&r) == 0) {
                float *a1 = run_fetch(&r, "attn");
                int before = 0, at = 0;
                for (int i = 0; i < QD; i++) {
                    for (int t = 0; t < t0; t++) before += a0[(size_t)i * S + t] != a1[(size_t)i * S + t];
                    at += a0[(size_t)i * S + t0] != a1[(size_t)i * S + t0];
                }
                CHECKF(before == 0, "%s: %d attention outputs before position %d changed", c->name, before, t0);
                CHECKF(at > QD / 2, "%s: only %d of %d outputs at position %d changed", c->name, at, QD, t0);
                free(a1);
            }
            free(a0);
        }
        free(xn), free(Wq), free(Wk), free(Wv), free(nw);
        run_end(&r);
    }
}

// Query head h attends to kv head h/R (not h mod NKV): with v constant = g+1 on kv
// head g, every output of query head h is a convex combination of h/R + 1.
TEST(mil_kernel_sdpa_fwd_gqa_mapping) {
    TestModel m[N_MODELS];
    test_models(m);
    for (int mi = 1; mi < N_MODELS; mi++) {  // the GQA models
        const Config *c = &m[mi].c;
        const int S = m[mi].S, D = c->dim, QD = config_q_dim(c), KVD = config_kv_dim(c), HD = c->head_dim;
        const int R = c->n_heads / c->n_kv_heads;
        Run r;
        if (run_begin(&r, MIL_K_SDPA_FWD, &m[mi], 300 + mi) != 0) continue;
        float *xn = rnd16(&r.rng, (size_t)D * S, 0, 1), *Wv = falloc((size_t)KVD * D);
        for (int t = 0; t < S; t++) xn[t] = 1.0f;  // channel 0 is constant 1
        for (int i = 0; i < KVD; i++) Wv[(size_t)i * D] = (float)(i / HD + 1);  // v[kv head g] = g + 1
        float *Wq = rnd16(&r.rng, (size_t)QD * D, 0, 1 / sqrtf(D));
        float *Wk = rnd16(&r.rng, (size_t)KVD * D, 0, 1 / sqrtf(D));
        float *nw = rnd16(&r.rng, HD, 1, 0.1f);
        run_stage(&r, "xn", xn);
        run_stage(&r, "Wq^T", Wq);
        run_stage(&r, "Wk^T", Wk);
        run_stage(&r, "Wv^T", Wv);
        if (c->qk_norm) run_stage(&r, "q_norm", nw), run_stage(&r, "k_norm", nw);
        if (run_eval(&r) == 0) {
            float *a = run_fetch(&r, "attn");
            int bad = 0;
            for (int i = 0; i < QD; i++) {
                const float want = (float)((i / HD) / R + 1);
                // Σ_s P_s·want with each P_s rounded (u) and the sum rounded (u): within (S+1)·u·want
                for (int t = 0; t < S; t++) bad += fabsf(a[(size_t)i * S + t] - want) > (S + 2) * U16 * want;
            }
            CHECKF(bad == 0, "%s: %d outputs are not from kv head h/R", c->name, bad);
            free(a);
        }
        free(xn), free(Wv), free(Wq), free(Wk), free(nw);
        run_end(&r);
    }
}

// --- woFwd, ffnFused ---------------------------------------------------------------------------

TEST(mil_kernel_wo_fwd_matches_cpu) {
    TestModel m[N_MODELS];
    test_models(m);
    for (int mi = 0; mi < N_MODELS; mi++) {
        const Config *c = &m[mi].c;
        const int S = m[mi].S, D = c->dim, QD = config_q_dim(c);
        Run r;
        if (run_begin(&r, MIL_K_WO_FWD, &m[mi], 2000 + mi) != 0) continue;
        float *a = rnd16(&r.rng, (size_t)QD * S, 0, 1), *Wo = rnd16(&r.rng, (size_t)D * QD, 0, 1 / sqrtf(QD));
        run_stage(&r, "attn", a);
        run_stage(&r, "Wo^T", Wo);
        if (run_eval(&r) == 0) {
            float *o = run_fetch(&r, "o"), *ref = linear(Wo, a, D, QD, S), *mag = mag_linear(Wo, a, D, QD, S, 0);
            run_check(&r, "o", o, ref, (size_t)D * S, bound_linear(ref, mag, (size_t)D * S, QD));
            free(o), free(ref), free(mag);
        }
        free(a), free(Wo);
        run_end(&r);
    }
}

TEST(mil_kernel_ffn_fused_matches_cpu) {
    TestModel m[N_MODELS];
    test_models(m);
    for (int mi = 0; mi < N_MODELS; mi++) {
        const Config *c = &m[mi].c;
        const int S = m[mi].S, D = c->dim, H = c->hidden;
        const size_t nd = (size_t)D * S, nh = (size_t)H * S;
        const double u = U16, alpha = c->res_scale;
        Run r;
        if (run_begin(&r, MIL_K_FFN_FUSED, &m[mi], 3000 + mi) != 0) continue;
        float *x2 = rnd16(&r.rng, nd, 0, 1), *wn = rnd16(&r.rng, D, 1, 0.1f), *rstd = falloc(S), *x2n = falloc(nd);
        rmsnorm_forward(x2n, rstd, x2, wn, D, S, c->norm_eps);
        round16(x2n, nd);
        float *W1 = rnd16(&r.rng, (size_t)H * D, 0, 1 / sqrtf(D)), *W3 = rnd16(&r.rng, (size_t)H * D, 0, 1 / sqrtf(D));
        float *W2 = rnd16(&r.rng, (size_t)D * H, 0, 1 / sqrtf(H));
        run_stage(&r, "x2n", x2n);
        run_stage(&r, "x2", x2);
        run_stage(&r, "W1^T", W1);
        run_stage(&r, "W3^T", W3);
        run_stage(&r, "W2^T", W2);
        if (run_eval(&r) == 0) {
            float *o_x = run_fetch(&r, "x_next"), *o_h1 = run_fetch(&r, "h1"), *o_h3 = run_fetch(&r, "h3");
            float *o_g = run_fetch(&r, "g");
            float *h1 = linear(W1, x2n, H, D, S), *h3 = linear(W3, x2n, H, D, S);
            float *m1 = mag_linear(W1, x2n, H, D, S, 0), *m3 = mag_linear(W3, x2n, H, D, S, 0);
            run_check(&r, "h1", o_h1, h1, nh, bound_linear(h1, m1, nh, D));
            run_check(&r, "h3", o_h3, h3, nh, bound_linear(h3, m3, nh, D));
            // gate from the kernel's h1, h3: σ rounded (u), h1·σ (2u), ·h3 (3u)
            float *g = falloc(nh), *bg = falloc(nh);
            swiglu_forward(g, o_h1, o_h3, nh);
            for (size_t i = 0; i < nh; i++) bg[i] = (float)(3 * u * fabs(g[i]));
            run_check(&r, "g", o_g, g, nh, bg);
            // x_next from the kernel's gate: f = W2·g rounded (u|f| + fp32 term); times
            // fp16(α) and rounded (2u·|α f|, only when α != 1); + x2 rounded (u·|x_next|)
            float *f = linear(W2, o_g, D, H, S), *mf = mag_linear(W2, o_g, D, H, S, 0), *xr = falloc(nd);
            float *bx = falloc(nd);
            for (size_t i = 0; i < nd; i++) {
                xr[i] = x2[i] + (float)alpha * f[i];
                bx[i] = (float)(fabs(alpha) * (u * fabs(f[i]) + 2 * gamma_k(H) * mf[i]) +
                                (alpha != 1 ? 2 * u * fabs(alpha * f[i]) : 0) + u * fabs(xr[i]));
            }
            run_check(&r, "x_next", o_x, xr, nd, bx);
            free(o_x), free(o_h1), free(o_h3), free(o_g), free(h1), free(h3), free(m1), free(m3), free(g);
            free(f), free(mf), free(xr);
        }
        free(x2), free(wn), free(rstd), free(x2n), free(W1), free(W3), free(W2);
        run_end(&r);
    }
}

// --- backward linears ---------------------------------------------------------------------------

// out = Wᵀ·dy for W [OC, IC] staged as is, dy [OC, S]: one rounded fp32 dot product.
static void check_bwd1(const TestModel *m, MilKernelKind kind, const char *act, const char *w, const char *out,
                       int OC, int IC, uint64_t seed) {
    const int S = m->S;
    Run r;
    if (run_begin(&r, kind, m, seed) != 0) return;
    float *dy = rnd16(&r.rng, (size_t)OC * S, 0, 1), *W = rnd16(&r.rng, (size_t)OC * IC, 0, 1 / sqrtf(OC));
    run_stage(&r, act, dy);
    run_stage(&r, w, W);
    if (run_eval(&r) == 0) {
        float *o = run_fetch(&r, out), *ref = linear_t(W, dy, OC, IC, S), *mag = mag_linear(W, dy, OC, IC, S, 1);
        run_check(&r, out, o, ref, (size_t)IC * S, bound_linear(ref, mag, (size_t)IC * S, OC));
        free(o), free(ref), free(mag);
    }
    free(dy), free(W);
    run_end(&r);
}

// dx = Waᵀ·a + Wbᵀ·b: each product rounded, then the sum:
// |δ| <= u·(|ya| + |yb| + |dx|) + 2γ_OC·(Σ|Wa||a| + Σ|Wb||b|).
static void check_bwd2(const TestModel *m, MilKernelKind kind, const char *an, const char *bn, const char *wan,
                       const char *wbn, int OC, int IC, uint64_t seed) {
    const int S = m->S;
    const size_t ni = (size_t)IC * S;
    Run r;
    if (run_begin(&r, kind, m, seed) != 0) return;
    float *a = rnd16(&r.rng, (size_t)OC * S, 0, 1), *b = rnd16(&r.rng, (size_t)OC * S, 0, 1);
    float *Wa = rnd16(&r.rng, (size_t)OC * IC, 0, 1 / sqrtf(OC));
    float *Wb = rnd16(&r.rng, (size_t)OC * IC, 0, 1 / sqrtf(OC));
    run_stage(&r, an, a);
    run_stage(&r, bn, b);
    run_stage(&r, wan, Wa);
    run_stage(&r, wbn, Wb);
    if (run_eval(&r) == 0) {
        float *o = run_fetch(&r, "dx"), *ya = linear_t(Wa, a, OC, IC, S), *yb = linear_t(Wb, b, OC, IC, S);
        float *ma = mag_linear(Wa, a, OC, IC, S, 1), *mb = mag_linear(Wb, b, OC, IC, S, 1);
        float *ref = falloc(ni), *bd = falloc(ni);
        for (size_t i = 0; i < ni; i++) {
            ref[i] = ya[i] + yb[i];
            bd[i] = (float)(U16 * (fabs(ya[i]) + fabs(yb[i]) + fabs(ref[i])) + 2 * gamma_k(OC) * (ma[i] + mb[i]));
        }
        run_check(&r, "dx", o, ref, ni, bd);
        free(o), free(ya), free(yb), free(ma), free(mb), free(ref);
    }
    free(a), free(b), free(Wa), free(Wb);
    run_end(&r);
}

TEST(mil_kernel_ffn_bwd_w2t_matches_cpu) {
    TestModel m[N_MODELS];
    test_models(m);
    for (int i = 0; i < N_MODELS; i++)
        check_bwd1(&m[i], MIL_K_FFN_BWD_W2T, "dffn", "W2", "dg", m[i].c.dim, m[i].c.hidden, 4000 + i);
}

TEST(mil_kernel_ffn_bwd_w13t_matches_cpu) {
    TestModel m[N_MODELS];
    test_models(m);
    for (int i = 0; i < N_MODELS; i++)
        check_bwd2(&m[i], MIL_K_FFN_BWD_W13T, "dh1", "dh3", "W1", "W3", m[i].c.hidden, m[i].c.dim, 5000 + i);
}

TEST(mil_kernel_wot_bwd_matches_cpu) {
    TestModel m[N_MODELS];
    test_models(m);
    for (int i = 0; i < N_MODELS; i++)
        check_bwd1(&m[i], MIL_K_WOT_BWD, "dy", "Wo", "da", m[i].c.dim, config_q_dim(&m[i].c), 6000 + i);
}

TEST(mil_kernel_q_bwd_matches_cpu) {
    TestModel m[N_MODELS];
    test_models(m);
    for (int i = 0; i < N_MODELS; i++)
        check_bwd1(&m[i], MIL_K_Q_BWD, "dq", "Wq", "dx", config_q_dim(&m[i].c), m[i].c.dim, 7000 + i);
}

TEST(mil_kernel_kv_bwd_matches_cpu) {
    TestModel m[N_MODELS];
    test_models(m);
    for (int i = 0; i < N_MODELS; i++)
        check_bwd2(&m[i], MIL_K_KV_BWD, "dk", "dv", "Wk", "Wv", config_kv_dim(&m[i].c), m[i].c.dim, 8000 + i);
}

// --- attention backward ----------------------------------------------------------------------------

// sdpaBwd1 on (q_rope, tiled k, tiled v, dA) against attention_forward's probs (GQA
// h/R) and attention_backward's per-query-head dv; then sdpaBwd2 on sdpaBwd1's fp16
// probs and dp (copied surface to surface, as the pipeline does), checked twice:
// alone against its formula on those same inputs, and chained against
// attention_backward's dq and per-query-head dk from the exact inputs.
TEST(mil_kernel_sdpa_bwd_matches_cpu) {
    TestModel m[N_MODELS];
    test_models(m);
    for (int mi = 0; mi < N_MODELS; mi++) {
        const Config *c = &m[mi].c;
        const int S = m[mi].S, NH = c->n_heads, NKV = c->n_kv_heads, HD = c->head_dim, QD = config_q_dim(c);
        const int KVD = config_kv_dim(c);
        const size_t nq = (size_t)QD * S, np = (size_t)NH * S * S;
        Run r1, r2;
        if (run_begin(&r1, MIL_K_SDPA_BWD1, &m[mi], 9000 + mi) != 0) continue;
        if (run_begin(&r2, MIL_K_SDPA_BWD2, &m[mi], 9100 + mi) != 0) {
            run_end(&r1);
            continue;
        }
        float *q = rnd16(&r1.rng, nq, 0, 1), *kkv = rnd16(&r1.rng, (size_t)KVD * S, 0, 1);
        float *vkv = rnd16(&r1.rng, (size_t)KVD * S, 0, 1), *da = rnd16(&r1.rng, nq, 0, 1);
        float *kt = tile_kv(kkv, NH, NKV, HD, S), *vt = tile_kv(vkv, NH, NKV, HD, S);
        run_stage(&r1, "q", q);
        run_stage(&r1, "k", kt);
        run_stage(&r1, "v", vt);
        run_stage(&r1, "da", da);
        // CPU: probs from the GQA forward (kv head h/R), the backward at NH heads on the
        // tiled k, v (dv, dk per query head, before the kv reduce), dP = dA·Vᵀ per head
        float *att = falloc(nq), *P = falloc(np), *dq = falloc(nq), *dk = falloc(nq), *dv = falloc(nq);
        float *scratch = falloc((size_t)S * S), *dp = falloc(np), *mdp = falloc(np), *ada = falloc(nq);
        float *avt = falloc(nq);
        attention_forward(att, P, q, kkv, vkv, NH, NKV, HD, S);
        attention_backward(dq, dk, dv, da, P, q, kt, vt, NH, NH, HD, S, scratch);
        for (size_t i = 0; i < nq; i++) ada[i] = fabsf(da[i]), avt[i] = fabsf(vt[i]);
        for (int h = 0; h < NH; h++) {
            const size_t o = (size_t)h * HD * S;
            gemm(1, 0, S, S, HD, 1.0f, da + o, S, vt + o, S, 0.0f, dp + (size_t)h * S * S, S);
            gemm(1, 0, S, S, HD, 1.0f, ada + o, S, avt + o, S, 0.0f, mdp + (size_t)h * S * S, S);
        }
        float *eP = probs_bound(q, kkv, P, NH, NKV, HD, S);
        float *edp = bound_linear(dp, mdp, np, HD);  // dp = dA·Vᵀ: one rounded dot product
        if (run_eval(&r1) == 0) {
            float *o_dv = run_fetch(&r1, "dv"), *o_p = run_fetch(&r1, "probs"), *o_dp = run_fetch(&r1, "dp");
            float *bP = falloc(np), *bdp = falloc(np);
            memcpy(bP, eP, np * sizeof(float));
            memcpy(bdp, edp, np * sizeof(float));
            run_check(&r1, "probs", o_p, P, np, bP);
            run_check(&r1, "dp", o_dp, dp, np, bdp);
            // dv[h][i][s] = Σ_t P[h][t][s]·dA[i][t]: the P·V bound with P transposed
            float *Pt = falloc(np), *ePt = falloc(np);
            for (int h = 0; h < NH; h++)
                for (int t = 0; t < S; t++)
                    for (int s = 0; s < S; s++) {
                        Pt[((size_t)h * S + s) * S + t] = P[((size_t)h * S + t) * S + s];
                        ePt[((size_t)h * S + s) * S + t] = eP[((size_t)h * S + t) * S + s];
                    }
            run_check(&r1, "dv", o_dv, dv, nq, pv_bound(Pt, ePt, da, dv, NH, NH, HD, S));
            free(Pt), free(ePt);

            CHECK(mil_kernel_copy(&r2.k, r2.in, "probs", &r1.k, r1.out, "probs") == 0);
            CHECK(mil_kernel_copy(&r2.k, r2.in, "dp", &r1.k, r1.out, "dp") == 0);
            run_stage(&r2, "q", q);
            run_stage(&r2, "k", kt);
            if (run_eval(&r2) == 0) {
                float *o_dq = run_fetch(&r2, "dq"), *o_dk = run_fetch(&r2, "dk");
                float *rq = falloc(nq), *rk = falloc(nq), *bq = falloc(nq), *bk = falloc(nq);
                bwd2_reference(o_p, o_dp, NULL, NULL, q, kt, NH, HD, S, rq, rk, bq, bk);
                run_check(&r2, "dq", o_dq, rq, nq, bq);
                run_check(&r2, "dk", o_dk, rk, nq, bk);
                bq = falloc(nq), bk = falloc(nq);
                bwd2_reference(P, dp, eP, edp, q, kt, NH, HD, S, NULL, NULL, bq, bk);
                run_check(&r2, "dq(e2e)", o_dq, dq, nq, bq);
                run_check(&r2, "dk(e2e)", o_dk, dk, nq, bk);
                free(o_dq), free(o_dk), free(rq), free(rk);
            }
            free(o_dv), free(o_p), free(o_dp);
        }
        free(q), free(kkv), free(vkv), free(da), free(kt), free(vt), free(att), free(P), free(dq), free(dk), free(dv);
        free(scratch), free(dp), free(mdp), free(ada), free(avt), free(eP), free(edp);
        run_end(&r1);
        run_end(&r2);
    }
}

// The sim's rewrites (mil_fuse.c: matmul operands read in place from the
// input surface) compute the same values as the program run op by op as
// written: every kernel, both precisions, bit for bit.
TEST(mil_fused_programs_equal_as_written) {
    TestModel m[N_MODELS];
    test_models(m);
    const MilCompileOptions written = {.as_written = 1};
    for (int mi = 0; mi < N_MODELS; mi++) {
        int ops[2] = {0, 0};  // fused, as written
        for (int kind = 0; kind < MIL_K_DYN_COUNT; kind++) {
            Run r;
            if (run_begin(&r, kind, &m[mi], 700 + kind) != 0) continue;
            MilWeightFile wf[8];
            for (int i = 0; i < r.k.n_blobs; i++)
                wf[i] = (MilWeightFile){r.k.blobs[i].path, r.k.blobs[i].data, r.k.blobs[i].size};
            MilProgram *pw = NULL;
            REQUIRE(mil_program_compile_opts(r.k.mil, wf, r.k.n_blobs, &written, &pw) == 0);
            ops[0] += mil_program_n_ops(r.prog), ops[1] += mil_program_n_ops(pw);
            const size_t nin = (size_t)r.k.in_c * r.k.in_w, nout = (size_t)r.k.out_c * r.k.out_w;
            float *x = rnd16(&r.rng, nin, 0, 0.5f), *y[2] = {falloc(nout), falloc(nout)};
            uint16_t *o16 = calloc(nout, sizeof(uint16_t));
            fp16_from_f32_array(r.in, x, nin);
            if (run_eval(&r) == 0 && CHECK(mil_program_run(pw, r.in, o16) == 0))
                CHECKF(!memcmp(o16, r.out, nout * sizeof(uint16_t)), "%s %s: fp16 outputs differ", m[mi].c.name,
                       r.k.name);
            REQUIRE(mil_program_run_f32(r.prog, x, y[0]) == 0 && mil_program_run_f32(pw, x, y[1]) == 0);
            CHECKF(!memcmp(y[0], y[1], nout * sizeof(float)), "%s %s: fp32 outputs differ", m[mi].c.name, r.k.name);
            free(x), free(y[0]), free(y[1]), free(o16);
            mil_program_free(pw);
            run_end(&r);
        }
        CHECKF(ops[0] < ops[1], "%s: nothing fused (%d ops)", m[mi].c.name, ops[1]);
    }
}

// Big enough products pair up (MilStep.with_next: two independent matmuls at
// once, their operands kept alive through both) — stories15m's shapes, whose
// kernels have such pairs, against the program as written, bit for bit.
TEST(mil_fused_pairs_equal_as_written) {
    Config c;
    REQUIRE(config_preset(&c, "stories15m") == 0);
    const MilCompileOptions written = {.as_written = 1};
    int pairs = 0;
    Rng g;
    rng_init(&g, 17);
    for (int kind = 0; kind < MIL_K_DYN_COUNT; kind++) {
        MilKernel k;
        REQUIRE(mil_kernel_build(kind, &c, 64, &k) == 0);
        MilWeightFile wf[8];
        for (int i = 0; i < k.n_blobs; i++) wf[i] = (MilWeightFile){k.blobs[i].path, k.blobs[i].data, k.blobs[i].size};
        MilProgram *p[2];
        REQUIRE(mil_program_compile(k.mil, wf, k.n_blobs, &p[0]) == 0);
        REQUIRE(mil_program_compile_opts(k.mil, wf, k.n_blobs, &written, &p[1]) == 0);
        for (int i = 0; i < p[0]->n_steps; i++) pairs += p[0]->steps[i].with_next;
        const size_t nin = (size_t)k.in_c * k.in_w, nout = (size_t)k.out_c * k.out_w;
        uint16_t *x = malloc(2 * nin), *o[2] = {malloc(2 * nout), malloc(2 * nout)};
        for (size_t i = 0; i < nin; i++) x[i] = fp16_from_f32(0.5f * rng_normal(&g));
        for (int f = 0; f < 2; f++) REQUIRE(mil_program_run(p[f], x, o[f]) == 0);
        CHECKF(!memcmp(o[0], o[1], 2 * nout), "%s: outputs differ", k.name);
        free(x), free(o[0]), free(o[1]);
        mil_program_free(p[0]), mil_program_free(p[1]);
        mil_kernel_free(&k);
    }
    CHECKF(pairs >= 4, "%d pairs of products (sdpaFwd, ffnFused, ffnBwdW13t, kvBwd have one each)", pairs);
}

// The older-chip dialect (program(1.0), ios16, verbose scalars) is the same program:
// every kernel compiles in both, and both give bit-identical outputs.
TEST(mil_kernel_ios16_dialect_same_numbers) {
    TestModel m[N_MODELS];
    test_models(m);
    for (int mi = 2; mi < N_MODELS; mi++)
        for (int kind = 0; kind < MIL_K_DYN_COUNT; kind++) {
            MilKernel k[2];
            MilProgram *p[2] = {NULL, NULL};
            REQUIRE(mil_kernel_build_dialect(kind, &m[mi].c, m[mi].S, MIL_DIALECT_IOS18, &k[0]) == 0);
            REQUIRE(mil_kernel_build_dialect(kind, &m[mi].c, m[mi].S, MIL_DIALECT_IOS16, &k[1]) == 0);
            for (int d = 0; d < 2; d++) {
                MilWeightFile wf[8];
                for (int i = 0; i < k[d].n_blobs && i < 8; i++)
                    wf[i] = (MilWeightFile){k[d].blobs[i].path, k[d].blobs[i].data, k[d].blobs[i].size};
                CHECKF(mil_program_compile(k[d].mil, wf, k[d].n_blobs, &p[d]) == 0, "%s %s: %s", k[d].name,
                       d ? "ios16" : "ios18", err_msg());
            }
            if (p[0] && p[1]) {
                Rng g;
                rng_init(&g, 500 + kind);
                const size_t nin = (size_t)k[0].in_c * k[0].in_w, nout = (size_t)k[0].out_c * k[0].out_w;
                uint16_t *in = malloc(nin * 2), *o[2] = {calloc(nout, 2), calloc(nout, 2)};
                for (size_t i = 0; i < nin; i++) in[i] = fp16_from_f32(0.5f * rng_normal(&g));
                if (CHECK(mil_program_run(p[0], in, o[0]) == 0) && CHECK(mil_program_run(p[1], in, o[1]) == 0))
                    CHECKF(memcmp(o[0], o[1], nout * sizeof(uint16_t)) == 0, "%s %s: ios16 and ios18 differ",
                           m[mi].c.name, k[1].name);
                free(in), free(o[0]), free(o[1]);
            }
            for (int d = 0; d < 2; d++) mil_program_free(p[d]), mil_kernel_free(&k[d]);
        }
}
