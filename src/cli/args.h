// args: a small declarative flag parser shared by every subcommand.
//
//   Flag flags[] = {
//       {"--steps", "-n", FLAG_INT, &steps, "training steps"},
//       ...
//       {0}
//   };
//   if (args_parse(argc, argv, flags, "train", "Train a model.") != 0) return 2;
//
// --help / -h prints every flag with its current value as default and returns 1
// (callers exit 0). A bad flag or value prints one error line and returns -1.
#pragma once

typedef enum { FLAG_INT, FLAG_LONG, FLAG_FLOAT, FLAG_STR, FLAG_BOOL } FlagType;

typedef struct {
    const char *name;   // "--steps"
    const char *alias;  // "-n" or NULL
    FlagType type;
    void *ptr;          // int*, long long*, float*, const char**, int* (bool)
    const char *help;
} Flag;

// Parses argv[1..argc) (argv[0] is the subcommand name). Positional arguments
// are collected into positional[] (up to max_pos) when positional is non-NULL;
// otherwise they are an error. Returns 0 ok, 1 help printed, -1 error printed.
int args_parse(int argc, char **argv, const Flag *flags, const char *usage, const char *about,
               const char **positional, int max_pos, int *n_pos);
void args_usage(const Flag *flags, const char *usage, const char *about);
// 1 if argv holds the flag (long name or alias, with or without "=value").
int args_given(int argc, char **argv, const char *name, const char *alias);
