// state: everything the dashboard shows, built from log records, the child's
// output and system samples; the renderer (render.h) draws it and nothing else.
//
// Feed it with dash_state_apply() for each log record (in file order),
// dash_state_log() for a line of text (the child's stdout/stderr, dash's own
// notices), and the dash_state_sys_*() samples. dash_state_reset() forgets
// what came from the log (when the follower says the file started over) but
// keeps the logs panel, the system history and the view settings.
#pragma once
#include <stddef.h>

#include "dash/logrec.h"

// A point of the loss curves. x is the update; tokens = update x tokens/update.
typedef struct {
    double step, tokens, y;
} DashPoint;

typedef struct {
    DashPoint *p;
    size_t n, cap;
    int stride;       // keep one point in `stride` (doubled when full: memory stays bounded)
    int provisional;  // the last point is off-stride: the next one replaces it
    long long seen;
} DashSeries;

enum { DASH_SERIES_MAX = 1 << 16 };

typedef enum {
    DASH_LOG_INFO,     // plain text (the child's stdout)
    DASH_LOG_STEP,     // step lines
    DASH_LOG_EVAL,     // evaluations, checkpoints
    DASH_LOG_RESTART,  // starts of a resumed run, restarts, changes
    DASH_LOG_WARN,     // skips, notes, the child's stderr
    DASH_LOG_ERROR,    // lines with error/FAIL, unparsable log lines
} DashLogKind;

enum { DASH_LOG_LINES = 2000, DASH_LOG_WIDTH = 240, DASH_HIST = 300 };

typedef struct {
    char text[DASH_LOG_WIDTH];
    DashLogKind kind;
} DashLogLine;

// A fixed-length history of samples (oldest first when read in order).
typedef struct {
    double v[DASH_HIST];
    int n, head;
} DashHist;

typedef struct {
    // from the log
    int have_start, runs, restarts;
    LogStart cfg;
    LogNums last;             // the latest step record
    int have_step;
    double t_ms;              // the latest t_ms of any record
    double ms_ema;            // smoothed ms per update (for the ETA)
    double best_val, last_val;
    long long best_val_step;
    long long skips, bad_lines;
    int have_report;
    LogNums report;
    long long sample_step;
    char sample_prompt[LOGREC_SHORT * 2], sample_text[LOGREC_TEXT];
    DashSeries train, val;
    // the logs panel
    DashLogLine *logs;  // ring of DASH_LOG_LINES
    long long log_count;
    // the process and the machine
    int have_proc;          // a child (or a pid) is sampled
    char proc_status[96];   // "running (pid 123)", "exited 0", ...
    DashHist cpu, rss, power;
    double cpu_now, rss_now, power_now;
    char power_what[96];    // "RAPL package-0", or why there is none
    int power_ok;
    char source[256];       // what is shown: the log path, "child: train ..."
    // view settings (keys)
    int smooth, x_tokens, log_y, help, paused;
    int scroll;             // log lines scrolled back from the newest
    int quiet_records;      // a child's own output shows the steps: records add no log lines
} DashState;

int dash_state_init(DashState *s);
void dash_state_free(DashState *s);
void dash_state_reset(DashState *s);
void dash_state_apply(DashState *s, const LogRecord *r);
// A raw log line: parses it and applies the record, or counts and shows it as bad.
void dash_state_line(DashState *s, const char *line, size_t len);
void dash_state_log(DashState *s, DashLogKind kind, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
// The i-th newest log line (0 = newest), or NULL.
const DashLogLine *dash_state_log_line(const DashState *s, long long i);
void dash_hist_push(DashHist *h, double v);
double dash_hist_at(const DashHist *h, int i);  // i = 0 oldest .. n-1 newest
