// anetrain info: what a model file, a preset name or an HF config.json describes.
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/err.h"
#include "core/io.h"
#include "model/config.h"
#include "model/llama2c.h"
#include "model/params.h"
#include "model/safetensors.h"
#include "train/checkpoint.h"

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

// One row per tensor family: per-layer shape and total elements.
static void print_tensors(const Config *c) {
    TensorDesc t[PARAMS_MAX_TENSORS];
    size_t total;
    int n = params_layout(c, t, &total);
    printf("\n%-10s %6s  %-14s %14s\n", "tensor", "layers", "shape", "numel");
    for (int i = 0; i < n; i++) {
        char shape[32], layers[16];
        if (t[i].rows == 1) snprintf(shape, sizeof shape, "%d", t[i].cols);
        else snprintf(shape, sizeof shape, "%d x %d", t[i].rows, t[i].cols);
        if (t[i].per_layer) snprintf(layers, sizeof layers, "%d", c->n_layers);
        else snprintf(layers, sizeof layers, "-");
        printf("%-10s %6s  %-14s %14zu\n", t[i].name, layers, shape, t[i].numel);
    }
    if (c->tied) printf("%-10s %6s  %-14s %14s\n", "wcls", "-", "(= embed)", "tied");
    printf("%-10s %6s  %-14s %14zu\n", "total", "", "", total);
}

static void print_model(const char *what, const Config *c) {
    printf("format:  %s\n", what);
    config_print(c, stdout);
    size_t np = config_num_params(c);
    printf("params:  %zu (%.2fM), %.1f MB as fp32\n", np, np / 1e6, np * 4.0 / 1e6);
    print_tensors(c);
}

// Hugging Face: a directory, a .safetensors file or an index (beside config.json).
static int info_safetensors(const char *path) {
    Params p;
    if (safetensors_load(&p, path) != 0) return -1;
    printf("file:    %s\n", path);
    print_model(ends_with(path, ".index.json") ? "Hugging Face safetensors, sharded (index + shards, config.json "
                                                 "beside them)"
                                               : "Hugging Face safetensors (config.json beside it)",
                &p.cfg);
    params_free(&p);
    return 0;
}

// Checkpoints: the header, and (unless --no-verify) both CRCs, streamed.
static int info_checkpoint(const char *path, long long bytes, int verify) {
    Config cfg;
    TrainState ts;
    int has_m = 1, over = 0;
    int ours = ckpt_is_checkpoint(path);
    if ((ours ? ckpt_read_header(path, &cfg, &ts, &has_m) : ckpt_read_original_header(path, &cfg, &ts, &over)) != 0)
        return -1;
    if (ours && verify && ckpt_verify(path) != 0) return -1;
    printf("file:    %s (%lld bytes, %.2f MB)\n", path, bytes, bytes / 1e6);
    char what[160];
    if (ours && ts.lora.rank > 0) {
        size_t n = 0;
        lora_floats(&cfg, &ts.lora, &n);
        snprintf(what, sizeof what, "anetrain LoRA checkpoint v1 (%zu adapter weights%s over the frozen model below)",
                 n, has_m ? " + Adam m, v" : "");
    } else if (ours) {
        snprintf(what, sizeof what, "anetrain checkpoint v1 (%s)", has_m ? "weights + Adam m, v" : "weights");
    }
    else snprintf(what, sizeof what, "original ANE-training checkpoint v%d (weights + Adam m, v)", over);
    print_model(what, &cfg);
    if (ours && ts.lora.rank > 0) {
        char targets[64];
        lora_format_targets(ts.lora.targets, targets, sizeof targets);
        printf("\nlora:    rank %d, alpha %g, targets %s%s, dropout %g; base %s (%llu bytes, fingerprint %016llx)\n",
               ts.lora.rank, ts.lora.alpha, targets, ts.lora.train_norms ? ", norms" : "", ts.lora.dropout,
               ts.lora_base, (unsigned long long)ts.lora_base_bytes, (unsigned long long)ts.lora_base_fp);
    }
    printf("\nstate:   step %lld of %lld, adam_t %lld, tokens %lld, lr %g, last loss %.4f\n", (long long)ts.step,
           (long long)ts.total_steps, (long long)ts.adam_t, (long long)ts.tokens_seen, ts.lr, ts.last_loss);
    if (ours && ts.id.present)
        printf("run:     data %s, validation %s, seq %d%s%s, pipeline %s%s%s, precision %s, seed %llu\n",
               ts.id.data[0] ? ts.id.data : "(built-in corpus)", ts.id.val_data[0] ? ts.id.val_data : "(held-out tail)",
               ts.id.seq, ts.id.sequential ? ", sequential" : "", ts.id.compact_vocab ? ", compact vocab" : "",
               ts.id.pipeline, ts.id.device[0] ? " on " : "", ts.id.device, ts.id.precision,
               (unsigned long long)ts.seed);
    else if (ours)
        printf("run:     not recorded (written before checkpoints recorded their run)\n");
    if (!ours) printf("integrity: exact size checked (the original format has no checksums)\n");
    else if (verify) printf("integrity: header and body CRC-32 verified, trailer DONE\n");
    else printf("integrity: header CRC-32 verified; body NOT verified (--no-verify)\n");
    return 0;
}

int cmd_info(int argc, char **argv) {
    int no_verify = 0;
    Flag flags[] = {
        {"--no-verify", NULL, FLAG_BOOL, &no_verify, "checkpoints: skip reading the body to check its CRC-32"},
        {0},
    };
    const char *pos[1];
    int n_pos = 0;
    int rc = args_parse(argc, argv, flags, "info FILE|PRESET|config.json",
                        "Prints what a model describes: format, architecture, parameter count and tensor table.\n"
                        "FILE is a llama2.c model (.bin, v0 or v1) or a checkpoint (anetrain, or the original\n"
                        "trainer's v2/v4) or Hugging Face safetensors (a directory, a .safetensors file or a\n"
                        "model.safetensors.index.json, with config.json beside it); PRESET one of the built-in model\n"
                        "names; config.json a Hugging Face config (llama or qwen3). An anetrain checkpoint's header\n"
                        "and body CRC-32s are both verified (the body is streamed; --no-verify skips it).",
                        pos, 1, &n_pos);
    if (rc > 0) return 0;
    if (rc < 0) return 2;
    if (n_pos != 1) {
        fprintf(stderr, "anetrain info: expected one FILE, PRESET or config.json; see --help\n");
        return 2;
    }
    const char *path = pos[0];
    Config cfg;
    struct stat st;
    if (stat(path, &st) != 0) {
        // not a file: maybe a preset name
        if (config_preset(&cfg, path) == 0) {
            print_model("built-in preset", &cfg);
            return 0;
        }
        fprintf(stderr, "anetrain info: %s: no such file, and not a preset (presets: %s)\n", path,
                config_preset_names());
        return 1;
    }
    // a fifo, a device, a socket: one line, before any reader could block on it
    if (io_check_input(path, 1) != 0) goto fail;

    // the index is JSON too, so it is matched before the bare config.json
    if (S_ISDIR(st.st_mode) || ends_with(path, ".safetensors") || ends_with(path, ".safetensors.index.json")) {
        if (info_safetensors(path) != 0) goto fail;
        return 0;
    }
    if (ends_with(path, ".json")) {
        if (config_from_hf_json(&cfg, path) != 0) goto fail;
        printf("file:    %s\n", path);
        print_model("Hugging Face config.json", &cfg);
        return 0;
    }
    if (ckpt_is_checkpoint(path) || ckpt_is_original(path)) {
        if (info_checkpoint(path, (long long)st.st_size, !no_verify) != 0) goto fail;
        return 0;
    }
    MappedFile m;  // safetensors under another name (as model_load detects it)
    if (io_map(&m, path) != 0) goto fail;
    int is_st = safetensors_detect(m.data, m.size);
    io_unmap(&m);
    if (is_st) {
        if (info_safetensors(path) != 0) goto fail;
        return 0;
    }
    int version = 0;
    if (llama2c_read_header(&cfg, &version, path) != 0) goto fail;
    printf("file:    %s (%lld bytes, %.2f MB)\n", path, (long long)st.st_size, st.st_size / 1e6);
    print_model(version == 0 ? "llama2.c v0 (legacy export, fp32)" : "llama2.c v1 (fp32)", &cfg);
    return 0;

fail:
    fprintf(stderr, "anetrain info: %s\n", err_msg());
    return 1;
}
