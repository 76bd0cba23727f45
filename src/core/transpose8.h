// transpose8: an 8 x 8 block of floats transposed in AVX registers, shared by
// the fp16 staging of transposed weights (fp16.c) and the interpreter's
// transposes (mil_exec.c).
#pragma once
#if defined(__AVX__)
#include <immintrin.h>

// out[k] = column k of the 8 rows in r (row-major 8 x 8 -> its transpose).
static inline void transpose8_ps(const __m256 r_in[8], __m256 out[8]) {
    __m256 t[8], r[8];
    for (int k = 0; k < 8; k += 2) {
        t[k] = _mm256_unpacklo_ps(r_in[k], r_in[k + 1]);
        t[k + 1] = _mm256_unpackhi_ps(r_in[k], r_in[k + 1]);
    }
    for (int k = 0; k < 8; k += 4) {
        r[k] = _mm256_shuffle_ps(t[k], t[k + 2], 0x44);
        r[k + 1] = _mm256_shuffle_ps(t[k], t[k + 2], 0xEE);
        r[k + 2] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0x44);
        r[k + 3] = _mm256_shuffle_ps(t[k + 1], t[k + 3], 0xEE);
    }
    for (int k = 0; k < 4; k++) {
        out[k] = _mm256_permute2f128_ps(r[k], r[k + 4], 0x20);
        out[k + 4] = _mm256_permute2f128_ps(r[k], r[k + 4], 0x31);
    }
}
#endif
