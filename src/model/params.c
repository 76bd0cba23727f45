#include "model/params.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/mem.h"
#include "core/rng.h"

int params_layout(const Config *c, TensorDesc t[PARAMS_MAX_TENSORS], size_t *total) {
    int D = c->dim, H = c->hidden, QD = config_q_dim(c), KVD = config_kv_dim(c), HD = c->head_dim;
    struct { const char *name; int per_layer, rows, cols, is_norm, present; } spec[] = {
        {"embed", 0, c->vocab, D, 0, 1},
        {"rms_att", 1, 1, D, 1, 1},
        {"wq", 1, QD, D, 0, 1},
        {"wk", 1, KVD, D, 0, 1},
        {"wv", 1, KVD, D, 0, 1},
        {"wo", 1, D, QD, 0, 1},
        {"q_norm", 1, 1, HD, 1, c->qk_norm},
        {"k_norm", 1, 1, HD, 1, c->qk_norm},
        {"rms_ffn", 1, 1, D, 1, 1},
        {"w1", 1, H, D, 0, 1},
        {"w2", 1, D, H, 0, 1},
        {"w3", 1, H, D, 0, 1},
        {"rms_final", 0, 1, D, 1, 1},
        {"wcls", 0, c->vocab, D, 0, !c->tied},
    };
    size_t off = 0;
    int n = 0;
    for (size_t i = 0; i < sizeof spec / sizeof spec[0]; i++) {
        if (!spec[i].present) continue;
        TensorDesc *d = &t[n++];
        d->name = spec[i].name;
        d->offset = off;
        d->per_layer = spec[i].per_layer;
        d->rows = spec[i].rows;
        d->cols = spec[i].cols;
        d->is_norm = spec[i].is_norm;
        d->numel = (size_t)d->rows * d->cols * (d->per_layer ? (size_t)c->n_layers : 1);
        off += d->numel;
    }
    if (total) *total = off;
    return n;
}

void params_point(const Config *c, float *block, ParamViews *v) {
    TensorDesc t[PARAMS_MAX_TENSORS];
    int n = params_layout(c, t, NULL);
    memset(v, 0, sizeof *v);
    for (int i = 0; i < n; i++) {
        float *p = block + t[i].offset;
        const char *nm = t[i].name;
        if (!strcmp(nm, "embed")) v->embed = p;
        else if (!strcmp(nm, "rms_att")) v->rms_att = p;
        else if (!strcmp(nm, "wq")) v->wq = p;
        else if (!strcmp(nm, "wk")) v->wk = p;
        else if (!strcmp(nm, "wv")) v->wv = p;
        else if (!strcmp(nm, "wo")) v->wo = p;
        else if (!strcmp(nm, "q_norm")) v->q_norm = p;
        else if (!strcmp(nm, "k_norm")) v->k_norm = p;
        else if (!strcmp(nm, "rms_ffn")) v->rms_ffn = p;
        else if (!strcmp(nm, "w1")) v->w1 = p;
        else if (!strcmp(nm, "w2")) v->w2 = p;
        else if (!strcmp(nm, "w3")) v->w3 = p;
        else if (!strcmp(nm, "rms_final")) v->rms_final = p;
        else if (!strcmp(nm, "wcls")) v->wcls = p;
    }
    if (c->tied) v->wcls = v->embed;
}

int params_init(Params *p, const Config *cfg) {
    memset(p, 0, sizeof *p);
    if (config_validate(cfg, cfg->name[0] ? cfg->name : "config") != 0) return -1;
    p->cfg = *cfg;
    p->n_tensors = params_layout(cfg, p->t, &p->n);
    size_t bytes = (p->n * sizeof(float) + 63) & ~(size_t)63;
    p->data = mem_alloc_big(bytes);
    if (!p->data) return err_set("out of memory allocating %.1f MB of parameters", bytes / 1e6);
    params_point(cfg, p->data, &p->v);
    return 0;
}

void params_free(Params *p) {
    free(p->data);
    memset(p, 0, sizeof *p);
}

const TensorDesc *params_find(const Params *p, const char *name) {
    for (int i = 0; i < p->n_tensors; i++)
        if (!strcmp(p->t[i].name, name)) return &p->t[i];
    return NULL;
}

// Index of the first non-finite value of w[0..n), or n. Blocks are tested
// with a branch-free OR (vectorizes) and only a bad block is searched.
static size_t first_nonfinite(const float *w, size_t n) {
    enum { BLOCK = 4096 };
    for (size_t i = 0; i < n; i += BLOCK) {
        size_t k = n - i < BLOCK ? n - i : BLOCK;
        int bad = 0;
        for (size_t j = 0; j < k; j++) bad |= !(fabsf(w[i + j]) <= FLT_MAX);  // NaN compares false
        if (!bad) continue;
        for (size_t j = 0; j < k; j++)
            if (!(fabsf(w[i + j]) <= FLT_MAX)) return i + j;
    }
    return n;
}

int params_check_finite(const Params *p, const char *where) {
    for (int i = 0; i < p->n_tensors; i++) {
        const TensorDesc *d = &p->t[i];
        const float *w = p->data + d->offset;
        size_t at = first_nonfinite(w, d->numel);
        if (at == d->numel) continue;
        size_t per = (size_t)d->rows * d->cols, in_layer = at % per;
        char pos[96];
        int row = (int)(in_layer / d->cols), col = (int)(in_layer % d->cols);
        if (d->per_layer && d->rows == 1) snprintf(pos, sizeof pos, "layer %zu, element %d", at / per, col);
        else if (d->per_layer) snprintf(pos, sizeof pos, "layer %zu, row %d, column %d", at / per, row, col);
        else if (d->rows == 1) snprintf(pos, sizeof pos, "element %d", col);
        else snprintf(pos, sizeof pos, "row %d, column %d", row, col);
        return err_set("%s: expected finite weights, found %g in tensor %s at index %zu (%s)", where, (double)w[at],
                       d->name, at, pos);
    }
    return 0;
}

void params_init_random(Params *p, uint64_t seed) {
    Rng rng;
    rng_init(&rng, seed);
    float out_scale = 1.0f / sqrtf(2.0f * p->cfg.n_layers);
    for (int i = 0; i < p->n_tensors; i++) {
        const TensorDesc *d = &p->t[i];
        float *w = p->data + d->offset;
        if (d->is_norm) {
            for (size_t j = 0; j < d->numel; j++) w[j] = 1.0f;
            continue;
        }
        float std = 0.02f;
        if (!strcmp(d->name, "wo") || !strcmp(d->name, "w2")) std *= out_scale;
        for (size_t j = 0; j < d->numel; j++) w[j] = std * rng_normal(&rng);
    }
}
