// anetrain plot: runs' logs -> one SVG (loss, lr, ms/update, phases).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/err.h"
#include "core/io.h"
#include "dash/plot.h"

enum { MAX_RUNS = 16 };

int cmd_plot(int argc, char **argv) {
    const char *out = "run.svg", *x = "updates";
    const char *logs[MAX_RUNS];
    int n = 0;
    Flag flags[] = {
        {"--out", "-o", FLAG_STR, &out, "the SVG to write"},
        {"--x", NULL, FLAG_STR, &x, "x axis: updates or tokens"},
        {0},
    };
    int rc = args_parse(argc, argv, flags, "plot LOG.jsonl [LOG2.jsonl ...] -o run.svg [flags]",
                        "Draws train --log files as one standalone SVG: train and validation loss with the learning\n"
                        "rate on a second axis, ms per update, and the phase breakdown; several runs overlaid with a\n"
                        "legend (compare pipelines, precisions, resumed runs).",
                        logs, MAX_RUNS, &n);
    if (rc != 0) return rc > 0 ? 0 : 2;
    if (n == 0 || (strcmp(x, "updates") && strcmp(x, "tokens"))) {
        fprintf(stderr, "anetrain plot: give one or more logs (at most %d) and --x updates|tokens; see --help\n", MAX_RUNS);
        return 2;
    }
    PlotRun runs[MAX_RUNS];
    int loaded = 0, ok = io_check_output(out) == 0;  // a bad -o is said before any log is read
    for (int i = 0; i < n && ok; i++) {
        ok = plot_run_load(&runs[loaded], logs[i]) == 0 && ++loaded;
        if (ok && runs[loaded - 1].bad_lines > 0)
            fprintf(stderr, "anetrain plot: %s: skipped %lld lines that are not log records\n", logs[i],
                    (long long)runs[loaded - 1].bad_lines);
    }
    if (ok) ok = plot_svg(runs, loaded, !strcmp(x, "tokens"), out) == 0;
    if (!ok) fprintf(stderr, "anetrain plot: %s\n", err_msg());
    else printf("wrote %s (%d run%s)\n", out, loaded, loaded > 1 ? "s" : "");
    for (int i = 0; i < loaded; i++) plot_run_free(&runs[i]);
    return ok ? 0 : 1;
}
