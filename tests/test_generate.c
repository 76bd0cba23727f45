// Generation: KV-cache forward vs the training forward, the sampler, and
// `anetrain sample` against llama2.c's published stories260K samples.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/io.h"
#include "core/rng.h"
#include "cpu/model.h"
#include "infer/generate.h"
#include "infer/generate_device.h"
#include "infer/sampler.h"
#include "mil/kernels.h"
#include "model/config.h"
#include "model/model_file.h"
#include "model/params.h"
#include "test.h"

// Random weights with some spread: matrices scaled up from N(0, 0.02) so the
// attention is far from uniform (a wrong mask, position or head mapping then
// shows in the logits), norm weights 1 + noise so each norm's weight matters.
static void init_spread(Params *p, uint64_t seed) {
    params_init_random(p, seed);
    Rng r;
    rng_init(&r, seed + 1000);
    for (int i = 0; i < p->n_tensors; i++) {
        const TensorDesc *d = &p->t[i];
        float *x = p->data + d->offset;
        for (size_t j = 0; j < d->numel; j++) x[j] = d->is_norm ? 1.0f + 0.3f * rng_normal(&r) : x[j] * 5.0f;
    }
}

// Logits of gen_step at every position vs the rows of cpu_model_forward.
static void check_against_forward(const Config *cfg, const char *label, uint64_t seed) {
    Params p;
    REQUIRE(params_init(&p, cfg) == 0);
    init_spread(&p, seed);
    const int S = cfg->seq_len < 48 ? cfg->seq_len : 48, V = cfg->vocab;
    int *tokens = malloc(sizeof(int) * S);
    Rng r;
    rng_init(&r, seed);
    for (int t = 0; t < S; t++) tokens[t] = (int)rng_below(&r, V);
    CpuModel m;
    REQUIRE(cpu_model_init(&m, cfg, S) == 0);
    cpu_model_forward(&m, &p, tokens, NULL);
    Generator g;
    REQUIRE(gen_init(&g, &p, S) == 0);
    double worst = 0;
    int worst_t = -1;
    for (int t = 0; t < S; t++) {
        const float *lg = gen_step(&g, tokens[t], t);
        REQUIRE(lg != NULL);
        double e = test_rel_err(lg, m.logits + (size_t)t * V, V);
        if (e > worst) worst = e, worst_t = t;
    }
    CHECKF(worst <= 1e-4, "%s: gen_step logits vs forward rows: worst relative error %.3g at position %d", label, worst,
           worst_t);
    // the logits are not trivially flat (the comparison would prove little)
    float lo = m.logits[(size_t)(S - 1) * V], hi = lo;
    for (int v = 0; v < V; v++) {
        float x = m.logits[(size_t)(S - 1) * V + v];
        lo = x < lo ? x : lo, hi = x > hi ? x : hi;
    }
    CHECKF(hi - lo > 1.0f, "%s: logit range %.3g too flat for a meaningful test", label, hi - lo);
    gen_free(&g);
    cpu_model_free(&m);
    free(tokens);
    params_free(&p);
}

TEST(gen_matches_forward_presets) {
    const char *names[] = {"tiny-mha", "tiny-gqa", "tiny-qwen3"};
    for (int i = 0; i < 3; i++) {
        Config c;
        REQUIRE(config_preset(&c, names[i]) == 0);
        check_against_forward(&c, names[i], 11 + i);
    }
}

TEST(gen_matches_forward_untied_res_scale) {
    // the variants the presets do not cover: separate classifier, scaled residuals,
    // QK-norm with interleaved RoPE, rotate-half without QK-norm
    Config c;
    REQUIRE(config_preset(&c, "tiny-gqa") == 0);
    c.tied = 0;
    c.res_scale = 0.6f;
    check_against_forward(&c, "tiny-gqa untied res_scale 0.6", 21);
    REQUIRE(config_preset(&c, "tiny-qwen3") == 0);
    c.rope_layout = ROPE_INTERLEAVED;
    c.tied = 0;
    check_against_forward(&c, "tiny-qwen3 interleaved untied", 22);
    REQUIRE(config_preset(&c, "tiny-mha") == 0);
    c.rope_layout = ROPE_HALF;
    c.n_kv_heads = 1;
    check_against_forward(&c, "tiny-mha rotate-half MQA", 23);
}

TEST(gen_rejects_out_of_range) {
    Config c;
    REQUIRE(config_preset(&c, "tiny-gqa") == 0);
    Params p;
    REQUIRE(params_init(&p, &c) == 0);
    Generator g;
    CHECK(gen_init(&g, &p, c.seq_len + 1) != 0);
    REQUIRE(gen_init(&g, &p, 8) == 0);
    CHECK(gen_step(&g, c.vocab, 0) == NULL);
    CHECK(gen_step(&g, -1, 0) == NULL);
    CHECK(gen_step(&g, 0, 8) == NULL);
    CHECKF(strstr(err_msg(), "position 8") != NULL, "%s", err_msg());
    CHECK(gen_step(&g, 0, 7) != NULL);
    gen_free(&g);
    params_free(&p);
}

// --- sampler --------------------------------------------------------------------------------

TEST(sampler_rng_is_run_c_xorshift) {
    // run.c: rng_state = seed, random_u32 = xorshift64* >> 32. Values from an
    // independent python3 evaluation of that recurrence for seed 133742.
    Sampler s;
    REQUIRE(sampler_init(&s, 4, 1.0f, 0.9f, 133742) == 0);
    CHECK(rng_u32(&s.rng) == 3033531262u);
    CHECK(rng_u32(&s.rng) == 2674377904u);
    CHECK(rng_u32(&s.rng) == 2312864567u);
    sampler_free(&s);
}

TEST(sampler_argmax_multinomial_topp) {
    const int V = 6;
    const float logits[6] = {0.0f, 2.0f, 1.0f, 3.0f, -1.0f, 3.0f};
    Sampler s;
    // greedy: the first of the maxima
    REQUIRE(sampler_init(&s, V, 0.0f, 0.9f, 1) == 0);
    CHECK(sampler_sample(&s, logits) == 3);
    sampler_free(&s);

    // multinomial: frequencies follow softmax(logits / T)
    const float T = 0.7f;
    double p[6], z = 0;
    for (int i = 0; i < V; i++) z += p[i] = exp(logits[i] / T);
    REQUIRE(sampler_init(&s, V, T, 1.0f, 7) == 0);
    int count[6] = {0};
    const int N = 200000;
    for (int n = 0; n < N; n++) count[sampler_sample(&s, logits)]++;
    for (int i = 0; i < V; i++) {
        double want = p[i] / z, got = (double)count[i] / N;
        CHECKF(fabs(got - want) < 4 * sqrt(want * (1 - want) / N) + 1e-4, "multinomial token %d: %.4f vs %.4f", i, got,
               want);
    }
    sampler_free(&s);

    // top-p 0.6 at T=1: probs sorted 3,5 (0.354 each), 1 (0.130), ... -> nucleus {3, 5}
    // (0.354 < 0.6 <= 0.708); each is then drawn with probability 1/2.
    REQUIRE(sampler_init(&s, V, 1.0f, 0.6f, 9) == 0);
    int c3 = 0, c5 = 0, other = 0;
    for (int n = 0; n < 20000; n++) {
        int k = sampler_sample(&s, logits);
        c3 += k == 3, c5 += k == 5, other += k != 3 && k != 5;
    }
    CHECKF(other == 0 && abs(c3 - c5) < 600, "top-p: %d, %d, outside the nucleus %d", c3, c5, other);
    sampler_free(&s);

    // same seed, same draws; the logits are left untouched
    float copy[6];
    memcpy(copy, logits, sizeof copy);
    Sampler a, b;
    REQUIRE(sampler_init(&a, V, 1.0f, 0.9f, 42) == 0);
    REQUIRE(sampler_init(&b, V, 1.0f, 0.9f, 42) == 0);
    int same = 1;
    for (int n = 0; n < 100; n++) same &= sampler_sample(&a, copy) == sampler_sample(&b, copy);
    CHECK(same);
    CHECK(memcmp(copy, logits, sizeof copy) == 0);
    sampler_free(&a);
    sampler_free(&b);

    // degenerate: a flat distribution with a tiny top-p keeps nothing above run.c's
    // cutoff (run.c would read probindex[-1]); a one-token vocab
    const float flat[2] = {0.0f, 0.0f};
    REQUIRE(sampler_init(&s, 2, 1.0f, 0.01f, 3) == 0);
    int k = sampler_sample(&s, flat);
    CHECK(k == 0 || k == 1);
    sampler_free(&s);
    REQUIRE(sampler_init(&s, 1, 1.0f, 0.5f, 3) == 0);
    CHECK(sampler_sample(&s, flat) == 0);
    sampler_free(&s);
}

// --- anetrain sample on stories260K -----------------------------------------------------------

// Both texts: karpathy/llama2.c doc/stories260K.md, the outputs of
//   ./run stories260K/stories260K.bin -z stories260K/tok512.bin -t 0.0
//   ./run stories260K/stories260K.bin -z stories260K/tok512.bin -t 1.0 -p 0.9 -s 133742
// (run.c prints a final "\n" after the generated text, as we do).
static const char *GREEDY_260K =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a "
    "big, red ball. She wanted to play with it, but it was too high.\n"
    "Lily's mom said, \"Lily, let's go to the park.\" Lily was sad and didn't know what to do. She said, \"I want to "
    "play with your ball, but I can't find it.\"\n"
    "Lily was sad and didn't know what to do. She said, \"I'm sorry, Lily. I didn't know what to do.\"\n"
    "Lily didn't want to help her mom, so she said, \"I'm sorry, mom. I didn't know what to do.\" Her mom said, "
    "\"Don't worry, Lily. We can help you.\n";

static const char *SEEDED_260K =
    "Once upon a time, there was a little boy named Timmy. Timmy loved to play with his toys and eat sandwiches. One "
    "day, Timmy's mom told him it was time to rest for a while. Timmy's friend Billy came over and took him a down.\n"
    "Timmy's mom saw that Timmy was sad, but Timmy said, \"I didn't understand what is it! We need to find some "
    "leafs.\" Timmy thought about it and took a deep breath on a spoon. He hoped it was important to be kind and "
    "continued to find its image next time.\n"
    "After they finished getting, Timmy's dad came up to his house and promised to help Timmy.\n";

// Runs `anetrain sample` on stories260K with extra flags; stdout only (stderr dropped).
static int run_sample(const char *flags, char **out) {
    const char *model = test_data("stories260K/stories260K.bin");
    const char *tok = test_data("stories260K/tok512.bin");
    if (!model || !tok) return -1;
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s sample --model %s --tokenizer %s %s 2>/dev/null", test_bin(), model, tok, flags);
    return test_run(cmd, out);
}

static void check_text(const char *got, const char *want, const char *label) {
    int ok = got && !strcmp(got, want);
    if (!ok && got) {
        size_t i = 0;
        while (got[i] && got[i] == want[i]) i++;
        fprintf(stderr, "  %s: differs at byte %zu\n  got:  %.80s\n  want: %.80s\n", label, i, got + i, want + i);
    }
    CHECKF(ok, "%s: output is not the published llama2.c sample", label);
}

TEST(sample_cli_stories260k_greedy) {
    char *out = NULL;
    int rc = run_sample("--temperature 0", &out);
    if (rc == -1) return;
    CHECKF(rc == 0, "exit %d", rc);
    check_text(out, GREEDY_260K, "greedy");
    free(out);
}

TEST(sample_cli_stories260k_seeded) {
    char *out = NULL;
    int rc = run_sample("-t 1.0 -p 0.9 -s 133742", &out);
    if (rc == -1) return;
    CHECKF(rc == 0, "exit %d", rc);
    check_text(out, SEEDED_260K, "seeded -t 1.0 -p 0.9 -s 133742");
    free(out);
}

TEST(sample_cli_prompt_steps_and_speed_line) {
    const char *model = test_data("stories260K/stories260K.bin");
    const char *tok = test_data("stories260K/tok512.bin");
    if (!model || !tok) return;
    char *out = NULL;
    // the prompt is echoed and greedy continues the published story from it
    int rc = run_sample("-t 0 --prompt 'Once upon a time, there was a little girl'", &out);
    CHECKF(rc == 0, "exit %d", rc);
    CHECK(out && !strcmp(out, GREEDY_260K));
    free(out);
    // --steps N runs N positions, each printing the token it predicts: 6 pieces
    // " Once" " upon" " a" " time" "," " there" (the first one loses its space after BOS)
    rc = run_sample("-t 0 -n 6", &out);
    CHECKF(rc == 0 && out && !strcmp(out, "Once upon a time, there\n"), "exit %d, output '%s'", rc, out ? out : "");
    free(out);
    // --steps beyond seq_len is capped, not an error; stderr ends with the speed line
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s sample -m %s -z %s -t 0 -n 100000 2>&1 >/dev/null", test_bin(), model, tok);
    rc = test_run(cmd, &out);
    CHECKF(rc == 0 && out && !strncmp(out, "achieved tok/s: ", 16), "exit %d, stderr '%s'", rc, out ? out : "");
    free(out);
}

TEST(sample_cli_bad_input) {
    const char *model = test_data("stories260K/stories260K.bin");
    const char *tok = test_data("stories260K/tok512.bin");
    if (!model || !tok) return;
    char cmd[2048], *out = NULL;
    // missing tokenizer file: one line naming it, exit 1
    snprintf(cmd, sizeof cmd, "%s sample -m %s -z /nonexistent/tok512.bin", test_bin(), model);
    int rc = test_run(cmd, &out);
    CHECKF(rc == 1 && out && strstr(out, "/nonexistent/tok512.bin") && strchr(out, '\n') == out + strlen(out) - 1,
           "exit %d, output '%s'", rc, out ? out : "");
    free(out);
    // a tokenizer with fewer entries than the model's vocab (first 400 of 512)
    char *bytes = NULL;
    size_t size = 0;
    REQUIRE(io_read_all(tok, &bytes, &size) == 0);
    size_t off = 4;
    for (int i = 0; i < 400; i++) off += 8 + io_le32((const uint8_t *)bytes + off + 4);
    char short_tok[600];
    snprintf(short_tok, sizeof short_tok, "%s/tok400.bin", test_tmpdir());
    FILE *f = fopen(short_tok, "wb");
    REQUIRE(f != NULL);
    fwrite(bytes, 1, off, f);
    fclose(f);
    free(bytes);
    snprintf(cmd, sizeof cmd, "%s sample -m %s -z %s", test_bin(), model, short_tok);
    rc = test_run(cmd, &out);
    CHECKF(rc == 1 && out && strstr(out, short_tok) && strstr(out, "expected 512") && strstr(out, "found 400"),
           "exit %d, output '%s'", rc, out ? out : "");
    free(out);
    // a missing model file
    snprintf(cmd, sizeof cmd, "%s sample -m /nonexistent/model.bin -z %s", test_bin(), tok);
    rc = test_run(cmd, &out);
    CHECKF(rc == 1 && out && strstr(out, "/nonexistent/model.bin"), "exit %d, output '%s'", rc, out ? out : "");
    free(out);
    // invalid UTF-8 in the prompt: byte-fallback tokens, no crash
    snprintf(cmd, sizeof cmd, "%s sample -m %s -z %s -t 0 -n 40 -i \"$(printf '\\377\\376 ab\\303\\200\\200 \\360')\"",
             test_bin(), model, tok);
    rc = test_run(cmd, &out);
    CHECKF(rc == 0 && out && strstr(out, "achieved tok/s"), "exit %d, output '%s'", rc, out ? out : "");
    free(out);
    // bad flag values are usage errors
    snprintf(cmd, sizeof cmd, "%s sample -m %s -z %s -t -1", test_bin(), model, tok);
    CHECK(test_run(cmd, NULL) == 2);
    snprintf(cmd, sizeof cmd, "%s sample -m %s -z %s -p 1.5", test_bin(), model, tok);
    CHECK(test_run(cmd, NULL) == 2);
    snprintf(cmd, sizeof cmd, "%s sample -m %s", test_bin(), model);
    CHECK(test_run(cmd, NULL) == 2);
}

// --- generation through device kernels (infer/generate_device.h) ---------------------------------

// `sample --device sim` prints the published llama2.c greedy sample of
// stories260K too: the device's fp16 never flips an argmax over the story.
TEST(sample_cli_stories260k_greedy_on_sim) {
    char *out = NULL;
    int rc = run_sample("--temperature 0 --device sim", &out);
    if (rc == -1) return;
    CHECKF(rc == 0, "exit %d", rc);
    check_text(out, GREEDY_260K, "greedy on sim");
    free(out);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "%s sample --model m --tokenizer t --device tpu 2>&1", test_bin());
    out = NULL;
    CHECK(test_run(cmd, &out) == 2 && out && strstr(out, "--device 'tpu': expected cpu or a device"));
    free(out);
}

// The logits of every position, fed the same tokens, against the CPU's.
// Bound: each device product rounds its input, its weights and its output to
// fp16 (u = 2^-11 each; the RMSNorms inside add one more rounding), so a
// product is off by at most ~5u of the largest value it involves. A position
// passes 3 products per layer and 2 at the head, and the residual stream (fp32,
// on the CPU) adds their errors up: (3L + 2)·5u of the largest logit.
static void compare_device_logits(const Params *p, int positions, const char *label) {
    Generator cpu, dev;
    GenDevice *gd = NULL;
    REQUIRE(gen_init(&cpu, p, positions) == 0 && gen_init(&dev, p, positions) == 0);
    REQUIRE(gen_device_init(&gd, p, "sim", 0) == 0);
    dev.dev = gd;
    const double u = 1.0 / 2048, bound = (3.0 * p->cfg.n_layers + 2) * 5 * u;
    double worst = 0;
    int token = 1, flips = 0;
    for (int pos = 0; pos < positions; pos++) {
        const float *a = gen_step(&cpu, token, pos), *b = gen_step(&dev, token, pos);
        if (!CHECKF(a && b, "%s position %d: %s", label, pos, err_msg())) break;
        double mx = 0, d = 0;
        int am = 0, bm = 0;
        for (int i = 0; i < p->cfg.vocab; i++) {
            mx = fmax(mx, fabs(a[i]));
            d = fmax(d, fabs(a[i] - b[i]));
            if (a[i] > a[am]) am = i;
            if (b[i] > b[bm]) bm = i;
        }
        worst = fmax(worst, d / mx);
        flips += am != bm;
        token = am;  // both follow the CPU's greedy path
    }
    fprintf(stderr, "  %s on sim: worst logit error %.2e of the largest (bound %.2e), %d argmax flips in %d\n", label,
            worst, bound, flips, positions);
    CHECKF(worst <= bound, "%s: logits off by %.3g of the largest, bound %.3g", label, worst, bound);
    int kernels, n_chunks, rows;
    long long evals;
    gen_device_counts(gd, &kernels, &evals);
    mil_vocab_chunks(p->cfg.vocab, &n_chunks, &rows);
    CHECKF(kernels == 3 * p->cfg.n_layers + 1 + n_chunks, "%s: %d kernels compiled, want %d (one set)", label, kernels,
           3 * p->cfg.n_layers + 1 + n_chunks);
    gen_free(&cpu), gen_free(&dev);
    gen_device_free(gd);
}

TEST(gen_device_logits_match_cpu_within_fp16) {
    const char *path = test_data("stories260K/stories260K.bin");
    if (path) {
        Params p;
        REQUIRE(model_load(&p, path) == 0);
        compare_device_logits(&p, 256, "stories260K");
        params_free(&p);
    }
    // GQA (R = 2), QK-norm, rotate-half RoPE and a vocabulary of 5 classifier chunks
    Config c;
    REQUIRE(config_preset(&c, "qwen3-tiny") == 0);
    Params q;
    REQUIRE(params_init(&q, &c) == 0);
    params_init_random(&q, 7);
    compare_device_logits(&q, 24, "qwen3-tiny (random weights)");
    params_free(&q);
}
