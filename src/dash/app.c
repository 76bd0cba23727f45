// app: the dashboard's loop (app.h).
#include "dash/app.h"

#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/err.h"
#include "core/timer.h"
#include "dash/child.h"
#include "dash/follow.h"
#include "dash/power.h"
#include "dash/render.h"
#include "dash/state.h"
#include "dash/sysmon.h"
#include "dash/tui.h"

enum { FRAME_MIN_MS = 66, FRAME_MAX_MS = 1000, SAMPLE_MS = 1000 };

static volatile sig_atomic_t g_stop;  // a signal asked dash to quit
static void on_stop(int sig) { (void)sig, g_stop = 1; }

typedef struct {
    const DashRunOptions *o;
    DashState s;
    Follower f;
    Child child;
    int have_child, quitting, restart_pending, done;
    Sysmon mon;
    Power power;
    Frame frame;
    int dirty;
} App;

static void on_log_line(void *ctx, const char *line, size_t len) { dash_state_line(ctx, line, len); }

static void on_child_line(void *ctx, int is_err, const char *line, size_t len) {
    App *a = ctx;
    char buf[DASH_LOG_WIDTH];
    snprintf(buf, sizeof buf, "%.*s", (int)(len < sizeof buf ? len : sizeof buf - 1), line);
    DashLogKind k = is_err ? DASH_LOG_WARN : DASH_LOG_INFO;
    if (strstr(buf, "error") || strstr(buf, "FAIL") || strstr(buf, "Error")) k = DASH_LOG_ERROR;
    else if (!strncmp(buf, "step ", 5)) k = DASH_LOG_STEP;
    else if (!strncmp(buf, "eval ", 5) || !strncmp(buf, "saved ", 6)) k = DASH_LOG_EVAL;
    else if (strstr(buf, "resum") || strstr(buf, "restart")) k = DASH_LOG_RESTART;
    dash_state_log(&a->s, k, "%s", buf);
    a->dirty = 1;
}

static int spawn(App *a, int resume) {
    char **argv = a->o->train_argv;
    int n = 0, given = 0;
    while (argv[n]) given |= !strcmp(argv[n], "--resume") || !strcmp(argv[n], "-r"), n++;
    char **av = calloc((size_t)n + 2, sizeof *av);
    if (!av) return err_set("out of memory");
    memcpy(av, argv, (size_t)n * sizeof *av);
    if (resume && !given) av[n] = "--resume";
    int rc = child_spawn(&a->child, argv[0], av);
    free(av);
    if (rc != 0) {
        // no trainer now: quitting must not wait for one (child_spawn cleared the old)
        a->have_child = 0;
        dash_state_log(&a->s, DASH_LOG_ERROR, "dash: %s", err_msg());
        return -1;
    }
    a->have_child = 1;
    sysmon_init(&a->mon, a->child.pid);
    a->s.have_proc = 1;
    child_describe(&a->child, a->s.proc_status, sizeof a->s.proc_status);
    dash_state_log(&a->s, DASH_LOG_RESTART, "dash: started the trainer%s (pid %d)", resume ? " with --resume" : "",
                   (int)a->child.pid);
    return 0;
}

// q: a child trainer gets SIGINT (it finishes the update and saves) and dash waits.
static void quit(App *a, int force) {
    if (!a->have_child || a->child.exited) {
        a->done = 1;
        return;
    }
    if (force) {
        child_signal(&a->child, SIGKILL);
        dash_state_log(&a->s, DASH_LOG_ERROR, "dash: killed the trainer (its last checkpoint stays)");
    } else if (!a->quitting) {
        child_signal(&a->child, SIGINT);
        dash_state_log(&a->s, DASH_LOG_WARN, "dash: asked the trainer to save and stop; waiting (Q kills it)");
    }
    a->quitting = 1;
}

static void scroll(App *a, int by) {
    long long have = a->s.log_count < DASH_LOG_LINES ? a->s.log_count : DASH_LOG_LINES;
    long long v = a->s.scroll + by;
    a->s.scroll = (int)(v < 0 ? 0 : v > have - 1 ? (have > 0 ? have - 1 : 0) : v);
}

static void key(App *a, int k) {
    a->dirty = 1;
    if (a->s.help && k != TUI_KEY_RESIZE) {
        a->s.help = 0;
        return;
    }
    switch (k) {
    case 'q': case 3: quit(a, 0); break;  // 3: Ctrl-C in raw mode
    case 'Q': quit(a, 1); break;
    case 'r':
        if (!a->have_child) dash_state_log(&a->s, DASH_LOG_WARN, "dash: r restarts a trainer dash started (dash -- train ...)");
        else if (a->child.exited) spawn(a, 1);
        else if (!a->restart_pending) a->restart_pending = 1, child_signal(&a->child, SIGINT);
        break;
    case 'g':
        if (a->have_child && !a->child.exited) {
            child_signal(&a->child, SIGUSR1);
            dash_state_log(&a->s, DASH_LOG_INFO, "dash: asked for a sample at the end of this update");
        } else dash_state_log(&a->s, DASH_LOG_WARN, "dash: g needs a running trainer started by dash");
        break;
    case 'p': a->s.paused = !a->s.paused; if (!a->s.paused) a->s.scroll = 0; break;
    case 's': a->s.smooth = !a->s.smooth; break;
    case 'x': a->s.x_tokens = !a->s.x_tokens; break;
    case 'l': a->s.log_y = !a->s.log_y; break;
    case 'h': case '?': a->s.help = 1; break;
    case TUI_KEY_UP: a->s.paused = 1, scroll(a, 1); break;
    case TUI_KEY_DOWN: scroll(a, -1); break;
    case TUI_KEY_PGUP: a->s.paused = 1, scroll(a, 10); break;
    case TUI_KEY_PGDN: scroll(a, -10); break;
    case TUI_KEY_END: a->s.scroll = 0, a->s.paused = 0; break;
    default: break;
    }
}

static void child_tick(App *a) {
    if (!a->have_child) return;
    child_read(&a->child, on_child_line, a);
    if (a->child.exited || !child_reap(&a->child)) return;
    child_read(&a->child, on_child_line, a);
    child_flush(&a->child, on_child_line, a);
    child_close(&a->child);
    child_describe(&a->child, a->s.proc_status, sizeof a->s.proc_status);
    dash_state_log(&a->s, a->child.status == 0 ? DASH_LOG_EVAL : DASH_LOG_ERROR, "dash: %s", a->s.proc_status);
    a->dirty = 1;
    if (a->quitting) a->done = 1;
    else if (a->restart_pending) a->restart_pending = 0, spawn(a, 1);
}

static void sample_tick(App *a) {
    double cpu, rss, w;
    if (a->have_child && !a->child.exited && sysmon_sample(&a->mon, &cpu, &rss) == 0) {
        if (isfinite(cpu)) a->s.cpu_now = cpu, dash_hist_push(&a->s.cpu, cpu);
        a->s.rss_now = rss, dash_hist_push(&a->s.rss, rss);
    }
    if (power_sample(&a->power, &w) == 0 && isfinite(w)) a->s.power_now = w, dash_hist_push(&a->s.power, w);
    a->s.power_ok = a->power.ok;
    snprintf(a->s.power_what, sizeof a->s.power_what, "%s", a->power.what);
    a->dirty = 1;
}

static int draw(App *a) {
    int w, h;
    tui_size(&w, &h);
    if (w < 1 || h < 1) return 0;
    if (a->frame.w != w || a->frame.h != h) {
        frame_free(&a->frame);
        if (frame_init(&a->frame, w, h) != 0) return -1;
    }
    dash_render(&a->s, &a->frame);
    tui_draw(&a->frame);
    a->dirty = 0;
    return 0;
}

// Sleeps until input, child output or the next deadline.
static void wait_input(App *a, double ms) {
    struct pollfd p[3] = {{.fd = STDIN_FILENO, .events = POLLIN}, {.fd = -1}, {.fd = -1}};
    if (a->have_child) p[1] = (struct pollfd){.fd = a->child.fd[0], .events = POLLIN},
                       p[2] = (struct pollfd){.fd = a->child.fd[1], .events = POLLIN};
    poll(p, 3, ms < 0 ? 0 : (int)ms);
}

static int loop(App *a) {
    double last_draw = -1e9, last_sample = -1e9;
    while (!a->done) {
        double now = time_ms();
        if (g_stop) g_stop = 0, quit(a, 0);
        for (int k; (k = tui_key()) != TUI_KEY_NONE;) key(a, k);
        child_tick(a);
        int re = 0;
        if (follow_poll(&a->f, on_log_line, &a->s, &re) > 0) a->dirty = 1;
        if (re) {
            // the log started over: forget it, keep the logs panel, read it again
            dash_state_reset(&a->s);
            dash_state_log(&a->s, DASH_LOG_RESTART, "dash: %s was truncated or replaced; reading it again", a->f.path);
            follow_poll(&a->f, on_log_line, &a->s, &re);
        }
        if (now - last_sample >= SAMPLE_MS) sample_tick(a), last_sample = now;
        if ((a->dirty && now - last_draw >= FRAME_MIN_MS) || now - last_draw >= FRAME_MAX_MS) {
            if (draw(a) != 0) return -1;
            last_draw = now;
        }
        double next = last_draw + (a->dirty ? FRAME_MIN_MS : FRAME_MAX_MS) - time_ms();
        wait_input(a, next < FRAME_MIN_MS ? next : FRAME_MIN_MS);
    }
    return 0;
}

static void catch_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int dash_run(const DashRunOptions *o, int *child_status) {
    static App a;  // one dashboard per process; static keeps 100 KiB off the stack
    memset(&a, 0, sizeof a);
    a.o = o;
    *child_status = 0;
    if (dash_state_init(&a.s) != 0) return -1;
    snprintf(a.s.source, sizeof a.s.source, "%s", o->label ? o->label : o->log_path);
    a.s.quiet_records = o->train_argv != NULL;
    int rc = -1;
    if (follow_init(&a.f, o->log_path) != 0) goto done;
    if (tui_open() != 0) goto done;
    atexit(tui_close);
    catch_signals();
    power_open(&a.power);
    if (o->train_argv && spawn(&a, 0) != 0) goto done;
    rc = loop(&a);
done:
    tui_close();
    if (a.have_child && !a.child.exited) {
        // an error out of the loop: the trainer must not outlive its dashboard unsaved
        child_signal(&a.child, SIGINT);
        waitpid(a.child.pid, &a.child.status, 0);
        a.child.exited = 1;
    }
    if (a.have_child) *child_status = WIFEXITED(a.child.status) ? WEXITSTATUS(a.child.status) : 128 + WTERMSIG(a.child.status);
    child_close(&a.child);
    power_close(&a.power);
    follow_free(&a.f);
    frame_free(&a.frame);
    dash_state_free(&a.s);
    return rc;
}
