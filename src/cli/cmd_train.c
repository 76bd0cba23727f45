// anetrain train: flags -> TrainOptions -> trainer_run.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/restart.h"
#include "core/err.h"
#include "model/lora.h"
#include "model/config.h"
#include "train/dist.h"
#include "train/trainer.h"

static const char ABOUT[] =
    "Train a model. Without --data it trains on a built-in, deterministic story corpus with a built-in\n"
    "byte-level vocabulary (written to --out-dir, with its tokenizer.bin for `anetrain sample`).\n"
    "--model is a preset name (training from scratch) or a weights file (llama2.c .bin or an anetrain\n"
    "checkpoint) to fine-tune; --scratch re-initializes a file's architecture randomly.\n"
    "Steps and warmup count optimizer updates; each update accumulates --accum windows of --seq tokens.\n"
    "On the built-in corpus, --steps, --lr, --accum and --warmup default to 1000, 2e-3, 4 and 20.\n"
    "SIGINT/SIGTERM finish the current update, save the checkpoint and exit 0.\n"
    "--steps 0 writes the initialized model as a checkpoint and exits.\n"
    "--resume continues the run saved in --ckpt exactly: its data files, --seq, --pipeline, --device,\n"
    "--precision, --compact-vocab, --sequential, --val-frac and --seed come from the checkpoint; giving\n"
    "one with a different value is refused unless --resume-with-changes. --steps, --lr, --accum,\n"
    "--warmup, --clip and --loss-scale are kept unless given again (a larger --steps extends a run).\n"
    "The checkpoint's directory is created if missing; a lock beside the checkpoint (NAME.lock) keeps a\n"
    "second run off it.";

// Which flags were given, for the resume and built-in-corpus rules.
static void note_given(TrainGiven *g, int argc, char **argv) {
    g->model = args_given(argc, argv, "--model", "-m");
    g->data = args_given(argc, argv, "--data", "-d");
    g->val_data = args_given(argc, argv, "--val-data", NULL);
    g->val_frac = args_given(argc, argv, "--val-frac", NULL);
    g->seq = args_given(argc, argv, "--seq", NULL);
    g->sequential = args_given(argc, argv, "--sequential", NULL);
    g->compact_vocab = args_given(argc, argv, "--compact-vocab", NULL);
    g->pipeline = args_given(argc, argv, "--pipeline", "-p");
    g->device = args_given(argc, argv, "--device", NULL);
    g->precision = args_given(argc, argv, "--precision", NULL);
    g->seed = args_given(argc, argv, "--seed", NULL);
    g->steps = args_given(argc, argv, "--steps", "-n");
    g->lr = args_given(argc, argv, "--lr", NULL);
    g->accum = args_given(argc, argv, "--accum", NULL);
    g->warmup = args_given(argc, argv, "--warmup", NULL);
    g->clip = args_given(argc, argv, "--clip", NULL);
    g->loss_scale = args_given(argc, argv, "--loss-scale", NULL);
    g->lora = args_given(argc, argv, "--lora", NULL) || args_given(argc, argv, "--lora-alpha", NULL) ||
              args_given(argc, argv, "--lora-targets", NULL) || args_given(argc, argv, "--lora-dropout", NULL) ||
              args_given(argc, argv, "--train-norms", NULL);
}

// --lora's flags into o->lora; NULL, or what is wrong.
static const char *lora_options(TrainOptions *o, float alpha) {
    if (o->lora.rank < 0) return "--lora must be >= 0";
    if (!o->lora.rank) return o->given.lora ? "--lora-alpha, --lora-targets, --lora-dropout and --train-norms need --lora R" : NULL;
    if (!(alpha >= 0)) return "--lora-alpha must be positive";
    o->lora.alpha = alpha > 0 ? alpha : (float)o->lora.rank;
    if (lora_parse_targets(o->lora_targets, &o->lora.targets) != 0) return err_msg();
    if (!(o->lora.dropout >= 0 && o->lora.dropout < 1)) return "--lora-dropout must be in [0, 1)";
    if (alpha < 0) return "--lora-alpha must be positive";
    return NULL;
}

// The first value that makes no sense, or NULL.
static const char *bad_value(const TrainOptions *o) {
    if (o->steps < 0) return "--steps must be >= 0";
    if (o->stop_after < 0) return "--stop-after must be >= 0";
    if (o->accum <= 0) return "--accum must be positive";
    if (o->warmup < 0) return "--warmup must be >= 0";
    if (o->seq < 2) return "--seq must be at least 2";
    if (!(o->lr > 0)) return "--lr must be positive";
    if (o->val_frac < 0 || o->val_frac >= 1) return "--val-frac must be in [0, 1)";
    if (o->print_every <= 0) return "--print-every must be positive";
    if (o->max_skips <= 0) return "--max-skips must be positive";
    if (o->loss_scale < 0) return "--loss-scale must be >= 0";
    if (o->threads < 0) return "--threads must be >= 0";
    if (o->res_scale < 0) return "--res-scale must be >= 0";
    if (o->compile_budget <= 0) return "--compile-budget must be positive";
    if (o->mil_dialect && strcmp(o->mil_dialect, "ios18") && strcmp(o->mil_dialect, "ios16"))
        return "--mil-dialect must be ios18 or ios16";
    if (o->zero != 0 && o->zero != 1) return "--zero must be 0 or 1";
    if (o->recompute && o->pipeline && strcmp(o->pipeline, "cpu")) return "--recompute is for the cpu pipeline";
    if (strcmp(o->comm_overlap, "auto") && strcmp(o->comm_overlap, "on") && strcmp(o->comm_overlap, "off"))
        return "--comm-overlap must be auto, on or off";
    if (o->sample_every < 0) return "--sample-every must be >= 0";
    if (o->peak_gflops < 0) return "--peak-gflops must be >= 0";
    if (o->save_every < 0 || o->eval_every < 0 || o->eval_windows < 0)
        return "--save-every/--eval-every/--eval-windows must be >= 0";
    return NULL;
}

int cmd_train(int argc, char **argv) {
    TrainOptions o;
    trainer_defaults(&o);
    float lora_alpha = 0;
    char model_help[256];
    snprintf(model_help, sizeof model_help,
             "preset (%s), weights file, or HF config.json (default stories260k)", config_preset_names());
    Flag flags[] = {
        {"--model", "-m", FLAG_STR, &o.model, model_help},
        {"--data", "-d", FLAG_STR, &o.data, "training token file (default: built-in corpus)"},
        {"--val-data", NULL, FLAG_STR, &o.val_data, "validation token file (default: held-out tail of --data)"},
        {"--val-frac", NULL, FLAG_FLOAT, &o.val_frac, "fraction of --data held out when no --val-data"},
        {"--steps", "-n", FLAG_LONG, &o.steps, "optimizer updates (0 = write the initialized checkpoint)"},
        {"--stop-after", NULL, FLAG_LONG, &o.stop_after, "save and stop after N updates of this run (0 = never)"},
        {"--lr", NULL, FLAG_FLOAT, &o.lr, "peak learning rate"},
        {"--accum", NULL, FLAG_INT, &o.accum, "windows accumulated per update"},
        {"--warmup", NULL, FLAG_INT, &o.warmup, "linear warmup updates (then cosine to 0.1 x lr)"},
        {"--clip", NULL, FLAG_FLOAT, &o.clip, "global gradient-norm clip (<= 0 disables)"},
        {"--seq", NULL, FLAG_INT, &o.seq, "window length in tokens (capped at the model's seq_len)"},
        {"--seed", NULL, FLAG_LONG, &o.seed, "seed for initialization and data order"},
        {"--sequential", NULL, FLAG_BOOL, &o.sequential, "walk the data in order instead of random windows"},
        {"--compact-vocab", NULL, FLAG_BOOL, &o.compact_vocab,
         "classifier over the ids that occur in --data/--val-data only (faster; the loss is over those ids)"},
        {"--pipeline", "-p", FLAG_STR, &o.pipeline,
         "cpu, dynamic (weights staged into kernels compiled once), static (weights baked, recompiled every update), "
         "static-ane (static with more of the step on the device); all but cpu run MIL kernels on --device"},
        {"--device", NULL, FLAG_STR, &o.device, "device of the device pipelines: sim (MIL interpreter) or ane (macOS)"},
        {"--mil-dialect", NULL, FLAG_STR, &o.mil_dialect,
         "MIL dialect of the device kernels: ios18 (default; M3 and later) or ios16 (the verbose form M1/M2 "
         "need); a kernel the device rejects is compiled once more in the other and the report says so"},
        {"--compile-budget", NULL, FLAG_INT, &o.compile_budget,
         "device compiles allowed per process; static pipelines save and exec() a fresh process when the next "
         "update's kernels would not fit"},
        {"--lora", NULL, FLAG_INT, &o.lora.rank,
         "rank of LoRA adapters trained over the frozen --model (0 = train every weight)"},
        {"--lora-alpha", NULL, FLAG_FLOAT, &lora_alpha, "LoRA scale numerator: W + (alpha/rank) B A (0 = the rank)"},
        {"--lora-targets", NULL, FLAG_STR, &o.lora_targets, "matrices adapted: any of q,k,v,o,w1,w2,w3"},
        {"--lora-dropout", NULL, FLAG_FLOAT, &o.lora.dropout, "dropout on the adapters' inputs while training"},
        {"--train-norms", NULL, FLAG_BOOL, &o.lora.train_norms, "with --lora: also train the RMSNorm weights"},
        {"--comm-overlap", NULL, FLAG_STR, &o.comm_overlap,
         "under mpirun: on = sum each layer's gradients while the backward goes on, off = all after it, auto = on "
         "when the ranks span several hosts"},
        {"--zero", NULL, FLAG_INT, &o.zero,
         "under mpirun: 1 = ZeRO-1, each rank keeps and updates the Adam moments of its shard of the weights "
         "(optimizer memory / ranks; the gradients are reduce-scattered and the weights all-gathered)"},
        {"--device-head", NULL, FLAG_BOOL, &o.device_head,
         "dynamic: the classifier, its softmax and its input gradient as device kernels, the classifier's rows "
         "staged once per update (default: on the CPU, as the seed)"},
        {"--serial-staging", NULL, FLAG_BOOL, &o.serial_staging,
         "dynamic: stage every layer's weights on all threads before the forward instead of layer by layer on a "
         "stager thread beside it (the same numbers; staging then shows alone in the timings)"},
        {"--no-ane-extras", NULL, FLAG_BOOL, &o.no_ane_extras,
         "static-ane: its extra kernels' work (RMSNorm backward, final norm, classifier, softmax) on the CPU"},
        {"--loss-scale", NULL, FLAG_FLOAT, &o.loss_scale,
         "constant loss scale; 0 = automatic (1 on cpu, dynamic from 1024 on fp16 pipelines)"},
        {"--precision", NULL, FLAG_STR, &o.precision, "cpu pipeline: fp32, or bf16 (bf16 GEMM inputs, fp32 accumulation)"},
        {"--recompute", NULL, FLAG_BOOL, &o.recompute,
         "cpu pipeline: keep one layer's activations, recompute the others in the backward (the same numbers; "
         "less memory, about a third more arithmetic)"},
        {"--threads", "-t", FLAG_INT, &o.threads, "CPU threads for the pipeline's pool (0 = one per CPU)"},
        {"--ckpt", "-c", FLAG_STR, &o.ckpt, "checkpoint path (the best one goes to NAME.best.bin)"},
        {"--resume", "-r", FLAG_BOOL, &o.resume, "continue the run saved in --ckpt exactly"},
        {"--resume-with-changes", NULL, FLAG_BOOL, &o.resume_with_changes,
         "with --resume: allow data, --seq, --pipeline, ... to differ from the checkpoint's run (listed)"},
        {"--scratch", NULL, FLAG_BOOL, &o.scratch, "random init even when --model is a file"},
        {"--save-every", NULL, FLAG_INT, &o.save_every, "save every N updates (0 = only at the end)"},
        {"--eval-every", NULL, FLAG_INT, &o.eval_every, "evaluate every N updates (0 = never)"},
        {"--eval-windows", NULL, FLAG_INT, &o.eval_windows, "validation windows per evaluation (0 = all)"},
        {"--print-every", NULL, FLAG_INT, &o.print_every, "print a step line every N updates"},
        {"--max-skips", NULL, FLAG_INT, &o.max_skips, "stop after N non-finite updates in a row"},
        {"--res-scale", NULL, FLAG_FLOAT, &o.res_scale, "residual branch scale (0 = model's; 1/sqrt(2L) = seed's)"},
        {"--log", NULL, FLAG_STR, &o.log_path, "append JSON lines (schema v1; - or /dev/stdout for stdout)"},
        {"--sample-every", NULL, FLAG_INT, &o.sample_every,
         "log and print a sample of the current weights every N updates (0 = only on SIGUSR1)"},
        {"--tokenizer", "-z", FLAG_STR, &o.tokenizer, "tokenizer for samples: tokenizer.bin, or a Hugging Face tokenizer (file or directory; default: the built-in corpus's)"},
        {"--sample-prompt", NULL, FLAG_STR, &o.sample_prompt, "prompt of the samples (default: none)"},
        {"--peak-gflops", NULL, FLAG_FLOAT, &o.peak_gflops,
         "the machine's peak (e.g. bench/gemm_peak's), for % of peak in the report and the dashboard"},
        {"--out-dir", NULL, FLAG_STR, &o.out_dir, "directory for the built-in corpus and tokenizer"},
        {"--quiet", "-q", FLAG_BOOL, &o.quiet, "no step lines or report on stdout"},
        {0},
    };
    int rc = args_parse(argc, argv, flags, "train [flags]", ABOUT, NULL, 0, NULL);
    if (rc != 0) return rc > 0 ? 0 : 2;
    note_given(&o.given, argc, argv);
    // The built-in corpus is the newcomer's first run: unless told otherwise, use
    // settings that show a small model learning in a minute or two.
    if (!o.data && !o.resume) trainer_builtin_recipe(&o);
    const char *bad = bad_value(&o);
    if (!bad) bad = lora_options(&o, lora_alpha);
    if (!bad && o.resume_with_changes && !o.resume) bad = "--resume-with-changes needs --resume";
    if (bad) {
        fprintf(stderr, "anetrain train: %s; see --help\n", bad);
        return 2;
    }
    if (o.warmup == 0) o.warmup = 1;  // lr(step 0) = lr * 1/1: no warmup
    // under mpirun: one rank of a data-parallel job (dist.h); else a job of one
    if (dist_init(&argc, &argv) != 0) {
        fprintf(stderr, "anetrain train: %s\n", err_msg());
        return 1;
    }
    rc = trainer_run(&o);
    if (rc == TRAINER_RESTART && dist_size() > 1) {  // mpirun's ranks cannot replace themselves
        if (dist_rank() == 0)
            fprintf(stderr, "anetrain train: the compile budget of these processes is spent; the checkpoint is "
                            "saved: run the same mpirun command with --resume to continue\n");
        dist_finalize();
        return 3;
    }
    if (rc == TRAINER_RESTART) {  // saved; a fresh process continues the run (restart.h)
        const char *before = getenv("ANETRAIN_RESTARTS");
        restart_exec(argc, argv, (before ? atoll(before) : 0) + 1);
        fprintf(stderr, "anetrain train: %s (the checkpoint is saved: run again with --resume)\n", err_msg());
        return 1;
    }
    if (rc != 0) {
        if (dist_size() > 1) fprintf(stderr, "anetrain train (rank %d of %d): %s\n", dist_rank(), dist_size(), err_msg());
        else fprintf(stderr, "anetrain train: %s\n", err_msg());
        dist_abort(1);  // the other ranks would wait for this one in their next collective
        return 1;
    }
    dist_finalize();
    return 0;
}
