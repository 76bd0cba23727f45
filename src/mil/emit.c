// emit: MIL text builder (see emit.h). Shapes are inferred here, never taken
// from the caller, and the first error sticks.
#include "mil/emit.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/fp16.h"

// ---------------------------------------------------------------------------------------------
// errors and text

static MilVal fail(MilEmit *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static MilVal fail(MilEmit *e, const char *fmt, ...) {
    if (!e->failed) {
        char msg[768];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        err_set("mil emit: %s", msg);
        e->failed = 1;
    }
    return MIL_NONE;
}

static void put(MilEmit *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(MilEmit *e, const char *fmt, ...) {
    if (e->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        const size_t room = e->cap - e->len;
        const int n = vsnprintf(e->body ? e->body + e->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            fail(e, "formatting failed");
            return;
        }
        if ((size_t)n < room) {
            e->len += (size_t)n;
            return;
        }
        size_t cap = e->cap ? e->cap : 4096;
        while (cap - e->len <= (size_t)n) cap *= 2;
        char *b = realloc(e->body, cap);
        if (!b) {
            fail(e, "out of memory for the program text (%zu bytes)", cap);
            return;
        }
        e->body = b;
        e->cap = cap;
    }
}

static const char *dt_name(MilDtype dt) {
    switch (dt) {
    case MIL_FP16: return "fp16";
    case MIL_FP32: return "fp32";
    case MIL_INT32: return "int32";
    case MIL_BOOL: return "bool";
    case MIL_STRING: return "string";
    }
    return "?";
}

// "tensor<fp16, [1, 2]>", or for scalars "fp16" (ios18) / "tensor<fp16, []>" (ios16)
static void put_type(MilEmit *e, MilDtype dt, int rank, const int *shape) {
    if (rank == 0 && e->dialect == MIL_DIALECT_IOS18) {
        put(e, "%s", dt_name(dt));
        return;
    }
    put(e, "tensor<%s, [", dt_name(dt));
    for (int i = 0; i < rank; i++) put(e, i ? ", %d" : "%d", shape[i]);
    put(e, "]>");
}

// A scalar literal of type dt: "fp16(0.5)" / "tensor<fp16, []>(0.5)".
static void put_scalar_open(MilEmit *e, MilDtype dt) {
    if (e->dialect == MIL_DIALECT_IOS18) put(e, "%s(", dt_name(dt));
    else put(e, "tensor<%s, []>(", dt_name(dt));
}

static void put_string_lit(MilEmit *e, const char *s) {
    put_scalar_open(e, MIL_STRING);
    put(e, "\"%s\")", s);
}

static const char *eq(const MilEmit *e) { return e->dialect == MIL_DIALECT_IOS18 ? "=" : " = "; }

// The shortest fixed-notation decimal (no exponent: the tools that write the
// MIL the ANE is known to compile never use one) that parses back (strtof) to
// exactly the fp16-rounded value; every fp16 value has one within 24 decimals.
static void fmt_half(char *out, size_t n, float v) {
    const float f = fp16_to_f32(fp16_from_f32(v));
    for (int p = 1; p <= 25; p++) {
        snprintf(out, n, "%.*f", p, (double)f);
        if (strtof(out, NULL) == f) break;
    }
    // drop trailing zeros past the first decimal (1.500 -> 1.5)
    char *dot = strchr(out, '.');
    if (dot) {
        char *end = out + strlen(out) - 1;
        while (end > dot + 1 && *end == '0') *end-- = 0;
    }
}

// Opens the name attribute: [name=string("NAME") (ios18) or [name = tensor<string, []>("NAME"); the caller closes it
static void put_name_attr(MilEmit *e, const char *name) {
    put(e, "[name%s", eq(e));
    put_string_lit(e, name);
}

// ---------------------------------------------------------------------------------------------
// values

static int valid_ident(const char *s) {
    if (!s || !*s || strlen(s) >= MIL_NAME_MAX) return 0;
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_')) return 0;
    for (const char *p = s + 1; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return 0;
    return 1;
}

const MilValue *mil_emit_value(const MilEmit *e, MilVal v) {
    return (v >= 0 && v < e->n_vals) ? &e->vals[v] : NULL;
}

int mil_emit_dim(const MilEmit *e, MilVal v, int i) {
    const MilValue *x = mil_emit_value(e, v);
    if (!x) return -1;
    if (i < 0) i += x->rank;
    return (i >= 0 && i < x->rank) ? x->shape[i] : -1;
}

// Registers a new value; name NULL -> generated. Returns MIL_NONE on error.
static MilVal new_value(MilEmit *e, const char *name, MilDtype dt, int rank, const int *shape) {
    if (e->failed) return MIL_NONE;
    char auto_name[MIL_NAME_MAX];
    if (!name) {
        snprintf(auto_name, sizeof auto_name, "v_%d", e->auto_id++);
        name = auto_name;
    }
    if (!valid_ident(name)) return fail(e, "'%s' is not a valid MIL identifier (letters, digits, _; < %d chars)",
                                        name, MIL_NAME_MAX);
    for (int i = 0; i < e->n_vals; i++)
        if (strcmp(e->vals[i].name, name) == 0) return fail(e, "name '%s' is defined twice", name);
    if (rank < 0 || rank > MIL_MAX_RANK) return fail(e, "%s: rank %d out of range [0, %d]", name, rank, MIL_MAX_RANK);
    for (int i = 0; i < rank; i++)
        if (shape[i] <= 0) return fail(e, "%s: dimension %d is %d (must be positive)", name, i, shape[i]);
    if (e->n_vals == e->cap_vals) {
        int cap = e->cap_vals ? 2 * e->cap_vals : 64;
        MilValue *v = realloc(e->vals, (size_t)cap * sizeof *v);
        if (!v) return fail(e, "out of memory for values");
        e->vals = v;
        e->cap_vals = cap;
    }
    MilValue *v = &e->vals[e->n_vals];
    memset(v, 0, sizeof *v);
    memcpy(v->name, name, strlen(name) + 1);  // valid_ident checked the length
    v->dt = dt;
    v->rank = rank;
    for (int i = 0; i < rank; i++) v->shape[i] = shape[i];
    return e->n_vals++;
}

// Checks an operand handle; reports which op got a bad one.
static const MilValue *operand(MilEmit *e, MilVal v, const char *op) {
    if (e->failed) return NULL;
    const MilValue *x = mil_emit_value(e, v);
    if (!x) fail(e, "%s: invalid operand handle %d", op, v);
    return x;
}

// Writes "        TYPE NAME = " for value r.
static void put_lhs(MilEmit *e, MilVal r) {
    const MilValue *v = &e->vals[r];
    put(e, "        ");
    put_type(e, v->dt, v->rank, v->shape);
    put(e, " %s = ", v->name);
}

// A derived const name "<base>_<suffix>" (base NULL -> generated) in a buffer of
// NBUF; new_value rejects it if it is longer than an identifier may be.
#define NBUF (2 * MIL_NAME_MAX)
static void sub_name(MilEmit *e, char *out, const char *base, const char *suffix) {
    if (base) snprintf(out, NBUF, "%.*s_%s", MIL_NAME_MAX, base, suffix);
    else snprintf(out, NBUF, "c_%d_%s", e->auto_id++, suffix);
}

void mil_emit_init(MilEmit *e, MilDialect dialect) {
    memset(e, 0, sizeof *e);
    e->dialect = dialect;
    e->bool_const[0] = e->bool_const[1] = MIL_NONE;
}

void mil_emit_free(MilEmit *e) {
    free(e->body);
    free(e->vals);
    for (int i = 0; i < e->n_blobs; i++) free(e->blobs[i].data);
    free(e->blobs);
    memset(e, 0, sizeof *e);
}

// ---------------------------------------------------------------------------------------------
// inputs and constants

MilVal mil_emit_input(MilEmit *e, const char *name, int rank, const int *shape) {
    if (e->n_inputs >= (int)(sizeof e->inputs / sizeof e->inputs[0])) return fail(e, "too many function inputs");
    MilVal v = new_value(e, name, MIL_FP16, rank, shape);
    if (v != MIL_NONE) e->inputs[e->n_inputs++] = v;
    return v;
}

// "        TYPE NAME = const()[name=string("NAME"), val=" ... caller writes the literal, then "];\n"
static void put_const_head(MilEmit *e, MilVal r) {
    put_lhs(e, r);
    put(e, "const()");
    put_name_attr(e, e->vals[r].name);
    put(e, ", val%s", eq(e));
}

MilVal mil_emit_const_fp16(MilEmit *e, const char *name, float v) {
    if (!isfinite(v) || fabsf(v) > 65504.0f)
        return fail(e, "fp16 constant %g does not fit fp16 (largest finite 65504)", (double)v);
    MilVal r = new_value(e, name, MIL_FP16, 0, NULL);
    if (r == MIL_NONE) return r;
    char lit[48];
    fmt_half(lit, sizeof lit, v);
    put_const_head(e, r);
    put_scalar_open(e, MIL_FP16);
    put(e, "%s)];\n", lit);
    return r;
}

MilVal mil_emit_const_i32(MilEmit *e, const char *name, int v) {
    MilVal r = new_value(e, name, MIL_INT32, 0, NULL);
    if (r == MIL_NONE) return r;
    put_const_head(e, r);
    put_scalar_open(e, MIL_INT32);
    put(e, "%d)];\n", v);
    return r;
}

MilVal mil_emit_const_bool(MilEmit *e, const char *name, int v) {
    MilVal r = new_value(e, name, MIL_BOOL, 0, NULL);
    if (r == MIL_NONE) return r;
    put_const_head(e, r);
    put_scalar_open(e, MIL_BOOL);
    put(e, "%s)];\n", v ? "true" : "false");
    return r;
}

static MilVal const_string(MilEmit *e, const char *name, const char *s) {
    MilVal r = new_value(e, name, MIL_STRING, 0, NULL);
    if (r == MIL_NONE) return r;
    put_const_head(e, r);
    put_string_lit(e, s);
    put(e, "];\n");
    return r;
}

MilVal mil_emit_const_i32v(MilEmit *e, const char *name, int n, const int *v) {
    if (n <= 0) return fail(e, "int32 vector constant '%s' needs at least one element", name ? name : "?");
    MilVal r = new_value(e, name, MIL_INT32, 1, &n);
    if (r == MIL_NONE) return r;
    put_const_head(e, r);
    put_type(e, MIL_INT32, 1, &n);
    put(e, "([");
    for (int i = 0; i < n; i++) put(e, i ? ", %d" : "%d", v[i]);
    put(e, "])];\n");
    return r;
}

// Registers an fp16 blob (payload filled by the caller through *payload) and
// writes its BLOBFILE const statement.
static MilVal blob_const(MilEmit *e, const char *name, int rank, const int *shape, uint16_t **payload) {
    MilVal r = new_value(e, name, MIL_FP16, rank, shape);
    if (r == MIL_NONE) return r;
    size_t n = 1;
    for (int i = 0; i < rank; i++) n *= (size_t)shape[i];
    if (e->n_blobs == e->cap_blobs) {
        int cap = e->cap_blobs ? 2 * e->cap_blobs : 8;
        MilEmitBlob *b = realloc(e->blobs, (size_t)cap * sizeof *b);
        if (!b) return fail(e, "out of memory for blobs");
        e->blobs = b;
        e->cap_blobs = cap;
    }
    MilEmitBlob *b = &e->blobs[e->n_blobs];
    memset(b, 0, sizeof *b);
    b->data = e->no_payload ? NULL : malloc(n * sizeof(uint16_t));
    if (!b->data && !e->no_payload) return fail(e, "out of memory for blob '%s' (%zu elements)", e->vals[r].name, n);
    memcpy(b->name, e->vals[r].name, sizeof b->name);
    b->n = n;
    b->rank = rank;
    for (int i = 0; i < rank; i++) b->shape[i] = shape[i];
    e->n_blobs++;
    *payload = b->data;

    put_const_head(e, r);
    put_type(e, MIL_FP16, rank, shape);
    put(e, "(BLOBFILE(path%s", eq(e));
    char path[MIL_NAME_MAX + 32];
    snprintf(path, sizeof path, "@model_path/weights/%s.bin", b->name);
    put_string_lit(e, path);
    put(e, ", offset%s", eq(e));
    // uint64 has no MilDtype: spelled directly
    put(e, "%s", e->dialect == MIL_DIALECT_IOS18 ? "uint64(64)" : "tensor<uint64, []>(64)");
    put(e, "))];\n");
    return r;
}

MilVal mil_emit_const_blob(MilEmit *e, const char *name, const float *data, int rank, const int *shape) {
    if (e->no_payload) {
        uint16_t *p = NULL;
        return blob_const(e, name, rank, shape, &p);
    }
    size_t n = 1;
    for (int i = 0; i < rank && i < MIL_MAX_RANK; i++) n *= (size_t)(shape[i] > 0 ? shape[i] : 0);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(data[i]) || fabsf(data[i]) > 65504.0f)
            return fail(e, "blob '%s': element %zu = %g does not fit fp16", name ? name : "?", i, (double)data[i]);
    uint16_t *p = NULL;
    MilVal r = blob_const(e, name, rank, shape, &p);
    if (r != MIL_NONE) fp16_from_f32_array(p, data, e->blobs[e->n_blobs - 1].n);
    return r;
}

MilVal mil_emit_const_blob_f16(MilEmit *e, const char *name, const uint16_t *data, int rank, const int *shape) {
    uint16_t *p = NULL;
    MilVal r = blob_const(e, name, rank, shape, &p);
    if (r != MIL_NONE && p) memcpy(p, data, e->blobs[e->n_blobs - 1].n * sizeof(uint16_t));
    return r;
}

static MilVal bool_const(MilEmit *e, int v) {
    v = v ? 1 : 0;
    if (e->bool_const[v] == MIL_NONE) e->bool_const[v] = mil_emit_const_bool(e, v ? "c_true" : "c_false", v);
    return e->bool_const[v];
}

// ---------------------------------------------------------------------------------------------
// op statements

typedef struct {
    const char *key;
    MilVal val;
} Arg;

// "        TYPE NAME = op(k1=v1, k2=v2)[name=string("NAME")];\n" (args already sorted)
static void put_op(MilEmit *e, MilVal r, const char *op, int n, const Arg *args) {
    if (e->failed) return;
    put_lhs(e, r);
    put(e, "%s(", op);
    for (int i = 0; i < n; i++) put(e, "%s%s%s%s", i ? ", " : "", args[i].key, eq(e), e->vals[args[i].val].name);
    put(e, ")");
    put_name_attr(e, e->vals[r].name);
    put(e, "];\n");
}

MilVal mil_emit_slice(MilEmit *e, MilVal x, const int *begin, const int *size, const char *name) {
    const MilValue *xv = operand(e, x, "slice_by_size");
    if (!xv) return MIL_NONE;
    int shape[MIL_MAX_RANK], sz[MIL_MAX_RANK];
    const int rank = xv->rank;
    for (int i = 0; i < rank; i++) {
        sz[i] = size[i] < 0 ? xv->shape[i] - begin[i] : size[i];
        if (begin[i] < 0 || sz[i] <= 0 || begin[i] + sz[i] > xv->shape[i])
            return fail(e, "slice %s of %s: axis %d begin %d size %d outside [0, %d)", name ? name : "?", xv->name, i,
                        begin[i], size[i], xv->shape[i]);
        shape[i] = sz[i];
    }
    MilVal r = new_value(e, name, xv->dt, rank, shape);
    if (r == MIL_NONE) return r;
    char nb[NBUF], ns[NBUF];
    sub_name(e, nb, e->vals[r].name, "begin");
    sub_name(e, ns, e->vals[r].name, "size");
    MilVal b = mil_emit_const_i32v(e, nb, rank, begin);
    MilVal s = mil_emit_const_i32v(e, ns, rank, size);
    // new_value only registers the name; the const statements are written
    // before the op's own statement, so every name is defined before its use.
    put_op(e, r, "slice_by_size", 3, (Arg[]){{"begin", b}, {"size", s}, {"x", x}});
    return r;
}

MilVal mil_emit_reshape(MilEmit *e, MilVal x, int rank, const int *shape, const char *name) {
    const MilValue *xv = operand(e, x, "reshape");
    if (!xv) return MIL_NONE;
    if (rank < 1 || rank > MIL_MAX_RANK) return fail(e, "reshape of %s: rank %d out of range", xv->name, rank);
    long long vol = 1, known = 1;
    for (int i = 0; i < xv->rank; i++) vol *= xv->shape[i];
    int out[MIL_MAX_RANK], infer = -1;
    for (int i = 0; i < rank; i++) {
        out[i] = shape[i];
        if (shape[i] == -1) {
            if (infer >= 0) return fail(e, "reshape of %s: more than one -1", xv->name);
            infer = i;
        } else if (shape[i] <= 0) {
            return fail(e, "reshape of %s: dimension %d is %d", xv->name, i, shape[i]);
        } else {
            known *= shape[i];
        }
    }
    if (infer >= 0) {
        if (vol % known != 0)
            return fail(e, "reshape of %s: %lld elements not divisible by %lld", xv->name, vol, known);
        out[infer] = (int)(vol / known);
        known = vol;
    }
    if (known != vol)
        return fail(e, "reshape of %s: %lld elements into a shape of %lld", xv->name, vol, known);
    MilVal r = new_value(e, name, xv->dt, rank, out);
    if (r == MIL_NONE) return r;
    char ns[NBUF];
    sub_name(e, ns, e->vals[r].name, "shape");
    MilVal s = mil_emit_const_i32v(e, ns, rank, out);
    put_op(e, r, "reshape", 2, (Arg[]){{"shape", s}, {"x", x}});
    return r;
}

MilVal mil_emit_transpose(MilEmit *e, MilVal x, const int *perm, const char *name) {
    const MilValue *xv = operand(e, x, "transpose");
    if (!xv) return MIL_NONE;
    int out[MIL_MAX_RANK], seen[MIL_MAX_RANK] = {0};
    for (int i = 0; i < xv->rank; i++) {
        if (perm[i] < 0 || perm[i] >= xv->rank || seen[perm[i]]++)
            return fail(e, "transpose of %s: perm is not a permutation of [0, %d)", xv->name, xv->rank);
        out[i] = xv->shape[perm[i]];
    }
    const int rank = xv->rank;  // new_value may move e->vals, and xv with it
    MilVal r = new_value(e, name, xv->dt, rank, out);
    if (r == MIL_NONE) return r;
    char np[NBUF];
    sub_name(e, np, e->vals[r].name, "perm");
    MilVal p = mil_emit_const_i32v(e, np, rank, perm);
    put_op(e, r, "transpose", 2, (Arg[]){{"perm", p}, {"x", x}});
    return r;
}

// NumPy broadcast of a and b into out; returns the rank or -1.
static int broadcast(const MilValue *a, const MilValue *b, int *out) {
    const int rank = a->rank > b->rank ? a->rank : b->rank;
    for (int i = 0; i < rank; i++) {
        const int ia = i - (rank - a->rank), ib = i - (rank - b->rank);
        const int da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        if (da != db && da != 1 && db != 1) return -1;
        out[i] = da > db ? da : db;
    }
    return rank;
}

static void shape_str(const MilValue *v, char *out, size_t n) {
    size_t k = (size_t)snprintf(out, n, "[");
    for (int i = 0; i < v->rank && k < n; i++) k += (size_t)snprintf(out + k, n - k, i ? ",%d" : "%d", v->shape[i]);
    if (k < n) snprintf(out + k, n - k, "]");
}

MilVal mil_emit_matmul(MilEmit *e, MilVal x, MilVal y, int tx, int ty, const char *name) {
    const MilValue *a = operand(e, x, "matmul"), *b = operand(e, y, "matmul");
    if (!a || !b) return MIL_NONE;
    char sa[64], sb[64];
    shape_str(a, sa, sizeof sa);
    shape_str(b, sb, sizeof sb);
    if (a->rank < 2 || b->rank < 2) return fail(e, "matmul %s x %s: operands must have rank >= 2", a->name, b->name);
    if (a->dt != b->dt) return fail(e, "matmul %s x %s: dtypes differ", a->name, b->name);
    const int M = a->shape[a->rank - (tx ? 1 : 2)], Ka = a->shape[a->rank - (tx ? 2 : 1)];
    const int Kb = b->shape[b->rank - (ty ? 1 : 2)], N = b->shape[b->rank - (ty ? 2 : 1)];
    if (Ka != Kb)
        return fail(e, "matmul %s%s x %s%s (transpose_x=%d, transpose_y=%d): inner dims %d and %d differ", a->name, sa,
                    b->name, sb, tx, ty, Ka, Kb);
    MilValue ba = *a, bb = *b;  // batch parts
    ba.rank -= 2;
    bb.rank -= 2;
    int out[MIL_MAX_RANK];
    const int br = broadcast(&ba, &bb, out);
    if (br < 0) return fail(e, "matmul %s%s x %s%s: batch dims do not broadcast", a->name, sa, b->name, sb);
    out[br] = M;
    out[br + 1] = N;
    MilVal r = new_value(e, name, a->dt, br + 2, out);
    if (r == MIL_NONE) return r;
    MilVal fx = bool_const(e, tx), fy = bool_const(e, ty);
    put_op(e, r, "matmul", 4, (Arg[]){{"transpose_x", fx}, {"transpose_y", fy}, {"x", x}, {"y", y}});
    return r;
}

static MilVal binary(MilEmit *e, const char *op, MilVal x, MilVal y, const char *name) {
    const MilValue *a = operand(e, x, op), *b = operand(e, y, op);
    if (!a || !b) return MIL_NONE;
    if (a->dt != b->dt) return fail(e, "%s %s, %s: dtypes %s and %s differ", op, a->name, b->name, dt_name(a->dt),
                                    dt_name(b->dt));
    int out[MIL_MAX_RANK];
    const int rank = broadcast(a, b, out);
    if (rank < 0) {
        char sa[64], sb[64];
        shape_str(a, sa, sizeof sa);
        shape_str(b, sb, sizeof sb);
        return fail(e, "%s %s%s, %s%s: shapes do not broadcast", op, a->name, sa, b->name, sb);
    }
    MilVal r = new_value(e, name, a->dt, rank, out);
    if (r == MIL_NONE) return r;
    put_op(e, r, op, 2, (Arg[]){{"x", x}, {"y", y}});
    return r;
}

MilVal mil_emit_add(MilEmit *e, MilVal x, MilVal y, const char *name) { return binary(e, "add", x, y, name); }
MilVal mil_emit_sub(MilEmit *e, MilVal x, MilVal y, const char *name) { return binary(e, "sub", x, y, name); }
MilVal mil_emit_mul(MilEmit *e, MilVal x, MilVal y, const char *name) { return binary(e, "mul", x, y, name); }

// x OP c with c an fp16 scalar const named "<name>_y"
static MilVal binary_scalar(MilEmit *e, const char *op, MilVal x, float c, const char *name) {
    if (!operand(e, x, op)) return MIL_NONE;
    char nbuf[NBUF], nc[NBUF];
    if (!name) {
        snprintf(nbuf, sizeof nbuf, "v_%d", e->auto_id++);
        name = nbuf;
    }
    sub_name(e, nc, name, "y");
    MilVal k = mil_emit_const_fp16(e, nc, c);
    return binary(e, op, x, k, name);
}

MilVal mil_emit_mul_scalar(MilEmit *e, MilVal x, float c, const char *name) {
    return binary_scalar(e, "mul", x, c, name);
}
MilVal mil_emit_add_scalar(MilEmit *e, MilVal x, float c, const char *name) {
    return binary_scalar(e, "add", x, c, name);
}
MilVal mil_emit_pow(MilEmit *e, MilVal x, float p, const char *name) { return binary_scalar(e, "pow", x, p, name); }

// An elementwise op of one operand: the result has x's type.
static MilVal unary(MilEmit *e, const char *op, MilVal x, const char *name) {
    const MilValue *xv = operand(e, x, op);
    if (!xv) return MIL_NONE;
    int shape[MIL_MAX_RANK];
    memcpy(shape, xv->shape, sizeof shape);
    MilVal r = new_value(e, name, xv->dt, xv->rank, shape);
    if (r == MIL_NONE) return r;
    put_op(e, r, op, 1, (Arg[]){{"x", x}});
    return r;
}

MilVal mil_emit_sigmoid(MilEmit *e, MilVal x, const char *name) { return unary(e, "sigmoid", x, name); }
MilVal mil_emit_exp(MilEmit *e, MilVal x, const char *name) { return unary(e, "exp", x, name); }

MilVal mil_emit_softmax(MilEmit *e, MilVal x, int axis, const char *name) {
    const MilValue *xv = operand(e, x, "softmax");
    if (!xv) return MIL_NONE;
    if (axis < -xv->rank || axis >= xv->rank) return fail(e, "softmax of %s: axis %d out of range", xv->name, axis);
    int shape[MIL_MAX_RANK];
    memcpy(shape, xv->shape, sizeof shape);
    MilVal r = new_value(e, name, xv->dt, xv->rank, shape);
    if (r == MIL_NONE) return r;
    char na[NBUF];
    sub_name(e, na, e->vals[r].name, "axis");
    MilVal a = mil_emit_const_i32(e, na, axis);
    put_op(e, r, "softmax", 2, (Arg[]){{"axis", a}, {"x", x}});
    return r;
}

static MilVal reduce(MilEmit *e, const char *op, MilVal x, int n_axes, const int *axes, int keep_dims, const char *name) {
    const MilValue *xv = operand(e, x, op);
    if (!xv) return MIL_NONE;
    int red[MIL_MAX_RANK] = {0};
    if (n_axes < 1 || n_axes > xv->rank) return fail(e, "%s of %s: %d axes", op, xv->name, n_axes);
    for (int i = 0; i < n_axes; i++) {
        const int a = axes[i] < 0 ? axes[i] + xv->rank : axes[i];
        if (a < 0 || a >= xv->rank || red[a]++) return fail(e, "%s of %s: bad axis %d", op, xv->name, axes[i]);
    }
    int shape[MIL_MAX_RANK], rank = 0;
    for (int i = 0; i < xv->rank; i++) {
        if (!red[i]) shape[rank++] = xv->shape[i];
        else if (keep_dims) shape[rank++] = 1;
    }
    MilVal r = new_value(e, name, xv->dt, rank, shape);
    if (r == MIL_NONE) return r;
    char na[NBUF];
    sub_name(e, na, e->vals[r].name, "axes");
    MilVal av = mil_emit_const_i32v(e, na, n_axes, axes);
    MilVal kv = bool_const(e, keep_dims);
    put_op(e, r, op, 3, (Arg[]){{"axes", av}, {"keep_dims", kv}, {"x", x}});
    return r;
}

MilVal mil_emit_reduce_sum(MilEmit *e, MilVal x, int n_axes, const int *axes, int keep_dims, const char *name) {
    return reduce(e, "reduce_sum", x, n_axes, axes, keep_dims, name);
}

MilVal mil_emit_reduce_max(MilEmit *e, MilVal x, int n_axes, const int *axes, int keep_dims, const char *name) {
    return reduce(e, "reduce_max", x, n_axes, axes, keep_dims, name);
}

MilVal mil_emit_concat(MilEmit *e, int n, const MilVal *v, int axis, const char *name) {
    if (e->failed) return MIL_NONE;
    if (n < 1) return fail(e, "concat %s: no values", name ? name : "?");
    const MilValue *first = operand(e, v[0], "concat");
    if (!first) return MIL_NONE;
    const int rank = first->rank;
    if (axis < -rank || axis >= rank) return fail(e, "concat %s: axis %d out of range", name ? name : "?", axis);
    const int ax = axis < 0 ? axis + rank : axis;
    int shape[MIL_MAX_RANK];
    memcpy(shape, first->shape, sizeof shape);
    for (int i = 1; i < n; i++) {
        const MilValue *vi = operand(e, v[i], "concat");
        if (!vi) return MIL_NONE;
        if (vi->rank != rank || vi->dt != first->dt) return fail(e, "concat %s: %s and %s differ in rank or dtype",
                                                                 name ? name : "?", first->name, vi->name);
        for (int d = 0; d < rank; d++)
            if (d != ax && vi->shape[d] != first->shape[d])
                return fail(e, "concat %s on axis %d: %s and %s differ on axis %d (%d vs %d)", name ? name : "?", ax,
                            first->name, vi->name, d, first->shape[d], vi->shape[d]);
        shape[ax] += vi->shape[ax];
    }
    const MilDtype dt = first->dt;
    MilVal r = new_value(e, name, dt, rank, shape);
    if (r == MIL_NONE) return r;
    char na[NBUF];
    sub_name(e, na, e->vals[r].name, "axis");
    MilVal a = mil_emit_const_i32(e, na, axis);
    MilVal il = bool_const(e, 0);
    if (e->failed) return MIL_NONE;
    put_lhs(e, r);
    put(e, "concat(axis%s%s, interleave%s%s, values%s(", eq(e), e->vals[a].name, eq(e), e->vals[il].name, eq(e));
    for (int i = 0; i < n; i++) put(e, "%s%s", i ? ", " : "", e->vals[v[i]].name);
    put(e, "))");
    put_name_attr(e, e->vals[r].name);
    put(e, "];\n");
    return r;
}

MilVal mil_emit_conv(MilEmit *e, MilVal x, MilVal weight, const char *name) {
    const MilValue *xv = operand(e, x, "conv"), *wv = operand(e, weight, "conv");
    if (!xv || !wv) return MIL_NONE;
    if (xv->rank != 4 || wv->rank != 4 || wv->shape[2] != 1 || wv->shape[3] != 1 || wv->shape[1] != xv->shape[1])
        return fail(e, "conv %s: needs x [N,IC,H,W] and weight [OC,IC,1,1]; got %s rank %d (IC %d), %s rank %d (IC %d)",
                    name ? name : "?", xv->name, xv->rank, xv->rank > 1 ? xv->shape[1] : -1, wv->name, wv->rank,
                    wv->rank > 1 ? wv->shape[1] : -1);
    const int out[4] = {xv->shape[0], wv->shape[0], xv->shape[2], xv->shape[3]};
    MilVal r = new_value(e, name, xv->dt, 4, out);
    if (r == MIL_NONE) return r;
    const char *rn = e->vals[r].name;
    char n1[NBUF], n2[NBUF], n3[NBUF], n4[NBUF], n5[NBUF];
    sub_name(e, n1, rn, "dilations");
    sub_name(e, n2, rn, "groups");
    sub_name(e, n3, rn, "pad");
    sub_name(e, n4, rn, "pad_type");
    sub_name(e, n5, rn, "strides");
    MilVal dl = mil_emit_const_i32v(e, n1, 2, (const int[]){1, 1});
    MilVal gr = mil_emit_const_i32(e, n2, 1);
    MilVal pd = mil_emit_const_i32v(e, n3, 4, (const int[]){0, 0, 0, 0});
    MilVal pt = const_string(e, n4, "valid");
    MilVal st = mil_emit_const_i32v(e, n5, 2, (const int[]){1, 1});
    put_op(e, r, "conv", 7,
           (Arg[]){{"dilations", dl}, {"groups", gr}, {"pad", pd}, {"pad_type", pt}, {"strides", st},
                   {"weight", weight}, {"x", x}});
    return r;
}

// ---------------------------------------------------------------------------------------------
// program

static const char *BUILD_INFO_IOS18 =
    "[buildInfo = dict<string, string>({{\"coremlc-component-MIL\", \"3510.2.1\"}, {\"coremlc-version\", "
    "\"3505.4.1\"}, {\"coremltools-component-milinternal\", \"\"}, {\"coremltools-version\", \"9.0\"}})]\n";
static const char *BUILD_INFO_IOS16 =
    "[buildInfo = dict<tensor<string, []>, tensor<string, []>>({{\"coremlc-component-MIL\", \"3510.2.1\"}, "
    "{\"coremlc-version\", \"3505.4.1\"}})]\n";

int mil_emit_finish(MilEmit *e, MilVal out, char **text, size_t *len) {
    *text = NULL;
    if (len) *len = 0;
    if (!e->failed && !mil_emit_value(e, out)) fail(e, "finish: invalid output handle %d", out);
    if (!e->failed && e->n_inputs == 0) fail(e, "finish: the function has no input");
    if (e->failed) return -1;
    // The body was written first; assemble header + body + footer in a second builder buffer.
    MilEmit h;
    mil_emit_init(&h, e->dialect);
    const int ios18 = e->dialect == MIL_DIALECT_IOS18;
    put(&h, "%s", ios18 ? "program(1.3)\n" : "program(1.0)\n");
    put(&h, "%s", ios18 ? BUILD_INFO_IOS18 : BUILD_INFO_IOS16);
    put(&h, "{\n    func main<%s>(", ios18 ? "ios18" : "ios16");
    for (int i = 0; i < e->n_inputs; i++) {
        const MilValue *v = &e->vals[e->inputs[i]];
        if (i) put(&h, ", ");
        put_type(&h, v->dt, v->rank, v->shape);
        put(&h, " %s", v->name);
    }
    put(&h, ") {\n");
    put(&h, "%s", e->body ? e->body : "");
    put(&h, "    } -> (%s);\n}\n", e->vals[out].name);
    if (h.failed) {
        mil_emit_free(&h);
        e->failed = 1;
        return -1;
    }
    *text = h.body;
    if (len) *len = h.len;
    h.body = NULL;
    mil_emit_free(&h);
    return 0;
}
