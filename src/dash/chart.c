// chart: braille line charts (chart.h).
#include "dash/chart.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { LABEL_W = 7 };

static double ty(const ChartRange *r, double y) { return r->log_y ? (y > 0 ? log10(y) : NAN) : y; }

int chart_range(const ChartLine *lines, int n_lines, int log_y, ChartRange *r) {
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    ChartRange probe = {.log_y = log_y};
    for (int l = 0; l < n_lines; l++)
        for (size_t i = 0; i < lines[l].n; i++) {
            double yv = ty(&probe, lines[l].y[i]);
            if (!isfinite(yv) || !isfinite(lines[l].x[i])) continue;
            x0 = fmin(x0, lines[l].x[i]), x1 = fmax(x1, lines[l].x[i]);
            y0 = fmin(y0, yv), y1 = fmax(y1, yv);
        }
    if (!isfinite(x0)) return -1;
    if (x1 <= x0) x1 = x0 + 1;
    double pad = (y1 - y0) * 0.05;
    if (pad <= 0) pad = fabs(y0) * 0.05 + 0.05;
    y0 -= pad, y1 += pad;
    *r = (ChartRange){x0, x1, log_y ? pow(10, y0) : y0, log_y ? pow(10, y1) : y1, log_y, NULL, NULL};
    return 0;
}

void chart_fmt(char *out, size_t cap, double v) {
    double a = fabs(v);
    if (!isfinite(v)) snprintf(out, cap, "-");
    else if (a >= 1e9) snprintf(out, cap, "%.3gG", v / 1e9);
    else if (a >= 1e6) snprintf(out, cap, "%.3gM", v / 1e6);
    else if (a >= 1e4) snprintf(out, cap, "%.3gk", v / 1e3);
    else if (a >= 100 || a == 0) snprintf(out, cap, "%.0f", v);
    else if (a >= 0.01) snprintf(out, cap, "%.3g", v);
    else snprintf(out, cap, "%.1e", v);
}

// One dot of the plot area; (dx, dy) in dots from its top left.
static void dot(Frame *f, int px, int py, int pw, int ph, int dx, int dy, FrameColor c) {
    static const uint8_t BIT[4][2] = {{0x01, 0x08}, {0x02, 0x10}, {0x04, 0x20}, {0x40, 0x80}};
    if (dx < 0 || dy < 0 || dx >= pw * 2 || dy >= ph * 4) return;
    Cell *cell = frame_at(f, px + dx / 2, py + dy / 4);
    if (!cell) return;
    uint32_t base = cell->cp >= 0x2800 && cell->cp <= 0x28FF ? cell->cp : 0x2800;
    *cell = (Cell){base | BIT[dy % 4][dx % 2], (uint8_t)c, 0};
}

// Bresenham between two dots.
static void segment(Frame *f, int px, int py, int pw, int ph, int x0, int y0, int x1, int y1, FrameColor c) {
    int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1, e = dx + dy;
    for (int guard = 0; guard < 4 * (pw * 2 + ph * 4) + 4; guard++) {
        dot(f, px, py, pw, ph, x0, y0, c);
        if (x0 == x1 && y0 == y1) break;
        int e2 = 2 * e;
        if (e2 >= dy) e += dy, x0 += sx;
        if (e2 <= dx) e += dx, y0 += sy;
    }
}

static void draw_line(Frame *f, int px, int py, int pw, int ph, const ChartLine *l, const ChartRange *r) {
    double yl0 = ty(r, r->y0), yl1 = ty(r, r->y1);
    int have = 0, lx = 0, ly = 0;
    for (size_t i = 0; i < l->n; i++) {
        double yv = ty(r, l->y[i]);
        if (!isfinite(yv) || !isfinite(l->x[i])) {
            have = 0;
            continue;
        }
        double fx = (l->x[i] - r->x0) / (r->x1 - r->x0), fy = (yv - yl0) / (yl1 - yl0);
        fx = fmin(fmax(fx, 0), 1), fy = fmin(fmax(fy, 0), 1);
        int cx = (int)lround(fx * (pw * 2 - 1)), cy = (int)lround((1 - fy) * (ph * 4 - 1));
        if (l->points) {
            // the whole cell: a dot of its own colour that a dense curve beside it cannot hide
            Cell *cell = frame_at(f, px + cx / 2, py + cy / 4);
            if (cell) *cell = (Cell){0x28FF, (uint8_t)l->color, 1};
            continue;
        }
        if (have) segment(f, px, py, pw, ph, lx, ly, cx, cy, l->color);
        else dot(f, px, py, pw, ph, cx, cy, l->color);
        have = 1, lx = cx, ly = cy;
    }
}

void chart_draw(Frame *f, int x, int y, int w, int h, const ChartLine *lines, int n_lines, const ChartRange *r) {
    if (w < 12 || h < 3) return;
    int px = x + LABEL_W, pw = w - LABEL_W, ph = h - 1;
    char lab[32];
    double mid = r->log_y ? sqrt(r->y0 * r->y1) : (r->y0 + r->y1) / 2;
    chart_fmt(lab, sizeof lab, r->y1), frame_printf(f, x, y, LABEL_W - 1, COL_DIM, "%6s", lab);
    if (ph >= 5) chart_fmt(lab, sizeof lab, mid), frame_printf(f, x, y + ph / 2, LABEL_W - 1, COL_DIM, "%6s", lab);
    chart_fmt(lab, sizeof lab, r->y0), frame_printf(f, x, y + ph - 1, LABEL_W - 1, COL_DIM, "%6s", lab);
    for (int j = 0; j < ph; j++) frame_put(f, px - 1, y + j, 0x2524, COL_DIM);
    chart_fmt(lab, sizeof lab, r->x0);
    frame_text(f, px, y + ph, pw, COL_DIM, r->x0_label ? r->x0_label : lab);
    if (r->x1_label) snprintf(lab, sizeof lab, "%s", r->x1_label);
    else chart_fmt(lab, sizeof lab, r->x1);
    int n = (int)snprintf(NULL, 0, "%s", lab);
    frame_text(f, px + pw - n, y + ph, n, COL_DIM, lab);
    for (int l = 0; l < n_lines; l++) draw_line(f, px, y, pw, ph, &lines[l], r);
}
