// kernels: the MIL kernels of the device pipelines, generated from the runtime
// Config for a window of S positions: the dynamic pipeline's 10 (ane-spec §2.3)
// and the static pipelines' baked-weight ones (§2.1-2.2, listed at the end).
//
// Every kernel has ONE input [1, in_c, 1, in_w] and ONE output [1, out_c, 1, S_pad]
// (the window S computed at a multiple of 64 positions, with the other padding
// the ANE's rules need: MilRegion, mil_rules.h),
// fp16, channel-first (element (c, w) at c*W + w). Weights are inputs, staged
// next to the activations along the spatial axis, so the kernels are compiled
// once and never recompiled after an update. Inside the kernel a weight block
// B[IC, OC] (channel i holds row i of B) and an activation A[IC, S] give
// y = Bᵀ·A [OC, S] (slice + reshape + transpose + matmul): to compute y = M·x a
// kernel stages B = Mᵀ (region kind MIL_REG_WT), to compute Mᵀ·x it stages M
// as it is (MIL_REG_W). Each kernel carries a table of named regions, so
// callers stage and read by name, never by hand-computed offsets.
//
// Notation: D dim, H hidden, NH/NKV query/kv heads, HD head_dim, QD = NH·HD,
// KVD = NKV·HD, R = NH/NKV, SC = NH·S, α = cfg->res_scale. GQA: query head h
// uses kv head h/R everywhere (kv head g is repeated for heads gR .. gR+R-1).
//
// Input regions (in spatial order; channels [0, in_c) unless noted):
//
//  kernel      in_c    region  kind  width  what
//  sdpaFwd     D       xn      ACT   S      RMSNorm(x; rms_att)
//                      Wq^T    WT    QD     Wq [QD,D] staged transposed
//                      Wk^T    WT    KVD    Wk [KVD,D]
//                      Wv^T    WT    KVD    Wv [KVD,D]
//                      q_norm  VEC   1      (qk_norm only) q_norm[HD] in channels [0,HD)
//                      k_norm  VEC   1      (qk_norm only) k_norm[HD] in channels [0,HD)
//  woFwd       QD      attn    ACT   S      attention output
//                      Wo^T    WT    D      Wo [D,QD]
//  ffnFused    max(D,H) x2n    ACT   S      RMSNorm(x2; rms_ffn)
//                      x2      ACT   S      residual after attention
//                      W1^T    WT    H      W1 [H,D]
//                      W3^T    WT    H      W3 [H,D]
//                      W2^T    WT    D      W2 [D,H] staged transposed (channels [0,H))
//  ffnBwdW2t   D       dffn    ACT   S      gradient at the FFN output (α·dy)
//                      W2      W     H
//  ffnBwdW13t  H       dh1     ACT   S
//                      dh3     ACT   S
//                      W1      W     D      W1 [H,D] as is
//                      W3      W     D
//  wotBwd      D       dy      ACT   S      gradient at the Wo output (the caller applies α)
//                      Wo      W     QD     Wo [D,QD] as is
//  sdpaBwd1    4·QD    (stacked on channels, width S)  q [0,QD), k [QD,2QD), v [2QD,3QD),
//                      da [3QD,4QD): q = q_rope, k/v = k_rope/v tiled to NH heads (h/R), da = dL/d attn
//  sdpaBwd2    2SC+2QD (stacked on channels, width S)  probs [0,SC), dp [SC,2SC), q [2SC,2SC+QD),
//                      k [2SC+QD, 2SC+2QD) (q_rope and tiled k_rope as in sdpaBwd1)
//  qBwd        QD      dq      ACT   S      gradient at Wq's output (after RoPE/QK-norm backward)
//                      Wq      W     D      Wq [QD,D] as is
//  kvBwd       KVD     dk      ACT   S
//                      dv      ACT   S
//                      Wk      W     D
//                      Wv      W     D
//
// Output regions (channel order; all width S):
//  sdpaFwd     attn [QD] = causal attention output, q_rope [QD], k_rope [KVD]
//              (after QK-norm and RoPE), v [KVD], xn [D] (pass-through), and with
//              qk_norm: q_pre [QD] = Wq·xn, k_pre [KVD] = Wk·xn (inputs of the QK-norm
//              backward; its rstd is recomputed from them on the CPU)
//  woFwd       o [D] = Wo·attn
//  ffnFused    x_next [D] = x2 + α·W2·g, h1 [H] = W1·x2n, h3 [H] = W3·x2n, g [H] = silu(h1)·h3
//  ffnBwdW2t   dg [H] = W2ᵀ·dffn
//  ffnBwdW13t  dx [D] = W1ᵀ·dh1 + W3ᵀ·dh3
//  wotBwd      da [QD] = Woᵀ·dy
//  sdpaBwd1    dv [QD] = Pᵀ·da per query head (the CPU sums each kv group),
//              probs [SC], dp [SC] = da·vᵀ; row h·S+t, column s = (head h, query t, key s)
//  sdpaBwd2    dq [QD] = dS·k, dk [QD] = dSᵀ·q per query head (CPU sums each kv group),
//              dS = P∘(dP − rowsum(P∘dP))/√HD
//  qBwd        dx [D] = Wqᵀ·dq
//  kvBwd       dx [D] = Wkᵀ·dk + Wvᵀ·dv
//
// Constants baked as BLOBFILE fp16 weights (they never change with training):
// "mask" [1,1,S,S] (0 where key <= query, -65504 elsewhere) in sdpaFwd and sdpaBwd1;
// "rope_cos", "rope_sin" [1,1,S,HD] in sdpaFwd. QK-norm weights are trained, so
// they are staged inputs, not constants.
//
// The static pipelines' kernels (kernels_static.c) bake their weights as
// BLOBFILE constants and 1x1 convs; every region is an activation stacked on
// the channel axis, width S (mil_kernel_build_baked):
//
//  kernel        inputs                         outputs (channel order)
//  fwdAttn       x [D]                          o [D] = Wo·attn, attn [QD], q_rope [QD], k_rope [KVD],
//                                               v [KVD], xn [D] = RMSNorm(x), (qk_norm) q_pre, k_pre
//  fwdFFN        x2 [D]                         f [D] = W2·g, h1, h3, g [H], x2n [D]
//  ffnBwd        dffn [D], h1 [H], h3 [H]       dx [D] = W1ᵀ·dh1 + W3ᵀ·dh3, dh1 [H], dh3 [H]
//  woSdpaBwd1    q, k, v [QD] (tiled), dy [D]   sdpaBwd1's outputs with da = Woᵀ·dy
//  qkvBwd        dq [QD], dk [KVD], dv [KVD]    dx [D] = Wqᵀ·dq + Wkᵀ·dk + Wvᵀ·dv
//  rmsnormBwd    dy [D], x [D]                  dx [D] of RMSNorm(x; w)        (static-ane)
//  finalNorm     x [D]                          xf [D] = RMSNorm(x; rms_final) (static-ane)
//  classifier    xf [D]                         logits [rows] of a vocabulary chunk (static-ane)
//  vocabSoftmax  logits [rows]                  probs [rows], max [1], sum [1] = Σ exp(l − max)
//                                               (weight-free, per chunk size)  (static-ane)
//  decQKV        x [D]                          q [QD], k [KVD], v [KVD] of RMSNorm(x; rms_att) (generation)
//  decWo         attn [QD]                      o [D] = Wo·attn                                 (generation)
//
// The dynamic pipeline's device head (--device-head): weights staged, one
// binding per chunk of rows of the (compacted) classifier table E
// (mil_head_chunks; vocabSoftmax, built for the same rows, follows clsFwd):
//  clsFwd      D       xf      ACT   S      RMSNorm(x; rms_final)
//                      E^T     WT    rows   the chunk's rows of E [rows,D] staged transposed
//              out: logits [rows] = E_chunk·xf
//  clsBwd      rows    dl      ACT   S      the chunk's rows of dL/d logits
//                      E       W     D      the chunk's rows of E as they are
//              out: dx [D] = E_chunkᵀ·dl (the CPU sums the chunks)
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "core/fp16.h"
#include "mil/emit.h"
#include "mil/mil_interp.h"
#include "model/config.h"

typedef enum {
    MIL_K_SDPA_FWD = 0,
    MIL_K_WO_FWD,
    MIL_K_FFN_FUSED,
    MIL_K_FFN_BWD_W2T,
    MIL_K_FFN_BWD_W13T,
    MIL_K_WOT_BWD,
    MIL_K_SDPA_BWD1,
    MIL_K_SDPA_BWD2,
    MIL_K_Q_BWD,
    MIL_K_KV_BWD,
    MIL_K_DYN_COUNT,  // the dynamic pipeline's kernels are the ones above
    // static pipelines (kernels_static.c): weights baked as BLOBFILE constants
    MIL_K_ATTN_FWD = MIL_K_DYN_COUNT,
    MIL_K_FFN_FWD,
    MIL_K_FFN_BWD,
    MIL_K_WO_SDPA_BWD1,
    MIL_K_QKV_BWD,
    // static-ane's extras
    MIL_K_RMSNORM_BWD,
    MIL_K_FINAL_NORM,
    MIL_K_CLASSIFIER,
    MIL_K_VOCAB_SOFTMAX,
    // generation (src/infer/generate_device.c): the projections around the CPU's attention
    MIL_K_DEC_QKV,
    MIL_K_DEC_WO,
    // the dynamic pipeline's device head: weights staged, like the first ten
    MIL_K_CLS_FWD,
    MIL_K_CLS_BWD,
    MIL_K_COUNT
} MilKernelKind;

typedef enum {
    MIL_REG_ACT = 0,  // activation [nc][nw] (channel-first), copied as is
    MIL_REG_W,        // weight M [nc][nw] row-major, staged as is: row i of M in channel c0+i
    MIL_REG_WT,       // weight M [nw][nc] ([out][in]) staged transposed: block (i, j) = M[j][i]
    MIL_REG_VEC,      // vector v[nc] in one column (nw = 1): block (i, 0) = v[i]
} MilRegionKind;

// A rectangle of a kernel's input or output surface: channels [c0, c0+nc), spatial [w0, w0+nw).
// The kernel itself reads the larger rectangle [c0, c0+pc) x [w0, w0+pw): the
// padding that the ANE's rules need (mil_rules.h) — zero channels that make a
// matmul's inner dimension a multiple of 32, the window's padded positions.
// Callers stage and fetch only [nc, nw] and leave the padding zero.
typedef struct {
    const char *name;  // "xn", "Wq^T", "q_rope", ... (static strings)
    MilRegionKind kind;
    int c0, nc;
    int w0, nw;
    int pc, pw;        // the kernel's extent (>= nc, nw)
    int perm;          // heads in the kernel's GQA order (MilKernel.gqa_r): rows of an output,
                       // columns of a WT block; staging and fetching map them to the model's
} MilRegion;

// A weight file the program references as @model_path/weights/<name>.bin.
typedef struct {
    char path[96];   // "@model_path/weights/mask.bin" (the key the ANE compiler expects)
    uint8_t *data;   // the whole file: 64-byte header, 64-byte chunk header, fp16 payload
                     // (NULL from mil_kernel_build_text; size is still the file's)
    size_t size;
} MilBlob;

enum { MIL_KERNEL_MAX_REGIONS = 12 };

typedef struct {
    MilKernelKind kind;
    const char *name;        // "sdpaFwd", ...
    char *mil;               // program text (NUL-terminated)
    size_t mil_len;
    MilDialect dialect;      // of mil
    char *mil_alt;           // the same program in the other dialect (NULL in text-only builds):
                             // what a device that rejects one dialect is given next
    MilBlob *blobs;          // baked constants (mask, RoPE tables); may be empty
    int n_blobs;
    int in_c, in_w;          // input  [1, in_c, 1, in_w]
    int out_c, out_w;        // output [1, out_c, 1, out_w], out_w = S_pad
    // GQA as the original's concat of R whole copies of K and V (2 inputs
    // for Qwen3), which gives query position p kv head p mod NKV; the query
    // heads are therefore held in the order p = r·NKV + g for model head
    // h = g·R + r (kv head h/R = g), in the regions marked perm: Wq's staged
    // columns (baked rows, and Wo's baked columns, in fwdAttn) and the
    // attn, q_rope, q_pre outputs. 0: no permutation (R = 1, or the form of
    // mil_kernel_build_gqa_concat).
    int gqa_r, gqa_nkv, gqa_hd;
    int S, S_pad;            // the window, and the positions the kernel computes (a multiple of
                             // 64, so every row is a multiple of 128 bytes; the rest are masked
                             // out by causality and never read back)
    MilRegion in[MIL_KERNEL_MAX_REGIONS];
    int n_in;
    MilRegion out[MIL_KERNEL_MAX_REGIONS];
    int n_out;
} MilKernel;

const char *mil_kernel_name(MilKernelKind kind);
// 1 for the kinds whose weights are baked (mil_kernel_build_baked).
int mil_kernel_is_baked(MilKernelKind kind);

// The weights a static kernel bakes (fp32, laid out as in Params): one layer's
// for the layer kernels, the norm's for rmsnormBwd / finalNorm, a chunk of the
// classifier rows for classifier / vocabSoftmax.
typedef struct {
    const float *wq, *wk, *wv, *wo;    // [QD,D] [KVD,D] [KVD,D] [D,QD]
    const float *w1, *w2, *w3;         // [H,D] [D,H] [H,D]
    const float *rms_att, *rms_ffn;    // [D]
    const float *q_norm, *k_norm;      // [HD] (qk_norm only)
    const float *rms;                  // rmsnormBwd, finalNorm: the norm's weight [D]
    const float *cls;                  // classifier: rows [row0, row0 + rows) of the [V, D] table
    int row0, rows;                    // classifier, vocabSoftmax, clsFwd, clsBwd: the chunk of the vocabulary
    // LoRA: the base stays baked and the adapters are inputs, so training them
    // never recompiles. Every adapted target (bit t of lora_targets, t a
    // model/lora.h LoraTarget) among a kernel's matrices gets two input regions
    // after the activations, "A.<t>" = Aᵀ [in, r] (kind WT: staged from A [r, in])
    // and "B.<t>" = B [out, r] (kind W), and the kernel computes
    // W·x + s·B·(A·x) forward, Wᵀ·dy + s·Aᵀ·(Bᵀ·dy) backward, s = lora_scale.
    int lora_rank;                     // r; 0: no adapters
    unsigned lora_targets;
    float lora_scale;
    // The RMSNorm weights (rms_att, rms_ffn, rms) are VEC input regions of those
    // names instead of constants (trained under LoRA's train_norms).
    int norms_in;
} MilBaked;

// The name of target t's adapter input region: "A.<t>" (b = 0) or "B.<t>" (b = 1).
const char *mil_lora_region(int t, int b);

// Chunks of the vocabulary for the classifier and vocabSoftmax kernels, each
// within the channel limit (MIL_MAX_OUT_CHANNELS, mil_interp.h): *n chunks of
// *rows rows (the last may be shorter).
void mil_vocab_chunks(int vocab, int *n, int *rows);
// The dynamic head's chunks (clsFwd, clsBwd) for a window of S: clsBwd reads
// a chunk's rows as its input channels (at most MIL_MAX_IN_CHANNELS), and
// clsFwd's input is S + rows wide, kept under the disputed 16,384-per-dimension
// limit (mil_rules.h) when the window leaves room for it.
void mil_head_chunks(int vocab, int S, int *n, int *rows);
// Generates kernel `kind` for cfg and window S in the ios18 dialect. Returns 0,
// or -1 with err_msg() (invalid config, or a shape error in the generator).
int mil_kernel_build(MilKernelKind kind, const Config *cfg, int S, MilKernel *out);
int mil_kernel_build_dialect(MilKernelKind kind, const Config *cfg, int S, MilDialect dialect, MilKernel *out);
// The same program text and layout, without the weight files' bytes: every
// blob has its path and size but data NULL, and no memory for the constants
// is allocated (sdpaFwd's mask alone is 2·S² bytes: 3.4 GB at S = 40960).
// For printing a program (anetrain mil without --blobs).
int mil_kernel_build_text(MilKernelKind kind, const Config *cfg, int S, MilDialect dialect, MilKernel *out);
// A static kernel with the weights in w baked in as BLOBFILE constants
// (kinds >= MIL_K_DYN_COUNT; their input and output regions are all
// activations stacked on the channel axis, width S).
int mil_kernel_build_baked(MilKernelKind kind, const Config *cfg, int S, const MilBaked *w, MilKernel *out);
int mil_kernel_build_baked_dialect(MilKernelKind kind, const Config *cfg, int S, MilDialect dialect,
                                   const MilBaked *w, MilKernel *out);
// A kernel over a chunk of `rows` classifier rows whose weights are staged
// (clsFwd, clsBwd) or which has none (vocabSoftmax).
int mil_kernel_build_chunk(MilKernelKind kind, const Config *cfg, int S, MilDialect dialect, int rows,
                           MilKernel *out);
// Text only (no weight bytes; w may be NULL, and w->rows 0 takes the first vocabulary chunk).
int mil_kernel_build_baked_text(MilKernelKind kind, const Config *cfg, int S, MilDialect dialect, const MilBaked *w,
                                MilKernel *out);
// Without the padding the ANE's rules need (mil_rules.h) and with GQA as the
// NH-input concat (no permuted heads): the same computation on the bare
// shapes the layout table describes (w NULL for the dynamic kinds). For tests
// that compare; the devices refuse such a program.
int mil_kernel_build_unpadded(MilKernelKind kind, const Config *cfg, int S, const MilBaked *w, MilKernel *out);
// The NH-input concat of single kv heads (h/R) and no permutation: the form
// the permuted one is tested against.
int mil_kernel_build_gqa_concat(MilKernelKind kind, const Config *cfg, int S, const MilBaked *w, MilKernel *out);
// The model's channel of kernel channel c of a perm region (c itself without the permutation).
int mil_kernel_model_row(const MilKernel *k, int c);
void mil_kernel_free(MilKernel *k);

// Region by name (NULL if the kernel has no such region).
const MilRegion *mil_kernel_input(const MilKernel *k, const char *name);
const MilRegion *mil_kernel_output(const MilKernel *k, const char *name);

// Writes src (fp32, laid out as described by the region kind) into the fp16
// input surface in[in_c * in_w] of kernel k. -1 (err_msg) if there is no such input region.
int mil_kernel_stage(const MilKernel *k, uint16_t *in, const char *name, const float *src);
// Reads output region `name` ([nc][S] fp32) from the fp16 output surface out[out_c * S].
int mil_kernel_fetch(const MilKernel *k, const uint16_t *out, const char *name, float *dst);
// The fp16 rows of activation region `name` (output = 1: of the output
// surface, else of the input surface) in surface s, for an op that reads or
// writes them in place of mil_kernel_fetch or mil_kernel_stage. -1 (err_msg)
// if there is no such region, it is not [nc][nw], or its rows are in permuted head order.
int mil_kernel_rows(const MilKernel *k, uint16_t *s, const char *name, int output, int nc, int nw, F16Rows *rows);
// Copies output region src_name of src_k (surface src) into input region
// dst_name of dst_k (surface dst) as fp16, without conversion — e.g. probs and dp
// from sdpaBwd1's output into sdpaBwd2's input. Both regions must have the same size.
int mil_kernel_copy(const MilKernel *dst_k, uint16_t *dst, const char *dst_name, const MilKernel *src_k,
                    const uint16_t *src, const char *src_name);
// The same for heads: the source region holds heads of head_rows channels and
// destination head h receives source head h / repeat (GQA: kv heads tiled to
// the query heads). The destination region is repeat times the source's.
int mil_kernel_copy_heads(const MilKernel *dst_k, uint16_t *dst, const char *dst_name, const MilKernel *src_k,
                          const uint16_t *src, const char *src_name, int head_rows, int repeat);
