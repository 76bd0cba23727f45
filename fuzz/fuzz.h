// fuzz.h: what the libFuzzer harnesses (fuzz/fuzz_*.c, `make fuzz`) share.
//
// Most loaders take a path, so a harness writes the input to a scratch file
// in a per-process temporary directory (removed at exit; in /dev/shm when
// there is one) and loads that.
// Loaders that read several files (a MIL program and its weight blobs, a
// Hugging Face directory) get a bundle: the input cut into parts, each a u32
// little-endian length and that many bytes (a short last part keeps what is
// left). fuzz/seeds.sh writes seeds in the same layout.
//
// Each harness names its seeds on a line starting with "// seeds:": globs
// relative to the pool directory fuzz/seeds.sh fills.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"

static char fuzz_dir_path[512];

static void fuzz_cleanup(void) {
    if (!fuzz_dir_path[0]) return;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fuzz_dir_path);
    if (system(cmd) != 0) fprintf(stderr, "fuzz: could not remove %s\n", fuzz_dir_path);
}

// A harness bug or a full disk, not a finding: stop loudly.
static inline void fuzz_die(const char *what, const char *path) {
    fprintf(stderr, "fuzz harness: %s %s failed\n", what, path);
    exit(2);
}

// fuzz_dir_path/name (the directory is made on first use).
static inline const char *fuzz_path(const char *name) {
    static char path[4][700];
    static int slot;
    if (!fuzz_dir_path[0]) {
        // tmpfs first: on ext4 a file truncated and rewritten is flushed at
        // close (auto_da_alloc), which made each execution wait for the disk
        const char *tmp = getenv("TMPDIR");
        if (access("/dev/shm", W_OK) == 0) tmp = "/dev/shm";
        snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "%s/anetrain-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(fuzz_dir_path)) fuzz_die("mkdtemp", fuzz_dir_path);
        atexit(fuzz_cleanup);
    }
    char *p = path[slot++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", fuzz_dir_path, name);
    return p;
}

// Makes the subdirectory fuzz_path(name) and returns its path.
static inline const char *fuzz_subdir(const char *name) {
    const char *p = fuzz_path(name);
    if (mkdir(p, 0700) != 0 && access(p, W_OK) != 0) fuzz_die("mkdir", p);
    return p;
}

// Writes data[0..size) to fuzz_path(name) (replacing it) and returns the path.
static inline const char *fuzz_write(const char *name, const uint8_t *data, size_t size) {
    const char *p = fuzz_path(name);
    FILE *f = fopen(p, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) fuzz_die("writing", p);
    return p;
}

// rc == 0, the loaders' success; with FUZZ_VERBOSE=1 in the environment it
// also prints what failed (to check that seeds load: run a harness on them).
static inline int fuzz_ok(int rc, const char *what) {
    static int verbose = -1;
    if (verbose < 0) verbose = getenv("FUZZ_VERBOSE") != NULL;
    if (verbose) fprintf(stderr, "%s: %s\n", what, rc == 0 ? "ok" : err_msg());
    return rc == 0;
}

typedef struct {
    const uint8_t *data;
    size_t size;
} FuzzPart;

// Cuts a bundle into at most max parts; returns how many.
static inline int fuzz_split(const uint8_t *data, size_t size, FuzzPart *parts, int max) {
    int n = 0;
    while (n < max && size >= 4) {
        size_t len = (size_t)data[0] | (size_t)data[1] << 8 | (size_t)data[2] << 16 | (size_t)data[3] << 24;
        data += 4, size -= 4;
        if (len > size) len = size;
        parts[n++] = (FuzzPart){data, len};
        data += len, size -= len;
    }
    return n;
}

// A NUL-terminated copy (for entry points that take C strings); free() it.
static inline char *fuzz_strdup(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) fuzz_die("malloc", "");
    if (size) memcpy(s, data, size);
    s[size] = 0;
    return s;
}
