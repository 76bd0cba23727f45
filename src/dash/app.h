// app: `anetrain dash` itself: the loop that follows a log (and runs a child
// trainer), samples the process and the power, reads keys and redraws.
//
// Redraws at most 15 times a second (when something changed) and at least
// once a second; a resize redraws at once. SIGINT, SIGTERM and SIGHUP quit
// the same way `q` does; the terminal is restored on every way out.
#pragma once

typedef struct {
    const char *log_path;  // the log to follow (the child's --log when there is a child)
    char **train_argv;     // the child's argv: {exe, "train", ..., NULL}; NULL = only follow the log
    const char *label;     // what the header says is shown when there is no start record
} DashRunOptions;

// Runs until the user quits (and a child trainer has exited). 0 with
// *child_status (the child's exit code, 0 without a child), or -1 with err_msg().
int dash_run(const DashRunOptions *o, int *child_status);
