// report: the Efficiency Report at the end of a run (printed and logged).
//
// Training figures (train time, ms/step, tokens/s, GFLOPS, device evaluations
// per step) count the updates only: evaluation, checkpoints and setup are
// phases of their own, and the phases add up to the wall time.
#include <stdio.h>

#include "train/metrics.h"

static void phase(const char *name, double ms, double wall) {
    if (ms > 0.05) printf("  %-14s %10.1f ms (%4.1f%%)\n", name, ms, wall > 0 ? 100.0 * ms / wall : 0.0);
}

static void log_report(Metrics *mt, const TrainState *st, const ReportInfo *ri, double tok_s, double gflops,
                       double other) {
    JsonW j;
    jsonw_begin(&j, "report");
    jsonw_int(&j, "steps", ri->steps);
    jsonw_int(&j, "world", ri->world > 0 ? ri->world : 1);
    jsonw_num(&j, "wall_ms", ri->wall_ms);
    jsonw_num(&j, "setup_ms", ri->setup_ms);
    jsonw_num(&j, "compile_ms", ri->train.compile);
    jsonw_num(&j, "train_ms", ri->train_ms);
    jsonw_num(&j, "ms_per_step", ri->steps ? ri->train_ms / ri->steps : 0);
    jsonw_num(&j, "tokens_per_s", tok_s);
    jsonw_num(&j, "gflops", gflops);
    jsonw_num(&j, "t_fwd", ri->train.forward);
    jsonw_num(&j, "t_bwd", ri->train.backward);
    jsonw_num(&j, "t_device", ri->train.device);
    jsonw_num(&j, "t_staging", ri->train.staging);
    jsonw_num(&j, "t_cpu_ops", ri->train.cpu_ops);
    jsonw_num(&j, "t_cpu_cls", ri->train.cpu_cls);
    jsonw_num(&j, "t_cpu_io", ri->train.cpu_io);
    jsonw_num(&j, "t_dw_wait", ri->train.dw_wait);
    jsonw_num(&j, "t_optim", mt->optim_ms);
    jsonw_num(&j, "t_data", mt->data_ms);
    jsonw_num(&j, "t_update_other", other);
    jsonw_num(&j, "t_eval", mt->eval_ms);
    jsonw_num(&j, "t_ckpt", mt->ckpt_ms);
    jsonw_num(&j, "t_sample", mt->sample_ms);
    jsonw_int(&j, "device_evals", ri->train.device_evals);
    jsonw_int(&j, "kernels_compiled", ri->train.kernels_compiled);
    if (ri->train.dialect_fallbacks) jsonw_int(&j, "dialect_fallbacks", ri->train.dialect_fallbacks);
    if (st->restarts) {  // the run's processes together (exec() restarts)
        jsonw_int(&j, "restarts", st->restarts);
        jsonw_int(&j, "run_steps", st->step);
        jsonw_num(&j, "run_wall_ms", st->wall_ms);
        jsonw_num(&j, "run_compile_ms", st->compile_ms);
        jsonw_num(&j, "run_train_ms", st->train_ms);
        jsonw_int(&j, "run_kernels_compiled", st->compiles);
    }
    metrics_log_record(mt, &j);
}

// The run's processes together, when exec() restarts split it.
static void run_totals(const TrainState *st) {
    if (!st->restarts) return;
    const double w = st->wall_ms;
    printf("Across the run's %lld processes (%lld exec() restarts), %lld updates:\n", (long long)st->restarts + 1,
           (long long)st->restarts, (long long)st->step);
    printf("  wall %.1f s, compile %.0f ms (%.1f%%, %lld kernels), train %.0f ms (%.1f%%), %.1f ms/step\n", w / 1e3,
           st->compile_ms, w > 0 ? 100 * st->compile_ms / w : 0.0, (long long)st->compiles, st->train_ms,
           w > 0 ? 100 * st->train_ms / w : 0.0, st->step ? st->train_ms / st->step : 0.0);
}

void metrics_report(Metrics *mt, const TrainState *st, const ReportInfo *ri) {
    const PhaseTimes *pt = &ri->train;
    const double wall = ri->wall_ms, train = ri->train_ms;
    const double windows = (double)ri->steps * ri->accum;
    const double tok_s = train > 0 ? windows * ri->seq / (train / 1e3) : 0;
    const double gflops = train > 0 ? ri->flops_per_window * windows / (train * 1e6) : 0;
    // inside an update: zeroing the gradient block, loss bookkeeping
    const double other = train - (pt->forward + pt->backward + mt->optim_ms + mt->data_ms);
    const double rest = wall - (ri->setup_ms + train + mt->eval_ms + mt->ckpt_ms + mt->sample_ms);
    log_report(mt, st, ri, tok_s, gflops, other);
    if (mt->quiet) return;
    printf("\n=== Efficiency Report ===\n");
    if (ri->steps == 0) {  // a process that only finished the previous one's work (an exec() restart)
        run_totals(st);
        fflush(stdout);
        return;
    }
    printf("Total steps:     %lld (x%d micro-steps of %d tokens)\n", ri->steps, ri->accum, ri->seq);
    printf("Wall time:       %.0f ms (%.1f s)\n", wall, wall / 1e3);
    printf("Compile time:    %.0f ms (%.1f%%)\n", pt->compile, wall > 0 ? 100.0 * pt->compile / wall : 0.0);
    printf("Train time:      %.0f ms (%.1f%%; evaluation and checkpoints excluded)\n", train,
           wall > 0 ? 100.0 * train / wall : 0.0);
    printf("Avg train:       %.1f ms/step\n", ri->steps ? train / ri->steps : 0.0);
    if (pt->kernels_compiled)
        printf("Device:          %lld kernels compiled, %.0f evaluations per step (%.1f per window)\n",
               pt->kernels_compiled, ri->steps ? (double)pt->device_evals / ri->steps : 0.0,
               windows > 0 ? pt->device_evals / windows : 0.0);
    if (pt->dialect_fallbacks)
        printf("MIL dialect:     %lld kernels were rejected in the requested dialect and compiled in the other "
               "(--mil-dialect)\n", pt->dialect_fallbacks);
    printf("Tokens/s:        %.0f\n", tok_s);
    printf("Achieved:        %.2f GFLOPS (%.2f TFLOPS)", gflops, gflops / 1e3);
    if (ri->peak_gflops > 0) printf(", %.0f%% of the stated peak %.0f GFLOPS", 100 * gflops / ri->peak_gflops, ri->peak_gflops);
    printf("\n");
    printf("  FLOPs/update = accum x 3 x [2*seq*(layer matrices + classifier) + L*4*seq^2*NH*HD] = %.3g\n",
           ri->flops_per_window * ri->accum);
    printf("Time per phase (of the wall time):\n");
    phase("setup", ri->setup_ms, wall);
    phase("  compile", pt->compile, wall);
    phase("forward", pt->forward, wall);
    phase("backward", pt->backward, wall);
    phase("  device", pt->device, wall);
    phase("  staging", pt->staging, wall);
    phase("  cpu ops", pt->cpu_ops, wall);
    phase("    classifier", pt->cpu_cls, wall);
    phase("    surface I/O", pt->cpu_io, wall);
    phase("  dW wait", pt->dw_wait, wall);
    phase("optimizer", mt->optim_ms, wall);
    phase("data", mt->data_ms, wall);
    phase("update other", other, wall);
    phase("eval", mt->eval_ms, wall);
    phase("checkpoint", mt->ckpt_ms, wall);
    phase("samples", mt->sample_ms, wall);
    phase("unaccounted", rest, wall);
    run_totals(st);
    if (st->skipped) printf("Skipped updates: %lld (non-finite loss, gradients or result)\n", (long long)st->skipped);
    fflush(stdout);
}
