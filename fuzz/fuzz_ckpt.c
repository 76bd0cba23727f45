// fuzz_ckpt: anetrain checkpoints. Each input is loaded as it is, then again
// with both CRC-32s recomputed, so that mutations also reach the checks behind them.
// seeds: ckpt.bin ckpt-lora.bin
#include "fuzz.h"
#include "train/checkpoint.h"

static void load(const char *path) {
    Config cfg;
    TrainState st;
    int moments;
    ckpt_is_checkpoint(path);
    if (ckpt_read_header(path, &cfg, &st, &moments) == 0) ckpt_check_config(path, &cfg);
    Params p;
    float *m, *v;
    if (fuzz_ok(ckpt_load(path, &p, &m, &v, &st), "ckpt_load")) params_free(&p), free(m), free(v);
}

static void put_le32(uint8_t *b, uint32_t x) {
    for (int i = 0; i < 4; i++) b[i] = (uint8_t)(x >> (8 * i));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    load(fuzz_write("ckpt.bin", data, size));
    if (size < CKPT_HEADER_BYTES) return 0;
    uint8_t *b = malloc(size);
    if (!b) return 0;
    memcpy(b, data, size);
    put_le32(b + CKPT_HEADER_BYTES - 4, crc32_update(0, b, CKPT_HEADER_BYTES - 4));
    if (size >= CKPT_HEADER_BYTES + 8)
        put_le32(b + size - 8, crc32_update(0, b + CKPT_HEADER_BYTES, size - CKPT_HEADER_BYTES - 8));
    load(fuzz_write("ckpt.bin", b, size));
    free(b);
    return 0;
}
