// dnnl_matmul: what oneDNN's matmul does on this CPU, fp32 and bf16 inputs
// (fp32 accumulate and output), on stories110m's largest GEMM shapes — the
// measurement behind the choice of bf16 GEMM backend. Optional: built by
// bench/run.sh only when libdnnl-dev is installed.
//   dnnl_matmul [REPS]   (threads: OMP_NUM_THREADS)
#include <dnnl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

#define CHECK(x) do { dnnl_status_t st_ = (x); if (st_ != dnnl_success) { \
    fprintf(stderr, "%s failed: status %d\n", #x, (int)st_); exit(1); } } while (0)

static void run(dnnl_engine_t eng, dnnl_stream_t s, int M, int N, int K, dnnl_data_type_t dt, const char *what,
                int reps) {
    dnnl_memory_desc_t a_md, b_md, c_md;
    dnnl_dims_t ad = {M, K}, bd = {K, N}, cd = {M, N};
    CHECK(dnnl_memory_desc_init_by_tag(&a_md, 2, ad, dt, dnnl_ab));
    CHECK(dnnl_memory_desc_init_by_tag(&b_md, 2, bd, dt, dnnl_ab));
    CHECK(dnnl_memory_desc_init_by_tag(&c_md, 2, cd, dnnl_f32, dnnl_ab));
    dnnl_matmul_desc_t md;
    CHECK(dnnl_matmul_desc_init(&md, &a_md, &b_md, NULL, &c_md));
    dnnl_primitive_desc_t pd;
    if (dnnl_primitive_desc_create(&pd, &md, NULL, eng, NULL) != dnnl_success) {
        printf("  %-4s %6d %6d %6d   not supported on this CPU\n", what, M, N, K);
        return;
    }
    const char *impl = "?";
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    dnnl_primitive_t p;
    CHECK(dnnl_primitive_create(&p, pd));
    dnnl_memory_t am, bm, cm;
    CHECK(dnnl_memory_create(&am, &a_md, eng, DNNL_MEMORY_ALLOCATE));
    CHECK(dnnl_memory_create(&bm, &b_md, eng, DNNL_MEMORY_ALLOCATE));
    CHECK(dnnl_memory_create(&cm, &c_md, eng, DNNL_MEMORY_ALLOCATE));
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}};
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) {
        double t0 = now_ms();
        CHECK(dnnl_primitive_execute(p, s, 3, args));
        CHECK(dnnl_stream_wait(s));
        double t = now_ms() - t0;
        if (r > 0 && t < best) best = t;  // first run is warm-up
    }
    printf("  %-4s %6d %6d %6d   %7.1f GFLOPS   (%s)\n", what, M, N, K, 2.0 * M * N * K / (best * 1e6), impl);
    dnnl_memory_destroy(am), dnnl_memory_destroy(bm), dnnl_memory_destroy(cm);
    dnnl_primitive_destroy(p);
    dnnl_primitive_desc_destroy(pd);
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    dnnl_engine_t eng;
    dnnl_stream_t s;
    CHECK(dnnl_engine_create(&eng, dnnl_cpu, 0));
    CHECK(dnnl_stream_create(&s, eng, dnnl_stream_default_flags));
    const dnnl_version_t *v = dnnl_version();
    printf("oneDNN %d.%d.%d matmul, best of %d (M x N x K, fp32 accumulate and output):\n", v->major, v->minor,
           v->patch, reps);
    int shapes[][3] = {{768, 256, 768}, {2048, 256, 768}, {768, 256, 2048}, {32000, 256, 768}};
    for (int i = 0; i < 4; i++) {
        run(eng, s, shapes[i][0], shapes[i][1], shapes[i][2], dnnl_f32, "f32", reps);
        run(eng, s, shapes[i][0], shapes[i][1], shapes[i][2], dnnl_bf16, "bf16", reps);
    }
    dnnl_stream_destroy(s);
    dnnl_engine_destroy(eng);
    return 0;
}
