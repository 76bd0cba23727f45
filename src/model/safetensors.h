// safetensors: Hugging Face weights (reference.md B.6, B.7), read and written.
//
// File layout: u64 LE header length N; N bytes of JSON
//   {"NAME": {"dtype": "BF16", "shape": [r, c], "data_offsets": [BEGIN, END]}, ...,
//    "__metadata__": {"k": "v"}}
// then the data buffer: tensor bytes at file offset 8 + N + BEGIN, END one past,
// little-endian, C order. Every field is checked on open, the first failure is
// one line naming the file (and the tensor): N against the file size and the
// 100 MB cap of the reference parser, the JSON, each dtype (F32, F16, BF16; any
// other, e.g. F64 or I8, is refused), each shape, END - BEGIN == numel *
// itemsize, offsets inside the buffer, and, as the reference parser demands,
// tensors that tile the buffer exactly: no overlap, no gap, no trailing bytes.
// Duplicate names are refused. The file is mmapped; reads convert to fp32
// (bf16 and f16 exactly, f16 subnormals included).
//
// A model (safetensors_load) is one of:
//   DIR                            config.json + model.safetensors, or (if no
//                                  model.safetensors) model.safetensors.index.json
//                                  + the shards its weight_map names
//   DIR/X.safetensors              with DIR/config.json
//   DIR/X.safetensors.index.json   with DIR/config.json and the shards
// The config is config_from_hf_json (model_type llama or qwen3). Sharded: each
// shard is opened once; every weight_map entry must be in the shard it names
// and every tensor of a shard must be mapped to that shard.
//
// Tensor names (model.layers.i. prefix on the per-layer ones) -> Params:
//   model.embed_tokens.weight (V,D) -> embed     model.norm.weight (D) -> rms_final
//   input_layernorm (D) -> rms_att               post_attention_layernorm (D) -> rms_ffn
//   self_attn.q_proj (NH*HD,D) -> wq             self_attn.k_proj (NKV*HD,D) -> wk
//   self_attn.v_proj (NKV*HD,D) -> wv            self_attn.o_proj (D,NH*HD) -> wo
//   self_attn.q_norm (HD) -> q_norm              self_attn.k_norm (HD) -> k_norm   (qwen3)
//   mlp.gate_proj (H,D) -> w1   mlp.down_proj (D,H) -> w2   mlp.up_proj (H,D) -> w3
//   lm_head.weight (V,D) -> wcls (only when tie_word_embeddings is false)
// (all ".weight"). Every one must be present with exactly that shape.
//
// RoPE: config_from_hf_json gives ROPE_HALF, and our RoPE implements HF's
// rotate_half natively, so q_proj/k_proj (and q_norm/k_norm) are loaded as
// they are: NO permutation on import.
//
// Tensors that are ignored: rotary "inv_freq" buffers (any name ending in
// "rotary_emb.inv_freq", which older transformers saved; we recompute them
// from rope_theta). A tied model may carry lm_head.weight only if it equals
// the embedding (then both readings of the file agree); a different one is an
// error, since which of the two the author meant is unknowable. Any other
// tensor is an error (a model we would silently compute differently).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "core/io.h"
#include "model/params.h"

typedef enum { SAFETENSORS_F32 = 0, SAFETENSORS_F16 = 1, SAFETENSORS_BF16 = 2 } SafeTensorsDtype;
enum { SAFETENSORS_MAX_DIMS = 8 };

typedef struct {
    char *name;                            // malloc'd
    SafeTensorsDtype dtype;
    int ndim;
    int64_t shape[SAFETENSORS_MAX_DIMS];   // (ndim)
    size_t numel;
    size_t begin, end;                     // bytes, relative to the data buffer
} SafeTensor;

typedef struct {
    char path[4096];
    MappedFile m;
    size_t data_at;      // file offset of the data buffer (8 + N)
    SafeTensor *t;       // (n) sorted by name
    int n;
} SafeTensorsFile;

// Maps and validates path (everything listed above). -1 + err_msg naming the file.
int safetensors_open(SafeTensorsFile *f, const char *path);
void safetensors_close(SafeTensorsFile *f);
// The tensor called name, or NULL.
const SafeTensor *safetensors_find(const SafeTensorsFile *f, const char *name);
// Converts t (of f) to fp32: dst holds t->numel floats.
void safetensors_read_f32(const SafeTensorsFile *f, const SafeTensor *t, float *dst);
// 1 if the bytes look like a safetensors file: a u64 header length that fits
// the file, then '{'. (No llama2.c or checkpoint file passes: for them the
// first 8 bytes read as a length far beyond the file.)
int safetensors_detect(const uint8_t *b, size_t size);

// Loads a Hugging Face model (a directory, a .safetensors file or an index;
// see above) into p (allocated here). -1 + err_msg naming the file and tensor.
int safetensors_load(Params *p, const char *path);

// Writes dir/model.safetensors (all F32, HF names, header padded to 8 bytes)
// and dir/config.json (model_type "qwen3" with QK-norm, else "llama"), each
// atomically; creates dir if needed. A model with interleaved RoPE (llama2.c)
// is converted to HF's rotate_half layout: within each head, the rows of
// wq/wk (and the entries of q_norm/k_norm) go from pairs (2i, 2i+1) to
// (i, i+HD/2) (the inverse of llama2.c export.py's permute_reverse), which
// computes the same function; it loads back as ROPE_HALF. Refuses
// res_scale != 1 (HF has no residual scale; fold it into wo and w2 first).
int safetensors_save(const Params *p, const char *dir);
