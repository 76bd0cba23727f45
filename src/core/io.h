// io: checked file reading, read-only mmap, atomic writes and run locks.
//
// Every function returns 0 on success, or -1 with err_msg() naming the path.
//
// Reading. Every reader opens through io_open_read: the path is opened with
// O_NONBLOCK (so a fifo cannot hang open()) and fstat'ed, and anything but a
// regular file (a fifo, a directory, a device such as /dev/zero, a socket,
// also behind a symlink) is refused with one line:
//   "z.json: not a regular file: expected a regular file, found a character
//   device (z.json -> /dev/zero)".
// Text inputs read whole (config.json, a safetensors index, MIL programs,
// tokenizer files) are capped at IO_TEXT_MAX (64 MiB), stated in the error.
//
// Writing. io_atomic_open/write/commit write PATH.tmp, flush and fsync it,
// then rename it over PATH, so a crash at any moment leaves either the old
// file or the new one, never half. The target is checked before anything is
// created:
//   - a PATH that exists and is not a regular file (a device such as
//     /dev/null, a fifo, a directory, a socket) is refused and left untouched;
//   - a PATH that is a symlink to a regular file is written THROUGH: the real
//     path is resolved (realpath) and PATH.tmp is created and renamed next to
//     the real file, so the symlink keeps pointing at the (new) file. A
//     symlink to a missing file or to a non-regular file is refused;
//   - the directory must exist and be writable, else the open fails naming it;
//   - a leftover PATH.tmp (of a crashed run, or a planted symlink or fifo) is
//     unlinked, never followed, and the new one is created O_EXCL|O_NOFOLLOW;
//   - an existing target's permission bits are kept.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

// The cap of text inputs read whole; far above any real config, index, MIL
// program or tokenizer, low enough that a wrong file cannot exhaust memory.
#define IO_TEXT_MAX ((size_t)64 << 20)

typedef struct {
    const uint8_t *data;  // read-only mapping (NULL for an empty file)
    size_t size;          // bytes
} MappedFile;

// Opens a regular file for reading (see above). Returns the descriptor
// (O_CLOEXEC, blocking) and sets *size, or -1.
int io_open_read(const char *path, size_t *size);
// Checks a path argument without reading it: 0 if it is a regular file, or a
// directory when allow_dir (Hugging Face model directories); else -1 with the
// same one line as io_open_read.
int io_check_input(const char *path, int allow_dir);

int io_map(MappedFile *m, const char *path);
void io_unmap(MappedFile *m);

// Reads the whole file into a malloc'd buffer (NUL-terminated for text use).
// No size cap: for binary inputs (weight blobs, fixtures).
int io_read_all(const char *path, char **out, size_t *size);
// The same for text inputs: a file larger than max bytes is refused with
// "PATH: expected a text file of at most 64 MiB, found ...".
int io_read_text(const char *path, size_t max, char **out, size_t *size);

typedef struct {
    FILE *f;
    char path[4096];  // the file renamed over: PATH, or a symlink's resolved target
    char tmp[4100];
    int failed;     // sticky: any write error makes commit fail
} AtomicFile;

int io_atomic_open(AtomicFile *af, const char *path);
// The checks of io_atomic_open (target kind, symlink, directory) without
// creating anything: lets a command refuse a bad -o before hours of work.
int io_check_output(const char *path);
int io_atomic_write(AtomicFile *af, const void *data, size_t n);
// fflush + fsync + rename + fsync(dir). On failure the tmp file is removed and
// the previous PATH is untouched.
int io_atomic_commit(AtomicFile *af);
void io_atomic_abort(AtomicFile *af);
// fsync of the directory holding path, so a rename into it survives a crash.
void io_fsync_dir(const char *path);

// Opens a log for appending (created if missing), for --log. An existing
// target must be a regular file (or a symlink to one); the explicit streams
// "-" and "/dev/stdout" (standard output) and "/dev/stderr" are allowed and
// written through a duplicate descriptor, so fclose() works as for a file.
// Anything else that is not a regular file (a fifo, /dev/null, a directory)
// is refused. NULL + err_msg on failure.
FILE *io_open_append(const char *path);

// An advisory lock held for a whole run on PATH (a checkpoint): an fcntl
// F_SETLK write lock on PATH.lock, which holds the holder's pid as text. A
// second process is refused with "PATH: in use by another anetrain run (pid N)".
// A lock whose holder died is free again (the kernel drops fcntl locks when a
// process exits), so a stale PATH.lock is simply taken over. The descriptor is
// not O_CLOEXEC: a run that exec()s itself (same pid) keeps its lock, and its
// io_lock of the same PATH succeeds. POSIX caveat: closing ANY descriptor of
// PATH.lock in this process drops the lock, so nothing else may open it.
// io_unlock removes PATH.lock (still holding it; a racing io_lock notices the
// file it locked was unlinked and retries).
typedef struct {
    int fd;
    int held;
    char path[4200];  // PATH.lock
} IoLock;

int io_lock(IoLock *l, const char *path);
void io_unlock(IoLock *l);

// Little-endian helpers for headers (the formats we read are all LE).
static inline uint32_t io_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t io_le64(const uint8_t *p) {
    return (uint64_t)io_le32(p) | (uint64_t)io_le32(p + 4) << 32;
}
