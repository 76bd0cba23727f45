// builtin: the default training data, for a machine with nothing but the binary.
//
// A deterministic corpus of simple stories (src/data/corpus.c) and its built-in
// 512-entry vocabulary, written once into a directory as tokenizer.bin (llama2.c
// format, usable by `anetrain sample`) and builtin-data.bin (uint16 tokens, one
// BOS per story). Reused when already there and valid.
#pragma once
#include <stddef.h>

#include "data/corpus.h"

enum { BUILTIN_VOCAB = CORPUS_VOCAB, BUILTIN_STORIES = 6000 };
#define BUILTIN_SEED 1234u

// Writes (or reuses) DIR/tokenizer.bin and DIR/builtin-data.bin; the token
// file's path goes to data_path.
int builtin_prepare(const char *dir, char *data_path, size_t n);
