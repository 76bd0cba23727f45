// metrics: see metrics.h. Printing (stdout, the terminal) and the JSON-lines
// log side by side, one function per kind of event.
#include "train/metrics.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/err.h"
#include "core/io.h"
#include "core/timer.h"

// --- the log ---------------------------------------------------------------------------

static int open_log(Metrics *mt, const char *path) {
    snprintf(mt->log_path, sizeof mt->log_path, "%s", path);
    mt->log = io_open_append(path);
    return mt->log ? 0 : -1;
}

int metrics_open(Metrics *mt, const char *log_path, int quiet) {
    memset(mt, 0, sizeof *mt);
    mt->quiet = quiet;
    mt->tty = isatty(STDOUT_FILENO);
    mt->t0 = time_ms();
    return log_path ? open_log(mt, log_path) : 0;
}

void metrics_close(Metrics *mt) {
    if (mt->log && fclose(mt->log) != 0 && !mt->log_errno) mt->log_errno = errno ? errno : EIO;
    mt->log = NULL;
}

int metrics_log_status(const Metrics *mt) {
    if (!mt->log_errno) return 0;
    return err_set("%s: the log is incomplete (its write error is said above)", mt->log_path);
}

// Writes one record; the first failure is said once on stderr.
void metrics_log_record(Metrics *mt, JsonW *j) {
    if (!mt->log || mt->log_errno) return;
    jsonw_num(j, "t_ms", time_ms() - mt->t0);
    errno = 0;
    if (fputs(jsonw_end(j), mt->log) < 0 || fflush(mt->log) != 0 || ferror(mt->log)) {
        mt->log_errno = errno ? errno : EIO;
        fprintf(stderr, "anetrain: %s: writing the log failed: %s; training continues, the run will exit 1\n",
                mt->log_path, strerror(mt->log_errno));
    }
}

// --- the terminal -------------------------------------------------------------------------

static void clear_bar(Metrics *mt) {
    if (mt->bar_shown) {
        printf("\r\033[K");
        mt->bar_shown = 0;
    }
}

static double rss_mb(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return NAN;
#ifdef __APPLE__
    return ru.ru_maxrss / 1048576.0;  // bytes
#else
    return ru.ru_maxrss / 1024.0;     // KiB
#endif
}

void metrics_banner(Metrics *mt, const RunInfo *ri, const TrainState *st) {
    const Config *c = ri->cfg;
    if (!mt->quiet) {
        printf("anetrain train\n");
        config_print(c, stdout);
        printf("  pipeline  %s", ri->pipeline);
        if (strcmp(ri->pipeline, "cpu") != 0) printf(" on %s", ri->device);
        printf(" (%s, gemm: %s)\n", ri->precision, ri->blas);
        printf("  data      %s\n", ri->data);
        printf("  window    %d tokens x accum %d = %d tokens per update\n", ri->seq, st->accum, ri->seq * st->accum);
        printf("  schedule  %lld updates, lr %g (warmup %d, cosine to %g), clip %g, wd %g, betas %g/%g\n",
               (long long)st->total_steps, st->lr, st->warmup, st->lr * st->min_lr_frac, st->clip,
               st->weight_decay, st->beta1, st->beta2);
        if (ri->resumed)
            printf("  resumed   at update %lld (%lld tokens seen)\n", (long long)st->step, (long long)st->tokens_seen);
        fflush(stdout);
    }
    JsonW j;
    jsonw_begin(&j, "start");
    jsonw_int(&j, "v", 1);
    jsonw_str(&j, "model", c->name);
    jsonw_int(&j, "dim", c->dim);
    jsonw_int(&j, "hidden", c->hidden);
    jsonw_int(&j, "layers", c->n_layers);
    jsonw_int(&j, "heads", c->n_heads);
    jsonw_int(&j, "kv_heads", c->n_kv_heads);
    jsonw_int(&j, "head_dim", c->head_dim);
    jsonw_int(&j, "vocab", c->vocab);
    jsonw_int(&j, "vocab_rows", ri->n_vocab_rows > 0 ? ri->n_vocab_rows : c->vocab);
    jsonw_int(&j, "params", (long long)config_num_params(c));
    jsonw_int(&j, "seq", ri->seq);
    jsonw_str(&j, "pipeline", ri->pipeline);
    jsonw_str(&j, "device", strcmp(ri->pipeline, "cpu") ? ri->device : NULL);
    jsonw_str(&j, "precision", ri->precision);
    jsonw_str(&j, "gemm", ri->blas);
    jsonw_int(&j, "kernels", ri->kernels_compiled);
    jsonw_int(&j, "accum", st->accum);
    jsonw_int(&j, "steps", st->total_steps);
    jsonw_num(&j, "lr", st->lr);
    jsonw_int(&j, "warmup", st->warmup);
    jsonw_num(&j, "min_lr_frac", st->min_lr_frac);
    jsonw_num(&j, "clip", st->clip);
    jsonw_num(&j, "weight_decay", st->weight_decay);
    jsonw_int(&j, "tokens_per_update", (long long)ri->seq * st->accum);
    jsonw_num(&j, "flops_per_update", ri->flops_per_update);
    if (ri->peak_gflops > 0) jsonw_num(&j, "peak_gflops", ri->peak_gflops);
    jsonw_str(&j, "data", ri->data);
    jsonw_str(&j, "val_data", ri->val_data);
    jsonw_str(&j, "ckpt", ri->ckpt);
    jsonw_int(&j, "seed", (long long)st->seed);
    jsonw_int(&j, "resumed_at", ri->resumed ? (long long)st->step : -1LL);
    jsonw_int(&j, "world", ri->world > 0 ? ri->world : 1);
    metrics_log_record(mt, &j);
}

static void fmt_eta(char *buf, size_t n, double sec) {
    if (!(sec >= 0) || sec > 1e8) snprintf(buf, n, "?");
    else if (sec < 60) snprintf(buf, n, "%.0fs", sec);
    else if (sec < 3600) snprintf(buf, n, "%dm%02ds", (int)sec / 60, (int)sec % 60);
    else snprintf(buf, n, "%dh%02dm", (int)sec / 3600, (int)sec % 3600 / 60);
}

static void log_step(Metrics *mt, const StepRecord *r, double tok_s) {
    JsonW j;
    jsonw_begin(&j, "step");
    jsonw_int(&j, "step", r->step);
    jsonw_num(&j, "loss", r->loss);
    jsonw_num(&j, "lr", r->lr);
    jsonw_num(&j, "ms", r->ms);
    jsonw_num(&j, "tokens_per_s", tok_s);
    jsonw_num(&j, "grad_norm", r->grad_norm);
    jsonw_num(&j, "loss_scale", r->loss_scale);
    jsonw_num(&j, "t_data", r->data_ms);
    jsonw_num(&j, "t_fwd", r->forward_ms);
    jsonw_num(&j, "t_bwd", r->backward_ms);
    jsonw_num(&j, "t_optim", r->optim_ms);
    if (r->device_ms > 0 || r->staging_ms > 0) {  // device pipelines
        jsonw_num(&j, "t_device", r->device_ms);
        jsonw_num(&j, "t_staging", r->staging_ms);
        jsonw_num(&j, "t_cpu_ops", r->cpu_ops_ms);
        jsonw_num(&j, "t_cpu_cls", r->cpu_cls_ms);
        jsonw_num(&j, "t_cpu_io", r->cpu_io_ms);
        jsonw_num(&j, "io_mb", r->io_mb);
        jsonw_num(&j, "t_dw_wait", r->dw_wait_ms);
    }
    jsonw_num(&j, "rss_mb", rss_mb());
    metrics_log_record(mt, &j);
}

void metrics_step(Metrics *mt, const StepRecord *r, int print_line) {
    mt->step_ms_ewma = mt->step_ms_ewma > 0 ? 0.9 * mt->step_ms_ewma + 0.1 * r->ms : r->ms;
    const double tok_s = r->tokens / (r->ms / 1e3);
    log_step(mt, r, tok_s);
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
    JsonW j;
    jsonw_begin(&j, "eval");
    jsonw_int(&j, "step", step);
    jsonw_num(&j, "val_loss", val_loss);
    jsonw_num(&j, "val_ppl", exp(val_loss));
    jsonw_bool(&j, "best", improved);
    metrics_log_record(mt, &j);
    if (!mt->quiet) {
        clear_bar(mt);
        printf("eval step %lld val loss %.4f ppl %.2f%s\n", step, val_loss, exp(val_loss), improved ? " (best)" : "");
    }
}

void metrics_eval_progress(Metrics *mt, long long done, long long total) {
    if (mt->quiet || !mt->tty) return;
    printf("\r\033[K  evaluating %lld/%lld windows", done, total);
    mt->bar_shown = 1;
    fflush(stdout);
}

void metrics_checkpoint(Metrics *mt, long long step, const char *path, int best_link) {
    JsonW j;
    jsonw_begin(&j, "checkpoint");
    jsonw_int(&j, "step", step);
    jsonw_str(&j, "path", path);
    if (best_link) jsonw_bool(&j, "link", 1);
    metrics_log_record(mt, &j);
    if (!mt->quiet) {
        clear_bar(mt);
        printf("saved %s at update %lld%s\n", path, step, best_link ? " (linked to the latest)" : "");
    }
}

void metrics_save_progress(Metrics *mt, const char *path, double fraction) {
    if (mt->quiet || !mt->tty) return;
    printf("\r\033[K  saving %s %.0f%%", path, 100 * fraction);
    mt->bar_shown = 1;
    fflush(stdout);
}

void metrics_skip(Metrics *mt, long long step, const char *why, float loss, double grad_norm, float loss_scale) {
    JsonW j;
    jsonw_begin(&j, "skip");
    jsonw_int(&j, "step", step);
    jsonw_str(&j, "why", why);
    jsonw_num(&j, "loss", loss);
    jsonw_num(&j, "grad_norm", grad_norm);
    jsonw_num(&j, "loss_scale", loss_scale);
    metrics_log_record(mt, &j);
    clear_bar(mt);
    fprintf(stderr, "update %lld skipped: %s (loss %g, gradient norm %g), loss scale now %g\n", step, why, loss,
            grad_norm, loss_scale);
}

void metrics_change(Metrics *mt, const char *what, const char *from, const char *to) {
    JsonW j;
    jsonw_begin(&j, "change");
    jsonw_str(&j, "what", what);
    jsonw_str(&j, "from", from);
    jsonw_str(&j, "to", to);
    metrics_log_record(mt, &j);
    clear_bar(mt);
    if (!mt->quiet) printf("  changed   %s: %s -> %s\n", what, from, to);
}

void metrics_restart(Metrics *mt, long long step, long long compiles, const char *why) {
    JsonW j;
    jsonw_begin(&j, "restart");
    jsonw_int(&j, "step", step);
    jsonw_int(&j, "compiles", compiles);
    jsonw_str(&j, "why", why);
    metrics_log_record(mt, &j);
    clear_bar(mt);
    if (!mt->quiet) printf("restart after update %lld (%lld compiles in this process): %s\n", step, compiles, why);
}

void metrics_note(Metrics *mt, const char *text) {
    JsonW j;
    jsonw_begin(&j, "note");
    jsonw_str(&j, "text", text);
    metrics_log_record(mt, &j);
    clear_bar(mt);
    if (!mt->quiet) printf("%s\n", text);
}

void metrics_world(Metrics *mt, const WorldRecord *w, const char *text) {
    JsonW j;
    jsonw_begin(&j, "world");
    jsonw_int(&j, "ranks", w->ranks);
    jsonw_bool(&j, "overlap", w->overlap);
    jsonw_num(&j, "tokens_per_s", w->tokens_per_s);
    jsonw_num(&j, "comm_ms", w->comm_ms);
    jsonw_num(&j, "comm_wait_ms", w->comm_wait_ms);
    jsonw_str(&j, "text", text);
    metrics_log_record(mt, &j);
    clear_bar(mt);
    if (!mt->quiet) printf("%s\n", text);
}

// text starts with the prompt (its tokens are forced, then decoded like the rest)
void metrics_sample(Metrics *mt, long long step, const char *prompt, const char *text) {
    JsonW j;
    jsonw_begin(&j, "sample");
    jsonw_int(&j, "step", step);
    jsonw_str(&j, "prompt", prompt);
    jsonw_str(&j, "text", text);
    metrics_log_record(mt, &j);
    if (mt->quiet) return;
    clear_bar(mt);
    printf("sample at update %lld: %s\n", step, text);
    fflush(stdout);
}

void metrics_doing(Metrics *mt, const char *text) {
    if (mt->quiet) return;
    clear_bar(mt);
    printf("%s\n", text);
    fflush(stdout);
}

double metrics_flops_per_window(const Config *c, int seq) {
    const double D = c->dim, H = c->hidden, QD = config_q_dim(c), KVD = config_kv_dim(c);
    const double per_layer = QD * D + 2 * KVD * D + D * QD + 3 * H * D;
    const double matmul = 2.0 * seq * (c->n_layers * per_layer + (double)c->vocab * D);
    const double attn = c->n_layers * 4.0 * seq * seq * QD;
    return 3.0 * (matmul + attn);
}
