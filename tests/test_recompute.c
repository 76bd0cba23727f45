// Recompute (CpuModelOptions.recompute, --recompute): the backward rebuilds
// each layer's activations and each vocabulary chunk's logits from what the
// forward kept, with the same operations in the same order, so the loss and
// every gradient equal the model that keeps everything, bit for bit.
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "cpu/model.h"
#include "model/lora.h"
#include "test.h"

typedef struct {
    const char *preset;
    CpuPrecision precision;
    int lora;     // adapters with dropout
    int compact;  // classifier over every other row
    int S;
} Case;

// Two windows into one gradient block, for the model with and without recompute.
static void run(const Case *k, CpuModel *m, const Params *p, float *grads, float *loss) {
    Rng r;
    rng_init(&r, 7);
    int *tok = malloc(sizeof(int) * k->S), *tgt = malloc(sizeof(int) * k->S);
    for (int w = 0; w < 2; w++) {
        for (int t = 0; t < k->S; t++) tok[t] = rng_u32(&r) % m->cfg.vocab, tgt[t] = rng_u32(&r) % m->cfg.vocab;
        tgt[3] = -1;  // an ignored position
        m->lora_training = 1, m->lora_window = (uint64_t)w;
        loss[w] = cpu_model_forward(m, p, tok, tgt);
        cpu_model_backward(m, p, grads, 8.0f);
    }
    free(tok), free(tgt);
}

static void check_case(const Case *k) {
    Config c;
    REQUIRE(config_preset(&c, k->preset) == 0);
    Params p, a;
    REQUIRE(params_init(&p, &c) == 0);
    params_init_random(&p, 3);
    LoraConfig lc = {.rank = 4, .alpha = 8, .targets = (1u << LORA_N_TARGETS) - 1, .dropout = 0.1f, .train_norms = 1};
    if (k->lora) {
        REQUIRE(lora_init(&a, &c, &lc) == 0);
        lora_init_random(&a, &lc, &p, 5);
        for (size_t i = 0; i < a.n; i++) a.data[i] += 0.01f * (float)(i % 7);  // B != 0
    }
    int *rows = malloc(sizeof(int) * c.vocab), n_rows = 0;
    for (int i = 0; i < c.vocab; i += 2) rows[n_rows++] = i;
    float loss[2][2], *g[2];
    for (int rc = 0; rc < 2; rc++) {
        CpuModel m;
        const CpuModelOptions o = {.precision = k->precision, .recompute = rc};
        REQUIRE(cpu_model_init_opts(&m, &c, k->S, &o) == 0);
        if (k->compact) REQUIRE(cpu_model_set_vocab(&m, rows, n_rows) == 0);
        if (k->lora) REQUIRE(cpu_model_set_lora(&m, &a, &lc, 11) == 0);
        const size_t n = k->lora ? a.n : p.n;
        g[rc] = calloc(n, sizeof(float));
        run(k, &m, &p, g[rc], loss[rc]);
        if (rc) CHECKF(m.logits == NULL, "%s: recompute kept the logits", k->preset);
        cpu_model_free(&m);
    }
    const size_t n = k->lora ? a.n : p.n;
    CHECKF(!memcmp(loss[0], loss[1], sizeof loss[0]), "%s: losses %.9g %.9g vs %.9g %.9g", k->preset, loss[0][0],
           loss[0][1], loss[1][0], loss[1][1]);
    size_t first = n;
    for (size_t i = 0; i < n && first == n; i++)
        if (memcmp(&g[0][i], &g[1][i], sizeof(float))) first = i;
    CHECKF(first == n, "%s%s%s%s: gradients differ first at %zu (%.9g vs %.9g)", k->preset,
           k->precision == CPU_BF16 ? " bf16" : "", k->lora ? " lora" : "", k->compact ? " compact" : "", first,
           first < n ? g[0][first] : 0, first < n ? g[1][first] : 0);
    free(g[0]), free(g[1]), free(rows);
    params_free(&p);
    if (k->lora) params_free(&a);
}

TEST(recompute_gives_the_same_gradients) {
    const Case cases[] = {
        {"tiny-mha", CPU_FP32, 0, 0, 32},  {"tiny-gqa", CPU_FP32, 0, 1, 24}, {"tiny-qwen3", CPU_FP32, 0, 0, 32},
        {"tiny-qwen3", CPU_BF16, 0, 0, 32}, {"tiny-gqa", CPU_FP32, 1, 0, 32}, {"stories260k", CPU_FP32, 0, 0, 64},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) check_case(&cases[i]);
}

// Less memory is the point: one layer's activations and no logits.
TEST(recompute_keeps_one_layer) {
    Config c;
    REQUIRE(config_preset(&c, "stories260k") == 0);
    CpuModel a, b;
    REQUIRE(cpu_model_init(&a, &c, 64) == 0);
    REQUIRE(cpu_model_init_opts(&b, &c, 64, &(CpuModelOptions){.recompute = 1}) == 0);
    CHECK(b.layers[1].h1 == b.layers[0].h1 && b.layers[1].x != b.layers[0].x && a.layers[1].h1 != a.layers[0].h1);
    // at least the FFN activations of all layers but one, and the logits
    const size_t saved = (size_t)(c.n_layers - 1) * 3 * c.hidden * 64 + (size_t)64 * c.vocab;
    CHECKF(b.act_floats + saved <= a.act_floats, "recompute keeps %zu floats of activations, the full model %zu",
           b.act_floats, a.act_floats);
    cpu_model_free(&a), cpu_model_free(&b);
}
