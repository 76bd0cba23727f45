// ckpt_internal: helpers shared by checkpoint.c and ckpt_original.c (not a public API).
#pragma once
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/io.h"
#include "model/config.h"

// little-endian fields at byte offsets of a header
static inline uint32_t get_u32(const uint8_t *h, int off) { return io_le32(h + off); }
static inline uint64_t get_u64(const uint8_t *h, int off) { return io_le64(h + off); }
static inline int32_t get_i32(const uint8_t *h, int off) { return (int32_t)io_le32(h + off); }
static inline int64_t get_i64(const uint8_t *h, int off) { return (int64_t)io_le64(h + off); }
static inline float get_f32(const uint8_t *h, int off) {
    uint32_t u = io_le32(h + off);
    float v;
    memcpy(&v, &u, 4);
    return v;
}
static inline double get_f64(const uint8_t *h, int off) {
    uint64_t u = io_le64(h + off);
    double v;
    memcpy(&v, &u, 8);
    return v;
}


// Opens path for reading and returns its size; the file must be a regular file.
FILE *ckpt_open_regular(const char *path, uint64_t *size);
// Floats in the parameter block of c.
size_t ckpt_layout_floats(const Config *c);
// 64-byte aligned floats (free with free()).
float *ckpt_alloc_floats(size_t n);
// Reads up to n leading bytes; returns how many, or -1 if the file cannot be opened.
long ckpt_read_prefix(const char *path, uint8_t *buf, size_t n);
