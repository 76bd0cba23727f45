// fuzz_ckpt_original: checkpoints of the original ANE trainer (v2 static, v4 dynamic).
// seeds: orig-v2.bin orig-v4.bin
#include "fuzz.h"
#include "train/checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write("orig.bin", data, size);
    Config cfg;
    TrainState st;
    int version;
    ckpt_is_original(path);
    ckpt_read_original_header(path, &cfg, &st, &version);
    Params p;
    float *m, *v;
    if (fuzz_ok(ckpt_import_original(path, &p, &m, &v, &st), "ckpt_import_original")) params_free(&p), free(m), free(v);
    return 0;
}
