// render_panels: the loss curve, stats, phase bars and system panels (render.h).
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dash/chart.h"
#include "dash/render.h"

// x and y of a series as arrays for the chart (EMA-smoothed y when ema > 0).
static int series_xy(const DashSeries *d, int tokens, double ema, double **xs, double **ys) {
    *xs = malloc((d->n + 1) * sizeof **xs), *ys = malloc((d->n + 1) * sizeof **ys);
    if (!*xs || !*ys) return free(*xs), free(*ys), *xs = *ys = NULL, -1;
    double m = NAN, w = 0;
    for (size_t i = 0; i < d->n; i++) {
        (*xs)[i] = tokens ? d->p[i].tokens : d->p[i].step;
        double y = d->p[i].y;
        if (ema > 0 && isfinite(y)) {
            // bias-corrected, so the first points are not pulled toward 0
            m = isfinite(m) ? ema * m + (1 - ema) * y : (1 - ema) * y;
            w = ema * w + (1 - ema);
            y = m / w;
        }
        (*ys)[i] = y;
    }
    return 0;
}

void dash_render_loss(const DashState *s, Frame *f, int x, int y, int w, int h) {
    char title[96];
    snprintf(title, sizeof title, "loss: train%s, val (\xe2\xa3\xbf)  (x %s%s)", s->smooth ? " (EMA)" : "",
             s->x_tokens ? "tokens" : "updates", s->log_y ? ", log" : "");
    frame_box(f, x, y, w, h, title);
    double *tx = NULL, *ty = NULL, *sx = NULL, *sy = NULL, *vx = NULL, *vy = NULL;
    ChartLine lines[3];
    int n = 0;
    if (s->smooth && series_xy(&s->train, s->x_tokens, 0, &tx, &ty) == 0)
        lines[n++] = (ChartLine){tx, ty, s->train.n, COL_DIM, 0};
    if (series_xy(&s->train, s->x_tokens, s->smooth ? 0.9 : 0, &sx, &sy) == 0)
        lines[n++] = (ChartLine){sx, sy, s->train.n, COL_TRAIN, 0};
    if (series_xy(&s->val, s->x_tokens, 0, &vx, &vy) == 0) lines[n++] = (ChartLine){vx, vy, s->val.n, COL_VAL, 1};
    ChartRange r;
    if (chart_range(lines, n, s->log_y, &r) == 0) chart_draw(f, x + 1, y + 1, w - 2, h - 2, lines, n, &r);
    else frame_text(f, x + 2, y + 1, w - 4, COL_DIM, "no updates yet");
    free(tx), free(ty), free(sx), free(sy), free(vx), free(vy);
}

typedef struct {
    const char *label;
    char value[48];
    FrameColor color;
} Stat;

static int stat_add(Stat *st, int n, const char *label, FrameColor c, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int stat_add(Stat *st, int n, const char *label, FrameColor c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st[n].value, sizeof st[n].value, fmt, ap);
    va_end(ap);
    st[n].label = label, st[n].color = c;
    return n + 1;
}

static double gflops(const DashState *s) {
    double ms = s->last.ms;
    if (!isfinite(s->cfg.flops_per_update) || !isfinite(ms) || ms <= 0) return NAN;
    return s->cfg.flops_per_update / (ms * 1e6);
}

static void eta(const DashState *s, char *out, int cap) {
    const LogNums *l = &s->last;
    if (s->have_report) snprintf(out, (size_t)cap, "done");
    else if (s->have_step && isfinite(s->ms_ema)) dash_fmt_duration(out, cap, (double)(s->cfg.steps - l->step) * s->ms_ema);
    else snprintf(out, (size_t)cap, "-");
}

// The stats, most wanted first; `compact` pairs the minor ones up so that a
// 24-row terminal still shows restarts and skips.
static int stats_list(const DashState *s, Stat *st, int compact) {
    const LogNums *l = &s->last;
    char a[32], b[32];
    int n = 0;
    long long total = s->cfg.steps;
    if (s->have_step)
        n = stat_add(st, n, "update", COL_TITLE, "%lld/%lld (%.0f%%)", l->step, total,
                     total > 0 ? 100.0 * (double)l->step / (double)total : 0.0);
    else n = stat_add(st, n, "update", COL_DIM, "-/%lld", total);
    n = stat_add(st, n, "loss", COL_TRAIN, "%.4f", l->loss);
    if (isfinite(s->best_val)) n = stat_add(st, n, "best val", COL_VAL, "%.4f @%lld", s->best_val, s->best_val_step);
    else n = stat_add(st, n, "best val", COL_DIM, "-");
    eta(s, a, sizeof a);
    dash_fmt_duration(b, sizeof b, s->t_ms);
    if (compact) n = stat_add(st, n, "ETA", COL_DEFAULT, "%s (%s in)", a, b);
    else n = stat_add(st, n, "ETA", COL_DEFAULT, "%s", a);
    if (compact) n = stat_add(st, n, "ms/update", COL_DEFAULT, "%.1f (%.0f tok/s)", l->ms, l->tokens_per_s);
    else n = stat_add(st, n, "ms/update", COL_DEFAULT, "%.1f", l->ms);
    if (!compact) n = stat_add(st, n, "tokens/s", COL_DEFAULT, "%.0f", l->tokens_per_s);
    double g = gflops(s);
    if (isfinite(s->cfg.peak_gflops) && s->cfg.peak_gflops > 0)
        n = stat_add(st, n, "GFLOPS", COL_DEFAULT, "%.2f (%.0f%% of peak)", g, 100 * g / s->cfg.peak_gflops);
    else n = stat_add(st, n, "GFLOPS", COL_DEFAULT, "%.2f", g);
    n = stat_add(st, n, "lr", COL_DEFAULT, "%.2e", l->lr);
    FrameColor rc = s->restarts ? COL_RESTART : s->skips ? COL_WARN : COL_DEFAULT;
    if (compact) n = stat_add(st, n, "restarts", rc, "%d, skipped %lld", s->restarts, s->skips);
    else {
        n = stat_add(st, n, "restarts", s->restarts ? COL_RESTART : COL_DEFAULT, "%d", s->restarts);
        n = stat_add(st, n, "skipped", s->skips ? COL_WARN : COL_DEFAULT, "%lld", s->skips);
    }
    if (compact) n = stat_add(st, n, "loss scale", COL_DEFAULT, "%g, |g| %.3f", l->loss_scale, l->grad_norm);
    else n = stat_add(st, n, "loss scale", COL_DEFAULT, "%g", l->loss_scale);
    if (s->have_report) n = stat_add(st, n, "compile", COL_DEFAULT, "%.0f ms", s->report.compile_ms);
    else n = stat_add(st, n, "compile", COL_DIM, "%s", s->cfg.kernels > 0 ? "(at the end)" : "none");
    if (!compact) n = stat_add(st, n, "elapsed", COL_DEFAULT, "%s", b);
    if (!compact) n = stat_add(st, n, "grad norm", COL_DEFAULT, "%.3f", l->grad_norm);
    if (s->bad_lines) n = stat_add(st, n, "bad lines", COL_ERROR, "%lld", s->bad_lines);
    return n;
}

void dash_render_stats(const DashState *s, Frame *f, int x, int y, int w, int h) {
    frame_box(f, x, y, w, h, "stats");
    Stat st[20];
    int rows = h - 2, colw = 32;
    int cols = (w - 2) / colw;
    if (cols < 1) cols = 1, colw = w - 2;
    int n = stats_list(s, st, 0);
    if (n > rows * cols) n = stats_list(s, st, 1);
    for (int i = 0; i < n && i < rows * cols; i++) {
        int cx = x + 1 + (i / rows) * colw, cy = y + 1 + i % rows;
        frame_printf(f, cx + 1, cy, 10, COL_DIM, "%s", st[i].label);
        frame_text(f, cx + 12, cy, colw - 13, st[i].color, st[i].value);
    }
}

// A horizontal bar of `frac` of width cells, in eighths.
static void bar(Frame *f, int x, int y, int width, double frac) {
    if (!isfinite(frac) || frac < 0) return;
    if (frac > 1) frac = 1;
    int eighths = (int)lround(frac * width * 8);
    for (int i = 0; i < width && eighths > 0; i++, eighths -= 8)
        frame_put(f, x + i, y, eighths >= 8 ? 0x2588 : 0x2590 - (uint32_t)eighths, COL_BAR);
}

typedef struct {
    const char *label;
    double ms;
} Phase;

// The phases of the latest update; the device-pipeline phases come only with
// the report (per-run totals), so they are shown as its mean per update.
static int phases(const DashState *s, Phase *p, double *total, const char **what) {
    const LogNums *l = &s->last, *r = &s->report;
    double k = s->have_report && r->steps > 0 ? 1.0 / (double)r->steps : NAN;
    int from_report = s->have_report && (!s->have_step || !isfinite(l->t_device));
    const LogNums *src = from_report ? r : l;
    double scale = from_report ? k : 1;
    *what = from_report ? "mean per update" : "latest update";
    *total = from_report ? r->train_ms * k : l->ms;
    const Phase all[] = {
        {"forward", src->t_fwd * scale},     {"backward", src->t_bwd * scale},   {"device", src->t_device * scale},
        {"staging", src->t_staging * scale}, {"CPU ops", src->t_cpu_ops * scale}, {"dW wait", src->t_dw_wait * scale},
        {"optimizer", src->t_optim * scale}, {"data", src->t_data * scale},
    };
    // a phase the pipeline does not have (the device ones on cpu) is 0 or absent: no row
    int n = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (isfinite(all[i].ms) && all[i].ms > 0) p[n++] = all[i];
    return n;
}

void dash_render_phases(const DashState *s, Frame *f, int x, int y, int w, int h) {
    Phase p[8];
    double total;
    const char *what;
    int n = phases(s, p, &total, &what);
    char title[64];
    snprintf(title, sizeof title, "phases (%s, ms)", what);
    frame_box(f, x, y, w, h, title);
    if (n == 0) frame_text(f, x + 2, y + 1, w - 4, COL_DIM, "no timings yet");
    int bw = w - 2 - 11 - 16;
    for (int i = 0, row = 0; i < n && row < h - 2; i++) {
        int cy = y + 1 + row++;
        frame_text(f, x + 2, cy, 10, COL_DIM, p[i].label);
        if (bw > 2 && total > 0) bar(f, x + 13, cy, bw, p[i].ms / total);
        frame_printf(f, x + w - 16, cy, 15, COL_DEFAULT, "%8.1f %4.0f%%", p[i].ms,
                     total > 0 ? 100 * p[i].ms / total : 0.0);
    }
}

static void hist_chart(const DashHist *hs, Frame *f, int x, int y, int w, int h, FrameColor c, double floor_max) {
    double xs[DASH_HIST], ys[DASH_HIST];
    for (int i = 0; i < hs->n; i++) xs[i] = i - hs->n + 1, ys[i] = dash_hist_at(hs, i);
    ChartLine line = {xs, ys, (size_t)hs->n, c, 0};
    ChartRange r;
    if (chart_range(&line, 1, 0, &r) != 0) return;
    // the charts start at 0, so a steady value reads as steady, not as noise
    r.y0 = 0;
    if (r.y1 < floor_max) r.y1 = floor_max;
    r.x0 = -(DASH_HIST - 1), r.x1 = 0;
    r.x0_label = "5 min ago", r.x1_label = "now";  // one sample a second
    chart_draw(f, x, y, w, h, &line, 1, &r);
}

void dash_render_system(const DashState *s, Frame *f, int x, int y, int w, int h) {
    frame_box(f, x, y, w, h, "system (training process)");
    int iw = w - 2;
    if (s->have_proc) {
        frame_printf(f, x + 2, y + 1, iw - 2, COL_DEFAULT, "CPU %.0f%% (left)   RSS %.1f MB (right)   %s", s->cpu_now,
                     s->rss_now, s->proc_status);
        int ch = h - 4, cw = iw / 2;
        if (ch >= 3) {
            hist_chart(&s->cpu, f, x + 1, y + 2, cw, ch, COL_SYS, 100);
            hist_chart(&s->rss, f, x + 1 + cw, y + 2, iw - cw, ch, COL_SYS, 1);
        }
    } else {
        frame_printf(f, x + 2, y + 1, iw - 2, COL_DIM, "no process to sample (following a log); peak RSS %.1f MB",
                     s->last.rss_mb);
    }
    if (s->power_ok)
        frame_printf(f, x + 2, y + h - 2, iw - 2, COL_DEFAULT, "power %.1f W (%s)", s->power_now, s->power_what);
    else frame_printf(f, x + 2, y + h - 2, iw - 2, COL_DIM, "power: %s", s->power_what);
}
