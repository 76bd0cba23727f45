// The trainer's loop and its edges: trainer_run() with only the defaults, a
// pipeline failure, evaluation counts and the best-checkpoint hard link,
// --steps 0, flag validation, updates that would overflow the weights
// (optim_update_finite), the checkpoint directory and its lock, and SIGINT
// during a long evaluation.
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/err.h"
#include "core/io.h"
#include "core/rng.h"
#include "core/timer.h"
#include "data/dataset.h"
#include "model/config.h"
#include "model/params.h"
#include "test.h"
#include "train/checkpoint.h"
#include "train/optim.h"
#include "train/trainer.h"

static char *tmp_path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/tr-%s", test_tmpdir(), name);
    return buf;
}

// ckpt_read_header's Config is required; most checks only need the state.
static int read_state(const char *path, TrainState *st) {
    Config c;
    return ckpt_read_header(path, &c, st, NULL);
}


static int count_lines(const char *s) {
    int n = 0;
    for (; s && *s; s++) n += *s == '\n';
    return n;
}

static int count_substr(const char *s, const char *what) {
    int n = 0;
    for (; s && (s = strstr(s, what)); s++) n++;
    return n;
}

// A line of out that starts with "step ".
static int has_step_line(const char *out) {
    if (!out) return 0;
    if (!strncmp(out, "step ", 5)) return 1;
    return strstr(out, "\nstep ") != NULL;
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

// Starts `anetrain ARGS...` (NULL-terminated) with stdout and stderr to out_path.
static pid_t spawn(const char *out_path, ...) {
    const char *argv[64];
    int n = 0;
    argv[n++] = test_bin();
    va_list ap;
    va_start(ap, out_path);
    for (const char *a; n < 63 && (a = va_arg(ap, const char *));) argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) dup2(fd, 1), dup2(fd, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

// Waits up to ms for pid; returns its exit status (128+signal if killed), or
// -1 if it is still running (then it is killed with SIGKILL and reaped).
static int wait_bounded(pid_t pid, int ms) {
    int st;
    for (int waited = 0;; waited += 20) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (r < 0) return -2;
        if (waited >= ms) break;
        sleep_ms(20);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

static int file_contains(const char *path, const char *what) {
    char *txt = NULL;
    if (io_read_all(path, &txt, NULL) != 0) return 0;
    int yes = strstr(txt, what) != NULL;
    free(txt);
    return yes;
}

// --- trainer_run() from the defaults ------------------------------------------------------

// Runs trainer_run(o) with the working directory dir and stdout in dir/stdout.txt.
static int run_in_dir(const char *dir, const TrainOptions *o, char **printed) {
    char cwd[4096], out_path[4200];
    if (!getcwd(cwd, sizeof cwd)) return -100;
    mkdir(dir, 0755);
    snprintf(out_path, sizeof out_path, "%s/stdout.txt", dir);
    fflush(stdout);
    const int saved = dup(STDOUT_FILENO);
    const int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (saved < 0 || fd < 0 || chdir(dir) != 0) return -100;
    dup2(fd, STDOUT_FILENO);
    close(fd);
    int rc = trainer_run(o);
    if (rc != 0) fprintf(stderr, "    trainer_run: %s\n", err_msg());
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    if (chdir(cwd) != 0) return -101;
    if (printed) io_read_all(out_path, printed, NULL);
    return rc;
}

// trainer_defaults() is a complete set of options: changing only data, steps,
// out_dir and ckpt (or not even ckpt) gives a run that works, prints its
// report and writes its checkpoint.
TEST(trainer_run_from_defaults) {
    char dir[600], ck[700], out_dir[700], *printed = NULL;
    tmp_path(dir, sizeof dir, "defaults-a");
    snprintf(ck, sizeof ck, "%s/a.bin", dir);
    snprintf(out_dir, sizeof out_dir, "%s/out", dir);
    TrainOptions o;
    trainer_defaults(&o);
    o.data = test_pattern_tokens(256);
    o.steps = 2;
    o.out_dir = out_dir;
    o.ckpt = ck;
    int rc = run_in_dir(dir, &o, &printed);
    CHECKF(rc == 0, "trainer_run with the defaults: rc %d", rc);
    CHECKF(printed && strstr(printed, "Efficiency Report") && strstr(printed, "step 2/2"), "printed: %.2000s",
           printed);
    free(printed);
    TrainState st;
    CHECKF(read_state(ck, &st) == 0 && st.step == 2, "checkpoint %s: %s", ck, err_msg());

    // ckpt (and out_dir) left at their defaults: runs/ckpt.bin in the working directory
    tmp_path(dir, sizeof dir, "defaults-b");
    trainer_defaults(&o);
    o.data = test_pattern_tokens(256);
    o.steps = 2;
    printed = NULL;
    rc = run_in_dir(dir, &o, &printed);
    CHECKF(rc == 0, "trainer_run with the default --ckpt: rc %d", rc);
    free(printed);
    snprintf(ck, sizeof ck, "%s/runs/ckpt.bin", dir);
    CHECKF(read_state(ck, &st) == 0 && st.step == 2, "default checkpoint %s: %s", ck, err_msg());
    char lock[800];
    snprintf(lock, sizeof lock, "%s.lock", ck);
    CHECKF(access(lock, F_OK) != 0, "%s left behind after the run", lock);
}

// --- a pipeline failure is a failure -------------------------------------------------------

static int fake_step(Pipeline *pl, const Params *p, const int *tokens, const int *targets, float *grads,
                     float loss_scale, float *loss) {
    (void)pl, (void)p, (void)tokens, (void)targets, (void)grads, (void)loss_scale;
    *loss = NAN;  // whatever it says about the loss, the status is what counts
    return err_set("fake device failure");
}

static int fake_eval(Pipeline *pl, const Params *p, const int *tokens, const int *targets, float *loss) {
    (void)pl, (void)p, (void)tokens, (void)targets;
    *loss = NAN;
    return err_set("fake device failure in eval");
}

TEST(trainer_pipeline_failure_is_not_a_skip) {
    char ck[600];
    TrainOptions o;
    trainer_defaults(&o);
    o.model = "tiny-mha";
    o.data = test_pattern_tokens(256);
    o.ckpt = tmp_path(ck, sizeof ck, "pipefail.bin");
    o.steps = 4;
    o.accum = 1;
    o.seq = 32;
    o.quiet = 1;
    Trainer *t = calloc(1, sizeof *t);
    REQUIRE(t);
    if (trainer_init(t, &o) != 0) {
        CHECKF(0, "trainer_init: %s", err_msg());
        trainer_free(t);
        free(t);
        return;
    }
    UpdateResult r;
    REQUIRE(trainer_update(t, &r) == 0 && r.applied);  // the real pipeline works
    t->pl.step = fake_step;
    err_clear();
    const long long step = t->st.step, skipped = t->st.skipped;
    int rc = trainer_update(t, &r);
    CHECKF(rc == -1, "trainer_update after a pipeline failure returned %d", rc);
    CHECKF(strstr(err_msg(), "fake device failure") && !strstr(err_msg(), "lower --lr"), "err_msg: %s", err_msg());
    CHECKF(t->st.step == step && t->st.skipped == skipped, "the failure was counted as an update (step %lld->%lld, "
           "skipped %lld->%lld)", step, (long long)t->st.step, skipped, (long long)t->st.skipped);
    // evaluation: the same
    t->pl.eval = fake_eval;
    float loss = 0;
    err_clear();
    rc = trainer_evaluate(t, &loss);
    CHECKF(rc == -1 && strstr(err_msg(), "fake device failure in eval"), "trainer_evaluate: rc %d, %s", rc,
           err_msg());
    trainer_free(t);
    free(t);
}

// --- evaluation count and the best checkpoint --------------------------------------------------

static void eval_count(long long steps, int every, int want) {
    char ck[600], best[600], log[600], name[64], *out = NULL;
    snprintf(name, sizeof name, "evals-%lld-%d.bin", steps, every);
    tmp_path(ck, sizeof ck, name);
    snprintf(best, sizeof best, "%.*s.best.bin", (int)(strlen(ck) - 4), ck);
    snprintf(log, sizeof log, "%s.jsonl", ck);
    int rc = test_runf(&out,
                 "%s train --model tiny-mha --data %s --steps %lld --accum 1 --seq 32 --lr 3e-3 --warmup 1 "
                 "--eval-every %d --eval-windows 4 --ckpt %s --log %s",
                 test_bin(), test_pattern_tokens(256), steps, every, ck, log);
    CHECKF(rc == 0, "rc %d: %s", rc, out);
    free(out);
    char *txt = NULL;
    REQUIRE(io_read_all(log, &txt, NULL) == 0 && txt);
    const int evals = count_substr(txt, "\"type\":\"eval\"");
    CHECKF(evals == want, "%lld updates with --eval-every %d: %d eval records, want %d", steps, every, evals, want);
    // the final evaluation improves (the pattern is learned fast): best and latest are one file
    const char *last_eval = NULL;
    for (const char *s = txt; (s = strstr(s, "\"type\":\"eval\"")); s++) last_eval = s;
    const int final_best = last_eval && !strncmp(strstr(last_eval, "\"best\":"), "\"best\":true", 11);
    CHECKF(final_best, "the final evaluation did not improve; the link check needs it to");
    free(txt);
    struct stat a, b;
    REQUIRE(stat(ck, &a) == 0 && stat(best, &b) == 0);
    if (final_best)
        CHECKF(a.st_ino == b.st_ino && a.st_dev == b.st_dev && a.st_nlink == 2,
               "%s and %s: inodes %llu and %llu, %llu links: a copy, not a hard link", ck, best,
               (unsigned long long)a.st_ino, (unsigned long long)b.st_ino, (unsigned long long)a.st_nlink);
}

TEST(trainer_no_double_eval_and_best_is_a_link) {
    eval_count(6, 2, 3);  // evaluations at 2, 4, 6: the final one is not repeated
    eval_count(7, 3, 3);  // at 3, 6 and the final 7
}

// --ckpt is a symlink to the real checkpoint (io.h: written through): the best
// checkpoint must still be a second name of the real file, not a copy of the
// symlink, which would make NAME.best.bin follow every later latest save.
TEST(trainer_best_link_with_symlinked_ckpt) {
    char dir[600], real[700], link[700], best[700], *out = NULL;
    tmp_path(dir, sizeof dir, "symlinked");
    mkdir(dir, 0755);
    snprintf(real, sizeof real, "%s/real.bin", dir);
    snprintf(link, sizeof link, "%s/link.bin", dir);
    snprintf(best, sizeof best, "%s/link.best.bin", dir);
    REQUIRE(test_runf(&out, "%s train --model tiny-mha --data %s --steps 1 --accum 1 --seq 32 --eval-every 0 --ckpt %s -q",
                test_bin(), test_pattern_tokens(256), real) == 0);
    free(out);
    REQUIRE(symlink("real.bin", link) == 0);
    int rc = test_runf(&out, "%s train --model tiny-mha --data %s --steps 4 --accum 1 --seq 32 --lr 3e-3 --warmup 1 "
                       "--eval-every 4 --eval-windows 2 --ckpt %s -q",
                 test_bin(), test_pattern_tokens(256), link);
    CHECKF(rc == 0, "rc %d: %s", rc, out);
    free(out);
    struct stat l, r, b;
    REQUIRE(lstat(link, &l) == 0 && stat(real, &r) == 0 && lstat(best, &b) == 0);
    CHECKF(S_ISLNK(l.st_mode), "the --ckpt symlink was replaced");
    CHECKF(S_ISREG(b.st_mode), "%s is not a regular file (a %s)", best, S_ISLNK(b.st_mode) ? "symlink" : "non-file");
    CHECKF(b.st_ino == r.st_ino, "%s is not a second name of %s", best, real);
}

// --- --steps 0 ---------------------------------------------------------------------------------

TEST(trainer_steps_zero_writes_initial_checkpoint) {
    char ck[600], *out = NULL;
    tmp_path(ck, sizeof ck, "zero.bin");
    int rc = test_runf(&out, "%s train --steps 0 --model tiny-mha --data %s --ckpt %s", test_bin(),
                 test_pattern_tokens(256), ck);
    CHECKF(rc == 0 && !has_step_line(out), "rc %d: %s", rc, out);
    free(out);
    TrainState st;
    Config c;
    CHECKF(ckpt_read_header(ck, &c, &st, NULL) == 0 && st.step == 0 && st.total_steps == 0 &&
               !strcmp(c.name, "tiny-mha"),
           "checkpoint after --steps 0: %s, step %lld", err_msg(), (long long)st.step);
}

// --- flag validation ------------------------------------------------------------------------------

TEST(trainer_bad_flag_values_exit_2_with_one_line) {
    char ck[600], *out = NULL;
    tmp_path(ck, sizeof ck, "flags-model.bin");
    REQUIRE(test_runf(&out, "%s train --steps 0 --model tiny-mha --data %s --ckpt %s -q", test_bin(),
                test_pattern_tokens(256), ck) == 0);
    free(out);
    const char *train_cases[][2] = {
        {"--lr inf", "--lr"},          {"--loss-scale inf", "--loss-scale"}, {"--threads -1", "--threads"},
        {"--res-scale -1", "--res-scale"}, {"--compile-budget -1", "--compile-budget"}, {"--lr nan", "--lr"},
        {"--lr -inf", "--lr"},         {"--clip nan", "--clip"},            {"--val-frac inf", "--val-frac"},
    };
    for (size_t i = 0; i < sizeof train_cases / sizeof train_cases[0]; i++) {
        int rc = test_runf(&out, "%s train --model tiny-mha --data %s --steps 1 --ckpt %s/tr-flags.bin %s", test_bin(),
                     test_pattern_tokens(256), test_tmpdir(), train_cases[i][0]);
        CHECKF(rc == 2 && count_lines(out) == 1 && strstr(out, train_cases[i][1]), "train %s: rc %d, %d lines: %s",
               train_cases[i][0], rc, count_lines(out), out);
        free(out);
    }
    int rc = test_runf(&out, "%s sample --model %s --tokenizer %s/no-tokenizer.bin --temperature inf", test_bin(), ck,
                 test_tmpdir());
    CHECKF(rc == 2 && count_lines(out) == 1 && strstr(out, "--temperature"), "sample --temperature inf: rc %d: %s", rc,
           out);
    free(out);
    // nothing was trained by a refused command
    char flags_ck[700];
    snprintf(flags_ck, sizeof flags_ck, "%s/tr-flags.bin", test_tmpdir());
    CHECK(access(flags_ck, F_OK) != 0);
}

// --- updates that would overflow the weights --------------------------------------------------------

static int all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

TEST(trainer_overflowing_update_is_skipped) {
    char ck[600], keep[600], *out = NULL;
    // a new run whose first update would overflow: every update skipped, then a stop
    tmp_path(ck, sizeof ck, "huge-lr.bin");
    int rc = test_runf(&out, "%s train --model tiny-mha --data %s --steps 10 --accum 1 --seq 32 --lr 3e38 --warmup 1 "
                       "--max-skips 3 --ckpt %s -q",
                 test_bin(), test_pattern_tokens(256), ck);
    CHECKF(rc == 1 && out && strstr(out, "non-finite") && strstr(out, "would make weights non-finite") &&
               !strstr(out, "skipped: non-finite loss"),
           "--lr 3e38: rc %d: %s", rc, out);
    free(out);
    if (access(ck, F_OK) == 0) {
        Params p;
        REQUIRE(ckpt_load(ck, &p, NULL, NULL, NULL) == 0);
        CHECK(all_finite(p.data, p.n));
        params_free(&p);
    }
    // a good run stopped at update 3, resumed with --lr 3e38 and saving after every update:
    // whatever is saved holds the update-3 weights
    tmp_path(ck, sizeof ck, "good-then-huge.bin");
    tmp_path(keep, sizeof keep, "good-then-huge.step3.bin");
    REQUIRE(test_runf(&out, "%s train --model tiny-mha --data %s --steps 6 --stop-after 3 --accum 1 --seq 32 --ckpt %s -q",
                test_bin(), test_pattern_tokens(256), ck) == 0);
    free(out);
    REQUIRE(test_runf(&out, "cp %s %s", ck, keep) == 0);
    free(out);
    rc = test_runf(&out, "%s train --resume --ckpt %s --lr 3e38 --max-skips 3 --save-every 1 -q", test_bin(), ck);
    CHECKF(rc == 1 && out && strstr(out, "non-finite"), "resume with --lr 3e38: rc %d: %s", rc, out);
    free(out);
    Params p, q;
    float *m, *v, *m0, *v0;
    TrainState st;
    REQUIRE(ckpt_load(ck, &p, &m, &v, &st) == 0);
    REQUIRE(ckpt_load(keep, &q, &m0, &v0, NULL) == 0);
    CHECKF(all_finite(p.data, p.n) && all_finite(m, p.n) && all_finite(v, p.n), "non-finite weights were saved");
    CHECKF(!memcmp(p.data, q.data, p.n * 4) && !memcmp(m, m0, p.n * 4) && !memcmp(v, v0, p.n * 4),
           "a skipped update changed the weights or moments");
    CHECKF(st.step >= 3 && st.adam_t == 3 && st.skipped >= 2, "step %lld adam_t %lld skipped %lld",
           (long long)st.step, (long long)st.adam_t, (long long)st.skipped);
    params_free(&p), params_free(&q);
    free(m), free(v), free(m0), free(v0);
}

static double log_uniform(Rng *r, double lo_exp, double hi_exp) {
    return pow(10.0, lo_exp + (hi_exp - lo_exp) * rng_f32(r));
}

// optim_update_finite against the truth (optim_adamw on a copy): ordinary
// updates pass, lr 3e38 does not, and the bound shortcut and the exact dry
// pass agree with the truth on random cases spanning both sides.
TEST(optim_update_finite_matches_the_real_update) {
    Config c;
    REQUIRE(config_preset(&c, "tiny-mha") == 0);
    Params p, cp;
    REQUIRE(params_init(&p, &c) == 0 && params_init(&cp, &c) == 0);
    const size_t n = p.n;
    float *g = malloc(n * 4), *m = malloc(n * 4), *v = malloc(n * 4), *m2 = malloc(n * 4), *v2 = malloc(n * 4);
    REQUIRE(g && m && v && m2 && v2);
    Rng r;
    rng_init(&r, 2024);
    TrainState st;
    memset(&st, 0, sizeof st);
    optim_defaults(&st);
    st.accum = 1;
    st.loss_scale = 1;

    // ordinary values
    params_init_random(&p, 3);
    for (size_t i = 0; i < n; i++) {
        g[i] = 0.01f * rng_normal(&r);
        m[i] = 0.001f * rng_normal(&r);
        v[i] = 1e-6f * rng_f32(&r);
    }
    float mul;
    double norm;
    OptimBounds b;
    REQUIRE(optim_prepare(&st, g, n, &mul, &norm) == 1);
    st.adam_t = 5;
    optim_bounds(&p, m, v, &b);
    CHECK(optim_update_finite(&p, g, m, v, &st, 1e-3f, mul, norm, &b) == 1);
    CHECK(optim_update_finite(&p, g, m, v, &st, 3e38f, mul, norm, &b) == 0);
    CHECK(optim_update_finite(&p, g, m, v, &st, 3e38f, mul, norm, NULL) == 0);
    memcpy(cp.data, p.data, n * 4), memcpy(m2, m, n * 4), memcpy(v2, v, n * 4);
    OptimBounds after;
    optim_adamw(&cp, g, m2, v2, &st, 1e-3f, mul, &after);
    CHECK(all_finite(cp.data, n) && all_finite(m2, n) && all_finite(v2, n));
    OptimBounds fresh;
    optim_bounds(&cp, m2, v2, &fresh);
    CHECKF(after.w == fresh.w && after.m == fresh.m && after.v == fresh.v,
           "optim_adamw's refreshed bounds (%g %g %g) differ from a fresh pass (%g %g %g)", after.w, after.m,
           after.v, fresh.w, fresh.m, fresh.v);

    // the shortcut decides ordinary updates without a pass: one huge gradient
    // element that the (given) norm does not account for is not seen by it,
    // while the exact pass catches it (it overflows v)
    const float saved = g[n / 2];
    g[n / 2] = 1e30f;
    CHECKF(optim_update_finite(&p, g, m, v, &st, 1e-3f, mul, norm, &b) == 1,
           "ordinary update not proven by the bounds alone (a pass over the block every update)");
    CHECK(optim_update_finite(&p, g, m, v, &st, 1e-3f, mul, norm, NULL) == 0);
    g[n / 2] = saved;

    // random cases on both sides of overflow
    int finite = 0, overflow = 0, disagree = 0;
    for (int k = 0; k < 48; k++) {
        const double ws = log_uniform(&r, -3, 37.5), gs = log_uniform(&r, -4, 14), ms = log_uniform(&r, -4, 30),
                     vs = log_uniform(&r, -6, 18);
        const float lr = (float)log_uniform(&r, -5, 38.4);
        for (size_t i = 0; i < n; i++) {
            p.data[i] = (float)(ws * rng_normal(&r));
            g[i] = (float)(gs * rng_normal(&r));
            m[i] = (float)(ms * rng_normal(&r));
            const double s = vs * rng_normal(&r);
            v[i] = (float)(s * s);
        }
        memset(&st, 0, sizeof st);
        optim_defaults(&st);
        st.accum = 1;
        st.loss_scale = 1;
        st.clip = k % 2 ? 1.0f : 0.0f;
        if (!optim_prepare(&st, g, n, &mul, &norm)) continue;  // a non-finite norm is another path
        st.adam_t = 1 + (int64_t)rng_below(&r, 2000);
        optim_bounds(&p, m, v, &b);
        if (!(b.w < 3.4e38f && b.m < 3.4e38f && b.v < 3.4e38f)) continue;
        memcpy(cp.data, p.data, n * 4), memcpy(m2, m, n * 4), memcpy(v2, v, n * 4);
        optim_adamw(&cp, g, m2, v2, &st, lr, mul, NULL);
        const int truth = all_finite(cp.data, n) && all_finite(m2, n) && all_finite(v2, n);
        const int with_bounds = optim_update_finite(&p, g, m, v, &st, lr, mul, norm, &b);
        const int dry = optim_update_finite(&p, g, m, v, &st, lr, mul, norm, NULL);
        if (with_bounds != truth || dry != truth) {
            if (disagree++ < 4)
                CHECKF(0, "case %d (w %g g %g m %g v %g lr %g t %lld): real update finite %d, with bounds %d, dry %d",
                       k, ws, gs, ms, vs * vs, lr, (long long)st.adam_t, truth, with_bounds, dry);
        }
        truth ? finite++ : overflow++;
    }
    CHECKF(finite >= 5 && overflow >= 5, "random cases not on both sides: %d finite, %d overflowing", finite, overflow);
    params_free(&p), params_free(&cp);
    free(g), free(m), free(v), free(m2), free(v2);
}

// --- the checkpoint's directory and lock --------------------------------------------------------------

TEST(trainer_ckpt_directory_created_or_refused) {
    char dir[600], ck[700], file[600], *out = NULL;
    tmp_path(dir, sizeof dir, "missing-dir");
    snprintf(ck, sizeof ck, "%s/sub/c.bin", dir);
    int rc = test_runf(&out, "%s train --model tiny-mha --data %s --steps 1 --accum 1 --seq 32 --ckpt %s -q", test_bin(),
                 test_pattern_tokens(256), ck);
    CHECKF(rc == 0 && access(ck, F_OK) == 0, "--ckpt in a missing directory: rc %d: %s", rc, out);
    free(out);
    // a regular file where a directory is needed: refused before any training
    tmp_path(file, sizeof file, "a-file");
    FILE *f = fopen(file, "w");
    REQUIRE(f);
    fputs("x", f);
    fclose(f);
    snprintf(ck, sizeof ck, "%s/c.bin", file);
    rc = test_runf(&out, "%s train --model tiny-mha --data %s --steps 3 --accum 1 --seq 32 --ckpt %s", test_bin(),
             test_pattern_tokens(256), ck);
    CHECKF(rc == 1 && out && strstr(out, file) && !has_step_line(out) && count_lines(out) == 1,
           "--ckpt under a regular file: rc %d: %s", rc, out);
    free(out);
}

// A --ckpt that can never be written (an existing directory) is refused
// before any training, not after the whole run at its first save.
TEST(trainer_unwritable_ckpt_refused_before_training) {
    char dir[600], *out = NULL;
    tmp_path(dir, sizeof dir, "ckpt-is-a-dir");
    mkdir(dir, 0755);
    int rc = test_runf(&out, "%s train --model tiny-mha --data %s --steps 3 --accum 1 --seq 32 --ckpt %s", test_bin(),
                 test_pattern_tokens(256), dir);
    CHECKF(rc == 1 && out && strstr(out, dir) && strstr(out, "directory") && !has_step_line(out),
           "--ckpt naming a directory: rc %d (step lines first: %d): %s", rc, has_step_line(out), out);
    free(out);
}

// Starts a long run on ck (output to out_path) and waits up to 10 s for its
// lock file; returns its pid (0 if the lock never appeared; then it is killed).
static pid_t start_holder(const char *ck, const char *out_path) {
    char lock[700];
    snprintf(lock, sizeof lock, "%s.lock", ck);
    pid_t pid = spawn(out_path, "train", "--model", "tiny-mha", "--data", test_pattern_tokens(256), "--steps",
                      "1000000", "--accum", "1", "--seq", "32", "--eval-every", "0", "--save-every", "0", "--ckpt", ck,
                      "-q", (const char *)NULL);
    if (pid <= 0) return 0;
    struct stat sb;
    for (int waited = 0; waited < 10000; waited += 20) {
        if (stat(lock, &sb) == 0 && sb.st_size > 0) return pid;
        sleep_ms(20);
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return 0;
}

// The lock guards the file written, not the name given: a run whose --ckpt is
// a symlink to a checkpoint in use (written through, io.h) is refused too.
TEST(trainer_ckpt_lock_follows_symlinks) {
    char ck[600], alias[600], outp[600], *out = NULL;
    tmp_path(ck, sizeof ck, "locked-real.bin");
    tmp_path(alias, sizeof alias, "locked-alias.bin");
    tmp_path(outp, sizeof outp, "locked-real.out");
    // the checkpoint must exist for a symlink to it to be written through
    REQUIRE(test_runf(&out, "%s train --model tiny-mha --data %s --steps 1 --accum 1 --seq 32 --eval-every 0 --ckpt %s -q",
                test_bin(), test_pattern_tokens(256), ck) == 0);
    free(out);
    unlink(alias);
    REQUIRE(symlink(ck, alias) == 0);
    pid_t pid = start_holder(ck, outp);
    CHECKF(pid > 0, "%s.lock did not appear within 10 s", ck);
    if (!pid) return;
    int rc = test_runf(&out, "%s train --model tiny-mha --data %s --steps 2 --accum 1 --seq 32 --eval-every 0 --ckpt %s -q",
                 test_bin(), test_pattern_tokens(256), alias);
    CHECKF(rc == 1 && out && strstr(out, "in use by another anetrain run"),
           "a run through a symlink to a checkpoint in use: rc %d: %s", rc, out);
    free(out);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

TEST(trainer_ckpt_lock_refuses_a_second_run) {
    char ck[600], lock[700], out1[600], pidtxt[32], *out = NULL;
    tmp_path(ck, sizeof ck, "locked.bin");
    snprintf(lock, sizeof lock, "%s.lock", ck);
    tmp_path(out1, sizeof out1, "locked.out");
    unlink(lock);
    pid_t pid = start_holder(ck, out1);
    CHECKF(pid > 0, "%s did not appear within 10 s", lock);
    if (!pid) return;
    int rc = test_runf(&out, "%s train --model tiny-mha --data %s --steps 1 --accum 1 --seq 32 --ckpt %s -q",
                 test_bin(), test_pattern_tokens(256), ck);
    snprintf(pidtxt, sizeof pidtxt, "(pid %ld)", (long)pid);
    CHECKF(rc == 1 && out && strstr(out, "in use by another anetrain run (pid") && strstr(out, pidtxt),
           "second run on a locked checkpoint: rc %d: %s", rc, out);
    free(out);
    // the refused run left the holder's lock file alone (else a third run could lock a new file)
    CHECKF(access(lock, F_OK) == 0, "the refused run removed the holder's lock file");
    rc = test_runf(&out, "%s train --model tiny-mha --data %s --steps 1 --accum 1 --seq 32 --ckpt %s -q", test_bin(),
             test_pattern_tokens(256), ck);
    CHECKF(rc == 1 && out && strstr(out, pidtxt), "third run while the holder lives: rc %d: %s", rc, out);
    free(out);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    // the dead run's lock file is stale: a new run takes it over
    CHECKF(access(lock, F_OK) == 0, "kill -9 removed the lock file?");
    rc = test_runf(&out, "%s train --model tiny-mha --data %s --steps 1 --accum 1 --seq 32 --ckpt %s -q", test_bin(),
             test_pattern_tokens(256), ck);
    CHECKF(rc == 0, "a run after kill -9 of the holder: rc %d: %s", rc, out);
    free(out);
    CHECKF(access(lock, F_OK) != 0, "the lock file was not removed at the end of the run");
}

// --- SIGINT during a long evaluation ------------------------------------------------------------------

TEST(trainer_sigint_during_eval_stops_promptly) {
    char val[600], ck[600], log[600], outp[600];
    tmp_path(val, sizeof val, "big-val.bin");
    tmp_path(ck, sizeof ck, "sigeval.bin");
    tmp_path(log, sizeof log, "sigeval.jsonl");
    tmp_path(outp, sizeof outp, "sigeval.out");
    // 2M tokens: ~31k windows of 64, tens of seconds for one full evaluation
    const size_t count = 2000000;
    uint32_t *ids = malloc(count * sizeof *ids);
    REQUIRE(ids);
    Rng r;
    rng_init(&r, 77);
    for (size_t i = 0; i < count; i++) ids[i] = rng_u32(&r) % 256;
    int wrote = tokens_write(val, ids, count, 256);
    free(ids);
    REQUIRE(wrote == 0);
    unlink(log);
    pid_t pid = spawn(outp, "train", "--model", "tiny-mha", "--seq", "64", "--accum", "1", "--data",
                      test_pattern_tokens(256), "--val-data", val, "--eval-every", "1", "--eval-windows", "0",
                      "--steps", "5", "--ckpt", ck, "--log", log, (const char *)NULL);
    REQUIRE(pid > 0);
    int started = 0;
    for (int waited = 0; waited < 20000 && !started; waited += 20) {
        char *txt = NULL;
        if (io_read_all(outp, &txt, NULL) == 0) started = has_step_line(txt);
        free(txt);
        if (!started) sleep_ms(20);
    }
    CHECKF(started, "no step line within 20 s");
    sleep_ms(500);
    const double t0 = time_ms();
    kill(pid, SIGINT);
    int rc = wait_bounded(pid, 5000);
    const double took = time_ms() - t0;
    CHECKF(rc == 0 && took < 3000, "after SIGINT during an evaluation: status %d after %.0f ms (-1: still running "
           "after 5 s, killed)", rc, took);
    char *txt = NULL;
    REQUIRE(io_read_all(log, &txt, NULL) == 0 && txt);
    const char *note = strstr(txt, "evaluation interrupted");
    CHECKF(note && strstr(txt, "\"type\":\"note\""), "no note about the interrupted evaluation: %.3000s", txt);
    const int logged_eval = strstr(txt, "\"type\":\"eval\"") != NULL;
    CHECKF(!logged_eval, "an eval record was logged: %.3000s", txt);
    CHECKF(note && strstr(note, "\"type\":\"checkpoint\""), "no checkpoint saved after the interruption");
    free(txt);
    TrainState st;
    CHECKF(read_state(ck, &st) == 0 && st.step >= 1 && st.step < 5, "saved at step %lld: %s",
           (long long)st.step, err_msg());
    CHECK(file_contains(outp, "signal received"));
}
