// mem_bw: this machine's memory bandwidth as the host side of a device step
// sees it — a threaded fp32 -> fp16 conversion (the weight staging's inner
// loop) and a threaded copy, over blocks far larger than the caches.
//
//   mem_bw THREADS [MB] [ROUNDS]
//
// Prints one JSON line: GB/s moved (bytes read + bytes written), best of
// ROUNDS (default 5), over MB megabytes of fp32 source (default 1024).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fp16.h"
#include "core/mem.h"
#include "core/threads.h"
#include "core/timer.h"

typedef struct {
    const float *src;
    float *dst32;
    uint16_t *dst16;
    size_t n;
} Job;

static void convert_run(void *ctx, int tid, int nt) {
    const Job *j = ctx;
    size_t b, e;
    threads_range(j->n, tid, nt, 4096, &b, &e);
    fp16_from_f32_array(j->dst16 + b, j->src + b, e - b);
}

static void copy_run(void *ctx, int tid, int nt) {
    const Job *j = ctx;
    size_t b, e;
    threads_range(j->n, tid, nt, 4096, &b, &e);
    memcpy(j->dst32 + b, j->src + b, (e - b) * sizeof(float));
}

static double best_gbs(ThreadsFn fn, Job *j, int rounds, double bytes) {
    double best = 0;
    for (int r = 0; r < rounds; r++) {
        const double t0 = time_ms();
        threads_run(fn, j);
        const double gbs = bytes / ((time_ms() - t0) * 1e6);
        if (gbs > best) best = gbs;
    }
    return best;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: mem_bw THREADS [MB] [ROUNDS]\n");
        return 2;
    }
    const int threads = atoi(argv[1]), mb = argc > 2 ? atoi(argv[2]) : 1024, rounds = argc > 3 ? atoi(argv[3]) : 5;
    threads_set_count(threads);
    Job j = {.n = (size_t)mb * 1024 * 1024 / sizeof(float)};
    float *src = mem_alloc_big(j.n * sizeof(float));
    j.dst32 = mem_alloc_big(j.n * sizeof(float));
    j.dst16 = mem_alloc_big(j.n * sizeof(uint16_t));
    if (!src || !j.dst32 || !j.dst16) {
        fprintf(stderr, "mem_bw: out of memory for %d MB\n", mb);
        return 1;
    }
    for (size_t i = 0; i < j.n; i++) src[i] = (float)(i % 1000) * 0.001f;
    j.src = src;
    const double conv = best_gbs(convert_run, &j, rounds, 6.0 * j.n), copy = best_gbs(copy_run, &j, rounds, 8.0 * j.n);
    printf("{\"threads\":%d,\"mb\":%d,\"fp16_convert_gbs\":%.1f,\"copy_gbs\":%.1f}\n", threads_count(), mb, conv, copy);
    free(src), free(j.dst32), free(j.dst16);
    return 0;
}
