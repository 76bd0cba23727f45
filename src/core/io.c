#include "core/io.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"

int io_map(MappedFile *m, const char *path) {
    m->data = NULL;
    m->size = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0) return err_set("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return err_set("%s: not a regular file", path);
    }
    m->size = (size_t)st.st_size;
    if (m->size > 0) {
        void *p = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return err_set("%s: mmap failed: %s", path, strerror(errno));
        }
        m->data = p;
    }
    close(fd);
    return 0;
}

void io_unmap(MappedFile *m) {
    if (m->data) munmap((void *)m->data, m->size);
    m->data = NULL;
    m->size = 0;
}

int io_read_all(const char *path, char **out, size_t *size) {
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) return err_set("%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (n < cap) break;
        cap *= 2;
        char *nb = realloc(buf, cap + 1);
        if (!nb) { free(buf); buf = NULL; }
        else buf = nb;
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf) return err_set("%s: out of memory", path);
    if (bad) { free(buf); return err_set("%s: read error", path); }
    buf[n] = 0;
    *out = buf;
    if (size) *size = n;
    return 0;
}

int io_atomic_open(AtomicFile *af, const char *path) {
    memset(af, 0, sizeof *af);
    if (strlen(path) >= sizeof af->path) return err_set("%s: path too long", path);
    snprintf(af->path, sizeof af->path, "%s", path);
    snprintf(af->tmp, sizeof af->tmp, "%s.tmp", path);
    af->f = fopen(af->tmp, "wb");
    if (!af->f) return err_set("%s: cannot create: %s", af->tmp, strerror(errno));
    return 0;
}

int io_atomic_write(AtomicFile *af, const void *data, size_t n) {
    if (af->failed) return -1;
    if (n && fwrite(data, 1, n, af->f) != n) {
        af->failed = 1;
        return err_set("%s: write failed: %s", af->tmp, strerror(errno));
    }
    return 0;
}

static void fsync_dir(const char *path) {
    char copy[4096];
    snprintf(copy, sizeof copy, "%s", path);
    int fd = open(dirname(copy), O_RDONLY);
    if (fd >= 0) { fsync(fd); close(fd); }
}

int io_atomic_commit(AtomicFile *af) {
    if (!af->f) return err_set("%s: not open", af->path);
    int rc = af->failed ? -1 : 0;
    if (rc == 0 && fflush(af->f) != 0) rc = err_set("%s: flush failed: %s", af->tmp, strerror(errno));
    if (rc == 0 && fsync(fileno(af->f)) != 0) rc = err_set("%s: fsync failed: %s", af->tmp, strerror(errno));
    if (fclose(af->f) != 0 && rc == 0) rc = err_set("%s: close failed: %s", af->tmp, strerror(errno));
    af->f = NULL;
    if (rc == 0 && rename(af->tmp, af->path) != 0)
        rc = err_set("%s: rename to %s failed: %s", af->tmp, af->path, strerror(errno));
    if (rc != 0) { unlink(af->tmp); return -1; }
    fsync_dir(af->path);
    return 0;
}

void io_atomic_abort(AtomicFile *af) {
    if (af->f) { fclose(af->f); af->f = NULL; unlink(af->tmp); }
}
