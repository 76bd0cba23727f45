// anetrain plot: the SVG of canned logs (one run, and runs overlaid with a
// resume and a torn line) is well-formed XML (a small checker here, and
// xmllint when installed), and rsvg-convert rasterizes it to a PNG whose
// curve pixels sit where the data says. rsvg-convert (Debian librsvg2-bin) is
// skipped when missing, failed under CI=true.
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/io.h"
#include "dash/logrec.h"
#include "dash/plot.h"
#include "dash_util.h"
#include "png_read.h"
#include "test.h"

// Well-formed XML, as far as SVG needs: one root, nested tags that close in
// order, quoted attributes without '<', known entities, nothing after the root.
static int xml_ok(const char *s, char *why, size_t cap) {
    char stack[64][64];
    int depth = 0, roots = 0;
    const char *p = s;
    if (!strncmp(p, "<?xml", 5)) p = strstr(p, "?>") ? strstr(p, "?>") + 2 : p + strlen(p);
    while (*p) {
        if (*p == '&') {
            const char *e = strchr(p, ';');
            if (!e || e - p > 8 || !(strncmp(p, "&lt;", 4) == 0 || !strncmp(p, "&gt;", 4) || !strncmp(p, "&amp;", 5) ||
                                      !strncmp(p, "&quot;", 6) || !strncmp(p, "&apos;", 6) || p[1] == '#'))
                return snprintf(why, cap, "bad entity at %ld", (long)(p - s)), 0;
            p = e + 1;
            continue;
        }
        if (*p != '<') {
            if (!depth && !isspace((unsigned char)*p)) return snprintf(why, cap, "text outside the root at %ld", (long)(p - s)), 0;
            p++;
            continue;
        }
        int closing = p[1] == '/';
        const char *n = p + 1 + closing, *ne = n;
        while (isalnum((unsigned char)*ne) || *ne == '-' || *ne == ':') ne++;
        if (ne == n || ne - n >= 64) return snprintf(why, cap, "bad tag name at %ld", (long)(p - s)), 0;
        const char *q = ne;
        while (*q && *q != '>') {
            if (*q == '"' || *q == '\'') {
                const char *e = strchr(q + 1, *q);
                if (!e || memchr(q + 1, '<', (size_t)(e - q - 1))) return snprintf(why, cap, "bad attribute at %ld", (long)(q - s)), 0;
                q = e;
            } else if (*q == '<') return snprintf(why, cap, "'<' inside a tag at %ld", (long)(q - s)), 0;
            q++;
        }
        if (!*q) return snprintf(why, cap, "unclosed tag at %ld", (long)(p - s)), 0;
        int empty = q[-1] == '/';
        if (closing) {
            if (!depth || strncmp(stack[depth - 1], n, (size_t)(ne - n)) || stack[depth - 1][ne - n])
                return snprintf(why, cap, "</%.*s> closes nothing open at %ld", (int)(ne - n), n, (long)(p - s)), 0;
            depth--;
        } else {
            if (!depth) roots++;
            if (roots > 1) return snprintf(why, cap, "a second root at %ld", (long)(p - s)), 0;
            if (!empty) {
                if (depth == 64) return snprintf(why, cap, "too deep"), 0;
                snprintf(stack[depth++], 64, "%.*s", (int)(ne - n), n);
            }
        }
        p = q + 1;
    }
    if (depth || roots != 1) return snprintf(why, cap, "%d tags left open, %d roots", depth, roots), 0;
    return 1;
}

static int have_tool(const char *name, const char *why) {
    char cmd[96];
    snprintf(cmd, sizeof cmd, "command -v %s > /dev/null", name);
    if (test_run(cmd, NULL) == 0) return 1;
    if (getenv("CI") && !strcmp(getenv("CI"), "true")) CHECKF(0, "%s is missing in CI", name);
    else test_skip(why);
    return 0;
}

static const char *write_run(const char *name, int steps, const char *extra) {
    static char path[4][600];
    static int k;
    char *p = path[k++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", test_tmpdir(), name);
    char *log = dash_canned_run(steps);
    dash_write(p, log, 0);
    if (extra) dash_write(p, extra, 1);
    free(log);
    return p;
}

TEST(plot_svg_is_xml) {
    if (!logrec_available()) {
        test_skip("built without cJSON");
        return;
    }
    const char *a = write_run("a <&> \"run\".jsonl", 60, NULL);
    const char *b = write_run("b.jsonl", 30,
                              "{\"type\":\"start\",\"v\":1,\"model\":\"stories260k\",\"pipeline\":\"dynamic\",\"device\":\"sim\","
                              "\"steps\":50,\"resumed_at\":30,\"tokens_per_update\":1024}\n"
                              "{\"type\":\"step\",\"step\":31,\"loss\":3.1,\"lr\":null,\"ms\":190}\n"
                              "{\"type\":\"step\",\"step\":32,\"loss\":nan,\"ms\":190}\n"
                              "{\"type\":\"step\",\"step\":33,\"loss\":3.0,\"ms\":19");
    char svg[600];
    snprintf(svg, sizeof svg, "%s/two.svg", test_tmpdir());
    char *out = NULL;
    int rc = test_runf(&out, "'%s' plot '%s' '%s' -o '%s'", test_bin(), a, b, svg);
    CHECKF(rc == 0, "plot exited %d: %s", rc, out ? out : "");
    free(out);
    char *text;
    size_t n;
    REQUIRE(io_read_all(svg, &text, &n) == 0);
    char why[200] = "";
    CHECKF(xml_ok(text, why, sizeof why), "not well-formed: %s", why);
    CHECK(strstr(text, "a &lt;&amp;&gt; &quot;run&quot;.jsonl: stories260k, cpu, fp32"));
    CHECK(strstr(text, "b.jsonl: stories260k, dynamic on sim"));
    CHECK(strstr(text, "ms per update") && strstr(text, "time per update by phase") && strstr(text, "learning rate"));
    CHECK(!strstr(text, "nan") && !strstr(text, "inf"));
    free(text);
    if (test_run("command -v xmllint > /dev/null", NULL) == 0)
        CHECKF(test_runf(&out, "xmllint --noout '%s'", svg) == 0, "xmllint: %s", out ? out : ""), free(out);
    // bad input: one line, exit 1
    rc = test_runf(&out, "'%s' plot /nonexistent.jsonl -o '%s'", test_bin(), svg);
    CHECK(rc == 1 && out && strstr(out, "/nonexistent.jsonl"));
    free(out);
}

// |colour - want| summed over RGB, the smallest within r pixels of (x, y).
static int near(const Png *img, double x, double y, int r, const int want[3]) {
    int best = 1 << 30;
    for (int dy = -r; dy <= r; dy++)
        for (int dx = -r; dx <= r; dx++) {
            int px = (int)lround(x) + dx, py = (int)lround(y) + dy;
            if (px < 0 || py < 0 || px >= img->w || py >= img->h) continue;
            const uint8_t *c = img->rgba + ((size_t)py * img->w + px) * 4;
            int d = abs(c[0] - want[0]) + abs(c[1] - want[1]) + abs(c[2] - want[2]);
            if (d < best) best = d;
        }
    return best;
}

TEST(plot_png_curve_where_data_says) {
    if (!logrec_available()) {
        test_skip("built without cJSON");
        return;
    }
    if (!have_tool("rsvg-convert", "rsvg-convert not installed (apt-get install librsvg2-bin)")) return;
    const char *log = write_run("one.jsonl", 40, NULL);
    char svg[600], png[600];
    snprintf(svg, sizeof svg, "%s/one.svg", test_tmpdir());
    snprintf(png, sizeof png, "%s/one.png", test_tmpdir());
    PlotRun run;
    REQUIRE(plot_run_load(&run, log) == 0);
    REQUIRE(plot_svg(&run, 1, 0, svg) == 0);
    char *out = NULL;
    int rc = test_runf(&out, "rsvg-convert '%s' -o '%s'", svg, png);
    CHECKF(rc == 0, "rsvg-convert: %s", out ? out : "");
    free(out);
    Png img;
    char why[128];
    REQUIRE(png_read(png, &img, why, sizeof why) == 0);
    CHECK(img.w == PLOT_W && img.h == PLOT_H);
    PlotAxes a;
    plot_loss_axes(&run, 1, 0, &a);
    const int blue[3] = {0x1f, 0x77, 0xb4}, white[3] = {255, 255, 255};
    int off = 0;
    for (size_t i = 0; i < run.ns; i++) {
        double x = a.px0 + (run.s[i].step - a.x0) / (a.x1 - a.x0) * (a.px1 - a.px0);
        double y = a.py0 + (run.s[i].loss - a.y0) / (a.y1 - a.y0) * (a.py1 - a.py0);
        off += near(&img, x, y, 2, blue) > 60;
    }
    CHECKF(off == 0, "%d of %zu train-loss points have no curve pixel within 2 px", off, run.ns);
    for (size_t i = 0; i < run.ne; i++) {
        double x = a.px0 + (run.e[i].step - a.x0) / (a.x1 - a.x0) * (a.px1 - a.px0);
        double y = a.py0 + (run.e[i].val - a.y0) / (a.y1 - a.y0) * (a.py1 - a.py0);
        CHECKF(near(&img, x, y, 1, blue) < 60, "no validation dot at update %.0f", run.e[i].step);
    }
    // the loss falls from the top left: the bottom left of the panel is empty (white or grid)
    double bx = a.px0 + 0.1 * (a.px1 - a.px0), by = a.py0 - 0.1 * (a.py0 - a.py1);
    CHECK(near(&img, bx, by, 0, white) < 40 && near(&img, bx, by, 6, blue) > 150);
    png_free(&img);
    plot_run_free(&run);
}

// Values whose range is far below their magnitude once made the tick loop
// add a step that no longer moved the double: plot must finish.
TEST(plot_finishes_on_extreme_values) {
    if (!logrec_available()) {
        test_skip("built without cJSON");
        return;
    }
    const char *a = write_run("huge.jsonl", 0,
                              "{\"type\":\"step\",\"step\":1,\"loss\":1e17,\"ms\":1}\n"
                              "{\"type\":\"step\",\"step\":2,\"loss\":100000000000000016,\"ms\":1}\n");
    char svg[600], *out = NULL;
    snprintf(svg, sizeof svg, "%s/huge.svg", test_tmpdir());
    int rc = test_runf(&out, "timeout 20 '%s' plot '%s' -o '%s'", test_bin(), a, svg);
    CHECKF(rc == 0, "plot of extreme values: rc %d (124 = it hung): %s", rc, out ? out : "");
    free(out);
}
