// texttok: one interface over both tokenizer families, for the commands that
// turn text into ids and back (tokenize, sample, the trainer's samples).
//
//   llama2.c tokenizer.bin (data/tokenizer.h): SentencePiece-style BPE with BOS;
//   Hugging Face byte-level BPE (data/hf_tokenizer.h): Qwen2/Qwen3, no BOS.
//
// The family is read from the file's bytes (a directory is an HF tokenizer
// directory), never from its name. Both have a document separator, `sep`: the
// token written before every document by `tokenize` and at which generation
// stops — BOS (id 1) for llama2.c, as tinystories.py writes; <|endoftext|> for
// Qwen, which has no BOS (the tokenizers library's convention, llm.c's too).
#pragma once
#include <stddef.h>

#include "data/hf_tokenizer.h"
#include "data/tokenizer.h"

typedef enum { TEXTTOK_LLAMA2C = 1, TEXTTOK_HF = 2 } TextTokKind;

typedef struct {
    TextTokKind kind;
    int vocab_size;        // ids 0..vocab_size-1 can occur (HF: largest id + 1)
    int sep_id;            // document separator (see above); -1 if the tokenizer has none
    const char *sep_name;  // "BOS", "<|endoftext|>"
    Tokenizer sp;          // TEXTTOK_LLAMA2C
    HfTokenizer *hf;       // TEXTTOK_HF
} TextTok;

// path: a llama2.c tokenizer.bin, or an HF tokenizer directory / tokenizer.json /
// vocab.json / merges.txt / tokenizer_config.json. vocab_size: the llama2.c
// entries to read (0 = all of the file); ignored for HF. A file of neither kind
// is named ("a model file", "a token file", ...).
int texttok_open(TextTok *t, const char *path, int vocab_size);
void texttok_free(TextTok *t);
const char *texttok_kind_name(const TextTok *t);  // "llama2.c tokenizer.bin", "Hugging Face byte-level BPE"

// The ids of text[0..n) (any bytes), with the separator first when sep (llama2.c:
// BOS and the dummy prefix, as run.c encodes a prompt) and nothing added
// otherwise. *ids is malloc'd; free it.
int texttok_encode(TextTok *t, const char *text, size_t n, int sep, int **ids, size_t *n_ids);

// Streaming decode: what to print for each new token. llama2.c pieces are
// printed as run.c does; HF bytes are held until they complete a UTF-8
// character (a character split across tokens prints once whole), and bytes
// that can never form one print as U+FFFD, as the tokenizers library's
// decode does.
typedef struct {
    const TextTok *t;
    int prev;            // the previous token (llama2.c drops a space after BOS)
    unsigned char pend[4];
    int npend;           // bytes of an incomplete character
    char out[4200];      // the text of the last call
} TextDecoder;

void texttok_decoder_init(TextDecoder *d, const TextTok *t, int prev_token);
// The text token adds (NUL-terminated, valid until the next call; "" while a
// character is incomplete).
const char *texttok_decode(TextDecoder *d, int token);
// What is left at the end (an incomplete character as U+FFFD), or "".
const char *texttok_decoder_flush(TextDecoder *d);
