// dist: data-parallel training over processes (ranks).
//
// Every rank holds the whole model, computes the gradients of its share of an
// update's windows, and the ranks sum their gradient blocks (one in-place
// all-reduce over the contiguous block), so every rank applies the same AdamW
// update to the same weights. The trainer decides who does what; this module
// only moves numbers and agrees on decisions.
//
// Two implementations, one of them linked:
//   dist_mpi.c    (built when OpenMPI is found; `make MPI=none` opts out)
//   dist_single.c (one process: rank 0 of 1, every call a no-op)
// MPI appears in no other file. Even the MPI build behaves exactly as the
// single-process one unless it was started by mpirun: it never calls MPI_Init
// then, so `anetrain train` without mpirun is today's program.
//
// Collectives must be called by every rank in the same order (the trainer
// calls them at fixed points of each update). They return 0, or -1 with
// err_msg() on a communication failure. Only the thread that called
// dist_init calls them, and the communication thread of dist_sum_push while
// it owns MPI (MPI_THREAD_SERIALIZED: compute threads never do).
#pragma once
#include <stddef.h>

// Joins the job when started by mpirun (else a job of one). argc/argv may be
// NULL. Returns 0, or -1 with err_msg().
int dist_init(int *argc, char ***argv);
// Leaves the job (every rank, after its last collective).
void dist_finalize(void);
// Ends every rank of the job with this exit code (after a failure on one rank,
// so the others do not wait forever in a collective). Returns only in a job of
// one; the CLI then exits itself.
void dist_abort(int code);

int dist_rank(void);        // 0 .. dist_size()-1
int dist_size(void);        // ranks in the job (1 without mpirun)
int dist_local_size(void);  // ranks on this host (for threads per rank)
const char *dist_name(void);  // "single process" or "MPI (Open MPI v4.1.4, ...)"

// In place: every rank ends with the element-wise sum over all ranks. Any n
// (split into chunks that fit MPI's int counts).
int dist_sum_f32(float *buf, size_t n);
int dist_sum_f64(double *buf, size_t n);
// Sums overlapped with the caller's computation: dist_sum_push queues buf
// (summed in place over all ranks, as dist_sum_f32) and returns at once; a
// communication thread runs the queue in order while the caller goes on
// (MPI's non-blocking collectives progress only inside MPI calls, and a
// backward computes for tens of milliseconds between any two of ours). From
// the first push until dist_sum_wait returns, the caller makes no other dist_
// call and leaves the queued buffers alone. Every rank pushes the same
// buffers in the same order.
int dist_sum_push(float *buf, size_t n);
// 1 when pushed sums can run beside the caller (the MPI library allows the
// thread); else dist_sum_push sums at once.
int dist_can_overlap(void);
// Blocks until every queued sum is done; *busy_ms (may be NULL): the time the
// sums took since the last wait (exposed or hidden behind the computation).
int dist_sum_wait(double *busy_ms);
// ZeRO-1's collectives over a block split into one segment per rank: segment
// r holds counts[r] elements and starts where segment r-1 ends.
// The split of n elements into `parts` such segments, boundaries on 16
// elements (64 bytes of floats), the last one taking the rest.
static inline void dist_split(size_t n, int parts, size_t *counts) {
    for (size_t r = 0, lo = 0; r < (size_t)parts; r++) {
        const size_t hi = r + 1 == (size_t)parts ? n : (n * (r + 1) / (size_t)parts) & ~(size_t)15;
        counts[r] = hi - lo;
        lo = hi;
    }
}
// In place: this rank's segment of buf becomes the sum over the ranks of
// that segment; the other segments of buf are left with partial sums.
int dist_reduce_scatter_f32(float *buf, const size_t *counts);
// In place: rank r's segment of buf to every rank, for every r.
int dist_allgather_f32(float *buf, const size_t *counts);
// On rank root, full = the ranks' segments seg (counts[rank] floats each), in rank order.
int dist_gather_f32(const float *seg, float *full, const size_t *counts, int root);
// *flag becomes 1 on every rank if it was non-zero on any (stop requests).
int dist_any(int *flag);
// Rank root's bytes to every rank.
int dist_bcast(void *buf, size_t bytes, int root);
int dist_barrier(void);
