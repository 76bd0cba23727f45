// train_sample: text from the weights being trained, every --sample-every
// updates or when asked (SIGUSR1, the dashboard's `g`), logged as `sample`
// records. Same generation code as `anetrain sample` (infer/textgen.h).
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/err.h"
#include "core/timer.h"
#include "data/builtin.h"
#include "infer/textgen.h"
#include "train/train_internal.h"

// Samples are short and cheap next to an update of any real model.
enum { SAMPLE_TOKENS = 96 };

int train_sample_init(Trainer *t) {
    const TrainOptions *o = &t->o;
    char builtin[700];
    const char *path = o->tokenizer;
    // the built-in corpus writes its tokenizer beside its data; it fits a
    // model of the built-in vocab only (a bigger model trained on it has no
    // tokenizer that can decode every id it may sample)
    if (!path && !o->data && t->p.cfg.vocab == BUILTIN_VOCAB) {
        snprintf(builtin, sizeof builtin, "%s/tokenizer.bin", o->out_dir);
        path = builtin;
    }
    if (!path && o->sample_every <= 0) return 0;  // SIGUSR1 then says it cannot sample
    if (!path) return err_set("--sample-every needs --tokenizer (one with the model's %d ids)", t->p.cfg.vocab);
    if (texttok_open(&t->sample_tok, path, t->p.cfg.vocab) != 0) return err_wrap("--tokenizer");
    t->have_sample_tok = 1;
    return 0;
}

void train_sample_free(Trainer *t) {
    if (t->have_sample_tok) texttok_free(&t->sample_tok);
    t->have_sample_tok = 0;
}

int train_sample(Trainer *t) {
    if (!t->have_sample_tok) {
        metrics_note(&t->mt, "a sample was asked for, but this run has no tokenizer (pass --tokenizer)");
        return 0;
    }
    const double t0 = time_ms();
    // seeded by the run's seed and the update: the same run samples the same text
    TextGenOptions go = {.prompt = t->o.sample_prompt, .max_tokens = SAMPLE_TOKENS, .temperature = 0.8f,
                         .topp = 0.9f, .seed = t->st.seed * 1000003u + (uint64_t)t->st.step + 1,
                         .ids = t->vocab_rows, .n_ids = t->n_vocab_rows};  // --compact-vocab: the trained rows
    char text[4096];
    Params merged = {0};  // LoRA: the adapted model, not its frozen base
    if (t->tp == &t->lora && lora_merge(&merged, &t->p, &t->lora, &t->st.lora) != 0) return err_wrap("sampling");
    const int rc = infer_generate_text(merged.data ? &merged : &t->p, &t->sample_tok, &go, text, sizeof text);
    if (merged.data) params_free(&merged);
    if (rc != 0) return err_wrap("sampling");
    metrics_sample(&t->mt, t->st.step, t->o.sample_prompt ? t->o.sample_prompt : "", text);
    t->mt.sample_ms += time_ms() - t0;
    return 0;
}
