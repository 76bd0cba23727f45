// mil_blob: the weight-blob file a MIL BLOBFILE constant points into
// (ane-spec §3.4, reference D.3; coremltools MILBlob storage format version 2).
//
//   bytes   0..63   file header: u32 count (= number of chunks), u32 version = 2, zeros
//   per chunk       64-byte chunk header, then the payload:
//     +0  u32 sentinel 0xDEADBEEF     +4  u32 dtype (1 = fp16, 2 = fp32, ...)
//     +8  u64 payload bytes           +16 u64 absolute file offset of the payload
//     +24 .. +63 zeros (padding bits, reserved)
//
// A single fp16 tensor is therefore: file header, chunk header at 64, payload
// at 128; the MIL text refers to it as `offset=uint64(64)` — the offset of the
// chunk *header*, not of the payload. Several chunks may share one file; each
// payload is zero-padded to a multiple of 64 bytes so every chunk header stays
// 64-byte aligned (nothing follows the last payload, so a one-chunk file is
// exactly 128 + payload bytes, byte for byte what maderix/ANE writes).
// All integers little-endian.
#pragma once
#include <stddef.h>
#include <stdint.h>

enum {
    MIL_BLOB_FP16 = 1,
    MIL_BLOB_FP32 = 2,
    MIL_BLOB_UINT8 = 3,
    MIL_BLOB_INT8 = 4,
    MIL_BLOB_BF16 = 5,
};
#define MIL_BLOB_HEADER_BYTES 64  // file header and chunk header are 64 bytes each
#define MIL_BLOB_SENTINEL 0xDEADBEEFu
#define MIL_BLOB_VERSION 2

typedef struct {
    int dtype;           // MIL_BLOB_*
    const void *data;    // payload (little-endian elements)
    size_t bytes;        // payload size in bytes
} MilBlobChunk;

// Builds a whole blob file in memory (malloc'd *out, *size bytes). offsets[i]
// (if not NULL) receives the MIL offset of chunk i — the value to print in
// `offset=uint64(...)`. Returns 0, or -1 with err_msg().
int mil_blob_build(const MilBlobChunk *chunks, int n, uint8_t **out, size_t *size, uint64_t *offsets);
// One fp16 chunk (MIL offset 64).
int mil_blob_build_fp16(const uint16_t *w, size_t n, uint8_t **out, size_t *size);
// One fp16 chunk converted from fp32 with round-to-nearest-even.
int mil_blob_build_from_f32(const float *w, size_t n, uint8_t **out, size_t *size);

// Writes a blob image atomically (PATH.tmp + fsync + rename).
int mil_blob_write_file(const char *path, const uint8_t *data, size_t size);

typedef struct {
    int dtype;                // MIL_BLOB_*
    uint64_t bytes;           // payload bytes
    uint64_t payload_offset;  // absolute offset of the payload in the file
    const uint8_t *payload;   // points into the caller's buffer
} MilBlobEntry;

// Validates the file header and the chunk header at `mil_offset` (the MIL
// offset), and that the payload lies inside the file. `name` labels errors
// (e.g. the BLOBFILE path). Returns 0, or -1 with err_msg() such as
// "w.bin: chunk at offset 128: expected sentinel 0xDEADBEEF, found 0x00000000".
int mil_blob_read(const uint8_t *data, size_t size, uint64_t mil_offset, const char *name, MilBlobEntry *e);

// Size in bytes of one element of a blob dtype, or 0 if unknown.
size_t mil_blob_dtype_size(int dtype);
