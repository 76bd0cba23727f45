// fuzz_hf_config: Hugging Face config.json (needs a build with cJSON).
// seeds: qwen3-config.json hf/config.json
#include "fuzz.h"
#include "model/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Config cfg;
    if (fuzz_ok(config_from_hf_json(&cfg, fuzz_write("config.json", data, size)), "config_from_hf_json")) config_validate(&cfg, "fuzz");
    return 0;
}
