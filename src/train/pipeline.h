// pipeline: one training step, whatever runs it.
//
// A pipeline computes the loss of a window and accumulates the gradients of
// that loss (times loss_scale) into a block laid out like the params. The
// trainer owns everything else (data, optimizer, checkpoints), so every
// pipeline — cpu, dynamic on a device, static — shares one loop.
#pragma once
#include "model/lora.h"
#include "model/params.h"

typedef struct {
    double forward, backward, device, staging, cpu_ops, dw_wait, compile;  // ms, cumulative
    // of cpu_ops: the classifier, softmax and cross-entropy on the CPU (with
    // the device head, dL/d logits and its conversions); the activations'
    // surface reads and writes not fused into an op (dp_fused: counted as the
    // op's time; staging: the weights')
    double cpu_cls, cpu_io;
    double io_bytes;  // what those reads and writes move: 6 per value converted, 4 per value copied
    long long device_evals, kernels_compiled;
    long long dialect_fallbacks;  // kernels that compiled only in the other MIL dialect
} PhaseTimes;

typedef struct Pipeline Pipeline;
struct Pipeline {
    const char *name;
    void *impl;
    // *loss = loss of tokens -> targets; grads += loss_scale * d loss / d params.
    // Returns 0, or -1 with err_msg() when the pipeline itself failed (a device
    // error). A non-finite *loss with status 0 is numerical, not a failure.
    int (*step)(Pipeline *pl, const Params *p, const int *tokens, const int *targets, float *grads,
                float loss_scale, float *loss);
    // An update starts: the next step's gradients replace the block's n floats
    // instead of adding to them (NULL: the block is zeroed here; the cpu
    // pipeline writes them in place and spends no pass on zeros). Call it
    // through pipeline_grads_begin.
    void (*grads_begin)(Pipeline *pl, float *grads, size_t n);
    // forward only (evaluation); same status convention
    int (*eval)(Pipeline *pl, const Params *p, const int *tokens, const int *targets, float *loss);
    // the weights changed (after an optimizer update): restage device copies
    int (*params_changed)(Pipeline *pl, const Params *p);
    // 1 when the next step or eval would compile past the process's compile
    // budget: the caller saves and replaces the process (NULL: never)
    int (*restart_due)(Pipeline *pl);
    void (*free)(Pipeline *pl);
    PhaseTimes times;
    uint64_t window;  // set by the caller before step: which window of the run this is (seeds LoRA dropout)
    // Set by the caller (may stay NULL): step calls it once the gradients of
    // layer l are final, last layer first, so their all-reduce can overlap the
    // rest of the backward. A pipeline that cannot tell (the device ones: their
    // dW GEMMs finish on a worker) never calls it.
    void (*layer_done)(void *ctx, int layer);
    void *layer_done_ctx;
};

// How to build a pipeline. Zero-initialize, then set what you need.
typedef struct {
    const char *name;     // "cpu" (default), "dynamic", "static" or "static-ane"
    const char *device;   // for device pipelines: "sim" (default) or "ane"
    int compile_budget;   // device compiles allowed per process (0 = default)
    const char *precision;  // cpu: "fp32" (default) or "bf16"
    int recompute;          // cpu: keep only each layer's input, recompute the rest in the backward
    const int *vocab_rows;  // vocab compaction to these ascending ids (cpu/vocab_compact.h)
    int n_vocab_rows;       // 0 = full vocab
    int no_ane_extras;      // static-ane: run its extra kernels' work on the CPU
    int mil_dialect;        // device pipelines: MilDialect of the kernels (0 = ios18; 1 = ios16, M1/M2)
    int serial_staging;     // dynamic: stage every layer's weights before the forward, not beside it
    int device_head;        // dynamic: the classifier, its softmax and its input gradient on the device
    int dw_thread;          // device pipelines: weight gradients on their worker thread even on sim (tests)
    // LoRA (model/lora.h): the Params given to step are frozen, these adapters
    // (updated in place by the caller) are trained, and step's grads block is
    // laid out like them
    const Params *lora;
    const LoraConfig *lora_cfg;
    uint64_t lora_seed;     // of the adapter dropout
} PipelineOptions;

// The reference pipeline: src/cpu ops and BLAS. seq = window length.
int pipeline_cpu_init(Pipeline *pl, const Config *cfg, int seq, const PipelineOptions *o);
// The dynamic-weight pipeline: 10 MIL kernels compiled once on a device, weights
// staged into the input surfaces (src/train/pipeline_dynamic.c).
int pipeline_dynamic_init(Pipeline *pl, const Config *cfg, int seq, const PipelineOptions *o);
// The static pipelines: weights baked into per-layer kernels, recompiled after
// every update; static-ane adds RMSNorm backward, the final norm, the
// classifier and the vocabulary softmax on the device (pipeline_static.c).
int pipeline_static_init(Pipeline *pl, const Config *cfg, int seq, const PipelineOptions *o);
// By o->name; -1 with a message listing the known names.
int pipeline_init(Pipeline *pl, const PipelineOptions *o, const Config *cfg, int seq);
// Starts an update's gradients: pl->grads_begin, or zeroes the block.
void pipeline_grads_begin(Pipeline *pl, float *grads, size_t n);
// Names for --help.
const char *pipeline_names(void);
void pipeline_free(Pipeline *pl);
