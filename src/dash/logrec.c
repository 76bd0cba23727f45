// logrec: a log line -> LogRecord, with cJSON (see logrec.h).
#include "dash/logrec.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"

#ifdef USE_CJSON
#include <cjson/cJSON.h>

int logrec_available(void) { return 1; }

static const struct {
    const char *name;
    LogType type;
} TYPES[] = {
    {"start", LOG_START}, {"change", LOG_CHANGE}, {"step", LOG_STEP},       {"skip", LOG_SKIP},
    {"eval", LOG_EVAL},   {"checkpoint", LOG_CHECKPOINT}, {"note", LOG_NOTE}, {"report", LOG_REPORT},
    {"restart", LOG_RESTART}, {"sample", LOG_SAMPLE},
};

// Copies at most cap-1 bytes, never ending inside a UTF-8 sequence.
static void copy_cut(char *dst, size_t cap, const char *src) {
    size_t n = strlen(src);
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80) n--;
    }
    memcpy(dst, src, n);
    dst[n] = 0;
}

static double num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

// Counts are integers in the schema; anything else (null, 1e300, a string) is -1.
static long long count(const cJSON *o, const char *key) {
    double d = num(o, key);
    return isfinite(d) && fabs(d) < 9e15 ? (long long)d : -1;
}

static void str(const cJSON *o, const char *key, char *dst, size_t cap) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    copy_cut(dst, cap, cJSON_IsString(v) && v->valuestring ? v->valuestring : "");
}

static void parse_start(LogStart *s, const cJSON *o) {
    s->v = (int)count(o, "v");
    str(o, "model", s->model, sizeof s->model);
    str(o, "pipeline", s->pipeline, sizeof s->pipeline);
    str(o, "device", s->device, sizeof s->device);
    str(o, "precision", s->precision, sizeof s->precision);
    str(o, "gemm", s->gemm, sizeof s->gemm);
    str(o, "ckpt", s->ckpt, sizeof s->ckpt);
    s->dim = count(o, "dim"), s->hidden = count(o, "hidden"), s->layers = count(o, "layers");
    s->heads = count(o, "heads"), s->kv_heads = count(o, "kv_heads"), s->head_dim = count(o, "head_dim");
    s->vocab = count(o, "vocab"), s->params = count(o, "params"), s->seq = count(o, "seq");
    s->kernels = count(o, "kernels"), s->accum = count(o, "accum"), s->steps = count(o, "steps");
    s->warmup = count(o, "warmup"), s->resumed_at = count(o, "resumed_at");
    s->lr = num(o, "lr"), s->min_lr_frac = num(o, "min_lr_frac"), s->clip = num(o, "clip");
    s->tokens_per_update = num(o, "tokens_per_update"), s->flops_per_update = num(o, "flops_per_update");
    // the schema leaves the peak optional; either unit is accepted
    s->peak_gflops = num(o, "peak_gflops");
    if (isnan(s->peak_gflops)) s->peak_gflops = num(o, "peak_tflops") * 1e3;
}

static void parse_nums(LogNums *n, const cJSON *o) {
    n->step = count(o, "step");
    n->loss = num(o, "loss"), n->lr = num(o, "lr"), n->ms = num(o, "ms");
    n->tokens_per_s = num(o, "tokens_per_s"), n->grad_norm = num(o, "grad_norm");
    n->loss_scale = num(o, "loss_scale"), n->rss_mb = num(o, "rss_mb");
    n->t_data = num(o, "t_data"), n->t_fwd = num(o, "t_fwd"), n->t_bwd = num(o, "t_bwd");
    n->t_optim = num(o, "t_optim"), n->t_device = num(o, "t_device"), n->t_staging = num(o, "t_staging");
    n->t_cpu_ops = num(o, "t_cpu_ops"), n->t_dw_wait = num(o, "t_dw_wait");
    n->val_loss = num(o, "val_loss"), n->val_ppl = num(o, "val_ppl");
    n->best = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "best"));
    n->wall_ms = num(o, "wall_ms"), n->compile_ms = num(o, "compile_ms"), n->train_ms = num(o, "train_ms");
    n->ms_per_step = num(o, "ms_per_step"), n->gflops = num(o, "gflops"), n->steps = count(o, "steps");
}

// The one line of text the logs panel shows for records that carry words.
static void parse_text(LogRecord *r, const cJSON *o) {
    char a[LOGREC_SHORT], b[LOGREC_SHORT], c[LOGREC_SHORT];
    switch (r->type) {
    case LOG_NOTE: str(o, "text", r->text, sizeof r->text); break;
    case LOG_SKIP: str(o, "why", r->text, sizeof r->text); break;
    case LOG_CHECKPOINT: str(o, "path", r->text, sizeof r->text); break;
    case LOG_RESTART: str(o, "why", r->text, sizeof r->text); break;
    case LOG_SAMPLE:
        str(o, "prompt", r->prompt, sizeof r->prompt);
        str(o, "text", r->text, sizeof r->text);
        break;
    case LOG_CHANGE:
        str(o, "what", a, sizeof a), str(o, "from", b, sizeof b), str(o, "to", c, sizeof c);
        snprintf(r->text, sizeof r->text, "%s: %s -> %s", a, b, c);
        break;
    default: break;
    }
}

int logrec_parse(LogRecord *r, const char *line, long len) {
    memset(r, 0, sizeof *r);
    if (len < 0) len = (long)strlen(line);
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithLengthOpts(line, (size_t)len, &end, 0);
    if (!o) return err_set("log line: expected a JSON object, found invalid JSON");
    // cJSON stops after the value; a line is one record and nothing else
    while (end && end < line + len && strchr(" \t\r", *end) && *end) end++;
    if (!end || end != line + len) {
        cJSON_Delete(o);
        return err_set("log line: expected one JSON object, found more after it");
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
    if (!cJSON_IsObject(o) || !cJSON_IsString(t) || !t->valuestring) {
        cJSON_Delete(o);
        return err_set("log line: expected a JSON object with a string \"type\"");
    }
    copy_cut(r->type_name, sizeof r->type_name, t->valuestring);
    r->type = LOG_OTHER;
    for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++)
        if (!strcmp(t->valuestring, TYPES[i].name)) r->type = TYPES[i].type;
    r->t_ms = num(o, "t_ms");
    if (r->type == LOG_START) parse_start(&r->start, o);
    parse_nums(&r->n, o);
    parse_text(r, o);
    cJSON_Delete(o);
    return 0;
}

#else

int logrec_available(void) { return 0; }

int logrec_parse(LogRecord *r, const char *line, long len) {
    (void)line, (void)len;
    memset(r, 0, sizeof *r);
    return err_set("reading logs needs cJSON: this anetrain was built without it "
                   "(apt-get install libcjson-dev, or brew install cjson; then make)");
}

#endif
