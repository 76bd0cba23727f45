// io: checked file reading, read-only mmap, and atomic writes.
//
// Every function returns 0 on success, or -1 with err_msg() naming the path.
// Writes go to PATH.tmp, are flushed and fsynced, then renamed over PATH, so a
// crash at any moment leaves either the old file or the new one, never half.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    const uint8_t *data;  // read-only mapping (NULL for an empty file)
    size_t size;          // bytes
} MappedFile;

int io_map(MappedFile *m, const char *path);
void io_unmap(MappedFile *m);

// Reads the whole file into a malloc'd buffer (NUL-terminated for text use).
int io_read_all(const char *path, char **out, size_t *size);

typedef struct {
    FILE *f;
    char path[4096];
    char tmp[4100];
    int failed;     // sticky: any write error makes commit fail
} AtomicFile;

int io_atomic_open(AtomicFile *af, const char *path);
int io_atomic_write(AtomicFile *af, const void *data, size_t n);
// fflush + fsync + rename + fsync(dir). On failure the tmp file is removed and
// the previous PATH is untouched.
int io_atomic_commit(AtomicFile *af);
void io_atomic_abort(AtomicFile *af);

// Little-endian helpers for headers (the formats we read are all LE).
static inline uint32_t io_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t io_le64(const uint8_t *p) {
    return (uint64_t)io_le32(p) | (uint64_t)io_le32(p + 4) << 32;
}
