// tui: the terminal under the dashboard (ncursesw), kept thin: open and
// restore the terminal, copy a Frame to the screen, read keys. Everything the
// user sees is decided by the renderer (render.h); this file only maps its
// colour roles and cells to curses.
//
// Built without ncursesw (NCURSES=none, or not found) every call fails with a
// message saying how to get it.
#pragma once

#include "dash/frame.h"

enum {
    TUI_KEY_NONE = -1,
    TUI_KEY_UP = 0x110000,  // above every code point
    TUI_KEY_DOWN,
    TUI_KEY_PGUP,
    TUI_KEY_PGDN,
    TUI_KEY_HOME,
    TUI_KEY_END,
    TUI_KEY_RESIZE,  // the terminal changed size (SIGWINCH)
};

int tui_available(void);
// Takes over the terminal (stdin and stdout must be one). 0, or -1 with err_msg().
int tui_open(void);
// The current size in cells.
void tui_size(int *w, int *h);
// Copies the frame to the screen (only what changed is sent).
void tui_draw(const Frame *f);
// The next key, or TUI_KEY_NONE when none is waiting (never blocks).
int tui_key(void);
// Gives the terminal back as it was; safe to call twice, and from atexit.
void tui_close(void);
