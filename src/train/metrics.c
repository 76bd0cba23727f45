#include "train/metrics.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"

int metrics_open(Metrics *mt, const char *log_path, int quiet) {
    memset(mt, 0, sizeof *mt);
    mt->quiet = quiet;
    mt->tty = isatty(STDOUT_FILENO);
    if (log_path) {
        mt->log = fopen(log_path, "a");
        if (!mt->log) return err_set("%s: cannot open the log for appending", log_path);
    }
    return 0;
}

void metrics_close(Metrics *mt) {
    if (mt->log) fclose(mt->log);
    mt->log = NULL;
}

static void clear_bar(Metrics *mt) {
    if (mt->bar_shown) {
        printf("\r\033[K");
        mt->bar_shown = 0;
    }
}

void metrics_banner(Metrics *mt, const Config *c, const char *pipeline, const char *data, int seq,
                    const TrainState *st, int resumed, const char *blas) {
    if (!mt->quiet) {
        printf("anetrain train\n");
        config_print(c, stdout);
        printf("  pipeline  %s (gemm: %s)\n", pipeline, blas);
        printf("  data      %s\n", data);
        printf("  window    %d tokens x accum %d = %d tokens per update\n", seq, st->accum, seq * st->accum);
        printf("  schedule  %lld updates, lr %g (warmup %d, cosine to %g), clip %g, wd %g, betas %g/%g\n",
               (long long)st->total_steps, st->lr, st->warmup, st->lr * st->min_lr_frac, st->clip,
               st->weight_decay, st->beta1, st->beta2);
        if (resumed) printf("  resumed   at update %lld (%lld tokens seen)\n", (long long)st->step, (long long)st->tokens_seen);
        fflush(stdout);
    }
    if (mt->log) {
        fprintf(mt->log,
                "{\"type\":\"start\",\"model\":\"%s\",\"dim\":%d,\"hidden\":%d,\"layers\":%d,\"heads\":%d,"
                "\"kv_heads\":%d,\"head_dim\":%d,\"vocab\":%d,\"seq\":%d,\"accum\":%d,\"steps\":%lld,\"lr\":%g,"
                "\"pipeline\":\"%s\",\"resumed_at\":%lld}\n",
                c->name, c->dim, c->hidden, c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->vocab, seq,
                st->accum, (long long)st->total_steps, st->lr, pipeline, resumed ? (long long)st->step : -1LL);
        fflush(mt->log);
    }
}

static void fmt_eta(char *buf, size_t n, double sec) {
    if (!(sec >= 0) || sec > 1e8) snprintf(buf, n, "?");
    else if (sec < 60) snprintf(buf, n, "%.0fs", sec);
    else if (sec < 3600) snprintf(buf, n, "%dm%02ds", (int)sec / 60, (int)sec % 60);
    else snprintf(buf, n, "%dh%02dm", (int)sec / 3600, (int)sec % 3600 / 60);
}

void metrics_step(Metrics *mt, const StepRecord *r, int print_line) {
    mt->step_ms_ewma = mt->step_ms_ewma > 0 ? 0.9 * mt->step_ms_ewma + 0.1 * r->ms : r->ms;
    const double tok_s = r->tokens / (r->ms / 1e3);
    if (mt->log) {
        fprintf(mt->log,
                "{\"type\":\"step\",\"step\":%lld,\"loss\":%.6f,\"lr\":%.6g,\"ms\":%.3f,\"tokens_per_s\":%.1f,"
                "\"grad_norm\":%.6g,\"loss_scale\":%g,\"t_data\":%.3f,\"t_fwd\":%.3f,\"t_bwd\":%.3f,\"t_optim\":%.3f}\n",
                r->step, r->loss, r->lr, r->ms, tok_s, r->grad_norm, r->loss_scale, r->data_ms, r->forward_ms,
                r->backward_ms, r->optim_ms);
        fflush(mt->log);
    }
    if (mt->quiet) return;
    char eta[32];
    fmt_eta(eta, sizeof eta, (r->total - r->step) * mt->step_ms_ewma / 1e3);
    if (print_line) {
        clear_bar(mt);
        printf("step %lld/%lld loss %.4f lr %.2e %.1f ms/step %.0f tok/s |g| %.3f eta %s\n", r->step, r->total,
               r->loss, r->lr, r->ms, tok_s, r->grad_norm, eta);
    } else if (mt->tty) {
        const int width = 30;
        int filled = r->total > 0 ? (int)(width * r->step / r->total) : 0;
        char bar[64];
        for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '.';
        bar[width] = 0;
        printf("\r\033[K[%s] %lld/%lld loss %.4f %.1f ms/step eta %s", bar, r->step, r->total, r->loss, r->ms, eta);
        mt->bar_shown = 1;
    }
    fflush(stdout);
}

void metrics_eval(Metrics *mt, long long step, float val_loss, int improved) {
    if (mt->log) {
        fprintf(mt->log, "{\"type\":\"eval\",\"step\":%lld,\"val_loss\":%.6f,\"val_ppl\":%.4f,\"best\":%s}\n", step,
                val_loss, exp(val_loss), improved ? "true" : "false");
        fflush(mt->log);
    }
    if (!mt->quiet) {
        clear_bar(mt);
        printf("eval step %lld val loss %.4f ppl %.2f%s\n", step, val_loss, exp(val_loss), improved ? " (best)" : "");
    }
}

void metrics_checkpoint(Metrics *mt, long long step, const char *path) {
    if (mt->log) {
        fprintf(mt->log, "{\"type\":\"checkpoint\",\"step\":%lld,\"path\":\"%s\"}\n", step, path);
        fflush(mt->log);
    }
    if (!mt->quiet) {
        clear_bar(mt);
        printf("saved %s at update %lld\n", path, step);
    }
}

void metrics_event(Metrics *mt, long long step, const char *what, float loss, double grad_norm, float loss_scale) {
    if (mt->log) {
        fprintf(mt->log, "{\"type\":\"%s\",\"step\":%lld,\"loss\":%g,\"grad_norm\":%g,\"loss_scale\":%g}\n", what,
                step, loss, grad_norm, loss_scale);
        fflush(mt->log);
    }
    clear_bar(mt);
    fprintf(stderr, "update %lld skipped: loss %g, gradient norm %g (non-finite), loss scale now %g\n", step, loss,
            grad_norm, loss_scale);
}

void metrics_note(Metrics *mt, const char *text) {
    if (mt->log) {
        fprintf(mt->log, "{\"type\":\"note\",\"text\":\"%s\"}\n", text);
        fflush(mt->log);
    }
    clear_bar(mt);
    if (!mt->quiet) printf("%s\n", text);
}

double metrics_flops_per_window(const Config *c, int seq) {
    const double D = c->dim, H = c->hidden, QD = config_q_dim(c), KVD = config_kv_dim(c);
    const double per_layer = QD * D + 2 * KVD * D + D * QD + 3 * H * D;
    const double matmul = 2.0 * seq * (c->n_layers * per_layer + (double)c->vocab * D);
    const double attn = c->n_layers * 4.0 * seq * seq * QD;
    return 3.0 * (matmul + attn);
}

static void phase(const char *name, double ms, double wall) {
    if (ms > 0) printf("  %-12s %10.1f ms (%4.1f%%)\n", name, ms, 100.0 * ms / wall);
}

void metrics_report(Metrics *mt, const TrainState *st, const PhaseTimes *pt, long long steps, int seq,
                    double flops_per_window, double wall_ms) {
    clear_bar(mt);
    // forward/backward include the device, staging and cpu-op time spent inside them
    const double train_ms = pt->forward + pt->backward + mt->optim_ms + mt->data_ms;
    const double windows = (double)steps * st->accum;
    const double gflops = train_ms > 0 ? flops_per_window * windows / (train_ms * 1e6) : 0;
    if (mt->log) {
        fprintf(mt->log,
                "{\"type\":\"report\",\"steps\":%lld,\"wall_ms\":%.1f,\"compile_ms\":%.1f,\"train_ms\":%.1f,"
                "\"ms_per_step\":%.3f,\"tokens_per_s\":%.1f,\"gflops\":%.2f,\"t_fwd\":%.1f,\"t_bwd\":%.1f,"
                "\"t_optim\":%.1f,\"t_data\":%.1f,\"t_eval\":%.1f,\"t_ckpt\":%.1f}\n",
                steps, wall_ms, pt->compile, train_ms, steps ? train_ms / steps : 0,
                train_ms > 0 ? windows * seq / (train_ms / 1e3) : 0, gflops, pt->forward, pt->backward, mt->optim_ms,
                mt->data_ms, mt->eval_ms, mt->ckpt_ms);
        fflush(mt->log);
    }
    if (mt->quiet) return;
    printf("\n=== Efficiency Report ===\n");
    printf("Total steps:     %lld (x%d micro-steps of %d tokens)\n", steps, st->accum, seq);
    printf("Wall time:       %.0f ms (%.1f s)\n", wall_ms, wall_ms / 1e3);
    printf("Compile time:    %.0f ms (%.1f%%)\n", pt->compile, 100.0 * pt->compile / wall_ms);
    printf("Train time:      %.0f ms (%.1f%%)\n", train_ms, 100.0 * train_ms / wall_ms);
    printf("Avg train:       %.1f ms/step\n", steps ? train_ms / steps : 0.0);
    if (pt->kernels_compiled)
        printf("Device:          %lld kernels compiled once, %.0f evaluations per step (%.1f per window)\n",
               pt->kernels_compiled, steps ? (double)pt->device_evals / steps : 0.0,
               windows > 0 ? pt->device_evals / windows : 0.0);
    printf("Tokens/s:        %.0f\n", train_ms > 0 ? windows * seq / (train_ms / 1e3) : 0.0);
    printf("Achieved:        %.2f GFLOPS (%.2f TFLOPS)\n", gflops, gflops / 1e3);
    printf("  FLOPs/update = accum x 3 x [2*seq*(layer matrices + classifier) + L*4*seq^2*NH*HD] = %.3g\n",
           flops_per_window * st->accum);
    printf("Time per phase:\n");
    phase("forward", pt->forward, wall_ms);
    phase("backward", pt->backward, wall_ms);
    phase("  device", pt->device, wall_ms);
    phase("  staging", pt->staging, wall_ms);
    phase("  cpu ops", pt->cpu_ops, wall_ms);
    phase("  dW wait", pt->dw_wait, wall_ms);
    phase("optimizer", mt->optim_ms, wall_ms);
    phase("data", mt->data_ms, wall_ms);
    phase("eval", mt->eval_ms, wall_ms);
    phase("checkpoint", mt->ckpt_ms, wall_ms);
    if (st->skipped) printf("Skipped updates: %lld (non-finite loss or gradients)\n", (long long)st->skipped);
    fflush(stdout);
}
