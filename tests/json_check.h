// json_check: a strict JSON validator for the tests (RFC 8259 grammar).
//
// Objects, arrays, strings (with the escapes \" \\ \/ \b \f \n \r \t \uXXXX),
// numbers (-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?), true, false and
// null. Rejected: NaN, nan, Infinity, inf and every other bare word, leading
// zeros, "1.", ".5", "+1", raw control characters (< 0x20) inside strings,
// bad escapes, trailing commas, missing commas or colons, unclosed values, and
// anything but whitespace after the value. Nesting is limited to 64 levels.
#pragma once
#include <stddef.h>

// 1 if s[0..n) is exactly one JSON value (whitespace around it allowed); else
// 0 with a description of the first error (and its byte offset) in why.
int json_check(const char *s, size_t n, char *why, size_t why_len);

// The same for one line of a JSON-lines file: the value must be an object.
int json_check_object(const char *s, size_t n, char *why, size_t why_len);

// In a valid object s[0..n), the value of the top-level member `key` (keys
// compared byte for byte with their raw text between the quotes): returns a
// pointer to the value's first byte and its length in *len, or NULL if the
// object has no such member (or s is not a valid object).
const char *json_member(const char *s, size_t n, const char *key, size_t *len);

// Decodes the JSON string value v[0..len) (with its quotes, as json_member
// returns it) into out (NUL-terminated; \uXXXX written as UTF-8). Returns the
// decoded length, or -1 if v is not a string or out is too small.
long json_string(const char *v, size_t len, char *out, size_t cap);
