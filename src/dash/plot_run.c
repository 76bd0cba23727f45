// plot_run: a log file -> the series a plot draws (plot.h).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/io.h"
#include "dash/plot.h"

static int grow(void **p, size_t *cap, size_t n, size_t elem) {
    if (n < *cap) return 0;
    size_t c = *cap ? *cap * 2 : 256;
    void *q = realloc(*p, c * elem);
    if (!q) return err_set("out of memory");
    *p = q, *cap = c;
    return 0;
}

typedef struct {
    PlotRun *r;
    double tokens, last_step;  // tokens seen by the last step, and its update
    double sum[PLOT_PHASES];
    long long steps;
    int have_report;
    LogNums report;
} Loader;

static double tokens_at(Loader *L, double step) {
    double tpu = isfinite(L->r->cfg.tokens_per_update) ? L->r->cfg.tokens_per_update : 0;
    return L->tokens + (step - L->last_step) * tpu;
}

static int add_step(Loader *L, const LogNums *n) {
    PlotRun *r = L->r;
    if (n->step < 0) return 0;
    if (grow((void **)&r->s, &r->scap, r->ns, sizeof *r->s) != 0) return -1;
    double t = tokens_at(L, (double)n->step);
    r->s[r->ns++] = (PlotStep){(double)n->step, t, n->loss, n->lr, n->ms};
    L->tokens = t, L->last_step = (double)n->step;
    const double ph[PLOT_PHASES] = {n->t_fwd, n->t_bwd, n->t_device, n->t_staging, n->t_cpu_ops, n->t_dw_wait,
                                    n->t_optim, n->t_data};
    for (int i = 0; i < PLOT_PHASES; i++)
        if (isfinite(ph[i])) L->sum[i] += ph[i];
    L->steps++;
    return 0;
}

static int add_eval(Loader *L, const LogNums *n) {
    PlotRun *r = L->r;
    if (n->step < 0 || !isfinite(n->val_loss)) return 0;
    if (grow((void **)&r->e, &r->ecap, r->ne, sizeof *r->e) != 0) return -1;
    r->e[r->ne++] = (PlotEval){(double)n->step, tokens_at(L, (double)n->step), n->val_loss};
    return 0;
}

static int add_line(Loader *L, const char *line, size_t len) {
    LogRecord rec;
    if (len == 0) return 0;
    if (logrec_parse(&rec, line, (long)len) != 0) {
        if (!logrec_available()) return -1;
        L->r->bad_lines++;
        return 0;
    }
    switch (rec.type) {
    case LOG_START:
        if (rec.start.resumed_at < 0 && L->r->ns > 0) {
            // a new run appended to the same file: plot the latest one
            L->r->ns = L->r->ne = 0, L->tokens = L->last_step = 0, L->steps = 0, L->have_report = 0;
            memset(L->sum, 0, sizeof L->sum);
        }
        L->r->cfg = rec.start;
        return 0;
    case LOG_STEP: return add_step(L, &rec.n);
    case LOG_EVAL: return add_eval(L, &rec.n);
    case LOG_REPORT: L->have_report = 1, L->report = rec.n; return 0;
    default: return 0;
    }
}

// The phase breakdown: the report's totals when the run finished (they hold
// the device phases too), else the mean of the step records.
static void phases(Loader *L) {
    PlotRun *r = L->r;
    const LogNums *p = &L->report;
    if (L->have_report && p->steps > 0) {
        const double t[PLOT_PHASES] = {p->t_fwd, p->t_bwd, p->t_device, p->t_staging, p->t_cpu_ops, p->t_dw_wait,
                                       p->t_optim, p->t_data};
        for (int i = 0; i < PLOT_PHASES; i++) r->phase[i] = isfinite(t[i]) ? t[i] / (double)p->steps : 0;
    } else {
        for (int i = 0; i < PLOT_PHASES; i++) r->phase[i] = L->steps ? L->sum[i] / (double)L->steps : 0;
    }
}

int plot_run_load(PlotRun *r, const char *path) {
    memset(r, 0, sizeof *r);
    char *buf;
    size_t size;
    if (io_read_all(path, &buf, &size) != 0) return -1;
    Loader L = {.r = r};
    int rc = 0;
    for (size_t i = 0; i < size && rc == 0;) {
        const char *nl = memchr(buf + i, '\n', size - i);
        size_t n = nl ? (size_t)(nl - (buf + i)) : size - i;
        rc = add_line(&L, buf + i, n);  // a torn last line is just a bad line
        i += n + 1;
    }
    free(buf);
    if (rc != 0) return err_wrap("%s", path), plot_run_free(r), -1;
    if (r->ns == 0 && r->ne == 0) return err_set("%s: no step or eval records", path), plot_run_free(r), -1;
    phases(&L);
    const char *base = strrchr(path, '/');
    snprintf(r->name, sizeof r->name, "%s: %s, %s%s%s, %s", base ? base + 1 : path,
             r->cfg.model[0] ? r->cfg.model : "?", r->cfg.pipeline[0] ? r->cfg.pipeline : "?",
             r->cfg.device[0] ? " on " : "", r->cfg.device, r->cfg.precision[0] ? r->cfg.precision : "?");
    return 0;
}

void plot_run_free(PlotRun *r) {
    free(r->s);
    free(r->e);
    memset(r, 0, sizeof *r);
}
