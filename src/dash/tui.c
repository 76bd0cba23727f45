// tui: ncursesw under the dashboard (tui.h).
// curses.h declares the wide-character calls only with this, before any header
#define _XOPEN_SOURCE_EXTENDED 1
#include "dash/tui.h"

#include "core/err.h"

#ifdef USE_NCURSES
#include <curses.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <wchar.h>

static SCREEN *g_screen;  // the one terminal a process shows the dashboard on
static int g_wide;        // the locale can show non-ASCII (UTF-8)

int tui_available(void) { return 1; }

// Colour roles -> (foreground, attributes); pair i + 1 is role i.
static const struct {
    short fg;
    attr_t attr;
} ROLE[COL_COUNT] = {
    [COL_DEFAULT] = {-1, A_NORMAL},     [COL_DIM] = {-1, A_DIM},           [COL_TITLE] = {COLOR_CYAN, A_BOLD},
    [COL_TRAIN] = {COLOR_GREEN, A_BOLD}, [COL_VAL] = {COLOR_CYAN, A_BOLD},  [COL_STEP] = {COLOR_GREEN, A_NORMAL},
    [COL_EVAL] = {COLOR_BLUE, A_BOLD},   [COL_RESTART] = {COLOR_MAGENTA, A_BOLD}, [COL_WARN] = {COLOR_YELLOW, A_BOLD},
    [COL_ERROR] = {COLOR_RED, A_BOLD},   [COL_BAR] = {COLOR_BLUE, A_NORMAL}, [COL_SYS] = {COLOR_MAGENTA, A_NORMAL},
};

int tui_open(void) {
    if (g_screen) return 0;
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO))
        return err_set("dash needs a terminal: stdin and stdout must be one (to record a run without one, use train --log "
                       "and anetrain plot)");
    setlocale(LC_ALL, "");
    g_wide = MB_CUR_MAX > 1;
    g_screen = newterm(NULL, stdout, stdin);
    if (!g_screen) return err_set("dash: cannot use the terminal (TERM=%s)", getenv("TERM") ? getenv("TERM") : "unset");
    set_term(g_screen);
    raw();  // Ctrl-C arrives as a key, so quitting is always the same orderly path
    noecho();
    nodelay(stdscr, TRUE);
    keypad(stdscr, TRUE);
    curs_set(0);
    if (has_colors()) {
        start_color();
        use_default_colors();
        for (int i = 0; i < COL_COUNT; i++) init_pair((short)(i + 1), ROLE[i].fg, -1);
    }
    return 0;
}

void tui_close(void) {
    if (!g_screen) return;
    endwin();
    delscreen(g_screen);
    g_screen = NULL;
}

void tui_size(int *w, int *h) { getmaxyx(stdscr, *h, *w); }

// Without a UTF-8 locale: ASCII that keeps the picture readable.
static wchar_t narrow(uint32_t cp) {
    if (cp < 0x80) return (wchar_t)cp;
    if (cp >= 0x2800 && cp <= 0x28FF) return cp == 0x2800 ? ' ' : '.';
    if (cp == 0x2500) return '-';
    if (cp == 0x2502 || cp == 0x2524) return '|';
    if (cp >= 0x250C && cp <= 0x2518) return '+';
    if (cp >= 0x2588 && cp <= 0x258F) return '#';
    return '?';
}

void tui_draw(const Frame *f) {
    int w, h;
    getmaxyx(stdscr, h, w);
    for (int y = 0; y < f->h && y < h; y++)
        for (int x = 0; x < f->w && x < w; x++) {
            // the bottom-right cell scrolls some terminals: leave it
            if (y == h - 1 && x == w - 1) continue;
            const Cell *c = &f->cells[(size_t)y * f->w + x];
            wchar_t wc[2] = {g_wide ? (wchar_t)c->cp : narrow(c->cp), 0};
            cchar_t cc;
            attr_t a = ROLE[c->color < COL_COUNT ? c->color : 0].attr | (c->bold ? A_BOLD : 0);
            setcchar(&cc, wc, a, has_colors() ? (short)(c->color + 1) : 0, NULL);
            mvadd_wch(y, x, &cc);
        }
    refresh();
}

int tui_key(void) {
    int ch = getch();
    switch (ch) {
    case ERR: return TUI_KEY_NONE;
    case KEY_UP: return TUI_KEY_UP;
    case KEY_DOWN: return TUI_KEY_DOWN;
    case KEY_PPAGE: return TUI_KEY_PGUP;
    case KEY_NPAGE: return TUI_KEY_PGDN;
    case KEY_HOME: return TUI_KEY_HOME;
    case KEY_END: return TUI_KEY_END;
    case KEY_RESIZE: return TUI_KEY_RESIZE;
    default: return ch >= 0 && ch < 256 ? ch : TUI_KEY_NONE;
    }
}

#else

static int missing(void) {
    return err_set("this anetrain was built without ncursesw, which dash needs: "
#ifdef __APPLE__
                   "macOS has it (xcode-select --install), then make reconfigure && make"
#else
                   "apt-get install libncurses-dev, then make (the build finds it)"
#endif
    );
}

int tui_available(void) { return 0; }
int tui_open(void) { return missing(); }
void tui_size(int *w, int *h) { *w = *h = 0; }
void tui_draw(const Frame *f) { (void)f; }
int tui_key(void) { return TUI_KEY_NONE; }
void tui_close(void) {}

#endif
