// The static pipelines (baked weights, recompiled every update) on the sim
// device: their kernels against the CPU ops, one step's gradients against the
// cpu pipeline's, loss curves, and the exec() restarts past the compile budget.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ane/device.h"
#include "core/err.h"
#include "core/io.h"
#include "mil/kernels.h"
#include "pipe_compare.h"
#include "test.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

// static: 5 baked kernels per layer and sdpaBwd2 once; 6 evaluations per layer.
static void static_step(const char *preset, int S, float res_scale) {
    PhaseTimes t;
    if (!pipe_compare_step("static", preset, S, res_scale, 0, &t)) return;
    Config c;
    config_preset(&c, preset);
    CHECKF(t.kernels_compiled == 1 + 5LL * c.n_layers, "%lld kernels", t.kernels_compiled);
    CHECK(t.device_evals == 6LL * c.n_layers);
}

// static-ane: 2 RMSNorm backward kernels more per layer, the final norm, one
// classifier chunk and one softmax (these vocabularies fit one chunk).
static void static_ane_step(const char *preset, int S, float res_scale) {
    PhaseTimes t;
    if (!pipe_compare_step("static-ane", preset, S, res_scale, 0, &t)) return;
    Config c;
    config_preset(&c, preset);
    CHECKF(t.kernels_compiled == 2 + 7LL * c.n_layers + 2, "%lld kernels", t.kernels_compiled);
    CHECK(t.device_evals == 8LL * c.n_layers + 3);
}

// GQA-4: 8 query heads over 2 kv heads, QK-norm with interleaved RoPE, residual scale 0.3.
static Config gqa4(void) {
    Config c;
    config_preset(&c, "tiny-gqa");
    snprintf(c.name, sizeof c.name, "tiny-gqa4");
    c.n_heads = 8, c.n_kv_heads = 2, c.head_dim = 8, c.hidden = 96;
    c.qk_norm = 1, c.rope_layout = ROPE_INTERLEAVED, c.res_scale = 0.3f;
    return c;
}

TEST(static_grads_match_cpu_gqa4) {
    PhaseTimes t;
    const Config c = gqa4();
    pipe_compare_step_cfg("static", &c, 20, 0, &t);
    pipe_compare_step_cfg("static-ane", &c, 20, 0, &t);
}

// A vocabulary above the channel limit: static-ane splits its classifier and
// softmax into chunks of 20001 and 20000 rows (two softmax kernels), and the
// combined softmax, loss and gradients are the cpu pipeline's.
TEST(static_ane_chunked_vocab_matches_cpu) {
    Config c;
    REQUIRE(config_preset(&c, "tiny-mha") == 0);
    snprintf(c.name, sizeof c.name, "tiny-mha-40k");
    c.vocab = 40001;
    PhaseTimes t;
    if (!pipe_compare_step_cfg("static-ane", &c, 16, 0, &t)) return;
    CHECKF(t.kernels_compiled == 3 + 7LL * c.n_layers + 1 + 2, "%lld kernels", t.kernels_compiled);
    CHECK(t.device_evals == 8LL * c.n_layers + 1 + 2 * 2);
}

// --compact-vocab: static computes the classifier on the CPU head, static-ane
// bakes the rows in use into its classifier chunks; both give the compacted
// cpu pipeline's loss and gradients.
TEST(static_grads_match_cpu_compact_vocab) {
    PhaseTimes t;
    pipe_compare_step("static", "tiny-gqa", 32, 1.0f, 1, &t);
    pipe_compare_step("static-ane", "tiny-gqa", 32, 1.0f, 1, &t);
}

TEST(static_grads_match_cpu_mha) { static_step("tiny-mha", 32, 1.0f); }
TEST(static_grads_match_cpu_gqa_res_scale) { static_step("tiny-gqa", 32, 0.5f); }
TEST(static_grads_match_cpu_qwen3) { static_step("tiny-qwen3", 32, 1.0f); }
TEST(static_grads_match_cpu_stories260k) { static_step("stories260k", 64, 1.0f); }
TEST(static_ane_grads_match_cpu_mha) { static_ane_step("tiny-mha", 32, 1.0f); }
TEST(static_ane_grads_match_cpu_gqa_res_scale) { static_ane_step("tiny-gqa", 32, 0.5f); }
TEST(static_ane_grads_match_cpu_qwen3) { static_ane_step("tiny-qwen3", 32, 1.0f); }
TEST(static_ane_grads_match_cpu_stories260k) { static_ane_step("stories260k", 64, 1.0f); }

// --- restarts ----------------------------------------------------------------------------------

// tiny-gqa: 2 layers, 10 baked kernels per update, sdpaBwd2 once: a budget of 25
// holds 2 updates per process, so 12 updates take 6 processes (and the
// evaluations every 4 updates fall on restarts: the next process runs them).
#define RESTART_RUN "--model tiny-gqa --steps 12 --accum 2 --seq 32 --lr 3e-3 --warmup 2 --eval-every 4 " \
                    "--eval-windows 2 --pipeline static -q"

static char *tmp_path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/st-%s", test_tmpdir(), name);
    return buf;
}


// A run restarted 6 times by its compile budget (the last for the final
// evaluation) ends with the same weights, moments, losses and evaluations,
// bit for bit, as the same run in one process.
TEST(static_restarts_are_bit_identical) {
    char a[600], b[600], la[600], lb[600], *out = NULL;
    tmp_path(a, sizeof a, "budget.bin"), tmp_path(la, sizeof la, "budget.jsonl");
    tmp_path(b, sizeof b, "one.bin"), tmp_path(lb, sizeof lb, "one.jsonl");
    const char *data = test_pattern_tokens(256);
    int rc = test_runf(&out, "%s train " RESTART_RUN " --data %s --compile-budget 25 --ckpt %s --log %s", test_bin(),
                       data, a, la);
    if (!CHECKF(rc == 0, "restarting run: %s", out ? out : "")) return;
    free(out);
    rc = test_runf(&out, "%s train " RESTART_RUN " --data %s --compile-budget 1000 --ckpt %s --log %s", test_bin(),
                   data, b, lb);
    if (!CHECKF(rc == 0, "one-process run: %s", out ? out : "")) return;
    free(out);
    CHECK(test_ckpt_bodies_equal(a, b));
    static char va[4096], vb[4096];
    CHECKF(test_log_values(la, "restart", "step", va, sizeof va) == 6 && !strcmp(va, "2 4 6 8 10 12 "), "restarts: %s", va);
    CHECK(test_log_values(lb, "restart", "step", vb, sizeof vb) == 0);
    CHECK(test_log_values(la, "step", "loss", va, sizeof va) == 12 && test_log_values(lb, "step", "loss", vb, sizeof vb) == 12);
    CHECKF(!strcmp(va, vb), "losses differ:\n  %s\n  %s", va, vb);
    CHECK(test_log_values(la, "eval", "val_loss", va, sizeof va) == 3 && test_log_values(lb, "eval", "val_loss", vb, sizeof vb) == 3);
    CHECKF(!strcmp(va, vb), "evaluations differ:\n  %s\n  %s", va, vb);
    TrainState st;
    Config c;
    REQUIRE(ckpt_read_header(a, &c, &st, NULL) == 0);
    // 7 processes compile sdpaBwd2 once each, 12 updates 10 kernels each, the final evaluation 10 more
    CHECKF(st.restarts == 6 && st.step == 12 && st.compiles == 7 + 12 * 10 + 10 && st.compile_ms > 0,
           "restarts %lld, step %lld, compiles %lld", (long long)st.restarts, (long long)st.step, (long long)st.compiles);
    // the last process (it only evaluated) reports the run's totals
    CHECK(test_log_values(la, "report", "restarts", va, sizeof va) == 1 && !strcmp(va, "6 "));
    CHECK(test_log_values(la, "report", "run_steps", va, sizeof va) == 1 && !strcmp(va, "12 "));
}

// A kernel that fails to compile in the process a restart started stops the
// run with the device's message; the checkpoint of the restart is intact and
// nothing restarts again.
TEST(static_compile_failure_after_restart_stops) {
    char a[600], la[600], *out = NULL;
    tmp_path(a, sizeof a, "fail.bin"), tmp_path(la, sizeof la, "fail.jsonl");
    int rc = test_runf(&out, "ANETRAIN_SIM_FAIL_AFTER_RESTART=1 %s train " RESTART_RUN
                             " --data %s --compile-budget 25 --ckpt %s --log %s", test_bin(), test_pattern_tokens(256),
                       a, la);
    CHECKF(rc != 0 && out && strstr(out, "compile refused") && strstr(out, "sdpaBwd2"), "rc %d: %s", rc,
           out ? out : "");
    free(out);
    static char v[512];
    CHECK(test_log_values(la, "restart", "step", v, sizeof v) == 1);
    TrainState st;
    Config c;
    CHECK(ckpt_read_header(a, &c, &st, NULL) == 0 && st.step == 2 && st.restarts == 1);
    CHECK(ckpt_verify(a) == 0);
}

// A budget that cannot hold one update is refused up front (no restart loop).
TEST(static_budget_too_small_is_refused) {
    char a[600], *out = NULL;
    int rc = test_runf(&out, "%s train " RESTART_RUN " --data %s --compile-budget 8 --ckpt %s", test_bin(),
                       test_pattern_tokens(256), tmp_path(a, sizeof a, "small.bin"));
    CHECKF(rc != 0 && out && strstr(out, "compiles 10 kernels per update") && strstr(out, "--compile-budget"),
           "rc %d: %s", rc, out ? out : "");
    free(out);
}

// Starts RESTART_RUN (budget 25) in the background and kill -9s it as soon as
// its log has a line containing `pattern`. Returns 1 if it was killed.
static int run_and_kill(const char *data, const char *ckpt, const char *log, int resume, const char *pattern) {
    char *out = NULL;
    int rc = test_runf(&out,
                       "%s train " RESTART_RUN " --data %s --compile-budget 25 --ckpt %s --log %s %s & p=$!; i=0; "
                       "while ! grep -q '%s' %s 2>/dev/null; do i=$((i+1)); [ $i -gt 3000 ] && break; sleep 0.01; done; "
                       "kill -9 $p && wait $p; echo \"exit $?\"",
                       test_bin(), data, ckpt, log, resume ? "--resume" : "", pattern, log);
    int killed = rc == 0 && out && strstr(out, "exit 137");
    if (!killed) fprintf(stderr, "    not killed (%s): %s\n", pattern, out ? out : "");
    free(out);
    return killed;
}

// kill -9 right after a restart's checkpoint, and again right after an exec
// (its restart record): each resume continues cleanly, and the run ends as the
// one-process run does, bit for bit.
TEST(static_kill_around_restarts_resumes) {
    char a[600], la[600], b[600], *out = NULL;
    tmp_path(a, sizeof a, "kill.bin"), tmp_path(la, sizeof la, "kill.jsonl"), tmp_path(b, sizeof b, "kill-one.bin");
    const char *data = test_pattern_tokens(256);
    REQUIRE(test_runf(&out, "%s train " RESTART_RUN " --data %s --compile-budget 1000 --ckpt %s", test_bin(), data, b) ==
            0);
    free(out);
    CHECK(run_and_kill(data, a, la, 0, "\"type\":\"checkpoint\",\"step\":2"));
    CHECK(run_and_kill(data, a, la, 1, "\"type\":\"restart\",\"step\":6"));
    int rc = test_runf(&out, "%s train " RESTART_RUN " --data %s --compile-budget 25 --ckpt %s --log %s --resume",
                       test_bin(), data, a, la);
    CHECKF(rc == 0, "final resume: %s", out ? out : "");
    free(out);
    CHECK(test_ckpt_bodies_equal(a, b));
}

// --- training ----------------------------------------------------------------------------------

#define CURVE_RUN "--model tiny-gqa --steps 50 --accum 1 --seq 32 --lr 3e-3 --warmup 5 --compile-budget 1000 -q"

static int curve(const char *pipeline, const char *extra, const char *name, float *loss, char *ckpt, size_t cap) {
    char log[600], *out = NULL;
    tmp_path(ckpt, cap, name);
    snprintf(log, sizeof log, "%s.jsonl", ckpt);
    int rc = test_runf(&out, "%s train " CURVE_RUN " --pipeline %s %s --data %s --ckpt %s --log %s", test_bin(),
                       pipeline, extra, test_pattern_tokens(256), ckpt, log);
    if (!CHECKF(rc == 0, "%s: %s", pipeline, out ? out : "")) {
        free(out);
        return 0;
    }
    free(out);
    static char v[8192];
    int n = test_log_values(log, "step", "loss", v, sizeof v);
    char *s = v;
    for (int i = 0; i < n && i < 50; i++) loss[i] = strtof(s, &s);
    return n == 50;
}

// 50 updates from the same seed: static and static-ane follow the cpu
// pipeline's loss curve within the dynamic pipeline's bound (each step's
// gradients are within 10u, which moves the weights by far less than an
// update: every step within 0.02 nats, the mean within 0.005).
// static-ane --no-ane-extras is the static pipeline: bit for bit.
TEST(static_trains_like_cpu) {
    float c[50], s[50], a[50], n[50];
    char cc[600], cs[600], ca[600], cn[600];
    if (!curve("cpu", "", "curve-cpu.bin", c, cc, sizeof cc) || !curve("static", "", "curve-st.bin", s, cs, sizeof cs) ||
        !curve("static-ane", "", "curve-ane.bin", a, ca, sizeof ca) ||
        !curve("static-ane", "--no-ane-extras", "curve-noext.bin", n, cn, sizeof cn))
        return;
    const float *curves[2] = {s, a};
    const char *names[2] = {"static", "static-ane"};
    for (int k = 0; k < 2; k++) {
        double worst = 0, mean = 0;
        for (int i = 0; i < 50; i++) {
            double e = fabs(curves[k][i] - c[i]);
            worst = e > worst ? e : worst;
            mean += e / 50;
        }
        fprintf(stderr, "    %s vs cpu: worst step difference %.2g, mean %.2g\n", names[k], worst, mean);
        CHECKF(worst <= 0.02 && mean <= 0.005, "%s: loss curves differ: worst %.4g, mean %.4g", names[k], worst, mean);
    }
    CHECKF(c[49] < c[0] - 0.5f, "the model did not learn: %g -> %g", c[0], c[49]);
    CHECK(test_ckpt_bodies_equal(cs, cn));
}

// --- anetrain bench -------------------------------------------------------------------------------

// The comparison table on tiny-gqa: every configuration runs and reports, the
// static pipelines restart once (a budget of 20 holds one update of theirs),
// and the JSON lines carry the same numbers.
TEST(bench_table_runs_every_pipeline) {
    char json[600], *out = NULL;
    tmp_path(json, sizeof json, "bench.jsonl");
    int rc = test_runf(&out, "%s bench --model tiny-gqa --data %s --steps 4 --accum 2 --seq 32 --compile-budget 20 "
                             "--json %s 2>/dev/null", test_bin(), test_pattern_tokens(256), json);
    if (!CHECKF(rc == 0, "bench: %s", out ? out : "")) return;
    const char *labels[5] = {"static ", "static-ane ", "static-ane no extras", "dynamic ", "cpu "};
    for (int i = 0; i < 5; i++) CHECKF(strstr(out, labels[i]) != NULL, "no row %s in:\n%s", labels[i], out);
    CHECK(strstr(out, "tiny-gqa, 4 windows of 32 tokens (2 updates of 2), device sim") != NULL);
    CHECK(strstr(out, "all = 3*fwd + sdpa + 3*cls") != NULL);
    free(out);
    static char v[2048];
    CHECK(test_log_values(json, "bench", "kernels_per_batch", v, sizeof v) == 5 && !strcmp(v, "10 16 10 10 0 "));
    CHECKF(test_log_values(json, "bench", "restarts", v, sizeof v) == 5 && !strcmp(v, "1 1 1 0 0 "), "restarts %s", v);
    CHECKF(test_log_values(json, "bench", "evals_per_window", v, sizeof v) == 5 && !strcmp(v, "12 19 12 20 0 "), "evals %s", v);
    // the same training: the final losses agree across pipelines to the fp16 bound
    CHECK(test_log_values(json, "bench", "final_loss", v, sizeof v) == 5);
    char *s = v;
    float l[5];
    for (int i = 0; i < 5; i++) l[i] = strtof(s, &s);
    for (int i = 0; i < 4; i++) CHECKF(fabsf(l[i] - l[4]) < 0.01f, "%s loss %g vs cpu %g", labels[i], l[i], l[4]);
    // --only with no match is refused before anything runs
    CHECK(test_runf(&out, "%s bench --model tiny-gqa --only nothing", test_bin()) == 2 && out &&
          strstr(out, "matches none"));
    free(out);
}

// --stop-after counts from where the user started, across the processes that
// restarts make: stopped after 5 updates, a run is at update 5, restarted
// twice; stopped after 4, an update that also ends a process for its
// evaluation, it is at update 4 with that evaluation done.
TEST(static_stop_after_spans_restarts) {
    char a[600], b[600], lb[600], *out = NULL;
    int rc = test_runf(&out, "%s train " RESTART_RUN " --data %s --compile-budget 25 --stop-after 5 --ckpt %s",
                       test_bin(), test_pattern_tokens(256), tmp_path(a, sizeof a, "stop5.bin"));
    CHECKF(rc == 0, "%s", out ? out : "");
    free(out);
    TrainState st;
    Config c;
    CHECK(ckpt_read_header(a, &c, &st, NULL) == 0 && st.step == 5 && st.restarts == 2);
    rc = test_runf(&out, "%s train " RESTART_RUN " --data %s --compile-budget 25 --stop-after 4 --ckpt %s --log %s",
                   test_bin(), test_pattern_tokens(256), tmp_path(b, sizeof b, "stop4.bin"),
                   tmp_path(lb, sizeof lb, "stop4.jsonl"));
    CHECKF(rc == 0, "%s", out ? out : "");
    free(out);
    static char v[512];
    CHECK(ckpt_read_header(b, &c, &st, NULL) == 0 && st.step == 4);
    CHECKF(test_log_values(lb, "step", "step", v, sizeof v) == 4, "steps: %s", v);
    CHECK(test_log_values(lb, "eval", "step", v, sizeof v) == 1 && !strcmp(v, "4 "));
}
