// frame: the cell grid (frame.h).
#include "dash/frame.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

int frame_init(Frame *f, int w, int h) {
    memset(f, 0, sizeof *f);
    if (w < 1 || h < 1 || w > 10000 || h > 10000) return err_set("frame: bad size %dx%d", w, h);
    f->cells = malloc((size_t)w * (size_t)h * sizeof *f->cells);
    if (!f->cells) return err_set("frame: out of memory for %dx%d", w, h);
    f->w = w, f->h = h;
    for (int i = 0; i < w * h; i++) f->cells[i] = (Cell){' ', COL_DEFAULT, 0};
    return 0;
}

void frame_free(Frame *f) {
    free(f->cells);
    memset(f, 0, sizeof *f);
}

Cell *frame_at(Frame *f, int x, int y) {
    if (x < 0 || y < 0 || x >= f->w || y >= f->h) return NULL;
    return &f->cells[(size_t)y * f->w + x];
}

void frame_put(Frame *f, int x, int y, uint32_t cp, FrameColor c) {
    Cell *cell = frame_at(f, x, y);
    if (cell) *cell = (Cell){cp, (uint8_t)c, c == COL_TITLE};
}

uint32_t frame_utf8_next(const char *s, size_t n, size_t *i) {
    const unsigned char *u = (const unsigned char *)s + *i;
    size_t left = n - *i;
    uint32_t cp;
    int len;
    if (u[0] < 0x80) cp = u[0], len = 1;
    else if ((u[0] & 0xE0) == 0xC0) cp = u[0] & 0x1F, len = 2;
    else if ((u[0] & 0xF0) == 0xE0) cp = u[0] & 0x0F, len = 3;
    else if ((u[0] & 0xF8) == 0xF0) cp = u[0] & 0x07, len = 4;
    else return (*i)++, 0xFFFD;
    if ((size_t)len > left) return (*i)++, 0xFFFD;
    for (int k = 1; k < len; k++) {
        if ((u[k] & 0xC0) != 0x80) return (*i)++, 0xFFFD;
        cp = cp << 6 | (u[k] & 0x3F);
    }
    // overlong forms, surrogates and out-of-range values are not text
    static const uint32_t MIN[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < MIN[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return (*i)++, 0xFFFD;
    *i += (size_t)len;
    return cp;
}

int frame_text(Frame *f, int x, int y, int max, FrameColor c, const char *s) {
    size_t n = strlen(s), i = 0;
    int k = 0;
    while (i < n && k < max) {
        uint32_t cp = frame_utf8_next(s, n, &i);
        if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0)) cp = ' ';
        frame_put(f, x + k++, y, cp, c);
    }
    return k;
}

int frame_printf(Frame *f, int x, int y, int max, FrameColor c, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return frame_text(f, x, y, max, c, buf);
}

void frame_box(Frame *f, int x, int y, int w, int h, const char *title) {
    if (w < 2 || h < 2) return;
    for (int i = 1; i < w - 1; i++) frame_put(f, x + i, y, 0x2500, COL_DIM), frame_put(f, x + i, y + h - 1, 0x2500, COL_DIM);
    for (int j = 1; j < h - 1; j++) frame_put(f, x, y + j, 0x2502, COL_DIM), frame_put(f, x + w - 1, y + j, 0x2502, COL_DIM);
    frame_put(f, x, y, 0x250C, COL_DIM), frame_put(f, x + w - 1, y, 0x2510, COL_DIM);
    frame_put(f, x, y + h - 1, 0x2514, COL_DIM), frame_put(f, x + w - 1, y + h - 1, 0x2518, COL_DIM);
    if (title && *title && w > 4) {
        frame_put(f, x + 1, y, ' ', COL_DIM);
        int k = frame_text(f, x + 2, y, w - 5, COL_TITLE, title);
        frame_put(f, x + 2 + k, y, ' ', COL_DIM);
    }
}

static size_t put_utf8(char *o, uint32_t cp) {
    if (cp < 0x80) return o[0] = (char)cp, 1;
    if (cp < 0x800) return o[0] = (char)(0xC0 | cp >> 6), o[1] = (char)(0x80 | (cp & 0x3F)), 2;
    if (cp < 0x10000)
        return o[0] = (char)(0xE0 | cp >> 12), o[1] = (char)(0x80 | (cp >> 6 & 0x3F)), o[2] = (char)(0x80 | (cp & 0x3F)), 3;
    o[0] = (char)(0xF0 | cp >> 18), o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F)), o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

void frame_row_utf8(const Frame *f, int y, char *out, size_t cap) {
    size_t k = 0;
    if (cap == 0) return;
    for (int x = 0; y >= 0 && y < f->h && x < f->w && k + 5 < cap; x++)
        k += put_utf8(out + k, f->cells[(size_t)y * f->w + x].cp);
    out[k] = 0;
}
