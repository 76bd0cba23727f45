// png_read: PNG -> RGBA for the tests (png_read.h). Inflate follows RFC 1951:
// canonical Huffman codes decoded a bit at a time (simple, and fast enough
// for test images of a few megabytes).
#include "png_read.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/io.h"

typedef struct {
    const uint8_t *in;
    size_t n, pos;  // pos in bits
    uint8_t *out;
    size_t len, cap;
    int bad;
} Inflate;

static int bit(Inflate *z) {
    if (z->pos >= z->n * 8) return z->bad = 1, 0;
    int b = z->in[z->pos >> 3] >> (z->pos & 7) & 1;
    z->pos++;
    return b;
}

static int bits(Inflate *z, int k) {
    int v = 0;
    for (int i = 0; i < k; i++) v |= bit(z) << i;
    return v;
}

typedef struct {
    short count[16], symbol[320];
} Huff;

static void huff_build(Huff *h, const uint8_t *lengths, int n) {
    short offs[16];
    memset(h->count, 0, sizeof h->count);
    for (int i = 0; i < n; i++) h->count[lengths[i]]++;
    h->count[0] = 0;
    offs[1] = 0;
    for (int l = 1; l < 15; l++) offs[l + 1] = (short)(offs[l] + h->count[l]);
    for (int i = 0; i < n; i++)
        if (lengths[i]) h->symbol[offs[lengths[i]]++] = (short)i;
}

static int decode(Inflate *z, const Huff *h) {
    int code = 0, first = 0, index = 0;
    for (int l = 1; l < 16; l++) {
        code |= bit(z);
        int c = h->count[l];
        if (code - c < first) return h->symbol[index + (code - first)];
        index += c, first += c, first <<= 1, code <<= 1;
    }
    z->bad = 1;
    return 0;
}

static void put(Inflate *z, uint8_t b) {
    if (z->len == z->cap) {
        size_t cap = z->cap ? z->cap * 2 : 1 << 20;
        uint8_t *p = realloc(z->out, cap);
        if (!p) { z->bad = 1; return; }
        z->out = p, z->cap = cap;
    }
    z->out[z->len++] = b;
}

static const short LBASE[29] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const short LEXTRA[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const short DBASE[30] = {1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
static const short DEXTRA[30] = {0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

static void codes(Inflate *z, const Huff *lit, const Huff *dist) {
    while (!z->bad) {
        int s = decode(z, lit);
        if (s < 256) put(z, (uint8_t)s);
        else if (s == 256) return;
        else {
            s -= 257;
            if (s >= 29) { z->bad = 1; return; }
            int len = LBASE[s] + bits(z, LEXTRA[s]);
            int d = decode(z, dist);
            if (d >= 30) { z->bad = 1; return; }
            size_t back = (size_t)(DBASE[d] + bits(z, DEXTRA[d]));
            if (back > z->len) { z->bad = 1; return; }
            for (int i = 0; i < len; i++) put(z, z->out[z->len - back]);
        }
    }
}

static void fixed(Inflate *z) {
    uint8_t l[288];
    Huff lit, dist;
    for (int i = 0; i < 288; i++) l[i] = i < 144 ? 8 : i < 256 ? 9 : i < 280 ? 7 : 8;
    huff_build(&lit, l, 288);
    for (int i = 0; i < 30; i++) l[i] = 5;
    huff_build(&dist, l, 30);
    codes(z, &lit, &dist);
}

static void dynamic(Inflate *z) {
    static const uint8_t ORDER[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    int nlen = bits(z, 5) + 257, ndist = bits(z, 5) + 1, ncode = bits(z, 4) + 4;
    uint8_t l[320] = {0};
    Huff h, lit, dist;
    for (int i = 0; i < ncode; i++) l[ORDER[i]] = (uint8_t)bits(z, 3);
    huff_build(&h, l, 19);
    memset(l, 0, sizeof l);
    for (int i = 0; i < nlen + ndist && !z->bad;) {
        int s = decode(z, &h), rep = 0, v = 0;
        if (s < 16) l[i++] = (uint8_t)s;
        else {
            if (s == 16) v = i ? l[i - 1] : 0, rep = 3 + bits(z, 2);
            else if (s == 17) rep = 3 + bits(z, 3);
            else rep = 11 + bits(z, 7);
            if (i + rep > nlen + ndist) { z->bad = 1; return; }
            while (rep--) l[i++] = (uint8_t)v;
        }
    }
    huff_build(&lit, l, nlen);
    huff_build(&dist, l + nlen, ndist);
    codes(z, &lit, &dist);
}

// zlib stream (2-byte header, deflate blocks; the Adler-32 is not checked).
static int inflate(const uint8_t *in, size_t n, uint8_t **out, size_t *len) {
    Inflate z = {.in = in, .n = n, .pos = 16};
    for (int last = 0; !last && !z.bad;) {
        last = bit(&z);
        int type = bits(&z, 2);
        if (type == 0) {
            z.pos = (z.pos + 7) & ~(size_t)7;
            size_t p = z.pos / 8;
            if (p + 4 > n) return free(z.out), -1;
            size_t k = in[p] | (size_t)in[p + 1] << 8;
            if (p + 4 + k > n) return free(z.out), -1;
            for (size_t i = 0; i < k; i++) put(&z, in[p + 4 + i]);
            z.pos = (p + 4 + k) * 8;
        } else if (type == 1) fixed(&z);
        else if (type == 2) dynamic(&z);
        else z.bad = 1;
    }
    if (z.bad) return free(z.out), -1;
    *out = z.out, *len = z.len;
    return 0;
}

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

static int paeth(int a, int b, int c) {
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

// Undoes the per-row filters in place; raw rows are 1 + w * bpp bytes.
static int unfilter(uint8_t *raw, int w, int h, int bpp, uint8_t *rgba) {
    size_t stride = (size_t)w * bpp;
    uint8_t *prev = NULL;
    for (int y = 0; y < h; y++) {
        uint8_t *row = raw + (size_t)y * (stride + 1), f = row[0], *px = row + 1;
        for (size_t i = 0; i < stride; i++) {
            int a = i >= (size_t)bpp ? px[i - bpp] : 0, b = prev ? prev[i] : 0, c = prev && i >= (size_t)bpp ? prev[i - bpp] : 0;
            int add = f == 0 ? 0 : f == 1 ? a : f == 2 ? b : f == 3 ? (a + b) / 2 : f == 4 ? paeth(a, b, c) : -1;
            if (add < 0) return -1;
            px[i] = (uint8_t)(px[i] + add);
        }
        for (int x = 0; x < w; x++) {
            uint8_t *o = rgba + ((size_t)y * w + x) * 4;
            memcpy(o, px + (size_t)x * bpp, 3);
            o[3] = bpp == 4 ? px[(size_t)x * bpp + 3] : 255;
        }
        prev = px;
    }
    return 0;
}

int png_read(const char *path, Png *img, char *why, int why_len) {
    memset(img, 0, sizeof *img);
    char *buf;
    size_t n;
    if (io_read_all(path, &buf, &n) != 0) return snprintf(why, (size_t)why_len, "cannot read %s", path), -1;
    const uint8_t *p = (const uint8_t *)buf;
    uint8_t *idat = NULL;
    size_t il = 0;
    int w = 0, h = 0, ct = -1, rc = -1;
    if (n < 8 || memcmp(p, "\x89PNG\r\n\x1a\n", 8)) { snprintf(why, (size_t)why_len, "not a PNG"); goto done; }
    for (size_t i = 8; i + 12 <= n;) {
        size_t len = be32(p + i);
        const uint8_t *type = p + i + 4, *data = p + i + 8;
        if (i + 12 + len > n) break;
        if (!memcmp(type, "IHDR", 4) && len >= 13) {
            w = (int)be32(data), h = (int)be32(data + 4), ct = data[9];
            if (data[8] != 8 || (ct != 2 && ct != 6) || data[12] != 0) {
                snprintf(why, (size_t)why_len, "unsupported PNG (depth %d, colour type %d, interlace %d)", data[8], ct, data[12]);
                goto done;
            }
        } else if (!memcmp(type, "IDAT", 4)) {
            uint8_t *q = realloc(idat, il + len);
            if (!q) goto done;
            idat = q, memcpy(idat + il, data, len), il += len;
        }
        i += 12 + len;
    }
    uint8_t *raw;
    size_t rl;
    int bpp = ct == 6 ? 4 : 3;
    if (w <= 0 || h <= 0 || inflate(idat, il, &raw, &rl) != 0 || rl < (size_t)h * ((size_t)w * bpp + 1)) {
        snprintf(why, (size_t)why_len, "bad PNG data");
        goto done;
    }
    img->rgba = malloc((size_t)w * h * 4);
    if (img->rgba && unfilter(raw, w, h, bpp, img->rgba) == 0) img->w = w, img->h = h, rc = 0;
    else snprintf(why, (size_t)why_len, "bad PNG filter");
    free(raw);
done:
    free(idat);
    free(buf);
    if (rc != 0) png_free(img);
    return rc;
}

void png_free(Png *img) {
    free(img->rgba);
    memset(img, 0, sizeof *img);
}
