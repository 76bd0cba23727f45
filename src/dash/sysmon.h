// sysmon: CPU % and resident memory of one process, sampled by the dashboard
// once a second. Linux reads procfs (sysmon_linux.c); macOS asks the kernel
// with proc_pidinfo (sysmon_macos.c). CPU % is of one core (a process busy on
// two cores reads 200%).
#pragma once
#include <sys/types.h>

typedef struct {
    pid_t pid;
    double last_cpu_s;  // the process's user + system time at the last sample
    double last_wall_ms;
    int primed;
} Sysmon;

void sysmon_init(Sysmon *m, pid_t pid);
// 0 with *cpu_pct (NAN on the first sample: it needs two) and *rss_mb, or -1
// (the process is gone, or the system does not say).
int sysmon_sample(Sysmon *m, double *cpu_pct, double *rss_mb);
