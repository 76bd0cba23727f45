// The dashboard's system and power panels' sources, and `anetrain dash`'s
// refusals: CPU % and RSS of a busy child process (procfs), RAPL energy from
// a fake powercap tree (packages summed, sub-zones left out, a counter that
// wraps), "not available" without one, and dash without a terminal.
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dash/power.h"
#include "dash/sysmon.h"
#include "dash_util.h"
#include "test.h"

TEST(dash_sysmon_busy_child) {
    int ready[2];
    REQUIRE(pipe(ready) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        // 32 MiB touched, then say so and spin
        size_t n = 32u << 20;
        volatile char *p = malloc(n);
        for (size_t i = 0; p && i < n; i += 4096) p[i] = 1;
        if (write(ready[1], "x", 1) != 1) _exit(1);
        for (volatile unsigned long k = 0;; k++) {}
    }
    char c;
    CHECK(read(ready[0], &c, 1) == 1);
    close(ready[0]), close(ready[1]);
    Sysmon m;
    sysmon_init(&m, pid);
    double cpu, rss;
    CHECK(sysmon_sample(&m, &cpu, &rss) == 0 && isnan(cpu));
    usleep(400 * 1000);
    CHECK(sysmon_sample(&m, &cpu, &rss) == 0);
    // one core busy; the machine may be shared with other tests, so only a wide band
    CHECKF(cpu > 10 && cpu < 130, "a spinning process at %.0f%% CPU", cpu);
    CHECKF(rss > 30 && rss < 200, "RSS %.1f MB after touching 32 MiB", rss);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    CHECK(sysmon_sample(&m, &cpu, &rss) != 0);  // gone
}

static void zone(const char *root, const char *name, const char *energy, const char *range) {
    char p[700];
    snprintf(p, sizeof p, "%s/%s", root, name);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/%s/energy_uj", root, name);
    dash_write(p, energy, 0);
    snprintf(p, sizeof p, "%s/%s/max_energy_range_uj", root, name);
    dash_write(p, range, 0);
}

TEST(dash_power_rapl) {
#ifdef __APPLE__
    test_skip("RAPL is Linux's");
    return;
#endif
    char root[600], e0[700], e1[700];
    snprintf(root, sizeof root, "%s/powercap", test_tmpdir());
    mkdir(root, 0755);
    zone(root, "intel-rapl:0", "1000000\n", "10000000\n");
    zone(root, "intel-rapl:1", "9000000\n", "10000000\n");
    zone(root, "intel-rapl:0:0", "5\n", "10000000\n");  // cores: inside package 0 already
    snprintf(e0, sizeof e0, "%s/intel-rapl:0/energy_uj", root);
    snprintf(e1, sizeof e1, "%s/intel-rapl:1/energy_uj", root);
    setenv("ANETRAIN_POWERCAP", root, 1);
    Power p;
    power_open(&p);
    CHECKF(p.ok && p.n_zones == 2, "%s", p.what);
    double w;
    CHECK(power_sample(&p, &w) == 0 && isnan(w));
    // 0.5 J in package 0, and package 1 wraps: 9.0 J -> 0.5 J over a 10 J range = 1.5 J
    dash_write(e0, "1500000\n", 0);
    dash_write(e1, "500000\n", 0);
    usleep(200 * 1000);
    CHECK(power_sample(&p, &w) == 0);
    CHECKF(w > 2.0 / 0.35 && w < 2.0 / 0.19, "2 J over ~0.2 s read as %.2f W", w);
    power_close(&p);
    setenv("ANETRAIN_POWERCAP", "/nonexistent-powercap", 1);
    power_open(&p);
    CHECK(!p.ok && strstr(p.what, "not available"));
    CHECK(power_sample(&p, &w) != 0);
    unsetenv("ANETRAIN_POWERCAP");
}

TEST(dash_cli_refusals) {
    char *out = NULL;
    // not a terminal: one clear line, exit 1, and no trainer started
    int rc = test_runf(&out, "'%s' dash --log /nonexistent.jsonl < /dev/null 2>&1 | cat", test_bin());
    (void)rc;
    CHECKF(out && (strstr(out, "needs a terminal") || strstr(out, "built without")), "%s", out ? out : "");
    free(out);
    rc = test_runf(&out, "'%s' dash < /dev/null", test_bin());
    CHECK(rc == 2 && out && strstr(out, "--log FILE"));
    free(out);
    rc = test_runf(&out, "'%s' dash -- sample < /dev/null", test_bin());
    CHECK(rc == 2 && out && strstr(out, "dash -- train"));
    free(out);
    rc = test_runf(&out, "'%s' dash -- train --log - < /dev/null", test_bin());
    CHECK(rc == 2 && out && strstr(out, "not -"));
    free(out);
}
