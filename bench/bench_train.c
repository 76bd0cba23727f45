// bench_train: time full training steps (zero grads + forward + backward +
// clip + AdamW, exactly the trainer's update with accum 1) of a preset on one
// window of random tokens, as the PyTorch peer (bench/peer_torch.py) does.
//
//   bench_train MODEL SEQ WARMUP STEPS THREADS [fp32|bf16]
//
// Prints one JSON object: per-step ms (median/min/max), tokens/s, achieved
// GFLOPS (metrics_flops_per_window over the median step), per-phase medians-
// of-sums (zero, forward, backward, optimizer, and the CPU model's own split of
// GEMM / attention / classifier / other), and peak RSS.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli/restart.h"
#include "core/err.h"
#include "core/mem.h"
#include "core/gemm.h"
#include "core/rng.h"
#include "core/threads.h"
#include "core/timer.h"
#include "cpu/model.h"
#include "model/params.h"
#include "train/metrics.h"
#include "train/optim.h"
#include "train/pipeline.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: bench_train MODEL SEQ WARMUP STEPS THREADS [fp32|bf16|fp32-recompute]\n");
        return 2;
    }
    restart_for_blas_kernels(argv);  // the kernels anetrain runs with
    const char *model = argv[1], *precision = argc > 6 ? argv[6] : "fp32";
    int seq = atoi(argv[2]), warmup = atoi(argv[3]), steps = atoi(argv[4]), threads = atoi(argv[5]);
    if (steps < 1) steps = 1;
    gemm_set_threads(threads);  // before the pipeline: it sizes per-thread scratch
    Config cfg;
    Params p;
    Pipeline pl;
    const int recompute = !strcmp(precision, "fp32-recompute");
    PipelineOptions po = {.name = "cpu", .precision = recompute ? "fp32" : precision, .recompute = recompute};
    if (config_preset(&cfg, model) != 0 || params_init(&p, &cfg) != 0 || pipeline_init(&pl, &po, &cfg, seq) != 0) {
        fprintf(stderr, "bench_train: %s\n", err_msg());
        return 1;
    }
    params_init_random(&p, 1);
    float *g = mem_alloc_big(p.n * 4), *m = mem_alloc_big(p.n * 4), *v = mem_alloc_big(p.n * 4);  // as the trainer
    int *tok = malloc(seq * sizeof(int)), *tgt = malloc(seq * sizeof(int));
    if (!g || !m || !v || !tok || !tgt) {
        fprintf(stderr, "bench_train: out of memory\n");
        return 1;
    }
    Rng r;
    rng_init(&r, 7);
    for (int t = 0; t < seq; t++) tok[t] = rng_u32(&r) % cfg.vocab, tgt[t] = rng_u32(&r) % cfg.vocab;
    TrainState st;
    memset(&st, 0, sizeof st);
    optim_defaults(&st);
    st.accum = 1;
    st.total_steps = warmup + steps;
    double *ms = malloc(sizeof(double) * steps);
    double zero = 0, fwd = 0, bwd = 0, opt = 0;
    CpuModel *cm = pl.impl;  // the cpu pipeline's model: its phase split
    CpuPhaseTimes ph0 = cm->phases;
    float loss = 0;
    double first_ms = 0;  // the very first update (a warm-up one): cold caches, first touches
    for (int i = 0; i < warmup + steps; i++) {
        if (i == warmup) ph0 = cm->phases;
        double t0 = time_ms();
        pipeline_grads_begin(&pl, g, p.n);  // as the trainer does at the start of every update
        double tz = time_ms();
        PhaseTimes before = pl.times;
        if (pl.step(&pl, &p, tok, tgt, g, 1.0f, &loss) != 0) return fprintf(stderr, "%s\n", err_msg()), 1;
        double t1 = time_ms();
        float mul;
        double norm;
        optim_prepare(&st, g, p.n, &mul, &norm);
        st.adam_t++;
        optim_adamw(&p, g, m, v, &st, optim_lr(&st, i), mul, NULL);
        double t2 = time_ms();
        if (i == 0) first_ms = t2 - t0;
        if (i >= warmup) {
            ms[i - warmup] = t2 - t0;
            zero += tz - t0;
            fwd += pl.times.forward - before.forward;
            bwd += pl.times.backward - before.backward;
            opt += t2 - t1;
        }
    }
    CpuPhaseTimes ph = cm->phases;
    qsort(ms, steps, sizeof(double), cmp_double);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double med = steps % 2 ? ms[steps / 2] : 0.5 * (ms[steps / 2 - 1] + ms[steps / 2]);
    double flops = metrics_flops_per_window(&cfg, seq);
#define PH(f) ((ph.f - ph0.f) / steps)
    printf("{\"impl\":\"anetrain\",\"model\":\"%s\",\"precision\":\"%s\",\"seq\":%d,\"threads\":%d,\"median_ms\":%.2f,"
           "\"min_ms\":%.2f,\"max_ms\":%.2f,\"tokens_per_s\":%.1f,\"gflops\":%.1f,\"zero_ms\":%.2f,\"fwd_ms\":%.2f,"
           "\"bwd_ms\":%.2f,\"optim_ms\":%.2f,\"fwd_gemm\":%.2f,\"fwd_attn\":%.2f,\"fwd_cls\":%.2f,\"fwd_other\":%.2f,"
           "\"bwd_gemm\":%.2f,\"bwd_attn\":%.2f,\"bwd_cls\":%.2f,\"bwd_other\":%.2f,\"loss\":%.4f,\"peak_rss_mb\":%.1f,"
           "\"first_ms\":%.2f,\"gemm\":\"%s\"}\n",
           model, precision, seq, threads_count(), med, ms[0], ms[steps - 1], seq / (med / 1e3), flops / (med * 1e6),
           zero / steps, fwd / steps, bwd / steps, opt / steps, PH(fwd_gemm), PH(fwd_attn), PH(fwd_cls), PH(fwd_other),
           PH(bwd_gemm), PH(bwd_attn), PH(bwd_cls), PH(bwd_other), loss, ru.ru_maxrss / 1024.0, first_ms,
           gemm_backend_name());
    pipeline_free(&pl);
    params_free(&p);
    free(g), free(m), free(v), free(tok), free(tgt), free(ms);
    return 0;
}
