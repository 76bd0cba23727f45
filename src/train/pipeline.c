#include "train/pipeline.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "cpu/model.h"

static int cpu_step(Pipeline *pl, const Params *p, const int *tok, const int *tgt, float *grads, float scale,
                    float *loss) {
    CpuModel *m = pl->impl;
    m->lora_training = 1;  // adapter dropout, when asked for, with this window's masks
    m->lora_window = pl->window;
    m->layer_done = pl->layer_done, m->layer_done_ctx = pl->layer_done_ctx;
    *loss = cpu_model_forward(m, p, tok, tgt);
    cpu_model_backward(m, p, grads, scale);
    m->lora_training = 0;
    pl->times.forward += m->ms_forward;
    pl->times.backward += m->ms_backward;
    return 0;
}

static void cpu_grads_begin(Pipeline *pl, float *grads, size_t n) {
    (void)grads, (void)n;
    ((CpuModel *)pl->impl)->grads_fresh = 1;
}

static int cpu_eval(Pipeline *pl, const Params *p, const int *tok, const int *tgt, float *loss) {
    CpuModel *m = pl->impl;
    *loss = cpu_model_forward(m, p, tok, tgt);
    return 0;
}

static int cpu_params_changed(Pipeline *pl, const Params *p) {
    (void)pl, (void)p;  // the cpu pipeline reads the master weights directly
    return 0;
}

static void cpu_free(Pipeline *pl) {
    cpu_model_free(pl->impl);
    free(pl->impl);
}

int pipeline_cpu_init(Pipeline *pl, const Config *cfg, int seq, const PipelineOptions *o) {
    memset(pl, 0, sizeof *pl);
    CpuPrecision prec;
    if (cpu_precision_parse(o ? o->precision : NULL, &prec) != 0) return -1;
    CpuModel *m = malloc(sizeof *m);
    if (!m) return err_set("out of memory");
    const CpuModelOptions mo = {.precision = prec, .recompute = o && o->recompute};
    if (cpu_model_init_opts(m, cfg, seq, &mo) != 0) {
        free(m);
        return -1;
    }
    if ((o && o->n_vocab_rows > 0 && cpu_model_set_vocab(m, o->vocab_rows, o->n_vocab_rows) != 0) ||
        (o && o->lora && cpu_model_set_lora(m, o->lora, o->lora_cfg, o->lora_seed) != 0)) {
        cpu_model_free(m);
        free(m);
        return -1;
    }
    pl->name = "cpu";
    pl->impl = m;
    pl->step = cpu_step;
    pl->grads_begin = cpu_grads_begin;
    pl->eval = cpu_eval;
    pl->params_changed = cpu_params_changed;
    pl->free = cpu_free;
    return 0;
}

void pipeline_grads_begin(Pipeline *pl, float *grads, size_t n) {
    if (pl->grads_begin) pl->grads_begin(pl, grads, n);
    else memset(grads, 0, n * sizeof(float));
}

const char *pipeline_names(void) { return "cpu, dynamic, static, static-ane"; }

int pipeline_init(Pipeline *pl, const PipelineOptions *o, const Config *cfg, int seq) {
    const char *name = o && o->name ? o->name : "cpu";
    if (!strcmp(name, "cpu")) return pipeline_cpu_init(pl, cfg, seq, o);
    if (!strcmp(name, "dynamic")) return pipeline_dynamic_init(pl, cfg, seq, o);
    if (!strcmp(name, "static") || !strcmp(name, "static-ane")) return pipeline_static_init(pl, cfg, seq, o);
    return err_set("unknown pipeline '%s' (available: %s)", name, pipeline_names());
}

void pipeline_free(Pipeline *pl) {
    if (pl->free) pl->free(pl);
    memset(pl, 0, sizeof *pl);
}
