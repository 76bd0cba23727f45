// docs: text -> documents -> token ids, as llama2.c's tinystories.py does.
//
// Each document is stripped of surrounding whitespace and encoded with BOS and
// without EOS; documents are concatenated. Documents are separated either by
// "<|endoftext|>" lines (TinyStories-train.txt) or by blank lines (text exported
// from HF parquet rows, where a blank line inside a row also separates).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "data/tokenizer.h"

typedef enum { DOCS_AUTO = 0, DOCS_EOT = 1, DOCS_BLANK = 2 } DocSplit;

typedef struct {
    uint32_t *ids;
    size_t n, cap;
} TokenIds;

// Appends the ids of every document of t[0..n) to out; *docs = documents found.
// DOCS_AUTO picks EOT when any "<|endoftext|>" line exists, else BLANK.
int docs_tokenize(const Tokenizer *tok, const char *t, size_t n, DocSplit split, TokenIds *out, size_t *docs);
DocSplit docs_detect(const char *t, size_t n);
void token_ids_free(TokenIds *v);
