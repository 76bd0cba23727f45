// mil_parse: MIL text -> a typed SSA graph (MilGraph).
//
// Accepts the dialect anetrain emits and the ANE compiler takes (ane-spec §3.1,
// reference D.2):
//
//   program(1.3)
//   [buildInfo = dict<string, string>({{"k", "v"}, ...})]
//   {
//       func main<ios18>(tensor<fp16, [1, C, 1, S]> x) {
//           tensor<int32, [4]> b = const()[name=string("b"), val=tensor<int32, [4]>([0,0,0,0])];
//           tensor<fp16, [1, C, 1, 8]> y = slice_by_size(x=x, begin=b, size=s)[name=string("y")];
//           ...
//       } -> (out);
//   }
//
// and the older one (program(1.0), func main<ios16>, scalars spelled
// tensor<string, []>("x"), tensor<bool, []>(false), hex floats 0x1p-3).
// Values are defined once (SSA) and must be defined before use; every
// argument is a reference to an earlier value, a typed literal, or a tuple of
// those. Semantic checks (op arity, shapes) are the interpreter's job
// (mil_interp.h); the parser checks syntax, names and literal sanity.
//
// Errors: mil_parse() returns -1 with err_msg() like
//   "kernel.mil:7:42: expected ')' after the arguments of 'matmul', found ';'"
// (1-based line and byte column). Any byte sequence is safe to pass in.
#pragma once
#include <stddef.h>
#include <stdint.h>

#define MIL_TYPE_MAX_RANK 8

typedef enum {
    MIL_DT_INVALID = 0,
    MIL_DT_FP16, MIL_DT_FP32, MIL_DT_FP64,
    MIL_DT_INT8, MIL_DT_UINT8, MIL_DT_INT16, MIL_DT_UINT16,
    MIL_DT_INT32, MIL_DT_UINT32, MIL_DT_INT64, MIL_DT_UINT64,
    MIL_DT_BOOL, MIL_DT_STRING,
} MilDt;

// A value's type: dtype + shape. rank 0 is a scalar (`fp16`, `tensor<fp16, []>`).
typedef struct {
    MilDt dtype;
    int rank;
    int64_t dims[MIL_TYPE_MAX_RANK];  // each >= 1
} MilType;

typedef enum { MIL_LIT_NUMBERS, MIL_LIT_STRING, MIL_LIT_BLOB } MilLitKind;

typedef struct {
    MilType type;
    MilLitKind kind;
    size_t n;              // NUMBERS: element count (= product of dims)
    const double *num;     // NUMBERS: values row-major (bool as 0/1; ints exact)
    const char *str;       // STRING: decoded text
    const char *blob_path; // BLOB: e.g. "@model_path/weights/w.bin"
    uint64_t blob_offset;  // BLOB: MIL offset (of the chunk header)
    int line, col;
} MilLiteral;

typedef enum { MIL_ARG_REF, MIL_ARG_LIT, MIL_ARG_TUPLE } MilArgKind;

typedef struct MilArgValue {
    MilArgKind kind;
    int ref;                          // REF: value id in the function
    const MilLiteral *lit;            // LIT
    const struct MilArgValue *items;  // TUPLE
    int n_items;
    int line, col;
} MilArgValue;

typedef struct {
    const char *name;  // "x", "transpose_y", "name", "val", ...
    MilArgValue v;
    int line, col;
} MilArg;

typedef struct {
    const char *op;        // "matmul"
    int result;            // value id this statement defines
    const MilArg *args;    // op(...) arguments, in text order
    int n_args;
    const MilArg *attrs;   // [name=..., val=...] attributes
    int n_attrs;
    int line, col;         // of the op name
} MilGraphOp;

typedef struct {
    const char *name;
    MilType type;  // as declared
    int op;        // index of the defining op, or -1 for a function input
    int line, col;
} MilGraphValue;

typedef struct {
    const char *name;    // "main"
    const char *opset;   // "ios18" (NULL if absent)
    const int *inputs;   // value ids
    int n_inputs;
    const int *outputs;  // value ids
    int n_outputs;
    const MilGraphValue *values;
    int n_values;
    const MilGraphOp *ops;    // in text order
    int n_ops;
    int line, col;
} MilGraphFunc;

typedef struct MilArena MilArena;

typedef struct {
    const char *version;  // "1.3" as written
    const char *const *info_keys;  // buildInfo pairs
    const char *const *info_vals;
    int n_info;
    const MilGraphFunc *funcs;
    int n_funcs;
    MilArena *arena;  // owns everything above
} MilGraph;

// Parses text[0..len). `src_name` labels errors (NULL: "mil"). On failure *g is
// left empty (safe to free) and -1 is returned with err_msg().
int mil_parse(const char *text, size_t len, const char *src_name, MilGraph *g);
void mil_graph_free(MilGraph *g);

const MilGraphFunc *mil_graph_func(const MilGraph *g, const char *name);
const MilArg *mil_op_arg(const MilGraphOp *op, const char *name);   // NULL if absent
const MilArg *mil_op_attr(const MilGraphOp *op, const char *name);  // NULL if absent

const char *mil_dt_name(MilDt dt);  // "fp16", ...
int mil_dt_is_float(MilDt dt);
int mil_dt_is_int(MilDt dt);
// Number of elements (1 for a scalar).
size_t mil_type_numel(const MilType *t);
int mil_type_equal(const MilType *a, const MilType *b);
// Formats "tensor<fp16, [1, 64, 1, 256]>" (or "fp16" for a scalar) into buf.
const char *mil_type_str(const MilType *t, char *buf, size_t cap);
