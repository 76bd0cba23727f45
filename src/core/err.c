#include "core/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char g_msg[1024];

int err_set(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    return -1;
}

int err_wrap(const char *fmt, ...) {
    char prefix[512], old[sizeof g_msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, g_msg, sizeof old);
    // assemble by hand: "prefix: old", truncated to the buffer
    size_t n = strlen(prefix);
    if (n > sizeof g_msg - 3) n = sizeof g_msg - 3;
    memcpy(g_msg, prefix, n);
    memcpy(g_msg + n, ": ", 2);
    size_t room = sizeof g_msg - n - 3, m = strlen(old);
    if (m > room) m = room;
    memcpy(g_msg + n + 2, old, m);
    g_msg[n + 2 + m] = 0;
    return -1;
}

const char *err_msg(void) { return g_msg[0] ? g_msg : "unknown error"; }
void err_clear(void) { g_msg[0] = 0; }

void err_abort(const char *file, int line, const char *expr) {
    fprintf(stderr, "%s:%d: internal error: %s\n", file, line, expr);
    abort();
}
