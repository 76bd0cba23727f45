// train_resume: a resumed run is the run that was saved (run_id.h).
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "train/train_internal.h"

// Identity differences found while reconciling; the first one is the error.
typedef struct {
    Trainer *t;
    int n_diffs;
    char first[4096];
} Reconcile;

static void differs(Reconcile *rc, const char *flag, const char *saved, const char *given) {
    if (rc->n_diffs++ == 0)
        snprintf(rc->first, sizeof rc->first,
                 "%s: this checkpoint's run used %s %s, but %s %s was given; pass --resume-with-changes to change "
                 "it, or leave the flag out to continue the same run",
                 rc->t->o.ckpt, flag, saved, flag, given);
    run_changes_add(&rc->t->changes, flag, saved, given);
}

static void text_field(Reconcile *rc, const char *flag, int given, const char **opt, const char *saved) {
    if (!given) *opt = saved;
    else if (strcmp(*opt, saved) != 0) differs(rc, flag, saved, *opt);
}

static void int_field(Reconcile *rc, const char *flag, int given, int *opt, int saved, int effective) {
    char a[32], b[32];
    if (!given) *opt = saved;
    else if (effective != saved) {
        snprintf(a, sizeof a, "%d", saved);
        snprintf(b, sizeof b, "%d", effective);
        differs(rc, flag, a, b);
    }
}

static void describe(char *out, size_t n, const char *flag, const char *path, uint64_t bytes, uint64_t fp) {
    if (!path[0]) snprintf(out, n, "%s", strcmp(flag, "--data") ? "none (the held-out tail of --data)" : "the built-in corpus");
    else snprintf(out, n, "%s (%" PRIu64 " bytes, fingerprint %016" PRIx64 ")", path, bytes, fp);
}

// A data file: given ones are compared by content; one taken from the
// checkpoint must still hold the same bytes. "" = none (built-in corpus or
// held-out tail), which only a given file differs from.
static int data_field(Reconcile *rc, const char *flag, int given, const char **opt, const char *saved,
                      uint64_t saved_bytes, uint64_t saved_fp) {
    if (!given) *opt = saved[0] ? saved : NULL;
    const char *now = *opt;
    char was[1200], is[1200];
    describe(was, sizeof was, flag, saved, saved_bytes, saved_fp);
    if (!now) return 0;  // not given, and the checkpoint's run had none either
    uint64_t bytes, fp;
    if (run_id_fingerprint(now, &bytes, &fp) != 0)
        return given ? -1 : err_wrap("%s: the checkpoint's %s cannot be read (pass %s to name where it is now)",
                                     rc->t->o.ckpt, flag, flag);
    if (saved[0] && bytes == saved_bytes && fp == saved_fp) return 0;
    describe(is, sizeof is, flag, now, bytes, fp);
    differs(rc, flag, was, given ? is : "the same path holding other bytes");
    return 0;
}

// The recipe may be given again freely; list what changes.
static void recipe_changes(Trainer *t) {
    const TrainOptions *o = &t->o;
    const TrainState *st = &t->st;
    char a[32], b[32];
#define CHANGE(flag, given, fmt, saved, now)                 \
    if (given && (saved) != (now)) {                         \
        snprintf(a, sizeof a, fmt, saved);                   \
        snprintf(b, sizeof b, fmt, now);                     \
        run_changes_add(&t->changes, flag, a, b);            \
    }
    CHANGE("--steps", o->given.steps, "%lld", (long long)st->total_steps, o->steps);
    CHANGE("--lr", o->given.lr, "%g", st->lr, o->lr);
    CHANGE("--accum", o->given.accum, "%d", st->accum, o->accum);
    CHANGE("--warmup", o->given.warmup, "%d", st->warmup, o->warmup);
    CHANGE("--clip", o->given.clip, "%g", st->clip, o->clip);
    CHANGE("--loss-scale", o->given.loss_scale, "%g", st->loss_scale, o->loss_scale);
#undef CHANGE
}

int trainer_reconcile(Trainer *t) {
    TrainOptions *o = &t->o;
    t->saved_id = t->st.id;
    const RunIdentity *id = &t->saved_id;
    if (!id->present) {
        run_changes_add(&t->changes, "run identity", "not recorded (an older checkpoint)",
                        "the flags given now (--data, --seq, --pipeline, ... or their defaults)");
        recipe_changes(t);
        return 0;
    }
    Reconcile rc = {.t = t};
    if (data_field(&rc, "--data", o->given.data, &o->data, id->data, id->data_bytes, id->data_fp) != 0) return -1;
    if (data_field(&rc, "--val-data", o->given.val_data, &o->val_data, id->val_data, id->val_bytes, id->val_fp) != 0)
        return -1;
    if (!o->given.val_frac) o->val_frac = id->val_frac;
    else if (o->val_frac != id->val_frac) {
        char a[32], b[32];
        snprintf(a, sizeof a, "%g", id->val_frac);
        snprintf(b, sizeof b, "%g", o->val_frac);
        differs(&rc, "--val-frac", a, b);
    }
    const int seq_now = o->seq < t->p.cfg.seq_len ? o->seq : t->p.cfg.seq_len;
    int_field(&rc, "--seq", o->given.seq, &o->seq, id->seq, seq_now);
    int_field(&rc, "--sequential", o->given.sequential, &o->sequential, id->sequential, o->sequential);
    int_field(&rc, "--compact-vocab", o->given.compact_vocab, &o->compact_vocab, id->compact_vocab, o->compact_vocab);
    text_field(&rc, "--pipeline", o->given.pipeline, &o->pipeline, id->pipeline);
    if (strcmp(o->pipeline, "cpu") != 0 && id->device[0]) text_field(&rc, "--device", o->given.device, &o->device, id->device);
    text_field(&rc, "--precision", o->given.precision, &o->precision, id->precision);
    if (o->given.seed && (uint64_t)o->seed != t->st.seed) {
        char a[32], b[32];
        snprintf(a, sizeof a, "%" PRIu64, t->st.seed);
        snprintf(b, sizeof b, "%lld", o->seed);
        differs(&rc, "--seed", a, b);
        t->st.seed = (uint64_t)o->seed;
    }
    if (rc.n_diffs && !o->resume_with_changes) return err_set("%s", rc.first);
    recipe_changes(t);
    return 0;
}

static int absolute(char *out, size_t n, const char *path, const char *what) {
    out[0] = 0;
    if (!path) return 0;
    char real[PATH_MAX];
    if (!realpath(path, real)) return err_set("%s: cannot resolve the %s path", path, what);
    if (strlen(real) >= n) return err_set("%s: the %s path is longer than %zu bytes", real, what, n - 1);
    snprintf(out, n, "%s", real);
    return 0;
}

int run_id_record(Trainer *t) {
    const TrainOptions *o = &t->o;
    RunIdentity id;
    memset(&id, 0, sizeof id);
    id.present = 1;
    if (absolute(id.data, sizeof id.data, o->data, "training data") != 0) return -1;
    if (absolute(id.val_data, sizeof id.val_data, o->val_data, "validation data") != 0) return -1;
    const char *train_path = o->data ? o->data : t->builtin_data;
    if (run_id_fingerprint(train_path, &id.data_bytes, &id.data_fp) != 0) return -1;
    if (o->val_data && run_id_fingerprint(o->val_data, &id.val_bytes, &id.val_fp) != 0) return -1;
    id.val_frac = o->val_frac;
    id.seq = t->seq;
    id.sequential = o->sequential;
    id.compact_vocab = o->compact_vocab;
    snprintf(id.pipeline, sizeof id.pipeline, "%s", o->pipeline);
    snprintf(id.device, sizeof id.device, "%s", strcmp(o->pipeline, "cpu") ? o->device : "");
    snprintf(id.precision, sizeof id.precision, "%s", o->precision);
    const RunIdentity *was = &t->saved_id;
    if (o->resume && was->present && !o->data && !was->data[0] &&
        (id.data_bytes != was->data_bytes || id.data_fp != was->data_fp) && !o->resume_with_changes)
        return err_set("%s: the built-in corpus of this build differs from the one the checkpoint was trained on "
                       "(%" PRIu64 " vs %" PRIu64 " bytes); pass --resume-with-changes to continue on it",
                       o->ckpt, id.data_bytes, was->data_bytes);
    t->st.id = id;
    return 0;
}
