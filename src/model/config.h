// config: the model architecture as a runtime struct (never #define DIM).
//
// Covers llama2.c Llama models (interleaved RoPE, tied or separate classifier)
// and Qwen3 (explicit head_dim, per-head QK RMSNorm, rotate-half RoPE).
#pragma once
#include <stddef.h>
#include <stdio.h>

typedef enum {
    ROPE_INTERLEAVED = 0,  // llama2.c: channels (2i, 2i+1) of a head rotate together
    ROPE_HALF = 1,         // Hugging Face rotate_half: channels (i, i + hd/2)
} RopeLayout;

typedef struct {
    char name[32];     // preset or source name, for display only
    int dim;           // D: residual stream width
    int hidden;        // H: FFN width
    int n_layers;      // L
    int n_heads;       // NH: query heads
    int n_kv_heads;    // NKV: key/value heads; NH % NKV == 0 (GQA ratio NH/NKV)
    int head_dim;      // HD: explicit (Qwen3: 128 while D/NH = 64)
    int vocab;         // V
    int seq_len;       // S: maximum context (training windows are <= this)
    float norm_eps;    // RMSNorm epsilon
    float rope_theta;  // RoPE base
    RopeLayout rope_layout;
    int qk_norm;       // 1: RMSNorm over head_dim on each q and k head (Qwen3)
    int tied;          // 1: classifier weight is the token embedding
    float res_scale;   // residual branch scale: x += res_scale * f(x); 1 = standard
} Config;

// Fills cfg from a preset name (stories260k, stories15m, stories42m, stories110m,
// qwen3-0.6b, tiny-mha, tiny-gqa, tiny-qwen3). Returns -1 (err_msg) if unknown.
int config_preset(Config *cfg, const char *name);
// Comma-separated list of preset names, for --help.
const char *config_preset_names(void);
// Reads a Hugging Face config.json (model_type llama or qwen3).
int config_from_hf_json(Config *cfg, const char *path);
// Checks dims are positive and consistent; `source` names the file (or preset) in messages.
int config_validate(const Config *cfg, const char *source);
// 1 if the two configs describe the same architecture (names ignored); on 0,
// fills `why` with the first difference ("dim 64 vs 288").
int config_equal(const Config *a, const Config *b, char *why, size_t why_len);
void config_print(const Config *cfg, FILE *f);

static inline int config_q_dim(const Config *c) { return c->n_heads * c->head_dim; }
static inline int config_kv_dim(const Config *c) { return c->n_kv_heads * c->head_dim; }
// Parameter count (tied classifier counted once).
size_t config_num_params(const Config *c);
