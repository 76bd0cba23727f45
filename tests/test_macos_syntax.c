// test_macos_syntax: checks the macOS-only ane device (src/ane/ane_macos.c) on
// Linux, where no build compiles it:
//   - type-checks it against the SDK stand-ins in tests/macos/ (a wrong argument
//     type, a missing objc_msgSend cast, a misspelled API fail CI), and that those
//     stand-ins are strict enough to reject such mistakes;
//   - links it with tests/macos/fake_apple.c, an imitation of the Objective-C
//     runtime, CoreFoundation, IOSurface and the four ANE classes, and runs its
//     logic: retain/release balance, autorelease pools, the shared tmp directory
//     per hex id, @{} weights, load retry, checked eval, error lines, and a
//     static pipeline's baked-weight kernel (fwdFFN, as `anetrain mil` writes it).
// Runs from the project root.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

#define SYNTAX_FLAGS "-std=c11 -fsyntax-only -Wall -Wextra -pedantic -D__APPLE__ -Itests/macos -Isrc"

// Compiles ane_macos.c with `cc`; both the exit status and silence are required.
static void check_typechecks(const char *cc) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s " SYNTAX_FLAGS " src/ane/ane_macos.c", cc);
    char *out = NULL;
    int rc = test_run(cmd, &out);
    CHECKF(rc == 0, "`%s` exited %d:\n%s", cmd, rc, out ? out : "");
    CHECKF(out && out[0] == 0, "`%s` printed diagnostics (warnings count as failures):\n%s", cmd, out ? out : "");
    free(out);
}

TEST(macos_ane_typechecks_cc) { check_typechecks("cc"); }

// macOS builds with clang: its diagnostics differ from gcc's, so check with it too when installed.
TEST(macos_ane_typechecks_clang) {
    if (test_run("command -v clang", NULL) != 0) {
        test_skip("clang not installed");
        return;
    }
    check_typechecks("clang");
}

// The stand-in headers must be strict enough to catch real mistakes: each
// snippet below is wrong in one way the macOS SDK would reject, and one
// correct control snippet proves the failures come from that line.
TEST(macos_stub_headers_reject_type_errors) {
    static const char *const PRELUDE =
        "#include <stddef.h>\n#include <CoreFoundation/CoreFoundation.h>\n#include <IOSurface/IOSurfaceRef.h>\n"
        "#include <objc/message.h>\n#include <objc/runtime.h>\n";
    static const struct {
        const char *what;
        int ok;
        const char *body;
    } cases[] = {
        {"correct calls (control)", 1,
         "BOOL f(CFDataRef d, IOSurfaceRef s, id o, SEL sel) {\n"
         "    BOOL (*send)(id, SEL, unsigned int, id, id *) = (BOOL (*)(id, SEL, unsigned int, id, id *))objc_msgSend;\n"
         "    id e = NULL;\n"
         "    (void)IOSurfaceLock(s, kIOSurfaceLockReadOnly, NULL);\n"
         "    return send(o, sel, 21, (id)d, &e) && objc_getClass(\"X\") != NULL;\n"
         "}\n"},
        {"objc_msgSend called without a cast", 0, "void f(id o, SEL s) { objc_msgSend(o, s); }\n"},
        {"CFDataRef passed as IOSurfaceRef", 0, "void f(CFDataRef d) { (void)IOSurfaceLock(d, 0, NULL); }\n"},
        {"IOSurfaceLock without its seed argument", 0, "void f(IOSurfaceRef s) { (void)IOSurfaceLock(s, 0); }\n"},
        {"Class used as id", 0, "id f(void) { Class c = objc_getClass(\"X\"); return c; }\n"},
        {"CFStringRef passed as CFDataRef", 0,
         "CFIndex f(CFStringRef s) { return CFStringGetLength(CFDataCreate(NULL, (const UInt8 *)\"x\", 1)) + "
         "(CFIndex)CFDataCreate(NULL, s, 1); }\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char path[4200], cmd[4600];
        snprintf(path, sizeof path, "%s/stub_case_%zu.c", test_tmpdir(), i);
        FILE *f = fopen(path, "w");
        REQUIRE(f != NULL);
        fprintf(f, "%s%s", PRELUDE, cases[i].body);
        REQUIRE(fclose(f) == 0);
        snprintf(cmd, sizeof cmd, "cc -std=c11 -fsyntax-only -Wall -Wextra -pedantic-errors -Werror -Itests/macos %s",
                 path);
        char *out = NULL;
        int rc = test_run(cmd, &out);
        if (cases[i].ok)
            CHECKF(rc == 0, "%s: expected to compile, `%s` exited %d:\n%s", cases[i].what, cmd, rc, out ? out : "");
        else
            CHECKF(rc != 0, "%s: expected a compile error, the stand-in headers accepted it", cases[i].what);
        free(out);
    }
}

// Builds ane_macos.c against the fake runtime and runs the scenarios in
// tests/macos/fake_apple.c (which prints FAIL/FAULT lines and exits non-zero).
TEST(macos_ane_logic_on_fake_runtime) {
#if defined(__x86_64__) || defined(__aarch64__)
    char dir[4200], cmd[12 * 4200 + 512];
    snprintf(dir, sizeof dir, "%s/ane_fake", test_tmpdir());
    snprintf(cmd, sizeof cmd,
             "rm -rf %s && mkdir -p %s/tmp && cc -std=c11 -Wall -Wextra -pedantic -D_GNU_SOURCE -Itests/macos -Isrc "
             "-o %s/fake src/ane/ane_macos.c src/ane/device.c src/ane/device_sim.c src/mil/mil_*.c src/core/err.c "
             "src/core/io.c src/core/fp16.c src/core/gemm.c src/core/threads.c tests/macos/fake_apple.c -lm -lpthread && "
             "%s mil fwdFFN --model tiny-qwen3 --seq 16 --blobs %s/blobs > %s/fwdFFN.mil 2>/dev/null && "
             "%s mil fwdFFN --model tiny-qwen3 --seq 16 --dialect ios16 > %s/fwdFFN16.mil 2>/dev/null && "
             "%s/fake %s/tmp %s/fwdFFN.mil %s/blobs %s/fwdFFN16.mil",
             dir, dir, dir, test_bin(), dir, dir, test_bin(), dir, dir, dir, dir, dir, dir);
    char *out = NULL;
    int rc = test_run(cmd, &out);
    CHECKF(rc == 0 && out && strstr(out, "OK: 0 failed checks, 0 faults"), "`%s` exited %d:\n%s", cmd, rc,
           out ? out : "");
    CHECKF(out && !strstr(out, "warning"), "the fake build printed warnings:\n%s", out ? out : "");
    free(out);
#else
    test_skip("the fake objc_msgSend needs the x86-64 or arm64 calling convention");
#endif
}
