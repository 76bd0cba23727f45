// fp16 / bf16 conversion: exhaustive round trips, an independent double-precision
// rounding reference, and vector (F16C/NEON) vs scalar agreement.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/fp16.h"
#include "core/rng.h"
#include "test.h"

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static float float_of(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static int half_is_nan(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x3ff); }

// Nearest binary16 to f by arithmetic on doubles (no bit tricks shared with the
// code under test): quantum of f's binade, round to nearest even multiple, encode.
static uint16_t ref_fp16(float f) {
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    double a = fabs((double)f);
    if (isinf(a) || a >= 65520.0) return sign | 0x7c00;
    int e;
    frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
    double q = a < 0x1p-14 ? 0x1p-24 : ldexp(1.0, e - 1 - 10);
    double k = floor(a / q), frac = a / q - k;
    if (frac > 0.5 || (frac == 0.5 && fmod(k, 2.0) == 1.0)) k += 1;
    double r = k * q;
    if (r == 0) return sign;
    if (r < 0x1p-14) return sign | (uint16_t)(r / 0x1p-24);
    frexp(r, &e);
    double mant = r / ldexp(1.0, e - 1) - 1.0;  // in [0, 1)
    return sign | (uint16_t)((e - 1 + 15) << 10) | (uint16_t)(mant * 1024.0);
}

// Nearest bfloat16 by the same method (8 significant bits, fp32's exponent range).
static uint16_t ref_bf16(float f) {
    double a = fabs((double)f);
    uint32_t sign = signbit(f) ? 0x80000000u : 0;
    if (isinf(a)) return (uint16_t)((sign | 0x7f800000u) >> 16);
    int e;
    frexp(a, &e);
    double q = a < 0x1p-126 ? 0x1p-133 : ldexp(1.0, e - 1 - 7);
    double k = floor(a / q), frac = a / q - k;
    if (frac > 0.5 || (frac == 0.5 && fmod(k, 2.0) == 1.0)) k += 1;
    double r = k * q;
    if (r >= 0x1p128) return (uint16_t)((sign | 0x7f800000u) >> 16);
    return (uint16_t)((sign | bits_of((float)r)) >> 16);
}

TEST(fp16_known_values) {
    struct { float f; uint16_t h; } cases[] = {
        {0.0f, 0x0000},          {-0.0f, 0x8000},          {1.0f, 0x3c00},          {-2.0f, 0xc000},
        {0.5f, 0x3800},          {65504.0f, 0x7bff},       {-65504.0f, 0xfbff},     {65519.996f, 0x7bff},
        {65520.0f, 0x7c00},      {-65520.0f, 0xfc00},      {1e10f, 0x7c00},         {INFINITY, 0x7c00},
        {-INFINITY, 0xfc00},     {0x1p-14f, 0x0400},       {0x1p-24f, 0x0001},      {0x1p-25f, 0x0000},
        {0x1.000002p-25f, 0x0001}, {-0x1p-25f, 0x8000},    {0x1.8p-24f, 0x0002},    {0x1.4p-23f, 0x0002},
        {0x1.cp-23f, 0x0004},    {0x1.ff8p-15f, 0x03ff},   {0x1.ffcp-15f, 0x0400},  {0x1.ffap-15f, 0x03ff}, {0x1.ffep-15f, 0x0400},  {1.0f + 0x1p-11f, 0x3c00},
        {1.0f + 0x3p-11f, 0x3c02}, {0x1.002002p+0f, 0x3c01}, {2047.5f, 0x6800}, {2046.5f, 0x67fe}, {2048.0f, 0x6800},
        {0.1f, 0x2e66},          {0.125f, 0x3000},         {0.088388f, 0x2da8},     {1e-5f, 0x00a8},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t h = fp16_from_f32(cases[i].f);
        CHECKF(h == cases[i].h, "fp16(%a) = 0x%04x, expected 0x%04x", cases[i].f, h, cases[i].h);
        CHECKF(ref_fp16(cases[i].f) == cases[i].h, "reference fp16(%a) = 0x%04x", cases[i].f, ref_fp16(cases[i].f));
    }
    CHECK(half_is_nan(fp16_from_f32(NAN)));
    CHECK(fp16_from_f32(-NAN) & 0x8000);
    CHECK(half_is_nan(fp16_from_f32(float_of(0x7f800001u))));  // payload only in low bits: still NaN
    CHECK(fp16_to_f32(0x7bff) == 65504.0f);
    CHECK(fp16_to_f32(0x0001) == 0x1p-24f);
    CHECK(fp16_to_f32(0x03ff) == 0x1.ff8p-15f);
    CHECK(isinf(fp16_to_f32(0xfc00)) && fp16_to_f32(0xfc00) < 0);
    CHECK(isnan(fp16_to_f32(0x7c01)) && isnan(fp16_to_f32(0xfe00)));
}

TEST(fp16_all_halves_round_trip) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = fp16_to_f32((uint16_t)h);
        uint16_t back = fp16_from_f32(f);
        if (half_is_nan((uint16_t)h)) {
            if (!isnan(f) || !half_is_nan(back) || (back & 0x8000) != (h & 0x8000)) bad++;
            // payload kept, quiet bit set
            if ((back | 0x200) != (h | 0x200)) bad++;
        } else if (back != h) {
            if (bad++ < 5) CHECKF(0, "0x%04x -> %a -> 0x%04x", h, f, back);
        }
        // the value is the one the format defines
        if (!half_is_nan((uint16_t)h) && (h & 0x7c00) != 0x7c00) {
            int e = (h >> 10) & 31, m = h & 1023;
            double v = e ? ldexp(1.0 + m / 1024.0, e - 15) : ldexp(m, -24);
            if (h & 0x8000) v = -v;
            if ((double)f != v && bad++ < 5) CHECKF(0, "0x%04x -> %a, expected %a", h, f, v);
        }
    }
    CHECKF(bad == 0, "%d halves failed to round-trip", bad);
}

TEST(fp16_vector_matches_scalar_all_halves) {
    // offset by 3 and an odd length so the SIMD body, and the scalar tail, are both exercised
    size_t n = 65536 + 5;
    uint16_t *h = malloc(n * 2), *h2 = malloc(n * 2);
    float *f = malloc(n * 4), *r = malloc(n * 4);
    for (size_t i = 0; i < n; i++) h[i] = (uint16_t)(i + 65533);
    fp16_to_f32_array(f, h, n);
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        if (bits_of(f[i]) != bits_of(fp16_to_f32(h[i])) && bad++ < 5)
            CHECKF(0, "%s to_f32(0x%04x) = 0x%08x, scalar 0x%08x", fp16_simd_name(), h[i], bits_of(f[i]),
                   bits_of(fp16_to_f32(h[i])));
    fp16_from_f32_array(h2, f, n);
    fp16_round_array(r, f, n);
    for (size_t i = 0; i < n; i++) {
        if (h2[i] != fp16_from_f32(f[i]) && bad++ < 5)
            CHECKF(0, "%s from_f32(%a) = 0x%04x, scalar 0x%04x", fp16_simd_name(), f[i], h2[i], fp16_from_f32(f[i]));
        if (bits_of(r[i]) != bits_of(f[i]) && bad++ < 5) CHECKF(0, "round(%a) = %a", f[i], r[i]);
    }
    CHECKF(bad == 0, "%d mismatches (%s)", bad, fp16_simd_name());
    free(h), free(h2), free(f), free(r);
}

// Random bit patterns, all midpoints between neighbouring halves and their float
// neighbours, and hand-picked edges: scalar == double reference, vector == scalar.
TEST(fp16_from_f32_matches_reference) {
    size_t cap = (1u << 20) + 65536 * 6 + 64, n = 0;
    float *x = malloc(cap * 4);
    Rng r;
    rng_init(&r, 7);
    for (int i = 0; i < (1 << 20); i++) x[n++] = float_of(rng_u32(&r));
    for (uint32_t h = 0; h < 0x7c00; h++) {  // every finite positive half and the one above it
        double lo = fp16_to_f32((uint16_t)h), hi = h + 1 == 0x7c00 ? 65536.0 : fp16_to_f32((uint16_t)(h + 1));
        float mid = (float)((lo + hi) / 2);  // exact: needs 12 significant bits
        x[n++] = mid;
        x[n++] = -mid;
        x[n++] = nextafterf(mid, 0);
        x[n++] = nextafterf(mid, INFINITY);
        x[n++] = (float)lo;
        x[n++] = -nextafterf((float)lo, INFINITY);
    }
    float edges[] = {65504, 65519, 65519.996f, 65520, 65520.004f, 65536, 1e30f, 0x1p-24f, 0x1p-25f,
                     0x1.000002p-25f, 0x1.fffffep-26f, 0x1p-26f, 0x1p-14f, 0x1.ffcp-15f, 0x1.ffep-15f,
                     0x1.ffdp-15f, 0x1p-149f, 0x1p-126f, INFINITY, NAN, 3.4e38f, 1.0f, 0.1f, 1e-5f};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0] && n + 2 <= cap; i++) {
        x[n++] = edges[i];
        x[n++] = -edges[i];
    }
    uint16_t *hv = malloc(n * 2);
    float *rv = malloc(n * 4);
    fp16_from_f32_array(hv, x, n);
    fp16_round_array(rv, x, n);
    int bad_ref = 0, bad_vec = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t s = fp16_from_f32(x[i]);
        if (isnan(x[i])) {
            if (!half_is_nan(s) && bad_ref++ < 5) CHECKF(0, "NaN 0x%08x -> 0x%04x", bits_of(x[i]), s);
        } else if (s != ref_fp16(x[i]) && bad_ref++ < 5) {
            CHECKF(0, "fp16(%a) = 0x%04x, reference 0x%04x", x[i], s, ref_fp16(x[i]));
        }
        if (hv[i] != s && bad_vec++ < 5)
            CHECKF(0, "%s fp16(%a = 0x%08x) = 0x%04x, scalar 0x%04x", fp16_simd_name(), x[i], bits_of(x[i]), hv[i], s);
        if (bits_of(rv[i]) != bits_of(fp16_to_f32(s)) && bad_vec++ < 5)
            CHECKF(0, "%s round(%a) = %a, scalar %a", fp16_simd_name(), x[i], rv[i], fp16_to_f32(s));
    }
    CHECKF(bad_ref == 0 && bad_vec == 0, "%zu values: %d reference mismatches, %d vector mismatches", n, bad_ref,
           bad_vec);
    free(x), free(hv), free(rv);
}

TEST(bf16_round_trip_and_rne) {
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = bf16_to_f32((uint16_t)h);
        uint16_t back = bf16_from_f32(f);
        int nan = (h & 0x7f80) == 0x7f80 && (h & 0x7f);
        if (nan ? !(isnan(f) && (back & 0x7f80) == 0x7f80 && (back & 0x7f)) : back != h) bad++;
    }
    CHECKF(bad == 0, "%d bf16 values failed to round-trip", bad);
    CHECK(bf16_from_f32(1.0f) == 0x3f80);
    CHECK(bf16_from_f32(float_of(0x3f808000u)) == 0x3f80);  // tie -> even
    CHECK(bf16_from_f32(float_of(0x3f818000u)) == 0x3f82);  // tie -> even (up)
    CHECK(bf16_from_f32(float_of(0x3f808001u)) == 0x3f81);
    CHECK(bf16_from_f32(float_of(0x7f7fffffu)) == 0x7f80);  // max float rounds to inf
    CHECK(bf16_from_f32(float_of(0x7f800001u)) != 0x7f80);  // NaN stays NaN, not inf
    Rng r;
    rng_init(&r, 11);
    size_t n = 1 << 18;
    float *x = malloc(n * 4);
    uint16_t *hv = malloc(n * 2);
    float *back = malloc(n * 4);
    for (size_t i = 0; i < n; i++) x[i] = float_of(rng_u32(&r));
    bf16_from_f32_array(hv, x, n);
    bf16_to_f32_array(back, hv, n);
    bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(x[i])) {
            if (!isnan(back[i])) bad++;
        } else if (hv[i] != ref_bf16(x[i]) && bad++ < 5) {
            CHECKF(0, "bf16(%a) = 0x%04x, reference 0x%04x", x[i], hv[i], ref_bf16(x[i]));
        }
    }
    CHECKF(bad == 0, "%d bf16 mismatches", bad);
    free(x), free(hv), free(back);
}

// The blocked transposing conversion (weight staging) against its naive loop,
// bit for bit, on shapes with and without 8-aligned edges and a padded stride.
TEST(fp16_transposed_matches_naive) {
    const size_t shapes[][2] = {{1, 1}, {8, 8}, {7, 13}, {64, 72}, {131, 67}, {256, 8}, {9, 300}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const size_t rows = shapes[s][0], cols = shapes[s][1], stride = rows + 5;
        float *src = malloc(sizeof(float) * rows * cols);
        uint16_t *a = malloc(2 * cols * stride), *b = malloc(2 * cols * stride);
        uint32_t x = 77;
        for (size_t i = 0; i < rows * cols; i++) {
            x = x * 1664525u + 1013904223u;
            src[i] = ((float)(x >> 8) / 16777216.0f - 0.5f) * 300.0f;
        }
        memset(a, 0xab, 2 * cols * stride);
        memset(b, 0xab, 2 * cols * stride);
        fp16_from_f32_transposed(a, stride, src, rows, cols);
        fp16_from_f32_transposed_naive(b, stride, src, rows, cols);
        CHECKF(!memcmp(a, b, 2 * cols * stride), "transposed conversion differs at %zu x %zu", rows, cols);
        free(src), free(a), free(b);
    }
}
