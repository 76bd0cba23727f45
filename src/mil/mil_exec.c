// mil_exec: evaluation of a compiled MilProgram on the CPU. Every op computes
// in fp32 (reductions and softmax sums in double), matmul and conv go through
// gemm(), and in MIL_PREC_FP16 every fp16-typed result is rounded to fp16 (RNE)
// before anything reads it.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/fp16.h"
#include "core/gemm.h"
#include "core/threads.h"
#include "core/transpose8.h"
#include "mil/mil_interp.h"
#include "mil/mil_prog.h"

#if defined(__AVX__)
#include <immintrin.h>
#endif

typedef struct {
    MilProgram *p;
    float **buf;  // per value: its slice of the program's arena (NULL for constants)
    int fp16;     // MIL_PREC_FP16
} Run;

static const float *data_of(const Run *r, int vid) {
    const MilSlot *v = &r->p->vals[vid];
    if (v->is_const) return r->fp16 ? v->c16 : v->c32;
    return r->buf[vid];
}

// --- threads: element ranges of one op on the pool ----------------------------------------
// Each element (or row) is computed exactly as on one thread, so the results
// do not depend on the number of threads.

typedef void (*RangeFn)(const Run *r, const MilStep *s, size_t b, size_t e);

typedef struct {
    const Run *r;
    const MilStep *s;
    RangeFn fn;
    size_t n, align;
} ParJob;

static void par_run(void *ctx, int tid, int nt) {
    const ParJob *j = ctx;
    size_t b, e;
    threads_range(j->n, tid, nt, j->align, &b, &e);
    if (b < e) j->fn(j->r, j->s, b, e);
}

// fn over [0, n) in ranges that are multiples of align; one thread below `work` elements in all.
static void par_ranges(const Run *r, const MilStep *s, size_t n, size_t align, size_t work, RangeFn fn) {
    enum { PAR_MIN = 1 << 16 };
    if (work < PAR_MIN || threads_in_job()) {
        fn(r, s, 0, n);
        return;
    }
    ParJob j = {r, s, fn, n, align};
    threads_run(par_run, &j);
}

// Row-major strides of operand type t, right-aligned to the dims of `out`;
// broadcast (size-1 or missing) dims get stride 0.
static void bcast_strides(const MilType *t, const MilType *out, int64_t *st) {
    int64_t s = 1;
    for (int i = out->rank - 1; i >= 0; i--) {
        int j = i - (out->rank - t->rank);
        int64_t d = j >= 0 ? t->dims[j] : 1;
        st[i] = d == 1 ? 0 : s;
        s *= d;
    }
}

static inline float bin_apply(int op, float x, float y) {
    switch (op) {
    case MB_ADD: return x + y;
    case MB_SUB: return x - y;
    case MB_MUL: return x * y;
    case MB_DIV: return x / y;
    case MB_POW: return powf(x, y);
    case MB_MAX: return x > y || isnan(x) ? x : y;
    default: return x < y || isnan(x) ? x : y;
    }
}

#define BIN_LOOP(EXPR)                                                       \
    for (int64_t i = 0; i < n; i++) {                                        \
        float x = X[i * sx], y = Y[i * sy];                                  \
        Z[i] = (EXPR);                                                       \
    }

// One innermost row: n outputs, operand strides sx, sy in {0, 1, ...}.
static void bin_row(int op, float *Z, const float *X, int64_t sx, const float *Y, int64_t sy, int64_t n) {
    switch (op) {
    case MB_ADD: BIN_LOOP(x + y) break;
    case MB_SUB: BIN_LOOP(x - y) break;
    case MB_MUL: BIN_LOOP(x * y) break;
    case MB_DIV: BIN_LOOP(x / y) break;
    default: BIN_LOOP(bin_apply(op, x, y)) break;
    }
}

// Walks all but the last dim of `dims` (rank >= 1) like an odometer, keeping the
// offset of the current row in up to 3 operands (each with its own strides per dim).
typedef struct {
    int rank;
    const int64_t *dims;
    const int64_t *st[3];
    int n;
    int64_t idx[MIL_TYPE_MAX_RANK];
    int64_t off[3];
} Odo;

static void odo_init(Odo *o, int rank, const int64_t *dims, int n, const int64_t *s0, const int64_t *s1,
                     const int64_t *s2) {
    memset(o, 0, sizeof *o);
    o->rank = rank, o->dims = dims, o->n = n;
    o->st[0] = s0, o->st[1] = s1, o->st[2] = s2;
}

// Advances to the next row; returns 0 after the last one.
static int odo_next(Odo *o) {
    for (int d = o->rank - 2; d >= 0; d--) {
        o->idx[d]++;
        for (int k = 0; k < o->n; k++) o->off[k] += o->st[k][d];
        if (o->idx[d] < o->dims[d]) return 1;
        for (int k = 0; k < o->n; k++) o->off[k] -= o->st[k][d] * o->dims[d];
        o->idx[d] = 0;
    }
    return 0;
}

// Elements [b, e) of a binary op whose operands are whole or one scalar.
static void bin_flat(const Run *r, const MilStep *s, size_t b, size_t e) {
    const MilSlot *vo = &r->p->vals[s->out], *va = &r->p->vals[s->a], *vb = &r->p->vals[s->b];
    const int64_t sx = va->numel == vo->numel, sy = vb->numel == vo->numel;
    bin_row(s->sub, r->buf[s->out] + b, data_of(r, s->a) + b * sx, sx, data_of(r, s->b) + b * sy, sy,
            (int64_t)(e - b));
}

static void exec_binary(const Run *r, const MilStep *s) {
    const MilSlot *vo = &r->p->vals[s->out], *va = &r->p->vals[s->a], *vb = &r->p->vals[s->b];
    const float *X = data_of(r, s->a), *Y = data_of(r, s->b);
    float *Z = r->buf[s->out];
    if ((va->numel == vo->numel || va->numel == 1) && (vb->numel == vo->numel || vb->numel == 1)) {
        par_ranges(r, s, vo->numel, 16, vo->numel, bin_flat);
        return;
    }
    const MilType *to = &vo->type;
    if (to->rank == 0) {
        Z[0] = bin_apply(s->sub, X[0], Y[0]);
        return;
    }
    int64_t sa[MIL_TYPE_MAX_RANK], sb[MIL_TYPE_MAX_RANK];
    bcast_strides(&va->type, to, sa);
    bcast_strides(&vb->type, to, sb);
    int last = to->rank - 1;
    int64_t n = to->dims[last];
    Odo o;
    odo_init(&o, to->rank, to->dims, 2, sa, sb, NULL);
    int64_t zrow = 0;
    do {
        bin_row(s->sub, Z + zrow, X + o.off[0], sa[last], Y + o.off[1], sb[last], n);
        zrow += n;
    } while (odo_next(&o));
}

// exp(d) in fp32 is exactly 0 below d = -103.98 (the smallest subnormal is
// 2^-149): skip the libm call there, where masked scores land and expf takes
// its slow underflow path. The results are expf's.
static inline float exp_or_zero(float d) { return d < -110.0f ? 0.0f : expf(d); }

static void unary_range(const Run *r, const MilStep *s, size_t b, size_t e) {
    const float *X = data_of(r, s->a);
    float *Z = r->buf[s->out];
    switch (s->sub) {
    case MU_SIGMOID: for (size_t i = b; i < e; i++) Z[i] = 1.0f / (1.0f + exp_or_zero(-X[i])); break;
    case MU_EXP: for (size_t i = b; i < e; i++) Z[i] = exp_or_zero(X[i]); break;
    case MU_SQRT: for (size_t i = b; i < e; i++) Z[i] = sqrtf(X[i]); break;
    default: for (size_t i = b; i < e; i++) Z[i] = tanhf(X[i]); break;
    }
}

static void exec_unary(const Run *r, const MilStep *s) {
    const size_t n = r->p->vals[s->out].numel;
    par_ranges(r, s, n, 16, 8 * n, unary_range);  // libm calls: worth threads sooner
}

// Splits a shape around `axis` into outer x axis x inner.
static void split_axis(const MilType *t, int axis, size_t *outer, size_t *len, size_t *inner) {
    *outer = *inner = 1;
    for (int i = 0; i < axis; i++) *outer *= (size_t)t->dims[i];
    *len = (size_t)t->dims[axis];
    for (int i = axis + 1; i < t->rank; i++) *inner *= (size_t)t->dims[i];
}

// Numerically stable softmax over `len` elements spaced `stride` apart.
static void softmax_strided(float *z, const float *x, size_t len, size_t stride) {
    float mx = -INFINITY;
    size_t a = 0;
#if defined(__AVX__)
    if (stride == 1 && len >= 8) {  // max_ps(x, m) keeps m where x is NaN, as the comparison below does
        __m256 m8 = _mm256_set1_ps(-INFINITY);
        for (; a + 8 <= len; a += 8) m8 = _mm256_max_ps(_mm256_loadu_ps(x + a), m8);
        float lanes[8];
        _mm256_storeu_ps(lanes, m8);
        for (int i = 0; i < 8; i++) mx = lanes[i] > mx ? lanes[i] : mx;
    }
#endif
    for (; a < len; a++) mx = x[a * stride] > mx ? x[a * stride] : mx;
    double sum = 0;
    for (a = 0; a < len; a++) {
        float e = exp_or_zero(x[a * stride] - mx);
        z[a * stride] = e;
        sum += e;
    }
    float inv = (float)(1.0 / sum);
    for (a = 0; a < len; a++) z[a * stride] *= inv;
}

// Softmax rows [b, e) of the outer x inner rows.
static void softmax_rows(const Run *r, const MilStep *s, size_t b, size_t e) {
    size_t outer, len, inner;
    split_axis(&r->p->vals[s->a].type, s->axis, &outer, &len, &inner);
    const float *X = data_of(r, s->a);
    float *Z = r->buf[s->out];
    for (size_t row = b; row < e; row++) {
        const size_t o = row / inner, i = row % inner;
        softmax_strided(Z + o * len * inner + i, X + o * len * inner + i, len, inner);
    }
}

static void exec_softmax(const Run *r, const MilStep *s) {
    size_t outer, len, inner;
    split_axis(&r->p->vals[s->a].type, s->axis, &outer, &len, &inner);
    par_ranges(r, s, outer * inner, 1, outer * inner * len, softmax_rows);
}

static int exec_reduce(const Run *r, const MilStep *s) {
    const MilSlot *vi = &r->p->vals[s->a], *vo = &r->p->vals[s->out];
    const MilType *t = &vi->type;
    const float *X = data_of(r, s->a);
    float *Z = r->buf[s->out];
    if (t->rank == 0) {
        Z[0] = X[0];
        return 0;
    }
    double *acc = malloc(sizeof(double) * vo->numel);
    if (!acc) return err_set("mil: out of memory");
    for (size_t i = 0; i < vo->numel; i++) acc[i] = s->sub == MR_SUM ? 0.0 : -INFINITY;
    // output strides over the input's dims (0 for reduced dims)
    int64_t so[MIL_TYPE_MAX_RANK], st = 1;
    for (int i = t->rank - 1; i >= 0; i--) {
        so[i] = (s->red_mask & (1 << i)) ? 0 : st;
        if (!(s->red_mask & (1 << i))) st *= t->dims[i];
    }
    int last = t->rank - 1;
    int64_t n = t->dims[last];
    Odo o;
    odo_init(&o, t->rank, t->dims, 1, so, NULL, NULL);
    const float *row = X;
    do {
        double *a = acc + o.off[0];
        if (s->sub == MR_SUM) {
            if (so[last] == 0) {
                double sum = 0;
                for (int64_t i = 0; i < n; i++) sum += row[i];
                a[0] += sum;
            } else {
                for (int64_t i = 0; i < n; i++) a[i] += row[i];
            }
        } else {
            for (int64_t i = 0; i < n; i++) {
                double *d = a + i * so[last];
                if (row[i] > *d || isnan(row[i])) *d = row[i];
            }
        }
        row += n;
    } while (odo_next(&o));
    for (size_t i = 0; i < vo->numel; i++) Z[i] = (float)acc[i];
    free(acc);
    return 0;
}

// Operand k (x, y) of a matmul or transpose: its data and row stride
// (ld_plain when stored as typed; src_ld when read in place, mil_fuse.c).
static const float *step_operand(const Run *r, const MilStep *s, int k, int ld_plain, int *ld) {
    if (s->src[k] < 0) {
        *ld = ld_plain;
        return data_of(r, k ? s->b : s->a);
    }
    *ld = s->src_ld[k];
    return data_of(r, s->src[k]) + s->src_off[k];
}

// Products [b, e) of a (batched) matmul; inside a pool job each is serial.
static void matmul_batches(const Run *r, const MilStep *s, size_t b, size_t e) {
    const MilSlot *va = &r->p->vals[s->a], *vb = &r->p->vals[s->b], *vo = &r->p->vals[s->out];
    const MilType *to = &vo->type;
    int ra = va->type.rank, ro = to->rank;
    int M = (int)to->dims[ro - 2], N = (int)to->dims[ro - 1];
    int K = (int)(s->tx ? va->type.dims[ra - 2] : va->type.dims[ra - 1]);
    int ldx, ldy;
    const float *X = step_operand(r, s, 0, s->tx ? M : K, &ldx), *Y = step_operand(r, s, 1, s->ty ? K : N, &ldy);
    float *Z = r->buf[s->out];
    // batch strides (in matrices) of x and y over the output's batch dims
    MilType bo = *to, ba = va->type, bb = vb->type;
    bo.rank -= 2, ba.rank -= 2, bb.rank -= 2;
    int64_t sa[MIL_TYPE_MAX_RANK], sb[MIL_TYPE_MAX_RANK];
    bcast_strides(&ba, &bo, sa);
    bcast_strides(&bb, &bo, sb);
    const size_t ma = (size_t)M * K, mb = (size_t)K * N;
    for (size_t bi = b; bi < e; bi++) {
        int64_t oa = 0, ob = 0;  // batch index bi over the output's batch dims
        for (int d = bo.rank - 1, rest = (int)bi; d >= 0; d--) {
            const int64_t i = rest % bo.dims[d];
            rest /= (int)bo.dims[d];
            oa += i * sa[d], ob += i * sb[d];
        }
        gemm(s->tx, s->ty, M, N, K, 1.0f, X + oa * (int64_t)ma, ldx, Y + ob * (int64_t)mb, ldy, 0.0f,
             Z + bi * (size_t)M * N, N);
    }
}

// One product splits across the threads inside gemm(); several (attention's
// heads) go to the threads whole, one product each at a time.
static void exec_matmul(const Run *r, const MilStep *s) {
    const MilType *to = &r->p->vals[s->out].type;
    MilType bo = *to;
    bo.rank -= 2;
    const size_t nbatch = mil_type_numel(&bo);
    if (nbatch < 2) matmul_batches(r, s, 0, nbatch);
    else par_ranges(r, s, nbatch, 1, r->p->vals[s->out].numel, matmul_batches);
}

static void exec_conv(const Run *r, const MilStep *s) {
    const MilType *tx = &r->p->vals[s->a].type, *tw = &r->p->vals[s->b].type;
    int N = (int)tx->dims[0], C = (int)tx->dims[1], HW = (int)(tx->dims[2] * tx->dims[3]);
    int OC = (int)tw->dims[0], G = s->groups, ICg = C / G, OCg = OC / G;
    const float *X = data_of(r, s->a), *W = data_of(r, s->b), *B = s->c >= 0 ? data_of(r, s->c) : NULL;
    float *Z = r->buf[s->out];
    for (int n = 0; n < N; n++)
        for (int g = 0; g < G; g++) {
            // Z[n, g-block] [OCg, HW] = W[g-block] [OCg, ICg] · X[n, g-block] [ICg, HW]
            float *z = Z + ((size_t)n * OC + (size_t)g * OCg) * HW;
            gemm(0, 0, OCg, HW, ICg, 1.0f, W + (size_t)g * OCg * ICg, ICg, X + ((size_t)n * C + (size_t)g * ICg) * HW,
                 HW, 0.0f, z, HW);
            if (B)
                for (int o = 0; o < OCg; o++)
                    for (int i = 0; i < HW; i++) z[(size_t)o * HW + i] += B[g * OCg + o];
        }
}

enum { TILE = 16 };

#if defined(__AVX__)
// z[j][i] = x[i][j] for an 8 x 8 block (x rows cx apart, z rows cz apart).
static void transpose8(float *z, size_t cz, const float *x, size_t cx) {
    __m256 r[8], t[8];
    for (int k = 0; k < 8; k++) r[k] = _mm256_loadu_ps(x + k * cx);
    transpose8_ps(r, t);
    for (int k = 0; k < 8; k++) _mm256_storeu_ps(z + k * cz, t[k]);
}
#endif

// Tiles [b, e) of the batch x row-tiles of a last-two-dims transpose, TILE x TILE at a time.
static void transpose_tiles(const Run *r, const MilStep *s, size_t b, size_t e) {
    const size_t T = TILE;
    const MilType *ti = &r->p->vals[s->a].type;
    const size_t R = (size_t)ti->dims[ti->rank - 2], C = (size_t)ti->dims[ti->rank - 1], tiles = (R + T - 1) / T;
    int ldi;  // read in place (mil_fuse.c): then one matrix, its rows src_ld apart
    const float *X = step_operand(r, s, 0, (int)C, &ldi);
    const size_t ld = (size_t)ldi;
    float *Z = r->buf[s->out];
    for (size_t t = b; t < e; t++) {
        const size_t m = t / tiles, i0 = t % tiles * T, i1 = i0 + T < R ? i0 + T : R;
        const float *x = X + m * R * ld;
        float *z = Z + m * R * C;
        for (size_t j0 = 0; j0 < C; j0 += T) {
            const size_t j1 = j0 + T < C ? j0 + T : C;
#if defined(__AVX__)
            if (i1 - i0 == T && j1 - j0 == T) {
                for (size_t i = i0; i < i1; i += 8)
                    for (size_t j = j0; j < j1; j += 8) transpose8(z + j * R + i, R, x + i * ld + j, ld);
                continue;
            }
#endif
            for (size_t i = i0; i < i1; i++)
                for (size_t j = j0; j < j1; j++) z[j * R + i] = x[i * ld + j];
        }
    }
}

static void exec_transpose(const Run *r, const MilStep *s) {
    const MilType *ti = &r->p->vals[s->a].type, *to = &r->p->vals[s->out].type;
    if (mil_step_swaps_last_two(s, ti->rank)) {  // a batch of [R, C] -> [C, R]
        const size_t n = r->p->vals[s->a].numel, R = (size_t)ti->dims[ti->rank - 2];
        const size_t batch = n / (R * (size_t)ti->dims[ti->rank - 1]);
        par_ranges(r, s, batch * ((R + TILE - 1) / TILE), 1, n, transpose_tiles);
        return;
    }
    const float *X = data_of(r, s->a);
    float *Z = r->buf[s->out];
    if (to->rank == 0) {
        Z[0] = X[0];
        return;
    }
    int64_t si[MIL_TYPE_MAX_RANK], sp[MIL_TYPE_MAX_RANK];
    bcast_strides(ti, ti, si);
    for (int d = 0; d < ti->rank; d++)
        if (ti->dims[d] == 1) si[d] = 0;  // harmless: index is always 0 there
    for (int d = 0; d < to->rank; d++) sp[d] = si[s->perm[d]];
    int last = to->rank - 1;
    int64_t n = to->dims[last], step = sp[last];
    Odo o;
    odo_init(&o, to->rank, to->dims, 1, sp, NULL, NULL);
    float *z = Z;
    do {
        const float *x = X + o.off[0];
        for (int64_t i = 0; i < n; i++) z[i] = x[i * step];
        z += n;
    } while (odo_next(&o));
}

static void exec_slice(const Run *r, const MilStep *s) {
    const MilType *ti = &r->p->vals[s->a].type, *to = &r->p->vals[s->out].type;
    const float *X = data_of(r, s->a);
    float *Z = r->buf[s->out];
    if (to->rank == 0) {
        Z[0] = X[0];
        return;
    }
    int64_t si[MIL_TYPE_MAX_RANK], base = 0, st = 1;
    for (int d = ti->rank - 1; d >= 0; d--) {
        si[d] = st;
        base += s->begin[d] * st;
        st *= ti->dims[d];
    }
    int last = to->rank - 1;
    int64_t n = to->dims[last];
    Odo o;
    odo_init(&o, to->rank, to->dims, 1, si, NULL, NULL);
    float *z = Z;
    do {
        memcpy(z, X + base + o.off[0], sizeof(float) * (size_t)n);
        z += n;
    } while (odo_next(&o));
}

static void exec_concat(const Run *r, const MilStep *s) {
    const MilType *to = &r->p->vals[s->out].type;
    size_t outer, len, inner;
    split_axis(to, s->axis, &outer, &len, &inner);
    float *z = r->buf[s->out];
    if (s->interleave) {  // out[.., a*n + k, ..] = values[k][.., a, ..]
        size_t d = len / (size_t)s->n_list;
        for (size_t o = 0; o < outer; o++)
            for (size_t a = 0; a < d; a++)
                for (int k = 0; k < s->n_list; k++) {
                    memcpy(z, data_of(r, s->list[k]) + (o * d + a) * inner, sizeof(float) * inner);
                    z += inner;
                }
        return;
    }
    for (size_t o = 0; o < outer; o++)
        for (int k = 0; k < s->n_list; k++) {
            size_t chunk = (size_t)r->p->vals[s->list[k]].type.dims[s->axis] * inner;
            const float *x = data_of(r, s->list[k]) + o * chunk;
            if (x != z) memcpy(z, x, sizeof(float) * chunk);  // (computed in place: arena_plan)
            z += chunk;
        }
}

static void exec_cast(const Run *r, const MilStep *s) {
    size_t n = r->p->vals[s->out].numel;
    const float *X = data_of(r, s->a);
    float *Z = r->buf[s->out];
    switch (s->to) {
    case MIL_DT_INT32:  // toward zero, saturating; NaN -> 0 (values stay exact in float up to 2^24)
        for (size_t i = 0; i < n; i++) {
            float v = X[i];
            Z[i] = isnan(v) ? 0.0f : v >= 2147483647.0f ? 2147483647.0f : v <= -2147483648.0f ? -2147483648.0f : truncf(v);
        }
        break;
    case MIL_DT_BOOL:
        for (size_t i = 0; i < n; i++) Z[i] = X[i] != 0.0f;
        break;
    default:  // fp16 rounding (in fp16 mode) happens with every fp16 result
        memcpy(Z, X, sizeof(float) * n);
        break;
    }
}

static int exec_sdpa(const Run *r, const MilStep *s) {
    const MilType *tq = &r->p->vals[s->a].type, *tk = &r->p->vals[s->b].type, *tv = &r->p->vals[s->c].type;
    int rank = tq->rank;
    int L = (int)tq->dims[rank - 2], E = (int)tq->dims[rank - 1], S = (int)tk->dims[rank - 2],
        EV = (int)tv->dims[rank - 1];
    size_t nb = 1;
    for (int i = 0; i < rank - 2; i++) nb *= (size_t)tq->dims[i];
    const float *Q = data_of(r, s->a), *K = data_of(r, s->b), *V = data_of(r, s->c);
    float *Z = r->buf[s->out];
    float *P = malloc(sizeof(float) * (size_t)L * S);
    if (!P) return err_set("mil: out of memory");
    float scale = 1.0f / sqrtf((float)E);
    for (size_t b = 0; b < nb; b++) {
        gemm(0, 1, L, S, E, scale, Q + b * (size_t)L * E, E, K + b * (size_t)S * E, E, 0.0f, P, S);
        for (int i = 0; i < L; i++) softmax_strided(P + (size_t)i * S, P + (size_t)i * S, (size_t)S, 1);
        gemm(0, 0, L, EV, S, 1.0f, P, S, V + b * (size_t)S * EV, EV, 0.0f, Z + b * (size_t)L * EV, EV);
    }
    free(P);
    return 0;
}

static int exec_step(const Run *r, const MilStep *s) {
    switch (s->kind) {
    case MK_BIN: exec_binary(r, s); return 0;
    case MK_UNARY: exec_unary(r, s); return 0;
    case MK_SOFTMAX: exec_softmax(r, s); return 0;
    case MK_REDUCE: return exec_reduce(r, s);
    case MK_MATMUL: exec_matmul(r, s); return 0;
    case MK_CONV: exec_conv(r, s); return 0;
    case MK_RESHAPE:  // planned as a view of its input where it can be (arena_plan)
        if (r->buf[s->out] != data_of(r, s->a))
            memcpy(r->buf[s->out], data_of(r, s->a), sizeof(float) * r->p->vals[s->out].numel);
        return 0;
    case MK_TRANSPOSE: exec_transpose(r, s); return 0;
    case MK_SLICE: exec_slice(r, s); return 0;
    case MK_CONCAT: exec_concat(r, s); return 0;
    case MK_CAST: exec_cast(r, s); return 0;
    case MK_SDPA: return exec_sdpa(r, s);
    case MK_DEAD: return 0;
    }
    return 0;
}

// --- buffers: one arena, planned from lifetimes ----------------------------------------

typedef struct {
    size_t off, n;
} Block;

typedef struct {
    Block *free_;      // released blocks, reused best-fit
    int n_free;
    size_t top;        // arena size so far, floats
    unsigned char *held;
} Plan;

// A value's slice: at least one float, rounded up to 64 bytes.
static size_t slot_floats(size_t numel) { return ((numel ? numel : 1) + 15) & ~(size_t)15; }

static size_t plan_take(Plan *pl, size_t numel) {
    const size_t n = slot_floats(numel);
    int best = -1;
    for (int i = 0; i < pl->n_free; i++)
        if (pl->free_[i].n >= n && (best < 0 || pl->free_[i].n < pl->free_[best].n)) best = i;
    if (best < 0) {
        pl->top += n;
        return pl->top - n;
    }
    Block *b = &pl->free_[best];
    const size_t off = b->off;
    b->off += n, b->n -= n;
    if (b->n == 0) *b = pl->free_[--pl->n_free];
    return off;
}

static void plan_release(Plan *pl, const MilProgram *p, int id) {
    if (!pl->held[id]) return;  // a value read twice by one step is released once
    pl->held[id] = 0;
    pl->free_[pl->n_free++] = (Block){p->arena_off[id], slot_floats(p->vals[id].numel)};
}

// A reshape of a computed value is a view: the same slice under another
// type, so it costs nothing (its elements are the same in the same order).
static int is_view(const MilProgram *p, const MilStep *s) {
    return s->kind == MK_RESHAPE && !p->vals[s->a].is_const;
}

// The value whose slice v uses (itself, or the root of a chain of views), and
// for each root the last step that reads any of its views and whether one of
// them is the program's input or output (never released).
static void view_roots(const MilProgram *p, int *root, int *end, unsigned char *io) {
    for (int v = 0; v < p->n_vals; v++) root[v] = v, end[v] = -1, io[v] = 0;
    for (int i = 0; i < p->n_steps; i++)
        if (is_view(p, &p->steps[i])) root[p->steps[i].out] = root[p->steps[i].a];  // operands come first
    for (int v = 0; v < p->n_vals; v++) {
        const int r = root[v];
        if (p->vals[v].last_use > end[r]) end[r] = p->vals[v].last_use;
        io[r] |= (unsigned char)p->vals[v].is_io;
    }
}

// The program's output is often a concat of results along its first non-unit
// dim: then each of those results (or the value it is a view of) is a
// contiguous block of the output, and is computed there, in place (at[v] =
// its offset in the output; SIZE_MAX for values that are not). The output's
// slice is taken first for that.
static void place_in_output(const MilProgram *p, const int *root, size_t out_off, size_t *at) {
    for (int v = 0; v < p->n_vals; v++) at[v] = SIZE_MAX;
    const MilStep *s = NULL;
    for (int i = 0; i < p->n_steps; i++)
        if (p->steps[i].out == p->output) s = &p->steps[i];
    if (!s || s->kind != MK_CONCAT || s->interleave) return;
    size_t outer, len, inner;
    split_axis(&p->vals[s->out].type, s->axis, &outer, &len, &inner);
    if (outer != 1) return;
    size_t off = out_off;
    for (int k = 0; k < s->n_list; k++) {  // a view's root, which has its elements, goes there
        const int v = root[s->list[k]];
        if (!p->vals[v].is_const && v != p->input && at[v] == SIZE_MAX) at[v] = off;
        off += (size_t)p->vals[s->list[k]].type.dims[s->axis] * inner;
    }
}

// Gives back the slices whose last reader is step s (index i).
static void release_after(Plan *pl, const MilProgram *p, const MilStep *s, int i, const int *root, const int *end,
                          const unsigned char *io) {
    const int ids[6] = {s->a, s->b, s->c, s->src[0], s->src[1], s->out};
    for (int k = 0; k < 6 + s->n_list; k++) {
        const int id = k < 6 ? ids[k] : s->list[k - 6];
        if (id < 0 || p->vals[id].is_const) continue;
        const int r = root[id];
        if (end[r] == i && !io[r]) plan_release(pl, p, r);
    }
}

// Every computed value gets its slice when it is produced and gives it back
// after its last reader (of it or of a view of it), as the step loop used to
// malloc and free them; a step's output never shares memory with its operands
// (they are released after it runs), but for a view, which computes nothing.
static int arena_plan(MilProgram *p) {
    const size_t nv = (size_t)p->n_vals;
    Plan pl = {malloc(sizeof(Block) * (nv + 1)), 0, 0, calloc(nv, 1)};
    int *root = malloc(sizeof(int) * nv), *end = malloc(sizeof(int) * nv);
    unsigned char *io = malloc(nv);
    size_t *at = malloc(sizeof(size_t) * nv);
    p->arena_off = calloc(nv, sizeof(size_t));
    if (!pl.free_ || !pl.held || !root || !end || !io || !at || !p->arena_off) goto oom;
    view_roots(p, root, end, io);
    p->arena_off[p->input] = plan_take(&pl, p->vals[p->input].numel);
    pl.held[p->input] = 1;
    const int out_first = root[p->output] == p->output && p->output != p->input;  // not a view
    if (out_first) {
        p->arena_off[p->output] = plan_take(&pl, p->vals[p->output].numel);
        pl.held[p->output] = 1;
        place_in_output(p, root, p->arena_off[p->output], at);
    } else {
        for (int v = 0; v < p->n_vals; v++) at[v] = SIZE_MAX;
    }
    for (int i = 0; i < p->n_steps; i++) {
        const MilStep *s = &p->steps[i];
        if (out_first && s->out == p->output) {
            // taken above
        } else if (is_view(p, s)) {
            p->arena_off[s->out] = p->arena_off[root[s->out]];
        } else if (at[s->out] != SIZE_MAX) {
            p->arena_off[s->out] = at[s->out];  // in the output, never given back
        } else {
            p->arena_off[s->out] = plan_take(&pl, p->vals[s->out].numel);
            pl.held[s->out] = 1;
        }
        // a pair (with_next) runs at once: its first step's values live through the second
        if (s->with_next) continue;
        release_after(&pl, p, s, i, root, end, io);
        if (i > 0 && p->steps[i - 1].with_next) release_after(&pl, p, s - 1, i - 1, root, end, io);
    }
    p->arena = aligned_alloc(64, (pl.top ? pl.top : 16) * sizeof(float));
    p->bufs = malloc(sizeof(float *) * nv);
    if (!p->arena || !p->bufs) goto oom;
    for (int i = 0; i < p->n_vals; i++) p->bufs[i] = p->vals[i].is_const ? NULL : p->arena + p->arena_off[i];
    free(pl.free_), free(pl.held), free(root), free(end), free(io), free(at);
    return 0;
oom:
    free(pl.free_), free(pl.held), free(root), free(end), free(io), free(at);
    free(p->arena_off), free(p->arena), free(p->bufs);
    p->arena_off = NULL, p->arena = NULL, p->bufs = NULL;
    return err_set("mil: out of memory planning the buffers of a program");
}

// Ops that only move values: their results are their operands' values, so in
// fp16 mode they are fp16 already and need no rounding.
static int moves_only(const MilProgram *p, const MilStep *s) {
    if (s->kind != MK_RESHAPE && s->kind != MK_TRANSPOSE && s->kind != MK_SLICE && s->kind != MK_CONCAT) return 0;
    const MilDt dt = p->vals[s->out].type.dtype;
    if (s->kind != MK_CONCAT) return p->vals[s->a].type.dtype == dt;
    for (int k = 0; k < s->n_list; k++)
        if (p->vals[s->list[k]].type.dtype != dt) return 0;
    return 1;
}

static void round_range(const Run *r, const MilStep *s, size_t b, size_t e) {
    fp16_round_array(r->buf[s->out] + b, r->buf[s->out] + b, e - b);
}

// Two independent matmuls (MilStep.with_next), one per thread; both on this
// one when the pool is busy.
static void pair_run(void *ctx, int tid, int nt) {
    const Run *r = ((const Run *const *)ctx)[0];
    const MilStep *s = ((const MilStep *const *)ctx)[1];
    for (int k = tid; k < 2; k += nt) exec_matmul(r, s + k);
}

// The steps, on an input already in the input value's buffer.
static int run_steps(MilProgram *p, const Run *r) {
    for (int i = 0; i < p->n_steps; i++) {
        const MilStep *s = &p->steps[i];
        const int n = s->with_next ? 2 : 1;
        if (n == 2 && threads_count() == 2) {  // more threads: each product splits across all of them
            const void *ctx[2] = {r, s};
            threads_run_n(pair_run, (void *)ctx, 2);
        } else {
            for (int k = 0; k < n; k++)
                if (exec_step(r, s + k) != 0) return -1;
        }
        for (int k = 0; k < n; k++) {
            const MilSlot *vo = &p->vals[s[k].out];
            if (r->fp16 && vo->type.dtype == MIL_DT_FP16 && !moves_only(p, &s[k]))
                par_ranges(r, &s[k], vo->numel, 16, vo->numel, round_range);
        }
        i += n - 1;
    }
    return 0;
}

int mil_program_eval(MilProgram *p, MilPrecision prec, const float *in, float *out) {
    if (!p->arena && arena_plan(p) != 0) return -1;
    Run r = {p, p->bufs, prec == MIL_PREC_FP16};
    const MilSlot *vin = &p->vals[p->input];
    if (r.fp16)
        fp16_round_array(r.buf[p->input], in, vin->numel);
    else
        memcpy(r.buf[p->input], in, sizeof(float) * vin->numel);
    if (run_steps(p, &r) != 0) return -1;
    const MilSlot *vout = &p->vals[p->output];
    const float *src = data_of(&r, p->output);
    if (r.fp16 && vout->is_const)
        fp16_round_array(out, src, vout->numel);
    else
        memcpy(out, src, sizeof(float) * vout->numel);
    return 0;
}

// fp16 surfaces in and out: converted straight into and out of the arena (an
// fp16 value is exact in fp32 and the output is fp16 already, so this is
// mil_program_eval in MIL_PREC_FP16 between two conversions, without them).
int mil_program_run(MilProgram *p, const uint16_t *in, uint16_t *out) {
    if (!p->arena && arena_plan(p) != 0) return -1;
    Run r = {p, p->bufs, 1};
    fp16_to_f32_array(r.buf[p->input], in, p->vals[p->input].numel);
    if (run_steps(p, &r) != 0) return -1;
    fp16_from_f32_array(out, data_of(&r, p->output), p->vals[p->output].numel);
    return 0;
}

int mil_program_run_f32(MilProgram *p, const float *in, float *out) {
    return mil_program_eval(p, MIL_PREC_FP32, in, out);
}
