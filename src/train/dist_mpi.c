// dist_mpi: the job over MPI (OpenMPI). See dist.h.
//
// Started without mpirun (no launcher variables in the environment) it never
// calls MPI_Init and behaves as dist_single.c: a plain `anetrain train` pays
// nothing and cannot fail in MPI's startup.
#ifdef USE_MPI
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/err.h"
#include "train/dist.h"

static int g_on;  // MPI_Init was called (we are in a job started by mpirun)
static int g_rank, g_size = 1, g_local = 1;
static char g_name[MPI_MAX_LIBRARY_VERSION_STRING + 64] = "single process (not started by mpirun)";

// Every launcher we know sets one of these in each rank's environment.
static int launched_by_mpirun(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK");
}

static int check(int rc, const char *what) {
    if (rc == MPI_SUCCESS) return 0;
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return err_set("rank %d of %d: %s failed: %s", g_rank, g_size, what, msg);
}

int dist_init(int *argc, char ***argv) {
    if (g_on || !launched_by_mpirun()) return 0;
    int provided = 0;
    // FUNNELED: the pipeline's compute threads never call MPI, only this one
    if (check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread") != 0) return -1;
    g_on = 1;
    // errors come back as codes (and err_set messages) instead of MPI's own abort
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    MPI_Comm local;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &local) == MPI_SUCCESS) {
        MPI_Comm_size(local, &g_local);
        MPI_Comm_free(&local);
    }
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(lib, &len);
    for (int i = 0; i < len; i++)  // the first line, up to the first comma
        if (lib[i] == ',' || lib[i] == '\n') {
            lib[i] = 0;
            break;
        }
    snprintf(g_name, sizeof g_name, "MPI (%s), %d ranks", lib, g_size);
    return 0;
}

void dist_finalize(void) {
    if (g_on) MPI_Finalize();
    g_on = 0;
}

void dist_abort(int code) {
    if (g_on && g_size > 1) MPI_Abort(MPI_COMM_WORLD, code);
}

int dist_rank(void) { return g_rank; }
int dist_size(void) { return g_size; }
int dist_local_size(void) { return g_local; }
const char *dist_name(void) { return g_name; }

// MPI counts are int: large blocks go in chunks of at most 2^30 elements.
enum { CHUNK = 1 << 30 };

int dist_sum_f32(float *buf, size_t n) {
    if (!g_on || g_size == 1) return 0;
    for (size_t i = 0; i < n; i += CHUNK) {
        const int c = (int)(n - i < CHUNK ? n - i : CHUNK);
        if (check(MPI_Allreduce(MPI_IN_PLACE, buf + i, c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce") != 0)
            return -1;
    }
    return 0;
}

int dist_sum_f64(double *buf, size_t n) {
    if (!g_on || g_size == 1) return 0;
    for (size_t i = 0; i < n; i += CHUNK) {
        const int c = (int)(n - i < CHUNK ? n - i : CHUNK);
        if (check(MPI_Allreduce(MPI_IN_PLACE, buf + i, c, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce") != 0)
            return -1;
    }
    return 0;
}

int dist_any(int *flag) {
    *flag = *flag != 0;
    if (!g_on || g_size == 1) return 0;
    return check(MPI_Allreduce(MPI_IN_PLACE, flag, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce (stop)");
}

int dist_bcast(void *buf, size_t bytes, int root) {
    if (!g_on || g_size == 1) return 0;
    for (size_t i = 0; i < bytes; i += CHUNK) {
        const int c = (int)(bytes - i < CHUNK ? bytes - i : CHUNK);
        if (check(MPI_Bcast((char *)buf + i, c, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast") != 0) return -1;
    }
    return 0;
}

int dist_barrier(void) {
    if (!g_on || g_size == 1) return 0;
    return check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
}
#else
typedef int dist_mpi_unused;  // ISO C: a translation unit is not empty
#endif
