// lora: low-rank adapters over a frozen model (Hu et al., "LoRA", 2021; the
// layout and names of Hugging Face PEFT).
//
// A target matrix W [out, in] of every layer is used as W + s·B·A, with
// A [r, in], B [out, r] and s = alpha / r. Only A and B are trained (and, with
// train_norms, copies of the RMSNorm weights, used instead of the base's); the
// base stays as it is. A starts Gaussian with std 1/r and B at zero (PEFT's
// "gaussian" init), so a fresh adapter changes nothing.
//
// The adapters are a Params of their own (its TensorDesc list, no ParamViews),
// so the optimizer, clipping, checkpoints and the all-reduce treat them as they
// treat a model: per target, "lora_A.NAME" (L, r, in) and "lora_B.NAME" (L, out, r);
// with train_norms then "rms_att" (L, D), "rms_ffn" (L, D), "rms_final" (D).
#pragma once
#include <stdint.h>

#include "model/params.h"

typedef enum { LORA_Q, LORA_K, LORA_V, LORA_O, LORA_W1, LORA_W2, LORA_W3, LORA_N_TARGETS } LoraTarget;

typedef struct {
    int rank;            // r > 0; 0 = no adapters (full training)
    float alpha;         // s = alpha / r
    unsigned targets;    // bit t set: target t is adapted
    float dropout;       // probability of dropping an input of the adapter branch (training only)
    int train_norms;     // also train the RMSNorm weights
} LoraConfig;

// "q", "k", "v", "o", "w1", "w2", "w3" (PEFT's q_proj, ..., down_proj, up_proj).
const char *lora_target_name(LoraTarget t);
// A comma-separated list of target names -> mask. -1 with err_msg() on an unknown one.
int lora_parse_targets(const char *list, unsigned *mask);
// The mask as a list ("q,k,v,o,w1,w2,w3").
void lora_format_targets(unsigned mask, char *out, size_t cap);
// Input and output width of target t's matrix in model c.
void lora_target_dims(const Config *c, LoraTarget t, int *in, int *out);

// Floats of lc's adapters over model c (validates lc). -1 with err_msg().
int lora_floats(const Config *c, const LoraConfig *lc, size_t *n);
// Allocates the adapters of lc over model c (zeroed). -1 with err_msg().
int lora_init(Params *a, const Config *c, const LoraConfig *lc);
// A ~ N(0, 1/r²) from seed, B = 0; norm copies from the base.
void lora_init_random(Params *a, const LoraConfig *lc, const Params *base, uint64_t seed);

// Layer l's matrices of target t (NULL if t is not adapted).
typedef struct {
    const float *A, *B;  // [r, in], [out, r]
    int in, out, r;
    float scale;         // alpha / r
} LoraMat;
LoraMat lora_mat(const Params *a, const LoraConfig *lc, LoraTarget t, int layer);
// Writable views of the same layout in another block (gradients): *A, *B of layer l.
void lora_grad_mat(const Params *a, const LoraConfig *lc, float *block, LoraTarget t, int layer, float **A, float **B);
// The trained norm weights (train_norms), else NULL: in `block` laid out as a's.
float *lora_norm(const Params *a, float *block, const char *name);

// The merged model: dst (allocated like base) = base with W + s·B·A for every
// target and the trained norms. -1 with err_msg().
int lora_merge(Params *dst, const Params *base, const Params *a, const LoraConfig *lc);
// The same into dst, already allocated like base.
void lora_merge_into(Params *dst, const Params *base, const Params *a, const LoraConfig *lc);
// Layer l's matrix of target t in views g (NULL when that view is NULL).
float *lora_base_grad(const Config *c, const ParamViews *g, LoraTarget t, int layer);
