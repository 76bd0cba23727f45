// textgen: text from a model and a prompt, piece by piece — what `anetrain
// sample` prints and what `train --sample-every` logs, from one loop.
//
// The prompt is encoded with BOS, its tokens are forced, then tokens are
// sampled (sampler.h: temperature, top-p, seed) until max_tokens positions
// have run or the model emits BOS (the start of the next story). Every
// printable piece goes to emit(ctx, piece) as soon as it is decoded.
#pragma once
#include <stdint.h>

#include "data/tokenizer.h"
#include "model/params.h"

typedef struct {
    const char *prompt;  // NULL = ""
    int max_tokens;      // positions to run (<= 0 or > seq_len: seq_len)
    float temperature, topp;
    uint64_t seed;       // the sampler's xorshift state (0 is replaced, sampler.h)
} TextGenOptions;

typedef void (*TextGenEmit)(void *ctx, const char *piece);

// Returns 0, or -1 with err_msg(). *positions (may be NULL) = positions run.
int infer_generate(const Params *p, const Tokenizer *tok, const TextGenOptions *o, TextGenEmit emit, void *ctx,
                   int *positions);

// The same into a buffer (NUL-terminated, cut at cap - 1 bytes).
int infer_generate_text(const Params *p, const Tokenizer *tok, const TextGenOptions *o, char *out, size_t cap);
