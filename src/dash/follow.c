// follow: a growing, maybe truncated or replaced, log file -> lines (follow.h).
#include "dash/follow.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"

int follow_init(Follower *f, const char *path) {
    memset(f, 0, sizeof *f);
    f->fd = -1;
    if (strlen(path) >= sizeof f->path) return err_set("%.64s...: path too long", path);
    strcpy(f->path, path);
    return 0;
}

void follow_free(Follower *f) {
    if (f->fd >= 0) close(f->fd);
    free(f->part);
    memset(f, 0, sizeof *f);
    f->fd = -1;
}

static void forget(Follower *f) {
    if (f->fd >= 0) close(f->fd);
    f->fd = -1;
    f->offset = 0;
    f->part_len = 0;
    f->skipping = 0;
}

// Opens the path if it is there; O_NONBLOCK so a fifo put in its place cannot hang us.
static int try_open(Follower *f) {
    int fd = open(f->path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return 0;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return 0;
    }
    f->fd = fd, f->dev = st.st_dev, f->ino = st.st_ino;
    return 1;
}

// 1 when what we read is no longer what the path holds.
static int changed(Follower *f) {
    struct stat by_path, by_fd;
    if (stat(f->path, &by_path) != 0) return 0;  // deleted: keep reading the open file until it reappears
    if (by_path.st_dev != f->dev || by_path.st_ino != f->ino) return 1;
    return fstat(f->fd, &by_fd) == 0 && by_fd.st_size < f->offset;
}

static int keep_part(Follower *f, const char *s, size_t n) {
    if (f->skipping || n == 0) return 0;  // (an empty piece: part may still be NULL)
    if (f->part_len + n > FOLLOW_MAX_LINE) {
        f->skipping = 1, f->part_len = 0, f->dropped++;
        return 0;
    }
    if (f->part_len + n > f->part_cap) {
        size_t cap = f->part_cap ? f->part_cap : 4096;
        while (cap < f->part_len + n) cap *= 2;
        char *p = realloc(f->part, cap);
        if (!p) return err_set("%s: out of memory for a line of %zu bytes", f->path, f->part_len + n);
        f->part = p, f->part_cap = cap;
    }
    memcpy(f->part + f->part_len, s, n);
    f->part_len += n;
    return 0;
}

// Splits one chunk at newlines, joining the first piece to the kept part.
static int split(Follower *f, const char *buf, size_t n, FollowLineFn fn, void *ctx) {
    int lines = 0;
    for (size_t i = 0; i < n;) {
        const char *nl = memchr(buf + i, '\n', n - i);
        size_t len = nl ? (size_t)(nl - (buf + i)) : n - i;
        if (keep_part(f, buf + i, len) != 0) return -1;
        i += len;
        if (!nl) break;
        i++;
        if (!f->skipping) {
            fn(ctx, f->part ? f->part : "", f->part_len);
            f->lines++, lines++;
        }
        f->skipping = 0, f->part_len = 0;
    }
    return lines;
}

int follow_poll(Follower *f, FollowLineFn fn, void *ctx, int *restarted) {
    *restarted = 0;
    if (f->fd >= 0 && changed(f)) {
        forget(f);
        *restarted = 1;
    }
    if (f->fd < 0 && !try_open(f)) return 0;
    if (lseek(f->fd, f->offset, SEEK_SET) < 0) return err_set("%s: seek: %s", f->path, strerror(errno));
    char buf[65536];
    int lines = 0;
    for (;;) {
        ssize_t got = read(f->fd, buf, sizeof buf);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return err_set("%s: read: %s", f->path, strerror(errno));
        if (got == 0) break;
        f->offset += got;
        int k = split(f, buf, (size_t)got, fn, ctx);
        if (k < 0) return -1;
        lines += k;
        if (lines > 20000) break;  // a huge backlog: let the caller draw between chunks
    }
    return lines;
}
