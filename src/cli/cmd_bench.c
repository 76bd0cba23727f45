// anetrain bench: the seed's "Performance Comparison" table — every pipeline
// on the same model, data and windows, each in its own process (a fresh
// compile budget, as on the ANE), read back from the runs' logs.
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "ane/device.h"
#include "cli/restart.h"
#include "core/err.h"
#include "core/io.h"
#include "core/jsonw.h"
#include "mil/kernels.h"
#include "model/model_file.h"

static const char *ABOUT =
    "Runs the same training in one process per configuration — static, static-ane, static-ane\n"
    "--no-ane-extras, dynamic and cpu — and prints the seed's comparison table from their logs.\n"
    "--steps counts windows (the seed's steps); --accum windows make one update, whose kernels the\n"
    "static pipelines compile. Device GFLOPS count the FLOPs of the work each pipeline sends to the\n"
    "device (formula printed below the table), over the train time.";

typedef struct {
    const char *label, *pipeline, *extra;
} BenchConf;

static const BenchConf CONFS[] = {
    {"static", "static", ""},
    {"static-ane", "static-ane", ""},
    {"static-ane no extras", "static-ane", "--no-ane-extras"},
    {"dynamic", "dynamic", ""},
    {"cpu", "cpu", ""},
};
enum { N_CONFS = sizeof CONFS / sizeof CONFS[0] };

typedef struct {
    int ok;
    double wall, compile, train, steps, evals, restarts, loss;
    double kernels;  // per compile batch (or compiled once)
    double device_gflops, total_gflops;
} BenchRow;

// The last value of "key" in the last line of the log holding `type`.
static int last_number(const char *text, const char *type, const char *key, double *out) {
    char pat[64], kp[64];
    snprintf(pat, sizeof pat, "\"type\":\"%s\"", type);
    snprintf(kp, sizeof kp, "\"%s\":", key);
    const char *rec = NULL;
    for (const char *s = strstr(text, pat); s; s = strstr(s + 1, pat)) rec = s;
    if (!rec) return -1;
    const char *end = strchr(rec, '\n'), *v = strstr(rec, kp);
    if (!v || (end && v > end)) return -1;
    *out = strtod(v + strlen(kp), NULL);
    return 0;
}

// FLOPs of one window (ane-spec §6.3, generalized to GQA and head_dim):
// projections and FFN forward 2·S·(layer matrices), attention 5 matmul
// equivalents 2·NH·5·S²·HD per layer, classifier 2·V·D·S.
typedef struct {
    double fwd, sdpa, cls;
} Flops;

static Flops window_flops(const Config *c, int S) {
    const double D = c->dim, H = c->hidden, QD = config_q_dim(c), KVD = config_kv_dim(c), L = c->n_layers;
    Flops f = {2.0 * S * L * (D * QD + 2 * D * KVD + QD * D + 3 * D * H), L * 2.0 * c->n_heads * 5 * S * S * c->head_dim,
               2.0 * c->vocab * D * S};
    return f;
}

// Kernels compiled per update (static pipelines) or once (dynamic).
static double batch_kernels(const BenchConf *b, const Config *c) {
    int n, rows;
    mil_vocab_chunks(c->vocab, &n, &rows);
    if (!strcmp(b->pipeline, "static")) return 5.0 * c->n_layers;
    if (!strcmp(b->pipeline, "static-ane")) return *b->extra ? 5.0 * c->n_layers : 7.0 * c->n_layers + 1 + n;
    return !strcmp(b->pipeline, "dynamic") ? MIL_K_DYN_COUNT : 0;
}

static double device_flops(const BenchConf *b, const Flops *f) {
    if (!strcmp(b->pipeline, "cpu")) return 0;
    double ane = 2 * f->fwd + f->sdpa;  // forward and dx products, attention
    if (!strcmp(b->pipeline, "static-ane") && !*b->extra) ane += f->cls;  // the classifier forward
    return ane;
}

// One configuration's training in a child process: `self train ...` with its
// output in DIR/runI.out.
typedef struct {
    const char *self, *dir, *model, *device, *data;
    int updates, accum;
    char seq[16], budget[16];
} BenchRun;

static int run_one(const BenchRun *br, const BenchConf *b, int i) {
    const char *self = br->self, *dir = br->dir;
    char ckpt[PATH_MAX], log[PATH_MAX], out[PATH_MAX], steps[32], acc[32];
    snprintf(ckpt, sizeof ckpt, "%s/run%d.bin", dir, i);
    snprintf(log, sizeof log, "%s/run%d.jsonl", dir, i);
    snprintf(out, sizeof out, "%s/run%d.out", dir, i);
    snprintf(steps, sizeof steps, "%d", br->updates);
    snprintf(acc, sizeof acc, "%d", br->accum);
    const char *argv[32] = {self, "train", "--model", br->model, "--scratch", "--steps", steps, "--accum", acc,
                            "--pipeline", b->pipeline, "--device", br->device, "--ckpt", ckpt, "--log", log,
                            "--eval-every", "0", "--out-dir", dir, "--seq", br->seq, "--compile-budget",
                            br->budget, "-q"};
    int n = 0;
    while (argv[n]) n++;
    if (*b->extra) argv[n++] = b->extra;
    if (br->data) argv[n++] = "--data", argv[n++] = br->data;
    argv[n] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return err_set("bench: fork: %s", strerror(errno));
    if (pid == 0) {
        if (!freopen(out, "w", stdout) || !freopen(out, "a", stderr)) _exit(127);
#ifdef __APPLE__
        execv(self, (char **)argv);
#else
        execv("/proc/self/exe", (char **)argv);  // this binary, even if rebuilt meanwhile
#endif
        _exit(127);
    }
    int status = -1;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return err_set("bench: waiting for the %s run: %s", b->label, strerror(errno));
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return 0;
    char *txt = NULL;
    io_read_text(out, 1 << 20, &txt, NULL);
    size_t n_txt = txt ? strlen(txt) : 0;
    while (n_txt > 0 && txt[n_txt - 1] == '\n') txt[--n_txt] = 0;
    const char *last = txt ? strrchr(txt, '\n') : NULL;
    err_set("bench: the %s run failed: %s (all of it in %s)", b->label, last ? last + 1 : txt ? txt : "", out);
    free(txt);
    return -1;
}

// A zero-update cpu run: writes the built-in corpus into the directory.
static int prepare_corpus(const BenchRun *br) {
    static const BenchConf prep = {"corpus preparation", "cpu", ""};
    BenchRun b = *br;
    b.updates = 0;
    return run_one(&b, &prep, 99);
}

// The run's totals from its log: the last process's report (summed over its
// exec() restarts when there were any), and the last step's loss.
static int read_row(const char *log, const BenchConf *b, const Config *c, int S, int accum, BenchRow *r) {
    char *t = NULL;
    if (io_read_text(log, (size_t)1 << 30, &t, NULL) != 0) return -1;
    memset(r, 0, sizeof *r);
    double proc_steps = 0;
    int rc = last_number(t, "report", "wall_ms", &r->wall) | last_number(t, "report", "compile_ms", &r->compile) |
             last_number(t, "report", "train_ms", &r->train) | last_number(t, "report", "steps", &proc_steps) |
             last_number(t, "report", "device_evals", &r->evals) | last_number(t, "step", "loss", &r->loss);
    r->steps = proc_steps;
    if (rc == 0 && last_number(t, "report", "restarts", &r->restarts) == 0)
        rc = last_number(t, "report", "run_wall_ms", &r->wall) | last_number(t, "report", "run_compile_ms", &r->compile) |
             last_number(t, "report", "run_train_ms", &r->train) | last_number(t, "report", "run_steps", &r->steps);
    free(t);
    if (rc != 0) return err_set("%s: no complete report record (the %s run)", log, b->label);
    r->evals = proc_steps > 0 ? r->evals / (proc_steps * accum) : 0;  // per window, in the last process
    const Flops f = window_flops(c, S);
    const double windows = r->steps * accum, ms = r->train > 0 ? r->train : 1;
    r->device_gflops = device_flops(b, &f) * windows / (ms * 1e6);
    r->total_gflops = (3 * f.fwd + f.sdpa + 3 * f.cls) * windows / (ms * 1e6);
    r->kernels = batch_kernels(b, c);
    r->ok = 1;
    return 0;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static double pct(double a, double b) { return b > 0 ? 100 * a / b : 0; }

static void print_table(const BenchRow *r, const Config *c, int S, int windows, int accum, const char *device) {
    printf("\n%s, %d windows of %d tokens (%d updates of %d), device %s\n\n", c->name, windows, S, windows / accum,
           accum, device);
    printf("%-22s %9s %17s %17s %9s %9s %8s %10s %10s %10s %8s\n", "", "wall s", "compile s (%)", "train s (%)",
           "ms/step", "kernels", "restarts", "evals/win", "dev GFLOPS", "all GFLOPS", "loss");
    for (int i = 0; i < N_CONFS; i++) {
        if (!r[i].ok) continue;
        char comp[32], train[32], kern[32];
        snprintf(comp, sizeof comp, "%.2f (%.1f%%)", r[i].compile / 1e3, pct(r[i].compile, r[i].wall));
        snprintf(train, sizeof train, "%.2f (%.1f%%)", r[i].train / 1e3, pct(r[i].train, r[i].wall));
        snprintf(kern, sizeof kern, "%.0f%s", r[i].kernels, !strcmp(CONFS[i].pipeline, "dynamic") ? " once" : "");
        printf("%-22s %9.2f %17s %17s %9.1f %9s %8.0f %10.1f %10.2f %10.2f %8.4f\n", CONFS[i].label, r[i].wall / 1e3,
               comp, train, r[i].steps > 0 ? r[i].train / (r[i].steps * accum) : 0, kern, r[i].restarts, r[i].evals,
               r[i].device_gflops, r[i].total_gflops, r[i].loss);
    }
    const Flops f = window_flops(c, S);
    printf("\nms/step: train time per window. FLOPs per window (ane-spec 6.3): fwd = 2*S*(layer matrices) = %.4g,\n"
           "sdpa = L*2*NH*5*S^2*HD = %.4g, cls = 2*V*D*S = %.4g; all = 3*fwd + sdpa + 3*cls; on the device:\n"
           "2*fwd + sdpa (+ cls with the static-ane extras); GFLOPS over the train time.\n", f.fwd, f.sdpa, f.cls);
}

static int write_json(const char *path, const BenchRow *r, const Config *c, int S, int windows, int accum,
                      const char *device) {
    AtomicFile af;
    if (io_atomic_open(&af, path) != 0) return -1;
    for (int i = 0; i < N_CONFS; i++) {
        if (!r[i].ok) continue;  // left out by --only
        JsonW j;
        jsonw_begin(&j, "bench");
        jsonw_str(&j, "config", CONFS[i].label);
        jsonw_str(&j, "model", c->name);
        jsonw_str(&j, "device", device);
        jsonw_int(&j, "windows", windows), jsonw_int(&j, "accum", accum), jsonw_int(&j, "seq", S);
        jsonw_num(&j, "wall_ms", r[i].wall), jsonw_num(&j, "compile_ms", r[i].compile);
        jsonw_num(&j, "train_ms", r[i].train);
        jsonw_num(&j, "ms_per_step", r[i].steps > 0 ? r[i].train / (r[i].steps * accum) : 0);
        jsonw_num(&j, "kernels_per_batch", r[i].kernels), jsonw_num(&j, "restarts", r[i].restarts);
        jsonw_num(&j, "evals_per_window", r[i].evals);
        jsonw_num(&j, "device_gflops", r[i].device_gflops), jsonw_num(&j, "total_gflops", r[i].total_gflops);
        jsonw_num(&j, "final_loss", r[i].loss);
        const char *line = jsonw_end(&j);
        io_atomic_write(&af, line, strlen(line));
    }
    return io_atomic_commit(&af);
}

int cmd_bench(int argc, char **argv) {
    const char *model = "stories260k", *device = "sim", *data = NULL, *json = NULL, *dir = NULL, *only = NULL;
    int windows = 20, accum = 10, seq = 0, budget = DEVICE_DEFAULT_COMPILE_BUDGET;
    Flag flags[] = {
        {"--model", "-m", FLAG_STR, &model, "preset or model file (trained from random weights)"},
        {"--device", NULL, FLAG_STR, &device, "sim or ane"},
        {"--data", "-d", FLAG_STR, &data, "token file (default: the built-in corpus)"},
        {"--steps", "-n", FLAG_INT, &windows, "windows per configuration (the seed's steps)"},
        {"--accum", NULL, FLAG_INT, &accum, "windows per update (the static pipelines compile once per update)"},
        {"--seq", NULL, FLAG_INT, &seq, "window length (0 = the model's, at most 256 as in the seed)"},
        {"--compile-budget", NULL, FLAG_INT, &budget, "device compiles per process (as train's)"},
        {"--only", NULL, FLAG_STR, &only, "run only the configurations whose label contains this"},
        {"--json", NULL, FLAG_STR, &json, "also write the table as JSON lines"},
        {"--dir", NULL, FLAG_STR, &dir, "keep the runs' checkpoints and logs here (default: a temporary directory)"},
        {0},
    };
    int rc = args_parse(argc, argv, flags, "bench [flags]", ABOUT, NULL, 0, NULL);
    if (rc != 0) return rc > 0 ? 0 : 2;
    if (windows < 1 || accum < 1 || windows % accum)
        return fprintf(stderr, "anetrain bench: --steps must be a positive multiple of --accum\n"), 2;
    if (budget < 1) return fprintf(stderr, "anetrain bench: --compile-budget must be positive\n"), 2;
    int any = 0;
    for (int i = 0; i < N_CONFS; i++) any |= !only || strstr(CONFS[i].label, only) != NULL;
    if (!any)
        return fprintf(stderr, "anetrain bench: --only %s matches none of static, static-ane, static-ane no extras, "
                               "dynamic, cpu\n", only), 2;
    Config c;
    char self[PATH_MAX], tmp[PATH_MAX];
    if (model_config(model, &c) != 0 || restart_self_path(self, sizeof self) != 0 ||
        (json && io_check_output(json) != 0)) {
        fprintf(stderr, "anetrain bench: %s\n", err_msg());
        return 1;
    }
    const int S = seq > 0 ? (seq < c.seq_len ? seq : c.seq_len) : (c.seq_len < 256 ? c.seq_len : 256);
    struct stat sb;
    if (dir && (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode)))
        return fprintf(stderr, "anetrain bench: --dir %s: expected an existing directory\n", dir), 1;
    if (!dir) {
        snprintf(tmp, sizeof tmp, "%s/anetrain-bench-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(tmp)) return fprintf(stderr, "anetrain bench: %s: %s\n", tmp, strerror(errno)), 1;
        dir = tmp;
    }
    BenchRun br = {self, dir, model, device, data, windows / accum, accum, "", ""};
    snprintf(br.seq, sizeof br.seq, "%d", S);
    snprintf(br.budget, sizeof br.budget, "%d", budget);
    // the built-in corpus is written once, before any run is timed
    if (!data && prepare_corpus(&br) != 0) {
        fprintf(stderr, "anetrain bench: %s\n", err_msg());
        return 1;
    }
    BenchRow rows[N_CONFS] = {{0}};
    for (int i = 0; i < N_CONFS; i++) {
        if (only && !strstr(CONFS[i].label, only)) continue;
        char log[PATH_MAX];
        snprintf(log, sizeof log, "%s/run%d.jsonl", dir, i);
        fprintf(stderr, "bench: %s ...\n", CONFS[i].label);
        if (run_one(&br, &CONFS[i], i) != 0 ||
            read_row(log, &CONFS[i], &c, S, accum, &rows[i]) != 0) {
            fprintf(stderr, "anetrain bench: %s\n", err_msg());
            return 1;
        }
    }
    print_table(rows, &c, S, windows, accum, device);
    if (json && write_json(json, rows, &c, S, windows, accum, device) != 0) {
        fprintf(stderr, "anetrain bench: %s\n", err_msg());
        return 1;
    }
    if (dir == tmp && nftw(tmp, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)  // the runs' files are not wanted
        fprintf(stderr, "anetrain bench: could not remove %s: %s\n", tmp, strerror(errno));
    return 0;
}
