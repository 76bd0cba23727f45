// metrics: what the trainer tells people and tools — the startup table, step
// lines (with a progress bar on a terminal), a JSON-lines log (--log) for the
// dashboard and plots, and the Efficiency Report at the end.
#pragma once
#include <stdio.h>

#include "model/config.h"
#include "train/pipeline.h"
#include "train/state.h"

typedef struct {
    long long step, total;
    float loss, lr, loss_scale;
    double ms, grad_norm, data_ms, optim_ms, forward_ms, backward_ms;
    int tokens;
} StepRecord;

typedef struct {
    FILE *log;          // JSON lines, or NULL
    int tty, quiet;
    double optim_ms, data_ms, eval_ms, ckpt_ms;  // cumulative phases owned by the trainer
    double step_ms_ewma;
    int bar_shown;
} Metrics;

int metrics_open(Metrics *mt, const char *log_path, int quiet);
void metrics_close(Metrics *mt);
void metrics_banner(Metrics *mt, const Config *cfg, const char *pipeline, const char *data, int seq,
                    const TrainState *st, int resumed, const char *blas);
void metrics_step(Metrics *mt, const StepRecord *r, int print_line);
void metrics_eval(Metrics *mt, long long step, float val_loss, int improved);
void metrics_checkpoint(Metrics *mt, long long step, const char *path);
void metrics_event(Metrics *mt, long long step, const char *what, float loss, double grad_norm, float loss_scale);
void metrics_note(Metrics *mt, const char *text);
void metrics_report(Metrics *mt, const TrainState *st, const PhaseTimes *pt, long long steps, int seq,
                    double flops_per_window, double wall_ms);

// Training FLOPs of one window of `seq` tokens (forward + backward):
//   3 x [ 2*seq*(per-layer matrices + classifier) + L * 4*seq*seq*NH*HD ]
// (matmul FLOPs only; attention scores and P.V counted over the full square,
// as the original's formula does; norms and elementwise work are not counted).
double metrics_flops_per_window(const Config *cfg, int seq);
