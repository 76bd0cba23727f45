// trainer: the training loop shared by every pipeline.
//
// data order, gradient accumulation, clipping, LR schedule, loss scaling,
// evaluation, checkpoints (latest + best, atomic, locked), SIGINT/SIGTERM
// handling, step lines, a JSON-lines metrics log and the Efficiency Report.
//
// One optimizer update is trainer_update(): micro-steps -> all-reduce ->
// prepare -> AdamW -> restage.
//
// Data parallel (mpirun -np N, src/train/dist.h): every rank runs this same
// loop on the same weights. An update averages st->accum = N x --accum
// windows; rank r takes windows r, r+N, ... of the windows one process would
// draw with --accum N x A, so N ranks compute the one-process run up to float
// summation order. Rank 0 alone takes the lock and writes checkpoints, the log,
// samples and the report. trainer_run() is the loop around it, with evaluation
// (trainer_evaluate) and saving (trainer_save) beside it.
#pragma once
#include <stdint.h>

#include "core/io.h"
#include "data/dataset.h"
#include "data/texttok.h"
#include "train/metrics.h"
#include "train/optim.h"
#include "train/pipeline.h"
#include "train/run_id.h"

// Which options the user gave explicitly. A resume takes every option not
// given from the checkpoint; see run_id.h for which given ones may differ.
typedef struct {
    unsigned char model, data, val_data, val_frac, seq, sequential, compact_vocab, pipeline, device, precision;
    unsigned char seed, steps, lr, accum, warmup, clip, loss_scale;
    unsigned char lora;  // any of --lora, --lora-alpha, --lora-targets, --lora-dropout, --train-norms
} TrainGiven;

typedef struct {
    const char *model;      // preset, model file (llama2.c, checkpoint, HF dir) or HF config.json
    const char *data;       // token file; NULL = built-in story corpus
    const char *val_data;   // token file for evaluation; NULL = held-out tail of data
    const char *ckpt;       // checkpoint path (latest); best goes to <ckpt minus .bin>.best.bin
    const char *log_path;   // JSON lines; NULL = none ("-" or /dev/stdout: a stream)
    const char *pipeline;   // "cpu", "dynamic"
    const char *device;     // device pipelines: "sim" or "ane"
    const char *precision;  // cpu: "fp32" or "bf16"
    int recompute;          // cpu: recompute the layers' activations in the backward (less memory)
    int compile_budget;     // device compiles per process
    int no_ane_extras;      // static-ane: its extra kernels' work on the CPU
    int device_head;        // dynamic: the classifier and its softmax as device kernels (train/devhead.h)
    int serial_staging;     // dynamic: the weights staged before the forward, not beside it
    const char *mil_dialect;  // device pipelines: "ios18" (default) or "ios16" (M1/M2)
    const char *comm_overlap;  // data parallel: "auto" (when the ranks span hosts), "on", "off":
                               // sum each layer's gradients during the backward, or all after it
    int zero;               // data parallel: 1 = ZeRO-1, the Adam moments sharded over the ranks
    LoraConfig lora;        // rank > 0: train low-rank adapters over the frozen --model
    const char *lora_targets;  // "q,k,v,o,w1,w2,w3"
    const char *out_dir;    // where built-in data and its tokenizer are written
    int resume, scratch, sequential;
    int resume_with_changes;  // a resume may change the run's identity (run_id.h)
    int compact_vocab;      // classifier over the ids that occur in the data only (changes the loss)
    long long steps;        // optimizer updates (the schedule's length); 0 = save the initial weights
    long long stop_after;   // stop (and save) after this many updates in this run; 0 = run to --steps
    int accum, warmup, seq, threads;
    int eval_every, eval_windows, save_every, print_every, max_skips;
    float lr, clip, val_frac, res_scale;
    float loss_scale;       // > 0: constant; 0: automatic (1 on cpu, dynamic from 1024 on fp16 pipelines)
    long long seed;
    int quiet;
    int sample_every;       // a `sample` record every N updates (0 = only when asked with SIGUSR1)
    const char *tokenizer;  // for samples (default: the built-in corpus's)
    const char *sample_prompt;
    float peak_gflops;      // the machine's peak, when known (start record, report: % of peak)
    TrainGiven given;
} TrainOptions;

// Every default of a run, in one place (the recipe's come from optim_defaults).
void trainer_defaults(TrainOptions *o);
// The built-in corpus's recipe (a small model learning in a minute): sets
// steps, lr, accum and warmup where o->given says they were not given.
void trainer_builtin_recipe(TrainOptions *o);

// A run in progress. Fields are the trainer's; the update, evaluation and
// save functions below are the places other modules (dist, static
// pipelines) hook into.
typedef struct {
    TrainOptions o;         // effective options (a resume fills them from the checkpoint)
    Params p;               // the model (frozen under LoRA)
    Params lora;            // LoRA: the adapters (model/lora.h)
    Params *tp;             // what is trained: &p, or &lora
    float *m, *v, *grads;   // Adam moments and the gradient block, tp->n floats each
    TrainState st;
    OptimBounds bounds;     // magnitudes that prove an update stays finite
    TokenFile train_file, val_file;
    int have_val_file;
    Dataset train, val;
    int have_val;
    char builtin_data[600];
    char data_desc[2400];   // for the banner
    int *vocab_rows, n_vocab_rows;
    Pipeline pl;
    int have_pipeline;
    Metrics mt;
    IoLock lock;
    int seq;
    double flops_per_window;
    int *tok, *tgt;         // one window
    char best[1100];        // path of the best checkpoint
    long long start_step;
    double train_ms_before; // st.train_ms at the start of this process
    double compile_ms_before, wall_ms_before;  // st.compile_ms, st.wall_ms then
    long long compiles_before;                 // st.compiles then
    double t_start;         // when trainer_init began (this process's wall time)
    int ran_tail;           // this process began with the previous one's pending evaluation
    const char *saving;     // the checkpoint being written (for its progress line)
    PhaseTimes train_times; // pipeline time of training only (evaluation excluded)
    double setup_ms;
    RunChanges changes;     // what a resume changed (printed and logged)
    RunIdentity saved_id;   // the checkpoint's identity (option strings may point here)
    TextTok sample_tok;     // for samples of the weights being trained
    int have_sample_tok;
    // data parallel (dist.h): rank 0 of 1 without mpirun
    int rank, world;        // this process, and the processes sharing each update
    int stop;               // every rank agreed to stop (a signal reached one of them)
    int overlap;            // the gradient sums overlap the backward (--comm-overlap resolved)
    double comm_ms;         // time the gradient sums took (this process), overlapped or not
    double comm_wait_ms;    // of it, the time the update waited for them
    unsigned char *layer_pushed;  // (L) overlapped sums: layer l's gradients are queued
    int push_failed;        // a layer's gradients could not be queued
    // the part of the block this rank updates: all of it, or under ZeRO-1
    // its shard, whose moments alone m and v hold
    OptimShard shard;
    size_t *shard_counts;   // (world) every rank's shard size
} Trainer;

// Result of one update.
typedef struct {
    float loss, lr;
    double grad_norm, ms, data_ms, optim_ms, forward_ms, backward_ms;
    PhaseTimes pipeline;    // the pipeline's times of this update (device, staging, ...)
    int applied;            // 0: skipped (non-finite loss, gradient or result)
} UpdateResult;

// Loads or initializes the model, takes the checkpoint lock, reconciles a
// resume with the checkpoint, opens the data, the pipeline and the log.
int trainer_init(Trainer *t, const TrainOptions *o);
// One optimizer update. Returns 0 (r filled, applied or skipped), -1 on a
// pipeline failure (err_msg()).
int trainer_update(Trainer *t, UpdateResult *r);
// Mean validation loss over --eval-windows windows. Returns 0, 1 if a stop
// was requested during it (no loss), or -1 on a pipeline failure.
int trainer_evaluate(Trainer *t, float *loss);
// Saves the latest checkpoint, and the best one when best_too (a hard link to
// the latest when the file system allows, else a second write).
int trainer_save(Trainer *t, int best_too);
void trainer_free(Trainer *t);

// trainer_run's answer when the process must be replaced (a static pipeline's
// next kernels would exceed the compile budget): the checkpoint is saved; the
// caller execs itself with --resume, and the run continues bit for bit. What
// the checkpoint does not hold travels in the environment to the next
// process: ANETRAIN_STOP_AT (where --stop-after ends) and ANETRAIN_LOCK_FD (the
// run lock's descriptor, left open across exec and adopted by io_lock).
enum { TRAINER_RESTART = 2 };

// Runs training to completion (or until SIGINT/SIGTERM, after which it saves
// and returns 0), or returns TRAINER_RESTART. SIGUSR1 asks for a sample at the end of the current update. Returns 0 on success, -1 with err_msg() on failure.
int trainer_run(const TrainOptions *o);
