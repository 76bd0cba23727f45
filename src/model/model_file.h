// model_file: load a model from whatever file the user points at.
//
// Detects the format from the bytes: llama2.c v1 (magic "ak42"), anetrain
// checkpoints (once they exist), else llama2.c v0 (validated by exact size).
#pragma once
#include "model/params.h"

int model_load(Params *p, const char *path);
