// sampler: pick the next token from logits, as llama2.c run.c does.
//
//   temperature 0   argmax (first index on ties)
//   else            probs = softmax(logits / temperature), one coin in [0,1) per
//                   token, then plain multinomial when topp <= 0 or >= 1, else
//                   top-p (nucleus) sampling with run.c's cutoff trick.
//
// RNG choice: the state is the seed itself and the generator is run.c's
// xorshift random_u32/random_f32 (identical to rng_u32/rng_f32 of core/rng.h),
// NOT rng_init's splitmix of the seed. So `--seed N` draws the same coins as
// `./run ... -s N`, and with the same logits picks the same tokens.
#pragma once
#include <stdint.h>

#include "core/rng.h"

typedef struct {
    float prob;
    int index;
} ProbIndex;

typedef struct {
    int vocab;            // V
    float temperature;
    float topp;
    Rng rng;              // xorshift state = seed (run.c build_sampler)
    float *probs;         // (V) scratch: logits / T, then softmax
    ProbIndex *probindex; // (V) scratch for top-p
} Sampler;

// seed 0 would freeze xorshift at 0; it is replaced by a fixed non-zero constant.
int sampler_init(Sampler *s, int vocab, float temperature, float topp, uint64_t seed);
void sampler_free(Sampler *s);
// logits (V) are not modified.
int sampler_sample(Sampler *s, const float *logits);
