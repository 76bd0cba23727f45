// jsonw: one JSON object built into a fixed buffer, for JSON-lines logs.
//
//   JsonW j;
//   jsonw_begin(&j, "step");          // {"type":"step"
//   jsonw_int(&j, "step", 12);
//   jsonw_num(&j, "loss", loss);      // NaN and inf are written as null
//   jsonw_str(&j, "path", path);      // quotes, backslashes, control bytes escaped
//   fputs(jsonw_end(&j), f);          // ...}\n
//
// Strings are copied as bytes (UTF-8 passes through); a line longer than the
// buffer is cut at a field boundary and marked "truncated": true, so it stays
// valid JSON.
#pragma once
#include <stddef.h>

enum { JSONW_CAP = 8192 };
typedef struct {
    char buf[JSONW_CAP];
    size_t len;
    int full;
} JsonW;

void jsonw_begin(JsonW *j, const char *type);
void jsonw_str(JsonW *j, const char *key, const char *value);  // NULL value: null
void jsonw_num(JsonW *j, const char *key, double value);        // %.9g; non-finite: null
void jsonw_int(JsonW *j, const char *key, long long value);
void jsonw_bool(JsonW *j, const char *key, int value);
// Closes the object; returns the line, newline-terminated.
const char *jsonw_end(JsonW *j);
