// state: everything besides the weights that a resumed run needs to continue
// exactly where it stopped. Saved in every checkpoint.
#pragma once
#include <stdint.h>

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
} TrainState;
