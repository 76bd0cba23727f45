// pipe_compare: one training step of a device pipeline on the sim device
// against the cpu pipeline's, gradient tensor by gradient tensor.
#pragma once
#include <stdint.h>

#include "train/pipeline.h"

// Random weights whose norm weights differ per channel and layer (1 + 0.3 N(0,1)):
// a norm read from the wrong tensor, layer or channel shows.
void pipe_compare_weights(Params *p, uint64_t seed);
// Both pipelines take one window of random tokens from the same random weights
// (preset, window S, residual scale; compact: classifier over the even ids).
// Checks the loss and every gradient tensor (test.h CHECKs); *times receives
// the device pipeline's. Returns 1 when both steps ran.
int pipe_compare_step(const char *pipeline, const char *preset, int S, float res_scale, int compact,
                      PhaseTimes *times);
// The same for any Config (c->name labels the failures).
int pipe_compare_step_cfg(const char *pipeline, const Config *c, int S, int compact, PhaseTimes *times);
// The same with the device pipeline's options (name and flags; device and vocabulary set here).
int pipe_compare_step_opts(const PipelineOptions *o, const Config *c, int S, int compact, PhaseTimes *times);
