// trainer: see trainer.h.
#include "train/trainer.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"
#include "core/gemm.h"
#include "core/timer.h"
#include "data/builtin.h"
#include "data/dataset.h"
#include "model/model_file.h"
#include "train/checkpoint.h"
#include "train/metrics.h"
#include "train/optim.h"
#include "train/pipeline.h"

void trainer_defaults(TrainOptions *o) {
    memset(o, 0, sizeof *o);
    o->pipeline = "cpu";
    o->device = "sim";
    o->precision = "fp32";
    o->compile_budget = 100;
    o->out_dir = "runs";
    o->steps = 10000;
    o->accum = 10;
    o->warmup = 10;
    o->seq = 256;
    o->lr = 3e-4f;
    o->clip = 1.0f;
    o->val_frac = 0.05f;
    o->eval_every = 100;
    o->eval_windows = 20;
    o->save_every = 100;
    o->print_every = 10;
    o->max_skips = 10;
    o->res_scale = 0.0f;  // 0 = keep the model's
    o->seed = 42;
}

// --- signals: finish the current step, save, exit 0 -------------------------------

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

// --- model + optimizer state ---------------------------------------------------------

typedef struct {
    Params p;
    float *m, *v, *grads;
    TrainState st;
} Run;

static int is_preset(const char *name) {
    Config c;
    int ok = config_preset(&c, name) == 0;
    err_clear();
    return ok;
}

static int run_setup(Run *r, const TrainOptions *o) {
    memset(r, 0, sizeof *r);
    optim_defaults(&r->st);
    if (o->resume) {
        if (ckpt_load(o->ckpt, &r->p, &r->m, &r->v, &r->st) != 0) return -1;
        if (o->model) {
            // the user named a model: it must be the checkpoint's
            Config want;
            char why[128];
            if (model_config(o->model, &want) != 0) return -1;
            if (o->res_scale > 0) want.res_scale = o->res_scale;
            if (!config_equal(&want, &r->p.cfg, why, sizeof why))
                return err_set("%s: checkpoint holds a different model than --model %s (%s)", o->ckpt, o->model, why);
        }
    } else {
        Config cfg;
        const char *model = o->model ? o->model : "stories260k";
        int from_file = !is_preset(model);
        if (from_file) {
            if (model_load(&r->p, model) != 0) return -1;
            cfg = r->p.cfg;
            if (o->scratch) params_init_random(&r->p, (uint64_t)o->seed);
        } else {
            config_preset(&cfg, model);
        }
        if (o->res_scale > 0) cfg.res_scale = o->res_scale;
        if (!from_file) {
            if (params_init(&r->p, &cfg) != 0) return -1;
            params_init_random(&r->p, (uint64_t)o->seed);
        } else {
            r->p.cfg.res_scale = cfg.res_scale;
        }
        r->st.seed = (uint64_t)o->seed;
    }
    // the options set the recipe; on resume, TRAIN_KEEP keeps the checkpoint's
    // (a larger --steps given again is how a finished run is extended)
    const int keep = o->resume;
    if (!(keep && o->lr == TRAIN_KEEP)) r->st.lr = o->lr;
    if (!(keep && o->clip == TRAIN_KEEP)) r->st.clip = o->clip;
    if (!(keep && o->warmup == TRAIN_KEEP)) r->st.warmup = o->warmup;
    if (!(keep && o->accum == TRAIN_KEEP)) r->st.accum = o->accum;
    if (!(keep && o->steps == TRAIN_KEEP)) r->st.total_steps = o->steps;
    // fp16 device pipelines need the loss scaled so small gradients survive fp16;
    // the scale is dynamic (halved on overflow, doubled after 1000 clean updates)
    if (o->loss_scale > 0) {
        r->st.loss_scale = o->loss_scale;
        r->st.loss_scale_dynamic = 0;
    } else if (strcmp(o->pipeline, "cpu") != 0 && !r->st.loss_scale_dynamic) {
        r->st.loss_scale = 1024.0f;
        r->st.loss_scale_dynamic = 1;
    } else if (!strcmp(o->pipeline, "cpu")) {
        r->st.loss_scale = 1.0f;
        r->st.loss_scale_dynamic = 0;
    }
    size_t n = r->p.n;
    if (!r->m) r->m = calloc(n, sizeof(float));
    if (!r->v) r->v = calloc(n, sizeof(float));
    r->grads = calloc(n, sizeof(float));
    if (!r->m || !r->v || !r->grads) return err_set("out of memory for optimizer state (%zu params)", n);
    return 0;
}

static void run_free(Run *r) {
    params_free(&r->p);
    free(r->m);
    free(r->v);
    free(r->grads);
}

// --- data ---------------------------------------------------------------------------------

typedef struct {
    TokenFile train_file, val_file;
    int have_val_file;
    Dataset train, val;
    int have_val;
    char desc[2048];
    char builtin_data[600];
} Data;

static int mkdirs(const char *dir) {
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *s = tmp + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            mkdir(tmp, 0755);
            *s = '/';
        }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return err_set("%s: cannot create directory: %s", dir, strerror(errno));
    return 0;
}

static int data_setup(Data *d, const TrainOptions *o, const TrainState *st, const Config *cfg, int seq) {
    memset(d, 0, sizeof *d);
    const char *train_path = o->data;
    if (!train_path) {
        if (cfg->vocab < BUILTIN_VOCAB)
            return err_set("the built-in corpus needs a vocab of at least %d; model %s has %d (pass --data)",
                           BUILTIN_VOCAB, cfg->name, cfg->vocab);
        if (mkdirs(o->out_dir) != 0) return -1;
        if (builtin_prepare(o->out_dir, d->builtin_data, sizeof d->builtin_data) != 0) return -1;
        train_path = d->builtin_data;
    }
    if (tokens_open(&d->train_file, train_path, cfg->vocab) != 0) return -1;
    size_t n = d->train_file.count, train_end = n;
    if (o->val_data) {
        if (tokens_open(&d->val_file, o->val_data, cfg->vocab) != 0) return -1;
        d->have_val_file = 1;
    } else if (o->eval_every > 0 && o->val_frac > 0) {
        size_t held = (size_t)(n * (double)o->val_frac);
        if (held >= (size_t)seq + 1 && n - held >= (size_t)seq + 1) train_end = n - held;
    }
    if (dataset_init(&d->train, &d->train_file, 0, train_end, seq, o->sequential ? SAMPLE_SEQUENTIAL : SAMPLE_RANDOM,
                     st->seed) != 0)
        return -1;
    if (st->data_rng) d->train.rng.s = st->data_rng;  // resume: continue the sampler exactly
    d->train.cursor = st->data_cursor;
    if (d->have_val_file) {
        if (dataset_init(&d->val, &d->val_file, 0, d->val_file.count, seq, SAMPLE_SEQUENTIAL, 0) != 0) return -1;
        d->have_val = 1;
    } else if (train_end < n) {
        if (dataset_init(&d->val, &d->train_file, train_end, n, seq, SAMPLE_SEQUENTIAL, 0) != 0) return -1;
        d->have_val = 1;
    }
    snprintf(d->desc, sizeof d->desc, "%s (%zu tokens, %zu for training)%s%s", train_path, n, train_end,
             d->have_val_file ? ", validation " : "", d->have_val_file ? o->val_data : "");
    return 0;
}

static void data_free(Data *d) {
    tokens_close(&d->train_file);
    if (d->have_val_file) tokens_close(&d->val_file);
}

// Ascending ids that occur in the training and validation files (vocab compaction).
static int *used_ids(const Data *d, int vocab, int *n) {
    unsigned char *seen = calloc(vocab, 1);
    int *rows = malloc(sizeof(int) * vocab);
    if (!seen || !rows) {
        free(seen), free(rows);
        err_set("out of memory");
        return NULL;
    }
    for (size_t i = 0; i < d->train_file.count; i++) seen[tokens_get(&d->train_file, i)] = 1;
    if (d->have_val_file)
        for (size_t i = 0; i < d->val_file.count; i++) seen[tokens_get(&d->val_file, i)] = 1;
    *n = 0;
    for (int i = 0; i < vocab; i++)
        if (seen[i]) rows[(*n)++] = i;
    free(seen);
    return rows;
}

// Mean loss over the first `windows` non-overlapping windows of the validation set.
static float evaluate(Pipeline *pl, const Params *p, const Dataset *val, int windows, int *tok, int *tgt) {
    size_t n = dataset_num_windows(val);
    if (windows > 0 && (size_t)windows < n) n = (size_t)windows;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        dataset_window(val, i, tok, tgt);
        sum += pl->eval(pl, p, tok, tgt);
    }
    return n ? (float)(sum / n) : NAN;
}

static void best_path(char *out, size_t n, const char *ckpt) {
    size_t len = strlen(ckpt);
    if (len > 4 && !strcmp(ckpt + len - 4, ".bin")) snprintf(out, n, "%.*s.best.bin", (int)(len - 4), ckpt);
    else snprintf(out, n, "%s.best", ckpt);
}

// --- the loop -------------------------------------------------------------------------------

int trainer_run(const TrainOptions *o) {
    const double t_start = time_ms();
    int rc = -1;
    Run r;
    Data d;
    Pipeline pl;
    Metrics mt;
    memset(&d, 0, sizeof d);
    memset(&pl, 0, sizeof pl);
    memset(&mt, 0, sizeof mt);
    int *tok = NULL, *tgt = NULL, *vocab_rows = NULL;
    if (o->threads > 0) gemm_set_threads(o->threads);
    if (run_setup(&r, o) != 0) goto done;
    const Config *cfg = &r.p.cfg;
    int seq = o->seq < cfg->seq_len ? o->seq : cfg->seq_len;
    if (data_setup(&d, o, &r.st, cfg, seq) != 0) goto done;
    PipelineOptions po = {.name = o->pipeline, .device = o->device, .compile_budget = o->compile_budget,
                          .precision = o->precision};
    if (o->compact_vocab) {
        if (!(vocab_rows = used_ids(&d, cfg->vocab, &po.n_vocab_rows))) goto done;
        po.vocab_rows = vocab_rows;
    }
    if (pipeline_init(&pl, &po, cfg, seq) != 0) goto done;
    if (metrics_open(&mt, o->log_path, o->quiet) != 0) goto done;
    tok = malloc(sizeof(int) * seq);
    tgt = malloc(sizeof(int) * seq);
    if (!tok || !tgt) {
        err_set("out of memory");
        goto done;
    }
    TrainState *st = &r.st;
    char best[600];
    best_path(best, sizeof best, o->ckpt);

    g_stop = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    metrics_banner(&mt, cfg, pl.name, d.desc, seq, st, o->resume, gemm_backend_name());
    if (o->compact_vocab && !o->quiet)
        printf("  vocab     classifier compacted to the %d of %d ids that occur in the data (loss over those)\n",
               po.n_vocab_rows, cfg->vocab);
    if (pl.times.kernels_compiled && !o->quiet)
        printf("  device    %s: %lld kernels compiled in %.1f ms; loss scale %g%s\n", o->device,
               pl.times.kernels_compiled, pl.times.compile, st->loss_scale, st->loss_scale_dynamic ? " (dynamic)" : "");
    const long long start_step = st->step;
    Config flops_cfg = *cfg;  // a compacted classifier multiplies only its active rows
    if (po.n_vocab_rows > 0) flops_cfg.vocab = po.n_vocab_rows;
    const double flops_per_window = metrics_flops_per_window(&flops_cfg, seq);
    int skips_in_row = 0;
    const size_t n = r.p.n;

    const long long stop_at = o->stop_after > 0 ? start_step + o->stop_after : st->total_steps;
    while (st->step < st->total_steps && st->step < stop_at && !g_stop) {
        double t0 = time_ms();
        memset(r.grads, 0, n * sizeof(float));
        double loss_sum = 0;
        PhaseTimes before = pl.times;
        double data_ms = 0;
        for (int micro = 0; micro < st->accum; micro++) {
            double td = time_ms();
            dataset_next(&d.train, tok, tgt);
            data_ms += time_ms() - td;
            loss_sum += pl.step(&pl, &r.p, tok, tgt, r.grads, st->loss_scale);
        }
        float loss = (float)(loss_sum / st->accum);
        st->tokens_seen += (long long)st->accum * seq;
        double to = time_ms();
        float grad_mul = 1.0f;
        double gnorm = 0;
        float lr = optim_lr(st, st->step);
        int ok = isfinite(loss) && optim_prepare(st, r.grads, n, &grad_mul, &gnorm);
        if (ok) {
            st->adam_t++;
            optim_adamw(&r.p, r.grads, r.m, r.v, st, lr, grad_mul);
            if (pl.params_changed(&pl, &r.p) != 0) goto done;
            skips_in_row = 0;
        } else {
            if (!isfinite(loss)) st->skipped++;  // (optim_prepare counts non-finite gradients itself)
            skips_in_row++;
            metrics_event(&mt, st->step + 1, "skip", loss, gnorm, st->loss_scale);
            if (skips_in_row >= o->max_skips) {
                err_set("%d updates in a row had a non-finite loss or gradient (last loss %g); stopping. "
                        "The last checkpoint is intact; try a lower --lr",
                        skips_in_row, loss);
                goto done;
            }
        }
        double optim_ms = time_ms() - to;
        st->step++;
        st->last_loss = loss;
        st->data_rng = d.train.rng.s;
        st->data_cursor = d.train.cursor;
        double step_ms = time_ms() - t0;
        st->train_ms += step_ms;
        StepRecord rec = {
            .step = st->step, .total = st->total_steps, .loss = loss, .lr = lr, .ms = step_ms,
            .tokens = st->accum * seq, .grad_norm = gnorm, .data_ms = data_ms, .optim_ms = optim_ms,
            .forward_ms = pl.times.forward - before.forward, .backward_ms = pl.times.backward - before.backward,
            .loss_scale = st->loss_scale,
        };
        metrics_step(&mt, &rec, st->step == start_step + 1 || st->step % o->print_every == 0 ||
                                    st->step == st->total_steps);
        mt.optim_ms += optim_ms;
        mt.data_ms += data_ms;
        if (d.have_val && o->eval_every > 0 && (st->step % o->eval_every == 0 || st->step == st->total_steps)) {
            double te = time_ms();
            float vl = evaluate(&pl, &r.p, &d.val, o->eval_windows, tok, tgt);
            mt.eval_ms += time_ms() - te;
            int improved = vl < st->best_val_loss;
            if (improved) st->best_val_loss = vl;
            metrics_eval(&mt, st->step, vl, improved);
            if (improved && o->save_every > 0) {
                double tc = time_ms();
                if (ckpt_save(best, &r.p, r.m, r.v, st) != 0) goto save_failed;
                mt.ckpt_ms += time_ms() - tc;
            }
        }
        if (o->save_every > 0 && st->step % o->save_every == 0 && st->step < st->total_steps) {
            double tc = time_ms();
            if (ckpt_save(o->ckpt, &r.p, r.m, r.v, st) != 0) goto save_failed;
            mt.ckpt_ms += time_ms() - tc;
            metrics_checkpoint(&mt, st->step, o->ckpt);
        }
    }
    if (g_stop) metrics_note(&mt, "signal received: saving and stopping");
    {
        double tc = time_ms();
        if (ckpt_save(o->ckpt, &r.p, r.m, r.v, st) != 0) goto save_failed;
        mt.ckpt_ms += time_ms() - tc;
        metrics_checkpoint(&mt, st->step, o->ckpt);
    }
    metrics_report(&mt, st, &pl.times, st->step - start_step, seq, flops_per_window, time_ms() - t_start);
    rc = 0;
    goto done;
save_failed:
    err_wrap("saving the checkpoint failed (the previous checkpoint, if any, is intact)");
done:
    metrics_close(&mt);
    free(tok);
    free(tgt);
    free(vocab_rows);
    pipeline_free(&pl);
    data_free(&d);
    run_free(&r);
    return rc;
}
