// generate: one-token-at-a-time forward with a KV cache, for sampling.
//
// The same block as the training forward (src/cpu/model.h) on one position:
// RMSNorm, q/k/v projections, QK-norm (Qwen3), RoPE (interleaved or rotate-half),
// causal GQA attention over the cached keys/values of positions 0..pos,
// res_scale on both residual branches, SwiGLU FFN, final RMSNorm, classifier
// (tied or separate). Everything is allocated once in gen_init; gen_step does
// no allocation. Matrix-vector products are plain loops (BLAS gains little at
// one column and our gemm may allocate).
#pragma once
#include "model/params.h"
#include "cpu/ops.h"

typedef struct {
    Config cfg;
    const Params *p;    // not owned; must outlive the generator
    int max_seq;        // positions the cache holds (<= cfg.seq_len)
    RopeTable rope;     // (max_seq, HD/2) cos/sin
    float *x;           // (D) residual stream
    float *xn;          // (D) normed input of a branch
    float *q;           // (QD) query of this position
    float *att;         // (QD) attention output (all heads)
    float *scores;      // (max_seq) attention scores of one head
    float *h1, *h3;     // (H) FFN gate / up
    float *logits;      // (V)
    float *key_cache;   // (L, max_seq, KVD) keys after QK-norm and RoPE
    float *value_cache; // (L, max_seq, KVD)
    float *block;       // one allocation behind all of the above
    // NULL: every matrix product on the CPU; else the projections, FFN, final
    // norm and classifier on a device (generate_device.h; not owned)
    struct GenDevice *dev;
} Generator;

// max_seq <= 0 means cfg.seq_len. -1 + err_msg on bad sizes or out of memory.
int gen_init(Generator *g, const Params *p, int max_seq);
void gen_free(Generator *g);
// Runs `token` at position `pos` (positions 0..pos-1 must already have been
// run, in order, since the last reset), caches its key/value and returns the
// (V) logits for the next token, valid until the next call. NULL + err_msg if
// token or pos is out of range.
const float *gen_step(Generator *g, int token, int pos);
