// fp16: scalar reference conversions (bit manipulation) and vectorized arrays.
#include "core/fp16.h"
#include "core/transpose8.h"

#include <string.h>

#if defined(__F16C__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define FP16_F16C 1
#elif defined(__aarch64__)
#include <arm_neon.h>
#define FP16_NEON 1
#endif

static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}
static inline float f32_from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

uint16_t fp16_from_f32(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    u &= 0x7fffffffu;
    if (u > 0x7f800000u)  // NaN: quiet, keep the top payload bits
        return (uint16_t)(sign | 0x7e00u | ((u >> 13) & 0x3ffu));
    if (u >= 0x477ff000u)  // >= 65520 (halfway between 65504 and 2^16) and inf
        return (uint16_t)(sign | 0x7c00u);
    if (u >= 0x38800000u) {  // >= 2^-14: normal half
        // rebias the exponent (127 -> 15), then round away the low 13 mantissa
        // bits to nearest even; a mantissa carry correctly bumps the exponent
        uint32_t r = u - ((uint32_t)(127 - 15) << 23);
        r += 0xfffu + ((r >> 13) & 1u);
        return (uint16_t)(sign | (r >> 13));
    }
    if (u < 0x33000000u)  // < 2^-25 (2^-25 itself is a tie and goes to even 0 below)
        return sign;
    // subnormal half: value = m * 2^(e-150), in units of 2^-24 that is m >> (126-e)
    uint32_t e = u >> 23, m = (u & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - e;  // 14..24
    uint32_t r = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1u))) r++;
    return (uint16_t)(sign | r);  // r == 0x400 encodes the smallest normal, as it should
}

float fp16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    uint32_t u;
    if (e == 0x1f) {
        u = sign | 0x7f800000u | (m << 13);
        if (m) u |= 0x400000u;  // NaN comes back quiet
    } else if (e != 0) {
        u = sign | ((e + 112) << 23) | (m << 13);
    } else if (m == 0) {
        u = sign;
    } else {  // subnormal: normalize
        e = 113;
        while (!(m & 0x400u)) {
            m <<= 1;
            e--;
        }
        u = sign | (e << 23) | ((m & 0x3ffu) << 13);
    }
    return f32_from_bits(u);
}

uint16_t bf16_from_f32(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);  // RNE; overflow carries into inf as it should
    return (uint16_t)(u >> 16);
}

float bf16_to_f32(uint16_t h) { return f32_from_bits((uint32_t)h << 16); }

void fp16_from_f32_array(uint16_t *dst, const float *src, size_t n) {
    size_t i = 0;
#if defined(FP16_F16C)
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm_storeu_si128((__m128i *)(dst + i), h);
    }
#elif defined(FP16_NEON)
    for (; i + 4 <= n; i += 4) vst1_u16(dst + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(src + i))));
#endif
    for (; i < n; i++) dst[i] = fp16_from_f32(src[i]);
}

void fp16_to_f32_array(float *dst, const uint16_t *src, size_t n) {
    size_t i = 0;
#if defined(FP16_F16C)
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
#elif defined(FP16_NEON)
    for (; i + 4 <= n; i += 4) vst1q_f32(dst + i, vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(src + i))));
#endif
    for (; i < n; i++) dst[i] = fp16_to_f32(src[i]);
}

void fp16_round_array(float *dst, const float *src, size_t n) {
    size_t i = 0;
#if defined(FP16_F16C)
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
    }
#elif defined(FP16_NEON)
    for (; i + 4 <= n; i += 4) vst1q_f32(dst + i, vcvt_f32_f16(vcvt_f16_f32(vld1q_f32(src + i))));
#endif
    for (; i < n; i++) dst[i] = fp16_to_f32(fp16_from_f32(src[i]));
}

// bf16 is plain integer work; the loops below auto-vectorize well enough.
void bf16_from_f32_array(uint16_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = bf16_from_f32(src[i]);
}

void bf16_to_f32_array(float *dst, const uint16_t *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = bf16_to_f32(src[i]);
}

const char *fp16_simd_name(void) {
#if defined(FP16_F16C)
    return "f16c";
#elif defined(FP16_NEON)
    return "neon";
#else
    return "scalar";
#endif
}

void fp16_from_f32_transposed_naive(uint16_t *dst, size_t dst_stride, const float *src, size_t rows, size_t cols) {
    for (size_t i = 0; i < cols; i++)
        for (size_t j = 0; j < rows; j++) dst[i * dst_stride + j] = fp16_from_f32(src[j * cols + i]);
}

// Columns [i0, i1) x rows [j0, j1) of the transposing conversion, one element at a time.
static void transposed_edge(uint16_t *dst, size_t ds, const float *src, size_t cols, size_t i0, size_t i1, size_t j0,
                            size_t j1) {
    for (size_t i = i0; i < i1; i++)
        for (size_t j = j0; j < j1; j++) dst[i * ds + j] = fp16_from_f32(src[j * cols + i]);
}

#if defined(FP16_F16C)
// An 8 x 8 block: rows j..j+7 of src (columns i..i+7) become rows i..i+7 of dst.
static void transpose8_f16(uint16_t *dst, size_t ds, const float *src, size_t cols) {
    __m256 r[8], t[8];
    for (int k = 0; k < 8; k++) r[k] = _mm256_loadu_ps(src + k * cols);
    transpose8_ps(r, t);
    for (int k = 0; k < 8; k++)
        _mm_storeu_si128((__m128i *)(dst + k * ds), _mm256_cvtps_ph(t[k], _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}
#endif

void fp16_from_f32_transposed(uint16_t *dst, size_t dst_stride, const float *src, size_t rows, size_t cols) {
    size_t i8 = 0, j8 = 0;
#if defined(FP16_F16C)
    i8 = cols & ~(size_t)7, j8 = rows & ~(size_t)7;
    // tiles of 64 x 64 keep the 64 source rows of a tile in L1/L2 as it is swept
    for (size_t jb = 0; jb < j8; jb += 64)
        for (size_t i = 0; i < i8; i += 8)
            for (size_t j = jb; j < j8 && j < jb + 64; j += 8)
                transpose8_f16(dst + i * dst_stride + j, dst_stride, src + j * cols + i, cols);
#endif
    transposed_edge(dst, dst_stride, src, cols, i8, cols, 0, rows);  // the columns past the blocks
    transposed_edge(dst, dst_stride, src, cols, 0, i8, j8, rows);    // the rows past the blocks
}
