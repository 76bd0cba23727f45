// trainer: the training loop shared by every pipeline.
//
// data order, gradient accumulation, clipping, LR schedule, loss scaling,
// evaluation, checkpoints (latest + best, atomic), SIGINT/SIGTERM handling,
// step lines, a JSON-lines metrics log and the Efficiency Report.
#pragma once
#include <stdint.h>

typedef struct {
    const char *model;      // preset name, llama2.c .bin, or anetrain checkpoint (NULL: stories260k)
    const char *data;       // token file; NULL = built-in story corpus
    const char *val_data;   // token file for evaluation; NULL = held-out tail of data
    const char *ckpt;       // checkpoint path (latest); best goes to <ckpt minus .bin>.best.bin
    const char *log_path;   // JSON lines; NULL = none
    const char *pipeline;   // "cpu", "dynamic"
    const char *device;     // device pipelines: "sim" or "ane"
    const char *precision;  // cpu: "fp32" or "bf16"
    int compile_budget;     // device compiles per process (0 = default)
    const char *out_dir;    // where built-in data and its tokenizer are written
    int resume, scratch, sequential;
    int compact_vocab;      // classifier over the ids that occur in the data only (changes the loss)
    long long steps;        // optimizer updates (the schedule's length)
    long long stop_after;   // stop (and save) after this many updates in this run; 0 = run to --steps
    int accum, warmup, seq, threads;
    int eval_every, eval_windows, save_every, print_every, max_skips;
    float lr, clip, val_frac, res_scale;
    float loss_scale;       // > 0: constant; 0: automatic (1 on cpu, dynamic from 1024 on fp16 pipelines)
    long long seed;
    int quiet;
} TrainOptions;

// With resume, steps/lr/accum/warmup/clip set to TRAIN_KEEP keep the checkpoint's values.
#define TRAIN_KEEP (-1)

void trainer_defaults(TrainOptions *o);
// Runs training to completion (or until SIGINT/SIGTERM, after which it saves
// and returns 0). Returns 0 on success, -1 with err_msg() on failure.
int trainer_run(const TrainOptions *o);
