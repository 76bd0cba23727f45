// dataset: token files (three formats, detected from the bytes) and the window sampler.
#include "data/dataset.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

enum {
    ANTK_HEADER = 32,                 // bytes
    ANTK_VERSION = 1,
    LLMC_HEADER = 256 * 4,            // int32[256]
    LLMC_MAGIC16 = 20240520, LLMC_VERSION16 = 1,
    LLMC_MAGIC32 = 20240801, LLMC_VERSION32 = 7,
};

// --- reading --------------------------------------------------------------------------------

// The header says `count` ids of `width` bytes after `hdr` bytes: the file size must agree.
static int check_payload(const char *path, const char *what, size_t size, size_t hdr, uint64_t count, int width) {
    if (count == 0) return err_set("%s: %s header says 0 tokens (expected at least one)", path, what);
    if (count > (SIZE_MAX - hdr) / (size_t)width || size != hdr + (size_t)count * (size_t)width)
        return err_set("%s: %s header says %llu ids of %d bytes (%llu bytes with the header), found %zu bytes "
                       "(truncated or not a token file)",
                       path, what, (unsigned long long)count, width,
                       (unsigned long long)(hdr + (unsigned long long)count * (unsigned long long)width), size);
    return 0;
}

static int parse_antk(TokenFile *tf, const char *path) {
    const uint8_t *p = tf->map.data;
    const size_t size = tf->map.size;
    if (size < ANTK_HEADER)
        return err_set("%s: expected a %d-byte anetrain token header (magic ANTK), found a %zu-byte file", path,
                       ANTK_HEADER, size);
    uint32_t version = io_le32(p + 4), dtype = io_le32(p + 8);
    if (version != ANTK_VERSION)
        return err_set("%s: expected anetrain token file version %d, found version %u (HINT: written by a newer "
                       "anetrain?)", path, ANTK_VERSION, version);
    if (dtype != 2 && dtype != 4)
        return err_set("%s: expected id width 2 or 4 bytes in the anetrain token header, found %u", path, dtype);
    tf->format = TOKFMT_ANETRAIN;
    tf->width = (int)dtype;
    tf->file_vocab = (int)io_le32(p + 12);
    uint64_t count = io_le64(p + 16);
    if (check_payload(path, "anetrain token", size, ANTK_HEADER, count, tf->width) != 0) return -1;
    tf->ids = p + ANTK_HEADER;
    tf->count = (size_t)count;
    return 0;
}

static int parse_llmc(TokenFile *tf, const char *path, uint32_t magic) {
    const uint8_t *p = tf->map.data;
    const size_t size = tf->map.size;
    const int wide = magic == LLMC_MAGIC32;
    const uint32_t want_version = wide ? LLMC_VERSION32 : LLMC_VERSION16;
    if (size < LLMC_HEADER)
        return err_set("%s: starts with llm.c token shard magic %u but is only %zu bytes (expected a %d-byte header)",
                       path, magic, size, LLMC_HEADER);
    uint32_t version = io_le32(p + 4);
    if (version != want_version)
        return err_set("%s: expected llm.c token shard version %u for magic %u, found version %u (HINT: an llm.c "
                       "format we do not know)", path, want_version, magic, version);
    tf->format = TOKFMT_LLMC;
    tf->width = wide ? 4 : 2;
    tf->file_vocab = 0;
    uint64_t count = io_le32(p + 8);
    if (check_payload(path, "llm.c shard", size, LLMC_HEADER, count, tf->width) != 0) return -1;
    tf->ids = p + LLMC_HEADER;
    tf->count = (size_t)count;
    return 0;
}

static int parse_raw16(TokenFile *tf, const char *path) {
    if (tf->map.size % 2)
        return err_set("%s: expected raw uint16 token ids (an even number of bytes), found %zu bytes", path,
                       tf->map.size);
    tf->format = TOKFMT_RAW16;
    tf->width = 2;
    tf->file_vocab = 0;
    tf->ids = tf->map.data;
    tf->count = tf->map.size / 2;
    return 0;
}

// Every id < vocab; the first offender is named with its position.
static int check_ids(const TokenFile *tf, int vocab) {
    if (vocab <= 0) return 0;
    size_t bad = tf->count;
    if (tf->width == 2) {
        const uint16_t *ids = (const uint16_t *)tf->ids;
        for (size_t i = 0; i < tf->count; i++)
            if (ids[i] >= (unsigned)vocab) { bad = i; break; }
    } else {
        const uint32_t *ids = (const uint32_t *)tf->ids;
        for (size_t i = 0; i < tf->count; i++)
            if (ids[i] >= (unsigned)vocab) { bad = i; break; }
    }
    if (bad == tf->count) return 0;
    size_t n_bad = 0;
    for (size_t i = bad; i < tf->count; i++) n_bad += (unsigned)tokens_get(tf, i) >= (unsigned)vocab;
    return err_set("%s: expected token ids < vocab %d, found id %u at position %zu (%zu of %zu ids out of range; "
                   "HINT: tokenized with a different tokenizer?)",
                   tf->path, vocab, (unsigned)tokens_get(tf, bad), bad, n_bad, tf->count);
}

int tokens_open(TokenFile *tf, const char *path, int vocab) {
    memset(tf, 0, sizeof *tf);
    if (strlen(path) >= sizeof tf->path) return err_set("%s: path too long", path);
    snprintf(tf->path, sizeof tf->path, "%s", path);
    if (io_map(&tf->map, path) != 0) return -1;
    int rc;
    const uint8_t *p = tf->map.data;
    if (tf->map.size == 0) rc = err_set("%s: expected token ids, found an empty file", path);
    else if (tf->map.size >= 4 && !memcmp(p, "ANTK", 4)) rc = parse_antk(tf, path);
    else if (tf->map.size >= 4 && (io_le32(p) == LLMC_MAGIC16 || io_le32(p) == LLMC_MAGIC32))
        rc = parse_llmc(tf, path, io_le32(p));
    else rc = parse_raw16(tf, path);
    if (rc == 0) rc = check_ids(tf, vocab > 0 ? vocab : tf->file_vocab);
    if (rc != 0) {
        io_unmap(&tf->map);
        memset(tf, 0, sizeof *tf);
        return -1;
    }
    return 0;
}

void tokens_close(TokenFile *tf) {
    io_unmap(&tf->map);
    memset(tf, 0, sizeof *tf);
}

const char *tokens_format_name(TokenFormat f) {
    return f == TOKFMT_RAW16 ? "raw uint16" : f == TOKFMT_ANETRAIN ? "anetrain" : "llm.c";
}

// --- writing --------------------------------------------------------------------------------

int tokens_write(const char *path, const uint32_t *ids, size_t count, int vocab) {
    if (count == 0) return err_set("%s: refusing to write a token file with no tokens", path);
    if (vocab <= 0) return err_set("%s: vocab %d must be positive", path, vocab);
    for (size_t i = 0; i < count; i++)
        if (ids[i] >= (uint32_t)vocab)
            return err_set("%s: token id %u at position %zu is >= vocab %d; not written", path, ids[i], i, vocab);
    const int width = vocab <= 65536 ? 2 : 4;
    AtomicFile af;
    if (io_atomic_open(&af, path) != 0) return -1;
    if (width == 4) {  // anetrain header: magic, version, dtype, vocab, count, reserved (all LE)
        uint8_t h[ANTK_HEADER] = {'A', 'N', 'T', 'K'};
        const uint32_t f32[3] = {ANTK_VERSION, 4, (uint32_t)vocab};
        for (int k = 0; k < 3; k++)
            for (int b = 0; b < 4; b++) h[4 + 4 * k + b] = (uint8_t)(f32[k] >> (8 * b));
        for (int b = 0; b < 8; b++) h[16 + b] = (uint8_t)((uint64_t)count >> (8 * b));
        io_atomic_write(&af, h, sizeof h);
    }
    // little-endian ids, converted in chunks so the file's byte order never depends on the host
    enum { CHUNK = 1 << 16 };
    uint8_t *buf = malloc((size_t)CHUNK * 4);
    if (!buf) {
        io_atomic_abort(&af);
        return err_set("%s: out of memory", path);
    }
    for (size_t i = 0; i < count; i += CHUNK) {
        size_t n = count - i < CHUNK ? count - i : CHUNK;
        for (size_t j = 0; j < n; j++)
            for (int b = 0; b < width; b++) buf[j * width + b] = (uint8_t)(ids[i + j] >> (8 * b));
        if (io_atomic_write(&af, buf, n * width) != 0) break;
    }
    free(buf);
    if (af.failed) {
        io_atomic_abort(&af);
        return -1;
    }
    return io_atomic_commit(&af);
}

// --- sampling -------------------------------------------------------------------------------

int dataset_init(Dataset *ds, const TokenFile *tf, size_t begin, size_t end, int seq, SampleMode mode,
                 uint64_t seed) {
    memset(ds, 0, sizeof *ds);
    if (seq < 1) return err_set("%s: sequence length %d must be >= 1", tf->path, seq);
    if (begin > end || end > tf->count)
        return err_set("%s: token range [%zu, %zu) is outside the file's %zu tokens", tf->path, begin, end, tf->count);
    if (end - begin < (size_t)seq + 1)
        return err_set("%s: expected at least seq+1 = %d tokens in range [%zu, %zu), found %zu", tf->path, seq + 1,
                       begin, end, end - begin);
    ds->tf = tf;
    ds->begin = begin;
    ds->end = end;
    ds->seq = seq;
    ds->mode = mode;
    rng_init(&ds->rng, seed);
    ds->cursor = 0;
    return 0;
}

// Window i starts at begin + i*seq: inputs never overlap, and the last target of
// one window is the first input of the next (llama2.c PretokDataset's chunks).
size_t dataset_num_windows(const Dataset *ds) { return (ds->end - ds->begin - 1) / (size_t)ds->seq; }

static void fill(const Dataset *ds, size_t start, int *tokens, int *targets) {
    for (int t = 0; t < ds->seq; t++) {
        tokens[t] = tokens_get(ds->tf, start + t);
        targets[t] = tokens_get(ds->tf, start + t + 1);
    }
}

void dataset_window(const Dataset *ds, size_t i, int *tokens, int *targets) {
    fill(ds, ds->begin + (i % dataset_num_windows(ds)) * (size_t)ds->seq, tokens, targets);
}

// --- the counter-based order ------------------------------------------------------------
// Window i of a random sampler is the draw the original stream made after 2i
// steps of its xorshift64 state (rng_below takes two rng_u32 steps): the same
// windows as ever, in the same order, so runs and checkpoints from before are
// unchanged. The step is linear over GF(2), so 2i steps are a product of
// precomputed matrix powers T^(2^k): 64 of them at most, a few microseconds
// for a window that takes milliseconds to train on.

typedef struct { uint64_t col[64]; } BitMatrix;  // col[j] = the image of bit j
static BitMatrix g_pow[64];                     // T^(2^k); filled once, then read-only
static pthread_once_t g_pow_once = PTHREAD_ONCE_INIT;

static uint64_t xorshift_step(uint64_t s) {  // rng_u32's state update (core/rng.h)
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s;
}

static uint64_t bm_apply(const BitMatrix *m, uint64_t s) {
    uint64_t out = 0;
    for (int j = 0; s; j++, s >>= 1)
        if (s & 1) out ^= m->col[j];
    return out;
}

static void pow_init(void) {
    for (int j = 0; j < 64; j++) g_pow[0].col[j] = xorshift_step(1ull << j);
    for (int k = 1; k < 64; k++)
        for (int j = 0; j < 64; j++) g_pow[k].col[j] = bm_apply(&g_pow[k - 1], g_pow[k - 1].col[j]);
}

// The state after n steps from s.
static uint64_t xorshift_jump(uint64_t s, uint64_t n) {
    pthread_once(&g_pow_once, pow_init);
    for (int k = 0; n; k++, n >>= 1)
        if (n & 1) s = bm_apply(&g_pow[k], s);
    return s;
}

// The start of the next window; advances a stream's state, never the cursor.
static size_t next_start(Dataset *ds) {
    const size_t starts = ds->end - ds->begin - (size_t)ds->seq;  // any start with seq+1 tokens left
    if (ds->mode == SAMPLE_SEQUENTIAL)
        return ds->begin + (size_t)(ds->cursor % dataset_num_windows(ds)) * (size_t)ds->seq;
    if (ds->stream) return ds->begin + (size_t)rng_below(&ds->rng, starts);  // the original's uniform pos
    Rng at = {xorshift_jump(ds->rng.s, 2 * ds->cursor)};
    return ds->begin + (size_t)rng_below(&at, starts);
}

void dataset_next(Dataset *ds, int *tokens, int *targets) {
    const size_t start = next_start(ds);
    ds->cursor++;
    fill(ds, start, tokens, targets);
}

void dataset_skip(Dataset *ds, uint64_t n) {
    if (ds->stream && ds->mode == SAMPLE_RANDOM)
        for (uint64_t i = 0; i < n; i++) next_start(ds);
    ds->cursor += n;
}

// The stream state a checkpoint records is the one the counter implies, so
// checkpoints read the same to older binaries.
void dataset_state(const Dataset *ds, uint64_t *rng, uint64_t *cursor) {
    const int counted = ds->mode == SAMPLE_RANDOM && !ds->stream;
    *rng = counted ? xorshift_jump(ds->rng.s, 2 * ds->cursor) : ds->rng.s;
    *cursor = ds->cursor;
}

void dataset_restore(Dataset *ds, uint64_t rng, uint64_t cursor) {
    ds->cursor = cursor;
    // 0: no state recorded (a --steps 0 checkpoint): the order from the seed
    if (ds->mode != SAMPLE_RANDOM || rng == 0 || rng == xorshift_jump(ds->rng.s, 2 * cursor)) return;
    ds->stream = 1;  // a state the counter does not explain (an imported original checkpoint)
    ds->rng.s = rng;
}
