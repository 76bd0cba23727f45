// child: the trainer that `anetrain dash -- train ARGS...` runs, as a child
// process with its stdout and stderr on pipes (read without blocking, split
// into lines for the logs panel) and stdin on /dev/null.
//
// The child gets its own process group, so a Ctrl-C at the terminal reaches
// dash only; dash decides what the trainer gets (SIGINT on `q`, so it saves).
#pragma once
#include <stddef.h>
#include <sys/types.h>

// is_err: the line came from the child's stderr.
typedef void (*ChildLineFn)(void *ctx, int is_err, const char *line, size_t len);

typedef struct {
    pid_t pid;          // 0 when none runs
    int fd[2];          // stdout, stderr pipes (-1 when closed)
    char buf[2][4096];  // partial lines
    size_t len[2];
    int status;         // waitpid status once reaped
    int exited;         // reaped
} Child;

// The path of this program (to run `anetrain train` again), or -1.
int child_self_exe(char *out, size_t cap);
// Starts exe with argv (argv[0] included, NULL-terminated). 0, or -1.
int child_spawn(Child *c, const char *exe, char *const argv[]);
// Reads what is waiting on both pipes; calls fn per complete line (a line
// longer than the buffer is delivered in pieces). Returns 1 while a pipe is
// open, 0 when both are closed.
int child_read(Child *c, ChildLineFn fn, void *ctx);
// Delivers a partial last line of each pipe (after the child is gone).
void child_flush(Child *c, ChildLineFn fn, void *ctx);
int child_signal(Child *c, int sig);
// Reaps the child if it has exited (never blocks): 1 when it has, 0 if it runs.
int child_reap(Child *c);
// "exited 0", "killed by signal 9", "running (pid 123)"
void child_describe(const Child *c, char *out, size_t cap);
void child_close(Child *c);
