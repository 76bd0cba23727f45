// checkpoint: the anetrain checkpoint file (layout in checkpoint.h), and an
// importer for the original system's v2/v4 checkpoints.
//
// The header is encoded field by field at fixed offsets (never a struct dump),
// so the file is the same on every compiler. The body is streamed in chunks,
// CRC'd on the way, straight from/to the caller's blocks: saving 110M params
// with moments (1.3 GB) needs no second copy in memory.
#include "train/checkpoint.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/err.h"
#include "core/io.h"
#include "core/rng.h"
#include "train/optim.h"

// Bodies are copied as host fp32 and headers are encoded explicitly; the body
// copy assumes the host is little-endian, like every format reader here.
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "anetrain checkpoints store fp32 little-endian; this host is big-endian"
#endif

// Field offsets of the version-1 header (the table in checkpoint.h).
enum {
    H_MAGIC = 0, H_VERSION = 8, H_HEADER_BYTES = 12, H_FLAGS = 16, H_NPARAMS = 24,
    // Config
    H_NAME = 32, H_NAME_LEN = 32,
    H_DIM = 64, H_HIDDEN = 68, H_LAYERS = 72, H_HEADS = 76, H_KV_HEADS = 80, H_HEAD_DIM = 84,
    H_VOCAB = 88, H_SEQ = 92, H_EPS = 96, H_THETA = 100, H_ROPE = 104, H_QK_NORM = 108, H_TIED = 112,
    H_RES_SCALE = 116,
    // TrainState
    S_LR = 128, S_MIN_LR_FRAC = 132, S_BETA1 = 136, S_BETA2 = 140, S_EPS = 144, S_WD = 148, S_CLIP = 152,
    S_WARMUP = 156, S_ACCUM = 160, S_TOTAL_STEPS = 168, S_STEP = 176, S_ADAM_T = 184, S_TOKENS = 192,
    S_LOSS_SCALE = 200, S_LS_DYNAMIC = 204, S_GOOD_STEPS = 208, S_SKIPPED = 216, S_SEED = 224,
    S_DATA_RNG = 232, S_DATA_CURSOR = 240, S_BEST_VAL = 248, S_LAST_LOSS = 252, S_TRAIN_MS = 256,
    H_FIELDS_END = 264,
    H_CRC = 4092,
};
_Static_assert(H_FIELDS_END <= H_CRC && H_CRC + 4 == CKPT_HEADER_BYTES, "header fields overlap the CRC");

enum { FLAG_MOMENTS = 1u, TRAILER_BYTES = 8 };
static const char TRAILER_MAGIC[4] = {'D', 'O', 'N', 'E'};
// Body chunk: 4 MiB per read/write/CRC call.
#define CHUNK_FLOATS ((size_t)1 << 20)

// --- CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320) ------------------------
// Slicing-by-8 tables: table[0] is the classic byte table; table[k][b] advances
// table[k-1][b] by one more zero byte, so 8 input bytes take 8 lookups (~4x the
// byte-at-a-time speed, which matters for a 1.3 GB body).

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (int s = 1; s < 8; s++)
        for (int i = 0; i < 256; i++)
            crc_table[s][i] = (crc_table[s - 1][i] >> 8) ^ crc_table[0][crc_table[s - 1][i] & 0xff];
}

uint32_t crc32_update(uint32_t crc, const void *data, size_t n) {
    pthread_once(&crc_once, crc_init);
    const uint8_t *p = data;
    crc = ~crc;
    while (n >= 8) {
        uint32_t lo = io_le32(p) ^ crc, hi = io_le32(p + 4);
        crc = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^ crc_table[5][(lo >> 16) & 0xff] ^
              crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
              crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--) crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

// --- little-endian field helpers ------------------------------------------------

static void put_u32(uint8_t *h, int off, uint32_t v) {
    for (int i = 0; i < 4; i++) h[off + i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *h, int off, uint64_t v) {
    for (int i = 0; i < 8; i++) h[off + i] = (uint8_t)(v >> (8 * i));
}
static void put_i32(uint8_t *h, int off, int32_t v) { put_u32(h, off, (uint32_t)v); }
static void put_i64(uint8_t *h, int off, int64_t v) { put_u64(h, off, (uint64_t)v); }
static void put_f32(uint8_t *h, int off, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    put_u32(h, off, u);
}
static void put_f64(uint8_t *h, int off, double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    put_u64(h, off, u);
}

static uint32_t get_u32(const uint8_t *h, int off) { return io_le32(h + off); }
static uint64_t get_u64(const uint8_t *h, int off) { return io_le64(h + off); }
static int32_t get_i32(const uint8_t *h, int off) { return (int32_t)io_le32(h + off); }
static int64_t get_i64(const uint8_t *h, int off) { return (int64_t)io_le64(h + off); }
static float get_f32(const uint8_t *h, int off) {
    uint32_t u = io_le32(h + off);
    float v;
    memcpy(&v, &u, 4);
    return v;
}
static double get_f64(const uint8_t *h, int off) {
    uint64_t u = io_le64(h + off);
    double v;
    memcpy(&v, &u, 8);
    return v;
}

// Renders up to 8 leading bytes for "found ..." messages: text if printable, else hex.
static void show_bytes(char *out, size_t cap, const uint8_t *b, size_t n) {
    int printable = 1;
    for (size_t i = 0; i < n; i++) printable &= b[i] >= 0x20 && b[i] < 0x7f;
    size_t o = 0;
    if (printable) {
        o += (size_t)snprintf(out, cap, "\"");
        for (size_t i = 0; i < n && o + 2 < cap; i++) out[o++] = (char)b[i];
        snprintf(out + o, cap - o, "\"");
        return;
    }
    out[0] = 0;
    for (size_t i = 0; i < n && o + 3 < cap; i++) o += (size_t)snprintf(out + o, cap - o, "%02x", b[i]);
}

// --- header encode / decode -----------------------------------------------------

static size_t layout_floats(const Config *c) {
    TensorDesc t[PARAMS_MAX_TENSORS];
    size_t total = 0;
    params_layout(c, t, &total);
    return total;
}

static uint64_t expected_size(uint64_t n_params, int moments) {
    return CKPT_HEADER_BYTES + 4 * n_params * (moments ? 3 : 1) + TRAILER_BYTES;
}

static void header_encode(uint8_t *h, const Config *c, const TrainState *st, size_t n, int moments) {
    memset(h, 0, CKPT_HEADER_BYTES);
    memcpy(h + H_MAGIC, CKPT_MAGIC, 8);
    put_u32(h, H_VERSION, CKPT_VERSION);
    put_u32(h, H_HEADER_BYTES, CKPT_HEADER_BYTES);
    put_u32(h, H_FLAGS, moments ? FLAG_MOMENTS : 0);
    put_u64(h, H_NPARAMS, n);

    // name: bytes up to the NUL only, so the padding is deterministic zeros
    size_t len = strnlen(c->name, sizeof c->name);
    if (len > H_NAME_LEN - 1) len = H_NAME_LEN - 1;
    memcpy(h + H_NAME, c->name, len);
    put_i32(h, H_DIM, c->dim);
    put_i32(h, H_HIDDEN, c->hidden);
    put_i32(h, H_LAYERS, c->n_layers);
    put_i32(h, H_HEADS, c->n_heads);
    put_i32(h, H_KV_HEADS, c->n_kv_heads);
    put_i32(h, H_HEAD_DIM, c->head_dim);
    put_i32(h, H_VOCAB, c->vocab);
    put_i32(h, H_SEQ, c->seq_len);
    put_f32(h, H_EPS, c->norm_eps);
    put_f32(h, H_THETA, c->rope_theta);
    put_u32(h, H_ROPE, (uint32_t)c->rope_layout);
    put_u32(h, H_QK_NORM, (uint32_t)c->qk_norm);
    put_u32(h, H_TIED, (uint32_t)c->tied);
    put_f32(h, H_RES_SCALE, c->res_scale);

    put_f32(h, S_LR, st->lr);
    put_f32(h, S_MIN_LR_FRAC, st->min_lr_frac);
    put_f32(h, S_BETA1, st->beta1);
    put_f32(h, S_BETA2, st->beta2);
    put_f32(h, S_EPS, st->eps);
    put_f32(h, S_WD, st->weight_decay);
    put_f32(h, S_CLIP, st->clip);
    put_i32(h, S_WARMUP, st->warmup);
    put_i32(h, S_ACCUM, st->accum);
    put_i64(h, S_TOTAL_STEPS, st->total_steps);
    put_i64(h, S_STEP, st->step);
    put_i64(h, S_ADAM_T, st->adam_t);
    put_i64(h, S_TOKENS, st->tokens_seen);
    put_f32(h, S_LOSS_SCALE, st->loss_scale);
    put_i32(h, S_LS_DYNAMIC, st->loss_scale_dynamic);
    put_i64(h, S_GOOD_STEPS, st->good_steps);
    put_i64(h, S_SKIPPED, st->skipped);
    put_u64(h, S_SEED, st->seed);
    put_u64(h, S_DATA_RNG, st->data_rng);
    put_u64(h, S_DATA_CURSOR, st->data_cursor);
    put_f32(h, S_BEST_VAL, st->best_val_loss);
    put_f32(h, S_LAST_LOSS, st->last_loss);
    put_f64(h, S_TRAIN_MS, st->train_ms);

    put_u32(h, H_CRC, crc32_update(0, h, H_CRC));
}

static void state_decode(const uint8_t *h, TrainState *st) {
    memset(st, 0, sizeof *st);
    st->lr = get_f32(h, S_LR);
    st->min_lr_frac = get_f32(h, S_MIN_LR_FRAC);
    st->beta1 = get_f32(h, S_BETA1);
    st->beta2 = get_f32(h, S_BETA2);
    st->eps = get_f32(h, S_EPS);
    st->weight_decay = get_f32(h, S_WD);
    st->clip = get_f32(h, S_CLIP);
    st->warmup = get_i32(h, S_WARMUP);
    st->accum = get_i32(h, S_ACCUM);
    st->total_steps = get_i64(h, S_TOTAL_STEPS);
    st->step = get_i64(h, S_STEP);
    st->adam_t = get_i64(h, S_ADAM_T);
    st->tokens_seen = get_i64(h, S_TOKENS);
    st->loss_scale = get_f32(h, S_LOSS_SCALE);
    st->loss_scale_dynamic = get_i32(h, S_LS_DYNAMIC);
    st->good_steps = get_i64(h, S_GOOD_STEPS);
    st->skipped = get_i64(h, S_SKIPPED);
    st->seed = get_u64(h, S_SEED);
    st->data_rng = get_u64(h, S_DATA_RNG);
    st->data_cursor = get_u64(h, S_DATA_CURSOR);
    st->best_val_loss = get_f32(h, S_BEST_VAL);
    st->last_loss = get_f32(h, S_LAST_LOSS);
    st->train_ms = get_f64(h, S_TRAIN_MS);
}

// Validates the first `got` bytes of a file of `file_size` bytes as a version-1
// header, in the order documented in checkpoint.h. Fills cfg, st, *moments, *n.
static int header_decode(const uint8_t *h, size_t got, uint64_t file_size, const char *path, Config *cfg,
                         TrainState *st, int *moments, uint64_t *n) {
    char found[40];
    if (got < 8)
        return err_set("%s: not an anetrain checkpoint: expected at least a %d-byte header, found a %llu-byte file",
                       path, CKPT_HEADER_BYTES, (unsigned long long)file_size);
    if (memcmp(h + H_MAGIC, CKPT_MAGIC, 8) != 0) {
        show_bytes(found, sizeof found, h, 8);
        return err_set("%s: not an anetrain checkpoint: expected magic \"%s\", found %s", path, CKPT_MAGIC, found);
    }
    if (got < 12)
        return err_set("%s: truncated checkpoint: expected a %d-byte header, found a %llu-byte file", path,
                       CKPT_HEADER_BYTES, (unsigned long long)file_size);
    uint32_t version = get_u32(h, H_VERSION);
    if (version != CKPT_VERSION)
        return err_set("%s: checkpoint version %u not supported, this build reads version %d "
                       "(HINT: written by a newer anetrain, or the file is damaged)",
                       path, version, CKPT_VERSION);
    if (got < CKPT_HEADER_BYTES)
        return err_set("%s: truncated checkpoint: expected a %d-byte header, found a %llu-byte file", path,
                       CKPT_HEADER_BYTES, (unsigned long long)file_size);
    uint32_t want_crc = get_u32(h, H_CRC), crc = crc32_update(0, h, H_CRC);
    if (crc != want_crc)
        return err_set("%s: checkpoint header is corrupted: stored CRC-32 0x%08x, computed 0x%08x", path, want_crc,
                       crc);
    if (get_u32(h, H_HEADER_BYTES) != CKPT_HEADER_BYTES)
        return err_set("%s: checkpoint header size: expected %d, found %u", path, CKPT_HEADER_BYTES,
                       get_u32(h, H_HEADER_BYTES));
    uint32_t flags = get_u32(h, H_FLAGS);
    if (flags & ~(uint32_t)FLAG_MOMENTS)
        return err_set("%s: checkpoint flags: expected only bit 0 (moments), found 0x%x", path, flags);

    memset(cfg, 0, sizeof *cfg);
    memcpy(cfg->name, h + H_NAME, H_NAME_LEN - 1);
    cfg->name[H_NAME_LEN - 1] = 0;
    cfg->dim = get_i32(h, H_DIM);
    cfg->hidden = get_i32(h, H_HIDDEN);
    cfg->n_layers = get_i32(h, H_LAYERS);
    cfg->n_heads = get_i32(h, H_HEADS);
    cfg->n_kv_heads = get_i32(h, H_KV_HEADS);
    cfg->head_dim = get_i32(h, H_HEAD_DIM);
    cfg->vocab = get_i32(h, H_VOCAB);
    cfg->seq_len = get_i32(h, H_SEQ);
    cfg->norm_eps = get_f32(h, H_EPS);
    cfg->rope_theta = get_f32(h, H_THETA);
    uint32_t rope = get_u32(h, H_ROPE), qk = get_u32(h, H_QK_NORM), tied = get_u32(h, H_TIED);
    if (rope > 1) return err_set("%s: rope_layout: expected 0 (interleaved) or 1 (rotate-half), found %u", path, rope);
    if (qk > 1 || tied > 1)
        return err_set("%s: qk_norm and tied: expected 0 or 1, found %u and %u", path, qk, tied);
    cfg->rope_layout = (RopeLayout)rope;
    cfg->qk_norm = (int)qk;
    cfg->tied = (int)tied;
    cfg->res_scale = get_f32(h, H_RES_SCALE);
    if (config_validate(cfg, path) != 0) return -1;

    uint64_t np = get_u64(h, H_NPARAMS), want_np = layout_floats(cfg);
    if (np != want_np)
        return err_set("%s: checkpoint n_params: expected %llu for its config, found %llu", path,
                       (unsigned long long)want_np, (unsigned long long)np);
    int has_m = (flags & FLAG_MOMENTS) != 0;
    uint64_t want_size = expected_size(np, has_m);
    if (file_size != want_size)
        return err_set("%s: checkpoint size: expected %llu bytes (4096-byte header + %llu params%s + 8-byte "
                       "trailer), found %llu%s",
                       path, (unsigned long long)want_size, (unsigned long long)np, has_m ? " x 3 with Adam m, v" : "",
                       (unsigned long long)file_size, file_size < want_size ? " (truncated)" : "");
    if (st) state_decode(h, st);
    if (moments) *moments = has_m;
    if (n) *n = np;
    return 0;
}

// Opens path for reading and returns its size; the file must be a regular file.
static FILE *open_regular(const char *path, uint64_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        err_set("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        err_set("%s: not a regular file", path);
        return NULL;
    }
    *size = (uint64_t)sb.st_size;
    return f;
}

// Reads and validates the header of an open file (positioned at 0).
static int read_header(FILE *f, uint64_t size, const char *path, Config *cfg, TrainState *st, int *moments,
                       uint64_t *n) {
    uint8_t h[CKPT_HEADER_BYTES];
    size_t got = fread(h, 1, sizeof h, f);
    if (ferror(f)) return err_set("%s: read error in the checkpoint header: %s", path, strerror(errno));
    return header_decode(h, got, size, path, cfg, st, moments, n);
}

// --- save -------------------------------------------------------------------------

// Streams n floats to af in chunks, folding them into *crc.
static void write_block(AtomicFile *af, const float *src, size_t n, uint32_t *crc) {
    for (size_t i = 0; i < n && !af->failed; i += CHUNK_FLOATS) {
        size_t k = n - i < CHUNK_FLOATS ? n - i : CHUNK_FLOATS;
        *crc = crc32_update(*crc, src + i, k * sizeof(float));
        io_atomic_write(af, src + i, k * sizeof(float));
    }
}

int ckpt_save(const char *path, const Params *p, const float *m, const float *v, const TrainState *st) {
    if ((m == NULL) != (v == NULL))
        return err_set("%s: cannot save checkpoint: Adam moments m and v must both be given, or neither", path);
    if (!p->data) return err_set("%s: cannot save checkpoint: the model has no parameters loaded", path);
    if (config_validate(&p->cfg, path) != 0) return err_wrap("cannot save checkpoint");
    size_t n = layout_floats(&p->cfg);
    if (n != p->n)
        return err_set("%s: cannot save checkpoint: params block holds %zu floats, its config lays out %zu", path,
                       p->n, n);
    TrainState defaults;
    if (!st) {
        memset(&defaults, 0, sizeof defaults);
        optim_defaults(&defaults);
        st = &defaults;
    }
    int moments = m != NULL;

    uint8_t h[CKPT_HEADER_BYTES];
    header_encode(h, &p->cfg, st, n, moments);

    AtomicFile af;
    if (io_atomic_open(&af, path) != 0) return err_wrap("cannot save checkpoint %s (any previous file is kept)", path);
    io_atomic_write(&af, h, sizeof h);
    uint32_t crc = 0;
    write_block(&af, p->data, n, &crc);
    if (moments) {
        write_block(&af, m, n, &crc);
        write_block(&af, v, n, &crc);
    }
    uint8_t trailer[TRAILER_BYTES];
    put_u32(trailer, 0, crc);
    memcpy(trailer + 4, TRAILER_MAGIC, 4);
    io_atomic_write(&af, trailer, sizeof trailer);
    if (io_atomic_commit(&af) != 0) return err_wrap("cannot save checkpoint %s (any previous file is kept)", path);
    return 0;
}

// --- load -------------------------------------------------------------------------

// Reads n floats into dst (or discards them when dst is NULL, via scratch),
// folding them into *crc.
static int read_block(FILE *f, const char *path, float *dst, float *scratch, size_t n, uint32_t *crc,
                      uint64_t *pos) {
    for (size_t i = 0; i < n; i += CHUNK_FLOATS) {
        size_t k = n - i < CHUNK_FLOATS ? n - i : CHUNK_FLOATS;
        float *buf = dst ? dst + i : scratch;
        size_t got = fread(buf, sizeof(float), k, f);
        if (got != k)
            return err_set("%s: read error at byte %llu of the checkpoint body: %s", path,
                           (unsigned long long)*pos, ferror(f) ? strerror(errno) : "unexpected end of file");
        *crc = crc32_update(*crc, buf, k * sizeof(float));
        *pos += k * sizeof(float);
    }
    return 0;
}

static float *alloc_floats(size_t n) {
    size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
    return aligned_alloc(64, bytes ? bytes : 64);
}

int ckpt_load(const char *path, Params *p, float **m, float **v, TrainState *st) {
    memset(p, 0, sizeof *p);
    if (m) *m = NULL;
    if (v) *v = NULL;
    uint64_t size = 0;
    FILE *f = open_regular(path, &size);
    if (!f) return -1;

    Config cfg;
    TrainState tmp_st;
    int moments = 0;
    uint64_t n = 0;
    float *mm = NULL, *vv = NULL, *scratch = NULL;
    if (read_header(f, size, path, &cfg, &tmp_st, &moments, &n) != 0) goto fail;
    if (params_init(p, &cfg) != 0) goto fail;
    int want_moments = moments && m && v;
    if (want_moments) {
        mm = alloc_floats(n);
        vv = alloc_floats(n);
        if (!mm || !vv) {
            err_set("%s: out of memory for Adam moments (2 x %.1f MB)", path, n * 4.0 / 1e6);
            goto fail;
        }
    } else if (moments) {
        scratch = alloc_floats(CHUNK_FLOATS);
        if (!scratch) {
            err_set("%s: out of memory", path);
            goto fail;
        }
    }

    uint32_t crc = 0;
    uint64_t pos = CKPT_HEADER_BYTES;
    if (read_block(f, path, p->data, NULL, n, &crc, &pos) != 0) goto fail;
    if (moments) {
        if (read_block(f, path, mm, scratch, n, &crc, &pos) != 0) goto fail;
        if (read_block(f, path, vv, scratch, n, &crc, &pos) != 0) goto fail;
    }
    uint8_t trailer[TRAILER_BYTES];
    if (fread(trailer, 1, sizeof trailer, f) != sizeof trailer) {
        err_set("%s: read error in the checkpoint trailer at byte %llu", path, (unsigned long long)pos);
        goto fail;
    }
    uint32_t want_crc = get_u32(trailer, 0);
    if (want_crc != crc) {
        err_set("%s: checkpoint body is corrupted: stored CRC-32 0x%08x, computed 0x%08x over %llu bytes", path,
                want_crc, crc, (unsigned long long)(pos - CKPT_HEADER_BYTES));
        goto fail;
    }
    if (memcmp(trailer + 4, TRAILER_MAGIC, 4) != 0) {
        char found[40];
        show_bytes(found, sizeof found, trailer + 4, 4);
        err_set("%s: checkpoint trailer: expected \"DONE\", found %s", path, found);
        goto fail;
    }
    fclose(f);
    free(scratch);
    if (m) *m = mm;
    if (v) *v = vv;
    if (st) *st = tmp_st;
    return 0;

fail:
    fclose(f);
    free(scratch);
    free(mm);
    free(vv);
    params_free(p);
    return -1;
}

int ckpt_read_header(const char *path, Config *cfg, TrainState *st, int *has_moments) {
    uint64_t size = 0;
    FILE *f = open_regular(path, &size);
    if (!f) return -1;
    int rc = read_header(f, size, path, cfg, st, has_moments, NULL);
    fclose(f);
    return rc;
}

// Reads up to n leading bytes; returns how many, or -1 if the file cannot be opened.
static long read_prefix(const char *path, uint8_t *buf, size_t n) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t got = fread(buf, 1, n, f);
    fclose(f);
    return (long)got;
}

int ckpt_is_checkpoint(const char *path) {
    uint8_t b[8];
    return read_prefix(path, b, 8) == 8 && memcmp(b, CKPT_MAGIC, 8) == 0;
}

int ckpt_check_config(const char *path, const Config *want) {
    Config have;
    if (ckpt_read_header(path, &have, NULL, NULL) != 0) return -1;
    char why[128];
    if (!config_equal(&have, want, why, sizeof why))
        return err_set("%s: checkpoint holds a different model than expected: %s (file vs expected)", path, why);
    return 0;
}

// --- the original system's checkpoints ----------------------------------------------

enum { ORIG_HEADER = 96 };

// The original's CkptHdr, decoded from its 96 LP64 bytes (ane-spec 5.2).
typedef struct {
    int32_t version, step, total_steps, n_layers, vocab, dim, hidden, n_heads, seq_len;
    float lr, loss;
    double cum_compile, cum_train, cum_wall;
    int32_t cum_steps, cum_batches, adam_t, kv_heads, head_dim, q_dim;
} OrigHeader;

static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

// The per-layer tensor order of the original's body, in our names.
static const char *const ORIG_LAYER_ORDER[9] = {"wq", "wk", "wv", "wo", "w1", "w2", "w3", "rms_att", "rms_ffn"};

// Decodes and validates the header of a file of `size` bytes; fills cfg.
static int orig_decode(const uint8_t *b, size_t got, uint64_t size, const char *path, OrigHeader *h, Config *cfg) {
    if (got < ORIG_HEADER)
        return err_set("%s: too short for an original (maderix/ANE) checkpoint: expected a 96-byte header, found a "
                       "%llu-byte file",
                       path, (unsigned long long)size);
    if (get_u32(b, 0) != CKPT_ORIGINAL_MAGIC)
        return err_set("%s: not an original (maderix/ANE) checkpoint: expected magic 0x%08x, found 0x%08x", path,
                       CKPT_ORIGINAL_MAGIC, get_u32(b, 0));
    memset(h, 0, sizeof *h);
    h->version = get_i32(b, 4);
    h->step = get_i32(b, 8);
    h->total_steps = get_i32(b, 12);
    h->n_layers = get_i32(b, 16);
    h->vocab = get_i32(b, 20);
    h->dim = get_i32(b, 24);
    h->hidden = get_i32(b, 28);
    h->n_heads = get_i32(b, 32);
    h->seq_len = get_i32(b, 36);
    h->lr = get_f32(b, 40);
    h->loss = get_f32(b, 44);
    h->cum_compile = get_f64(b, 48);
    h->cum_train = get_f64(b, 56);
    h->cum_wall = get_f64(b, 64);
    h->cum_steps = get_i32(b, 72);
    h->cum_batches = get_i32(b, 76);
    h->adam_t = get_i32(b, 80);
    h->kv_heads = get_i32(b, 84);
    h->head_dim = get_i32(b, 88);
    h->q_dim = get_i32(b, 92);

    if (h->version == 3)
        return err_set("%s: original checkpoint version 3 (early dynamic pipeline) is not supported; this build reads "
                       "versions 2 (static) and 4 (dynamic)",
                       path);
    if (h->version != 2 && h->version != 4)
        return err_set("%s: original checkpoint version %d not supported; this build reads versions 2 (static) and "
                       "4 (dynamic)",
                       path, h->version);
    if (h->step < 0 || h->total_steps < 0 || h->adam_t < 0)
        return err_set("%s: original checkpoint counters must be >= 0, found step %d, total_steps %d, adam_t %d", path,
                       h->step, h->total_steps, h->adam_t);

    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->name, sizeof cfg->name, "%s", base_name(path));
    cfg->dim = h->dim;
    cfg->hidden = h->hidden;
    cfg->n_layers = h->n_layers;
    cfg->n_heads = h->n_heads;
    cfg->vocab = h->vocab;
    cfg->seq_len = h->seq_len;
    cfg->norm_eps = 1e-5f;
    cfg->rope_theta = 10000.0f;
    cfg->rope_layout = ROPE_INTERLEAVED;
    cfg->qk_norm = 0;
    cfg->tied = 1;
    if (h->version == 2) {
        if (h->n_heads <= 0 || h->dim <= 0 || h->dim % h->n_heads != 0)
            return err_set("%s: original v2 checkpoint: dim (%d) must be a positive multiple of n_heads (%d)", path,
                           h->dim, h->n_heads);
        cfg->n_kv_heads = h->n_heads;
        cfg->head_dim = h->dim / h->n_heads;
        cfg->res_scale = 1.0f;
    } else {
        cfg->n_kv_heads = h->kv_heads;
        cfg->head_dim = h->head_dim;
        if ((int64_t)h->n_heads * h->head_dim != h->q_dim)
            return err_set("%s: original v4 checkpoint: q_dim %d != n_heads * head_dim (%d * %d)", path, h->q_dim,
                           h->n_heads, h->head_dim);
        cfg->res_scale = h->n_layers > 0 ? 1.0f / sqrtf(2.0f * (float)h->n_layers) : 1.0f;
    }
    if (config_validate(cfg, path) != 0) return -1;

    uint64_t want = ORIG_HEADER + 12 * (uint64_t)layout_floats(cfg);
    if (size != want)
        return err_set("%s: original v%d checkpoint size: expected %llu bytes for the model its header describes "
                       "(96-byte header + 3 x 4 bytes x %zu params: dim %d, hidden %d, layers %d, heads %d/%d, "
                       "vocab %d), found %llu%s",
                       path, h->version, (unsigned long long)want, layout_floats(cfg), cfg->dim, cfg->hidden,
                       cfg->n_layers, cfg->n_heads, cfg->n_kv_heads, cfg->vocab, (unsigned long long)size,
                       size < want ? " (truncated)" : "");
    return 0;
}

// Peak lr of the original's dynamic schedule (ane-spec 1.8) given the lr it
// last scheduled at micro-step s: lr(s) = peak * g(s), g linear in the peak.
// Assumes its defaults (warmup 100 micro-steps, min lr 0.1 * peak).
static float orig_peak_lr(const OrigHeader *h) {
    const int warmup = 100;
    const float min_frac = 0.1f;
    if (h->step <= 0) return h->lr;  // nothing scheduled yet: the stored lr is the configured one
    int s = h->step - 1;
    double g;
    if (s < warmup) g = (double)(s + 1) / warmup;
    else if (h->total_steps <= warmup) g = 1.0;
    else {
        double ratio = (double)(s - warmup) / (double)(h->total_steps - warmup);
        if (ratio > 1) ratio = 1;
        g = min_frac + 0.5 * (1.0 + cos(M_PI * ratio)) * (1.0 - min_frac);
    }
    double peak = h->lr / g;
    return (float)peak;
}

static void orig_state(const OrigHeader *h, TrainState *st) {
    memset(st, 0, sizeof *st);
    optim_defaults(st);
    // micro-steps per update: step / adam_t is exact at the update boundaries where both pipelines save
    int accum = 10;
    if (h->adam_t > 0 && h->step > 0 && h->step % h->adam_t == 0) accum = h->step / h->adam_t;
    st->accum = accum;
    st->step = h->step / accum;
    st->adam_t = h->adam_t;
    st->total_steps = ((int64_t)h->total_steps + accum - 1) / accum;
    st->tokens_seen = (int64_t)h->step * h->seq_len;
    st->train_ms = h->cum_train;
    st->last_loss = h->loss;
    st->best_val_loss = INFINITY;
    // the original reseeds its sampler with 42 + the micro-step it resumes at
    st->seed = 42;
    Rng r;
    rng_init(&r, 42 + (uint64_t)h->step);
    st->data_rng = r.s;
    st->data_cursor = 0;
    if (h->version == 2) {
        // static pipeline: plain Adam, beta2 0.999, no wd, no clip, constant lr (ane-spec 1.9)
        st->lr = h->lr > 0 && isfinite(h->lr) ? h->lr : 3e-4f;
        st->beta2 = 0.999f;
        st->weight_decay = 0.0f;
        st->clip = 0.0f;
        st->warmup = 0;
        st->min_lr_frac = 1.0f;
    } else {
        float peak = orig_peak_lr(h);
        st->lr = peak > 0 && isfinite(peak) ? peak : 3e-4f;
        st->warmup = (100 + accum - 1) / accum;
    }
}

// Reads n floats at the current position into dst, or skips them when dst is NULL.
static int orig_read(FILE *f, const char *path, float *dst, size_t n, const char *what, int layer) {
    if (!dst) {
        if (fseeko(f, (off_t)(n * sizeof(float)), SEEK_CUR) != 0)
            return err_set("%s: seek failed: %s", path, strerror(errno));
        return 0;
    }
    if (fread(dst, sizeof(float), n, f) != n)
        return err_set("%s: read error in %s (layer %d): %s", path, what, layer,
                       ferror(f) ? strerror(errno) : "unexpected end of file");
    return 0;
}

// Reorders query heads of one layer's wq (QD, D) and wo (D, QD) so that our
// GQA convention (query head h uses KV head h / R) computes what the original's
// forward did (query head h used KV head h mod NKV): our head kv*R + r is the
// original's head r*NKV + kv. scratch holds QD*D floats.
static void orig_permute_heads(const Config *c, float *wq, float *wo, float *scratch) {
    int NH = c->n_heads, NKV = c->n_kv_heads, R = NH / NKV, HD = c->head_dim, D = c->dim, QD = NH * HD;
    memcpy(scratch, wq, sizeof(float) * (size_t)QD * D);
    for (int h = 0; h < NH; h++) {
        int src = (h % R) * NKV + h / R;
        memcpy(wq + (size_t)h * HD * D, scratch + (size_t)src * HD * D, sizeof(float) * (size_t)HD * D);
    }
    memcpy(scratch, wo, sizeof(float) * (size_t)D * QD);
    for (int i = 0; i < D; i++)
        for (int h = 0; h < NH; h++) {
            int src = (h % R) * NKV + h / R;
            memcpy(wo + (size_t)i * QD + (size_t)h * HD, scratch + (size_t)i * QD + (size_t)src * HD,
                   sizeof(float) * HD);
        }
}

int ckpt_is_original(const char *path) {
    uint8_t b[4];
    return read_prefix(path, b, 4) == 4 && io_le32(b) == CKPT_ORIGINAL_MAGIC;
}

int ckpt_read_original_header(const char *path, Config *cfg, TrainState *st, int *version) {
    uint64_t size = 0;
    FILE *f = open_regular(path, &size);
    if (!f) return -1;
    uint8_t b[ORIG_HEADER];
    size_t got = fread(b, 1, sizeof b, f);
    fclose(f);
    OrigHeader h;
    if (orig_decode(b, got, size, path, &h, cfg) != 0) return -1;
    if (st) orig_state(&h, st);
    if (version) *version = h.version;
    return 0;
}

int ckpt_import_original(const char *path, Params *p, float **m, float **v, TrainState *st) {
    memset(p, 0, sizeof *p);
    if (m) *m = NULL;
    if (v) *v = NULL;
    uint64_t size = 0;
    FILE *f = open_regular(path, &size);
    if (!f) return -1;
    float *mm = NULL, *vv = NULL, *scratch = NULL;
    uint8_t b[ORIG_HEADER];
    size_t got = fread(b, 1, sizeof b, f);
    OrigHeader h;
    Config cfg;
    if (orig_decode(b, got, size, path, &h, &cfg) != 0) goto fail;
    if (params_init(p, &cfg) != 0) goto fail;
    if (m && v) {
        mm = alloc_floats(p->n);
        vv = alloc_floats(p->n);
        if (!mm || !vv) {
            err_set("%s: out of memory for Adam moments (2 x %.1f MB)", path, p->n * 4.0 / 1e6);
            goto fail;
        }
        memset(mm, 0, p->n * sizeof(float));
        memset(vv, 0, p->n * sizeof(float));
    }

    for (int l = 0; l < cfg.n_layers; l++) {
        const TensorDesc *d[9];
        size_t per[9];
        for (int i = 0; i < 9; i++) {
            d[i] = params_find(p, ORIG_LAYER_ORDER[i]);
            per[i] = d[i]->numel / (size_t)cfg.n_layers;
        }
        for (int i = 0; i < 9; i++)
            if (orig_read(f, path, p->data + d[i]->offset + l * per[i], per[i], ORIG_LAYER_ORDER[i], l) != 0)
                goto fail;
        for (int i = 0; i < 9; i++) {
            size_t off = d[i]->offset + l * per[i];
            if (orig_read(f, path, mm ? mm + off : NULL, per[i], "Adam m", l) != 0) goto fail;
            if (orig_read(f, path, vv ? vv + off : NULL, per[i], "Adam v", l) != 0) goto fail;
        }
    }
    const char *tail[2] = {"rms_final", "embed"};
    for (int i = 0; i < 2; i++) {
        const TensorDesc *d = params_find(p, tail[i]);
        if (orig_read(f, path, p->data + d->offset, d->numel, tail[i], -1) != 0) goto fail;
        if (orig_read(f, path, mm ? mm + d->offset : NULL, d->numel, "Adam m", -1) != 0) goto fail;
        if (orig_read(f, path, vv ? vv + d->offset : NULL, d->numel, "Adam v", -1) != 0) goto fail;
    }

    if (h.version == 4 && cfg.n_heads != cfg.n_kv_heads) {
        size_t per_q = (size_t)config_q_dim(&cfg) * cfg.dim;
        scratch = alloc_floats(per_q);
        if (!scratch) {
            err_set("%s: out of memory", path);
            goto fail;
        }
        float *blocks[3] = {p->data, mm, vv};
        size_t oq = params_find(p, "wq")->offset, oo = params_find(p, "wo")->offset;
        for (int k = 0; k < 3; k++) {
            if (!blocks[k]) continue;
            for (int l = 0; l < cfg.n_layers; l++)
                orig_permute_heads(&cfg, blocks[k] + oq + l * per_q, blocks[k] + oo + l * per_q, scratch);
        }
    }
    fclose(f);
    free(scratch);
    if (st) orig_state(&h, st);
    if (m) *m = mm;
    else free(mm);
    if (v) *v = vv;
    else free(vv);
    return 0;

fail:
    fclose(f);
    free(scratch);
    free(mm);
    free(vv);
    params_free(p);
    return -1;
}
