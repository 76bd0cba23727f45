// fuzz_mil_parse: MIL text (both dialects): the parser, then the compiler's
// type and shape checks (no weight files: BLOBFILE constants fail to resolve).
// seeds: mil/*.mil
#include "fuzz.h"
#include "mil/mil_interp.h"
#include "mil/mil_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    MilGraph g;
    if (fuzz_ok(mil_parse((const char *)data, size, "fuzz.mil", &g), "mil_parse")) {
        char buf[128];
        for (int f = 0; f < g.n_funcs; f++)
            for (int i = 0; i < g.funcs[f].n_values; i++) mil_type_str(&g.funcs[f].values[i].type, buf, sizeof buf);
    }
    mil_graph_free(&g);
    char *text = fuzz_strdup(data, size);
    MilProgram *prog;
    if (fuzz_ok(mil_program_compile(text, NULL, 0, &prog), "mil_program_compile")) mil_program_free(prog);
    free(text);
    return 0;
}
