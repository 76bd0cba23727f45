// anetrain dash: the live training dashboard (follow a log, or run the trainer).
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/err.h"
#include "dash/app.h"
#include "dash/child.h"
#include "dash/logrec.h"
#include "dash/tui.h"

static const char *ABOUT =
    "The live training dashboard: loss curves, stats, phase timings, CPU and memory of the trainer,\n"
    "power, generated text and logs.\n"
    "  anetrain dash --log FILE               follow a run's --log (live, or finished: a viewer)\n"
    "  anetrain dash [--log FILE] -- train ARGS...\n"
    "                                         run `anetrain train ARGS...` and show it; its --log is\n"
    "                                         the one in ARGS, else --log FILE, else\n"
    "                                         dash-DATE-TIME.jsonl beside its --ckpt (default runs/)\n"
    "Keys: q quit (the trainer saves first), r restart with --resume, g sample now, p pause the logs,\n"
    "arrows scroll, s smoothing, x updates/tokens, l log scale, h help.";

// The value of --log / --ckpt in train's arguments ("--flag V" or "--flag=V"), or NULL.
static const char *train_flag(char **av, int n, const char *name, const char *alias) {
    size_t k = strlen(name);
    for (int i = 0; i < n; i++) {
        if ((!strcmp(av[i], name) || (alias && !strcmp(av[i], alias))) && i + 1 < n) return av[i + 1];
        if (!strncmp(av[i], name, k) && av[i][k] == '=') return av[i] + k + 1;
    }
    return NULL;
}

// dash-YYYYmmdd-HHMMSS.jsonl in the checkpoint's directory (made if missing).
static void choose_log(char *out, size_t cap, const char *ckpt) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", ckpt ? ckpt : "runs/ckpt.bin");
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    mkdir(dir, 0777);  // the trainer makes it too; the log must have a home before it starts
    time_t t = time(NULL);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime(&t));
    snprintf(out, cap, "%s/dash-%s.jsonl", dir, stamp);
}

// {exe, "train", ARGS..., ["--log", log], NULL}
static char **child_argv(const char *exe, char **av, int n, const char *log, int add_log) {
    char **out = calloc((size_t)n + 5, sizeof *out);
    if (!out) return NULL;
    int k = 0;
    out[k++] = (char *)exe;
    for (int i = 0; i < n; i++) out[k++] = av[i];
    if (add_log) out[k++] = "--log", out[k++] = (char *)log;
    return out;
}

// A build without ncursesw or cJSON: the library's own message says how to get it.
static int check_build(void) {
    LogRecord r;
    if (!tui_available()) tui_open();
    else if (!logrec_available()) logrec_parse(&r, "{}", 2);
    else return 0;
    fprintf(stderr, "anetrain dash: %s\n", err_msg());
    return -1;
}

static int follow(const char *log) {
    DashRunOptions o = {.log_path = log};
    int st;
    if (dash_run(&o, &st) != 0) return fprintf(stderr, "anetrain dash: %s\n", err_msg()), 1;
    return 0;
}

// dash -- train ARGS: the trainer's log is tlog (in ARGS), else log (dash's --log), else one chosen here.
static int run_trainer(char **tav, int tn, const char *log, const char *tlog) {
    char exe[4096], chosen[4200];
    if (child_self_exe(exe, sizeof exe) != 0) return fprintf(stderr, "anetrain dash: %s\n", err_msg()), 1;
    if (!tlog && !log) choose_log(chosen, sizeof chosen, train_flag(tav, tn, "--ckpt", "-c")), log = chosen;
    char **cav = child_argv(exe, tav, tn, log, tlog == NULL);
    if (!cav) return fprintf(stderr, "anetrain dash: out of memory\n"), 1;
    char label[256];
    snprintf(label, sizeof label, "train (log %.200s)", tlog ? tlog : log);
    DashRunOptions o = {.log_path = tlog ? tlog : log, .train_argv = cav, .label = label};
    int st = 0, rc = dash_run(&o, &st);
    free(cav);
    if (rc != 0) return fprintf(stderr, "anetrain dash: %s\n", err_msg()), 1;
    printf("anetrain dash: the trainer exited %d; its log is %s\n", st, o.log_path);
    return st;
}

int cmd_dash(int argc, char **argv) {
    const char *log = NULL;
    int sep = argc;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--")) {
            sep = i;
            break;
        }
    Flag flags[] = {{"--log", "-l", FLAG_STR, &log, "the log to follow (with -- train: where its --log goes)"}, {0}};
    int rc = args_parse(sep, argv, flags, "dash --log FILE | dash [--log FILE] -- train ARGS...", ABOUT, NULL, 0, NULL);
    if (rc != 0) return rc > 0 ? 0 : 2;
    char **tav = argv + sep + 1;
    int tn = sep < argc ? argc - sep - 1 : -1;
    if (tn < 0 && !log) {
        fprintf(stderr, "anetrain dash: give --log FILE to follow, or -- train ARGS... to run; see --help\n");
        return 2;
    }
    if (tn >= 0 && (tn == 0 || strcmp(tav[0], "train"))) {
        fprintf(stderr, "anetrain dash: after -- comes the trainer: dash -- train ARGS...\n");
        return 2;
    }
    const char *tlog = tn > 0 ? train_flag(tav, tn, "--log", NULL) : NULL;
    if (tlog && (!strcmp(tlog, "-") || !strcmp(tlog, "/dev/stdout") || !strcmp(tlog, "/dev/stderr"))) {
        fprintf(stderr, "anetrain dash: the trainer's --log must be a file dash can read, not %s\n", tlog);
        return 2;
    }
    if (tlog && log && strcmp(tlog, log)) {
        fprintf(stderr, "anetrain dash: --log %s and the trainer's --log %s differ; give one\n", log, tlog);
        return 2;
    }
    if (check_build() != 0) return 1;
    return tn < 0 ? follow(log) : run_trainer(tav, tn, log, tlog);
}
