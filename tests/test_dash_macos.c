// The dashboard's macOS-only files on Linux, the way test_macos_syntax.c
// checks the ane device: src/dash/power_macos.c (IOReport energy channels)
// and src/dash/sysmon_macos.c (proc_pidinfo) type-check against the SDK
// stand-ins in tests/macos/, and run against tests/macos/fake_ioreport.c, an
// imitation of the CoreFoundation, IOReport, libproc and mach_time calls they
// make. Runs from the project root.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

static const char *const FILES = "src/dash/power_macos.c src/dash/sysmon_macos.c";

static void typechecks(const char *cc) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s -std=c11 -fsyntax-only -Wall -Wextra -pedantic -D__APPLE__ -Itests/macos -Isrc %s", cc,
             FILES);
    char *out = NULL;
    int rc = test_run(cmd, &out);
    CHECKF(rc == 0 && out && !out[0], "`%s` exited %d:\n%s", cmd, rc, out ? out : "");
    free(out);
}

TEST(dash_macos_typechecks) {
    typechecks("cc");
    if (test_run("command -v clang > /dev/null", NULL) == 0) typechecks("clang");
}

TEST(dash_macos_power_on_fake_ioreport) {
    char cmd[2048];
    // IOREPORT_PATH "": the IOReport functions are looked up in the program itself (-rdynamic)
    snprintf(cmd, sizeof cmd,
             "cc -std=c11 -Wall -Wextra -pedantic -D_GNU_SOURCE -Itests/macos -Isrc -DIOREPORT_PATH='\"\"' -rdynamic "
             "-o %s/fake_ioreport %s src/core/err.c tests/macos/fake_ioreport.c -ldl -lm && %s/fake_ioreport",
             test_tmpdir(), FILES, test_tmpdir());
    char *out = NULL;
    int rc = test_run(cmd, &out);
    CHECKF(rc == 0 && out && strstr(out, "OK: 0 failed checks") && !strstr(out, "warning"), "`%s` exited %d:\n%s", cmd,
           rc, out ? out : "");
    free(out);
}
