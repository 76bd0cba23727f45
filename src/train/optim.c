#include "train/optim.h"

#include <math.h>

void optim_defaults(TrainState *st) {
    st->lr = 3e-4f;
    st->min_lr_frac = 0.1f;
    st->beta1 = 0.9f;
    st->beta2 = 0.95f;
    st->eps = 1e-8f;
    st->weight_decay = 0.1f;
    st->clip = 1.0f;
    st->warmup = 10;
    st->accum = 10;
    st->loss_scale = 1.0f;
    st->loss_scale_dynamic = 0;
    st->best_val_loss = INFINITY;
}

float optim_lr(const TrainState *st, long long step) {
    if (step < st->warmup) return st->lr * (float)(step + 1) / (float)st->warmup;
    const float min_lr = st->lr * st->min_lr_frac;
    long long span = st->total_steps - st->warmup;
    if (span <= 0) return st->lr;
    double ratio = (double)(step - st->warmup) / (double)span;
    if (ratio > 1) ratio = 1;
    return (float)(min_lr + 0.5 * (1.0 + cos(M_PI * ratio)) * (st->lr - min_lr));
}

double optim_sumsq(const float *g, size_t n) {
    // four partial sums in float blocks of 4096, accumulated in double: fast and
    // accurate enough for a norm of 1e8 elements
    double total = 0.0;
    for (size_t i = 0; i < n; i += 4096) {
        size_t end = i + 4096 < n ? i + 4096 : n;
        float s = 0.0f;
        for (size_t j = i; j < end; j++) s += g[j] * g[j];
        total += s;
    }
    return total;
}

int optim_prepare(TrainState *st, const float *g, size_t n, float *grad_mul, double *norm) {
    const double unscale = 1.0 / ((double)st->loss_scale * st->accum);
    const double sumsq = optim_sumsq(g, n);
    const double gnorm = sqrt(sumsq) * unscale;
    *norm = gnorm;
    if (!isfinite(gnorm)) {
        st->skipped++;
        st->good_steps = 0;
        if (st->loss_scale_dynamic && st->loss_scale > 1.0f) st->loss_scale *= 0.5f;
        return 0;
    }
    double mul = unscale;
    if (st->clip > 0 && gnorm > st->clip) mul *= st->clip / gnorm;
    *grad_mul = (float)mul;
    if (st->loss_scale_dynamic && ++st->good_steps >= 1000) {  // grow again after a quiet stretch
        st->loss_scale *= 2.0f;
        st->good_steps = 0;
    }
    return 1;
}

void optim_adamw(Params *p, const float *g, float *m, float *v, const TrainState *st, float lr, float grad_mul) {
    const float b1 = st->beta1, b2 = st->beta2, eps = st->eps;
    const float bc1 = 1.0f - powf(b1, (float)st->adam_t), bc2 = 1.0f - powf(b2, (float)st->adam_t);
    const float step = lr / bc1, inv_bc2 = 1.0f / bc2;
    for (int t = 0; t < p->n_tensors; t++) {
        const TensorDesc *d = &p->t[t];
        const float decay = d->is_norm ? 0.0f : lr * st->weight_decay;
        float *w = p->data + d->offset, *mt = m + d->offset, *vt = v + d->offset;
        const float *gt = g + d->offset;
        for (size_t i = 0; i < d->numel; i++) {
            const float gi = gt[i] * grad_mul;
            mt[i] = b1 * mt[i] + (1.0f - b1) * gi;
            vt[i] = b2 * vt[i] + (1.0f - b2) * gi * gi;
            w[i] -= step * mt[i] / (sqrtf(vt[i] * inv_bc2) + eps) + decay * w[i];
        }
    }
}
