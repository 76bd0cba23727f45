// hf_tokenizer_internal: the tokenizer's tables, shared by its two files:
// hf_tokenizer.c (the BPE engine, the word cache, text handling, encode and
// decode) and hf_tokenizer_load.c (building the tables from tokenizer.json or
// vocab.json + merges.txt, files and directories).
#pragma once
#include "data/hf_tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <string.h>

#include "core/err.h"
#include "core/io.h"

#ifdef USE_PCRE2
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#endif
#ifdef USE_UTF8PROC
#include <utf8proc.h>
#endif
#ifdef USE_CJSON
#include <cjson/cJSON.h>
#endif


enum { KIND_NONE = 0, KIND_VOCAB = 1, KIND_ADDED = 2, KIND_SPECIAL = 3 };
// The word cache grows from CACHE_MIN slots and is dropped whole when it holds
// CACHE_MAX pieces (bounded memory on endless text; TinyStories has ~20k
// distinct pieces, a short prompt a few).
enum { CACHE_MIN = 1 << 10, CACHE_SLOTS = 1 << 17, CACHE_MAX = CACHE_SLOTS / 2 };

typedef struct {
    uint32_t off, len;  // content bytes in t->bytes
    int id;
} Added;

typedef struct {
    uint64_t hash;
    uint32_t key_off, key_len;  // piece bytes in chars
    uint32_t ids_off, ids_len;  // its ids in ids
} CacheEnt;

typedef struct {
    CacheEnt *slots;  // (nslots, a power of 2), key_len 0 = empty (pieces are never empty)
    size_t nslots, used;
    char *chars;
    size_t nchars, capchars;
    int *ids;
    size_t nids, capids;
} Cache;

struct HfTokenizer {
    int n_ids;           // largest id + 1
    uint32_t *off, *len; // (n_ids) each token's raw bytes in bytes[]
    uint8_t *kind;       // (n_ids) KIND_*
    char *bytes;
    size_t nbytes, capbytes;
    int32_t *piece_tab;  // open addressing: vocab token bytes -> id (-1 empty)
    size_t piece_mask;
    uint64_t *merge_key; // open addressing: (left id << 32 | right id) + 1, 0 = empty
    uint32_t *merge_rank;
    int32_t *merge_id;
    size_t merge_mask;
    int byte_id[256];    // the token of each single byte
    Added *added;        // sorted longest first
    int n_added;
    uint8_t added_first[256];  // 1 if some added token starts with this byte
    int nfc;             // the normalizer is NFC
    int ignore_merges;   // a piece that is a whole token is that token (Llama-3 style)
#ifdef USE_PCRE2
    pcre2_code *re;
    pcre2_match_data *md;
    int jit;
#endif
    Cache cache;
};

// --- tables ---------------------------------------------------------------------

static inline uint64_t hash_bytes(const void *p, size_t n) {
    const uint8_t *s = p;
    uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a, then a final mix for the low bits
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 32);
}

static inline uint64_t hash_u64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static inline int piece_find(const HfTokenizer *t, const char *s, size_t n) {
    for (size_t i = hash_bytes(s, n) & t->piece_mask;; i = (i + 1) & t->piece_mask) {
        int id = t->piece_tab[i];
        if (id < 0) return -1;
        if (t->len[id] == n && !memcmp(t->bytes + t->off[id], s, n)) return id;
    }
}

static inline int merge_find(const HfTokenizer *t, int a, int b, uint32_t *rank) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
    for (size_t i = hash_u64(key) & t->merge_mask;; i = (i + 1) & t->merge_mask) {
        if (t->merge_key[i] == 0) return -1;
        if (t->merge_key[i] == key) {
            *rank = t->merge_rank[i];
            return t->merge_id[i];
        }
    }
}

static inline int ids_push(HfIds *v, int id) {
    if (v->n == v->cap) {
        size_t c = v->cap ? 2 * v->cap : 256;
        int *p = realloc(v->ids, c * sizeof *p);
        if (!p) return err_set("out of memory for %zu token ids", c);
        v->ids = p;
        v->cap = c;
    }
    v->ids[v->n++] = id;
    return 0;
}

// hf_tokenizer.c: the length of the UTF-8 sequence at s (1 with *bad set for
// an ill-formed one, as the text is repaired).
size_t hf_utf8_seq(const uint8_t *s, size_t n, size_t *bad);
