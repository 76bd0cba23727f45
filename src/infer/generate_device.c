// generate_device: see generate_device.h.
#include "infer/generate_device.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "train/devpipe.h"

enum { K_QKV, K_WO, K_FFN, K_PER_LAYER };

struct GenDevice {
    Config cfg;
    Device dev;
    DevKernel *layer;  // (L * K_PER_LAYER)
    DevKernel norm;
    DevKernel *cls;    // (n_chunks)
    int n_chunks, rows;
    float *xf;         // (D) the final norm's output
};

static int compile(GenDevice *d, DevKernel *x, MilKernelKind kind, const MilBaked *w) {
    MilKernel k;
    if (mil_kernel_build_baked(kind, &d->cfg, 1, w, &k) != 0) return -1;
    return dk_compile(x, &d->dev, &k, NULL, NULL);
}

static MilBaked layer_weights(const Params *p, int l) {
    const Config *c = &p->cfg;
    const size_t D = c->dim, H = c->hidden, QD = config_q_dim(c), KVD = config_kv_dim(c);
    const ParamViews *v = &p->v;
    return (MilBaked){.wq = v->wq + l * QD * D, .wk = v->wk + l * KVD * D, .wv = v->wv + l * KVD * D,
                      .wo = v->wo + l * D * QD, .w1 = v->w1 + l * H * D, .w2 = v->w2 + l * D * H,
                      .w3 = v->w3 + l * H * D, .rms_att = v->rms_att + l * D, .rms_ffn = v->rms_ffn + l * D};
}

int gen_device_init(GenDevice **out, const Params *p, const char *device, int compile_budget) {
    *out = NULL;
    GenDevice *d = calloc(1, sizeof *d);
    if (!d) return err_set("out of memory");
    d->cfg = p->cfg;
    if (device_init(&d->dev, device, compile_budget) != 0) {
        free(d);
        return -1;
    }
    const int L = p->cfg.n_layers;
    mil_vocab_chunks(p->cfg.vocab, &d->n_chunks, &d->rows);
    d->layer = calloc((size_t)L * K_PER_LAYER, sizeof *d->layer);
    d->cls = calloc((size_t)d->n_chunks, sizeof *d->cls);
    d->xf = calloc((size_t)p->cfg.dim, sizeof(float));
    *out = d;
    if (!d->layer || !d->cls || !d->xf) return gen_device_free(d), *out = NULL, err_set("out of memory");
    int rc = 0;
    for (int l = 0; rc == 0 && l < L; l++) {
        const MilBaked w = layer_weights(p, l);
        rc = compile(d, &d->layer[l * K_PER_LAYER + K_QKV], MIL_K_DEC_QKV, &w) ||
             compile(d, &d->layer[l * K_PER_LAYER + K_WO], MIL_K_DEC_WO, &w) ||
             compile(d, &d->layer[l * K_PER_LAYER + K_FFN], MIL_K_FFN_FWD, &w);
    }
    const MilBaked wn = {.rms = p->v.rms_final};
    if (rc == 0) rc = compile(d, &d->norm, MIL_K_FINAL_NORM, &wn);
    for (int c = 0; rc == 0 && c < d->n_chunks; c++) {
        const int row0 = c * d->rows, rows = row0 + d->rows > p->cfg.vocab ? p->cfg.vocab - row0 : d->rows;
        const MilBaked wc = {.cls = p->v.wcls, .row0 = row0, .rows = rows};
        rc = compile(d, &d->cls[c], MIL_K_CLASSIFIER, &wc);
    }
    if (rc != 0) {
        err_wrap("generation on the %s device", device);
        gen_device_free(d);
        *out = NULL;
        return -1;
    }
    return 0;
}

void gen_device_free(GenDevice *d) {
    if (!d) return;
    for (int i = 0; d->layer && i < d->cfg.n_layers * K_PER_LAYER; i++) dk_free(&d->layer[i], &d->dev);
    dk_free(&d->norm, &d->dev);
    for (int c = 0; d->cls && c < d->n_chunks; c++) dk_free(&d->cls[c], &d->dev);
    device_free(&d->dev);
    free(d->layer), free(d->cls), free(d->xf);
    free(d);
}

// One evaluation of x: the input region `in` from src, then each of the n
// output regions names[i] into dst[i].
static int run(GenDevice *d, DevKernel *x, const char *in, const float *src, int n, const char *const *names,
               float *const *dst) {
    uint16_t *s = device_surface_lock(&d->dev, x->in, 1);
    if (!s) return err_set("%s: cannot lock the input surface", x->k->name);
    int rc = mil_kernel_stage(x->k, s, in, src);
    device_surface_unlock(&d->dev, x->in, 1);
    if (rc == 0) rc = device_eval(&d->dev, x->req);
    if (rc != 0) return err_wrap("%s", x->k->name);
    const uint16_t *o = device_surface_lock(&d->dev, x->out, 0);
    if (!o) return err_set("%s: cannot lock the output surface", x->k->name);
    for (int i = 0; rc == 0 && i < n; i++) rc = mil_kernel_fetch(x->k, o, names[i], dst[i]);
    device_surface_unlock(&d->dev, x->out, 0);
    return rc;
}

int gen_device_qkv(GenDevice *d, int l, const float *x, float *q, float *k, float *v) {
    return run(d, &d->layer[l * K_PER_LAYER + K_QKV], "x", x, 3, (const char *const[]){"q", "k", "v"},
               (float *const[]){q, k, v});
}

int gen_device_wo(GenDevice *d, int l, const float *att, float *o) {
    return run(d, &d->layer[l * K_PER_LAYER + K_WO], "attn", att, 1, (const char *const[]){"o"}, (float *const[]){o});
}

int gen_device_ffn(GenDevice *d, int l, const float *x2, float *f) {
    return run(d, &d->layer[l * K_PER_LAYER + K_FFN], "x2", x2, 1, (const char *const[]){"f"}, (float *const[]){f});
}

int gen_device_logits(GenDevice *d, const float *x, float *logits) {
    if (run(d, &d->norm, "x", x, 1, (const char *const[]){"xf"}, (float *const[]){d->xf}) != 0) return -1;
    for (int c = 0; c < d->n_chunks; c++)
        if (run(d, &d->cls[c], "xf", d->xf, 1, (const char *const[]){"logits"},
                (float *const[]){logits + (size_t)c * d->rows}) != 0)
            return -1;
    return 0;
}

void gen_device_counts(const GenDevice *d, int *kernels, long long *evals) {
    *kernels = d->dev.compiles;
    *evals = d->dev.evals;
}
