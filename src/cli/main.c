// anetrain: train Llama / Qwen3 transformers on the CPU or Apple's Neural Engine.
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/restart.h"
#include "core/gemm.h"

#define ANETRAIN_VERSION "0.2.0"

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *about;
} Command;

static const Command COMMANDS[] = {
    {"info", cmd_info, "print what a model file holds"},
    {"sample", cmd_sample, "generate text from a model"},
    {"train", cmd_train, "train a model (cpu, dynamic, static or static-ane pipeline; built-in corpus without --data)"},
    {"mil", cmd_mil, "print a kernel's MIL program, or run a MIL file on the sim device"},
    {"eval", cmd_eval, "mean loss and perplexity of a model over a token file"},
    {"export", cmd_export, "write a model or checkpoint as llama2.c .bin or Hugging Face safetensors"},
    {"tokenize", cmd_tokenize, "turn text files into a token file"},
    {"dash", cmd_dash, "live training dashboard: follow a --log, or run the trainer (dash -- train ...)"},
    {"bench", cmd_bench, "the seed's pipeline comparison: every pipeline on one model, one process each"},
    {"plot", cmd_plot, "draw one or more runs' logs as an SVG (loss, lr, ms/update, phases)"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: anetrain COMMAND [flags]   (anetrain COMMAND --help for its flags)\n"
               "       anetrain --version\n\ncommands:\n");
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(f, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].about);
}

int main(int argc, char **argv) {
    restart_for_blas_kernels(argv);
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        const char *core = gemm_blas_core();
        printf("anetrain %s (gemm: %s%s%s%s, cJSON: %s, MPI: %s)\n", ANETRAIN_VERSION, gemm_backend_name(),
               core ? " " : "", core ? core : "", core ? " kernels" : "",
#ifdef USE_CJSON
               "yes",
#else
               "no",
#endif
#ifdef USE_MPI
               "yes"
#else
               "no"
#endif
        );
        return 0;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) return COMMANDS[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "anetrain: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
