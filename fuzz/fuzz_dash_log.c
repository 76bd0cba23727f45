// fuzz_dash_log: what the dashboard and the plotter do with a log: the input
// is written to a file in pieces (sizes taken from its first bytes) that the
// follower reads as it grows, each line parsed into the dashboard's state,
// the state rendered at two sizes; then the whole file plotted as an SVG.
// Mutated records, huge lines and invalid UTF-8 must not crash any of it.
// seeds: train-log.jsonl
#include "fuzz.h"
#include "dash/follow.h"
#include "dash/plot.h"
#include "dash/render.h"

static void on_line(void *ctx, const char *line, size_t len) { dash_state_line(ctx, line, len); }

static void render(const DashState *s, int w, int h) {
    Frame f;
    if (frame_init(&f, w, h) != 0) return;
    dash_render(s, &f);
    frame_free(&f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_path("log.jsonl");
    FILE *fp = fopen(path, "wb");
    if (!fp) fuzz_die("fopen", path);
    DashState s;
    Follower f;
    if (dash_state_init(&s) != 0 || follow_init(&f, path) != 0) fuzz_die("init", path);
    size_t cut = size > 0 ? data[0] % 64 + 1 : 1;
    for (size_t i = 0; i < size;) {
        size_t n = size - i < cut ? size - i : cut;
        if (fwrite(data + i, 1, n, fp) != n || fflush(fp) != 0) fuzz_die("writing", path);
        i += n;
        int restarted;
        follow_poll(&f, on_line, &s, &restarted);
        if (restarted) dash_state_reset(&s);
        cut = data[i % size] % 200 + 1;
    }
    fclose(fp);
    render(&s, 100, 40);
    s.smooth = s.x_tokens = s.log_y = s.help = 1;
    render(&s, 61, 20);
    follow_free(&f);
    dash_state_free(&s);
    PlotRun run;
    if (fuzz_ok(plot_run_load(&run, path), "plot_run_load")) {
        fuzz_ok(plot_svg(&run, 1, size % 2, fuzz_path("plot.svg")), "plot_svg");
        plot_run_free(&run);
    }
    return 0;
}
