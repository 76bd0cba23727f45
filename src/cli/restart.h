// restart: replace this process with a fresh run of the same executable —
// the static pipelines' way past the device's per-process compile budget.
#pragma once
#include <stddef.h>

// Replaces the process with the running executable (/proc/self/exe on Linux,
// which stays this process's file even when a rebuild replaced it on disk;
// _NSGetExecutablePath on macOS: not argv[0], which may be a name found
// through PATH or a relative path from another directory), arguments
// "train", argv[1..argc-1] and --resume (unless present), and
// ANETRAIN_RESTARTS=n in the environment (n = restarts so far, counting this
// one). Returns only on failure (-1, err_msg()).
int restart_exec(int argc, char **argv, long long restarts);
// The running executable's absolute path (as restart_exec resolves it). 0, or -1 with err_msg().
int restart_self_path(char *out, size_t cap);
// Debian's OpenBLAS 0.3.21 runs its generic SSE3 kernels on CPUs newer than
// it knows (1.9x slower per update on this project's newest machines). The
// kernels the CPU's instructions allow are asked for with OPENBLAS_CORETYPE,
// which the library reads when it loads: this sets it and starts the program
// again with the same arguments, once, when gemm_blas_core_for_cpu() names
// better kernels. Call it first in main (before MPI or any thread).
// ANETRAIN_BLAS_CORE=keep opts out; when exec fails the program goes on as it was.
void restart_for_blas_kernels(char **argv);
