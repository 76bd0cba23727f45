// mil_parse: lexer + recursive-descent parser for MIL text (grammar in mil_parse.h).
//
// Everything the graph points to lives in one arena, so an error anywhere can
// unwind with longjmp to mil_parse() and free the lot: no partial graphs, no
// leaks, and no error plumbing through every grammar rule.
#include "mil/mil_parse.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"

// --- arena ------------------------------------------------------------------

typedef struct ABlock {
    struct ABlock *next;
    size_t used, cap;
    size_t pad_;  // keeps data 16-byte aligned on 64-bit hosts
} ABlock;

struct MilArena {
    ABlock *head;
};

static void *arena_alloc(MilArena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    ABlock *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        b = malloc(sizeof(ABlock) + cap);
        if (!b) return NULL;
        b->next = a->head;
        b->used = 0;
        b->cap = cap;
        a->head = b;
    }
    void *p = (char *)(b + 1) + b->used;
    b->used += n;
    return p;
}

static void arena_free(MilArena *a) {
    if (!a) return;
    for (ABlock *b = a->head, *nx; b; b = nx) {
        nx = b->next;
        free(b);
    }
    free(a);
}

// --- tokens -----------------------------------------------------------------

typedef enum {
    T_EOF, T_IDENT, T_NUM, T_STR,
    T_LPAREN, T_RPAREN, T_LBRACK, T_RBRACK, T_LBRACE, T_RBRACE,
    T_LT, T_GT, T_COMMA, T_EQ, T_SEMI, T_ARROW,
} TokKind;

typedef struct {
    TokKind k;
    size_t off, len;  // span in the source (strings: without the quotes)
    int line, col;
    double num;       // T_NUM
    int is_int;       // T_NUM written without '.', exponent or hex point
} Tok;

#define MAX_LIST_DEPTH 16
#define MAX_TUPLE_DEPTH 8
#define MAX_NUMEL ((int64_t)1 << 40)

typedef struct {
    const char *src;
    size_t len, pos;
    int line, col;
    Tok la[2];
    int nla;
    const char *name;
    MilArena *arena;
    jmp_buf jb;
    // the function being parsed (values are looked up here)
    MilGraphValue *values;
    int n_values, cap_values;
} Parser;

static void fail_at(Parser *p, int line, int col, const char *fmt, ...) __attribute__((format(printf, 4, 5), noreturn));
static void fail_at(Parser *p, int line, int col, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    err_set("%s:%d:%d: %s", p->name, line, col, msg);
    longjmp(p->jb, 1);
}

static void *palloc(Parser *p, size_t n) {
    void *r = arena_alloc(p->arena, n ? n : 1);
    if (!r) fail_at(p, p->line, p->col, "out of memory");
    return r;
}

// Doubles an arena array when full (the old copy is simply abandoned in the arena).
static void *grow(Parser *p, void *arr, size_t elem, int n, int *cap) {
    if (n < *cap) return arr;
    if (*cap > (1 << 28)) fail_at(p, p->line, p->col, "too many elements");
    int nc = *cap ? *cap * 2 : 8;
    void *na = palloc(p, elem * (size_t)nc);
    if (n) memcpy(na, arr, elem * (size_t)n);
    *cap = nc;
    return na;
}

static char *pstrndup(Parser *p, const char *s, size_t n) {
    char *r = palloc(p, n + 1);
    memcpy(r, s, n);
    r[n] = 0;
    return r;
}

// --- lexer ------------------------------------------------------------------

static int is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int is_hex(int c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

static int cur(const Parser *p, size_t ahead) {
    return p->pos + ahead < p->len ? (unsigned char)p->src[p->pos + ahead] : -1;
}

static void advance(Parser *p, size_t n) {
    for (size_t i = 0; i < n && p->pos < p->len; i++) {
        if (p->src[p->pos++] == '\n') {
            p->line++;
            p->col = 1;
        } else {
            p->col++;
        }
    }
}

static const char *char_desc(int c, char *buf, size_t cap) {
    if (c >= 0x21 && c < 0x7f)
        snprintf(buf, cap, "'%c'", c);
    else
        snprintf(buf, cap, "byte 0x%02X", (unsigned)c & 0xffu);
    return buf;
}

// Scans a number at p->pos: [+-] (digits [. digits] [e[+-]digits] | 0x hex [. hex] [p[+-]digits] | inf | nan).
static Tok lex_number(Parser *p, Tok t) {
    size_t s = p->pos, i = s;
    int digits = 0, is_int = 1;
    if (i < p->len && (p->src[i] == '-' || p->src[i] == '+')) i++;
    if (i + 3 <= p->len && (!memcmp(p->src + i, "inf", 3) || !memcmp(p->src + i, "nan", 3))) {
        i += 3;
        digits = 1;
        is_int = 0;
    } else if (i + 1 < p->len && p->src[i] == '0' && (p->src[i + 1] == 'x' || p->src[i + 1] == 'X')) {
        i += 2;
        while (i < p->len && is_hex((unsigned char)p->src[i])) i++, digits++;
        if (i < p->len && p->src[i] == '.') {
            i++, is_int = 0;
            while (i < p->len && is_hex((unsigned char)p->src[i])) i++, digits++;
        }
        if (i < p->len && (p->src[i] == 'p' || p->src[i] == 'P')) {
            i++, is_int = 0;
            if (i < p->len && (p->src[i] == '-' || p->src[i] == '+')) i++;
            if (i >= p->len || !is_digit((unsigned char)p->src[i])) digits = 0;
            while (i < p->len && is_digit((unsigned char)p->src[i])) i++;
        }
    } else {
        while (i < p->len && is_digit((unsigned char)p->src[i])) i++, digits++;
        if (i < p->len && p->src[i] == '.') {
            i++, is_int = 0;
            while (i < p->len && is_digit((unsigned char)p->src[i])) i++, digits++;
        }
        if (digits && i < p->len && (p->src[i] == 'e' || p->src[i] == 'E')) {
            size_t j = i + 1;
            if (j < p->len && (p->src[j] == '-' || p->src[j] == '+')) j++;
            if (j < p->len && is_digit((unsigned char)p->src[j])) {
                i = j, is_int = 0;
                while (i < p->len && is_digit((unsigned char)p->src[i])) i++;
            }
        }
    }
    if (!digits || (i < p->len && (is_alpha((unsigned char)p->src[i]) || is_digit((unsigned char)p->src[i]) ||
                                    p->src[i] == '.'))) {
        size_t e = i;
        while (e < p->len && e - s < 24 && (is_alpha((unsigned char)p->src[e]) || is_digit((unsigned char)p->src[e]) ||
                                            p->src[e] == '.' || p->src[e] == '-' || p->src[e] == '+'))
            e++;
        fail_at(p, t.line, t.col, "malformed number '%.*s'", (int)(e - s), p->src + s);
    }
    char buf[80];
    if (i - s >= sizeof buf) fail_at(p, t.line, t.col, "number too long (%zu characters)", i - s);
    memcpy(buf, p->src + s, i - s);
    buf[i - s] = 0;
    char *end;
    errno = 0;
    double v = strtod(buf, &end);
    if (*end) fail_at(p, t.line, t.col, "malformed number '%s'", buf);
    t.k = T_NUM;
    t.off = s;
    t.len = i - s;
    t.num = v;
    t.is_int = is_int;
    advance(p, i - s);
    return t;
}

static Tok lex(Parser *p) {
    for (;;) {  // whitespace and // comments
        int c = cur(p, 0);
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            advance(p, 1);
        } else if (c == '/' && cur(p, 1) == '/') {
            while (p->pos < p->len && p->src[p->pos] != '\n') advance(p, 1);
        } else {
            break;
        }
    }
    Tok t = {T_EOF, p->pos, 0, p->line, p->col, 0, 0};
    if (p->pos >= p->len) return t;
    int c = cur(p, 0), c1 = cur(p, 1);
    if (is_alpha(c)) {
        size_t i = p->pos;
        while (i < p->len && (is_alpha((unsigned char)p->src[i]) || is_digit((unsigned char)p->src[i]))) i++;
        t.k = T_IDENT;
        t.len = i - p->pos;
        if (t.len > 1024) fail_at(p, t.line, t.col, "identifier too long (%zu characters)", t.len);
        advance(p, t.len);
        return t;
    }
    if (is_digit(c) || ((c == '-' || c == '+') && (is_digit(c1) || c1 == '.' || c1 == 'i' || c1 == 'n')) ||
        (c == '.' && is_digit(c1)))
        return lex_number(p, t);
    if (c == '-' && c1 == '>') {
        t.k = T_ARROW;
        t.len = 2;
        advance(p, 2);
        return t;
    }
    if (c == '"') {
        size_t i = p->pos + 1;
        for (;;) {
            if (i >= p->len || p->src[i] == '\n') fail_at(p, t.line, t.col, "unterminated string");
            if (p->src[i] == '\\') {
                if (i + 1 >= p->len) fail_at(p, t.line, t.col, "unterminated string");
                i += 2;
                continue;
            }
            if (p->src[i] == '"') break;
            i++;
        }
        t.k = T_STR;
        t.off = p->pos + 1;
        t.len = i - p->pos - 1;
        advance(p, i + 1 - p->pos);
        return t;
    }
    static const char punct[] = "()[]{}<>,=;";
    static const TokKind kinds[] = {T_LPAREN, T_RPAREN, T_LBRACK, T_RBRACK, T_LBRACE, T_RBRACE,
                                    T_LT,     T_GT,     T_COMMA,  T_EQ,     T_SEMI};
    const char *q = c > 0 ? strchr(punct, c) : NULL;
    if (q) {
        t.k = kinds[q - punct];
        t.len = 1;
        advance(p, 1);
        return t;
    }
    char d[32];
    fail_at(p, t.line, t.col, "unexpected character %s", char_desc(c, d, sizeof d));
}

static Tok *peek(Parser *p, int i) {
    while (p->nla <= i) p->la[p->nla++] = lex(p);
    return &p->la[i];
}

static Tok next(Parser *p) {
    peek(p, 0);
    Tok t = p->la[0];
    p->la[0] = p->la[1];
    p->nla--;
    return t;
}

static const char *kind_text(TokKind k) {
    switch (k) {
    case T_EOF: return "end of input";
    case T_IDENT: return "a name";
    case T_NUM: return "a number";
    case T_STR: return "a string";
    case T_LPAREN: return "'('";
    case T_RPAREN: return "')'";
    case T_LBRACK: return "'['";
    case T_RBRACK: return "']'";
    case T_LBRACE: return "'{'";
    case T_RBRACE: return "'}'";
    case T_LT: return "'<'";
    case T_GT: return "'>'";
    case T_COMMA: return "','";
    case T_EQ: return "'='";
    case T_SEMI: return "';'";
    case T_ARROW: return "'->'";
    }
    return "?";
}

// How a token reads in "found ..." (quoted source text, truncated).
static const char *tok_desc(const Parser *p, const Tok *t, char *buf, size_t cap) {
    switch (t->k) {
    case T_EOF: return "end of input";
    case T_IDENT:
    case T_NUM: snprintf(buf, cap, "'%.*s'", (int)(t->len > 40 ? 40 : t->len), p->src + t->off); return buf;
    case T_STR:
        snprintf(buf, cap, "string \"%.*s\"%s", (int)(t->len > 40 ? 40 : t->len), p->src + t->off,
                 t->len > 40 ? "..." : "");
        return buf;
    default: return kind_text(t->k);
    }
}

static void fail_expected(Parser *p, const Tok *t, const char *what) __attribute__((noreturn));
static void fail_expected(Parser *p, const Tok *t, const char *what) {
    char d[96];
    fail_at(p, t->line, t->col, "expected %s, found %s", what, tok_desc(p, t, d, sizeof d));
}

static Tok expect(Parser *p, TokKind k, const char *what) {
    Tok *t = peek(p, 0);
    if (t->k != k) fail_expected(p, t, what);
    return next(p);
}

static int accept(Parser *p, TokKind k) {
    if (peek(p, 0)->k != k) return 0;
    next(p);
    return 1;
}

static int tok_is(const Parser *p, const Tok *t, const char *word) {
    size_t n = strlen(word);
    return t->k == T_IDENT && t->len == n && !memcmp(p->src + t->off, word, n);
}

static char *tok_str(Parser *p, const Tok *t) { return pstrndup(p, p->src + t->off, t->len); }

// Decodes the escapes of a string token (\" \\ \n \t; anything else is an error).
static char *tok_string_value(Parser *p, const Tok *t) {
    char *r = palloc(p, t->len + 1);
    size_t n = 0;
    for (size_t i = 0; i < t->len; i++) {
        char c = p->src[t->off + i];
        if (c == '\\') {
            char e = p->src[t->off + ++i];
            c = e == 'n' ? '\n' : e == 't' ? '\t' : e == '"' ? '"' : e == '\\' ? '\\' : 0;
            if (!c) fail_at(p, t->line, t->col + (int)i, "unknown escape sequence in string (allowed: \\\" \\\\ \\n \\t)");
        } else if (c == 0) {
            fail_at(p, t->line, t->col + 1 + (int)i, "NUL byte in string");
        }
        r[n++] = c;
    }
    r[n] = 0;
    return r;
}

// --- types ------------------------------------------------------------------

static const struct { const char *name; MilDt dt; } g_dtypes[] = {
    {"fp16", MIL_DT_FP16},   {"fp32", MIL_DT_FP32},   {"fp64", MIL_DT_FP64},   {"int8", MIL_DT_INT8},
    {"uint8", MIL_DT_UINT8}, {"int16", MIL_DT_INT16}, {"uint16", MIL_DT_UINT16}, {"int32", MIL_DT_INT32},
    {"uint32", MIL_DT_UINT32}, {"int64", MIL_DT_INT64}, {"uint64", MIL_DT_UINT64}, {"bool", MIL_DT_BOOL},
    {"string", MIL_DT_STRING},
};

const char *mil_dt_name(MilDt dt) {
    for (size_t i = 0; i < sizeof g_dtypes / sizeof g_dtypes[0]; i++)
        if (g_dtypes[i].dt == dt) return g_dtypes[i].name;
    return "invalid";
}

int mil_dt_is_float(MilDt dt) { return dt == MIL_DT_FP16 || dt == MIL_DT_FP32 || dt == MIL_DT_FP64; }
int mil_dt_is_int(MilDt dt) { return dt >= MIL_DT_INT8 && dt <= MIL_DT_UINT64; }

size_t mil_type_numel(const MilType *t) {
    size_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= (size_t)t->dims[i];
    return n;
}

int mil_type_equal(const MilType *a, const MilType *b) {
    if (a->dtype != b->dtype || a->rank != b->rank) return 0;
    for (int i = 0; i < a->rank; i++)
        if (a->dims[i] != b->dims[i]) return 0;
    return 1;
}

const char *mil_type_str(const MilType *t, char *buf, size_t cap) {
    if (t->rank == 0) {
        snprintf(buf, cap, "%s", mil_dt_name(t->dtype));
        return buf;
    }
    size_t n = (size_t)snprintf(buf, cap, "tensor<%s, [", mil_dt_name(t->dtype));
    for (int i = 0; i < t->rank && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", (long long)t->dims[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]>");
    return buf;
}

static MilDt dtype_of(const Parser *p, const Tok *t) {
    if (t->k != T_IDENT) return MIL_DT_INVALID;
    for (size_t i = 0; i < sizeof g_dtypes / sizeof g_dtypes[0]; i++)
        if (tok_is(p, t, g_dtypes[i].name)) return g_dtypes[i].dt;
    return MIL_DT_INVALID;
}

static MilDt parse_dtype(Parser *p) {
    Tok *t = peek(p, 0);
    MilDt dt = dtype_of(p, t);
    if (!dt) fail_expected(p, t, "a dtype (fp16, fp32, int32, bool, string, uint64, ...)");
    next(p);
    return dt;
}

// tensor<DTYPE, [d0, d1, ...]>   or a scalar dtype keyword
static MilType parse_type(Parser *p) {
    MilType ty = {0};
    Tok *t = peek(p, 0);
    if (tok_is(p, t, "tensor")) {
        next(p);
        expect(p, T_LT, "'<' after 'tensor'");
        ty.dtype = parse_dtype(p);
        expect(p, T_COMMA, "',' after the tensor dtype");
        expect(p, T_LBRACK, "'[' starting the tensor shape");
        int64_t numel = 1;
        if (!accept(p, T_RBRACK)) {
            for (;;) {
                Tok *d = peek(p, 0);
                if (d->k != T_NUM || !d->is_int || d->num < 1 || d->num > 2147483647.0)
                    fail_expected(p, d, "a dimension (an integer >= 1)");
                if (ty.rank == MIL_TYPE_MAX_RANK) fail_at(p, d->line, d->col, "tensor rank above %d", MIL_TYPE_MAX_RANK);
                int64_t dim = (int64_t)d->num;
                if (numel > MAX_NUMEL / dim) fail_at(p, d->line, d->col, "tensor has more than 2^40 elements");
                ty.dims[ty.rank++] = dim;
                numel *= dim;
                next(p);
                if (accept(p, T_RBRACK)) break;
                expect(p, T_COMMA, "',' or ']' in the tensor shape");
            }
        }
        expect(p, T_GT, "'>' closing the tensor type");
        return ty;
    }
    ty.dtype = dtype_of(p, t);
    if (!ty.dtype) fail_expected(p, t, "a type (tensor<...> or fp16, fp32, int32, bool, string, ...)");
    next(p);
    return ty;
}

// --- literals ---------------------------------------------------------------

typedef struct {
    double *v;
    int n, cap;
} NumBuf;

// One element of a literal of dtype dt: a number (ints exact and in range), true/false, inf/nan.
static double parse_elem(Parser *p, MilDt dt) {
    Tok *t = peek(p, 0);
    if (dt == MIL_DT_BOOL) {
        if (tok_is(p, t, "true")) return next(p), 1.0;
        if (tok_is(p, t, "false")) return next(p), 0.0;
        fail_expected(p, t, "true or false");
    }
    if (dt == MIL_DT_STRING) fail_expected(p, t, "a string");
    if (mil_dt_is_float(dt)) {
        if (tok_is(p, t, "inf")) return next(p), INFINITY;
        if (tok_is(p, t, "nan")) return next(p), NAN;
        if (t->k != T_NUM) fail_expected(p, t, "a number");
        return next(p).num;
    }
    // integers
    if (t->k != T_NUM || !t->is_int) fail_expected(p, t, "an integer");
    double v = t->num, lo, hi;
    switch (dt) {
    case MIL_DT_INT8: lo = -128, hi = 127; break;
    case MIL_DT_UINT8: lo = 0, hi = 255; break;
    case MIL_DT_INT16: lo = -32768, hi = 32767; break;
    case MIL_DT_UINT16: lo = 0, hi = 65535; break;
    case MIL_DT_INT32: lo = -2147483648.0, hi = 2147483647.0; break;
    case MIL_DT_UINT32: lo = 0, hi = 4294967295.0; break;
    case MIL_DT_UINT64: lo = 0, hi = 9007199254740992.0; break;
    default: lo = -9007199254740992.0, hi = 9007199254740992.0; break;
    }
    if (!(v >= lo && v <= hi)) {
        char d[96];
        fail_at(p, t->line, t->col, "expected %s value in [%.0f, %.0f], found %s", mil_dt_name(dt), lo, hi,
                tok_desc(p, t, d, sizeof d));
    }
    next(p);
    return v;
}

// [e, e, ...] possibly nested ([[1,2],[3,4]]), flattened row-major into nb.
static void parse_list(Parser *p, MilDt dt, NumBuf *nb, size_t limit, int depth) {
    Tok open = expect(p, T_LBRACK, "'['");
    if (depth >= MAX_LIST_DEPTH) fail_at(p, open.line, open.col, "lists nested deeper than %d", MAX_LIST_DEPTH);
    if (accept(p, T_RBRACK)) return;
    for (;;) {
        if (peek(p, 0)->k == T_LBRACK) {
            parse_list(p, dt, nb, limit, depth + 1);
        } else {
            Tok at = *peek(p, 0);
            double v = parse_elem(p, dt);
            if ((size_t)nb->n >= limit)
                fail_at(p, at.line, at.col, "more values than the %zu the tensor type holds", limit);
            nb->v = grow(p, nb->v, sizeof(double), nb->n, &nb->cap);
            nb->v[nb->n++] = v;
        }
        if (accept(p, T_RBRACK)) return;
        expect(p, T_COMMA, "',' or ']' in the value list");
    }
}

static void parse_blobfile(Parser *p, MilLiteral *lit) {
    next(p);  // BLOBFILE
    expect(p, T_LPAREN, "'(' after BLOBFILE");
    int have_path = 0, have_off = 0;
    for (;;) {
        Tok key = expect(p, T_IDENT, "'path' or 'offset' in BLOBFILE(...)");
        expect(p, T_EQ, "'=' after the BLOBFILE argument name");
        Tok v = *peek(p, 0);
        MilType ty = {0};
        if (tok_is(p, &v, "tensor")) {
            ty = parse_type(p);  // older dialect: tensor<string, []>("..."), tensor<uint64, []>(64)
        } else {
            ty.dtype = dtype_of(p, &v);
            if (!ty.dtype) fail_expected(p, &v, "string(\"...\") or uint64(N)");
            next(p);
        }
        if (ty.rank != 0) fail_at(p, v.line, v.col, "expected a scalar type in BLOBFILE(...)");
        expect(p, T_LPAREN, "'(' after the literal type");
        if (tok_is(p, &key, "path")) {
            if (ty.dtype != MIL_DT_STRING) fail_at(p, key.line, key.col, "BLOBFILE path must be a string");
            Tok s = expect(p, T_STR, "the blob path string");
            lit->blob_path = tok_string_value(p, &s);
            have_path = 1;
        } else if (tok_is(p, &key, "offset")) {
            if (!mil_dt_is_int(ty.dtype)) fail_at(p, key.line, key.col, "BLOBFILE offset must be an integer (uint64)");
            lit->blob_offset = (uint64_t)parse_elem(p, MIL_DT_UINT64);
            have_off = 1;
        } else {
            char d[96];
            fail_at(p, key.line, key.col, "expected 'path' or 'offset' in BLOBFILE(...), found %s",
                    tok_desc(p, &key, d, sizeof d));
        }
        expect(p, T_RPAREN, "')' closing the literal");
        if (accept(p, T_RPAREN)) break;
        expect(p, T_COMMA, "',' or ')' in BLOBFILE(...)");
    }
    if (!have_path || !have_off)
        fail_at(p, lit->line, lit->col, "BLOBFILE needs both path and offset (missing %s)",
                have_path ? "offset" : "path");
}

// fp16(-1) | string("x") | tensor<int32, [4]>([0,0,0,0]) | tensor<fp16, [..]>(BLOBFILE(...)) | tensor<bool, []>(false)
static const MilLiteral *parse_literal(Parser *p) {
    MilLiteral *lit = palloc(p, sizeof *lit);
    memset(lit, 0, sizeof *lit);
    Tok *t = peek(p, 0);
    lit->line = t->line;
    lit->col = t->col;
    lit->type = parse_type(p);
    expect(p, T_LPAREN, "'(' after the literal type");
    size_t numel = mil_type_numel(&lit->type);
    Tok *c = peek(p, 0);
    if (tok_is(p, c, "BLOBFILE")) {
        if (lit->type.dtype == MIL_DT_STRING || lit->type.dtype == MIL_DT_BOOL)
            fail_at(p, c->line, c->col, "BLOBFILE needs a numeric tensor type");
        lit->kind = MIL_LIT_BLOB;
        parse_blobfile(p, lit);
    } else if (lit->type.dtype == MIL_DT_STRING) {
        if (lit->type.rank != 0) fail_at(p, lit->line, lit->col, "string tensors are not supported");
        Tok s = expect(p, T_STR, "a string");
        lit->kind = MIL_LIT_STRING;
        lit->str = tok_string_value(p, &s);
    } else {
        lit->kind = MIL_LIT_NUMBERS;
        NumBuf nb = {0};
        if (c->k == T_LBRACK) {
            Tok at = *c;
            parse_list(p, lit->type.dtype, &nb, numel, 0);
            if ((size_t)nb.n != numel) {
                char ts[128];
                fail_at(p, at.line, at.col, "expected %zu values for %s, found %d", numel,
                        mil_type_str(&lit->type, ts, sizeof ts), nb.n);
            }
        } else {
            if (lit->type.rank != 0) fail_expected(p, c, "'[' starting the tensor values");
            nb.v = palloc(p, sizeof(double));
            nb.v[0] = parse_elem(p, lit->type.dtype);
            nb.n = 1;
        }
        lit->num = nb.v;
        lit->n = (size_t)nb.n;
    }
    expect(p, T_RPAREN, "')' closing the literal");
    return lit;
}

// --- values and arguments ---------------------------------------------------

static int find_value(const Parser *p, const char *s, size_t n) {
    for (int i = p->n_values - 1; i >= 0; i--)
        if (strlen(p->values[i].name) == n && !memcmp(p->values[i].name, s, n)) return i;
    return -1;
}

static int define_value(Parser *p, const Tok *name, MilType ty, int op) {
    if (find_value(p, p->src + name->off, name->len) >= 0) {
        const MilGraphValue *old = &p->values[find_value(p, p->src + name->off, name->len)];
        fail_at(p, name->line, name->col, "'%.*s' is already defined (at %d:%d)", (int)name->len, p->src + name->off,
                old->line, old->col);
    }
    p->values = grow(p, p->values, sizeof(MilGraphValue), p->n_values, &p->cap_values);
    MilGraphValue *v = &p->values[p->n_values];
    v->name = tok_str(p, name);
    v->type = ty;
    v->op = op;
    v->line = name->line;
    v->col = name->col;
    return p->n_values++;
}

static int starts_literal(Parser *p) {
    Tok *t = peek(p, 0);
    if (t->k != T_IDENT) return 0;
    if (tok_is(p, t, "tensor")) return peek(p, 1)->k == T_LT;
    return dtype_of(p, t) && peek(p, 1)->k == T_LPAREN;
}

static MilArgValue parse_value(Parser *p, int depth) {
    MilArgValue v;
    memset(&v, 0, sizeof v);
    Tok *t = peek(p, 0);
    v.line = t->line;
    v.col = t->col;
    if (t->k == T_LPAREN) {
        if (depth >= MAX_TUPLE_DEPTH) fail_at(p, t->line, t->col, "tuples nested deeper than %d", MAX_TUPLE_DEPTH);
        next(p);
        v.kind = MIL_ARG_TUPLE;
        MilArgValue *items = NULL;
        int cap = 0;
        if (peek(p, 0)->k == T_RPAREN) fail_expected(p, peek(p, 0), "a value in the tuple");
        for (;;) {
            items = grow(p, items, sizeof *items, v.n_items, &cap);
            items[v.n_items++] = parse_value(p, depth + 1);
            if (accept(p, T_RPAREN)) break;
            expect(p, T_COMMA, "',' or ')' in the tuple");
        }
        v.items = items;
        return v;
    }
    if (starts_literal(p)) {
        v.kind = MIL_ARG_LIT;
        v.lit = parse_literal(p);
        return v;
    }
    if (t->k == T_IDENT) {
        int id = find_value(p, p->src + t->off, t->len);
        if (id < 0) fail_at(p, t->line, t->col, "undefined value '%.*s'", (int)(t->len > 64 ? 64 : t->len), p->src + t->off);
        next(p);
        v.kind = MIL_ARG_REF;
        v.ref = id;
        return v;
    }
    fail_expected(p, t, "a value (a name, a typed literal such as int32(1), or a tuple)");
}

// name=value, name=value ... up to `close`; the opening bracket is already consumed.
static void parse_args(Parser *p, TokKind close, const char *what, const MilArg **out, int *n_out) {
    MilArg *args = NULL;
    int n = 0, cap = 0;
    if (!accept(p, close)) {
        for (;;) {
            Tok key = expect(p, T_IDENT, what);
            for (int i = 0; i < n; i++)
                if (strlen(args[i].name) == key.len && !memcmp(args[i].name, p->src + key.off, key.len))
                    fail_at(p, key.line, key.col, "argument '%s' given twice", args[i].name);
            expect(p, T_EQ, "'=' after the argument name");
            args = grow(p, args, sizeof *args, n, &cap);
            args[n].name = tok_str(p, &key);
            args[n].line = key.line;
            args[n].col = key.col;
            args[n].v = parse_value(p, 0);
            n++;
            if (accept(p, close)) break;
            expect(p, T_COMMA, close == T_RPAREN ? "',' or ')' after an argument" : "',' or ']' after an attribute");
        }
    }
    *out = args;
    *n_out = n;
}

// --- functions and program --------------------------------------------------

// TYPE NAME = OP(args)[attrs];
static void parse_stmt(Parser *p, MilGraphOp **ops, int *n_ops, int *cap_ops) {
    MilType ty = parse_type(p);
    Tok name = expect(p, T_IDENT, "the name of the value being defined");
    expect(p, T_EQ, "'=' after the value name");
    Tok opname = expect(p, T_IDENT, "an op name");
    expect(p, T_LPAREN, "'(' after the op name");
    MilGraphOp op;
    memset(&op, 0, sizeof op);
    op.op = tok_str(p, &opname);
    op.line = opname.line;
    op.col = opname.col;
    parse_args(p, T_RPAREN, "an argument name", &op.args, &op.n_args);
    if (accept(p, T_LBRACK)) parse_args(p, T_RBRACK, "an attribute name", &op.attrs, &op.n_attrs);
    expect(p, T_SEMI, "';' at the end of the statement");
    // defined after its arguments are parsed: an op cannot use its own result
    op.result = define_value(p, &name, ty, *n_ops);
    *ops = grow(p, *ops, sizeof op, *n_ops, cap_ops);
    (*ops)[(*n_ops)++] = op;
}

static MilGraphFunc parse_func(Parser *p) {
    MilGraphFunc f;
    memset(&f, 0, sizeof f);
    Tok kw = next(p);  // 'func'
    f.line = kw.line;
    f.col = kw.col;
    Tok name = expect(p, T_IDENT, "the function name");
    f.name = tok_str(p, &name);
    if (accept(p, T_LT)) {
        Tok os = expect(p, T_IDENT, "an opset name such as ios18");
        f.opset = tok_str(p, &os);
        expect(p, T_GT, "'>' after the opset");
    }
    p->values = NULL;
    p->n_values = p->cap_values = 0;
    expect(p, T_LPAREN, "'(' starting the function inputs");
    int *inputs = NULL, cap_in = 0;
    if (!accept(p, T_RPAREN)) {
        for (;;) {
            MilType ty = parse_type(p);
            Tok in = expect(p, T_IDENT, "the input name");
            inputs = grow(p, inputs, sizeof(int), f.n_inputs, &cap_in);
            inputs[f.n_inputs++] = define_value(p, &in, ty, -1);
            if (accept(p, T_RPAREN)) break;
            expect(p, T_COMMA, "',' or ')' after a function input");
        }
    }
    expect(p, T_LBRACE, "'{' starting the function body");
    MilGraphOp *ops = NULL;
    int cap_ops = 0;
    while (!accept(p, T_RBRACE)) {
        if (peek(p, 0)->k == T_EOF) fail_expected(p, peek(p, 0), "a statement or '}'");
        parse_stmt(p, &ops, &f.n_ops, &cap_ops);
    }
    expect(p, T_ARROW, "'->' and the function outputs after '}'");
    expect(p, T_LPAREN, "'(' starting the output list");
    int *outputs = NULL, cap_out = 0;
    for (;;) {
        Tok o = expect(p, T_IDENT, "an output name");
        int id = find_value(p, p->src + o.off, o.len);
        if (id < 0) fail_at(p, o.line, o.col, "undefined output '%.*s'", (int)(o.len > 64 ? 64 : o.len), p->src + o.off);
        outputs = grow(p, outputs, sizeof(int), f.n_outputs, &cap_out);
        outputs[f.n_outputs++] = id;
        if (accept(p, T_RPAREN)) break;
        expect(p, T_COMMA, "',' or ')' in the output list");
    }
    expect(p, T_SEMI, "';' after the output list");
    f.inputs = inputs;
    f.outputs = outputs;
    f.ops = ops;
    f.values = p->values;
    f.n_values = p->n_values;
    return f;
}

static int is_string_type(const MilType *t) { return t->dtype == MIL_DT_STRING && t->rank == 0; }

// dict<string, string>({{"k", "v"}, ...})
static void parse_dict(Parser *p, MilGraph *g) {
    Tok kw = *peek(p, 0);
    if (!tok_is(p, &kw, "dict")) fail_expected(p, &kw, "dict<string, string>(...)");
    next(p);
    expect(p, T_LT, "'<' after dict");
    MilType kt = parse_type(p);
    expect(p, T_COMMA, "',' between the dict key and value types");
    MilType vt = parse_type(p);
    expect(p, T_GT, "'>' closing the dict type");
    if (!is_string_type(&kt) || !is_string_type(&vt))
        fail_at(p, kw.line, kw.col, "expected dict<string, string>");
    expect(p, T_LPAREN, "'(' after the dict type");
    expect(p, T_LBRACE, "'{' starting the dict entries");
    const char **keys = NULL, **vals = NULL;
    int n = 0, cap_k = 0, cap_v = 0;
    if (!accept(p, T_RBRACE)) {
        for (;;) {
            expect(p, T_LBRACE, "'{' starting a dict entry");
            Tok k = expect(p, T_STR, "a key string");
            expect(p, T_COMMA, "',' between key and value");
            Tok v = expect(p, T_STR, "a value string");
            expect(p, T_RBRACE, "'}' closing the dict entry");
            keys = grow(p, keys, sizeof *keys, n, &cap_k);
            vals = grow(p, vals, sizeof *vals, n, &cap_v);
            keys[n] = tok_string_value(p, &k);
            vals[n] = tok_string_value(p, &v);
            n++;
            if (accept(p, T_RBRACE)) break;
            expect(p, T_COMMA, "',' or '}' after a dict entry");
        }
    }
    expect(p, T_RPAREN, "')' closing the dict");
    g->info_keys = keys;
    g->info_vals = vals;
    g->n_info = n;
}

static void parse_program(Parser *p, MilGraph *g) {
    Tok *t = peek(p, 0);
    if (!tok_is(p, t, "program")) fail_expected(p, t, "'program'");
    next(p);
    expect(p, T_LPAREN, "'(' after 'program'");
    Tok ver = expect(p, T_NUM, "the program version, e.g. 1.3");
    g->version = tok_str(p, &ver);
    expect(p, T_RPAREN, "')' after the program version");
    if (accept(p, T_LBRACK)) {  // program attributes: buildInfo
        for (;;) {
            Tok key = expect(p, T_IDENT, "an attribute name such as buildInfo");
            (void)key;
            expect(p, T_EQ, "'=' after the attribute name");
            parse_dict(p, g);
            if (accept(p, T_RBRACK)) break;
            expect(p, T_COMMA, "',' or ']' after a program attribute");
        }
    }
    expect(p, T_LBRACE, "'{' starting the program body");
    MilGraphFunc *funcs = NULL;
    int cap = 0, n = 0;
    for (;;) {
        Tok *f = peek(p, 0);
        if (f->k == T_RBRACE && n > 0) break;
        if (!tok_is(p, f, "func")) fail_expected(p, f, n ? "'func' or '}'" : "'func'");
        MilGraphFunc fn = parse_func(p);
        for (int i = 0; i < n; i++)
            if (!strcmp(funcs[i].name, fn.name)) fail_at(p, fn.line, fn.col, "function '%s' defined twice", fn.name);
        funcs = grow(p, funcs, sizeof *funcs, n, &cap);
        funcs[n++] = fn;
    }
    next(p);  // '}'
    expect(p, T_EOF, "end of input after the program's closing '}'");
    g->funcs = funcs;
    g->n_funcs = n;
}

int mil_parse(const char *text, size_t len, const char *src_name, MilGraph *g) {
    memset(g, 0, sizeof *g);
    Parser p;
    memset(&p, 0, sizeof p);
    p.src = text ? text : "";
    p.len = text ? len : 0;
    p.line = p.col = 1;
    p.name = src_name ? src_name : "mil";
    p.arena = calloc(1, sizeof *p.arena);
    if (!p.arena) return err_set("%s: out of memory", p.name);
    if (setjmp(p.jb)) {
        arena_free(p.arena);
        memset(g, 0, sizeof *g);
        return -1;
    }
    MilGraph tmp;
    memset(&tmp, 0, sizeof tmp);
    parse_program(&p, &tmp);
    *g = tmp;
    g->arena = p.arena;
    return 0;
}

void mil_graph_free(MilGraph *g) {
    if (!g) return;
    arena_free(g->arena);
    memset(g, 0, sizeof *g);
}

const MilGraphFunc *mil_graph_func(const MilGraph *g, const char *name) {
    for (int i = 0; i < g->n_funcs; i++)
        if (!strcmp(g->funcs[i].name, name)) return &g->funcs[i];
    return NULL;
}

const MilArg *mil_op_arg(const MilGraphOp *op, const char *name) {
    for (int i = 0; i < op->n_args; i++)
        if (!strcmp(op->args[i].name, name)) return &op->args[i];
    return NULL;
}

const MilArg *mil_op_attr(const MilGraphOp *op, const char *name) {
    for (int i = 0; i < op->n_attrs; i++)
        if (!strcmp(op->attrs[i].name, name)) return &op->attrs[i];
    return NULL;
}
