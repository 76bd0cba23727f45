// dash_util: what the dashboard and plot tests share (tests/test_dash*.c,
// tests/test_plot.c): canned logs, frames as text, files written in steps.
#pragma once
#include <stddef.h>

#include "dash/frame.h"
#include "dash/state.h"

// A finished stories260k-like run: start, `steps` step records (loss falling
// from 6.2), an eval every 10 updates, checkpoints and the report. malloc'd.
char *dash_canned_run(int steps);
// Feeds a whole text (JSON lines) into s, as the follower would.
void dash_feed(DashState *s, const char *text);
// The row of f that contains needle (UTF-8), or -1; its column in *col.
int dash_find(const Frame *f, const char *needle, int *col);
// Prints the frame (for a failing test's output).
void dash_dump(const Frame *f);
// Writes/appends text to a file; 0 or -1.
int dash_write(const char *path, const char *text, int append);
// Number of braille cells (U+2801..U+28FF) in the rectangle.
int dash_braille(const Frame *f, int x, int y, int w, int h);
