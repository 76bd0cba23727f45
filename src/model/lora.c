// lora: low-rank adapters over a frozen model (lora.h).
#include "model/lora.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/gemm.h"
#include "core/rng.h"

static const char *NAMES[LORA_N_TARGETS] = {"q", "k", "v", "o", "w1", "w2", "w3"};
static const char *A_NAMES[LORA_N_TARGETS] = {"lora_A.q", "lora_A.k", "lora_A.v", "lora_A.o",
                                              "lora_A.w1", "lora_A.w2", "lora_A.w3"};
static const char *B_NAMES[LORA_N_TARGETS] = {"lora_B.q", "lora_B.k", "lora_B.v", "lora_B.o",
                                              "lora_B.w1", "lora_B.w2", "lora_B.w3"};

const char *lora_target_name(LoraTarget t) { return t >= 0 && t < LORA_N_TARGETS ? NAMES[t] : "?"; }

int lora_parse_targets(const char *list, unsigned *mask) {
    *mask = 0;
    const char *s = list;
    while (*s) {
        size_t n = strcspn(s, ",");
        int found = -1;
        for (int t = 0; t < LORA_N_TARGETS; t++)
            if (strlen(NAMES[t]) == n && !strncmp(s, NAMES[t], n)) found = t;
        if (found < 0)
            return err_set("--lora-targets: unknown target '%.*s' (expected a list of q, k, v, o, w1, w2, w3)", (int)n,
                           s);
        *mask |= 1u << found;
        s += n;
        if (*s == ',') s++;
    }
    if (!*mask) return err_set("--lora-targets: no target given (expected a list of q, k, v, o, w1, w2, w3)");
    return 0;
}

void lora_format_targets(unsigned mask, char *out, size_t cap) {
    size_t at = 0;
    out[0] = 0;
    for (int t = 0; t < LORA_N_TARGETS; t++)
        if (mask & (1u << t)) at += (size_t)snprintf(out + at, at < cap ? cap - at : 0, "%s%s", at ? "," : "", NAMES[t]);
}

void lora_target_dims(const Config *c, LoraTarget t, int *in, int *out) {
    const int D = c->dim, H = c->hidden, QD = config_q_dim(c), KVD = config_kv_dim(c);
    static const int IN_IS_D = (1 << LORA_Q) | (1 << LORA_K) | (1 << LORA_V) | (1 << LORA_W1) | (1 << LORA_W3);
    *in = IN_IS_D & (1 << t) ? D : t == LORA_O ? QD : H;
    *out = t == LORA_Q ? QD : t == LORA_K || t == LORA_V ? KVD : t == LORA_O || t == LORA_W2 ? D : H;
}

static void add_tensor(Params *a, const char *name, int per_layer, int rows, int cols, int is_norm, size_t *off) {
    TensorDesc *d = &a->t[a->n_tensors++];
    d->name = name;
    d->offset = *off;
    d->per_layer = per_layer;
    d->rows = rows, d->cols = cols;
    d->is_norm = is_norm;
    d->numel = (size_t)rows * cols * (per_layer ? (size_t)a->cfg.n_layers : 1);
    *off += d->numel;
}

// The tensor list of lc's adapters over c into a (no block). -1 with err_msg().
static int layout(Params *a, const Config *c, const LoraConfig *lc) {
    memset(a, 0, sizeof *a);
    if (lc->rank < 1) return err_set("--lora: the rank must be positive, found %d", lc->rank);
    if (!lc->targets || lc->targets >= 1u << LORA_N_TARGETS)
        return err_set("--lora: target mask 0x%x: expected a non-empty subset of the 7 matrices", lc->targets);
    if (!(lc->alpha > 0 && lc->alpha < 1e30f)) return err_set("--lora-alpha must be positive, found %g", lc->alpha);
    if (!(lc->dropout >= 0 && lc->dropout < 1)) return err_set("--lora-dropout must be in [0, 1), found %g", lc->dropout);
    a->cfg = *c;
    size_t off = 0;
    for (int t = 0; t < LORA_N_TARGETS; t++) {
        if (!(lc->targets & (1u << t))) continue;
        int in, out;
        lora_target_dims(c, (LoraTarget)t, &in, &out);
        if (lc->rank > in || lc->rank > out)
            return err_set("--lora %d: the rank exceeds target %s's %d x %d matrix", lc->rank, NAMES[t], out, in);
        add_tensor(a, A_NAMES[t], 1, lc->rank, in, 0, &off);
        add_tensor(a, B_NAMES[t], 1, out, lc->rank, 0, &off);
    }
    if (lc->train_norms) {
        add_tensor(a, "rms_att", 1, 1, c->dim, 1, &off);
        add_tensor(a, "rms_ffn", 1, 1, c->dim, 1, &off);
        add_tensor(a, "rms_final", 0, 1, c->dim, 1, &off);
    }
    a->n = off;
    return 0;
}

int lora_floats(const Config *c, const LoraConfig *lc, size_t *n) {
    Params a;
    if (layout(&a, c, lc) != 0) return -1;
    *n = a.n;
    return 0;
}

int lora_init(Params *a, const Config *c, const LoraConfig *lc) {
    if (layout(a, c, lc) != 0) return -1;
    a->data = aligned_alloc(64, (a->n * sizeof(float) + 63) & ~(size_t)63);
    if (!a->data) return err_set("out of memory for %zu adapter weights", a->n);
    memset(a->data, 0, a->n * sizeof(float));
    return 0;
}

void lora_init_random(Params *a, const LoraConfig *lc, const Params *base, uint64_t seed) {
    Rng r;
    rng_init(&r, seed ^ 0x4c6f5241ull);  // "LoRA": a stream of its own beside the model's
    for (int i = 0; i < a->n_tensors; i++) {
        const TensorDesc *d = &a->t[i];
        float *p = a->data + d->offset;
        if (!strncmp(d->name, "lora_A.", 7))
            for (size_t k = 0; k < d->numel; k++) p[k] = rng_normal(&r) / (float)lc->rank;
        else if (!strncmp(d->name, "lora_B.", 7)) memset(p, 0, sizeof(float) * d->numel);
        else memcpy(p, base->data + params_find(base, d->name)->offset, sizeof(float) * d->numel);
    }
}

LoraMat lora_mat(const Params *a, const LoraConfig *lc, LoraTarget t, int layer) {
    LoraMat m = {0};
    const TensorDesc *da = params_find(a, A_NAMES[t]), *db = params_find(a, B_NAMES[t]);
    if (!da || !db) return m;
    m.r = lc->rank, m.in = da->cols, m.out = db->rows, m.scale = lc->alpha / (float)lc->rank;
    m.A = a->data + da->offset + (size_t)layer * m.r * m.in;
    m.B = a->data + db->offset + (size_t)layer * m.out * m.r;
    return m;
}

void lora_grad_mat(const Params *a, const LoraConfig *lc, float *block, LoraTarget t, int layer, float **A, float **B) {
    const TensorDesc *da = params_find(a, A_NAMES[t]), *db = params_find(a, B_NAMES[t]);
    *A = da ? block + da->offset + (size_t)layer * lc->rank * da->cols : NULL;
    *B = db ? block + db->offset + (size_t)layer * db->rows * lc->rank : NULL;
}

float *lora_norm(const Params *a, float *block, const char *name) {
    const TensorDesc *d = params_find(a, name);
    return d ? block + d->offset : NULL;
}

// Base matrix of target t, layer l, in views v.
static float *base_mat(const Config *c, const ParamViews *v, LoraTarget t, int l) {
    int in, out;
    lora_target_dims(c, t, &in, &out);
    float *const m[LORA_N_TARGETS] = {v->wq, v->wk, v->wv, v->wo, v->w1, v->w2, v->w3};
    return m[t] + (size_t)l * in * out;
}

int lora_merge(Params *dst, const Params *base, const Params *a, const LoraConfig *lc) {
    if (params_init(dst, &base->cfg) != 0) return -1;
    lora_merge_into(dst, base, a, lc);
    return 0;
}

void lora_merge_into(Params *dst, const Params *base, const Params *a, const LoraConfig *lc) {
    memcpy(dst->data, base->data, sizeof(float) * base->n);
    for (int t = 0; t < LORA_N_TARGETS; t++)
        for (int l = 0; (lc->targets & (1u << t)) && l < base->cfg.n_layers; l++) {
            LoraMat m = lora_mat(a, lc, (LoraTarget)t, l);
            gemm(0, 0, m.out, m.in, m.r, m.scale, m.B, m.r, m.A, m.in, 1.0f, base_mat(&base->cfg, &dst->v, t, l), m.in);
        }
    const char *norms[3] = {"rms_att", "rms_ffn", "rms_final"};
    for (int i = 0; lc->train_norms && i < 3; i++) {
        const TensorDesc *d = params_find(a, norms[i]);
        memcpy(dst->data + params_find(dst, norms[i])->offset, a->data + d->offset, sizeof(float) * d->numel);
    }
}

float *lora_base_grad(const Config *c, const ParamViews *g, LoraTarget t, int layer) {
    float *const m[LORA_N_TARGETS] = {g->wq, g->wk, g->wv, g->wo, g->w1, g->w2, g->w3};
    return m[t] ? base_mat(c, g, t, layer) : NULL;
}
