// emit: a small builder for MIL program text (ane-spec §3.1, reference D.2).
//
// A generator declares the function input, then calls one mil_emit_<op>() per
// statement. The builder keeps every value's dtype and shape and computes each
// result shape itself, so a generator cannot write a declared type that
// disagrees with what the op produces: a shape error (bad slice, matmul inner
// dims, broadcast, reshape volume) is recorded once (sticky, err_msg()) and
// every later call returns MIL_NONE, so generators check only at the end:
//
//   MilEmit e;  mil_emit_init(&e, MIL_DIALECT_IOS18);
//   MilVal x = mil_emit_input(&e, "x", 4, (int[]){1, 64, 1, 80});
//   MilVal a = mil_emit_slice(&e, x, (int[]){0,0,0,0}, (int[]){1,64,1,16}, "a");
//   ...
//   if (mil_emit_finish(&e, out, &text, &len) != 0) -> err_msg() says what failed
//   mil_emit_free(&e);
//
// Constants (int32 / bool / fp16 scalars, int32 vectors) are emitted as
// separate const() statements named after the statement that uses them
// ("<name>_begin", "<name>_perm", ...). fp16 tensors go to BLOBFILE weight files
// "@model_path/weights/NAME.bin" (offset uint64(64)); the builder keeps their
// fp16 payloads (e.blobs) for the caller to wrap in the blob file format.
//
// Dialects: MIL_DIALECT_IOS18 is what maderix/ANE emits (program(1.3),
// func main<ios18>, shorthand scalars string("x") / fp16(0.5) / uint64(64)).
// MIL_DIALECT_IOS16 is the form older chips (M1/M2) need (maderix PR #6):
// program(1.0), func main<ios16>, every scalar spelled as a rank-0 tensor
// (tensor<string, []>("x"), tensor<fp16, []>(0.5), tensor<uint64, []>(64)) and
// "arg = value" spacing, as coremltools prints it.
//
// Arguments are printed in alphabetical order (as coremltools does).
// Floating literals are rounded to fp16 first and printed in fixed notation (no
// exponent, as the tools that write the MIL the ANE compiles do) with enough
// digits to round-trip exactly.
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef enum { MIL_DIALECT_IOS18 = 0, MIL_DIALECT_IOS16 = 1 } MilDialect;
typedef enum { MIL_FP16 = 0, MIL_FP32, MIL_INT32, MIL_BOOL, MIL_STRING } MilDtype;

enum { MIL_MAX_RANK = 5, MIL_NAME_MAX = 64 };

// Handle of a value inside one builder; MIL_NONE after an error.
typedef int MilVal;
#define MIL_NONE (-1)

typedef struct {
    char name[MIL_NAME_MAX];
    MilDtype dt;
    int rank;                   // 0 = scalar
    int shape[MIL_MAX_RANK];
} MilValue;

typedef struct {
    char name[MIL_NAME_MAX];    // file is @model_path/weights/<name>.bin
    uint16_t *data;             // fp16 payload, row-major in `shape`
    size_t n;                   // elements
    int rank;
    int shape[MIL_MAX_RANK];
} MilEmitBlob;

typedef struct {
    MilDialect dialect;
    char *body;                 // statements (growable)
    size_t len, cap;
    MilValue *vals;             // every named value (inputs, consts, op results)
    int n_vals, cap_vals;
    MilEmitBlob *blobs;
    int n_blobs, cap_blobs;
    MilVal inputs[8];           // function parameters, in declaration order
    int n_inputs;
    int failed;                 // sticky: first error is in err_msg()
    int no_payload;             // 1: blob consts keep name and shape only (data NULL): the
                                // program text is the same, no weight memory is allocated
    int auto_id;                // counter for generated names
    MilVal bool_const[2];       // shared bool(false) / bool(true) consts, made on first use
} MilEmit;

void mil_emit_init(MilEmit *e, MilDialect dialect);
void mil_emit_free(MilEmit *e);

// Value metadata (NULL for MIL_NONE).
const MilValue *mil_emit_value(const MilEmit *e, MilVal v);
// Dimension i of v (negative i counts from the end); -1 if v is invalid.
int mil_emit_dim(const MilEmit *e, MilVal v, int i);

// --- function inputs and constants ----------------------------------------------------------
// An fp16 tensor parameter of main().
MilVal mil_emit_input(MilEmit *e, const char *name, int rank, const int *shape);
MilVal mil_emit_const_fp16(MilEmit *e, const char *name, float v);   // fp16 scalar
MilVal mil_emit_const_i32(MilEmit *e, const char *name, int v);      // int32 scalar
MilVal mil_emit_const_bool(MilEmit *e, const char *name, int v);     // bool scalar
MilVal mil_emit_const_i32v(MilEmit *e, const char *name, int n, const int *v);  // tensor<int32, [n]>
// An fp16 tensor constant stored in weights/<name>.bin. data: fp32 values,
// rounded to fp16 here (row-major in shape). With e->no_payload, data is not
// read (it may be NULL) and the blob has no payload.
MilVal mil_emit_const_blob(MilEmit *e, const char *name, const float *data, int rank, const int *shape);
// The same with data already in fp16 (bit patterns, stored as given).
MilVal mil_emit_const_blob_f16(MilEmit *e, const char *name, const uint16_t *data, int rank, const int *shape);

// --- ops (name may be NULL: an auto-generated name is used) -------------------------------------
// size[i] = -1 means "to the end of axis i".
MilVal mil_emit_slice(MilEmit *e, MilVal x, const int *begin, const int *size, const char *name);
// shape may contain one -1 (inferred); the volume must match.
MilVal mil_emit_reshape(MilEmit *e, MilVal x, int rank, const int *shape, const char *name);
MilVal mil_emit_transpose(MilEmit *e, MilVal x, const int *perm, const char *name);
// Batched x[..., M, K] · y[..., K, N] (after the optional transposes of the last
// two axes); batch axes broadcast.
MilVal mil_emit_matmul(MilEmit *e, MilVal x, MilVal y, int transpose_x, int transpose_y, const char *name);
// Elementwise with NumPy broadcasting (a scalar const broadcasts everywhere).
MilVal mil_emit_add(MilEmit *e, MilVal x, MilVal y, const char *name);
MilVal mil_emit_sub(MilEmit *e, MilVal x, MilVal y, const char *name);
MilVal mil_emit_mul(MilEmit *e, MilVal x, MilVal y, const char *name);
// x * c, x + c with an fp16 scalar const c (named "<name>_y").
MilVal mil_emit_mul_scalar(MilEmit *e, MilVal x, float c, const char *name);
MilVal mil_emit_add_scalar(MilEmit *e, MilVal x, float c, const char *name);
// x ^ p with an fp16 scalar exponent (RMSNorm uses p = -0.5).
MilVal mil_emit_pow(MilEmit *e, MilVal x, float p, const char *name);
MilVal mil_emit_sigmoid(MilEmit *e, MilVal x, const char *name);
MilVal mil_emit_exp(MilEmit *e, MilVal x, const char *name);
MilVal mil_emit_softmax(MilEmit *e, MilVal x, int axis, const char *name);
MilVal mil_emit_reduce_sum(MilEmit *e, MilVal x, int n_axes, const int *axes, int keep_dims, const char *name);
MilVal mil_emit_reduce_max(MilEmit *e, MilVal x, int n_axes, const int *axes, int keep_dims, const char *name);
// concat(values=(v[0], ..., v[n-1]), axis, interleave=false); n >= 1
MilVal mil_emit_concat(MilEmit *e, int n, const MilVal *v, int axis, const char *name);
// 1x1 convolution (static pipeline): x [1, IC, 1, S], weight [OC, IC, 1, 1]
// (usually a blob const) -> [1, OC, 1, S]; strides 1, pad "valid", groups 1.
MilVal mil_emit_conv(MilEmit *e, MilVal x, MilVal weight, const char *name);

// Completes the program with `out` as the function result and returns the
// whole text (malloc'd, NUL-terminated; *len without the NUL). The builder
// keeps its blobs (e->blobs) until mil_emit_free. Returns -1 if any earlier
// call failed (err_msg() holds the first failure) or out is invalid.
int mil_emit_finish(MilEmit *e, MilVal out, char **text, size_t *len);
