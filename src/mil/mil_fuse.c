// mil_fuse: rewrites of a compiled program that leave every value it computes
// the same, bit for bit, but move less memory (mil_interp.h,
// mil_program_compile). A matmul operand, or the input of a transpose of the
// last two dims, that is a slice of rows of another value (its last dim cut,
// the others whole), through reshapes that keep those rows, is read in place
// with that value's row stride: the weights and activations our kernels stage
// into the input surface are used where they lie instead of being copied out
// first. Then steps nothing reads any more are dropped, and independent big
// matmuls of a kernel are made neighbours and marked to run at once, one per
// thread (MilStep.with_next).
//
// Not done, because the result would change: folding a transpose of the last
// two dims into a matmul's transpose flag (or the matmul's output, Cᵀ = Bᵀ Aᵀ)
// asks BLAS for another kernel, and OpenBLAS's small-matrix kernels add the
// products in another order for each arrangement.
//
// The ANE rules were checked on the program as written, before any of this.
#include <stdlib.h>
#include <string.h>

#include "core/gemm.h"
#include "mil/mil_interp.h"
#include "mil/mil_prog.h"

int mil_step_swaps_last_two(const MilStep *s, int rank) {
    if (s->kind != MK_TRANSPOSE || rank < 2) return 0;
    for (int d = 0; d < rank - 2; d++)
        if (s->perm[d] != d) return 0;
    return s->perm[rank - 2] == rank - 1 && s->perm[rank - 1] == rank - 2;
}

// The step producing each value (-1: input or constant).
static void producers(const MilProgram *p, int *prod) {
    for (int v = 0; v < p->n_vals; v++) prod[v] = -1;
    for (int i = 0; i < p->n_steps; i++)
        if (p->steps[i].kind != MK_DEAD) prod[p->steps[i].out] = i;
}

static void count_read(int id, int *readers) {
    if (id >= 0) readers[id]++;
}

// How many step operands read each value (an operand read in place counts
// for the value it reads).
static void count_readers(const MilProgram *p, int *readers) {
    memset(readers, 0, sizeof(int) * (size_t)p->n_vals);
    for (int i = 0; i < p->n_steps; i++) {
        const MilStep *s = &p->steps[i];
        if (s->kind == MK_DEAD) continue;
        count_read(s->src[0] >= 0 ? s->src[0] : s->a, readers);
        count_read(s->src[1] >= 0 ? s->src[1] : s->b, readers);
        count_read(s->c, readers);
        for (int k = 0; k < s->n_list; k++) count_read(s->list[k], readers);
    }
}

// The operand read in place: a slice of rows [.., w] of a [.., W] value, reshaped to a [R, w] matrix.
static void operand_in_place(MilProgram *p, MilStep *m, int k, const int *prod) {
    const int opnd = k ? m->b : m->a;
    if (opnd < 0) return;
    const MilType *to = &p->vals[opnd].type;
    for (int d = 0; d < to->rank - 2; d++)
        if (to->dims[d] != 1) return;  // one matrix
    int v = opnd;
    while (prod[v] >= 0 && p->steps[prod[v]].kind == MK_RESHAPE && !p->vals[p->steps[prod[v]].a].is_const)
        v = p->steps[prod[v]].a;
    const int si = prod[v];
    if (si < 0 || p->steps[si].kind != MK_SLICE) return;
    const MilStep *s = &p->steps[si];
    const MilType *ts = &p->vals[v].type, *tx = &p->vals[s->a].type;
    const int last = ts->rank - 1;
    // rows: whole leading dims, or a range of the one non-unit leading dim of
    // the source (channels [c0, c0+n) of a [1, C, 1, W] surface: rows W apart)
    int part = -1;
    for (int d = 0; d < last; d++)
        if (s->begin[d] != 0 || ts->dims[d] != tx->dims[d]) part = part < 0 ? d : -2;
    if (part == -2) return;
    int64_t off = s->begin[last];
    if (part >= 0) {
        for (int d = 0; d < last; d++)
            if (d != part && tx->dims[d] != 1) return;
        off += s->begin[part] * tx->dims[last];
    }
    if (p->vals[s->a].is_const || ts->dims[last] != to->dims[to->rank - 1] || ts->dtype != to->dtype) return;
    m->src[k] = s->a;
    m->src_off[k] = off;
    m->src_ld[k] = (int)tx->dims[last];
}

static int reads_value(const MilStep *s, int v) {
    if (s->a == v || s->b == v || s->c == v || s->src[0] == v || s->src[1] == v) return 1;
    for (int k = 0; k < s->n_list; k++)
        if (s->list[k] == v) return 1;
    return 0;
}

static int one_big_product(const MilProgram *p, const MilStep *s) {
    if (s->kind != MK_MATMUL) return 0;
    const MilType *to = &p->vals[s->out].type, *ta = &p->vals[s->a].type;
    size_t batch = 1;
    for (int d = 0; d < to->rank - 2; d++) batch *= (size_t)to->dims[d];
    const double K = (double)(s->tx ? ta->dims[ta->rank - 2] : ta->dims[ta->rank - 1]);
    return batch == 1 && 2.0 * to->dims[to->rank - 2] * to->dims[to->rank - 1] * K >= GEMM_SPLIT_MIN_FLOPS;
}

// Pairs of independent products (q, k and v from one input; W1 and W3; the
// two halves of a summed input gradient): the next big matmul, when it does
// not read this one, moves up beside it if its operands are ready, or this
// one moves down beside it if nothing in between reads it.
static void pair_matmuls(MilProgram *p, int *prod) {
    for (int i = 0; i + 1 < p->n_steps; i++) {
        if (!one_big_product(p, &p->steps[i]) || (i > 0 && p->steps[i - 1].with_next)) continue;
        producers(p, prod);
        for (int j = i + 1; j < p->n_steps; j++) {
            const MilStep *m = &p->steps[j];
            if (!one_big_product(p, m)) continue;
            if (reads_value(m, p->steps[i].out)) break;  // dependent: the first big product after i only
            const int ids[2] = {m->src[0] >= 0 ? m->src[0] : m->a, m->src[1] >= 0 ? m->src[1] : m->b};
            int ready = 1;
            for (int k = 0; k < 2 && ready; k++) ready = prod[ids[k]] < i;
            if (ready) {  // j moves up beside i
                const MilStep moved = *m;
                memmove(&p->steps[i + 2], &p->steps[i + 1], sizeof(MilStep) * (size_t)(j - i - 1));
                p->steps[i + 1] = moved;
                p->steps[i].with_next = 1;
                break;
            }
            int read_between = 0;  // else i moves down beside j, if nothing between reads it
            for (int t = i + 1; t < j && !read_between; t++) read_between = reads_value(&p->steps[t], p->steps[i].out);
            if (!read_between) {
                const MilStep moved = p->steps[i];
                memmove(&p->steps[i], &p->steps[i + 1], sizeof(MilStep) * (size_t)(j - i - 1));
                p->steps[j - 1] = moved;
                p->steps[j - 1].with_next = 1;
                i = j;  // past the pair
            }
            break;
        }
    }
}

// Drops steps whose results nobody reads, until none is left, and packs the rest.
static void drop_dead(MilProgram *p, int *readers) {
    for (int changed = 1; changed;) {
        changed = 0;
        count_readers(p, readers);
        for (int i = 0; i < p->n_steps; i++) {
            MilStep *s = &p->steps[i];
            if (s->kind != MK_DEAD && s->out != p->output && readers[s->out] == 0) s->kind = MK_DEAD, changed = 1;
        }
    }
    int n = 0;
    for (int i = 0; i < p->n_steps; i++) {
        if (p->steps[i].kind != MK_DEAD) p->steps[n++] = p->steps[i];
        else free(p->steps[i].list);
    }
    p->n_steps = n;
}

int mil_program_fuse(MilProgram *p) {
    int *prod = malloc(sizeof(int) * (size_t)p->n_vals), *readers = malloc(sizeof(int) * (size_t)p->n_vals);
    if (!prod || !readers) {
        free(prod), free(readers);
        return -1;
    }
    producers(p, prod);
    for (int i = 0; i < p->n_steps; i++) {
        MilStep *s = &p->steps[i];
        if (s->kind == MK_MATMUL)
            for (int k = 0; k < 2; k++) operand_in_place(p, s, k, prod);
        if (s->kind == MK_TRANSPOSE && mil_step_swaps_last_two(s, p->vals[s->a].type.rank))
            operand_in_place(p, s, 0, prod);
    }
    drop_dead(p, readers);
    pair_matmuls(p, prod);
    free(prod), free(readers);
    return 0;
}
