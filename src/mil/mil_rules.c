// mil_rules: the ANE's known program rules (mil_rules.h), checked on a compiled program.
#include "mil/mil_rules.h"

#include <stdio.h>

#include "core/err.h"
#include "mil/mil_prog.h"

static const MilRule RULES[MIL_RULE_COUNT] = {
    [MIL_RULE_IO_ROWS] = {"io-rows", "each row of the input and the output surface (W fp16 values) is a multiple of "
                          "128 bytes",
                          "tinygrad and eiln: strides are multiples of 64 bytes; maderix/ANE PR #35: 128 on M5; Orion "
                          "#14: I/O is read packed, which is the strided layout only when rows need no padding",
                          "input widths are multiples of 64 values; the window is padded to a multiple of 64 positions",
                          1},
    [MIL_RULE_SLICE_START] = {"slice-start", "a slice of the input starts on a multiple of 32 values along W",
                              "the original system: every region start is a multiple of 32 elements (64 bytes)",
                              "every input region starts on a multiple of 32 columns; 1-column norm vectors get a "
                              "32-column slot",
                              1},
    [MIL_RULE_MATMUL_INNER] = {"matmul-inner", "a matmul's inner dimension is a multiple of 32",
                               "maderix/ANE issue #47: runtime-weight matmuls with other inner dims give silent "
                               "zeros",
                               "operands are padded with zero channels (surface rows left zero, or a concat with "
                               "zeros inside the kernel)",
                               1},
    [MIL_RULE_MIN_SURFACE] = {"min-surface", "every input and output surface holds at least 48 KiB",
                              "Orion #4: evaluation fails with 0x1d under ~48 KB ([768, 16] fp16 = 49,152 bytes)",
                              "small surfaces get extra zero channels (input) or a zero output region",
                              1},
    [MIL_RULE_RANK] = {"rank", "every tensor has rank at most 4", "reference D.6 (Orion's validator): [1, C, H, W]",
                       "the generators use rank-4 shapes throughout", 1},
    [MIL_RULE_CONV_WEIGHT] = {"conv-weight", "a conv's weight is a constant and groups is 1",
                              "reference D.5: grouped conv with runtime weights fails; runtime weights go through "
                              "matmul (maderix dynamic kernels)",
                              "convs bake their weights (static pipelines); runtime weights use matmul", 1},
    [MIL_RULE_CHANNELS] = {"channels", "a conv has at most 16384 input and 32000 output channels, a channel-axis "
                           "softmax at most 32000",
                           "the seed: a 32000-input-channel conv was rejected, 32000 outputs compiled",
                           "vocabularies are split into chunks (mil_vocab_chunks)", 2},
    [MIL_RULE_ONE_IO] = {"one-io", "one input and one output surface per program",
                         "maderix: multi-input requests fail with 0x1d; Orion #2, #3, #12, #13: multi-I/O needs equal "
                         "allocation sizes and alphabetical order",
                         "inputs are packed along W or C and sliced; outputs are concatenated on C (so the size and "
                         "order rules hold trivially)",
                         2},
    [MIL_RULE_SDPA_MASK] = {"sdpa-mask", "scaled_dot_product_attention ignores attn_mask",
                            "maderix test_ane_sdpa5.m; Orion #6",
                            "attention is decomposed (matmul, add mask, softmax); the interpreter ignores the mask "
                            "too",
                            2},
    [MIL_RULE_CONCAT] = {"concat", "concat along the channel axis",
                         "disagree: Orion #1 reports ANECCompile failures for concat(axis=1); maderix's dynamic "
                         "kernels return concat(axis=1) outputs on M1-M5",
                         "not enforced; the generators keep the original's concat forms", 0},
    [MIL_RULE_DIM_16K] = {"dim-16k", "fewer than 16384 elements per dimension",
                          "disagree: third-party NPU notes call 16384 a soft limit; the seed compiled a "
                          "32000-output-channel conv",
                          "not enforced beyond the channel limits", 0},
};

const MilRule *mil_rule(MilRuleId id) { return id >= 0 && id < MIL_RULE_COUNT ? &RULES[id] : NULL; }

static int violation(MilRuleId id, int line, int col, const char *what) {
    return err_set("mil:%d:%d: ANE rule %s: %s; %s (%s)", line, col, RULES[id].id, what, RULES[id].rule,
                   RULES[id].source);
}

static int check_io_surface(const MilProgram *p, int v, const char *which) {
    const MilType *t = &p->vals[v].type;
    const MilGraphValue *gv = &mil_graph_func(&p->graph, "main")->values[v];
    char what[160];
    const long long W = t->dims[t->rank - 1], bytes = (long long)p->vals[v].numel * 2;
    if (W * 2 % MIL_RULE_ROW_BYTES) {
        snprintf(what, sizeof what, "the %s '%s' has rows of %lld values (%lld bytes)", which, p->vals[v].name, W,
                 W * 2);
        return violation(MIL_RULE_IO_ROWS, gv->line, gv->col, what);
    }
    if (bytes < MIL_RULE_MIN_BYTES) {
        snprintf(what, sizeof what, "the %s '%s' holds %lld bytes", which, p->vals[v].name, bytes);
        return violation(MIL_RULE_MIN_SURFACE, gv->line, gv->col, what);
    }
    return 0;
}

static int check_step(const MilProgram *p, const MilStep *s) {
    char what[200];
    const MilType *ta = s->a >= 0 ? &p->vals[s->a].type : NULL;
    if (s->kind == MK_SLICE && s->a == p->input && s->begin[ta->rank - 1] % MIL_RULE_SLICE_ELEMS) {
        snprintf(what, sizeof what, "slice of the input starts at column %lld", (long long)s->begin[ta->rank - 1]);
        return violation(MIL_RULE_SLICE_START, s->line, s->col, what);
    }
    if (s->kind == MK_MATMUL) {
        const long long K = s->tx ? ta->dims[ta->rank - 2] : ta->dims[ta->rank - 1];
        if (K % MIL_RULE_INNER_MULT) {
            snprintf(what, sizeof what, "matmul with inner dimension %lld", K);
            return violation(MIL_RULE_MATMUL_INNER, s->line, s->col, what);
        }
    }
    if (s->kind == MK_CONV && (!p->vals[s->b].is_const || s->groups != 1)) {
        snprintf(what, sizeof what, "conv with %s weight '%s' and groups %d", p->vals[s->b].is_const ? "a constant"
                 : "a runtime", p->vals[s->b].name, s->groups);
        return violation(MIL_RULE_CONV_WEIGHT, s->line, s->col, what);
    }
    const MilType *to = &p->vals[s->out].type;
    if (to->rank > MIL_RULE_MAX_RANK) {
        snprintf(what, sizeof what, "'%s' has rank %d", p->vals[s->out].name, to->rank);
        return violation(MIL_RULE_RANK, s->line, s->col, what);
    }
    return 0;
}

int mil_rules_check(const MilProgram *p) {
    if (check_io_surface(p, p->input, "input") || check_io_surface(p, p->output, "output")) return -1;
    for (int i = 0; i < p->n_steps; i++)
        if (p->steps[i].kind != MK_DEAD && check_step(p, &p->steps[i])) return -1;
    return 0;
}

int mil_rules_check_text(const char *text, const MilWeightFile *weights, int n_weights) {
    MilProgram *p;
    const MilCompileOptions o = {.as_written = 1, .ane_rules = 1};
    if (mil_program_compile_opts(text, weights, n_weights, &o, &p) != 0) return -1;
    mil_program_free(p);
    return 0;
}
