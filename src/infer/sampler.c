// sampler: argmax / multinomial / top-p over the logits (run.c semantics).
#include "infer/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

int sampler_init(Sampler *s, int vocab, float temperature, float topp, uint64_t seed) {
    memset(s, 0, sizeof *s);
    if (vocab <= 0) return err_set("sampler: vocab %d must be positive", vocab);
    s->vocab = vocab;
    s->temperature = temperature;
    s->topp = topp;
    s->rng.s = seed ? seed : 0x2545F4914F6CDD1Dull;
    s->probs = malloc(sizeof(float) * vocab);
    s->probindex = malloc(sizeof(ProbIndex) * vocab);
    if (!s->probs || !s->probindex) {
        sampler_free(s);
        return err_set("sampler: out of memory for vocab %d", vocab);
    }
    return 0;
}

void sampler_free(Sampler *s) {
    free(s->probs);
    free(s->probindex);
    memset(s, 0, sizeof *s);
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

// In place, float arithmetic in run.c's order (so probabilities match it bit for bit).
static void softmax(float *x, int n) {
    float mx = x[0];
    for (int i = 1; i < n; i++)
        if (x[i] > mx) mx = x[i];
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    for (int i = 0; i < n; i++) x[i] /= sum;
}

static int sample_mult(const float *probs, int n, float coin) {
    float cdf = 0.0f;
    for (int i = 0; i < n; i++) {
        cdf += probs[i];
        if (coin < cdf) return i;
    }
    return n - 1;  // rounding
}

// Descending probability; equal probabilities by index, so the order does not
// depend on the C library's qsort (run.c leaves ties to qsort).
static int cmp_prob_desc(const void *pa, const void *pb) {
    const ProbIndex *a = pa, *b = pb;
    if (a->prob > b->prob) return -1;
    if (a->prob < b->prob) return 1;
    return (a->index > b->index) - (a->index < b->index);
}

// Samples from the smallest set of most likely tokens whose mass exceeds topp.
static int sample_topp(const float *probs, int n, float topp, ProbIndex *pi, float coin) {
    // A token below (1 - topp) / (n - 1) can never be in the nucleus (if it were,
    // all n - 1 others would hold less than topp together), so drop them before sorting.
    const float cutoff = (1.0f - topp) / (n - 1);
    int n0 = 0;
    for (int i = 0; i < n; i++)
        if (probs[i] >= cutoff) pi[n0++] = (ProbIndex){probs[i], i};
    // run.c would index pi[-1] here (tiny topp with a flat distribution, one-token vocab, NaN logits)
    if (n0 == 0) return argmax(probs, n);
    qsort(pi, n0, sizeof(ProbIndex), cmp_prob_desc);
    float cum = 0.0f;
    int last = n0 - 1;  // rounding: if the sum never exceeds topp, keep all
    for (int i = 0; i < n0; i++) {
        cum += pi[i].prob;
        if (cum > topp) {
            last = i;
            break;
        }
    }
    const float r = coin * cum;
    float cdf = 0.0f;
    for (int i = 0; i <= last; i++) {
        cdf += pi[i].prob;
        if (r < cdf) return pi[i].index;
    }
    return pi[last].index;  // rounding
}

int sampler_sample(Sampler *s, const float *logits) {
    const int n = s->vocab;
    if (s->temperature == 0.0f) return argmax(logits, n);
    for (int i = 0; i < n; i++) s->probs[i] = logits[i] / s->temperature;
    softmax(s->probs, n);
    const float coin = rng_f32(&s->rng);  // run.c draws the coin before choosing the method
    if (s->topp <= 0.0f || s->topp >= 1.0f) return sample_mult(s->probs, n, coin);
    return sample_topp(s->probs, n, s->topp, s->probindex, coin);
}
