// test: the one test runner. Each tests/test_*.c defines TEST(name) { ... }
// functions; they register themselves at load time, and tests/main.c runs
// them all (or those whose name contains argv[1]) and ends with the line
// "N passed, N failed, N skipped", exiting non-zero on any failure.
#pragma once
#include <math.h>
#include <stddef.h>
#include <stdio.h>

typedef void (*TestFn)(void);
void test_register(const char *name, const char *file, TestFn fn);

#define TEST(name)                                                                 \
    static void name(void);                                                        \
    __attribute__((constructor)) static void name##_register(void) {               \
        test_register(#name, __FILE__, name);                                      \
    }                                                                              \
    static void name(void)

// Records a failure and continues.
#define CHECK(cond) test_check((cond) != 0, __FILE__, __LINE__, #cond)
// Records a failure with a printf-style explanation and continues.
#define CHECKF(cond, ...) test_checkf((cond) != 0, __FILE__, __LINE__, __VA_ARGS__)
// Stops the current test on failure.
#define REQUIRE(cond) do { if (!test_check((cond) != 0, __FILE__, __LINE__, #cond)) return; } while (0)

int test_check(int ok, const char *file, int line, const char *expr);
int test_checkf(int ok, const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

// Marks the current test skipped (with a reason) — only for missing optional data.
void test_skip(const char *why);

// Path of a file under ../shared/data (e.g. "stories260K/tok512.bin"), or NULL.
// When the file is missing: with CI=true in the environment the test fails;
// otherwise it is skipped with a message. Callers just `if (!p) return;`.
const char *test_data(const char *rel);

// Path of the anetrain binary (from $ANETRAIN_BIN, default ./anetrain).
const char *test_bin(void);
// Runs a shell command; returns its exit status; stdout+stderr go to *out (malloc'd, may be NULL).
int test_run(const char *cmd, char **out);
// test_run with a printf-style command.
int test_runf(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// 1 if two checkpoint files hold the same body (weights, moments) byte for
// byte: everything after the 4096-byte header, whose timers always differ.
int test_ckpt_bodies_equal(const char *a, const char *b);
// The values of `key` in the JSONL log's records of `type`, in log order,
// joined by spaces into out; returns how many (-1 if the log is unreadable).
int test_log_values(const char *log, const char *type, const char *key, char *out, size_t cap);
// Copies a file (0, or -1).
int test_copy_file(const char *from, const char *to);
// A fresh temporary directory for this test (removed at exit).
const char *test_tmpdir(void);
// A 20000-token file in test_tmpdir() with a learnable pattern (runs of
// consecutive ids after a random start), ids < vocab; made once per vocab.
const char *test_pattern_tokens(int vocab);

// Compares two float arrays with |a-b| <= atol + rtol*|b|; prints the worst
// element and the first few mismatches under `label`. Returns 1 if all close.
int test_allclose(const float *a, const float *b, size_t n, float atol, float rtol, const char *label);
// Relative error max|a-b| / max|b| (with a floor), the whole-tensor metric.
double test_rel_err(const float *a, const float *b, size_t n);
