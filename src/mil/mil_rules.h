// mil_rules: the ANE's known rules for a program, checked before a kernel is
// compiled — by the sim device on every compile (so a green sim run means the
// program meets them) and by the ane device before it hands the text to
// Apple's compiler.
//
// The table (mil_rules_table) is the source of truth for the README: each
// rule names the public source it comes from and what the kernel generators
// (src/mil/kernels*.c) do to meet it. Rules where public sources disagree are
// listed with enforced = 0: documented, not checked.
#pragma once
#include "mil/mil_interp.h"

typedef enum {
    MIL_RULE_IO_ROWS = 0,   // I/O surface rows (W · 2 bytes) a multiple of 128 bytes
    MIL_RULE_SLICE_START,   // slices of the input start on a 32-element boundary of W
    MIL_RULE_MATMUL_INNER,  // matmul inner dimension a multiple of 32
    MIL_RULE_MIN_SURFACE,   // every I/O surface at least 48 KiB
    MIL_RULE_RANK,          // every tensor of rank at most 4
    MIL_RULE_CONV_WEIGHT,   // conv weights are constants, groups = 1
    MIL_RULE_CHANNELS,      // conv / channel softmax within the channel limits (checked by the interpreter)
    MIL_RULE_ONE_IO,        // one input, one output surface (checked by the interpreter)
    MIL_RULE_SDPA_MASK,     // attn_mask of SDPA is ignored (emulated by the interpreter)
    MIL_RULE_CONCAT,        // concat inputs: sources disagree
    MIL_RULE_DIM_16K,       // < 16384 per dimension: sources disagree
    MIL_RULE_COUNT
} MilRuleId;

typedef struct {
    const char *id;       // "io-rows", ...
    const char *rule;     // what the hardware needs
    const char *source;   // who reports it
    const char *action;   // what our generators do
    int enforced;         // checked by mil_rules_check (1), or by the interpreter itself (2), or documented only (0)
} MilRule;

enum {
    MIL_RULE_ROW_BYTES = 128,       // I/O row stride multiple
    MIL_RULE_SLICE_ELEMS = 32,      // input slice starts (64 bytes of fp16)
    MIL_RULE_INNER_MULT = 32,       // matmul K
    MIL_RULE_MIN_BYTES = 48 * 1024, // smallest I/O surface
    MIL_RULE_MAX_RANK = 4,
    MIL_RULE_DIM_MAX = 16384,       // elements per dimension, exclusive (dim-16k: documented, not enforced)
};

const MilRule *mil_rule(MilRuleId id);

// 0 if compiled program p meets every enforced rule; else -1 with err_msg()
// "mil:LINE:COL: ANE rule <id>: <what was found> (<source>)" for the first
// violation in text order.
int mil_rules_check(const MilProgram *p);

// Compiles text (weights as for mil_program_compile) only to check it: for a
// device that does not run the program itself.
int mil_rules_check_text(const char *text, const MilWeightFile *weights, int n_weights);
