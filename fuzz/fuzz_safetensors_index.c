// fuzz_safetensors_index: a sharded Hugging Face model. The input is a bundle
// (fuzz.h): config.json, model.safetensors.index.json, then the shards, written
// as shard1.safetensors, shard2.safetensors, ...; loaded by the index's path
// and as a directory.
// seeds: hf-index/*
#include "fuzz.h"
#include "model/safetensors.h"

enum { MAX_SHARDS = 4 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FuzzPart part[2 + MAX_SHARDS];
    int n = fuzz_split(data, size, part, 2 + MAX_SHARDS);
    fuzz_subdir("hf");
    static const char *const names[2 + MAX_SHARDS] = {
        "hf/config.json", "hf/model.safetensors.index.json", "hf/shard1.safetensors",
        "hf/shard2.safetensors", "hf/shard3.safetensors", "hf/shard4.safetensors"};
    for (int i = 0; i < 2 + MAX_SHARDS; i++)  // no file left over from the previous input
        if (i < n) fuzz_write(names[i], part[i].data, part[i].size);
        else unlink(fuzz_path(names[i]));
    Params p;
    if (fuzz_ok(safetensors_load(&p, fuzz_path(names[1])), "safetensors_load(index)")) params_free(&p);
    if (fuzz_ok(safetensors_load(&p, fuzz_path("hf")), "safetensors_load(dir)")) params_free(&p);
    return 0;
}
