// anetrain train: flags -> TrainOptions -> trainer_run.
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/err.h"
#include "model/config.h"
#include "train/trainer.h"

// defaults of a run on the built-in corpus (no --data)
enum { BUILTIN_STEPS = 1000, BUILTIN_ACCUM = 4, BUILTIN_WARMUP = 20 };
#define BUILTIN_LR 2e-3f

static const char ABOUT[] =
    "Train a model. Without --data it trains on a built-in, deterministic story corpus with a built-in\n"
    "byte-level vocabulary (written to --out-dir, with its tokenizer.bin for `anetrain sample`).\n"
    "--model is a preset name (training from scratch) or a weights file (llama2.c .bin or an anetrain\n"
    "checkpoint) to fine-tune; --scratch re-initializes a file's architecture randomly.\n"
    "Steps and warmup count optimizer updates; each update accumulates --accum windows of --seq tokens.\n"
    "On the built-in corpus, --steps, --lr, --accum and --warmup default to 1000, 2e-3, 4 and 20.\n"
    "SIGINT/SIGTERM finish the current update, save the checkpoint and exit 0.\n"
    "--resume keeps the checkpoint's --steps, --lr, --accum, --warmup and --clip unless given again\n"
    "(give a larger --steps to extend a run); pass the same --data and --seq.";

int cmd_train(int argc, char **argv) {
    TrainOptions o;
    trainer_defaults(&o);
    const char *ckpt = "runs/ckpt.bin";
    o.ckpt = ckpt;
    long long steps = o.steps, seed = o.seed, stop_after = 0;
    char model_help[256];
    snprintf(model_help, sizeof model_help, "preset (%s) or weights file (default stories260k)",
             config_preset_names());
    Flag flags[] = {
        {"--model", "-m", FLAG_STR, &o.model, model_help},
        {"--data", "-d", FLAG_STR, &o.data, "training token file (default: built-in corpus)"},
        {"--val-data", NULL, FLAG_STR, &o.val_data, "validation token file (default: held-out tail of --data)"},
        {"--val-frac", NULL, FLAG_FLOAT, &o.val_frac, "fraction of --data held out when no --val-data"},
        {"--steps", "-n", FLAG_LONG, &steps, "optimizer updates"},
        {"--stop-after", NULL, FLAG_LONG, &stop_after, "save and stop after N updates of this run (0 = never)"},
        {"--lr", NULL, FLAG_FLOAT, &o.lr, "peak learning rate"},
        {"--accum", NULL, FLAG_INT, &o.accum, "windows accumulated per update"},
        {"--warmup", NULL, FLAG_INT, &o.warmup, "linear warmup updates (then cosine to 0.1 x lr)"},
        {"--clip", NULL, FLAG_FLOAT, &o.clip, "global gradient-norm clip (<= 0 disables)"},
        {"--seq", NULL, FLAG_INT, &o.seq, "window length in tokens (capped at the model's seq_len)"},
        {"--seed", NULL, FLAG_LONG, &seed, "seed for initialization and data order"},
        {"--sequential", NULL, FLAG_BOOL, &o.sequential, "walk the data in order instead of random windows"},
        {"--compact-vocab", NULL, FLAG_BOOL, &o.compact_vocab,
         "classifier over the ids that occur in --data/--val-data only (faster; the loss is over those ids)"},
        {"--pipeline", "-p", FLAG_STR, &o.pipeline, "cpu or dynamic (MIL kernels on --device)"},
        {"--device", NULL, FLAG_STR, &o.device, "device of the dynamic pipeline: sim (MIL interpreter) or ane (macOS)"},
        {"--compile-budget", NULL, FLAG_INT, &o.compile_budget, "device compiles allowed per process"},
        {"--loss-scale", NULL, FLAG_FLOAT, &o.loss_scale,
         "constant loss scale; 0 = automatic (1 on cpu, dynamic from 1024 on fp16 pipelines)"},
        {"--precision", NULL, FLAG_STR, &o.precision, "cpu pipeline: fp32, or bf16 (bf16 GEMM inputs, fp32 accumulation)"},
        {"--threads", "-t", FLAG_INT, &o.threads, "CPU threads for the pipeline's pool (0 = one per CPU)"},
        {"--ckpt", "-c", FLAG_STR, &o.ckpt, "checkpoint path (the best one goes to NAME.best.bin)"},
        {"--resume", "-r", FLAG_BOOL, &o.resume, "continue from --ckpt exactly"},
        {"--scratch", NULL, FLAG_BOOL, &o.scratch, "random init even when --model is a file"},
        {"--save-every", NULL, FLAG_INT, &o.save_every, "save every N updates (0 = only at the end)"},
        {"--eval-every", NULL, FLAG_INT, &o.eval_every, "evaluate every N updates (0 = never)"},
        {"--eval-windows", NULL, FLAG_INT, &o.eval_windows, "validation windows per evaluation (0 = all)"},
        {"--print-every", NULL, FLAG_INT, &o.print_every, "print a step line every N updates"},
        {"--max-skips", NULL, FLAG_INT, &o.max_skips, "stop after N non-finite updates in a row"},
        {"--res-scale", NULL, FLAG_FLOAT, &o.res_scale, "residual branch scale (0 = model's; 1/sqrt(2L) = seed's)"},
        {"--log", NULL, FLAG_STR, &o.log_path, "append JSON lines (steps, evals, checkpoints, report)"},
        {"--out-dir", NULL, FLAG_STR, &o.out_dir, "directory for the built-in corpus and tokenizer"},
        {"--quiet", "-q", FLAG_BOOL, &o.quiet, "no step lines or report on stdout"},
        {0},
    };
    int rc = args_parse(argc, argv, flags, "train [flags]", ABOUT, NULL, 0, NULL);
    if (rc != 0) return rc > 0 ? 0 : 2;
    // The built-in corpus is the newcomer's first run: unless told otherwise, use
    // settings that show a small model learning in a minute or two.
    if (!o.data && !o.resume) {
        if (!args_given(argc, argv, "--steps", "-n")) steps = BUILTIN_STEPS;
        if (!args_given(argc, argv, "--lr", NULL)) o.lr = BUILTIN_LR;
        if (!args_given(argc, argv, "--accum", NULL)) o.accum = BUILTIN_ACCUM;
        if (!args_given(argc, argv, "--warmup", NULL)) o.warmup = BUILTIN_WARMUP;
    }
    o.steps = steps;
    o.seed = seed;
    o.stop_after = stop_after;
    const char *bad = NULL;
    if (o.steps <= 0) bad = "--steps must be positive";
    else if (stop_after < 0) bad = "--stop-after must be >= 0";
    else if (o.accum <= 0) bad = "--accum must be positive";
    else if (o.warmup < 0) bad = "--warmup must be >= 0";
    else if (o.seq < 2) bad = "--seq must be at least 2";
    else if (!(o.lr > 0)) bad = "--lr must be positive";
    else if (o.val_frac < 0 || o.val_frac >= 1) bad = "--val-frac must be in [0, 1)";
    else if (o.print_every <= 0) bad = "--print-every must be positive";
    else if (o.max_skips <= 0) bad = "--max-skips must be positive";
    else if (o.loss_scale < 0) bad = "--loss-scale must be >= 0";
    else if (o.save_every < 0 || o.eval_every < 0 || o.eval_windows < 0) bad = "--save-every/--eval-every/--eval-windows must be >= 0";
    if (bad) {
        fprintf(stderr, "anetrain train: %s; see --help\n", bad);
        return 2;
    }
    if (o.warmup == 0) o.warmup = 1;  // lr(step 0) = lr * 1/1: no warmup
    // A resumed run keeps the checkpoint's recipe for everything not given again.
    if (o.resume) {
        if (!args_given(argc, argv, "--steps", "-n")) o.steps = TRAIN_KEEP;
        if (!args_given(argc, argv, "--lr", NULL)) o.lr = TRAIN_KEEP;
        if (!args_given(argc, argv, "--accum", NULL)) o.accum = TRAIN_KEEP;
        if (!args_given(argc, argv, "--warmup", NULL)) o.warmup = TRAIN_KEEP;
        if (!args_given(argc, argv, "--clip", NULL)) o.clip = TRAIN_KEEP;
    }
    if (trainer_run(&o) != 0) {
        fprintf(stderr, "anetrain train: %s\n", err_msg());
        return 1;
    }
    return 0;
}
