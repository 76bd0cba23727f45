// checkpoint: the anetrain checkpoint file, and the original trainer's.
//
// Layout, version 1. Every field is little-endian and fixed-width at the
// offset given here (never a struct dump); unused bytes are written as zero.
//
//   header, 4096 bytes:
//     0    char[8]  magic "ANETCKPT"  (as a LE u32 "ANET" = 0x54454e41: not a plausible llama2.c v0 dim)
//     8    u32      version (1)
//     12   u32      header bytes (4096)
//     16   u32      flags: bit 0 = optimizer moments present (other bits must be 0)
//     20   u32      reserved (0)
//     24   u64      n_params: floats in one block (must equal the Config's layout)
//   Config (src/model/config.h), 32..127:
//     32   char[32] name (NUL-padded)
//     64   i32 dim        68  i32 hidden     72  i32 n_layers   76  i32 n_heads
//     80   i32 n_kv_heads 84  i32 head_dim   88  i32 vocab      92  i32 seq_len
//     96   f32 norm_eps   100 f32 rope_theta 104 u32 rope_layout (0 interleaved, 1 rotate-half)
//     108  u32 qk_norm    112 u32 tied       116 f32 res_scale  120..127 reserved
//   TrainState (src/train/state.h), 128..263:
//     128  f32 lr          132 f32 min_lr_frac  136 f32 beta1   140 f32 beta2
//     144  f32 eps         148 f32 weight_decay 152 f32 clip    156 i32 warmup
//     160  i32 accum       164 reserved         168 i64 total_steps
//     176  i64 step        184 i64 adam_t       192 i64 tokens_seen
//     200  f32 loss_scale  204 i32 loss_scale_dynamic           208 i64 good_steps
//     216  i64 skipped     224 u64 seed         232 u64 data_rng 240 u64 data_cursor
//     248  f32 best_val_loss 252 f32 last_loss 256 f64 train_ms
//     264  f64 compile_ms      272 i64 compiles        280 i64 restarts
//     288  f64 wall_ms         296 i32 tail_pending
//     304  i32 lora rank (0: the body is the whole model)  308 f32 lora alpha
//     312  u32 lora targets (bit t: model/lora.h)  316 f32 lora dropout  320 i32 lora train_norms
//     328  u64 the LoRA base's size  336 u64 its fingerprint; its path at 3072..4087
//     344..511 reserved (0; files written before these fields have zeros there)
//   RunIdentity (src/train/state.h), 512..3071; all zero in files written
//   before it was recorded (then a resume says so and uses the flags given):
//     512  u32 present (1)   516 i32 seq   520 u32 compact_vocab  524 u32 sequential
//     528  f32 val_frac      532 reserved
//     536  u64 data_bytes    544 u64 data_fp   552 u64 val_bytes   560 u64 val_fp
//     568  char[16] pipeline 584 char[16] device  600 char[16] precision  616..1023 reserved
//     1024 char[1024] data path (absolute; "" = built-in corpus)
//     2048 char[1024] validation data path (absolute; "" = held-out tail)
//     3072..4087 the LoRA base path (NUL-padded; empty unless lora rank > 0), 4088..4091 reserved (0)
//     4092 u32      CRC-32 (IEEE) of header bytes [0, 4092)
//   body: params, then (if flag 0) Adam m, then Adam v; each n_params fp32, in
//         the Params block layout (src/model/params.h)
//   trailer, 8 bytes: u32 CRC-32 of the body, then the 4 bytes "DONE"
//   file size = 4096 + 4 * n_params * (moments ? 3 : 1) + 8, exactly.
//
// Written atomically (tmp + fsync + rename), streaming the body in chunks (no
// second copy of a 1.3 GB model + moments in memory). On load every field is
// checked in this order, and the first failure is one line naming the file:
// magic, version, header CRC, header size and flags, config_validate, n_params,
// exact file size, body CRC, trailer.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "model/params.h"
#include "train/state.h"

enum { CKPT_VERSION = 1, CKPT_HEADER_BYTES = 4096 };
#define CKPT_MAGIC "ANETCKPT"
#define CKPT_ORIGINAL_MAGIC 0x424C5A54u  // the original's CkptHdr.magic, int at offset 0

// Writes params (+ moments m, v when both non-NULL; each p->n floats, in the
// Params layout) and st atomically. st may be NULL (recipe defaults, step 0).
// On failure the previous file at path is untouched.
int ckpt_save(const char *path, const Params *p, const float *m, const float *v, const TrainState *st);
// The same, calling fn(ctx, fraction written) after every 4 MiB chunk.
typedef void (*CkptProgress)(void *ctx, double fraction);
int ckpt_save_progress(const char *path, const Params *p, const float *m, const float *v, const TrainState *st,
                       CkptProgress fn, void *ctx);
// Makes path a second name of the file `existing` (a hard link, placed
// atomically: link to path.tmp, then rename). -1 where the file system has no
// hard links; the caller then writes a copy.
int ckpt_link(const char *existing, const char *path);
// Reads only the Config and state (for `info` and config checks). Validates the
// header fully, including that the file size matches it; the body is not read.
// st and has_moments may be NULL.
int ckpt_read_header(const char *path, Config *cfg, TrainState *st, int *has_moments);
// Loads a checkpoint: allocates p, and m/v (malloc'd, p->n floats each) when the
// file has moments and m/v are non-NULL (else *m = *v = NULL). m, v and st may
// be NULL (weights only; the moments are still read to check the body CRC).
// On failure nothing stays allocated and p is zeroed.
int ckpt_load(const char *path, Params *p, float **m, float **v, TrainState *st);
// LoRA checkpoints (st->lora.rank > 0): ckpt_load gives their adapters (a
// Params laid out by model/lora.h); these give the rest (ckpt_lora.c).
// Size and fingerprint of a base model: a file's, or a Hugging Face directory's
// weights (model.safetensors, or its shard index and every shard it names).
int ckpt_lora_fingerprint(const char *model, uint64_t *bytes, uint64_t *fp);
// The frozen base the checkpoint names, refused if its size or fingerprint changed.
int ckpt_lora_base(Params *base, const TrainState *st, const char *ckpt);
// out = base with the adapters of lora_ckpt merged in (any base of the same architecture).
int ckpt_lora_apply(Params *out, const Params *base, const char *lora_ckpt);
// Any checkpoint as a plain model: its weights, or its base with its adapters merged in.
int ckpt_load_model(const char *path, Params *p);
// model_load(model), then (lora_ckpt not NULL) that LoRA checkpoint's adapters merged in.
int ckpt_load_with_lora(Params *p, const char *model, const char *lora_ckpt);
// 1 if the file starts with the anetrain checkpoint magic.
int ckpt_is_checkpoint(const char *path);
// 0 if the checkpoint at path holds a model of architecture `want` (names
// ignored); else -1 with "PATH: checkpoint holds a different model than
// expected: dim 64 vs 288 (file vs expected)".
int ckpt_check_config(const char *path, const Config *want);

// --- the original system's checkpoints (ane-spec 5.2, reference B.5) ---------
//
// 96-byte header: int magic 0x424C5A54, version, step, total_steps, n_layers,
// vocab_size, dim, hidden_dim, n_heads, seq_len; float lr, loss; double
// cum_compile, cum_train, cum_wall; int cum_steps, cum_batches, adam_t;
// v4: int kv_heads, head_dim, q_dim (v2: zero padding). Body, fp32: for each
// layer Wq Wk Wv Wo W1 W2 W3 rms_att rms_ffn, then (still in that layer) m and
// v of each of those nine in the same order (Wq.m Wq.v Wk.m Wk.v ...); after
// the layers rms_final, its m, v; then embed [V,D], its m, v. The file size must
// be exactly 96 + 12 * params. Versions read: 2 (static Stories110M pipeline)
// and 4 (dynamic pipeline with GQA fields); 3 (early dynamic) is rejected.
//
// The import maps it to a llama2.c-style Config: tied classifier, interleaved
// RoPE theta 1e4, eps 1e-5, no QK-norm; v2: n_kv_heads = n_heads, head_dim =
// dim / n_heads, res_scale 1; v4: kv_heads and head_dim from the header,
// res_scale = 1/sqrt(2L) (the dynamic pipeline's alpha on both branches).
//
// Function caveats (the weights are imported bit-exactly; these are about what
// they compute):
// - v2 (static pipeline) models were trained WITHOUT RoPE (ane-spec 1.9): our
//   model always applies RoPE, so continuing or sampling them here changes the
//   function. Treat the weights as a starting point, not as the same model.
// - v4 with GQA (n_heads > kv_heads): the original's forward pass paired query
//   head h with KV head h mod NKV (ane-spec 7.2), ours with h / (NH/NKV). The
//   import permutes query heads (rows of Wq, columns of Wo, and their moments)
//   so that our convention computes exactly the original's forward function.
//
// State mapping: the original counts micro-steps (step = next micro-step to
// run); we count optimizer updates. accum = step / adam_t when that divides
// evenly (else 10, the original's default); our step = step / accum, adam_t as
// stored, tokens_seen = step * seq_len (one sequence per micro-step),
// total_steps = ceil(total_steps / accum), train_ms = cum_train, last_loss =
// loss, data_rng seeded from 42 + micro-step as the original reseeds. Recipe:
// v4 = the dynamic defaults (AdamW 0.9/0.95, wd 0.1, clip 1, warmup 100
// micro-steps, cosine to 0.1 lr), with the peak lr recovered from the stored
// last scheduled lr by inverting that schedule; v2 = the static pipeline's
// plain Adam (beta2 0.999, no weight decay, no clipping, constant lr).
int ckpt_import_original(const char *path, Params *p, float **m, float **v, TrainState *st);
// 1 if the file starts with the original's magic 0x424C5A54.
int ckpt_is_original(const char *path);
// Reads and validates only the original's header (and the file size): fills
// cfg, st (may be NULL) and *version (may be NULL). For `info`.
int ckpt_read_original_header(const char *path, Config *cfg, TrainState *st, int *version);

// CRC-32, IEEE polynomial 0xEDB88320 (zlib's crc32): start with crc = 0 and
// chain calls, crc32_update(crc32_update(0, a, n), b, m) = CRC of a||b.
// crc32_update(0, "123456789", 9) == 0xCBF43926.
uint32_t crc32_update(uint32_t crc, const void *data, size_t n);

// Verifies a checkpoint without loading it: the header as ckpt_read_header
// does (magic, version, header CRC, exact size), then the body CRC-32 and the
// trailer, streaming the body in 4 MiB chunks (memory stays flat for a 9.5 GB
// file). 0, or -1 with the same one-line messages as ckpt_load. For `info`.
int ckpt_verify(const char *path);
