// Dataset: token file formats (raw uint16, anetrain, llm.c), bad files, and the
// window sampler (determinism, resume from (rng, cursor), sequential coverage).
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "data/dataset.h"
#include "test.h"

static const char *tmp_path(const char *name) {
    static char p[8][512];
    static int slot;
    char *s = p[slot++ % 8];
    snprintf(s, 512, "%s/%s", test_tmpdir(), name);
    return s;
}

static int write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = n ? fwrite(data, 1, n, f) : 0;
    fclose(f);
    return w == n ? 0 : -1;
}

static void put32(uint8_t *p, uint32_t v) {
    for (int b = 0; b < 4; b++) p[b] = (uint8_t)(v >> (8 * b));
}

// An llm.c shard: int32[256] header {magic, version, ntok} then ntok ids of `width` bytes.
static int write_llmc(const char *path, uint32_t magic, uint32_t version, const uint32_t *ids, size_t n, int width,
                      size_t claim) {
    size_t size = 1024 + n * (size_t)width;
    uint8_t *b = calloc(1, size);
    put32(b, magic);
    put32(b + 4, version);
    put32(b + 8, (uint32_t)claim);
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < width; k++) b[1024 + i * width + k] = (uint8_t)(ids[i] >> (8 * k));
    int rc = write_bytes(path, b, size);
    free(b);
    return rc;
}

static int has(const char *msg, const char *part) { return strstr(msg, part) != NULL; }

TEST(tokens_formats_detected) {
    uint32_t ids[] = {1, 5, 300, 0, 511, 2, 77};
    const size_t n = sizeof ids / sizeof ids[0];
    TokenFile tf;

    // raw uint16 (vocab fits): 2 bytes per id, no header
    const char *raw = tmp_path("fmt_raw.bin");
    REQUIRE(tokens_write(raw, ids, n, 512) == 0);
    struct stat st;
    REQUIRE(stat(raw, &st) == 0);
    CHECK(st.st_size == (off_t)(2 * n));
    CHECK(access(tmp_path("fmt_raw.bin.tmp"), F_OK) != 0);  // the atomic write left no tmp behind
    REQUIRE(tokens_open(&tf, raw, 512) == 0);
    CHECK(tf.format == TOKFMT_RAW16 && tf.width == 2 && tf.count == n && tf.file_vocab == 0);
    for (size_t i = 0; i < n; i++) CHECKF(tokens_get(&tf, i) == (int)ids[i], "raw id %zu", i);
    tokens_close(&tf);

    // anetrain (vocab > 65536): 32-byte header, uint32 ids
    uint32_t big[] = {1, 65535, 65536, 99999, 3};
    const char *antk = tmp_path("fmt_antk.bin");
    REQUIRE(tokens_write(antk, big, 5, 100000) == 0);
    REQUIRE(stat(antk, &st) == 0);
    CHECK(st.st_size == 32 + 4 * 5);
    REQUIRE(tokens_open(&tf, antk, 100000) == 0);
    CHECK(tf.format == TOKFMT_ANETRAIN && tf.width == 4 && tf.count == 5 && tf.file_vocab == 100000);
    for (size_t i = 0; i < 5; i++) CHECKF(tokens_get(&tf, i) == (int)big[i], "anetrain id %zu", i);
    tokens_close(&tf);
    // vocab <= 0: checked against the header's vocab
    REQUIRE(tokens_open(&tf, antk, 0) == 0);
    tokens_close(&tf);

    // llm.c shards, uint16 (GPT-2) and uint32 (Llama 3)
    const char *l16 = tmp_path("fmt_llmc16.bin"), *l32 = tmp_path("fmt_llmc32.bin");
    REQUIRE(write_llmc(l16, 20240520, 1, ids, n, 2, n) == 0);
    REQUIRE(tokens_open(&tf, l16, 512) == 0);
    CHECK(tf.format == TOKFMT_LLMC && tf.width == 2 && tf.count == n);
    CHECK(!strcmp(tokens_format_name(tf.format), "llm.c"));
    for (size_t i = 0; i < n; i++) CHECKF(tokens_get(&tf, i) == (int)ids[i], "llm.c16 id %zu", i);
    tokens_close(&tf);
    REQUIRE(write_llmc(l32, 20240801, 7, big, 5, 4, 5) == 0);
    REQUIRE(tokens_open(&tf, l32, 128256) == 0);
    CHECK(tf.format == TOKFMT_LLMC && tf.width == 4 && tf.count == 5);
    for (size_t i = 0; i < 5; i++) CHECKF(tokens_get(&tf, i) == (int)big[i], "llm.c32 id %zu", i);
    tokens_close(&tf);
}

TEST(tokens_bad_files_rejected) {
    TokenFile tf;
    const char *p;

    p = tmp_path("bad_empty.bin");
    REQUIRE(write_bytes(p, "", 0) == 0);
    CHECK(tokens_open(&tf, p, 512) != 0);
    CHECKF(has(err_msg(), p) && has(err_msg(), "empty"), "empty: %s", err_msg());

    p = tmp_path("bad_odd.bin");
    REQUIRE(write_bytes(p, "\x01\x00\x02", 3) == 0);
    CHECK(tokens_open(&tf, p, 512) != 0);
    CHECKF(has(err_msg(), p) && has(err_msg(), "even") && has(err_msg(), "3 bytes"), "odd: %s", err_msg());

    // ids >= vocab: the first bad position and value are named
    p = tmp_path("bad_range.bin");
    uint16_t ids[] = {1, 2, 3, 600, 5, 700};
    REQUIRE(write_bytes(p, ids, sizeof ids) == 0);
    CHECK(tokens_open(&tf, p, 512) != 0);
    CHECKF(has(err_msg(), p) && has(err_msg(), "id 600 at position 3") && has(err_msg(), "vocab 512"), "range: %s",
           err_msg());
    REQUIRE(tokens_open(&tf, p, 701) == 0);  // the same file is fine with a bigger vocab
    tokens_close(&tf);

    p = tmp_path("does-not-exist.bin");
    CHECK(tokens_open(&tf, p, 512) != 0);
    CHECKF(has(err_msg(), p), "missing: %s", err_msg());

    // anetrain header vs file size
    uint32_t big[] = {1, 2, 3, 70000};
    p = tmp_path("bad_antk.bin");
    REQUIRE(tokens_write(p, big, 4, 80000) == 0);
    FILE *f = fopen(p, "r+b");
    REQUIRE(f);
    REQUIRE(ftruncate(fileno(f), 32 + 4 * 3) == 0);  // one id short
    fclose(f);
    CHECK(tokens_open(&tf, p, 80000) != 0);
    CHECKF(has(err_msg(), p) && has(err_msg(), "4 ids") && has(err_msg(), "found 44 bytes"), "antk: %s", err_msg());
    // a bad id in a uint32 file
    p = tmp_path("bad_antk_range.bin");
    REQUIRE(tokens_write(p, big, 4, 80000) == 0);
    CHECK(tokens_open(&tf, p, 65536) != 0);
    CHECKF(has(err_msg(), "id 70000 at position 3"), "antk range: %s", err_msg());

    // llm.c: size mismatch and unknown version
    uint32_t small[] = {1, 2, 3};
    p = tmp_path("bad_llmc_size.bin");
    REQUIRE(write_llmc(p, 20240520, 1, small, 3, 2, 4) == 0);
    CHECK(tokens_open(&tf, p, 512) != 0);
    CHECKF(has(err_msg(), p) && has(err_msg(), "llm.c") && has(err_msg(), "4 ids"), "llmc size: %s", err_msg());
    p = tmp_path("bad_llmc_version.bin");
    REQUIRE(write_llmc(p, 20240520, 9, small, 3, 2, 3) == 0);
    CHECK(tokens_open(&tf, p, 512) != 0);
    CHECKF(has(err_msg(), "version 9") && has(err_msg(), "HINT"), "llmc version: %s", err_msg());

    // writing: ids out of range and empty input are refused, and nothing is left behind
    p = tmp_path("bad_write.bin");
    CHECK(tokens_write(p, big, 4, 512) != 0);
    CHECKF(has(err_msg(), "70000 at position 3"), "write range: %s", err_msg());
    CHECK(tokens_write(p, big, 0, 512) != 0);
    CHECK(access(p, F_OK) != 0);
}

TEST(dataset_too_short_for_a_window) {
    uint32_t ids[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    const char *p = tmp_path("short.bin");
    REQUIRE(tokens_write(p, ids, 8, 512) == 0);
    TokenFile tf;
    REQUIRE(tokens_open(&tf, p, 512) == 0);
    Dataset ds;
    CHECK(dataset_init(&ds, &tf, 0, 8, 8, SAMPLE_RANDOM, 1) != 0);  // needs 9 tokens
    CHECKF(has(err_msg(), p) && has(err_msg(), "seq+1 = 9") && has(err_msg(), "found 8"), "short: %s", err_msg());
    CHECK(dataset_init(&ds, &tf, 2, 8, 6, SAMPLE_SEQUENTIAL, 1) != 0);  // range too short
    CHECK(dataset_init(&ds, &tf, 0, 9, 4, SAMPLE_RANDOM, 1) != 0);      // range past the end
    REQUIRE(dataset_init(&ds, &tf, 0, 8, 7, SAMPLE_RANDOM, 1) == 0);    // exactly one window
    int x[7], y[7];
    for (int k = 0; k < 5; k++) {
        dataset_next(&ds, x, y);
        CHECK(x[0] == 1 && y[6] == 8);
    }
    tokens_close(&tf);
}

// A token file whose id at position i is i (so a window tells where it came from).
static int open_positions(TokenFile *tf, const char *name, size_t n) {
    uint32_t *ids = malloc(sizeof(uint32_t) * n);
    for (size_t i = 0; i < n; i++) ids[i] = (uint32_t)i;
    const char *p = tmp_path(name);
    int rc = tokens_write(p, ids, n, 65536);
    free(ids);
    return rc == 0 ? tokens_open(tf, p, 65536) : -1;
}

// Every window is a contiguous slice: targets are the inputs shifted by one.
static int is_slice(const int *x, const int *y, int seq) {
    for (int t = 0; t < seq; t++)
        if (x[t] != x[0] + t || y[t] != x[0] + t + 1) return 0;
    return 1;
}

TEST(dataset_random_deterministic_and_resumable) {
    TokenFile tf;
    REQUIRE(open_positions(&tf, "positions_r.bin", 5000) == 0);
    enum { SEQ = 32, N = 17, M = 23 };
    const size_t begin = 1000, end = 4000;
    Dataset a, b, c;
    REQUIRE(dataset_init(&a, &tf, begin, end, SEQ, SAMPLE_RANDOM, 42) == 0);
    REQUIRE(dataset_init(&b, &tf, begin, end, SEQ, SAMPLE_RANDOM, 42) == 0);
    REQUIRE(dataset_init(&c, &tf, begin, end, SEQ, SAMPLE_RANDOM, 43) == 0);
    int x[SEQ], y[SEQ], xb[SEQ], yb[SEQ];
    int same_seed_same = 1, other_seed_differs = 0, in_range = 1, slices = 1;
    for (int i = 0; i < N; i++) {
        dataset_next(&a, x, y);
        dataset_next(&b, xb, yb);
        same_seed_same &= !memcmp(x, xb, sizeof x) && !memcmp(y, yb, sizeof y);
        dataset_next(&c, xb, yb);
        other_seed_differs |= x[0] != xb[0];
        in_range &= x[0] >= (int)begin && y[SEQ - 1] < (int)end;
        slices &= is_slice(x, y, SEQ);
    }
    CHECK(same_seed_same);
    CHECK(other_seed_differs);
    CHECK(in_range);
    CHECK(slices);
    CHECK(a.cursor == N);

    // save the state, draw M more, restore into a fresh Dataset and draw again
    Rng saved_rng = a.rng;
    uint64_t saved_cursor = a.cursor;
    int first[M][SEQ], firsty[M][SEQ];
    for (int i = 0; i < M; i++) dataset_next(&a, first[i], firsty[i]);
    Dataset fresh;
    REQUIRE(dataset_init(&fresh, &tf, begin, end, SEQ, SAMPLE_RANDOM, 999) == 0);
    fresh.rng = saved_rng;
    fresh.cursor = saved_cursor;
    int resumed = 1;
    for (int i = 0; i < M; i++) {
        dataset_next(&fresh, x, y);
        resumed &= !memcmp(x, first[i], sizeof x) && !memcmp(y, firsty[i], sizeof y);
    }
    CHECK(resumed);
    CHECK(fresh.cursor == a.cursor);

    // uniform starts reach both ends of the range: first and last possible window
    Dataset u;
    REQUIRE(dataset_init(&u, &tf, 10, 10 + SEQ + 3, SEQ, SAMPLE_RANDOM, 7) == 0);  // 3 possible starts
    int seen[3] = {0};
    for (int i = 0; i < 200; i++) {
        dataset_next(&u, x, y);
        REQUIRE(x[0] >= 10 && x[0] <= 12);
        seen[x[0] - 10]++;
    }
    CHECKF(seen[0] > 0 && seen[1] > 0 && seen[2] > 0, "starts seen %d %d %d", seen[0], seen[1], seen[2]);
    tokens_close(&tf);
}

TEST(dataset_sequential_covers_the_range) {
    TokenFile tf;
    REQUIRE(open_positions(&tf, "positions_s.bin", 3000) == 0);
    const int seqs[] = {16, 7};
    for (int si = 0; si < 2; si++) {
        const int seq = seqs[si];
        const size_t begin = 100, end = 100 + 16 * 40 + 1 + (size_t)si * 5;  // exact, then with a tail
        Dataset ds;
        REQUIRE(dataset_init(&ds, &tf, begin, end, seq, SAMPLE_SEQUENTIAL, 1) == 0);
        size_t nw = dataset_num_windows(&ds);
        CHECK(nw == (end - begin - 1) / (size_t)seq);
        int *x = malloc(sizeof(int) * seq), *y = malloc(sizeof(int) * seq);
        int *x2 = malloc(sizeof(int) * seq), *y2 = malloc(sizeof(int) * seq);
        unsigned char *target_hits = calloc(end, 1);
        int ok = 1, match = 1;
        for (size_t i = 0; i < nw; i++) {
            dataset_next(&ds, x, y);
            dataset_window(&ds, i, x2, y2);
            match &= !memcmp(x, x2, sizeof(int) * seq) && !memcmp(y, y2, sizeof(int) * seq);
            ok &= is_slice(x, y, seq) && x[0] == (int)(begin + i * (size_t)seq) && y[seq - 1] < (int)end;
            for (int t = 0; t < seq; t++) target_hits[y[t]]++;
        }
        CHECK(ok);
        CHECK(match);
        // every token after the first is predicted exactly once, up to the last whole window
        size_t covered_to = begin + nw * (size_t)seq;
        int once = 1;
        for (size_t p = begin + 1; p <= covered_to; p++) once &= target_hits[p] == 1;
        CHECK(once);
        CHECK(end - covered_to <= (size_t)seq);  // what is left over is shorter than a window
        // wraps to the first window
        dataset_next(&ds, x, y);
        CHECK(x[0] == (int)begin);
        // resume mid-pass
        Dataset r;
        REQUIRE(dataset_init(&r, &tf, begin, end, seq, SAMPLE_SEQUENTIAL, 1) == 0);
        r.rng = ds.rng;
        r.cursor = ds.cursor;
        dataset_next(&ds, x, y);
        dataset_next(&r, x2, y2);
        CHECK(!memcmp(x, x2, sizeof(int) * seq) && x[0] == (int)(begin + (size_t)seq));
        free(x), free(y), free(x2), free(y2), free(target_hits);
    }
    tokens_close(&tf);
}
