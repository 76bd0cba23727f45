// grads_fresh (Pipeline.grads_begin): the first backward of an update writes
// the gradients in place of the block's contents — weight gradients with beta
// 0, norms and scattered blocks zeroed just before they are added into — so
// the trainer spends no pass over the block on zeros. Whatever the block held
// (here NaN everywhere), the result must equal the zeroed block's, bit for bit,
// on every path that writes gradients: tied and separate classifiers, a
// compacted vocabulary, QK-norm, bf16, recompute, LoRA with trained norms.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "cpu/model.h"
#include "model/lora.h"
#include "test.h"
#include "train/pipeline.h"

typedef struct {
    const char *preset;
    CpuPrecision precision;
    int untied, compact, recompute, lora;
} Case;

static const char *name(const Case *k) {
    static char buf[128];
    snprintf(buf, sizeof buf, "%s%s%s%s%s%s", k->preset, k->precision == CPU_BF16 ? " bf16" : "",
             k->untied ? " untied" : "", k->compact ? " compact" : "", k->recompute ? " recompute" : "",
             k->lora ? " lora" : "");
    return buf;
}

// Two windows of one update into grads: the first fresh or onto zeros.
static void update(CpuModel *m, const Params *p, float *grads, int fresh) {
    enum { S = 32 };
    Rng r;
    rng_init(&r, 9);
    int tok[S], tgt[S];
    for (int w = 0; w < 2; w++) {
        for (int t = 0; t < S; t++) tok[t] = rng_u32(&r) % m->cfg.vocab, tgt[t] = rng_u32(&r) % m->cfg.vocab;
        tgt[5] = -1;
        m->lora_training = 1, m->lora_window = (uint64_t)w;
        m->grads_fresh = fresh && w == 0;
        cpu_model_forward(m, p, tok, tgt);
        cpu_model_backward(m, p, grads, 4.0f);
    }
}

static void check_case(const Case *k) {
    Config c;
    REQUIRE(config_preset(&c, k->preset) == 0);
    if (k->untied) c.tied = 0;
    Params p, a;
    REQUIRE(params_init(&p, &c) == 0);
    params_init_random(&p, 3);
    LoraConfig lc = {.rank = 4, .alpha = 8, .targets = (1u << LORA_N_TARGETS) - 1, .dropout = 0.1f, .train_norms = 1};
    if (k->lora) {
        REQUIRE(lora_init(&a, &c, &lc) == 0);
        lora_init_random(&a, &lc, &p, 5);
    }
    int rows[128], n_rows = 0;
    for (int i = 0; i < c.vocab && n_rows < 128; i += 3) rows[n_rows++] = i;
    const size_t n = k->lora ? a.n : p.n;
    float *g[2];
    for (int fresh = 0; fresh < 2; fresh++) {
        CpuModel m;
        const CpuModelOptions o = {.precision = k->precision, .recompute = k->recompute};
        REQUIRE(cpu_model_init_opts(&m, &c, 32, &o) == 0);
        if (k->compact) REQUIRE(cpu_model_set_vocab(&m, rows, n_rows) == 0);
        if (k->lora) REQUIRE(cpu_model_set_lora(&m, &a, &lc, 11) == 0);
        g[fresh] = malloc(n * sizeof(float));
        for (size_t i = 0; i < n; i++) g[fresh][i] = fresh ? NAN : 0.0f;
        update(&m, &p, g[fresh], fresh);
        cpu_model_free(&m);
    }
    size_t first = n;
    for (size_t i = 0; i < n && first == n; i++)
        if (memcmp(&g[0][i], &g[1][i], sizeof(float))) first = i;
    CHECKF(first == n, "%s: gradients differ first at %zu of %zu (%.9g zeroed vs %.9g fresh)", name(k), first, n,
           first < n ? g[0][first] : 0, first < n ? g[1][first] : 0);
    free(g[0]), free(g[1]);
    params_free(&p);
    if (k->lora) params_free(&a);
}

TEST(grads_fresh_equals_a_zeroed_block) {
    const Case cases[] = {
        {"tiny-mha", CPU_FP32, 0, 0, 0, 0},   {"tiny-mha", CPU_FP32, 1, 0, 0, 0},  {"tiny-gqa", CPU_FP32, 0, 1, 0, 0},
        {"tiny-gqa", CPU_FP32, 1, 1, 0, 0},   {"tiny-qwen3", CPU_FP32, 0, 0, 0, 0}, {"tiny-qwen3", CPU_BF16, 0, 0, 0, 0},
        {"tiny-qwen3", CPU_FP32, 0, 0, 1, 0}, {"tiny-gqa", CPU_FP32, 0, 0, 0, 1},  {"stories260k", CPU_FP32, 0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_case(&cases[i]);
}

// Through the pipeline: grads_begin arms exactly the next step; the default
// (no hook) zeroes the block.
TEST(pipeline_grads_begin_arms_one_step) {
    Config c;
    REQUIRE(config_preset(&c, "tiny-mha") == 0);
    Params p;
    REQUIRE(params_init(&p, &c) == 0);
    params_init_random(&p, 3);
    Pipeline pl;
    const PipelineOptions po = {.name = "cpu"};
    REQUIRE(pipeline_init(&pl, &po, &c, 16) == 0);
    int tok[16], tgt[16];
    for (int t = 0; t < 16; t++) tok[t] = (t * 7) % c.vocab, tgt[t] = (t * 11 + 1) % c.vocab;
    float *g = malloc(p.n * sizeof(float)), *ref = calloc(p.n, sizeof(float)), loss;
    for (size_t i = 0; i < p.n; i++) g[i] = NAN;
    pipeline_grads_begin(&pl, g, p.n);
    REQUIRE(pl.step(&pl, &p, tok, tgt, g, 1.0f, &loss) == 0);
    REQUIRE(pl.step(&pl, &p, tok, tgt, g, 1.0f, &loss) == 0);  // adds
    REQUIRE(pl.step(&pl, &p, tok, tgt, ref, 1.0f, &loss) == 0);
    REQUIRE(pl.step(&pl, &p, tok, tgt, ref, 1.0f, &loss) == 0);
    CHECK(!memcmp(g, ref, p.n * sizeof(float)));
    pl.grads_begin = NULL;  // the default: zeroed
    for (size_t i = 0; i < p.n; i++) g[i] = NAN;
    pipeline_grads_begin(&pl, g, p.n);
    size_t nonzero = 0;
    for (size_t i = 0; i < p.n; i++) nonzero += g[i] != 0.0f;
    CHECKF(nonzero == 0, "%zu of %zu floats not zeroed", nonzero, p.n);
    pipeline_free(&pl);
    free(g), free(ref);
    params_free(&p);
}
