// model_file: pick the loader from the file's first bytes.
#include "model/model_file.h"

#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "core/err.h"
#include "core/io.h"
#include "model/llama2c.h"
#include "model/safetensors.h"
#include "train/checkpoint.h"

#define LLAMA2C_V1_MAGIC 0x616b3432u  // "ak42", llama2.c export.py versions 1 and 2

typedef enum { FMT_HF, FMT_LLAMA2C, FMT_CKPT, FMT_ORIGINAL } ModelFormat;

static int has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

// Which loader reads path. The path is checked first (io_check_input), so a
// fifo or a device is refused here and never reaches a reader that would block.
static int detect(const char *path, ModelFormat *fmt) {
    if (io_check_input(path, 1) != 0) return -1;
    // Hugging Face models: a directory (config.json + model.safetensors, or an
    // index + shards), or a .safetensors file / index beside its config.json.
    struct stat st;
    if ((stat(path, &st) == 0 && S_ISDIR(st.st_mode)) || has_suffix(path, ".safetensors") ||
        has_suffix(path, ".safetensors.index.json")) {
        *fmt = FMT_HF;
        return 0;
    }
    // the mapping is lazy: peeking at the magic reads one page
    MappedFile m;
    if (io_map(&m, path) != 0) return -1;
    uint32_t magic = m.size >= 4 ? io_le32(m.data) : 0;
    int is_ckpt = m.size >= 8 && memcmp(m.data, CKPT_MAGIC, 8) == 0;
    int is_safetensors = safetensors_detect(m.data, m.size);  // under another name
    io_unmap(&m);
    // anetrain checkpoints ("ANETCKPT") and the original trainer's (0x424c5a54).
    // Neither magic reads as a plausible llama2.c v0 dim (> 65536). llama2.c v0
    // has no magic at all: the exact size check in llama2c_load tells it from
    // anything else.
    *fmt = magic == LLAMA2C_V1_MAGIC ? FMT_LLAMA2C
           : is_ckpt                 ? FMT_CKPT
           : magic == CKPT_ORIGINAL_MAGIC ? FMT_ORIGINAL
           : is_safetensors          ? FMT_HF
                                     : FMT_LLAMA2C;
    return 0;
}

int model_load(Params *p, const char *path) {
    memset(p, 0, sizeof *p);
    ModelFormat fmt;
    if (detect(path, &fmt) != 0) return -1;
    int rc;
    switch (fmt) {
    case FMT_HF: rc = safetensors_load(p, path); break;
    case FMT_CKPT: rc = ckpt_load_model(path, p); break;  // weights only (a LoRA checkpoint's merged)
    case FMT_ORIGINAL: rc = ckpt_import_original(path, p, NULL, NULL, NULL); break;
    default: rc = llama2c_load(p, path); break;  // v0, or v1 (v2 is rejected there by version)
    }
    if (rc != 0) return -1;
    if (params_check_finite(p, path) != 0) {
        params_free(p);
        return -1;
    }
    return 0;
}

// The config.json beside a Hugging Face path (a directory, or a file in one).
static int hf_config(const char *path, Config *cfg) {
    char dir[4096], cfg_path[4200];
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) snprintf(dir, sizeof dir, "%s", path);
    else {
        const char *slash = strrchr(path, '/');
        if (!slash) snprintf(dir, sizeof dir, ".");
        else if (slash == path) snprintf(dir, sizeof dir, "/");
        else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    }
    snprintf(cfg_path, sizeof cfg_path, "%s/config.json", dir);
    return config_from_hf_json(cfg, cfg_path);
}

int model_peek_config(const char *path, Config *cfg) {
    ModelFormat fmt;
    if (detect(path, &fmt) != 0) return -1;
    switch (fmt) {
    case FMT_HF: return hf_config(path, cfg);
    case FMT_CKPT: return ckpt_read_header(path, cfg, NULL, NULL);
    case FMT_ORIGINAL: return ckpt_read_original_header(path, cfg, NULL, NULL);
    default: return llama2c_read_header(cfg, NULL, path);
    }
}

int model_config(const char *name, Config *cfg) {
    if (config_preset(cfg, name) == 0) return 0;
    err_clear();
    return model_peek_config(name, cfg);
}
