// fuzz_safetensors: one .safetensors file: open (every header check), then
// read each tensor as fp32.
// seeds: hf/model.safetensors halves.safetensors
#include "fuzz.h"
#include "model/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    safetensors_detect(data, size);
    SafeTensorsFile f;
    if (!fuzz_ok(safetensors_open(&f, fuzz_write("model.safetensors", data, size)), "safetensors_open")) return 0;
    for (int i = 0; i < f.n; i++) {
        float *dst = malloc(f.t[i].numel * sizeof(float) + 1);
        if (dst) safetensors_read_f32(&f, &f.t[i], dst);
        free(dst);
        safetensors_find(&f, f.t[i].name);
    }
    safetensors_close(&f);
    return 0;
}
