// anetrain sample: generate text from a model, as llama2.c's `run` does.
//
// The prompt is encoded with BOS and fed through the KV cache one token at a
// time (its pieces are echoed as they are consumed, like run.c); then tokens are
// sampled until --steps positions or a BOS token. Pieces are printed as they
// come; the speed goes to stderr as `achieved tok/s: X`.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/err.h"
#include "core/timer.h"
#include "data/tokenizer.h"
#include "infer/generate.h"
#include "infer/sampler.h"
#include "model/model_file.h"

// The tokenizer must be a valid tokenizer.bin with exactly the model's vocab:
// run.c would silently read a prefix of a larger one (another model's
// tokenizer) and print garbage.
static int check_pair(const char *model_path, const char *tok_path) {
    Config cfg;
    int entries = 0;
    if (model_peek_config(model_path, &cfg) != 0) return -1;
    if (tokenizer_file_count(tok_path, &entries) != 0) return -1;
    if (entries != cfg.vocab)
        return err_set("%s: expected %d tokens (the vocab of %s), found %d%s", tok_path, cfg.vocab, model_path,
                       entries, entries > cfg.vocab ? " (a tokenizer for a different model?)" : "");
    return 0;
}

int cmd_sample(int argc, char **argv) {
    const char *model_path = NULL, *tok_path = NULL, *prompt = NULL;  // no prompt = "" (BOS only)
    float temperature = 1.0f, topp = 0.9f;
    long long seed = 0;
    int steps = 256;
    Flag flags[] = {
        {"--model", "-m", FLAG_STR, &model_path, "model: llama2.c .bin, anetrain checkpoint, or Hugging Face dir/.safetensors"},
        {"--tokenizer", "-z", FLAG_STR, &tok_path, "llama2.c tokenizer.bin (its vocab size comes from the model)"},
        {"--prompt", "-i", FLAG_STR, &prompt, "text to start from (encoded with BOS)"},
        {"--temperature", "-t", FLAG_FLOAT, &temperature, "0 = greedy argmax"},
        {"--topp", "-p", FLAG_FLOAT, &topp, "nucleus sampling mass; 1 = plain multinomial"},
        {"--seed", "-s", FLAG_LONG, &seed, "RNG seed, run.c's xorshift (0 = from the clock, printed)"},
        {"--steps", "-n", FLAG_INT, &steps, "positions to run, prompt included (<= 0 or above the model's seq_len: seq_len)"},
        {0},
    };
    int rc = args_parse(argc, argv, flags, "sample --model FILE --tokenizer FILE [flags]",
                        "Generates text from a model with a KV cache, as llama2.c's run does: the prompt (with\n"
                        "BOS) is fed first, then tokens are sampled until --steps positions or a BOS token.",
                        NULL, 0, NULL);
    if (rc > 0) return 0;
    if (rc < 0) return 2;
    if (!model_path || !tok_path) {
        fprintf(stderr, "anetrain sample: --model and --tokenizer are required; see --help\n");
        return 2;
    }
    if (!(temperature >= 0.0f)) {
        fprintf(stderr, "anetrain sample: --temperature %g must be >= 0\n", temperature);
        return 2;
    }
    if (!(topp >= 0.0f && topp <= 1.0f)) {
        fprintf(stderr, "anetrain sample: --topp %g must be in [0, 1]\n", topp);
        return 2;
    }
    if (seed < 0) {
        fprintf(stderr, "anetrain sample: --seed %lld must be >= 0\n", seed);
        return 2;
    }

    Params p;
    Tokenizer tok;
    Generator gen;
    Sampler smp;
    int *ptoks = NULL, n_ptoks = 0, ok = 0;
    int have_p = 0, have_tok = 0, have_gen = 0, have_smp = 0;
    // the tokenizer is checked against the model's header before the weights
    // are read: a wrong pair fails in milliseconds, not after loading 2 GB
    if (check_pair(model_path, tok_path) != 0) goto done;
    if (model_load(&p, model_path) != 0) goto done;
    have_p = 1;
    if (tokenizer_init(&tok, tok_path, p.cfg.vocab) != 0) goto done;
    have_tok = 1;
    if (steps <= 0 || steps > p.cfg.seq_len) steps = p.cfg.seq_len;
    if (!prompt) prompt = "";

    ptoks = malloc(sizeof(int) * (strlen(prompt) + 3));
    if (!ptoks) {
        err_set("out of memory for the prompt");
        goto done;
    }
    if (tokenizer_encode(&tok, prompt, 1, 0, ptoks, &n_ptoks) != 0) goto done;
    if (gen_init(&gen, &p, steps) != 0) goto done;
    have_gen = 1;
    if (seed == 0 && temperature != 0.0f) {
        seed = (long long)time(NULL);
        fprintf(stderr, "seed: %lld\n", seed);
    }
    if (sampler_init(&smp, p.cfg.vocab, temperature, topp, (uint64_t)seed) != 0) goto done;
    have_smp = 1;

    double start = 0.0;
    int token = ptoks[0], pos = 0;
    while (pos < steps) {
        const float *logits = gen_step(&gen, token, pos);
        if (!logits) goto done;
        // while inside the prompt the next token is forced, afterwards sampled
        int next = pos < n_ptoks - 1 ? ptoks[pos + 1] : sampler_sample(&smp, logits);
        pos++;
        if (next == TOK_BOS) break;  // BOS delimits sequences: the story is over
        const char *piece = tokenizer_decode(&tok, token, next);
        if (tokenizer_piece_printable(piece)) fputs(piece, stdout);
        fflush(stdout);
        token = next;
        if (start == 0.0) start = time_ms();  // the first step is slower: time from the second on
    }
    printf("\n");
    fflush(stdout);
    if (pos > 1) {
        double ms = time_ms() - start;
        fprintf(stderr, "achieved tok/s: %f\n", ms > 0 ? (pos - 1) / ms * 1000.0 : 0.0);
    }
    ok = 1;

done:
    if (!ok) fprintf(stderr, "anetrain sample: %s\n", err_msg());
    free(ptoks);
    if (have_smp) sampler_free(&smp);
    if (have_gen) gen_free(&gen);
    if (have_tok) tokenizer_free(&tok);
    if (have_p) params_free(&p);
    return ok ? 0 : 1;
}
