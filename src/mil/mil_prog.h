// mil_prog: the compiled form of a MIL function, shared by the checker
// (mil_interp.c) and the evaluator (mil_exec.c). Private to src/mil.
//
// Every SSA value gets a MilSlot (graph value ids first, then anonymous constants
// made from inline literals); every non-const op becomes one MilStep in text order.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "mil/mil_interp.h"
#include "mil/mil_parse.h"

#define MIL_MAX_TENSOR_NUMEL ((size_t)INT32_MAX)  // gemm() takes int sizes

typedef enum {
    MK_CONV, MK_MATMUL, MK_BIN, MK_UNARY, MK_SOFTMAX, MK_REDUCE, MK_RESHAPE,
    MK_TRANSPOSE, MK_SLICE, MK_CONCAT, MK_CAST, MK_SDPA,
    MK_DEAD,  // removed by mil_program_fuse, never executed
} MilStepKind;
typedef enum { MB_ADD, MB_SUB, MB_MUL, MB_DIV, MB_POW, MB_MAX, MB_MIN } MilBinOp;
typedef enum { MU_SIGMOID, MU_EXP, MU_SQRT, MU_TANH } MilUnOp;
typedef enum { MR_SUM, MR_MAX } MilRedOp;

typedef struct {
    MilType type;
    size_t numel;
    const char *name;  // points into the kept graph (or a static label)
    int is_const;
    const char *str;   // string constants (params only)
    float *c32;        // constant data as written / stored
    float *c16;        // the same rounded to fp16 where the dtype is fp16 (may alias c32)
    int last_use;      // last step that reads this value
    int is_io;         // the input or the output: never freed by the step loop
} MilSlot;

typedef struct {
    MilStepKind kind;
    int sub;  // MilBinOp / MilUnOp / MilRedOp
    int out;
    int a, b, c;  // operands (x, y | x, weight, bias | query, key, value); -1 if absent
    int *list;    // concat inputs
    int n_list;
    int axis, keep, red_mask, tx, ty, groups, interleave;
    int perm[MIL_TYPE_MAX_RANK];
    // matmul, transpose (mil_fuse.c): operand k (x, y) read in place from
    // value src[k] (-1: from the operand itself), a matrix whose rows start
    // src_off[k] elements in and are src_ld[k] apart
    int src[2], src_ld[2];
    int64_t src_off[2];
    // (mil_fuse.c) this step and the next are independent matmuls: they run
    // at once, one per thread
    int with_next;
    int64_t begin[MIL_TYPE_MAX_RANK];
    MilDt to;
    const char *opname;
    int line, col;
} MilStep;

// The rewrites of mil_fuse.c; 0, or -1 out of memory (the program is unchanged).
int mil_program_fuse(MilProgram *p);
// 1 if s is a transpose that swaps the last two of rank dims and keeps the others.
int mil_step_swaps_last_two(const MilStep *s, int rank);

struct MilProgram {
    MilGraph graph;  // kept for names
    MilSlot *vals;
    int n_vals, cap_vals;
    MilStep *steps;
    int n_steps, cap_steps;
    int input, output;
    // Buffers of one evaluation, planned once from the values' lifetimes
    // (mil_exec.c) and kept: no allocation per evaluation, so a program runs
    // one evaluation at a time, as a request does on the device.
    size_t *arena_off;     // (n_vals) offset of each computed value in arena, in floats
    float *arena;
    float **bufs;          // (n_vals) arena + arena_off, NULL for constants
};
