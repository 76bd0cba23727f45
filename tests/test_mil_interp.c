// MIL weight blobs and the interpreter: byte-exact blob layout, kernels written
// the way the ANE kernels are (dynamic matmul, RMSNorm, RoPE, causal attention,
// conv with BLOBFILE weights) compared with plain C loops, the op set, fp16
// rounding rules, SDPA mask behaviour, and the ANE rejections.
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/fp16.h"
#include "core/io.h"
#include "core/rng.h"
#include "mil/mil_blob.h"
#include "mil/mil_interp.h"
#include "test.h"

// --- helpers ------------------------------------------------------------------

// Formats into a malloc'd string (the programs here are a few KB).
static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...) {
    size_t cap = 1 << 16;
    char *s = malloc(cap);
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(s, cap, f, ap);
    va_end(ap);
    CHECK(n >= 0 && (size_t)n < cap);
    return s;
}

// A whole program around one function body (the emitter's header, one input x, output `out`).
static char *program(const char *input_type, const char *body) {
    return fmt("program(1.3)\n"
               "[buildInfo = dict<string, string>({{\"coremlc-component-MIL\", \"3510.2.1\"}, {\"coremlc-version\", "
               "\"3505.4.1\"}, {\"coremltools-component-milinternal\", \"\"}, {\"coremltools-version\", \"9.0\"}})]\n"
               "{\n    func main<ios18>(%s x) {\n%s    } -> (out);\n}\n",
               input_type, body);
}

static float r16(float x) { return fp16_to_f32(fp16_from_f32(x)); }

// Random fp16-exact values in [-a, a].
static void fill16(Rng *r, float *x, size_t n, float a) {
    for (size_t i = 0; i < n; i++) x[i] = r16((2 * rng_f32(r) - 1) * a);
}

// Distance in fp16 steps between two fp16-exact finite values.
static int ulp16(float a, float b) {
    int ia = fp16_from_f32(a), ib = fp16_from_f32(b);
    ia = ia & 0x8000 ? -(ia & 0x7fff) : ia;
    ib = ib & 0x8000 ? -(ib & 0x7fff) : ib;
    return abs(ia - ib);
}

static int all_fp16_exact(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (r16(x[i]) != x[i]) return 0;
    return 1;
}

static MilProgram *compile_or_fail(const char *text, const MilWeightFile *w, int nw) {
    MilProgram *p = NULL;
    if (mil_program_compile(text, w, nw, &p)) {
        CHECKF(0, "compile failed: %s", err_msg());
        return NULL;
    }
    return p;
}

// --- weight blobs -------------------------------------------------------------

TEST(mil_blob_single_chunk_byte_exact) {
    uint16_t w[5] = {0x3c00, 0xbc00, 0x0001, 0x7bff, 0x1234};
    uint8_t *b;
    size_t n;
    REQUIRE(mil_blob_build_fp16(w, 5, &b, &n) == 0);
    REQUIRE(n == 128 + 10);
    uint8_t want[128] = {0};
    want[0] = 1;                                                       // chunk count
    want[4] = 2;                                                       // format version
    want[64] = 0xEF, want[65] = 0xBE, want[66] = 0xAD, want[67] = 0xDE;  // sentinel
    want[68] = 1;                                                      // fp16
    want[72] = 10;                                                     // payload bytes (u64)
    want[80] = 128;                                                    // absolute payload offset (u64)
    for (int i = 0; i < 128; i++) CHECKF(b[i] == want[i], "byte %d = 0x%02x, expected 0x%02x", i, b[i], want[i]);
    CHECK(b[128] == 0x00 && b[129] == 0x3c && b[130] == 0x00 && b[131] == 0xbc && b[136] == 0x34 && b[137] == 0x12);
    MilBlobEntry e;
    REQUIRE(mil_blob_read(b, n, 64, "w.bin", &e) == 0);
    CHECK(e.dtype == MIL_BLOB_FP16 && e.bytes == 10 && e.payload_offset == 128 && e.payload == b + 128);
    free(b);
    // from fp32 with round-to-nearest-even
    float f[3] = {1.0f, 65519.0f, 1.0f + 0x1p-11f};
    REQUIRE(mil_blob_build_from_f32(f, 3, &b, &n) == 0);
    CHECK(n == 134 && io_le32(b + 128) == 0x7bff3c00u && b[132] == 0x00 && b[133] == 0x3c);
    free(b);
}

TEST(mil_blob_multi_chunk_layout) {
    uint16_t a[3] = {1, 2, 3}, c[5] = {4, 5, 6, 7, 8};
    float f[16];
    for (int i = 0; i < 16; i++) f[i] = (float)i;
    MilBlobChunk chunks[3] = {{MIL_BLOB_FP16, a, 6}, {MIL_BLOB_FP32, f, 64}, {MIL_BLOB_FP16, c, 10}};
    uint8_t *b;
    size_t n;
    uint64_t off[3];
    REQUIRE(mil_blob_build(chunks, 3, &b, &n, off) == 0);
    // payloads padded to 64 bytes so each chunk header stays aligned; nothing after the last one
    CHECK(off[0] == 64 && off[1] == 192 && off[2] == 320);
    CHECK(n == 320 + 64 + 10);
    CHECK(io_le32(b) == 3 && io_le32(b + 4) == 2);
    for (int i = 0; i < 3; i++) {
        CHECK(io_le32(b + off[i]) == 0xDEADBEEFu);
        CHECK(io_le64(b + off[i] + 16) == off[i] + 64);
        MilBlobEntry e;
        REQUIRE(mil_blob_read(b, n, off[i], "multi.bin", &e) == 0);
        CHECK(e.bytes == chunks[i].bytes && e.dtype == chunks[i].dtype && !memcmp(e.payload, chunks[i].data, e.bytes));
    }
    for (size_t i = 64 + 64 + 6; i < 192; i++) CHECK(b[i] == 0);  // padding is zero
    // written atomically to disk, byte for byte
    char path[600];
    snprintf(path, sizeof path, "%s/multi.bin", test_tmpdir());
    REQUIRE(mil_blob_write_file(path, b, n) == 0);
    char *back;
    size_t bn;
    REQUIRE(io_read_all(path, &back, &bn) == 0);
    CHECK(bn == n && !memcmp(back, b, n));
    free(back);
    free(b);
    CHECK(mil_blob_build(chunks, 0, &b, &n, NULL) == -1);
    MilBlobChunk odd = {MIL_BLOB_FP16, a, 5};
    CHECK(mil_blob_build(&odd, 1, &b, &n, NULL) == -1 && strstr(err_msg(), "multiple of 2"));
}

TEST(mil_blob_reader_rejects_bad_files) {
    uint16_t w[32] = {0};
    uint8_t *b;
    size_t n;
    REQUIRE(mil_blob_build_fp16(w, 32, &b, &n) == 0);
    uint8_t *c = malloc(n);
    MilBlobEntry e;
    struct { size_t at; uint8_t val; size_t size; uint64_t off; const char *msg; } cases[] = {
        {0, 1, 100, 64, "expected at least 128 bytes"},
        {4, 3, 0, 64, "expected blob format version 2 at byte 4, found 3"},
        {0, 0, 0, 64, "expected a chunk count >= 1"},
        {64, 0xEE, 0, 64, "expected sentinel 0xDEADBEEF, found 0xDEADBEEE"},
        {68, 9, 0, 64, "unknown dtype 9"},
        {72, 200, 0, 64, "runs past the end"},
        {80, 64, 0, 64, "expected payload offset >= 128, found 64"},
        {0, 1, 0, 128, "expected sentinel 0xDEADBEEF, found 0x00000000"},
        {0, 1, 0, 96, "multiple of 64"},
        {0, 1, 0, 192, "expected a 64-byte chunk header inside"},
        {72, 63, 0, 64, "multiple of 2"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(c, b, n);
        c[cases[i].at] = cases[i].val;
        int rc = mil_blob_read(c, cases[i].size ? cases[i].size : n, cases[i].off, "w.bin", &e);
        CHECKF(rc == -1 && !strncmp(err_msg(), "w.bin: ", 7) && strstr(err_msg(), cases[i].msg),
               "case %zu: rc %d, \"%s\" (want \"%s\")", i, rc, err_msg(), cases[i].msg);
    }
    // random header bytes, sizes and offsets: either an error or a payload inside the buffer
    Rng r;
    rng_init(&r, 31);
    int accepted = 0;
    for (int it = 0; it < 4000; it++) {
        memcpy(c, b, n);
        for (int k = 0; k < 3; k++) c[rng_below(&r, 128)] = (uint8_t)rng_u32(&r);
        size_t size = rng_below(&r, 4) ? n : rng_below(&r, n + 1);
        uint64_t off = rng_below(&r, 2) ? 64 : rng_u32(&r) % 256;
        if (mil_blob_read(c, size, off, "w.bin", &e) == 0) {
            accepted++;
            CHECK(e.payload >= c + off + 64 && e.payload + e.bytes <= c + size);
        }
    }
    CHECK(accepted > 0);
    free(c);
    free(b);
}

// --- kernels as the ANE pipelines write them ------------------------------------

// gen_dyn_matmul (ane-spec §2.3): input [1, IC, 1, S+OC] = activations A[IC,S] then
// weights B[IC,OC] on the spatial axis; y[o,t] = sum_i A[i,t] B[i,o].
static char *dyn_matmul_text(int IC, int OC, int S) {
    char *body = fmt(
        "        tensor<int32, [4]> ba = const()[name=string(\"ba\"), val=tensor<int32, [4]>([0,0,0,0])];\n"
        "        tensor<int32, [4]> sa = const()[name=string(\"sa\"), val=tensor<int32, [4]>([1,%d,1,%d])];\n"
        "        tensor<fp16, [1,%d,1,%d]> act = slice_by_size(x=x,begin=ba,size=sa)[name=string(\"act\")];\n"
        "        tensor<int32, [4]> bw = const()[name=string(\"bw\"), val=tensor<int32, [4]>([0,0,0,%d])];\n"
        "        tensor<int32, [4]> sw = const()[name=string(\"sw\"), val=tensor<int32, [4]>([1,%d,1,%d])];\n"
        "        tensor<fp16, [1,%d,1,%d]> wt = slice_by_size(x=x,begin=bw,size=sw)[name=string(\"wt\")];\n"
        "        tensor<int32, [4]> ra = const()[name=string(\"ra\"), val=tensor<int32, [4]>([1,1,%d,%d])];\n"
        "        tensor<fp16, [1,1,%d,%d]> a2 = reshape(shape=ra,x=act)[name=string(\"a2\")];\n"
        "        tensor<int32, [4]> pm = const()[name=string(\"pm\"), val=tensor<int32, [4]>([0,1,3,2])];\n"
        "        tensor<fp16, [1,1,%d,%d]> a3 = transpose(perm=pm,x=a2)[name=string(\"a3\")];\n"
        "        tensor<int32, [4]> rw = const()[name=string(\"rw\"), val=tensor<int32, [4]>([1,1,%d,%d])];\n"
        "        tensor<fp16, [1,1,%d,%d]> w2 = reshape(shape=rw,x=wt)[name=string(\"w2\")];\n"
        "        bool bF = const()[name=string(\"bF\"), val=bool(false)];\n"
        "        tensor<fp16, [1,1,%d,%d]> yy = matmul(transpose_x=bF,transpose_y=bF,x=a3,y=w2)[name=string(\"yy\")];\n"
        "        tensor<fp16, [1,1,%d,%d]> yt = transpose(perm=pm,x=yy)[name=string(\"yt\")];\n"
        "        tensor<int32, [4]> ro = const()[name=string(\"ro\"), val=tensor<int32, [4]>([1,%d,1,%d])];\n"
        "        tensor<fp16, [1,%d,1,%d]> out = reshape(shape=ro,x=yt)[name=string(\"out\")];\n",
        IC, S, IC, S, S, IC, OC, IC, OC, IC, S, IC, S, S, IC, IC, OC, IC, OC, S, OC, OC, S, OC, S, OC, S);
    char in[64];
    snprintf(in, sizeof in, "tensor<fp16, [1, %d, 1, %d]>", IC, S + OC);
    char *t = program(in, body);
    free(body);
    return t;
}

TEST(mil_interp_dynamic_matmul) {
    int IC = 32, OC = 24, S = 16, W = S + OC;
    char *text = dyn_matmul_text(IC, OC, S);
    MilProgram *p = compile_or_fail(text, NULL, 0);
    free(text);
    if (!p) return;
    MilIoDesc di, dout;
    mil_program_io(p, &di, &dout);
    CHECK(!strcmp(di.name, "x") && di.numel == (size_t)IC * W && !strcmp(dout.name, "out"));
    CHECK(dout.rank == 4 && dout.dims[1] == OC && dout.dims[3] == S);
    Rng r;
    rng_init(&r, 3);
    float *x = malloc(sizeof(float) * IC * W), *y = malloc(sizeof(float) * OC * S), *ref = malloc(sizeof(float) * OC * S);
    fill16(&r, x, (size_t)IC * W, 1.0f);
    for (int o = 0; o < OC; o++)
        for (int t = 0; t < S; t++) {
            double s = 0;
            for (int i = 0; i < IC; i++) s += (double)x[i * W + t] * x[i * W + S + o];
            ref[o * S + t] = (float)s;
        }
    REQUIRE(mil_program_run_f32(p, x, y) == 0);
    test_allclose(y, ref, (size_t)OC * S, 1e-5f, 1e-5f, "dyn matmul fp32");
    // fp16 mode: the only rounding is the matmul result (fp32 accumulate, then RNE)
    REQUIRE(mil_program_eval(p, MIL_PREC_FP16, x, y) == 0);
    CHECK(all_fp16_exact(y, (size_t)OC * S));
    int worst = 0;
    for (int i = 0; i < OC * S; i++) {
        int u = ulp16(y[i], r16(ref[i]));
        worst = u > worst ? u : worst;
    }
    CHECKF(worst <= 1, "fp16 dyn matmul off by %d fp16 steps", worst);
    free(x), free(y), free(ref);
    mil_program_free(p);
}

// RMSNorm as stories_mil.h writes it: mul -> reduce_sum -> mul(1/D) -> add(eps) -> pow(-0.5) -> mul -> mul(w).
TEST(mil_interp_rmsnorm_chain) {
    enum { D = 64, S = 16 };
    Rng r;
    rng_init(&r, 5);
    float w[D], x[D * S], y[D * S], ref[D * S];
    fill16(&r, w, D, 1.5f);
    fill16(&r, x, D * S, 2.0f);
    uint8_t *blob;
    size_t bn;
    REQUIRE(mil_blob_build_from_f32(w, D, &blob, &bn) == 0);
    MilWeightFile wf = {"@model_path/weights/rms1.bin", blob, bn};
    char *body = fmt(
        "        tensor<fp16, [1,%d,1,%d]> sq = mul(x=x,y=x)[name=string(\"sq\")];\n"
        "        tensor<int32, [1]> rax = const()[name=string(\"rax\"), val=tensor<int32, [1]>([1])];\n"
        "        bool kd = const()[name=string(\"kd\"), val=bool(true)];\n"
        "        tensor<fp16, [1,1,1,%d]> ss = reduce_sum(x=sq,axes=rax,keep_dims=kd)[name=string(\"ss\")];\n"
        "        fp16 invd = const()[name=string(\"invd\"), val=fp16(%f)];\n"
        "        tensor<fp16, [1,1,1,%d]> ss2 = mul(x=ss,y=invd)[name=string(\"ss2\")];\n"
        "        fp16 eps = const()[name=string(\"eps\"), val=fp16(0.00001)];\n"
        "        tensor<fp16, [1,1,1,%d]> ss3 = add(x=ss2,y=eps)[name=string(\"ss3\")];\n"
        "        fp16 nhalf = const()[name=string(\"nhalf\"), val=fp16(-0.5)];\n"
        "        tensor<fp16, [1,1,1,%d]> rrms = pow(x=ss3,y=nhalf)[name=string(\"rrms\")];\n"
        "        tensor<fp16, [1,%d,1,%d]> xr = mul(x=x,y=rrms)[name=string(\"xr\")];\n"
        "        tensor<fp16, [1,%d,1,1]> rw = const()[name=string(\"rw\"), val=tensor<fp16, [1,%d,1,1]>"
        "(BLOBFILE(path=string(\"@model_path/weights/rms1.bin\"), offset=uint64(64)))];\n"
        "        tensor<fp16, [1,%d,1,%d]> out = mul(x=xr,y=rw)[name=string(\"out\")];\n",
        D, S, S, 1.0 / D, S, S, S, D, S, D, D, D, S);
    char *text = program("tensor<fp16, [1, 64, 1, 16]>", body);
    MilProgram *p = compile_or_fail(text, &wf, 1);
    free(body), free(text), free(blob);
    if (!p) return;
    // fp32 mode = the CPU formula y = x * w / sqrt(mean(x^2) + eps)
    for (int t = 0; t < S; t++) {
        double ms = 0;
        for (int c = 0; c < D; c++) ms += (double)x[c * S + t] * x[c * S + t];
        double rr = 1.0 / sqrt(ms / D + 1e-5);
        for (int c = 0; c < D; c++) ref[c * S + t] = (float)(x[c * S + t] * rr * w[c]);
    }
    REQUIRE(mil_program_run_f32(p, x, y) == 0);
    test_allclose(y, ref, D * S, 1e-6f, 1e-5f, "rmsnorm fp32");
    // fp16 mode = the same chain in C with an fp16 rounding after every op, bit for bit
    float sq[D * S], rrms[S];
    for (int i = 0; i < D * S; i++) sq[i] = r16(x[i] * x[i]);
    for (int t = 0; t < S; t++) {
        double ss = 0;
        for (int c = 0; c < D; c++) ss += sq[c * S + t];
        float v = r16((float)ss);
        v = r16(v * r16(1.0f / D));
        v = r16(v + r16(0.00001f));
        rrms[t] = r16(powf(v, -0.5f));
    }
    for (int c = 0; c < D; c++)
        for (int t = 0; t < S; t++) ref[c * S + t] = r16(r16(x[c * S + t] * rrms[t]) * w[c]);
    REQUIRE(mil_program_eval(p, MIL_PREC_FP16, x, y) == 0);
    int same = 0;
    for (int i = 0; i < D * S; i++) same += y[i] == ref[i];
    CHECKF(same == D * S, "fp16 chain: %d of %d values bit-identical to the C emulation", same, D * S);
    mil_program_free(p);
}

// RoPE with interleaved pairs, as the dynamic sdpaFwd writes it: reshape to
// [1,H,S*HD/2,2], slice even/odd, negate odd, concat (-odd, even), reshape back,
// q*cos + rot(q)*sin; cos/sin tables share one two-chunk blob file.
TEST(mil_interp_rope_pairs) {
    enum { H = 2, HD = 8, S = 6, C = H * HD, P = S * HD / 2 };
    float cs[S * HD], sn[S * HD];
    for (int t = 0; t < S; t++)
        for (int i = 0; i < HD / 2; i++) {
            double th = t * pow(10000.0, -2.0 * i / HD);
            cs[t * HD + 2 * i] = cs[t * HD + 2 * i + 1] = r16((float)cos(th));
            sn[t * HD + 2 * i] = sn[t * HD + 2 * i + 1] = r16((float)sin(th));
        }
    uint16_t hc[S * HD], hs[S * HD];
    fp16_from_f32_array(hc, cs, S * HD);
    fp16_from_f32_array(hs, sn, S * HD);
    MilBlobChunk ch[2] = {{MIL_BLOB_FP16, hc, sizeof hc}, {MIL_BLOB_FP16, hs, sizeof hs}};
    uint8_t *blob;
    size_t bn;
    uint64_t off[2];
    REQUIRE(mil_blob_build(ch, 2, &blob, &bn, off) == 0);
    MilWeightFile wf = {"@model_path/weights/rope.bin", blob, bn};
    char *body = fmt(
        "        tensor<int32, [4]> r1 = const()[name=string(\"r1\"), val=tensor<int32, [4]>([1,%d,%d,%d])];\n"
        "        tensor<fp16, [1,%d,%d,%d]> q4 = reshape(shape=r1,x=x)[name=string(\"q4\")];\n"
        "        tensor<int32, [4]> pm = const()[name=string(\"pm\"), val=tensor<int32, [4]>([0,1,3,2])];\n"
        "        tensor<fp16, [1,%d,%d,%d]> q = transpose(perm=pm,x=q4)[name=string(\"q\")];\n"
        "        tensor<int32, [4]> rp = const()[name=string(\"rp\"), val=tensor<int32, [4]>([1,%d,%d,2])];\n"
        "        tensor<fp16, [1,%d,%d,2]> qp = reshape(shape=rp,x=q)[name=string(\"qp\")];\n"
        "        tensor<int32, [4]> be = const()[name=string(\"be\"), val=tensor<int32, [4]>([0,0,0,0])];\n"
        "        tensor<int32, [4]> bo = const()[name=string(\"bo\"), val=tensor<int32, [4]>([0,0,0,1])];\n"
        "        tensor<int32, [4]> sz = const()[name=string(\"sz\"), val=tensor<int32, [4]>([1,%d,%d,1])];\n"
        "        tensor<int32, [4]> sze = const()[name=string(\"sze\"), val=tensor<int32, [4]>([1,%d,-1,1])];\n"
        "        tensor<fp16, [1,%d,%d,1]> ev = slice_by_size(x=qp,begin=be,size=sz)[name=string(\"ev\")];\n"
        "        tensor<fp16, [1,%d,%d,1]> od = slice_by_size(x=qp,begin=bo,size=sze)[name=string(\"od\")];\n"
        "        fp16 neg1 = const()[name=string(\"neg1\"), val=fp16(-1)];\n"
        "        tensor<fp16, [1,%d,%d,1]> nod = mul(x=od,y=neg1)[name=string(\"nod\")];\n"
        "        int32 ax3 = const()[name=string(\"ax3\"), val=int32(3)];\n"
        "        bool cid = const()[name=string(\"cid\"), val=bool(false)];\n"
        "        tensor<fp16, [1,%d,%d,2]> rot = concat(axis=ax3,interleave=cid,values=(nod,ev))[name=string(\"rot\")];\n"
        "        tensor<int32, [4]> rs = const()[name=string(\"rs\"), val=tensor<int32, [4]>([1,%d,%d,%d])];\n"
        "        tensor<fp16, [1,%d,%d,%d]> rot4 = reshape(shape=rs,x=rot)[name=string(\"rot4\")];\n"
        "        tensor<fp16, [1,1,%d,%d]> rc = const()[name=string(\"rc\"), val=tensor<fp16, [1,1,%d,%d]>"
        "(BLOBFILE(path=string(\"@model_path/weights/rope.bin\"), offset=uint64(%llu)))];\n"
        "        tensor<fp16, [1,1,%d,%d]> rsn = const()[name=string(\"rsn\"), val=tensor<fp16, [1,1,%d,%d]>"
        "(BLOBFILE(path=string(\"@model_path/weights/rope.bin\"), offset=uint64(%llu)))];\n"
        "        tensor<fp16, [1,%d,%d,%d]> qc = mul(x=q,y=rc)[name=string(\"qc\")];\n"
        "        tensor<fp16, [1,%d,%d,%d]> qs = mul(x=rot4,y=rsn)[name=string(\"qs\")];\n"
        "        tensor<fp16, [1,%d,%d,%d]> qr = add(x=qc,y=qs)[name=string(\"qr\")];\n"
        "        tensor<fp16, [1,%d,%d,%d]> qt = transpose(perm=pm,x=qr)[name=string(\"qt\")];\n"
        "        tensor<int32, [4]> ro = const()[name=string(\"ro\"), val=tensor<int32, [4]>([1,%d,1,%d])];\n"
        "        tensor<fp16, [1,%d,1,%d]> out = reshape(shape=ro,x=qt)[name=string(\"out\")];\n",
        H, HD, S, H, HD, S, H, S, HD, H, P, H, P, H, P, H, H, P, H, P, H, P, H, P, H, S, HD, H, S, HD, S, HD, S, HD,
        (unsigned long long)off[0], S, HD, S, HD, (unsigned long long)off[1], H, S, HD, H, S, HD, H, S, HD, H, HD, S,
        C, S, C, S);
    char *text = program("tensor<fp16, [1, 16, 1, 6]>", body);
    MilProgram *p = compile_or_fail(text, &wf, 1);
    free(body), free(text), free(blob);
    if (!p) return;
    Rng r;
    rng_init(&r, 9);
    float x[C * S], y[C * S], ref[C * S];
    fill16(&r, x, C * S, 1.0f);
    for (int h = 0; h < H; h++)
        for (int t = 0; t < S; t++)
            for (int i = 0; i < HD / 2; i++) {
                int c0 = h * HD + 2 * i, c1 = c0 + 1;
                double x0 = x[c0 * S + t], x1 = x[c1 * S + t], co = cs[t * HD + 2 * i], si = sn[t * HD + 2 * i];
                ref[c0 * S + t] = (float)(x0 * co - x1 * si);
                ref[c1 * S + t] = (float)(x1 * co + x0 * si);
            }
    REQUIRE(mil_program_run_f32(p, x, y) == 0);
    test_allclose(y, ref, C * S, 1e-6f, 1e-6f, "rope fp32");
    // fp16: three rounded ops on O(1) values -> within a few fp16 steps of the exact result
    REQUIRE(mil_program_eval(p, MIL_PREC_FP16, x, y) == 0);
    test_allclose(y, ref, C * S, 2e-3f, 2e-3f, "rope fp16");
    mil_program_free(p);
}

// Causal attention as the pipelines write it (SDPA's mask being ignored):
// matmul(q, k, transpose_y) -> mul(scale) -> add(mask BLOBFILE) -> softmax(-1) -> matmul(p, v).
static void attention_ref(const float *x, float *out, int H, int HD, int S, int causal) {
    int D = H * HD;
    for (int h = 0; h < H; h++)
        for (int t = 0; t < S; t++) {
            double sc[64], mx = -1e300, sum = 0;
            for (int u = 0; u < S; u++) {
                double s = 0;
                for (int d = 0; d < HD; d++) s += (double)x[(h * HD + d) * S + t] * x[(D + h * HD + d) * S + u];
                sc[u] = s / sqrt((double)HD) + (causal && u > t ? -65504.0 : 0.0);
                mx = sc[u] > mx ? sc[u] : mx;
            }
            for (int u = 0; u < S; u++) sum += (sc[u] = exp(sc[u] - mx));
            for (int d = 0; d < HD; d++) {
                double a = 0;
                for (int u = 0; u < S; u++) a += sc[u] / sum * x[(2 * D + h * HD + d) * S + u];
                out[(h * HD + d) * S + t] = (float)a;
            }
        }
}

TEST(mil_interp_causal_attention) {
    enum { H = 2, HD = 16, S = 8, D = H * HD };
    float mask[S * S];
    for (int t = 0; t < S; t++)
        for (int u = 0; u < S; u++) mask[t * S + u] = u > t ? -65504.0f : 0.0f;
    uint8_t *blob;
    size_t bn;
    REQUIRE(mil_blob_build_from_f32(mask, S * S, &blob, &bn) == 0);
    MilWeightFile wf = {"@model_path/weights/mask.bin", blob, bn};
    char *body = fmt(
        "        tensor<int32, [4]> sz = const()[name=string(\"sz\"), val=tensor<int32, [4]>([1,%d,1,%d])];\n"
        "        tensor<int32, [4]> b0 = const()[name=string(\"b0\"), val=tensor<int32, [4]>([0,0,0,0])];\n"
        "        tensor<int32, [4]> b1 = const()[name=string(\"b1\"), val=tensor<int32, [4]>([0,%d,0,0])];\n"
        "        tensor<int32, [4]> b2 = const()[name=string(\"b2\"), val=tensor<int32, [4]>([0,%d,0,0])];\n"
        "        tensor<fp16, [1,%d,1,%d]> qf = slice_by_size(x=x,begin=b0,size=sz)[name=string(\"qf\")];\n"
        "        tensor<fp16, [1,%d,1,%d]> kf = slice_by_size(x=x,begin=b1,size=sz)[name=string(\"kf\")];\n"
        "        tensor<fp16, [1,%d,1,%d]> vf = slice_by_size(x=x,begin=b2,size=sz)[name=string(\"vf\")];\n"
        "        tensor<int32, [4]> hs = const()[name=string(\"hs\"), val=tensor<int32, [4]>([1,%d,%d,%d])];\n"
        "        tensor<int32, [4]> pm = const()[name=string(\"pm\"), val=tensor<int32, [4]>([0,1,3,2])];\n"
        "        tensor<fp16, [1,%d,%d,%d]> q4 = reshape(shape=hs,x=qf)[name=string(\"q4\")];\n"
        "        tensor<fp16, [1,%d,%d,%d]> q = transpose(perm=pm,x=q4)[name=string(\"q\")];\n"
        "        tensor<fp16, [1,%d,%d,%d]> k4 = reshape(shape=hs,x=kf)[name=string(\"k4\")];\n"
        "        tensor<fp16, [1,%d,%d,%d]> k = transpose(perm=pm,x=k4)[name=string(\"k\")];\n"
        "        tensor<fp16, [1,%d,%d,%d]> v4 = reshape(shape=hs,x=vf)[name=string(\"v4\")];\n"
        "        tensor<fp16, [1,%d,%d,%d]> v = transpose(perm=pm,x=v4)[name=string(\"v\")];\n"
        "        bool tx = const()[name=string(\"tx\"), val=bool(false)];\n"
        "        bool ty = const()[name=string(\"ty\"), val=bool(true)];\n"
        "        tensor<fp16, [1,%d,%d,%d]> sc1 = matmul(transpose_x=tx,transpose_y=ty,x=q,y=k)[name=string(\"sc1\")];\n"
        "        fp16 scv = const()[name=string(\"scv\"), val=fp16(%f)];\n"
        "        tensor<fp16, [1,%d,%d,%d]> sc2 = mul(x=sc1,y=scv)[name=string(\"sc2\")];\n"
        "        tensor<fp16, [1,1,%d,%d]> cm = const()[name=string(\"cm\"), val=tensor<fp16, [1,1,%d,%d]>"
        "(BLOBFILE(path=string(\"@model_path/weights/mask.bin\"), offset=uint64(64)))];\n"
        "        tensor<fp16, [1,%d,%d,%d]> ms = add(x=sc2,y=cm)[name=string(\"ms\")];\n"
        "        int32 sax = const()[name=string(\"sax\"), val=int32(-1)];\n"
        "        tensor<fp16, [1,%d,%d,%d]> aw = softmax(axis=sax,x=ms)[name=string(\"aw\")];\n"
        "        tensor<fp16, [1,%d,%d,%d]> a4 = matmul(transpose_x=tx,transpose_y=tx,x=aw,y=v)[name=string(\"a4\")];\n"
        "        tensor<fp16, [1,%d,%d,%d]> at = transpose(perm=pm,x=a4)[name=string(\"at\")];\n"
        "        tensor<int32, [4]> os = const()[name=string(\"os\"), val=tensor<int32, [4]>([1,%d,1,%d])];\n"
        "        tensor<fp16, [1,%d,1,%d]> out = reshape(shape=os,x=at)[name=string(\"out\")];\n",
        D, S, D, 2 * D, D, S, D, S, D, S, H, HD, S, H, HD, S, H, S, HD, H, HD, S, H, S, HD, H, HD, S, H, S, HD, H, S,
        S, 1.0 / sqrt(HD), H, S, S, S, S, S, S, H, S, S, H, S, S, H, S, HD, H, HD, S, D, S, D, S);
    char *text = program("tensor<fp16, [1, 96, 1, 8]>", body);
    MilProgram *p = compile_or_fail(text, &wf, 1);
    free(body), free(text), free(blob);
    if (!p) return;
    Rng r;
    rng_init(&r, 13);
    float x[3 * D * S], y[D * S], y16[D * S], ref[D * S];
    fill16(&r, x, 3 * D * S, 1.0f);
    attention_ref(x, ref, H, HD, S, 1);
    REQUIRE(mil_program_run_f32(p, x, y) == 0);
    test_allclose(y, ref, D * S, 1e-5f, 1e-5f, "causal attention fp32");
    REQUIRE(mil_program_eval(p, MIL_PREC_FP16, x, y16) == 0);
    CHECK(all_fp16_exact(y16, D * S));
    // ~6 rounded ops on O(1) values (fp16 half-step 2^-11 relative): a few 1e-3 at most
    test_allclose(y16, ref, D * S, 4e-3f, 4e-3f, "causal attention fp16");
    double diff = 0;
    for (int i = 0; i < D * S; i++) diff += fabs(y16[i] - y[i]);
    CHECKF(diff > 0, "fp16 mode should differ from fp32 mode somewhere");
    mil_program_free(p);
}

// SDPA: the attn_mask is accepted and ignored (as the ANE does), so a causal
// mask changes nothing and the result is plain non-causal attention.
TEST(mil_interp_sdpa_ignores_mask) {
    enum { H = 2, HD = 16, S = 8, D = H * HD };
    float mask[S * S];
    for (int t = 0; t < S; t++)
        for (int u = 0; u < S; u++) mask[t * S + u] = u > t ? -65504.0f : 0.0f;
    uint8_t *blob;
    size_t bn;
    REQUIRE(mil_blob_build_from_f32(mask, S * S, &blob, &bn) == 0);
    MilWeightFile wf = {"@model_path/weights/mask.bin", blob, bn};
    // built in two parts so the SDPA line can vary
    char *common = fmt(
        "        tensor<int32, [4]> sz = const()[name=string(\"sz\"), val=tensor<int32, [4]>([1,%d,1,%d])];\n"
        "        tensor<int32, [4]> b0 = const()[name=string(\"b0\"), val=tensor<int32, [4]>([0,0,0,0])];\n"
        "        tensor<int32, [4]> b1 = const()[name=string(\"b1\"), val=tensor<int32, [4]>([0,%d,0,0])];\n"
        "        tensor<int32, [4]> b2 = const()[name=string(\"b2\"), val=tensor<int32, [4]>([0,%d,0,0])];\n"
        "        tensor<fp16, [1,%d,1,%d]> qf = slice_by_size(x=x,begin=b0,size=sz)[name=string(\"qf\")];\n"
        "        tensor<fp16, [1,%d,1,%d]> kf = slice_by_size(x=x,begin=b1,size=sz)[name=string(\"kf\")];\n"
        "        tensor<fp16, [1,%d,1,%d]> vf = slice_by_size(x=x,begin=b2,size=sz)[name=string(\"vf\")];\n"
        "        tensor<int32, [4]> hs = const()[name=string(\"hs\"), val=tensor<int32, [4]>([1,%d,%d,%d])];\n"
        "        tensor<int32, [4]> pm = const()[name=string(\"pm\"), val=tensor<int32, [4]>([0,1,3,2])];\n"
        "        tensor<fp16, [1,%d,%d,%d]> q4 = reshape(shape=hs,x=qf)[name=string(\"q4\")];\n"
        "        tensor<fp16, [1,%d,%d,%d]> q = transpose(perm=pm,x=q4)[name=string(\"q\")];\n"
        "        tensor<fp16, [1,%d,%d,%d]> k4 = reshape(shape=hs,x=kf)[name=string(\"k4\")];\n"
        "        tensor<fp16, [1,%d,%d,%d]> k = transpose(perm=pm,x=k4)[name=string(\"k\")];\n"
        "        tensor<fp16, [1,%d,%d,%d]> v4 = reshape(shape=hs,x=vf)[name=string(\"v4\")];\n"
        "        tensor<fp16, [1,%d,%d,%d]> v = transpose(perm=pm,x=v4)[name=string(\"v\")];\n"
        "        tensor<fp16, [1,1,%d,%d]> cm = const()[name=string(\"cm\"), val=tensor<fp16, [1,1,%d,%d]>"
        "(BLOBFILE(path=string(\"@model_path/weights/mask.bin\"), offset=uint64(64)))];\n",
        D, S, D, 2 * D, D, S, D, S, D, S, H, HD, S, H, HD, S, H, S, HD, H, HD, S, H, S, HD, H, HD, S, H, S, HD, S, S, S,
        S);
    char *tail = fmt(
        "        tensor<fp16, [1,%d,%d,%d]> at = transpose(perm=pm,x=a4)[name=string(\"at\")];\n"
        "        tensor<int32, [4]> os = const()[name=string(\"os\"), val=tensor<int32, [4]>([1,%d,1,%d])];\n"
        "        tensor<fp16, [1,%d,1,%d]> out = reshape(shape=os,x=at)[name=string(\"out\")];\n",
        H, HD, S, D, S, D, S);
    char *with = fmt("%s        tensor<fp16, [1,%d,%d,%d]> a4 = scaled_dot_product_attention(query=q,key=k,value=v,"
                     "attn_mask=cm)[name=string(\"a4\")];\n%s", common, H, S, HD, tail);
    char *without = fmt("%s        tensor<fp16, [1,%d,%d,%d]> a4 = scaled_dot_product_attention(query=q,key=k,value=v)"
                        "[name=string(\"a4\")];\n%s", common, H, S, HD, tail);
    char *t1 = program("tensor<fp16, [1, 96, 1, 8]>", with), *t2 = program("tensor<fp16, [1, 96, 1, 8]>", without);
    MilProgram *pm = compile_or_fail(t1, &wf, 1), *pn = compile_or_fail(t2, &wf, 1);
    free(common), free(tail), free(with), free(without), free(t1), free(t2), free(blob);
    if (pm && pn) {
        Rng r;
        rng_init(&r, 17);
        float x[3 * D * S], ym[D * S], yn[D * S], ref[D * S], causal[D * S];
        fill16(&r, x, 3 * D * S, 1.0f);
        REQUIRE(mil_program_run_f32(pm, x, ym) == 0);
        REQUIRE(mil_program_run_f32(pn, x, yn) == 0);
        CHECK(!memcmp(ym, yn, sizeof ym));
        attention_ref(x, ref, H, HD, S, 0);
        attention_ref(x, causal, H, HD, S, 1);
        test_allclose(ym, ref, D * S, 1e-5f, 1e-5f, "sdpa = non-causal attention");
        CHECK(test_rel_err(ym, causal, D * S) > 0.05);  // and visibly not the causal answer
        REQUIRE(mil_program_eval(pm, MIL_PREC_FP16, x, ym) == 0);
        REQUIRE(mil_program_eval(pn, MIL_PREC_FP16, x, yn) == 0);
        CHECK(!memcmp(ym, yn, sizeof ym));
    }
    mil_program_free(pm);
    mil_program_free(pn);
}

// 1x1 conv with BLOBFILE weights from one two-chunk file: a dense conv and a
// grouped conv with bias, summed.
TEST(mil_interp_conv_blobfile) {
    enum { IC = 16, OC = 12, S = 10, G = 4, ICg = IC / G, OCg = OC / G };
    Rng r;
    rng_init(&r, 21);
    float w1[OC * IC], w2[OC * ICg], bias[OC], x[IC * S], y[OC * S], ref[OC * S];
    fill16(&r, w1, OC * IC, 0.5f);
    fill16(&r, w2, OC * ICg, 0.5f);
    fill16(&r, bias, OC, 1.0f);
    fill16(&r, x, IC * S, 1.0f);
    uint16_t h1[OC * IC], h2[OC * ICg];
    fp16_from_f32_array(h1, w1, OC * IC);
    fp16_from_f32_array(h2, w2, OC * ICg);
    MilBlobChunk ch[2] = {{MIL_BLOB_FP16, h1, sizeof h1}, {MIL_BLOB_FP16, h2, sizeof h2}};
    uint8_t *blob;
    size_t bn;
    uint64_t off[2];
    REQUIRE(mil_blob_build(ch, 2, &blob, &bn, off) == 0);
    MilWeightFile wf = {"weights/conv.bin", blob, bn};  // given without the @model_path/ prefix
    char bias_list[512] = "";
    for (int o = 0; o < OC; o++)
        snprintf(bias_list + strlen(bias_list), sizeof bias_list - strlen(bias_list), "%s%.9g", o ? "," : "", bias[o]);
    char *body = fmt(
        "        string pt = const()[name=string(\"pt\"), val=string(\"valid\")];\n"
        "        tensor<int32, [2]> st = const()[name=string(\"st\"), val=tensor<int32, [2]>([1,1])];\n"
        "        tensor<int32, [4]> pd = const()[name=string(\"pd\"), val=tensor<int32, [4]>([0,0,0,0])];\n"
        "        tensor<int32, [2]> dl = const()[name=string(\"dl\"), val=tensor<int32, [2]>([1,1])];\n"
        "        int32 gr = const()[name=string(\"gr\"), val=int32(1)];\n"
        "        int32 g4 = const()[name=string(\"g4\"), val=int32(%d)];\n"
        "        tensor<fp16, [%d,%d,1,1]> W1 = const()[name=string(\"W1\"), val=tensor<fp16, [%d,%d,1,1]>"
        "(BLOBFILE(path=string(\"@model_path/weights/conv.bin\"), offset=uint64(%llu)))];\n"
        "        tensor<fp16, [%d,%d,1,1]> W2 = const()[name=string(\"W2\"), val=tensor<fp16, [%d,%d,1,1]>"
        "(BLOBFILE(path=string(\"@model_path/weights/conv.bin\"), offset=uint64(%llu)))];\n"
        "        tensor<fp16, [%d]> bs = const()[name=string(\"bs\"), val=tensor<fp16, [%d]>([%s])];\n"
        "        tensor<fp16, [1,%d,1,%d]> c1 = conv(dilations=dl,groups=gr,pad=pd,pad_type=pt,strides=st,weight=W1,x=x)"
        "[name=string(\"c1\")];\n"
        "        tensor<fp16, [1,%d,1,%d]> c2 = conv(bias=bs,dilations=dl,groups=g4,pad=pd,pad_type=pt,strides=st,"
        "weight=W2,x=x)[name=string(\"c2\")];\n"
        "        tensor<fp16, [1,%d,1,%d]> out = add(x=c1,y=c2)[name=string(\"out\")];\n",
        G, OC, IC, OC, IC, (unsigned long long)off[0], OC, ICg, OC, ICg, (unsigned long long)off[1], OC, OC, bias_list,
        OC, S, OC, S, OC, S);
    char *text = program("tensor<fp16, [1, 16, 1, 10]>", body);
    MilProgram *p = compile_or_fail(text, &wf, 1);
    free(body), free(text), free(blob);
    if (!p) return;
    for (int o = 0; o < OC; o++)
        for (int t = 0; t < S; t++) {
            double a = 0, b = bias[o];
            for (int i = 0; i < IC; i++) a += (double)w1[o * IC + i] * x[i * S + t];
            for (int i = 0; i < ICg; i++) b += (double)w2[o * ICg + i] * x[((o / OCg) * ICg + i) * S + t];
            ref[o * S + t] = (float)(a + b);
        }
    REQUIRE(mil_program_run_f32(p, x, y) == 0);
    test_allclose(y, ref, OC * S, 1e-5f, 1e-5f, "conv fp32");
    REQUIRE(mil_program_eval(p, MIL_PREC_FP16, x, y) == 0);
    test_allclose(y, ref, OC * S, 3e-3f, 3e-3f, "conv fp16");
    mil_program_free(p);
}

// --- the op set -----------------------------------------------------------------

static float sigm(float v) { return 1.0f / (1.0f + expf(-v)); }

TEST(mil_interp_elementwise_softmax_reduce) {
    enum { C = 4, S = 6 };
    const char *body =
        "        tensor<fp16, [1,4,1,1]> w = const()[name=string(\"w\"), val=tensor<fp16, [1,4,1,1]>([0.5, -1, 2, 0.25])];\n"
        "        tensor<fp16, [1,4,1,6]> y1 = mul(x=x,y=w)[name=string(\"y1\")];\n"
        "        tensor<int32, [1]> a1 = const()[name=string(\"a1\"), val=tensor<int32, [1]>([1])];\n"
        "        bool kt = const()[name=string(\"kt\"), val=bool(true)];\n"
        "        tensor<fp16, [1,1,1,6]> st = reduce_sum(x=x,axes=a1,keep_dims=kt)[name=string(\"st\")];\n"
        "        tensor<fp16, [1,4,1,6]> y2 = sub(x=y1,y=st)[name=string(\"y2\")];\n"
        "        tensor<fp16, [1,4,1,6]> y3 = real_div(x=y2,y=fp16(2))[name=string(\"y3\")];\n"
        "        tensor<fp16, [1,4,1,6]> y4 = maximum(x=y3,y=fp16(-0.5))[name=string(\"y4\")];\n"
        "        tensor<fp16, [1,4,1,6]> y5 = minimum(x=y4,y=fp16(1.5))[name=string(\"y5\")];\n"
        "        tensor<fp16, [1,4,1,6]> e = exp(x=y5)[name=string(\"e\")];\n"
        "        tensor<fp16, [1,4,1,6]> sq = sqrt(x=e)[name=string(\"sq\")];\n"
        "        tensor<fp16, [1,4,1,6]> th = tanh(x=sq)[name=string(\"th\")];\n"
        "        tensor<fp16, [1,4,1,6]> sg = sigmoid(x=th)[name=string(\"sg\")];\n"
        "        tensor<fp16, [1,4,1,6]> pw = pow(x=e,y=fp16(1.5))[name=string(\"pw\")];\n"
        "        tensor<int32, [1]> al = const()[name=string(\"al\"), val=tensor<int32, [1]>([-1])];\n"
        "        tensor<fp16, [1,4,1,6]> xm3 = sub(x=x,y=fp16(3))[name=string(\"xm3\")];\n"
        "        tensor<fp16, [1,4,1]> mx = reduce_max(x=xm3,axes=al,keep_dims=bool(false))[name=string(\"mx\")];\n"
        "        tensor<int32, [4]> r4 = const()[name=string(\"r4\"), val=tensor<int32, [4]>([1,4,1,1])];\n"
        "        tensor<fp16, [1,4,1,1]> mx4 = reshape(shape=r4,x=mx)[name=string(\"mx4\")];\n"
        "        tensor<fp16, [1,4,1,6]> smc = softmax(axis=int32(1),x=x)[name=string(\"smc\")];\n"
        "        tensor<fp16, [1,4,1,6]> sml = softmax(axis=int32(-1),x=x)[name=string(\"sml\")];\n"
        "        tensor<fp16, [1,4,1,6]> xb = add(x=x,y=tensor<fp16, [6]>([1,2,3,4,5,6]))[name=string(\"xb\")];\n"
        "        tensor<fp16, [1,4,1,6]> wx = sub(x=w,y=x)[name=string(\"wx\")];\n"
        "        tensor<fp16, [1,4,1,37]> out = concat(axis=int32(3),values=(sg,mx4,smc,sml,xb,pw,wx))[name=string(\"out\")];\n";
    char *text = program("tensor<fp16, [1, 4, 1, 6]>", body);
    MilProgram *p = compile_or_fail(text, NULL, 0);
    free(text);
    if (!p) return;
    Rng r;
    rng_init(&r, 23);
    float x[C * S], y[C * 37], ref[C * 37];
    fill16(&r, x, C * S, 2.0f);
    const float w[C] = {0.5f, -1, 2, 0.25f};
    for (int c = 0; c < C; c++) {
        float *o = ref + c * 37, mx = -INFINITY, sumc, suml = 0, ml = -INFINITY;
        for (int t = 0; t < S; t++) {
            float st = 0;
            for (int k = 0; k < C; k++) st += x[k * S + t];
            float v = (x[c * S + t] * w[c] - st) / 2;
            v = fminf(fmaxf(v, -0.5f), 1.5f);
            o[t] = sigm(tanhf(sqrtf(expf(v))));
            o[25 + t] = powf(expf(v), 1.5f);
            mx = fmaxf(mx, x[c * S + t]);
            ml = fmaxf(ml, x[c * S + t]);
            o[19 + t] = x[c * S + t] + (float)(t + 1);
            o[31 + t] = w[c] - x[c * S + t];
        }
        o[6] = mx - 3;  // max of all-negative values
        for (int t = 0; t < S; t++) {
            float m = -INFINITY;
            sumc = 0;
            for (int k = 0; k < C; k++) m = fmaxf(m, x[k * S + t]);
            for (int k = 0; k < C; k++) sumc += expf(x[k * S + t] - m);
            o[7 + t] = expf(x[c * S + t] - m) / sumc;
            suml += expf(x[c * S + t] - ml);
        }
        for (int t = 0; t < S; t++) o[13 + t] = expf(x[c * S + t] - ml) / suml;
    }
    REQUIRE(mil_program_run_f32(p, x, y) == 0);
    test_allclose(y, ref, C * 37, 1e-6f, 1e-5f, "elementwise/softmax/reduce fp32");
    REQUIRE(mil_program_eval(p, MIL_PREC_FP16, x, y) == 0);
    CHECK(all_fp16_exact(y, C * 37));
    test_allclose(y, ref, C * 37, 2e-3f, 4e-3f, "elementwise/softmax/reduce fp16");
    mil_program_free(p);
}

TEST(mil_interp_shape_ops) {
    // x [1,2,3,4]; transpose, slice (size -1), reshape (0 and -1), concat interleave, cast int32 round trip,
    // reduce_sum over two axes and over everything.
    const char *body =
        "        tensor<fp16, [1,4,2,3]> t = transpose(perm=tensor<int32, [4]>([0,3,1,2]),x=x)[name=string(\"t\")];\n"
        "        tensor<fp16, [1,2,2,2]> s = slice_by_size(x=t,begin=tensor<int32, [4]>([0,1,0,1]),"
        "size=tensor<int32, [4]>([1,2,-1,2]))[name=string(\"s\")];\n"
        "        tensor<fp16, [1,4,1,2]> r = reshape(shape=tensor<int32, [4]>([0,-1,1,2]),x=s)[name=string(\"r\")];\n"
        "        tensor<fp16, [1,4,1,2]> r2 = mul(x=r,y=fp16(-1.75))[name=string(\"r2\")];\n"
        "        tensor<fp16, [1,4,1,4]> c = concat(axis=int32(3),interleave=bool(true),values=(r,r2))[name=string(\"c\")];\n"
        "        tensor<int32, [1,4,1,4]> ci = cast(x=c,dtype=string(\"int32\"))[name=string(\"ci\")];\n"
        "        tensor<fp32, [1,4,1,4]> cf32 = cast(x=ci,dtype=string(\"fp32\"))[name=string(\"cf32\")];\n"
        "        tensor<fp16, [1,4,1,4]> cf = cast(x=cf32,dtype=string(\"fp16\"))[name=string(\"cf\")];\n"
        "        tensor<fp16, [1,1,1,16]> cf1 = reshape(shape=tensor<int32, [4]>([1,1,1,16]),x=cf)[name=string(\"cf1\")];\n"
        "        tensor<fp16, [1,3]> rs = reduce_sum(x=x,axes=tensor<int32, [2]>([1,-1]),keep_dims=bool(false))"
        "[name=string(\"rs\")];\n"
        "        tensor<fp16, [1,1,1,3]> rs4 = reshape(shape=tensor<int32, [4]>([1,1,1,3]),x=rs)[name=string(\"rs4\")];\n"
        "        fp16 ra = reduce_sum(x=x)[name=string(\"ra\")];\n"
        "        tensor<fp16, [1,1,1,1]> ra4 = reshape(shape=tensor<int32, [4]>([1,1,1,1]),x=ra)[name=string(\"ra4\")];\n"
        "        tensor<fp16, [1,2,12,1]> xq = reshape(shape=tensor<int32, [4]>([1,0,-1,1]),x=x)[name=string(\"xq\")];\n"
        "        tensor<fp16, [1,1,4,1]> xs = slice_by_size(x=xq,begin=tensor<int32, [4]>([0,1,3,0]),"
        "size=tensor<int32, [4]>([1,1,4,1]))[name=string(\"xs\")];\n"
        "        tensor<fp16, [1,1,1,4]> xs4 = reshape(shape=tensor<int32, [4]>([1,1,1,4]),x=xs)[name=string(\"xs4\")];\n"
        "        tensor<fp16, [1,1,1,24]> out = concat(axis=int32(-1),values=(cf1,rs4,ra4,xs4))[name=string(\"out\")];\n";
    char *text = program("tensor<fp16, [1, 2, 3, 4]>", body);
    MilProgram *p = compile_or_fail(text, NULL, 0);
    free(text);
    if (!p) return;
    float x[24], y[24], ref[24];
    for (int i = 0; i < 24; i++) x[i] = (float)(i % 7) * 0.75f - 2.0f;  // fp16-exact
#define X(a, b, c) x[((a)*3 + (b)) * 4 + (c)]
    // t[0,d,a,b] = x[0,a,b,d]; s = t[:, 1:3, 0:2, 1:3]; r = s as [4,2] (row-major)
    float rr[4][2];
    for (int d = 0; d < 2; d++)
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++) rr[d * 2 + a][b] = X(a, b + 1, d + 1);
    // interleaved concat on axis 3: row k = r[k][0], r2[k][0], r[k][1], r2[k][1]; then int32 truncation
    int n = 0;
    for (int k = 0; k < 4; k++)
        for (int b = 0; b < 2; b++) {
            ref[n++] = truncf(rr[k][b]);
            ref[n++] = truncf(r16(rr[k][b] * -1.75f));
        }
    for (int b = 0; b < 3; b++) {
        float s = 0;
        for (int a = 0; a < 2; a++)
            for (int d = 0; d < 4; d++) s += X(a, b, d);
        ref[n++] = s;
    }
    float all = 0;
    for (int i = 0; i < 24; i++) all += x[i];
    ref[n++] = all;
    for (int i = 0; i < 4; i++) ref[n++] = x[15 + i];  // xq[0,1,3..6,0] = flat 12 + 3 + i
#undef X
    REQUIRE(mil_program_eval(p, MIL_PREC_FP16, x, y) == 0);
    test_allclose(y, ref, 24, 0, 0, "shape ops");
    mil_program_free(p);
}

TEST(mil_interp_matmul_broadcast_and_transposes) {
    // x [1,2,3,4]; B const [4,5] broadcast over the batch; x^T x; x x^T.
    char wl[256] = "";
    float B[20];
    for (int i = 0; i < 20; i++) {
        B[i] = (float)((i * 7) % 9 - 4) * 0.25f;
        snprintf(wl + strlen(wl), sizeof wl - strlen(wl), "%s%g", i ? "," : "", B[i]);
    }
    char *body = fmt(
        "        tensor<fp16, [1,2,3,5]> m1 = matmul(x=x,y=tensor<fp16, [4,5]>([%s]))[name=string(\"m1\")];\n"
        "        tensor<fp16, [1,2,4,4]> m2 = matmul(x=x,y=x,transpose_x=bool(true))[name=string(\"m2\")];\n"
        "        tensor<fp16, [2,3,3]> x3 = reshape(shape=tensor<int32, [3]>([2,3,4]),x=x)[name=string(\"x3\")];\n"
        "        tensor<fp16, [1,2,3,3]> m3 = matmul(x=x,y=x3,transpose_y=bool(true))[name=string(\"m3\")];\n"
        "        tensor<fp16, [1,1,1,30]> f1 = reshape(shape=tensor<int32, [4]>([1,1,1,-1]),x=m1)[name=string(\"f1\")];\n"
        "        tensor<fp16, [1,1,1,32]> f2 = reshape(shape=tensor<int32, [4]>([1,1,1,-1]),x=m2)[name=string(\"f2\")];\n"
        "        tensor<fp16, [1,1,1,18]> f3 = reshape(shape=tensor<int32, [4]>([1,1,1,-1]),x=m3)[name=string(\"f3\")];\n"
        "        tensor<fp16, [2,1,3,4]> xa = reshape(shape=tensor<int32, [4]>([2,1,3,4]),x=x)[name=string(\"xa\")];\n"
        "        tensor<fp16, [1,2,4,3]> xb = reshape(shape=tensor<int32, [4]>([1,2,4,3]),x=x)[name=string(\"xb\")];\n"
        "        tensor<fp16, [2,2,3,3]> m4 = matmul(x=xa,y=xb)[name=string(\"m4\")];\n"
        "        tensor<fp16, [1,1,1,36]> f4 = reshape(shape=tensor<int32, [4]>([1,1,1,-1]),x=m4)[name=string(\"f4\")];\n"
        "        tensor<fp16, [1,1,1,116]> out = concat(axis=int32(3),values=(f1,f2,f3,f4))[name=string(\"out\")];\n",
        wl);
    char *text = program("tensor<fp16, [1, 2, 3, 4]>", body);
    free(body);
    // x3 is declared [2,3,3] on purpose: the checker must catch it
    MilProgram *p = NULL;
    CHECK(mil_program_compile(text, NULL, 0, &p) == -1);
    CHECKF(strstr(err_msg(), "reshape 'x3': declared tensor<fp16, [2, 3, 3]> but the op produces tensor<fp16, [2, 3, 4]>")
               != NULL, "%s", err_msg());
    char *fixed = strstr(text, "[2,3,3]> x3");
    memcpy(fixed, "[2,3,4]", 7);
    p = compile_or_fail(text, NULL, 0);
    free(text);
    if (!p) return;
    float x[24], y[116], ref[116];
    for (int i = 0; i < 24; i++) x[i] = (float)((i * 5) % 11 - 5) * 0.125f;
    int n = 0;
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 5; j++) {
                float s = 0;
                for (int k = 0; k < 4; k++) s += x[b * 12 + i * 4 + k] * B[k * 5 + j];
                ref[n++] = s;
            }
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) {
                float s = 0;
                for (int k = 0; k < 3; k++) s += x[b * 12 + k * 4 + i] * x[b * 12 + k * 4 + j];
                ref[n++] = s;
            }
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++) {
                float s = 0;
                for (int k = 0; k < 4; k++) s += x[b * 12 + i * 4 + k] * x[b * 12 + j * 4 + k];
                ref[n++] = s;
            }
    // batch [2,1] x [1,2] broadcasts to [2,2]: out[i][j] = block i (3x4) . block j viewed as 4x3
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            for (int a = 0; a < 3; a++)
                for (int b = 0; b < 3; b++) {
                    float s = 0;
                    for (int k = 0; k < 4; k++) s += x[i * 12 + a * 4 + k] * x[j * 12 + k * 3 + b];
                    ref[n++] = s;
                }
    REQUIRE(mil_program_run_f32(p, x, y) == 0);
    test_allclose(y, ref, 116, 1e-6f, 1e-6f, "matmul variants");
    mil_program_free(p);
}

// fp16 mode rounds every op's result; fp32 mode rounds nothing.
TEST(mil_interp_fp16_rounds_every_op) {
    const char *body =
        "        fp16 tiny = const()[name=string(\"tiny\"), val=fp16(0.00048828125)];\n"  // 2^-11: half an fp16 step at 1.0
        "        tensor<fp16, [1,1,1,4]> a = add(x=x,y=tiny)[name=string(\"a\")];\n"
        "        tensor<fp16, [1,1,1,4]> b = add(x=a,y=tiny)[name=string(\"b\")];\n"
        "        tensor<fp16, [1,1,1,4]> c = mul(x=b,y=fp16(0.1))[name=string(\"c\")];\n"
        "        tensor<fp16, [1,1,1,8]> out = concat(axis=int32(3),values=(b,c))[name=string(\"out\")];\n";
    char *text = program("tensor<fp16, [1, 1, 1, 4]>", body);
    MilProgram *p = compile_or_fail(text, NULL, 0);
    free(text);
    if (!p) return;
    float x[4] = {1, 1, 3, -1}, y[8];
    REQUIRE(mil_program_eval(p, MIL_PREC_FP16, x, y) == 0);
    // 1 + 2^-11 ties to 1 (even), twice; 0.1 is the fp16 0.0999755859375
    // (-1 + 2^-11 is representable: below 1 in magnitude the fp16 step is 2^-11)
    CHECK(y[0] == 1.0f && y[1] == 1.0f && y[2] == 3.0f && y[3] == -1.0f + 0x1p-10f);
    // 3 * fp16(0.1) = 0.2999267578125 rounds (tie, even) to 0.2998046875; 3 * 0.1 would give 0.300048828125
    CHECK(y[4] == 0.0999755859375f && y[6] == 0.2998046875f);
    REQUIRE(mil_program_run_f32(p, x, y) == 0);
    CHECK(y[0] == 1.0f + 0x1p-10f && y[4] == (1.0f + 0x1p-10f) * 0.1f);
    CHECK(y[3] == -1.0f + 0x1p-10f);
    // the device format: fp16 in, fp16 out
    uint16_t hin[4], hout[8];
    fp16_from_f32_array(hin, x, 4);
    REQUIRE(mil_program_run(p, hin, hout) == 0);
    CHECK(hout[0] == 0x3c00 && hout[4] == fp16_from_f32(0.0999755859375f));
    // inputs are rounded to fp16 on entry in fp16 mode
    float xin[4] = {1.0f + 0x1p-12f, 1, 3, -1};
    REQUIRE(mil_program_eval(p, MIL_PREC_FP16, xin, y) == 0);
    CHECK(y[0] == 1.0f);
    CHECK(mil_program_n_ops(p) == 4);
    mil_program_free(p);
}

// Running twice gives the same bits (buffers are freed after their last use and re-made).
TEST(mil_interp_repeatable_runs) {
    char *text = dyn_matmul_text(8, 8, 8);
    MilProgram *p = compile_or_fail(text, NULL, 0);
    free(text);
    if (!p) return;
    float x[8 * 16], a[64], b[64];
    Rng r;
    rng_init(&r, 1);
    fill16(&r, x, 128, 1.0f);
    REQUIRE(mil_program_eval(p, MIL_PREC_FP16, x, a) == 0);
    REQUIRE(mil_program_eval(p, MIL_PREC_FP16, x, b) == 0);
    CHECK(!memcmp(a, b, sizeof a));
    CHECK(mil_program_value_elems(p) > 0);
    mil_program_free(p);
}

// --- rejections -------------------------------------------------------------------

TEST(mil_compile_rejects) {
    uint16_t w[64] = {0};
    uint8_t *blob;
    size_t bn;
    REQUIRE(mil_blob_build_fp16(w, 64, &blob, &bn) == 0);
    MilWeightFile wf = {"@model_path/weights/w.bin", blob, bn};
    const char *ok = "        tensor<fp16, [1,4,1,8]> out = mul(x=x,y=x)[name=string(\"out\")];\n";
#define IN4 "tensor<fp16, [1, 4, 1, 8]>"
    struct { const char *in, *body, *msg; } cases[] = {
        {IN4 " y, " IN4, ok, "mil:4:5: function 'main': the ANE takes exactly one input surface, found 2 inputs"},
        {"tensor<fp32, [1, 4, 1, 8]>", "        tensor<fp32, [1,4,1,8]> out = mul(x=x,y=x);\n",
         "mil:4:49: input 'x': expected an fp16 rank-4 tensor"},
        {"tensor<fp16, [4, 1, 8]>", "        tensor<fp16, [4,1,8]> out = mul(x=x,y=x);\n", "input 'x': expected an fp16 rank-4"},
        {IN4, "        tensor<fp16, [1,4,8]> out = reshape(shape=tensor<int32, [3]>([1,4,8]),x=x);\n",
         "output 'out': expected an fp16 rank-4 tensor such as tensor<fp16, [1, C, 1, S]>, found tensor<fp16, [1, 4, 8]>"},
        {IN4, "        tensor<fp16, [1,4,1,4]> out = mul(x=x,y=x)[name=string(\"out\")];\n",
         "mil:5:39: mul 'out': declared tensor<fp16, [1, 4, 1, 4]> but the op produces tensor<fp16, [1, 4, 1, 8]>"},
        {IN4, "        tensor<fp16, [1,4,1,8]> out = gelu(x=x);\n", "mil:5:39: gelu 'out': unsupported op"},
        {IN4, "        tensor<fp16, [1,4,1,8]> out = mul(x=x,y=x,z=x);\n", "unknown argument 'z' (expected: x, y)"},
        {IN4, "        tensor<fp16, [1,4,1,8]> out = mul(x=x);\n", "mul 'out': missing argument 'y'"},
        {IN4, "        tensor<fp16, [4,4,1,1]> W = const()[val=tensor<fp16, [4,4,1,1]>(BLOBFILE(path=string(\"@model_path/weights/nope.bin\"), offset=uint64(64)))];\n" "        tensor<fp16, [1,4,1,8]> out = conv(weight=W,x=x);\n",
         "no such weight file"},
        {IN4, "        tensor<fp16, [4,4,1,1]> W = const()[val=tensor<fp16, [4,4,1,1]>(BLOBFILE(path=string(\"@model_path/weights/w.bin\"), offset=uint64(128)))];\n" "        tensor<fp16, [1,4,1,8]> out = conv(weight=W,x=x);\n",
         "HINT: the MIL offset points at the chunk header"},
        {IN4, "        tensor<fp16, [4,2,1,1]> W = const()[val=tensor<fp16, [4,2,1,1]>(BLOBFILE(path=string(\"@model_path/weights/w.bin\"), offset=uint64(64)))];\n" "        tensor<fp16, [1,4,1,8]> out = conv(weight=W,x=x,groups=int32(2));\n",
         "expected 16 payload bytes for tensor<fp16, [4, 2, 1, 1]>, found 128"},
        {IN4, "        tensor<fp16, [4,4,3,3]> W = const()[val=tensor<fp16, [4,4,3,3]>(BLOBFILE(path=string(\"@model_path/weights/w.bin\"), offset=uint64(64)))];\n" "        tensor<fp16, [1,4,1,8]> out = conv(weight=W,x=x);\n",
         "expected 288 payload bytes"},
        {IN4, "        tensor<int32, [4]> pm = const()[val=tensor<int32, [4]>([0,1,3,2])];\n        tensor<int32, [4]> p2 = add(x=pm,y=pm);\n        tensor<fp16, [1,4,8,1]> out = transpose(x=x,perm=p2);\n",
         "argument 'x' must be fp16 or fp32, found int32"},
        {IN4, "        tensor<fp16, [1,4,1,8]> out = transpose(x=x,perm=tensor<int32, [4]>([0,1,1,2]));\n", "perm is not a permutation"},
        {IN4, "        tensor<fp16, [1,4,8,8]> out = matmul(x=x,y=x);\n", "inner dimensions differ"},
        {IN4, "        tensor<fp16, [1,4,1,8]> out = slice_by_size(x=x,begin=tensor<int32, [4]>([0,2,0,0]),size=tensor<int32, [4]>([1,4,1,8]));\n",
         "slice begin 2 size 4 is outside dim 1 (4)"},
        {IN4, "        tensor<fp16, [1,4,1,9]> out = reshape(x=x,shape=tensor<int32, [4]>([1,4,1,9]));\n", "shape has more elements"},
        {IN4, "        tensor<fp16, [1,4,1,8]> out = reshape(x=x,shape=tensor<int32, [4]>([1,-1,-1,8]));\n", "more than one -1"},
        {IN4, "        tensor<fp16, [1,4,1,8]> out = softmax(x=x,axis=int32(4));\n", "axis 4 is out of range for rank 4"},
        {IN4, "        tensor<fp16, [1,1,1,8]> out = reduce_sum(x=x,axes=tensor<int32, [2]>([1,-3]),keep_dims=bool(true));\n",
         "axis 1 listed twice"},
        {IN4, "        tensor<fp16, [1,4,1,8]> out = add(x=x,y=tensor<fp16, [3]>([1,2,3]));\n", "do not broadcast"},
        {IN4, "        tensor<fp16, [1,4,1,8]> out = cast(x=x,dtype=string(\"int8\"));\n", "cast to \"int8\" is not supported"},
        {IN4, "        int32 ax = const()[val=int32(3)];\n        tensor<fp16, [1,4,1,16]> out = concat(axis=ax,values=(x,tensor<fp16, [1,4,1,8]>(BLOBFILE(path=string(\"w.bin\"), offset=uint64(64)))));\n",
         "no such weight file"},
        {IN4, "        tensor<fp16, [1,4,1,8]> y = mul(x=x,y=x);\n        tensor<fp16, [1,4,1,8]> out = softmax(x=x,axis=y);\n", "argument 'axis' must be a constant, found 'y'"},
        {IN4, "        tensor<fp16, [1,4,1,8]> out = const()[val=tensor<fp16, [1,4,1,4]>([0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0])];\n", "declared tensor<fp16, [1, 4, 1, 8]> but the value is tensor<fp16, [1, 4, 1, 4]>"},
        {IN4, "        tensor<fp16, [1,4,1,8]> out = scaled_dot_product_attention(query=x,key=x,value=x,attn_mask=tensor<fp16, [3]>([0,0,0]));\n", "attn_mask tensor<fp16, [3]> does not broadcast"},
        {IN4, "        tensor<fp16, [1,4,1,8]> out = conv(weight=x,x=x);\n", "weight tensor<fp16, [1, 4, 1, 8]>"},
    };
#undef IN4
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text = program(cases[i].in, cases[i].body);
        MilProgram *p = NULL;
        int rc = mil_program_compile(text, &wf, 1, &p);
        CHECKF(rc == -1 && p == NULL && strstr(err_msg(), cases[i].msg), "case %zu: rc %d \"%s\" (want \"%s\")", i, rc,
               err_msg(), cases[i].msg);
        if (!rc) mil_program_free(p);
        free(text);
    }
    // two outputs
    const char *two = "program(1.3)\n{\n    func main<ios18>(tensor<fp16, [1, 4, 1, 8]> x) {\n"
                      "        tensor<fp16, [1,4,1,8]> a = mul(x=x,y=x);\n    } -> (a, x);\n}\n";
    MilProgram *p = NULL;
    CHECK(mil_program_compile(two, NULL, 0, &p) == -1 && strstr(err_msg(), "exactly one output surface, found 2"));
    const char *noname = "program(1.3)\n{\n    func f(tensor<fp16, [1, 4, 1, 8]> x) {\n    } -> (x);\n}\n";
    CHECK(mil_program_compile(noname, NULL, 0, &p) == -1 && strstr(err_msg(), "expected a function named 'main', found f"));
    CHECK(mil_program_compile("program(1.3) {", NULL, 0, &p) == -1 && strstr(err_msg(), "mil:1:15: expected 'func'"));
    free(blob);
}
