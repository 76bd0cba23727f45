// The dashboard's pure renderer: frames drawn from canned logs (a finished
// run, a run with restarts and skips, an empty log), every size from the
// too-small notice up, the view toggles, and the braille chart's geometry.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dash/chart.h"
#include "dash/logrec.h"
#include "dash/render.h"
#include "dash_util.h"
#include "test.h"

// Skips (never fails) a build without cJSON: the log reader needs it.
static int need_cjson(void) {
    if (logrec_available()) return 1;
    test_skip("built without cJSON (the log reader needs it)");
    return 0;
}

static int has(const Frame *f, const char *needle) {
    int y = dash_find(f, needle, NULL);
    if (y < 0) fprintf(stderr, "  frame has no \"%s\"\n", needle);
    return y >= 0;
}

TEST(dash_render_finished_run) {
    if (!need_cjson()) return;
    DashState s;
    REQUIRE(dash_state_init(&s) == 0);
    char *log = dash_canned_run(30);
    dash_feed(&s, log);
    Frame f;
    REQUIRE(frame_init(&f, 120, 40) == 0);
    dash_render(&s, &f);
    int ok = has(&f, "stories260k") && has(&f, "0.26M params") && has(&f, "dim 64") && has(&f, "heads 8/4") &&
             has(&f, "cpu pipeline") && has(&f, "accum 4 x 256") && has(&f, "30/30 (100%)") && has(&f, "finished") &&
             has(&f, "3.2000") && has(&f, "3.2500 @30") && has(&f, "ETA        done") && has(&f, "finished: 30 updates") &&
             has(&f, "forward") && has(&f, "no process to sample");
    CHECK(ok);
    CHECK(dash_find(&f, "stories260k", NULL) == 0);
    // the loss box (left 58%, rows 2..) holds a curve, in the train colour
    int braille = dash_braille(&f, 0, 2, 120 * 58 / 100, 15);
    CHECKF(braille > 20, "only %d braille cells in the loss panel", braille);
    // 13.0 GFLOPS = 2.6e9 FLOPs / 200 ms
    CHECK(has(&f, "13.00"));
    if (!ok) dash_dump(&f);
    frame_free(&f);
    free(log);
    dash_state_free(&s);
}

static const char *RESTARTED =
    "{\"type\":\"start\",\"v\":1,\"model\":\"tiny-gqa\",\"dim\":64,\"params\":1000,\"steps\":20,\"resumed_at\":-1,"
    "\"tokens_per_update\":100,\"t_ms\":1}\n"
    "{\"type\":\"step\",\"step\":1,\"loss\":5.5,\"ms\":10,\"loss_scale\":1024,\"t_ms\":10}\n"
    "{\"type\":\"skip\",\"step\":2,\"why\":\"non-finite gradient\",\"loss\":null,\"grad_norm\":null,"
    "\"loss_scale\":512,\"t_ms\":20}\n"
    "{\"type\":\"step\",\"step\":2,\"loss\":5.4,\"ms\":10,\"loss_scale\":512,\"t_ms\":30}\n"
    "{\"type\":\"start\",\"v\":1,\"model\":\"tiny-gqa\",\"dim\":64,\"params\":1000,\"steps\":20,\"resumed_at\":2,"
    "\"tokens_per_update\":200,\"t_ms\":1}\n"
    "{\"type\":\"change\",\"what\":\"--accum\",\"from\":\"1\",\"to\":\"2\",\"t_ms\":2}\n"
    "{\"type\":\"step\",\"step\":3,\"loss\":5.3,\"ms\":20,\"loss_scale\":512,\"t_ms\":40}\n"
    "{\"type\":\"restart\",\"step\":3,\"why\":\"compile budget\",\"t_ms\":50}\n"
    "{\"type\":\"step\",\"step\":4,\"loss\":5.2,\"ms\":20,\"loss_scale\":512,\"t_ms\":60}\n";

TEST(dash_render_restarts_and_skips) {
    if (!need_cjson()) return;
    DashState s;
    REQUIRE(dash_state_init(&s) == 0);
    dash_feed(&s, RESTARTED);
    CHECK(s.restarts == 2 && s.skips == 1 && s.runs == 2);
    CHECK(s.train.n == 4);
    // tokens follow each run's rate: 2 x 100, then 2 x 200
    CHECK(s.train.n == 4 && s.train.p[3].tokens == 600);
    Frame f;
    REQUIRE(frame_init(&f, 100, 36) == 0);
    dash_render(&s, &f);
    int col, y = dash_find(&f, "restarts", &col);
    CHECK(y >= 0 && has(&f, "restarts   2, skipped 1") && has(&f, "loss scale 512"));
    int ys = dash_find(&f, "skipped update 2: non-finite gradient", &col);
    CHECK(ys >= 0 && frame_at(&f, col, ys)->color == COL_WARN);
    int yr = dash_find(&f, "resumed tiny-gqa at update 2", &col);
    CHECK(yr >= 0 && frame_at(&f, col, yr)->color == COL_RESTART);
    int yc = dash_find(&f, "changed --accum: 1 -> 2", &col);
    CHECK(yc >= 0 && frame_at(&f, col, yc)->color == COL_RESTART);
    int yt = dash_find(&f, "step 4/20 loss 5.2000", &col);
    CHECK(yt >= 0 && frame_at(&f, col, yt)->color == COL_STEP);
    CHECK(has(&f, "restart at update 3: compile budget"));
    if (ys < 0 || yr < 0) dash_dump(&f);
    frame_free(&f);
    dash_state_free(&s);
}

TEST(dash_render_empty_log) {
    DashState s;
    REQUIRE(dash_state_init(&s) == 0);
    snprintf(s.source, sizeof s.source, "runs/x.jsonl");
    Frame f;
    REQUIRE(frame_init(&f, 80, 24) == 0);
    dash_render(&s, &f);
    CHECK(has(&f, "waiting for the log") && has(&f, "no start record yet") && has(&f, "no updates yet") &&
          has(&f, "runs/x.jsonl"));
    CHECK(dash_braille(&f, 0, 3, 80, 21) == 0);  // below the loss title (which shows the val marker)
    frame_free(&f);
    dash_state_free(&s);
}

// Every size renders inside its frame; below the minimum only the notice.
TEST(dash_render_every_size) {
    if (!need_cjson()) return;
    DashState s;
    REQUIRE(dash_state_init(&s) == 0);
    char *log = dash_canned_run(50);
    dash_feed(&s, log);
    for (int i = 0; i < 30; i++) dash_state_log(&s, i % 2 ? DASH_LOG_ERROR : DASH_LOG_INFO, "child line %d", i);
    s.have_proc = 1;
    for (int i = 0; i < 400; i++) dash_hist_push(&s.cpu, 50 + i % 50), dash_hist_push(&s.rss, 30 + i * 0.1);
    int bad = 0;
    for (int w = 1; w <= 200; w += 7)
        for (int h = 1; h <= 70; h += 3) {
            Frame f;
            REQUIRE(frame_init(&f, w, h) == 0);
            dash_render(&s, &f);
            int small = w < DASH_MIN_W || h < DASH_MIN_H;
            if (small && dash_find(&f, "terminal too", NULL) != 0 && w > 20) bad++;
            if (!small && dash_find(&f, "stories260k", NULL) != 0) bad++;
            frame_free(&f);
        }
    CHECKF(bad == 0, "%d sizes drew the wrong thing", bad);
    free(log);
    dash_state_free(&s);
}

TEST(dash_render_toggles) {
    if (!need_cjson()) return;
    DashState s;
    REQUIRE(dash_state_init(&s) == 0);
    char *log = dash_canned_run(40);
    dash_feed(&s, log);
    Frame f;
    REQUIRE(frame_init(&f, 120, 40) == 0);
    dash_render(&s, &f);
    CHECK(has(&f, "loss: train, val (\xe2\xa3\xbf)  (x updates)"));
    s.smooth = s.x_tokens = s.log_y = 1;
    dash_render(&s, &f);
    CHECK(has(&f, "loss: train (EMA), val (\xe2\xa3\xbf)  (x tokens, log)"));
    // x runs to 40 updates x 1024 tokens
    CHECK(has(&f, "41k"));
    s.help = 1;
    dash_render(&s, &f);
    CHECK(has(&f, "restart the child trainer with --resume"));
    s.help = 0, s.scroll = 5, s.paused = 1;
    dash_render(&s, &f);
    CHECK(has(&f, "logs (paused) (scrolled back)"));
    frame_free(&f);
    free(log);
    dash_state_free(&s);
}

// A diagonal from (0,0) to (1,1) starts at the plot's bottom-left dot and ends at its top-right one.
TEST(dash_chart_geometry) {
    Frame f;
    REQUIRE(frame_init(&f, 27, 6) == 0);
    double x[] = {0, 1}, y[] = {0, 1};
    ChartLine l = {x, y, 2, COL_TRAIN, 0};
    ChartRange r = {.x0 = 0, .x1 = 1, .y0 = 0, .y1 = 1};
    chart_draw(&f, 0, 0, 27, 6, &l, 1, &r);
    // the plot is 20 x 5 cells right of the 7-cell labels, the x labels below
    uint32_t bl = frame_at(&f, 7, 4)->cp, tr = frame_at(&f, 26, 0)->cp;
    CHECKF((bl & ~0xFFu) == 0x2800 && (bl & 0x40), "bottom-left cell U+%04X lacks its bottom-left dot", bl);
    CHECKF((tr & ~0xFFu) == 0x2800 && (tr & 0x08), "top-right cell U+%04X lacks its top-right dot", tr);
    // nothing above the line's start or below its end
    CHECK(frame_at(&f, 7, 0)->cp == ' ' && frame_at(&f, 26, 4)->cp == ' ');
    CHECK(dash_braille(&f, 7, 0, 20, 5) >= 20);
    CHECK(dash_find(&f, "     1", NULL) == 0);
    frame_free(&f);
    char b[32];
    chart_fmt(b, sizeof b, 12345), CHECK(!strcmp(b, "12.3k"));
    chart_fmt(b, sizeof b, 4.5321), CHECK(!strcmp(b, "4.53"));
    chart_fmt(b, sizeof b, NAN), CHECK(!strcmp(b, "-"));
}

// Durations from a log are any double: an ETA of 2.4e9 s (a log's absurd step count) is printed, not cast to int.
TEST(dash_duration_format) {
    char b[64];
    dash_fmt_duration(b, sizeof b, 1500), CHECK(!strcmp(b, "1.5 s"));
    dash_fmt_duration(b, sizeof b, 125e3), CHECK(!strcmp(b, "2m 05s"));
    dash_fmt_duration(b, sizeof b, 7380e3), CHECK(!strcmp(b, "2h 03m"));
    dash_fmt_duration(b, sizeof b, 2.40045e12), CHECKF(!strcmp(b, "666791h 40m"), "got %s", b);
    dash_fmt_duration(b, sizeof b, 1e300), CHECKF(!strcmp(b, "2.78e+293h"), "got %s", b);
    dash_fmt_duration(b, sizeof b, INFINITY), CHECK(!strcmp(b, "-"));
    dash_fmt_duration(b, sizeof b, -1), CHECK(!strcmp(b, "-"));
}

// Text that is not valid UTF-8, control characters and long words stay inside their panel.
TEST(dash_render_hostile_text) {
    DashState s;
    REQUIRE(dash_state_init(&s) == 0);
    s.sample_step = 7;
    snprintf(s.sample_prompt, sizeof s.sample_prompt, "Once\tupon");
    snprintf(s.sample_text, sizeof s.sample_text, " a time \xff\xfe\xc3 caf\xc3\xa9\n%s", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    dash_state_log(&s, DASH_LOG_WARN, "bell \a escape \x1b[31m red");
    Frame f;
    REQUIRE(frame_init(&f, 100, 40) == 0);
    dash_render(&s, &f);
    int ctrl = 0;
    for (int i = 0; i < f.w * f.h; i++) ctrl += f.cells[i].cp < 0x20 || f.cells[i].cp == 0x7F;
    CHECK(ctrl == 0);
    CHECK(has(&f, "Once upon a time \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd caf\xc3\xa9"));
    CHECK(has(&f, "generated text (update 7)"));
    frame_free(&f);
    dash_state_free(&s);
}
