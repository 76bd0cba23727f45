// plot: runs' logs drawn as one standalone SVG (`anetrain plot`).
//
// Three panels: train loss (solid) and validation loss (dashed, dots) of every
// run against updates or tokens, with the learning rate on a second axis
// (thin dotted); ms per update; and each run's phase breakdown (mean ms per
// update: forward, backward, device, staging, CPU ops, dW wait, optimizer,
// data) as a stacked bar. Runs are overlaid in distinct colours with a legend
// naming each (file, model, pipeline, precision). Axes have "nice" ticks
// (1, 2, 5 x 10^k) and labels. The picture is PLOT_W x PLOT_H px.
#pragma once
#include <stddef.h>

#include "dash/logrec.h"

enum { PLOT_W = 960, PLOT_H = 780, PLOT_PHASES = 8 };

typedef struct {
    double step, tokens, loss, lr, ms;
} PlotStep;

typedef struct {
    double step, tokens, val;
} PlotEval;

typedef struct {
    char name[300];  // the legend's words
    LogStart cfg;
    PlotStep *s;
    size_t ns, scap;
    PlotEval *e;
    size_t ne, ecap;
    double phase[PLOT_PHASES];  // mean ms per update
    long long bad_lines;
} PlotRun;

// A data -> pixel mapping of one panel.
typedef struct {
    double x0, x1, y0, y1;     // data ranges (y of the left axis)
    double px0, px1, py0, py1; // pixels: px0 at x0, py0 at y0 (py0 > py1: y grows up)
} PlotAxes;

// Reads a log (every run in it; a resumed run continues its curves). 0, or -1.
int plot_run_load(PlotRun *r, const char *path);
void plot_run_free(PlotRun *r);
// The loss panel's mapping for these runs (what plot_svg draws with).
void plot_loss_axes(const PlotRun *runs, int n, int x_tokens, PlotAxes *a);
// Writes the SVG to path (atomically). 0, or -1.
int plot_svg(const PlotRun *runs, int n, int x_tokens, const char *path);
// The colour of run i ("#rrggbb"), as the legend shows it.
const char *plot_color(int i);
