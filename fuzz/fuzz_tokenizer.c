// fuzz_tokenizer: llama2.c tokenizer.bin at a few vocab sizes, then encode and
// decode with whatever it loaded.
// seeds: tok512.bin llama2-tokenizer.bin builtin-tokenizer.bin
#include "fuzz.h"
#include "data/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const int vocabs[] = {259, 512, 32000};
    static const char text[] = "Once upon a time, \xc3\xa9t\xc3\xa9 \xe2\x96\x81 \xf0\x9f\x98\x80 \xff\x01 <0x0A>\n";
    const char *path = fuzz_write("tokenizer.bin", data, size);
    for (size_t i = 0; i < sizeof vocabs / sizeof vocabs[0]; i++) {
        Tokenizer t;
        if (!fuzz_ok(tokenizer_init(&t, path, vocabs[i]), "tokenizer_init")) continue;
        int ids[sizeof text + 3], n = 0;
        if (tokenizer_encode(&t, text, 1, 1, ids, &n) == 0)
            for (int j = 1; j < n; j++) tokenizer_piece_printable(tokenizer_decode(&t, ids[j - 1], ids[j]));
        for (int id = -1; id <= t.vocab_size; id++) tokenizer_decode(&t, TOK_BOS, id);
        tokenizer_lookup(&t, " ", 1);
        tokenizer_free(&t);
    }
    return 0;
}
