// ops_f16: ops fused with the fp16 surface reads and writes of the device
// pipelines (ops_fast.h). Each works a slice at a time — a thread's positions
// of every row, or a row in pieces of F16_SLICE values — so the fp32 values an
// op reads or writes are converted while they are still in cache, instead of
// in a second pass over the whole activation.
#include <string.h>

#include "cpu/ops_fast.h"

enum { F16_SLICE = 512 };  // values of a row converted at a time (2 KB of fp32 an operand, on the stack)

// The values of the slice of a row of n that starts at t.
static size_t slice(size_t n, size_t t) { return n - t < F16_SLICE ? n - t : F16_SLICE; }

typedef struct {
    float *y;
    F16Rows y16, o;
    const float *x;
    float s;
    int cols;
} AxpyF16;

static void axpy_f16_run(void *ctx, size_t b, size_t e) {
    const AxpyF16 *j = ctx;
    float o[F16_SLICE];
    for (size_t r = b; r < e; r++)
        for (size_t t = 0; t < (size_t)j->cols; t += F16_SLICE) {
            const size_t n = slice((size_t)j->cols, t);
            float *y = j->y + r * j->cols + t;
            const float *x = j->x + r * j->cols + t;
            if (j->o.p) {
                fp16_to_f32_array(o, j->o.p + r * j->o.ld + t, n);
                for (size_t i = 0; i < n; i++) y[i] = x[i] + j->s * o[i];
            } else {
                for (size_t i = 0; i < n; i++) y[i] = j->s * x[i];
            }
            if (j->y16.p) fp16_from_f32_array(j->y16.p + r * j->y16.ld + t, y, n);
        }
}

void axpy_f16(float *y, F16Rows y16, const float *x, F16Rows o, float s, int rows, int cols) {
    AxpyF16 j = {y, y16, o, x, s, cols};
    par_for((size_t)rows, 1, 4.0 * cols, axpy_f16_run, &j);
}

typedef struct {
    float *y, *rstd;
    F16Rows y16;
    const float *x, *w;
    int C, S;
    float eps;
} NormF16;

static void norm_f16_run(void *ctx, size_t b, size_t e) {
    const NormF16 *j = ctx;
    rmsnorm_forward_range(j->y, j->rstd, j->x, j->w, j->C, j->S, j->eps, b, e);
    for (int c = 0; c < j->C; c++)
        fp16_from_f32_array(j->y16.p + (size_t)c * j->y16.ld + b, j->y + (size_t)c * j->S + b, e - b);
}

void rmsnorm_forward_f16(float *y, F16Rows y16, float *rstd, const float *x, const float *w, int C, int S, float eps) {
    NormF16 j = {y, rstd, y16, x, w, C, S, eps};
    par_for((size_t)S, 8, 4.0 * C, norm_f16_run, &j);
}

typedef struct {
    float *dh1, *dh3;
    F16Rows dh1_16, dh3_16, dg, h1, h3;
    int rows, cols;
} SwiF16;

static void swiglu_f16_run(void *ctx, size_t b, size_t e) {
    const SwiF16 *j = ctx;
    float dg[F16_SLICE], h1[F16_SLICE], h3[F16_SLICE];
    const size_t vec_end = SWIGLU_VECTOR_END((size_t)j->rows * j->cols);  // as swiglu_backward over the whole array
    for (size_t r = b; r < e; r++)
        for (size_t t = 0; t < (size_t)j->cols; t += F16_SLICE) {
            const size_t n = slice((size_t)j->cols, t);
            const size_t i = r * j->cols + t;
            fp16_to_f32_array(dg, j->dg.p + r * j->dg.ld + t, n);
            fp16_to_f32_array(h1, j->h1.p + r * j->h1.ld + t, n);
            fp16_to_f32_array(h3, j->h3.p + r * j->h3.ld + t, n);
            swiglu_backward_span(j->dh1 + i, j->dh3 + i, dg, h1, h3, n, vec_end > i ? vec_end - i : 0);
            fp16_from_f32_array(j->dh1_16.p + r * j->dh1_16.ld + t, j->dh1 + i, n);
            fp16_from_f32_array(j->dh3_16.p + r * j->dh3_16.ld + t, j->dh3 + i, n);
        }
}

void swiglu_backward_f16(float *dh1, float *dh3, F16Rows dh1_16, F16Rows dh3_16, F16Rows dg, F16Rows h1, F16Rows h3,
                         int rows, int cols) {
    SwiF16 j = {dh1, dh3, dh1_16, dh3_16, dg, h1, h3, rows, cols};
    par_for((size_t)rows, 1, 12.0 * cols, swiglu_f16_run, &j);
}
