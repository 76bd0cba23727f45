// hf_tokenizer: the Hugging Face byte-level BPE tokenizer of Qwen2/Qwen3 (and
// GPT-2-style) models, reference.md B.8.
//
// Files: tokenizer.json (normalizer, pre-tokenizer, BPE vocab and merges,
// added tokens; both merge spellings, "a b" and ["a", "b"]) or, without it,
// vocab.json + merges.txt (+ tokenizer_config.json for the added tokens; the
// Qwen2 split regex and NFC are then implied, as Qwen2Tokenizer does).
//
// Encode, exactly as the tokenizers library does for these models:
//   1. added tokens (<|endoftext|>, <|im_start|>, ...) are found in the raw text
//      first, leftmost and longest, and become their ids;
//   2. each stretch between them: invalid UTF-8 is replaced by U+FFFD, one per
//      maximal ill-formed subsequence (what a Rust &str from
//      String::from_utf8_lossy, Python's errors="replace" and a WHATWG
//      TextDecoder hold: the tokenizer itself only ever sees valid text);
//   3. NFC (utf8proc) when the normalizer asks for it;
//   4. the split regex (PCRE2 with UTF and UCP, JIT when available), every
//      match and every gap between matches a piece ("Isolated");
//   5. each piece's bytes (the GPT-2 byte<->unicode map is undone at load time,
//      so the engine works on raw bytes) start as one symbol per byte and the
//      adjacent pair of lowest merge rank is merged until none is left
//      (leftmost first on ties), with a heap; results are cached per piece.
// Decode is the concatenation of the tokens' bytes (ByteLevel decoder); added
// tokens decode to their content.
//
// The three libraries are optional at build time (make info); without them
// every loader fails with one line naming the missing one and its package.
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct HfTokenizer HfTokenizer;

// A growable id list (encode appends to it); free(ids) when done.
typedef struct {
    int *ids;
    size_t n, cap;
} HfIds;

// 1 when this build can load HF tokenizers; else 0 and *missing names the
// first missing library with its install hint.
int hf_tokenizer_available(const char **missing);

// 1 if these bytes look like one of the HF tokenizer files (a JSON object, or a
// merges.txt), so callers can route a --tokenizer argument by content.
int hf_tokenizer_sniff(const uint8_t *b, size_t n);

// path: a directory holding tokenizer.json, or vocab.json + merges.txt (+
// tokenizer_config.json); or any one of those files (its siblings are found
// beside it). -1 + err_msg naming the file on any problem: missing files,
// truncated or malformed JSON, a merge naming an unknown token or merging into
// a token the vocab lacks, duplicate ids or tokens, a byte with no token.
int hf_tokenizer_open(HfTokenizer **out, const char *path);
// The same from memory: a tokenizer.json, or vocab.json + merges.txt (+ a
// tokenizer_config.json, may be NULL). name prefixes the messages.
int hf_tokenizer_from_json(HfTokenizer **out, const char *json, size_t n, const char *name);
int hf_tokenizer_from_vocab_merges(HfTokenizer **out, const char *vocab, size_t nv, const char *merges, size_t nm,
                                   const char *config, size_t nc, const char *name);
void hf_tokenizer_free(HfTokenizer *t);

// Ids 0..n-1 may occur (the largest id + 1; Qwen3: 151669, below the model's
// padded 151936).
int hf_tokenizer_n_ids(const HfTokenizer *t);
// Id of an added token by its content ("<|endoftext|>"), or -1.
int hf_tokenizer_added_id(const HfTokenizer *t, const char *content);
// 1 if id is an added token marked special.
int hf_tokenizer_is_special(const HfTokenizer *t, int id);

// Appends the ids of text[0..n) (any bytes) to out. -1 + err_msg only when out
// of memory or on an internal regex failure.
int hf_tokenizer_encode(HfTokenizer *t, const char *text, size_t n, HfIds *out);
// The raw bytes of token id (*len bytes, not NUL-terminated; NULL and 0 for an
// id out of range or unused).
const char *hf_tokenizer_token(const HfTokenizer *t, int id, size_t *len);

// For tests: the BPE of one piece (raw bytes) with the heap, and the plain
// quadratic reference (rescan every pair after each merge). Both append to out.
int hf_tokenizer_bpe(const HfTokenizer *t, const uint8_t *piece, size_t n, HfIds *out);
int hf_tokenizer_bpe_naive(const HfTokenizer *t, const uint8_t *piece, size_t n, HfIds *out);
// For tests: text with invalid UTF-8 replaced as in step 2 (malloc'd, *m bytes).
char *hf_utf8_sanitize(const char *s, size_t n, size_t *m);
