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

#include "ane/device.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "core/err.h"
#include "core/timer.h"
#include "data/texttok.h"
#include "infer/textgen.h"
#include "model/model_file.h"
#include "train/checkpoint.h"

// A tokenizer.bin must have exactly the model's vocab: run.c would silently
// read a prefix of a larger one (another model's tokenizer) and print garbage.
// A Hugging Face tokenizer's ids must fit the model's (padded) vocab.
static int check_pair(const char *model_path, const char *tok_path, const Config *cfg, const TextTok *tok) {
    if (tok->kind == TEXTTOK_HF) {
        if (tok->vocab_size > cfg->vocab)
            return err_set("%s: has ids up to %d, but the vocab of %s is %d (a tokenizer for a different model?)",
                           tok_path, tok->vocab_size - 1, model_path, cfg->vocab);
        return 0;
    }
    int entries = 0;
    if (tokenizer_file_count(tok_path, &entries) != 0) return -1;
    if (entries != cfg->vocab)
        return err_set("%s: expected %d tokens (the vocab of %s), found %d%s", tok_path, cfg->vocab, model_path,
                       entries, entries > cfg->vocab ? " (a tokenizer for a different model?)" : "");
    return 0;
}

static void print_piece(void *ctx, const char *piece) {
    (void)ctx;
    fputs(piece, stdout);
    fflush(stdout);
}

int cmd_sample(int argc, char **argv) {
    const char *model_path = NULL, *tok_path = NULL, *prompt = NULL;  // no prompt = "" (BOS only)
    float temperature = 1.0f, topp = 0.9f;
    long long seed = 0;
    int steps = 256;
    const char *lora = NULL, *device = "cpu";
    Flag flags[] = {
        {"--device", NULL, FLAG_STR, &device, "cpu, or sim / ane: the projections, FFN and classifier on that device's "
                                              "MIL kernels (baked weights, compiled once; attention over the KV cache on "
                                              "the CPU)"},
        {"--model", "-m", FLAG_STR, &model_path, "model: llama2.c .bin, anetrain checkpoint, or Hugging Face dir/.safetensors"},
        {"--tokenizer", "-z", FLAG_STR, &tok_path, "llama2.c tokenizer.bin (its vocab size comes from the model), or a "
                                                    "Hugging Face tokenizer (Qwen3): directory, tokenizer.json, ..."},
        {"--prompt", "-i", FLAG_STR, &prompt, "text to start from (encoded after BOS, or <|endoftext|> for Qwen)"},
        {"--temperature", "-t", FLAG_FLOAT, &temperature, "0 = greedy argmax"},
        {"--topp", "-p", FLAG_FLOAT, &topp, "nucleus sampling mass; 1 = plain multinomial"},
        {"--seed", "-s", FLAG_LONG, &seed, "RNG seed, run.c's xorshift (0 = from the clock, printed)"},
        {"--steps", "-n", FLAG_INT, &steps, "positions to run, prompt included (<= 0 or above the model's seq_len: seq_len)"},
        {"--lora", NULL, FLAG_STR, &lora, "a LoRA checkpoint whose adapters are merged into --model first"},
        {0},
    };
    int rc = args_parse(argc, argv, flags, "sample --model FILE --tokenizer FILE [flags]",
                        "Generates text from a model with a KV cache, as llama2.c's run does: the prompt (after\n"
                        "BOS, or <|endoftext|> for a Hugging Face tokenizer) is fed first, then tokens are sampled\n"
                        "until --steps positions or that token.",
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
    if (strcmp(device, "cpu") && strcmp(device, "sim") && strcmp(device, "ane")) {
        fprintf(stderr, "anetrain sample: --device '%s': expected cpu or a device of this build (%s)\n", device,
                device_names());
        return 2;
    }

    Params p;
    Config cfg;
    TextTok tok;
    int ok = 0, have_p = 0, have_tok = 0;
    // the tokenizer is checked against the model's header before the weights
    // are read: a wrong pair fails in milliseconds, not after loading 2 GB
    if (model_peek_config(model_path, &cfg) != 0) goto done;
    if (texttok_open(&tok, tok_path, cfg.vocab) != 0) goto done;
    have_tok = 1;
    if (check_pair(model_path, tok_path, &cfg, &tok) != 0) goto done;
    if (ckpt_load_with_lora(&p, model_path, lora) != 0) goto done;
    have_p = 1;
    if (seed == 0 && temperature != 0.0f) {
        seed = (long long)time(NULL);
        fprintf(stderr, "seed: %lld\n", seed);
    }
    double compile_ms = 0;
    TextGenOptions go = {.prompt = prompt, .max_tokens = steps, .temperature = temperature, .topp = topp,
                         .seed = (uint64_t)seed, .device = device, .compile_ms = &compile_ms};
    double start = time_ms();
    int positions = 0;
    if (infer_generate(&p, &tok, &go, print_piece, NULL, &positions) != 0) goto done;
    printf("\n");
    fflush(stdout);
    if (positions > 1) {
        double ms = time_ms() - start - compile_ms;  // the device's compile is not generation
        if (compile_ms > 0) fprintf(stderr, "compiled the %s kernels in %.0f ms\n", device, compile_ms);
        fprintf(stderr, "achieved tok/s: %f\n", ms > 0 ? positions / ms * 1000.0 : 0.0);
    }
    ok = 1;

done:
    if (!ok) fprintf(stderr, "anetrain sample: %s\n", err_msg());
    if (have_tok) texttok_free(&tok);
    if (have_p) params_free(&p);
    return ok ? 0 : 1;
}
