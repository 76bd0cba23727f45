// err: the last error of this thread, as one human-readable line.
//
// Library code never prints and never exits: a function that fails calls
// err_set() with a message that names the file, what was expected and what was
// found, and returns a non-zero code (or NULL). Only src/cli prints the message
// (err_msg()) and chooses the exit code.
#pragma once
#include <stdarg.h>

// Sets the message (printf-style) and returns -1, so `return err_set(...)` reads well.
int err_set(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
// Prepends "prefix: " to the current message (adds context while unwinding).
int err_wrap(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *err_msg(void);
void err_clear(void);

// Invariants that must hold in release builds too (ggml style).
#define CHECK_OR_ABORT(x) do { if (!(x)) err_abort(__FILE__, __LINE__, #x); } while (0)
void err_abort(const char *file, int line, const char *expr) __attribute__((noreturn));
