// render: the layout, the header, the key line, help and the too-small notice (render.h).
#include "dash/render.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void dash_fmt_duration(char *out, int cap, double ms) {
    double s = ms / 1e3;
    if (!isfinite(s) || s < 0) snprintf(out, (size_t)cap, "-");
    else if (s < 60) snprintf(out, (size_t)cap, "%.1f s", s);
    else if (s < 3600) snprintf(out, (size_t)cap, "%dm %02ds", (int)s / 60, (int)s % 60);
    else if (s < 3600e6) snprintf(out, (size_t)cap, "%.0fh %02dm", floor(s / 3600), (int)fmod(s / 60, 60));
    else snprintf(out, (size_t)cap, "%.3gh", s / 3600);  // a log's absurd ETA: any double
}

static const char *status(const DashState *s) {
    if (s->proc_status[0]) return s->proc_status;
    if (s->have_report) return "finished";
    if (!s->have_start) return "waiting for the log";
    return "following";
}

static void header(const DashState *s, Frame *f) {
    const LogStart *c = &s->cfg;
    for (int x = 0; x < f->w; x++) frame_put(f, x, 0, ' ', COL_TITLE);
    if (!s->have_start) {
        frame_printf(f, 1, 0, f->w - 2, COL_TITLE, "anetrain dash  %s", s->source);
        frame_printf(f, 1, 1, f->w - 2, COL_DIM, "no start record yet");
    } else {
        frame_printf(f, 1, 0, f->w - 2, COL_TITLE,
                     "anetrain dash  %s  %.2fM params  dim %lld  hidden %lld  layers %lld  heads %lld/%lld  "
                     "head dim %lld  vocab %lld  seq %lld",
                     c->model, (double)c->params / 1e6, c->dim, c->hidden, c->layers, c->heads, c->kv_heads,
                     c->head_dim, c->vocab, c->seq);
        frame_printf(f, 1, 1, f->w - 2, COL_DEFAULT,
                     "%s pipeline  device %s  %s  kernels %lld  accum %lld x %lld  lr %.2e (warmup %lld)  %s",
                     c->pipeline, c->device[0] ? c->device : "-", c->precision, c->kernels, c->accum, c->seq, c->lr,
                     c->warmup, c->gemm);
    }
    const char *st = status(s);
    int n = (int)strlen(st);
    if (n < f->w / 3) {
        for (int x = f->w - n - 3; x < f->w; x++) frame_put(f, x, 1, ' ', COL_DEFAULT);
        frame_text(f, f->w - n - 1, 1, n, s->proc_status[0] && strstr(st, "exited") ? COL_WARN : COL_EVAL, st);
    }
}

static void keys(const DashState *s, Frame *f) {
    frame_printf(f, 1, f->h - 1, f->w - 2, COL_DIM,
                 "q quit  r restart  g sample  p %s  \xe2\x86\x91\xe2\x86\x93 scroll  s smooth%s  x %s  l log%s  h help",
                 s->paused ? "resume" : "pause", s->smooth ? " (on)" : "", s->x_tokens ? "tokens" : "updates",
                 s->log_y ? " (on)" : "");
}

static void help(Frame *f) {
    static const char *LINES[] = {
        "q      quit (a child trainer saves, then dash exits)",
        "r      restart the child trainer with --resume",
        "g      ask the trainer for a sample now",
        "p      pause / resume auto-scroll of the logs",
        "arrows scroll the logs (PgUp/PgDn: a page)",
        "s      EMA smoothing of the train loss",
        "x      x axis: updates or tokens",
        "l      log-scale loss axis",
        "h      this help (any key closes it)",
    };
    int n = (int)(sizeof LINES / sizeof LINES[0]), w = 58, h = n + 2;
    if (w > f->w - 2) w = f->w - 2;
    int x = (f->w - w) / 2, y = (f->h - h) / 2;
    for (int j = 0; j < h; j++)
        for (int i = 0; i < w; i++) frame_put(f, x + i, y + j, ' ', COL_DEFAULT);
    frame_box(f, x, y, w, h, "keys");
    for (int j = 0; j < n; j++) frame_text(f, x + 2, y + 1 + j, w - 4, COL_DEFAULT, LINES[j]);
}

void dash_render(const DashState *s, Frame *f) {
    for (int i = 0; i < f->w * f->h; i++) f->cells[i] = (Cell){' ', COL_DEFAULT, 0};
    if (f->w < DASH_MIN_W || f->h < DASH_MIN_H) {
        frame_printf(f, 0, 0, f->w, COL_WARN, "terminal too small: %dx%d, dash needs %dx%d", f->w, f->h, DASH_MIN_W,
                     DASH_MIN_H);
        return;
    }
    header(s, f);
    int body = f->h - 3;  // two header lines, one key line
    // the curve and the stats first; phases and system need 6 rows, the text and logs get the rest
    int top = body * 48 / 100, mid = body * 25 / 100;
    if (top < 9) top = 9;
    if (mid < 6) mid = 6;
    int bottom = body - top - mid, y = 2;
    int lw = f->w * 58 / 100;
    dash_render_loss(s, f, 0, y, lw, top);
    dash_render_stats(s, f, lw, y, f->w - lw, top);
    y += top;
    int pw = f->w / 2;
    dash_render_phases(s, f, 0, y, pw, mid);
    dash_render_system(s, f, pw, y, f->w - pw, mid);
    y += mid;
    if (bottom >= 3) {
        int sw = f->w * 40 / 100;
        dash_render_sample(s, f, 0, y, sw, bottom);
        dash_render_logs(s, f, sw, y, f->w - sw, bottom);
    }
    keys(s, f);
    if (s->help) help(f);
}
