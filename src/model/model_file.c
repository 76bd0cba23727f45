// model_file: pick the loader from the file's first bytes.
#include "model/model_file.h"

#include <stdint.h>
#include <string.h>

#include "core/err.h"
#include "core/io.h"
#include "model/llama2c.h"
#include "train/checkpoint.h"

#define LLAMA2C_V1_MAGIC 0x616b3432u  // "ak42", llama2.c export.py versions 1 and 2

int model_load(Params *p, const char *path) {
    memset(p, 0, sizeof *p);
    // the mapping is lazy: peeking at the magic reads one page, and io_map gives
    // the same clear errors (missing, not a regular file) as every other reader
    MappedFile m;
    if (io_map(&m, path) != 0) return -1;
    uint32_t magic = m.size >= 4 ? io_le32(m.data) : 0;
    int is_ckpt = m.size >= 8 && memcmp(m.data, CKPT_MAGIC, 8) == 0;
    io_unmap(&m);

    if (magic == LLAMA2C_V1_MAGIC) return llama2c_load(p, path);  // v1 (v2 is rejected there by version)

    // anetrain checkpoints ("ANETCKPT") and the original trainer's (0x424c5a54):
    // weights only. Neither magic reads as a plausible llama2.c v0 dim (> 65536).
    if (is_ckpt) return ckpt_load(path, p, NULL, NULL, NULL);
    if (magic == CKPT_ORIGINAL_MAGIC) return ckpt_import_original(path, p, NULL, NULL, NULL);

    // llama2.c v0 has no magic: its header is just dims, and the exact file
    // size check in llama2c_load is what tells a v0 model from anything else.
    return llama2c_load(p, path);
}
