// The built-in story corpus and vocabulary, and `anetrain tokenize` end to end:
// document splitting (both formats), BOS per document, uint16 output that
// decodes back to the stripped text.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/io.h"
#include "core/timer.h"
#include "data/corpus.h"
#include "data/dataset.h"
#include "data/tokenizer.h"
#include "test.h"

static const char *tmp_path(const char *name) {
    static char p[8][512];
    static int slot;
    char *s = p[slot++ % 8];
    snprintf(s, 512, "%s/%s", test_tmpdir(), name);
    return s;
}

// --- an independent reference for documents: (start, length) of stripped text -------------

typedef struct {
    const char *p;
    size_t n;
} Doc;

static int ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

static void push_stripped(Doc *docs, int *n, const char *a, const char *z) {
    while (a < z && ws(*a)) a++;
    while (z > a && ws(z[-1])) z--;
    if (z > a) docs[(*n)++] = (Doc){a, (size_t)(z - a)};
}

// TinyStories-train format: split on "\n<|endoftext|>\n".
static int split_eot(const char *t, Doc *docs) {
    int n = 0;
    const char *sep = "\n" CORPUS_EOT "\n";
    for (const char *p = t;;) {
        const char *e = strstr(p, sep);
        push_stripped(docs, &n, p, e ? e : p + strlen(p));
        if (!e) return n;
        p = e + strlen(sep);
    }
}

// HF-rows format: groups of lines without a whitespace-only line between them.
static int split_blank(const char *t, Doc *docs) {
    int n = 0;
    const char *start = t;
    for (const char *p = t; *p;) {
        const char *nl = strchr(p, '\n');
        const char *e = nl ? nl : p + strlen(p);
        int blank = 1;
        for (const char *q = p; q < e; q++) blank &= ws(*q);
        if (blank) {
            push_stripped(docs, &n, start, p);
            start = e;
        }
        p = nl ? nl + 1 : e;
    }
    push_stripped(docs, &n, start, t + strlen(t));
    return n;
}

// Checks that ids (BOS-separated documents) decode to docs[]; returns the number of mismatches.
static int check_decodes(const Tokenizer *tok, const TokenFile *tf, const Doc *docs, int n_docs) {
    size_t cap = 1 << 16, len = 0;
    char *s = malloc(cap);
    int d = -1, bad = 0;
    for (size_t i = 0; i <= tf->count; i++) {
        int id = i < tf->count ? tokens_get(tf, i) : TOK_BOS;
        if (id == TOK_BOS) {
            if (d >= 0) {
                int ok = d < n_docs && len == docs[d].n && !memcmp(s, docs[d].p, len);
                if (!ok && bad++ < 3) {
                    fprintf(stderr, "  document %d decodes differently (%zu vs %zu bytes):\n  got:  %.120s\n", d,
                            len, d < n_docs ? docs[d].n : 0, s);
                    if (d < n_docs) fprintf(stderr, "  want: %.120s\n", docs[d].p);
                }
            }
            d++;
            len = 0;
            continue;
        }
        const char *piece = tokenizer_decode(tok, tokens_get(tf, i - 1), id);
        size_t k = strlen(piece);
        if (len + k + 1 > cap) s = realloc(s, cap = 2 * (len + k + 1));
        memcpy(s + len, piece, k);
        len += k;
    }
    free(s);
    return bad + (d != n_docs);
}

static size_t count_bos(const TokenFile *tf) {
    size_t n = 0;
    for (size_t i = 0; i < tf->count; i++) n += tokens_get(tf, i) == TOK_BOS;
    return n;
}

// --- the corpus -------------------------------------------------------------------------------

TEST(corpus_deterministic_and_well_formed) {
    char *a = NULL, *b = NULL, *c = NULL;
    size_t na, nb, nc;
    double t0 = time_ms();
    REQUIRE(corpus_generate(42, 6000, &a, &na) == 0);
    double ms = time_ms() - t0;
    REQUIRE(corpus_generate(42, 6000, &b, &nb) == 0);
    REQUIRE(corpus_generate(43, 6000, &c, &nc) == 0);
    CHECK(na == nb && !memcmp(a, b, na));
    CHECK(na != nc || memcmp(a, c, na) != 0);
    CHECKF(na > 1000000 && na < 5000000, "6000 stories = %zu bytes (expected 1-5 MB)", na);
    printf("  corpus: 6000 stories, %.2f MB in %.0f ms\n", na / 1e6, ms);
    CHECK(strlen(a) == na);
    int ascii = 1;
    for (size_t i = 0; i < na; i++) ascii &= a[i] > 0 && (a[i] == '\n' || (a[i] >= 32 && a[i] < 127));
    CHECK(ascii);
    // every story ends with an <|endoftext|> line, TinyStories-train style
    const char *tail = "\n" CORPUS_EOT "\n";
    CHECK(na > strlen(tail) && !strcmp(a + na - strlen(tail), tail));
    Doc *docs = malloc(sizeof(Doc) * 6001);
    int n = split_eot(a, docs);
    CHECKF(n == 6000, "%d stories", n);
    // each story: several paragraphs, a moral at the end, dialogue in quotes
    int quotes = 0, moral = 0, shapes_ok = 1;
    for (int i = 0; i < n; i++) {
        int paras = 1, q = 0;
        for (size_t k = 0; k < docs[i].n; k++) paras += docs[i].p[k] == '\n', q += docs[i].p[k] == '"';
        shapes_ok &= paras >= 2 && q % 2 == 0 && docs[i].p[docs[i].n - 1] == '.';
        quotes += q > 0;
        char *last = memrchr(docs[i].p, '\n', docs[i].n);
        size_t off = last ? (size_t)(last - docs[i].p) : 0;
        moral += memmem(docs[i].p + off, docs[i].n - off, " that ", 6) != NULL;
    }
    CHECK(shapes_ok);
    CHECKF(quotes > n * 9 / 10, "%d of %d stories have dialogue", quotes, n);
    CHECKF(moral == n, "%d of %d stories end with a moral", moral, n);
    // the zero-story corpus is an empty string
    char *e = NULL;
    size_t ne = 1;
    REQUIRE(corpus_generate(1, 0, &e, &ne) == 0);
    CHECK(e && ne == 0 && e[0] == '\0');
    free(c);
    CHECK(corpus_generate(1, -1, &c, &nc) != 0);
    CHECK(c == NULL);
    free(docs), free(a), free(b), free(e);
}

TEST(corpus_vocab_layout_like_tok512) {
    const char *p1 = tmp_path("builtin_tok1.bin"), *p2 = tmp_path("builtin_tok2.bin");
    REQUIRE(corpus_write_tokenizer(p1) == 0);
    REQUIRE(corpus_write_tokenizer(p2) == 0);
    char *b1, *b2;
    size_t n1, n2;
    REQUIRE(io_read_all(p1, &b1, &n1) == 0);
    REQUIRE(io_read_all(p2, &b2, &n2) == 0);
    CHECK(n1 == n2 && !memcmp(b1, b2, n1));  // deterministic bytes

    // parse it as a llama2.c tokenizer.bin: exactly 512 entries, nothing after
    const uint8_t *u = (const uint8_t *)b1;
    size_t off = 4;
    int count = 0, maxlen = 0, layout = 1, scores = 1;
    char piece[CORPUS_VOCAB][64];
    while (off + 8 <= n1 && count < 1000) {
        float score;
        memcpy(&score, u + off, 4);
        uint32_t len = io_le32(u + off + 4);
        REQUIRE(len < 64 && off + 8 + len <= n1);
        if (count < CORPUS_VOCAB) {
            memcpy(piece[count], u + off + 8, len);
            piece[count][len] = '\0';
        }
        if ((int)len > maxlen) maxlen = (int)len;
        if (count >= 259 && count < CORPUS_VOCAB) scores &= score == -(float)(count - 259);
        if (count < 259) scores &= score == 0.0f;
        off += 8 + len;
        count++;
    }
    CHECK(off == n1);
    CHECKF(count == CORPUS_VOCAB, "%d entries", count);
    CHECK((int)io_le32(u) == maxlen);
    CHECK(scores);
    layout &= !strcmp(piece[0], "<unk>") && !strcmp(piece[1], "\n<s>\n") && !strcmp(piece[2], "\n</s>\n");
    for (int b = 0; b < 256; b++) {
        char want[8];
        snprintf(want, sizeof want, "<0x%02X>", b);
        layout &= !strcmp(piece[3 + b], want);
    }
    CHECK(layout);
    // no duplicate pieces; merges (length >= 2) come before the single characters
    int dup = 0, order = 1, seen_single = 0, n_single = 0;
    for (int i = 259; i < CORPUS_VOCAB; i++) {
        for (int j = 259; j < i; j++) dup += !strcmp(piece[i], piece[j]);
        int single = strlen(piece[i]) == 1;
        if (!single && seen_single) order = 0;
        seen_single |= single;
        n_single += single;
    }
    CHECK(dup == 0);
    CHECK(order);
    // " " and "\n" are pieces (encode's dummy prefix; paragraphs), and every corpus character is one
    CorpusVocab *v = malloc(sizeof *v);
    REQUIRE(corpus_vocab(v) == 0);
    CHECK(v->n == CORPUS_VOCAB && v->n_merges + n_single == CORPUS_VOCAB - 259);
    CHECKF(v->n_merges > 150, "%d merges", v->n_merges);
    int space = 0, newline = 0;
    for (int i = 259; i < CORPUS_VOCAB; i++) space |= !strcmp(piece[i], " "), newline |= !strcmp(piece[i], "\n");
    CHECK(space && newline);
    printf("  builtin vocab: %d merges, %d characters, longest piece %d bytes\n", v->n_merges, n_single, maxlen);
    free(v), free(b1), free(b2);
}

TEST(corpus_builtin_tokenizer_roundtrips) {
    const char *p = tmp_path("builtin_tok_rt.bin");
    REQUIRE(corpus_write_tokenizer(p) == 0);
    Tokenizer tok;
    REQUIRE(tokenizer_init(&tok, p, CORPUS_VOCAB) == 0);
    char *text;
    size_t n;
    REQUIRE(corpus_generate(5, 300, &text, &n) == 0);  // not the vocab's sample seed
    Doc *docs = malloc(sizeof(Doc) * 301);
    int nd = split_eot(text, docs);
    REQUIRE(nd == 300);
    size_t bytes = 0, tokens = 0, fallback = 0;
    int ok = 1;
    for (int d = 0; d < nd; d++) {
        char *s = strndup(docs[d].p, docs[d].n);
        int *ids = malloc(sizeof(int) * (docs[d].n + 3)), k = 0;
        REQUIRE(tokenizer_encode(&tok, s, 1, 0, ids, &k) == 0);
        size_t len = 0;
        char *out = malloc(docs[d].n * 2 + 16);
        for (int i = 1; i < k; i++) {
            const char *piece = tokenizer_decode(&tok, ids[i - 1], ids[i]);
            size_t pl = strlen(piece);
            if (len + pl < docs[d].n * 2 + 16) memcpy(out + len, piece, pl);
            len += pl;
            fallback += ids[i] >= TOK_BYTE0 && ids[i] < TOK_BYTE0 + 256;
        }
        int same = len == docs[d].n && !memcmp(out, s, len);
        if (!same && ok) fprintf(stderr, "  story %d does not round-trip:\n  %.200s\n", d, s);
        ok &= same;
        bytes += docs[d].n;
        tokens += (size_t)k - 1;
        free(s), free(ids), free(out);
    }
    CHECK(ok);
    CHECKF(fallback == 0, "%zu byte-fallback tokens in the built-in corpus", fallback);
    // a real compression: well over 2 bytes per token (1 would be characters only)
    double bpt = (double)bytes / (double)tokens;
    CHECKF(bpt > 2.0, "%.2f bytes per token", bpt);
    printf("  builtin tokenizer: %.2f bytes/token on the corpus\n", bpt);
    tokenizer_free(&tok);
    free(docs), free(text);
}

// --- anetrain tokenize ------------------------------------------------------------------------

TEST(tokenize_cli_validation_llama2) {
    const char *val = test_data("tinystories/TinyStories-validation.head.txt");
    if (!val) return;
    const char *tokp = test_data("llama2/tokenizer.bin");
    if (!tokp) return;
    const char *out = tmp_path("val.bin");
    char cmd[2048], *log = NULL;
    snprintf(cmd, sizeof cmd, "%s tokenize --tokenizer %s -o %s %s", test_bin(), tokp, out, val);
    int rc = test_run(cmd, &log);
    CHECKF(rc == 0, "exit %d: %s", rc, log ? log : "");
    REQUIRE(rc == 0);

    char *text;
    size_t n;
    REQUIRE(io_read_all(val, &text, &n) == 0);
    Doc *docs = malloc(sizeof(Doc) * (n / 2 + 2));
    int nd = split_blank(text, docs);
    char want[64];
    snprintf(want, sizeof want, "%d documents", nd);
    CHECKF(strstr(log, want) && strstr(log, "tokens/s"), "want \"%s\" in: %s", want, log);

    TokenFile tf;
    REQUIRE(tokens_open(&tf, out, 32000) == 0);
    CHECK(tf.format == TOKFMT_RAW16);
    CHECKF(count_bos(&tf) == (size_t)nd, "%zu BOS tokens for %d documents", count_bos(&tf), nd);
    CHECK(tokens_get(&tf, 0) == TOK_BOS);
    Tokenizer tok;
    REQUIRE(tokenizer_init(&tok, tokp, 32000) == 0);
    CHECKF(check_decodes(&tok, &tf, docs, nd) == 0, "decoded text differs from the %d documents", nd);
    tokenizer_free(&tok);
    tokens_close(&tf);
    free(docs), free(text), free(log);
}

TEST(tokenize_cli_builtin_corpus_stories) {
    // a story file in TinyStories-train format, tokenized with the built-in vocabulary
    char *text;
    size_t n;
    REQUIRE(corpus_generate(77, 120, &text, &n) == 0);
    const char *in = tmp_path("stories.txt"), *out = tmp_path("stories.bin"), *tokp = tmp_path("stories_tok.bin");
    AtomicFile af;
    REQUIRE(io_atomic_open(&af, in) == 0);
    REQUIRE(io_atomic_write(&af, text, n) == 0);
    REQUIRE(io_atomic_commit(&af) == 0);
    char cmd[2048], *log = NULL;
    snprintf(cmd, sizeof cmd, "%s tokenize -z builtin -o %s %s", test_bin(), out, in);
    int rc = test_run(cmd, &log);
    CHECKF(rc == 0 && strstr(log, "120 documents"), "exit %d: %s", rc, log ? log : "");
    free(log);
    REQUIRE(rc == 0);
    Doc *docs = malloc(sizeof(Doc) * 121);
    int nd = split_eot(text, docs);
    REQUIRE(nd == 120);
    TokenFile tf;
    REQUIRE(tokens_open(&tf, out, CORPUS_VOCAB) == 0);
    CHECK(tf.format == TOKFMT_RAW16 && count_bos(&tf) == 120);
    REQUIRE(corpus_write_tokenizer(tokp) == 0);
    Tokenizer tok;
    REQUIRE(tokenizer_init(&tok, tokp, CORPUS_VOCAB) == 0);
    CHECK(check_decodes(&tok, &tf, docs, nd) == 0);
    tokens_close(&tf);

    // --format blank on the same file: the <|endoftext|> lines are then text, not separators
    snprintf(cmd, sizeof cmd, "%s tokenize -z %s --format blank -o %s %s", test_bin(), tokp, out, in);
    rc = test_run(cmd, &log);
    CHECKF(rc == 0 && strstr(log, ": 1 documents ("), "exit %d: %s", rc, log ? log : "");
    free(log);
    tokenizer_free(&tok);
    free(docs), free(text);
}

TEST(tokenize_cli_bad_input) {
    char cmd[2048], *log = NULL;
    const char *out = tmp_path("bad_out.bin"), *missing = tmp_path("no-such-input.txt");
    snprintf(cmd, sizeof cmd, "%s tokenize -z builtin -o %s %s", test_bin(), out, missing);
    int rc = test_run(cmd, &log);
    CHECKF(rc == 1 && strstr(log, missing), "missing input: exit %d: %s", rc, log ? log : "");
    free(log);

    const char *empty = tmp_path("empty.txt");
    FILE *f = fopen(empty, "w");
    REQUIRE(f);
    fputs("\n\n  \n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s tokenize -z builtin -o %s %s", test_bin(), out, empty);
    rc = test_run(cmd, &log);
    CHECKF(rc == 1 && strstr(log, "no documents"), "empty input: exit %d: %s", rc, log ? log : "");
    free(log);

    snprintf(cmd, sizeof cmd, "%s tokenize -z %s -o %s %s", test_bin(), missing, out, empty);
    rc = test_run(cmd, &log);
    CHECKF(rc == 1 && strstr(log, missing), "missing tokenizer: exit %d: %s", rc, log ? log : "");
    free(log);

    snprintf(cmd, sizeof cmd, "%s tokenize -o %s", test_bin(), out);
    rc = test_run(cmd, &log);
    CHECKF(rc == 2, "no tokenizer/input: exit %d: %s", rc, log ? log : "");
    free(log);
    CHECK(access(out, F_OK) != 0);
}
