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
#include "core/mem.h"
#include "core/gemm.h"
#include "core/threads.h"
#include "core/timer.h"
#include "data/builtin.h"
#include "model/lora.h"
#include "model/model_file.h"
#include "train/checkpoint.h"
#include "train/dist.h"
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
    if (t->st.lora.rank > 0) {  // the checkpoint holds the adapters; the base is the file it names
        t->lora = t->p;
        memset(&t->p, 0, sizeof t->p);
        char why[128];
        if (ckpt_lora_base(&t->p, &t->st, o->ckpt) != 0) return -1;
        if (!config_equal(&t->p.cfg, &t->lora.cfg, why, sizeof why))
            return err_set("%s: its adapters are for another model than its base %s (%s)", o->ckpt, t->st.lora_base,
                           why);
    }
    if (!o->model) return 0;
    Config want;
    char why[128];
    if (model_config(o->model, &want) != 0) return -1;
    if (o->res_scale > 0) want.res_scale = o->res_scale;
    if (!config_equal(&want, &t->p.cfg, why, sizeof why))
        return err_set("%s: checkpoint holds a different model than --model %s (%s)", o->ckpt, o->model, why);
    return 0;
}

// LoRA: a new run's adapters over the --model file, or a resumed run's given
// flags against the checkpoint's. t->tp is what is trained either way.
static int lora_setup(Trainer *t) {
    const TrainOptions *o = &t->o;
    TrainState *st = &t->st;
    t->tp = st->lora.rank > 0 || o->lora.rank > 0 ? &t->lora : &t->p;
    if (o->resume) {
        if (o->given.lora && memcmp(&o->lora, &st->lora, sizeof o->lora) != 0)
            return err_set("%s: --lora, --lora-alpha, --lora-targets, --lora-dropout and --train-norms come from the "
                           "checkpoint on --resume (its run: --lora %d --lora-alpha %g); leave them out",
                           o->ckpt, st->lora.rank, st->lora.alpha);
        return 0;
    }
    if (o->lora.rank <= 0) return 0;
    const char *model = o->model ? o->model : "";
    char base[PATH_MAX], ckpt[PATH_MAX], best[PATH_MAX], best_name[1100];
    best_path(best_name, sizeof best_name, o->ckpt);
    if (config_preset(&(Config){0}, model) == 0 ||
        (ends_with(model, ".json") && !ends_with(model, ".safetensors.index.json")))
        return err_set("--lora trains adapters over a pretrained model: --model must name its weights, found the "
                       "architecture-only '%s'", model);
    if (!realpath(model, base)) return err_set("--lora: --model %s: %s", model, strerror(errno));
    if (strlen(base) >= sizeof st->lora_base)
        return err_set("--lora: the base model's path is longer than %zu bytes: %s", sizeof st->lora_base - 1, base);
    // the adapters' checkpoint must not be written over the model they adapt
    if ((realpath(o->ckpt, ckpt) && !strcmp(ckpt, base)) || (realpath(best_name, best) && !strcmp(best, base)))
        return err_set("--lora: --ckpt %s is the base model itself: saving the adapters would destroy it", o->ckpt);
    if (o->res_scale > 0)
        return err_set("--lora with --res-scale: the adapters must adapt the base as its file defines it");
    snprintf(st->lora_base, sizeof st->lora_base, "%s", base);
    if (o->scratch) return err_set("--lora and --scratch: the adapters would adapt random weights");
    if (ckpt_lora_fingerprint(st->lora_base, &st->lora_base_bytes, &st->lora_base_fp) != 0) return -1;
    st->lora = o->lora;
    if (lora_init(&t->lora, &t->p.cfg, &st->lora) != 0) return -1;
    lora_init_random(&t->lora, &st->lora, &t->p, (uint64_t)o->seed);
    return 0;
}

// The part of the block each rank updates: under ZeRO-1 one contiguous shard
// per rank, boundaries on 16 floats (64 bytes); else all of it on every rank.
static int shards_setup(Trainer *t) {
    const size_t n = t->tp->n, N = (size_t)t->world;
    if (t->o.zero && N > 1 && n > (size_t)INT_MAX)  // the all-gather's offsets are MPI ints
        return err_set("--zero 1: %zu trained floats are more than MPI's int offsets reach (%d)", n, INT_MAX);
    t->shard_counts = calloc(N, sizeof(size_t));
    if (!t->shard_counts) return err_set("out of memory");
    t->shard = (OptimShard){0, n};
    if (!t->o.zero) {
        for (size_t r = 0; r < N; r++) t->shard_counts[r] = n;
        return 0;
    }
    dist_split(n, (int)N, t->shard_counts);
    for (int r = 0; r < t->rank; r++) t->shard.lo += t->shard_counts[r];
    t->shard.hi = t->shard.lo + t->shard_counts[t->rank];
    return 0;
}

// Keeps the shard's part of a whole-block buffer (freed).
static float *keep_shard(float *full, OptimShard sh) {
    float *part = mem_alloc_big(sizeof(float) * (sh.hi - sh.lo + 1));
    if (part) memcpy(part, full + sh.lo, sizeof(float) * (sh.hi - sh.lo));
    free(full);
    return part;
}

static int state_alloc(Trainer *t) {
    size_t n = t->tp->n;
    if (shards_setup(t) != 0) return -1;
    if (t->o.zero && t->m && t->v) {  // a checkpoint holds every moment: this rank keeps its own
        t->m = keep_shard(t->m, t->shard), t->v = keep_shard(t->v, t->shard);
    }
    const size_t nm = t->shard.hi - t->shard.lo;
    if (!t->m) t->m = mem_alloc_big(nm * sizeof(float));
    if (!t->v) t->v = mem_alloc_big(nm * sizeof(float));
    t->grads = mem_alloc_big(n * sizeof(float));
    t->layer_pushed = calloc((size_t)t->p.cfg.n_layers, 1);
    if (!t->m || !t->v || !t->grads || !t->layer_pushed)
        return err_set("out of memory for optimizer state (%zu params)", n);
    optim_bounds_shard(t->tp, t->m, t->v, t->shard, &t->bounds);
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
        // rank 0 writes the corpus; the others wait for it, then reuse its files
        if (t->rank == 0 && builtin_prepare(o->out_dir, t->builtin_data, sizeof t->builtin_data) != 0) return -1;
        if (dist_barrier() != 0) return -1;
        if (t->rank != 0 && builtin_prepare(o->out_dir, t->builtin_data, sizeof t->builtin_data) != 0) return -1;
        train_path = t->builtin_data;
    }
    if (tokens_open(&t->train_file, train_path, cfg->vocab) != 0) return -1;
    size_t n = t->train_file.count, train_end = n;
    if (o->val_data) {
        if (tokens_open(&t->val_file, o->val_data, cfg->vocab) != 0) return -1;
        t->have_val_file = 1;
    } else if (o->val_frac > 0) {  // the run's identity: the same split on every resume
        size_t held = (size_t)(n * (double)o->val_frac);
        if (held >= (size_t)seq + 1 && n - held >= (size_t)seq + 1) train_end = n - held;
    }
    const SampleMode mode = o->sequential ? SAMPLE_SEQUENTIAL : SAMPLE_RANDOM;
    if (dataset_init(&t->train, &t->train_file, 0, train_end, seq, mode, t->st.seed) != 0) return -1;
    dataset_restore(&t->train, t->st.data_rng, t->st.data_cursor);  // a resume continues exactly
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
    if (o->device_head && strcmp(o->pipeline, "dynamic"))  // the pipeline may have come from the checkpoint
        return err_set("--device-head is for the dynamic pipeline, not %s (static-ane runs its head on the device "
                       "already)", o->pipeline);
    if (o->serial_staging && strcmp(o->pipeline, "dynamic"))
        return err_set("--serial-staging is for the dynamic pipeline, not %s (the only one that stages weights)",
                       o->pipeline);
    PipelineOptions po = {.name = o->pipeline, .device = o->device, .compile_budget = o->compile_budget,
                          .precision = o->precision, .recompute = o->recompute,
                          .no_ane_extras = o->no_ane_extras, .device_head = o->device_head,
                          .serial_staging = o->serial_staging,
                          .mil_dialect = o->mil_dialect && !strcmp(o->mil_dialect, "ios16")};
    if (t->tp == &t->lora) po.lora = &t->lora, po.lora_cfg = &t->st.lora, po.lora_seed = t->st.seed;
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
                  .flops_per_update = t->flops_per_window * t->st.accum, .peak_gflops = o->peak_gflops,
                  .world = t->world};
    metrics_banner(&t->mt, &ri, &t->st);
    const char *note = gemm_backend_note();
    if (note && !o->quiet) printf("  note      %s\n", note);
    for (int i = 0; i < t->changes.n; i++)
        metrics_change(&t->mt, t->changes.c[i].what, t->changes.c[i].from, t->changes.c[i].to);
    if (t->tp == &t->lora && !o->quiet) {
        char targets[64];
        lora_format_targets(t->st.lora.targets, targets, sizeof targets);
        printf("  lora      rank %d, alpha %g, targets %s%s%s: %zu trained of %zu (base frozen: %s)\n",
               t->st.lora.rank, t->st.lora.alpha, targets, t->st.lora.train_norms ? ", norms" : "",
               t->st.lora.dropout > 0 ? ", dropout" : "", t->lora.n, t->p.n, t->st.lora_base);
    }
    if (o->compact_vocab && !o->quiet)
        printf("  vocab     classifier compacted to the %d of %d ids that occur in the data (loss over those)\n",
               t->n_vocab_rows, t->p.cfg.vocab);
    if (t->pl.times.kernels_compiled && !o->quiet)
        printf("  device    %s: %lld kernels compiled in %.1f ms; loss scale %g%s\n", o->device,
               t->pl.times.kernels_compiled, t->pl.times.compile, t->st.loss_scale,
               t->st.loss_scale_dynamic ? " (dynamic)" : "");
}

// Data parallel: rank 0 speaks for the run (lock, log, lines, samples); the
// others are quiet. --accum counts windows per rank, so an update averages
// world x --accum of them. Threads default to this host's CPUs shared among
// its ranks (two ranks of two threads on two cores fight for them).
static void world_setup(Trainer *t) {
    t->rank = dist_rank();
    t->world = dist_size();
    if (t->rank != 0) {
        t->o.quiet = 1;
        t->o.log_path = NULL;
    }
    t->o.accum *= t->world;
    int threads = t->o.threads;
    if (threads <= 0 && dist_local_size() > 1) threads = threads_default_count() / dist_local_size();
    if (threads <= 0 && dist_local_size() > 1) threads = 1;
    if (threads > 0) gemm_set_threads(threads);
    // on one host the sums are copies through shared memory that compete with
    // the backward for the same cores (measured slower on 2 cores: README)
    const char *ov = t->o.comm_overlap ? t->o.comm_overlap : "auto";
    t->overlap = t->world > 1 && !t->o.zero && dist_can_overlap() &&
                 (!strcmp(ov, "on") || (!strcmp(ov, "auto") && dist_local_size() < t->world));
}

// Every rank takes the same share of an update (a resume keeps the
// checkpoint's windows per update, so its N must divide them).
static int world_check(Trainer *t) {
    if (t->st.accum % t->world == 0) return 0;
    return err_set("%s: its updates average %d windows, which %d ranks cannot share evenly (HINT: give --accum, "
                   "the windows per rank; or resume with a number of ranks that divides %d)",
                   t->o.ckpt, t->st.accum, t->world, t->st.accum);
}

// What every rank must agree on, as "name value" fields separated by " | ".
static void world_describe(const Trainer *t, char *out, size_t n) {
    const TrainState *st = &t->st;
    const uint32_t w = crc32_update(crc32_update(0, t->p.data, t->p.n * sizeof(float)), t->tp->data,
                                    t->tp == &t->p ? 0 : t->tp->n * sizeof(float));
    snprintf(out, n,
             "--model %s (%zu params, weights CRC %08x) | data %llu bytes, fingerprint %016llx | --seq %d | --accum %d | --lr %g | --steps %lld | "
             "update %lld | --seed %llu | --pipeline %s | --device %s | --precision %s | --clip %g | --warmup %d | "
             "--compact-vocab %d | --sequential %d | --eval-every %d | --eval-windows %d | --stop-after %lld | "
             "--comm-overlap %d | --zero %d",
             t->p.cfg.name, t->p.n, w, (unsigned long long)st->id.data_bytes,
             (unsigned long long)st->id.data_fp, t->seq, st->accum / t->world, st->lr, (long long)st->total_steps,
             (long long)st->step, (unsigned long long)st->seed, t->o.pipeline, t->o.device, t->o.precision, st->clip,
             st->warmup, t->o.compact_vocab, t->o.sequential, t->o.eval_every, t->o.eval_windows,
             t->o.stop_after, t->overlap, t->o.zero);
}

// The first " | "-separated field where a and b differ, as a message.
static int field_differs(int rank, const char *a, const char *b) {
    size_t i = 0, f = 0;
    for (; a[i] && a[i] == b[i]; i++)
        if (!strncmp(a + i, " | ", 3)) f = i + 3;
    const char *ea = strstr(a + f, " | "), *eb = strstr(b + f, " | ");
    return err_set("rank %d was started with a different run than rank 0: %.*s there, %.*s on rank 0", rank,
                   ea ? (int)(ea - a - f) : 300, a + f, eb ? (int)(eb - b - f) : 300, b + f);
}

// Ranks started with different flags, data or weights would average
// gradients of different runs. Every rank learns the first rank whose run
// differs from rank 0's and that rank's run, so all of them refuse together
// with the same message naming the first difference.
static int world_agree(Trainer *t) {
    if (t->world == 1) return 0;
    static char mine[4096], root[4096], other[4096];
    world_describe(t, mine, sizeof mine);
    memcpy(root, mine, sizeof root);
    if (dist_bcast(root, sizeof root, 0) != 0) return -1;
    double *differs = calloc((size_t)t->world, sizeof(double));
    if (!differs) return err_set("out of memory");
    differs[t->rank] = strcmp(mine, root) != 0;
    int first = t->world, rc = dist_sum_f64(differs, (size_t)t->world);
    for (int r = t->world - 1; r >= 0; r--)
        if (differs[r] > 0) first = r;
    free(differs);
    if (rc != 0 || first == t->world) return rc;
    memcpy(other, mine, sizeof other);
    if (dist_bcast(other, sizeof other, first) != 0) return -1;
    return field_differs(first, other, root);
}

static void world_note(Trainer *t) {
    if (t->world == 1) return;
    char line[400];
    int at = snprintf(line, sizeof line, "data parallel: %s; each update averages %d windows, %d per rank; "
                      "gradients summed %s", dist_name(), t->st.accum, t->st.accum / t->world,
                      t->o.zero ? "by shard (reduce-scatter)" : t->overlap ? "layer by layer during the backward"
                                                                 : "after the backward");
    if (t->o.zero)
        snprintf(line + at, sizeof line - at, "; ZeRO-1: each rank keeps the Adam moments of its shard, "
                 "%.1f%% of the %zu floats (rank 0: [%zu, %zu))", 100.0 * (double)(t->shard.hi - t->shard.lo) / (double)t->tp->n,
                 t->tp->n, t->shard.lo, t->shard.hi);
    metrics_note(&t->mt, line);
}

int trainer_init(Trainer *t, const TrainOptions *o) {
    const double t0 = time_ms();
    memset(t, 0, sizeof *t);
    t->t_start = t0;
    t->lock.fd = -1;
    t->o = *o;
    world_setup(t);
    optim_defaults(&t->st);
    if (t->rank == 0 && take_checkpoint(t) != 0) return -1;
    if (metrics_open(&t->mt, t->o.log_path, t->o.quiet) != 0) return -1;
    if ((o->resume ? model_resume(t) : model_new(t)) != 0) return -1;
    if (o->resume && trainer_reconcile(t) != 0) return -1;
    if (lora_setup(t) != 0) return -1;
    recipe_setup(t);
    if (world_check(t) != 0) return -1;
    if (state_alloc(t) != 0) return -1;
    t->seq = t->o.seq < t->p.cfg.seq_len ? t->o.seq : t->p.cfg.seq_len;
    // a new run that never evaluates holds nothing out unless --val-frac says so; the
    // fraction recorded is the one applied, so every resume splits the data the same way
    if (!o->resume && t->o.eval_every <= 0 && !t->o.given.val_frac) t->o.val_frac = 0;
    if (data_setup(t) != 0) return -1;
    if (train_sample_init(t) != 0) return -1;
    if (run_id_record(t) != 0) return -1;
    // (a process restarted for its compile budget may still owe the last update's evaluation)
    if ((t->st.total_steps > t->st.step || t->st.tail_pending) && pipeline_setup(t) != 0) return -1;
    t->tok = malloc(sizeof(int) * t->seq);
    t->tgt = malloc(sizeof(int) * t->seq);
    if (!t->tok || !t->tgt) return err_set("out of memory");
    best_path(t->best, sizeof t->best, t->o.ckpt);
    if (t->rank == 0 && io_check_output(t->best) != 0) return err_wrap("the best checkpoint");
    t->start_step = t->st.step;
    t->train_ms_before = t->st.train_ms;
    t->compile_ms_before = t->st.compile_ms;
    t->wall_ms_before = t->st.wall_ms;
    t->compiles_before = t->st.compiles;
    if (world_agree(t) != 0) return -1;
    banner(t);
    world_note(t);
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
    params_free(&t->lora);
    free(t->m);
    free(t->v);
    free(t->grads);
    free(t->layer_pushed);
    free(t->shard_counts);
    io_unlock(&t->lock);
    memset(t, 0, sizeof *t);
    t->lock.fd = -1;
}
