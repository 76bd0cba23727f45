// tokenizer: llama2.c tokenizer.bin loading, encode (run.c semantics), decode.
#include "data/tokenizer.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/io.h"

// Bytewise order, a proper prefix first; equal pieces by id so lookups of a
// duplicated piece deterministically find the lowest id.
static int cmp_bytes(const char *a, int na, const char *b, int nb) {
    int c = memcmp(a, b, (size_t)(na < nb ? na : nb));
    if (c) return c;
    return (na > nb) - (na < nb);
}

static int cmp_index(const void *pa, const void *pb) {
    const TokenIndex *a = pa, *b = pb;
    int c = cmp_bytes(a->str, a->len, b->str, b->len);
    return c ? c : (a->id > b->id) - (a->id < b->id);
}

int tokenizer_lookup(const Tokenizer *t, const char *str, int len) {
    int lo = 0, hi = t->vocab_size;  // lower bound over sorted[]
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (cmp_bytes(t->sorted[mid].str, t->sorted[mid].len, str, len) < 0) lo = mid + 1;
        else hi = mid;
    }
    if (lo < t->vocab_size && cmp_bytes(t->sorted[lo].str, t->sorted[lo].len, str, len) == 0) return t->sorted[lo].id;
    return -1;
}

// Hugging Face tokenizer files, recognised by their bytes (never by name):
// JSON (tokenizer.json, vocab.json, tokenizer_config.json: '{' then '"' or
// '}') or text (merges.txt: "#version" or text bytes where a tokenizer.bin
// has its small max_token_length). NULL for anything else.
static const char *hf_tokenizer_kind(const uint8_t *b, size_t n) {
    size_t i = n >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF ? 3 : 0;  // UTF-8 BOM
    while (i < n && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r')) i++;
    if (i < n && b[i] == '{') {
        size_t j = i + 1;
        while (j < n && (b[j] == ' ' || b[j] == '\t' || b[j] == '\n' || b[j] == '\r')) j++;
        if (j < n && (b[j] == '"' || b[j] == '}')) return "this one is JSON";
    }
    if (n - i >= 8 && !memcmp(b + i, "#version", 8)) return "this one is a merges.txt";
    if (n >= 16 && io_le32(b) > (1u << 16)) {
        int text = 1;
        for (size_t k = 0; k < 16; k++) text &= b[k] >= 0x20 || b[k] == '\n' || b[k] == '\t' || b[k] == '\r';
        if (text) return "this one is text, like merges.txt";
    }
    return NULL;
}

// The file as a whole, before any entry: size cap, not a Hugging Face file,
// a plausible header.
static int check_file(const MappedFile *m, const char *path) {
    if (m->size > IO_TEXT_MAX)
        return err_set("%s: expected a llama2.c tokenizer.bin of at most %zu MiB, found %zu bytes", path,
                       IO_TEXT_MAX >> 20, m->size);
    const char *hf = hf_tokenizer_kind(m->data, m->size);
    if (hf)
        return err_set("%s: expected a llama2.c tokenizer.bin, found a Hugging Face tokenizer file (tokenizer.json / "
                       "vocab.json / merges.txt; %s): read it as a Hugging Face tokenizer (data/texttok.h; anetrain "
                       "tokenize and sample detect both kinds)", path, hf);
    if (m->size < 4)
        return err_set("%s: expected a llama2.c tokenizer (4-byte max_token_length header), found a %zu-byte file",
                       path, m->size);
    if (io_le32(m->data) == 0)
        return err_set("%s: expected a llama2.c tokenizer.bin (max_token_length >= 1, then the pieces), found "
                       "max_token_length 0 (not a tokenizer.bin?)", path);
    return 0;
}

// Ids 3..258 are the byte-fallback pieces "<0x00>".."<0xFF>": encode emits
// them for unknown bytes, so a file without them would encode garbage.
static int check_byte_piece(const char *path, int id, const uint8_t *piece, uint32_t len) {
    if (id < TOK_BYTE0 || id >= TOK_BYTE0 + 256) return 0;
    char want[8];
    snprintf(want, sizeof want, "<0x%02X>", id - TOK_BYTE0);
    if (len == 6 && !memcmp(piece, want, 6)) return 0;
    char found[40];
    size_t k = 0;
    for (uint32_t i = 0; i < len && k + 5 < sizeof found; i++)
        k += (size_t)snprintf(found + k, sizeof found - k, piece[i] >= 0x20 && piece[i] < 0x7f ? "%c" : "\\x%02x",
                              piece[i]);
    found[k] = 0;
    return err_set("%s: token %d: expected the byte-fallback piece \"%s\", found \"%s\" (%u bytes; not a llama2.c "
                   "tokenizer.bin?)", path, id, want, found, len);
}

// Walks `want` entries (all of them when want < 0) to validate them and size
// the blob; sets *count. Returns 0 or -1.
static int walk_entries(const MappedFile *m, const char *path, int want, int *count, size_t *blob_bytes) {
    if (check_file(m, path) != 0) return -1;
    uint32_t max_len = io_le32(m->data);
    size_t off = 4, total = 0;
    int i = 0;
    for (; want < 0 ? off < m->size : i < want; i++) {
        size_t left = m->size - off;
        if (left == 0)
            return err_set("%s: expected %d tokens (the model's vocab size), found %d", path, want, i);
        if (left < 8 && want < 0)
            return err_set("%s: expected whole entries, found %d and a truncated one (%zu of 8 header bytes at offset "
                           "%zu)", path, i, left, off);
        if (left < 8)
            return err_set("%s: expected %d tokens, found %d and a truncated entry (%zu of 8 header bytes at offset %zu)",
                           path, want, i, left, off);
        uint32_t len = io_le32(m->data + off + 4);
        if (len > left - 8)
            return err_set("%s: token %d at offset %zu claims %u bytes, but only %zu remain (truncated or not a "
                           "tokenizer.bin)", path, i, off, len, left - 8);
        if (len > max_len)
            return err_set("%s: token %d at offset %zu: expected at most max_token_length = %u bytes (the header), "
                           "found %u (not a tokenizer.bin?)", path, i, off, max_len, len);
        if (check_byte_piece(path, i, m->data + off + 8, len) != 0) return -1;
        off += 8 + len;
        total += len + 1;
    }
    if (i < TOK_BYTE0 + 256)
        return err_set("%s: expected at least 259 tokens (3 special and 256 byte-fallback), found %d", path, i);
    *count = i;
    *blob_bytes = total;
    return 0;
}

int tokenizer_file_count(const char *path, int *entries) {
    MappedFile m;
    if (io_map(&m, path) != 0) return -1;
    size_t blob = 0;
    int rc = walk_entries(&m, path, -1, entries, &blob);
    io_unmap(&m);
    return rc;
}

int tokenizer_init(Tokenizer *t, const char *path, int vocab_size) {
    memset(t, 0, sizeof *t);
    if (vocab_size < TOK_BYTE0 + 256)
        return err_set("%s: vocab size %d is too small for a llama2.c tokenizer (expected >= 259: 3 special and 256 "
                       "byte-fallback tokens)", path, vocab_size);
    MappedFile m;
    if (io_map(&m, path) != 0) return -1;
    size_t blob_bytes = 0;
    int count = 0;  // == vocab_size on success
    if (walk_entries(&m, path, vocab_size, &count, &blob_bytes) != 0) {
        io_unmap(&m);
        return -1;
    }
    t->vocab_size = vocab_size;
    t->vocab = malloc(sizeof(char *) * vocab_size);
    t->len = malloc(sizeof(int) * vocab_size);
    t->scores = malloc(sizeof(float) * vocab_size);
    t->sorted = malloc(sizeof(TokenIndex) * vocab_size);
    t->blob = malloc(blob_bytes);
    if (!t->vocab || !t->len || !t->scores || !t->sorted || !t->blob) {
        io_unmap(&m);
        tokenizer_free(t);
        return err_set("%s: out of memory for %d tokens", path, vocab_size);
    }
    size_t off = 4;
    char *dst = t->blob;
    for (int i = 0; i < vocab_size; i++) {
        uint32_t bits = io_le32(m.data + off), len = io_le32(m.data + off + 4);
        memcpy(&t->scores[i], &bits, sizeof(float));
        memcpy(dst, m.data + off + 8, len);
        dst[len] = '\0';
        t->vocab[i] = dst;
        t->len[i] = (int)len;
        if ((int)len > t->max_token_length) t->max_token_length = (int)len;
        t->sorted[i] = (TokenIndex){dst, (int)len, i};
        dst += len + 1;
        off += 8 + len;
    }
    io_unmap(&m);
    qsort(t->sorted, vocab_size, sizeof(TokenIndex), cmp_index);
    t->space_id = tokenizer_lookup(t, " ", 1);
    for (int b = 0; b < 256; b++) {
        t->byte_pieces[b][0] = (char)b;
        t->byte_pieces[b][1] = '\0';
    }
    return 0;
}

void tokenizer_free(Tokenizer *t) {
    free(t->vocab);
    free(t->len);
    free(t->scores);
    free(t->sorted);
    free(t->blob);
    memset(t, 0, sizeof *t);
}

// --- encode ---------------------------------------------------------------------------------
// run.c merges by rescanning every adjacent pair after each merge (quadratic).
// Here the pairs live in a max-heap ordered by (score desc, left position asc):
// the token list is a linked list over the initial positions, whose order never
// changes, so "smallest left position" is run.c's "leftmost pair" and the merge
// sequence is identical. Stale entries (a side already merged) are skipped on pop.

typedef struct {
    float score;
    int pos, right;        // left and right node of the pair
    int left_tok, right_tok;  // the tokens the pair was made from (validity check)
    int id;                // the merged token
} Pair;

static int pair_before(const Pair *a, const Pair *b) {
    return a->score > b->score || (a->score == b->score && a->pos < b->pos);
}

static void heap_push(Pair *h, int *n, Pair p) {
    int i = (*n)++;
    while (i > 0) {
        int up = (i - 1) / 2;
        if (!pair_before(&p, &h[up])) break;
        h[i] = h[up];
        i = up;
    }
    h[i] = p;
}

static Pair heap_pop(Pair *h, int *n) {
    Pair top = h[0], last = h[--(*n)];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && pair_before(&h[c + 1], &h[c])) c++;
        if (!pair_before(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n > 0) h[i] = last;
    return top;
}

// Pushes the pair (a, b) if their concatenation is a piece run.c would merge
// into (its best_score starts at -1e10, so lower or NaN scores never merge).
static void consider_pair(const Tokenizer *t, const int *tok, int a, int b, char *buf, Pair *heap, int *nheap) {
    if (a < 0 || b < 0) return;
    int ta = tok[a], tb = tok[b];
    memcpy(buf, t->vocab[ta], (size_t)t->len[ta]);
    memcpy(buf + t->len[ta], t->vocab[tb], (size_t)t->len[tb]);
    int id = tokenizer_lookup(t, buf, t->len[ta] + t->len[tb]);
    if (id < 0 || !(t->scores[id] > -1e10f)) return;
    heap_push(heap, nheap, (Pair){t->scores[id], a, b, ta, tb, id});
}

// Merges out[0..*n) in place.
static int merge_pairs(const Tokenizer *t, int *out, int *n) {
    const int m = *n;
    if (m < 2) return 0;
    int *next = malloc(sizeof(int) * m), *prev = malloc(sizeof(int) * m);
    Pair *heap = malloc(sizeof(Pair) * 3 * (size_t)m);  // m-1 initial pairs + at most 2 per merge
    char *buf = malloc(2 * (size_t)t->max_token_length + 1);
    if (!next || !prev || !heap || !buf) {
        free(next), free(prev), free(heap), free(buf);
        return err_set("tokenizer: out of memory encoding %d tokens", m);
    }
    int nheap = 0;
    for (int i = 0; i < m; i++) {
        next[i] = i + 1 < m ? i + 1 : -1;
        prev[i] = i - 1;
    }
    for (int i = 0; i + 1 < m; i++) consider_pair(t, out, i, i + 1, buf, heap, &nheap);
    while (nheap > 0) {
        Pair p = heap_pop(heap, &nheap);
        if (out[p.pos] != p.left_tok || next[p.pos] != p.right || out[p.right] != p.right_tok) continue;  // stale
        // merge: the left node takes the new token, the right node leaves the list
        out[p.pos] = p.id;
        out[p.right] = -1;
        next[p.pos] = next[p.right];
        if (next[p.pos] >= 0) prev[next[p.pos]] = p.pos;
        consider_pair(t, out, prev[p.pos], p.pos, buf, heap, &nheap);
        consider_pair(t, out, p.pos, next[p.pos], buf, heap, &nheap);
    }
    int k = 0;
    for (int i = 0; i >= 0; i = next[i]) out[k++] = out[i];  // node 0 is never merged away
    *n = k;
    free(next), free(prev), free(heap), free(buf);
    return 0;
}

int tokenizer_encode(const Tokenizer *t, const char *text, int bos, int eos, int *out, int *n) {
    *n = 0;
    if (bos) out[(*n)++] = TOK_BOS;
    const size_t L = strlen(text);
    // SentencePiece's add_dummy_prefix: a leading " " token, but only for non-empty text.
    // (Every real llama2.c vocab has " "; if one does not, its byte token stands in.)
    if (L > 0) out[(*n)++] = t->space_id >= 0 ? t->space_id : TOK_BYTE0 + ' ';
    // One token per UTF-8 codepoint: a byte plus the continuation bytes (10xxxxxx)
    // that follow it, at most 4 bytes in all (run.c groups exactly so, even for
    // invalid UTF-8). Unknown codepoints become one byte-fallback token per byte.
    for (size_t i = 0; i < L;) {
        size_t j = i + 1;
        while (j < L && ((unsigned char)text[j] & 0xC0) == 0x80 && j - i < 4) j++;
        int id = tokenizer_lookup(t, text + i, (int)(j - i));
        if (id >= 0) out[(*n)++] = id;
        else
            for (size_t b = i; b < j; b++) out[(*n)++] = TOK_BYTE0 + (unsigned char)text[b];
        i = j;
    }
    // run.c includes BOS in the merge scan too (it never merges in practice).
    if (merge_pairs(t, out, n) != 0) return -1;
    if (eos) out[(*n)++] = TOK_EOS;
    return 0;
}

// --- decode ---------------------------------------------------------------------------------

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// The byte of a "<0xHH>" piece, or -1. (run.c uses sscanf("<0x%02hhX>"), which
// also accepts pieces that merely start that way; no real vocab has those.)
static int byte_piece_value(const char *s) {
    if (strncmp(s, "<0x", 3) != 0 || s[5] != '>' || s[6] != '\0') return -1;
    int hi = hexval(s[3]), lo = hexval(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

const char *tokenizer_decode(const Tokenizer *t, int prev_token, int token) {
    if (token < 0 || token >= t->vocab_size) return "";
    const char *piece = t->vocab[token];
    if (prev_token == TOK_BOS && piece[0] == ' ') piece++;
    if (piece[0] == '<') {  // cheap pre-check: byte_piece_value reads up to 7 bytes
        size_t n = strnlen(piece, 7);
        int b = n == 6 ? byte_piece_value(piece) : -1;
        if (b >= 0) return t->byte_pieces[b];
    }
    return piece;
}

int tokenizer_piece_printable(const char *piece) {
    if (!piece || piece[0] == '\0') return 0;
    if (piece[1] == '\0') {
        unsigned char b = (unsigned char)piece[0];
        return isprint(b) || isspace(b);
    }
    return 1;
}
