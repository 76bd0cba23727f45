// frame: a grid of character cells, what the renderer draws into and the
// terminal layer copies to the screen (or a test reads).
//
// A cell is one Unicode code point (width 1: box drawing, braille, block
// elements and text) with a colour role and a bold flag. Writes outside the
// grid are clipped, so drawing code never checks bounds.
#pragma once
#include <stddef.h>
#include <stdint.h>

// Colour roles, mapped to terminal colours by the terminal layer.
typedef enum {
    COL_DEFAULT,
    COL_DIM,      // borders, axes, labels
    COL_TITLE,    // panel titles, the header
    COL_TRAIN,    // train loss
    COL_VAL,      // validation loss
    COL_STEP,     // step lines in the logs
    COL_EVAL,     // evaluations, checkpoints
    COL_RESTART,  // restarts, resumes, changes
    COL_WARN,     // warnings, skips
    COL_ERROR,    // errors
    COL_BAR,      // phase bars
    COL_SYS,      // system charts
    COL_COUNT
} FrameColor;

typedef struct {
    uint32_t cp;
    uint8_t color, bold;
} Cell;

typedef struct {
    int w, h;
    Cell *cells;  // h rows of w cells
} Frame;

int frame_init(Frame *f, int w, int h);  // all spaces; 0 or -1
void frame_free(Frame *f);
Cell *frame_at(Frame *f, int x, int y);  // NULL outside
void frame_put(Frame *f, int x, int y, uint32_t cp, FrameColor c);
// Writes UTF-8 text from (x,y), at most max cells; invalid bytes become U+FFFD
// and control characters a space. Returns the cells written.
int frame_text(Frame *f, int x, int y, int max, FrameColor c, const char *s);
int frame_printf(Frame *f, int x, int y, int max, FrameColor c, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
// A box with a title in its top border.
void frame_box(Frame *f, int x, int y, int w, int h, const char *title);
// Decodes one code point of s[*i..n), advancing *i (invalid -> U+FFFD, one byte).
uint32_t frame_utf8_next(const char *s, size_t n, size_t *i);
// Row y as UTF-8 (trailing spaces kept), into out (NUL-terminated): for tests and plain output.
void frame_row_utf8(const Frame *f, int y, char *out, size_t cap);
