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

void optim_record_skip(TrainState *st) {
    st->skipped++;
    st->good_steps = 0;
    if (st->loss_scale_dynamic && st->loss_scale > 1.0f) st->loss_scale *= 0.5f;
}

int optim_prepare(TrainState *st, const float *g, size_t n, float *grad_mul, double *norm) {
    return optim_prepare_sumsq(st, optim_sumsq(g, n), grad_mul, norm);
}

int optim_prepare_sumsq(TrainState *st, double sumsq, float *grad_mul, double *norm) {
    const double unscale = 1.0 / ((double)st->loss_scale * st->accum);
    const double gnorm = sqrt(sumsq) * unscale;
    *norm = gnorm;
    if (!isfinite(gnorm)) {
        optim_record_skip(st);
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
    float *m, *v;                  // of elements [lo, hi): m[0] is element lo's
    size_t lo, hi;
    float b1, b2, eps, step, inv_bc2, mul, lr_wd;
    int dry;                       // 1: compute, store nothing, count non-finite results
    float wmax[THREADS_MAX], mmax[THREADS_MAX], vmax[THREADS_MAX];
    size_t bad[THREADS_MAX];
} AdamJob;

// Running maxima of one span: |w'|, |m'|, v' (or, dry, the non-finite count).
typedef struct {
    float w, m, v;
    size_t bad;
} SpanStats;

static inline void span_scalar(float *mx, float x) {
    if (x > *mx) *mx = x;
}

// Elements [b, e) of one tensor: the update of optim.h, 8 lanes at a time.
// Element-wise, so any split of the block gives the same bits.
static void adam_span(const AdamJob *j, size_t b, size_t e, float decay, SpanStats *ss) {
    float *restrict w = j->p->data + b, *restrict m = j->m + (b - j->lo), *restrict v = j->v + (b - j->lo);
    const float *restrict g = j->g + b;
    const float b1 = j->b1, b2 = j->b2, eps = j->eps, step = j->step, inv_bc2 = j->inv_bc2, mul = j->mul;
    const int dry = j->dry;
    const size_t n = e - b;
    size_t i = 0;
#if defined(__AVX2__) && defined(__FMA__)
    const __m256 vb1 = _mm256_set1_ps(b1), vb2 = _mm256_set1_ps(b2), c1 = _mm256_set1_ps(1.0f - b1),
                 c2 = _mm256_set1_ps(1.0f - b2), vmul = _mm256_set1_ps(mul), vstep = _mm256_set1_ps(step),
                 veps = _mm256_set1_ps(eps), vibc2 = _mm256_set1_ps(inv_bc2), vdec = _mm256_set1_ps(decay);
    const __m256 sign = _mm256_set1_ps(-0.0f), big = _mm256_set1_ps(3.4028235e38f);
    __m256 aw = _mm256_setzero_ps(), am = aw, av = aw;
    for (; i + 8 <= n; i += 8) {
        const __m256 gi = _mm256_mul_ps(_mm256_loadu_ps(g + i), vmul);
        const __m256 mi = _mm256_add_ps(_mm256_mul_ps(vb1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(c1, gi));
        const __m256 vi =
            _mm256_add_ps(_mm256_mul_ps(vb2, _mm256_loadu_ps(v + i)), _mm256_mul_ps(_mm256_mul_ps(c2, gi), gi));
        const __m256 den = _mm256_add_ps(_mm256_sqrt_ps(_mm256_mul_ps(vi, vibc2)), veps);
        const __m256 wi = _mm256_loadu_ps(w + i);
        const __m256 upd = _mm256_add_ps(_mm256_div_ps(_mm256_mul_ps(vstep, mi), den), _mm256_mul_ps(vdec, wi));
        const __m256 wn = _mm256_sub_ps(wi, upd);
        if (dry) {
            // |x| <= FLT_MAX is false for inf and NaN
            __m256 ok = _mm256_and_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, wn), big, _CMP_LE_OQ),
                                      _mm256_cmp_ps(_mm256_andnot_ps(sign, mi), big, _CMP_LE_OQ));
            ok = _mm256_and_ps(ok, _mm256_cmp_ps(vi, big, _CMP_LE_OQ));
            ss->bad += 8 - (size_t)__builtin_popcount((unsigned)_mm256_movemask_ps(ok));
            continue;
        }
        _mm256_storeu_ps(m + i, mi);
        _mm256_storeu_ps(v + i, vi);
        _mm256_storeu_ps(w + i, wn);
        aw = _mm256_max_ps(aw, _mm256_andnot_ps(sign, wn));
        am = _mm256_max_ps(am, _mm256_andnot_ps(sign, mi));
        av = _mm256_max_ps(av, vi);
    }
    float lw[8], lm[8], lv[8];
    _mm256_storeu_ps(lw, aw);
    _mm256_storeu_ps(lm, am);
    _mm256_storeu_ps(lv, av);
    for (int l = 0; l < 8; l++) span_scalar(&ss->w, lw[l]), span_scalar(&ss->m, lm[l]), span_scalar(&ss->v, lv[l]);
#endif
    for (; i < n; i++) {
        const float gi = g[i] * mul;
        const float mi = b1 * m[i] + (1.0f - b1) * gi;
        const float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        const float wn = w[i] - (step * mi / (sqrtf(vi * inv_bc2) + eps) + decay * w[i]);
        if (dry) {
            ss->bad += !(isfinite(wn) && isfinite(mi) && isfinite(vi));
            continue;
        }
        m[i] = mi, v[i] = vi, w[i] = wn;
        span_scalar(&ss->w, fabsf(wn)), span_scalar(&ss->m, fabsf(mi)), span_scalar(&ss->v, vi);
    }
}

static void adam_run(void *ctx, int tid, int nt) {
    AdamJob *j = ctx;
    size_t b, e;
    threads_range(j->hi - j->lo, tid, nt, 1024, &b, &e);
    b += j->lo, e += j->lo;
    SpanStats ss = {0, 0, 0, 0};
    for (int t = 0; t < j->p->n_tensors; t++) {
        const TensorDesc *d = &j->p->t[t];
        const size_t lo = d->offset > b ? d->offset : b, hi = d->offset + d->numel < e ? d->offset + d->numel : e;
        if (lo < hi) adam_span(j, lo, hi, d->is_norm ? 0.0f : j->lr_wd, &ss);
    }
    j->wmax[tid] = ss.w, j->mmax[tid] = ss.m, j->vmax[tid] = ss.v, j->bad[tid] = ss.bad;
}

// Runs the update (or, dry, its check); returns the non-finite count of a dry run.
static size_t adam_pass(Params *p, const float *g, float *m, float *v, OptimShard sh, const TrainState *st,
                        float lr, float grad_mul, int dry, OptimBounds *bounds) {
    const float b1 = st->beta1, b2 = st->beta2;
    const float bc1 = 1.0f - powf(b1, (float)st->adam_t), bc2 = 1.0f - powf(b2, (float)st->adam_t);
    AdamJob j = {.p = p, .g = g, .m = m, .v = v, .lo = sh.lo, .hi = sh.hi, .b1 = b1, .b2 = b2, .eps = st->eps,
                 .step = lr / bc1, .inv_bc2 = 1.0f / bc2, .mul = grad_mul, .lr_wd = lr * st->weight_decay, .dry = dry};
    const int nt = threads_run_n(adam_run, &j, sh.hi - sh.lo < (1u << 18) ? 1 : THREADS_MAX);
    size_t bad = 0;
    OptimBounds b = {0, 0, 0};
    for (int i = 0; i < nt; i++) {
        bad += j.bad[i];
        span_scalar(&b.w, j.wmax[i]), span_scalar(&b.m, j.mmax[i]), span_scalar(&b.v, j.vmax[i]);
    }
    if (bounds && !dry) *bounds = b;
    return bad;
}

static OptimShard whole(const Params *p) { return (OptimShard){0, p->n}; }

void optim_adamw(Params *p, const float *g, float *m, float *v, const TrainState *st, float lr, float grad_mul,
                 OptimBounds *b) {
    adam_pass(p, g, m, v, whole(p), st, lr, grad_mul, 0, b);
}

void optim_adamw_shard(Params *p, const float *g, float *m, float *v, OptimShard sh, const TrainState *st, float lr,
                       float grad_mul, OptimBounds *b) {
    adam_pass(p, g, m, v, sh, st, lr, grad_mul, 0, b);
}

// max |x| over n floats, or inf when one is NaN ("not provably safe");
// written so the compiler vectorizes it (a select, and an or of compares).
static float max_abs(const float *x, size_t n) {
    float mx = 0.0f;
    int nan = 0;
    for (size_t i = 0; i < n; i++) {
        const float a = fabsf(x[i]);
        mx = a > mx ? a : mx;
        nan |= a != a;
    }
    return nan ? INFINITY : mx;
}

typedef struct {
    const float *x[3];
    size_t n;
    float part[3][THREADS_MAX];
} BoundsJob;

static void bounds_run(void *ctx, int tid, int nt) {
    BoundsJob *j = ctx;
    size_t b, e;
    threads_range(j->n, tid, nt, 4096, &b, &e);
    for (int k = 0; k < 3; k++) j->part[k][tid] = j->x[k] ? max_abs(j->x[k] + b, e - b) : 0.0f;
}

void optim_bounds(const Params *p, const float *m, const float *v, OptimBounds *b) {
    optim_bounds_shard(p, m, v, whole(p), b);
}

void optim_bounds_shard(const Params *p, const float *m, const float *v, OptimShard sh, OptimBounds *b) {
    BoundsJob j = {.x = {p->data + sh.lo, m, v}, .n = sh.hi - sh.lo};
    const int nt = threads_run_n(bounds_run, &j, j.n < (1u << 20) ? 1 : THREADS_MAX);
    float r[3] = {0, 0, 0};
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < nt; i++) span_scalar(&r[k], j.part[k][i]);
    b->w = r[0], b->m = r[1], b->v = r[2];
}

// The worst case of every element of the update from the bounds alone, in
// double: with G >= |g_i * grad_mul| (a vector norm bounds each element),
//   m' <= b1 M + (1-b1) G,   v' <= b2 V + (1-b2) G^2,   den >= eps,
//   |w'| <= W + lr/bc1 * m'/eps + lr*wd*W.
// Every intermediate must stay below 1e37, far enough from FLT_MAX (3.4e38)
// that float rounding cannot reach it.
static int bounds_prove_finite(const TrainState *st, float lr, double G, const OptimBounds *b) {
    const double limit = 1e37;
    const double b1 = st->beta1, b2 = st->beta2;
    const double bc1 = 1.0 - pow(b1, (double)st->adam_t), bc2 = 1.0 - pow(b2, (double)st->adam_t);
    const double M1 = b1 * b->m + (1 - b1) * G, V1 = b2 * b->v + (1 - b2) * G * G;
    const double step_m = lr / bc1 * M1, upd = step_m / st->eps + (double)lr * st->weight_decay * b->w;
    const double worst[] = {G * G, V1 / bc2, step_m, upd, b->w + upd};
    for (size_t i = 0; i < sizeof worst / sizeof worst[0]; i++)
        if (!(worst[i] < limit)) return 0;
    return bc1 > 0 && bc2 > 0;
}

int optim_update_finite(const Params *p, const float *g, const float *m, const float *v, const TrainState *st,
                        float lr, float grad_mul, double grad_norm, const OptimBounds *b) {
    return optim_update_finite_shard(p, g, m, v, whole(p), st, lr, grad_mul, grad_norm, b);
}

int optim_update_finite_shard(const Params *p, const float *g, const float *m, const float *v, OptimShard sh,
                              const TrainState *st, float lr, float grad_mul, double grad_norm, const OptimBounds *b) {
    // grad_norm is unscaled and unclipped; grad_mul unscales and clips, so the
    // clipped vector's norm is grad_norm * grad_mul * (loss_scale * accum);
    // 1% covers the float partial sums of optim_sumsq
    const double G = 1.01 * grad_norm * grad_mul * ((double)st->loss_scale * st->accum);
    if (b && bounds_prove_finite(st, lr, G, b)) return 1;
    return adam_pass((Params *)p, g, (float *)m, (float *)v, sh, st, lr, grad_mul, 1, NULL) == 0;
}
