// LoRA (src/model/lora.c, src/cpu/model_lora.c): the adapters' gradients of
// the whole model against central finite differences of the double reference
// model (cpu/ops_ref.h) run on the merged weights W + s·B·A, the frozen base,
// dropout, and merging.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/io.h"
#include "core/rng.h"
#include "cpu/model.h"
#include "cpu/ops_ref.h"
#include "model/lora.h"
#include "model/safetensors.h"
#include "pipe_compare.h"
#include "fixture.h"
#include "test.h"
#include "train/checkpoint.h"
#include "train/optim.h"
#include "train/pipeline.h"

enum { S = 8 };

typedef struct {
    Config cfg;
    Params p, a;
    LoraConfig lc;
    int tokens[S], targets[S];
    double *base;  // the model's weights in double
} LoraCase;

static void fill_normal(float *x, size_t n, Rng *r, float scale, float offset) {
    for (size_t i = 0; i < n; i++) x[i] = offset + scale * rng_normal(r);
}

// test_grad.c's tiny model (QK-norm, rotate-half, untied, residual scale 0.5)
// with rank-2 adapters on every target, B away from zero, and trained norms.
static int case_init(LoraCase *c, unsigned targets, int train_norms) {
    memset(c, 0, sizeof *c);
    c->cfg = (Config){.dim = 16, .hidden = 24, .n_layers = 2, .n_heads = 4, .n_kv_heads = 2, .head_dim = 8,
                      .vocab = 32, .seq_len = S, .norm_eps = 1e-5f, .rope_theta = 10000.0f, .rope_layout = ROPE_HALF,
                      .qk_norm = 1, .tied = 0, .res_scale = 0.5f};
    snprintf(c->cfg.name, sizeof c->cfg.name, "lora-grad");
    c->lc = (LoraConfig){.rank = 2, .alpha = 4.0f, .targets = targets, .train_norms = train_norms};
    if (params_init(&c->p, &c->cfg) != 0 || lora_init(&c->a, &c->cfg, &c->lc) != 0) return 0;
    Rng r;
    rng_init(&r, 77);
    for (int i = 0; i < c->p.n_tensors; i++) {
        const TensorDesc *d = &c->p.t[i];
        float *w = c->p.data + d->offset;
        if (d->is_norm) fill_normal(w, d->numel, &r, 0.3f, 1);
        else if (!strcmp(d->name, "embed")) fill_normal(w, d->numel, &r, 0.5f, 0);
        else fill_normal(w, d->numel, &r, 1.0f / sqrtf((float)d->cols), 0);
    }
    lora_init_random(&c->a, &c->lc, &c->p, 5);
    for (int i = 0; i < c->a.n_tensors; i++) {  // B != 0 (a fresh B is 0: every dA would vanish)
        const TensorDesc *d = &c->a.t[i];
        if (!strncmp(d->name, "lora_", 5)) fill_normal(c->a.data + d->offset, d->numel, &r, 0.4f, 0);
        else fill_normal(c->a.data + d->offset, d->numel, &r, 0.3f, 1);
    }
    for (int t = 0; t < S; t++) c->tokens[t] = (int)rng_below(&r, c->cfg.vocab), c->targets[t] = (int)rng_below(&r, 32);
    c->targets[3] = -1;
    c->base = malloc(sizeof(double) * c->p.n);
    for (size_t i = 0; i < c->p.n; i++) c->base[i] = c->p.data[i];
    return 1;
}

static void case_free(LoraCase *c) {
    params_free(&c->p);
    params_free(&c->a);
    free(c->base);
}

// The reference loss of adapters `ad` (double, laid out as c->a): the double
// model on base + s·B·A, with the adapters' norms.
static double ref_loss(const LoraCase *c, const double *ad) {
    double *w = malloc(sizeof(double) * c->p.n);
    memcpy(w, c->base, sizeof(double) * c->p.n);
    const char *mats[LORA_N_TARGETS] = {"wq", "wk", "wv", "wo", "w1", "w2", "w3"};
    for (int t = 0; t < LORA_N_TARGETS; t++) {
        if (!(c->lc.targets & (1u << t))) continue;
        const TensorDesc *dw = params_find(&c->p, mats[t]);
        for (int l = 0; l < c->cfg.n_layers; l++) {
            const LoraMat m = lora_mat(&c->a, &c->lc, (LoraTarget)t, l);
            const double *A = ad + (m.A - c->a.data), *B = ad + (m.B - c->a.data);
            double *W = w + dw->offset + (size_t)l * m.out * m.in;
            for (int i = 0; i < m.out; i++)
                for (int j = 0; j < m.in; j++) {
                    double acc = 0;
                    for (int k = 0; k < m.r; k++) acc += B[i * m.r + k] * A[k * m.in + j];
                    W[(size_t)i * m.in + j] += (double)m.scale * acc;
                }
        }
    }
    for (int i = 0; i < c->a.n_tensors; i++) {
        const TensorDesc *d = &c->a.t[i];
        if (strncmp(d->name, "lora_", 5)) memcpy(w + params_find(&c->p, d->name)->offset, ad + d->offset,
                                                sizeof(double) * d->numel);
    }
    const double loss = ref_model_loss(&c->cfg, w, c->tokens, c->targets, S, NULL);
    free(w);
    return loss;
}

static void check_grads(unsigned targets, int train_norms) {
    LoraCase c;
    if (!CHECK(case_init(&c, targets, train_norms))) return;
    CpuModel m;
    REQUIRE(cpu_model_init(&m, &c.cfg, S) == 0 && cpu_model_set_lora(&m, &c.a, &c.lc, 1) == 0);
    double *ad = malloc(sizeof(double) * c.a.n);
    for (size_t i = 0; i < c.a.n; i++) ad[i] = c.a.data[i];
    const float loss = cpu_model_forward(&m, &c.p, c.tokens, c.targets);
    const double want = ref_loss(&c, ad);
    CHECKF(fabs(loss - want) <= 1e-5 + 1e-5 * fabs(want), "loss %.8g, reference on the merged weights %.8g", loss, want);
    float *g = calloc(c.a.n, sizeof(float));
    float *before = malloc(sizeof(float) * c.p.n);
    memcpy(before, c.p.data, sizeof(float) * c.p.n);
    cpu_model_backward(&m, &c.p, g, 1.0f);
    CHECK(!memcmp(before, c.p.data, sizeof(float) * c.p.n));  // the base is only read
    // every element of every adapter tensor: central differences of the double model
    for (int i = 0; i < c.a.n_tensors; i++) {
        const TensorDesc *d = &c.a.t[i];
        double worst = 0;
        for (size_t k = 0; k < d->numel; k++) {
            double *x = ad + d->offset + k, x0 = *x, h = 1e-5 * fmax(1.0, fabs(x0));
            *x = x0 + h;
            const double lp = ref_loss(&c, ad);
            *x = x0 - h;
            const double lm = ref_loss(&c, ad);
            *x = x0;
            const double num = (lp - lm) / (2 * h), e = fabs(g[d->offset + k] - num) / (1e-5 + 1e-4 * fabs(num));
            worst = fmax(worst, e);
        }
        CHECKF(worst <= 1.0, "d%s: worst |analytic - numeric| is %.3g x (1e-5 + 1e-4 |numeric|)", d->name, worst);
    }
    free(ad), free(g), free(before);
    cpu_model_free(&m);
    case_free(&c);
}

TEST(lora_grads_match_finite_differences) { check_grads((1u << LORA_N_TARGETS) - 1, 1); }
TEST(lora_grads_match_finite_differences_qv) { check_grads((1u << LORA_Q) | (1u << LORA_V), 0); }

// The merged model gives the adapted model's loss; a fresh adapter (B = 0) changes nothing.
TEST(lora_merge_equals_adapted) {
    LoraCase c;
    REQUIRE(case_init(&c, (1u << LORA_N_TARGETS) - 1, 1));
    CpuModel m, plain;
    REQUIRE(cpu_model_init(&m, &c.cfg, S) == 0 && cpu_model_set_lora(&m, &c.a, &c.lc, 1) == 0);
    REQUIRE(cpu_model_init(&plain, &c.cfg, S) == 0);
    Params merged;
    REQUIRE(lora_merge(&merged, &c.p, &c.a, &c.lc) == 0);
    const float la = cpu_model_forward(&m, &c.p, c.tokens, c.targets);
    const float lm = cpu_model_forward(&plain, &merged, c.tokens, c.targets);
    CHECKF(fabsf(la - lm) <= 1e-5f * fabsf(la), "adapted %.8g vs merged %.8g", la, lm);
    lora_init_random(&c.a, &c.lc, &c.p, 9);  // B = 0, norms = the base's
    const float l0 = cpu_model_forward(&m, &c.p, c.tokens, c.targets);
    const float lb = cpu_model_forward(&plain, &c.p, c.tokens, c.targets);
    CHECKF(l0 == lb, "a fresh adapter changed the loss: %.8g vs %.8g", l0, lb);
    params_free(&merged);
    cpu_model_free(&m);
    cpu_model_free(&plain);
    case_free(&c);
}

// Dropout acts in training only, draws the same masks for the same window of
// the run (so the backward and a resume see them) and others for the next, and
// its gradient is the gradient of the loss it computes (float central
// differences, h = 1e-2: their error is O(h²·f''') ~ 1e-4, against the 5e-3
// relative tolerance).
TEST(lora_dropout) {
    LoraCase c;
    REQUIRE(case_init(&c, (1u << LORA_N_TARGETS) - 1, 0));
    c.lc.dropout = 0.5f;
    CpuModel m;
    REQUIRE(cpu_model_init(&m, &c.cfg, S) == 0 && cpu_model_set_lora(&m, &c.a, &c.lc, 1) == 0);
    const float eval = cpu_model_forward(&m, &c.p, c.tokens, c.targets);
    m.lora_training = 1;
    const float t1 = cpu_model_forward(&m, &c.p, c.tokens, c.targets);
    float *g = calloc(c.a.n, sizeof(float));
    cpu_model_backward(&m, &c.p, g, 1.0f);
    const float t2 = cpu_model_forward(&m, &c.p, c.tokens, c.targets);
    CHECKF(t1 != eval && t1 == t2, "eval %.8g, training %.8g then %.8g", eval, t1, t2);
    m.lora_window = 1;  // the next window of the run: other masks
    const float t3 = cpu_model_forward(&m, &c.p, c.tokens, c.targets);
    m.lora_window = 0;
    CHECKF(t3 != t1, "the masks did not change with the window: %.8g", t3);
    Rng r;
    rng_init(&r, 3);
    double worst = 0;
    for (int k = 0; k < 40; k++) {
        const size_t i = rng_below(&r, (uint32_t)c.a.n);
        const float x0 = c.a.data[i], h = 1e-2f;
        c.a.data[i] = x0 + h;
        const double lp = cpu_model_forward(&m, &c.p, c.tokens, c.targets);
        c.a.data[i] = x0 - h;
        const double lm = cpu_model_forward(&m, &c.p, c.tokens, c.targets);
        c.a.data[i] = x0;
        const double num = (lp - lm) / (2 * h);
        worst = fmax(worst, fabs(g[i] - num) / (1e-3 + 5e-3 * fabs(num)));
    }
    CHECKF(worst <= 1.0, "worst |analytic - numeric| is %.3g x (1e-3 + 5e-3 |numeric|)", worst);
    free(g);
    cpu_model_free(&m);
    case_free(&c);
}

TEST(lora_targets_parse) {
    unsigned m;
    char buf[64];
    CHECK(lora_parse_targets("q,v", &m) == 0 && m == ((1u << LORA_Q) | (1u << LORA_V)));
    CHECK(lora_parse_targets("q,k,v,o,w1,w2,w3", &m) == 0 && m == (1u << LORA_N_TARGETS) - 1);
    lora_format_targets(m, buf, sizeof buf), CHECK(!strcmp(buf, "q,k,v,o,w1,w2,w3"));
    CHECK(lora_parse_targets("q,x", &m) == -1 && strstr(err_msg(), "unknown target 'x'"));
    CHECK(lora_parse_targets("", &m) == -1);
}

// --- against PyTorch (tools/gen_fixtures.py: LoRA written there by hand) ---------------------

#define GOLDEN_TOL 1e-4

// Copies the fixture's "lora.<what>.<t>" tensors into the adapters' A (or B).
static int load_mats(const Fixture *fx, Params *a, const LoraConfig *lc, const char *what, int is_b) {
    for (int t = 0; t < LORA_N_TARGETS; t++) {
        char name[64];
        snprintf(name, sizeof name, "lora.%s.%s", what, lora_target_name((LoraTarget)t));
        float *A, *B;
        lora_grad_mat(a, lc, a->data, (LoraTarget)t, 0, &A, &B);
        const TensorDesc *d = params_find(a, is_b ? (const char *[]){"lora_B.q", "lora_B.k", "lora_B.v", "lora_B.o",
                                                                     "lora_B.w1", "lora_B.w2", "lora_B.w3"}[t]
                                                  : (const char *[]){"lora_A.q", "lora_A.k", "lora_A.v", "lora_A.o",
                                                                     "lora_A.w1", "lora_A.w2", "lora_A.w3"}[t]);
        const float *src = fixture_f32(fx, name, d->numel);
        if (!src) return 0;
        memcpy(is_b ? B : A, src, sizeof(float) * d->numel);
    }
    return 1;
}

static void check_lora_golden(const char *name) {
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/%s.bin", name);
    Fixture fx;
    if (!CHECKF(fixture_load(&fx, path) == 0, "%s", err_msg())) return;
    const FixtureTensor *rank = fixture_find(&fx, "lora.rank");
    const float *alpha = fixture_f32(&fx, "lora.alpha", 1);
    LoraConfig lc = {.rank = rank && rank->dtype == FIXTURE_I32 ? *(const int *)rank->data : 0,
                     .alpha = alpha ? *alpha : 0, .targets = (1u << LORA_N_TARGETS) - 1};
    Params a;
    CpuModel m;
    REQUIRE(lc.rank > 0 && lora_init(&a, &fx.cfg, &lc) == 0);
    REQUIRE(cpu_model_init(&m, &fx.cfg, fx.S) == 0 && cpu_model_set_lora(&m, &a, &lc, 1) == 0);
    // the loss and the adapters' gradients at (A0, B1)
    REQUIRE(load_mats(&fx, &a, &lc, "A", 0) && load_mats(&fx, &a, &lc, "B1", 1));
    const float *want_loss = fixture_f32(&fx, "lora.loss", 1);
    const float loss = cpu_model_forward(&m, &fx.params, fx.tokens, fx.targets);
    CHECKF(want_loss && fabs(loss - *want_loss) <= GOLDEN_TOL * fabs(*want_loss), "%s: loss %.7f, PyTorch %.7f",
           name, loss, want_loss ? *want_loss : NAN);
    float *g = calloc(a.n, sizeof(float));
    cpu_model_backward(&m, &fx.params, g, 1.0f);
    for (int t = 0; t < LORA_N_TARGETS; t++)
        for (int b = 0; b < 2; b++) {
            char rn[64], tn[32];
            snprintf(rn, sizeof rn, "lora.grad.%s.%s", b ? "B" : "A", lora_target_name((LoraTarget)t));
            snprintf(tn, sizeof tn, "lora_%s.%s", b ? "B" : "A", lora_target_name((LoraTarget)t));
            const TensorDesc *d = params_find(&a, tn);
            const float *ref = fixture_f32(&fx, rn, d->numel);
            if (!CHECKF(ref != NULL, "%s", err_msg())) continue;
            const double e = test_rel_err(g + d->offset, ref, d->numel);
            CHECKF(e <= GOLDEN_TOL, "%s %s: relative error %.3g > %g", name, rn, e, GOLDEN_TOL);
        }
    // 5 AdamW updates of the adapters from (A0, B = 0), lr 1e-2, wd 0.1 on A and B
    REQUIRE(load_mats(&fx, &a, &lc, "A", 0));
    for (int i = 0; i < a.n_tensors; i++)
        if (!strncmp(a.t[i].name, "lora_B.", 7)) memset(a.data + a.t[i].offset, 0, sizeof(float) * a.t[i].numel);
    TrainState st;
    memset(&st, 0, sizeof st);
    optim_defaults(&st);
    st.lr = 1e-2f, st.beta1 = 0.9f, st.beta2 = 0.95f, st.eps = 1e-8f, st.weight_decay = 0.1f;
    float *mom = calloc(a.n, sizeof(float)), *var = calloc(a.n, sizeof(float));
    const float *ref = fixture_f32(&fx, "lora_adamw_losses", 5);
    REQUIRE(ref != NULL);
    for (int step = 0; step < 5; step++) {
        const float l = cpu_model_forward(&m, &fx.params, fx.tokens, fx.targets);
        CHECKF(fabs(l - ref[step]) <= GOLDEN_TOL * fabs(ref[step]), "%s: loss before update %d: %.7f, PyTorch %.7f",
               name, step, l, ref[step]);
        memset(g, 0, a.n * sizeof(float));
        cpu_model_backward(&m, &fx.params, g, 1.0f);
        st.adam_t++;
        optim_adamw(&a, g, mom, var, &st, st.lr, 1.0f, NULL);
    }
    free(g), free(mom), free(var);
    cpu_model_free(&m);
    params_free(&a);
    fixture_free(&fx);
}

TEST(lora_golden_gqa) { check_lora_golden("golden_lora_gqa"); }
TEST(lora_golden_qwen3) { check_lora_golden("golden_lora_qwen3"); }

// --- the CLI on the real stories260K ------------------------------------------------------------

static char *tmp(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/lora-%s", test_tmpdir(), name);
    return buf;
}

static double eval_loss(const char *flags) {
    char *out = NULL;
    double loss = NAN;
    if (test_runf(&out, "%s eval %s --seq 128 --windows 8", test_bin(), flags) == 0 && out) {
        const char *l = strstr(out, "loss ");
        if (l) loss = strtod(l + 5, NULL);
    }
    if (isnan(loss)) fprintf(stderr, "    eval %s: %s\n", flags, out ? out : "");
    free(out);
    return loss;
}

// stories260K fine-tuned with --lora 8 on text it never saw (anetrain's own C
// sources, in its tokenizer): the held-out loss falls far below the base's,
// the base file is untouched, the checkpoint is the adapters and their moments
// only, a resume continues bit for bit, and every way to use the adapters —
// the checkpoint as a model, export --merge, eval --lora, the PEFT files —
// computes the same model.
TEST(lora_finetunes_stories260k) {
    const char *base = test_data("stories260K/stories260K.bin"), *tok = test_data("stories260K/tok512.bin");
    if (!base || !tok) return;
    char data[600], tail[600], a[600], b[600], merged[600], peft[600], *out = NULL;
    tmp(data, sizeof data, "code.bin"), tmp(tail, sizeof tail, "tail.bin"), tmp(a, sizeof a, "a.bin");
    tmp(b, sizeof b, "b.bin"), tmp(merged, sizeof merged, "merged.bin"), tmp(peft, sizeof peft, "peft");
    REQUIRE(test_runf(&out, "%s tokenize --raw --tokenizer %s -o %s src/train/*.c src/cpu/*.c && n=$(stat -c %%s %s) "
                            "&& tail -c $(( n / 40 * 2 )) %s > %s", test_bin(), tok, data, data, data, tail) == 0);
    free(out);
    char *before = NULL, *after = NULL;
    size_t nb = 0, na = 0;
    REQUIRE(io_read_all(base, &before, &nb) == 0);
#define RUN "train --model %s --lora 8 --data %s --seq 128 --accum 1 --lr 2e-3 --warmup 5 --eval-every 0 -q"
    int rc = test_runf(&out, "%s " RUN " --steps 40 --ckpt %s", test_bin(), base, data, a);
    CHECKF(rc == 0, "%s", out ? out : "");
    free(out);
    rc = test_runf(&out, "%s " RUN " --steps 40 --stop-after 20 --ckpt %s && %s train --resume --ckpt %s -q",
                   test_bin(), base, data, b, test_bin(), b);
    CHECKF(rc == 0, "%s", out ? out : "");
    free(out);
#undef RUN
    CHECK(test_ckpt_bodies_equal(a, b));
    CHECK(io_read_all(base, &after, &na) == 0 && na == nb && !memcmp(before, after, nb));
    free(before), free(after);
    TrainState st;
    Config c;
    REQUIRE(ckpt_read_header(a, &c, &st, NULL) == 0);
    size_t n = 0;
    REQUIRE(lora_floats(&c, &st.lora, &n) == 0);
    char *ck = NULL;
    size_t ckn = 0;
    CHECK(io_read_all(a, &ck, &ckn) == 0 && ckn == 4096 + 12 * n + 8 && ckn < nb);
    free(ck);
    fprintf(stderr, "    checkpoint %zu bytes (%zu adapter weights + moments) beside the %zu-byte model\n", ckn, n, nb);
    char flags[2000];
    snprintf(flags, sizeof flags, "--model %s --data %s", base, tail);
    const double l_base = eval_loss(flags);
    snprintf(flags, sizeof flags, "--model %s --data %s", a, tail);
    const double l_ckpt = eval_loss(flags);
    snprintf(flags, sizeof flags, "--model %s --lora %s --data %s", base, a, tail);
    const double l_lora = eval_loss(flags);
    REQUIRE(test_runf(&out, "%s export --model %s --merge -o %s", test_bin(), a, merged) == 0);
    free(out);
    snprintf(flags, sizeof flags, "--model %s --data %s", merged, tail);
    const double l_merged = eval_loss(flags);
    fprintf(stderr, "    held-out loss: base %.4f, adapted %.4f (merged %.4f, --lora %.4f)\n", l_base, l_ckpt,
            l_merged, l_lora);
    CHECK(l_ckpt < l_base - 1.0);
    CHECK(l_ckpt == l_lora && l_ckpt == l_merged);
    // the PEFT files: what PEFT names, shapes and config
    REQUIRE(test_runf(&out, "%s export --model %s --adapters %s", test_bin(), a, peft) == 0);
    free(out);
    char st_path[700], cfg_path[700], *cfg = NULL;
    snprintf(st_path, sizeof st_path, "%s/adapter_model.safetensors", peft);
    snprintf(cfg_path, sizeof cfg_path, "%s/adapter_config.json", peft);
#ifdef USE_CJSON
    SafeTensorsFile sf;
    if (CHECKF(safetensors_open(&sf, st_path) == 0, "%s", err_msg())) {
        CHECK(sf.n == 5 * 7 * 2);
        const SafeTensor *q = safetensors_find(&sf, "base_model.model.model.layers.4.self_attn.q_proj.lora_B.weight");
        const SafeTensor *d = safetensors_find(&sf, "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight");
        CHECK(q && q->ndim == 2 && q->shape[0] == 64 && q->shape[1] == 8);
        CHECK(d && d->ndim == 2 && d->shape[0] == 8 && d->shape[1] == 172);
        safetensors_close(&sf);
    }
#endif
    CHECK(io_read_all(cfg_path, &cfg, NULL) == 0 && strstr(cfg, "\"peft_type\": \"LORA\"") && strstr(cfg, "\"r\": 8,") &&
          strstr(cfg, "\"gate_proj\"") && strstr(cfg, "stories260K.bin\""));
    free(cfg);
    // a LoRA checkpoint needs --merge or --adapters to be exported
    CHECK(test_runf(&out, "%s export --model %s -o %s.x", test_bin(), a, merged) != 0 && out &&
          strstr(out, "--merge writes its base"));
    free(out);
}

// --- device pipelines ---------------------------------------------------------------------------

// One window's adapter gradients of each device pipeline against the cpu
// pipeline's LoRA step. The device runs the merged weights and forms
// dB = s·G·Aᵀ and dA = s·Bᵀ·G from the same dY and X as a full weight gradient
// G, whose error the full-training tests hold to 10u·max|G| per tensor. The
// adapters' gradients are linear in G, so their error is bounded through the
// map: |ΔdB_jk| ≤ s·‖A_k‖₁·max|ΔG| and |ΔdA_ki| ≤ s·‖B_·k‖₁·max|ΔG|, with
// max|ΔG| ≤ 10u·max|G| (G of the cpu pipeline on the merged weights). A
// contraction with a random A sums G's errors over a whole row, so a flat 10u
// on dA and dB themselves would not hold; this bound is what the 10u on G
// implies, per layer and target.
static double row_l1_max(const float *m, int rows, int cols, int by_rows) {
    double worst = 0;
    for (int i = 0; i < (by_rows ? rows : cols); i++) {
        double s = 0;
        for (int j = 0; j < (by_rows ? cols : rows); j++) s += fabs(by_rows ? m[(size_t)i * cols + j] : m[(size_t)j * cols + i]);
        worst = fmax(worst, s);
    }
    return worst;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double d = 0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

// With trained norms, their gradients against those of full training on the
// device with the merged weights (GD, the same window): a norm gradient sums
// dy·x̂ over the window, and how much its fp16 error cancels depends on the
// weights, so the full-training pipeline's own error on these weights (eD
// against the cpu's G) is the reference, plus 10u. The dynamic pipeline stages
// the merged weights, so its norm gradients are the full run's, bit for bit.
static void check_norm_grads(const char *pipeline, const Params *a, const float *ga, const float *gb,
                             const Params *merged, const float *G, const float *GD) {
    const char *names[3] = {"rms_att", "rms_ffn", "rms_final"};
    for (int i = 0; i < 3; i++) {
        const TensorDesc *d = params_find(a, names[i]), *dm = params_find(merged, names[i]);
        if (!CHECKF(d != NULL && dm != NULL, "no %s in the adapters", names[i])) continue;
        const double eD = test_rel_err(GD + dm->offset, G + dm->offset, d->numel);
        const double e = test_rel_err(gb + d->offset, ga + d->offset, d->numel);
        CHECKF(e <= eD + 10 * 4.8828125e-4, "%s %s gradient: error %.3g, full training's %.3g", pipeline, names[i], e,
               eD);
        if (!strcmp(pipeline, "dynamic"))
            CHECKF(!memcmp(gb + d->offset, GD + dm->offset, sizeof(float) * d->numel), "%s: not the full run's",
                   names[i]);
    }
}

// The full-training step of pipeline on the merged weights (loss-scaled as the LoRA step).
static float *full_device_grads(const char *pipeline, const Config *c, const Params *merged, const int *tok,
                                const int *tgt, int S) {
    PipelineOptions o = {.name = pipeline, .device = "sim"};
    Pipeline pl;
    float *g = calloc(merged->n, sizeof(float)), loss;
    if (!CHECKF(pipeline_init(&pl, &o, c, S) == 0, "%s", err_msg())) {
        free(g);
        return NULL;
    }
    CHECKF(pl.step(&pl, merged, tok, tgt, g, 1024.0f, &loss) == 0, "%s", err_msg());
    for (size_t i = 0; i < merged->n; i++) g[i] /= 1024.0f;
    pipeline_free(&pl);
    return g;
}

static void lora_device_step(const char *pipeline, const char *preset, int train_norms) {
    Config c;
    REQUIRE(config_preset(&c, preset) == 0);
    Params p, a, merged;
    LoraConfig lc = {.rank = 4, .alpha = 8, .targets = (1u << LORA_N_TARGETS) - 1, .train_norms = train_norms};
    REQUIRE(params_init(&p, &c) == 0 && lora_init(&a, &c, &lc) == 0);
    pipe_compare_weights(&p, 11);
    lora_init_random(&a, &lc, &p, 3);
    Rng r;
    rng_init(&r, 4);
    for (int i = 0; i < a.n_tensors; i++)  // B != 0, so every gradient is alive
        if (!strncmp(a.t[i].name, "lora_B.", 7)) fill_normal(a.data + a.t[i].offset, a.t[i].numel, &r, 0.05f, 0);
    REQUIRE(lora_merge(&merged, &p, &a, &lc) == 0);
    enum { W = 32 };
    PipelineOptions oa = {.name = "cpu", .lora = &a, .lora_cfg = &lc}, ob = oa, of = {.name = "cpu"};
    ob.name = pipeline, ob.device = "sim";
    Pipeline pa, pb, pf;
    REQUIRE(pipeline_init(&pa, &oa, &c, W) == 0 && pipeline_init(&pf, &of, &c, W) == 0);
    if (!CHECKF(pipeline_init(&pb, &ob, &c, W) == 0, "%s: %s", pipeline, err_msg())) return;
    int tok[W], tgt[W];
    for (int t = 0; t < W; t++) tok[t] = (int)rng_below(&r, c.vocab), tgt[t] = (int)rng_below(&r, c.vocab);
    float *ga = calloc(a.n, 4), *gb = calloc(a.n, 4), *G = calloc(merged.n, 4), la, lb, lf;
    CHECK(pa.step(&pa, &p, tok, tgt, ga, 1.0f, &la) == 0 && pf.step(&pf, &merged, tok, tgt, G, 1.0f, &lf) == 0);
    CHECKF(pb.step(&pb, &p, tok, tgt, gb, 1024.0f, &lb) == 0, "%s", err_msg());
    CHECKF(fabsf(la - lb) < 1e-3f * la, "%s: loss cpu %g vs %g", pipeline, la, lb);
    for (size_t i = 0; i < a.n; i++) gb[i] /= 1024.0f;
    ParamViews gv;
    params_point(&c, G, &gv);
    const double u10 = 10 * 4.8828125e-4;
    for (int t = 0; t < LORA_N_TARGETS; t++) {
        int in, out;
        lora_target_dims(&c, (LoraTarget)t, &in, &out);
        double worst = 0;
        for (int l = 0; l < c.n_layers; l++) {
            const LoraMat m = lora_mat(&a, &lc, (LoraTarget)t, l);
            const float *Gl = lora_base_grad(&c, &gv, (LoraTarget)t, l);
            float *dAa, *dBa, *dAb, *dBb;
            lora_grad_mat(&a, &lc, ga, (LoraTarget)t, l, &dAa, &dBa);
            lora_grad_mat(&a, &lc, gb, (LoraTarget)t, l, &dAb, &dBb);
            double gmax = 0;
            for (size_t i = 0; i < (size_t)in * out; i++) gmax = fmax(gmax, fabs(Gl[i]));
            const double bound_b = m.scale * row_l1_max(m.A, m.r, in, 1) * u10 * gmax;
            const double bound_a = m.scale * row_l1_max(m.B, out, m.r, 0) * u10 * gmax;
            worst = fmax(worst, max_abs_diff(dBb, dBa, (size_t)out * m.r) / bound_b);
            worst = fmax(worst, max_abs_diff(dAb, dAa, (size_t)m.r * in) / bound_a);
        }
        CHECKF(worst <= 1.0, "%s %s target %s: error %.3g x the bound 10u on G implies", pipeline, preset,
               lora_target_name((LoraTarget)t), worst);
        if (getenv("LORA_TEST_VERBOSE")) fprintf(stderr, "    %s %s %s: %.2f of the bound\n", pipeline, preset,
                                                 lora_target_name((LoraTarget)t), worst);
    }
    if (train_norms) {
        float *GD = full_device_grads(pipeline, &c, &merged, tok, tgt, W);
        if (GD) check_norm_grads(pipeline, &a, ga, gb, &merged, G, GD);
        free(GD);
    }
    free(ga), free(gb), free(G);
    pipeline_free(&pa), pipeline_free(&pb), pipeline_free(&pf);
    params_free(&p), params_free(&a), params_free(&merged);
}

TEST(lora_dynamic_matches_cpu) {
    lora_device_step("dynamic", "tiny-gqa", 0);
    lora_device_step("dynamic", "tiny-qwen3", 1);
}
TEST(lora_static_matches_cpu) {
    lora_device_step("static", "tiny-gqa", 1);
    lora_device_step("static-ane", "tiny-qwen3", 0);
    lora_device_step("static-ane", "tiny-gqa", 1);
}

// The static pipelines bake the frozen base once: a LoRA run with a budget
// that holds a single set of kernels trains through every update without a
// recompile or a restart, and follows the cpu pipeline's LoRA run (every step's
// loss within 0.02 nats, as the full-training curves).
TEST(lora_static_compiles_once) {
    const char *base = test_data("stories260K/stories260K.bin");
    if (!base) return;
    char a[600], la[600], b[600], lb[600], *out = NULL;
    tmp(a, sizeof a, "once.bin"), tmp(la, sizeof la, "once.jsonl"), tmp(b, sizeof b, "once-cpu.bin");
    tmp(lb, sizeof lb, "once-cpu.jsonl");
#define RUN "train --model %s --lora 4 --train-norms --data %s --seq 32 --accum 1 --steps 8 --lr 3e-3 " \
            "--eval-every 0 --compile-budget 40 -q"
    int rc = test_runf(&out, "%s " RUN " --pipeline static-ane --device sim --ckpt %s --log %s", test_bin(), base,
                       test_pattern_tokens(512), a, la);
    if (!CHECKF(rc == 0, "static-ane: %s", out ? out : "")) {
        free(out);
        return;
    }
    free(out);
    REQUIRE(test_runf(&out, "%s " RUN " --pipeline cpu --ckpt %s --log %s", test_bin(), base, test_pattern_tokens(512),
                      b, lb) == 0);
    free(out);
#undef RUN
    TrainState st;
    Config c;
    REQUIRE(ckpt_read_header(a, &c, &st, NULL) == 0);
    // 5 layers x 7 kernels, finalNorm, one classifier chunk, sdpaBwd2, one vocabSoftmax: once
    CHECKF(st.restarts == 0 && st.step == 8 && st.compiles == 5 * 7 + 4, "restarts %lld, compiles %lld",
           (long long)st.restarts, (long long)st.compiles);
    static char va[1024], vb[1024];
    CHECK(test_log_values(la, "restart", "step", va, sizeof va) == 0);
    REQUIRE(test_log_values(la, "step", "loss", va, sizeof va) == 8 && test_log_values(lb, "step", "loss", vb, sizeof vb) == 8);
    char *pa = va, *pb = vb;
    for (int i = 0; i < 8; i++) {
        const float x = strtof(pa, &pa), y = strtof(pb, &pb);
        CHECKF(fabsf(x - y) < 0.02f, "step %d: loss %g vs cpu %g", i + 1, x, y);
    }
}

// The adapters' checkpoint may not be the base model's own file.
TEST(lora_refuses_to_save_over_its_base) {
    const char *base = test_data("stories260K/stories260K.bin");
    if (!base) return;
    char copy[600], *out = NULL;
    tmp(copy, sizeof copy, "base-copy.bin");
    REQUIRE(test_copy_file(base, copy) == 0);
    int rc = test_runf(&out, "%s train --model %s --lora 4 --data %s --seq 32 --steps 2 --ckpt %s -q", test_bin(), copy,
                       test_pattern_tokens(512), copy);
    CHECKF(rc != 0 && out && strstr(out, "is the base model itself"), "rc %d: %s", rc, out ? out : "");
    free(out);
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    CHECK(io_read_all(base, &x, &nx) == 0 && io_read_all(copy, &y, &ny) == 0 && nx == ny && !memcmp(x, y, nx));
    free(x), free(y);
}

// With dropout, a resumed run draws the masks the uninterrupted one drew.
TEST(lora_dropout_resume_is_bit_identical) {
    const char *base = test_data("stories260K/stories260K.bin");
    if (!base) return;
    char a[600], b[600], *out = NULL;
    tmp(a, sizeof a, "drop-a.bin"), tmp(b, sizeof b, "drop-b.bin");
#define RUN "train --model %s --lora 4 --lora-dropout 0.2 --data %s --seq 32 --accum 2 --steps 6 --eval-every 0 -q"
    REQUIRE(test_runf(&out, "%s " RUN " --ckpt %s", test_bin(), base, test_pattern_tokens(512), a) == 0);
    free(out);
    REQUIRE(test_runf(&out, "%s " RUN " --stop-after 3 --ckpt %s && %s train --resume --ckpt %s -q", test_bin(), base,
                      test_pattern_tokens(512), b, test_bin(), b) == 0);
    free(out);
#undef RUN
    CHECK(test_ckpt_bodies_equal(a, b));
}
