// bench_tokenizer: encode speed of a Hugging Face tokenizer on one text, in
// process (bench/tokenizer_speed.sh runs it beside the JavaScript reference).
//
//   bench_tokenizer TOKENIZER TEXT [PASSES]
//
// Pass 1 starts with an empty word cache (what `anetrain tokenize` does once);
// later passes find every word cached. Each pass prints wall and thread CPU
// seconds: on a loaded machine the CPU time is the single-core cost.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/err.h"
#include "core/io.h"
#include "data/hf_tokenizer.h"

static double now(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_tokenizer TOKENIZER TEXT [PASSES]\n");
        return 2;
    }
    int passes = argc > 3 ? atoi(argv[3]) : 3;
    HfTokenizer *t;
    char *text;
    size_t n;
    if (hf_tokenizer_open(&t, argv[1]) != 0 || io_read_all(argv[2], &text, &n) != 0) {
        fprintf(stderr, "bench_tokenizer: %s\n", err_msg());
        return 1;
    }
    for (int p = 1; p <= passes; p++) {
        HfIds v = {0};
        double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_THREAD_CPUTIME_ID);
        if (hf_tokenizer_encode(t, text, n, &v) != 0) {
            fprintf(stderr, "bench_tokenizer: %s\n", err_msg());
            return 1;
        }
        double w = now(CLOCK_MONOTONIC) - w0, c = now(CLOCK_THREAD_CPUTIME_ID) - c0;
        printf("c_pass %d %s tokens %zu wall %.3f s %.2f MB/s cpu %.3f s %.2f MB/s\n", p, p == 1 ? "cold" : "warm",
               v.n, w, n / 1e6 / w, c, n / 1e6 / c);
        free(v.ids);
    }
    hf_tokenizer_free(t);
    free(text);
    return 0;
}
