// commands: one function per subcommand of `anetrain`. Each takes argv with
// argv[0] = the subcommand name, prints its own errors, and returns the exit code.
#pragma once

int cmd_info(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_mil(int argc, char **argv);
int cmd_dash(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_bench(int argc, char **argv);
