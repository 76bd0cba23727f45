// fuzz_model_file: model_load, which tells every model format from its bytes
// (llama2.c v0/v1, anetrain and original checkpoints, safetensors under any name).
// seeds: micro-v0.bin micro-v1.bin ckpt.bin orig-v2.bin orig-v4.bin hf/model.safetensors halves.safetensors
#include "fuzz.h"
#include "model/model_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Params p;
    if (fuzz_ok(model_load(&p, fuzz_write("model.bin", data, size)), "model_load")) params_free(&p);
    return 0;
}
