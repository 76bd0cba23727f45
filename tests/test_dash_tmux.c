// `anetrain dash -- train ...` in a real terminal: tmux runs it in a detached
// session of a fixed size; the test captures the pane and checks the model,
// the current update and its loss against the log, asks for a sample (g),
// resizes the window (also below the minimum), restarts the trainer with
// --resume (r), then sends q and checks that the trainer saved its checkpoint
// and that both exited 0.
// Needs Debian's tmux: skipped when missing, failed under CI=true.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/io.h"
#include "core/timer.h"
#include "dash/logrec.h"
#include "dash/tui.h"
#include "test.h"

static char g_sock[700];

static int have_tool(const char *name, const char *package) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "command -v %s", name);
    if (test_run(cmd, NULL) == 0) return 1;
    if (getenv("CI") && !strcmp(getenv("CI"), "true")) CHECKF(0, "%s is missing (CI installs %s)", name, package);
    else test_skip(package);
    return 0;
}

static char *capture(void) {
    char *out = NULL;
    test_runf(&out, "tmux -S '%s' capture-pane -p -t dash", g_sock);
    return out;
}

// The last step record's update and loss, from the log.
static int log_last_step(const char *path, long long *step, double *loss, int *samples) {
    char *buf;
    size_t n;
    *step = -1, *samples = 0;
    if (io_read_all(path, &buf, &n) != 0) return -1;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        LogRecord r;
        if (logrec_parse(&r, line, -1) != 0) continue;
        if (r.type == LOG_STEP) *step = r.n.step, *loss = r.n.loss;
        *samples += r.type == LOG_SAMPLE;
    }
    free(buf);
    return 0;
}

// The loss the pane shows for update `step`, looked up in the log (the log may be ahead of the frame).
static double log_loss_at(const char *path, long long step) {
    char *buf;
    size_t n;
    double loss = NAN;
    if (io_read_all(path, &buf, &n) != 0) return NAN;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        LogRecord r;
        if (logrec_parse(&r, line, -1) == 0 && r.type == LOG_STEP && r.n.step == step) loss = r.n.loss;
    }
    free(buf);
    return loss;
}

// How many `start` records of a resumed run the log holds.
static int log_resumed_starts(const char *path) {
    char *buf;
    size_t n;
    int k = 0;
    if (io_read_all(path, &buf, &n) != 0) return -1;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        LogRecord r;
        k += logrec_parse(&r, line, -1) == 0 && r.type == LOG_START && r.start.resumed_at > 0;
    }
    free(buf);
    return k;
}

static int wait_for(const char *needle, double ms, char **pane) {
    double t0 = time_ms();
    for (;;) {
        free(*pane);
        *pane = capture();
        if (*pane && strstr(*pane, needle)) return 1;
        if (time_ms() - t0 > ms) return 0;
        usleep(200 * 1000);
    }
}

// Long enough that the run is still going after every interaction below on
// a loaded machine (~12 ms an update: 40 s); the test ends it with q.
#define RUN_STEPS 3000
#define RUN_STEPS_S "3000"

static void check_frame(const char *pane, const char *log) {
    long long shown = -1, total = -1;
    double loss = NAN;
    const char *u = strstr(pane, "update     ");
    const char *l = strstr(pane, "loss       ");
    CHECKF(u && sscanf(u + 11, "%lld/%lld", &shown, &total) == 2 && total == RUN_STEPS, "no update line in:\n%s", pane);
    CHECKF(l && sscanf(l + 11, "%lf", &loss) == 1, "no loss line in:\n%s", pane);
    double want = log_loss_at(log, shown);
    CHECKF(fabs(loss - want) < 1e-3, "the pane shows loss %.4f at update %lld; the log says %.4f", loss, shown, want);
    CHECK(strstr(pane, "stories260k") && strstr(pane, "0.26M params"));
}

TEST(dash_tmux_live_run) {
    if (!have_tool("tmux", "tmux not installed (apt-get install tmux)")) return;
    if (!tui_available() || !logrec_available()) {
        test_skip("built without ncursesw or cJSON");
        return;
    }
    const char *dir = test_tmpdir();
    char log[600], ckpt[600], rcfile[600];
    snprintf(log, sizeof log, "%s/tmux.jsonl", dir);
    snprintf(ckpt, sizeof ckpt, "%s/tmux.bin", dir);
    snprintf(rcfile, sizeof rcfile, "%s/dash.rc", dir);
    snprintf(g_sock, sizeof g_sock, "%s/tmux.sock", dir);  // its own server, removed with the directory
    int rc = test_runf(NULL,
                       "tmux -S '%s' -f /dev/null new-session -d -s dash -x 110 -y 34 "
                       "\"cd '%s' && LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM=xterm-256color '%s' dash -- train --steps %d "
                       "--accum 1 --seq 128 --eval-every 50 --out-dir '%s' --ckpt '%s' --log '%s'; echo \\$? > '%s'\"",
                       g_sock, dir, test_bin(), RUN_STEPS, dir, ckpt, log, rcfile);
    REQUIRE(rc == 0);
    char *pane = NULL;
    CHECKF(wait_for("step 10/" RUN_STEPS_S, 30000, &pane), "no step 10 within 30 s:\n%s", pane ? pane : "");
    usleep(1200 * 1000);  // at least one redraw a second
    free(pane);
    pane = capture();
    if (pane) check_frame(pane, log);
    // g: a sample from the current weights, shown in its panel
    test_runf(NULL, "tmux -S '%s' send-keys -t dash g", g_sock);
    CHECKF(wait_for("generated text (update", 20000, &pane), "no sample shown:\n%s", pane ? pane : "");
    // smaller, then too small, then back
    test_runf(NULL, "tmux -S '%s' resize-window -t dash -x 72 -y 24", g_sock);
    CHECKF(wait_for("stories260k", 3000, &pane), "nothing after a resize:\n%s", pane ? pane : "");
    int wide = 0;
    for (char *p = pane, *e; p && *p; p = e + 1) {
        e = strchr(p, '\n');
        if (!e) break;
        int cells = 0;
        for (char *q = p; q < e; q++) cells += ((unsigned char)*q & 0xC0) != 0x80;
        wide |= cells > 72;
    }
    CHECKF(!wide, "a line wider than the 72-cell window:\n%s", pane ? pane : "");
    test_runf(NULL, "tmux -S '%s' resize-window -t dash -x 40 -y 10", g_sock);
    CHECKF(wait_for("terminal too small: 40x10", 3000, &pane), "no notice when too small:\n%s", pane ? pane : "");
    test_runf(NULL, "tmux -S '%s' resize-window -t dash -x 110 -y 34", g_sock);
    CHECKF(wait_for("stories260k", 3000, &pane), "nothing after growing back:\n%s", pane ? pane : "");
    if (pane) check_frame(pane, log);
    // r: the trainer saves and stops, and dash starts it again with --resume
    test_runf(NULL, "tmux -S '%s' send-keys -t dash r", g_sock);
    CHECKF(wait_for("restarts   1", 30000, &pane), "no restart shown:\n%s", pane ? pane : "");
    CHECKF(wait_for("running (pid", 10000, &pane), "the resumed trainer is not running:\n%s", pane ? pane : "");
    CHECKF(log_resumed_starts(log) == 1, "%d resumed starts in the log", log_resumed_starts(log));
    // q: the trainer saves and exits 0, and dash exits with it
    test_runf(NULL, "tmux -S '%s' send-keys -t dash q", g_sock);
    double t0 = time_ms();
    while (access(rcfile, F_OK) != 0 && time_ms() - t0 < 30000) usleep(100 * 1000);
    char *rcs = NULL;
    size_t n;
    CHECKF(io_read_all(rcfile, &rcs, &n) == 0 && atoi(rcs) == 0, "dash exited %s", rcs ? rcs : "(not at all)");
    long long step;
    double loss;
    int samples;
    CHECK(log_last_step(log, &step, &loss, &samples) == 0 && step > 10 && step < RUN_STEPS && samples >= 1);
    char *text = NULL;
    CHECK(io_read_all(log, &text, &n) == 0 && strstr(text, "\"type\":\"checkpoint\"") && strstr(text, "\"type\":\"report\""));
    CHECK(access(ckpt, F_OK) == 0);
    CHECKF(test_runf(NULL, "'%s' info '%s' > /dev/null", test_bin(), ckpt) == 0, "the saved checkpoint does not verify");
    free(text);
    free(rcs);
    free(pane);
    test_runf(NULL, "tmux -S '%s' kill-server 2> /dev/null", g_sock);
}
