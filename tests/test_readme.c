// The README's commands, run top to bottom as a newcomer would, shortened by
// flags: every ./anetrain line of every ```sh block, in order, in one fresh
// directory beside a link to ../shared. Afterwards the first `sample` is run
// again and must print the same text: no later example may have overwritten
// the files an earlier one made.
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/io.h"
#include "data/hf_tokenizer.h"
#include "test.h"

enum { MAX_CMDS = 64, CMD_LEN = 2048 };

// Joins backslash-continued lines of the ```sh blocks and keeps the commands
// that run ./anetrain (the part after "make && " included).
static int readme_commands(const char *text, char cmds[][CMD_LEN], int max) {
    int n = 0, in_sh = 0;
    char cur[CMD_LEN] = "";
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char buf[CMD_LEN];
        snprintf(buf, sizeof buf, "%.*s", (int)len, line);
        line += len + (end ? 1 : 0);
        if (!strncmp(buf, "```", 3)) {
            in_sh = !in_sh && !strncmp(buf, "```sh", 5);
            continue;
        }
        if (!in_sh) continue;
        char *hash = strstr(buf, "  #");  // trailing comment
        if (hash) *hash = 0;
        size_t bl = strlen(buf);
        while (bl && buf[bl - 1] == ' ') buf[--bl] = 0;
        int cont = bl && buf[bl - 1] == '\\';
        if (cont) buf[--bl] = 0;
        strncat(cur, buf, sizeof cur - strlen(cur) - 1);
        if (cont) continue;
        char *cmd = strstr(cur, "./anetrain ");
        if (cmd && cur[strspn(cur, " ")] != '#' && n < max) snprintf(cmds[n++], CMD_LEN, "%s", cmd);
        cur[0] = 0;
    }
    return n;
}

// --steps N -> N/50 (at least 2; 0 stays 0); train lines without --steps get 8; every
// train evaluates on 2 windows; a new run uses windows of 64 tokens and,
// without --accum, 1 window per update (a resume takes them from its checkpoint).
static void shorten(const char *in, char *out, size_t cap, const char *bin) {
    char tmp[CMD_LEN];
    snprintf(tmp, sizeof tmp, "%s%s", bin, in + strlen("./anetrain"));
    const int train = !strncmp(in + strlen("./anetrain "), "train", 5);
    char *steps = strstr(tmp, "--steps ");
    if (steps) {
        long given = strtol(steps + 8, NULL, 10), v = given / 50;
        char rest[CMD_LEN];
        snprintf(rest, sizeof rest, "%s", strchr(steps + 8, ' ') ? strchr(steps + 8, ' ') : "");
        snprintf(steps, sizeof tmp - (size_t)(steps - tmp), "--steps %ld%s", given == 0 ? 0 : v < 2 ? 2 : v, rest);
    }
    const int fresh = train && !strstr(tmp, "--resume");
    snprintf(out, cap, "%s%s%s%s%s", tmp, train && !steps ? " --steps 8" : "", train ? " --eval-windows 2" : "",
             fresh && !strstr(tmp, "--accum") ? " --accum 1" : "", fresh && !strstr(tmp, "--seq") ? " --seq 64" : "");
}

TEST(readme_commands_run_in_order) {
    if (!test_data("tinystories/TinyStories-validation.head.txt") || !test_data("llama2/tokenizer.bin")) return;
    char *text = NULL;
    REQUIRE(io_read_all("README.md", &text, NULL) == 0);
    static char cmds[MAX_CMDS][CMD_LEN];
    int n = readme_commands(text, cmds, MAX_CMDS);
    free(text);
    CHECKF(n >= 6, "README has %d ./anetrain commands in its sh blocks", n);
    char shared[PATH_MAX], dir[600], cmd[8192], bin[PATH_MAX];
    REQUIRE(realpath("../shared", shared) != NULL);
    REQUIRE(realpath(test_bin(), bin) != NULL);
    snprintf(dir, sizeof dir, "%s/readme", test_tmpdir());
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && ln -sfn '%s' '%s/../shared'", dir, shared, dir);
    REQUIRE(test_run(cmd, NULL) == 0);
    char *first_sample = NULL;
    int first_sample_i = -1;
    for (int i = 0; i < n; i++) {
        char line[CMD_LEN + 600];
        // the Qwen3 examples need a build with the Hugging Face tokenizer's libraries
        if (!hf_tokenizer_available(NULL) && strstr(cmds[i], "qwen")) continue;
#ifndef USE_CJSON  // plot reads the log with cJSON
        if (!strncmp(cmds[i] + strlen("./anetrain "), "plot ", 5)) continue;
#endif
        shorten(cmds[i], line, sizeof line, bin);
        // sample prints its speed on stderr: compare stdout only
        const int is_sample = !strncmp(cmds[i] + strlen("./anetrain "), "sample ", 7);
        snprintf(cmd, sizeof cmd, "cd '%s' && timeout 300 %s%s", dir, line, is_sample ? " 2>sample.err" : "");
        char *out = NULL;
        int rc = test_run(cmd, &out);
        CHECKF(rc == 0, "README command %d failed (exit %d): %s\n%s", i + 1, rc, line, out ? out : "");
        if (first_sample_i < 0 && is_sample) {
            first_sample_i = i;
            first_sample = out;
        } else {
            free(out);
        }
    }
    REQUIRE(first_sample_i >= 0);
    char line[CMD_LEN + 600];
    shorten(cmds[first_sample_i], line, sizeof line, bin);
    snprintf(cmd, sizeof cmd, "cd '%s' && timeout 300 %s 2>sample.err", dir, line);
    char *again = NULL;
    CHECK(test_run(cmd, &again) == 0);
    CHECKF(again && first_sample && !strcmp(again, first_sample),
           "the README's first sample printed something else after the later examples ran:\n%s\n--- vs ---\n%s",
           first_sample ? first_sample : "", again ? again : "");
    free(again);
    free(first_sample);
}
