// docs: text -> documents -> token ids, as llama2.c's tinystories.py does.
//
// Each document is stripped of surrounding whitespace and encoded after the
// tokenizer's separator (texttok.h: BOS for llama2.c, <|endoftext|> for Qwen) and
// without EOS; documents are concatenated. Documents are separated either by
// "<|endoftext|>" lines (TinyStories-train.txt) or by blank lines (text exported
// from HF parquet rows, where a blank line inside a row also separates).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "data/texttok.h"

typedef enum { DOCS_AUTO = 0, DOCS_EOT = 1, DOCS_BLANK = 2 } DocSplit;

typedef struct {
    uint32_t *ids;
    size_t n, cap;
} TokenIds;

// Appends the ids of every document of t[0..n) to out; *docs = documents found.
// DOCS_AUTO picks EOT when any "<|endoftext|>" line exists, else BLANK.
int docs_tokenize(TextTok *tok, const char *t, size_t n, DocSplit split, TokenIds *out, size_t *docs);
DocSplit docs_detect(const char *t, size_t n);
// The whole of t[0..n) as one sequence, nothing added (tokenize --raw).
int docs_tokenize_raw(TextTok *tok, const char *t, size_t n, TokenIds *out);
void token_ids_free(TokenIds *v);
