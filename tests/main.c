// The test runner: runs every registered TEST (filter: substring of the name).
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

#include "ane/device.h"
#include "cli/restart.h"
#include "core/err.h"
#include "core/io.h"
#include "data/dataset.h"

typedef struct { const char *name, *file; TestFn fn; } TestCase;
static TestCase g_tests[1024];
static int g_n_tests;
static int g_failed_checks, g_skipped;
static const char *g_current;
static char g_tmpdir[256];

void test_register(const char *name, const char *file, TestFn fn) {
    if (g_n_tests < (int)(sizeof g_tests / sizeof g_tests[0])) g_tests[g_n_tests++] = (TestCase){name, file, fn};
}

int test_check(int ok, const char *file, int line, const char *expr) {
    if (!ok) {
        g_failed_checks++;
        fprintf(stderr, "  FAIL %s:%d: %s (in %s)\n", file, line, expr, g_current);
    }
    return ok;
}

int test_checkf(int ok, const char *file, int line, const char *fmt, ...) {
    if (!ok) {
        g_failed_checks++;
        fprintf(stderr, "  FAIL %s:%d: ", file, line);
        va_list ap;
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, " (in %s)\n", g_current);
    }
    return ok;
}

void test_skip(const char *why) {
    g_skipped++;
    fprintf(stderr, "  SKIP %s: %s\n", g_current, why);
}

const char *test_data(const char *rel) {
    static char path[8][512];
    static int slot;
    char *p = path[slot++ % 8];
    const char *root = getenv("ANETRAIN_DATA");
    snprintf(p, 512, "%s/%s", root ? root : "../shared/data", rel);
    if (access(p, R_OK) == 0) return p;
    const char *ci = getenv("CI");
    if (ci && !strcmp(ci, "true")) {
        test_checkf(0, __FILE__, __LINE__, "required data file %s is missing (CI=true)", p);
    } else {
        char why[600];
        snprintf(why, sizeof why, "data file %s not found", p);
        test_skip(why);
    }
    return NULL;
}

// Absolute, so tests that run it from another directory find it.
const char *test_bin(void) {
    static char path[PATH_MAX];
    const char *b = getenv("ANETRAIN_BIN");
    if (!b) b = "./anetrain";
    if (!path[0] && !realpath(b, path)) snprintf(path, sizeof path, "%s", b);
    return path;
}

int test_run(const char *cmd, char **out) {
    char full[8192];
    snprintf(full, sizeof full, "( %s ) 2>&1", cmd);
    FILE *f = popen(full, "r");
    if (!f) return -1;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n < 2) { cap *= 2; buf = realloc(buf, cap); }
    }
    if (buf) buf[n] = 0;
    int st = pclose(f);
    if (out) *out = buf; else free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

int test_runf(char **out, const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    return test_run(cmd, out);
}

// The values of `key` in the records of `type`, in log order ("%s" joined by spaces).
int test_log_values(const char *log, const char *type, const char *key, char *out, size_t cap) {
    char *txt = NULL, pat[64], kp[64];
    if (io_read_all(log, &txt, NULL) != 0) return -1;
    snprintf(pat, sizeof pat, "\"type\":\"%s\"", type);
    snprintf(kp, sizeof kp, "\"%s\":", key);
    int n = 0;
    size_t at = 0;
    out[0] = 0;
    for (char *s = strstr(txt, pat); s; s = strstr(s + 1, pat)) {
        char *e = strchr(s, '\n'), *v = strstr(s, kp);
        if (!v || (e && v > e)) continue;
        v += strlen(kp);
        size_t len = strcspn(v, ",}");
        if (at + len + 2 < cap) at += (size_t)snprintf(out + at, cap - at, "%.*s ", (int)len, v);
        n++;
    }
    free(txt);
    return n;
}

int test_ckpt_bodies_equal(const char *a, const char *b) {
    char *x = NULL, *y = NULL;
    size_t nx = 0, ny = 0;
    int eq = io_read_all(a, &x, &nx) == 0 && io_read_all(b, &y, &ny) == 0 && nx == ny && nx > 4096 &&
             !memcmp(x + 4096, y + 4096, nx - 4096);
    free(x);
    free(y);
    return eq;
}

int test_copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
    char buf[1 << 16];
    size_t n;
    int ok = in && out;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, n, out) == n;
    if (in && ferror(in)) ok = 0;
    if (in) fclose(in);
    if (out && fclose(out) != 0) ok = 0;
    return ok ? 0 : -1;
}

const char *test_tmpdir(void) {
    if (!g_tmpdir[0]) {
        snprintf(g_tmpdir, sizeof g_tmpdir, "/tmp/anetrain-test-XXXXXX");
        if (!mkdtemp(g_tmpdir)) { perror("mkdtemp"); exit(2); }
    }
    return g_tmpdir;
}

const char *test_pattern_tokens(int vocab) {
    static char path[8][512];
    static int vocabs[8], n;
    for (int i = 0; i < n; i++)
        if (vocabs[i] == vocab) return path[i];
    if (n == 8) return NULL;
    snprintf(path[n], sizeof path[n], "%s/pattern-%d.bin", test_tmpdir(), vocab);
    size_t count = 20000;
    uint32_t *ids = malloc(count * sizeof *ids), x = 12345;
    for (size_t i = 0; i < count; i++) {
        x = x * 1103515245u + 12345u;
        ids[i] = (i % 4 && i) ? (ids[i - 1] + 1) % (uint32_t)vocab : (x >> 8) % (uint32_t)vocab;
    }
    if (tokens_write(path[n], ids, count, vocab) != 0) fprintf(stderr, "%s\n", err_msg());
    free(ids);
    vocabs[n] = vocab;
    return path[n++];
}

double test_rel_err(const float *a, const float *b, size_t n) {
    double maxd = 0, maxb = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= maxd)) maxd = d;  // NaN propagates as failure
        if (fabs(b[i]) > maxb) maxb = fabs(b[i]);
    }
    return maxd / (maxb > 1e-12 ? maxb : 1e-12);
}

int test_allclose(const float *a, const float *b, size_t n, float atol, float rtol, const char *label) {
    size_t bad = 0, worst = 0;
    double worst_excess = -1;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]), lim = atol + rtol * fabs(b[i]);
        double excess = isnan(d) ? 1e30 : d - lim;
        if (excess > worst_excess) { worst_excess = excess; worst = i; }
        if (!(d <= lim)) {
            if (bad < 3) fprintf(stderr, "    %s[%zu]: got %.7g want %.7g\n", label, i, a[i], b[i]);
            bad++;
        }
    }
    if (bad) {
        g_failed_checks++;
        fprintf(stderr, "  FAIL %s: %zu of %zu elements differ (worst [%zu]: %.7g vs %.7g) (in %s)\n", label, bad,
                n, worst, n ? a[worst] : 0.0, n ? b[worst] : 0.0, g_current);
    }
    return bad == 0;
}

static void cleanup(void) {
    if (g_tmpdir[0]) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmpdir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_tmpdir);
    }
}

int main(int argc, char **argv) {
    restart_for_blas_kernels(argv);  // the kernels the program runs with (cli/restart.h)
    atexit(cleanup);
    const char *filter = argc > 1 ? argv[1] : NULL;
    int passed = 0, failed = 0, skipped = 0;
    for (int i = 0; i < g_n_tests; i++) {
        if (filter && !strstr(g_tests[i].name, filter)) continue;
        g_current = g_tests[i].name;
        int before_f = g_failed_checks, before_s = g_skipped;
        fprintf(stderr, "%-40s ", g_tests[i].name);
        fflush(stderr);
        fputc('\n', stderr);
        device_process_compiles_reset();  // each test stands for a fresh process: a budget of its own
        g_tests[i].fn();
        if (g_failed_checks != before_f) failed++, fprintf(stderr, "  -> FAILED\n");
        else if (g_skipped != before_s) skipped++;
        else passed++;
    }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
