// llama2c: read and write llama2.c model files (reference.md B.1).
//
//   v0 (legacy): int32 x7 header (dim, hidden, layers, heads, kv_heads, vocab,
//      seq_len; vocab < 0 = separate classifier), fp32 weights, freq_cis tables.
//   v1: 256-byte header, magic "ak42" (0x616b3432), version 1, the same 7 ints,
//      uint8 shared_classifier; fp32 weights in a different order, no freq tables.
//
// llama2.c models have head_dim = dim / heads, interleaved RoPE with theta 1e4,
// RMSNorm eps 1e-5, no QK-norm. The file size must match the header exactly.
#pragma once
#include "model/params.h"

// Loads a v0 or v1 file into p (allocated here). -1 + err_msg naming the file.
int llama2c_load(Params *p, const char *path);
// Writes p as version 0 or 1, atomically. Fails (clearly) for models the format
// cannot express (QK-norm, rotate-half RoPE, head_dim != dim/heads, ...).
int llama2c_save(const Params *p, const char *path, int version);
// Reads only the header: fills cfg and *version (0 or 1). For `info`.
int llama2c_read_header(Config *cfg, int *version, const char *path);
