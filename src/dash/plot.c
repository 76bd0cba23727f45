// plot: the SVG (plot.h).
#include "dash/plot.h"

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/io.h"
#include "dash/chart.h"

typedef struct {
    char *b;
    size_t n, cap;
    int failed;
} Svg;

static void out(Svg *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out(Svg *s, const char *fmt, ...) {
    while (!s->failed) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(s->b ? s->b + s->n : NULL, s->cap - s->n, fmt, ap);
        va_end(ap);
        if (k >= 0 && (size_t)k < s->cap - s->n) {
            s->n += (size_t)k;
            return;
        }
        size_t cap = (s->cap ? s->cap * 2 : 65536) + (size_t)(k > 0 ? k : 0);
        char *p = k < 0 ? NULL : realloc(s->b, cap);
        if (!p) s->failed = 1;
        else s->b = p, s->cap = cap;
    }
}

// Text content: the five XML specials escaped, control bytes dropped.
static void text(Svg *s, const char *t) {
    for (; *t; t++) {
        unsigned char c = (unsigned char)*t;
        if (c == '<') out(s, "&lt;");
        else if (c == '>') out(s, "&gt;");
        else if (c == '&') out(s, "&amp;");
        else if (c == '"') out(s, "&quot;");
        else if (c == '\'') out(s, "&apos;");
        else if (c >= 0x20) out(s, "%c", c);
    }
}

static const char *COLORS[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};
static const char *PHASE_COLORS[PLOT_PHASES] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2",
                                                "#59a14f", "#edc948", "#b07aa1", "#9c755f"};
static const char *PHASE_NAMES[PLOT_PHASES] = {"forward", "backward", "device", "staging",
                                               "CPU ops", "dW wait", "optimizer", "data"};

const char *plot_color(int i) { return COLORS[i % 8]; }

// A tick spacing of 1, 2 or 5 x 10^k giving about n ticks over range.
static double nice_step(double range, int n) {
    if (!(range > 0)) return 1;
    double raw = range / n, m = pow(10, floor(log10(raw))), f = raw / m;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * m;
}

static void nice_range(double lo, double hi, int n, double *a, double *b) {
    if (!(hi > lo)) hi = lo + (lo != 0 ? fabs(lo) * 0.1 : 1);
    double st = nice_step(hi - lo, n);
    *a = floor(lo / st) * st, *b = ceil(hi / st) * st;
}

static double px(const PlotAxes *a, double x) { return a->px0 + (x - a->x0) / (a->x1 - a->x0) * (a->px1 - a->px0); }
static double py(const PlotAxes *a, double y) { return a->py0 + (y - a->y0) / (a->y1 - a->y0) * (a->py1 - a->py0); }

enum { TICKS_MAX = 32 };

// The tick values of [lo, hi] at a nice step for about `want` of them, as
// multiples i * step counted by an integer: adding the step to a double can
// stop moving it (a range of 1e17 with a step of 1) and never end.
static int ticks(double lo, double hi, int want, double *v) {
    const double st = nice_step(hi - lo, want);
    const double first = ceil(lo / st - 1e-9), last = floor(hi / st + 1e-9);
    if (!(st > 0) || !isfinite(first) || !isfinite(last) || last - first > TICKS_MAX - 1) return 0;
    const int n = (int)(last - first) + 1;
    for (int k = 0; k < n; k++) {
        const double i = first + k;
        v[k] = fabs(i) < 0.5 ? 0 : i * st;  // exact 0, never "-0"
    }
    return n;
}

// The frame, grid, ticks and labels of a panel (no y ticks when yl is ""); right = a second y range (or NULL).
static void axes(Svg *s, const PlotAxes *a, const char *title, const char *xl, const char *yl, const PlotAxes *right,
                 const char *rl) {
    char lab[32];
    out(s, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#999\"/>\n", a->px0,
        a->py1, a->px1 - a->px0, a->py0 - a->py1);
    double tv[TICKS_MAX];
    for (int i = 0, n = yl[0] ? ticks(a->y0, a->y1, 5, tv) : 0; i < n; i++) {
        const double v = tv[i];
        chart_fmt(lab, sizeof lab, v);
        out(s, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>", a->px0, py(a, v), a->px1, py(a, v));
        out(s, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n", a->px0 - 6, py(a, v) + 4, lab);
    }
    for (int i = 0, n = ticks(a->x0, a->x1, 6, tv); i < n; i++) {
        const double v = tv[i];
        chart_fmt(lab, sizeof lab, v);
        out(s, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999\"/>", px(a, v), a->py0, px(a, v), a->py0 + 5);
        out(s, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", px(a, v), a->py0 + 18, lab);
    }
    if (right) {
        for (int i = 0, n = ticks(right->y0, right->y1, 5, tv); i < n; i++) {
            const double v = tv[i];
            chart_fmt(lab, sizeof lab, v);
            out(s, "<text x=\"%.1f\" y=\"%.1f\" fill=\"#777\">%s</text>\n", a->px1 + 6, py(right, v) + 4, lab);
        }
        out(s, "<text transform=\"translate(%.1f %.1f) rotate(90)\" text-anchor=\"middle\" fill=\"#777\">%s</text>\n",
            a->px1 + 78, (a->py0 + a->py1) / 2, rl);
    }
    out(s, "<text x=\"%.1f\" y=\"%.1f\" font-weight=\"bold\">%s</text>\n", a->px0, a->py1 - 8, title);
    out(s, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", (a->px0 + a->px1) / 2, a->py0 + 36, xl);
    out(s, "<text transform=\"translate(%.1f %.1f) rotate(-90)\" text-anchor=\"middle\">%s</text>\n", a->px0 - 50,
        (a->py0 + a->py1) / 2, yl);
}

// A polyline of up to ~2000 points (every k-th kept, and the last).
static void polyline(Svg *s, const PlotAxes *a, const double *xs, const double *ys, size_t n, size_t stride,
                     const char *style) {
    size_t k = n > 2000 ? n / 2000 + 1 : 1;
    int open = 0;
    for (size_t i = 0; i < n; i++) {
        if (i % k != 0 && i != n - 1) continue;
        double x = *(const double *)((const char *)xs + i * stride), y = *(const double *)((const char *)ys + i * stride);
        if (!isfinite(x) || !isfinite(y)) {
            if (open) out(s, "\"/>\n"), open = 0;  // a gap, not a line through it
            continue;
        }
        y = fmin(fmax(y, a->y0), a->y1);
        if (!open) out(s, "<polyline fill=\"none\" %s points=\"", style), open = 1;
        out(s, "%.1f,%.1f ", px(a, x), py(a, y));
    }
    if (open) out(s, "\"/>\n");
}

static double xval(const PlotStep *p, int tokens) { return tokens ? p->tokens : p->step; }

void plot_loss_axes(const PlotRun *runs, int n, int x_tokens, PlotAxes *a) {
    double xmax = 0, lo = INFINITY, hi = -INFINITY;
    for (int r = 0; r < n; r++) {
        for (size_t i = 0; i < runs[r].ns; i++) {
            const PlotStep *p = &runs[r].s[i];
            xmax = fmax(xmax, xval(p, x_tokens));
            if (isfinite(p->loss)) lo = fmin(lo, p->loss), hi = fmax(hi, p->loss);
        }
        for (size_t i = 0; i < runs[r].ne; i++) {
            const PlotEval *e = &runs[r].e[i];
            xmax = fmax(xmax, x_tokens ? e->tokens : e->step);
            lo = fmin(lo, e->val), hi = fmax(hi, e->val);
        }
    }
    if (!isfinite(lo)) lo = 0, hi = 1;
    *a = (PlotAxes){.px0 = 80, .px1 = 860, .py0 = 410, .py1 = 90};
    nice_range(lo, hi, 6, &a->y0, &a->y1);
    a->x0 = 0;
    nice_range(0, xmax, 6, &a->x0, &a->x1);
}

static void loss_panel(Svg *s, const PlotRun *runs, int n, int tok) {
    PlotAxes a, lr;
    plot_loss_axes(runs, n, tok, &a);
    double lmax = 0;
    for (int r = 0; r < n; r++)
        for (size_t i = 0; i < runs[r].ns; i++)
            if (isfinite(runs[r].s[i].lr)) lmax = fmax(lmax, runs[r].s[i].lr);
    lr = a;
    nice_range(0, lmax > 0 ? lmax : 1e-3, 5, &lr.y0, &lr.y1);
    axes(s, &a, "loss (train solid, validation dashed) and learning rate (dotted, right axis)",
         tok ? "tokens" : "updates", "loss", &lr, "learning rate");
    for (int r = 0; r < n; r++) {
        const PlotRun *R = &runs[r];
        char style[128];
        const size_t xo = tok ? offsetof(PlotStep, tokens) : offsetof(PlotStep, step);
        snprintf(style, sizeof style, "stroke=\"%s\" stroke-width=\"1\" stroke-dasharray=\"1 3\" opacity=\"0.8\"", plot_color(r));
        if (R->ns) polyline(s, &lr, (const double *)((const char *)R->s + xo), &R->s[0].lr, R->ns, sizeof *R->s, style);
        snprintf(style, sizeof style, "stroke=\"%s\" stroke-width=\"1.5\"", plot_color(r));
        if (R->ns) polyline(s, &a, (const double *)((const char *)R->s + xo), &R->s[0].loss, R->ns, sizeof *R->s, style);
        snprintf(style, sizeof style, "stroke=\"%s\" stroke-width=\"1.5\" stroke-dasharray=\"6 3\"", plot_color(r));
        const size_t eo = tok ? offsetof(PlotEval, tokens) : offsetof(PlotEval, step);
        if (R->ne) polyline(s, &a, (const double *)((const char *)R->e + eo), &R->e[0].val, R->ne, sizeof *R->e, style);
        for (size_t i = 0; i < R->ne; i++)
            out(s, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>", px(&a, tok ? R->e[i].tokens : R->e[i].step),
                py(&a, fmin(fmax(R->e[i].val, a.y0), a.y1)), plot_color(r));
    }
    out(s, "\n");
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// ms per update; the axis stops at 3x the median so a slow first update does not flatten the rest.
static void ms_panel(Svg *s, const PlotRun *runs, int n, int tok) {
    double xmax = 0, top = 0;
    for (int r = 0; r < n; r++) {
        double *v = malloc((runs[r].ns + 1) * sizeof *v);
        size_t k = 0;
        for (size_t i = 0; v && i < runs[r].ns; i++) {
            xmax = fmax(xmax, xval(&runs[r].s[i], tok));
            if (isfinite(runs[r].s[i].ms)) v[k++] = runs[r].s[i].ms;
        }
        if (v && k) qsort(v, k, sizeof *v, cmp_double), top = fmax(top, fmin(v[k - 1], 3 * v[k / 2]));
        free(v);
    }
    PlotAxes a = {.px0 = 80, .px1 = 440, .py0 = 700, .py1 = 510};
    nice_range(0, top > 0 ? top : 1, 4, &a.y0, &a.y1);
    nice_range(0, xmax, 4, &a.x0, &a.x1);
    axes(s, &a, "ms per update", tok ? "tokens" : "updates", "ms", NULL, NULL);
    for (int r = 0; r < n; r++) {
        char style[96];
        snprintf(style, sizeof style, "stroke=\"%s\" stroke-width=\"1\"", plot_color(r));
        const size_t xo = tok ? offsetof(PlotStep, tokens) : offsetof(PlotStep, step);
        if (runs[r].ns)
            polyline(s, &a, (const double *)((const char *)runs[r].s + xo), &runs[r].s[0].ms, runs[r].ns, sizeof *runs[r].s, style);
    }
}

// One stacked bar per run: mean ms per update in each phase.
static void phase_panel(Svg *s, const PlotRun *runs, int n) {
    double top = 0;
    for (int r = 0; r < n; r++) {
        double t = 0;
        for (int i = 0; i < PLOT_PHASES; i++) t += runs[r].phase[i];
        top = fmax(top, t);
    }
    PlotAxes a = {.px0 = 540, .px1 = 860, .py0 = 700, .py1 = 510, .y0 = 0, .y1 = 1};
    nice_range(0, top > 0 ? top : 1, 4, &a.x0, &a.x1);
    axes(s, &a, "time per update by phase (mean)", "ms", "", NULL, NULL);
    double bh = fmin(24, 150.0 / (n > 0 ? n : 1));
    for (int r = 0; r < n; r++) {
        double y = a.py1 + 12 + r * (bh + 6), x = a.px0;
        for (int i = 0; i < PLOT_PHASES; i++) {
            double w = px(&a, runs[r].phase[i]) - a.px0;
            if (w <= 0) continue;
            out(s, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>", x, y, w, bh, PHASE_COLORS[i]);
            x += w;
        }
        out(s, "<rect x=\"%.1f\" y=\"%.1f\" width=\"4\" height=\"%.1f\" fill=\"%s\"/>\n", a.px0 - 6, y, bh, plot_color(r));
    }
    for (int i = 0; i < PLOT_PHASES; i++) {
        double x = 540 + (i % 4) * 82, y = 772 - (i < 4) * 16;
        out(s, "<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"10\" fill=\"%s\"/>", x, y - 9, PHASE_COLORS[i]);
        out(s, "<text x=\"%.1f\" y=\"%.1f\">%s</text>\n", x + 14, y, PHASE_NAMES[i]);
    }
}

static void legend(Svg *s, const PlotRun *runs, int n) {
    for (int r = 0; r < n; r++) {
        double y = 30 + r * 16;
        out(s, "<line x1=\"80\" y1=\"%.1f\" x2=\"104\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"/>", y - 4, y - 4, plot_color(r));
        out(s, "<text x=\"110\" y=\"%.1f\">", y);
        text(s, runs[r].name);
        out(s, "</text>\n");
    }
}

int plot_svg(const PlotRun *runs, int n, int x_tokens, const char *path) {
    Svg s = {0};
    int h = PLOT_H + (n > 3 ? (n - 3) * 16 : 0);
    out(&s, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
            "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"#fff\"/>\n", PLOT_W, h, PLOT_W, h);
    legend(&s, runs, n);
    if (n > 3) out(&s, "<g transform=\"translate(0 %d)\">\n", (n - 3) * 16);
    loss_panel(&s, runs, n, x_tokens);
    ms_panel(&s, runs, n, x_tokens);
    phase_panel(&s, runs, n);
    if (n > 3) out(&s, "</g>\n");
    out(&s, "</svg>\n");
    if (s.failed) return free(s.b), err_set("%s: out of memory for the SVG", path);
    AtomicFile af;
    int rc = io_atomic_open(&af, path);
    if (rc == 0 && io_atomic_write(&af, s.b, s.n) != 0) io_atomic_abort(&af), rc = -1;
    else if (rc == 0) rc = io_atomic_commit(&af);
    free(s.b);
    return rc;
}
