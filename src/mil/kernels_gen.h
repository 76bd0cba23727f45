// kernels_gen: the generator state and the building blocks every MIL kernel
// generator shares (src/mil/kernels.c: the dynamic kernels; kernels_static.c:
// the baked-weight ones). Internal to src/mil.
#pragma once
#include "mil/emit.h"
#include "mil/kernels.h"
#include "model/config.h"

typedef struct {
    MilEmit e;
    MilKernel *k;
    const Config *cfg;
    int S;                   // positions the kernel computes: the window padded (S_real without padding)
    int S_real;              // the window
    int pad;                 // meet the ANE's rules (mil_rules.h); 0 only for tests that compare
    int gqa_perm;            // GQA by R whole copies of K/V, query heads permuted (MilKernel.gqa_r)
    int D, H, NH, NKV, HD, QD, KVD, R;
    int w_cursor, c_cursor;  // layout of input regions (spatial / channel stacking)
    int out_cursor;          // channels of output regions
    MilVal x;                // the function input
    const MilBaked *w;       // static kernels: the weights to bake (NULL in text-only builds)
} Gen;

// Input region at the spatial cursor, channels [0, nc). Activations (kind
// ACT, nw = g->S) hold the window and reserve the padded one; weights (W, WT)
// are read with their channels (a matmul's inner dimension) padded to 32; a
// vector gets a slot of 32 columns; every slot starts on a multiple of 32.
void kg_in_spatial(Gen *g, const char *name, MilRegionKind kind, int nc, int nw);
// The same with the width the kernel reads given (pw >= nw; the rest zero).
void kg_in_spatial_pw(Gen *g, const char *name, MilRegionKind kind, int nc, int nw, int pw);

// Input region stacked on the channel axis at the channel cursor, spatial [0, S).
void kg_in_channels(Gen *g, const char *name, int nc);

// Output region: the next nc channels of the output concat.
void kg_out_region(Gen *g, const char *name, int nc);

// The rows of the vocabulary chunk a kernel covers: g->w->rows, or when not
// given the first chunk's of mil_vocab_chunks (head: of mil_head_chunks).
int kg_chunk_rows(const Gen *g, int head);

// Declares the function input once the layout is complete.
void kg_declare_input(Gen *g);

// x [..., K] -> [..., to] with zeros after the K values (a matmul's inner
// dimension padded to the ANE's multiple: the products are unchanged).
MilVal kg_pad_last(Gen *g, MilVal x, int to, const char *p);
// n rounded up to the multiple of 32 a matmul's inner dimension needs (n itself without padding).
int kg_inner(const Gen *g, int n);

// slice_by_size of input region `name` -> [1, pc, 1, pw] (its padded extent)
MilVal kg_take(Gen *g, const char *name, const char *vname);

// Names of intermediate values: "<prefix>_<suffix>" (prefixes are short and unique per call site).
const char *kg_nm(char *buf, const char *prefix, const char *suffix);

// Activation [1, C, 1, S] -> [1, 1, S, C] (the left operand of a dynamic matmul).
MilVal kg_act_rows(Gen *g, MilVal a, const char *p);

// The dynamic matmul without the final layout change: at [1,1,S,IC] (act_rows),
// weight block b [1, IC, 1, OC] -> [1, 1, S, OC] = (Bᵀ·A)ᵀ.
MilVal kg_dyn_mm_rows(Gen *g, MilVal at, MilVal b, const char *p);

// [1, 1, S, OC] -> [1, 1, OC, S]
MilVal kg_rows_to_cols(Gen *g, MilVal m, const char *p);

// [..] -> flat [1, C, 1, S]
MilVal kg_flat(Gen *g, MilVal m, int C, const char *name);

// y = Bᵀ·A as [1, OC, 1, S]
MilVal kg_dyn_mm(Gen *g, MilVal at, MilVal b, const char *p, const char *name);

// Channels of heads: [1, nh*HD, 1, S] or [1, 1, nh*HD, S] -> [1, nh, S, HD]
MilVal kg_to_heads(Gen *g, MilVal a, int nh, const char *p);

// [1, nh, S, HD] -> [1, nh*HD, 1, S]
MilVal kg_from_heads(Gen *g, MilVal a, const char *p, const char *name);

// GQA: [1, NKV, S, HD] -> [1, NH, S, HD] with query head h reading kv head h/R
// (each kv head repeated R times in a row — NOT R copies of the whole tensor,
// which would give h mod NKV, the original's forward/backward mismatch).
MilVal kg_gqa_tile(Gen *g, MilVal kv, const char *p);

// Causal mask [1,1,S,S]: 0 where key s <= query t, -65504 (fp16 lowest) elsewhere.
MilVal kg_mask_const(Gen *g);

// scores -> probabilities: softmax(q·kᵀ/√HD + mask) over keys; q, k [1, NH, S, HD]
MilVal kg_attn_probs(Gen *g, MilVal q, MilVal k, MilVal mask, const char *p);

// Per-head RMSNorm over HD (last axis) of x [1, nh, S, HD] with weight w [1, HD, 1, 1].
// x is pre-scaled by 1/√HD before squaring so the fp16 sum of squares is the mean
// itself and cannot overflow unless the rms exceeds 256 (Σx² over 128 channels
// overflows fp16 already at rms 23).
MilVal kg_head_norm(Gen *g, MilVal x, MilVal w, const char *p);

// RoPE on x [1, nh, S, HD]: y = x·cos + swap(x)·sin_signed, where swap exchanges
// the two channels of each rotating pair and sin_signed carries the minus sign
// of the first channel of the pair (so no negation op is needed):
//   interleaved pairs (2i, 2i+1): reshape [1,nh,S·HD/2,2], slice even/odd, concat (odd, even)
//   rotate-half pairs (i, i+HD/2): slice the two halves, concat (second, first)
MilVal kg_rope(Gen *g, MilVal x, MilVal cos_t, MilVal sin_t, const char *p);

// RoPE tables [1,1,S,HD]: angle(t, i) = t·θ^(-2i/HD) for pair i (as cpu/ops.c);
// cos in both channels of a pair; sin with a minus sign on the pair's first channel.
void kg_rope_consts(Gen *g, MilVal *cos_t, MilVal *sin_t);

// The attention core shared by sdpaFwd and fwdAttn.
typedef struct {
    MilVal a;        // attention output [1, NH, S, HD]
    MilVal qr, kr;   // q and k after QK-norm and RoPE [1, NH, S, HD], [1, NKV, S, HD]
} KgAttn;

// Projected q, k, v ([1,1,C,S] or [1,C,1,S]) -> heads, QK-norm with qnw/knw
// (any shape of HD elements; MIL_NONE without QK-norm), RoPE, causal softmax, P·V.
KgAttn kg_attention(Gen *g, MilVal q_mt, MilVal k_mt, MilVal v_mt, MilVal qnw, MilVal knw);

// With gqa_perm: the last input region declared holds permuted heads (sdpaFwd's Wq^T).
void kg_mark_perm_input(Gen *g);
// The model's channel of kernel channel c of a permuted region.
int kg_model_row(const Gen *g, int c);
// kg_weight (not transposed) of m [rows, cols] with its rows and/or columns in
// the kernel's head order (fwdAttn's Wq rows, Wo columns).
MilVal kg_weight_perm(Gen *g, const char *name, const float *m, int rows, int cols, int perm_rows, int perm_cols);

// The attention kernels' (sdpaFwd, fwdAttn) shared output regions, after any
// of their own: attn, q_rope, k_rope, v, xn, and with QK-norm q_pre, k_pre ...
void kg_attention_out_regions(Gen *g);
// ... and their values appended to outs[n..] in that order (q_rope, k_rope
// made from at here); returns the new count. q_pre, k_pre only with QK-norm.
int kg_attention_outs(Gen *g, const KgAttn *at, MilVal attn, MilVal v, MilVal xn, MilVal q_pre, MilVal k_pre,
                      MilVal *outs, int n);

// sdpaBwd1's output regions (dv, probs, dp), declared before the input.
void kg_sdpa_bwd1_outputs(Gen *g);
// sdpaBwd1's body from da [1, QD, 1, S] and the input regions q, k, v (k, v tiled to NH heads).
MilVal kg_sdpa_bwd1(Gen *g, MilVal da_flat);

// (mean over channels of x² + eps)^-1/2 of x [1, C, 1, S] -> [1, 1, 1, S]
MilVal kg_rms_inv(Gen *g, MilVal x, const char *p);
// RMSNorm over the channels of x [1, C, 1, S] with weight w [1, C, 1, 1].
MilVal kg_rmsnorm(Gen *g, MilVal x, MilVal w, const char *p, const char *name);

// A weight M [rows, cols] baked as a 1x1 conv weight: [rows, cols, 1, 1], or its
// transpose [cols, rows, 1, 1] with transpose = 1 (conv(x, Mᵀ) = Mᵀ·x).
MilVal kg_weight(Gen *g, const char *name, const float *m, int rows, int cols, int transpose);
// A vector v[n] baked as [1, n, 1, 1] (broadcasts over the channels of [1, n, 1, S]).
MilVal kg_vector(Gen *g, const char *name, const float *v, int n);

// The body of static kernel `kind` (kernels_static.c).
MilVal mil_kernel_gen_static(Gen *g, MilKernelKind kind);
