// mil_interp: compile MIL text into an executable program and run it on the
// CPU — the core of the `sim` device.
//
// mil_program_compile() parses the text, resolves BLOBFILE constants against
// the weight files given (validated with mil_blob_read), and type/shape-checks
// every op: the declared result type of each statement must equal the type the
// op produces. It also rejects what the ANE rejects: a program whose `main`
// has more than one input or output, or whose input/output is not an fp16
// rank-4 tensor ([1, C, 1, S] in practice), and a conv or channel-axis
// softmax wider than the channel limits below.
//
// Ops (reference D.4 semantics):
//   const (scalars, int tensors, fp16/fp32 tensors, BLOBFILE)
//   conv (1x1 kernels, groups, optional bias, on [N, C, H, W]; weight [OC, C/groups, 1, 1])
//   matmul (batched, batch dims broadcast, transpose_x / transpose_y)
//   add, sub, mul, real_div, pow, maximum, minimum (NumPy broadcasting)
//   sigmoid, exp, sqrt, tanh, softmax(axis), reduce_sum / reduce_max(axes, keep_dims)
//   reshape (-1 inferred, 0 copies the dim), transpose(perm), slice_by_size (size -1 = to end),
//   concat(axis, interleave), cast(dtype = fp16 | fp32 | int32 | bool)
//   scaled_dot_product_attention(query, key, value[, attn_mask]) = softmax(Q·Kᵀ/√E)·V.
//     The attn_mask is shape-checked and then IGNORED, as the ANE does
//     (maderix test_ane_sdpa5.m: inline, BLOBFILE and runtime masks all had no
//     effect): programs that need a causal mask must spell it out with
//     matmul + add(mask) + softmax, and the sim device gives the same wrong
//     answer as the hardware when they don't.
//
// Precision. MIL_PREC_FP16 emulates the device: the input is rounded to fp16,
// every op computes in fp32 (matmul/conv through gemm(), softmax and
// reductions with fp32/fp64 accumulators) and rounds each fp16-typed result to
// fp16 with round-to-nearest-even before the next op reads it; fp16 literals
// are rounded to fp16. MIL_PREC_FP32 is the reference: same program, nothing
// rounded (literals keep the value printed in the text, blob weights are their
// fp16 values, cast(fp16) is the identity).
//
// Memory: each intermediate value gets its own buffer, allocated when its op
// runs and freed after its last reader. A program may be run any number of
// times, but not from two threads at once.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "mil/mil_parse.h"

// Channel limits of one op: a conv's output channels and a softmax over the
// channel axis at most 32000 (the classifier conv and vocabulary softmax the
// seed compiled for Stories), a conv's input channels at most 16384 (the
// seed's conv with 32000 input channels was rejected; 16384 is the commonly
// quoted per-dimension limit; reference.md D.5). Vocabularies above them are
// split into chunks (mil_vocab_chunks in kernels.h).
enum { MIL_MAX_OUT_CHANNELS = 32000, MIL_MAX_IN_CHANNELS = 16384 };

typedef struct {
    const char *path;     // as written in BLOBFILE(path=...), e.g. "@model_path/weights/w.bin"
                          // ("weights/w.bin" without the @model_path/ prefix also matches)
    const uint8_t *data;  // the whole blob file (see mil_blob.h)
    size_t size;
} MilWeightFile;

typedef enum { MIL_PREC_FP16 = 0, MIL_PREC_FP32 = 1 } MilPrecision;

typedef struct {
    const char *name;
    int rank;
    int64_t dims[MIL_TYPE_MAX_RANK];
    size_t numel;
} MilIoDesc;

typedef struct MilProgram MilProgram;

// Returns 0 and a program, or -1 with err_msg() ("mil:LINE:COL: ...").
// The weight bytes are copied (converted) during compile; the caller may free them after.
int mil_program_compile(const char *text, const MilWeightFile *weights, int n_weights, MilProgram **out);
typedef struct {
    // run every op as written: none of the rewrites that spare copies
    // (mil_fuse.c; the values are the same, tests compare the two)
    int as_written;
    // reject a program that breaks one of the ANE's rules (mil_rules.h), as
    // the sim device does: checked on the program as written
    int ane_rules;
} MilCompileOptions;
int mil_program_compile_opts(const char *text, const MilWeightFile *weights, int n_weights,
                             const MilCompileOptions *o, MilProgram **out);
void mil_program_free(MilProgram *prog);

// The one input and the one output of `main`.
void mil_program_io(const MilProgram *prog, MilIoDesc *in, MilIoDesc *out);
int mil_program_n_ops(const MilProgram *prog);  // executed ops (consts excluded)
// Elements of all non-constant values together: an upper bound on what a run
// allocates (in floats), since each value's buffer is freed after its last use.
size_t mil_program_value_elems(const MilProgram *prog);

// Runs once. in/out hold in.numel / out.numel elements (row-major, e.g. [1,C,1,S] channel-first).
int mil_program_eval(MilProgram *prog, MilPrecision prec, const float *in, float *out);
// The device's format: fp16 in, fp16 out, MIL_PREC_FP16.
int mil_program_run(MilProgram *prog, const uint16_t *in, uint16_t *out);
// Reference mode: fp32 in, fp32 out, MIL_PREC_FP32.
int mil_program_run_f32(MilProgram *prog, const float *in, float *out);
