// generate_device: generation's matrix work on a device (sim or ane), for
// gen_step (generate.h). Per layer decQKV (RMSNorm and the q/k/v projections),
// decWo and fwdFFN (RMSNorm and the SwiGLU FFN); then finalNorm and the
// classifier in the static pipeline's vocabulary chunks — weights baked,
// compiled once (3·L + 1 + chunks kernels: 38 for stories110m, 90 for
// qwen3-0.6b). Each evaluation carries one position: the kernels are built for
// a window of 1, which the ANE's rules pad to 64 positions (Orion decodes in
// buckets of 16; 16 fp16 values are a 32-byte row, under the 128 bytes the
// rules ask for).
//
// QK-norm, RoPE, attention over the KV cache and the residual adds stay on the
// CPU, in fp32: the cache grows by a position every token and each call is at
// a new position, so on the device each would be a new program or a kernel
// over the whole cache padded to its maximum, while on the CPU they are
// O(pos · QD) per token next to the O(params) the device does.
#pragma once
#include "model/params.h"

typedef struct GenDevice GenDevice;

// Compiles every kernel of p's weights on `device` ("sim" or "ane"); -1 with err_msg().
int gen_device_init(GenDevice **out, const Params *p, const char *device, int compile_budget);
void gen_device_free(GenDevice *d);

// Layer l: q [QD], k [KVD], v [KVD] of the residual stream x [D] (before QK-norm and RoPE).
int gen_device_qkv(GenDevice *d, int l, const float *x, float *q, float *k, float *v);
// Layer l: o [D] = Wo·att.
int gen_device_wo(GenDevice *d, int l, const float *att, float *o);
// Layer l: f [D] = W2·(silu(W1·xn)·W3·xn), xn = RMSNorm(x2; rms_ffn).
int gen_device_ffn(GenDevice *d, int l, const float *x2, float *f);
// logits [V] of the classifier over RMSNorm(x; rms_final).
int gen_device_logits(GenDevice *d, const float *x, float *logits);
// Kernels compiled, device evaluations so far.
void gen_device_counts(const GenDevice *d, int *kernels, long long *evals);
