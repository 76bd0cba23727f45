// train_internal: the pieces of trainer_init that live in their own files.
#pragma once
#include "train/trainer.h"

// Resume: fills every identity option not given from the checkpoint's
// RunIdentity; refuses a given one that differs (the first difference named)
// unless --resume-with-changes, and lists every change, recipe included, in
// t->changes. Old checkpoints without an identity resume with a notice.
int trainer_reconcile(Trainer *t);
// Records the identity of the run as it now is into t->st.id (saved with
// every checkpoint); on a resume also checks that the built-in corpus is the
// one the checkpoint was trained on.
int run_id_record(Trainer *t);

// Periodic samples (train_sample.c): loads the tokenizer when sampling is
// asked for; train_sample writes one `sample` record from the current weights.
int train_sample_init(Trainer *t);
int train_sample(Trainer *t);
void train_sample_free(Trainer *t);
