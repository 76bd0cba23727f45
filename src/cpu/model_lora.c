// model_lora: the adapter branch of each adapted linear in the CPU model
// (model.h, model/lora.h).
//
// For y = W x (times the residual scale k on o and w2) the branch adds
// k·s·B·(A·x̃), x̃ = x with the adapter dropout applied (training only). Its
// backward from dy: dB += k·s·dy·Uᵀ with U = A·x̃ (saved), V = k·s·Bᵀ·dy,
// dA += V·x̃ᵀ, dx += mask ∘ Aᵀ·V. The products are small (rank r rows): plain
// gemm() calls.
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/gemm.h"
#include "core/rng.h"
#include "cpu/model.h"

static size_t slot(int l, LoraTarget t) { return (size_t)l * LORA_N_TARGETS + t; }

int cpu_model_set_lora(CpuModel *m, const Params *adapters, const LoraConfig *lc, uint64_t seed) {
    const Config *c = &m->cfg;
    const size_t S = m->S, L = c->n_layers, n = L * LORA_N_TARGETS;
    m->lora = adapters;
    m->lora_cfg = *lc;
    m->lora_seed = seed;
    m->lora_u = calloc(n, sizeof(float *));
    m->lora_xd = calloc(n, sizeof(float *));
    size_t floats = S * (size_t)lc->rank, max_in = 0;  // the backward's V
    for (int t = 0; t < LORA_N_TARGETS; t++) {
        if (!(lc->targets & (1u << t))) continue;
        int in, out;
        lora_target_dims(c, (LoraTarget)t, &in, &out);
        floats += L * ((size_t)lc->rank * S + (lc->dropout > 0 ? (size_t)in * S : 0));
        if ((size_t)in > max_in) max_in = (size_t)in;
    }
    if (lc->dropout > 0) floats += max_in * S;  // the dropout backward's Aᵀ V
    m->lora_block = calloc(floats, sizeof(float));
    if (!m->lora_u || !m->lora_xd || !m->lora_block) return err_set("out of memory for the adapters' activations");
    float *p = m->lora_block;
    m->lora_v = p, p += S * (size_t)lc->rank;
    if (lc->dropout > 0) m->lora_tmp = p, p += max_in * S;
    for (size_t l = 0; l < L; l++)
        for (int t = 0; t < LORA_N_TARGETS; t++) {
            if (!(lc->targets & (1u << t))) continue;
            int in, out;
            lora_target_dims(c, (LoraTarget)t, &in, &out);
            m->lora_u[slot((int)l, t)] = p, p += (size_t)lc->rank * S;
            if (lc->dropout > 0) m->lora_xd[slot((int)l, t)] = p, p += (size_t)in * S;
        }
    return 0;
}

void cpu_model_lora_free(CpuModel *m) {
    free(m->lora_u);
    free(m->lora_xd);
    free(m->lora_block);
    m->lora_u = m->lora_xd = NULL;
    m->lora_block = NULL;
    m->lora = NULL;
}

// The dropout mask's stream: the run's seed, the window's place in the run
// (set by the trainer), the layer and the target — fresh masks for every
// window drawn, the same ones after a resume; the backward draws them again.
static void mask_rng(const CpuModel *m, int l, LoraTarget t, Rng *r) {
    uint64_t h = m->lora_seed ^ 0x9e3779b97f4a7c15ull * (uint64_t)(slot(l, t) + 1);
    h = (h ^ m->lora_window) * 0x100000001b3ull;
    rng_init(r, h ^ (h >> 29));
}

// x̃ = x·mask/(1-p) in training with dropout, else x itself.
static const float *dropped(CpuModel *m, int l, LoraTarget t, const float *x, int in) {
    const float p = m->lora_cfg.dropout;
    if (!m->lora_training || p <= 0) return x;
    Rng r;
    mask_rng(m, l, t, &r);
    float *xd = m->lora_xd[slot(l, t)];
    const float keep = 1.0f / (1.0f - p);
    for (size_t i = 0; i < (size_t)in * m->S; i++) xd[i] = rng_f32(&r) < p ? 0.0f : x[i] * keep;
    return xd;
}

void cpu_model_lora_forward(CpuModel *m, int l, LoraTarget t, const float *x, float *y, float k) {
    if (!m->lora || !(m->lora_cfg.targets & (1u << t))) return;
    const LoraMat a = lora_mat(m->lora, &m->lora_cfg, t, l);
    const int S = m->S;
    const float *xd = dropped(m, l, t, x, a.in);
    float *U = m->lora_u[slot(l, t)];
    gemm(0, 0, a.r, S, a.in, 1.0f, a.A, a.in, xd, S, 0.0f, U, S);          // U [r,S] = A x̃
    gemm(0, 0, a.out, S, a.r, k * a.scale, a.B, a.r, U, S, 1.0f, y, S);    // y += k s B U
}

void cpu_model_lora_backward(CpuModel *m, float *grads, int l, LoraTarget t, const float *x, const float *dy, float k,
                             float *dx) {
    if (!m->lora || !(m->lora_cfg.targets & (1u << t))) return;
    const LoraMat a = lora_mat(m->lora, &m->lora_cfg, t, l);
    const int S = m->S;
    const float *xd = m->lora_training && m->lora_cfg.dropout > 0 ? m->lora_xd[slot(l, t)] : x;
    const float *U = m->lora_u[slot(l, t)];
    float *dA, *dB, *V = m->lora_v;
    lora_grad_mat(m->lora, &m->lora_cfg, grads, t, l, &dA, &dB);
    const float ks = k * a.scale;
    gemm(0, 1, a.out, a.r, S, ks, dy, S, U, S, 1.0f, dB, a.r);     // dB [out,r] += k s dy Uᵀ
    gemm(1, 0, a.r, S, a.out, ks, a.B, a.r, dy, S, 0.0f, V, S);    // V [r,S] = k s Bᵀ dy
    gemm(0, 1, a.r, a.in, S, 1.0f, V, S, xd, S, 1.0f, dA, a.in);   // dA [r,in] += V x̃ᵀ
    if (xd == x) {
        gemm(1, 0, a.in, S, a.r, 1.0f, a.A, a.in, V, S, 1.0f, dx, S);  // dx += Aᵀ V
        return;
    }
    float *tmp = m->lora_tmp;  // (max in, S)
    gemm(1, 0, a.in, S, a.r, 1.0f, a.A, a.in, V, S, 0.0f, tmp, S);
    Rng r;
    mask_rng(m, l, t, &r);
    const float p = m->lora_cfg.dropout, keep = 1.0f / (1.0f - p);
    for (size_t i = 0; i < (size_t)a.in * S; i++)
        if (!(rng_f32(&r) < p)) dx[i] += tmp[i] * keep;
}
