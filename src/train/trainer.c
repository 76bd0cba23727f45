// trainer: see trainer.h. Setup lives in train_setup.c, resume checks in
// train_resume.c; this file is the loop: one update, evaluation, saving.
#include "train/trainer.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "ane/device.h"
#include "core/timer.h"
#include "train/checkpoint.h"
#include "train/dist.h"
#include "train/train_internal.h"

void trainer_defaults(TrainOptions *o) {
    memset(o, 0, sizeof *o);
    TrainState recipe;
    memset(&recipe, 0, sizeof recipe);
    optim_defaults(&recipe);  // the recipe's defaults live there, once
    o->lr = recipe.lr;
    o->clip = recipe.clip;
    o->warmup = recipe.warmup;
    o->accum = recipe.accum;
    o->ckpt = "runs/ckpt.bin";
    o->pipeline = "cpu";
    o->device = "sim";
    o->precision = "fp32";
    o->comm_overlap = "auto";
    o->compile_budget = 100;
    o->lora_targets = "q,k,v,o,w1,w2,w3";
    o->out_dir = "runs";
    o->steps = 10000;
    o->seq = 256;
    o->val_frac = 0.05f;
    o->eval_every = 100;
    o->eval_windows = 20;
    o->save_every = 100;
    o->print_every = 10;
    o->max_skips = 10;
    o->res_scale = 0.0f;  // 0 = keep the model's
    o->seed = 42;
}

void trainer_builtin_recipe(TrainOptions *o) {
    if (!o->given.steps) o->steps = 1000;
    if (!o->given.lr) o->lr = 2e-3f;
    if (!o->given.accum) o->accum = 4;
    if (!o->given.warmup) o->warmup = 20;
}

// --- signals: finish the current step, save, exit 0 ----------------------------------

static volatile sig_atomic_t g_stop, g_sample_now;
static void on_signal(int sig) {
    if (sig == SIGUSR1) g_sample_now = 1;
    else g_stop = 1;
}

static void catch_signal(int sig) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(sig, &sa, NULL);
}

// SIGUSR1 (a sample, please) is caught from the start: its default action
// would end the process. SIGINT/SIGTERM only once the loop runs, so that
// Ctrl-C still interrupts a long load at once.
static void catch_stop_signals(void) {
    g_stop = 0;
    catch_signal(SIGINT);
    catch_signal(SIGTERM);
}

// --- one update ---------------------------------------------------------------------------

static void times_add_delta(PhaseTimes *acc, const PhaseTimes *after, const PhaseTimes *before) {
    acc->forward += after->forward - before->forward;
    acc->backward += after->backward - before->backward;
    acc->device += after->device - before->device;
    acc->staging += after->staging - before->staging;
    acc->cpu_ops += after->cpu_ops - before->cpu_ops;
    acc->cpu_cls += after->cpu_cls - before->cpu_cls;
    acc->cpu_io += after->cpu_io - before->cpu_io;
    acc->io_bytes += after->io_bytes - before->io_bytes;
    acc->dw_wait += after->dw_wait - before->dw_wait;
    acc->compile += after->compile - before->compile;
    acc->device_evals += after->device_evals - before->device_evals;
    acc->kernels_compiled += after->kernels_compiled - before->kernels_compiled;
}

// --- the gradient all-reduce --------------------------------------------------------------

// Queues layer l's slice of every per-layer tensor of the trained block for
// the overlapped sum (the pipeline's layer_done, during the last window's backward).
static void push_layer(void *ctx, int l) {
    Trainer *t = ctx;
    const int L = t->p.cfg.n_layers;
    for (int i = 0; i < t->tp->n_tensors; i++) {
        const TensorDesc *d = &t->tp->t[i];
        const size_t per = d->numel / (size_t)L;
        if (d->per_layer && dist_sum_push(t->grads + d->offset + (size_t)l * per, per) != 0) t->push_failed = 1;
    }
    t->layer_pushed[l] = 1;
}

// Every rank ends with the gradient sum (under ZeRO-1: of its shard) and the
// mean loss of all st->accum windows: the single-process update's numbers up
// to float summation order. Overlapped: the layers the backward has not
// queued (all of them on the device pipelines) and the tensors outside the
// layers go last. One rank of one: no-ops, and the loss is the same division as ever.
static int all_reduce(Trainer *t, UpdateResult *r, double loss_sum) {
    const double tc = time_ms();
    int rc = 0;
    if (t->o.zero && t->world > 1) {
        rc = dist_reduce_scatter_f32(t->grads, t->shard_counts);
        t->comm_ms += time_ms() - tc;
    } else if (t->overlap) {
        for (int l = t->p.cfg.n_layers - 1; l >= 0; l--)
            if (!t->layer_pushed[l]) push_layer(t, l);
        for (int i = 0; i < t->tp->n_tensors; i++) {
            const TensorDesc *d = &t->tp->t[i];
            if (!d->per_layer && dist_sum_push(t->grads + d->offset, d->numel) != 0) t->push_failed = 1;
        }
        double busy = 0;
        rc = dist_sum_wait(&busy);
        t->comm_ms += busy;
        if (rc == 0 && t->push_failed) rc = err_wrap("rank %d: the gradient sums", t->rank);
    } else {
        rc = dist_sum_f32(t->grads, t->tp->n);
        t->comm_ms += time_ms() - tc;
    }
    if (rc != 0 || dist_sum_f64(&loss_sum, 1) != 0) return -1;
    r->loss = (float)(loss_sum / t->st.accum);
    t->comm_wait_ms += time_ms() - tc;
    return 0;
}

// Accumulates the gradients of this rank's windows into t->grads and the sum
// of their losses into *loss_sum. An update is st->accum windows over all
// ranks; rank r of N takes windows r, r+N, r+2N, ... of them. Overlapped, the
// last window's backward queues each layer's sums as it finishes the layer.
static int micro_steps(Trainer *t, UpdateResult *r, double *loss_sum) {
    TrainState *st = &t->st;
    pipeline_grads_begin(&t->pl, t->grads, t->tp->n);
    *loss_sum = 0;
    const int n = st->accum / t->world;
    if (t->overlap) memset(t->layer_pushed, 0, (size_t)t->p.cfg.n_layers);
    for (int micro = 0; micro < n; micro++) {
        double td = time_ms();
        dataset_skip(&t->train, (uint64_t)t->rank);
        t->pl.window = t->train.cursor;  // a function of the run's position: the same after a resume
        dataset_next(&t->train, t->tok, t->tgt);
        dataset_skip(&t->train, (uint64_t)(t->world - 1 - t->rank));
        r->data_ms += time_ms() - td;
        float loss;
        const int last = micro == n - 1 && t->overlap;
        t->pl.layer_done = last ? push_layer : NULL, t->pl.layer_done_ctx = t;
        const int rc = t->pl.step(&t->pl, &t->p, t->tok, t->tgt, t->grads, st->loss_scale, &loss);
        t->pl.layer_done = NULL;
        if (rc != 0) {
            if (last) dist_sum_wait(NULL);  // no queued sum may still write into the block
            return -1;
        }
        *loss_sum += loss;
    }
    return 0;
}

// Prepare -> AdamW -> restage, or a skip when anything is non-finite.
static int apply_update(Trainer *t, UpdateResult *r) {
    TrainState *st = &t->st;
    float grad_mul = 1.0f;
    r->applied = 0;
    if (!isfinite(r->loss)) {
        st->skipped++;
        metrics_skip(&t->mt, st->step + 1, "non-finite loss", r->loss, NAN, st->loss_scale);
        return 0;
    }
    // under ZeRO-1 each rank holds its shard's gradients: the norm and the
    // verdict on a finite update are the ranks' together
    const OptimShard sh = t->shard;
    double sumsq = optim_sumsq(t->grads + sh.lo, sh.hi - sh.lo);
    if (t->o.zero && dist_sum_f64(&sumsq, 1) != 0) return -1;
    if (!optim_prepare_sumsq(st, sumsq, &grad_mul, &r->grad_norm)) {
        metrics_skip(&t->mt, st->step + 1, "non-finite gradient", r->loss, r->grad_norm, st->loss_scale);
        return 0;
    }
    st->adam_t++;
    int bad = !optim_update_finite_shard(t->tp, t->grads, t->m, t->v, sh, st, r->lr, grad_mul, r->grad_norm,
                                         &t->bounds);
    if (t->o.zero && dist_any(&bad) != 0) return -1;
    if (bad) {
        st->adam_t--;
        optim_record_skip(st);
        metrics_skip(&t->mt, st->step + 1, "the update would make weights non-finite", r->loss, r->grad_norm,
                     st->loss_scale);
        return 0;
    }
    optim_adamw_shard(t->tp, t->grads, t->m, t->v, sh, st, r->lr, grad_mul, &t->bounds);
    if (t->o.zero && dist_allgather_f32(t->tp->data, t->shard_counts) != 0) return -1;  // every shard's new weights
    if (t->pl.params_changed(&t->pl, &t->p) != 0) return -1;
    r->applied = 1;
    return 0;
}

int trainer_update(Trainer *t, UpdateResult *r) {
    TrainState *st = &t->st;
    memset(r, 0, sizeof *r);
    const double t0 = time_ms();
    const PhaseTimes before = t->pl.times;
    r->lr = optim_lr(st, st->step);
    double loss_sum;
    if (micro_steps(t, r, &loss_sum) != 0) return -1;
    if (all_reduce(t, r, loss_sum) != 0) return -1;
    const double to = time_ms();
    if (apply_update(t, r) != 0) return -1;
    r->optim_ms = time_ms() - to;
    st->step++;
    st->tokens_seen += (long long)st->accum * t->seq;
    st->last_loss = r->loss;
    dataset_state(&t->train, &st->data_rng, &st->data_cursor);
    r->ms = time_ms() - t0;
    st->train_ms += r->ms;
    r->forward_ms = t->pl.times.forward - before.forward;
    r->backward_ms = t->pl.times.backward - before.backward;
    times_add_delta(&t->train_times, &t->pl.times, &before);
    times_add_delta(&r->pipeline, &t->pl.times, &before);
    t->mt.optim_ms += r->optim_ms;
    t->mt.data_ms += r->data_ms;
    return 0;
}

// --- evaluation and saving ---------------------------------------------------------------

// Rank r evaluates windows r, r+N, ...; the sums meet in one reduction, so a
// rank that stops early for a signal never leaves the others waiting.
int trainer_evaluate(Trainer *t, float *loss) {
    size_t n = dataset_num_windows(&t->val);
    if (t->o.eval_windows > 0 && (size_t)t->o.eval_windows < n) n = (size_t)t->o.eval_windows;
    double sum_stop[2] = {0, 0};
    for (size_t i = (size_t)t->rank; i < n; i += (size_t)t->world) {
        if (g_stop) {
            sum_stop[1] = 1;
            break;
        }
        metrics_eval_progress(&t->mt, (long long)i, (long long)n);
        dataset_window(&t->val, i, t->tok, t->tgt);
        float l;
        if (t->pl.eval(&t->pl, &t->p, t->tok, t->tgt, &l) != 0) return -1;
        sum_stop[0] += l;
    }
    if (dist_sum_f64(sum_stop, 2) != 0) return -1;
    if (sum_stop[1] > 0) return 1;
    *loss = n ? (float)(sum_stop[0] / n) : NAN;
    return 0;
}

static void save_progress(void *ctx, double fraction) {
    const Trainer *t = ctx;
    metrics_save_progress((Metrics *)&t->mt, t->saving, fraction);
}

// Large checkpoints (>= 256 MiB) show progress on a terminal.
static int save_one(Trainer *t, const char *path, const float *m, const float *v) {
    t->saving = path;
    const int big = t->tp->n * 12.0 >= 256.0 * 1024 * 1024;
    int rc = ckpt_save_progress(path, t->tp, m, v, &t->st, big ? save_progress : NULL, t);
    if (rc != 0) return err_wrap("saving the checkpoint failed (the previous checkpoint, if any, is intact)");
    metrics_checkpoint(&t->mt, t->st.step, path, 0);
    return 0;
}

// The moments a checkpoint holds, on rank 0: its own, or under ZeRO-1 every
// rank's shard gathered into *m, *v (the caller frees them). Every rank calls it.
static int moments_gather(Trainer *t, float **m, float **v) {
    *m = t->m, *v = t->v;
    if (!t->o.zero || t->world == 1) return 0;
    const size_t n = t->tp->n;
    float *fm = t->rank == 0 ? malloc(sizeof(float) * n) : NULL, *fv = t->rank == 0 ? malloc(sizeof(float) * n) : NULL;
    int oom = t->rank == 0 && (!fm || !fv);
    if (dist_any(&oom) != 0 || oom) {
        free(fm), free(fv);
        return err_set("out of memory for the moments of the checkpoint (ZeRO-1 gathers them on rank 0)");
    }
    if (dist_gather_f32(t->m, fm, t->shard_counts, 0) != 0 || dist_gather_f32(t->v, fv, t->shard_counts, 0) != 0) {
        free(fm), free(fv);
        return -1;
    }
    *m = fm, *v = fv;
    return 0;
}

static void moments_release(const Trainer *t, float *m, float *v) {
    if (m != t->m) free(m);
    if (v != t->v) free(v);
}

int trainer_save(Trainer *t, int best_too) {
    float *m, *v;
    if (moments_gather(t, &m, &v) != 0) return -1;
    if (t->rank != 0) return 0;  // every rank holds the same state: one writes it
    const double tc = time_ms();
    TrainState *st = &t->st;  // the run's totals over its processes, this one included
    st->compile_ms = t->compile_ms_before + t->pl.times.compile;
    st->compiles = t->compiles_before + t->pl.times.kernels_compiled;
    st->wall_ms = t->wall_ms_before + (tc - t->t_start);
    int rc = save_one(t, t->o.ckpt, m, v);
    if (rc == 0 && best_too) {
        // the same update: a second name for the same bytes, not a second copy
        if (ckpt_link(t->o.ckpt, t->best) == 0) metrics_checkpoint(&t->mt, t->st.step, t->best, 1);
        else rc = save_one(t, t->best, m, v);
    }
    moments_release(t, m, v);
    t->mt.ckpt_ms += time_ms() - tc;
    return rc;
}

// Saves only the best checkpoint (an evaluation improved between latest saves).
static int save_best(Trainer *t) {
    float *m, *v;
    if (moments_gather(t, &m, &v) != 0) return -1;
    if (t->rank != 0) return 0;
    const double tc = time_ms();
    int rc = save_one(t, t->best, m, v);
    moments_release(t, m, v);
    t->mt.ckpt_ms += time_ms() - tc;
    return rc;
}

// --- the loop -------------------------------------------------------------------------------

// Evaluates when due; *improved says whether a new best checkpoint is due.
// Returns 0, or -1 on failure; an evaluation interrupted by a signal is dropped.
static int maybe_evaluate(Trainer *t, int last, int *improved) {
    TrainState *st = &t->st;
    *improved = 0;
    if (!t->have_val || t->o.eval_every <= 0 || !(st->step % t->o.eval_every == 0 || last)) return 0;
    const double te = time_ms();
    float vl;
    int rc = trainer_evaluate(t, &vl);
    t->mt.eval_ms += time_ms() - te;
    if (rc < 0) return -1;
    if (rc > 0) {
        metrics_note(&t->mt, "evaluation interrupted by a signal (not recorded)");
        return 0;
    }
    *improved = vl < st->best_val_loss;
    if (*improved) st->best_val_loss = vl;
    metrics_eval(&t->mt, st->step, vl, *improved);
    *improved = *improved && t->o.save_every > 0;
    return 0;
}

static void step_record(Trainer *t, const UpdateResult *r, long long stop_at) {
    const TrainState *st = &t->st;
    StepRecord rec = {
        .step = st->step, .total = st->total_steps, .loss = r->loss, .lr = r->lr, .ms = r->ms,
        .tokens = st->accum * t->seq, .grad_norm = r->grad_norm, .data_ms = r->data_ms, .optim_ms = r->optim_ms,
        .forward_ms = r->forward_ms, .backward_ms = r->backward_ms, .loss_scale = st->loss_scale,
        .device_ms = r->pipeline.device, .staging_ms = r->pipeline.staging, .cpu_ops_ms = r->pipeline.cpu_ops,
        .cpu_cls_ms = r->pipeline.cpu_cls, .cpu_io_ms = r->pipeline.cpu_io, .dw_wait_ms = r->pipeline.dw_wait,
        .io_mb = r->pipeline.io_bytes / 1e6,
    };
    int print = st->step == t->start_step + 1 || st->step % t->o.print_every == 0 || st->step == stop_at;
    metrics_step(&t->mt, &rec, print);
}

// Whether any rank was asked to stop (SIGINT/SIGTERM). Every rank asks at the
// same points of the loop, so all of them leave it after the same update.
static int stop_agreed(int *stop) {
    *stop = g_stop != 0;
    return dist_any(stop);
}

// Whether the next compile would exceed the process's budget (static pipelines).
static int restart_due(Trainer *t) { return t->pl.restart_due && t->pl.restart_due(&t->pl); }

// Saves for an exec() restart after the current update; tail: the evaluation,
// sample and save due after it are left for the next process.
static int save_for_restart(Trainer *t, int tail, long long stop_at) {
    // every rank decides alike: a stop asked for now ends the run here instead
    if (stop_agreed(&t->stop) != 0) return -1;
    t->st.tail_pending = tail;  // the evaluation owed is run by whichever process resumes
    if (!t->stop) t->st.restarts++;
    int rc = trainer_save(t, 0);
    t->st.tail_pending = 0;
    if (rc != 0) return -1;
    if (t->stop) return 0;
    metrics_restart(&t->mt, t->st.step, device_process_compiles(),
                    "compile budget: the next update's kernels would not fit in this process");
    // what the next process cannot read from the checkpoint: where --stop-after ends
    char at[32];
    snprintf(at, sizeof at, "%lld", stop_at);
    setenv("ANETRAIN_STOP_AT", at, 1);
    if (t->lock.held) snprintf(at, sizeof at, "%d", t->lock.fd), setenv("ANETRAIN_LOCK_FD", at, 1);
    return TRAINER_RESTART;
}

// What follows update st->step: the evaluation, a sample, the checkpoints.
static int after_update(Trainer *t, long long stop_at, long long *saved) {
    TrainState *st = &t->st;
    const int last = st->step == stop_at;
    int best_due;
    if (maybe_evaluate(t, st->step == st->total_steps, &best_due) != 0) return -1;
    if (t->rank == 0 && (g_sample_now || (t->o.sample_every > 0 && st->step % t->o.sample_every == 0))) {
        g_sample_now = 0;
        if (train_sample(t) != 0) return -1;
    }
    if (stop_agreed(&t->stop) != 0) return -1;
    const int latest_due = last || t->stop || (t->o.save_every > 0 && st->step % t->o.save_every == 0);
    if (latest_due) {
        if (trainer_save(t, best_due) != 0) return -1;
        *saved = st->step;
    } else if (best_due && save_best(t) != 0) {
        return -1;
    }
    return 0;
}

static int eval_due(const Trainer *t) {
    const TrainState *st = &t->st;
    return t->have_val && t->o.eval_every > 0 && (st->step % t->o.eval_every == 0 || st->step == st->total_steps);
}

// Returns 0, -1 on failure, or TRAINER_RESTART (saved; the caller replaces the process).
static int train_loop(Trainer *t, int *skips_in_row) {
    TrainState *st = &t->st;
    long long stop_at = t->o.stop_after > 0 && t->start_step + t->o.stop_after < st->total_steps
                            ? t->start_step + t->o.stop_after : st->total_steps;
    const char *restarted_at = getenv("ANETRAIN_STOP_AT");  // a process replacing one that restarted
    if (restarted_at && t->o.resume) {
        const long long at = atoll(restarted_at);
        if (at >= st->step && at < stop_at) stop_at = at;
        unsetenv("ANETRAIN_STOP_AT");
    }
    long long saved = st->step;  // the update the latest checkpoint holds (none new yet)
    if (st->tail_pending) {      // the process before this one restarted right after an update
        st->tail_pending = 0;
        t->ran_tail = 1;
        if (after_update(t, stop_at, &saved) != 0) return -1;
    }
    for (;;) {
        if (stop_agreed(&t->stop) != 0) return -1;
        // a stop that reached a rank after the last agreement (while rank 0 saved or
        // evaluated, say): the update it follows is saved before leaving
        if (t->stop && saved != st->step && trainer_save(t, 0) != 0) return -1;
        if (st->step >= stop_at || t->stop) break;
        if (restart_due(t)) return save_for_restart(t, 0, stop_at);
        UpdateResult r;
        if (trainer_update(t, &r) != 0) return -1;
        *skips_in_row = r.applied ? 0 : *skips_in_row + 1;
        if (*skips_in_row >= t->o.max_skips)
            return err_set("%d updates in a row had a non-finite loss, gradient or result (last loss %g); "
                           "stopping. The last checkpoint is intact; try a lower --lr",
                           *skips_in_row, r.loss);
        step_record(t, &r, stop_at);
        if (eval_due(t) && restart_due(t)) return save_for_restart(t, 1, stop_at);
        if (after_update(t, stop_at, &saved) != 0) return -1;
    }
    return 0;
}

// After the report (rank 0): each rank's throughput and time in the
// all-reduce, gathered by a sum of vectors that are zero but for one slot.
static int report_world(Trainer *t) {
    if (t->world == 1) return 0;
    double *v = calloc((size_t)t->world * 3, sizeof(double));
    if (!v) return err_set("out of memory");
    const double ms = t->st.train_ms - t->train_ms_before;
    const double tokens = (double)(t->st.step - t->start_step) * (t->st.accum / t->world) * t->seq;
    v[2 * t->rank] = ms > 0 ? tokens / (ms / 1000.0) : 0;
    v[2 * t->rank + 1] = t->comm_ms;
    v[2 * t->world + t->rank] = t->comm_wait_ms;
    int rc = dist_sum_f64(v, (size_t)t->world * 3);
    char line[1024];
    int at = snprintf(line, sizeof line, "%d ranks, tokens/s per rank (all-reduce ms, of which waited for%s):",
                      t->world, t->overlap ? "; the rest overlapped the backward" : "");
    for (int r = 0; rc == 0 && r < t->world && at < (int)sizeof line - 40; r++)
        at += snprintf(line + at, sizeof line - at, " %d: %.0f (%.0f, %.0f)", r, v[2 * r], v[2 * r + 1],
                       v[2 * t->world + r]);
    WorldRecord w = {.ranks = t->world, .overlap = t->overlap};
    for (int r = 0; r < t->world; r++) {
        w.tokens_per_s += v[2 * r];
        w.comm_ms += v[2 * r + 1] / t->world, w.comm_wait_ms += v[2 * t->world + r] / t->world;
    }
    if (rc == 0) metrics_world(&t->mt, &w, line);
    free(v);
    return rc;
}

int trainer_run(const TrainOptions *o) {
    const double t_start = time_ms();
    Trainer t;
    g_sample_now = 0;
    catch_signal(SIGUSR1);
    int rc = trainer_init(&t, o);
    if (rc == 0) {
        catch_stop_signals();
        int skips = 0;
        const long long before = t.st.step;
        rc = train_loop(&t, &skips);
        if (rc == 0 && t.stop) metrics_note(&t.mt, "signal received: saved and stopped");
        // nothing ran (--steps 0, or a finished run resumed): the checkpoint is still written
        if (rc == 0 && t.st.step == before) rc = trainer_save(&t, 0);
        if (rc == 0 && (t.st.step > t.start_step || t.ran_tail)) {
            ReportInfo ri = {.steps = t.st.step - t.start_step, .seq = t.seq, .accum = t.st.accum,
                             .flops_per_window = t.flops_per_window, .peak_gflops = o->peak_gflops,
                             .world = t.world,
                             .wall_ms = time_ms() - t_start,
                             .setup_ms = t.setup_ms, .train_ms = 0, .train = t.train_times};
            ri.train_ms = t.st.train_ms - t.train_ms_before;
            ri.train.compile = t.pl.times.compile;  // at setup, and any during the updates
            ri.train.kernels_compiled = t.pl.times.kernels_compiled;
            ri.train.dialect_fallbacks = t.pl.times.dialect_fallbacks;
            metrics_report(&t.mt, &t.st, &ri);
            rc = report_world(&t);
        }
    }
    metrics_close(&t.mt);
    if (rc == 0) rc = metrics_log_status(&t.mt);
    // the process that replaces this one takes the same lock: its fd stays
    // open across exec() (not close-on-exec), so no other run can slip in between
    if (rc == TRAINER_RESTART) t.lock.held = 0;
    trainer_free(&t);
    return rc;
}
