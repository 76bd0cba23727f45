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
    h->bwd = dynamic ? calloc((size_t)h->n, sizeof(DevKernel)) : NULL;
    h->tgt = calloc(n_s, sizeof(int));
    if (!h->block || !h->cls || (dynamic && !h->bwd) || !h->tgt) {
        free(h->block), free(h->cls), free(h->bwd), free(h->tgt);
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
    }
    dk_free(&h->smax[0], dev);
    dk_free(&h->smax[1], dev);
    free(h->cls), free(h->bwd), free(h->tgt), free(h->block);
    memset(h, 0, sizeof *h);
}

int devhead_rows(const DevHead *h, int c) { return c + 1 < h->n ? h->rows : h->V - c * h->rows; }

int devhead_compile_softmax(DevHead *h, Device *dev, const Config *cfg, MilDialect dialect) {
    const int last = devhead_rows(h, h->n - 1);
    for (int i = 0; i < (last == h->rows ? 1 : 2); i++) {
        MilKernel k;
        if (mil_kernel_build_chunk(MIL_K_VOCAB_SOFTMAX, cfg, h->S, dialect, i == 0 ? h->rows : last, &k) != 0 ||
            dk_compile(&h->smax[i], dev, &k, NULL, NULL) != 0)
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
    const int S = h->S, rows = devhead_rows(h, c);
    DevKernel *cls = &h->cls[c], *sm = &h->smax[rows == h->rows ? 0 : 1];
    if (dp_copy(pl, dev, sm, "logits", cls, "logits", 0, 1) || dp_eval(pl, dev, sm, -1) ||
        dp_fetch(pl, dev, sm, "probs", h->dl + (size_t)c * h->rows * S) ||
        dp_fetch(pl, dev, sm, "max", h->mx + (size_t)c * S) || dp_fetch(pl, dev, sm, "sum", h->sum + (size_t)c * S))
        return -1;
    return target_logits(dev, h, c);
}

typedef struct {
    float *x;        // rows of S values: chunk c's softmax
    size_t S;
    const float *f;  // (S) x[v][t] *= f[t]: chunk c's softmax to the global one
    const int *tgt;  // (S) target rows (-1: no loss), of the whole head
    int row0;        // chunk c's first row
    float k;         // x[v][t] = k·(x[v][t]·f[t] − (tgt[t] == row0 + v)), 0 where tgt[t] < 0
    const F16Rows *x16;  // and x[v] into these fp16 rows (NULL: none)
} RowJob;

static void dlogits_rows(void *ctx, size_t b, size_t e) {
    const RowJob *j = ctx;
    for (size_t v = b; v < e; v++) {
        float *row = j->x + v * j->S;
        const int r = j->row0 + (int)v;
        for (size_t t = 0; t < j->S; t++)
            row[t] = j->tgt[t] >= 0 ? j->k * (row[t] * j->f[t] - (j->tgt[t] == r)) : 0.0f;
        if (j->x16) fp16_from_f32_array(j->x16->p + v * j->x16->ld, row, j->S);
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

void devhead_dlogits(DevHead *h, int c, float scale, const F16Rows *dl16) {
    int n_valid = 0;
    for (int t = 0; t < h->S; t++) n_valid += h->tgt[t] >= 0;
    const int row0 = c * h->rows;
    RowJob j = {h->dl + (size_t)row0 * h->S, (size_t)h->S, h->f + (size_t)c * h->S, h->tgt, row0,
                n_valid ? scale / (float)n_valid : 0.0f, dl16};
    par_for((size_t)devhead_rows(h, c), 1, (dl16 ? 4.0 : 2.0) * h->S, dlogits_rows, &j);
}
