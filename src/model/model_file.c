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

static int has_suffix(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

int model_load(Params *p, const char *path) {
    memset(p, 0, sizeof *p);
    // Hugging Face models: a directory (config.json + model.safetensors, or an
    // index + shards), or a .safetensors file / index beside its config.json.
    // A directory without them gets safetensors_load's "not a regular file" line.
    struct stat st;
    if ((stat(path, &st) == 0 && S_ISDIR(st.st_mode)) || has_suffix(path, ".safetensors") ||
        has_suffix(path, ".safetensors.index.json"))
        return safetensors_load(p, path);
    // the mapping is lazy: peeking at the magic reads one page, and io_map gives
    // the same clear errors (missing, not a regular file) as every other reader
    MappedFile m;
    if (io_map(&m, path) != 0) return -1;
    uint32_t magic = m.size >= 4 ? io_le32(m.data) : 0;
    int is_ckpt = m.size >= 8 && memcmp(m.data, CKPT_MAGIC, 8) == 0;
    int is_safetensors = safetensors_detect(m.data, m.size);  // under another name
    io_unmap(&m);

    if (magic == LLAMA2C_V1_MAGIC) return llama2c_load(p, path);  // v1 (v2 is rejected there by version)

    // anetrain checkpoints ("ANETCKPT") and the original trainer's (0x424c5a54):
    // weights only. Neither magic reads as a plausible llama2.c v0 dim (> 65536).
    if (is_ckpt) return ckpt_load(path, p, NULL, NULL, NULL);
    if (magic == CKPT_ORIGINAL_MAGIC) return ckpt_import_original(path, p, NULL, NULL, NULL);
    if (is_safetensors) return safetensors_load(p, path);

    // llama2.c v0 has no magic: its header is just dims, and the exact file
    // size check in llama2c_load is what tells a v0 model from anything else.
    return llama2c_load(p, path);
}

int model_config(const char *name, Config *cfg) {
    if (config_preset(cfg, name) == 0) return 0;
    err_clear();
    Params p;
    if (model_load(&p, name) != 0) return -1;
    *cfg = p.cfg;
    params_free(&p);
    return 0;
}
