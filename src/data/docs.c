#include "data/docs.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/io.h"
#include "data/corpus.h"

static int ids_push(TokenIds *v, const int *x, size_t n) {
    if (v->n + n > v->cap) {
        size_t c = v->cap ? v->cap : (size_t)1 << 20;
        while (c < v->n + n) c *= 2;
        uint32_t *p = realloc(v->ids, c * sizeof *p);
        if (!p) return err_set("out of memory for %zu tokens", c);
        v->ids = p;
        v->cap = c;
    }
    for (size_t i = 0; i < n; i++) v->ids[v->n++] = (uint32_t)x[i];
    return 0;
}

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!strchr(" \t\r\f\v", s[i])) return 0;
    return 1;
}

static int is_eot_line(const char *s, size_t n) {
    while (n && (s[n - 1] == '\r' || s[n - 1] == ' ')) n--;  // CRLF files
    return n == strlen(CORPUS_EOT) && !memcmp(s, CORPUS_EOT, n);
}

// auto: a file with any "<|endoftext|>" line is in TinyStories-train format.
static DocSplit detect_split(const char *t, size_t n) {
    for (size_t i = 0; i < n;) {
        const char *nl = memchr(t + i, '\n', n - i);
        size_t e = nl ? (size_t)(nl - t) : n;
        if (is_eot_line(t + i, e - i)) return DOCS_EOT;
        i = e + 1;
    }
    return DOCS_BLANK;
}

typedef struct {
    TextTok *tok;
    TokenIds *out;
    size_t docs;
} Encoder;

// Strips t[a..z) (Python str.strip) and encodes it after the separator; empty
// documents are skipped.
static int encode_doc(Encoder *e, const char *t, size_t a, size_t z) {
    while (a < z && strchr(" \t\n\r\f\v", t[a])) a++;
    while (z > a && strchr(" \t\n\r\f\v", t[z - 1])) z--;
    if (z == a) return 0;
    int *ids;
    size_t k;
    if (texttok_encode(e->tok, t + a, z - a, 1, &ids, &k) != 0) return -1;
    e->docs++;
    int rc = ids_push(e->out, ids, k);
    free(ids);
    return rc;
}

int docs_tokenize_raw(TextTok *tok, const char *t, size_t n, TokenIds *out) {
    int *ids;
    size_t k;
    if (texttok_encode(tok, t, n, 0, &ids, &k) != 0) return -1;
    int rc = ids_push(out, ids, k);
    free(ids);
    return rc;
}

int docs_tokenize(TextTok *tok, const char *t, size_t n, DocSplit split, TokenIds *out, size_t *docs) {
    Encoder e = {tok, out, 0};
    if (split == DOCS_AUTO) split = detect_split(t, n);
    int rc = 0;
    size_t doc = 0;  // start of the current document
    for (size_t i = 0; i < n && rc == 0;) {
        const char *nl = memchr(t + i, '\n', n - i);
        size_t e_ = nl ? (size_t)(nl - t) : n;
        int boundary = split == DOCS_EOT ? is_eot_line(t + i, e_ - i) : is_blank(t + i, e_ - i);
        if (boundary) {
            rc = encode_doc(&e, t, doc, i);
            doc = e_ + 1 < n ? e_ + 1 : n;
        }
        i = e_ + 1;
    }
    if (rc == 0 && doc < n) rc = encode_doc(&e, t, doc, n);
    if (docs) *docs = e.docs;
    return rc;
}

DocSplit docs_detect(const char *t, size_t n) { return detect_split(t, n); }

void token_ids_free(TokenIds *v) {
    free(v->ids);
    memset(v, 0, sizeof *v);
}
