// mem: the big blocks (mem.h).
#include "core/mem.h"

#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/mman.h>
#endif

#include "core/threads.h"

typedef struct {
    char *p;
    size_t n;
} ZeroJob;

static void zero_run(void *ctx, int tid, int nt) {
    const ZeroJob *j = ctx;
    size_t b, e;
    threads_range(j->n, tid, nt, 1 << 21, &b, &e);
    memset(j->p + b, 0, e - b);
}

void *mem_alloc_big(size_t bytes) {
    const size_t align = bytes >= MEM_HUGE_MIN ? (size_t)2 << 20 : 64;
    const size_t n = (bytes + align - 1) / align * align;
    void *p = NULL;
    if (posix_memalign(&p, align, n ? n : align) != 0) return NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (align > 64) madvise(p, n, MADV_HUGEPAGE);  // advice: refused or not, the block works
#endif
    ZeroJob j = {p, n};  // zeroed by every thread: the faults (and the kernel's zeroing) spread over the cores
    threads_run_n(zero_run, &j, n < ((size_t)64 << 20) ? 1 : THREADS_MAX);
    return p;
}
