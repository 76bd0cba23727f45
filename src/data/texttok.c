// texttok: see texttok.h.
#include "data/texttok.h"

#include <stdint.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/err.h"
#include "core/io.h"

// Files people pass to --tokenizer by mistake, named by their first bytes.
static const char *other_kind(const uint8_t *b, size_t n) {
    if (n >= 8 && !memcmp(b, "ANETCKPT", 8)) return "an anetrain checkpoint";
    if (n >= 4 && !memcmp(b, "ak42", 4)) return "a llama2.c model file (v1/v2)";
    if (n >= 4 && !memcmp(b, "ANTK", 4)) return "an anetrain token file";
    if (n >= 4 && (io_le32(b) == 20240520u || io_le32(b) == 20240801u)) return "an llm.c token shard";
    if (n >= 9 && io_le64(b) > 0 && io_le64(b) < n && b[8] == '{') return "a safetensors weight file";
    return NULL;
}

// A merges.txt without its "#version" line: text where a tokenizer.bin has its
// small max_token_length (a little-endian u32 below 2^16).
static int merges_like(const uint8_t *b, size_t n) {
    if (n < 16 || io_le32(b) <= (1u << 16)) return 0;
    for (size_t k = 0; k < 16; k++)
        if (b[k] < 0x20 && b[k] != '\n' && b[k] != '\t' && b[k] != '\r') return 0;
    return 1;
}

static int open_hf(TextTok *t, const char *path) {
    if (hf_tokenizer_open(&t->hf, path) != 0) return -1;
    t->kind = TEXTTOK_HF;
    t->vocab_size = hf_tokenizer_n_ids(t->hf);
    t->sep_id = hf_tokenizer_added_id(t->hf, "<|endoftext|>");
    t->sep_name = "<|endoftext|>";
    return 0;
}

int texttok_open(TextTok *t, const char *path, int vocab_size) {
    memset(t, 0, sizeof *t);
    t->sep_id = -1;
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return open_hf(t, path);
    MappedFile m;
    if (io_map(&m, path) != 0) return -1;
    int hf = hf_tokenizer_sniff(m.data, m.size) || merges_like(m.data, m.size);
    const char *other = other_kind(m.data, m.size);
    io_unmap(&m);
    if (other)  // first: a checkpoint's magic is text-like too
        return err_set("%s: expected a tokenizer (llama2.c tokenizer.bin, or Hugging Face tokenizer.json / vocab.json / "
                       "merges.txt / a directory), found %s", path, other);
    if (hf) return open_hf(t, path);
    if (vocab_size == 0 && tokenizer_file_count(path, &vocab_size) != 0) return -1;
    if (tokenizer_init(&t->sp, path, vocab_size) != 0) return -1;
    t->kind = TEXTTOK_LLAMA2C;
    t->vocab_size = vocab_size;
    t->sep_id = TOK_BOS;
    t->sep_name = "BOS";
    return 0;
}

void texttok_free(TextTok *t) {
    if (t->kind == TEXTTOK_LLAMA2C) tokenizer_free(&t->sp);
    hf_tokenizer_free(t->hf);
    memset(t, 0, sizeof *t);
}

const char *texttok_kind_name(const TextTok *t) {
    return t->kind == TEXTTOK_HF ? "Hugging Face byte-level BPE" : "llama2.c tokenizer.bin";
}

static int encode_llama2c(TextTok *t, const char *text, size_t n, int sep, int **ids, size_t *n_ids) {
    // tokenizer_encode takes a C string and counts in int: refuse what it would cut
    if (memchr(text, 0, n)) return err_set("text with a NUL byte at byte %zu: the llama2.c tokenizer reads C strings",
                                           (size_t)((const char *)memchr(text, 0, n) - text));
    if (n > (size_t)INT_MAX - 3) return err_set("%zu bytes of text in one piece (at most %d)", n, INT_MAX - 3);
    char *s = malloc(n + 1);
    int *out = s ? malloc((n + 3) * sizeof *out) : NULL;
    if (!out) {
        free(s);
        return err_set("out of memory for %zu bytes of text", n);
    }
    memcpy(s, text, n);
    s[n] = 0;
    int k = 0, rc = tokenizer_encode(&t->sp, s, sep, 0, out, &k);
    free(s);
    if (rc != 0) {
        free(out);
        return -1;
    }
    *ids = out;
    *n_ids = (size_t)k;
    return 0;
}

int texttok_encode(TextTok *t, const char *text, size_t n, int sep, int **ids, size_t *n_ids) {
    *ids = NULL;
    *n_ids = 0;
    if (t->kind == TEXTTOK_LLAMA2C) return encode_llama2c(t, text, n, sep, ids, n_ids);
    if (sep && t->sep_id < 0) return err_set("this tokenizer has no <|endoftext|> token to separate documents");
    HfIds v = {0};
    v.cap = n / 3 + 16;  // about 4 bytes per token in English; grows as needed
    if (!(v.ids = malloc(v.cap * sizeof *v.ids))) return err_set("out of memory for %zu token ids", v.cap);
    if (sep) v.ids[v.n++] = t->sep_id;
    if (hf_tokenizer_encode(t->hf, text, n, &v) != 0) {
        free(v.ids);
        return -1;
    }
    *ids = v.ids;
    *n_ids = v.n;
    return 0;
}

void texttok_decoder_init(TextDecoder *d, const TextTok *t, int prev_token) {
    memset(d, 0, sizeof *d);
    d->t = t;
    d->prev = prev_token;
}

// Bytes a UTF-8 sequence with this lead byte needs (0: never a lead byte).
static int utf8_need(unsigned char c) {
    return c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
}

// 1 if b (the k-th byte, k >= 1) may follow lead byte c (the Unicode table 3-7 ranges).
static int utf8_cont_ok(unsigned char c, int k, unsigned char b) {
    unsigned char lo = 0x80, hi = 0xBF;
    if (k == 1) {
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    }
    return b >= lo && b <= hi;
}

static void out_bytes(TextDecoder *d, size_t *o, const void *s, size_t n) {
    if (*o + n < sizeof d->out) memcpy(d->out + *o, s, n), *o += n;
}

// Feeds one byte: completes, extends or breaks the pending character.
static void feed(TextDecoder *d, size_t *o, unsigned char b) {
    if (d->npend > 0) {
        if (utf8_cont_ok(d->pend[0], d->npend, b)) {
            d->pend[d->npend++] = b;
            if (d->npend == utf8_need(d->pend[0])) out_bytes(d, o, d->pend, (size_t)d->npend), d->npend = 0;
            return;
        }
        out_bytes(d, o, "\xEF\xBF\xBD", 3);  // a maximal ill-formed subpart: one U+FFFD
        d->npend = 0;
    }
    int need = utf8_need(b);
    if (need == 1) out_bytes(d, o, &b, 1);
    else if (need == 0) out_bytes(d, o, "\xEF\xBF\xBD", 3);
    else d->pend[d->npend++] = b;
}

const char *texttok_decode(TextDecoder *d, int token) {
    const TextTok *t = d->t;
    d->out[0] = 0;
    if (t->kind == TEXTTOK_LLAMA2C) {
        const char *piece = tokenizer_decode(&t->sp, d->prev, token);
        d->prev = token;
        return tokenizer_piece_printable(piece) ? piece : "";
    }
    size_t len, o = 0;
    const char *s = hf_tokenizer_token(t->hf, token, &len);
    for (size_t i = 0; i < len; i++) feed(d, &o, (unsigned char)s[i]);
    d->out[o] = 0;
    d->prev = token;
    return d->out;
}

const char *texttok_decoder_flush(TextDecoder *d) {
    d->out[0] = 0;
    if (d->npend > 0) memcpy(d->out, "\xEF\xBF\xBD", 4);
    d->npend = 0;
    return d->out;
}
