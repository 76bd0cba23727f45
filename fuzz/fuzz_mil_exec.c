// fuzz_mil_exec: compile and run MIL programs with BLOBFILE weights on the
// interpreter. The input is a bundle (fuzz.h): the MIL text, then one weight
// file for each distinct BLOBFILE path, in the order the text first names them.
// Programs whose values need more than MAX_ELEMS floats are compiled, not run
// (a fuzzer-made [1, 65536, 1, 65536] would only measure the machine).
// seeds: mil-exec/*
#include "fuzz.h"
#include "mil/mil_interp.h"

enum { MAX_BLOBS = 8, MAX_ELEMS = 1 << 22 };

// The distinct BLOBFILE paths of text, in order (malloc'd strings).
static int blob_paths(const char *text, char **paths, int max) {
    static const char key[] = "BLOBFILE(path=string(\"";
    int n = 0;
    for (const char *s = strstr(text, key); s && n < max; s = strstr(s + 1, key)) {
        const char *p = s + strlen(key), *e = strchr(p, '"');
        if (!e) break;
        int seen = 0;
        for (int i = 0; i < n; i++) seen |= strlen(paths[i]) == (size_t)(e - p) && !memcmp(paths[i], p, e - p);
        if (!seen) paths[n++] = fuzz_strdup((const uint8_t *)p, (size_t)(e - p));
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FuzzPart part[1 + MAX_BLOBS];
    int n = fuzz_split(data, size, part, 1 + MAX_BLOBS);
    if (n == 0) return 0;
    char *text = fuzz_strdup(part[0].data, part[0].size), *paths[MAX_BLOBS];
    int np = blob_paths(text, paths, MAX_BLOBS), nw = 0;
    MilWeightFile w[MAX_BLOBS];
    for (int i = 0; i < np && i + 1 < n; i++) w[nw++] = (MilWeightFile){paths[i], part[i + 1].data, part[i + 1].size};
    MilProgram *prog;
    if (fuzz_ok(mil_program_compile(text, w, nw, &prog), "mil_program_compile")) {
        MilIoDesc in, out;
        mil_program_io(prog, &in, &out);
        if (in.numel + out.numel + mil_program_value_elems(prog) <= MAX_ELEMS) {
            float *x = calloc(in.numel + 1, sizeof(float)), *y = calloc(out.numel + 1, sizeof(float));
            uint16_t *hx = calloc(in.numel + 1, sizeof(uint16_t)), *hy = calloc(out.numel + 1, sizeof(uint16_t));
            if (x && y && hx && hy) {
                for (size_t i = 0; i < in.numel; i++) x[i] = (float)((int)(i % 17) - 8) / 4, hx[i] = (uint16_t)(i * 40503u);
                fuzz_ok(mil_program_run(prog, hx, hy), "mil_program_run");  // any fp16 bits, NaN and inf too
                fuzz_ok(mil_program_run_f32(prog, x, y), "mil_program_run_f32");
            }
            free(x), free(y), free(hx), free(hy);
        }
        mil_program_free(prog);
    }
    for (int i = 0; i < np; i++) free(paths[i]);
    free(text);
    return 0;
}
