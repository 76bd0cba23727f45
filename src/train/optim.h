// optim: learning-rate schedule, gradient norm and clipping, AdamW, loss scaling.
//
// Recipe (the original's dynamic pipeline, ane-spec 1.8, counted in optimizer
// updates rather than micro-steps): linear warmup over `warmup` updates, then
// cosine from lr to min_lr_frac*lr at total_steps; AdamW with decoupled,
// lr-scaled weight decay on matrices and the embedding, none on norm weights.
#pragma once
#include <stddef.h>

#include "model/params.h"
#include "train/state.h"

// Fills st with the recipe defaults (lr 3e-4, betas 0.9/0.95, eps 1e-8, wd 0.1,
// clip 1, warmup 10, accum 10, min lr 0.1*lr, loss scale 1 static).
void optim_defaults(TrainState *st);
// Learning rate for optimizer update `step` (0-based).
float optim_lr(const TrainState *st, long long step);
// Sum of squares of g[0..n) in double (threaded over 2+ cores in the fast path).
double optim_sumsq(const float *g, size_t n);
// An update whose result would not be finite is skipped like a non-finite
// gradient. Proving it finite must not cost a pass over the block on every
// update, so the bounds below (largest |w|, |m| and v, refreshed for free by
// optim_adamw) give a worst case for every element: when that worst case is
// far from overflowing the update is safe; only otherwise does a read-only
// pass compute the update exactly and look.
typedef struct {
    float w, m, v;  // max |w|, max |m|, max v over the block
} OptimBounds;
// One fused pass over every tensor: g *= grad_mul (unscale + clip factor), then
//   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
//   w -= lr * (m̂ / (sqrt(v̂) + eps) + wd * w)     (wd = 0 for norm weights)
// with bias correction from st->adam_t (already incremented for this update).
// Also refreshes *b (may be NULL) to the new weights' and moments' bounds.
void optim_adamw(Params *p, const float *g, float *m, float *v, const TrainState *st, float lr, float grad_mul,
                 OptimBounds *b);

// One pass over the block (after init or load). Non-finite values give inf.
void optim_bounds(const Params *p, const float *m, const float *v, OptimBounds *b);
// 1 if optim_adamw(p, g, m, v, st, lr, grad_mul) would leave every weight and
// moment finite. grad_norm is optim_prepare's *norm.
int optim_update_finite(const Params *p, const float *g, const float *m, const float *v, const TrainState *st,
                        float lr, float grad_mul, double grad_norm, const OptimBounds *b);

// ZeRO-1 (moments sharded over ranks): the same passes over the elements
// [lo, hi) of the block alone, with the moments of those elements only (m[0]
// and v[0] are element lo's). AdamW is element-wise, so the shards' updates
// together are the whole block's, bit for bit.
typedef struct {
    size_t lo, hi;
} OptimShard;
void optim_adamw_shard(Params *p, const float *g, float *m, float *v, OptimShard sh, const TrainState *st, float lr,
                       float grad_mul, OptimBounds *b);
void optim_bounds_shard(const Params *p, const float *m, const float *v, OptimShard sh, OptimBounds *b);
int optim_update_finite_shard(const Params *p, const float *g, const float *m, const float *v, OptimShard sh,
                              const TrainState *st, float lr, float grad_mul, double grad_norm, const OptimBounds *b);

// Decides what to do with the accumulated (still scaled) gradients of one
// update. Returns 1 if they are finite and the update should happen, 0 if it
// must be skipped (and lowers a dynamic loss scale). grad_mul receives the
// factor that unscales, averages over accum micro-steps and applies clipping;
// *norm the unclipped global gradient norm.
int optim_prepare(TrainState *st, const float *g, size_t n, float *grad_mul, double *norm);
// The same from the gradients' sum of squares (ZeRO-1: the shards' sums, summed over the ranks).
int optim_prepare_sumsq(TrainState *st, double sumsq, float *grad_mul, double *norm);
// An update skipped after optim_prepare accepted its gradients (its result
// would not be finite): counted, and a dynamic loss scale lowered, as a
// non-finite gradient is.
void optim_record_skip(TrainState *st);
