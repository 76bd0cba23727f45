// The dynamic pipeline on the sim device against the cpu pipeline, and the
// device rules.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ane/device.h"
#include "core/err.h"
#include "core/io.h"
#include "core/rng.h"
#include "train/optim.h"
#include "data/dataset.h"
#include "mil/kernels.h"
#include "pipe_compare.h"
#include "test.h"
#include "train/checkpoint.h"
#include "train/pipeline.h"
#include "train/trainer.h"

// One step's gradients against the cpu pipeline's (tests/pipe_compare.h); the
// dynamic pipeline compiles its 10 kernels once and runs 10 per layer.
static void compare_step(const char *preset, int S, float res_scale, int compact) {
    PhaseTimes t;
    if (!pipe_compare_step("dynamic", preset, S, res_scale, compact, &t)) return;
    CHECK(t.kernels_compiled == MIL_K_DYN_COUNT);
    Config c;
    config_preset(&c, preset);
    CHECK(t.device_evals == 10LL * c.n_layers);
}

TEST(dynamic_grads_match_cpu_mha) { compare_step("tiny-mha", 32, 1.0f, 0); }
TEST(dynamic_grads_match_cpu_gqa_res_scale) { compare_step("tiny-gqa", 32, 0.5f, 0); }
TEST(dynamic_grads_match_cpu_qwen3) { compare_step("tiny-qwen3", 32, 1.0f, 0); }
TEST(dynamic_grads_match_cpu_stories260k) { compare_step("stories260k", 64, 1.0f, 0); }  // GQA 8/4, head_dim 8
// --compact-vocab on the dynamic pipeline: the same compacted loss and gradients as the cpu pipeline's
TEST(dynamic_grads_match_cpu_compact_vocab) { compare_step("tiny-gqa", 32, 1.0f, 1); }

// --device-head: clsFwd, vocabSoftmax and clsBwd per chunk of the vocabulary
// (compiled once per chunk size), 3 evaluations per chunk beside the layers'.
static void head_step(Config c, int S, int compact, int chunks, int sizes) {
    const PipelineOptions o = {.name = "dynamic", .device_head = 1};
    PhaseTimes t;
    if (!pipe_compare_step_opts(&o, &c, S, compact, &t)) return;
    CHECKF(t.kernels_compiled == MIL_K_DYN_COUNT + 3LL * sizes, "%s: %lld kernels", c.name, t.kernels_compiled);
    CHECKF(t.device_evals == 10LL * c.n_layers + 3LL * chunks, "%s: %lld evaluations", c.name, t.device_evals);
}

// --device-head and --serial-staging belong to the dynamic pipeline: elsewhere
// one line says so; a resumed dynamic run (the pipeline from its checkpoint)
// takes them, and --serial-staging changes no number of the run.
TEST(dynamic_only_flags_are_refused_off_the_dynamic_pipeline) {
    char ck[512], ck2[512], *out = NULL;
    snprintf(ck, sizeof ck, "%s/head-resume.bin", test_tmpdir());
    snprintf(ck2, sizeof ck2, "%s/head-resume-serial.bin", test_tmpdir());
    const char *run = "%s train --model tiny-mha --scratch --data %s --pipeline dynamic --seq 32 --accum 1 --steps 2 "
                      "--eval-every 0 --ckpt %s -q %s";
    REQUIRE(test_runf(&out, run, test_bin(), test_pattern_tokens(256), ck, "") == 0);
    free(out), out = NULL;
    REQUIRE(test_runf(&out, run, test_bin(), test_pattern_tokens(256), ck2, "--serial-staging") == 0);
    free(out), out = NULL;
    CHECK(test_ckpt_bodies_equal(ck, ck2));
    CHECKF(test_runf(&out, "%s train --resume --ckpt %s --device-head --serial-staging --steps 3 -q", test_bin(), ck) == 0,
           "%s", out ? out : "");
    free(out);
    const char *others[] = {"cpu", "static", "static-ane"}, *flags[] = {"--device-head", "--serial-staging"};
    for (int i = 0; i < 6; i++) {
        char *out = NULL;
        CHECKF(test_runf(&out, "%s train --model tiny-mha --scratch --data %s --pipeline %s %s --steps 1", test_bin(),
                         test_pattern_tokens(256), others[i % 3], flags[i / 3]) != 0 &&
                   out && strstr(out, " is for the dynamic pipeline") && strstr(out, flags[i / 3]),
               "%s %s: %s", others[i % 3], flags[i / 3], out ? out : "");
        free(out);
    }
}

static Config preset(const char *name) {
    Config c;
    config_preset(&c, name);
    return c;
}

TEST(dynamic_device_head_matches_cpu) {
    head_step(preset("tiny-mha"), 32, 0, 1, 1);
    head_step(preset("tiny-qwen3"), 32, 0, 1, 1);
    head_step(preset("stories260k"), 64, 0, 1, 1);
    head_step(preset("tiny-gqa"), 32, 1, 1, 1);  // compacted: the rows in use, their gradients scattered back
    // above clsBwd's input channel limit: chunks of 13334, 13334 and 13333 rows
    Config c = preset("tiny-mha");
    snprintf(c.name, sizeof c.name, "tiny-mha-40k");
    c.vocab = 40001;
    head_step(c, 16, 0, 3, 2);
}

static int read_losses(const char *log, float *out, int max) {
    char *txt = NULL;
    if (io_read_all(log, &txt, NULL) != 0) return 0;
    int n = 0;
    for (char *s = strstr(txt, "\"type\":\"step\""); s && n < max; s = strstr(s + 1, "\"type\":\"step\"")) {
        char *l = strstr(s, "\"loss\":");
        if (l) out[n++] = strtof(l + 7, NULL);
    }
    free(txt);
    return n;
}

static void opts(TrainOptions *o, const char *pipeline, const char *ckpt, const char *log) {
    trainer_defaults(o);
    o->model = "tiny-gqa";
    o->data = test_pattern_tokens(256);
    o->pipeline = pipeline;
    o->ckpt = ckpt;
    o->log_path = log;
    o->steps = 50;
    o->accum = 1;
    o->seq = 32;
    o->warmup = 5;
    o->lr = 3e-3f;
    o->eval_every = 0;
    o->save_every = 0;
    o->quiet = 1;
}

// 50 updates from the same seed: the loss curves agree step by step. The
// per-step gradients differ by ~1e-3 relative (above), which moves the weights
// by far less than one update; we hold every step's loss to 0.02 nats and the
// mean absolute difference to 0.005.
// Overlapped staging (the stager thread stages layer l+1 while layer l runs)
// gives the serial staging's losses, gradients and weights bit for bit over
// updates that change the weights, with an evaluation between them; so do
// weight gradients on the dW worker thread (the ANE's arrangement; on sim
// they run inline). The same with the device head, whose classifier rows the
// stager stages after the layers.
TEST(dynamic_overlapped_staging_is_bit_identical) {
    Config c;
    REQUIRE(config_preset(&c, "stories260k") == 0);
    enum { S = 32, UPDATES = 3 };
    enum { MODES = 6 };  // serial staging; overlapped; overlapped with the dW thread; each with the device head
    Params p[MODES];
    float *g[MODES], loss[MODES][UPDATES], ev[MODES][UPDATES];
    int tok[S], tgt[S];
    for (int mode = 0; mode < MODES; mode++) {
        REQUIRE(params_init(&p[mode], &c) == 0);
        params_init_random(&p[mode], 5);
        const PipelineOptions po = {
            .name = "dynamic", .serial_staging = mode % 3 == 0, .dw_thread = mode % 3 == 2, .device_head = mode >= 3};
        Pipeline pl;
        REQUIRE(pipeline_init(&pl, &po, &c, S) == 0);
        g[mode] = calloc(p[mode].n, sizeof(float));
        float *m = calloc(p[mode].n, sizeof(float)), *v = calloc(p[mode].n, sizeof(float));
        TrainState st;
        memset(&st, 0, sizeof st);
        optim_defaults(&st);
        st.total_steps = UPDATES;
        Rng r;
        rng_init(&r, 3);
        for (int u = 0; u < UPDATES; u++) {
            for (int t = 0; t < S; t++) tok[t] = rng_u32(&r) % c.vocab, tgt[t] = rng_u32(&r) % c.vocab;
            memset(g[mode], 0, p[mode].n * sizeof(float));
            REQUIRE(pl.step(&pl, &p[mode], tok, tgt, g[mode], 1.0f, &loss[mode][u]) == 0);
            st.adam_t++;
            optim_adamw(&p[mode], g[mode], m, v, &st, 1e-3f, 1.0f, NULL);
            REQUIRE(pl.params_changed(&pl, &p[mode]) == 0);
            REQUIRE(pl.eval(&pl, &p[mode], tok, tgt, &ev[mode][u]) == 0);
        }
        pipeline_free(&pl);
        free(m), free(v);
    }
    for (int mode = 1; mode < MODES; mode++) {
        const int b = mode / 3 * 3;  // the serial run of the same head
        if (mode == b) continue;
        CHECKF(!memcmp(loss[b], loss[mode], sizeof loss[0]) && !memcmp(ev[b], ev[mode], sizeof ev[0]), "mode %d", mode);
        CHECKF(!memcmp(g[b], g[mode], p[0].n * sizeof(float)), "mode %d: gradients", mode);
        CHECKF(!memcmp(p[b].data, p[mode].data, p[0].n * sizeof(float)), "mode %d: weights", mode);
    }
    CHECK(memcmp(loss[0], loss[3], sizeof loss[0]) != 0);  // the device head ran: fp16 logits
    for (int mode = 0; mode < MODES; mode++) free(g[mode]), params_free(&p[mode]);
}

TEST(dynamic_trains_like_cpu) {
    char ca[512], cb[512], la[512], lb[512];
    const char *dir = test_tmpdir();
    snprintf(ca, sizeof ca, "%s/cpu50.bin", dir);
    snprintf(cb, sizeof cb, "%s/dyn50.bin", dir);
    snprintf(la, sizeof la, "%s/cpu50.jsonl", dir);
    snprintf(lb, sizeof lb, "%s/dyn50.jsonl", dir);
    TrainOptions o;
    opts(&o, "cpu", ca, la);
    REQUIRE(trainer_run(&o) == 0);
    opts(&o, "dynamic", cb, lb);
    if (!CHECKF(trainer_run(&o) == 0, "%s", err_msg())) return;
    float a[64], b[64];
    int na = read_losses(la, a, 64), nb = read_losses(lb, b, 64);
    REQUIRE(na == 50 && nb == 50);
    double worst = 0, mean = 0;
    for (int i = 0; i < 50; i++) {
        double e = fabs(a[i] - b[i]);
        worst = e > worst ? e : worst;
        mean += e / 50;
    }
    fprintf(stderr, "    loss curves: worst step difference %.2g, mean %.2g\n", worst, mean);
    CHECKF(worst <= 0.02 && mean <= 0.005, "loss curves differ: worst %.4g, mean %.4g (cpu %g->%g, dynamic %g->%g)",
           worst, mean, a[0], a[49], b[0], b[49]);
    CHECKF(a[49] < a[0] - 0.5f, "the model did not learn: %g -> %g", a[0], a[49]);
}

TEST(dynamic_resume_is_bit_identical) {
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/dyn-straight.bin", test_tmpdir());
    snprintf(b, sizeof b, "%s/dyn-halves.bin", test_tmpdir());
    TrainOptions o;
    opts(&o, "dynamic", a, NULL);
    o.steps = 8;
    REQUIRE(trainer_run(&o) == 0);
    opts(&o, "dynamic", b, NULL);
    o.steps = 8;
    o.stop_after = 4;
    REQUIRE(trainer_run(&o) == 0);
    opts(&o, "dynamic", b, NULL);
    o.steps = 8;
    o.resume = 1;
    o.model = NULL;
    REQUIRE(trainer_run(&o) == 0);
    Params pa, pb;
    TrainState sa, sb;
    REQUIRE(ckpt_load(a, &pa, NULL, NULL, &sa) == 0);
    REQUIRE(ckpt_load(b, &pb, NULL, NULL, &sb) == 0);
    CHECK(sa.step == 8 && sb.step == 8 && sa.loss_scale == sb.loss_scale);
    CHECKF(memcmp(pa.data, pb.data, pa.n * 4) == 0, "weights differ after resume on the dynamic pipeline");
    params_free(&pa), params_free(&pb);
}

static const char *WO_MIL_TEMPLATE =
    "program(1.3)\n{\n    func main<ios18>(tensor<fp16, [1, 384, 1, 64]> x) {\n"
    "        tensor<fp16, [1, 384, 1, 64]> y = sigmoid(x=x)[name=string(\"y\")];\n    } -> (y);\n}\n";

TEST(device_sim_enforces_rules) {
    Device d;
    REQUIRE(device_init(&d, "sim", 2) == 0);
    DeviceKernel *k1, *k2, *k3;
    REQUIRE(device_compile(&d, WO_MIL_TEMPLATE, NULL, 0, &k1) == 0);
    REQUIRE(device_compile(&d, WO_MIL_TEMPLATE, NULL, 0, &k2) == 0);
    CHECK(device_compile(&d, WO_MIL_TEMPLATE, NULL, 0, &k3) != 0 && strstr(err_msg(), "budget"));
    DeviceSurface *in, *out, *wrong;
    REQUIRE(device_surface_create(&d, 384, 64, &in) == 0);
    REQUIRE(device_surface_create(&d, 384, 64, &out) == 0);
    REQUIRE(device_surface_create(&d, 384, 65, &wrong) == 0);
    DeviceRequest *r;
    CHECK(device_request_create(&d, k1, wrong, out, &r) != 0 && strstr(err_msg(), "does not match"));
    CHECK(device_request_create(&d, k1, in, wrong, &r) != 0);
    REQUIRE(device_request_create(&d, k1, in, out, &r) == 0);
    uint16_t *p = device_surface_lock(&d, in, 1);
    for (int i = 0; i < 384 * 64; i++) p[i] = 0;  // fp16 zero -> sigmoid 0.5 = 0x3800
    device_surface_unlock(&d, in, 1);
    REQUIRE(device_eval(&d, r) == 0);
    p = device_surface_lock(&d, out, 0);
    CHECK(p[0] == 0x3800 && p[384 * 64 - 1] == 0x3800);
    device_surface_unlock(&d, out, 0);
    CHECK(device_compile(&d, "program(1.3)\n{ bogus", NULL, 0, &k3) != 0);
    // the ANE's rules (mil_rules.h): a surface of 4 x 8 values is refused, naming the rule
    Device d2;
    REQUIRE(device_init(&d2, "sim", 0) == 0);
    CHECK(device_compile(&d2,
                         "program(1.3)\n{\n    func main<ios18>(tensor<fp16, [1, 4, 1, 8]> x) {\n"
                         "        tensor<fp16, [1, 4, 1, 8]> y = sigmoid(x=x)[name=string(\"y\")];\n    } -> (y);\n}\n",
                         NULL, 0, &k3) != 0 && strstr(err_msg(), "ANE rule io-rows"));
    device_free(&d2);
    device_request_free(&d, r);
    device_surface_free(&d, in), device_surface_free(&d, out), device_surface_free(&d, wrong);
    device_kernel_free(&d, k1), device_kernel_free(&d, k2);
    device_free(&d);
    CHECK(device_init(&d, "tpu", 0) != 0 && strstr(err_msg(), "sim"));
}

TEST(mil_cli_prints_and_runs_kernels) {
    char cmd[2048], *out = NULL;
    const char *dir = test_tmpdir();
    // print a kernel with its weight files, then run the printed program in sim
    snprintf(cmd, sizeof cmd, "%s mil sdpaFwd --model tiny-qwen3 --seq 16 --blobs %s/blobs > %s/sdpa.mil 2>/dev/null",
             test_bin(), dir, dir);
    REQUIRE(test_run(cmd, NULL) == 0);
    snprintf(cmd, sizeof cmd, "%s mil --run %s/sdpa.mil --weights %s/blobs", test_bin(), dir, dir);
    CHECK(test_run(cmd, &out) == 0 && strstr(out, "output [1, 640, 1, 64]") && strstr(out, "non-finite 0"));
    free(out);
    // without the weights: one clear line
    snprintf(cmd, sizeof cmd, "%s mil --run %s/sdpa.mil", test_bin(), dir);
    CHECK(test_run(cmd, &out) == 1 && strstr(out, "--weights"));
    free(out);
    // a malformed program names file, line and column
    snprintf(cmd, sizeof cmd, "printf 'program(1.3)\\n{\\n  func main<ios18>(tensor<fp16, [1, 4, 1, 8]> x) {\\n"
                              "    tensor<fp16, [1, 4, 1, 8]> y = sigmoid(x=)[name=string(\"y\")];\\n  } -> (y);\\n}\\n' "
                              "> %s/bad.mil && %s mil --run %s/bad.mil",
             dir, test_bin(), dir);
    CHECK(test_run(cmd, &out) == 1 && strstr(out, "bad.mil") && strstr(out, ":4:"));
    free(out);
    snprintf(cmd, sizeof cmd, "%s mil nosuchkernel", test_bin());
    CHECK(test_run(cmd, &out) == 1 && strstr(out, "kvBwd"));
    free(out);
    snprintf(cmd, sizeof cmd, "%s mil woFwd --model stories15m --seq 32 --dialect ios16 2>/dev/null", test_bin());
    CHECK(test_run(cmd, &out) == 0 && strstr(out, "program(1.0)") && strstr(out, "main<ios16>"));
    free(out);
}
