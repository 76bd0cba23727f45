// checkpoint: the anetrain checkpoint file (layout in checkpoint.h). The
// original system's checkpoints are imported in ckpt_original.c.
//
// The header is encoded field by field at fixed offsets (never a struct dump),
// so the file is the same on every compiler. The body is streamed in chunks,
// CRC'd on the way, straight from/to the caller's blocks: saving 110M params
// with moments (1.3 GB) needs no second copy in memory.
#include "train/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/io.h"
#include "core/rng.h"
#include "train/ckpt_internal.h"
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
    S_COMPILE_MS = 264, S_COMPILES = 272, S_RESTARTS = 280, S_WALL_MS = 288,
    S_TAIL_PENDING = 296,
    // LoRA (rank 0 in full-training checkpoints and in files written before it)
    L_RANK = 304, L_ALPHA = 308, L_TARGETS = 312, L_DROPOUT = 316, L_TRAIN_NORMS = 320, L_BASE_BYTES = 328,
    L_BASE_FP = 336, H_FIELDS_END = 344,
    // RunIdentity (version 1 files written before it have zeros here: id.present = 0)
    R_PRESENT = 512, R_SEQ = 516, R_COMPACT = 520, R_SEQUENTIAL = 524, R_VAL_FRAC = 528,
    R_DATA_BYTES = 536, R_DATA_FP = 544, R_VAL_BYTES = 552, R_VAL_FP = 560,
    R_PIPELINE = 568, R_DEVICE = 584, R_PRECISION = 600, R_NAME_LEN = 16,
    R_DATA = 1024, R_VAL_DATA = 2048, R_PATH_LEN = 1024,
    R_FIELDS_END = 3072,
    L_BASE_PATH = 3072, L_PATH_LEN = 1016,
    H_CRC = 4092,
};
_Static_assert(H_FIELDS_END <= R_PRESENT && R_FIELDS_END <= L_BASE_PATH && L_BASE_PATH + L_PATH_LEN <= H_CRC &&
                   H_CRC + 4 == CKPT_HEADER_BYTES,
               "header fields overlap");

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

size_t ckpt_layout_floats(const Config *c) {
    TensorDesc t[PARAMS_MAX_TENSORS];
    size_t total = 0;
    params_layout(c, t, &total);
    return total;
}

static uint64_t expected_size(uint64_t n_params, int moments) {
    return CKPT_HEADER_BYTES + 4 * n_params * (moments ? 3 : 1) + TRAILER_BYTES;
}

// A NUL-terminated string in a fixed field (truncated to cap - 1 bytes; the
// rest of the field stays zero).
static void put_str(uint8_t *h, int off, const char *s, size_t cap) {
    size_t len = strnlen(s, cap - 1);
    memcpy(h + off, s, len);
}

static void get_str(const uint8_t *h, int off, char *dst, size_t cap) {
    memcpy(dst, h + off, cap - 1);
    dst[cap - 1] = 0;
}

static void identity_encode(uint8_t *h, const RunIdentity *id) {
    if (!id->present) return;
    put_u32(h, R_PRESENT, 1);
    put_i32(h, R_SEQ, id->seq);
    put_u32(h, R_COMPACT, (uint32_t)id->compact_vocab);
    put_u32(h, R_SEQUENTIAL, (uint32_t)id->sequential);
    put_f32(h, R_VAL_FRAC, id->val_frac);
    put_u64(h, R_DATA_BYTES, id->data_bytes);
    put_u64(h, R_DATA_FP, id->data_fp);
    put_u64(h, R_VAL_BYTES, id->val_bytes);
    put_u64(h, R_VAL_FP, id->val_fp);
    put_str(h, R_PIPELINE, id->pipeline, R_NAME_LEN);
    put_str(h, R_DEVICE, id->device, R_NAME_LEN);
    put_str(h, R_PRECISION, id->precision, R_NAME_LEN);
    put_str(h, R_DATA, id->data, R_PATH_LEN);
    put_str(h, R_VAL_DATA, id->val_data, R_PATH_LEN);
}

static void identity_decode(const uint8_t *h, RunIdentity *id) {
    memset(id, 0, sizeof *id);
    if (get_u32(h, R_PRESENT) != 1) return;
    id->present = 1;
    id->seq = get_i32(h, R_SEQ);
    id->compact_vocab = get_u32(h, R_COMPACT) != 0;
    id->sequential = get_u32(h, R_SEQUENTIAL) != 0;
    id->val_frac = get_f32(h, R_VAL_FRAC);
    id->data_bytes = get_u64(h, R_DATA_BYTES);
    id->data_fp = get_u64(h, R_DATA_FP);
    id->val_bytes = get_u64(h, R_VAL_BYTES);
    id->val_fp = get_u64(h, R_VAL_FP);
    get_str(h, R_PIPELINE, id->pipeline, R_NAME_LEN);
    get_str(h, R_DEVICE, id->device, R_NAME_LEN);
    get_str(h, R_PRECISION, id->precision, R_NAME_LEN);
    get_str(h, R_DATA, id->data, R_PATH_LEN);
    get_str(h, R_VAL_DATA, id->val_data, R_PATH_LEN);
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
    put_f64(h, S_COMPILE_MS, st->compile_ms);
    put_i64(h, S_COMPILES, st->compiles);
    put_i64(h, S_RESTARTS, st->restarts);
    put_f64(h, S_WALL_MS, st->wall_ms);
    put_i32(h, S_TAIL_PENDING, st->tail_pending);
    put_i32(h, L_RANK, st->lora.rank);
    put_f32(h, L_ALPHA, st->lora.alpha);
    put_u32(h, L_TARGETS, st->lora.targets);
    put_f32(h, L_DROPOUT, st->lora.dropout);
    put_i32(h, L_TRAIN_NORMS, st->lora.train_norms);
    put_u64(h, L_BASE_BYTES, st->lora_base_bytes);
    put_u64(h, L_BASE_FP, st->lora_base_fp);
    put_str(h, L_BASE_PATH, st->lora_base, L_PATH_LEN);
    identity_encode(h, &st->id);

    put_u32(h, H_CRC, crc32_update(0, h, H_CRC));
}

static void lora_decode(const uint8_t *h, LoraConfig *lc) {
    lc->rank = get_i32(h, L_RANK);
    lc->alpha = get_f32(h, L_ALPHA);
    lc->targets = get_u32(h, L_TARGETS);
    lc->dropout = get_f32(h, L_DROPOUT);
    lc->train_norms = get_i32(h, L_TRAIN_NORMS);
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
    st->compile_ms = get_f64(h, S_COMPILE_MS);
    st->compiles = get_i64(h, S_COMPILES);
    st->restarts = get_i64(h, S_RESTARTS);
    st->wall_ms = get_f64(h, S_WALL_MS);
    st->tail_pending = get_i32(h, S_TAIL_PENDING) != 0;
    lora_decode(h, &st->lora);
    st->lora_base_bytes = get_u64(h, L_BASE_BYTES);
    st->lora_base_fp = get_u64(h, L_BASE_FP);
    get_str(h, L_BASE_PATH, st->lora_base, L_PATH_LEN);
    identity_decode(h, &st->id);
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

    uint64_t np = get_u64(h, H_NPARAMS), want_np = ckpt_layout_floats(cfg);
    LoraConfig lc;
    lora_decode(h, &lc);
    if (lc.rank != 0 || lc.targets != 0) {  // the body is LoRA adapters
        size_t nl = 0;
        if (lora_floats(cfg, &lc, &nl) != 0 || lc.train_norms < 0 || lc.train_norms > 1)
            return err_set("%s: checkpoint LoRA fields: %s", path, lc.train_norms < 0 || lc.train_norms > 1
                                                                       ? "train_norms is not 0 or 1" : err_msg());
        want_np = nl;
    }
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
FILE *ckpt_open_regular(const char *path, uint64_t *size) {
    size_t bytes = 0;
    int fd = io_open_read(path, &bytes);  // a fifo or device is refused, never waited on
    if (fd < 0) return NULL;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        close(fd);
        err_set("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    *size = (uint64_t)bytes;
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

// Progress of one save: bytes written so far, reported per chunk.
typedef struct {
    CkptProgress fn;
    void *ctx;
    uint64_t done, total;
} SaveProgress;

// Streams n floats to af in chunks, folding them into *crc.
static void write_block(AtomicFile *af, const float *src, size_t n, uint32_t *crc, SaveProgress *pr) {
    for (size_t i = 0; i < n && !af->failed; i += CHUNK_FLOATS) {
        size_t k = n - i < CHUNK_FLOATS ? n - i : CHUNK_FLOATS;
        *crc = crc32_update(*crc, src + i, k * sizeof(float));
        io_atomic_write(af, src + i, k * sizeof(float));
        pr->done += k * sizeof(float);
        if (pr->fn) pr->fn(pr->ctx, (double)pr->done / (double)pr->total);
    }
}

int ckpt_save(const char *path, const Params *p, const float *m, const float *v, const TrainState *st) {
    return ckpt_save_progress(path, p, m, v, st, NULL, NULL);
}

int ckpt_save_progress(const char *path, const Params *p, const float *m, const float *v, const TrainState *st,
                       CkptProgress fn, void *ctx) {
    if ((m == NULL) != (v == NULL))
        return err_set("%s: cannot save checkpoint: Adam moments m and v must both be given, or neither", path);
    if (!p->data) return err_set("%s: cannot save checkpoint: the model has no parameters loaded", path);
    if (config_validate(&p->cfg, path) != 0) return err_wrap("cannot save checkpoint");
    size_t n = ckpt_layout_floats(&p->cfg);
    if (st && st->lora.rank > 0 && lora_floats(&p->cfg, &st->lora, &n) != 0)
        return err_wrap("%s: cannot save checkpoint", path);
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
    SaveProgress pr = {fn, ctx, 0, expected_size(n, moments)};
    write_block(&af, p->data, n, &crc, &pr);
    if (moments) {
        write_block(&af, m, n, &crc, &pr);
        write_block(&af, v, n, &crc, &pr);
    }
    uint8_t trailer[TRAILER_BYTES];
    put_u32(trailer, 0, crc);
    memcpy(trailer + 4, TRAILER_MAGIC, 4);
    io_atomic_write(&af, trailer, sizeof trailer);
    if (io_atomic_commit(&af) != 0) return err_wrap("cannot save checkpoint %s (any previous file is kept)", path);
    return 0;
}

int ckpt_link(const char *existing, const char *path) {
    struct stat sb;
    if (lstat(path, &sb) == 0 && !S_ISREG(sb.st_mode))
        return err_set("%s: exists and is not a regular file; not replacing it", path);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    unlink(tmp);
    // a symlinked --ckpt: link the file it names, not the symlink
    if (linkat(AT_FDCWD, existing, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) != 0)
        return err_set("%s: cannot link to %s: %s", tmp, existing, strerror(errno));
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return err_set("%s: rename to %s failed: %s", tmp, path, strerror(e));
    }
    io_fsync_dir(path);  // as io_atomic_commit: the new name survives a crash
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

float *ckpt_alloc_floats(size_t n) {
    size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
    return aligned_alloc(64, bytes ? bytes : 64);
}

int ckpt_load(const char *path, Params *p, float **m, float **v, TrainState *st) {
    memset(p, 0, sizeof *p);
    if (m) *m = NULL;
    if (v) *v = NULL;
    uint64_t size = 0;
    FILE *f = ckpt_open_regular(path, &size);
    if (!f) return -1;

    Config cfg;
    TrainState tmp_st;
    int moments = 0;
    uint64_t n = 0;
    float *mm = NULL, *vv = NULL, *scratch = NULL;
    if (read_header(f, size, path, &cfg, &tmp_st, &moments, &n) != 0) goto fail;
    if ((tmp_st.lora.rank ? lora_init(p, &cfg, &tmp_st.lora) : params_init(p, &cfg)) != 0) goto fail;
    int want_moments = moments && m && v;
    if (want_moments) {
        mm = ckpt_alloc_floats(n);
        vv = ckpt_alloc_floats(n);
        if (!mm || !vv) {
            err_set("%s: out of memory for Adam moments (2 x %.1f MB)", path, n * 4.0 / 1e6);
            goto fail;
        }
    } else if (moments) {
        scratch = ckpt_alloc_floats(CHUNK_FLOATS);
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
    FILE *f = ckpt_open_regular(path, &size);
    if (!f) return -1;
    int rc = read_header(f, size, path, cfg, st, has_moments, NULL);
    fclose(f);
    return rc;
}

// Reads up to n leading bytes; returns how many, or -1 if the file cannot be opened.
long ckpt_read_prefix(const char *path, uint8_t *buf, size_t n) {
    FILE *f = ckpt_open_regular(path, &(uint64_t){0});
    if (!f) return -1;
    size_t got = fread(buf, 1, n, f);
    fclose(f);
    return (long)got;
}

int ckpt_is_checkpoint(const char *path) {
    uint8_t b[8];
    return ckpt_read_prefix(path, b, 8) == 8 && memcmp(b, CKPT_MAGIC, 8) == 0;
}

int ckpt_check_config(const char *path, const Config *want) {
    Config have;
    if (ckpt_read_header(path, &have, NULL, NULL) != 0) return -1;
    char why[128];
    if (!config_equal(&have, want, why, sizeof why))
        return err_set("%s: checkpoint holds a different model than expected: %s (file vs expected)", path, why);
    return 0;
}

// --- verify (for `info`) -----------------------------------------------------------

// Both CRCs of a checkpoint, streaming the body through a 4 MiB buffer (a
// 9.5 GB checkpoint is never held in memory). Same order and messages as
// ckpt_load: header (magic, version, CRC, exact size), body CRC, trailer.
int ckpt_verify(const char *path) {
    uint64_t size = 0;
    FILE *f = ckpt_open_regular(path, &size);
    if (!f) return -1;
    Config cfg;
    uint8_t *buf = NULL;
    int rc = read_header(f, size, path, &cfg, NULL, NULL, NULL);
    if (rc == 0 && !(buf = malloc(CHUNK_FLOATS * sizeof(float)))) rc = err_set("%s: out of memory", path);
    uint64_t body = size - CKPT_HEADER_BYTES - TRAILER_BYTES, pos = 0;  // read_header checked the exact size
    uint32_t crc = 0;
    while (rc == 0 && pos < body) {
        size_t k = body - pos < CHUNK_FLOATS * sizeof(float) ? (size_t)(body - pos) : CHUNK_FLOATS * sizeof(float);
        if (fread(buf, 1, k, f) != k)
            rc = err_set("%s: read error at byte %llu of the checkpoint body: %s", path,
                         (unsigned long long)(CKPT_HEADER_BYTES + pos),
                         ferror(f) ? strerror(errno) : "unexpected end of file");
        crc = crc32_update(crc, buf, k);
        pos += k;
    }
    uint8_t trailer[TRAILER_BYTES];
    if (rc == 0 && fread(trailer, 1, sizeof trailer, f) != sizeof trailer)
        rc = err_set("%s: read error in the checkpoint trailer at byte %llu", path,
                     (unsigned long long)(CKPT_HEADER_BYTES + pos));
    if (rc == 0 && get_u32(trailer, 0) != crc)
        rc = err_set("%s: checkpoint body is corrupted: stored CRC-32 0x%08x, computed 0x%08x over %llu bytes", path,
                     get_u32(trailer, 0), crc, (unsigned long long)body);
    if (rc == 0 && memcmp(trailer + 4, TRAILER_MAGIC, 4) != 0) {
        char found[40];
        show_bytes(found, sizeof found, trailer + 4, 4);
        rc = err_set("%s: checkpoint trailer: expected \"DONE\", found %s", path, found);
    }
    free(buf);
    fclose(f);
    return rc;
}
