// fuzz_hf_tokenizer: the Hugging Face tokenizer loaders — a tokenizer.json
// (an input starting with '{'), or a bundle of vocab.json, merges.txt and
// tokenizer_config.json (fuzz.h) — then encode and decode with whatever loaded.
// Every input is also encoded as text by a small tokenizer loaded once (so
// UTF-8 repair, NFC, the split regex and BPE see arbitrary bytes). Needs a
// build with PCRE2, utf8proc and cJSON; without them it only checks that the
// loaders refuse cleanly.
// seeds: hf-tokenizer/*
#include "fuzz.h"
#include "data/hf_tokenizer.h"

static void encode_decode(HfTokenizer *t, const uint8_t *text, size_t n) {
    HfIds v = {0};
    if (hf_tokenizer_encode(t, (const char *)text, n, &v) == 0) {
        size_t total = 0, len;
        for (size_t i = 0; i < v.n; i++) {
            if (!hf_tokenizer_token(t, v.ids[i], &len)) fuzz_die("encode gave an unknown id", "");
            total += len;
        }
        if (n && total == 0) fuzz_die("encode lost the text", "");
    }
    free(v.ids);
}

// The tiny tokenizer cut from Qwen3's (tests/fixtures/hf_tiny; make fuzz runs
// from the project root; $FUZZ_HF_TINY names another), or NULL.
static HfTokenizer *tiny(void) {
    static HfTokenizer *t;
    static int tried;
    if (!tried) {
        tried = 1;
        const char *p = getenv("FUZZ_HF_TINY");
        if (!p) p = "tests/fixtures/hf_tiny/tokenizer.json";
        if (hf_tokenizer_open(&t, p) != 0) t = NULL;
    }
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    HfTokenizer *t = NULL;
    static const char text[] = "Once upon a time, caf\xc3\xa9 cafe\xcc\x81 \xe6\x88\x91 \xf0\x9f\x98\x80 \xff\xfe"
                               " <|endoftext|>x\r\n  1234 it's\n";
    if (size > 0 && data[0] == '{') {
        if (fuzz_ok(hf_tokenizer_from_json(&t, (const char *)data, size, "fuzz.json"), "hf_tokenizer_from_json"))
            encode_decode(t, (const uint8_t *)text, sizeof text - 1);
    } else {
        FuzzPart p[4];
        int n = fuzz_split(data, size, p, 4);
        if (n >= 2 && fuzz_ok(hf_tokenizer_from_vocab_merges(&t, (const char *)p[0].data, p[0].size,
                                                             (const char *)p[1].data, p[1].size,
                                                             n >= 3 ? (const char *)p[2].data : NULL,
                                                             n >= 3 ? p[2].size : 0, "fuzz"),
                              "hf_tokenizer_from_vocab_merges"))
            encode_decode(t, n >= 4 ? p[3].data : (const uint8_t *)text, n >= 4 ? p[3].size : sizeof text - 1);
    }
    hf_tokenizer_free(t);
    if (tiny()) encode_decode(tiny(), data, size);
    return 0;
}
