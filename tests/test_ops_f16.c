// The ops fused with fp16 surface I/O (cpu/ops_fast.h, ops_f16.c) against the
// op followed (or preceded) by the array conversions, bit for bit, on rows
// wider than the data (the padding must stay untouched); and the region rows
// a fused op gets (mil_kernel_rows), with the regions it must refuse.
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/fp16.h"
#include "core/rng.h"
#include "cpu/ops_fast.h"
#include "mil/kernels.h"
#include "model/config.h"
#include "test.h"

enum { PAD = 0x7e01, LD_EXTRA = 11 };  // a NaN no conversion produces, in the columns past the data

static float *randn(Rng *r, size_t n, float scale) {
    float *x = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) x[i] = scale * rng_normal(r);
    return x;
}

static uint16_t *padded_rows(int rows, size_t ld) {
    uint16_t *s = malloc(sizeof(uint16_t) * rows * ld);
    for (size_t i = 0; i < (size_t)rows * ld; i++) s[i] = PAD;
    return s;
}

// Row r of the surface holds want's row r (fp16 of it when want32, else want16) and PAD after it.
static int rows_match(const uint16_t *s, size_t ld, int rows, int cols, const float *want32, const uint16_t *want16) {
    for (int r = 0; r < rows; r++)
        for (size_t c = 0; c < ld; c++) {
            const size_t i = (size_t)r * cols + c;
            const uint16_t w = c >= (size_t)cols ? PAD : want32 ? fp16_from_f32(want32[i]) : want16[i];
            if (s[r * ld + c] != w) return 0;
        }
    return 1;
}

static void check_rmsnorm(int C, int S) {
    Rng r;
    rng_init(&r, 7u + C * 31u + S);
    float *x = randn(&r, (size_t)C * S, 2.0f), *w = randn(&r, C, 1.0f);
    float *y = malloc(sizeof(float) * C * S), *rstd = malloc(sizeof(float) * S);
    float *y_ref = malloc(sizeof(float) * C * S), *rstd_ref = malloc(sizeof(float) * S);
    const size_t ld = (size_t)S + LD_EXTRA;
    uint16_t *s = padded_rows(C, ld);
    rmsnorm_forward(y_ref, rstd_ref, x, w, C, S, 1e-5f);
    rmsnorm_forward_f16(y, (F16Rows){s, ld}, rstd, x, w, C, S, 1e-5f);
    CHECKF(memcmp(y, y_ref, sizeof(float) * C * S) == 0, "rmsnorm [%d,%d]: fp32 output differs from rmsnorm_forward", C,
           S);
    CHECKF(memcmp(rstd, rstd_ref, sizeof(float) * S) == 0, "rmsnorm [%d,%d]: rstd differs", C, S);
    CHECKF(rows_match(s, ld, C, S, y_ref, NULL), "rmsnorm [%d,%d]: fp16 rows differ from the converted output", C, S);
    free(x), free(w), free(y), free(rstd), free(y_ref), free(rstd_ref), free(s);
}

static void check_swiglu(int H, int S) {
    Rng r;
    rng_init(&r, 11u + H * 17u + S);
    const size_t n = (size_t)H * S, ld = (size_t)S + LD_EXTRA;
    float *in32[3] = {randn(&r, n, 1.0f), randn(&r, n, 3.0f), randn(&r, n, 1.0f)};  // dg, h1, h3
    uint16_t *in16[3], *o1 = padded_rows(H, ld), *o3 = padded_rows(H, ld);
    for (int a = 0; a < 3; a++) {
        in16[a] = padded_rows(H, ld);
        for (int i = 0; i < H; i++) fp16_from_f32_array(in16[a] + i * ld, in32[a] + (size_t)i * S, S);
        for (int i = 0; i < H; i++)  // what a fetch gives
            fp16_to_f32_array(in32[a] + (size_t)i * S, in16[a] + i * ld, S);
    }
    float *dh1 = malloc(sizeof(float) * n), *dh3 = malloc(sizeof(float) * n);
    float *ref1 = malloc(sizeof(float) * n), *ref3 = malloc(sizeof(float) * n);
    swiglu_backward(ref1, ref3, in32[0], in32[1], in32[2], n);
    swiglu_backward_f16(dh1, dh3, (F16Rows){o1, ld}, (F16Rows){o3, ld}, (F16Rows){in16[0], ld}, (F16Rows){in16[1], ld},
                        (F16Rows){in16[2], ld}, H, S);
    CHECKF(memcmp(dh1, ref1, sizeof(float) * n) == 0 && memcmp(dh3, ref3, sizeof(float) * n) == 0,
           "swiglu [%d,%d]: fp32 outputs differ from swiglu_backward", H, S);
    CHECKF(rows_match(o1, ld, H, S, ref1, NULL) && rows_match(o3, ld, H, S, ref3, NULL),
           "swiglu [%d,%d]: fp16 rows differ from the converted outputs", H, S);
    for (int a = 0; a < 3; a++) free(in32[a]), free(in16[a]);
    free(o1), free(o3), free(dh1), free(dh3), free(ref1), free(ref3);
}

// y = x + s·o with o fetched from fp16 rows, and y = s·x, as the loops the pipelines ran before.
static void check_axpy(int C, int S) {
    Rng r;
    rng_init(&r, 3u + C * 13u + S);
    const size_t n = (size_t)C * S, ld = (size_t)S + LD_EXTRA;
    float *x = randn(&r, n, 1.0f), *o32 = randn(&r, n, 1.0f), *y = malloc(sizeof(float) * n);
    float *ref = malloc(sizeof(float) * n);
    uint16_t *o16 = padded_rows(C, ld), *y16 = padded_rows(C, ld);
    for (int i = 0; i < C; i++) fp16_from_f32_array(o16 + i * ld, o32 + (size_t)i * S, S);
    for (int i = 0; i < C; i++) fp16_to_f32_array(o32 + (size_t)i * S, o16 + i * ld, S);
    const float s = 0.37f;
    for (size_t i = 0; i < n; i++) ref[i] = x[i] + s * o32[i];
    axpy_f16(y, (F16Rows){y16, ld}, x, (F16Rows){o16, ld}, s, C, S);
    CHECKF(memcmp(y, ref, sizeof(float) * n) == 0 && rows_match(y16, ld, C, S, ref, NULL),
           "axpy [%d,%d]: the residual differs from x + s·o then the conversion", C, S);
    for (size_t i = 0; i < n; i++) ref[i] = s * x[i];
    axpy_f16(y, (F16Rows){y16, ld}, x, (F16Rows){0}, s, C, S);
    CHECKF(memcmp(y, ref, sizeof(float) * n) == 0 && rows_match(y16, ld, C, S, ref, NULL),
           "axpy [%d,%d]: the scaling differs from s·x then the conversion", C, S);
    memcpy(ref, x, sizeof(float) * n);
    vec_add(ref, o32, n);  // what a fetch and vec_add gave
    axpy_f16(x, (F16Rows){0}, x, (F16Rows){o16, ld}, 1.0f, C, S);
    CHECKF(memcmp(x, ref, sizeof(float) * n) == 0 && rows_match(y16, ld, C, S, y, NULL),
           "axpy [%d,%d]: adding in place differs from vec_add, or wrote fp16 rows", C, S);
    free(x), free(o32), free(y), free(ref), free(o16), free(y16);
}

TEST(fused_f16_ops_equal_the_op_then_the_conversion) {
    // S = 37 and 1000: rows not a multiple of the vector width, and longer than
    // one slice; 5 x 37: an array whose last 185 % 8 values take the scalar
    // path; 256 x 300: large enough for the pool's threads
    const int shapes[][2] = {{64, 64}, {40, 37}, {5, 37}, {3, 1000}, {1, 1}, {256, 300}};
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        check_rmsnorm(shapes[i][0], shapes[i][1]);
        check_swiglu(shapes[i][0], shapes[i][1]);
        check_axpy(shapes[i][0], shapes[i][1]);
    }
}

// An element of swiglu_backward's output depends on its index in the array
// only: spans of 13 told where the vector part ends give swiglu_backward's values.
TEST(swiglu_backward_does_not_depend_on_the_split) {
    Rng r;
    rng_init(&r, 5);
    enum { N = 301, PIECE = 13 };
    float *h1 = randn(&r, N, 3.0f), *h3 = randn(&r, N, 1.0f), *dg = randn(&r, N, 1.0f);
    float a1[N], a3[N], b1[N], b3[N];
    swiglu_backward(a1, a3, dg, h1, h3, N);
    const size_t vec_end = SWIGLU_VECTOR_END((size_t)N);
    for (size_t b = 0; b < N; b += PIECE)
        swiglu_backward_span(b1 + b, b3 + b, dg + b, h1 + b, h3 + b, b + PIECE < N ? PIECE : N - b,
                             vec_end > b ? vec_end - b : 0);
    CHECK(memcmp(a1, b1, sizeof a1) == 0 && memcmp(a3, b3, sizeof a3) == 0);
    free(h1), free(h3), free(dg);
}

TEST(kernel_rows_are_the_regions_of_activations) {
    Config c;
    REQUIRE(config_preset(&c, "tiny-gqa") == 0);
    MilKernel k;
    const int S = 24;
    REQUIRE(mil_kernel_build(MIL_K_SDPA_FWD, &c, S, &k) == 0);
    uint16_t *in = calloc((size_t)k.in_c * k.in_w, 2), *out = calloc((size_t)k.out_c * k.out_w, 2);
    F16Rows rows;
    const MilRegion *xn = mil_kernel_input(&k, "xn"), *kr = mil_kernel_output(&k, "k_rope");
    REQUIRE(xn && kr);
    CHECK(mil_kernel_rows(&k, in, "xn", 0, c.dim, S, &rows) == 0 && rows.ld == (size_t)k.in_w &&
          rows.p == in + (size_t)xn->c0 * k.in_w + xn->w0);
    CHECK(mil_kernel_rows(&k, out, "k_rope", 1, config_kv_dim(&c), S, &rows) == 0 && rows.ld == (size_t)k.out_w &&
          rows.p == out + (size_t)kr->c0 * k.out_w + kr->w0);
    struct { const char *name; int output, nc, nw; const char *want; } bad[] = {
        {"q_rope", 1, config_q_dim(&c), S, "permuted head order"},  // GQA: the kernel's head order
        {"Wq^T", 0, c.dim, config_q_dim(&c), "expected activations"},  // a weight block
        {"xn", 0, c.dim + 1, S, "is [64,24], expected activations [65,24]"},
        {"dx", 1, c.dim, S, "no output region 'dx'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const int rc = mil_kernel_rows(&k, bad[i].output ? out : in, bad[i].name, bad[i].output, bad[i].nc, bad[i].nw,
                                       &rows);
        CHECKF(rc == -1 && strstr(err_msg(), bad[i].want), "case %zu: rc %d, '%s' lacks '%s'", i, rc, err_msg(),
               bad[i].want);
    }
    free(in), free(out);
    mil_kernel_free(&k);
}
