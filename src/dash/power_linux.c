// power_linux: RAPL package energy from /sys/class/powercap (power.h).
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/timer.h"
#include "dash/power.h"

static int read_num(const char *path, double *v) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int ok = fscanf(f, "%lf", v) == 1;
    fclose(f);
    return ok ? 0 : -1;
}

// The top-level zones (intel-rapl:0, intel-rapl:1: packages), not their
// sub-zones (intel-rapl:0:0 = cores), which the package already counts.
static int is_package(const char *name) {
    const char *p = strchr(name, ':');
    return !strncmp(name, "intel-rapl:", 11) && p && !strchr(p + 1, ':');
}

void power_open(Power *p) {
    memset(p, 0, sizeof *p);
    const char *root = getenv("ANETRAIN_POWERCAP");  // tests point this at a fake tree
    if (!root) root = "/sys/class/powercap";
    DIR *d = opendir(root);
    if (!d) {
        snprintf(p->what, sizeof p->what, "not available (no %s)", root);
        return;
    }
    int seen = 0;
    struct dirent *e;
    while ((e = readdir(d)) && p->n_zones < POWER_MAX_ZONES) {
        if (!is_package(e->d_name)) continue;
        seen++;
        char path[128], range[160];
        double v;
        snprintf(path, sizeof path, "%s/%.40s/energy_uj", root, e->d_name);
        snprintf(range, sizeof range, "%s/%.40s/max_energy_range_uj", root, e->d_name);
        if (read_num(path, &v) != 0) continue;
        int z = p->n_zones++;
        snprintf(p->zone[z], sizeof p->zone[z], "%s", path);
        if (read_num(range, &p->max_uj[z]) != 0) p->max_uj[z] = 0;
    }
    closedir(d);
    p->ok = p->n_zones > 0;
    if (p->ok) snprintf(p->what, sizeof p->what, "RAPL package, %d zone%s", p->n_zones, p->n_zones > 1 ? "s" : "");
    else if (seen) snprintf(p->what, sizeof p->what, "not available (RAPL is readable by root only here)");
    else snprintf(p->what, sizeof p->what, "not available (no RAPL zones in %s)", root);
}

int power_sample(Power *p, double *watts) {
    *watts = NAN;
    if (!p->ok) return -1;
    double now = time_ms(), joules = 0;
    for (int z = 0; z < p->n_zones; z++) {
        double uj;
        if (read_num(p->zone[z], &uj) != 0) {
            p->ok = 0;
            snprintf(p->what, sizeof p->what, "not available (%s stopped reading)", p->zone[z]);
            return -1;
        }
        double d = uj - p->last_uj[z];
        if (d < 0) d += p->max_uj[z];  // the counter wrapped
        joules += d * 1e-6;
        p->last_uj[z] = uj;
    }
    if (p->primed && now > p->last_ms) *watts = joules / ((now - p->last_ms) / 1e3);
    p->last_ms = now, p->primed = 1;
    return 0;
}

void power_close(Power *p) { memset(p, 0, sizeof *p); }
