// The log record parser on JSON edge cases: nulls for non-finite numbers,
// escapes and \u sequences, wrong types, unknown types and fields, strings
// longer than their field, and lines that are not records at all.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dash/logrec.h"
#include "dash/state.h"
#include "test.h"

static int parse(LogRecord *r, const char *line) { return logrec_parse(r, line, -1); }

TEST(dash_json_records) {
    if (!logrec_available()) {
        LogRecord r;
        CHECK(parse(&r, "{\"type\":\"step\"}") != 0);
        test_skip("built without cJSON: only the refusal is checked");
        return;
    }
    LogRecord r;
    REQUIRE(parse(&r, "{\"type\":\"step\",\"step\":7,\"loss\":null,\"lr\":1e-3,\"grad_norm\":\"x\",\"t_ms\":5.5}") == 0);
    CHECK(r.type == LOG_STEP && r.n.step == 7 && isnan(r.n.loss) && r.n.lr == 1e-3 && isnan(r.n.grad_norm));
    CHECK(r.t_ms == 5.5 && isnan(r.n.val_loss));
    // counts that are not integers in range read as absent
    REQUIRE(parse(&r, "{\"type\":\"step\",\"step\":1e300}") == 0);
    CHECK(r.n.step == -1);
    REQUIRE(parse(&r, "{\"type\":\"note\",\"text\":\"tab\\there \\\"q\\\" \\u00e9 \\ud83d\\ude00 \\\\\",\"extra\":[1,{}]}") == 0);
    CHECK(r.type == LOG_NOTE && !strcmp(r.text, "tab\there \"q\" \xc3\xa9 \xf0\x9f\x98\x80 \\"));
    REQUIRE(parse(&r, "  {\"t_ms\":1,\"type\":\"future\",\"type2\":3}  ") == 0);
    CHECK(r.type == LOG_OTHER && !strcmp(r.type_name, "future"));
    REQUIRE(parse(&r, "{\"type\":\"change\",\"what\":\"--lr\",\"from\":\"0.001\",\"to\":\"0.002\"}") == 0);
    CHECK(!strcmp(r.text, "--lr: 0.001 -> 0.002"));
    REQUIRE(parse(&r, "{\"type\":\"start\",\"v\":1,\"model\":\"m\",\"dim\":64,\"device\":null,\"peak_tflops\":2}") == 0);
    CHECK(r.start.v == 1 && r.start.dim == 64 && r.start.device[0] == 0 && r.start.peak_gflops == 2000);
    CHECK(r.start.layers == -1 && isnan(r.start.lr));
}

TEST(dash_json_refused) {
    if (!logrec_available()) {
        test_skip("built without cJSON");
        return;
    }
    LogRecord r;
    const char *bad[] = {"", "   ", "nan", "[1,2]", "\"step\"", "{\"type\":3}", "{\"step\":1}", "{\"type\":\"step\"",
                         "{\"type\":\"step\",}", "{\"type\":\"step\"} trailing", "{\"type\":null}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECKF(parse(&r, bad[i]) != 0, "accepted: %s", bad[i]);
}

// Long strings are cut to their field at a UTF-8 boundary; the state counts bad lines and goes on.
TEST(dash_json_long_and_bad_lines) {
    if (!logrec_available()) {
        test_skip("built without cJSON");
        return;
    }
    size_t n = 3 * LOGREC_TEXT + 64;
    char *line = malloc(n + 64);
    REQUIRE(line);
    strcpy(line, "{\"type\":\"note\",\"text\":\"");
    size_t k = strlen(line);
    for (size_t i = 0; i + 2 < n; i += 2) line[k++] = '\xc3', line[k++] = '\xa9';  // é, two bytes each
    strcpy(line + k, "\"}");
    LogRecord r;
    REQUIRE(parse(&r, line) == 0);
    size_t len = strlen(r.text);
    CHECK(len < LOGREC_TEXT && len % 2 == 0 && len > LOGREC_TEXT - 4);
    free(line);
    DashState s;
    REQUIRE(dash_state_init(&s) == 0);
    dash_state_line(&s, "{not json", 9);
    dash_state_line(&s, "{\"type\":\"step\",\"step\":3,\"loss\":2.5}", 35);
    CHECK(s.bad_lines == 1 && s.last.step == 3 && s.train.n == 1);
    dash_state_free(&s);
}
