// Optimizer: schedule, clipping, skip on non-finite gradients, AdamW against a
// hand-written double-precision update.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "model/params.h"
#include "test.h"
#include "train/optim.h"

TEST(optim_schedule_warmup_then_cosine) {
    TrainState st;
    memset(&st, 0, sizeof st);
    optim_defaults(&st);
    st.lr = 1e-3f;
    st.warmup = 10;
    st.total_steps = 110;
    CHECK(fabsf(optim_lr(&st, 0) - 1e-4f) < 1e-9f);   // (0+1)/10
    CHECK(fabsf(optim_lr(&st, 9) - 1e-3f) < 1e-9f);   // end of warmup = peak
    CHECK(fabsf(optim_lr(&st, 10) - 1e-3f) < 1e-9f);  // cosine starts at the peak
    CHECK(fabsf(optim_lr(&st, 60) - 0.55e-3f) < 1e-8f);  // halfway: (max+min)/2
    CHECK(fabsf(optim_lr(&st, 110) - 1e-4f) < 1e-9f);    // floor 0.1 x lr
    CHECK(fabsf(optim_lr(&st, 500) - 1e-4f) < 1e-9f);    // stays at the floor
}

TEST(optim_prepare_unscales_clips_and_skips) {
    TrainState st;
    memset(&st, 0, sizeof st);
    optim_defaults(&st);
    st.accum = 4;
    st.loss_scale = 8.0f;
    st.clip = 1.0f;
    float g[3] = {3 * 32.0f, 4 * 32.0f, 0};  // norm 5 after dividing by scale*accum = 32
    float mul;
    double norm;
    REQUIRE(optim_prepare(&st, g, 3, &mul, &norm) == 1);
    CHECK(fabs(norm - 5.0) < 1e-6);
    CHECK(fabsf(mul - 1.0f / 32 / 5) < 1e-9f);  // unscale then clip to norm 1
    st.clip = 10.0f;
    REQUIRE(optim_prepare(&st, g, 3, &mul, &norm) == 1);
    CHECK(fabsf(mul - 1.0f / 32) < 1e-9f);  // under the clip: unscale only
    // non-finite: skipped, counted, dynamic scale halves
    st.loss_scale_dynamic = 1;
    g[2] = INFINITY;
    CHECK(optim_prepare(&st, g, 3, &mul, &norm) == 0);
    CHECK(st.skipped == 1);
    CHECK(st.loss_scale == 4.0f);
    g[2] = NAN;
    CHECK(optim_prepare(&st, g, 3, &mul, &norm) == 0);
    CHECK(st.skipped == 2);
}

TEST(optim_adamw_matches_reference_update) {
    Config c;
    config_preset(&c, "tiny-qwen3");
    Params p;
    REQUIRE(params_init(&p, &c) == 0);
    params_init_random(&p, 5);
    size_t n = p.n;
    float *g = malloc(n * 4), *m = calloc(n, 4), *v = calloc(n, 4);
    double *w0 = malloc(n * 8), *md = calloc(n, 8), *vd = calloc(n, 8);
    Rng r;
    rng_init(&r, 9);
    TrainState st;
    memset(&st, 0, sizeof st);
    optim_defaults(&st);
    for (size_t i = 0; i < n; i++) w0[i] = p.data[i];
    for (int step = 1; step <= 3; step++) {
        for (size_t i = 0; i < n; i++) g[i] = rng_normal(&r);
        st.adam_t = step;
        const float lr = 1e-2f, mul = 0.5f;
        optim_adamw(&p, g, m, v, &st, lr, mul, NULL);
        for (int t = 0; t < p.n_tensors; t++) {
            const TensorDesc *d = &p.t[t];
            double wd = d->is_norm ? 0.0 : st.weight_decay;
            for (size_t i = d->offset; i < d->offset + d->numel; i++) {
                double gi = (double)g[i] * mul;
                md[i] = 0.9 * md[i] + 0.1 * gi;
                vd[i] = 0.95 * vd[i] + 0.05 * gi * gi;
                double mh = md[i] / (1 - pow(0.9, step)), vh = vd[i] / (1 - pow(0.95, step));
                w0[i] -= lr * (mh / (sqrt(vh) + 1e-8) + wd * w0[i]);
            }
        }
    }
    float *wref = malloc(n * 4);
    for (size_t i = 0; i < n; i++) wref[i] = (float)w0[i];
    test_allclose(p.data, wref, n, 1e-6f, 1e-5f, "adamw weights");
    // norm weights got no decay: with g == 0 they would not move at all
    free(g), free(m), free(v), free(w0), free(md), free(vd), free(wref);
    params_free(&p);
}

// ZeRO-1's shards: AdamW over three shards at odd boundaries (inside
// tensors, off the vector width), each with its own moments, gives the
// whole-block update bit for bit, and the shards' bounds are the block's.
TEST(optim_shards_equal_the_whole_block) {
    Config c;
    config_preset(&c, "tiny-qwen3");
    Params p, q;
    REQUIRE(params_init(&p, &c) == 0 && params_init(&q, &c) == 0);
    params_init_random(&p, 5);
    memcpy(q.data, p.data, p.n * sizeof(float));
    const size_t n = p.n, cut[4] = {0, n / 3 + 5, 2 * n / 3 + 1, n};
    float *g = malloc(n * 4), *m = calloc(n, 4), *v = calloc(n, 4), *ms = calloc(n, 4), *vs = calloc(n, 4);
    Rng r;
    rng_init(&r, 9);
    TrainState st;
    memset(&st, 0, sizeof st);
    optim_defaults(&st);
    for (int step = 1; step <= 3; step++) {
        for (size_t i = 0; i < n; i++) g[i] = rng_normal(&r);
        st.adam_t = step;
        OptimBounds whole, part, all = {0, 0, 0};
        optim_adamw(&p, g, m, v, &st, 1e-2f, 0.5f, &whole);
        for (int k = 0; k < 3; k++) {  // each shard's moments in a buffer of its own size
            const OptimShard sh = {cut[k], cut[k + 1]};
            const size_t len = sh.hi - sh.lo;
            float *mk = malloc(len * 4), *vk = malloc(len * 4);
            memcpy(mk, ms + sh.lo, len * 4), memcpy(vk, vs + sh.lo, len * 4);
            CHECK(optim_update_finite_shard(&q, g, mk, vk, sh, &st, 1e-2f, 0.5f, 1.0, NULL) == 1);
            optim_adamw_shard(&q, g, mk, vk, sh, &st, 1e-2f, 0.5f, &part);
            all.w = fmaxf(all.w, part.w), all.m = fmaxf(all.m, part.m), all.v = fmaxf(all.v, part.v);
            memcpy(ms + sh.lo, mk, len * 4), memcpy(vs + sh.lo, vk, len * 4);
            free(mk), free(vk);
        }
        CHECK(!memcmp(p.data, q.data, n * 4) && !memcmp(m, ms, n * 4) && !memcmp(v, vs, n * 4));
        CHECK(all.w == whole.w && all.m == whole.m && all.v == whole.v);
    }
    free(g), free(m), free(v), free(ms), free(vs);
    params_free(&p), params_free(&q);
}
