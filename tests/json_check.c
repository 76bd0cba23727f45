// json_check: see json_check.h. A recursive-descent parser that only accepts.
#include "json_check.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *s;
    size_t n, i;
    int depth;
    char *why;
    size_t why_len;
    int failed;
} P;

enum { MAX_DEPTH = 64 };

static int fail(P *p, const char *what) {
    if (!p->failed && p->why && p->why_len) {
        if (p->i < p->n) {
            unsigned char c = (unsigned char)p->s[p->i];
            if (c >= 0x20 && c < 0x7f) snprintf(p->why, p->why_len, "%s at byte %zu ('%c')", what, p->i, c);
            else snprintf(p->why, p->why_len, "%s at byte %zu (0x%02x)", what, p->i, c);
        } else {
            snprintf(p->why, p->why_len, "%s at byte %zu (end of input)", what, p->i);
        }
    }
    p->failed = 1;
    return 0;
}

static int peek(const P *p) { return p->i < p->n ? (unsigned char)p->s[p->i] : -1; }

static void ws(P *p) {
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_hex(int c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

static int value(P *p);

static int string(P *p) {
    if (peek(p) != '"') return fail(p, "expected '\"'");
    p->i++;
    for (;;) {
        int c = peek(p);
        if (c < 0) return fail(p, "unterminated string");
        if (c == '"') {
            p->i++;
            return 1;
        }
        if (c < 0x20) return fail(p, "raw control character in a string");
        if (c == '\\') {
            p->i++;
            c = peek(p);
            if (c < 0) return fail(p, "unterminated escape");
            if (c == 'u') {
                p->i++;
                for (int k = 0; k < 4; k++, p->i++)
                    if (!is_hex(peek(p))) return fail(p, "expected 4 hex digits after \\u");
                continue;
            }
            if (!strchr("\"\\/bfnrt", c)) return fail(p, "invalid escape");
        }
        p->i++;
    }
}

static int number(P *p) {
    const size_t start = p->i;
    if (peek(p) == '-') p->i++;
    if (peek(p) == '0') {
        p->i++;
        if (is_digit(peek(p))) return fail(p, "leading zero in a number");
    } else if (is_digit(peek(p))) {
        while (is_digit(peek(p))) p->i++;
    } else {
        p->i = start;
        return fail(p, "expected a value");
    }
    if (peek(p) == '.') {
        p->i++;
        if (!is_digit(peek(p))) return fail(p, "expected a digit after '.'");
        while (is_digit(peek(p))) p->i++;
    }
    if (peek(p) == 'e' || peek(p) == 'E') {
        p->i++;
        if (peek(p) == '+' || peek(p) == '-') p->i++;
        if (!is_digit(peek(p))) return fail(p, "expected a digit in the exponent");
        while (is_digit(peek(p))) p->i++;
    }
    return 1;
}

static int word(P *p, const char *w) {
    const size_t k = strlen(w);
    if (p->n - p->i < k || memcmp(p->s + p->i, w, k) != 0) return fail(p, "expected a value");
    p->i += k;
    return 1;
}

static int object(P *p) {
    p->i++;  // '{'
    ws(p);
    if (peek(p) == '}') {
        p->i++;
        return 1;
    }
    for (;;) {
        ws(p);
        if (!string(p)) return 0;
        ws(p);
        if (peek(p) != ':') return fail(p, "expected ':'");
        p->i++;
        if (!value(p)) return 0;
        ws(p);
        if (peek(p) == ',') {
            p->i++;
            continue;
        }
        if (peek(p) == '}') {
            p->i++;
            return 1;
        }
        return fail(p, "expected ',' or '}'");
    }
}

static int array(P *p) {
    p->i++;  // '['
    ws(p);
    if (peek(p) == ']') {
        p->i++;
        return 1;
    }
    for (;;) {
        if (!value(p)) return 0;
        ws(p);
        if (peek(p) == ',') {
            p->i++;
            continue;
        }
        if (peek(p) == ']') {
            p->i++;
            return 1;
        }
        return fail(p, "expected ',' or ']'");
    }
}

static int value(P *p) {
    ws(p);
    int c = peek(p), ok;
    switch (c) {
    case '{':
    case '[':
        if (++p->depth > MAX_DEPTH) return fail(p, "nested too deeply");
        ok = c == '{' ? object(p) : array(p);
        p->depth--;
        return ok;
    case '"': return string(p);
    case 't': return word(p, "true");
    case 'f': return word(p, "false");
    case 'n': return word(p, "null");
    default: return number(p);
    }
}

static int check(const char *s, size_t n, char *why, size_t why_len, int want_object) {
    P p = {.s = s, .n = n, .why = why, .why_len = why_len};
    if (why && why_len) why[0] = 0;
    ws(&p);
    if (want_object && peek(&p) != '{') return fail(&p, "expected an object");
    if (!value(&p)) return 0;
    ws(&p);
    if (p.i != n) return fail(&p, "trailing characters after the value");
    return 1;
}

int json_check(const char *s, size_t n, char *why, size_t why_len) { return check(s, n, why, why_len, 0); }

int json_check_object(const char *s, size_t n, char *why, size_t why_len) { return check(s, n, why, why_len, 1); }

const char *json_member(const char *s, size_t n, const char *key, size_t *len) {
    if (!json_check_object(s, n, NULL, 0)) return NULL;
    P p = {.s = s, .n = n};
    ws(&p);
    p.i++;  // '{'
    ws(&p);
    if (peek(&p) == '}') return NULL;
    const size_t klen = strlen(key);
    for (;;) {
        ws(&p);
        const size_t k0 = p.i + 1;
        string(&p);
        const size_t k1 = p.i - 1;
        ws(&p);
        p.i++;  // ':'
        ws(&p);
        const size_t v0 = p.i;
        value(&p);
        if (k1 - k0 == klen && !memcmp(s + k0, key, klen)) {
            if (len) *len = p.i - v0;
            return s + v0;
        }
        ws(&p);
        if (peek(&p) != ',') return NULL;
        p.i++;
    }
}

static int hexval(int c) { return is_digit(c) ? c - '0' : (c | 0x20) - 'a' + 10; }

long json_string(const char *v, size_t len, char *out, size_t cap) {
    P p = {.s = v, .n = len};
    if (!string(&p) || p.i != len || cap == 0) return -1;
    size_t o = 0;
    for (size_t i = 1; i + 1 < len; i++) {
        char c = v[i];
        unsigned u = 0;
        char buf[4];
        size_t k = 1;
        if (c == '\\') {
            c = v[++i];
            switch (c) {
            case 'b': buf[0] = '\b'; break;
            case 'f': buf[0] = '\f'; break;
            case 'n': buf[0] = '\n'; break;
            case 'r': buf[0] = '\r'; break;
            case 't': buf[0] = '\t'; break;
            case 'u':
                for (int d = 0; d < 4; d++) u = u * 16 + (unsigned)hexval((unsigned char)v[++i]);
                if (u < 0x80) buf[0] = (char)u;
                else if (u < 0x800) buf[0] = (char)(0xc0 | u >> 6), buf[1] = (char)(0x80 | (u & 0x3f)), k = 2;
                else
                    buf[0] = (char)(0xe0 | u >> 12), buf[1] = (char)(0x80 | ((u >> 6) & 0x3f)),
                    buf[2] = (char)(0x80 | (u & 0x3f)), k = 3;
                break;
            default: buf[0] = c; break;  // \" \\ \/
            }
        } else {
            buf[0] = c;
        }
        if (o + k >= cap) return -1;
        memcpy(out + o, buf, k);
        o += k;
    }
    out[o] = 0;
    return (long)o;
}
