// hf_tokenizer: see hf_tokenizer.h. This file: the BPE engine, the word cache,
// text (UTF-8 repair, NFC, regex split), encode and decode; the tables are
// built in hf_tokenizer_load.c.
#include "data/hf_tokenizer_internal.h"

// --- the BPE engine -----------------------------------------------------------------

// The reference: after each merge, rescan every adjacent pair for the lowest
// rank (leftmost on ties). O(n^2) per piece; the tests hold the heap to it.
int hf_tokenizer_bpe_naive(const HfTokenizer *t, const uint8_t *piece, size_t n, HfIds *out) {
    int *sym = malloc((n ? n : 1) * sizeof *sym);
    if (!sym) return err_set("out of memory for a %zu-byte piece", n);
    for (size_t i = 0; i < n; i++) sym[i] = t->byte_id[piece[i]];
    size_t m = n;
    for (;;) {
        uint32_t best = UINT32_MAX, r;
        size_t at = 0;
        int best_id = -1;
        for (size_t i = 0; i + 1 < m; i++) {
            int id = merge_find(t, sym[i], sym[i + 1], &r);
            if (id >= 0 && r < best) best = r, at = i, best_id = id;
        }
        if (best_id < 0) break;
        sym[at] = best_id;
        memmove(sym + at + 1, sym + at + 2, (m - at - 2) * sizeof *sym);
        m--;
    }
    int rc = 0;
    for (size_t i = 0; i < m && rc == 0; i++) rc = ids_push(out, sym[i]);
    free(sym);
    return rc;
}

typedef struct {
    uint32_t rank;
    int32_t pos;     // index of the left symbol
    int32_t new_id;  // what the pair merges into (stale entries no longer match)
} Cand;

static int cand_less(Cand a, Cand b) { return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos); }

static void heap_push(Cand *h, int *n, Cand c) {
    int i = (*n)++;
    while (i > 0 && cand_less(c, h[(i - 1) / 2])) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = c;
}

static Cand heap_pop(Cand *h, int *n) {
    Cand top = h[0], last = h[--(*n)];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && cand_less(h[c + 1], h[c])) c++;
        if (!cand_less(h[c], last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n > 0) h[i] = last;
    return top;
}

typedef struct {
    int32_t id, prev, next;  // symbols as a linked list over the piece's bytes; id -1 = merged away
} Sym;

static void push_pair(const HfTokenizer *t, const Sym *s, int pos, Cand *h, int *nh) {
    if (pos < 0 || s[pos].next < 0) return;
    uint32_t rank;
    int id = merge_find(t, s[pos].id, s[s[pos].next].id, &rank);
    if (id >= 0) heap_push(h, nh, (Cand){rank, pos, id});
}

// The same result with a heap of candidate pairs: O(n log n). Each merge
// leaves at most two new pairs, so the heap never exceeds 2n entries.
int hf_tokenizer_bpe(const HfTokenizer *t, const uint8_t *piece, size_t n, HfIds *out) {
    enum { STACK = 64 };
    Sym s_stack[STACK];
    Cand h_stack[2 * STACK];
    Sym *s = n <= STACK ? s_stack : malloc(n * sizeof *s);
    Cand *h = n <= STACK ? h_stack : malloc(2 * n * sizeof *h);
    int rc = 0, nh = 0;
    if (!s || !h) {
        rc = err_set("out of memory for a %zu-byte piece", n);
        goto done;
    }
    for (size_t i = 0; i < n; i++) s[i] = (Sym){t->byte_id[piece[i]], (int)i - 1, i + 1 < n ? (int)i + 1 : -1};
    for (size_t i = 0; i + 1 < n; i++) push_pair(t, s, (int)i, h, &nh);
    while (nh > 0) {
        Cand c = heap_pop(h, &nh);
        Sym *a = &s[c.pos];
        uint32_t r;
        if (a->id < 0 || a->next < 0 || merge_find(t, a->id, s[a->next].id, &r) != c.new_id) continue;
        Sym *b = &s[a->next];
        a->id = c.new_id;
        a->next = b->next;
        if (b->next >= 0) s[b->next].prev = c.pos;
        b->id = -1;
        push_pair(t, s, a->prev, h, &nh);
        push_pair(t, s, c.pos, h, &nh);
    }
    for (int i = n ? 0 : -1; i >= 0 && rc == 0; i = s[i].next) rc = ids_push(out, s[i].id);
done:
    if (s != s_stack) free(s);
    if (h != h_stack) free(h);
    return rc;
}

// --- the word cache ---------------------------------------------------------------

static void cache_free(Cache *c) {
    free(c->slots);
    free(c->chars);
    free(c->ids);
    memset(c, 0, sizeof *c);
}

static void cache_clear(Cache *c) {
    memset(c->slots, 0, c->nslots * sizeof *c->slots);
    c->used = c->nchars = c->nids = 0;
}

// Makes room for one more entry: doubles the table at half load (rehashing by
// the stored hashes), or empties it at CACHE_MAX.
static int cache_reserve(Cache *c) {
    if (c->used >= CACHE_MAX) {
        cache_clear(c);
        return 0;
    }
    if (c->slots && 2 * (c->used + 1) <= c->nslots) return 0;
    size_t n = c->nslots ? 2 * c->nslots : CACHE_MIN;
    CacheEnt *s = calloc(n, sizeof *s);
    if (!s) return err_set("out of memory for the tokenizer's word cache");
    for (size_t i = 0; i < c->nslots; i++) {
        if (!c->slots[i].key_len) continue;
        size_t j = c->slots[i].hash & (n - 1);
        while (s[j].key_len) j = (j + 1) & (n - 1);
        s[j] = c->slots[i];
    }
    free(c->slots);
    c->slots = s;
    c->nslots = n;
    return 0;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 4096;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return err_set("out of memory for the tokenizer's word cache");
    *p = q;
    *cap = c;
    return 0;
}

// The ids of piece[0..n): from the cache, or by BPE (then cached).
static int encode_piece(HfTokenizer *t, const char *piece, size_t n, HfIds *out) {
    Cache *c = &t->cache;
    if (t->ignore_merges) {
        int id = piece_find(t, piece, n);
        if (id >= 0) return ids_push(out, id);
    }
    if (n > 256) return hf_tokenizer_bpe(t, (const uint8_t *)piece, n, out);  // rare; keeps the cache small
    uint64_t h = hash_bytes(piece, n);
    size_t mask = c->nslots - 1, i = h & mask;
    for (; c->nslots && c->slots[i].key_len; i = (i + 1) & mask) {
        CacheEnt *e = &c->slots[i];
        if (e->hash == h && e->key_len == n && !memcmp(c->chars + e->key_off, piece, n)) {
            for (uint32_t k = 0; k < e->ids_len; k++)
                if (ids_push(out, c->ids[e->ids_off + k]) != 0) return -1;
            return 0;
        }
    }
    size_t first = out->n;
    if (hf_tokenizer_bpe(t, (const uint8_t *)piece, n, out) != 0) return -1;
    size_t k = out->n - first;
    if (cache_reserve(c) != 0) return -1;
    mask = c->nslots - 1;
    for (i = h & mask; c->slots[i].key_len; i = (i + 1) & mask) {}
    if (grow((void **)&c->chars, &c->capchars, c->nchars + n, 1) != 0 ||
        grow((void **)&c->ids, &c->capids, c->nids + k, sizeof(int)) != 0)
        return -1;
    c->slots[i] = (CacheEnt){h, (uint32_t)c->nchars, (uint32_t)n, (uint32_t)c->nids, (uint32_t)k};
    memcpy(c->chars + c->nchars, piece, n);
    memcpy(c->ids + c->nids, out->ids + first, k * sizeof(int));
    c->nchars += n;
    c->nids += k;
    c->used++;
    return 0;
}

// --- text: UTF-8 repair, NFC, regex split --------------------------------------------

// Length of the valid UTF-8 sequence at s[0..n), or 0 if invalid; *bad = the
// bytes of the maximal ill-formed subpart (at least 1) when invalid.
size_t hf_utf8_seq(const uint8_t *s, size_t n, size_t *bad) {
    uint8_t c = s[0];
    if (c < 0x80) return 1;
    size_t len;
    uint8_t lo = 0x80, hi = 0xBF;  // the range of the second byte
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else {
        *bad = 1;
        return 0;
    }
    size_t i = 1;
    for (; i < len && i < n; i++) {
        uint8_t b = s[i];
        if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) break;
    }
    if (i == len) return len;
    *bad = i;
    return 0;
}

// 1 if s[0..n) is valid UTF-8; *ascii = 1 if it is all ASCII.
static int utf8_valid(const char *s, size_t n, int *ascii) {
    const uint8_t *u = (const uint8_t *)s;
    size_t i = 0, bad;
    *ascii = 1;
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        *ascii = 0;
        size_t k = hf_utf8_seq(u + i, n - i, &bad);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

char *hf_utf8_sanitize(const char *s, size_t n, size_t *m) {
    char *o = malloc(3 * n + 1);  // each bad byte becomes at most 3
    if (!o) {
        err_set("out of memory for %zu bytes of text", n);
        return NULL;
    }
    const uint8_t *u = (const uint8_t *)s;
    size_t i = 0, j = 0, bad;
    while (i < n) {
        size_t k = hf_utf8_seq(u + i, n - i, &bad);
        if (k) {
            memcpy(o + j, s + i, k);
            i += k, j += k;
        } else {
            memcpy(o + j, "\xEF\xBF\xBD", 3);
            i += bad, j += 3;
        }
    }
    o[j] = 0;
    *m = j;
    return o;
}

static int split_and_encode(HfTokenizer *t, const char *s, size_t n, HfIds *out) {
#ifdef USE_PCRE2
    size_t off = 0;
    while (off < n) {
        int rc = t->jit ? pcre2_jit_match(t->re, (PCRE2_SPTR)s, n, off, PCRE2_NOTEMPTY, t->md, NULL)
                        : pcre2_match(t->re, (PCRE2_SPTR)s, n, off, PCRE2_NOTEMPTY | PCRE2_NO_UTF_CHECK, t->md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) return err_set("tokenizer: the split regex failed (PCRE2 error %d)", rc);
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(t->md);
        if (ov[0] > off && encode_piece(t, s + off, ov[0] - off, out) != 0) return -1;  // a gap is a piece too
        if (encode_piece(t, s + ov[0], ov[1] - ov[0], out) != 0) return -1;
        off = ov[1];
    }
    return off < n ? encode_piece(t, s + off, n - off, out) : 0;
#else
    return encode_piece(t, s, n, out);  // never reached: without PCRE2 every loader refuses
#endif
}

#ifdef USE_UTF8PROC
// NFC of s[0..n) (valid UTF-8), malloc'd. Only the non-ASCII runs, each with
// the character before it, go through utf8proc: an ASCII character has
// combining class 0, is NFC, and no composition has it as its second element,
// so nothing reorders or composes across the place before one — NFC of the
// pieces is NFC of the whole, and English text skips utf8proc almost always.
static char *nfc(const char *s, size_t n, size_t *m) {
    char *o = malloc(n + 1);
    size_t j = 0, cap = n + 1, i = 0;
    if (!o) goto oom;
    while (i < n) {
        size_t a = i;
        while (i < n && (uint8_t)s[i] < 0x80) i++;
        size_t b = i;  // [a, b) ASCII; then the non-ASCII run [b, i) with s[b-1] before it
        while (i < n && (uint8_t)s[i] >= 0x80) i++;
        size_t keep = b > a && i > b ? b - 1 : b;  // the last ASCII character joins the run
        uint8_t *u = NULL;
        utf8proc_ssize_t k = 0;
        if (i > b) {
            k = utf8proc_map((const uint8_t *)s + keep, (utf8proc_ssize_t)(i - keep), &u,
                             UTF8PROC_STABLE | UTF8PROC_COMPOSE);
            if (k < 0) {
                free(o);
                err_set("tokenizer: NFC failed: %s", utf8proc_errmsg(k));
                return NULL;
            }
        }
        if (j + (keep - a) + (size_t)k + 1 > cap) {
            cap = 2 * (j + (keep - a) + (size_t)k + 1);
            char *p = realloc(o, cap);
            if (!p) {
                free(u);
                goto oom;
            }
            o = p;
        }
        memcpy(o + j, s + a, keep - a), j += keep - a;
        if (k) memcpy(o + j, u, (size_t)k), j += (size_t)k;
        free(u);
    }
    o[j] = 0;
    *m = j;
    return o;
oom:
    free(o);
    err_set("out of memory for %zu bytes of text", n);
    return NULL;
}
#endif

// One stretch of text without added tokens: repair, normalize, split, BPE.
static int encode_segment(HfTokenizer *t, const char *s, size_t n, HfIds *out) {
    if (n == 0) return 0;
    int ascii = 0, rc;
    char *fixed = NULL;
    char *norm = NULL;
    if (!utf8_valid(s, n, &ascii)) {
        if (!(fixed = hf_utf8_sanitize(s, n, &n))) return -1;
        s = fixed;
    }
#ifdef USE_UTF8PROC
    if (t->nfc && !ascii) {  // ASCII is always NFC
        if (!(norm = nfc(s, n, &n))) {
            free(fixed);
            return -1;
        }
        s = norm;
    }
#endif
    rc = split_and_encode(t, s, n, out);
    free(norm);
    free(fixed);
    return rc;
}

// --- encode / decode ------------------------------------------------------------------

static const Added *added_at(const HfTokenizer *t, const char *s, size_t n) {
    for (int k = 0; k < t->n_added; k++) {  // longest first: the first match is the longest
        const Added *a = &t->added[k];
        if (a->len <= n && (uint8_t)t->bytes[a->off] == (uint8_t)s[0] && !memcmp(t->bytes + a->off, s, a->len))
            return a;
    }
    return NULL;
}

int hf_tokenizer_encode(HfTokenizer *t, const char *text, size_t n, HfIds *out) {
    size_t seg = 0;  // start of the current stretch without added tokens
    for (size_t i = 0; i < n; i++) {
        if (!t->added_first[(uint8_t)text[i]]) continue;
        const Added *a = added_at(t, text + i, n - i);
        if (!a) continue;
        if (encode_segment(t, text + seg, i - seg, out) != 0 || ids_push(out, a->id) != 0) return -1;
        i += a->len - 1;
        seg = i + 1;
    }
    return encode_segment(t, text + seg, n - seg, out);
}

const char *hf_tokenizer_token(const HfTokenizer *t, int id, size_t *len) {
    if (id < 0 || id >= t->n_ids || t->kind[id] == KIND_NONE) {
        *len = 0;
        return NULL;
    }
    *len = t->len[id];
    return t->bytes + t->off[id];
}

int hf_tokenizer_n_ids(const HfTokenizer *t) { return t->n_ids; }

int hf_tokenizer_added_id(const HfTokenizer *t, const char *content) {
    size_t n = strlen(content);
    for (int k = 0; k < t->n_added; k++)
        if (t->added[k].len == n && !memcmp(t->bytes + t->added[k].off, content, n)) return t->added[k].id;
    return -1;
}

int hf_tokenizer_is_special(const HfTokenizer *t, int id) {
    return id >= 0 && id < t->n_ids && t->kind[id] == KIND_SPECIAL;
}

void hf_tokenizer_free(HfTokenizer *t) {
    if (!t) return;
    free(t->off);
    free(t->len);
    free(t->kind);
    free(t->bytes);
    free(t->piece_tab);
    free(t->merge_key);
    free(t->merge_rank);
    free(t->merge_id);
    free(t->added);
#ifdef USE_PCRE2
    pcre2_match_data_free(t->md);
    pcre2_code_free(t->re);
#endif
    cache_free(&t->cache);
    memset(t, 0, sizeof *t);
    free(t);
}

int hf_tokenizer_available(const char **missing) {
    const char *m = NULL;
#ifndef USE_CJSON
    m = "cJSON (reads tokenizer.json / vocab.json; apt-get install libcjson-dev, or brew install cjson)";
#endif
#ifndef USE_UTF8PROC
    m = "utf8proc (NFC normalization; apt-get install libutf8proc-dev, or brew install utf8proc)";
#endif
#ifndef USE_PCRE2
    m = "PCRE2 (the split regex; apt-get install libpcre2-dev, or brew install pcre2)";
#endif
    if (missing) *missing = m;
    return m == NULL;
}

int hf_tokenizer_sniff(const uint8_t *b, size_t n) {
    size_t i = n >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF ? 3 : 0;  // UTF-8 BOM
    while (i < n && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r')) i++;
    if (i < n && b[i] == '{') {  // a JSON object: '{' then a key or '}' (a tokenizer.bin never looks so)
        size_t j = i + 1;
        while (j < n && (b[j] == ' ' || b[j] == '\t' || b[j] == '\n' || b[j] == '\r')) j++;
        return j < n && (b[j] == '"' || b[j] == '}');
    }
    return n - i >= 8 && !memcmp(b + i, "#version", 8);
}


