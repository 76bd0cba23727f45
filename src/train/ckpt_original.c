// ckpt_original: import of the original ANE trainer's checkpoints (ane-spec 5.2,
// versions 2 and 4) into our parameter layout and training state.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/io.h"
#include "core/rng.h"
#include "train/checkpoint.h"
#include "train/ckpt_internal.h"
#include "train/optim.h"

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

    uint64_t want = ORIG_HEADER + 12 * (uint64_t)ckpt_layout_floats(cfg);
    if (size != want)
        return err_set("%s: original v%d checkpoint size: expected %llu bytes for the model its header describes "
                       "(96-byte header + 3 x 4 bytes x %zu params: dim %d, hidden %d, layers %d, heads %d/%d, "
                       "vocab %d), found %llu%s",
                       path, h->version, (unsigned long long)want, ckpt_layout_floats(cfg), cfg->dim, cfg->hidden,
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
    return ckpt_read_prefix(path, b, 4) == 4 && io_le32(b) == CKPT_ORIGINAL_MAGIC;
}

int ckpt_read_original_header(const char *path, Config *cfg, TrainState *st, int *version) {
    uint64_t size = 0;
    FILE *f = ckpt_open_regular(path, &size);
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
    FILE *f = ckpt_open_regular(path, &size);
    if (!f) return -1;
    float *mm = NULL, *vv = NULL, *scratch = NULL;
    uint8_t b[ORIG_HEADER];
    size_t got = fread(b, 1, sizeof b, f);
    OrigHeader h;
    Config cfg;
    if (orig_decode(b, got, size, path, &h, &cfg) != 0) goto fail;
    if (params_init(p, &cfg) != 0) goto fail;
    if (m && v) {
        mm = ckpt_alloc_floats(p->n);
        vv = ckpt_alloc_floats(p->n);
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
        scratch = ckpt_alloc_floats(per_q);
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
