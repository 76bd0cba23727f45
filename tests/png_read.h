// png_read: a small PNG reader for the tests (8-bit RGB or RGBA, not
// interlaced: what rsvg-convert writes), with its own inflate, so checking a
// rasterized plot needs no image library.
#pragma once
#include <stdint.h>

typedef struct {
    int w, h;
    uint8_t *rgba;  // w * h * 4 bytes
} Png;

// 0, or -1 with a reason in why.
int png_read(const char *path, Png *img, char *why, int why_len);
void png_free(Png *img);
