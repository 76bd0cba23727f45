// anetrain mil: print the MIL of any kernel, or run a MIL file on the sim device.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ane/device.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "core/err.h"
#include "core/fp16.h"
#include "core/io.h"
#include "core/rng.h"
#include "core/timer.h"
#include "mil/kernels.h"
#include "mil/mil_blob.h"
#include "model/config.h"
#include "model/model_file.h"
#include "model/params.h"

// A static kernel: its text alone, or with weight files baked from random
// weights (seed 1; layer 0, the first vocabulary chunk) to run it with.
static int build_baked(MilKernelKind kind, const Config *cfg, int seq, MilDialect d, int with_blobs, MilKernel *k) {
    if (!with_blobs) return mil_kernel_build_baked_text(kind, cfg, seq, d, NULL, k);
    Params p;
    if (params_init(&p, cfg) != 0) return -1;
    params_init_random(&p, 1);
    const ParamViews *v = &p.v;
    int n, rows;
    mil_vocab_chunks(cfg->vocab, &n, &rows);
    MilBaked w = {.wq = v->wq, .wk = v->wk, .wv = v->wv, .wo = v->wo, .w1 = v->w1, .w2 = v->w2, .w3 = v->w3,
                  .rms_att = v->rms_att, .rms_ffn = v->rms_ffn, .q_norm = v->q_norm, .k_norm = v->k_norm,
                  .rms = kind == MIL_K_FINAL_NORM ? v->rms_final : v->rms_att, .cls = v->wcls, .row0 = 0, .rows = rows};
    int rc = d == MIL_DIALECT_IOS18 ? mil_kernel_build_baked(kind, cfg, seq, &w, k)
                                    : err_set("static kernels are generated in the ios18 dialect only");
    if (rc == 0) fprintf(stderr, "weights: random (seed 1), layer 0\n");
    params_free(&p);
    return rc;
}

static int print_kernel(const char *name, const char *model, int seq, const char *dialect, const char *blob_dir) {
    Config cfg;
    if (model_config(model, &cfg) != 0) return -1;
    if (seq > cfg.seq_len) seq = cfg.seq_len;
    int kind = -1;
    for (int k = 0; k < MIL_K_COUNT; k++)
        if (!strcmp(name, mil_kernel_name((MilKernelKind)k))) kind = k;
    if (kind < 0) {
        char names[512] = "";
        for (int k = 0; k < MIL_K_COUNT; k++) {
            strcat(names, mil_kernel_name((MilKernelKind)k));
            if (k + 1 < MIL_K_COUNT) strcat(names, ", ");
        }
        return err_set("unknown kernel '%s' (expected one of: %s)", name, names);
    }
    MilDialect d = !strcmp(dialect, "ios16") ? MIL_DIALECT_IOS16 : MIL_DIALECT_IOS18;
    // the weight files' bytes are built only when they are written: printing
    // sdpaFwd at S = 40960 would otherwise build a 3.4 GB mask
    MilKernel k;
    if (mil_kernel_is_baked((MilKernelKind)kind)) {
        if (build_baked((MilKernelKind)kind, &cfg, seq, d, blob_dir != NULL, &k) != 0) return -1;
    } else if ((blob_dir ? mil_kernel_build_dialect : mil_kernel_build_text)((MilKernelKind)kind, &cfg, seq, d, &k) != 0) {
        return -1;
    }
    fputs(k.mil, stdout);
    fprintf(stderr, "%s: input [1, %d, 1, %d], output [1, %d, 1, %d], %d weight file(s)\n", k.name, k.in_c, k.in_w,
            k.out_c, k.out_w, k.n_blobs);
    for (int i = 0; i < k.n_in; i++)
        fprintf(stderr, "  in  %-8s channels [%d, %d) spatial [%d, %d)\n", k.in[i].name, k.in[i].c0,
                k.in[i].c0 + k.in[i].nc, k.in[i].w0, k.in[i].w0 + k.in[i].nw);
    for (int i = 0; i < k.n_out; i++)
        fprintf(stderr, "  out %-8s channels [%d, %d)\n", k.out[i].name, k.out[i].c0, k.out[i].c0 + k.out[i].nc);
    for (int i = 0; i < k.n_blobs; i++)
        fprintf(stderr, "  weight %s, %zu bytes%s\n", k.blobs[i].path, k.blobs[i].size,
                blob_dir ? "" : " (not built; --blobs DIR builds and writes it)");
    int rc = 0;
    if (blob_dir) {
        mkdir(blob_dir, 0755);
        for (int i = 0; i < k.n_blobs && rc == 0; i++) {
            const char *base = strrchr(k.blobs[i].path, '/');
            char path[1024];
            snprintf(path, sizeof path, "%s/%s", blob_dir, base ? base + 1 : k.blobs[i].path);
            rc = mil_blob_write_file(path, k.blobs[i].data, k.blobs[i].size);
            if (rc == 0) fprintf(stderr, "wrote %s\n", path);
        }
    }
    mil_kernel_free(&k);
    return rc;
}

// Finds every BLOBFILE path in the text and loads DIR/<basename> for it.
static int load_weights(const char *text, const char *dir, DeviceWeight *w, char **bufs, int max, int *n) {
    *n = 0;
    for (const char *s = strstr(text, "BLOBFILE(path=string(\""); s; s = strstr(s + 1, "BLOBFILE(path=string(\"")) {
        const char *p = s + strlen("BLOBFILE(path=string(\""), *e = strchr(p, '"');
        if (!e) break;
        char path[512];
        snprintf(path, sizeof path, "%.*s", (int)(e - p), p);
        int seen = 0;
        for (int i = 0; i < *n; i++) seen |= !strcmp(w[i].path, path);
        if (seen) continue;
        if (*n == max) return err_set("more than %d weight files", max);
        if (!dir) return err_set("the program references %s: pass --weights DIR holding its .bin files", path);
        const char *base = strrchr(path, '/');
        char file[1024];
        snprintf(file, sizeof file, "%s/%s", dir, base ? base + 1 : path);
        size_t size;
        if (io_read_all(file, &bufs[*n], &size) != 0) return -1;
        w[*n] = (DeviceWeight){strdup(path), (const uint8_t *)bufs[*n], size};
        (*n)++;
    }
    return 0;
}

static int run_file(const char *file, const char *weights_dir, long long seed, int budget) {
    char *text = NULL, *bufs[16] = {0};
    DeviceWeight w[16];
    int nw = 0, rc = -1;
    Device dev = {0};
    DeviceKernel *k = NULL;
    DeviceSurface *in = NULL, *out = NULL;
    DeviceRequest *req = NULL;
    if (io_read_text(file, IO_TEXT_MAX, &text, NULL) != 0) return -1;  // a MIL program is text: capped
    if (load_weights(text, weights_dir, w, bufs, 16, &nw) != 0) goto done;
    if (device_init(&dev, "sim", budget) != 0) goto done;
    double t0 = time_ms();
    if (device_compile(&dev, text, w, nw, &k) != 0) {
        err_wrap("%s", file);
        goto done;
    }
    double tc = time_ms() - t0;
    size_t icw[2], ocw[2];
    device_kernel_io(k, &dev, icw, ocw);
    if (device_surface_create(&dev, icw[0], icw[1], &in) || device_surface_create(&dev, ocw[0], ocw[1], &out) ||
        device_request_create(&dev, k, in, out, &req))
        goto done;
    Rng r;
    rng_init(&r, (uint64_t)seed);
    uint16_t *p = device_surface_lock(&dev, in, 1);
    for (size_t i = 0; i < icw[0] * icw[1]; i++) p[i] = fp16_from_f32(rng_normal(&r));
    device_surface_unlock(&dev, in, 1);
    t0 = time_ms();
    if (device_eval(&dev, req) != 0) goto done;
    double te = time_ms() - t0;
    p = device_surface_lock(&dev, out, 0);
    size_t n = ocw[0] * ocw[1], nonfinite = 0;
    double sum = 0, sumsq = 0, mx = -INFINITY, mn = INFINITY;
    for (size_t i = 0; i < n; i++) {
        float v = fp16_to_f32(p[i]);
        if (!isfinite(v)) { nonfinite++; continue; }
        sum += v, sumsq += (double)v * v;
        mx = v > mx ? v : mx, mn = v < mn ? v : mn;
    }
    device_surface_unlock(&dev, out, 0);
    printf("%s: input [1, %zu, 1, %zu] ~ N(0,1) (seed %lld), output [1, %zu, 1, %zu]\n", file, icw[0], icw[1], seed,
           ocw[0], ocw[1]);
    printf("compile %.1f ms, eval %.1f ms\n", tc, te);
    printf("output mean %.6g, rms %.6g, min %.6g, max %.6g, non-finite %zu\n", sum / n, sqrt(sumsq / n), mn, mx,
           nonfinite);
    rc = 0;
done:
    device_request_free(&dev, req);
    if (dev.ops) {
        device_surface_free(&dev, in), device_surface_free(&dev, out);
        device_kernel_free(&dev, k);
        device_free(&dev);
    }
    for (int i = 0; i < nw; i++) free((char *)w[i].path), free(bufs[i]);
    free(text);
    return rc;
}

int cmd_mil(int argc, char **argv) {
    const char *model = "stories110m", *dialect = "ios18", *run = NULL, *weights = NULL, *blobs = NULL;
    int seq = 256, budget = 0;
    long long seed = 1;
    Flag flags[] = {
        {"--model", "-m", FLAG_STR, &model, "preset or model file whose Config shapes the kernel"},
        {"--seq", NULL, FLAG_INT, &seq, "window length S the kernel is compiled for"},
        {"--dialect", NULL, FLAG_STR, &dialect, "ios18 (program 1.3) or ios16 (older chips)"},
        {"--blobs", NULL, FLAG_STR, &blobs, "also build and write the kernel's weight files into DIR"},
        {"--run", NULL, FLAG_STR, &run, "run FILE.mil on the sim device with N(0,1) input"},
        {"--weights", NULL, FLAG_STR, &weights, "directory holding the .bin files --run's program references"},
        {"--seed", NULL, FLAG_LONG, &seed, "seed of --run's input"},
        {"--compile-budget", NULL, FLAG_INT, &budget, "sim compile budget"},
        {0},
    };
    const char *pos[1];
    int npos = 0;
    int rc = args_parse(argc, argv, flags, "mil KERNEL [--model M] [--seq S] | mil --run FILE.mil [--weights DIR]",
                        "Prints the MIL program of a dynamic-pipeline kernel (sdpaFwd, woFwd, ffnFused, ffnBwdW2t,\n"
                        "ffnBwdW13t, wotBwd, sdpaBwd1, sdpaBwd2, qBwd, kvBwd) generated for a model, with its surface\n"
                        "layout on stderr; or compiles and runs a MIL file on the sim device.",
                        pos, 1, &npos);
    if (rc != 0) return rc > 0 ? 0 : 2;
    if (strcmp(dialect, "ios18") && strcmp(dialect, "ios16")) {
        fprintf(stderr, "anetrain mil: --dialect must be ios18 or ios16\n");
        return 2;
    }
    if (!run && npos == 0) {
        fprintf(stderr, "anetrain mil: give a KERNEL name or --run FILE.mil; see --help\n");
        return 2;
    }
    if (seq < 1) {
        fprintf(stderr, "anetrain mil: --seq must be positive\n");
        return 2;
    }
    int ok = run ? run_file(run, weights, seed, budget) == 0 : print_kernel(pos[0], model, seq, dialect, blobs) == 0;
    if (!ok) fprintf(stderr, "anetrain mil: %s\n", err_msg());
    return ok ? 0 : 1;
}
