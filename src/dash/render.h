// render: the dashboard as a pure function of its state: DashState -> Frame.
//
// No terminal, no clock, no I/O: the same state and frame size give the same
// cells, which is what the tests check (tests/test_dash.c) and what the
// terminal layer (tui.h) copies to the screen.
//
// Layout, top to bottom: two header lines (model, dims, params; pipeline,
// device, kernels, accum, lr, and the run's status), the loss curve beside the
// stats, the phase bars beside the system panel (CPU %, RSS, power), the
// latest generated text beside the logs, and a line of key hints. Below
// DASH_MIN_W x DASH_MIN_H the frame holds a one-line notice instead.
#pragma once

#include "dash/frame.h"
#include "dash/state.h"

enum { DASH_MIN_W = 60, DASH_MIN_H = 20 };

// Clears f and draws s into it (f's size is the terminal's).
void dash_render(const DashState *s, Frame *f);

// The panels (render_panels.c, render_text.c); each draws inside its box.
void dash_render_loss(const DashState *s, Frame *f, int x, int y, int w, int h);
void dash_render_stats(const DashState *s, Frame *f, int x, int y, int w, int h);
void dash_render_phases(const DashState *s, Frame *f, int x, int y, int w, int h);
void dash_render_system(const DashState *s, Frame *f, int x, int y, int w, int h);
void dash_render_sample(const DashState *s, Frame *f, int x, int y, int w, int h);
void dash_render_logs(const DashState *s, Frame *f, int x, int y, int w, int h);
// "1h 02m", "3m 07s", "12.5 s"
void dash_fmt_duration(char *out, int cap, double ms);
