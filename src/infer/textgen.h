// textgen: text from a model and a prompt, piece by piece — what `anetrain
// sample` prints and what `train --sample-every` logs, from one loop.
//
// The prompt is encoded after the tokenizer's document separator (texttok.h:
// BOS for llama2.c, <|endoftext|> for Qwen), its tokens are forced, then tokens
// are sampled (sampler.h: temperature, top-p, seed; over the ids the tokenizer
// has, not the model's padded vocab) until max_tokens positions have run or
// the model emits the separator (the start of the next story). Every
// printable piece goes to emit(ctx, piece) as soon as it is decoded (a UTF-8
// character split across tokens once it is complete).
#pragma once
#include <stdint.h>

#include "data/texttok.h"
#include "model/params.h"

typedef struct {
    const char *prompt;  // NULL = ""
    int max_tokens;      // positions to run (<= 0 or > seq_len: seq_len)
    float temperature, topp;
    uint64_t seed;       // the sampler's xorshift state (0 is replaced, sampler.h)
    // Sample only these ids (ascending; NULL = every id). A model trained with
    // --compact-vocab never trained the other rows: their random logits would
    // take most of the probability mass.
    const int *ids;
    int n_ids;
    // NULL or "cpu": the CPU; "sim" or "ane": the matrix products on that
    // device's kernels (generate_device.h), the sampler and tokenizer the same
    const char *device;
    double *compile_ms;  // if not NULL: set to the time the device's kernels took to compile
} TextGenOptions;

typedef void (*TextGenEmit)(void *ctx, const char *piece);

// Returns 0, or -1 with err_msg(). *positions (may be NULL) = positions run.
int infer_generate(const Params *p, TextTok *tok, const TextGenOptions *o, TextGenEmit emit, void *ctx,
                   int *positions);

// The same into a buffer (NUL-terminated, cut at cap - 1 bytes).
int infer_generate_text(const Params *p, TextTok *tok, const TextGenOptions *o, char *out, size_t cap);
