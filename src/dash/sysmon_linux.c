// sysmon_linux: CPU time and RSS from /proc/PID/stat (sysmon.h).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/timer.h"
#include "dash/sysmon.h"

void sysmon_init(Sysmon *m, pid_t pid) {
    memset(m, 0, sizeof *m);
    m->pid = pid;
}

// utime and stime (clock ticks) and rss (pages): fields 14, 15 and 24 of
// /proc/PID/stat, counted after the ')' that ends the command name (which may
// itself hold spaces and parentheses).
static int read_stat(pid_t pid, double *cpu_s, double *rss_mb) {
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return err_set("%s: the process is gone", path);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return err_set("%s: unexpected format", path);
    unsigned long long ut = 0, st = 0;
    long long rss = 0;
    // after ')': state(3) ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15)
    // cutime cstime priority nice threads itrealvalue starttime vsize rss(24)
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %*u %*u %lld",
               &ut, &st, &rss) != 3)
        return err_set("%s: unexpected format", path);
    *cpu_s = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
    *rss_mb = (double)rss * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
    return 0;
}

int sysmon_sample(Sysmon *m, double *cpu_pct, double *rss_mb) {
    double cpu_s, now = time_ms();
    if (read_stat(m->pid, &cpu_s, rss_mb) != 0) return -1;
    *cpu_pct = NAN;
    if (m->primed && now > m->last_wall_ms)
        *cpu_pct = 100.0 * (cpu_s - m->last_cpu_s) / ((now - m->last_wall_ms) / 1e3);
    m->last_cpu_s = cpu_s, m->last_wall_ms = now, m->primed = 1;
    return 0;
}
