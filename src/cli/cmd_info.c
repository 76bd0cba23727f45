// placeholder until the real command lands
#include <stdio.h>
#include "cli/commands.h"
int cmd_info(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "anetrain info: not built yet\n"); return 2; }
