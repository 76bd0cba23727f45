// anetrain eval: mean cross-entropy and perplexity of a model over a token file.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/err.h"
#include "core/timer.h"
#include "data/dataset.h"
#include "model/model_file.h"
#include "train/checkpoint.h"
#include "train/pipeline.h"

int cmd_eval(int argc, char **argv) {
    const char *model = NULL, *data = NULL, *pipeline = "cpu", *device = "sim";
    int seq = 256, windows = 0;
    const char *lora = NULL;
    Flag flags[] = {
        {"--model", "-m", FLAG_STR, &model, "weights file (llama2.c .bin or anetrain checkpoint)"},
        {"--data", "-d", FLAG_STR, &data, "token file"},
        {"--seq", NULL, FLAG_INT, &seq, "window length (capped at the model's seq_len)"},
        {"--windows", NULL, FLAG_INT, &windows, "evaluate the first N non-overlapping windows (0 = all)"},
        {"--pipeline", "-p", FLAG_STR, &pipeline, "pipeline that runs the forward pass: cpu or dynamic"},
        {"--device", NULL, FLAG_STR, &device, "device of the dynamic pipeline: sim or ane (macOS)"},
        {"--lora", NULL, FLAG_STR, &lora, "a LoRA checkpoint whose adapters are merged into --model first"},
        {0},
    };
    int rc = args_parse(argc, argv, flags, "eval --model FILE --data TOKENS [flags]",
                        "Mean loss over non-overlapping windows (every position predicts the next token).", NULL, 0,
                        NULL);
    if (rc != 0) return rc > 0 ? 0 : 2;
    if (!model || !data) {
        fprintf(stderr, "anetrain eval: --model and --data are required; see --help\n");
        return 2;
    }
    if (seq < 2 || windows < 0) {
        fprintf(stderr, "anetrain eval: --seq must be >= 2 and --windows >= 0\n");
        return 2;
    }
    Params p = {0};
    TokenFile tf = {0};
    Pipeline pl = {0};
    Dataset ds;
    int *tok = NULL, *tgt = NULL, ok = 0;
    if (ckpt_load_with_lora(&p, model, lora) != 0) goto done;
    if (seq > p.cfg.seq_len) seq = p.cfg.seq_len;
    if (tokens_open(&tf, data, p.cfg.vocab) != 0) goto done;
    if (dataset_init(&ds, &tf, 0, tf.count, seq, SAMPLE_SEQUENTIAL, 0) != 0) goto done;
    PipelineOptions po = {.name = pipeline, .device = device};
    if (pipeline_init(&pl, &po, &p.cfg, seq) != 0) goto done;
    tok = malloc(sizeof(int) * seq);
    tgt = malloc(sizeof(int) * seq);
    if (!tok || !tgt) {
        err_set("out of memory");
        goto done;
    }
    size_t n = dataset_num_windows(&ds);
    if (windows > 0 && (size_t)windows < n) n = (size_t)windows;
    double sum = 0, t0 = time_ms();
    for (size_t i = 0; i < n; i++) {
        dataset_window(&ds, i, tok, tgt);
        float l;
        if (pl.eval(&pl, &p, tok, tgt, &l) != 0) goto done;
        sum += l;
    }
    double ms = time_ms() - t0;
    double loss = sum / (double)n;
    printf("model %s, data %s\n", model, data);
    printf("windows %zu x %d tokens (%zu predictions)\n", n, seq, n * (size_t)seq);
    printf("loss %.4f\nperplexity %.3f\n", loss, exp(loss));
    fprintf(stderr, "%.0f tokens/s\n", n * (double)seq / (ms / 1e3));
    ok = 1;
done:
    if (!ok) fprintf(stderr, "anetrain eval: %s\n", err_msg());
    free(tok);
    free(tgt);
    if (pl.free) pipeline_free(&pl);
    if (tf.map.data) tokens_close(&tf);
    if (p.data) params_free(&p);
    return ok ? 0 : 1;
}
