// metrics: what the trainer tells people and tools — the startup table, step
// lines (with a progress bar on a terminal), a JSON-lines log (--log) for the
// dashboard and plots, and the Efficiency Report at the end.
//
// The log, schema version 1: one JSON object per line, every string escaped,
// non-finite numbers written as null, each with "type" and "t_ms" (since the
// run started). Types: start (with "v": 1 and the whole configuration), step,
// eval, checkpoint, skip, change (a resume changed the run), sample, note, report.
// A write error of the log is reported once on stderr; metrics_log_status()
// then fails so the run exits non-zero.
#pragma once
#include <stdio.h>

#include "core/jsonw.h"
#include "model/config.h"
#include "train/pipeline.h"
#include "train/state.h"

typedef struct {
    long long step, total;
    float loss, lr, loss_scale;
    double ms, grad_norm, data_ms, optim_ms, forward_ms, backward_ms;
    double device_ms, staging_ms, cpu_ops_ms, dw_wait_ms;  // inside forward/backward (device pipelines)
    double cpu_cls_ms, cpu_io_ms;  // of cpu_ops_ms: the CPU classifier, surface reads/writes
    double io_mb;                  // the bytes those reads and writes moved (PhaseTimes.io_bytes), MB
    int tokens;
} StepRecord;

typedef struct {
    FILE *log;          // JSON lines, or NULL
    char log_path[1024];
    int log_errno;      // first write error (0 = none)
    int tty, quiet;
    double t0;          // time_ms() at metrics_open
    double optim_ms, data_ms, eval_ms, ckpt_ms, sample_ms;  // cumulative phases owned by the trainer
    double step_ms_ewma;
    int bar_shown;
} Metrics;

// What the start record and the banner describe.
typedef struct {
    const Config *cfg;
    const char *pipeline, *device, *precision, *blas, *data, *val_data, *ckpt;
    int seq, resumed, n_vocab_rows;
    long long kernels_compiled;
    double flops_per_update;
    double peak_gflops;     // 0 = unknown
    int world;              // processes sharing each update (mpirun -np)
} RunInfo;

// log_path: NULL (none), or what io_open_append takes: a regular file
// (appended; created if missing), "-", /dev/stdout or /dev/stderr.
int metrics_open(Metrics *mt, const char *log_path, int quiet);
void metrics_close(Metrics *mt);
// 0, or -1 with err_msg() naming the log if any write to it failed.
int metrics_log_status(const Metrics *mt);

// Adds "t_ms" and writes one record (j from jsonw_begin + fields) to the log.
void metrics_log_record(Metrics *mt, JsonW *j);

void metrics_banner(Metrics *mt, const RunInfo *ri, const TrainState *st);
void metrics_step(Metrics *mt, const StepRecord *r, int print_line);
void metrics_eval(Metrics *mt, long long step, float val_loss, int improved);
// On a terminal: "eval 12/40" in place of the progress bar.
void metrics_eval_progress(Metrics *mt, long long done, long long total);
void metrics_checkpoint(Metrics *mt, long long step, const char *path, int best_link);
// On a terminal: "saving PATH 45%" (only called for large files).
void metrics_save_progress(Metrics *mt, const char *path, double fraction);
void metrics_skip(Metrics *mt, long long step, const char *why, float loss, double grad_norm, float loss_scale);
void metrics_change(Metrics *mt, const char *what, const char *from, const char *to);
// The process is about to be replaced (exec() restart) after update `step`.
void metrics_restart(Metrics *mt, long long step, long long compiles, const char *why);
void metrics_note(Metrics *mt, const char *text);
// Data parallel (rank 0, after the report): the ranks' tokens/s summed, their
// mean time in gradient sums and mean time waiting for them; text is the
// per-rank line, logged and printed.
typedef struct {
    int ranks, overlap;
    double tokens_per_s, comm_ms, comm_wait_ms;
} WorldRecord;
void metrics_world(Metrics *mt, const WorldRecord *w, const char *text);
// Text generated from the current weights.
void metrics_sample(Metrics *mt, long long step, const char *prompt, const char *text);
// A line about a long operation starting ("loading ..."); not logged.
void metrics_doing(Metrics *mt, const char *text);

// Times of this process's run, for the report.
typedef struct {
    long long steps;        // updates run in this process
    int seq, accum;
    double flops_per_window;
    double peak_gflops;     // 0 = unknown
    int world;              // processes sharing each update
    double wall_ms;         // whole trainer_run
    double setup_ms;        // model, data, pipeline (compile included), log
    double train_ms;        // sum of update wall times
    PhaseTimes train;       // pipeline times of training only (evaluation excluded)
} ReportInfo;
void metrics_report(Metrics *mt, const TrainState *st, const ReportInfo *ri);

// Training FLOPs of one window of `seq` tokens (forward + backward):
//   3 x [ 2*seq*(per-layer matrices + classifier) + L * 4*seq*seq*NH*HD ]
// (matmul FLOPs only; attention scores and P.V counted over the full square,
// as the original's formula does; norms and elementwise work are not counted).
double metrics_flops_per_window(const Config *cfg, int seq);
