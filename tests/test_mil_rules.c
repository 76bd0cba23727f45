// The ANE's rules (src/mil/mil_rules.h): every kernel the generators emit, for
// every preset and a few odd windows, meets them; a program breaking each
// enforced rule is rejected with that rule named.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/gemm.h"
#include "core/io.h"
#include "mil/kernels.h"
#include "mil/mil_rules.h"
#include "model/lora.h"
#include "test.h"

static int check_kernel(const MilKernel *k) {
    MilWeightFile wf[64];
    for (int i = 0; i < k->n_blobs; i++) wf[i] = (MilWeightFile){k->blobs[i].path, k->blobs[i].data, k->blobs[i].size};
    return mil_rules_check_text(k->mil, wf, k->n_blobs);
}

// Zero weights are enough: the rules are about shapes. One buffer of the
// largest matrix stands for every weight of the layer.
static MilBaked zero_weights(const Config *c, float *z, int lora) {
    MilBaked w = {.wq = z, .wk = z, .wv = z, .wo = z, .w1 = z, .w2 = z, .w3 = z, .rms_att = z, .rms_ffn = z,
                  .q_norm = z, .k_norm = z, .rms = z, .cls = z};
    int n;
    mil_vocab_chunks(c->vocab, &n, &w.rows);
    if (lora) {
        w.lora_rank = 8, w.lora_targets = (1u << LORA_N_TARGETS) - 1, w.lora_scale = 2.0f, w.norms_in = 1;
    }
    return w;
}

// Elements of the largest matrix a kernel bakes: a layer's W1 or a classifier chunk.
static size_t largest_weight(const Config *c) {
    int rows, n;
    mil_vocab_chunks(c->vocab, &n, &rows);
    const size_t ffn = (size_t)c->hidden * c->dim, cls = (size_t)rows * c->dim;
    return ffn > cls ? ffn : cls;
}

static void check_preset(const char *name, int S) {
    Config c;
    REQUIRE(config_preset(&c, name) == 0);
    float *z = calloc(largest_weight(&c), sizeof(float));
    REQUIRE(z != NULL);
    for (int kind = 0; kind < MIL_K_COUNT; kind++)
        for (int lora = 0; lora <= (kind >= MIL_K_DYN_COUNT); lora++) {
            const MilBaked w = zero_weights(&c, z, lora);
            MilKernel k;
            const int rc = mil_kernel_is_baked((MilKernelKind)kind)
                               ? mil_kernel_build_baked((MilKernelKind)kind, &c, S, &w, &k)
                               : mil_kernel_build((MilKernelKind)kind, &c, S, &k);
            if (!CHECKF(rc == 0, "%s S=%d %s: %s", name, S, mil_kernel_name((MilKernelKind)kind), err_msg())) continue;
            CHECKF(check_kernel(&k) == 0, "%s S=%d%s %s: %s", name, S, lora ? " (LoRA)" : "", k.name, err_msg());
            mil_kernel_free(&k);
        }
    free(z);
}

TEST(mil_every_preset_kernel_meets_the_ane_rules) {
    const char *presets[] = {"stories260k", "stories15m", "stories42m", "stories110m", "qwen3-0.6b",
                             "qwen3-tiny", "tiny-mha", "tiny-gqa", "tiny-qwen3"};
    for (size_t i = 0; i < sizeof presets / sizeof *presets; i++) check_preset(presets[i], 256);
    const int odd[] = {1, 7, 100};
    for (size_t j = 0; j < sizeof odd / sizeof *odd; j++) {
        check_preset("stories260k", odd[j]);
        check_preset("tiny-qwen3", odd[j]);
        check_preset("stories15m", odd[j]);
    }
}

// --- padding changes nothing ------------------------------------------------------------------

// The attention backward's probability regions are rows (head h, query t),
// NH·S_pad of them: padding spaces each head's rows S_pad apart, and only the
// window's queries (t < S) hold values.
static int head_rows(const MilKernel *k, const MilRegion *r) {
    const int attn = k->kind == MIL_K_SDPA_BWD1 || k->kind == MIL_K_SDPA_BWD2 || k->kind == MIL_K_WO_SDPA_BWD1;
    return attn && (strcmp(r->name, "probs") == 0 || strcmp(r->name, "dp") == 0);
}
static int live_row(const MilKernel *k, const MilRegion *r, int i) { return !head_rows(k, r) || i % k->S_pad < k->S; }
// Row i of such a region in the numbering without padding.
static int logical_row(const MilKernel *k, const MilRegion *r, int i) {
    return head_rows(k, r) ? i / k->S_pad * k->S + i % k->S_pad : i;
}

// Runs k in fp32 with every input region filled from a counter-based hash of
// (region, row in its head-free numbering, column), so two layouts get the same values.
static float *run_filled(const MilKernel *k) {
    MilWeightFile wf[64];
    for (int i = 0; i < k->n_blobs; i++) wf[i] = (MilWeightFile){k->blobs[i].path, k->blobs[i].data, k->blobs[i].size};
    MilProgram *prog;
    if (!CHECKF(mil_program_compile(k->mil, wf, k->n_blobs, &prog) == 0, "%s: %s", k->name, err_msg())) return NULL;
    float *in = calloc((size_t)k->in_c * k->in_w, sizeof(float)), *out = calloc((size_t)k->out_c * k->out_w, 4);
    for (int ri = 0; ri < k->n_in; ri++) {
        const MilRegion *r = &k->in[ri];
        for (int i = 0; i < r->nc; i++) {
            if (!live_row(k, r, i)) continue;
            const int logical = logical_row(k, r, i);
            for (int j = 0; j < r->nw; j++) {
                uint32_t h = (uint32_t)(ri * 7919 + logical * 104729 + j * 15485863) * 2654435761u;
                h ^= h >> 15;
                float v = (float)(h % 2001) / 1000.0f - 1.0f;
                if (strcmp(r->name, "probs") == 0) v = (v + 1.0f) / 64.0f;
                in[(size_t)(r->c0 + i) * k->in_w + r->w0 + j] = v;
            }
        }
    }
    CHECKF(mil_program_run_f32(prog, in, out) == 0, "%s: %s", k->name, err_msg());
    mil_program_free(prog);
    free(in);
    return out;
}

static void compare_padded(const char *preset, int S) {
    Config c;
    REQUIRE(config_preset(&c, preset) == 0);
    const size_t big = largest_weight(&c);
    float *wts = malloc(big * sizeof(float));
    REQUIRE(wts != NULL);
    for (size_t i = 0; i < big; i++) wts[i] = (float)((i * 2654435761u) % 1001) / 8000.0f - 0.0625f;
    for (int kind = 0; kind < MIL_K_COUNT; kind++)
        for (int lora = 0; lora <= (kind >= MIL_K_DYN_COUNT); lora++) {
            MilBaked w = zero_weights(&c, wts, lora);
            const MilBaked *wp = mil_kernel_is_baked((MilKernelKind)kind) ? &w : NULL;
            MilKernel a, b;
            REQUIRE(mil_kernel_build_unpadded((MilKernelKind)kind, &c, S, wp, &a) == 0);
            // both with GQA as the NH-input concat: mil_gqa_permuted_equals_concat compares the forms
            if (!CHECKF(mil_kernel_build_gqa_concat((MilKernelKind)kind, &c, S, wp, &b) == 0, "%s", err_msg())) {
                mil_kernel_free(&a);
                continue;
            }
            CHECKF(check_kernel(&a) != 0, "%s %s: the unpadded kernel meets the rules, so the test shows nothing",
                   preset, a.name);
            float *ya = run_filled(&a), *yb = run_filled(&b);
            size_t bad = 0;
            for (int ri = 0; ya && yb && ri < a.n_out; ri++) {
                const MilRegion *ra = &a.out[ri], *rb = mil_kernel_output(&b, ra->name);
                if (!CHECKF(rb && rb->nw == ra->nw, "%s: output %s differs in layout", b.name, ra->name)) continue;
                for (int i = 0; i < rb->nc; i++) {
                    if (!live_row(&b, rb, i)) continue;
                    const int ia = logical_row(&b, rb, i);
                    for (int j = 0; j < rb->nw; j++) {
                        const float va = ya[(size_t)(ra->c0 + ia) * a.out_w + ra->w0 + j];
                        const float vb = yb[(size_t)(rb->c0 + i) * b.out_w + rb->w0 + j];
                        bad += memcmp(&va, &vb, sizeof va) != 0;
                    }
                }
            }
            CHECKF(bad == 0, "%s S=%d%s %s: %zu output values differ between the padded and the bare kernel", preset, S,
                   lora ? " (LoRA)" : "", b.name, bad);
            free(ya), free(yb);
            mil_kernel_free(&a), mil_kernel_free(&b);
        }
    free(wts);
}

// stories260k has every odd shape: head_dim 8, hidden 172, and a window of 40 is
// no multiple of 64; its surfaces are under 48 KiB. LoRA's rank 8 pads too.
//
// Exact: each padded product only adds zero terms after the real ones. The
// in-tree GEMM sums every output over k in order whatever M and N are;
// OpenBLAS's edge kernels for the columns past a block of 32 round
// differently, so the comparison would see the window's width, not padding.
TEST(mil_padded_kernels_equal_bare_ones) {
    const GemmBackend was = gemm_get_backend();
    gemm_set_backend(GEMM_BLOCKED);
    compare_padded("stories260k", 40);
    compare_padded("stories15m", 24);
    gemm_set_backend(was);
}

// --- each enforced rule rejects a program that breaks it ---------------------------------------

typedef struct {
    MilRuleId rule;
    int in_c, in_w;  // the input [1, in_c, 1, in_w]
} Case;

// A small program per rule: only the broken rule is broken.
static MilVal violate(MilEmit *e, MilVal x, const Case *c) {
    const int C = c->in_c, W = c->in_w;
    switch (c->rule) {
    case MIL_RULE_SLICE_START:
        return mil_emit_slice(e, x, (const int[]){0, 0, 0, 8}, (const int[]){1, C, 1, 64}, "s");
    case MIL_RULE_MATMUL_INNER: {  // [384, 40] · [384, 40]ᵀ: K = 40
        MilVal s = mil_emit_slice(e, x, (const int[]){0, 0, 0, 0}, (const int[]){1, C, 1, 40}, "s");
        MilVal r = mil_emit_reshape(e, s, 4, (const int[]){1, 1, C, 40}, "r");
        return mil_emit_matmul(e, r, r, 0, 1, "m");
    }
    case MIL_RULE_RANK: {
        MilVal r = mil_emit_reshape(e, x, 5, (const int[]){1, 1, 1, C, W}, "r5");
        return mil_emit_reshape(e, mil_emit_sigmoid(e, r, "s5"), 4, (const int[]){1, C, 1, W}, "r4");
    }
    case MIL_RULE_CONV_WEIGHT: {  // the input as its own [C, C] weight
        MilVal w = mil_emit_reshape(e, x, 4, (const int[]){C, W, 1, 1}, "w");
        return mil_emit_conv(e, x, w, "c");
    }
    default: return mil_emit_sigmoid(e, x, "y");  // io-rows, min-surface: the surfaces themselves
    }
}

TEST(mil_rules_reject_each_violation) {
    const Case cases[] = {
        {MIL_RULE_IO_ROWS, 384, 72},       {MIL_RULE_MIN_SURFACE, 64, 64}, {MIL_RULE_SLICE_START, 384, 128},
        {MIL_RULE_MATMUL_INNER, 384, 64}, {MIL_RULE_RANK, 384, 64},       {MIL_RULE_CONV_WEIGHT, 384, 384},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        MilEmit e;
        mil_emit_init(&e, MIL_DIALECT_IOS18);
        MilVal x = mil_emit_input(&e, "x", 4, (const int[]){1, cases[i].in_c, 1, cases[i].in_w});
        char *text = NULL;
        size_t len;
        const char *id = mil_rule(cases[i].rule)->id;
        if (CHECKF(mil_emit_finish(&e, violate(&e, x, &cases[i]), &text, &len) == 0, "%s: %s", id, err_msg())) {
            char want[64];
            snprintf(want, sizeof want, "ANE rule %s:", id);
            CHECKF(mil_rules_check_text(text, NULL, 0) != 0 && strstr(err_msg(), want), "%s: got '%s'", id,
                   err_msg());
            // the interpreter alone runs it: only the rule is broken
            MilProgram *p;
            CHECKF(mil_program_compile(text, NULL, 0, &p) == 0, "%s: %s", id, err_msg());
            if (p) mil_program_free(p);
        }
        free(text);
        mil_emit_free(&e);
    }
    // every rule has its table row (the README's ANE section is made from it)
    for (int r = 0; r < MIL_RULE_COUNT; r++)
        CHECKF(mil_rule(r) && mil_rule(r)->id && mil_rule(r)->source && mil_rule(r)->action, "rule %d", r);
}

// The README's ANE section carries the rule table: a row for every rule.
TEST(readme_lists_every_ane_rule) {
    char *text = NULL;
    REQUIRE(io_read_all("README.md", &text, NULL) == 0);
    for (int r = 0; r < MIL_RULE_COUNT; r++) {
        char row[64];
        snprintf(row, sizeof row, "\n| %s |", mil_rule(r)->id);
        CHECKF(strstr(text, row) != NULL, "README.md has no row for rule %s", mil_rule(r)->id);
    }
    free(text);
}

// --- the MIL dialect: chosen with --mil-dialect, retried once in the other -----------------------

// The sim stands for a chip that compiles only one dialect
// (ANETRAIN_SIM_REJECT_DIALECT): every kernel is retried in the other, the
// run trains, and the report says how many kernels needed it.
TEST(mil_dialect_retry_compiles_the_other_dialect) {
    struct { const char *pipeline, *dialect, *reject, *want; } cases[] = {
        {"dynamic", "ios18", "ios18", "10 kernels were rejected in the requested dialect"},
        {"static", "ios16", "ios16", "kernels were rejected in the requested dialect"},
        {"dynamic", "ios16", "ios18", NULL},  // the requested dialect compiles: no retry
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char ck[600], *out = NULL;
        snprintf(ck, sizeof ck, "%s/dialect%zu.bin", test_tmpdir(), i);
        const int rc = test_runf(&out,
                                 "ANETRAIN_SIM_REJECT_DIALECT=%s %s train --model tiny-mha --scratch --data %s --seq 32 "
                                 "--steps 2 --accum 1 --eval-every 0 --pipeline %s --device sim --mil-dialect %s "
                                 "--ckpt %s",
                                 cases[i].reject, test_bin(), test_pattern_tokens(256), cases[i].pipeline,
                                 cases[i].dialect, ck);
        CHECKF(rc == 0, "case %zu: exit %d:\n%s", i, rc, out ? out : "");
        if (cases[i].want) CHECKF(out && strstr(out, cases[i].want), "case %zu: no '%s' in:\n%s", i, cases[i].want,
                                  out ? out : "");
        else CHECKF(out && !strstr(out, "MIL dialect:"), "case %zu: a retry was reported:\n%s", i, out ? out : "");
        free(out);
    }
    char *out = NULL;
    CHECK(test_runf(&out, "%s train --model tiny-mha --scratch --data %s --mil-dialect ios17 --steps 1", test_bin(),
                    test_pattern_tokens(256)) != 0 && out && strstr(out, "--mil-dialect must be ios18 or ios16"));
    free(out);
}

// --- GQA as the original's 2-input concat, with permuted query heads ------------------------------

// Runs k (fp16, as the device) on inputs staged by name from src[region] and
// returns every output region fetched by name (model head order), concatenated.
static float *run_staged(const MilKernel *k, float *const *src, size_t *n_out) {
    MilWeightFile wf[64];
    for (int i = 0; i < k->n_blobs; i++) wf[i] = (MilWeightFile){k->blobs[i].path, k->blobs[i].data, k->blobs[i].size};
    MilProgram *prog;
    if (!CHECKF(mil_program_compile(k->mil, wf, k->n_blobs, &prog) == 0, "%s: %s", k->name, err_msg())) return NULL;
    uint16_t *in = calloc((size_t)k->in_c * k->in_w, 2), *out = calloc((size_t)k->out_c * k->out_w, 2);
    for (int r = 0; r < k->n_in; r++) CHECK(mil_kernel_stage(k, in, k->in[r].name, src[r]) == 0);
    size_t n = 0;
    for (int r = 0; r < k->n_out; r++) n += (size_t)k->out[r].nc * k->out[r].nw;
    float *y = calloc(n, sizeof(float));
    CHECKF(mil_program_run(prog, in, out) == 0, "%s: %s", k->name, err_msg());
    size_t at = 0;
    for (int r = 0; r < k->n_out; r++) {
        CHECK(mil_kernel_fetch(k, out, k->out[r].name, y + at) == 0);
        at += (size_t)k->out[r].nc * k->out[r].nw;
    }
    mil_program_free(prog);
    free(in), free(out);
    *n_out = n;
    return y;
}

// sdpaFwd and fwdAttn in both forms, the same staged inputs: every output the
// same bit for bit in fp16, except fwdAttn's o = Wo·attn, whose sum over the
// query channels runs in the permuted order: its fp32 sums differ by far less
// than an fp16 step, so after rounding by at most one fp16 step of the
// region's largest value (2^-10 of it).
TEST(mil_gqa_permuted_equals_concat) {
    const char *presets[] = {"tiny-gqa", "tiny-qwen3", "stories260k", "qwen3-tiny"};
    const GemmBackend was = gemm_get_backend();
    gemm_set_backend(GEMM_BLOCKED);  // products whose columns moved still sum each output in one order
    for (size_t pi = 0; pi < sizeof presets / sizeof *presets; pi++) {
        Config c;
        REQUIRE(config_preset(&c, presets[pi]) == 0);
        const int S = 64;
        const size_t big = largest_weight(&c);
        float *wts = malloc(big * sizeof(float));
        for (size_t i = 0; i < big; i++) wts[i] = (float)((i * 2654435761u) % 1001) / 4000.0f - 0.125f;
        const MilBaked w = zero_weights(&c, wts, 0);
        const MilKernelKind kinds[2] = {MIL_K_SDPA_FWD, MIL_K_ATTN_FWD};
        for (int ki = 0; ki < 2; ki++) {
            const MilBaked *wp = ki ? &w : NULL;
            MilKernel a, b;
            REQUIRE((ki ? mil_kernel_build_baked(kinds[ki], &c, S, wp, &a) : mil_kernel_build(kinds[ki], &c, S, &a)) == 0);
            REQUIRE(mil_kernel_build_gqa_concat(kinds[ki], &c, S, wp, &b) == 0);
            CHECKF(a.gqa_r == c.n_heads / c.n_kv_heads && b.gqa_r == 0, "%s %s: forms %d, %d", presets[pi], a.name,
                   a.gqa_r, b.gqa_r);
            CHECKF(strstr(a.mil, "concat(axis") && !strstr(a.mil, "kt_h1"), "%s %s: the permuted form slices heads",
                   presets[pi], a.name);
            float *src[MIL_KERNEL_MAX_REGIONS];
            for (int r = 0; r < a.n_in; r++) {
                const size_t n = (size_t)a.in[r].nc * a.in[r].nw;
                src[r] = malloc(n * sizeof(float));
                for (size_t i = 0; i < n; i++) src[r][i] = (float)(((i + 977 * r) * 40503u) % 2001) / 1000.0f - 1.0f;
            }
            size_t na, nb;
            float *ya = run_staged(&a, src, &na), *yb = run_staged(&b, src, &nb);
            if (ya && yb && CHECKF(na == nb, "%s: outputs differ in size", a.name)) {
                size_t at = 0;
                for (int r = 0; r < a.n_out; r++) {
                    const size_t n = (size_t)a.out[r].nc * a.out[r].nw;
                    double mx = 0, d = 0;
                    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs(yb[at + i])), d = fmax(d, fabs(ya[at + i] - yb[at + i]));
                    const double bound = strcmp(a.out[r].name, "o") == 0 ? mx / 1024 : 0;
                    CHECKF(d <= bound, "%s %s %s: permuted and concat forms differ by %g (bound %g)", presets[pi],
                           a.name, a.out[r].name, d, bound);
                    at += n;
                }
            }
            free(ya), free(yb);
            for (int r = 0; r < a.n_in; r++) free(src[r]);
            mil_kernel_free(&a), mil_kernel_free(&b);
        }
        free(wts);
    }
    gemm_set_backend(was);
}
