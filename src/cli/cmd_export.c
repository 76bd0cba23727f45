// anetrain export: write a model or checkpoint as a llama2.c .bin, so that
// llama2.c's run.c (and anything else that reads that format) can use it, or
// (--format hf) as a Hugging Face directory (config.json + model.safetensors).
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/err.h"
#include "core/io.h"
#include "model/llama2c.h"
#include "model/model_file.h"
#include "model/params.h"
#include "model/peft.h"
#include "model/safetensors.h"
#include "train/checkpoint.h"

// llama2.c has no residual scale; x += a*(W y) is x += (a*W) y, so a scale is
// folded into the two branch output projections (wo, w2). Exact up to fp32
// rounding of the products.
static void fold_res_scale(Params *p) {
    float a = p->cfg.res_scale;
    const char *names[2] = {"wo", "w2"};
    for (int i = 0; i < 2; i++) {
        const TensorDesc *d = params_find(p, names[i]);
        float *w = p->data + d->offset;
        for (size_t j = 0; j < d->numel; j++) w[j] *= a;
    }
    p->cfg.res_scale = 1.0f;
}

// The adapters of a LoRA checkpoint, as PEFT writes them.
static int export_adapters(const char *ckpt, const char *dir) {
    Params a = {0};
    TrainState st;
    int rc = io_check_input(ckpt, 1) == 0 && ckpt_load(ckpt, &a, NULL, NULL, &st) == 0 ? 0 : -1;
    if (rc == 0 && st.lora.rank <= 0) rc = err_set("%s: not a LoRA checkpoint (--adapters needs one)", ckpt);
    if (rc == 0) rc = peft_save(&a, &st.lora, st.lora_base, dir);
    if (rc != 0) {
        fprintf(stderr, "anetrain export: %s\n", err_msg());
        if (a.data) params_free(&a);
        return 1;
    }
    printf("wrote %s/adapter_model.safetensors + adapter_config.json (PEFT LoRA, rank %d, %zu weights) from %s\n", dir,
           st.lora.rank, a.n, ckpt);
    params_free(&a);
    return 0;
}

int cmd_export(int argc, char **argv) {
    const char *model = NULL, *out = NULL, *format = "llama2c", *adapters = NULL;
    int version = 0, merge = 0;
    Flag flags[] = {
        {"--model", "-m", FLAG_STR, &model, "anetrain checkpoint, original (maderix/ANE) checkpoint, or llama2.c .bin"},
        {"--out", "-o", FLAG_STR, &out, "llama2.c file to write (atomically); for hf, the directory"},
        {"--format", "-f", FLAG_STR, &format, "llama2c, or hf (config.json + model.safetensors, F32)"},
        {"--version", NULL, FLAG_INT, &version, "llama2.c format: 0 = legacy (what run.c reads), 1 = \"ak42\" header"},
        {"--merge", NULL, FLAG_BOOL, &merge, "a LoRA checkpoint: write its base with the adapters merged in"},
        {"--adapters", NULL, FLAG_STR, &adapters,
         "a LoRA checkpoint: write only its adapters to this directory, as PEFT does (instead of -o)"},
        {0},
    };
    int rc = args_parse(argc, argv, flags, "export --model FILE -o OUT.bin [--version 0|1] | --format hf -o DIR",
                        "Writes the weights of FILE as a llama2.c model. FILE is detected by its first bytes: an\n"
                        "anetrain checkpoint (\"ANETCKPT\"), an original ANE-training checkpoint (magic 0x424C5A54,\n"
                        "v2 or v4), or a llama2.c .bin (v0 or v1). Optimizer state is not exported. A residual scale\n"
                        "(v4 checkpoints) is folded into wo and w2, since llama2.c has none.\n"
                        "--format hf writes DIR/config.json + DIR/model.safetensors for Hugging Face tools; llama2.c\n"
                        "models (interleaved RoPE) get wq/wk rows permuted to HF's rotate_half layout.",
                        NULL, 0, NULL);
    if (rc > 0) return 0;
    if (rc < 0) return 2;
    if (model && adapters) return export_adapters(model, adapters);
    if (!model || !out) {
        fprintf(stderr, "anetrain export: expected --model FILE and -o OUT.bin; see --help\n");
        return 2;
    }
    int hf = !strcmp(format, "hf");
    if (!hf && strcmp(format, "llama2c") != 0) {
        fprintf(stderr, "anetrain export: --format must be llama2c or hf, found %s\n", format);
        return 2;
    }
    if (version != 0 && version != 1) {
        fprintf(stderr, "anetrain export: --version must be 0 or 1, found %d\n", version);
        return 2;
    }

    // both paths are checked before the model is read: a fifo must not hang
    // the checkpoint probes, and a bad -o must fail before a 2 GB load
    if (io_check_input(model, 1) != 0 || (!hf && io_check_output(out) != 0)) {
        fprintf(stderr, "anetrain export: %s\n", err_msg());
        return 1;
    }
    Params p;
    TrainState st;
    const char *kind;
    int orig_version = 0;
    if (ckpt_is_checkpoint(model)) {
        kind = "anetrain checkpoint";
        rc = ckpt_load(model, &p, NULL, NULL, &st);
        if (rc == 0 && st.lora.rank > 0) {  // adapters: merged into their base, when asked
            params_free(&p);
            kind = "LoRA checkpoint, merged into its base";
            rc = merge ? ckpt_load_model(model, &p)
                       : err_set("%s is a LoRA checkpoint: --merge writes its base with the adapters merged in, "
                                 "--adapters DIR the adapters alone", model);
        }
    } else if (ckpt_is_original(model)) {
        kind = "original ANE-training checkpoint";
        rc = ckpt_read_original_header(model, &p.cfg, NULL, &orig_version);
        if (rc == 0) rc = ckpt_import_original(model, &p, NULL, NULL, &st);
    } else {
        kind = "model file";  // llama2.c .bin or Hugging Face safetensors
        rc = model_load(&p, model);  // refuses non-finite weights itself
    }
    // checkpoints are read directly (the note below needs their version): check them here
    if (rc == 0 && strcmp(kind, "model file") != 0 && params_check_finite(&p, model) != 0) {
        params_free(&p);
        rc = -1;
    }
    if (rc != 0) {
        fprintf(stderr, "anetrain export: %s\n", err_msg());
        return 1;
    }
    if (orig_version == 2)
        fprintf(stderr,
                "anetrain export: note: %s is a static-pipeline (v2) checkpoint, trained without RoPE; llama2.c "
                "applies RoPE, so the exported model computes a different function\n",
                model);
    if (p.cfg.res_scale != 1.0f) {
        fprintf(stderr, "anetrain export: note: folding residual scale %g into wo and w2\n", p.cfg.res_scale);
        fold_res_scale(&p);
    }
    if ((hf ? safetensors_save(&p, out) : llama2c_save(&p, out, version)) != 0) {
        fprintf(stderr, "anetrain export: %s\n", err_msg());
        params_free(&p);
        return 1;
    }
    if (hf)
        printf("wrote %s/config.json + model.safetensors (Hugging Face, F32, %zu params, %.1f MB) from %s (%s)\n", out,
               p.n, p.n * 4.0 / 1e6, model, kind);
    else
        printf("wrote %s (llama2.c v%d, %zu params, %.1f MB) from %s (%s)\n", out, version, p.n, p.n * 4.0 / 1e6,
               model, kind);
    params_free(&p);
    return 0;
}
