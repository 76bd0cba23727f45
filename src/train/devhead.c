// devhead: the classifier and cross-entropy on the device (devhead.h).
#include "train/devhead.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/fp16.h"
#include "cpu/par.h"

int devhead_init(DevHead *h, int V, int S, int dynamic) {
    memset(h, 0, sizeof *h);
    h->V = V, h->S = S;
    if (dynamic) mil_head_chunks(V, S, &h->n, &h->rows);
    else mil_vocab_chunks(V, &h->n, &h->rows);
    const size_t n_s = (size_t)S, n[6] = {(size_t)V * n_s, h->n * n_s, h->n * n_s, n_s, n_s, h->n * n_s};
    size_t total = 0;
    for (int i = 0; i < 6; i++) total += (n[i] + 15) & ~(size_t)15;
    h->block = calloc(total, sizeof(float));
    h->cls = calloc((size_t)h->n, sizeof(DevKernel));
    h->sm = calloc((size_t)h->n, sizeof(DevKernel));
    h->bwd = dynamic ? calloc((size_t)h->n, sizeof(DevKernel)) : NULL;
    h->tgt = calloc(n_s, sizeof(int));
    if (!h->block || !h->cls || !h->sm || (dynamic && !h->bwd) || !h->tgt) {
        free(h->block), free(h->cls), free(h->sm), free(h->bwd), free(h->tgt);
        memset(h, 0, sizeof *h);
        return err_set("out of memory for the device head (%d rows x %d positions)", V, S);
    }
    float **dst[6] = {&h->dl, &h->mx, &h->sum, &h->lse, &h->tlogit, &h->f};
    size_t off = 0;
    for (int i = 0; i < 6; i++) {
        *dst[i] = h->block + off;
        off += (n[i] + 15) & ~(size_t)15;
    }
    return 0;
}

void devhead_free(DevHead *h, Device *dev) {
    // bindings before the kernels they share
    for (int c = h->n - 1; c >= 0; c--) {
        if (h->bwd) dk_free(&h->bwd[c], dev);
        if (h->cls) dk_free(&h->cls[c], dev);
        if (h->sm) dk_free(&h->sm[c], dev);
    }
    free(h->cls), free(h->sm), free(h->bwd), free(h->tgt), free(h->block);
    memset(h, 0, sizeof *h);
}

int devhead_rows(const DevHead *h, int c) { return c + 1 < h->n ? h->rows : h->V - c * h->rows; }

int devhead_compile_softmax(DevHead *h, Device *dev, const Config *cfg, MilDialect dialect) {
    // the logits go in through a shared input; each chunk's softmax stays in its own output until the backward
    for (int c = 0; c < h->n; c++) {
        if (c > 0 && devhead_rows(h, c) == h->rows) {
            if (dk_bind(&h->sm[c], dev, &h->sm[0], h->sm[0].in, NULL) != 0) return -1;
            continue;
        }
        MilKernel k;
        if (mil_kernel_build_chunk(MIL_K_VOCAB_SOFTMAX, cfg, h->S, dialect, devhead_rows(h, c), &k) != 0 ||
            dk_compile(&h->sm[c], dev, &k, NULL, NULL) != 0)
            return -1;
    }
    return 0;
}

void devhead_targets(DevHead *h, const VocabCompact *vc, const int *tgt) {
    if (vc && vc->n) vocab_compact_targets(vc, tgt, h->tgt, h->S);
    else memcpy(h->tgt, tgt, sizeof(int) * h->S);
}

// Reads the target's logit of every position whose target lies in chunk c.
static int target_logits(Device *dev, DevHead *h, int c) {
    DevKernel *k = &h->cls[c];
    const int row0 = c * h->rows, rows = devhead_rows(h, c);
    const uint16_t *o = device_surface_lock(dev, k->out, 0);
    if (!o) return err_set("%s: cannot lock the output surface", k->k->name);
    for (int t = 0; t < h->S; t++) {
        const int r = h->tgt[t] - row0;
        if (r >= 0 && r < rows) h->tlogit[t] = fp16_to_f32(o[(size_t)r * k->k->out_w + t]);
    }
    device_surface_unlock(dev, k->out, 0);
    return 0;
}

int devhead_chunk_softmax(Pipeline *pl, Device *dev, DevHead *h, int c) {
    const int S = h->S;
    DevKernel *cls = &h->cls[c], *sm = &h->sm[c];
    if (dp_copy(pl, dev, sm, "logits", cls, "logits", 0, 1) || dp_eval(pl, dev, sm, -1) ||
        dp_fetch(pl, dev, sm, "max", h->mx + (size_t)c * S) || dp_fetch(pl, dev, sm, "sum", h->sum + (size_t)c * S))
        return -1;
    return target_logits(dev, h, c);
}

typedef struct {
    float *x;        // rows of S values: chunk c's dl
    size_t S;
    F16Rows p;       // chunk c's softmax on the device
    const float *f;  // (S) its factors to the softmax over every row
    const int *tgt;  // (S) target rows (-1: no loss), of the whole head
    int row0;        // chunk c's first row
    float k;         // x[v][t] = k·(p[v][t]·f[t] − (tgt[t] == row0 + v)), 0 where tgt[t] < 0
    F16Rows x16;     // and x[v] into these fp16 rows (.p NULL: none)
} RowJob;

static void dlogits_rows(void *ctx, size_t b, size_t e) {
    const RowJob *j = ctx;
    for (size_t v = b; v < e; v++) {
        float *row = j->x + v * j->S;
        const int r = j->row0 + (int)v;
        fp16_to_f32_array(row, j->p.p + v * j->p.ld, j->S);
        for (size_t t = 0; t < j->S; t++) {
            // p·f rounded on its own: a compiler that contracts a·b − c into an FMA would change it
            const float p = row[t] * j->f[t];
            row[t] = j->tgt[t] >= 0 ? j->k * (p - (j->tgt[t] == r)) : 0.0f;
        }
        if (j->x16.p) fp16_from_f32_array(j->x16.p + v * j->x16.ld, row, j->S);
    }
}

// lse = log Σ_c sum_c·e^{max_c}; chunk c's softmax times f_c = sum_c·e^{max_c − lse}
// is the global one (devhead_dlogits applies it: a forward alone never reads p).
void devhead_combine(DevHead *h, float *loss) {
    const int S = h->S;
    double total = 0;
    int n_valid = 0;
    for (int t = 0; t < S; t++) {
        double m = -INFINITY, z = 0;
        for (int c = 0; c < h->n; c++) m = fmax(m, h->mx[(size_t)c * S + t]);
        for (int c = 0; c < h->n; c++) z += h->sum[(size_t)c * S + t] * exp(h->mx[(size_t)c * S + t] - m);
        h->lse[t] = (float)(m + log(z));
        if (h->tgt[t] >= 0) total += h->lse[t] - h->tlogit[t], n_valid++;
    }
    for (int c = 0; c < h->n; c++)
        for (int t = 0; t < S; t++) {
            const size_t i = (size_t)c * S + t;
            h->f[i] = h->sum[i] * expf(h->mx[i] - h->lse[t]);
        }
    *loss = n_valid ? (float)(total / n_valid) : 0.0f;
}

typedef struct {
    DevHead *h;
    int c, into;
    float scale;
} DlogitsJob;

// rows[0]: the chunk's softmax; rows[1]: the dl input of the kernel it goes into.
static void dlogits_chunk(void *ctx, const F16Rows *rows) {
    const DlogitsJob *d = ctx;
    DevHead *h = d->h;
    int n_valid = 0;
    for (int t = 0; t < h->S; t++) n_valid += h->tgt[t] >= 0;
    const int row0 = d->c * h->rows;
    RowJob j = {h->dl + (size_t)row0 * h->S, (size_t)h->S, rows[0], h->f + (size_t)d->c * h->S, h->tgt, row0,
                n_valid ? d->scale / (float)n_valid : 0.0f, d->into ? rows[1] : (F16Rows){0}};
    par_for((size_t)devhead_rows(h, d->c), 1, 4.0 * h->S, dlogits_rows, &j);
}

int devhead_dlogits(Pipeline *pl, Device *dev, DevHead *h, int c, float scale, DevKernel *into) {
    const int rows = devhead_rows(h, c);
    const DpRegion r[2] = {{&h->sm[c], "probs", 1, rows}, {into, "dl", 0, rows}};
    DlogitsJob j = {h, c, into != NULL, scale};
    return dp_fused(pl, dev, r, into ? 2 : 1, dlogits_chunk, &j);
}
