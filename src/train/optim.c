#include "train/optim.h"

#include <math.h>

#include "core/threads.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#endif

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

// --- threaded, vectorized passes over the block ------------------------------------------
// Both passes are memory-bound (AdamW streams 7 x 4 bytes per parameter); two
// threads reach the machine's bandwidth where one does not, and the vector
// sqrt/div keep AdamW from being compute-bound on the way there.

typedef struct {
    const float *g;
    size_t n;
    double part[THREADS_MAX];
} SumsqJob;

static void sumsq_run(void *ctx, int tid, int nt) {
    SumsqJob *j = ctx;
    size_t b, e;
    threads_range(j->n, tid, nt, 4096, &b, &e);
    // float partial sums in blocks of 4096, accumulated in double: fast and
    // accurate enough for a norm of 1e8 elements
    double total = 0.0;
    for (size_t i = b; i < e; i += 4096) {
        const size_t end = i + 4096 < e ? i + 4096 : e;
        size_t k = i;
        float s = 0.0f;
#if defined(__AVX2__) && defined(__FMA__)
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (; k + 32 <= end; k += 32) {
            __m256 x0 = _mm256_loadu_ps(j->g + k), x1 = _mm256_loadu_ps(j->g + k + 8);
            __m256 x2 = _mm256_loadu_ps(j->g + k + 16), x3 = _mm256_loadu_ps(j->g + k + 24);
            a0 = _mm256_fmadd_ps(x0, x0, a0);
            a1 = _mm256_fmadd_ps(x1, x1, a1);
            a2 = _mm256_fmadd_ps(x2, x2, a2);
            a3 = _mm256_fmadd_ps(x3, x3, a3);
        }
        float lanes[8];
        _mm256_storeu_ps(lanes, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
        for (int l = 0; l < 8; l++) s += lanes[l];
#endif
        for (; k < end; k++) s += j->g[k] * j->g[k];
        total += s;
    }
    j->part[tid] = total;
}

double optim_sumsq(const float *g, size_t n) {
    SumsqJob j;
    j.g = g;
    j.n = n;
    const int nt = threads_run_n(sumsq_run, &j, n < (1u << 20) ? 1 : THREADS_MAX);
    double total = 0.0;
    for (int i = 0; i < nt; i++) total += j.part[i];
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

typedef struct {
    Params *p;
    const float *g;
    float *m, *v;
    float b1, b2, eps, step, inv_bc2, mul, lr_wd;
} AdamJob;

// Elements [b, e) of one tensor: the update of optim.h, 8 lanes at a time.
static void adam_span(const AdamJob *j, size_t b, size_t e, float decay) {
    float *restrict w = j->p->data, *restrict m = j->m, *restrict v = j->v;
    const float *restrict g = j->g;
    const float b1 = j->b1, b2 = j->b2, eps = j->eps, step = j->step, inv_bc2 = j->inv_bc2, mul = j->mul;
    size_t i = b;
#if defined(__AVX2__) && defined(__FMA__)
    const __m256 vb1 = _mm256_set1_ps(b1), vb2 = _mm256_set1_ps(b2), c1 = _mm256_set1_ps(1.0f - b1),
                 c2 = _mm256_set1_ps(1.0f - b2), vmul = _mm256_set1_ps(mul), vstep = _mm256_set1_ps(step),
                 veps = _mm256_set1_ps(eps), vibc2 = _mm256_set1_ps(inv_bc2), vdec = _mm256_set1_ps(decay);
    for (; i + 8 <= e; i += 8) {
        const __m256 gi = _mm256_mul_ps(_mm256_loadu_ps(g + i), vmul);
        const __m256 mi = _mm256_add_ps(_mm256_mul_ps(vb1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(c1, gi));
        const __m256 vi =
            _mm256_add_ps(_mm256_mul_ps(vb2, _mm256_loadu_ps(v + i)), _mm256_mul_ps(_mm256_mul_ps(c2, gi), gi));
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
        const __m256 den = _mm256_add_ps(_mm256_sqrt_ps(_mm256_mul_ps(vi, vibc2)), veps);
        const __m256 wi = _mm256_loadu_ps(w + i);
        const __m256 upd = _mm256_add_ps(_mm256_div_ps(_mm256_mul_ps(vstep, mi), den), _mm256_mul_ps(vdec, wi));
        _mm256_storeu_ps(w + i, _mm256_sub_ps(wi, upd));
    }
#endif
    for (; i < e; i++) {
        const float gi = g[i] * mul;
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        w[i] -= step * m[i] / (sqrtf(v[i] * inv_bc2) + eps) + decay * w[i];
    }
}

static void adam_run(void *ctx, int tid, int nt) {
    const AdamJob *j = ctx;
    size_t b, e;
    threads_range(j->p->n, tid, nt, 1024, &b, &e);
    for (int t = 0; t < j->p->n_tensors; t++) {
        const TensorDesc *d = &j->p->t[t];
        const size_t lo = d->offset > b ? d->offset : b, hi = d->offset + d->numel < e ? d->offset + d->numel : e;
        if (lo < hi) adam_span(j, lo, hi, d->is_norm ? 0.0f : j->lr_wd);
    }
}

void optim_adamw(Params *p, const float *g, float *m, float *v, const TrainState *st, float lr, float grad_mul) {
    const float b1 = st->beta1, b2 = st->beta2;
    const float bc1 = 1.0f - powf(b1, (float)st->adam_t), bc2 = 1.0f - powf(b2, (float)st->adam_t);
    AdamJob j = {p, g, m, v, b1, b2, st->eps, lr / bc1, 1.0f / bc2, grad_mul, lr * st->weight_decay};
    threads_run_n(adam_run, &j, p->n < (1u << 18) ? 1 : THREADS_MAX);
}
