// fuzz_tokens: token files (raw uint16, anetrain ANTK, llm.c shards), checked
// against the header's vocab and a model's, then read through a Dataset.
// seeds: tokens/*
#include "fuzz.h"
#include "data/dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write("tokens.bin", data, size);
    for (int vocab = 0; vocab <= 512; vocab += 512) {
        TokenFile tf;
        if (!fuzz_ok(tokens_open(&tf, path, vocab), "tokens_open")) continue;
        tokens_format_name(tf.format);
        Dataset ds;
        int tok[8], tgt[8];
        for (int mode = 0; mode < 2; mode++)
            if (fuzz_ok(dataset_init(&ds, &tf, 0, tf.count, 8, (SampleMode)mode, 1), "dataset_init")) {
                dataset_next(&ds, tok, tgt);
                dataset_window(&ds, dataset_num_windows(&ds) - 1, tok, tgt);
            }
        tokens_close(&tf);
    }
    return 0;
}
