// `train --resume` continues the run that was saved (src/train/train_resume.c,
// run_id.h): the data, --seq and --pipeline come from the checkpoint; a given
// one that differs is refused unless --resume-with-changes, and then listed;
// the recipe may be given again and is honoured; checkpoints without an
// identity still resume, with a notice.
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/io.h"
#include "data/dataset.h"
#include "model/config.h"
#include "model/params.h"
#include "test.h"
#include "train/checkpoint.h"
#include "train/optim.h"

#define RECIPE "--model tiny-mha --steps 6 --accum 1 --seq 32"

static char *path_in_tmp(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/ri-%s", test_tmpdir(), name);
    return buf;
}

// ckpt_read_header's Config is required; most checks only need the state.
static int read_state(const char *path, TrainState *st) {
    Config c;
    return ckpt_read_header(path, &c, st, NULL);
}



// A checkpoint stopped at update 3 of the 6-update RECIPE on the pattern data
// (made once; callers copy it before resuming, which rewrites it).
static const char *half_run(void) {
    static char path[600];
    if (path[0]) return path;
    path_in_tmp(path, sizeof path, "half.bin");
    char *out = NULL;
    int rc = test_runf(&out, "%s train %s --data %s --stop-after 3 --ckpt %s -q", test_bin(), RECIPE,
                 test_pattern_tokens(256), path);
    if (rc != 0) {
        fprintf(stderr, "    half run failed (rc %d): %s\n", rc, out);
        path[0] = 0;
    }
    free(out);
    return path[0] ? path : NULL;
}

// A fresh copy of the half-run checkpoint at ri-NAME.
static const char *half_copy(char *buf, size_t n, const char *name) {
    const char *h = half_run();
    if (!h) return NULL;
    path_in_tmp(buf, n, name);
    return test_copy_file(h, buf) == 0 ? buf : NULL;
}

// `--resume --ckpt C` alone continues on the checkpoint's --data and --seq and
// ends bit-identical to a run that never stopped.
TEST(resume_without_data_is_bit_identical) {
    char straight[600], halves[600], *out = NULL;
    path_in_tmp(straight, sizeof straight, "straight.bin");
    REQUIRE(test_runf(&out, "%s train %s --data %s --ckpt %s -q", test_bin(), RECIPE, test_pattern_tokens(256),
                straight) == 0);
    free(out);
    REQUIRE(half_copy(halves, sizeof halves, "halves.bin"));
    int rc = test_runf(&out, "%s train --resume --ckpt %s", test_bin(), halves);
    CHECKF(rc == 0, "resume without --data: rc %d: %s", rc, out);
    CHECKF(out && strstr(out, test_pattern_tokens(256)), "the resumed run does not name the checkpoint's data: %s",
           out);
    free(out);
    REQUIRE(rc == 0);
    CHECKF(test_ckpt_bodies_equal(straight, halves), "weights or moments after 3 + resume + 3 differ from 6 straight updates");
    Params pa, pb;
    float *ma, *va, *mb, *vb;
    TrainState sa, sb;
    REQUIRE(ckpt_load(straight, &pa, &ma, &va, &sa) == 0);
    REQUIRE(ckpt_load(halves, &pb, &mb, &vb, &sb) == 0);
    CHECKF(sa.step == 6 && sb.step == 6 && sa.tokens_seen == sb.tokens_seen && sa.data_rng == sb.data_rng,
           "steps %lld/%lld tokens %lld/%lld", (long long)sa.step, (long long)sb.step, (long long)sa.tokens_seen,
           (long long)sb.tokens_seen);
    CHECK(sb.id.present && sb.id.seq == 32 && !strcmp(sb.id.pipeline, "cpu"));
    CHECK(memcmp(pa.data, pb.data, pa.n * 4) == 0);
    CHECK(memcmp(ma, mb, pa.n * 4) == 0 && memcmp(va, vb, pa.n * 4) == 0);
    params_free(&pa), params_free(&pb);
    free(ma), free(va), free(mb), free(vb);
}

// Other bytes as --data are refused (naming --data and --resume-with-changes);
// the same bytes under another path are the same data, and the new path is
// recorded.
TEST(resume_data_compared_by_content) {
    char ck[600], other[600], moved[600], *out = NULL;
    REQUIRE(half_copy(ck, sizeof ck, "content.bin"));
    // other content, ids valid for vocab 256
    path_in_tmp(other, sizeof other, "other-data.bin");
    REQUIRE(test_copy_file(test_pattern_tokens(200), other) == 0);
    int rc = test_runf(&out, "%s train --resume --ckpt %s --data %s -q", test_bin(), ck, other);
    CHECKF(rc == 1 && out && strstr(out, "--data") && strstr(out, "--resume-with-changes") && strstr(out, other),
           "other --data on resume: rc %d: %s", rc, out);
    free(out);
    // the refused resume did not touch the checkpoint
    TrainState st;
    REQUIRE(read_state(ck, &st) == 0);
    CHECK(st.step == 3);
    // the same bytes elsewhere
    path_in_tmp(moved, sizeof moved, "moved-data.bin");
    REQUIRE(test_copy_file(test_pattern_tokens(256), moved) == 0);
    rc = test_runf(&out, "%s train --resume --ckpt %s --data %s -q", test_bin(), ck, moved);
    CHECKF(rc == 0, "same bytes under another path refused: rc %d: %s", rc, out);
    free(out);
    REQUIRE(read_state(ck, &st) == 0);
    char real[PATH_MAX];
    REQUIRE(realpath(moved, real));
    CHECKF(st.step == 6 && !strcmp(st.id.data, real), "step %lld, recorded data %s (want %s)", (long long)st.step,
           st.id.data, real);
}

// Without --data, the checkpoint's file must still hold the bytes it was
// trained on; a vanished file asks for --data.
TEST(resume_data_file_changed_or_gone) {
    char data[600], ck[600], *out = NULL;
    path_in_tmp(data, sizeof data, "mutable-data.bin");
    path_in_tmp(ck, sizeof ck, "mutable.bin");
    REQUIRE(test_copy_file(test_pattern_tokens(256), data) == 0);
    REQUIRE(test_runf(&out, "%s train %s --data %s --stop-after 2 --ckpt %s -q", test_bin(), RECIPE, data, ck) == 0);
    free(out);
    REQUIRE(test_copy_file(test_pattern_tokens(200), data) == 0);  // same path, other bytes
    int rc = test_runf(&out, "%s train --resume --ckpt %s -q", test_bin(), ck);
    CHECKF(rc == 1 && out && strstr(out, "--data") && strstr(out, "other bytes"), "rc %d: %s", rc, out);
    free(out);
    unlink(data);
    rc = test_runf(&out, "%s train --resume --ckpt %s -q", test_bin(), ck);
    CHECKF(rc == 1 && out && strstr(out, data) && strstr(out, "--data"), "data file gone: rc %d: %s", rc, out);
    free(out);
}

TEST(resume_refuses_other_seq_and_pipeline) {
    char ck[600], *out = NULL;
    REQUIRE(half_copy(ck, sizeof ck, "flags.bin"));
    int rc = test_runf(&out, "%s train --resume --ckpt %s --seq 16 -q", test_bin(), ck);
    CHECKF(rc == 1 && out && strstr(out, "--seq 32") && strstr(out, "--seq 16") && strstr(out, "--resume-with-changes"),
           "--resume --seq 16: rc %d: %s", rc, out);
    free(out);
    rc = test_runf(&out, "%s train --resume --ckpt %s --pipeline dynamic -q", test_bin(), ck);
    CHECKF(rc == 1 && out && strstr(out, "--pipeline cpu") && strstr(out, "--pipeline dynamic"),
           "--resume --pipeline dynamic of a cpu checkpoint: rc %d: %s", rc, out);
    free(out);
    // --seq equal to the saved one is not a change
    rc = test_runf(&out, "%s train --resume --ckpt %s --seq 32 -q", test_bin(), ck);
    CHECKF(rc == 0, "--resume --seq 32 (unchanged): rc %d: %s", rc, out);
    free(out);
}

// A dynamic-pipeline checkpoint resumed without --pipeline stays on the
// dynamic pipeline and its device, with the dynamic loss scale.
TEST(resume_keeps_dynamic_pipeline) {
    char ck[600], log[600], *out = NULL;
    path_in_tmp(ck, sizeof ck, "dyn.bin");
    path_in_tmp(log, sizeof log, "dyn.jsonl");
    REQUIRE(test_runf(&out, "%s train --model tiny-mha --data %s --steps 4 --stop-after 2 --accum 1 --seq 32 --pipeline "
                      "dynamic --device sim --eval-every 0 --ckpt %s -q",
                test_bin(), test_pattern_tokens(256), ck) == 0);
    free(out);
    int rc = test_runf(&out, "%s train --resume --ckpt %s --log %s", test_bin(), ck, log);
    CHECKF(rc == 0 && out && strstr(out, "pipeline  dynamic on sim"), "rc %d: %s", rc, out);
    free(out);
    char *txt = NULL;
    REQUIRE(io_read_all(log, &txt, NULL) == 0 && txt);
    CHECKF(strstr(txt, "\"type\":\"start\"") && strstr(txt, "\"pipeline\":\"dynamic\"") &&
               strstr(txt, "\"device\":\"sim\"") && !strstr(txt, "\"type\":\"change\""),
           "start record of the resumed dynamic run: %.600s", txt);
    free(txt);
    TrainState st;
    REQUIRE(read_state(ck, &st) == 0);
    CHECKF(st.step == 4 && !strcmp(st.id.pipeline, "dynamic") && !strcmp(st.id.device, "sim") &&
               st.loss_scale_dynamic == 1,
           "step %lld pipeline %s device %s dynamic scale %d", (long long)st.step, st.id.pipeline, st.id.device,
           st.loss_scale_dynamic);
}

// --resume-with-changes accepts a change, prints it and logs a change record;
// the checkpoint then records the new identity.
TEST(resume_with_changes_lists_and_logs) {
    char ck[600], log[600], *out = NULL;
    REQUIRE(half_copy(ck, sizeof ck, "changes.bin"));
    path_in_tmp(log, sizeof log, "changes.jsonl");
    int rc = test_runf(&out, "%s train --resume --resume-with-changes --ckpt %s --seq 16 --log %s", test_bin(), ck, log);
    CHECKF(rc == 0 && out && strstr(out, "changed") && strstr(out, "--seq: 32 -> 16"), "rc %d: %s", rc, out);
    free(out);
    char *txt = NULL;
    REQUIRE(io_read_all(log, &txt, NULL) == 0 && txt);
    CHECKF(strstr(txt, "{\"type\":\"change\",\"what\":\"--seq\",\"from\":\"32\",\"to\":\"16\""),
           "no change record for --seq in the log: %.2000s", txt);
    free(txt);
    TrainState st;
    REQUIRE(read_state(ck, &st) == 0);
    CHECKF(st.step == 6 && st.id.seq == 16, "step %lld, recorded seq %d", (long long)st.step, st.id.seq);
    // --resume-with-changes without --resume is a flag error
    rc = test_runf(&out, "%s train --resume-with-changes --ckpt %s -q", test_bin(), ck);
    CHECKF(rc == 2, "--resume-with-changes without --resume: rc %d: %s", rc, out);
    free(out);
}

// A checkpoint whose identity region is zero (written before identities were
// recorded) resumes on the flags given, with a notice, and then records one.
TEST(resume_checkpoint_without_identity) {
    char ck[600], log[600], *out = NULL;
    path_in_tmp(ck, sizeof ck, "noid.bin");
    path_in_tmp(log, sizeof log, "noid.jsonl");
    Config c;
    REQUIRE(config_preset(&c, "tiny-mha") == 0);
    Params p;
    REQUIRE(params_init(&p, &c) == 0);
    params_init_random(&p, 7);
    float *m = calloc(p.n, 4), *v = calloc(p.n, 4);
    TrainState st;
    memset(&st, 0, sizeof st);
    optim_defaults(&st);
    st.accum = 1;
    st.total_steps = 4;
    st.seed = 42;
    st.id.present = 0;
    REQUIRE(ckpt_save(ck, &p, m, v, &st) == 0);
    params_free(&p);
    free(m), free(v);
    TrainState back;
    REQUIRE(read_state(ck, &back) == 0);
    REQUIRE(back.id.present == 0);
    int rc = test_runf(&out, "%s train --resume --ckpt %s --data %s --seq 32 --log %s", test_bin(), ck,
                 test_pattern_tokens(256), log);
    CHECKF(rc == 0 && out && strstr(out, "not recorded"), "resume of a checkpoint without identity: rc %d: %s", rc,
           out);
    free(out);
    char *txt = NULL;
    REQUIRE(io_read_all(log, &txt, NULL) == 0 && txt);
    CHECKF(strstr(txt, "\"type\":\"change\"") && strstr(txt, "not recorded"), "no change record: %.1500s", txt);
    free(txt);
    REQUIRE(read_state(ck, &back) == 0);
    CHECKF(back.step == 4 && back.id.present && back.id.seq == 32, "step %lld, identity present %d seq %d",
           (long long)back.step, back.id.present, back.id.seq);
}

// The recipe given again on a resume is honoured and listed: --clip -1 (off)
// and a new --lr end up in the saved checkpoint.
TEST(resume_recipe_flags_honoured) {
    char ck[600], log[600], *out = NULL;
    REQUIRE(half_copy(ck, sizeof ck, "clip.bin"));
    path_in_tmp(log, sizeof log, "clip.jsonl");
    int rc = test_runf(&out, "%s train --resume --ckpt %s --clip -1 --log %s", test_bin(), ck, log);
    CHECKF(rc == 0 && out && strstr(out, "--clip: 1 -> -1"), "--resume --clip -1: rc %d: %s", rc, out);
    free(out);
    TrainState st;
    REQUIRE(read_state(ck, &st) == 0);
    CHECKF(st.clip == -1.0f && st.step == 6, "saved clip %g step %lld", st.clip, (long long)st.step);
    char *txt = NULL;
    REQUIRE(io_read_all(log, &txt, NULL) == 0 && txt);
    CHECKF(strstr(txt, "\"what\":\"--clip\",\"from\":\"1\",\"to\":\"-1\""), "no --clip change record: %.1500s", txt);
    CHECKF(strstr(txt, "\"clip\":-1"), "start record does not show clip -1: %.800s", txt);
    free(txt);

    REQUIRE(half_copy(ck, sizeof ck, "lr.bin"));
    rc = test_runf(&out, "%s train --resume --ckpt %s --lr 0.001 --steps 8", test_bin(), ck);
    CHECKF(rc == 0 && out && strstr(out, "changed   --lr: 0.0003 -> 0.001") && strstr(out, "--steps: 6 -> 8"),
           "--resume --lr 0.001 --steps 8: rc %d: %s", rc, out);
    free(out);
    REQUIRE(read_state(ck, &st) == 0);
    CHECKF(st.lr == 0.001f && st.total_steps == 8 && st.step == 8 && st.clip == 1.0f,
           "saved lr %g total %lld step %lld clip %g", st.lr, (long long)st.total_steps, (long long)st.step, st.clip);
    // the recipe given equal to the saved one is not listed as a change
    REQUIRE(half_copy(ck, sizeof ck, "same-lr.bin"));
    rc = test_runf(&out, "%s train --resume --ckpt %s --lr 0.0003 --accum 1", test_bin(), ck);
    CHECKF(rc == 0 && out && !strstr(out, "changed"), "unchanged recipe listed: rc %d: %s", rc, out);
    free(out);
}

// A --val-data given on the resume of a run that held out the tail of --data
// is refused, and the message says what the run used: the held-out tail, not
// "the built-in corpus" (that is what an empty --data means).
TEST(resume_val_data_difference_named_correctly) {
    char ck[600], val[600], *out = NULL;
    REQUIRE(half_copy(ck, sizeof ck, "val.bin"));
    path_in_tmp(val, sizeof val, "val-data.bin");
    REQUIRE(test_copy_file(test_pattern_tokens(200), val) == 0);
    int rc = test_runf(&out, "%s train --resume --ckpt %s --val-data %s -q", test_bin(), ck, val);
    CHECKF(rc == 1 && out && strstr(out, "--val-data") && strstr(out, "--resume-with-changes"), "rc %d: %s", rc, out);
    CHECKF(out && !strstr(out, "built-in corpus"), "the held-out tail is described as the built-in corpus: %s", out);
    free(out);
}

// A run that never evaluates (--eval-every 0) holds no data out, and records so:
// a resume that evaluates by default still trains on the same windows.
TEST(resume_split_does_not_follow_eval_every) {
    char straight[600], halves[600], *out = NULL;
    path_in_tmp(straight, sizeof straight, "noeval-straight.bin");
    path_in_tmp(halves, sizeof halves, "noeval-halves.bin");
    REQUIRE(test_runf(&out, "%s train %s --eval-every 0 --data %s --ckpt %s -q", test_bin(), RECIPE,
                      test_pattern_tokens(256), straight) == 0);
    free(out);
    REQUIRE(test_runf(&out, "%s train %s --eval-every 0 --data %s --stop-after 3 --ckpt %s -q && "
                            "%s train --resume --ckpt %s -q", test_bin(), RECIPE, test_pattern_tokens(256), halves,
                      test_bin(), halves) == 0);
    free(out);
    CHECK(test_ckpt_bodies_equal(straight, halves));
    TrainState st;
    CHECK(read_state(halves, &st) == 0 && st.id.val_frac == 0.0f);
}
