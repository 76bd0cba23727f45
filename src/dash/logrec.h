// logrec: one line of a `train --log` file (JSON lines, schema v1; README
// "The log") parsed into a flat record the dashboard and the plotter use.
//
// Parsing is strict about JSON (cJSON) and lenient about the schema: a member
// that is missing, null or of the wrong type reads as "absent" (NAN for
// numbers, -1 for counts, "" for strings), so a newer trainer's extra fields
// or an older one's missing ones never stop the dashboard. A line that is not
// a JSON object, or has no string "type", is an error (err_set, -1).
// Strings are copied NUL-terminated and cut (at a UTF-8 boundary) to fit.
#pragma once

typedef enum {
    LOG_START,
    LOG_CHANGE,
    LOG_STEP,
    LOG_SKIP,
    LOG_EVAL,
    LOG_CHECKPOINT,
    LOG_NOTE,
    LOG_REPORT,
    LOG_RESTART,
    LOG_SAMPLE,
    LOG_OTHER,  // a type this reader does not know: kept in the logs panel
} LogType;

enum { LOGREC_SHORT = 96, LOGREC_TEXT = 2048 };

// The config of a run, from its `start` record.
typedef struct {
    int v;  // schema version (1)
    char model[LOGREC_SHORT], pipeline[32], device[32], precision[16], gemm[64];
    long long dim, hidden, layers, heads, kv_heads, head_dim, vocab, params, seq;
    long long kernels, accum, steps, warmup, resumed_at;
    double lr, min_lr_frac, clip, tokens_per_update, flops_per_update;
    double peak_gflops;  // the machine's stated peak, NAN when the log has none
    char ckpt[LOGREC_SHORT * 2];
} LogStart;

// The numbers of a `step`, `skip`, `eval` or `report` record (absent = NAN).
typedef struct {
    long long step;
    double loss, lr, ms, tokens_per_s, grad_norm, loss_scale, rss_mb;
    double t_data, t_fwd, t_bwd, t_optim, t_device, t_staging, t_cpu_ops, t_dw_wait;
    double val_loss, val_ppl;
    int best;  // eval: this evaluation improved the best validation loss
    // report
    double wall_ms, compile_ms, train_ms, ms_per_step, gflops;
    long long steps;
} LogNums;

typedef struct {
    LogType type;
    char type_name[32];  // as written, also for LOG_OTHER
    double t_ms;         // ms since the run started (NAN when absent)
    LogStart start;      // LOG_START only
    LogNums n;
    // the text of the record, for the logs panel: note text, skip why,
    // checkpoint path, change "what: from -> to", sample prompt + text
    char text[LOGREC_TEXT];
    char prompt[LOGREC_SHORT * 2];  // sample
} LogRecord;

// 1 when this build can parse logs (it has cJSON).
int logrec_available(void);
// Parses line[0..len) (no newline needed). 0, or -1 with err_msg().
int logrec_parse(LogRecord *r, const char *line, long len);
