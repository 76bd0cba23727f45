// run_id: what makes a resumed run the run that was saved.
//
// A checkpoint records the run's identity (RunIdentity in state.h): the data
// files (absolute path, size, content fingerprint), the validation split,
// window length, sampling order, vocab compaction, pipeline, device and
// precision, beside the seed in TrainState. On --resume every one of them that
// is not given is taken from the checkpoint; one given with a different value
// is refused with the first difference named, unless the user passes
// --resume-with-changes, and then every change is listed (printed and logged).
// The recipe (--steps, --lr, --accum, --warmup, --clip, --loss-scale) may be
// given again freely: those changes are listed too.
//
// Data files are compared by content, not by path: the same bytes under a
// new path are the same data (and the new path is recorded).
#pragma once
#include <stdint.h>

#include "train/state.h"

// Fingerprint of a file: CRC-32 of its first MiB in the high 32 bits and of
// its last MiB in the low 32 bits (the whole file when shorter); *bytes is its
// length, compared alongside. 0, or -1 with err_msg().
int run_id_fingerprint(const char *path, uint64_t *bytes, uint64_t *fp);

enum { RUN_CHANGES_MAX = 24 };
typedef struct {
    char what[24];          // the flag: "--pipeline"
    char from[160], to[160];
} RunChange;
typedef struct {
    RunChange c[RUN_CHANGES_MAX];
    int n;
} RunChanges;

// Adds a change (ignored when full).
void run_changes_add(RunChanges *ch, const char *what, const char *from, const char *to);
