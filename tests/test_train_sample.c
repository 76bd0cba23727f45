// train --sample-every and SIGUSR1: text from the weights being trained,
// logged as valid `sample` records, the same text `anetrain sample` would
// generate from the same weights with the same settings.
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/io.h"
#include "json_check.h"
#include "test.h"

// Counts `sample` records of a log; every complete line must be valid; the first
// sample's decoded text goes to first (may be NULL).
static int samples_in(const char *log, char *first, size_t cap) {
    char *text = NULL;
    size_t n = 0;
    if (io_read_all(log, &text, &n) != 0) return -1;
    int count = 0;
    for (char *line = text; *line;) {
        char *end = strchr(line, '\n');
        if (!end) break;  // a line still being written
        size_t len = (size_t)(end - line);
        char why[200];
        if (!json_check_object(line, len, why, sizeof why)) count = -1000;
        size_t vlen;
        const char *type = json_member(line, len, "type", &vlen);
        if (type && vlen == 8 && !memcmp(type, "\"sample\"", 8)) {
            const char *t = json_member(line, len, "text", &vlen);
            if (count == 0 && first && t) json_string(t, vlen, first, cap);
            count++;
        }
        line += len + 1;
    }
    free(text);
    return count;
}

TEST(train_sample_every_logs_samples) {
    const char *dir = test_tmpdir();
    char cmd[2048], log[600];
    snprintf(log, sizeof log, "%s/samples.jsonl", dir);
    // the built-in corpus: its tokenizer is found without --tokenizer
    snprintf(cmd, sizeof cmd,
             "%s train --steps 4 --accum 1 --seq 32 --sample-every 2 --sample-prompt 'Once upon' --out-dir %s/sr "
             "--ckpt %s/sr/c.bin --log %s --eval-every 0",
             test_bin(), dir, dir, log);
    char *out = NULL;
    int rc = test_run(cmd, &out);
    CHECKF(rc == 0, "exit %d: %s", rc, out ? out : "");
    CHECKF(out && strstr(out, "sample at update 2: Once upon"), "no printed sample: %s", out ? out : "");
    free(out);
    char first[4096] = "";
    CHECK(samples_in(log, first, sizeof first) == 2);
    CHECKF(!strncmp(first, "Once upon", 9), "the sample does not start with its prompt: '%s'", first);
}

TEST(train_sample_needs_a_tokenizer_for_own_data) {
    char cmd[2048], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s train --model tiny-mha --data %s --steps 2 --sample-every 1 --ckpt %s/st.bin",
             test_bin(), test_pattern_tokens(256), test_tmpdir());
    int rc = test_run(cmd, &out);
    CHECKF(rc == 1 && out && strstr(out, "--tokenizer"), "exit %d: %s", rc, out ? out : "");
    free(out);
}

TEST(train_sigusr1_asks_for_a_sample) {
    const char *dir = test_tmpdir();
    char log[600], ck[600], outdir[600];
    snprintf(log, sizeof log, "%s/usr1.jsonl", dir);
    snprintf(ck, sizeof ck, "%s/u1/c.bin", dir);
    snprintf(outdir, sizeof outdir, "%s/u1", dir);
    fflush(stdout), fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        freopen("/dev/null", "w", stdout);
        execl(test_bin(), test_bin(), "train", "--steps", "100000", "--accum", "1", "--seq", "32", "--eval-every", "0",
              "--save-every", "0", "--out-dir", outdir, "--ckpt", ck, "--log", log, (char *)NULL);
        _exit(127);
    }
    REQUIRE(pid > 0);
    // wait for the first step record, then ask; then wait for the sample
    int got = 0;
    for (int i = 0; i < 400 && got <= 0; i++) {
        usleep(50000);
        char *text = NULL;
        if (io_read_all(log, &text, NULL) == 0) {
            if (strstr(text, "\"type\":\"step\"") && i % 10 == 0) kill(pid, SIGUSR1);
            free(text);
        }
        got = samples_in(log, NULL, 0);
    }
    kill(pid, SIGINT);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECKF(got >= 1, "no sample record after SIGUSR1 (%d)", got);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the run did not exit 0 after SIGINT (status %d)", status);
}
