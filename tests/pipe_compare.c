// pipe_compare: a device pipeline's step against the cpu pipeline's (pipe_compare.h).
#include "pipe_compare.h"

#include <math.h>
#include <stdlib.h>

#include "core/err.h"
#include "core/rng.h"
#include "test.h"

// The device stores every activation and gradient as fp16 (unit roundoff
// u = 2^-11 = 4.9e-4) between kernels; a gradient passes through ~10 such
// roundings on its way down a layer, so we hold each tensor to 10u relative to
// its largest element (max|a-b| / max|b|). A wrong head mapping, RoPE layout
// or missing residual scale gives O(1).
static const double BOUND = 10 * 4.8828125e-4;

void pipe_compare_weights(Params *p, uint64_t seed) {
    params_init_random(p, seed);
    Rng r;
    rng_init(&r, seed + 1);
    for (int i = 0; i < p->n_tensors; i++) {
        const TensorDesc *d = &p->t[i];
        for (size_t k = 0; d->is_norm && k < d->numel; k++) p->data[d->offset + k] = 1.0f + 0.3f * rng_normal(&r);
    }
}

static int run(const PipelineOptions *o, const Config *c, const Params *p, int S, const int *rows, int n_rows,
               float *ga, float *gb, PhaseTimes *times) {
    Pipeline a, b;
    const char *pipeline = o->name;
    PipelineOptions oa = {.name = "cpu", .vocab_rows = rows, .n_vocab_rows = n_rows}, ob = *o;
    ob.device = "sim", ob.vocab_rows = rows, ob.n_vocab_rows = n_rows;
    if (!CHECKF(pipeline_init(&a, &oa, c, S) == 0, "%s", err_msg())) return 0;
    if (!CHECKF(pipeline_init(&b, &ob, c, S) == 0, "%s %s: %s", pipeline, c->name, err_msg())) {
        pipeline_free(&a);
        return 0;
    }
    int *tok = malloc(S * sizeof(int)), *tgt = malloc(S * sizeof(int));
    Rng r;
    rng_init(&r, 5);
    for (int t = 0; t < S; t++) tok[t] = rng_u32(&r) % c->vocab, tgt[t] = rng_u32(&r) % c->vocab;
    const float scale = 1024.0f;
    float la = 0, lb = 0;
    int ok = CHECK(a.step(&a, p, tok, tgt, ga, 1.0f, &la) == 0);
    ok &= CHECKF(b.step(&b, p, tok, tgt, gb, scale, &lb) == 0, "%s: %s", pipeline, err_msg());
    CHECKF(fabsf(la - lb) < 1e-3f * la, "%s %s: loss cpu %g vs %g", pipeline, c->name, la, lb);
    for (size_t i = 0; i < p->n; i++) gb[i] /= scale;
    *times = b.times;
    free(tok), free(tgt);
    pipeline_free(&a);
    pipeline_free(&b);
    return ok;
}

int pipe_compare_step(const char *pipeline, const char *preset, int S, float res_scale, int compact,
                      PhaseTimes *times) {
    Config c;
    if (!CHECK(config_preset(&c, preset) == 0)) return 0;
    c.res_scale = res_scale;
    return pipe_compare_step_cfg(pipeline, &c, S, compact, times);
}

int pipe_compare_step_cfg(const char *pipeline, const Config *cfg, int S, int compact, PhaseTimes *times) {
    const PipelineOptions o = {.name = pipeline};
    return pipe_compare_step_opts(&o, cfg, S, compact, times);
}

int pipe_compare_step_opts(const PipelineOptions *o, const Config *cfg, int S, int compact, PhaseTimes *times) {
    const char *pipeline = o->name;
    const Config c = *cfg;
    const char *preset = c.name;
    Params p;
    if (!CHECK(params_init(&p, &c) == 0)) return 0;
    pipe_compare_weights(&p, 11);
    int *rows = malloc(sizeof(int) * c.vocab), n_rows = 0;
    for (int i = 0; compact && i < c.vocab; i += 2) rows[n_rows++] = i;
    float *ga = calloc(p.n, 4), *gb = calloc(p.n, 4);
    int ok = run(o, &c, &p, S, rows, n_rows, ga, gb, times);
    for (int i = 0; ok && i < p.n_tensors; i++) {
        const TensorDesc *d = &p.t[i];
        double e = test_rel_err(gb + d->offset, ga + d->offset, d->numel);
        CHECKF(e <= BOUND, "%s %s %s: relative error %.3g > %.3g", pipeline, preset, d->name, e, BOUND);
    }
    free(ga), free(gb), free(rows);
    params_free(&p);
    return ok;
}
