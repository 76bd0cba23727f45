// restart: exec() of the running executable (restart.h).
#include "cli/restart.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __APPLE__
#include <mach-o/dyld.h>
#endif

#include "core/err.h"
#include "core/gemm.h"

int restart_self_path(char *out, size_t cap) {
#ifdef __APPLE__
    uint32_t n = (uint32_t)cap;
    if (_NSGetExecutablePath(out, &n) != 0) return err_set("restart: the executable's path is longer than %zu", cap);
    return 0;
#else
    ssize_t n = readlink("/proc/self/exe", out, cap - 1);
    if (n < 0) return err_set("restart: cannot read /proc/self/exe: %s", strerror(errno));
    if ((size_t)n >= cap - 1) return err_set("restart: the executable's path is too long");
    out[n] = 0;
    return 0;
#endif
}

// What execv runs: on Linux /proc/self/exe itself, which is this process's
// file even after it was replaced or deleted on disk (a rebuild during a run).
static const char *exec_path(const char *exe) {
#ifdef __APPLE__
    return exe;
#else
    (void)exe;
    return "/proc/self/exe";
#endif
}

int restart_exec(int argc, char **argv, long long restarts) {
    char exe[PATH_MAX + 1];
    if (restart_self_path(exe, sizeof exe) != 0) return -1;
    char **nv = calloc((size_t)argc + 3, sizeof *nv);
    if (!nv) return err_set("restart: out of memory");
    int n = 0, has_resume = 0;
    nv[n++] = exe;
    for (int i = 0; i < argc; i++) {
        has_resume |= !strcmp(argv[i], "--resume") || !strcmp(argv[i], "-r");
        nv[n++] = argv[i];
    }
    if (!has_resume) nv[n++] = "--resume";
    nv[n] = NULL;
    char count[32];
    snprintf(count, sizeof count, "%lld", restarts);
    setenv("ANETRAIN_RESTARTS", count, 1);
    fflush(NULL);
    execv(exec_path(exe), nv);
    int e = errno;
    free(nv);
    return err_set("restart: exec %s (%s): %s", exec_path(exe), exe, strerror(e));
}

void restart_for_blas_kernels(char **argv) {
    const char *keep = getenv("ANETRAIN_BLAS_CORE");
    const char *core = keep && !strcmp(keep, "keep") ? NULL : gemm_blas_core_for_cpu();
    char self[4096];
    if (!core || restart_self_path(self, sizeof self) != 0) return;
    setenv("OPENBLAS_CORETYPE", core, 1);
    setenv("ANETRAIN_BLAS_CORE", "chosen", 1);  // the banner says why the kernels are what they are
    execv(self, argv);
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv("ANETRAIN_BLAS_CORE");
}
