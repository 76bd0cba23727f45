// Data-parallel training (src/train/dist.h): the counter-based window order,
// and real `mpirun -np 2` runs against one process. Tests that need mpirun
// skip without it (or in a build without MPI), and fail when CI=true.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "data/dataset.h"
#include "test.h"
#include "train/checkpoint.h"
#include "train/dist.h"

// --- the window order ------------------------------------------------------------------

// Window i of the counter-based order is the i-th draw of the stream the
// sampler always used, so older runs and checkpoints see the same windows.
TEST(dist_window_order_is_the_original_stream) {
    TokenFile tf;
    REQUIRE(tokens_open(&tf, test_pattern_tokens(256), 256) == 0);
    Dataset ds;
    REQUIRE(dataset_init(&ds, &tf, 100, tf.count, 16, SAMPLE_RANDOM, 42) == 0);
    Rng stream;
    rng_init(&stream, 42);
    const size_t starts = tf.count - 100 - 16;
    int x[16], y[16], bad = 0;
    for (int i = 0; i < 300; i++) {
        const size_t start = 100 + (size_t)rng_below(&stream, starts);
        dataset_next(&ds, x, y);
        bad += x[0] != tokens_get(&tf, start) || y[15] != tokens_get(&tf, start + 16);
    }
    CHECKF(bad == 0, "%d of 300 windows differ from the stream's", bad);
    // the recorded state is the stream's, as checkpoints always held it
    uint64_t rng, cursor;
    dataset_state(&ds, &rng, &cursor);
    CHECK(rng == stream.s && cursor == 300);
    tokens_close(&tf);
}

// Ranks that skip each other's windows see exactly the windows of one
// process, for any N; a resumed sampler continues for any N; a stream the
// counter does not explain (an imported checkpoint) is continued as it is.
TEST(dist_ranks_share_one_window_sequence) {
    TokenFile tf;
    REQUIRE(tokens_open(&tf, test_pattern_tokens(256), 256) == 0);
    enum { W = 24, SEQ = 8 };
    int all[W][SEQ], x[SEQ], y[SEQ];
    Dataset one;
    REQUIRE(dataset_init(&one, &tf, 0, tf.count, SEQ, SAMPLE_RANDOM, 7) == 0);
    for (int i = 0; i < W; i++) dataset_next(&one, all[i], y);
    for (int n = 2; n <= 3; n++)
        for (int r = 0; r < n; r++) {
            Dataset ds;
            REQUIRE(dataset_init(&ds, &tf, 0, tf.count, SEQ, SAMPLE_RANDOM, 7) == 0);
            int bad = 0;
            for (int i = 0; i < W / n; i++) {
                dataset_skip(&ds, (uint64_t)r);
                dataset_next(&ds, x, y);
                dataset_skip(&ds, (uint64_t)(n - 1 - r));
                bad += memcmp(x, all[i * n + r], sizeof x) != 0;
            }
            CHECKF(bad == 0, "rank %d of %d: %d windows differ", r, n, bad);
        }
    // resume at window 10 from the recorded state, on a fresh sampler
    Dataset a, b;
    REQUIRE(dataset_init(&a, &tf, 0, tf.count, SEQ, SAMPLE_RANDOM, 7) == 0);
    dataset_skip(&a, 10);
    uint64_t rng, cursor;
    dataset_state(&a, &rng, &cursor);
    REQUIRE(dataset_init(&b, &tf, 0, tf.count, SEQ, SAMPLE_RANDOM, 7) == 0);
    dataset_restore(&b, rng, cursor);
    CHECK(!b.stream);
    dataset_next(&b, x, y);
    CHECK(memcmp(x, all[10], sizeof x) == 0);
    // a foreign stream state: its own draws, skips included
    Rng foreign;
    rng_init(&foreign, 12345);
    REQUIRE(dataset_init(&b, &tf, 0, tf.count, SEQ, SAMPLE_RANDOM, 7) == 0);
    dataset_restore(&b, foreign.s, 3);
    CHECK(b.stream);
    dataset_skip(&b, 1);
    dataset_next(&b, x, y);
    rng_below(&foreign, tf.count - SEQ);
    const size_t start = (size_t)rng_below(&foreign, tf.count - SEQ);
    CHECK(x[0] == tokens_get(&tf, start) && x[SEQ - 1] == tokens_get(&tf, start + SEQ - 1));
    CHECK(b.cursor == 5);
    tokens_close(&tf);
}

TEST(dist_outside_mpirun_is_one_process) {
    CHECK(dist_init(NULL, NULL) == 0);
    CHECK(dist_rank() == 0 && dist_size() == 1);
    float g[3] = {1, 2, 3};
    double d = 4;
    int stop = 5;
    CHECK(dist_sum_f32(g, 3) == 0 && dist_sum_f64(&d, 1) == 0 && dist_any(&stop) == 0);
    CHECK(g[0] == 1 && g[2] == 3 && d == 4 && stop == 1);
    CHECK(dist_barrier() == 0);
}

// --- mpirun ----------------------------------------------------------------------------

// The mpirun prefix, or NULL (skipped; a failure under CI=true).
static const char *mpirun(void) {
    static char cmd[256];
    const char *ci = getenv("CI");
    const int must = ci && !strcmp(ci, "true");
    const char *why = NULL;
#ifndef USE_MPI
    why = "built without MPI (apt-get install openmpi-bin libopenmpi-dev)";
#endif
    if (!why && system("command -v mpirun > /dev/null 2>&1") != 0) why = "no mpirun (apt-get install openmpi-bin)";
    if (why) {
        if (must) CHECKF(0, "%s, and CI=true", why);
        else test_skip(why);
        return NULL;
    }
    // as root (CI), on 2 cores, in containers without ptrace (vader's single copy);
    // in sanitizer builds, OpenMPI's and OpenBLAS's own allocations that they
    // never free would fail every rank at exit: leak checking is left to the
    // one-process tests
    snprintf(cmd, sizeof cmd,
             "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_vader_single_copy_mechanism=none "
             "ASAN_OPTIONS=detect_leaks=0 mpirun --oversubscribe -x ASAN_OPTIONS -np 2");
    return cmd;
}

// Step losses of a log (up to max), in order.
static int log_losses(const char *path, float *loss, int max) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f) && n < max) {
        const char *l = strstr(line, "\"loss\":");
        if (strstr(line, "\"type\":\"step\"") && l) loss[n++] = strtof(l + 7, NULL);
    }
    fclose(f);
    return n;
}

// Worst |a-b| over the weights and Adam moments of two checkpoints, and the step of each.
static double ckpt_diff(const char *a, const char *b, long long *step_a, long long *step_b) {
    Params pa, pb;
    float *ma, *va, *mb, *vb;
    TrainState sa, sb;
    if (ckpt_load(a, &pa, &ma, &va, &sa) != 0) return INFINITY;
    if (ckpt_load(b, &pb, &mb, &vb, &sb) != 0) {
        params_free(&pa);
        return INFINITY;
    }
    double worst = pa.n == pb.n ? 0 : INFINITY;
    for (size_t i = 0; i < pa.n && pa.n == pb.n; i++) {
        worst = fmax(worst, fabs((double)pa.data[i] - pb.data[i]));
        worst = fmax(worst, fabs((double)ma[i] - mb[i]));
    }
    *step_a = sa.step;
    *step_b = sb.step;
    params_free(&pa), params_free(&pb);
    free(ma), free(va), free(mb), free(vb);
    return worst;
}

// mpirun's prefix for n ranks whose reduce-scatter cuts segments into chunks
// of 16 floats (so shards of different sizes take different numbers of
// chunks), under a timeout: a ring out of step would wait forever.
static const char *mpirun_ring(int n) {
    static char cmd[512];
    const char *mp = mpirun(), *at = strstr(mp, "mpirun");
    snprintf(cmd, sizeof cmd, "ANETRAIN_RING_CHUNK=16 %.*stimeout 300 %.*s -np %d -x ANETRAIN_RING_CHUNK", (int)(at - mp),
             mp, (int)(strstr(mp, " -np") - at), at, n);
    return cmd;
}

// A tiny-mha run: prefix ("" or mpirun's), --accum, extra flags, checkpoint and log names.
static int train(const char *prefix, int accum, const char *extra, const char *ckpt, const char *log) {
    char *out = NULL;
    const char *dir = test_tmpdir();
    int rc = test_runf(&out,
                       "%s %s train --model tiny-mha --data %s --seq 32 --accum %d --lr 1e-3 --warmup 2 "
                       "--eval-every 5 --eval-windows 8 --save-every 0 --quiet --ckpt %s/%s --log %s/%s %s 2>&1",
                       prefix, test_bin(), test_pattern_tokens(256), accum, dir, ckpt, dir, log, extra);
    if (rc != 0) fprintf(stderr, "%s\n", out ? out : "");
    free(out);
    return rc;
}

// Tolerances (README "Several processes and machines"): the ranks add the
// same gradients in another order (rank 0's windows, rank 1's, then the two
// sums), which changes a float sum by a few ulps, ~1e-7 relative; AdamW's step
// is invariant to the gradient's scale, so the weights move apart by about
// that times lr per update. Measured over 10 updates of tiny-mha: losses
// 8.7e-8 relative, weights and moments 2.2e-7. The bounds are 10x and 50x
// that, and far below what a wrong window or a lost gradient does (the loss of
// the first update moves by ~1e-2, a weight by ~lr = 1e-3).
enum { STEPS = 10 };
static const double LOSS_RTOL = 1e-6, W_ATOL = 1e-5;

static void compare_runs(const char *one_log, const char *two_log, const char *one_ck, const char *two_ck,
                         int steps) {
    const char *dir = test_tmpdir();
    char a[512], b[512];
    float la[64], lb[64];
    snprintf(a, sizeof a, "%s/%s", dir, one_log);
    snprintf(b, sizeof b, "%s/%s", dir, two_log);
    const int na = log_losses(a, la, 64), nb = log_losses(b, lb, 64);
    CHECKF(na == nb && na == steps, "%d vs %d step records (want %d)", na, nb, steps);
    double worst = 0;
    for (int i = 0; i < na && i < nb; i++) worst = fmax(worst, fabs((double)la[i] - lb[i]) / fabs((double)la[i]));
    snprintf(a, sizeof a, "%s/%s", dir, one_ck);
    snprintf(b, sizeof b, "%s/%s", dir, two_ck);
    long long sa = -1, sb = -2;
    const double w = ckpt_diff(a, b, &sa, &sb);
    fprintf(stderr, "    %d updates: loss rel diff %.2e, weights/moments max |diff| %.2e\n", na, worst, w);
    CHECKF(worst <= LOSS_RTOL, "loss curves differ by %.3g relative > %g", worst, LOSS_RTOL);
    CHECKF(w <= W_ATOL, "weights or moments differ by %.3g > %g", w, W_ATOL);
    CHECKF(sa == sb, "checkpoints at updates %lld and %lld", sa, sb);
}

TEST(dist_mpi_two_ranks_equal_one_rank_double_accum) {
    const char *mp = mpirun();
    if (!mp) return;
    char steps[64];
    snprintf(steps, sizeof steps, "--steps %d", STEPS);
    REQUIRE(train("", 4, steps, "one.bin", "one.jsonl") == 0);
    REQUIRE(train(mp, 2, steps, "two.bin", "two.jsonl") == 0);
    compare_runs("one.jsonl", "two.jsonl", "one.bin", "two.bin", STEPS);
    // rank 0 alone wrote the log: one start record, with the per-rank note
    char *out = NULL;
    test_runf(&out, "grep -c '\"type\":\"start\"' %s/two.jsonl; grep -c '\"type\":\"world\"' %s/two.jsonl",
              test_tmpdir(), test_tmpdir());
    CHECKF(out && !strcmp(out, "1\n1\n"), "start records / per-rank notes: %s", out ? out : "");
    free(out);
}

TEST(dist_mpi_dynamic_sim_two_ranks_equal_one_rank) {
    const char *mp = mpirun();
    if (!mp) return;
    const char *f = "--steps 6 --pipeline dynamic --device sim";
    REQUIRE(train("", 2, f, "dyn1.bin", "dyn1.jsonl") == 0);
    REQUIRE(train(mp, 1, f, "dyn2.bin", "dyn2.jsonl") == 0);
    compare_runs("dyn1.jsonl", "dyn2.jsonl", "dyn1.bin", "dyn2.bin", 6);
    // ZeRO-1: each rank restages the all-gathered weights into its device
    char z[128];
    snprintf(z, sizeof z, "%s --zero 1", f);
    REQUIRE(train(mp, 1, z, "dyn3.bin", "dyn3.jsonl") == 0);
    compare_runs("dyn1.jsonl", "dyn3.jsonl", "dyn1.bin", "dyn3.bin", 6);
}

// The overlapped all-reduce (each layer's gradients summed by the
// communication thread while the backward goes on) against the sum after the
// backward: the same numbers, bit for bit (two ranks add the same two values
// either way), and the report says how much of the time was waited for.
TEST(dist_mpi_overlapped_allreduce_equals_the_sum_after) {
    const char *mp = mpirun();
    if (!mp) return;
    REQUIRE(train(mp, 2, "--steps 6 --comm-overlap on", "ov.bin", "ov.jsonl") == 0);
    REQUIRE(train(mp, 2, "--steps 6 --comm-overlap off", "nov.bin", "nov.jsonl") == 0);
    char a[600], b[600], *out = NULL;
    snprintf(a, sizeof a, "%s/ov.bin", test_tmpdir()), snprintf(b, sizeof b, "%s/nov.bin", test_tmpdir());
    CHECK(test_ckpt_bodies_equal(a, b));
    test_runf(&out, "grep -c '\"type\":\"world\",.*\"overlap\":true' %s/ov.jsonl", test_tmpdir());
    CHECKF(out && !strcmp(out, "1\n"), "overlap note: %s", out ? out : "");
    free(out);
}

// LoRA under mpirun: the adapters' gradients (per layer, summed as the
// backward finishes each layer) give the 1-rank run with twice the windows.
TEST(dist_mpi_lora_two_ranks_equal_one_rank) {
    const char *mp = mpirun();
    if (!mp) return;
    char base[600], flags[900];
    snprintf(base, sizeof base, "%s/lora-base.bin", test_tmpdir());
    REQUIRE(train("", 1, "--steps 0", "lora-base.bin", "lora-base.jsonl") == 0);
    snprintf(flags, sizeof flags, "--steps 6 --model %s --lora 4 --train-norms", base);
    REQUIRE(train("", 4, flags, "lo1.bin", "lo1.jsonl") == 0);
    REQUIRE(train(mp, 2, flags, "lo2.bin", "lo2.jsonl") == 0);
    compare_runs("lo1.jsonl", "lo2.jsonl", "lo1.bin", "lo2.bin", 6);
    // ZeRO-1 over 3 ranks: rank 4's 9472 adapter floats split 3152 + 3152 + 3168,
    // two shards of 197 chunks and one of 198 (a ring that let each rank count
    // its own chunks would wait forever here)
    snprintf(flags, sizeof flags, "--steps 6 --model %s --lora 4 --zero 1", base);
    REQUIRE(train("", 3, flags, "lo3.bin", "lo3.jsonl") == 0);
    REQUIRE(train(mpirun_ring(3), 1, flags, "lo4.bin", "lo4.jsonl") == 0);
    compare_runs("lo3.jsonl", "lo4.jsonl", "lo3.bin", "lo4.bin", 6);
}

// ZeRO-1: each rank keeps the moments of its half of the block, the
// gradients are reduce-scattered and the weights all-gathered. AdamW is
// element-wise, so only the gradient norm's summation order (the shards'
// sums of squares, then their sum) differs from the plain run. Its
// checkpoints hold every moment: a ZeRO-1 run resumed by one plain process,
// and a plain one resumed with --zero 1, continue the straight run.
TEST(dist_mpi_zero1_equals_plain) {
    const char *mp = mpirun();
    if (!mp) return;
    char f[128], half[128], halfz[160];
    snprintf(f, sizeof f, "--steps %d", STEPS);
    snprintf(half, sizeof half, "--steps %d --stop-after %d", STEPS, STEPS / 2);
    snprintf(halfz, sizeof halfz, "%s --zero 1", half);
    REQUIRE(train("", 4, f, "z-one.bin", "z-one.jsonl") == 0);
    REQUIRE(train(mp, 2, "--steps 10 --zero 1", "z-two.bin", "z-two.jsonl") == 0);
    compare_runs("z-one.jsonl", "z-two.jsonl", "z-one.bin", "z-two.bin", STEPS);
    char *out = NULL;
    test_runf(&out, "grep -c 'ZeRO-1: each rank keeps the Adam moments of its shard, 50' %s/z-two.jsonl", test_tmpdir());
    CHECKF(out && !strcmp(out, "1\n"), "ZeRO-1 note: %s", out ? out : "");
    free(out);
    REQUIRE(train(mp, 2, halfz, "z-a.bin", "z-a.jsonl") == 0);
    REQUIRE(train("", 4, "--resume", "z-a.bin", "z-a.jsonl") == 0);
    compare_runs("z-one.jsonl", "z-a.jsonl", "z-one.bin", "z-a.bin", STEPS);
    REQUIRE(train(mp, 2, half, "z-b.bin", "z-b.jsonl") == 0);
    REQUIRE(train(mp, 2, "--resume --zero 1", "z-b.bin", "z-b.jsonl") == 0);
    compare_runs("z-one.jsonl", "z-b.jsonl", "z-one.bin", "z-b.bin", STEPS);
    // three ranks: the ring passes each partial sum twice
    const char *three = mpirun_ring(3);
    REQUIRE(train("", 3, f, "z-one3.bin", "z-one3.jsonl") == 0);
    REQUIRE(train(three, 1, "--steps 10 --zero 1", "z-three.bin", "z-three.jsonl") == 0);
    compare_runs("z-one3.jsonl", "z-three.jsonl", "z-one3.bin", "z-three.bin", STEPS);
}

// The static pipelines under mpirun: 2 ranks equal 1 rank. mpirun's ranks
// cannot exec() themselves, so when the compile budget is spent the job saves
// and exits 3, and the same command with --resume continues it; the result is
// the uninterrupted run's.
TEST(dist_mpi_static_two_ranks_and_budget_stop) {
    const char *mp = mpirun();
    if (!mp) return;
    const char *f = "--steps 4 --pipeline static-ane --compile-budget 1000";
    REQUIRE(train("", 2, f, "st1.bin", "st1.jsonl") == 0);
    REQUIRE(train(mp, 1, f, "st2.bin", "st2.jsonl") == 0);
    compare_runs("st1.jsonl", "st2.jsonl", "st1.bin", "st2.bin", 4);
    // tiny-mha's static-ane: 2 kernels once and 16 per update; a budget of 60 holds three
    const char *g = "--steps 4 --pipeline static-ane --compile-budget 60";
    CHECK(train(mp, 1, g, "st3.bin", "st3.jsonl") == 3);
    TrainState st;
    Config c;
    char path[600];
    snprintf(path, sizeof path, "%s/st3.bin", test_tmpdir());
    CHECK(ckpt_read_header(path, &c, &st, NULL) == 0 && st.step == 3 && st.restarts == 1);
    REQUIRE(train(mp, 1, "--steps 4 --pipeline static-ane --compile-budget 60 --resume", "st3.bin", "st3.jsonl") == 0);
    compare_runs("st2.jsonl", "st3.jsonl", "st2.bin", "st3.bin", 4);
}

// 2 ranks then 1, and 1 then 2, continue the straight 1-rank run.
TEST(dist_mpi_resume_across_rank_counts) {
    const char *mp = mpirun();
    if (!mp) return;
    char f[128], half[128];
    snprintf(f, sizeof f, "--steps %d", STEPS);
    snprintf(half, sizeof half, "--steps %d --stop-after %d", STEPS, STEPS / 2);
    REQUIRE(train("", 4, f, "straight.bin", "straight.jsonl") == 0);
    REQUIRE(train(mp, 2, half, "a.bin", "a.jsonl") == 0);
    REQUIRE(train("", 4, "--resume", "a.bin", "a.jsonl") == 0);
    REQUIRE(train("", 4, half, "b.bin", "b.jsonl") == 0);
    REQUIRE(train(mp, 2, "--resume", "b.bin", "b.jsonl") == 0);
    compare_runs("straight.jsonl", "a.jsonl", "straight.bin", "a.bin", STEPS);
    compare_runs("straight.jsonl", "b.jsonl", "straight.bin", "b.bin", STEPS);
    // 3 ranks cannot share a 4-window update: refused with the reason
    char *out = NULL;
    int rc = test_runf(&out, "%s %s train --resume --ckpt %s/a.bin --steps %d 2>&1",
                       "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
                       "OMPI_MCA_btl_vader_single_copy_mechanism=none mpirun --oversubscribe -np 3",
                       test_bin(), test_tmpdir(), STEPS + 2);
    CHECKF(rc != 0 && out && strstr(out, "cannot share evenly"), "rc %d: %s", rc, out ? out : "");
    free(out);
}

// SIGINT to rank 1 alone: every rank stops after the same update, rank 0
// saves, the job exits 0, and the run resumes to the straight run's end.
TEST(dist_mpi_sigint_to_one_rank_stops_all) {
    const char *mp = mpirun();
    if (!mp) return;
    const char *dir = test_tmpdir();
    char *out = NULL;
    int rc = test_runf(
        &out,
        "%s %s train --model tiny-mha --data %s --seq 32 --accum 2 --lr 1e-3 --warmup 2 --steps 100000 "
        "--eval-every 0 --save-every 0 --quiet --ckpt %s/sig.bin --log %s/sig.jsonl > %s/sig.out 2>&1 & mp=$!; "
        "for i in $(seq 100); do sleep 0.1; grep -q '\"step\":3,' %s/sig.jsonl 2>/dev/null && break; done; "
        "for p in $(pgrep -P $mp); do "
        "  tr '\\0' '\\n' < /proc/$p/environ | grep -qx OMPI_COMM_WORLD_RANK=1 && kill -INT $p && echo sent; done; "
        "wait $mp",
        mp, test_bin(), test_pattern_tokens(256), dir, dir, dir, dir);
    CHECKF(rc == 0 && out && strstr(out, "sent"), "rc %d: %s", rc, out ? out : "");
    free(out);
    Params p;
    TrainState st;
    char ck[512];
    snprintf(ck, sizeof ck, "%s/sig.bin", dir);
    rc = ckpt_load(ck, &p, NULL, NULL, &st);
    if (rc != 0) {
        char *o2 = NULL;
        test_runf(&o2, "cat %s/sig.out; ls -la %s", dir, dir);
        fprintf(stderr, "    %s\n%s\n", err_msg(), o2 ? o2 : "");
        free(o2);
    }
    REQUIRE(rc == 0);
    CHECKF(st.step >= 3 && st.step < 100000, "saved at update %lld", (long long)st.step);
    params_free(&p);
    rc = test_runf(&out, "grep -c 'signal received' %s/sig.jsonl", dir);
    CHECKF(rc == 0 && out && atoi(out) == 1, "signal notes: %s", out ? out : "");
    free(out);
}

// Ranks started with different flags refuse together, naming the difference.
TEST(dist_mpi_ranks_with_different_flags_refused) {
    const char *mp = mpirun();
    if (!mp) return;
    char one[512];
    snprintf(one, sizeof one, "%.*s -np 1", (int)(strstr(mp, " -np") - mp), mp);  // mpirun ... without -np 2
    const char *dir = test_tmpdir(), *data = test_pattern_tokens(256);
    char *out = NULL;
    int rc = test_runf(&out,
                       "%s %s train --model tiny-mha --data %s --steps 3 --quiet --ckpt %s/mm.bin : "
                       "-np 1 %s train --model tiny-mha --data %s --steps 3 --quiet --ckpt %s/mm.bin --lr 2e-3 2>&1",
                       one, test_bin(), data, dir, test_bin(), data, dir);
    CHECKF(rc != 0 && out && strstr(out, "rank 1 was started with a different run than rank 0: --lr 0.002 there"),
           "rc %d: %s", rc, out ? out : "");
    free(out);
}

// kill -9 of rank 1: mpirun ends the job within seconds (no rank waits
// forever), the last checkpoint is intact, and one rank resumes it.
TEST(dist_mpi_kill9_of_one_rank_ends_the_job) {
    const char *mp = mpirun();
    if (!mp) return;
    const char *dir = test_tmpdir(), *data = test_pattern_tokens(256);
    char *out = NULL;
    int rc = test_runf(
        &out,
        "%s %s train --model tiny-mha --data %s --seq 32 --accum 2 --steps 100000 --eval-every 0 --save-every 2 "
        "--quiet --ckpt %s/k9.bin --log %s/k9.jsonl > %s/k9.out 2>&1 & mp=$!; "
        "for i in $(seq 100); do sleep 0.1; grep -q '\"step\":5,' %s/k9.jsonl 2>/dev/null && break; done; "
        "for p in $(pgrep -P $mp); do "
        "  tr '\\0' '\\n' < /proc/$p/environ | grep -qx OMPI_COMM_WORLD_RANK=1 && kill -9 $p && echo sent; done; "
        "t=$(date +%%s); wait $mp; echo rc=$? seconds=$(( $(date +%%s) - t ))",
        mp, test_bin(), data, dir, dir, dir, dir);
    int seconds = 999, job_rc = 0;
    const char *r = out ? strstr(out, "rc=") : NULL;
    if (r) sscanf(r, "rc=%d seconds=%d", &job_rc, &seconds);
    CHECKF(rc == 0 && out && strstr(out, "sent") && job_rc != 0 && seconds <= 30, "%s", out ? out : "");
    free(out);
    rc = test_runf(&out, "%s train --resume --ckpt %s/k9.bin --stop-after 2 --quiet 2>&1", test_bin(), dir);
    CHECKF(rc == 0, "resume after kill -9: %s", out ? out : "");
    free(out);
}
