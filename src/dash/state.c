// state: log records -> what the dashboard shows (state.h).
#include "dash/state.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

static void series_free(DashSeries *d) {
    free(d->p);
    memset(d, 0, sizeof *d);
}

// Appends. Past DASH_SERIES_MAX points every other point is dropped and the
// stride doubles, so a million-update run keeps its shape in bounded memory;
// the newest point is always kept (provisionally, until the next on-stride one)
// so the curve ends where the run is.
static int series_grow(DashSeries *d) {
    if (d->n < d->cap) return 0;
    if (d->cap >= DASH_SERIES_MAX) {
        size_t k = 0;
        for (size_t i = 0; i < d->n; i += 2) d->p[k++] = d->p[i];
        d->n = k;
        d->stride *= 2;
        d->provisional = 0;
        return 0;
    }
    size_t cap = d->cap ? d->cap * 2 : 256;
    DashPoint *p = realloc(d->p, cap * sizeof *p);
    if (!p) return -1;  // out of memory: the curve stops growing, nothing else breaks
    d->p = p, d->cap = cap;
    return 0;
}

static void series_add(DashSeries *d, DashPoint pt) {
    if (d->stride < 1) d->stride = 1;
    int on_stride = d->seen++ % d->stride == 0;
    if (d->provisional && d->n > 0) {
        d->p[d->n - 1] = pt;
        d->provisional = !on_stride;
        return;
    }
    if (series_grow(d) != 0) return;
    d->p[d->n++] = pt;
    d->provisional = !on_stride;
}

int dash_state_init(DashState *s) {
    memset(s, 0, sizeof *s);
    s->logs = calloc(DASH_LOG_LINES, sizeof *s->logs);
    if (!s->logs) return err_set("out of memory for the dashboard's log ring");
    s->best_val = s->last_val = NAN;
    s->best_val_step = -1;
    s->ms_ema = NAN;
    snprintf(s->power_what, sizeof s->power_what, "not measured");
    return 0;
}

void dash_state_free(DashState *s) {
    series_free(&s->train);
    series_free(&s->val);
    free(s->logs);
    memset(s, 0, sizeof *s);
}

void dash_state_reset(DashState *s) {
    DashState keep = *s;
    series_free(&s->train);
    series_free(&s->val);
    memset(s, 0, sizeof *s);
    s->best_val = s->last_val = NAN;
    s->best_val_step = -1;
    s->ms_ema = NAN;
    // what did not come from the log survives a log that starts over
    s->logs = keep.logs, s->log_count = keep.log_count;
    s->have_proc = keep.have_proc, s->cpu = keep.cpu, s->rss = keep.rss, s->power = keep.power;
    s->cpu_now = keep.cpu_now, s->rss_now = keep.rss_now, s->power_now = keep.power_now;
    s->power_ok = keep.power_ok;
    memcpy(s->power_what, keep.power_what, sizeof s->power_what);
    memcpy(s->proc_status, keep.proc_status, sizeof s->proc_status);
    memcpy(s->source, keep.source, sizeof s->source);
    s->smooth = keep.smooth, s->x_tokens = keep.x_tokens, s->log_y = keep.log_y;
    s->help = keep.help, s->paused = keep.paused, s->scroll = keep.scroll, s->quiet_records = keep.quiet_records;
}

void dash_state_log(DashState *s, DashLogKind kind, const char *fmt, ...) {
    DashLogLine *l = &s->logs[s->log_count % DASH_LOG_LINES];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->text, sizeof l->text, fmt, ap);
    va_end(ap);
    l->kind = kind;
    s->log_count++;
    // a reader scrolled back keeps looking at the same lines
    if (s->paused && s->scroll < DASH_LOG_LINES) s->scroll++;
}

const DashLogLine *dash_state_log_line(const DashState *s, long long i) {
    long long have = s->log_count < DASH_LOG_LINES ? s->log_count : DASH_LOG_LINES;
    if (i < 0 || i >= have) return NULL;
    return &s->logs[(s->log_count - 1 - i) % DASH_LOG_LINES];
}

void dash_hist_push(DashHist *h, double v) {
    h->v[h->head] = v;
    h->head = (h->head + 1) % DASH_HIST;
    if (h->n < DASH_HIST) h->n++;
}

double dash_hist_at(const DashHist *h, int i) {
    if (i < 0 || i >= h->n) return NAN;
    return h->v[(h->head - h->n + i + DASH_HIST) % DASH_HIST];
}

// Tokens seen at update `step`: the previous point's plus this run's rate since
// it (a resume may change the tokens per update).
static double tokens_at(const DashState *s, const DashSeries *d, double step) {
    double tpu = isfinite(s->cfg.tokens_per_update) ? s->cfg.tokens_per_update : 0;
    if (d->n == 0) return step * tpu;
    const DashPoint *q = &d->p[d->n - 1];
    return q->tokens + (step - q->step) * tpu;
}

// A log line derived from a record; with a child attached its stdout says it already.
#define rec_log(s, kind, ...) \
    do { \
        if (!(s)->quiet_records) dash_state_log(s, kind, __VA_ARGS__); \
    } while (0)

static void apply_start(DashState *s, const LogRecord *r) {
    const LogStart *c = &r->start;
    int resumed = c->resumed_at >= 0;
    if (s->have_start && !resumed) {
        // a new run appended to the same log: its curves start afresh
        series_free(&s->train);
        series_free(&s->val);
        s->best_val = NAN, s->best_val_step = -1, s->have_report = 0, s->have_step = 0;
    }
    if (s->have_start || resumed) s->restarts++;
    s->cfg = *c;
    s->have_start = 1;
    s->runs++;
    s->have_report = 0;
    if (resumed)
        rec_log(s, DASH_LOG_RESTART, "resumed %s at update %lld of %lld", c->model, c->resumed_at, c->steps);
    else
        rec_log(s, DASH_LOG_INFO, "start %s: %.2fM params, %s pipeline, %lld updates", c->model,
                       (double)c->params / 1e6, c->pipeline, c->steps);
}

static void apply_step(DashState *s, const LogRecord *r) {
    const LogNums *n = &r->n;
    s->last = *n;
    s->have_step = 1;
    if (isfinite(n->ms)) s->ms_ema = isfinite(s->ms_ema) ? 0.9 * s->ms_ema + 0.1 * n->ms : n->ms;
    if (n->step >= 0 && isfinite(n->loss))
        series_add(&s->train, (DashPoint){(double)n->step, tokens_at(s, &s->train, (double)n->step), n->loss});
    rec_log(s, DASH_LOG_STEP, "step %lld/%lld loss %.4f lr %.2e %.1f ms", n->step, s->cfg.steps, n->loss,
                   n->lr, n->ms);
}

static void apply_eval(DashState *s, const LogRecord *r) {
    const LogNums *n = &r->n;
    s->last_val = n->val_loss;
    if (isfinite(n->val_loss) && (!isfinite(s->best_val) || n->val_loss < s->best_val))
        s->best_val = n->val_loss, s->best_val_step = n->step;
    if (n->step >= 0 && isfinite(n->val_loss))
        series_add(&s->val, (DashPoint){(double)n->step, tokens_at(s, &s->val, (double)n->step), n->val_loss});
    rec_log(s, DASH_LOG_EVAL, "eval update %lld: val loss %.4f ppl %.2f%s", n->step, n->val_loss, n->val_ppl,
                   n->best ? " (best)" : "");
}

static void apply_other(DashState *s, const LogRecord *r) {
    const LogNums *n = &r->n;
    switch (r->type) {
    case LOG_SKIP:
        s->skips++;
        if (isfinite(n->loss_scale)) s->last.loss_scale = n->loss_scale;
        rec_log(s, DASH_LOG_WARN, "skipped update %lld: %s", n->step, r->text);
        break;
    case LOG_CHECKPOINT: rec_log(s, DASH_LOG_EVAL, "saved %s at update %lld", r->text, n->step); break;
    case LOG_NOTE: rec_log(s, DASH_LOG_WARN, "note: %s", r->text); break;
    case LOG_CHANGE: rec_log(s, DASH_LOG_RESTART, "changed %s", r->text); break;
    case LOG_RESTART:
        s->restarts++;
        rec_log(s, DASH_LOG_RESTART, "restart at update %lld%s%s", n->step, r->text[0] ? ": " : "", r->text);
        break;
    case LOG_REPORT:
        s->have_report = 1;
        s->report = *n;
        rec_log(s, DASH_LOG_EVAL, "finished: %lld updates in %.1f s, %.1f ms/update, %.2f GFLOPS", n->steps,
                       n->wall_ms / 1e3, n->ms_per_step, n->gflops);
        break;
    case LOG_SAMPLE:
        s->sample_step = n->step;
        memcpy(s->sample_prompt, r->prompt, sizeof s->sample_prompt);
        memcpy(s->sample_text, r->text, sizeof s->sample_text);
        rec_log(s, DASH_LOG_INFO, "sample at update %lld", n->step);
        break;
    default: rec_log(s, DASH_LOG_INFO, "%s record", r->type_name); break;
    }
}

void dash_state_apply(DashState *s, const LogRecord *r) {
    if (isfinite(r->t_ms)) s->t_ms = r->t_ms;
    switch (r->type) {
    case LOG_START: apply_start(s, r); break;
    case LOG_STEP: apply_step(s, r); break;
    case LOG_EVAL: apply_eval(s, r); break;
    default: apply_other(s, r); break;
    }
}

void dash_state_line(DashState *s, const char *line, size_t len) {
    if (len == 0) return;
    LogRecord *r = malloc(sizeof *r);  // 4 KiB: off the stack of callbacks
    if (!r) return;
    if (logrec_parse(r, line, (long)len) == 0) {
        dash_state_apply(s, r);
    } else {
        s->bad_lines++;
        dash_state_log(s, DASH_LOG_ERROR, "bad log line (%zu bytes): %s", len, err_msg());
    }
    free(r);
}
