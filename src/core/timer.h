// timer: monotonic wall clock in milliseconds.
#pragma once
#include <time.h>

static inline double time_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}
