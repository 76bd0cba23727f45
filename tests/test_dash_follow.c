// The log follower: a file that grows (also a line at a time, and a byte at a
// time), a torn last line completed later, truncation, replacement by rename,
// a file that appears late, and an over-long line skipped whole.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dash/follow.h"
#include "dash/logrec.h"
#include "dash/render.h"
#include "dash_util.h"
#include "test.h"

typedef struct {
    char got[4096];
    int n;
} Got;

static void on_line(void *ctx, const char *line, size_t len) {
    Got *g = ctx;
    size_t k = strlen(g->got);
    snprintf(g->got + k, sizeof g->got - k, "[%.*s]", (int)len, line);
    g->n++;
}

static int poll_into(Follower *f, Got *g, int *restarted) {
    g->got[0] = 0, g->n = 0;
    return follow_poll(f, on_line, g, restarted);
}

TEST(dash_follow_grows_and_keeps_partial_line) {
    char path[600];
    snprintf(path, sizeof path, "%s/grow.jsonl", test_tmpdir());
    Follower f;
    Got g;
    int re;
    REQUIRE(follow_init(&f, path) == 0);
    CHECK(poll_into(&f, &g, &re) == 0 && re == 0);  // not there yet
    REQUIRE(dash_write(path, "one\ntw", 0) == 0);
    CHECK(poll_into(&f, &g, &re) == 1 && !strcmp(g.got, "[one]") && re == 0);
    CHECK(poll_into(&f, &g, &re) == 0);
    REQUIRE(dash_write(path, "o\nthree\n\nfou", 1) == 0);
    CHECK(poll_into(&f, &g, &re) == 3 && !strcmp(g.got, "[two][three][]"));
    // a byte at a time
    const char *rest = "r\nfive\n";
    int total = 0;
    for (const char *p = rest; *p; p++) {
        char b[2] = {*p, 0};
        REQUIRE(dash_write(path, b, 1) == 0);
        total += poll_into(&f, &g, &re);
        if (g.n) CHECK(!strcmp(g.got, *p == '\n' && p == rest + 1 ? "[four]" : "[five]"));
    }
    CHECK(total == 2 && f.lines == 6);
    follow_free(&f);
}

TEST(dash_follow_truncation_and_replacement) {
    char path[600], other[600];
    snprintf(path, sizeof path, "%s/trunc.jsonl", test_tmpdir());
    snprintf(other, sizeof other, "%s/trunc.new", test_tmpdir());
    Follower f;
    Got g;
    int re;
    REQUIRE(follow_init(&f, path) == 0);
    REQUIRE(dash_write(path, "a1\na2\na3\n", 0) == 0);
    CHECK(poll_into(&f, &g, &re) == 3);
    // truncated and rewritten shorter: start over
    REQUIRE(dash_write(path, "b1\n", 0) == 0);
    CHECK(poll_into(&f, &g, &re) == 1 && re == 1 && !strcmp(g.got, "[b1]"));
    // replaced by rename (another inode), even one longer than what was read
    REQUIRE(dash_write(other, "c1\nc2\nc3\nc4\n", 0) == 0);
    REQUIRE(rename(other, path) == 0);
    CHECK(poll_into(&f, &g, &re) == 4 && re == 1 && !strcmp(g.got, "[c1][c2][c3][c4]"));
    // deleted: nothing new, no restart; re-created: read from its start
    REQUIRE(unlink(path) == 0);
    CHECK(poll_into(&f, &g, &re) == 0 && re == 0);
    REQUIRE(dash_write(path, "d1\n", 0) == 0);
    CHECK(poll_into(&f, &g, &re) == 1 && re == 1 && !strcmp(g.got, "[d1]"));
    follow_free(&f);
}

TEST(dash_follow_drops_overlong_line) {
    char path[600];
    snprintf(path, sizeof path, "%s/long.jsonl", test_tmpdir());
    size_t big = FOLLOW_MAX_LINE + 100;
    char *s = malloc(big + 16);
    REQUIRE(s);
    strcpy(s, "x\n");
    memset(s + 2, 'y', big);
    strcpy(s + 2 + big, "\nz\n");
    REQUIRE(dash_write(path, s, 0) == 0);
    Follower f;
    Got g;
    int re;
    REQUIRE(follow_init(&f, path) == 0);
    CHECK(poll_into(&f, &g, &re) == 2 && !strcmp(g.got, "[x][z]") && f.dropped == 1);
    follow_free(&f);
    free(s);
}

static void to_state(void *ctx, const char *line, size_t len) { dash_state_line(ctx, line, len); }

// The renderer never sees half a record: a torn last line waits for its end.
TEST(dash_follow_torn_last_line) {
    if (!logrec_available()) {
        test_skip("built without cJSON (the log reader needs it)");
        return;
    }
    char path[600];
    snprintf(path, sizeof path, "%s/torn.jsonl", test_tmpdir());
    char *log = dash_canned_run(12);
    char *cut = strstr(log, "{\"type\":\"step\",\"step\":12");
    REQUIRE(cut);
    cut += 30;
    char keep = *cut;
    *cut = 0;
    REQUIRE(dash_write(path, log, 0) == 0);
    DashState s;
    REQUIRE(dash_state_init(&s) == 0);
    Follower f;
    int re;
    REQUIRE(follow_init(&f, path) == 0);
    CHECK(follow_poll(&f, to_state, &s, &re) > 0);
    CHECK(s.last.step == 11 && s.bad_lines == 0);
    Frame fr;
    REQUIRE(frame_init(&fr, 100, 36) == 0);
    dash_render(&s, &fr);
    CHECK(dash_find(&fr, "11/12", NULL) >= 0);
    *cut = keep;
    REQUIRE(dash_write(path, cut, 1) == 0);
    CHECK(follow_poll(&f, to_state, &s, &re) > 0);
    CHECK(s.last.step == 12 && s.bad_lines == 0 && s.have_report);
    dash_render(&s, &fr);
    CHECK(dash_find(&fr, "12/12 (100%)", NULL) >= 0);
    frame_free(&fr);
    follow_free(&f);
    dash_state_free(&s);
    free(log);
}
