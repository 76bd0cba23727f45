// vmath: vectorized exp for the CPU ops (AVX2+FMA when compiled for it, plain
// expf otherwise), and bf16 rounding.
//
// vexp8 is the Cephes expf polynomial: max relative error ~2 ulp over
// [-87, 88]; inputs below -88.37 give 0, NaN stays NaN. The ops use it for
// softmax, SwiGLU and cross-entropy, where expf was the hot spot.
#pragma once
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define VMATH_AVX2 1

static inline __m256 vexp8(__m256 x) {
    // min/max with x second: a NaN x passes through
    x = _mm256_min_ps(_mm256_set1_ps(88.3762626647949f), _mm256_max_ps(_mm256_set1_ps(-88.3762626647949f), x));
    __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

static inline float vhsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float vhmax8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#endif

// y[i] = exp(x[i] - sub); returns sum of y (float accumulation in 8 lanes).
static inline float vexp_sub_sum(float *y, const float *x, size_t n, float sub) {
    size_t i = 0;
    float sum = 0.0f;
#ifdef VMATH_AVX2
    __m256 acc = _mm256_setzero_ps(), vs = _mm256_set1_ps(sub);
    for (; i + 8 <= n; i += 8) {
        __m256 e = vexp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), vs));
        _mm256_storeu_ps(y + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    sum = vhsum8(acc);
#endif
    for (; i < n; i++) {
        y[i] = expf(x[i] - sub);
        sum += y[i];
    }
    return sum;
}

// max of x[0..n) (n >= 1); NaN anywhere gives NaN
static inline float vmax(const float *x, size_t n) {
    size_t i = 0;
    float m = x[0];
    int nan = 0;
#ifdef VMATH_AVX2
    if (n >= 8) {
        __m256 a = _mm256_loadu_ps(x), bad = _mm256_setzero_ps();
        for (i = 8; i + 8 <= n; i += 8) {
            __m256 v = _mm256_loadu_ps(x + i);
            bad = _mm256_or_ps(bad, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
            a = _mm256_max_ps(a, v);
        }
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, a, _CMP_UNORD_Q));
        nan = _mm256_movemask_ps(bad) != 0;
        m = vhmax8(a);
    }
#endif
    for (; i < n; i++) {
        if (x[i] != x[i]) nan = 1;
        m = x[i] > m ? x[i] : m;
    }
    return nan ? NAN : m;
}

// bf16 round-to-nearest-even, kept in an fp32 (low 16 bits zero); NaN stays NaN.
static inline float bf16_round(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) u |= 0x00400000u;  // quiet NaN, keep payload top
    else u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&f, &u, 4);
    return f;
}

// dst[i] = bf16_round(src[i]); dst may equal src.
static inline void bf16_round_array(float *dst, const float *src, size_t n) {
    size_t i = 0;
#ifdef VMATH_AVX2
    const __m256i bias = _mm256_set1_epi32(0x7fff), one = _mm256_set1_epi32(1), mask = _mm256_set1_epi32((int)0xffff0000u);
    for (; i + 8 <= n; i += 8) {
        __m256 f = _mm256_loadu_ps(src + i);
        __m256i u = _mm256_castps_si256(f);
        __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(bias, _mm256_and_si256(_mm256_srli_epi32(u, 16), one)));
        r = _mm256_and_si256(r, mask);
        // NaN: keep the (quieted) NaN instead of the rounded bits
        __m256 isnan = _mm256_cmp_ps(f, f, _CMP_UNORD_Q);
        __m256 q = _mm256_castsi256_ps(_mm256_and_si256(_mm256_or_si256(u, _mm256_set1_epi32(0x00400000)), mask));
        _mm256_storeu_ps(dst + i, _mm256_blendv_ps(_mm256_castsi256_ps(r), q, isnan));
    }
#endif
    for (; i < n; i++) dst[i] = bf16_round(src[i]);
}
