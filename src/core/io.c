// io: checked reading, atomic writes and run locks (behaviour in io.h).
#include "core/io.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/err.h"

// --- what a path is ------------------------------------------------------------------

static const char *kind_of(mode_t m) {
    if (S_ISREG(m)) return "a regular file";
    if (S_ISDIR(m)) return "a directory";
    if (S_ISFIFO(m)) return "a named pipe (fifo)";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISSOCK(m)) return "a socket";
    return "a special file";
}

// " (PATH -> TARGET)" when path is a symlink, else "": the user named a
// harmless-looking file, so say what it really is.
static void symlink_note(const char *path, char *out, size_t cap) {
    out[0] = 0;
    struct stat ls;
    if (lstat(path, &ls) != 0 || !S_ISLNK(ls.st_mode)) return;
    char target[PATH_MAX];
    ssize_t n = readlink(path, target, sizeof target - 1);
    if (n < 0) return;
    target[n] = 0;
    snprintf(out, cap, " (%s -> %s)", path, target);
}

static int not_regular(const char *path, mode_t m) {
    char note[PATH_MAX + 64];
    symlink_note(path, note, sizeof note);
    return err_set("%s: not a regular file: expected a regular file, found %s%s", path, kind_of(m), note);
}

// "64 MiB" for the caps stated in messages.
static void human_bytes(char *out, size_t cap, size_t n) {
    if (n >= ((size_t)1 << 20) && n % ((size_t)1 << 20) == 0) snprintf(out, cap, "%zu MiB", n >> 20);
    else if (n >= ((size_t)1 << 20)) snprintf(out, cap, "%.1f MiB", n / 1048576.0);
    else snprintf(out, cap, "%zu bytes", n);
}

// --- reading -----------------------------------------------------------------------------

int io_open_read(const char *path, size_t *size) {
    // stat first: a device is refused without being opened at all
    struct stat st;
    if (stat(path, &st) != 0) return err_set("%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return not_regular(path, st.st_mode);
    // O_NONBLOCK: if the path was swapped for a fifo meanwhile, open() must not wait for a writer
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return err_set("%s: cannot open: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int rc = S_ISREG(st.st_mode) ? err_set("%s: cannot stat: %s", path, strerror(errno))
                                     : not_regular(path, st.st_mode);
        close(fd);
        return rc;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    if (size) *size = (size_t)st.st_size;
    return fd;
}

int io_check_input(const char *path, int allow_dir) {
    struct stat st;
    if (allow_dir && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return 0;
    int fd = io_open_read(path, NULL);
    if (fd < 0) return -1;
    close(fd);
    return 0;
}

int io_map(MappedFile *m, const char *path) {
    m->data = NULL;
    m->size = 0;
    size_t size = 0;
    int fd = io_open_read(path, &size);
    if (fd < 0) return -1;
    if (size > 0) {
        void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return err_set("%s: mmap failed: %s", path, strerror(errno));
        }
        m->data = p;
        m->size = size;
    }
    close(fd);
    return 0;
}

void io_unmap(MappedFile *m) {
    if (m->data) munmap((void *)m->data, m->size);
    m->data = NULL;
    m->size = 0;
}

// Reads the file's size as fstat saw it at open (a file that grows meanwhile
// is read as it was; one that shrinks, up to its end).
static int read_fd(int fd, const char *path, size_t size, char **out, size_t *got_out) {
    char *buf = malloc(size + 1);
    if (!buf) return err_set("%s: out of memory for %zu bytes", path, size);
    size_t got = 0;
    while (got < size) {
        ssize_t k = read(fd, buf + got, size - got);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) {
            free(buf);
            return err_set("%s: read error: %s", path, strerror(errno));
        }
        if (k == 0) break;
        got += (size_t)k;
    }
    buf[got] = 0;
    *out = buf;
    if (got_out) *got_out = got;
    return 0;
}

int io_read_text(const char *path, size_t max, char **out, size_t *size) {
    *out = NULL;
    size_t n = 0;
    int fd = io_open_read(path, &n);
    if (fd < 0) return -1;
    if (n > max) {
        close(fd);
        char cap[32], found[32];
        human_bytes(cap, sizeof cap, max);
        human_bytes(found, sizeof found, n);
        return err_set("%s: expected a text file of at most %s, found %s (%zu bytes)", path, cap, found, n);
    }
    int rc = read_fd(fd, path, n, out, size);
    close(fd);
    return rc;
}

int io_read_all(const char *path, char **out, size_t *size) { return io_read_text(path, SIZE_MAX - 1, out, size); }

// --- atomic writes -----------------------------------------------------------------------

// Where the new file goes: path itself, or the regular file a symlink points
// at. Refuses anything that exists and is not a regular file.
static int resolve_target(const char *path, char *out, size_t cap) {
    struct stat ls;
    if (lstat(path, &ls) != 0) {
        if (errno != ENOENT && errno != ENOTDIR)
            return err_set("%s: cannot write: %s", path, strerror(errno));
        snprintf(out, cap, "%s", path);  // a new file; the directory is checked next
        return 0;
    }
    if (S_ISREG(ls.st_mode)) {
        snprintf(out, cap, "%s", path);
        return 0;
    }
    if (!S_ISLNK(ls.st_mode))
        return err_set("%s: cannot write: expected a regular file or a new name, found %s (left untouched)", path,
                       kind_of(ls.st_mode));
    char *real = realpath(path, NULL);
    if (!real) {
        char note[PATH_MAX + 64];
        symlink_note(path, note, sizeof note);
        return err_set("%s: cannot write: expected a symlink to a regular file, found a symlink to a missing "
                       "file%s", path, note);
    }
    struct stat st;
    int rc = 0;
    if (stat(real, &st) != 0 || !S_ISREG(st.st_mode))
        rc = err_set("%s: cannot write: expected a regular file or a new name, found a symlink to %s (%s; left "
                     "untouched)", path, kind_of(st.st_mode), real);
    else if (strlen(real) >= cap)
        rc = err_set("%s: path too long once resolved: %s", path, real);
    else snprintf(out, cap, "%s", real);
    free(real);
    return rc;
}

// The directory of the target must exist and take new files: say so at open
// time rather than as a failed create.
static int check_dir(const AtomicFile *af, const char *path) {
    char copy[sizeof af->path];
    snprintf(copy, sizeof copy, "%s", af->path);
    const char *dir = dirname(copy);
    struct stat st;
    if (stat(dir, &st) != 0)
        return err_set("%s: cannot create %s: the directory %s %s", path, af->tmp, dir,
                       errno == ENOENT ? "does not exist" : strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return err_set("%s: cannot create %s: expected %s to be a directory, found %s", path, af->tmp, dir,
                       kind_of(st.st_mode));
    if (access(dir, W_OK | X_OK) != 0)
        return err_set("%s: cannot create %s: the directory %s is not writable (%s)", path, af->tmp, dir,
                       strerror(errno));
    return 0;
}

// A fresh PATH.tmp: whatever has that name (a crashed run's file, a planted
// symlink or fifo) is removed first, and O_EXCL|O_NOFOLLOW make sure the file
// we write is the one we just created.
static int create_tmp(AtomicFile *af, const char *path) {
    if (unlink(af->tmp) != 0 && errno != ENOENT)
        return err_set("%s: cannot remove the stale %s: %s", path, af->tmp, strerror(errno));
    int fd = open(af->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0) return err_set("%s: cannot create %s: %s", path, af->tmp, strerror(errno));
    struct stat st;
    if (stat(af->path, &st) == 0 && S_ISREG(st.st_mode)) fchmod(fd, st.st_mode & 07777);  // keep the old mode
    af->f = fdopen(fd, "wb");
    if (!af->f) {
        close(fd);
        unlink(af->tmp);
        return err_set("%s: cannot open %s: %s", path, af->tmp, strerror(errno));
    }
    return 0;
}

int io_atomic_open(AtomicFile *af, const char *path) {
    memset(af, 0, sizeof *af);
    if (strlen(path) >= sizeof af->path) return err_set("%s: path too long", path);
    if (resolve_target(path, af->path, sizeof af->path) != 0) return -1;
    snprintf(af->tmp, sizeof af->tmp, "%s.tmp", af->path);
    if (check_dir(af, path) != 0) return -1;
    return create_tmp(af, path);
}

int io_check_output(const char *path) {
    AtomicFile af;
    memset(&af, 0, sizeof af);
    if (strlen(path) >= sizeof af.path) return err_set("%s: path too long", path);
    if (resolve_target(path, af.path, sizeof af.path) != 0) return -1;
    snprintf(af.tmp, sizeof af.tmp, "%s.tmp", af.path);
    return check_dir(&af, path);
}

int io_atomic_write(AtomicFile *af, const void *data, size_t n) {
    if (af->failed) return -1;
    if (n && fwrite(data, 1, n, af->f) != n) {
        af->failed = 1;
        return err_set("%s: write failed: %s", af->tmp, strerror(errno));
    }
    return 0;
}

void io_fsync_dir(const char *path) {
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
    io_fsync_dir(af->path);
    return 0;
}

void io_atomic_abort(AtomicFile *af) {
    if (af->f) { fclose(af->f); af->f = NULL; unlink(af->tmp); }
}

// --- logs ----------------------------------------------------------------------------------

static FILE *dup_stream(int fd, const char *path) {
    int d = dup(fd);
    FILE *f = d >= 0 ? fdopen(d, "a") : NULL;
    if (!f) {
        if (d >= 0) close(d);
        err_set("%s: cannot open the stream: %s", path, strerror(errno));
    }
    return f;
}

FILE *io_open_append(const char *path) {
    if (!strcmp(path, "-") || !strcmp(path, "/dev/stdout")) return dup_stream(STDOUT_FILENO, path);
    if (!strcmp(path, "/dev/stderr")) return dup_stream(STDERR_FILENO, path);
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        not_regular(path, st.st_mode);
        err_wrap("cannot append to the log (\"-\" or /dev/stdout write to standard output)");
        return NULL;
    }
    // O_NONBLOCK: a fifo swapped in after the stat must not hang open()
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_CLOEXEC, 0666);
    if (fd < 0) {
        err_set("%s: cannot open the log for appending: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        not_regular(path, st.st_mode);
        return NULL;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    FILE *f = fdopen(fd, "a");
    if (!f) {
        close(fd);
        err_set("%s: cannot open the log: %s", path, strerror(errno));
    }
    return f;
}

// --- run locks ------------------------------------------------------------------------------

// The pid holding the lock on fd: what the kernel says (F_GETLK), else what
// the holder wrote into the file.
static long holder_pid(int fd) {
    struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fcntl(fd, F_GETLK, &q) == 0 && q.l_type != F_UNLCK && q.l_pid > 0) return (long)q.l_pid;
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    if (n <= 0) return -1;
    buf[n] = 0;
    return strtol(buf, NULL, 10);
}

// 1 if fd is still the file at path (a holder's io_unlock may have unlinked it).
static int same_file(int fd, const char *path) {
    struct stat a, b;
    return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static int write_pid(int fd) {
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    return ftruncate(fd, 0) == 0 && pwrite(fd, buf, (size_t)n, 0) == n ? 0 : -1;
}

// A process started by exec() from one that held this lock adopts its
// descriptor (ANETRAIN_LOCK_FD): a second open and a close of either would
// drop the lock, and leaving the old one open would leak a descriptor per exec.
static int adopt_lock(IoLock *l) {
    const char *env = getenv("ANETRAIN_LOCK_FD");
    if (!env) return 0;
    const int fd = atoi(env);
    unsetenv("ANETRAIN_LOCK_FD");
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fd <= 2 || fcntl(fd, F_GETFD) == -1) return 0;
    if (!same_file(fd, l->path) || fcntl(fd, F_SETLK, &fl) != 0 || write_pid(fd) != 0) {
        close(fd);  // not this lock's (or unusable): the normal path takes the lock
        return 0;
    }
    l->fd = fd;
    l->held = 1;
    return 1;
}

int io_lock(IoLock *l, const char *path) {
    memset(l, 0, sizeof *l);
    l->fd = -1;
    if ((size_t)snprintf(l->path, sizeof l->path, "%s.lock", path) >= sizeof l->path)
        return err_set("%s: path too long", path);
    if (adopt_lock(l)) return 0;
    for (int attempt = 0; attempt < 16; attempt++) {
        // no O_CLOEXEC on purpose (io.h); O_NOFOLLOW|O_NONBLOCK: a planted symlink or fifo is not used
        int fd = open(l->path, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK, 0666);
        if (fd < 0) return err_set("%s: cannot create the lock file %s: %s", path, l->path, strerror(errno));
        struct stat st;
        if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            close(fd);
            return err_set("%s: lock file %s: expected a regular file, found %s", path, l->path, kind_of(st.st_mode));
        }
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
        if (fcntl(fd, F_SETLK, &fl) != 0) {
            int e = errno;
            long pid = (e == EACCES || e == EAGAIN) ? holder_pid(fd) : 0;
            close(fd);
            if (e == EACCES || e == EAGAIN) return err_set("%s: in use by another anetrain run (pid %ld)", path, pid);
            return err_set("%s: cannot lock %s: %s", path, l->path, strerror(e));
        }
        if (!same_file(fd, l->path)) {  // locked a file its last holder just removed: try the new one
            close(fd);
            continue;
        }
        if (write_pid(fd) != 0) {
            int e = errno;
            close(fd);
            return err_set("%s: cannot write the lock file %s: %s", path, l->path, strerror(e));
        }
        l->fd = fd;
        l->held = 1;
        return 0;
    }
    return err_set("%s: cannot take the lock %s: it keeps being replaced", path, l->path);
}

void io_unlock(IoLock *l) {
    if (!l->held) return;
    unlink(l->path);  // before close: whoever locks the old file next sees it is gone
    close(l->fd);
    l->fd = -1;
    l->held = 0;
}
