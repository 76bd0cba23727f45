// fp16: IEEE binary16 and bfloat16 conversion (portable, no _Float16 needed).
//
// fp32 -> fp16 rounds to nearest, ties to even (RNE): values at or above 65520
// become inf, values below 2^-25 become (signed) zero, values in between 2^-25
// and 2^-14 become subnormals. NaN stays NaN: the result is a quiet NaN that
// keeps the sign and the top 10 payload bits (what F16C and NEON produce).
// fp16 -> fp32 is exact for every non-NaN half; a signalling NaN comes back
// quiet (again what the hardware converters do), so the scalar reference and
// the vector versions agree bit for bit on all 65536 inputs.
//
// The *_array functions use F16C (x86, when __F16C__ is defined, e.g. by
// -march=native) or NEON (__aarch64__) and fall back to the scalar functions.
// bfloat16 is the top half of an fp32, rounded to nearest even; NaN stays NaN.
#pragma once
#include <stddef.h>
#include <stdint.h>

uint16_t fp16_from_f32(float f);
float fp16_to_f32(uint16_t h);
uint16_t bf16_from_f32(float f);
float bf16_to_f32(uint16_t h);

// n elements; src and dst must not overlap (except fp16_round_array, which may work in place).
void fp16_from_f32_array(uint16_t *dst, const float *src, size_t n);
void fp16_to_f32_array(float *dst, const uint16_t *src, size_t n);
// dst[i] = fp16_to_f32(fp16_from_f32(src[i])): the value an fp16 store would keep.
void fp16_round_array(float *dst, const float *src, size_t n);

// Transposing conversion: dst[i * dst_stride + j] = fp16(src[j * cols + i])
// for i < cols, j < rows (src is a row-major [rows][cols] fp32 matrix; dst
// gets its transpose, a row per source column). Blocked 8 x 8 through
// registers with F16C (a strided walk would touch a new cache line per
// element); the naive loop below is its reference and handles the edges.
void fp16_from_f32_transposed(uint16_t *dst, size_t dst_stride, const float *src, size_t rows, size_t cols);
void fp16_from_f32_transposed_naive(uint16_t *dst, size_t dst_stride, const float *src, size_t rows, size_t cols);
void bf16_from_f32_array(uint16_t *dst, const float *src, size_t n);
void bf16_to_f32_array(float *dst, const uint16_t *src, size_t n);

// Rows of fp16 values ld apart (a region of a device surface: row i at p + i·ld).
typedef struct {
    uint16_t *p;
    size_t ld;
} F16Rows;

// "f16c", "neon" or "scalar": which path the *_array functions take.
const char *fp16_simd_name(void);
