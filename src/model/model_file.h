// model_file: load a model from whatever file the user points at.
//
// Detects the format: a directory, *.safetensors or *.safetensors.index.json
// (Hugging Face, config.json beside it; see model/safetensors.h), then from the
// bytes: llama2.c v1 (magic "ak42"), anetrain and original checkpoints,
// safetensors under another name, else llama2.c v0 (validated by exact size).
// The path is checked first: a fifo, a device or a socket is refused in one
// line and never opened for a blocking read.
#pragma once
#include "model/params.h"

// Loads every weight; then refuses non-finite weights, naming the first
// tensor and index (params_check_finite), whatever the format.
int model_load(Params *p, const char *path);

// Only the Config of a model file, from its header (a llama2.c or checkpoint
// header, or the config.json beside Hugging Face weights): cheap for a 10 GB
// model, and for checks made before loading one. The weights are not read.
int model_peek_config(const char *path, Config *cfg);

// The Config a --model argument names: a preset name, else model_peek_config.
int model_config(const char *preset_or_path, Config *cfg);
