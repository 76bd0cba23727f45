// mil_interp: parse + type/shape checking of a MIL function into a MilProgram
// (semantics and precision rules in mil_interp.h; evaluation in mil_exec.c).
#include "mil/mil_interp.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/fp16.h"
#include "mil/mil_blob.h"
#include "mil/mil_prog.h"
#include "mil/mil_rules.h"

// --- compile-time helpers -----------------------------------------------------

typedef struct {
    MilProgram *p;
    const MilGraphFunc *fn;
    const MilWeightFile *weights;
    int n_weights;
    const MilGraphOp *op;  // the op being compiled (for error messages)
} Ctx;

static int op_err(Ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int op_err(Ctx *c, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const MilGraphOp *op = c->op;
    return err_set("mil:%d:%d: %s '%s': %s", op->line, op->col, op->op, c->fn->values[op->result].name, msg);
}

static const char *tstr(const MilType *t, char *buf) { return mil_type_str(t, buf, 160); }

static int add_val(Ctx *c, const MilType *t, const char *name) {
    MilProgram *p = c->p;
    if (p->n_vals == p->cap_vals) {
        int nc = p->cap_vals ? p->cap_vals * 2 : 64;
        MilSlot *nv = realloc(p->vals, sizeof(MilSlot) * (size_t)nc);
        if (!nv) return err_set("mil: out of memory");
        p->vals = nv;
        p->cap_vals = nc;
    }
    MilSlot *v = &p->vals[p->n_vals];
    memset(v, 0, sizeof *v);
    v->type = *t;
    v->numel = mil_type_numel(t);
    v->name = name;
    v->last_use = -1;
    return p->n_vals++;
}

static MilStep *add_step(Ctx *c, MilStepKind k, int out) {
    MilProgram *p = c->p;
    if (p->n_steps == p->cap_steps) {
        int nc = p->cap_steps ? p->cap_steps * 2 : 64;
        MilStep *ns = realloc(p->steps, sizeof(MilStep) * (size_t)nc);
        if (!ns) return NULL;
        p->steps = ns;
        p->cap_steps = nc;
    }
    MilStep *s = &p->steps[p->n_steps++];
    memset(s, 0, sizeof *s);
    s->kind = k;
    s->out = out;
    s->a = s->b = s->c = -1;
    s->src[0] = s->src[1] = -1;
    s->opname = c->op->op;
    s->line = c->op->line;
    s->col = c->op->col;
    return s;
}

static const MilWeightFile *find_weights(Ctx *c, const char *path) {
    const char *prefix = "@model_path/";
    const char *bare = strncmp(path, prefix, strlen(prefix)) ? path : path + strlen(prefix);
    for (int i = 0; i < c->n_weights; i++) {
        const char *w = c->weights[i].path;
        if (!w) continue;
        const char *wb = strncmp(w, prefix, strlen(prefix)) ? w : w + strlen(prefix);
        if (!strcmp(wb, bare)) return &c->weights[i];
    }
    return NULL;
}

// Fills a constant value from a literal. The literal's type must equal `want`.
static int load_literal(Ctx *c, MilSlot *v, const MilLiteral *lit) {
    char t1[160], t2[160];
    if (!mil_type_equal(&lit->type, &v->type))
        return op_err(c, "declared %s but the value is %s", tstr(&v->type, t1), tstr(&lit->type, t2));
    v->is_const = 1;
    if (lit->kind == MIL_LIT_STRING) {
        v->str = lit->str;
        return 0;
    }
    if (v->numel > MIL_MAX_TENSOR_NUMEL) return op_err(c, "constant of %zu elements is too large", v->numel);
    v->c32 = malloc(sizeof(float) * (v->numel ? v->numel : 1));
    if (!v->c32) return op_err(c, "out of memory for %zu elements", v->numel);
    if (lit->kind == MIL_LIT_NUMBERS) {
        for (size_t i = 0; i < v->numel; i++) v->c32[i] = (float)lit->num[i];
        v->c16 = v->c32;
        if (v->type.dtype == MIL_DT_FP16) {
            int exact = 1;
            for (size_t i = 0; i < v->numel && exact; i++)
                exact = fp16_to_f32(fp16_from_f32(v->c32[i])) == v->c32[i] || isnan(v->c32[i]);
            if (!exact) {
                v->c16 = malloc(sizeof(float) * v->numel);
                if (!v->c16) return op_err(c, "out of memory");
                fp16_round_array(v->c16, v->c32, v->numel);
            }
        }
        return 0;
    }
    // BLOBFILE
    const MilWeightFile *w = find_weights(c, lit->blob_path);
    if (!w)
        return op_err(c, "BLOBFILE path \"%s\": no such weight file was given (%d weight file%s)", lit->blob_path,
                      c->n_weights, c->n_weights == 1 ? "" : "s");
    MilBlobEntry e;
    if (mil_blob_read(w->data, w->size, lit->blob_offset, lit->blob_path, &e))
        return err_wrap("mil:%d:%d: const '%s'", lit->line, lit->col, v->name);
    int want = v->type.dtype == MIL_DT_FP16 ? MIL_BLOB_FP16 : v->type.dtype == MIL_DT_FP32 ? MIL_BLOB_FP32 : 0;
    if (!want) return op_err(c, "BLOBFILE constants of dtype %s are not supported", mil_dt_name(v->type.dtype));
    if (e.dtype != want)
        return op_err(c, "%s at offset %llu: expected blob dtype %d (%s), found %d", lit->blob_path,
                      (unsigned long long)lit->blob_offset, want, mil_dt_name(v->type.dtype), e.dtype);
    size_t es = want == MIL_BLOB_FP16 ? 2 : 4;
    if (e.bytes != v->numel * es)
        return op_err(c, "%s at offset %llu: expected %zu payload bytes for %s, found %llu", lit->blob_path,
                      (unsigned long long)lit->blob_offset, v->numel * es, tstr(&v->type, t1),
                      (unsigned long long)e.bytes);
    if (want == MIL_BLOB_FP16) {
        uint16_t *h = malloc(e.bytes ? e.bytes : 1);  // the payload need not be 2-byte aligned
        if (!h) return op_err(c, "out of memory");
        memcpy(h, e.payload, e.bytes);
        fp16_to_f32_array(v->c32, h, v->numel);
        free(h);
    } else {
        memcpy(v->c32, e.payload, e.bytes);
    }
    v->c16 = v->c32;  // fp16 weights are exact; fp32 weights are fp32-typed
    return 0;
}

// Every argument must be one the op knows (catches typos such as transpose_z).
static int check_arg_names(Ctx *c, const char *const *allowed) {
    for (int i = 0; i < c->op->n_args; i++) {
        int ok = 0;
        for (const char *const *a = allowed; *a && !ok; a++) ok = !strcmp(*a, c->op->args[i].name);
        if (!ok) {
            char list[256] = "";
            for (const char *const *a = allowed; *a; a++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", a == allowed ? "" : ", ", *a);
            return op_err(c, "unknown argument '%s' (expected: %s)", c->op->args[i].name, list);
        }
    }
    if (mil_op_attr(c->op, "val")) return op_err(c, "only const takes a val attribute");
    return 0;
}

// A tensor operand: a reference, or an inline literal turned into an anonymous constant.
static int value_of(Ctx *c, const MilArgValue *av, const char *argname, int *vid) {
    if (av->kind == MIL_ARG_REF) {
        *vid = av->ref;
        return 0;
    }
    if (av->kind == MIL_ARG_LIT) {
        int id = add_val(c, &av->lit->type, argname);
        if (id < 0) return -1;
        *vid = id;
        return load_literal(c, &c->p->vals[id], av->lit);
    }
    return op_err(c, "argument '%s' must be a single value, found a tuple", argname);
}

static int arg_value(Ctx *c, const char *name, int required, int *vid) {
    *vid = -1;
    const MilArg *a = mil_op_arg(c->op, name);
    if (!a) return required ? op_err(c, "missing argument '%s'", name) : 0;
    if (value_of(c, &a->v, name, vid)) return -1;
    const MilSlot *v = &c->p->vals[*vid];
    if (v->str) return op_err(c, "argument '%s' must be a tensor, found string '%s'", name, v->name);
    return 0;
}

// The literal behind a constant argument (inline, or a reference to a const op).
static int arg_const(Ctx *c, const char *name, int required, const MilLiteral **out) {
    *out = NULL;
    const MilArg *a = mil_op_arg(c->op, name);
    if (!a) return required ? op_err(c, "missing argument '%s'", name) : 0;
    if (a->v.kind == MIL_ARG_LIT) {
        *out = a->v.lit;
        return 0;
    }
    if (a->v.kind == MIL_ARG_REF) {
        const MilGraphValue *mv = &c->fn->values[a->v.ref];
        if (mv->op >= 0 && !strcmp(c->fn->ops[mv->op].op, "const")) {
            const MilArg *val = mil_op_attr(&c->fn->ops[mv->op], "val");
            if (val && val->v.kind == MIL_ARG_LIT) {
                *out = val->v.lit;
                return 0;
            }
        }
        return op_err(c, "argument '%s' must be a constant, found '%s'", name, mv->name);
    }
    return op_err(c, "argument '%s' must be a constant, found a tuple", name);
}

static int lit_is_ints(const MilLiteral *l) {
    return l->kind == MIL_LIT_NUMBERS && (mil_dt_is_int(l->type.dtype));
}

static int const_ints(Ctx *c, const char *name, int required, int64_t *out, int max, int *n) {
    const MilLiteral *l;
    *n = -1;
    if (arg_const(c, name, required, &l)) return -1;
    if (!l) return 0;
    if (!lit_is_ints(l) || l->type.rank > 1)
        return op_err(c, "argument '%s' must be an integer scalar or list", name);
    if (l->n > (size_t)max) return op_err(c, "argument '%s' has %zu values, at most %d allowed", name, l->n, max);
    for (size_t i = 0; i < l->n; i++) out[i] = (int64_t)l->num[i];
    *n = (int)l->n;
    return 0;
}

static int const_int(Ctx *c, const char *name, int required, int64_t dflt, int64_t *out) {
    const MilLiteral *l;
    *out = dflt;
    if (arg_const(c, name, required, &l)) return -1;
    if (!l) return 0;
    if (!lit_is_ints(l) || l->n != 1) return op_err(c, "argument '%s' must be an integer scalar", name);
    *out = (int64_t)l->num[0];
    return 0;
}

static int const_bool(Ctx *c, const char *name, int dflt, int *out) {
    const MilLiteral *l;
    *out = dflt;
    if (arg_const(c, name, 0, &l)) return -1;
    if (!l) return 0;
    if (l->kind != MIL_LIT_NUMBERS || l->type.dtype != MIL_DT_BOOL || l->n != 1)
        return op_err(c, "argument '%s' must be a bool scalar", name);
    *out = l->num[0] != 0;
    return 0;
}

static int const_string(Ctx *c, const char *name, int required, const char **out) {
    const MilLiteral *l;
    *out = NULL;
    if (arg_const(c, name, required, &l)) return -1;
    if (!l) return 0;
    if (l->kind != MIL_LIT_STRING) return op_err(c, "argument '%s' must be a string", name);
    *out = l->str;
    return 0;
}

static const MilType *vtype(Ctx *c, int vid) { return &c->p->vals[vid].type; }

static int require_float(Ctx *c, int vid, const char *argname) {
    const MilType *t = vtype(c, vid);
    if (t->dtype != MIL_DT_FP16 && t->dtype != MIL_DT_FP32)
        return op_err(c, "argument '%s' must be fp16 or fp32, found %s", argname, mil_dt_name(t->dtype));
    return 0;
}

static int norm_axis(Ctx *c, int64_t axis, int rank, const char *what, int *out) {
    *out = 0;
    if (axis < -rank || axis >= rank)
        return op_err(c, "%s %lld is out of range for rank %d", what, (long long)axis, rank);
    *out = (int)(axis < 0 ? axis + rank : axis);
    return 0;
}

// NumPy broadcasting of a and b into out.
static int broadcast_shape(Ctx *c, const MilType *a, const MilType *b, MilType *out) {
    char t1[160], t2[160];
    out->rank = a->rank > b->rank ? a->rank : b->rank;
    for (int i = 0; i < out->rank; i++) {
        int ia = i - (out->rank - a->rank), ib = i - (out->rank - b->rank);
        int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return op_err(c, "shapes %s and %s do not broadcast (dim %d: %lld vs %lld)", tstr(a, t1), tstr(b, t2), i,
                          (long long)da, (long long)db);
        out->dims[i] = da == 1 ? db : da;
    }
    return 0;
}

// --- per-op compilation (shape inference) ------------------------------------

static int compile_const(Ctx *c, MilSlot *res) {
    if (c->op->n_args) return op_err(c, "const takes no arguments");
    const MilArg *val = mil_op_attr(c->op, "val");
    if (!val) return op_err(c, "missing attribute 'val'");
    if (val->v.kind != MIL_ARG_LIT) return op_err(c, "attribute 'val' must be a literal");
    return load_literal(c, res, val->v.lit);
}

static int compile_binary(Ctx *c, int sub, MilType *out) {
    static const char *const args[] = {"x", "y", NULL};
    int x, y;
    if (check_arg_names(c, args) || arg_value(c, "x", 1, &x) || arg_value(c, "y", 1, &y)) return -1;
    if (require_float(c, x, "x") || require_float(c, y, "y")) return -1;
    const MilType *tx = vtype(c, x), *ty = vtype(c, y);
    if (tx->dtype != ty->dtype)
        return op_err(c, "x is %s but y is %s", mil_dt_name(tx->dtype), mil_dt_name(ty->dtype));
    out->dtype = tx->dtype;
    if (broadcast_shape(c, tx, ty, out)) return -1;
    MilStep *s = add_step(c, MK_BIN, c->op->result);
    if (!s) return err_set("mil: out of memory");
    s->sub = sub, s->a = x, s->b = y;
    return 0;
}

static int compile_unary(Ctx *c, int sub, MilType *out) {
    static const char *const args[] = {"x", NULL};
    int x;
    if (check_arg_names(c, args) || arg_value(c, "x", 1, &x) || require_float(c, x, "x")) return -1;
    *out = *vtype(c, x);
    MilStep *s = add_step(c, MK_UNARY, c->op->result);
    if (!s) return err_set("mil: out of memory");
    s->sub = sub, s->a = x;
    return 0;
}

static int compile_softmax(Ctx *c, MilType *out) {
    static const char *const args[] = {"x", "axis", NULL};
    int x, axis;
    int64_t ax;
    if (check_arg_names(c, args) || arg_value(c, "x", 1, &x) || require_float(c, x, "x") ||
        const_int(c, "axis", 0, -1, &ax))
        return -1;
    *out = *vtype(c, x);
    if (out->rank < 1) return op_err(c, "softmax of a scalar");
    if (norm_axis(c, ax, out->rank, "axis", &axis)) return -1;
    if (out->rank == 4 && axis == 1 && out->dims[1] > MIL_MAX_OUT_CHANNELS)
        return op_err(c, "softmax over %lld channels: the ANE takes at most %d (split the axis into chunks)",
                      (long long)out->dims[1], MIL_MAX_OUT_CHANNELS);
    MilStep *s = add_step(c, MK_SOFTMAX, c->op->result);
    if (!s) return err_set("mil: out of memory");
    s->a = x, s->axis = axis;
    return 0;
}

static int compile_reduce(Ctx *c, int sub, MilType *out) {
    static const char *const args[] = {"x", "axes", "keep_dims", NULL};
    int x, keep, n;
    int64_t axes[MIL_TYPE_MAX_RANK];
    if (check_arg_names(c, args) || arg_value(c, "x", 1, &x) || require_float(c, x, "x") ||
        const_ints(c, "axes", 0, axes, MIL_TYPE_MAX_RANK, &n) || const_bool(c, "keep_dims", 0, &keep))
        return -1;
    const MilType *t = vtype(c, x);
    int mask = 0;
    if (n < 0) {  // axes absent: reduce everything
        mask = (1 << t->rank) - 1;
    } else {
        for (int i = 0; i < n; i++) {
            int a;
            if (norm_axis(c, axes[i], t->rank, "axis", &a)) return -1;
            if (mask & (1 << a)) return op_err(c, "axis %d listed twice", a);
            mask |= 1 << a;
        }
    }
    out->dtype = t->dtype;
    out->rank = 0;
    for (int i = 0; i < t->rank; i++) {
        if (!(mask & (1 << i)))
            out->dims[out->rank++] = t->dims[i];
        else if (keep)
            out->dims[out->rank++] = 1;
    }
    MilStep *s = add_step(c, MK_REDUCE, c->op->result);
    if (!s) return err_set("mil: out of memory");
    s->sub = sub, s->a = x, s->red_mask = mask, s->keep = keep;
    return 0;
}

static int compile_matmul(Ctx *c, MilType *out) {
    static const char *const args[] = {"x", "y", "transpose_x", "transpose_y", NULL};
    int x, y, tx, ty;
    if (check_arg_names(c, args) || arg_value(c, "x", 1, &x) || arg_value(c, "y", 1, &y) ||
        require_float(c, x, "x") || require_float(c, y, "y") || const_bool(c, "transpose_x", 0, &tx) ||
        const_bool(c, "transpose_y", 0, &ty))
        return -1;
    const MilType *a = vtype(c, x), *b = vtype(c, y);
    char t1[160], t2[160];
    if (a->dtype != b->dtype)
        return op_err(c, "x is %s but y is %s", mil_dt_name(a->dtype), mil_dt_name(b->dtype));
    if (a->rank < 2 || b->rank < 2)
        return op_err(c, "operands must have rank >= 2, found %s and %s", tstr(a, t1), tstr(b, t2));
    int64_t M = tx ? a->dims[a->rank - 1] : a->dims[a->rank - 2];
    int64_t Ka = tx ? a->dims[a->rank - 2] : a->dims[a->rank - 1];
    int64_t Kb = ty ? b->dims[b->rank - 1] : b->dims[b->rank - 2];
    int64_t N = ty ? b->dims[b->rank - 2] : b->dims[b->rank - 1];
    if (Ka != Kb)
        return op_err(c, "inner dimensions differ: x %s%s gives K=%lld, y %s%s gives K=%lld", tstr(a, t1),
                      tx ? " (transposed)" : "", (long long)Ka, tstr(b, t2), ty ? " (transposed)" : "", (long long)Kb);
    MilType ba = *a, bb = *b;
    ba.rank -= 2, bb.rank -= 2;
    if (broadcast_shape(c, &ba, &bb, out)) return -1;
    out->dtype = a->dtype;
    out->dims[out->rank++] = M;
    out->dims[out->rank++] = N;
    MilStep *s = add_step(c, MK_MATMUL, c->op->result);
    if (!s) return err_set("mil: out of memory");
    s->a = x, s->b = y, s->tx = tx, s->ty = ty;
    return 0;
}

static int all_equal(const int64_t *v, int n, int64_t want) {
    for (int i = 0; i < n; i++)
        if (v[i] != want) return 0;
    return 1;
}

static int compile_conv(Ctx *c, MilType *out) {
    static const char *const args[] = {"x", "weight", "bias", "strides", "pad_type", "pad", "dilations", "groups",
                                       NULL};
    int x, w, b, n;
    int64_t groups, v[8];
    const char *pad_type;
    char t1[160], t2[160];
    if (check_arg_names(c, args) || arg_value(c, "x", 1, &x) || arg_value(c, "weight", 1, &w) ||
        arg_value(c, "bias", 0, &b) || require_float(c, x, "x") || require_float(c, w, "weight") ||
        const_int(c, "groups", 0, 1, &groups) || const_string(c, "pad_type", 0, &pad_type))
        return -1;
    const MilType *tx = vtype(c, x), *tw = vtype(c, w);
    if (tx->rank != 4) return op_err(c, "x must be [N, C, H, W], found %s", tstr(tx, t1));
    if (tw->rank != 4) return op_err(c, "weight must be [OC, C/groups, KH, KW], found %s", tstr(tw, t1));
    if (tx->dtype != tw->dtype)
        return op_err(c, "x is %s but weight is %s", mil_dt_name(tx->dtype), mil_dt_name(tw->dtype));
    if (tw->dims[2] != 1 || tw->dims[3] != 1)
        return op_err(c, "only 1x1 kernels are supported, found weight %s", tstr(tw, t1));
    if (groups < 1 || tx->dims[1] % groups || tw->dims[0] % groups)
        return op_err(c, "groups=%lld must divide the %lld input and %lld output channels", (long long)groups,
                      (long long)tx->dims[1], (long long)tw->dims[0]);
    if (tw->dims[1] * groups != tx->dims[1])
        return op_err(c, "weight %s expects %lld input channels (x %s, groups %lld)", tstr(tw, t1),
                      (long long)(tw->dims[1] * groups), tstr(tx, t2), (long long)groups);
    if (pad_type && strcmp(pad_type, "valid") && strcmp(pad_type, "same") && strcmp(pad_type, "same_lower") &&
        strcmp(pad_type, "custom"))
        return op_err(c, "pad_type must be valid, same, same_lower or custom, found \"%s\"", pad_type);
    if (const_ints(c, "strides", 0, v, 8, &n)) return -1;
    if (n >= 0 && (n != 2 || !all_equal(v, n, 1))) return op_err(c, "only strides [1, 1] are supported");
    if (const_ints(c, "dilations", 0, v, 8, &n)) return -1;
    if (n >= 0 && (n != 2 || !all_equal(v, n, 1))) return op_err(c, "only dilations [1, 1] are supported");
    if (const_ints(c, "pad", 0, v, 8, &n)) return -1;
    if (n >= 0 && (n != 4 || !all_equal(v, n, 0))) return op_err(c, "only pad [0, 0, 0, 0] is supported");
    if (b >= 0) {
        const MilType *tb = vtype(c, b);
        if (tb->rank != 1 || tb->dims[0] != tw->dims[0] || tb->dtype != tx->dtype)
            return op_err(c, "bias must be a %s [%lld] vector, found %s", mil_dt_name(tx->dtype),
                          (long long)tw->dims[0], tstr(tb, t1));
    }
    if (tw->dims[0] > MIL_MAX_OUT_CHANNELS || tx->dims[1] > MIL_MAX_IN_CHANNELS)
        return op_err(c, "conv with %lld input and %lld output channels: the ANE takes at most %d and %d (split the "
                      "channels into chunks)", (long long)tx->dims[1], (long long)tw->dims[0], MIL_MAX_IN_CHANNELS,
                      MIL_MAX_OUT_CHANNELS);
    *out = *tx;
    out->dims[1] = tw->dims[0];
    MilStep *s = add_step(c, MK_CONV, c->op->result);
    if (!s) return err_set("mil: out of memory");
    s->a = x, s->b = w, s->c = b, s->groups = (int)groups;
    return 0;
}

static int compile_reshape(Ctx *c, MilType *out) {
    static const char *const args[] = {"x", "shape", NULL};
    int x, n;
    int64_t shape[MIL_TYPE_MAX_RANK];
    char t1[160];
    if (check_arg_names(c, args) || arg_value(c, "x", 1, &x) || const_ints(c, "shape", 1, shape, MIL_TYPE_MAX_RANK, &n))
        return -1;
    const MilType *t = vtype(c, x);
    size_t numel = mil_type_numel(t), known = 1;
    int infer = -1;
    out->dtype = t->dtype;
    out->rank = n;
    for (int i = 0; i < n; i++) {
        int64_t d = shape[i];
        if (d == 0) {
            if (i >= t->rank) return op_err(c, "shape[%d] = 0 copies a dim x %s does not have", i, tstr(t, t1));
            d = t->dims[i];
        }
        if (d == -1) {
            if (infer >= 0) return op_err(c, "shape has more than one -1");
            infer = i;
            continue;
        }
        if (d < 1 || d > INT32_MAX) return op_err(c, "shape[%d] = %lld is not a valid dimension", i, (long long)shape[i]);
        out->dims[i] = d;
        if ((size_t)d > numel / known) return op_err(c, "shape has more elements than x %s (%zu)", tstr(t, t1), numel);
        known *= (size_t)d;
    }
    if (infer >= 0) {
        if (known == 0 || numel % known)
            return op_err(c, "cannot infer the -1 in shape: %zu elements do not divide by %zu", numel, known);
        out->dims[infer] = (int64_t)(numel / known);
        known = numel;
    }
    if (known != numel) return op_err(c, "shape has %zu elements but x %s has %zu", known, tstr(t, t1), numel);
    MilStep *s = add_step(c, MK_RESHAPE, c->op->result);
    if (!s) return err_set("mil: out of memory");
    s->a = x;
    return 0;
}

static int compile_transpose(Ctx *c, MilType *out) {
    static const char *const args[] = {"x", "perm", NULL};
    int x, n;
    int64_t perm[MIL_TYPE_MAX_RANK];
    if (check_arg_names(c, args) || arg_value(c, "x", 1, &x) || const_ints(c, "perm", 1, perm, MIL_TYPE_MAX_RANK, &n))
        return -1;
    const MilType *t = vtype(c, x);
    if (n != t->rank) return op_err(c, "perm has %d entries, x has rank %d", n, t->rank);
    MilStep *s = add_step(c, MK_TRANSPOSE, c->op->result);
    if (!s) return err_set("mil: out of memory");
    s->a = x;
    int seen = 0;
    *out = *t;
    for (int i = 0; i < n; i++) {
        int a;
        if (norm_axis(c, perm[i], t->rank, "perm entry", &a)) return -1;
        if (seen & (1 << a)) return op_err(c, "perm is not a permutation (%d repeats)", a);
        seen |= 1 << a;
        s->perm[i] = a;
        out->dims[i] = t->dims[a];
    }
    return 0;
}

static int compile_slice(Ctx *c, MilType *out) {
    static const char *const args[] = {"x", "begin", "size", NULL};
    int x, nb, ns;
    int64_t begin[MIL_TYPE_MAX_RANK], size[MIL_TYPE_MAX_RANK];
    char t1[160];
    if (check_arg_names(c, args) || arg_value(c, "x", 1, &x) ||
        const_ints(c, "begin", 1, begin, MIL_TYPE_MAX_RANK, &nb) || const_ints(c, "size", 1, size, MIL_TYPE_MAX_RANK, &ns))
        return -1;
    const MilType *t = vtype(c, x);
    if (nb != t->rank || ns != t->rank)
        return op_err(c, "begin and size need %d entries for x %s, found %d and %d", t->rank, tstr(t, t1), nb, ns);
    MilStep *s = add_step(c, MK_SLICE, c->op->result);
    if (!s) return err_set("mil: out of memory");
    s->a = x;
    *out = *t;
    for (int i = 0; i < t->rank; i++) {
        int64_t b = begin[i], d = t->dims[i], sz = size[i] == -1 ? d - b : size[i];
        if (b < 0 || b >= d || sz < 1 || sz > d - b)
            return op_err(c, "slice begin %lld size %lld is outside dim %d (%lld) of x %s", (long long)b,
                          (long long)size[i], i, (long long)d, tstr(t, t1));
        s->begin[i] = b;
        out->dims[i] = sz;
    }
    return 0;
}

static int compile_concat(Ctx *c, MilType *out) {
    static const char *const args[] = {"values", "axis", "interleave", NULL};
    int64_t ax;
    int axis, inter;
    char t1[160], t2[160];
    if (check_arg_names(c, args) || const_int(c, "axis", 1, 0, &ax) || const_bool(c, "interleave", 0, &inter)) return -1;
    const MilArg *va = mil_op_arg(c->op, "values");
    if (!va) return op_err(c, "missing argument 'values'");
    const MilArgValue *items = va->v.kind == MIL_ARG_TUPLE ? va->v.items : &va->v;
    int n = va->v.kind == MIL_ARG_TUPLE ? va->v.n_items : 1;
    int *list = malloc(sizeof(int) * (size_t)n);
    if (!list) return err_set("mil: out of memory");
    for (int i = 0; i < n; i++) {
        int rc = value_of(c, &items[i], "values", &list[i]);
        if (!rc && c->p->vals[list[i]].str) rc = op_err(c, "values[%d] must be a tensor, found a string", i);
        if (rc) {
            free(list);
            return -1;
        }
    }
    const MilType *t0 = vtype(c, list[0]);
    *out = *t0;
    int rc = norm_axis(c, ax, t0->rank, "axis", &axis);
    for (int i = 1; i < n && !rc; i++) {
        const MilType *ti = vtype(c, list[i]);
        int ok = ti->rank == t0->rank && ti->dtype == t0->dtype;
        for (int d = 0; ok && d < t0->rank; d++) ok = d == axis && !inter ? 1 : ti->dims[d] == t0->dims[d];
        if (!ok)
            rc = op_err(c, "values[%d] %s does not match values[0] %s outside axis %d%s", i, tstr(ti, t1), tstr(t0, t2),
                        axis, inter ? " (interleave needs equal shapes)" : "");
        else
            out->dims[axis] += ti->dims[axis];
    }
    if (!rc && out->dims[axis] > INT32_MAX) rc = op_err(c, "concatenated dim is too large");
    MilStep *s = rc ? NULL : add_step(c, MK_CONCAT, c->op->result);
    if (!s) {
        free(list);
        return rc ? rc : err_set("mil: out of memory");
    }
    s->list = list, s->n_list = n, s->axis = axis, s->interleave = inter;
    return 0;
}

static int compile_cast(Ctx *c, MilType *out) {
    static const char *const args[] = {"x", "dtype", NULL};
    int x;
    const char *dt;
    if (check_arg_names(c, args) || arg_value(c, "x", 1, &x) || const_string(c, "dtype", 1, &dt)) return -1;
    MilDt to = !strcmp(dt, "fp16") ? MIL_DT_FP16 : !strcmp(dt, "fp32") ? MIL_DT_FP32 :
                  !strcmp(dt, "int32") ? MIL_DT_INT32 : !strcmp(dt, "bool") ? MIL_DT_BOOL : MIL_DT_INVALID;
    if (!to) return op_err(c, "cast to \"%s\" is not supported (fp16, fp32, int32, bool)", dt);
    *out = *vtype(c, x);
    out->dtype = to;
    MilStep *s = add_step(c, MK_CAST, c->op->result);
    if (!s) return err_set("mil: out of memory");
    s->a = x, s->to = to;
    return 0;
}

static int compile_sdpa(Ctx *c, MilType *out) {
    static const char *const args[] = {"query", "key", "value", "attn_mask", NULL};
    int q, k, v, m;
    char t1[160], t2[160], t3[160];
    if (check_arg_names(c, args) || arg_value(c, "query", 1, &q) || arg_value(c, "key", 1, &k) ||
        arg_value(c, "value", 1, &v) || arg_value(c, "attn_mask", 0, &m) || require_float(c, q, "query") ||
        require_float(c, k, "key") || require_float(c, v, "value"))
        return -1;
    const MilType *tq = vtype(c, q), *tk = vtype(c, k), *tv = vtype(c, v);
    int r = tq->rank, ok = r >= 3 && tk->rank == r && tv->rank == r && tk->dtype == tq->dtype && tv->dtype == tq->dtype;
    for (int i = 0; ok && i < r - 2; i++) ok = tk->dims[i] == tq->dims[i] && tv->dims[i] == tq->dims[i];
    ok = ok && tk->dims[r - 1] == tq->dims[r - 1] && tv->dims[r - 2] == tk->dims[r - 2];
    if (!ok)
        return op_err(c, "expected query [B.., L, E], key [B.., S, E], value [B.., S, EV] (rank >= 3, one dtype); "
                         "found %s, %s, %s", tstr(tq, t1), tstr(tk, t2), tstr(tv, t3));
    if (m >= 0) {  // checked like the real op, then ignored like the hardware
        const MilType *tm = vtype(c, m);
        MilType scores = *tq, bc = {0};
        scores.dims[r - 1] = tk->dims[r - 2];
        if (tm->rank > r || broadcast_shape(c, &scores, tm, &bc) || memcmp(bc.dims, scores.dims, sizeof(int64_t) * (size_t)r))
            return op_err(c, "attn_mask %s does not broadcast to the scores %s", tstr(tm, t1), tstr(&scores, t2));
    }
    *out = *tq;
    out->dims[r - 1] = tv->dims[r - 1];
    MilStep *s = add_step(c, MK_SDPA, c->op->result);
    if (!s) return err_set("mil: out of memory");
    s->a = q, s->b = k, s->c = v;
    return 0;
}

static int compile_op(Ctx *c) {
    const MilGraphOp *op = c->op;
    MilSlot *res = &c->p->vals[op->result];
    if (!strcmp(op->op, "const")) return compile_const(c, res);
    MilType out = {0};
    int rc;
    const char *o = op->op;
    if (!strcmp(o, "add")) rc = compile_binary(c, MB_ADD, &out);
    else if (!strcmp(o, "sub")) rc = compile_binary(c, MB_SUB, &out);
    else if (!strcmp(o, "mul")) rc = compile_binary(c, MB_MUL, &out);
    else if (!strcmp(o, "real_div")) rc = compile_binary(c, MB_DIV, &out);
    else if (!strcmp(o, "pow")) rc = compile_binary(c, MB_POW, &out);
    else if (!strcmp(o, "maximum")) rc = compile_binary(c, MB_MAX, &out);
    else if (!strcmp(o, "minimum")) rc = compile_binary(c, MB_MIN, &out);
    else if (!strcmp(o, "sigmoid")) rc = compile_unary(c, MU_SIGMOID, &out);
    else if (!strcmp(o, "exp")) rc = compile_unary(c, MU_EXP, &out);
    else if (!strcmp(o, "sqrt")) rc = compile_unary(c, MU_SQRT, &out);
    else if (!strcmp(o, "tanh")) rc = compile_unary(c, MU_TANH, &out);
    else if (!strcmp(o, "softmax")) rc = compile_softmax(c, &out);
    else if (!strcmp(o, "reduce_sum")) rc = compile_reduce(c, MR_SUM, &out);
    else if (!strcmp(o, "reduce_max")) rc = compile_reduce(c, MR_MAX, &out);
    else if (!strcmp(o, "matmul")) rc = compile_matmul(c, &out);
    else if (!strcmp(o, "conv")) rc = compile_conv(c, &out);
    else if (!strcmp(o, "reshape")) rc = compile_reshape(c, &out);
    else if (!strcmp(o, "transpose")) rc = compile_transpose(c, &out);
    else if (!strcmp(o, "slice_by_size")) rc = compile_slice(c, &out);
    else if (!strcmp(o, "concat")) rc = compile_concat(c, &out);
    else if (!strcmp(o, "cast")) rc = compile_cast(c, &out);
    else if (!strcmp(o, "scaled_dot_product_attention")) rc = compile_sdpa(c, &out);
    else return op_err(c, "unsupported op (the interpreter knows const, conv, matmul, add, sub, mul, real_div, pow, "
                          "maximum, minimum, sigmoid, exp, sqrt, tanh, softmax, reduce_sum, reduce_max, reshape, "
                          "transpose, slice_by_size, concat, cast, scaled_dot_product_attention)");
    if (rc) return rc;
    res = &c->p->vals[op->result];  // vals may have moved (inline literals)
    char t1[160], t2[160];
    if (!mil_type_equal(&out, &res->type))
        return op_err(c, "declared %s but the op produces %s", tstr(&res->type, t1), tstr(&out, t2));
    if (res->numel > MIL_MAX_TENSOR_NUMEL) return op_err(c, "result of %zu elements is too large", res->numel);
    return 0;
}

// ANE rules for the function signature: one fp16 rank-4 input, one fp16 rank-4 output.
static int check_io(const MilGraphFunc *fn) {
    char t1[160];
    if (fn->n_inputs != 1)
        return err_set("mil:%d:%d: function '%s': the ANE takes exactly one input surface, found %d inputs "
                       "(HINT: pack them along the channel or spatial axis and slice_by_size in MIL)",
                       fn->line, fn->col, fn->name, fn->n_inputs);
    if (fn->n_outputs != 1)
        return err_set("mil:%d:%d: function '%s': the ANE returns exactly one output surface, found %d outputs "
                       "(HINT: concat them along the channel axis)", fn->line, fn->col, fn->name, fn->n_outputs);
    const MilGraphValue *io[2] = {&fn->values[fn->inputs[0]], &fn->values[fn->outputs[0]]};
    for (int i = 0; i < 2; i++)
        if (io[i]->type.dtype != MIL_DT_FP16 || io[i]->type.rank != 4)
            return err_set("mil:%d:%d: %s '%s': expected an fp16 rank-4 tensor such as tensor<fp16, [1, C, 1, S]>, "
                           "found %s", io[i]->line, io[i]->col, i ? "output" : "input", io[i]->name,
                           mil_type_str(&io[i]->type, t1, sizeof t1));
    return 0;
}

static void note_use(MilProgram *p, int vid, int step) {
    if (vid >= 0 && p->vals[vid].last_use < step) p->vals[vid].last_use = step;
}

int mil_program_compile(const char *text, const MilWeightFile *weights, int n_weights, MilProgram **out) {
    return mil_program_compile_opts(text, weights, n_weights, NULL, out);
}

int mil_program_compile_opts(const char *text, const MilWeightFile *weights, int n_weights,
                             const MilCompileOptions *o, MilProgram **out) {
    *out = NULL;
    MilProgram *p = calloc(1, sizeof *p);
    if (!p) return err_set("mil: out of memory");
    if (mil_parse(text, text ? strlen(text) : 0, "mil", &p->graph)) {
        free(p);
        return -1;
    }
    const MilGraphFunc *fn = mil_graph_func(&p->graph, "main");
    int rc = 0;
    if (!fn) rc = err_set("mil: expected a function named 'main', found %s", p->graph.funcs[0].name);
    if (!rc) rc = check_io(fn);
    Ctx c = {p, fn, weights, n_weights, NULL};
    for (int i = 0; !rc && i < fn->n_values; i++) rc = add_val(&c, &fn->values[i].type, fn->values[i].name) < 0;
    for (int i = 0; !rc && i < fn->n_ops; i++) {
        c.op = &fn->ops[i];
        rc = compile_op(&c);
    }
    if (rc) {
        mil_program_free(p);
        return -1;
    }
    p->input = fn->inputs[0];
    p->output = fn->outputs[0];
    if (o && o->ane_rules && mil_rules_check(p) != 0) {
        mil_program_free(p);
        return -1;
    }
    if (!(o && o->as_written) && mil_program_fuse(p) != 0) {
        mil_program_free(p);
        return err_set("mil: out of memory");
    }
    for (int s = 0; s < p->n_steps; s++) {
        MilStep *st = &p->steps[s];
        note_use(p, st->a, s), note_use(p, st->b, s), note_use(p, st->c, s), note_use(p, st->out, s);
        note_use(p, st->src[0], s), note_use(p, st->src[1], s);
        for (int i = 0; i < st->n_list; i++) note_use(p, st->list[i], s);
    }
    p->vals[p->input].is_io = p->vals[p->output].is_io = 1;
    *out = p;
    return 0;
}

void mil_program_free(MilProgram *p) {
    if (!p) return;
    for (int i = 0; i < p->n_vals; i++) {
        if (p->vals[i].c16 != p->vals[i].c32) free(p->vals[i].c16);
        free(p->vals[i].c32);
    }
    for (int i = 0; i < p->n_steps; i++) free(p->steps[i].list);
    free(p->arena_off), free(p->arena), free(p->bufs);
    free(p->vals);
    free(p->steps);
    mil_graph_free(&p->graph);
    free(p);
}

void mil_program_io(const MilProgram *p, MilIoDesc *in, MilIoDesc *out) {
    const MilSlot *v[2] = {&p->vals[p->input], &p->vals[p->output]};
    MilIoDesc *d[2] = {in, out};
    for (int i = 0; i < 2; i++) {
        if (!d[i]) continue;
        d[i]->name = v[i]->name;
        d[i]->rank = v[i]->type.rank;
        memcpy(d[i]->dims, v[i]->type.dims, sizeof d[i]->dims);
        d[i]->numel = v[i]->numel;
    }
}

int mil_program_n_ops(const MilProgram *p) { return p->n_steps; }

size_t mil_program_value_elems(const MilProgram *p) {
    size_t n = 0;
    for (int i = 0; i < p->n_vals; i++)
        if (!p->vals[i].is_const) n += p->vals[i].numel;
    return n;
}
