// child: the trainer as a child process behind pipes (child.h).
#include "dash/child.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __APPLE__
#include <mach-o/dyld.h>
#endif

#include "core/err.h"

int child_self_exe(char *out, size_t cap) {
#ifdef __APPLE__
    uint32_t n = (uint32_t)cap;
    if (_NSGetExecutablePath(out, &n) != 0) return err_set("cannot find this program's path");
    return 0;
#else
    ssize_t n = readlink("/proc/self/exe", out, cap - 1);
    if (n <= 0) return err_set("cannot find this program's path (/proc/self/exe: %s)", strerror(errno));
    out[n] = 0;
    return 0;
#endif
}

// In the child, between fork and exec: only async-signal-safe calls.
static void exec_child(int out[2], int err[2], const char *exe, char *const argv[]) {
    setpgid(0, 0);
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, STDIN_FILENO);
    dup2(out[1], STDOUT_FILENO);
    dup2(err[1], STDERR_FILENO);
    close(out[0]), close(out[1]), close(err[0]), close(err[1]);
    // the dashboard's signal dispositions are not the trainer's
    signal(SIGINT, SIG_DFL), signal(SIGTERM, SIG_DFL), signal(SIGHUP, SIG_DFL), signal(SIGPIPE, SIG_DFL);
    signal(SIGWINCH, SIG_DFL), signal(SIGUSR1, SIG_DFL);
    execv(exe, argv);
    static const char msg[] = "dash: cannot run the trainer (exec failed)\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
    _exit(127);
}

int child_spawn(Child *c, const char *exe, char *const argv[]) {
    memset(c, 0, sizeof *c);
    c->fd[0] = c->fd[1] = -1;
    int out[2], err[2];
    if (pipe(out) != 0) return err_set("dash: pipe: %s", strerror(errno));
    if (pipe(err) != 0) {
        close(out[0]), close(out[1]);
        return err_set("dash: pipe: %s", strerror(errno));
    }
    pid_t pid = fork();
    if (pid < 0) {
        close(out[0]), close(out[1]), close(err[0]), close(err[1]);
        return err_set("dash: fork: %s", strerror(errno));
    }
    if (pid == 0) exec_child(out, err, exe, argv);
    setpgid(pid, pid);  // also here: whichever runs first, the group exists before a signal is sent
    close(out[1]), close(err[1]);
    c->pid = pid, c->fd[0] = out[0], c->fd[1] = err[0];
    for (int i = 0; i < 2; i++) {
        fcntl(c->fd[i], F_SETFL, fcntl(c->fd[i], F_GETFL) | O_NONBLOCK);
        fcntl(c->fd[i], F_SETFD, FD_CLOEXEC);
    }
    return 0;
}

static void split(Child *c, int i, const char *data, size_t n, ChildLineFn fn, void *ctx) {
    for (size_t k = 0; k < n; k++) {
        char ch = data[k];
        if (ch == '\r') continue;  // progress bars redraw with \r; keep what they end with
        if (ch == '\n' || c->len[i] == sizeof c->buf[i]) {
            fn(ctx, i, c->buf[i], c->len[i]);
            c->len[i] = 0;
            if (ch == '\n') continue;
        }
        c->buf[i][c->len[i]++] = ch;
    }
}

int child_read(Child *c, ChildLineFn fn, void *ctx) {
    int open_fds = 0;
    for (int i = 0; i < 2; i++) {
        char buf[8192];
        while (c->fd[i] >= 0) {
            ssize_t n = read(c->fd[i], buf, sizeof buf);
            if (n > 0) {
                split(c, i, buf, (size_t)n, fn, ctx);
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
            close(c->fd[i]);  // end of file (or an error): the child closed it
            c->fd[i] = -1;
        }
        open_fds += c->fd[i] >= 0;
    }
    return open_fds > 0;
}

void child_flush(Child *c, ChildLineFn fn, void *ctx) {
    for (int i = 0; i < 2; i++)
        if (c->len[i]) fn(ctx, i, c->buf[i], c->len[i]), c->len[i] = 0;
}

int child_signal(Child *c, int sig) {
    if (c->pid <= 0 || c->exited) return 0;
    if (kill(c->pid, sig) != 0) return err_set("dash: signal to pid %d: %s", (int)c->pid, strerror(errno));
    return 0;
}

int child_reap(Child *c) {
    if (c->pid <= 0 || c->exited) return c->exited;
    int st;
    pid_t r = waitpid(c->pid, &st, WNOHANG);
    if (r == c->pid) c->status = st, c->exited = 1;
    return c->exited;
}

void child_describe(const Child *c, char *out, size_t cap) {
    if (c->pid <= 0) snprintf(out, cap, "no trainer");
    else if (!c->exited) snprintf(out, cap, "running (pid %d)", (int)c->pid);
    else if (WIFEXITED(c->status)) snprintf(out, cap, "trainer exited %d", WEXITSTATUS(c->status));
    else if (WIFSIGNALED(c->status)) snprintf(out, cap, "trainer killed by signal %d", WTERMSIG(c->status));
    else snprintf(out, cap, "trainer status %d", c->status);
}

void child_close(Child *c) {
    for (int i = 0; i < 2; i++)
        if (c->fd[i] >= 0) close(c->fd[i]);
    c->fd[0] = c->fd[1] = -1;
}
