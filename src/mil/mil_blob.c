// mil_blob: build, write and validate MIL weight-blob files (layout in mil_blob.h).
#include "mil/mil_blob.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/fp16.h"
#include "core/io.h"

static void put_le32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static size_t round_up64(size_t n) { return (n + 63) & ~(size_t)63; }

size_t mil_blob_dtype_size(int dtype) {
    switch (dtype) {
    case MIL_BLOB_FP16: case MIL_BLOB_BF16: return 2;
    case MIL_BLOB_FP32: return 4;
    case MIL_BLOB_UINT8: case MIL_BLOB_INT8: return 1;
    default: return 0;
    }
}

int mil_blob_build(const MilBlobChunk *chunks, int n, uint8_t **out, size_t *size, uint64_t *offsets) {
    *out = NULL;
    *size = 0;
    if (n < 1) return err_set("mil_blob_build: expected at least one chunk, found %d", n);
    size_t total = MIL_BLOB_HEADER_BYTES;
    for (int i = 0; i < n; i++) {
        size_t es = mil_blob_dtype_size(chunks[i].dtype);
        if (!es) return err_set("mil_blob_build: chunk %d: unknown dtype %d", i, chunks[i].dtype);
        if (chunks[i].bytes % es)
            return err_set("mil_blob_build: chunk %d: expected a multiple of %zu bytes, found %zu", i, es, chunks[i].bytes);
        if (chunks[i].bytes > ((size_t)1 << 40))
            return err_set("mil_blob_build: chunk %d: %zu bytes is too large", i, chunks[i].bytes);
        total += MIL_BLOB_HEADER_BYTES + (i + 1 < n ? round_up64(chunks[i].bytes) : chunks[i].bytes);
    }
    uint8_t *buf = calloc(total, 1);
    if (!buf) return err_set("mil_blob_build: out of memory for %zu bytes", total);
    put_le32(buf, (uint32_t)n);
    put_le32(buf + 4, MIL_BLOB_VERSION);
    size_t pos = MIL_BLOB_HEADER_BYTES;
    for (int i = 0; i < n; i++) {
        uint8_t *h = buf + pos;
        put_le32(h, MIL_BLOB_SENTINEL);
        put_le32(h + 4, (uint32_t)chunks[i].dtype);
        put_le64(h + 8, chunks[i].bytes);
        put_le64(h + 16, pos + MIL_BLOB_HEADER_BYTES);
        if (offsets) offsets[i] = pos;
        if (chunks[i].bytes) memcpy(h + MIL_BLOB_HEADER_BYTES, chunks[i].data, chunks[i].bytes);
        pos += MIL_BLOB_HEADER_BYTES + round_up64(chunks[i].bytes);
    }
    *out = buf;
    *size = total;
    return 0;
}

int mil_blob_build_fp16(const uint16_t *w, size_t n, uint8_t **out, size_t *size) {
    // payload bytes are the host's uint16 bytes: little-endian on every host we build for
    MilBlobChunk c = {MIL_BLOB_FP16, w, n * 2};
    return mil_blob_build(&c, 1, out, size, NULL);
}

int mil_blob_build_from_f32(const float *w, size_t n, uint8_t **out, size_t *size) {
    uint16_t *h = malloc(n ? n * 2 : 1);
    if (!h) return err_set("mil_blob_build: out of memory for %zu values", n);
    fp16_from_f32_array(h, w, n);
    int rc = mil_blob_build_fp16(h, n, out, size);
    free(h);
    return rc;
}

int mil_blob_write_file(const char *path, const uint8_t *data, size_t size) {
    AtomicFile af;
    if (io_atomic_open(&af, path)) return -1;
    io_atomic_write(&af, data, size);
    return io_atomic_commit(&af);
}

int mil_blob_read(const uint8_t *data, size_t size, uint64_t mil_offset, const char *name, MilBlobEntry *e) {
    if (!name) name = "blob";
    memset(e, 0, sizeof *e);
    if (size < 2 * MIL_BLOB_HEADER_BYTES)
        return err_set("%s: expected at least 128 bytes (file header + chunk header), found %zu", name, size);
    uint32_t count = io_le32(data), version = io_le32(data + 4);
    if (version != MIL_BLOB_VERSION)
        return err_set("%s: expected blob format version 2 at byte 4, found %u", name, version);
    if (count == 0) return err_set("%s: expected a chunk count >= 1 at byte 0, found 0", name);
    if (mil_offset < MIL_BLOB_HEADER_BYTES || mil_offset % 64)
        return err_set("%s: expected a chunk offset that is a multiple of 64 and >= 64, found %llu", name,
                       (unsigned long long)mil_offset);
    if (mil_offset > size - MIL_BLOB_HEADER_BYTES)
        return err_set("%s: chunk at offset %llu: expected a 64-byte chunk header inside the %zu-byte file", name,
                       (unsigned long long)mil_offset, size);
    const uint8_t *h = data + mil_offset;
    uint32_t sentinel = io_le32(h);
    if (sentinel != MIL_BLOB_SENTINEL)
        return err_set("%s: chunk at offset %llu: expected sentinel 0xDEADBEEF, found 0x%08X%s", name,
                       (unsigned long long)mil_offset, sentinel,
                       mil_offset >= 128 && io_le32(h - 64) == MIL_BLOB_SENTINEL
                           ? " (HINT: the MIL offset points at the chunk header, e.g. 64, not the payload)"
                           : "");
    uint32_t dtype = io_le32(h + 4);
    size_t es = mil_blob_dtype_size((int)dtype);
    if (!es) return err_set("%s: chunk at offset %llu: unknown dtype %u", name, (unsigned long long)mil_offset, dtype);
    uint64_t bytes = io_le64(h + 8), poff = io_le64(h + 16);
    if (poff < mil_offset + MIL_BLOB_HEADER_BYTES)
        return err_set("%s: chunk at offset %llu: expected payload offset >= %llu, found %llu", name,
                       (unsigned long long)mil_offset, (unsigned long long)(mil_offset + 64),
                       (unsigned long long)poff);
    if (poff > size || bytes > size - poff)
        return err_set("%s: chunk at offset %llu: payload of %llu bytes at %llu runs past the end of the %zu-byte file",
                       name, (unsigned long long)mil_offset, (unsigned long long)bytes, (unsigned long long)poff,
                       size);
    if (bytes % es)
        return err_set("%s: chunk at offset %llu: expected a payload size that is a multiple of %zu, found %llu",
                       name, (unsigned long long)mil_offset, es, (unsigned long long)bytes);
    e->dtype = (int)dtype;
    e->bytes = bytes;
    e->payload_offset = poff;
    e->payload = data + poff;
    return 0;
}
