// MIL parser: both dialects, literals, error positions for malformed programs,
// and a byte-mutation fuzz run (parse + compile + small runs; nothing may crash or hang).
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/fp16.h"
#include "core/rng.h"
#include "core/timer.h"
#include "mil/mil_blob.h"
#include "mil/mil_interp.h"
#include "mil/mil_parse.h"
#include "test.h"

// The skeleton of ane-spec §3.1 / reference D.2 (the dialect the emitter writes).
static const char *k_ios18 =
    "program(1.3)\n"
    "[buildInfo = dict<string, string>({{\"coremlc-component-MIL\", \"3510.2.1\"}, {\"coremlc-version\", \"3505.4.1\"}, "
    "{\"coremltools-component-milinternal\", \"\"}, {\"coremltools-version\", \"9.0\"}})]\n"
    "{\n"
    "    func main<ios18>(tensor<fp16, [1, 768, 1, 256]> x) {\n"
    "        tensor<int32, [4]> b0 = const()[name=string(\"b0\"), val=tensor<int32, [4]>([0,0,0,0])];\n"
    "        tensor<int32, [4]> s0 = const()[name=string(\"s0\"), val=tensor<int32, [4]>([1,768,1,64])];\n"
    "        tensor<fp16, [1,768,1,64]> a = slice_by_size(x=x,begin=b0,size=s0)[name=string(\"a\")];\n"
    "        fp16 neg1 = const()[name=string(\"neg1\"), val=fp16(-1)];\n"
    "        fp16 sc = const()[name=string(\"sc\"), val=fp16(0.125000)];\n"
    "        bool ty = const()[name=string(\"ty\"), val=bool(false)];\n"
    "        string pt = const()[name=string(\"pt\"), val=string(\"valid\")];\n"
    "        tensor<fp16, [768,768,1,1]> W = const()[name=string(\"W\"), val=tensor<fp16, [768,768,1,1]>"
    "(BLOBFILE(path=string(\"@model_path/weights/weight.bin\"), offset=uint64(64)))];\n"
    "        tensor<fp16, [1,768,1,64]> out = mul(x=a,y=neg1)[name=string(\"out\")];\n"
    "    } -> (out);\n"
    "}\n";

// The older dialect (coremltools program(1.0) text: verbose scalar types, ios16, spaces, hex floats).
static const char *k_ios16 =
    "program(1.0)\n"
    "[buildInfo = dict<tensor<string, []>, tensor<string, []>>({{\"coremlc-component-MIL\", \"3402.3.2\"}, "
    "{\"coremltools-version\", \"8.1\"}})]\n"
    "{\n"
    "    func main<ios16>(tensor<fp16, [1, 10]> x, tensor<fp16, [1, 10]> y) {\n"
    "            tensor<string, []> dt = const()[name = tensor<string, []>(\"dt\"), val = tensor<string, []>(\"fp32\")];\n"
    "            tensor<bool, []> tx = const()[name = tensor<string, []>(\"tx\"), val = tensor<bool, []>(true)];\n"
    "            tensor<fp16, []> h = const()[name = tensor<string, []>(\"h\"), val = tensor<fp16, []>(0x1.8p-3)];\n"
    "            tensor<fp16, [2, 3]> w = const()[name = tensor<string, []>(\"w\"), val = tensor<fp16, [2, 3]>"
    "(BLOBFILE(path = tensor<string, []>(\"@model_path/weights/weight.bin\"), offset = tensor<uint64, []>(192)))];\n"
    "            tensor<fp16, [1, 10]> var_3 = mul(x = x, y = y)[name = tensor<string, []>(\"op_3_cast_fp16\")];\n"
    "            tensor<fp32, [1, 10]> var_4 = cast(dtype = dt, x = var_3)[name = tensor<string, []>(\"cast_4\")];\n"
    "        } -> (var_3, var_4);\n"
    "}\n";

static const MilGraphOp *find_op(const MilGraphFunc *f, const char *result) {
    for (int i = 0; i < f->n_ops; i++)
        if (!strcmp(f->values[f->ops[i].result].name, result)) return &f->ops[i];
    return NULL;
}

static const MilLiteral *const_val(const MilGraphFunc *f, const char *result) {
    const MilGraphOp *op = find_op(f, result);
    if (!op) return NULL;
    const MilArg *a = mil_op_attr(op, "val");
    return a && a->v.kind == MIL_ARG_LIT ? a->v.lit : NULL;
}

TEST(mil_parse_ios18_skeleton) {
    MilGraph g;
    int rc = mil_parse(k_ios18, strlen(k_ios18), "skel.mil", &g);
    CHECKF(rc == 0, "%s", err_msg());
    if (rc) return;
    CHECK(!strcmp(g.version, "1.3"));
    REQUIRE(g.n_info == 4);
    CHECK(!strcmp(g.info_keys[0], "coremlc-component-MIL") && !strcmp(g.info_vals[0], "3510.2.1"));
    CHECK(!strcmp(g.info_keys[2], "coremltools-component-milinternal") && !strcmp(g.info_vals[2], ""));
    const MilGraphFunc *f = mil_graph_func(&g, "main");
    REQUIRE(f != NULL);
    CHECK(!strcmp(f->opset, "ios18"));
    REQUIRE(f->n_inputs == 1 && f->n_outputs == 1 && f->n_ops == 9);
    const MilGraphValue *x = &f->values[f->inputs[0]];
    CHECK(!strcmp(x->name, "x") && x->op == -1 && x->type.dtype == MIL_DT_FP16 && x->type.rank == 4);
    CHECK(x->type.dims[0] == 1 && x->type.dims[1] == 768 && x->type.dims[2] == 1 && x->type.dims[3] == 256);
    CHECK(!strcmp(f->values[f->outputs[0]].name, "out"));

    const MilLiteral *b0 = const_val(f, "b0");
    REQUIRE(b0 && b0->kind == MIL_LIT_NUMBERS && b0->n == 4 && b0->type.dtype == MIL_DT_INT32);
    const MilLiteral *s0 = const_val(f, "s0");
    REQUIRE(s0 && s0->n == 4);
    CHECK(s0->num[0] == 1 && s0->num[1] == 768 && s0->num[2] == 1 && s0->num[3] == 64);
    const MilLiteral *neg1 = const_val(f, "neg1"), *sc = const_val(f, "sc");
    REQUIRE(neg1 && sc);
    CHECK(neg1->type.rank == 0 && neg1->type.dtype == MIL_DT_FP16 && neg1->num[0] == -1.0);
    CHECK(sc->num[0] == 0.125);
    CHECK(const_val(f, "ty")->type.dtype == MIL_DT_BOOL && const_val(f, "ty")->num[0] == 0);
    CHECK(const_val(f, "pt")->kind == MIL_LIT_STRING && !strcmp(const_val(f, "pt")->str, "valid"));
    const MilLiteral *W = const_val(f, "W");
    REQUIRE(W && W->kind == MIL_LIT_BLOB);
    CHECK(!strcmp(W->blob_path, "@model_path/weights/weight.bin") && W->blob_offset == 64);
    CHECK(W->type.rank == 4 && W->type.dims[0] == 768 && W->type.dims[3] == 1);

    const MilGraphOp *a = find_op(f, "a");
    REQUIRE(a && !strcmp(a->op, "slice_by_size") && a->n_args == 3 && a->n_attrs == 1);
    CHECK(a->line == 7 && a->col == 40);
    const MilArg *ax = mil_op_arg(a, "x"), *ab = mil_op_arg(a, "begin");
    REQUIRE(ax && ab);
    CHECK(ax->v.kind == MIL_ARG_REF && ax->v.ref == f->inputs[0]);
    CHECK(ab->v.kind == MIL_ARG_REF && !strcmp(f->values[ab->v.ref].name, "b0"));
    const MilArg *nm = mil_op_attr(a, "name");
    CHECK(nm && nm->v.kind == MIL_ARG_LIT && !strcmp(nm->v.lit->str, "a"));
    char buf[128];
    CHECK(!strcmp(mil_type_str(&f->values[a->result].type, buf, sizeof buf), "tensor<fp16, [1, 768, 1, 64]>"));
    mil_graph_free(&g);
    mil_graph_free(&g);  // freeing twice is harmless
}

TEST(mil_parse_ios16_dialect) {
    MilGraph g;
    int rc = mil_parse(k_ios16, strlen(k_ios16), NULL, &g);
    CHECKF(rc == 0, "%s", err_msg());
    if (rc) return;
    CHECK(!strcmp(g.version, "1.0") && g.n_info == 2);
    const MilGraphFunc *f = &g.funcs[0];
    CHECK(!strcmp(f->name, "main") && !strcmp(f->opset, "ios16"));
    CHECK(f->n_inputs == 2 && f->n_outputs == 2);
    CHECK(!strcmp(f->values[f->outputs[1]].name, "var_4"));
    const MilLiteral *dt = const_val(f, "dt"), *tx = const_val(f, "tx"), *h = const_val(f, "h"), *w = const_val(f, "w");
    REQUIRE(dt && tx && h && w);
    CHECK(dt->kind == MIL_LIT_STRING && !strcmp(dt->str, "fp32") && dt->type.rank == 0);
    CHECK(tx->type.dtype == MIL_DT_BOOL && tx->num[0] == 1);
    CHECK(h->type.dtype == MIL_DT_FP16 && h->num[0] == 0.1875);  // 0x1.8p-3
    CHECK(w->kind == MIL_LIT_BLOB && w->blob_offset == 192 && !strcmp(w->blob_path, "@model_path/weights/weight.bin"));
    const MilGraphOp *c = find_op(f, "var_4");
    REQUIRE(c && !strcmp(c->op, "cast"));
    CHECK(f->values[c->result].type.dtype == MIL_DT_FP32);
    const MilArg *nm = mil_op_attr(c, "name");
    CHECK(nm && !strcmp(nm->v.lit->str, "cast_4"));
    mil_graph_free(&g);
}

TEST(mil_parse_literals) {
    const char *text =
        "program(1)\n{\n  func f(tensor<fp16, [1, 1, 1, 2]> x) {\n"
        "    tensor<int32, [2, 2]> m = const()[val = tensor<int32, [2, 2]>([[1, 2], [3, -4]])];\n"
        "    fp32 ninf = const()[val = fp32(-inf)];\n"
        "    fp32 e = const()[val = fp32(1e-5)];\n"
        "    fp16 hx = const()[val = fp16(-0x1p-3)];\n"
        "    string s = const()[val = string(\"a\\\"b\\\\c\")];\n"
        "    uint64 o = const()[val = uint64(9007199254740992)];\n"
        "    int8 i8 = const()[val = int8(-128)];\n"
        "    tensor<bool, [3]> bl = const()[val = tensor<bool, [3]>([true, false, true])];\n"
        "    tensor<fp16, [1, 1, 1, 2]> y = add(x = x, y = fp16(2))[name = string(\"y\")]; // inline literal\n"
        "    tensor<fp16, [1, 1, 1, 4]> z = concat(axis = int32(3), values = (x, y));\n"
        "  } -> (z);\n}\n";
    MilGraph g;
    int rc = mil_parse(text, strlen(text), "lit.mil", &g);
    CHECKF(rc == 0, "%s", err_msg());
    if (rc) return;
    const MilGraphFunc *f = &g.funcs[0];
    CHECK(f->opset == NULL);
    const MilLiteral *m = const_val(f, "m");
    REQUIRE(m && m->n == 4);
    CHECK(m->num[0] == 1 && m->num[1] == 2 && m->num[2] == 3 && m->num[3] == -4);
    CHECK(isinf(const_val(f, "ninf")->num[0]) && const_val(f, "ninf")->num[0] < 0);
    CHECK(const_val(f, "e")->num[0] == 1e-5);
    CHECK(const_val(f, "hx")->num[0] == -0.125);
    CHECK(!strcmp(const_val(f, "s")->str, "a\"b\\c"));
    CHECK(const_val(f, "o")->num[0] == 9007199254740992.0);
    CHECK(const_val(f, "i8")->num[0] == -128);
    const MilLiteral *bl = const_val(f, "bl");
    CHECK(bl->n == 3 && bl->num[0] == 1 && bl->num[1] == 0 && bl->num[2] == 1);
    const MilGraphOp *y = find_op(f, "y");
    REQUIRE(y);
    const MilArg *yy = mil_op_arg(y, "y");
    CHECK(yy && yy->v.kind == MIL_ARG_LIT && yy->v.lit->num[0] == 2.0);
    const MilGraphOp *z = find_op(f, "z");
    REQUIRE(z);
    const MilArg *vals = mil_op_arg(z, "values");
    REQUIRE(vals && vals->v.kind == MIL_ARG_TUPLE && vals->v.n_items == 2);
    CHECK(vals->v.items[1].kind == MIL_ARG_REF && !strcmp(f->values[vals->v.items[1].ref].name, "y"));
    mil_graph_free(&g);
}

// Each malformed program must fail with "bad.mil:LINE:COL:" and say what was expected.
TEST(mil_parse_errors_have_line_and_column) {
    // base: program(1.3) / { / func main<ios18>(tensor<fp16, [1, 4, 1, 8]> x) { / STMT / } -> (y); / }
#define HEAD "program(1.3)\n{\nfunc main<ios18>(tensor<fp16, [1, 4, 1, 8]> x) {\n"
#define STMT "tensor<fp16, [1, 4, 1, 8]> y = mul(x=x, y=x);\n"
#define TAIL "} -> (y);\n}\n"
    struct { const char *text, *pos, *msg; } cases[] = {
        {"program(1.3\n{\n", "2:1", "expected ')' after the program version, found '{'"},
        {HEAD "tensor<fp16, [1, 4, 1, 8]> y = mul(x=x, y=x)\n" TAIL, "5:1", "expected ';' at the end of the statement, found '}'"},
        {HEAD "tensor<fp16, [1, 4, 1, 8]> y = mul(x=x, y=z);\n" TAIL, "4:43", "undefined value 'z'"},
        {HEAD "tensor<fp17, [1, 4, 1, 8]> y = mul(x=x, y=x);\n" TAIL, "4:8", "expected a dtype"},
        {HEAD "tensor<fp16, [1, 0, 1, 8]> y = mul(x=x, y=x);\n" TAIL, "4:18", "expected a dimension (an integer >= 1), found '0'"},
        {HEAD "tensor<fp16, [1, 4, 1, 8]> y = mul(x=x, y=x)[name=string(\"y];\n" TAIL, "4:58", "unterminated string"},
        {HEAD "tensor<fp16, [1, 4, 1, 8]> y = mul(x=x, y=x)$;\n" TAIL, "4:45", "unexpected character '$'"},
        {HEAD STMT STMT TAIL, "5:28", "'y' is already defined (at 4:28)"},
        {HEAD STMT "} (y);\n}\n", "5:3", "expected '->'"},
        {HEAD STMT "} -> (q);\n}\n", "5:7", "undefined output 'q'"},
        {HEAD "int32 a = const()[val=int32(3000000000)];\n" STMT TAIL, "4:29", "expected int32 value in"},
        {HEAD "tensor<int32, [4]> b = const()[val=tensor<int32, [4]>([0,0,0])];\n" STMT TAIL, "4:55",
         "expected 4 values for tensor<int32, [4]>, found 3"},
        {HEAD "fp16 a = const()[val=fp16(1.2.3)];\n" STMT TAIL, "4:27", "malformed number '1.2.3'"},
        {"", "1:1", "expected 'program', found end of input"},
        {HEAD STMT TAIL "x\n", "7:1", "expected end of input after the program's closing '}', found 'x'"},
        {HEAD "tensor<fp16, [1, 4, 1, 8]> y = mul(x=x,", "4:40", "expected an argument name, found end of input"},
        {HEAD "tensor<fp16, [1, 4, 1, 8]> y = concat(values=((((((((((x)))))))))));\n" TAIL, "4:54", "nested deeper"},
        {HEAD "tensor<fp16, [1, 4, 1, 8]> y = mul(x=x, x=x);\n" TAIL, "4:41", "argument 'x' given twice"},
        {HEAD "tensor<fp16, [1, 4, 1, 8]> y = mul(x=x, y=1);\n" TAIL, "4:43", "expected a value"},
        {"program(1.3)\n{\nfunc main(tensor<fp16, [1]> x) {\n} -> (x);\nfunc main(tensor<fp16, [1]> x) {\n} -> (x);\n}\n",
         "5:1", "function 'main' defined twice"},
        {HEAD "tensor<fp16, [1, 4, 1, 8]> y = mul(x=y, y=x);\n" TAIL, "4:38", "undefined value 'y'"},
    };
#undef HEAD
#undef STMT
#undef TAIL
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        MilGraph g;
        int rc = mil_parse(cases[i].text, strlen(cases[i].text), "bad.mil", &g);
        CHECKF(rc == -1, "case %zu parsed", i);
        char want[64];
        snprintf(want, sizeof want, "bad.mil:%s: ", cases[i].pos);
        CHECKF(!strncmp(err_msg(), want, strlen(want)) && strstr(err_msg(), cases[i].msg),
               "case %zu: got \"%s\", want \"%s%s\"", i, err_msg(), want, cases[i].msg);
        CHECK(g.arena == NULL && g.n_funcs == 0);
        mil_graph_free(&g);
    }
    // a NUL byte inside the text is an error at its position, not the end of the text
    const char nul[] = "program(1.3)\n{\0}";
    MilGraph g;
    CHECK(mil_parse(nul, sizeof nul - 1, "bad.mil", &g) == -1);
    CHECKF(strstr(err_msg(), "bad.mil:2:2: unexpected character byte 0x00") != NULL, "%s", err_msg());
}

// --- fuzz -------------------------------------------------------------------

// A small program exercising most ops, with a BLOBFILE weight (w.bin below).
static const char *k_fuzz_prog =
    "program(1.3)\n"
    "[buildInfo = dict<string, string>({{\"coremlc-component-MIL\", \"3510.2.1\"}})]\n"
    "{\n"
    "    func main<ios18>(tensor<fp16, [1, 8, 1, 12]> x) {\n"
    "        tensor<int32, [4]> b0 = const()[name=string(\"b0\"), val=tensor<int32, [4]>([0,0,0,0])];\n"
    "        tensor<int32, [4]> s0 = const()[name=string(\"s0\"), val=tensor<int32, [4]>([1,8,1,8])];\n"
    "        tensor<fp16, [1,8,1,8]> a = slice_by_size(x=x,begin=b0,size=s0)[name=string(\"a\")];\n"
    "        tensor<int32, [4]> b1 = const()[name=string(\"b1\"), val=tensor<int32, [4]>([0,0,0,8])];\n"
    "        tensor<int32, [4]> s1 = const()[name=string(\"s1\"), val=tensor<int32, [4]>([1,8,1,-1])];\n"
    "        tensor<fp16, [1,8,1,4]> wd = slice_by_size(x=x,begin=b1,size=s1)[name=string(\"wd\")];\n"
    "        tensor<int32, [4]> r1 = const()[name=string(\"r1\"), val=tensor<int32, [4]>([1,1,8,8])];\n"
    "        tensor<fp16, [1,1,8,8]> a2 = reshape(shape=r1,x=a)[name=string(\"a2\")];\n"
    "        tensor<int32, [4]> pm = const()[name=string(\"pm\"), val=tensor<int32, [4]>([0,1,3,2])];\n"
    "        tensor<fp16, [1,1,8,8]> at = transpose(perm=pm,x=a2)[name=string(\"at\")];\n"
    "        tensor<int32, [4]> r2 = const()[name=string(\"r2\"), val=tensor<int32, [4]>([1,1,8,4])];\n"
    "        tensor<fp16, [1,1,8,4]> w2 = reshape(shape=r2,x=wd)[name=string(\"w2\")];\n"
    "        bool tf = const()[name=string(\"tf\"), val=bool(false)];\n"
    "        tensor<fp16, [1,1,8,4]> mm = matmul(transpose_x=tf,transpose_y=tf,x=at,y=w2)[name=string(\"mm\")];\n"
    "        int32 ax = const()[name=string(\"ax\"), val=int32(-1)];\n"
    "        tensor<fp16, [1,1,8,4]> sm = softmax(axis=ax,x=mm)[name=string(\"sm\")];\n"
    "        tensor<int32, [1]> rax = const()[name=string(\"rax\"), val=tensor<int32, [1]>([1])];\n"
    "        bool kd = const()[name=string(\"kd\"), val=bool(true)];\n"
    "        tensor<fp16, [1,1,1,12]> ss = reduce_sum(x=x,axes=rax,keep_dims=kd)[name=string(\"ss\")];\n"
    "        fp16 eps = const()[name=string(\"eps\"), val=fp16(0.00001)];\n"
    "        tensor<fp16, [1,1,1,12]> ss3 = add(x=ss,y=eps)[name=string(\"ss3\")];\n"
    "        fp16 nh = const()[name=string(\"nh\"), val=fp16(-0.5)];\n"
    "        tensor<fp16, [1,1,1,12]> rr = pow(x=ss3,y=nh)[name=string(\"rr\")];\n"
    "        tensor<fp16, [1,8,1,12]> xr = mul(x=x,y=rr)[name=string(\"xr\")];\n"
    "        tensor<fp16, [8,8,1,1]> W = const()[name=string(\"W\"), val=tensor<fp16, [8,8,1,1]>"
    "(BLOBFILE(path=string(\"@model_path/weights/w.bin\"), offset=uint64(64)))];\n"
    "        tensor<fp16, [1,8,1,12]> cv = conv(groups=int32(1),weight=W,x=xr)[name=string(\"cv\")];\n"
    "        tensor<fp16, [1,8,1,12]> sg = sigmoid(x=cv)[name=string(\"sg\")];\n"
    "        tensor<int32, [4]> r3 = const()[name=string(\"r3\"), val=tensor<int32, [4]>([1,8,1,4])];\n"
    "        tensor<fp16, [1,8,1,4]> m4 = reshape(shape=r3,x=sm)[name=string(\"m4\")];\n"
    "        int32 cax = const()[name=string(\"cax\"), val=int32(3)];\n"
    "        tensor<fp16, [1,8,1,16]> out = concat(axis=cax,interleave=tf,values=(sg,m4))[name=string(\"out\")];\n"
    "    } -> (out);\n"
    "}\n";

static const char *k_fuzz_tokens[] = {
    "tensor<", "fp16", "int32", "(", ")", "[", "]", "{", "}", "<", ">", ",", "=", ";", "->", "-1", "0", "1e999",
    "0x", "\"", "BLOBFILE", "fp16(", "uint64(", "[1,1,1,1]", "const()", "-inf", "nan", "\\", "//", "\n", "(((",
};

static size_t mutate(Rng *r, char *buf, size_t len, size_t cap) {
    int n = rng_below(r, 10) < 6 ? 1 : 2 + (int)rng_below(r, 3);  // mostly single edits: more mutants get deep
    for (int k = 0; k < n && len > 0; k++) {
        size_t at = rng_below(r, len);
        switch (rng_below(r, 6)) {
        case 0:  // random byte
            buf[at] = (char)rng_below(r, 256);
            break;
        case 1: {  // delete a span
            size_t span = 1 + rng_below(r, 16);
            if (span > len - at) span = len - at;
            memmove(buf + at, buf + at + span, len - at - span);
            len -= span;
            break;
        }
        case 2: case 3: {  // insert a grammar token
            const char *t = k_fuzz_tokens[rng_below(r, sizeof k_fuzz_tokens / sizeof k_fuzz_tokens[0])];
            size_t tl = strlen(t);
            if (len + tl >= cap) break;
            memmove(buf + at + tl, buf + at, len - at);
            memcpy(buf + at, t, tl);
            len += tl;
            break;
        }
        case 4: {  // duplicate a span
            size_t span = 1 + rng_below(r, 40);
            if (span > len - at) span = len - at;
            if (len + span >= cap) break;
            size_t to = rng_below(r, len);
            char tmp[64];
            memcpy(tmp, buf + at, span);
            memmove(buf + to + span, buf + to, len - to);
            memcpy(buf + to, tmp, span);
            len += span;
            break;
        }
        default:  // tweak a digit (shapes, offsets, constants)
            if (buf[at] >= '0' && buf[at] <= '9') buf[at] = (char)('0' + rng_below(r, 10));
            else buf[at] = "0123456789-"[rng_below(r, 11)];
            break;
        }
    }
    return len;
}

TEST(mil_parse_fuzz_mutations) {
    const char *progs[] = {k_fuzz_prog, k_ios18, k_ios16};
    uint16_t w16[64];
    for (int i = 0; i < 64; i++) w16[i] = fp16_from_f32((float)((i * 37) % 17 - 8) / 8.0f);
    uint8_t *blob;
    size_t blob_size;
    REQUIRE(mil_blob_build_fp16(w16, 64, &blob, &blob_size) == 0);
    MilWeightFile wf = {"@model_path/weights/w.bin", blob, blob_size};
    // the unmutated program compiles and runs
    MilProgram *prog;
    int rc = mil_program_compile(k_fuzz_prog, &wf, 1, &prog);
    CHECKF(rc == 0, "%s", err_msg());
    if (!rc) mil_program_free(prog);

    Rng r;
    rng_init(&r, 2024);
    size_t cap = 16384;
    char *buf = malloc(cap + 1);
    float in[96], out[256];
    for (int i = 0; i < 96; i++) in[i] = (float)(i % 13) / 4.0f - 1.5f;
    // ANETRAIN_FUZZ_ITERS / ANETRAIN_FUZZ_SEED allow long soak runs; the default stays fast
    const char *ei = getenv("ANETRAIN_FUZZ_ITERS"), *es = getenv("ANETRAIN_FUZZ_SEED");
    int parsed = 0, compiled = 0, ran = 0, iters = ei ? atoi(ei) : 5000;
    if (es) rng_init(&r, strtoull(es, NULL, 10));
    double worst = 0, t0 = time_ms();
    for (int it = 0; it < iters; it++) {
        const char *src = progs[rng_below(&r, 3)];
        size_t len = strlen(src);
        memcpy(buf, src, len);
        len = mutate(&r, buf, len, cap);
        double t = time_ms();
        MilGraph g;
        if (mil_parse(buf, len, "fuzz.mil", &g) == 0) {
            parsed++;
            mil_graph_free(&g);
        } else {
            CHECKF(strncmp(err_msg(), "fuzz.mil:", 9) == 0, "error without position: %s", err_msg());
        }
        buf[len] = 0;  // compile sees the text up to the first NUL
        if (mil_program_compile(buf, &wf, 1, &prog) == 0) {
            compiled++;
            MilIoDesc di, dout;
            mil_program_io(prog, &di, &dout);
            if (mil_program_value_elems(prog) < 200000 && di.numel <= 96 && dout.numel <= 256) {
                CHECK(mil_program_eval(prog, MIL_PREC_FP16, in, out) == 0);
                ran++;
            }
            mil_program_free(prog);
        }
        t = time_ms() - t;
        if (t > worst) worst = t;
    }
    double total = time_ms() - t0;
    fprintf(stderr, "  fuzz: %d mutants, %d parsed, %d compiled, %d ran; %.0f ms total, worst %.1f ms\n", iters,
            parsed, compiled, ran, total, worst);
    CHECKF(worst < 1000, "one mutant took %.0f ms", worst);
    CHECK(parsed > 0 && parsed < iters);
    free(buf);
    free(blob);
}
