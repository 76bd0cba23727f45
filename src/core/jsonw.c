// jsonw: see jsonw.h.
#include "core/jsonw.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

// Room kept for the closing `,"truncated":true}\n`.
enum { RESERVE = 24 };

// Appends one whole field (",key":value) or nothing, so a cut line stays valid.
static void put_field(JsonW *j, const char *field, size_t n) {
    if (j->full) return;
    if (j->len + n + RESERVE >= JSONW_CAP) {
        j->full = 1;
        return;
    }
    memcpy(j->buf + j->len, field, n);
    j->len += n;
    j->buf[j->len] = 0;
}

static size_t escape(char *out, size_t cap, const char *s) {
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p && n + 7 < cap; p++) {
        unsigned c = *p;
        if (c == '"' || c == '\\') out[n++] = '\\', out[n++] = (char)c;
        else if (c == '\n') out[n++] = '\\', out[n++] = 'n';
        else if (c == '\t') out[n++] = '\\', out[n++] = 't';
        else if (c == '\r') out[n++] = '\\', out[n++] = 'r';
        else if (c < 0x20 || c == 0x7f) n += (size_t)snprintf(out + n, cap - n, "\\u%04x", c);
        else out[n++] = (char)c;
    }
    out[n] = 0;
    return n;
}

static void put_key(char *field, size_t cap, size_t *n, const char *key) {
    field[(*n)++] = ',';
    field[(*n)++] = '"';
    *n += escape(field + *n, cap - *n - 3, key);
    field[(*n)++] = '"';
    field[(*n)++] = ':';
}

void jsonw_begin(JsonW *j, const char *type) {
    j->len = 0;
    j->full = 0;
    char field[256];
    size_t n = (size_t)snprintf(field, sizeof field, "{\"type\":\"");
    n += escape(field + n, sizeof field - n - 2, type);
    field[n++] = '"';
    put_field(j, field, n);
}

void jsonw_str(JsonW *j, const char *key, const char *value) {
    char field[JSONW_CAP];
    size_t n = 0;
    put_key(field, sizeof field, &n, key);
    if (!value) n += (size_t)snprintf(field + n, sizeof field - n, "null");
    else {
        field[n++] = '"';
        n += escape(field + n, sizeof field - n - 2, value);
        field[n++] = '"';
    }
    put_field(j, field, n);
}

void jsonw_num(JsonW *j, const char *key, double value) {
    char field[320];
    size_t n = 0;
    put_key(field, sizeof field - 40, &n, key);
    if (isfinite(value)) n += (size_t)snprintf(field + n, sizeof field - n, "%.9g", value);
    else n += (size_t)snprintf(field + n, sizeof field - n, "null");
    put_field(j, field, n);
}

void jsonw_int(JsonW *j, const char *key, long long value) {
    char field[320];
    size_t n = 0;
    put_key(field, sizeof field - 40, &n, key);
    n += (size_t)snprintf(field + n, sizeof field - n, "%lld", value);
    put_field(j, field, n);
}

void jsonw_bool(JsonW *j, const char *key, int value) {
    char field[320];
    size_t n = 0;
    put_key(field, sizeof field - 40, &n, key);
    n += (size_t)snprintf(field + n, sizeof field - n, "%s", value ? "true" : "false");
    put_field(j, field, n);
}

const char *jsonw_end(JsonW *j) {
    const char *tail = j->full ? ",\"truncated\":true}\n" : "}\n";
    memcpy(j->buf + j->len, tail, strlen(tail) + 1);
    j->len += strlen(tail);
    return j->buf;
}
