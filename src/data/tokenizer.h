// tokenizer: the llama2.c BPE tokenizer (tokenizer.bin, reference.md B.2).
//
// File: uint32 max_token_length, then per token: float32 score, uint32 len,
// len bytes (no NUL). The vocab size is NOT stored; it comes from the model.
// Pieces have "▁" already turned into a space; id 1 is BOS ("\n<s>\n"), id 2
// EOS, ids 3..258 the byte-fallback pieces "<0x00>".."<0xFF>".
//
// Encoding follows llama2.c run.c encode() exactly: optional BOS, a dummy-prefix
// " " token when the text is non-empty, one token per UTF-8 codepoint (at most
// 4 bytes, as run.c groups them) or one byte-fallback token (byte + 3) per byte
// of a codepoint that is not in the vocab, then repeated merging of the adjacent
// pair whose concatenation is the highest-scoring vocab piece (leftmost pair on
// ties), optional EOS. We get run.c's result with a heap instead of its
// quadratic rescans, so whole stories encode in milliseconds.
#pragma once
#include <stddef.h>

enum { TOK_UNK = 0, TOK_BOS = 1, TOK_EOS = 2, TOK_BYTE0 = 3 };

typedef struct {
    const char *str;  // piece bytes (NUL-terminated copy in the blob)
    int len;          // piece length in bytes
    int id;
} TokenIndex;

typedef struct {
    int vocab_size;        // V (from the model)
    int max_token_length;  // longest piece actually present, bytes
    char **vocab;          // (V) NUL-terminated pieces (point into blob)
    int *len;              // (V) piece lengths
    float *scores;         // (V) merge scores
    TokenIndex *sorted;    // (V) pieces sorted bytewise, for binary-search lookup
    char *blob;            // all pieces, each NUL-terminated
    int space_id;          // id of " " (the dummy prefix), or -1 if absent
    char byte_pieces[256][2];  // one-byte strings returned by decode for byte tokens
} Tokenizer;

// Reads vocab_size entries of `path`. A file with fewer entries, a truncated
// entry or an absurd length is an error naming the file (-1 + err_msg). Extra
// entries after vocab_size are ignored, as run.c does (callers that know the
// model compare tokenizer_file_count with its vocab first). vocab_size must be
// at least 259 (3 specials + 256 byte pieces), which byte fallback relies on.
// The file must also look like a tokenizer.bin: at most IO_TEXT_MAX (64 MiB),
// max_token_length >= 1 and no piece longer, ids 3..258 exactly "<0x00>".."<0xFF>"
// (so a file of zeros or a model file is refused), and a Hugging Face file
// (tokenizer.json, vocab.json, merges.txt; recognised by content) is named
// as such: those are read by data/hf_tokenizer.h, and data/texttok.h picks the
// right reader for a --tokenizer argument.
int tokenizer_init(Tokenizer *t, const char *path, int vocab_size);
// Validates the whole file as tokenizer_init does and counts its entries (the
// format does not store the count).
int tokenizer_file_count(const char *path, int *entries);
void tokenizer_free(Tokenizer *t);

// Id of the piece with exactly these bytes, or -1.
int tokenizer_lookup(const Tokenizer *t, const char *str, int len);

// Encodes NUL-terminated `text` into out[] (capacity strlen(text) + 3: one token
// per byte at most, plus BOS, dummy prefix/EOS) and sets *n. Any bytes are
// accepted (invalid UTF-8 falls back to byte tokens). -1 + err_msg only when
// out of memory.
int tokenizer_encode(const Tokenizer *t, const char *text, int bos, int eos, int *out, int *n);

// The text of `token` when it follows `prev_token` (run.c decode): the leading
// space of a piece right after BOS is dropped (SentencePiece strips the dummy
// prefix), "<0xHH>" pieces become the raw byte. Always a valid string ("" for an
// out-of-range id). A 0x00 byte piece reads as "" (C strings cannot hold it).
const char *tokenizer_decode(const Tokenizer *t, int prev_token, int token);

// 1 if `piece` is worth printing, as run.c safe_printf decides: non-empty, and
// if it is a single byte, a printable or whitespace one (raw control bytes from
// byte tokens are dropped).
int tokenizer_piece_printable(const char *piece);
