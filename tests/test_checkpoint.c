// Checkpoints: CRC-32, save/load round trips, every kind of damage, failed
// saves keeping the old file, the original system's v2/v4 import, and export.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/io.h"
#include "core/rng.h"
#include "model/config.h"
#include "model/llama2c.h"
#include "model/params.h"
#include "test.h"
#include "train/checkpoint.h"
#include "train/optim.h"

// --- helpers -------------------------------------------------------------------

static const char *tmp_path(const char *name) {
    static char buf[8][512];
    static int slot;
    char *p = buf[slot++ % 8];
    snprintf(p, 512, "%s/%s", test_tmpdir(), name);
    return p;
}

// Every float of the block random (norm weights too), so a misplaced tensor shows.
static void fill_random(float *x, size_t n, uint64_t seed) {
    Rng r;
    rng_init(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = rng_normal(&r);
}

static int make_model(Params *p, const char *preset, uint64_t seed) {
    Config c;
    if (config_preset(&c, preset) != 0 || params_init(p, &c) != 0) return -1;
    fill_random(p->data, p->n, seed);
    return 0;
}

// A state with a distinct, non-default value in every field.
static void fill_state(TrainState *st) {
    memset(st, 0, sizeof *st);
    st->lr = 1.25e-3f;
    st->min_lr_frac = 0.07f;
    st->beta1 = 0.85f;
    st->beta2 = 0.975f;
    st->eps = 3e-9f;
    st->weight_decay = 0.02f;
    st->clip = 0.5f;
    st->warmup = 17;
    st->accum = 3;
    st->total_steps = 7000000000LL;  // counters > 2^32: catch a 32-bit field
    st->step = 6000000001LL;
    st->adam_t = 5999999990LL;
    st->tokens_seen = 123456789012345LL;
    st->loss_scale = 4096.0f;
    st->loss_scale_dynamic = 1;
    st->good_steps = 77;
    st->skipped = 5;
    st->seed = 0xDEADBEEFCAFEF00Dull;
    st->data_rng = 0x0123456789ABCDEFull;
    st->data_cursor = 0xFEDCBA9876543210ull;
    st->best_val_loss = 2.71828f;
    st->last_loss = 3.14159f;
    st->train_ms = 98765.4321;
}

#define SAME_BITS(a, b) (memcmp(&(a), &(b), sizeof(a)) == 0)

static void check_state_equal(const TrainState *a, const TrainState *b) {
#define F(f) CHECKF(SAME_BITS(a->f, b->f), "state field " #f " differs after round trip")
    F(lr); F(min_lr_frac); F(beta1); F(beta2); F(eps); F(weight_decay); F(clip); F(warmup); F(accum);
    F(total_steps); F(step); F(adam_t); F(tokens_seen); F(loss_scale); F(loss_scale_dynamic); F(good_steps);
    F(skipped); F(seed); F(data_rng); F(data_cursor); F(best_val_loss); F(last_loss); F(train_ms);
#undef F
}

static void check_config_equal(const Config *a, const Config *b) {
    char why[128];
    CHECKF(config_equal(a, b, why, sizeof why), "config differs: %s", why);
    CHECKF(strcmp(a->name, b->name) == 0, "name '%s' vs '%s'", a->name, b->name);
}

static int write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, n, f);
    return fclose(f) == 0 && w == n ? 0 : -1;
}

static uint64_t file_size(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

static int contains(const char *s, const char *sub) { return s && strstr(s, sub) != NULL; }

// --- CRC-32 ---------------------------------------------------------------------

// bit-at-a-time reference, straight from the definition
static uint32_t crc32_naive(const uint8_t *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
    }
    return ~c;
}

TEST(crc32_known_values_and_chaining) {
    CHECKF(crc32_update(0, "123456789", 9) == 0xCBF43926u, "crc32(\"123456789\") = 0x%08x",
           crc32_update(0, "123456789", 9));
    CHECK(crc32_update(0, "", 0) == 0);
    CHECKF(crc32_update(0, "The quick brown fox jumps over the lazy dog", 43) == 0x414FA339u, "fox");
    uint8_t buf[1000];
    Rng r;
    rng_init(&r, 7);
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)rng_u32(&r);
    // every length 0..100 and unaligned starts against the bitwise reference
    for (size_t off = 0; off < 9; off++)
        for (size_t n = 0; n <= 100; n++)
            CHECKF(crc32_update(0, buf + off, n) == crc32_naive(buf + off, n), "len %zu off %zu", n, off);
    // chained in odd pieces == one shot
    uint32_t one = crc32_update(0, buf, sizeof buf), c = 0;
    size_t cuts[] = {0, 1, 8, 13, 500, 999, 1000};
    for (size_t i = 0; i + 1 < sizeof cuts / sizeof cuts[0]; i++) c = crc32_update(c, buf + cuts[i], cuts[i + 1] - cuts[i]);
    CHECK(c == one);
    CHECK(one == crc32_naive(buf, sizeof buf));
}

// --- round trips ------------------------------------------------------------------

// A config that sets every Config field away from its usual value.
static int make_unusual_model(Params *p) {
    Config c;
    if (config_preset(&c, "tiny-qwen3") != 0) return -1;  // qk_norm, rotate-half, head_dim 32 != 64/4
    snprintf(c.name, sizeof c.name, "roundtrip-model");
    c.tied = 0;
    c.res_scale = 0.37f;
    c.norm_eps = 3e-6f;
    c.rope_theta = 5e5f;
    c.seq_len = 48;
    c.hidden = 96;
    if (params_init(p, &c) != 0) return -1;
    fill_random(p->data, p->n, 11);
    return 0;
}

TEST(ckpt_roundtrip_bit_exact) {
    Params p;
    REQUIRE(make_unusual_model(&p) == 0);
    float *m = malloc(p.n * sizeof(float)), *v = malloc(p.n * sizeof(float));
    fill_random(m, p.n, 12);
    fill_random(v, p.n, 13);
    TrainState st;
    fill_state(&st);
    const char *path = tmp_path("rt.ckpt");
    REQUIRE(ckpt_save(path, &p, m, v, &st) == 0);
    CHECK(file_size(path) == 4096 + 12 * (uint64_t)p.n + 8);
    CHECK(ckpt_is_checkpoint(path));
    CHECK(!ckpt_is_original(path));

    Params q;
    float *m2 = NULL, *v2 = NULL;
    TrainState st2;
    REQUIRE(ckpt_load(path, &q, &m2, &v2, &st2) == 0);
    check_config_equal(&q.cfg, &p.cfg);
    REQUIRE(q.n == p.n);
    CHECK(memcmp(q.data, p.data, p.n * sizeof(float)) == 0);
    REQUIRE(m2 && v2);
    CHECK(memcmp(m2, m, p.n * sizeof(float)) == 0);
    CHECK(memcmp(v2, v, p.n * sizeof(float)) == 0);
    check_state_equal(&st2, &st);
    CHECK(q.v.q_norm && q.v.wcls && q.v.wcls != q.v.embed);  // views rebuilt for the loaded config

    Config c;
    TrainState st3;
    int has_m = -1;
    REQUIRE(ckpt_read_header(path, &c, &st3, &has_m) == 0);
    check_config_equal(&c, &p.cfg);
    check_state_equal(&st3, &st);
    CHECK(has_m == 1);

    // weights only from a file with moments: fine (the moments are still CRC-checked)
    Params w;
    TrainState st4;
    REQUIRE(ckpt_load(path, &w, NULL, NULL, &st4) == 0);
    CHECK(memcmp(w.data, p.data, p.n * sizeof(float)) == 0);
    params_free(&w);

    // saving the loaded copy gives the identical file (deterministic header padding)
    const char *path2 = tmp_path("rt2.ckpt");
    REQUIRE(ckpt_save(path2, &q, m2, v2, &st2) == 0);
    char *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    REQUIRE(io_read_all(path, &a, &na) == 0 && io_read_all(path2, &b, &nb) == 0);
    CHECK(na == nb && memcmp(a, b, na) == 0);
    free(a), free(b);

    params_free(&p), params_free(&q);
    free(m), free(v), free(m2), free(v2);
}

// Pins the on-disk layout to the offsets documented in checkpoint.h, reading
// the bytes independently of the decoder.
static float le_f32(const uint8_t *b) {
    uint32_t u = io_le32(b);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

TEST(ckpt_layout_matches_documented_offsets) {
    Params p;
    REQUIRE(make_unusual_model(&p) == 0);
    TrainState st;
    fill_state(&st);
    const char *path = tmp_path("layout.ckpt");
    REQUIRE(ckpt_save(path, &p, p.data, p.data, &st) == 0);
    char *bytes = NULL;
    size_t n = 0;
    REQUIRE(io_read_all(path, &bytes, &n) == 0);
    const uint8_t *b = (const uint8_t *)bytes;
    const Config *c = &p.cfg;
    CHECK(memcmp(b, "ANETCKPT", 8) == 0);
    CHECK(io_le32(b + 8) == 1 && io_le32(b + 12) == 4096 && io_le32(b + 16) == 1 && io_le32(b + 20) == 0);
    CHECK(io_le64(b + 24) == p.n);
    CHECK(strcmp((const char *)b + 32, "roundtrip-model") == 0);
    CHECK((int)io_le32(b + 64) == c->dim && (int)io_le32(b + 68) == c->hidden && (int)io_le32(b + 72) == c->n_layers);
    CHECK((int)io_le32(b + 76) == c->n_heads && (int)io_le32(b + 80) == c->n_kv_heads);
    CHECK((int)io_le32(b + 84) == c->head_dim && (int)io_le32(b + 88) == c->vocab && (int)io_le32(b + 92) == c->seq_len);
    CHECK(le_f32(b + 96) == c->norm_eps && le_f32(b + 100) == c->rope_theta);
    CHECK(io_le32(b + 104) == 1 && io_le32(b + 108) == 1 && io_le32(b + 112) == 0 && le_f32(b + 116) == c->res_scale);
    CHECK(le_f32(b + 128) == st.lr && le_f32(b + 132) == st.min_lr_frac && le_f32(b + 136) == st.beta1);
    CHECK(le_f32(b + 140) == st.beta2 && le_f32(b + 144) == st.eps && le_f32(b + 148) == st.weight_decay);
    CHECK(le_f32(b + 152) == st.clip && (int)io_le32(b + 156) == st.warmup && (int)io_le32(b + 160) == st.accum);
    CHECK((int64_t)io_le64(b + 168) == st.total_steps && (int64_t)io_le64(b + 176) == st.step);
    CHECK((int64_t)io_le64(b + 184) == st.adam_t && (int64_t)io_le64(b + 192) == st.tokens_seen);
    CHECK(le_f32(b + 200) == st.loss_scale && (int)io_le32(b + 204) == st.loss_scale_dynamic);
    CHECK((int64_t)io_le64(b + 208) == st.good_steps && (int64_t)io_le64(b + 216) == st.skipped);
    CHECK(io_le64(b + 224) == st.seed && io_le64(b + 232) == st.data_rng && io_le64(b + 240) == st.data_cursor);
    CHECK(le_f32(b + 248) == st.best_val_loss && le_f32(b + 252) == st.last_loss);
    uint64_t ms = io_le64(b + 256);
    CHECK(memcmp(&ms, &st.train_ms, 8) == 0);
    int zeros = 1;
    for (size_t i = 264; i < 4092; i++) zeros &= b[i] == 0;
    CHECK(zeros);
    CHECK(io_le32(b + 4092) == crc32_update(0, b, 4092));
    REQUIRE(n == 4096 + 12 * p.n + 8);
    CHECK(memcmp(b + 4096, p.data, 4 * p.n) == 0);
    CHECK(io_le32(b + n - 8) == crc32_update(0, b + 4096, 12 * p.n));
    CHECK(memcmp(b + n - 4, "DONE", 4) == 0);
    free(bytes);
    params_free(&p);
}

TEST(ckpt_roundtrip_without_moments) {
    Params p;
    REQUIRE(make_model(&p, "tiny-gqa", 21) == 0);
    TrainState st;
    fill_state(&st);
    const char *path = tmp_path("nomom.ckpt");
    REQUIRE(ckpt_save(path, &p, NULL, NULL, &st) == 0);
    CHECK(file_size(path) == 4096 + 4 * (uint64_t)p.n + 8);
    Params q;
    float *m = (float *)1, *v = (float *)1;
    TrainState st2;
    REQUIRE(ckpt_load(path, &q, &m, &v, &st2) == 0);
    CHECK(m == NULL && v == NULL);
    CHECK(memcmp(q.data, p.data, p.n * sizeof(float)) == 0);
    check_state_equal(&st2, &st);
    check_config_equal(&q.cfg, &p.cfg);
    int has_m = -1;
    Config c;
    REQUIRE(ckpt_read_header(path, &c, NULL, &has_m) == 0);
    CHECK(has_m == 0);

    // a NULL state saves the recipe defaults at step 0
    REQUIRE(ckpt_save(path, &p, NULL, NULL, NULL) == 0);
    TrainState d, want;
    memset(&want, 0, sizeof want);
    optim_defaults(&want);
    REQUIRE(ckpt_read_header(path, &c, &d, NULL) == 0);
    check_state_equal(&d, &want);

    // one moment without the other is a caller bug, reported
    CHECK(ckpt_save(path, &p, p.data, NULL, &st) != 0);
    CHECK(contains(err_msg(), "both"));
    params_free(&p), params_free(&q);
}

// --- damage -------------------------------------------------------------------------

// Saves a small checkpoint with moments; returns its bytes.
static char *saved_bytes(const char *path, size_t *n, Params *p) {
    if (make_model(p, "tiny-mha", 31) != 0) return NULL;
    float *m = malloc(p->n * sizeof(float)), *v = malloc(p->n * sizeof(float));
    fill_random(m, p->n, 32);
    fill_random(v, p->n, 33);
    TrainState st;
    fill_state(&st);
    int rc = ckpt_save(path, p, m, v, &st);
    free(m), free(v);
    char *bytes = NULL;
    if (rc != 0 || io_read_all(path, &bytes, n) != 0) return NULL;
    return bytes;
}

TEST(ckpt_detects_corruption_anywhere) {
    Params p;
    size_t n = 0;
    char *good = saved_bytes(tmp_path("good.ckpt"), &n, &p);
    REQUIRE(good != NULL);
    size_t body = 4 * p.n;  // bytes of one block
    struct { size_t off; const char *expect; } cases[] = {
        {0, "not an anetrain checkpoint"},
        {7, "not an anetrain checkpoint"},
        {8, "version"},
        {13, "header is corrupted"},           // header size field
        {16, "header is corrupted"},           // flags
        {26, "header is corrupted"},           // n_params
        {40, "header is corrupted"},           // name
        {66, "header is corrupted"},           // dim
        {101, "header is corrupted"},          // rope_theta
        {130, "header is corrupted"},          // lr
        {180, "header is corrupted"},          // step
        {259, "header is corrupted"},          // train_ms
        {2000, "header is corrupted"},         // reserved zeros
        {4091, "header is corrupted"},         // last covered byte
        {4093, "header is corrupted"},         // the CRC itself
        {4096, "body is corrupted"},           // first param
        {4096 + body / 2 + 1, "body is corrupted"},
        {4096 + body + 5, "body is corrupted"},  // Adam m
        {4096 + 3 * body - 1, "body is corrupted"},  // last byte of Adam v
        {n - 8, "body is corrupted"},          // stored body CRC
        {n - 1, "trailer"},                    // "DONE"
    };
    const char *bad = tmp_path("bad.ckpt");
    char *copy = malloc(n);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(copy, good, n);
        copy[cases[i].off] ^= 0x10;
        REQUIRE(write_bytes(bad, copy, n) == 0);
        Params q;
        float *m = NULL, *v = NULL;
        TrainState st;
        int rc = ckpt_load(bad, &q, &m, &v, &st);
        CHECKF(rc != 0, "flip at byte %zu not detected", cases[i].off);
        CHECKF(contains(err_msg(), bad) && contains(err_msg(), cases[i].expect),
               "flip at byte %zu: message '%s' lacks '%s'", cases[i].off, err_msg(), cases[i].expect);
        CHECK(q.data == NULL && m == NULL && v == NULL);  // nothing left allocated
        if (cases[i].off < 4096) {
            Config c;
            CHECKF(ckpt_read_header(bad, &c, NULL, NULL) != 0, "header flip at %zu passes read_header",
                   cases[i].off);
        }
    }
    free(copy);
    free(good);
    params_free(&p);
}

TEST(ckpt_rejects_truncated_and_padded_files) {
    Params p;
    size_t n = 0;
    char *good = saved_bytes(tmp_path("trunc-src.ckpt"), &n, &p);
    REQUIRE(good != NULL);
    const char *bad = tmp_path("trunc.ckpt");
    size_t lens[] = {0, 5, 10, 100, 4095, 4096, 4096 + 4 * p.n, n / 2, n - 8, n - 1};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        REQUIRE(write_bytes(bad, good, lens[i]) == 0);
        Params q;
        CHECKF(ckpt_load(bad, &q, NULL, NULL, NULL) != 0, "%zu-byte prefix accepted", lens[i]);
        const char *want = lens[i] < 8 ? "expected at least a 4096-byte header"
                           : lens[i] < 4096 ? "truncated checkpoint"
                                            : "truncated";
        CHECKF(contains(err_msg(), bad) && contains(err_msg(), want), "%zu bytes: '%s'", lens[i], err_msg());
        Config c;
        CHECKF(ckpt_read_header(bad, &c, NULL, NULL) != 0, "%zu-byte prefix passes read_header", lens[i]);
    }
    // one byte too many is as wrong as one too few
    char *longer = malloc(n + 1);
    memcpy(longer, good, n);
    longer[n] = 0;
    REQUIRE(write_bytes(bad, longer, n + 1) == 0);
    Params q;
    CHECK(ckpt_load(bad, &q, NULL, NULL, NULL) != 0);
    char want[64];
    snprintf(want, sizeof want, "expected %zu bytes", n);
    CHECKF(contains(err_msg(), want), "'%s' lacks '%s'", err_msg(), want);
    free(longer);
    // not a checkpoint at all, and a missing file
    REQUIRE(write_bytes(bad, "hello, world, this is text", 26) == 0);
    CHECK(ckpt_load(bad, &q, NULL, NULL, NULL) != 0 && contains(err_msg(), "\"hello, w\""));
    CHECK(!ckpt_is_checkpoint(bad));
    CHECK(ckpt_load(tmp_path("missing.ckpt"), &q, NULL, NULL, NULL) != 0 && contains(err_msg(), "missing.ckpt"));
    free(good);
    params_free(&p);
}

TEST(ckpt_other_model_is_named) {
    Params p;
    REQUIRE(make_model(&p, "tiny-mha", 41) == 0);
    const char *path = tmp_path("mha.ckpt");
    REQUIRE(ckpt_save(path, &p, NULL, NULL, NULL) == 0);
    Config have, want;
    REQUIRE(ckpt_read_header(path, &have, NULL, NULL) == 0);
    REQUIRE(config_preset(&want, "tiny-gqa") == 0);
    char why[128];
    CHECK(!config_equal(&have, &want, why, sizeof why));
    CHECKF(strcmp(why, "n_kv_heads 4 vs 2") == 0, "why = '%s'", why);
    CHECK(ckpt_check_config(path, &want) != 0);
    CHECKF(contains(err_msg(), path) && contains(err_msg(), "different model") &&
               contains(err_msg(), "n_kv_heads 4 vs 2"),
           "'%s'", err_msg());
    REQUIRE(config_preset(&want, "tiny-mha") == 0);
    CHECK(ckpt_check_config(path, &want) == 0);
    params_free(&p);
}

TEST(ckpt_unknown_version_is_refused) {
    Params p;
    size_t n = 0;
    char *bytes = saved_bytes(tmp_path("ver.ckpt"), &n, &p);
    REQUIRE(bytes != NULL);
    // version 2 with a valid header CRC: only the version is wrong
    uint8_t *h = (uint8_t *)bytes;
    h[8] = 2;
    uint32_t crc = crc32_update(0, h, 4092);
    for (int i = 0; i < 4; i++) h[4092 + i] = (uint8_t)(crc >> (8 * i));
    const char *path = tmp_path("ver2.ckpt");
    REQUIRE(write_bytes(path, bytes, n) == 0);
    Params q;
    CHECK(ckpt_load(path, &q, NULL, NULL, NULL) != 0);
    CHECKF(contains(err_msg(), path) && contains(err_msg(), "version 2 not supported, this build reads version 1"),
           "'%s'", err_msg());
    Config c;
    CHECK(ckpt_read_header(path, &c, NULL, NULL) != 0 && contains(err_msg(), "version 2 not supported"));
    free(bytes);
    params_free(&p);
}

// --- failed saves -------------------------------------------------------------------

static int64_t step_of(const char *path) {
    Config c;
    TrainState st;
    return ckpt_read_header(path, &c, &st, NULL) == 0 ? st.step : -1;
}

TEST(ckpt_failed_save_keeps_previous) {
    // We may run as root, where permission bits do not stop writes; so the
    // failures here are ones root gets too: the tmp name is a directory, the
    // tmp name is a symlink to /dev/full (disk full mid-body), the parent
    // directory does not exist, the target is a directory.
    Params p;
    REQUIRE(make_model(&p, "tiny-mha", 51) == 0);
    TrainState st;
    fill_state(&st);
    st.step = 1;
    const char *path = tmp_path("keep.ckpt");
    REQUIRE(ckpt_save(path, &p, p.data, p.data, &st) == 0);
    Params other;
    REQUIRE(make_model(&other, "tiny-mha", 52) == 0);
    st.step = 2;
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);

    // 1. PATH.tmp cannot be created
    REQUIRE(mkdir(tmp, 0755) == 0);
    CHECK(ckpt_save(path, &other, NULL, NULL, &st) != 0);
    CHECKF(contains(err_msg(), path) && contains(err_msg(), "previous file is kept"), "'%s'", err_msg());
    CHECK(step_of(path) == 1);
    rmdir(tmp);

    // 2. (the disk filling up mid-write: badinput_disk_full_mid_write_keeps_previous)

    // 3. parent directory missing
    const char *nodir = tmp_path("no-such-dir/x.ckpt");
    CHECK(ckpt_save(nodir, &other, NULL, NULL, &st) != 0);
    CHECKF(contains(err_msg(), nodir), "'%s'", err_msg());

    // 4. the target is a directory: rename fails, the directory stays
    const char *dir = tmp_path("a-directory");
    REQUIRE(mkdir(dir, 0755) == 0);
    CHECK(ckpt_save(dir, &other, NULL, NULL, &st) != 0);
    CHECKF(contains(err_msg(), dir), "'%s'", err_msg());
    struct stat sb;
    CHECK(stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode));
    char dtmp[600];
    snprintf(dtmp, sizeof dtmp, "%s.tmp", dir);
    CHECK(access(dtmp, F_OK) != 0);

    // the old checkpoint still loads, bit-exact
    Params q;
    REQUIRE(ckpt_load(path, &q, NULL, NULL, NULL) == 0);
    CHECK(memcmp(q.data, p.data, p.n * sizeof(float)) == 0);
    // and a good save replaces it
    REQUIRE(ckpt_save(path, &other, NULL, NULL, &st) == 0);
    CHECK(step_of(path) == 2);
    // a stale PATH.tmp that is a symlink is removed, never written through
    if (access("/dev/full", W_OK) == 0) {
        REQUIRE(symlink("/dev/full", tmp) == 0);
        CHECKF(ckpt_save(path, &other, other.data, other.data, &st) == 0, "%s", err_msg());
        CHECK(access(tmp, F_OK) != 0);
        CHECK(stat("/dev/full", &sb) == 0 && S_ISCHR(sb.st_mode));
    }
    params_free(&p), params_free(&other), params_free(&q);
}

// --- the original system's checkpoints -------------------------------------------------

// What an original file holds, by construction: float value of element i of
// tensor t (0..8 per layer in the original's order, 9 rms_final, 10 embed) of
// layer l, for kind 0 = weight, 1 = Adam m, 2 = Adam v. Exact in fp32 (< 2^24).
static float orig_value(int kind, int t, int l, size_t i) {
    return (float)(kind * 5000000 + t * 400000 + l * 10000 + (int)i);
}

typedef struct {
    int version, step, total_steps, adam_t;
    int L, V, D, H, NH, NKV, HD, S;
    float lr, loss;
    double cum_compile, cum_train, cum_wall;
} OrigSpec;

static void put32(uint8_t *b, int off, uint32_t v) {
    for (int i = 0; i < 4; i++) b[off + i] = (uint8_t)(v >> (8 * i));
}
static void putf(uint8_t *b, int off, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    put32(b, off, u);
}
static void putd(uint8_t *b, int off, double d) {
    uint64_t u;
    memcpy(&u, &d, 8);
    put32(b, off, (uint32_t)u);
    put32(b, off + 4, (uint32_t)(u >> 32));
}

// Writes a file in the original's layout (ane-spec 5.2), built by hand from the
// spec: 96-byte LP64 header, per layer 9 weights then (m, v) of each, then
// rms_final + m, v, then embed + m, v. Returns the file size, 0 on failure.
static size_t write_original(const char *path, const OrigSpec *s) {
    uint8_t h[96];
    memset(h, 0, sizeof h);
    int QD = s->NH * s->HD, KVD = s->NKV * s->HD;
    put32(h, 0, 0x424C5A54u);
    put32(h, 4, (uint32_t)s->version);
    put32(h, 8, (uint32_t)s->step);
    put32(h, 12, (uint32_t)s->total_steps);
    put32(h, 16, (uint32_t)s->L);
    put32(h, 20, (uint32_t)s->V);
    put32(h, 24, (uint32_t)s->D);
    put32(h, 28, (uint32_t)s->H);
    put32(h, 32, (uint32_t)s->NH);
    put32(h, 36, (uint32_t)s->S);
    putf(h, 40, s->lr);
    putf(h, 44, s->loss);
    putd(h, 48, s->cum_compile);
    putd(h, 56, s->cum_train);
    putd(h, 64, s->cum_wall);
    put32(h, 72, 7);   // cum_steps
    put32(h, 76, 1);   // cum_batches
    put32(h, 80, (uint32_t)s->adam_t);
    if (s->version == 4) {
        put32(h, 84, (uint32_t)s->NKV);
        put32(h, 88, (uint32_t)s->HD);
        put32(h, 92, (uint32_t)QD);
    }
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(h, 1, sizeof h, f);
    size_t sizes[9] = {(size_t)QD * s->D, (size_t)KVD * s->D, (size_t)KVD * s->D, (size_t)s->D * QD,
                       (size_t)s->H * s->D, (size_t)s->D * s->H, (size_t)s->H * s->D, (size_t)s->D, (size_t)s->D};
    size_t total = 96;
    for (int l = 0; l < s->L; l++) {
        for (int t = 0; t < 9; t++)
            for (size_t i = 0; i < sizes[t]; i++) {
                float x = orig_value(0, t, l, i);
                total += 4 * fwrite(&x, 4, 1, f);
            }
        for (int t = 0; t < 9; t++)
            for (int kind = 1; kind <= 2; kind++)
                for (size_t i = 0; i < sizes[t]; i++) {
                    float x = orig_value(kind, t, l, i);
                    total += 4 * fwrite(&x, 4, 1, f);
                }
    }
    size_t tail[2] = {(size_t)s->D, (size_t)s->V * s->D};
    for (int t = 0; t < 2; t++)
        for (int kind = 0; kind <= 2; kind++)
            for (size_t i = 0; i < tail[t]; i++) {
                float x = orig_value(kind, 9 + t, 0, i);
                total += 4 * fwrite(&x, 4, 1, f);
            }
    return fclose(f) == 0 ? total : 0;
}

// The original's lr at the update on micro-step s (its float arithmetic, ane-spec 1.8).
static float orig_sched(float max_lr, int s, int total) {
    const int warmup = 100;
    if (s < warmup) return max_lr * ((float)(s + 1)) / warmup;
    float ratio = (float)(s - warmup) / (float)(total - warmup);
    float min_lr = max_lr * 0.1f;
    return min_lr + 0.5f * (1.0f + cosf((float)M_PI * ratio)) * (max_lr - min_lr);
}

// Checks every element of every tensor of p (and m, v) against what
// write_original put there, undoing the v4 GQA head permutation for wq / wo.
static int check_original_mapping(const Params *p, const float *m, const float *v, const OrigSpec *s, int permuted) {
    static const char *const order[11] = {"wq", "wk", "wv", "wo", "w1", "w2", "w3", "rms_att", "rms_ffn",
                                          "rms_final", "embed"};
    const float *blocks[3] = {p->data, m, v};
    int R = s->NH / s->NKV, QD = s->NH * s->HD, bad = 0;
    for (int t = 0; t < 11; t++) {
        const TensorDesc *d = params_find(p, order[t]);
        if (!d) return test_checkf(0, __FILE__, __LINE__, "tensor %s missing", order[t]), 0;
        int layers = d->per_layer ? s->L : 1;
        size_t per = d->numel / layers;
        for (int kind = 0; kind < 3; kind++) {
            if (!blocks[kind]) continue;
            for (int l = 0; l < layers; l++)
                for (size_t i = 0; i < per; i++) {
                    size_t src = i;
                    if (permuted && t == 0) {  // wq (QD, D): row block of our head h from original head
                        size_t row = i / s->D, col = i % s->D;
                        int h = (int)row / s->HD, j = (int)row % s->HD, oh = (h % R) * s->NKV + h / R;
                        src = ((size_t)oh * s->HD + j) * s->D + col;
                    } else if (permuted && t == 3) {  // wo (D, QD): column block
                        size_t row = i / QD, col = i % QD;
                        int h = (int)col / s->HD, j = (int)col % s->HD, oh = (h % R) * s->NKV + h / R;
                        src = row * QD + (size_t)oh * s->HD + j;
                    }
                    float want = orig_value(kind, t, d->per_layer ? l : 0, src);
                    float got = blocks[kind][d->offset + l * per + i];
                    if (got != want && bad++ < 5)
                        test_checkf(0, __FILE__, __LINE__, "%s kind %d layer %d [%zu]: %g, expected %g", order[t],
                                    kind, l, i, got, want);
                }
        }
    }
    return bad == 0;
}

TEST(ckpt_import_original_v2_static) {
    OrigSpec s = {.version = 2, .step = 30, .total_steps = 1000, .adam_t = 3, .L = 2, .V = 64, .D = 16, .H = 32,
                  .NH = 4, .NKV = 4, .HD = 4, .S = 32, .lr = 2e-4f, .loss = 4.25f, .cum_compile = 5000.5,
                  .cum_train = 1234.5, .cum_wall = 9999.0};
    const char *path = tmp_path("orig_v2.bin");
    size_t size = write_original(path, &s);
    REQUIRE(size > 0);
    CHECK(ckpt_is_original(path) && !ckpt_is_checkpoint(path));
    Params p;
    float *m = NULL, *v = NULL;
    TrainState st;
    REQUIRE(ckpt_import_original(path, &p, &m, &v, &st) == 0);
    const Config *c = &p.cfg;
    CHECK(c->dim == 16 && c->hidden == 32 && c->n_layers == 2 && c->n_heads == 4 && c->n_kv_heads == 4);
    CHECK(c->head_dim == 4 && c->vocab == 64 && c->seq_len == 32);
    CHECK(c->tied == 1 && c->qk_norm == 0 && c->rope_layout == ROPE_INTERLEAVED);
    CHECK(c->rope_theta == 1e4f && c->norm_eps == 1e-5f && c->res_scale == 1.0f);
    CHECK(size == 96 + 12 * p.n);
    REQUIRE(m && v);
    CHECK(check_original_mapping(&p, m, v, &s, 0));
    CHECK(p.v.wcls == p.v.embed);
    // state: micro-steps -> updates; the static recipe
    CHECK(st.accum == 10 && st.step == 3 && st.adam_t == 3 && st.total_steps == 100);
    CHECK(st.tokens_seen == 30 * 32);
    CHECK(st.lr == 2e-4f && st.beta2 == 0.999f && st.weight_decay == 0.0f && st.clip == 0.0f);
    CHECK(st.warmup == 0 && st.min_lr_frac == 1.0f);
    CHECK(st.last_loss == 4.25f && st.train_ms == 1234.5 && isinf(st.best_val_loss));
    CHECK(optim_lr(&st, 50) == 2e-4f);  // constant

    // weights only: the moments are skipped, not read
    Params w;
    REQUIRE(ckpt_import_original(path, &w, NULL, NULL, NULL) == 0);
    CHECK(memcmp(w.data, p.data, p.n * sizeof(float)) == 0);
    params_free(&w);

    // header only
    Config hc;
    int ver = 0;
    REQUIRE(ckpt_read_original_header(path, &hc, NULL, &ver) == 0);
    CHECK(ver == 2);
    check_config_equal(&hc, c);
    params_free(&p), free(m), free(v);
}

TEST(ckpt_import_original_v4_gqa) {
    // QD (32) != D (16) and NH/NKV = 2: exercises head_dim from the header and the head permutation
    OrigSpec s = {.version = 4, .step = 200, .total_steps = 1000, .adam_t = 20, .L = 3, .V = 48, .D = 16, .H = 24,
                  .NH = 4, .NKV = 2, .HD = 8, .S = 64, .loss = 3.5f, .cum_train = 42.0};
    s.lr = orig_sched(3e-4f, s.step - 1, s.total_steps);
    const char *path = tmp_path("orig_v4.bin");
    size_t size = write_original(path, &s);
    REQUIRE(size > 0);
    Params p;
    float *m = NULL, *v = NULL;
    TrainState st;
    REQUIRE(ckpt_import_original(path, &p, &m, &v, &st) == 0);
    const Config *c = &p.cfg;
    CHECK(c->dim == 16 && c->hidden == 24 && c->n_layers == 3 && c->n_heads == 4 && c->n_kv_heads == 2);
    CHECK(c->head_dim == 8 && c->vocab == 48 && c->seq_len == 64 && c->tied && !c->qk_norm);
    CHECKF(fabsf(c->res_scale - 1.0f / sqrtf(6.0f)) < 1e-7f, "res_scale %g", c->res_scale);
    CHECK(size == 96 + 12 * p.n);
    REQUIRE(m && v);
    CHECK(check_original_mapping(&p, m, v, &s, 1));
    // head 1 of ours pairs with kv head 0 (1 / R); the original's head paired with kv 0 besides head 0 is head 2
    CHECK(p.v.wq[1 * 8 * 16] == orig_value(0, 0, 0, 2 * 8 * 16));
    CHECK(st.accum == 10 && st.step == 20 && st.adam_t == 20 && st.total_steps == 100 && st.warmup == 10);
    CHECK(st.tokens_seen == 200 * 64 && st.last_loss == 3.5f && st.train_ms == 42.0);
    CHECKF(fabsf(st.lr - 3e-4f) < 3e-4f * 1e-5f, "recovered peak lr %.9g", st.lr);
    CHECK(st.beta2 == 0.95f && st.weight_decay == 0.1f && st.clip == 1.0f && st.min_lr_frac == 0.1f);

    // a fresh file (step 0, as the HF import script writes) keeps its lr; a warmup-time one is inverted
    s.step = 0, s.adam_t = 0, s.lr = 3e-4f;
    REQUIRE(write_original(path, &s) > 0);
    TrainState st0;
    Config hc;
    REQUIRE(ckpt_read_original_header(path, &hc, &st0, NULL) == 0);
    CHECK(st0.lr == 3e-4f && st0.step == 0 && st0.accum == 10);
    s.step = 50, s.adam_t = 5, s.lr = orig_sched(3e-4f, 49, s.total_steps);
    REQUIRE(write_original(path, &s) > 0);
    REQUIRE(ckpt_read_original_header(path, &hc, &st0, NULL) == 0);
    CHECKF(fabsf(st0.lr - 3e-4f) < 3e-4f * 1e-6f && st0.step == 5, "warmup peak %.9g step %lld", st0.lr,
           (long long)st0.step);

    // through our own format and back: nothing lost
    const char *ours = tmp_path("orig_v4.ckpt");
    REQUIRE(ckpt_save(ours, &p, m, v, &st) == 0);
    Params q;
    float *m2 = NULL, *v2 = NULL;
    TrainState st2;
    REQUIRE(ckpt_load(ours, &q, &m2, &v2, &st2) == 0);
    CHECK(memcmp(q.data, p.data, p.n * 4) == 0 && memcmp(m2, m, p.n * 4) == 0 && memcmp(v2, v, p.n * 4) == 0);
    check_state_equal(&st2, &st);
    params_free(&p), params_free(&q), free(m), free(v), free(m2), free(v2);
}

TEST(ckpt_import_original_rejects_bad_files) {
    OrigSpec s = {.version = 4, .step = 0, .total_steps = 100, .adam_t = 0, .L = 1, .V = 32, .D = 16, .H = 16,
                  .NH = 2, .NKV = 2, .HD = 8, .S = 16, .lr = 1e-3f};
    const char *path = tmp_path("orig_bad.bin");
    size_t size = write_original(path, &s);
    REQUIRE(size > 0);
    char *bytes = NULL;
    size_t n = 0;
    REQUIRE(io_read_all(path, &bytes, &n) == 0 && n == size);
    Params p;
    char want[96];

    // one float short, one float long
    REQUIRE(write_bytes(path, bytes, n - 4) == 0);
    CHECK(ckpt_import_original(path, &p, NULL, NULL, NULL) != 0);
    snprintf(want, sizeof want, "expected %zu bytes", n);
    CHECKF(contains(err_msg(), path) && contains(err_msg(), want) && contains(err_msg(), "truncated"), "'%s'",
           err_msg());
    char *longer = malloc(n + 4);
    memcpy(longer, bytes, n);
    memset(longer + n, 0, 4);
    REQUIRE(write_bytes(path, longer, n + 4) == 0);
    CHECK(ckpt_import_original(path, &p, NULL, NULL, NULL) != 0 && contains(err_msg(), want));
    free(longer);

    // header fields that disagree
    struct { int off; uint32_t val; const char *expect; } cases[] = {
        {4, 3, "version 3 (early dynamic pipeline) is not supported"},
        {4, 7, "version 7 not supported"},
        {92, 24, "q_dim 24 != n_heads * head_dim"},
        {84, 0, "n_kv_heads must be positive"},
        {24, 17, "expected"},  // dim 17: size no longer matches
        {8, 0xFFFFFFFFu, "counters must be >= 0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *copy = malloc(n);
        memcpy(copy, bytes, n);
        put32((uint8_t *)copy, cases[i].off, cases[i].val);
        REQUIRE(write_bytes(path, copy, n) == 0);
        free(copy);
        CHECKF(ckpt_import_original(path, &p, NULL, NULL, NULL) != 0, "case %zu accepted", i);
        CHECKF(contains(err_msg(), path) && contains(err_msg(), cases[i].expect), "case %zu: '%s' lacks '%s'", i,
               err_msg(), cases[i].expect);
        CHECK(p.data == NULL);
    }
    // too short for the header; wrong magic
    REQUIRE(write_bytes(path, bytes, 50) == 0);
    CHECK(ckpt_import_original(path, &p, NULL, NULL, NULL) != 0 && contains(err_msg(), "96-byte header"));
    bytes[0] ^= 1;
    REQUIRE(write_bytes(path, bytes, n) == 0);
    CHECK(!ckpt_is_original(path));
    CHECK(ckpt_import_original(path, &p, NULL, NULL, NULL) != 0 && contains(err_msg(), "0x424c5a54"));
    free(bytes);
}

// --- export -----------------------------------------------------------------------

TEST(export_cli_writes_llama2c) {
    Params p;
    REQUIRE(make_model(&p, "tiny-mha", 61) == 0);
    const char *ck = tmp_path("exp.ckpt");
    REQUIRE(ckpt_save(ck, &p, p.data, p.data, NULL) == 0);
    for (int version = 0; version <= 1; version++) {
        char out[600], cmd[2048];
        snprintf(out, sizeof out, "%s/exp_v%d.bin", test_tmpdir(), version);
        snprintf(cmd, sizeof cmd, "%s export --model %s -o %s --version %d", test_bin(), ck, out, version);
        char *log = NULL;
        int rc = test_run(cmd, &log);
        CHECKF(rc == 0 && contains(log, "wrote"), "%s -> %d: %s", cmd, rc, log ? log : "");
        free(log);
        Params q;
        REQUIRE(llama2c_load(&q, out) == 0);
        char why[128];
        CHECKF(config_equal(&q.cfg, &p.cfg, why, sizeof why), "v%d config: %s", version, why);
        REQUIRE(q.n == p.n);
        CHECKF(memcmp(q.data, p.data, p.n * sizeof(float)) == 0, "v%d weights differ", version);
        params_free(&q);
    }

    // an original v4 file (GQA, head_dim = dim / heads): residual scale folded into wo and w2
    OrigSpec s = {.version = 4, .step = 0, .total_steps = 100, .adam_t = 0, .L = 2, .V = 32, .D = 16, .H = 24,
                  .NH = 4, .NKV = 2, .HD = 4, .S = 16, .lr = 3e-4f};
    const char *orig = tmp_path("exp_orig.bin"), *out = tmp_path("exp_orig_v0.bin");
    REQUIRE(write_original(orig, &s) > 0);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s export -m %s -o %s", test_bin(), orig, out);
    char *log = NULL;
    int rc = test_run(cmd, &log);
    CHECKF(rc == 0 && contains(log, "folding residual scale"), "%s -> %d: %s", cmd, rc, log ? log : "");
    free(log);
    Params a, b;
    REQUIRE(ckpt_import_original(orig, &a, NULL, NULL, NULL) == 0);
    REQUIRE(llama2c_load(&b, out) == 0);
    CHECK(b.cfg.res_scale == 1.0f && b.cfg.n_kv_heads == 2 && b.n == a.n);
    float alpha = a.cfg.res_scale;
    int bad = 0;
    for (int i = 0; i < a.n_tensors; i++) {
        const TensorDesc *d = &a.t[i];
        int scaled = !strcmp(d->name, "wo") || !strcmp(d->name, "w2");
        for (size_t j = 0; j < d->numel; j++) {
            float want = a.data[d->offset + j] * (scaled ? alpha : 1.0f);
            if (b.data[d->offset + j] != want && bad++ < 3)
                CHECKF(0, "%s[%zu] = %g, expected %g", d->name, j, b.data[d->offset + j], want);
        }
    }
    params_free(&a), params_free(&b);

    // a missing input and a bad flag fail with the name and a non-zero status
    snprintf(cmd, sizeof cmd, "%s export --model %s -o %s", test_bin(), tmp_path("nope.ckpt"), out);
    rc = test_run(cmd, &log);
    CHECKF(rc != 0 && contains(log, "nope.ckpt"), "%d: %s", rc, log ? log : "");
    free(log);
    snprintf(cmd, sizeof cmd, "%s export --model %s -o %s --version 3", test_bin(), ck, out);
    rc = test_run(cmd, &log);
    CHECKF(rc != 0 && contains(log, "--version"), "%d: %s", rc, log ? log : "");
    free(log);
    params_free(&p);
}
