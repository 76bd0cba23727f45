// power: the machine's power draw in watts, without sudo, for the dashboard.
//
// Linux (power_linux.c): RAPL package energy from /sys/class/powercap
// (intel-rapl:N/energy_uj; AMD exposes the same interface), summed over
// packages, when readable (recent kernels make it root-only). macOS
// (power_macos.c): IOReport's "Energy Model" channels. Power is an energy
// delta over a time delta, so the first sample only primes.
#pragma once

enum { POWER_MAX_ZONES = 8 };

typedef struct {
    int ok;              // a source was found and is readable
    char what[96];       // "RAPL package (2 zones)", or why there is none
    int n_zones;
    char zone[POWER_MAX_ZONES][128];  // energy_uj paths
    double max_uj[POWER_MAX_ZONES];   // the counters' wrap-around range
    double last_uj[POWER_MAX_ZONES];
    double last_ms;
    int primed;
    void *impl;  // the platform's state (macOS)
} Power;

// Finds a source; never fails (p->ok = 0 and p->what says why).
void power_open(Power *p);
// 0 with *watts (NAN while priming), or -1 (p->what says why).
int power_sample(Power *p, double *watts);
void power_close(Power *p);
