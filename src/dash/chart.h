// chart: line charts in braille (2 x 4 dots per cell) with labelled axes,
// drawn into a Frame. Pure: the same inputs give the same cells.
#pragma once
#include <stddef.h>

#include "dash/frame.h"

typedef struct {
    const double *x, *y;  // n points, x ascending; non-finite y values are gaps
    size_t n;
    FrameColor color;
    int points;  // mark each point's cell instead of joining them (sparse series over a dense one)
} ChartLine;

typedef struct {
    double x0, x1, y0, y1;  // the visible ranges
    int log_y;              // y on a log10 scale (values <= 0 are gaps)
    const char *x0_label, *x1_label;  // shown instead of x0 and x1 when set ("5 min ago", "now")
} ChartRange;

// The ranges that hold every finite point of the lines (y padded by 5%, a
// flat line given some height); 0, or -1 when there is nothing to draw.
int chart_range(const ChartLine *lines, int n_lines, int log_y, ChartRange *r);
// Draws the lines in the box (x, y, w, h): y labels on the left (7 cells),
// x labels on the bottom row, braille in the rest. Empty when w < 12 or h < 3.
void chart_draw(Frame *f, int x, int y, int w, int h, const ChartLine *lines, int n_lines, const ChartRange *r);
// A short label for a number: 950, 1.2k, 34.5M, 0.0012, 4.53.
void chart_fmt(char *out, size_t cap, double v);
