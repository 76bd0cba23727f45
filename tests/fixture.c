// fixture: parse and load the golden fixture container (format in fixture.h).
#include "fixture.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/io.h"

static const char MAGIC[8] = {'A', 'N', 'E', 'F', 'I', 'X', 'T', 0};

// Reads the u32 at *off, advancing it; -1 if the file ends first.
static int take_u32(const Fixture *fx, size_t *off, uint32_t *out) {
    if (fx->size - *off < 4) return -1;
    *out = io_le32((const uint8_t *)fx->buf + *off);
    *off += 4;
    return 0;
}

static int parse_record(Fixture *fx, size_t *off, FixtureTensor *t, int idx) {
    const size_t start = *off;
    uint32_t len, dtype, ndim, d;
    if (take_u32(fx, off, &len) != 0) goto truncated;
    if (len == 0 || len >= sizeof t->name)
        return err_set("%s: tensor record %d at byte %zu: expected a name of 1..63 bytes, found length %u", fx->path,
                       idx, start, len);
    size_t padded = (len + 3) & ~(size_t)3;
    if (fx->size - *off < padded) goto truncated;
    memcpy(t->name, fx->buf + *off, len);
    t->name[len] = 0;
    if (strlen(t->name) != len) return err_set("%s: tensor record %d: name contains a NUL byte", fx->path, idx);
    *off += padded;
    if (take_u32(fx, off, &dtype) != 0 || take_u32(fx, off, &ndim) != 0) goto truncated;
    if (dtype != FIXTURE_F32 && dtype != FIXTURE_I32)
        return err_set("%s: tensor '%s': expected dtype 0 (f32) or 1 (i32), found %u", fx->path, t->name, dtype);
    if (ndim > FIXTURE_MAX_DIMS)
        return err_set("%s: tensor '%s': expected at most %d dims, found %u", fx->path, t->name, FIXTURE_MAX_DIMS,
                       ndim);
    t->dtype = (int)dtype;
    t->ndim = (int)ndim;
    t->numel = 1;
    for (uint32_t i = 0; i < ndim; i++) {
        if (take_u32(fx, off, &d) != 0) goto truncated;
        if (d == 0 || d > (1u << 24))
            return err_set("%s: tensor '%s': dim %u is %u, expected 1..%u", fx->path, t->name, i, d, 1u << 24);
        t->dims[i] = (int)d;
        t->numel *= d;
        if (t->numel > fx->size) break;  // caught by the bounds check below; avoids overflow
    }
    if (t->numel > (fx->size - *off) / 4) goto truncated;
    t->data = fx->buf + *off;
    *off += t->numel * 4;
    return 0;
truncated:
    return err_set("%s: tensor record %d at byte %zu runs past the end of the file (%zu bytes): truncated?", fx->path,
                   idx, start, fx->size);
}

int fixture_open(Fixture *fx, const char *path) {
    memset(fx, 0, sizeof *fx);
    snprintf(fx->path, sizeof fx->path, "%s", path);
    const uint32_t one = 1;
    if (*(const uint8_t *)&one != 1) return err_set("%s: fixtures are little-endian; this host is not", path);
    if (io_read_all(path, &fx->buf, &fx->size) != 0) return -1;
    uint32_t version, count;
    size_t off = sizeof MAGIC;
    if (fx->size < sizeof MAGIC || memcmp(fx->buf, MAGIC, sizeof MAGIC) != 0) {
        err_set("%s: expected magic \"ANEFIXT\" (a golden fixture), found something else; "
                "HINT: regenerate with /usr/bin/python3 tools/gen_fixtures.py", path);
        goto fail;
    }
    if (take_u32(fx, &off, &version) != 0 || take_u32(fx, &off, &count) != 0) {
        err_set("%s: header truncated (%zu bytes)", path, fx->size);
        goto fail;
    }
    if (version != 1) {
        err_set("%s: expected fixture version 1, found %u; HINT: regenerate with tools/gen_fixtures.py", path, version);
        goto fail;
    }
    if (count == 0 || count > fx->size / 16) {  // a record is at least 16 bytes
        err_set("%s: tensor count %u impossible for a file of %zu bytes", path, count, fx->size);
        goto fail;
    }
    fx->t = calloc(count, sizeof *fx->t);
    if (!fx->t) {
        err_set("%s: out of memory for %u tensor records", path, count);
        goto fail;
    }
    for (uint32_t i = 0; i < count; i++) {
        if (parse_record(fx, &off, &fx->t[i], (int)i) != 0) goto fail;
        fx->n++;
        for (uint32_t j = 0; j < i; j++)
            if (!strcmp(fx->t[j].name, fx->t[i].name)) {
                err_set("%s: tensor '%s' appears twice", path, fx->t[i].name);
                goto fail;
            }
    }
    if (off != fx->size) {
        err_set("%s: expected the file to end after %u tensors at byte %zu, found %zu bytes", path, count, off,
                fx->size);
        goto fail;
    }
    return 0;
fail:
    fixture_free(fx);
    return -1;
}

void fixture_free(Fixture *fx) {
    free(fx->buf);
    free(fx->t);
    free(fx->tokens);
    free(fx->targets);
    params_free(&fx->params);
    memset(fx, 0, sizeof *fx);
}

const FixtureTensor *fixture_find(const Fixture *fx, const char *name) {
    for (int i = 0; i < fx->n; i++)
        if (!strcmp(fx->t[i].name, name)) return &fx->t[i];
    return NULL;
}

// The tensor `name` with the given dtype and element count, or NULL + err.
static const FixtureTensor *need(const Fixture *fx, const char *name, int dtype, size_t numel) {
    const FixtureTensor *t = fixture_find(fx, name);
    if (!t) {
        err_set("%s: expected a tensor named '%s', found none", fx->path, name);
        return NULL;
    }
    if (t->dtype != dtype) {
        err_set("%s: tensor '%s': expected dtype %s, found %s", fx->path, name, dtype ? "i32" : "f32",
                t->dtype ? "i32" : "f32");
        return NULL;
    }
    if (t->numel != numel) {
        err_set("%s: tensor '%s': expected %zu elements, found %zu", fx->path, name, numel, t->numel);
        return NULL;
    }
    return t;
}

const float *fixture_f32(const Fixture *fx, const char *name, size_t numel) {
    const FixtureTensor *t = need(fx, name, FIXTURE_F32, numel);
    return t ? t->data : NULL;
}

static int scalar_i32(const Fixture *fx, const char *name, int *out) {
    const FixtureTensor *t = need(fx, name, FIXTURE_I32, 1);
    if (!t) return -1;
    *out = *(const int32_t *)t->data;
    return 0;
}

static int scalar_f32(const Fixture *fx, const char *name, float *out) {
    const FixtureTensor *t = need(fx, name, FIXTURE_F32, 1);
    if (!t) return -1;
    *out = *(const float *)t->data;
    return 0;
}

static int load_config(Fixture *fx) {
    Config *c = &fx->cfg;
    memset(c, 0, sizeof *c);
    struct { const char *name; int *dst; } ints[] = {
        {"config.dim", &c->dim}, {"config.hidden", &c->hidden}, {"config.n_layers", &c->n_layers},
        {"config.n_heads", &c->n_heads}, {"config.n_kv_heads", &c->n_kv_heads}, {"config.head_dim", &c->head_dim},
        {"config.vocab", &c->vocab}, {"config.seq_len", &c->seq_len}, {"config.qk_norm", &c->qk_norm},
        {"config.tied", &c->tied},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (scalar_i32(fx, ints[i].name, ints[i].dst) != 0) return -1;
    int layout;
    if (scalar_i32(fx, "config.rope_layout", &layout) != 0) return -1;
    if (layout != ROPE_INTERLEAVED && layout != ROPE_HALF)
        return err_set("%s: config.rope_layout: expected 0 (interleaved) or 1 (half), found %d", fx->path, layout);
    c->rope_layout = (RopeLayout)layout;
    if (scalar_f32(fx, "config.norm_eps", &c->norm_eps) != 0 ||
        scalar_f32(fx, "config.rope_theta", &c->rope_theta) != 0 ||
        scalar_f32(fx, "config.res_scale", &c->res_scale) != 0)
        return -1;
    // display name: the file's stem
    const char *base = strrchr(fx->path, '/');
    base = base ? base + 1 : fx->path;
    snprintf(c->name, sizeof c->name, "%.*s", (int)strcspn(base, "."), base);
    return config_validate(c, fx->path);
}

static int load_tokens(Fixture *fx) {
    if (scalar_i32(fx, "S", &fx->S) != 0) return -1;
    if (fx->S <= 0 || fx->S > fx->cfg.seq_len)
        return err_set("%s: S: expected 1..%d (seq_len), found %d", fx->path, fx->cfg.seq_len, fx->S);
    const FixtureTensor *tok = need(fx, "tokens", FIXTURE_I32, (size_t)fx->S);
    const FixtureTensor *tgt = need(fx, "targets", FIXTURE_I32, (size_t)fx->S);
    if (!tok || !tgt) return -1;
    fx->tokens = malloc(sizeof(int) * fx->S);
    fx->targets = malloc(sizeof(int) * fx->S);
    if (!fx->tokens || !fx->targets) return err_set("%s: out of memory", fx->path);
    const int32_t *a = tok->data, *b = tgt->data;
    for (int t = 0; t < fx->S; t++) {
        if (a[t] < 0 || a[t] >= fx->cfg.vocab || b[t] < 0 || b[t] >= fx->cfg.vocab)
            return err_set("%s: position %d: expected token and target in [0, %d), found %d and %d", fx->path, t,
                           fx->cfg.vocab, a[t], b[t]);
        fx->tokens[t] = a[t];
        fx->targets[t] = b[t];
    }
    return 0;
}

// Copies every tensor of the params layout from the record of the same name,
// requiring the shape the layout implies ([L,rows,cols], [rows,cols] or [cols]).
static int load_params(Fixture *fx) {
    if (params_init(&fx->params, &fx->cfg) != 0) return err_wrap("%s", fx->path);
    for (int i = 0; i < fx->params.n_tensors; i++) {
        const TensorDesc *d = &fx->params.t[i];
        const FixtureTensor *t = need(fx, d->name, FIXTURE_F32, d->numel);
        if (!t) return -1;
        int want[3], nd = 0;
        if (d->per_layer) want[nd++] = fx->cfg.n_layers;
        if (d->per_layer || d->rows != 1) want[nd++] = d->rows;
        want[nd++] = d->cols;
        int ok = t->ndim == nd;
        for (int k = 0; ok && k < nd; k++) ok = t->dims[k] == want[k];
        if (!ok)
            return err_set("%s: tensor '%s': expected %d dims (%d x %d x %d), found %d dims (%d x %d x %d)", fx->path,
                           d->name, nd, want[0], nd > 1 ? want[1] : 0, nd > 2 ? want[2] : 0, t->ndim, t->dims[0],
                           t->ndim > 1 ? t->dims[1] : 0, t->ndim > 2 ? t->dims[2] : 0);
        memcpy(fx->params.data + d->offset, t->data, d->numel * sizeof(float));
    }
    return 0;
}

int fixture_load(Fixture *fx, const char *path) {
    if (fixture_open(fx, path) != 0) return -1;
    if (load_config(fx) != 0 || load_tokens(fx) != 0 || load_params(fx) != 0) {
        fixture_free(fx);
        return -1;
    }
    return 0;
}
