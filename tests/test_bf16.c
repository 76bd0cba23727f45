// bf16 mode of the CPU pipeline: the rounding itself, products that really see
// bf16 inputs, and a model whose loss, gradients and short training curve stay
// within stated bounds of fp32.
//
// Bounds: bf16 keeps 8 significant bits, so each rounded input is off by at most
// 2^-9 (0.2%) relative; a product sums K such errors of random sign, and the
// model compounds a few layers of them. Observed on these configs: loss within
// ~2e-4 relative, gradient tensors within ~1e-2 relative error (max|a-b|/max|b|).
// The bounds below are 5-10x that — far below what fp32 math with a missing
// rounding or a wrong formula would show (O(1)) and far above fp32 noise (1e-6),
// and bf16 must differ from fp32 at all (else the rounding is not happening).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fp16.h"
#include "core/gemm.h"
#include "core/rng.h"
#include "core/threads.h"
#include "cpu/model.h"
#include "cpu/par.h"
#include "cpu/vmath.h"
#include "model/params.h"
#include "test.h"

static const double BF16_LOSS_RTOL = 2e-3, BF16_GRAD_REL = 5e-2, BF16_CURVE_ATOL = 0.05;

static float bits_f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static uint32_t f_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

// bf16_round and bf16_round_array agree with core/fp16's bf16 conversion on
// ties, carries into the exponent, inf, NaN, subnormals and random values.
TEST(bf16_round_matches_core_conversion) {
    Rng r;
    rng_init(&r, 21);
    enum { N = 4099 };
    float *x = malloc(N * 4), *y = malloc(N * 4);
    const uint32_t special[] = {0x3f808000u, 0x3f818000u, 0x3f80ffffu, 0x7f7fffffu, 0x7f800000u, 0xff800000u,
                                0x7fc00001u, 0xff812345u, 0x00000001u, 0x80008000u, 0x00018000u, 0x0u};
    for (int i = 0; i < N; i++) {
        if (i < (int)(sizeof special / 4)) x[i] = bits_f(special[i]);
        else x[i] = bits_f(rng_u32(&r));
    }
    bf16_round_array(y, x, N);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        const float want = bf16_to_f32(bf16_from_f32(x[i]));
        const float one = bf16_round(x[i]);
        const int same = isnan(want) ? isnan(y[i]) && isnan(one) : f_bits(y[i]) == f_bits(want) && f_bits(one) == f_bits(want);
        if (!same && bad++ < 5) CHECKF(0, "x=%08x: array %08x scalar %08x want %08x", f_bits(x[i]), f_bits(y[i]),
                                       f_bits(one), f_bits(want));
    }
    CHECK(bad == 0);
    free(x), free(y);
}

// A task with round_a gives exactly the product of the pre-rounded weight.
TEST(bf16_task_rounds_weights) {
    const int saved = threads_count();
    Rng r;
    rng_init(&r, 22);
    enum { M = 200, N = 96, K = 144 };
    float *W = malloc(M * K * 4), *Wr = malloc(M * K * 4), *x = malloc(K * N * 4);
    for (int i = 0; i < M * K; i++) W[i] = rng_normal(&r);
    for (int i = 0; i < K * N; i++) x[i] = bf16_round(rng_normal(&r));
    for (int i = 0; i < M * K; i++) Wr[i] = bf16_round(W[i]);  // scalar reference rounding
    for (int nt = 1; nt <= 2; nt++) {
        threads_set_count(nt);
        float *scratch = malloc(sizeof(float) * 2 * M * K);
        ParScratch ps = {scratch, M * K, 2};
        for (int ta = 0; ta < 2; ta++) {
            float *C = malloc(M * N * 4), *Cw = malloc(M * N * 4), *C32 = malloc(M * N * 4);
            const int lda = ta ? M : K;
            // with ta the stored matrix is [K][M]: reuse W's storage with that stride
            const ParTask t = {M, N, N, 0.0f, C, 1, {{ta, 0, K, lda, N, 1.0f, W, x, 1}}};
            par_gemm_tasks(&t, 1, &ps);
            gemm_naive(ta, 0, M, N, K, 1.0f, Wr, lda, x, N, 0.0f, Cw, N);
            gemm_naive(ta, 0, M, N, K, 1.0f, W, lda, x, N, 0.0f, C32, N);
            char label[48];
            snprintf(label, sizeof label, "bf16 task t%d, %d threads", ta, nt);
            test_allclose(C, Cw, M * N, 1e-4f, 1e-5f, label);
            CHECKF(test_rel_err(C, C32, M * N) > 1e-4, "bf16 task t%d: result equals the fp32 product", ta);
            free(C), free(Cw), free(C32);
        }
        free(scratch);
    }
    free(W), free(Wr), free(x);
    threads_set_count(saved);
}

static float run_model(const Config *cfg, const Params *p, const int *tok, const int *tgt, int S, CpuPrecision prec,
                       float *grads) {
    CpuModel m;
    if (cpu_model_init_opts(&m, cfg, S, &(CpuModelOptions){.precision = prec}) != 0) return NAN;
    float loss = cpu_model_forward(&m, p, tok, tgt);
    memset(grads, 0, sizeof(float) * p->n);
    cpu_model_backward(&m, p, grads, 1.0f);
    cpu_model_free(&m);
    return loss;
}

static void check_model_bf16(const char *preset, int nt) {
    const int saved = threads_count();
    threads_set_count(nt);
    Config cfg;
    REQUIRE(config_preset(&cfg, preset) == 0);
    const int S = cfg.seq_len < 64 ? cfg.seq_len : 64;
    Params p;
    REQUIRE(params_init(&p, &cfg) == 0);
    params_init_random(&p, 8);
    Rng r;
    rng_init(&r, 9);
    int *tok = malloc(S * sizeof(int)), *tgt = malloc(S * sizeof(int));
    for (int t = 0; t < S; t++) tok[t] = (int)rng_below(&r, cfg.vocab), tgt[t] = (int)rng_below(&r, cfg.vocab);
    float *g32 = malloc(p.n * 4), *g16 = malloc(p.n * 4);
    const float l32 = run_model(&cfg, &p, tok, tgt, S, CPU_FP32, g32);
    const float l16 = run_model(&cfg, &p, tok, tgt, S, CPU_BF16, g16);
    CHECKF(fabs(l16 - l32) <= BF16_LOSS_RTOL * fabs(l32), "%s: bf16 loss %.6f vs fp32 %.6f", preset, l16, l32);
    CHECKF(l16 != l32, "%s: bf16 loss is bit-identical to fp32: no rounding happened", preset);
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < p.n_tensors; i++) {
        const TensorDesc *d = &p.t[i];
        double rel = test_rel_err(g16 + d->offset, g32 + d->offset, d->numel);
        if (rel > worst) worst = rel, worst_name = d->name;
    }
    fprintf(stderr, "    %s (%d threads): loss fp32 %.6f bf16 %.6f; worst grad rel err %.2e (%s)\n", preset, nt, l32,
            l16, worst, worst_name);
    CHECKF(worst <= BF16_GRAD_REL, "%s: bf16 gradient %s rel err %.3g > %g", preset, worst_name, worst, BF16_GRAD_REL);
    free(tok), free(tgt), free(g32), free(g16);
    params_free(&p);
    threads_set_count(saved);
}

TEST(bf16_model_close_to_fp32_llama) { check_model_bf16("tiny-gqa", 1); }
TEST(bf16_model_close_to_fp32_qwen3) { check_model_bf16("tiny-qwen3", 2); }
TEST(bf16_model_close_to_fp32_stories260k_threads) { check_model_bf16("stories260k", 2); }

// `anetrain train --precision bf16` trains: its loss curve stays within
// BF16_CURVE_ATOL of the fp32 curve on the same data and seed.
TEST(bf16_training_curve_follows_fp32) {
    char cmd[1024], log32[512], log16[512];
    const char *dir = test_tmpdir();
    float curve[2][40];
    int n[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        snprintf(k ? log16 : log32, 512, "%s/curve_%d.jsonl", dir, k);
        snprintf(cmd, sizeof cmd,
                 "%s train --model stories260k --steps 30 --accum 1 --seq 64 --lr 3e-3 --warmup 3 --eval-every 0 "
                 "--save-every 0 --quiet --precision %s --out-dir %s/data --ckpt %s/ck%d.bin --log %s",
                 test_bin(), k ? "bf16" : "fp32", dir, dir, k, k ? log16 : log32);
        char *out = NULL;
        int rc = test_run(cmd, &out);
        CHECKF(rc == 0, "train --precision %s failed: %s", k ? "bf16" : "fp32", out ? out : "");
        free(out);
        FILE *f = fopen(k ? log16 : log32, "r");
        if (!CHECK(f != NULL)) return;
        char line[1024];
        while (fgets(line, sizeof line, f) && n[k] < 40) {
            const char *s = strstr(line, "\"type\":\"step\"");
            const char *l = strstr(line, "\"loss\":");
            if (s && l) curve[k][n[k]++] = strtof(l + 7, NULL);
        }
        fclose(f);
    }
    REQUIRE(n[0] == 30 && n[1] == 30);
    double worst = 0;
    for (int i = 0; i < 30; i++) worst = fmax(worst, fabs(curve[1][i] - curve[0][i]));
    fprintf(stderr, "    30 steps: loss %.4f -> %.4f (fp32), %.4f -> %.4f (bf16), worst step diff %.4f\n", curve[0][0],
            curve[0][29], curve[1][0], curve[1][29], worst);
    CHECKF(curve[0][29] < curve[0][0] - 0.3, "fp32 did not train: %.4f -> %.4f", curve[0][0], curve[0][29]);
    CHECKF(worst <= BF16_CURVE_ATOL, "bf16 curve leaves fp32's by %.4f > %g", worst, BF16_CURVE_ATOL);
}
