// dist_single: a job of one process (built when MPI is not). Every collective
// over one rank is the identity, so each call is a no-op. See dist.h.
#ifndef USE_MPI
#include <stdlib.h>
#include <string.h>

#include "train/dist.h"

int dist_init(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    return 0;
}
void dist_finalize(void) {}
void dist_abort(int code) { (void)code; }
int dist_rank(void) { return 0; }
int dist_size(void) { return 1; }
int dist_local_size(void) { return 1; }
const char *dist_name(void) { return "single process (built without MPI)"; }
int dist_sum_f32(float *buf, size_t n) {
    (void)buf;
    (void)n;
    return 0;
}
int dist_sum_f64(double *buf, size_t n) {
    (void)buf;
    (void)n;
    return 0;
}
int dist_sum_push(float *buf, size_t n) {
    (void)buf;
    (void)n;
    return 0;
}
int dist_can_overlap(void) { return 0; }
int dist_sum_wait(double *busy_ms) {
    if (busy_ms) *busy_ms = 0;
    return 0;
}
int dist_reduce_scatter_f32(float *buf, const size_t *counts) {
    (void)buf;
    (void)counts;
    return 0;
}
int dist_allgather_f32(float *buf, const size_t *counts) {
    (void)buf;
    (void)counts;
    return 0;
}
int dist_gather_f32(const float *seg, float *full, const size_t *counts, int root) {
    (void)root;
    memmove(full, seg, counts[0] * sizeof(float));
    return 0;
}
int dist_any(int *flag) {
    *flag = *flag != 0;
    return 0;
}
int dist_bcast(void *buf, size_t bytes, int root) {
    (void)buf;
    (void)bytes;
    (void)root;
    return 0;
}
int dist_barrier(void) { return 0; }
#else
typedef int dist_single_unused;  // ISO C: a translation unit is not empty
#endif
