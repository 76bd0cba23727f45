// sysmon_macos: CPU time and RSS from proc_pidinfo(PROC_PIDTASKINFO) (sysmon.h).
// clock_gettime is POSIX: ask for it under -std=c11; _DARWIN_C_SOURCE keeps
// macOS headers at full visibility despite _XOPEN_SOURCE.
#ifndef _DARWIN_C_SOURCE
#define _DARWIN_C_SOURCE
#endif
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700
#endif
#include <libproc.h>
#include <math.h>
#include <string.h>
#include <mach/mach_time.h>
#include <sys/proc_info.h>

#include "core/err.h"
#include "core/timer.h"
#include "dash/sysmon.h"

void sysmon_init(Sysmon *m, pid_t pid) {
    memset(m, 0, sizeof *m);
    m->pid = pid;
}

int sysmon_sample(Sysmon *m, double *cpu_pct, double *rss_mb) {
    struct proc_taskinfo ti;
    double now = time_ms();
    if (proc_pidinfo(m->pid, PROC_PIDTASKINFO, 0, &ti, (int)sizeof ti) != (int)sizeof ti)
        return err_set("pid %d: the process is gone", (int)m->pid);
    // pti_total_user/system are in Mach absolute time units: nanoseconds on
    // Intel, 125/3 ns ticks on Apple silicon; mach_timebase_info converts
    double cpu_s = (double)(ti.pti_total_user + ti.pti_total_system) * 1e-9;
    static double scale = 0;
    if (scale == 0) {
        struct mach_timebase_info tb;
        scale = mach_timebase_info(&tb) == 0 && tb.denom ? (double)tb.numer / tb.denom : 1;
    }
    cpu_s *= scale;
    *rss_mb = (double)ti.pti_resident_size / (1024.0 * 1024.0);
    *cpu_pct = NAN;
    if (m->primed && now > m->last_wall_ms)
        *cpu_pct = 100.0 * (cpu_s - m->last_cpu_s) / ((now - m->last_wall_ms) / 1e3);
    m->last_cpu_s = cpu_s, m->last_wall_ms = now, m->primed = 1;
    return 0;
}
