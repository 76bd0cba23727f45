// The --log JSON lines and the Efficiency Report: every line strict JSON (paths
// with quotes, backslashes and tabs; non-finite numbers as null) on both
// pipelines, the report's phases adding up, and a log write failure said once.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/io.h"
#include "json_check.h"
#include "test.h"

// --- reading a JSON-lines log ----------------------------------------------------------

typedef struct {
    char *buf;
    char **line;
    size_t *len;
    int n;
    int ends_with_newline;
} Lines;

static int lines_read(Lines *L, const char *path) {
    memset(L, 0, sizeof *L);
    size_t size = 0;
    if (io_read_all(path, &L->buf, &size) != 0) return -1;
    L->ends_with_newline = size == 0 || L->buf[size - 1] == '\n';
    int cap = 16;
    L->line = malloc(cap * sizeof *L->line);
    L->len = malloc(cap * sizeof *L->len);
    for (char *s = L->buf; *s;) {
        char *e = strchr(s, '\n');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (L->n == cap) {
            cap *= 2;
            L->line = realloc(L->line, cap * sizeof *L->line);
            L->len = realloc(L->len, cap * sizeof *L->len);
        }
        L->line[L->n] = s;
        L->len[L->n++] = n;
        s += n + (e != NULL);
    }
    return 0;
}

static void lines_free(Lines *L) {
    free(L->buf);
    free(L->line);
    free(L->len);
    memset(L, 0, sizeof *L);
}

static int is_type(const Lines *L, int i, const char *type) {
    size_t n;
    const char *v = json_member(L->line[i], L->len[i], "type", &n);
    char want[64];
    snprintf(want, sizeof want, "\"%s\"", type);
    return v && n == strlen(want) && !memcmp(v, want, n);
}

// 1 and *out if key holds a number; 0 if it is null, missing or not a number.
static int num(const Lines *L, int i, const char *key, double *out) {
    size_t n;
    const char *v = json_member(L->line[i], L->len[i], key, &n);
    *out = NAN;
    if (!v || (n == 4 && !memcmp(v, "null", 4)) || v[0] == '"' || v[0] == '{' || v[0] == '[' || v[0] == 't' ||
        v[0] == 'f')
        return 0;
    *out = strtod(v, NULL);
    return 1;
}

static int is_null(const Lines *L, int i, const char *key) {
    size_t n;
    const char *v = json_member(L->line[i], L->len[i], key, &n);
    return v && n == 4 && !memcmp(v, "null", 4);
}

// The decoded string member, or "" (static buffer).
static const char *str(const Lines *L, int i, const char *key) {
    static char out[4096];
    size_t n;
    const char *v = json_member(L->line[i], L->len[i], key, &n);
    if (!v || json_string(v, n, out, sizeof out) < 0) out[0] = 0;
    return out;
}

static int count_type(const Lines *L, const char *type) {
    int c = 0;
    for (int i = 0; i < L->n; i++) c += is_type(L, i, type);
    return c;
}

// Every line of path is a strict JSON object; returns the number of lines.
static int check_all_lines(const char *path, const char *label) {
    Lines L;
    if (lines_read(&L, path) != 0) {
        CHECKF(0, "%s: cannot read the log %s", label, path);
        return 0;
    }
    CHECKF(L.ends_with_newline, "%s: the log does not end with a newline", label);
    int bad = 0;
    for (int i = 0; i < L.n; i++) {
        char why[200];
        if (!json_check_object(L.line[i], L.len[i], why, sizeof why)) {
            if (bad++ < 3) CHECKF(0, "%s: line %d is not strict JSON (%s): %.*s", label, i + 1, why, (int)L.len[i], L.line[i]);
        }
    }
    const int n = L.n;
    lines_free(&L);
    return bad ? -n : n;
}


// --- the validator itself: it must be able to say no --------------------------------------

TEST(json_check_is_strict) {
    const char *good[] = {
        "{}", "[]", "0", "-0", "1.5e-3", "-12E+7", "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\"", "true", "false",
        "null", " {\"a\": [1, 2.0, {\"b\": null}], \"c\": \"\\u0009\"} \n", "[[[]]]", "{\"x\":-0.0}",
    };
    const char *bad[] = {
        "", "{", "}", "{\"a\":}", "{\"a\":1,}", "[1,]", "[1 2]", "{\"a\" 1}", "{a:1}", "NaN", "nan", "-nan",
        "inf", "-inf", "Infinity", "{\"loss\":nan}", "{\"loss\":-inf}", "{\"x\":1e}", "01", "1.", ".5", "+1",
        "-", "\"abc", "\"a\\x\"", "\"\\u12g4\"", "\"tab\there\"", "\"nl\nhere\"", "{} x", "{}{}", "[1]]",
        "tru", "nul", "'a'", "\"\\\"", "{\"a\":1 \"b\":2}",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char why[200];
        CHECKF(json_check(good[i], strlen(good[i]), why, sizeof why), "valid JSON refused: %s (%s)", good[i], why);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECKF(!json_check(bad[i], strlen(bad[i]), NULL, 0), "invalid JSON accepted: %s", bad[i]);
    const char nul[] = {'"', 'a', 0, 'b', '"'};  // a raw NUL byte inside a string
    CHECK(!json_check(nul, sizeof nul, NULL, 0));
    CHECK(!json_check_object("[1]", 3, NULL, 0));
    // nesting limit
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    CHECK(!json_check(deep, sizeof deep, NULL, 0));
    // member lookup and string decoding
    const char *obj = "{\"type\":\"x\",\"nested\":{\"loss\":1},\"loss\":2.5,\"p\":\"q\\\"u\\\\o\\tx\"}";
    size_t n;
    const char *v = json_member(obj, strlen(obj), "loss", &n);
    CHECK(v && n == 3 && !memcmp(v, "2.5", 3));
    v = json_member(obj, strlen(obj), "p", &n);
    char out[64];
    CHECK(v && json_string(v, n, out, sizeof out) == 7 && !strcmp(out, "q\"u\\o\tx"));
    CHECK(json_member(obj, strlen(obj), "missing", &n) == NULL);
}

// --- the log on both pipelines ---------------------------------------------------------------

// A directory whose name needs escaping in JSON: a double quote, a backslash
// and a real tab.
static const char *odd_dir(void) {
    static char dir[600];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "%s/q\"uo\\te\tx", test_tmpdir());
        mkdir(dir, 0755);
    }
    return dir;
}

// Checks one pipeline's log: a run with evaluations and checkpoints, a resume
// that changes --data (a change record holding both odd paths) and a run whose
// every update is skipped (loss scale 1e38: non-finite gradients).
static void log_is_strict_json(const char *pipeline, const char *tag) {
    const char *dir = odd_dir();
    char data[800], other[800], ck[800], skip_ck[800], log[800], cmd[8192], *out = NULL;
    snprintf(data, sizeof data, "%s/pat.bin", dir);
    snprintf(other, sizeof other, "%s/other-%s.bin", dir, tag);
    snprintf(ck, sizeof ck, "%s/c-%s.bin", dir, tag);
    snprintf(skip_ck, sizeof skip_ck, "%s/s-%s.bin", dir, tag);
    snprintf(log, sizeof log, "%s/%s.jsonl", dir, tag);
    if (access(data, F_OK) != 0) REQUIRE(test_copy_file(test_pattern_tokens(256), data) == 0);
    REQUIRE(test_copy_file(test_pattern_tokens(200), other) == 0);  // other bytes, valid ids for vocab 256
    unlink(log);
    snprintf(cmd, sizeof cmd,
             "%s train --model tiny-mha --data '%s' --steps 4 --accum 1 --seq 32 --eval-every 2 --eval-windows 2 "
             "--save-every 2 --pipeline %s --ckpt '%s' --log '%s' -q",
             test_bin(), data, pipeline, ck, log);
    int rc = test_run(cmd, &out);
    CHECKF(rc == 0, "%s run: rc %d: %s", tag, rc, out);
    free(out);
    snprintf(cmd, sizeof cmd,
             "%s train --resume --resume-with-changes --data '%s' --steps 5 --ckpt '%s' --log '%s' -q", test_bin(),
             other, ck, log);
    rc = test_run(cmd, &out);
    CHECKF(rc == 0, "%s resume with changes: rc %d: %s", tag, rc, out);
    free(out);
    snprintf(cmd, sizeof cmd,
             "%s train --model tiny-mha --data '%s' --steps 3 --accum 1 --seq 32 --loss-scale 1e38 --max-skips 5 "
             "--eval-every 0 --pipeline %s --ckpt '%s' --log '%s' -q",
             test_bin(), data, pipeline, skip_ck, log);
    rc = test_run(cmd, &out);
    CHECKF(rc == 0 && strstr(out, "skipped"), "%s skip run: rc %d: %s", tag, rc, out);
    free(out);

    const int n = check_all_lines(log, tag);
    CHECKF(n > 10, "%s: %d lines in the log (negative: some invalid)", tag, n);
    Lines L;
    REQUIRE(lines_read(&L, log) == 0);
    const char *want_pipeline = strncmp(pipeline, "dynamic", 7) ? "cpu" : "dynamic";
    int starts = 0, steps = 0, evals = 0, ckpts = 0, skips = 0, changes = 0, reports = 0;
    for (int i = 0; i < L.n; i++) {
        double x;
        if (!json_check_object(L.line[i], L.len[i], NULL, 0)) continue;  // reported above
        CHECKF(num(&L, i, "t_ms", &x) && x >= 0, "%s line %d has no t_ms: %.*s", tag, i + 1, (int)L.len[i], L.line[i]);
        if (is_type(&L, i, "start")) {
            starts++;
            CHECKF(num(&L, i, "v", &x) && x == 1, "%s: start record without \"v\":1", tag);
            CHECKF(num(&L, i, "params", &x) && x == 110912, "%s: start params %g", tag, x);
            CHECKF(num(&L, i, "tokens_per_update", &x) && x == 32, "%s: start tokens_per_update %g", tag, x);
            CHECKF(num(&L, i, "flops_per_update", &x) && x > 1e6, "%s: start flops_per_update %g", tag, x);
            CHECKF(!strcmp(str(&L, i, "pipeline"), want_pipeline), "%s: start pipeline \"%s\"", tag,
                   str(&L, i, "pipeline"));
            CHECKF(strstr(str(&L, i, "ckpt"), dir) || strstr(str(&L, i, "data"), dir),
                   "%s: start record's paths do not decode to the directory given", tag);
        } else if (is_type(&L, i, "step")) {
            steps++;
            CHECKF(num(&L, i, "rss_mb", &x) && x > 0, "%s: step record rss_mb %g", tag, x);
            CHECKF(num(&L, i, "step", &x) && x >= 1, "%s: step record without step", tag);
        } else if (is_type(&L, i, "eval")) {
            evals++;
            CHECKF(num(&L, i, "val_loss", &x) && x > 0, "%s: eval val_loss %g", tag, x);
        } else if (is_type(&L, i, "checkpoint")) {
            ckpts++;
            CHECKF(!strncmp(str(&L, i, "path"), dir, strlen(dir)), "%s: checkpoint path decodes to \"%s\"", tag,
                   str(&L, i, "path"));
        } else if (is_type(&L, i, "skip")) {
            skips++;
            CHECKF(is_null(&L, i, "grad_norm"), "%s: skip record's non-finite grad_norm is not null: %.*s", tag,
                   (int)L.len[i], L.line[i]);
        } else if (is_type(&L, i, "change")) {
            changes++;
            if (!strcmp(str(&L, i, "what"), "--data")) {
                char from[4096];
                snprintf(from, sizeof from, "%s", str(&L, i, "from"));
                CHECKF(strstr(from, data) && strstr(str(&L, i, "to"), other),
                       "%s: --data change record does not name both paths: %.*s", tag, (int)L.len[i], L.line[i]);
            }
        } else if (is_type(&L, i, "report")) {
            reports++;
        }
    }
    CHECKF(starts == 3 && steps == 8 && evals == 3 && ckpts >= 6 && skips == 3 && changes == 2 && reports == 3,
           "%s: records start %d step %d eval %d checkpoint %d skip %d change %d report %d", tag, starts, steps,
           evals, ckpts, skips, changes, reports);
    lines_free(&L);
}

TEST(train_log_strict_json_cpu) { log_is_strict_json("cpu", "cpu"); }

TEST(train_log_strict_json_dynamic) { log_is_strict_json("dynamic --device sim", "dyn"); }

// --- the Efficiency Report adds up -----------------------------------------------------------

static void report_adds_up(const char *pipeline, const char *tag) {
    char ck[600], log[600], cmd[4096], *out = NULL;
    snprintf(ck, sizeof ck, "%s/report-%s.bin", test_tmpdir(), tag);
    snprintf(log, sizeof log, "%s/report-%s.jsonl", test_tmpdir(), tag);
    unlink(log);
    // evaluation every update over 6 windows: eval is a big share of the wall time
    snprintf(cmd, sizeof cmd,
             "%s train --model tiny-mha --data %s --steps 6 --accum 2 --seq 64 --eval-every 1 --eval-windows 6 "
             "--pipeline %s --ckpt %s --log %s -q",
             test_bin(), test_pattern_tokens(256), pipeline, ck, log);
    int rc = test_run(cmd, &out);
    CHECKF(rc == 0, "%s: rc %d: %s", tag, rc, out);
    free(out);
    REQUIRE(rc == 0);
    Lines L;
    REQUIRE(lines_read(&L, log) == 0);
    int r = -1;
    for (int i = 0; i < L.n; i++)
        if (is_type(&L, i, "report")) r = i;
    REQUIRE(r >= 0);
    CHECKF(count_type(&L, "eval") == 6, "%s: %d eval records for 6 updates with --eval-every 1", tag,
           count_type(&L, "eval"));
    double wall, setup, train, eval, ckpt, fwd, bwd, optim, data, msps, steps;
    int ok = num(&L, r, "wall_ms", &wall) && num(&L, r, "setup_ms", &setup) && num(&L, r, "train_ms", &train) &&
             num(&L, r, "t_eval", &eval) && num(&L, r, "t_ckpt", &ckpt) && num(&L, r, "t_fwd", &fwd) &&
             num(&L, r, "t_bwd", &bwd) && num(&L, r, "t_optim", &optim) && num(&L, r, "t_data", &data) &&
             num(&L, r, "ms_per_step", &msps) && num(&L, r, "steps", &steps);
    CHECKF(ok, "%s: report record lacks a field: %.*s", tag, (int)L.len[r], L.line[r]);
    if (ok) {
        // the test is only sensitive if evaluation is a big share
        CHECKF(eval > 0.25 * train, "%s: eval %.1f ms vs train %.1f ms: not a big share", tag, eval, train);
        const double phases = setup + train + eval + ckpt;
        CHECKF(fabs(phases - wall) <= 0.05 * wall,
               "%s: setup %.1f + train %.1f + eval %.1f + ckpt %.1f = %.1f ms, wall %.1f ms", tag, setup, train, eval,
               ckpt, phases, wall);
        const double inside = fwd + bwd + optim + data;
        CHECKF(fabs(inside - train) <= 0.05 * train,
               "%s: fwd %.1f + bwd %.1f + optim %.1f + data %.2f = %.1f ms, train %.1f ms (evaluation counted as "
               "training?)",
               tag, fwd, bwd, optim, data, inside, train);
        CHECKF(steps == 6 && fabs(msps * steps - train) <= 1e-6 * train, "%s: ms_per_step %g x steps %g != train %g",
               tag, msps, steps, train);
    }
    lines_free(&L);
}

TEST(train_report_adds_up_cpu) { report_adds_up("cpu", "cpu"); }

TEST(train_report_adds_up_dynamic) { report_adds_up("dynamic --device sim", "dyn"); }

// --- a log that cannot be written ----------------------------------------------------------

TEST(train_log_write_failure_said_once) {
    if (access("/dev/full", W_OK) != 0) {
        test_skip("no /dev/full on this system");
        return;
    }
    char cmd[4096], *out = NULL;
    // stdout is the full device; only stderr reaches the pipe
    snprintf(cmd, sizeof cmd,
             "%s train --model tiny-mha --data %s --steps 3 --accum 1 --seq 32 --eval-every 0 --ckpt %s/full.bin "
             "--log - -q 2>&1 >/dev/full",
             test_bin(), test_pattern_tokens(256), test_tmpdir());
    int rc = test_run(cmd, &out);
    int said = 0;
    for (const char *s = out; s && (s = strstr(s, "writing the log failed")); s++) said++;
    CHECKF(rc == 1 && said == 1, "rc %d, \"writing the log failed\" said %d times:\n%s", rc, said, out);
    free(out);
}
