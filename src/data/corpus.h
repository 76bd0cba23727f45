// corpus: the built-in training text and its built-in vocabulary, so that a
// training run needs no files at all.
//
// The text: simple children's stories made from this project's own templates
// (src/data/corpus.c): a few dozen names, animals, places, objects, activities
// and feelings, eight story shapes (a lost toy, sharing, being brave, helping an
// animal, not listening, trying again, a new friend, telling the truth), with
// dialogue in straight double quotes and a moral at the end. ASCII only.
// Paragraphs are separated by "\n"; every story is followed by the line
// "<|endoftext|>", exactly as in TinyStories-train.txt:
//
//     story 1 ...\n<|endoftext|>\nstory 2 ...\n<|endoftext|>\n
//
// The same seed always gives the same bytes (the generator uses only core/rng).
//
// The vocabulary (CORPUS_VOCAB = 512 entries), laid out like llama2.c's tok512.bin
// so the tokenizer module treats it as any llama2.c tokenizer.bin:
//     0          "<unk>"                      score 0
//     1          "\n<s>\n"   (BOS)            score 0
//     2          "\n</s>\n"  (EOS)            score 0
//     3..258     "<0x00>".."<0xFF>"           score 0 (byte fallback: byte + 3)
//     259..      the merges, in the order they were learned, scores 0, -1, -2, ...
//     ..511      then every single character of the corpus (most frequent first),
//                scores continuing downward, as SentencePiece lists them.
// Single characters must be pieces of their own: llama2.c's encode merges the
// *strings* of adjacent tokens, and a byte-fallback token's string is "<0xHH>",
// so text made only of byte tokens would never merge. Merges and characters
// together fill the 253 slots after the byte pieces (about 55 characters, about
// 200 merges).
// The merges are a small BPE learned greedily from a fixed sample of the corpus
// (CORPUS_VOCAB_SEED, CORPUS_VOCAB_STORIES): the text of each story is given the
// dummy-prefix space that encode adds, a space may only start a piece (as with
// SentencePiece's "▁"), "\n" never merges, and at each step the most frequent
// adjacent pair (lowest ids on ties) becomes the next piece. Pieces are at most
// CORPUS_PIECE_MAX bytes. With llama2.c's encode (highest score = earliest merge
// first) the built-in text takes about 2.2 bytes per token (tok512.bin: 1.9).
#pragma once
#include <stddef.h>
#include <stdint.h>

enum { CORPUS_VOCAB = 512, CORPUS_PIECE_MAX = 16, CORPUS_VOCAB_STORIES = 1500 };
#define CORPUS_VOCAB_SEED 20240601u
#define CORPUS_EOT "<|endoftext|>"

// Generates n_stories stories from `seed` into a malloc'd, NUL-terminated
// buffer (*text, *len bytes without the NUL); the caller frees it. About 700
// bytes per story. -1 + err_msg on bad arguments or out of memory.
int corpus_generate(uint64_t seed, int n_stories, char **text, size_t *len);

typedef struct {
    int n;                                        // CORPUS_VOCAB
    int max_len;                                  // longest piece, bytes
    float score[CORPUS_VOCAB];                    // (V) llama2.c merge scores
    int len[CORPUS_VOCAB];                        // (V) piece lengths
    char piece[CORPUS_VOCAB][CORPUS_PIECE_MAX + 1];  // (V) NUL-terminated pieces
    int n_merges;                                 // merge pieces at 259..259+n_merges-1
} CorpusVocab;

// Builds the built-in vocabulary (deterministic; a few tens of milliseconds).
int corpus_vocab(CorpusVocab *v);

// Writes the built-in vocabulary as a llama2.c tokenizer.bin (reference.md B.2:
// u32 max_token_length, then per token f32 score, u32 len, bytes), atomically.
int corpus_write_tokenizer(const char *path);
