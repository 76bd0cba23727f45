// fuzz_llama2c: llama2.c model files (v0 legacy, v1 "ak42"), header and full load.
// seeds: stories260K.bin stories260K-q8.bin micro-v0.bin micro-v1.bin micro-zero.bin
#include "fuzz.h"
#include "model/llama2c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write("model.bin", data, size);
    Config cfg;
    int version;
    llama2c_read_header(&cfg, &version, path);
    Params p;
    if (fuzz_ok(llama2c_load(&p, path), "llama2c_load")) params_free(&p);
    return 0;
}
