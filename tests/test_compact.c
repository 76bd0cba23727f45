// Vocab compaction: the classifier, softmax and loss over a subset of rows.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "cpu/model.h"
#include "test.h"

// Checked against the full-vocab forward of the same weights: the compact loss
// is the cross-entropy of the full logits restricted to the active rows, and
// the classifier gradient is (softmax over the rows - onehot) xfᵀ on those
// rows and exactly zero elsewhere (untied, so no embedding term mixes in).
TEST(compact_vocab_matches_restricted_softmax) {
    Config c;
    REQUIRE(config_preset(&c, "tiny-gqa") == 0);
    c.tied = 0;
    const int S = 16, V = c.vocab, D = c.dim;
    Params p;
    REQUIRE(params_init(&p, &c) == 0);
    params_init_random(&p, 3);
    for (size_t i = 0; i < p.n; i++) p.data[i] *= 4.0f;  // logits well away from uniform
    Rng r;
    rng_init(&r, 4);
    int tok[16], tgt[16], rows[256], n = 0;
    for (int t = 0; t < S; t++) tok[t] = rng_u32(&r) % V, tgt[t] = 2 * (rng_u32(&r) % (V / 2));  // even targets
    for (int i = 0; i < V; i += 2) rows[n++] = i;
    tgt[5] = 7;  // an odd target is outside the set: ignored
    CpuModel full, comp;
    REQUIRE(cpu_model_init(&full, &c, S) == 0);
    REQUIRE(cpu_model_init(&comp, &c, S) == 0);
    REQUIRE(cpu_model_set_vocab(&comp, rows, n) == 0);
    cpu_model_forward(&full, &p, tok, tgt);
    float lc = cpu_model_forward(&comp, &p, tok, tgt);
    float *g = calloc(p.n, sizeof(float));
    cpu_model_backward(&comp, &p, g, 1.0f);
    // reference from the full logits, in double
    double loss = 0;
    int count = 0;
    double *dW = calloc((size_t)V * D, sizeof(double));
    for (int t = 0; t < S; t++) {
        if (tgt[t] % 2) continue;
        const float *z = full.logits + (size_t)t * V;
        double mx = -1e30, sum = 0;
        for (int i = 0; i < n; i++) mx = fmax(mx, z[rows[i]]);
        for (int i = 0; i < n; i++) sum += exp(z[rows[i]] - mx);
        loss += -(z[tgt[t]] - mx - log(sum));
        count++;
    }
    for (int t = 0; t < S; t++) {
        if (tgt[t] % 2) continue;
        const float *z = full.logits + (size_t)t * V;
        double mx = -1e30, sum = 0;
        for (int i = 0; i < n; i++) mx = fmax(mx, z[rows[i]]);
        for (int i = 0; i < n; i++) sum += exp(z[rows[i]] - mx);
        for (int i = 0; i < n; i++) {
            double dl = (exp(z[rows[i]] - mx) / sum - (rows[i] == tgt[t])) / count;
            for (int d = 0; d < D; d++) dW[(size_t)rows[i] * D + d] += dl * full.xf[(size_t)d * S + t];
        }
    }
    loss /= count;
    CHECKF(fabs(lc - loss) < 1e-5 * fabs(loss), "compact loss %.7g vs restricted reference %.7g", lc, loss);
    CHECKF(lc < full.loss, "compact loss %g should be below the full-vocab loss %g", lc, full.loss);
    float *want = malloc(sizeof(float) * V * D);
    for (size_t i = 0; i < (size_t)V * D; i++) want[i] = (float)dW[i];
    ParamViews gv;
    params_point(&c, g, &gv);
    test_allclose(gv.wcls, want, (size_t)V * D, 1e-6f, 1e-4f, "compact dWcls");
    // switching compaction off restores the full-vocab model
    REQUIRE(cpu_model_set_vocab(&comp, NULL, 0) == 0);
    CHECK(cpu_model_forward(&comp, &p, tok, tgt) == full.loss);
    int bad[2] = {5, 3};
    CHECK(cpu_model_set_vocab(&comp, bad, 2) != 0);
    free(g), free(dW), free(want);
    cpu_model_free(&full), cpu_model_free(&comp);
    params_free(&p);
}
