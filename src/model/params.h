// params: all weights of a model in one contiguous fp32 block, with named views.
//
// The same layout serves parameters, gradients and Adam moments (llm.c style),
// so checkpointing, clipping, all-reduce and the optimizer are single loops.
// Per-layer tensors are stacked over layers: wq is (L, QD, D), layer l at
// wq + l*QD*D. Weights are row-major [out][in] (y = W x).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "model/config.h"

typedef struct {
    float *embed;      // (V, D) token embedding
    float *rms_att;    // (L, D) attention RMSNorm weight
    float *wq;         // (L, NH*HD, D)
    float *wk;         // (L, NKV*HD, D)
    float *wv;         // (L, NKV*HD, D)
    float *wo;         // (L, D, NH*HD)
    float *q_norm;     // (L, HD) per-head query RMSNorm (NULL unless qk_norm)
    float *k_norm;     // (L, HD) per-head key RMSNorm (NULL unless qk_norm)
    float *rms_ffn;    // (L, D) FFN RMSNorm weight
    float *w1;         // (L, H, D) gate
    float *w2;         // (L, D, H) down
    float *w3;         // (L, H, D) up
    float *rms_final;  // (D)
    float *wcls;       // (V, D) classifier; == embed when tied
} ParamViews;

enum { PARAMS_MAX_TENSORS = 24 };  // a model has at most 14; LoRA adapters at most 17

// One named tensor of the block (all layers of it).
typedef struct {
    const char *name;  // "wq", "rms_att", ...
    size_t offset;     // in floats from the block start
    size_t numel;      // all layers
    int per_layer;     // 1 if stacked over layers
    int rows, cols;    // shape of one layer's matrix (rows=1 for vectors)
    int is_norm;       // norm weights: no weight decay, init to 1
} TensorDesc;

typedef struct {
    Config cfg;
    float *data;       // the block, 64-byte aligned
    size_t n;          // floats in the block
    ParamViews v;
    TensorDesc t[PARAMS_MAX_TENSORS];
    int n_tensors;
} Params;

// Describes the layout of cfg's block; returns the number of tensors.
int params_layout(const Config *cfg, TensorDesc out[PARAMS_MAX_TENSORS], size_t *total);
// Allocates a zeroed block with views (-1 + err_msg on failure).
int params_init(Params *p, const Config *cfg);
void params_free(Params *p);
// Points views of p into an external block laid out for p->cfg (used for grads, moments).
void params_point(const Config *cfg, float *block, ParamViews *v);
const TensorDesc *params_find(const Params *p, const char *name);
// 0 if every weight is finite; else -1 with "WHERE: expected finite weights,
// found nan in tensor wq at index 1234 (layer 0, row 19, column 18)" for the
// first non-finite value in block order. Every model loader runs this (a NaN
// weight only shows up later as "loss nan").
int params_check_finite(const Params *p, const char *where);

// Seeded initialization: matrices ~ N(0, 0.02), output projections (wo, w2)
// scaled by 1/sqrt(2L) (GPT-2 style), norm weights 1.
void params_init_random(Params *p, uint64_t seed);
