// model_file: load a model from whatever file the user points at.
//
// Detects the format: a directory, *.safetensors or *.safetensors.index.json
// (Hugging Face, config.json beside it; see model/safetensors.h), then from the
// bytes: llama2.c v1 (magic "ak42"), anetrain and original checkpoints,
// safetensors under another name, else llama2.c v0 (validated by exact size).
#pragma once
#include "model/params.h"

int model_load(Params *p, const char *path);

// The Config a --model argument names: a preset name, else any file model_load reads.
int model_config(const char *preset_or_path, Config *cfg);
