// Bad input never damages anything (issue 15 §6): special files as inputs and
// outputs, oversized text, non-finite weights, mismatched tokenizers, corrupted
// checkpoints, Hugging Face tokenizer files, and two runs on one checkpoint.
// Commands that used to hang run under a wall-clock limit, so a regression
// fails here instead of stalling the suite.
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/err.h"
#include "core/io.h"
#include "data/hf_tokenizer.h"
#include "model/llama2c.h"
#include "model/model_file.h"
#include "model/params.h"
#include "train/checkpoint.h"
#include "test.h"

// --- helpers --------------------------------------------------------------------

// A path in this file's own directory under test_tmpdir() (no name clashes
// with other test files).
static const char *tmp(const char *name) {
    static char buf[16][512];
    static int slot;
    char *p = buf[slot++ % 16];
    snprintf(p, 512, "%s/badinput", test_tmpdir());
    mkdir(p, 0700);
    snprintf(p, 512, "%s/badinput/%s", test_tmpdir(), name);
    return p;
}

static int write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = n ? fwrite(data, 1, n, f) : 0;
    return fclose(f) == 0 && w == n ? 0 : -1;
}

static char *read_file(const char *path, size_t *n) {
    char *b = NULL;
    return io_read_all(path, &b, n) == 0 ? b : NULL;
}

static int is_kind(const char *path, mode_t kind) {
    struct stat st;
    return lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == kind;
}

// Runs `script` with sh under a wall-clock limit and returns its exit status,
// 124 on timeout. The alarm survives exec, so a script that ends in
// `exec anetrain ...` has anetrain itself killed if it hangs (a shell child
// would be left behind). stdout and stderr go to *out (malloc'd).
static int run_timed(const char *script, int secs, char **out) {
    int fds[2];
    if (pipe(fds) != 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1), dup2(fds[1], 2);
        close(fds[0]), close(fds[1]);
        alarm((unsigned)secs);
        execl("/bin/sh", "sh", "-c", script, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    ssize_t got;
    while (buf && (got = read(fds[0], buf + n, cap - n - 1)) != 0) {
        if (got < 0) {
            if (errno == EINTR) continue;
            break;
        }
        n += (size_t)got;
        if (cap - n < 2) buf = realloc(buf, cap *= 2);
    }
    close(fds[0]);
    if (buf) buf[n] = 0;
    int st = 0;
    waitpid(pid, &st, 0);
    if (out) *out = buf;
    else free(buf);
    if (WIFSIGNALED(st)) return WTERMSIG(st) == SIGALRM ? 124 : 128 + WTERMSIG(st);
    return WEXITSTATUS(st);
}

static int one_line(const char *s) {
    size_t n = s ? strlen(s) : 0;
    return n > 0 && s[n - 1] == '\n' && memchr(s, '\n', n) == s + n - 1;
}

// `exec anetrain ARGS` (stderr only, stdout dropped) must exit `want` within
// 20 s with one line on stderr containing every string of `needles` (NULL-ended).
static void expect_cli(const char *args, int want, const char *const *needles) {
    char script[4096], *out = NULL;
    snprintf(script, sizeof script, "exec %s %s 2>&1 >/dev/null", test_bin(), args);
    int rc = run_timed(script, 20, &out);
    int ok = rc == want && (want == 0 || one_line(out));
    for (const char *const *n = needles; ok && n && *n; n++) ok = out && strstr(out, *n) != NULL;
    CHECKF(ok, "anetrain %s: exit %d (want %d)%s, stderr:\n%s", args, rc, want, rc == 124 ? " TIMED OUT" : "",
           out ? out : "");
    free(out);
}

// "ulimit -v 2000000; " (a 2 GB address-space limit, so that a regression
// that reads or builds gigabytes fails fast instead of exhausting the
// machine) when the binary runs under it; "" for sanitizer builds, which
// reserve terabytes of shadow address space.
static const char *mem_limit(void) {
    static int ok = -1;
    if (ok < 0) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "ulimit -v 2000000; exec %s info stories260k >/dev/null 2>&1", test_bin());
        ok = test_run(cmd, NULL) == 0;
    }
    return ok ? "ulimit -v 2000000; " : "";
}

#define NEEDLES(...) ((const char *const[]){__VA_ARGS__, NULL})

// A copy of stories260K.bin with wq[1234] (layer 0, row 19, column 18) = NaN.
static const char *nan_model(void) {
    const char *src = test_data("stories260K/stories260K.bin");
    if (!src) return NULL;
    size_t n = 0;
    char *b = read_file(src, &n);
    if (!b) return NULL;
    float nan = NAN;
    size_t at = 28 + 4 * ((size_t)512 * 64 + 5 * 64 + 1234);  // v0 header, embed, rms_att, then wq
    memcpy(b + at, &nan, 4);
    const char *path = tmp("nan.bin");
    int rc = write_file(path, b, n);
    free(b);
    return rc == 0 ? path : NULL;
}

// --- row 1: outputs that are not regular files -------------------------------------------

TEST(badinput_atomic_refuses_special_targets) {
    AtomicFile af;
    const char *fifo = tmp("target.fifo");
    REQUIRE(mkfifo(fifo, 0600) == 0);
    CHECK(io_atomic_open(&af, fifo) != 0);
    CHECKF(strstr(err_msg(), fifo) && strstr(err_msg(), "named pipe") && strstr(err_msg(), "left untouched"), "%s",
           err_msg());
    CHECK(is_kind(fifo, S_IFIFO));
    CHECK(io_check_output(fifo) != 0);
    // a directory, and a symlink to a fifo
    CHECK(io_atomic_open(&af, test_tmpdir()) != 0 && strstr(err_msg(), "a directory"));
    const char *link_fifo = tmp("link_to_fifo");
    REQUIRE(symlink(fifo, link_fifo) == 0);
    CHECK(io_atomic_open(&af, link_fifo) != 0 && strstr(err_msg(), "named pipe"));
    CHECK(is_kind(link_fifo, S_IFLNK) && is_kind(fifo, S_IFIFO));
    // a dangling symlink is refused too (writing would create a file elsewhere)
    const char *dangling = tmp("dangling");
    REQUIRE(symlink(tmp("nowhere/x"), dangling) == 0);
    CHECK(io_atomic_open(&af, dangling) != 0 && strstr(err_msg(), "missing"));
    // a device node (root only): refused and still a device
    const char *dev = tmp("null.dev");
    if (mknod(dev, S_IFCHR | 0600, makedev(1, 3)) == 0) {
        CHECK(io_atomic_open(&af, dev) != 0 && strstr(err_msg(), "character device"));
        CHECK(is_kind(dev, S_IFCHR));
    }
    // a missing directory fails at open, naming it
    CHECK(io_atomic_open(&af, tmp("no-such-dir/x.bin")) != 0);
    CHECKF(strstr(err_msg(), "no-such-dir") && strstr(err_msg(), "does not exist"), "%s", err_msg());
}

TEST(badinput_atomic_writes_through_symlinks_and_ignores_stale_tmp) {
    const char *real = tmp("real.bin"), *link = tmp("link.bin");
    REQUIRE(write_file(real, "old", 3) == 0);
    REQUIRE(chmod(real, 0600) == 0);
    REQUIRE(symlink(real, link) == 0);
    AtomicFile af;
    REQUIRE(io_atomic_open(&af, link) == 0);
    io_atomic_write(&af, "new", 3);
    REQUIRE(io_atomic_commit(&af) == 0);
    char *b = read_file(real, NULL);
    CHECKF(b && !strcmp(b, "new"), "target holds '%s'", b ? b : "(null)");
    free(b);
    struct stat st;
    CHECK(is_kind(link, S_IFLNK) && stat(real, &st) == 0 && (st.st_mode & 0777) == 0600);
    // a planted PATH.tmp symlink is not followed: its target keeps its bytes
    const char *victim = tmp("victim.bin"), *out = tmp("out.bin");
    char out_tmp[600];
    snprintf(out_tmp, sizeof out_tmp, "%s.tmp", out);
    REQUIRE(write_file(victim, "keep", 4) == 0);
    REQUIRE(symlink(victim, out_tmp) == 0);
    REQUIRE(io_atomic_open(&af, out) == 0);
    io_atomic_write(&af, "data", 4);
    REQUIRE(io_atomic_commit(&af) == 0);
    b = read_file(victim, NULL);
    CHECK(b && !strcmp(b, "keep"));
    free(b);
    CHECK(is_kind(out, S_IFREG) && access(out_tmp, F_OK) != 0);
}

// The disk filling up mid-write, without a symlink to /dev/full as PATH.tmp
// (which io_atomic_open now removes instead of following): a file-size limit
// in a child makes the body write fail (EFBIG) the same way.
TEST(badinput_disk_full_mid_write_keeps_previous) {
    Config c;
    config_preset(&c, "tiny-mha");
    Params p;
    REQUIRE(params_init(&p, &c) == 0);
    params_init_random(&p, 3);
    const char *ck = tmp("full.ckpt");
    REQUIRE(ckpt_save(ck, &p, NULL, NULL, NULL) == 0);
    size_t before = 0;
    char *old = read_file(ck, &before);
    REQUIRE(old != NULL);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);  // a write past the limit then fails with EFBIG
        struct rlimit r;
        getrlimit(RLIMIT_FSIZE, &r);
        r.rlim_cur = 64 << 10;
        setrlimit(RLIMIT_FSIZE, &r);
        params_init_random(&p, 4);
        int failed = ckpt_save(ck, &p, p.data, p.data, NULL) != 0 && strstr(err_msg(), "previous file is kept");
        _exit(failed ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the save under a 64 KiB file-size limit did not fail cleanly");
    size_t after = 0;
    char *now = read_file(ck, &after);
    CHECK(now && after == before && !memcmp(now, old, before));
    char tmpname[600];
    snprintf(tmpname, sizeof tmpname, "%s.tmp", ck);
    CHECK(access(tmpname, F_OK) != 0);
    free(old), free(now);
    params_free(&p);
}

TEST(badinput_cli_outputs_refuse_special_files) {
    const char *model = test_data("stories260K/stories260K.bin");
    const char *tok = test_data("stories260K/tok512.bin");
    const char *text = test_data("tinystories/TinyStories-validation.head.txt");
    if (!model || !tok || !text) return;
    const char *fifo = tmp("out.fifo");
    REQUIRE(mkfifo(fifo, 0600) == 0);
    char args[2048];
    snprintf(args, sizeof args, "export --model %s -o %s", model, fifo);
    expect_cli(args, 1, NEEDLES(fifo, "named pipe"));
    snprintf(args, sizeof args, "tokenize --tokenizer %s -o %s %s", tok, fifo, text);
    expect_cli(args, 1, NEEDLES(fifo, "named pipe"));
    snprintf(args, sizeof args, "train --steps 1 --ckpt %s", fifo);
    expect_cli(args, 1, NEEDLES(fifo, "named pipe"));
    CHECK(is_kind(fifo, S_IFIFO));
    const char *dev = tmp("full.dev");
    if (mknod(dev, S_IFCHR | 0600, makedev(1, 7)) == 0) {  // /dev/full's numbers, root only
        snprintf(args, sizeof args, "export --model %s -o %s", model, dev);
        expect_cli(args, 1, NEEDLES(dev, "character device"));
        CHECK(is_kind(dev, S_IFCHR));
    }
    // a stale OUT.tmp fifo neither hangs the export nor is written into
    const char *out = tmp("export.bin");
    char out_tmp[600];
    snprintf(out_tmp, sizeof out_tmp, "%s.tmp", out);
    REQUIRE(mkfifo(out_tmp, 0600) == 0);
    snprintf(args, sizeof args, "export --model %s -o %s", model, out);
    expect_cli(args, 0, NULL);
    CHECK(is_kind(out, S_IFREG) && access(out_tmp, F_OK) != 0);
    // a missing output directory is named before anything is read
    snprintf(args, sizeof args, "export --model %s -o %s", model, tmp("missing-dir/x.bin"));
    expect_cli(args, 1, NEEDLES("missing-dir", "does not exist"));
}

TEST(badinput_log_stream_and_special_files) {
    const char *fifo = tmp("log.fifo");
    REQUIRE(mkfifo(fifo, 0600) == 0);
    CHECK(io_open_append(fifo) == NULL && strstr(err_msg(), "named pipe"));  // and no hang
    FILE *f = io_open_append("/dev/stdout");
    CHECK(f != NULL);
    if (f) fclose(f);  // a duplicate: stdout stays open
    CHECK(fflush(stdout) == 0 && fcntl(STDOUT_FILENO, F_GETFD) != -1);
    const char *log = tmp("run.jsonl");
    for (int i = 0; i < 2; i++) {
        f = io_open_append(log);
        REQUIRE(f != NULL);
        fputs("{}\n", f);
        fclose(f);
    }
    char *b = read_file(log, NULL);
    CHECK(b && !strcmp(b, "{}\n{}\n"));
    free(b);
}

// --- rows 2, 3: inputs that are not regular files, oversized text ---------------------------

TEST(badinput_fifo_inputs_never_hang) {
    const char *model = test_data("stories260K/stories260K.bin");
    const char *tok = test_data("stories260K/tok512.bin");
    const char *text = test_data("tinystories/TinyStories-validation.head.txt");
    if (!model || !tok || !text) return;
    const char *f = tmp("in.fifo"), *toks = test_pattern_tokens(512), *o = tmp("never.bin");
    REQUIRE(mkfifo(f, 0600) == 0);
    // {F} the fifo, {M} a model, {T} a tokenizer, {O} an output, {D} tokens, {X} text
    const char *fmt[] = {
        "info {F}",
        "export --model {F} -o {O}",
        "sample --model {F} --tokenizer {T}",
        "sample --model {M} --tokenizer {F}",
        "eval --model {F} --data {D}",
        "eval --model {M} --data {F}",
        "tokenize --tokenizer {F} -o {O} {X}",
        "tokenize --tokenizer {T} -o {O} {F}",
        "mil --run {F}",
        "mil sdpaFwd --model {F}",
        "train --steps 1 --data {F}",
    };
    const char *keys[][2] = {{"{F}", f}, {"{M}", model}, {"{T}", tok}, {"{O}", o}, {"{D}", toks}, {"{X}", text}};
    for (size_t i = 0; i < sizeof fmt / sizeof fmt[0]; i++) {
        char args[2048] = "";
        for (const char *s = fmt[i]; *s;) {
            size_t k = 0;
            while (k < 6 && strncmp(s, keys[k][0], 3)) k++;
            size_t at = strlen(args);
            if (k < 6) snprintf(args + at, sizeof args - at, "%s", keys[k][1]), s += 3;
            else args[at] = *s++, args[at + 1] = 0;
        }
        expect_cli(args, 1, NEEDLES(f, "expected a regular file, found a named pipe"));
    }
    // a directory where a file is expected (a tokenizer may be a Hugging Face
    // directory: one without the files is named as such)
    char args[2048];
    snprintf(args, sizeof args, "tokenize --tokenizer %s -o %s %s", tok, o, test_tmpdir());
    expect_cli(args, 1, NEEDLES("expected a regular file, found a directory"));
    snprintf(args, sizeof args, "sample --model %s --tokenizer %s", model, test_tmpdir());
    expect_cli(args, 1, NEEDLES(test_tmpdir(), "Hugging Face tokenizer directory", "found neither"));
}

TEST(badinput_devices_and_oversized_text) {
    const char *z = tmp("z.json");
    REQUIRE(symlink("/dev/zero", z) == 0);
    // before the fix these read /dev/zero until memory ran out
    char script[2048], *out = NULL;
    const char *cases[] = {"info %s", "mil --run %s", "tokenize -o %s --tokenizer %s %s"};
    for (size_t i = 0; i < 3; i++) {
        char args[1024];
        if (i == 2) snprintf(args, sizeof args, cases[i], tmp("z-out.bin"), z, z);
        else snprintf(args, sizeof args, cases[i], z);
        snprintf(script, sizeof script, "%sexec %s %s 2>&1 >/dev/null", mem_limit(), test_bin(), args);
        int rc = run_timed(script, 20, &out);
        CHECKF(rc == 1 && one_line(out) && strstr(out, "character device") && strstr(out, "/dev/zero"),
               "%s: exit %d: %s", args, rc, out ? out : "");
        free(out);
    }
    // text inputs over the 64 MiB cap (sparse files: no disk used) are refused unread
    const char *names[] = {"big.json", "big.mil"};
    const char *cmd[] = {"info %s", "mil --run %s"};
    for (int i = 0; i < 2; i++) {
        const char *p = tmp(names[i]);
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        REQUIRE(fd >= 0 && ftruncate(fd, (off_t)65 << 20) == 0);
        close(fd);
        char args[1024];
        snprintf(args, sizeof args, cmd[i], p);
        expect_cli(args, 1, NEEDLES(p, "at most 64 MiB", "65 MiB"));
    }
}

// --- row 6: non-finite weights ----------------------------------------------------------

TEST(badinput_nan_weights_refused_by_every_loader) {
    const char *bad = nan_model();
    if (!bad) return;
    Params p;
    CHECK(model_load(&p, bad) != 0 && p.data == NULL);
    CHECKF(strstr(err_msg(), bad) && strstr(err_msg(), "tensor wq at index 1234 (layer 0, row 19, column 18)"),
           "%s", err_msg());
    char args[2048];
    snprintf(args, sizeof args, "eval --model %s --data %s", bad, test_pattern_tokens(512));
    expect_cli(args, 1, NEEDLES(bad, "expected finite weights", "tensor wq"));
    // a checkpoint: through model_load and through export (which reads checkpoints itself)
    Config c;
    config_preset(&c, "tiny-gqa");
    REQUIRE(params_init(&p, &c) == 0);
    params_init_random(&p, 1);
    p.v.rms_final[3] = INFINITY;
    const char *ck = tmp("inf.ckpt");
    REQUIRE(ckpt_save(ck, &p, NULL, NULL, NULL) == 0);
    params_free(&p);
    CHECK(model_load(&p, ck) != 0);
    CHECKF(strstr(err_msg(), "inf in tensor rms_final at index 3 (element 3)"), "%s", err_msg());
    snprintf(args, sizeof args, "export --model %s -o %s", ck, tmp("inf.bin"));
    expect_cli(args, 1, NEEDLES(ck, "tensor rms_final"));
    CHECK(access(tmp("inf.bin"), F_OK) != 0);
#ifdef USE_CJSON
    // Hugging Face: export the NaN-free model, then poison one float of the safetensors
    const char *model = test_data("stories260K/stories260K.bin");
    const char *dir = tmp("hf_nan");
    snprintf(args, sizeof args, "%s export --model %s --format hf -o %s >/dev/null 2>&1", test_bin(), model, dir);
    REQUIRE(test_run(args, NULL) == 0);
    char st_path[700];
    snprintf(st_path, sizeof st_path, "%s/model.safetensors", dir);
    size_t n = 0;
    char *b = read_file(st_path, &n);
    REQUIRE(b != NULL);
    float nan = NAN;
    memcpy(b + n - 4, &nan, 4);  // the last float of the last tensor
    REQUIRE(write_file(st_path, b, n) == 0);
    free(b);
    CHECK(model_load(&p, dir) != 0 && strstr(err_msg(), "expected finite weights"));
#endif
}

// --- row 10: info on a safetensors index ----------------------------------------------------

#ifdef USE_CJSON
#include "model/safetensors.h"
TEST(badinput_info_reads_safetensors_index) {
    const char *model = test_data("stories260K/stories260K.bin");
    if (!model) return;
    const char *dir = tmp("hf_index");
    char cmd[2048], path[700];
    snprintf(cmd, sizeof cmd, "%s export --model %s --format hf -o %s >/dev/null 2>&1", test_bin(), model, dir);
    REQUIRE(test_run(cmd, NULL) == 0);
    // an index mapping every tensor to the one shard
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    SafeTensorsFile f;
    REQUIRE(safetensors_open(&f, path) == 0);
    size_t cap = 256 + (size_t)f.n * 96, at = 0;
    char *json = malloc(cap);
    at += (size_t)snprintf(json + at, cap - at, "{\"metadata\": {}, \"weight_map\": {");
    for (int i = 0; i < f.n; i++)
        at += (size_t)snprintf(json + at, cap - at, "%s\"%s\": \"model.safetensors\"", i ? ", " : "", f.t[i].name);
    snprintf(json + at, cap - at, "}}\n");
    safetensors_close(&f);
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    REQUIRE(write_file(path, json, strlen(json)) == 0);
    free(json);
    char *out = NULL;
    snprintf(cmd, sizeof cmd, "%s info %s", test_bin(), path);
    int rc = test_run(cmd, &out);
    CHECKF(rc == 0 && out && strstr(out, "sharded") && strstr(out, "dim 64") && strstr(out, "260032"),
           "exit %d:\n%s", rc, out ? out : "");
    free(out);
    // the same index under a name that hides it: the message says what it is
    const char *renamed = tmp("weights.json");
    snprintf(cmd, sizeof cmd, "cp %s %s", path, renamed);
    REQUIRE(test_run(cmd, NULL) == 0);
    snprintf(cmd, sizeof cmd, "info %s", renamed);
    expect_cli(cmd, 1, NEEDLES(renamed, "safetensors index"));
}
#endif

// --- rows 11, 13: tokenizers ------------------------------------------------------------

TEST(badinput_sample_refuses_wrong_tokenizers) {
    const char *model = test_data("stories260K/stories260K.bin");
    const char *llama = test_data("llama2/tokenizer.bin");
    if (!model || !llama) return;
    const char *zeros = tmp("zeros.bin");
    char *z = calloc(1, 100000);
    REQUIRE(write_file(zeros, z, 100000) == 0);
    free(z);
    char args[2048];
    snprintf(args, sizeof args, "sample --model %s --tokenizer %s -t 0 -n 20", model, zeros);
    expect_cli(args, 1, NEEDLES(zeros, "max_token_length 0"));
    // Llama 2's 32000-piece tokenizer with a 512-token model: both sizes named
    snprintf(args, sizeof args, "sample --model %s --tokenizer %s -t 0 -n 20", model, llama);
    expect_cli(args, 1, NEEDLES(llama, "expected 512", "found 32000"));
    // a model file given as the tokenizer
    snprintf(args, sizeof args, "sample --model %s --tokenizer %s -t 0 -n 20", model, model);
    expect_cli(args, 1, NEEDLES(model, "not a tokenizer.bin"));
    // checked before the model is loaded: the NaN model's error never shows
    const char *bad = nan_model();
    if (!bad) return;
    snprintf(args, sizeof args, "sample --model %s --tokenizer %s", bad, zeros);
    expect_cli(args, 1, NEEDLES(zeros, "max_token_length"));
}

TEST(badinput_hf_tokenizer_files_are_named) {
    // Hugging Face tokenizer files are read (tests/test_hf_tokenizer.c); what is
    // wrong about them here is the pairing, or a file missing beside them
    const char *tj = test_data("qwen3-0.6b/tokenizer.json"), *vocab = test_data("qwen3-0.6b/vocab.json");
    const char *model = test_data("stories260K/stories260K.bin");
    if (!tj || !vocab || !model) return;
    char args[2048];
    if (hf_tokenizer_available(NULL)) {
        snprintf(args, sizeof args, "sample --model %s --tokenizer %s", model, tj);
        expect_cli(args, 1, NEEDLES(tj, "ids up to 151668", "vocab of", "512"));
    }
    // by content, not by name: a vocab.json called tokenizer.bin, alone in its directory
    const char *renamed = tmp("tokenizer.bin");
    snprintf(args, sizeof args, "cp %s %s", vocab, renamed);
    REQUIRE(test_run(args, NULL) == 0);
    snprintf(args, sizeof args, "sample --model %s --tokenizer %s", model, renamed);
    expect_cli(args, 1, NEEDLES(renamed, hf_tokenizer_available(NULL) ? "merges.txt" : "built without"));
}

// --- row 12: info verifies checkpoints --------------------------------------------------

TEST(badinput_info_verifies_checkpoint_body) {
    Config c;
    config_preset(&c, "tiny-mha");
    Params p;
    REQUIRE(params_init(&p, &c) == 0);
    params_init_random(&p, 2);
    const char *ck = tmp("flip.ckpt");
    REQUIRE(ckpt_save(ck, &p, p.data, p.data, NULL) == 0);  // with moments
    params_free(&p);
    CHECKF(ckpt_verify(ck) == 0, "%s", err_msg());
    char args[1024], *out = NULL, cmd[1200];
    snprintf(cmd, sizeof cmd, "%s info %s", test_bin(), ck);
    CHECK(test_run(cmd, &out) == 0 && out && strstr(out, "body CRC-32 verified"));
    free(out);
    // flip one byte in the middle of the body
    size_t n = 0;
    char *b = read_file(ck, &n);
    REQUIRE(b != NULL);
    b[4096 + (n - 4096) / 2] ^= 0x10;
    REQUIRE(write_file(ck, b, n) == 0);
    free(b);
    CHECK(ckpt_verify(ck) != 0 && strstr(err_msg(), "body is corrupted"));
    snprintf(args, sizeof args, "info %s", ck);
    expect_cli(args, 1, NEEDLES(ck, "body is corrupted"));
    // --no-verify reads the header only, and says so
    snprintf(cmd, sizeof cmd, "%s info --no-verify %s", test_bin(), ck);
    CHECK(test_run(cmd, &out) == 0 && out && strstr(out, "NOT verified"));
    free(out);
}

// --- row 14: one run per checkpoint -------------------------------------------------------

// In a child: tries io_lock(path); exits 0 if refused with the pid (which is
// also what PATH.lock holds), 1 if it got the lock, 2 if refused otherwise. die_holding: exit
// without io_unlock, as a crashed run does.
static int child_lock(const char *path, long want_pid, int die_holding) {
    pid_t pid = fork();
    if (pid == 0) {
        IoLock l;
        if (io_lock(&l, path) == 0) {
            if (!die_holding) io_unlock(&l);
            _exit(1);  // exiting drops an fcntl lock: a dead holder
        }
        char want[700], lockp[600];
        snprintf(want, sizeof want, "%s: in use by another anetrain run (pid %ld)", path, want_pid);
        snprintf(lockp, sizeof lockp, "%s.lock", path);
        char *b = read_file(lockp, NULL);
        int pid_ok = b && strtol(b, NULL, 10) == want_pid;
        if (strcmp(err_msg(), want) || !pid_ok) fprintf(stderr, "    child: %s; lock file '%s'\n", want, b ? b : "");
        _exit(!strcmp(err_msg(), want) && pid_ok ? 0 : 2);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(badinput_lock_one_run_per_checkpoint) {
    const char *ck = tmp("locked.ckpt");
    char lockp[600];
    snprintf(lockp, sizeof lockp, "%s.lock", ck);
    IoLock a;
    REQUIRE(io_lock(&a, ck) == 0);
    // (reading PATH.lock here would drop the lock: closing any descriptor of
    // it does, so the child checks the pid written in it)
    CHECKF(child_lock(ck, (long)getpid(), 0) == 0, "a second process was not refused with the holder's pid");
    io_unlock(&a);
    CHECK(access(lockp, F_OK) != 0);
    // a holder that dies without unlocking: its lock is taken over
    CHECK(child_lock(ck, 0, 1) == 1);
    CHECK(access(lockp, F_OK) == 0);  // the dead run's file is still there...
    CHECKF(io_lock(&a, ck) == 0, "%s", err_msg());  // ...and free
    io_unlock(&a);
    // a stale file with a made-up pid is no lock at all
    REQUIRE(write_file(lockp, "999999\n", 7) == 0);
    CHECKF(io_lock(&a, ck) == 0, "%s", err_msg());
    io_unlock(&a);
    // a planted symlink is not used as the lock file
    REQUIRE(symlink(tmp("elsewhere"), lockp) == 0);
    CHECK(io_lock(&a, ck) != 0);
    CHECK(access(tmp("elsewhere"), F_OK) != 0);
    unlink(lockp);
}

// --- row 9: printing a kernel builds none of its weight files ------------------------------

TEST(badinput_mil_print_builds_no_blobs) {
    // qwen3-0.6b at its full 40960 positions: sdpaFwd's mask alone is 3.4 GB
    // of fp16 (computed from 6.7 GB of fp32); printing must not build it
    char script[1024], *out = NULL;
    snprintf(script, sizeof script, "%sexec %s mil sdpaFwd --model qwen3-0.6b --seq 40960 2>&1", mem_limit(),
             test_bin());
    int rc = run_timed(script, 20, &out);
    CHECKF(rc == 0 && out && strstr(out, "program(1.3)") && strstr(out, "@model_path/weights/mask.bin") &&
               strstr(out, "mask.bin, 3355443328 bytes (not built"),
           "exit %d:\n%.2000s", rc, out ? out : "");
    free(out);
    // --blobs DIR builds and writes them (a small model)
    const char *dir = tmp("mil_blobs");
    snprintf(script, sizeof script, "%s mil sdpaFwd --model stories260k --seq 16 --blobs %s >/dev/null 2>&1",
             test_bin(), dir);
    CHECK(test_run(script, NULL) == 0);
    char mask[700];
    snprintf(mask, sizeof mask, "%s/mask.bin", dir);
    struct stat st;
    CHECKF(stat(mask, &st) == 0 && st.st_size == 128 + 2 * 64 * 64,  // the window padded to 64 positions
           "%s: size %lld", mask, (long long)st.st_size);
}
