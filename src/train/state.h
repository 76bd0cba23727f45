// state: everything besides the weights that a resumed run needs to continue
// exactly where it stopped. Saved in every checkpoint.
#pragma once
#include <stdint.h>

#include "model/lora.h"

// What a run trains on and how: a resume must continue the same run, so these
// are recorded in the checkpoint, taken from it when not given, and a
// different value given explicitly is refused unless the user says they mean
// it (src/train/run_id.h).
typedef struct {
    int present;            // 0 in checkpoints written before this was recorded
    char data[1024];        // training token file, absolute; "" = the built-in corpus
    uint64_t data_bytes;    // its size
    uint64_t data_fp;       // content fingerprint (run_id_fingerprint)
    char val_data[1024];    // validation token file, absolute; "" = held-out tail of data
    uint64_t val_bytes, val_fp;
    float val_frac;         // held-out fraction when val_data is ""
    int seq;                // window length
    int sequential;         // 1: windows in file order instead of random
    int compact_vocab;      // 1: classifier over the ids that occur in the data
    char pipeline[16], device[16], precision[16];
} RunIdentity;

typedef struct {
    // optimizer recipe (from flags; a resume keeps the checkpoint's values unless overridden)
    float lr;            // peak learning rate
    float min_lr_frac;   // cosine floor as a fraction of lr (0.1)
    float beta1, beta2, eps, weight_decay;
    float clip;          // global-norm clip; <= 0 disables
    int warmup;          // optimizer updates of linear warmup
    int accum;           // micro-steps per optimizer update
    int64_t total_steps; // optimizer updates planned
    // progress
    int64_t step;        // optimizer updates done
    int64_t adam_t;      // updates applied (skipped overflow steps do not count)
    int64_t tokens_seen;
    // loss scaling (fp16 pipelines; 1 and static on cpu)
    float loss_scale;
    int loss_scale_dynamic;
    int64_t good_steps;  // consecutive non-overflow updates (dynamic scaler growth)
    int64_t skipped;     // updates skipped for non-finite gradients
    // data: the training sampler's RNG and cursor, and its seed
    uint64_t seed;
    uint64_t data_rng;
    uint64_t data_cursor;
    // bookkeeping for reports across resumes
    float best_val_loss; // +inf until the first evaluation
    float last_loss;
    double train_ms;     // cumulative time in training steps
    // device pipelines, summed over the processes of a run (exec() restarts)
    double compile_ms;   // time compiling kernels
    int64_t compiles;    // kernels compiled
    int64_t restarts;    // processes replaced to renew the compile budget
    double wall_ms;      // wall time of the earlier processes
    int tail_pending;    // 1: saved for a restart before the evaluation, sample and save due after `step`
    // LoRA (rank > 0): the checkpoint's body is the adapters; the frozen base is this file
    LoraConfig lora;
    char lora_base[1016];            // absolute path
    uint64_t lora_base_bytes, lora_base_fp;  // its size and fingerprint (run_id_fingerprint)
    RunIdentity id;
} TrainState;
