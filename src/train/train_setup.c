// train_setup: everything a run needs before its first update — the lock on
// the checkpoint, the model (loaded, initialized or resumed), the data, the
// pipeline and the log — and trainer_free.
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/err.h"
#include "core/gemm.h"
#include "core/timer.h"
#include "data/builtin.h"
#include "model/model_file.h"
#include "train/checkpoint.h"
#include "train/train_internal.h"
#include "train/trainer.h"

static int mkdirs(const char *dir) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", dir);
    for (char *s = tmp + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            mkdir(tmp, 0755);
            *s = '/';
        }
    struct stat sb;
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return err_set("%s: cannot create directory: %s", dir, strerror(errno));
    if (stat(tmp, &sb) != 0 || !S_ISDIR(sb.st_mode)) return err_set("%s: expected a directory, found a file", dir);
    return 0;
}

// The checkpoint's directory is created if missing; the checks of an atomic
// write and the lock file prove it writable before any training happens. The
// lock is on the file a symlinked --ckpt points to, so two names of one
// checkpoint are one lock.
static int take_checkpoint(Trainer *t) {
    char dir[1100];
    snprintf(dir, sizeof dir, "%s", t->o.ckpt);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = 0;
        if (mkdirs(dir) != 0) return err_wrap("--ckpt %s", t->o.ckpt);
    }
    if (io_check_output(t->o.ckpt) != 0) return err_wrap("--ckpt");
    char real[PATH_MAX];
    const char *target = realpath(t->o.ckpt, real) ? real : t->o.ckpt;
    return io_lock(&t->lock, target);
}

static void best_path(char *out, size_t n, const char *ckpt) {
    size_t len = strlen(ckpt);
    if (len > 4 && !strcmp(ckpt + len - 4, ".bin")) snprintf(out, n, "%.*s.best.bin", (int)(len - 4), ckpt);
    else snprintf(out, n, "%s.best", ckpt);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

// A new run: a preset or an HF config.json (random init), or weights from a file.
static int model_new(Trainer *t) {
    const TrainOptions *o = &t->o;
    const char *model = o->model ? o->model : "stories260k";
    Config cfg;
    int arch_only = config_preset(&cfg, model) == 0;
    err_clear();
    if (!arch_only && ends_with(model, ".json") && !ends_with(model, ".safetensors.index.json")) {
        if (config_from_hf_json(&cfg, model) != 0) return -1;
        arch_only = 1;
    }
    if (arch_only) {
        if (o->res_scale > 0) cfg.res_scale = o->res_scale;
        if (params_init(&t->p, &cfg) != 0) return -1;
        params_init_random(&t->p, (uint64_t)o->seed);
    } else {
        char line[1200];
        snprintf(line, sizeof line, "loading %s ...", model);
        metrics_doing(&t->mt, line);
        if (model_load(&t->p, model) != 0) return -1;
        if (o->scratch) params_init_random(&t->p, (uint64_t)o->seed);
        if (o->res_scale > 0) t->p.cfg.res_scale = o->res_scale;
    }
    t->st.seed = (uint64_t)o->seed;
    return 0;
}

// A resume: the checkpoint's weights, moments and state; --model, when given,
// must name the same architecture.
static int model_resume(Trainer *t) {
    const TrainOptions *o = &t->o;
    char line[1200];
    snprintf(line, sizeof line, "loading %s ...", o->ckpt);
    metrics_doing(&t->mt, line);
    if (ckpt_load(o->ckpt, &t->p, &t->m, &t->v, &t->st) != 0) return -1;
    if (!o->model) return 0;
    Config want;
    char why[128];
    if (model_config(o->model, &want) != 0) return -1;
    if (o->res_scale > 0) want.res_scale = o->res_scale;
    if (!config_equal(&want, &t->p.cfg, why, sizeof why))
        return err_set("%s: checkpoint holds a different model than --model %s (%s)", o->ckpt, o->model, why);
    return 0;
}

static int state_alloc(Trainer *t) {
    size_t n = t->p.n;
    if (!t->m) t->m = calloc(n, sizeof(float));
    if (!t->v) t->v = calloc(n, sizeof(float));
    t->grads = calloc(n, sizeof(float));
    if (!t->m || !t->v || !t->grads) return err_set("out of memory for optimizer state (%zu params)", n);
    optim_bounds(&t->p, t->m, t->v, &t->bounds);
    if (!(t->bounds.w < 3.4e38f && t->bounds.m < 3.4e38f && t->bounds.v < 3.4e38f))
        return err_set("%s: the weights or Adam moments hold non-finite values", t->o.resume ? t->o.ckpt : "model");
    return 0;
}

// fp16 device pipelines need the loss scaled so small gradients survive fp16;
// the scale is dynamic there (halved on overflow, doubled after 1000 clean updates).
static void loss_scale_setup(Trainer *t) {
    TrainState *st = &t->st;
    const int cpu = !strcmp(t->o.pipeline, "cpu");
    if (t->o.loss_scale > 0 && (!t->o.resume || t->o.given.loss_scale)) {
        st->loss_scale = t->o.loss_scale;
        st->loss_scale_dynamic = 0;
    } else if (t->o.resume && !t->o.given.pipeline) {
        return;  // the checkpoint's scaler state continues
    } else if (!cpu && !st->loss_scale_dynamic) {
        st->loss_scale = 1024.0f;
        st->loss_scale_dynamic = 1;
    } else if (cpu) {
        st->loss_scale = 1.0f;
        st->loss_scale_dynamic = 0;
    }
}

// The recipe: options set it on a new run; a resume keeps the checkpoint's
// unless given again (a larger --steps is how a finished run is extended).
static void recipe_setup(Trainer *t) {
    const TrainOptions *o = &t->o;
    TrainState *st = &t->st;
    const int fresh = !o->resume;
    if (fresh || o->given.lr) st->lr = o->lr;
    if (fresh || o->given.clip) st->clip = o->clip;
    if (fresh || o->given.warmup) st->warmup = o->warmup;
    if (fresh || o->given.accum) st->accum = o->accum;
    if (fresh || o->given.steps) st->total_steps = o->steps;
    loss_scale_setup(t);
}

// The training and validation token files and their samplers.
static int data_setup(Trainer *t) {
    const TrainOptions *o = &t->o;
    const Config *cfg = &t->p.cfg;
    const int seq = t->seq;
    const char *train_path = o->data;
    if (!train_path) {
        if (cfg->vocab < BUILTIN_VOCAB)
            return err_set("the built-in corpus needs a vocab of at least %d; model %s has %d (pass --data)",
                           BUILTIN_VOCAB, cfg->name, cfg->vocab);
        if (mkdirs(o->out_dir) != 0) return -1;
        if (builtin_prepare(o->out_dir, t->builtin_data, sizeof t->builtin_data) != 0) return -1;
        train_path = t->builtin_data;
    }
    if (tokens_open(&t->train_file, train_path, cfg->vocab) != 0) return -1;
    size_t n = t->train_file.count, train_end = n;
    if (o->val_data) {
        if (tokens_open(&t->val_file, o->val_data, cfg->vocab) != 0) return -1;
        t->have_val_file = 1;
    } else if (o->eval_every > 0 && o->val_frac > 0) {
        size_t held = (size_t)(n * (double)o->val_frac);
        if (held >= (size_t)seq + 1 && n - held >= (size_t)seq + 1) train_end = n - held;
    }
    const SampleMode mode = o->sequential ? SAMPLE_SEQUENTIAL : SAMPLE_RANDOM;
    if (dataset_init(&t->train, &t->train_file, 0, train_end, seq, mode, t->st.seed) != 0) return -1;
    if (t->st.data_rng) t->train.rng.s = t->st.data_rng;  // resume: continue the sampler exactly
    t->train.cursor = t->st.data_cursor;
    if (t->have_val_file) {
        if (dataset_init(&t->val, &t->val_file, 0, t->val_file.count, seq, SAMPLE_SEQUENTIAL, 0) != 0) return -1;
        t->have_val = 1;
    } else if (train_end < n) {
        if (dataset_init(&t->val, &t->train_file, train_end, n, seq, SAMPLE_SEQUENTIAL, 0) != 0) return -1;
        t->have_val = 1;
    }
    snprintf(t->data_desc, sizeof t->data_desc, "%s (%zu tokens, %zu for training)%s%s", train_path, n, train_end,
             t->have_val_file ? ", validation " : "", t->have_val_file ? o->val_data : "");
    return 0;
}

// Ascending ids that occur in the training and validation files (vocab compaction).
static int used_ids(Trainer *t) {
    const int vocab = t->p.cfg.vocab;
    unsigned char *seen = calloc(vocab, 1);
    t->vocab_rows = malloc(sizeof(int) * vocab);
    if (!seen || !t->vocab_rows) {
        free(seen);
        return err_set("out of memory");
    }
    for (size_t i = 0; i < t->train_file.count; i++) seen[tokens_get(&t->train_file, i)] = 1;
    if (t->have_val_file)
        for (size_t i = 0; i < t->val_file.count; i++) seen[tokens_get(&t->val_file, i)] = 1;
    t->n_vocab_rows = 0;
    for (int i = 0; i < vocab; i++)
        if (seen[i]) t->vocab_rows[t->n_vocab_rows++] = i;
    free(seen);
    return 0;
}

static int pipeline_setup(Trainer *t) {
    const TrainOptions *o = &t->o;
    PipelineOptions po = {.name = o->pipeline, .device = o->device, .compile_budget = o->compile_budget,
                          .precision = o->precision};
    if (o->compact_vocab) {
        if (used_ids(t) != 0) return -1;
        po.vocab_rows = t->vocab_rows;
        po.n_vocab_rows = t->n_vocab_rows;
    }
    if (strcmp(o->pipeline, "cpu") != 0) {
        char line[256];
        snprintf(line, sizeof line, "%s pipeline on %s: compiling kernels and allocating surfaces for %s ...",
                 o->pipeline, o->device, t->p.cfg.name);
        metrics_doing(&t->mt, line);
    }
    if (pipeline_init(&t->pl, &po, &t->p.cfg, t->seq) != 0) return -1;
    t->have_pipeline = 1;
    return 0;
}

static void banner(Trainer *t) {
    const TrainOptions *o = &t->o;
    Config flops_cfg = t->p.cfg;  // a compacted classifier multiplies only its active rows
    if (t->n_vocab_rows > 0) flops_cfg.vocab = t->n_vocab_rows;
    t->flops_per_window = metrics_flops_per_window(&flops_cfg, t->seq);
    RunInfo ri = {.cfg = &t->p.cfg, .pipeline = o->pipeline, .device = o->device, .precision = o->precision,
                  .blas = gemm_backend_name(), .data = t->data_desc, .val_data = o->val_data, .ckpt = o->ckpt,
                  .seq = t->seq, .resumed = o->resume, .n_vocab_rows = t->n_vocab_rows,
                  .kernels_compiled = t->pl.times.kernels_compiled,
                  .flops_per_update = t->flops_per_window * t->st.accum};
    metrics_banner(&t->mt, &ri, &t->st);
    for (int i = 0; i < t->changes.n; i++)
        metrics_change(&t->mt, t->changes.c[i].what, t->changes.c[i].from, t->changes.c[i].to);
    if (o->compact_vocab && !o->quiet)
        printf("  vocab     classifier compacted to the %d of %d ids that occur in the data (loss over those)\n",
               t->n_vocab_rows, t->p.cfg.vocab);
    if (t->pl.times.kernels_compiled && !o->quiet)
        printf("  device    %s: %lld kernels compiled in %.1f ms; loss scale %g%s\n", o->device,
               t->pl.times.kernels_compiled, t->pl.times.compile, t->st.loss_scale,
               t->st.loss_scale_dynamic ? " (dynamic)" : "");
}

int trainer_init(Trainer *t, const TrainOptions *o) {
    const double t0 = time_ms();
    memset(t, 0, sizeof *t);
    t->lock.fd = -1;
    t->o = *o;
    optim_defaults(&t->st);
    if (o->threads > 0) gemm_set_threads(o->threads);
    if (take_checkpoint(t) != 0) return -1;
    if (metrics_open(&t->mt, o->log_path, o->quiet) != 0) return -1;
    if ((o->resume ? model_resume(t) : model_new(t)) != 0) return -1;
    if (o->resume && trainer_reconcile(t) != 0) return -1;
    recipe_setup(t);
    if (state_alloc(t) != 0) return -1;
    t->seq = t->o.seq < t->p.cfg.seq_len ? t->o.seq : t->p.cfg.seq_len;
    if (data_setup(t) != 0) return -1;
    if (train_sample_init(t) != 0) return -1;
    if (run_id_record(t) != 0) return -1;
    if (t->st.total_steps > t->st.step && pipeline_setup(t) != 0) return -1;
    t->tok = malloc(sizeof(int) * t->seq);
    t->tgt = malloc(sizeof(int) * t->seq);
    if (!t->tok || !t->tgt) return err_set("out of memory");
    best_path(t->best, sizeof t->best, t->o.ckpt);
    if (io_check_output(t->best) != 0) return err_wrap("the best checkpoint");
    t->start_step = t->st.step;
    t->train_ms_before = t->st.train_ms;
    banner(t);
    t->setup_ms = time_ms() - t0;
    return 0;
}

void trainer_free(Trainer *t) {
    metrics_close(&t->mt);
    free(t->tok);
    free(t->tgt);
    free(t->vocab_rows);
    if (t->have_pipeline) pipeline_free(&t->pl);
    tokens_close(&t->train_file);
    if (t->have_val_file) tokens_close(&t->val_file);
    train_sample_free(t);
    params_free(&t->p);
    free(t->m);
    free(t->v);
    free(t->grads);
    io_unlock(&t->lock);
    memset(t, 0, sizeof *t);
    t->lock.fd = -1;
}
