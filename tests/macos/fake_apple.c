// fake_apple: a tiny in-process imitation of the Objective-C runtime,
// CoreFoundation, IOSurface and the AppleNeuralEngine classes, linked with the
// real src/ane/ane_macos.c on Linux to run its logic: retain/release balance,
// autorelease pools, the tmp directory per hex id and its reference count,
// the @{} weights dictionary, the load retry, every error path. Built and run
// by tests/test_macos_syntax.c:
//
//   cc -std=c11 -D_GNU_SOURCE -Itests/macos -Isrc -o fake src/ane/ane_macos.c src/ane/device.c
//      src/ane/device_sim.c src/mil/mil_*.c src/core/{err,io,fp16,gemm,threads}.c tests/macos/fake_apple.c
//      -lm -lpthread && ./fake EMPTY_DIR [BAKED.mil BLOB_DIR [BAKED_IOS16.mil]]
// (device.c brings the ANE's rules, checked before the framework sees a
// program, and the dialect retry; they need the MIL interpreter.)
//
// It proves the file does what it means to, against the API as ane-spec §4
// describes it; it cannot prove the real framework behaves as described.
//
// objc_msgSend: ane_macos.c calls it through function pointers of each
// method's exact type; this fake defines it once with nine integer-register
// arguments and dispatches on the selector name. On x86-64 (System V) and
// arm64 (AAPCS64) every (id, SEL, pointer/integer...) call puts its arguments
// in the same registers/stack slots as this signature, and a BOOL result is
// the low byte of the returned register, so the fake receives exactly what
// the caller sent. Other architectures: the test is skipped.
//
// The fake deliberately does not include the stand-in headers (its
// objc_msgSend has a different type); its functions take void * where the SDK
// has distinct CF types, which is the same ABI.
#include <dirent.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "ane/device.h"
#include "core/err.h"

#if !defined(__x86_64__) && !defined(__aarch64__)
#error "fake_apple.c relies on the x86-64 or arm64 calling convention"
#endif

// ---------------------------------------------------------------------------
// faults: every misuse the fake detects, reported at exit

static int g_faults;
static void fault(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stdout, "FAULT: ");
    vfprintf(stdout, fmt, ap);
    fprintf(stdout, "\n");
    va_end(ap);
    g_faults++;
}

// ---------------------------------------------------------------------------
// objects: one struct for every CF/ObjC object, reference-counted

enum { K_STR = 1, K_DATA, K_NUM, K_ARR, K_DICT, K_ERR, K_DESC, K_MODEL, K_SURF, K_SURFOBJ, K_REQ };

typedef struct Obj {
    int kind, refs;
    char *str;               // STR text, ERR description
    uint8_t *bytes;          // DATA, SURF memory
    size_t len;
    long long num;           // NUM value, ERR code
    struct Obj **keys, **items;  // DICT keys, ARR/DICT values
    long n;
    struct Obj *a, *b;       // DESC: mil, weights; MODEL: desc; SURFOBJ: surface; REQ: inputs, outputs
    char hex[20];            // MODEL
    int compiled, loaded;    // MODEL
    int locks, lock_opts;    // SURF
} Obj;

static long g_live;  // objects alive (created - freed)

static Obj *obj_new(int kind) {
    Obj *o = calloc(1, sizeof *o);
    if (!o) abort();
    o->kind = kind;
    o->refs = 1;
    g_live++;
    return o;
}

static void obj_release(Obj *o);
static void obj_free(Obj *o) {
    for (long i = 0; i < o->n; i++) {
        if (o->keys) obj_release(o->keys[i]);
        if (o->items) obj_release(o->items[i]);
    }
    if (o->a) obj_release(o->a);
    if (o->b) obj_release(o->b);
    if (o->kind == K_SURF && o->locks) fault("IOSurface freed while locked");
    if (o->kind == K_MODEL && o->loaded) fault("model %s released while still loaded", o->hex);
    free(o->keys), free(o->items), free(o->str), free(o->bytes), free(o);
    g_live--;
}
static void obj_release(Obj *o) {
    if (!o) return;
    if (o->refs <= 0) {
        fault("release of a dead object (kind %d)", o->kind);
        return;
    }
    if (--o->refs == 0) obj_free(o);
}
static Obj *obj_retain(Obj *o) {
    if (o) o->refs++;
    return o;
}

// constant strings (kIOSurface* keys): never freed, not counted
static Obj *const_str(const char *s) {
    Obj *o = calloc(1, sizeof *o);
    o->kind = K_STR;
    o->refs = 1 << 30;
    o->str = strdup(s);
    return o;
}

static int is(const Obj *o, int kind) { return o && o->kind == kind; }

// ---------------------------------------------------------------------------
// autorelease pools

static Obj **g_pool;
static size_t g_pool_n, g_pool_cap;
static long g_pool_depth;

void *objc_autoreleasePoolPush(void) {
    g_pool_depth++;
    return (void *)(uintptr_t)(g_pool_n + 1);
}
void objc_autoreleasePoolPop(void *mark) {
    size_t m = (size_t)(uintptr_t)mark - 1;
    if (g_pool_depth <= 0 || m > g_pool_n) {
        fault("autorelease pool popped without a push");
        return;
    }
    while (g_pool_n > m) obj_release(g_pool[--g_pool_n]);
    g_pool_depth--;
}
static Obj *autoreleased(Obj *o) {
    if (g_pool_depth <= 0) fault("object autoreleased with no pool in place (an objc call outside a pool)");
    if (g_pool_n == g_pool_cap) {
        g_pool_cap = g_pool_cap ? 2 * g_pool_cap : 64;
        g_pool = realloc(g_pool, g_pool_cap * sizeof *g_pool);
    }
    g_pool[g_pool_n++] = o;
    return o;
}

// ---------------------------------------------------------------------------
// CoreFoundation

const char kCFTypeArrayCallBacks[64], kCFTypeDictionaryKeyCallBacks[64], kCFTypeDictionaryValueCallBacks[64];
const void *const kCFAllocatorDefault = NULL;

const void *CFRetain(const void *cf) {
    if (!cf) fault("CFRetain(NULL)");
    return obj_retain((Obj *)cf);
}
void CFRelease(const void *cf) {
    if (!cf) fault("CFRelease(NULL)");
    obj_release((Obj *)cf);
}

void *CFDataCreate(const void *alloc, const uint8_t *bytes, long len) {
    (void)alloc;
    Obj *o = obj_new(K_DATA);
    o->bytes = malloc(len > 0 ? (size_t)len : 1);
    if (len > 0) memcpy(o->bytes, bytes, (size_t)len);
    o->len = (size_t)len;
    return o;
}

void *CFStringCreateWithCString(const void *alloc, const char *s, unsigned enc) {
    (void)alloc;
    if (enc != 0x08000100) fault("CFString not created as UTF-8");
    Obj *o = obj_new(K_STR);
    o->str = strdup(s);
    return o;
}
long CFStringGetLength(const void *s) { return is(s, K_STR) ? (long)strlen(((const Obj *)s)->str) : 0; }
long CFStringGetMaximumSizeForEncoding(long n, unsigned enc) { return enc == 0x08000100 ? 3 * n : -1; }
unsigned char CFStringGetCString(const void *s, char *buf, long cap, unsigned enc) {
    const Obj *o = s;
    if (!is(o, K_STR) || enc != 0x08000100) fault("CFStringGetCString on a non-string or not UTF-8");
    if (!is(o, K_STR) || (long)strlen(o->str) + 1 > cap) return 0;
    memcpy(buf, o->str, strlen(o->str) + 1);
    return 1;
}

void *CFNumberCreate(const void *alloc, long type, const void *v) {
    (void)alloc;
    Obj *o = obj_new(K_NUM);
    if (type == 9) o->num = *(const int *)v;           // kCFNumberIntType
    else if (type == 4) o->num = *(const int64_t *)v;  // kCFNumberSInt64Type
    else fault("CFNumberCreate with unexpected type %ld", type);
    return o;
}

void *CFArrayCreate(const void *alloc, const void **vals, long n, const void *cb) {
    (void)alloc;
    if (cb != kCFTypeArrayCallBacks) fault("CFArray without kCFTypeArrayCallBacks");
    Obj *o = obj_new(K_ARR);
    o->n = n;
    o->items = calloc((size_t)n + 1, sizeof *o->items);
    for (long i = 0; i < n; i++) o->items[i] = obj_retain((Obj *)vals[i]);
    return o;
}

void *CFDictionaryCreate(const void *alloc, const void **keys, const void **vals, long n, const void *kcb,
                         const void *vcb) {
    (void)alloc;
    if (kcb != kCFTypeDictionaryKeyCallBacks || vcb != kCFTypeDictionaryValueCallBacks)
        fault("CFDictionary without the kCFType callbacks");
    Obj *o = obj_new(K_DICT);
    o->n = n;
    o->keys = calloc((size_t)n + 1, sizeof *o->keys);
    o->items = calloc((size_t)n + 1, sizeof *o->items);
    for (long i = 0; i < n; i++) {
        if (!is(keys[i], K_STR)) fault("dictionary key is not a string");
        o->keys[i] = obj_retain((Obj *)keys[i]);
        o->items[i] = obj_retain((Obj *)vals[i]);
    }
    return o;
}
static Obj *dict_get(const Obj *d, const char *key) {
    for (long i = 0; is(d, K_DICT) && i < d->n; i++)
        if (!strcmp(d->keys[i]->str, key)) return d->items[i];
    return NULL;
}

long CFErrorGetCode(const void *e) {
    if (!is(e, K_ERR)) fault("CFErrorGetCode on a non-error");
    return is(e, K_ERR) ? (long)((const Obj *)e)->num : 0;
}
void *CFErrorGetDomain(const void *e) { (void)e; return NULL; }
void *CFErrorCopyDescription(const void *e) { (void)e; return NULL; }

// ---------------------------------------------------------------------------
// IOSurface

Obj *kIOSurfaceAllocSize, *kIOSurfaceWidth, *kIOSurfaceHeight, *kIOSurfaceBytesPerRow, *kIOSurfaceBytesPerElement,
    *kIOSurfacePixelFormat;

static long long num_of(const Obj *d, const Obj *key) {
    const Obj *v = dict_get(d, key->str);
    return is(v, K_NUM) ? v->num : -1;
}

void *IOSurfaceCreate(const void *props) {
    long long bytes = num_of(props, kIOSurfaceAllocSize);
    if (bytes <= 0 || num_of(props, kIOSurfaceWidth) != bytes || num_of(props, kIOSurfaceHeight) != 1 ||
        num_of(props, kIOSurfaceBytesPerElement) != 1 || num_of(props, kIOSurfaceBytesPerRow) != bytes ||
        num_of(props, kIOSurfacePixelFormat) != 0 || ((const Obj *)props)->n != 6) {
        fault("IOSurfaceCreate properties are not {Width=Alloc=BytesPerRow=bytes, Height=1, BPE=1, PixelFormat=0}");
        return NULL;
    }
    Obj *o = obj_new(K_SURF);
    o->bytes = calloc((size_t)bytes, 1);
    o->len = (size_t)bytes;
    return o;
}
int IOSurfaceLock(void *s, uint32_t opts, uint32_t *seed) {
    (void)seed;
    Obj *o = s;
    if (!is(o, K_SURF)) fault("IOSurfaceLock on a non-surface");
    if (o->locks && o->lock_opts != (int)opts) fault("IOSurface locked twice with different options");
    o->locks++;
    o->lock_opts = (int)opts;
    return 0;
}
int IOSurfaceUnlock(void *s, uint32_t opts, uint32_t *seed) {
    (void)seed;
    Obj *o = s;
    if (!is(o, K_SURF) || o->locks <= 0) fault("IOSurfaceUnlock of an unlocked surface");
    else if (o->lock_opts != (int)opts) fault("IOSurfaceUnlock options %u differ from the lock's %d", opts, o->lock_opts);
    else o->locks--;
    return 0;
}
void *IOSurfaceGetBaseAddress(void *s) {
    Obj *o = s;
    if (!o->locks) fault("IOSurfaceGetBaseAddress without a lock");
    return o->bytes;
}
size_t IOSurfaceGetAllocSize(void *s) { return ((Obj *)s)->len; }

// ---------------------------------------------------------------------------
// the process: dlopen, NSTemporaryDirectory

static char g_tmp[1024];
static int g_no_framework;

void *dlopen(const char *path, int mode) {
    (void)mode;
    if (strcmp(path, "/System/Library/PrivateFrameworks/AppleNeuralEngine.framework/AppleNeuralEngine"))
        fault("dlopen of an unexpected path %s", path);
    return g_no_framework ? NULL : (void *)&g_no_framework;
}
char *dlerror(void) { return "fake: image not found"; }

void *NSTemporaryDirectory(void) {
    char buf[1100];
    snprintf(buf, sizeof buf, "%s/", g_tmp);  // the real one ends with '/'
    Obj *o = obj_new(K_STR);
    o->str = strdup(buf);
    return autoreleased(o);
}

// ---------------------------------------------------------------------------
// the Objective-C runtime and the four classes

static const char *g_missing_class, *g_missing_sel;
static int g_classes[4];
static const char *const CLASS_NAMES[4] = {"_ANEInMemoryModelDescriptor", "_ANEInMemoryModel", "_ANERequest",
                                           "_ANEIOSurfaceObject"};

void *objc_getClass(const char *name) {
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, CLASS_NAMES[i])) return g_missing_class && !strcmp(name, g_missing_class) ? NULL : &g_classes[i];
    return NULL;
}
static int class_index(const void *c) {
    for (int i = 0; i < 4; i++)
        if (c == &g_classes[i]) return i;
    return -1;
}

static char *g_sels[64];
void *sel_registerName(const char *name) {
    int i = 0;
    for (; i < 64 && g_sels[i]; i++)
        if (!strcmp(g_sels[i], name)) return g_sels[i];
    if (i == 64) abort();
    return g_sels[i] = strdup(name);
}
const char *sel_getName(void *sel) { return sel; }
static void *method_of(const void *cls, const char *sel, int is_class) {
    static const struct { int cls, is_class; const char *sel; } METHODS[] = {
        {0, 1, "modelWithMILText:weights:optionsPlist:"},
        {1, 1, "inMemoryModelWithDescriptor:"},
        {1, 0, "hexStringIdentifier"},
        {1, 0, "compileWithQoS:options:error:"},
        {1, 0, "loadWithQoS:options:error:"},
        {1, 0, "evaluateWithQoS:options:request:error:"},
        {1, 0, "unloadWithQoS:error:"},
        {2, 1, "requestWithInputs:inputIndices:outputs:outputIndices:weightsBuffer:perfStats:procedureIndex:"},
        {3, 1, "objectWithIOSurface:"},
    };
    if (g_missing_sel && !strcmp(sel, g_missing_sel)) return NULL;
    for (size_t i = 0; i < sizeof METHODS / sizeof *METHODS; i++)
        if (METHODS[i].cls == class_index(cls) && METHODS[i].is_class == is_class && !strcmp(METHODS[i].sel, sel))
            return (void *)&METHODS[i];
    return NULL;
}
void *class_getClassMethod(void *cls, void *sel) { return method_of(cls, sel, 1); }
void *class_getInstanceMethod(void *cls, void *sel) { return method_of(cls, sel, 0); }

// knobs the scenarios turn
static int g_fail_desc, g_fail_compile, g_load_failures, g_fail_eval;
static const char *g_reject_text;  // a chip that refuses programs containing this (a dialect's header)
static int g_loads, g_loads_ok, g_compiles, g_evals, g_unloads, g_desc_calls;
static long g_last_weights_n = -1;
static char g_last_hex[20];  // hex id of the newest model
static const char *g_hex_override;  // the id the next model reports (NULL: its hash)

static Obj *make_error(const char *text, long long code) {
    Obj *e = obj_new(K_ERR);
    e->str = strdup(text);
    e->num = code;
    return autoreleased(e);
}
static intptr_t fail_with(intptr_t errp, const char *text, long long code) {
    if (!errp) fault("NSError ** was NULL");
    else *(Obj **)errp = make_error(text, code);
    return 0;
}

// File `rel` under the model's tmp directory holds exactly data[0..len)?
static int file_is(const char *hex, const char *rel, const uint8_t *data, size_t len) {
    char path[2200];
    snprintf(path, sizeof path, "%s/%s/%s", g_tmp, hex, rel);
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    uint8_t *buf = malloc(len + 1);
    size_t got = fread(buf, 1, len + 1, f);
    fclose(f);
    int ok = got == len && !memcmp(buf, data, len);
    free(buf);
    return ok;
}

static int is_empty_dict(const Obj *o) { return is(o, K_DICT) && o->n == 0; }
static int is_zero_array(const Obj *o) { return is(o, K_ARR) && o->n == 1 && is(o->items[0], K_NUM) && !o->items[0]->num; }

static intptr_t send_model(Obj *m, const char *sel, intptr_t a0, intptr_t a1, intptr_t a2, intptr_t a3) {
    unsigned qos = (unsigned)(a0 & 0xffffffffu);
    if (!is(m, K_MODEL)) {
        fault("-%s sent to a non-model", sel);
        return 0;
    }
    if (!strcmp(sel, "hexStringIdentifier")) {
        Obj *s = obj_new(K_STR);
        s->str = strdup(m->hex);
        return (intptr_t)autoreleased(s);
    }
    if (strcmp(sel, "hexStringIdentifier") && qos != 21) fault("-%s with QoS %u, expected 21", sel, qos);
    if (!strcmp(sel, "compileWithQoS:options:error:")) {
        g_compiles++;
        if (!is_empty_dict((Obj *)a1)) fault("compile options are not @{}");
        if (g_fail_compile) return fail_with(a2, "fake compile failure:\nunsupported op\tat line 7", 7);
        const Obj *mil = m->a->a, *w = m->a->b;
        if (!file_is(m->hex, "model.mil", mil->bytes, mil->len))
            return fail_with(a2, "model.mil missing from the tmp directory", 2);
        for (long i = 0; i < w->n; i++) {
            const Obj *data = dict_get(w->items[i], "data");
            if (!file_is(m->hex, w->keys[i]->str + strlen("@model_path/"), data->bytes, data->len))
                return fail_with(a2, "weight file missing from the tmp directory", 3);
        }
        m->compiled = 1;
        return 1;
    }
    if (!strcmp(sel, "loadWithQoS:options:error:")) {
        g_loads++;
        if (!is_empty_dict((Obj *)a1)) fault("load options are not @{}");
        if (!m->compiled) fault("load before compile");
        if (g_load_failures > 0) {
            g_load_failures--;
            return fail_with(a2, "fake load failure", 5);
        }
        m->loaded = 1;
        g_loads_ok++;
        return 1;
    }
    if (!strcmp(sel, "evaluateWithQoS:options:request:error:")) {
        g_evals++;
        Obj *req = (Obj *)a2;
        if (!is_empty_dict((Obj *)a1)) fault("evaluate options are not @{}");
        if (!m->loaded) fault("evaluate of a model that is not loaded");
        if (!is(req, K_REQ)) fault("evaluate without a request");
        if (g_fail_eval) return fail_with(a3, "fake eval failure", 9);
        Obj *in = req->a->items[0]->a, *out = req->b->items[0]->a;
        if (in->locks || out->locks) fault("evaluate while the CPU holds a surface lock");
        for (size_t i = 0; i < out->len; i++) out->bytes[i] = in->bytes[i % in->len] ^ 0x5a;  // a known transform
        return 1;
    }
    if (!strcmp(sel, "unloadWithQoS:error:")) {
        g_unloads++;
        if (!m->loaded) fault("unload of a model that is not loaded");
        m->loaded = 0;
        return 1;
    }
    fault("unknown selector -%s", sel);
    return 0;
}

intptr_t objc_msgSend(intptr_t self, intptr_t sel_, intptr_t a0, intptr_t a1, intptr_t a2, intptr_t a3, intptr_t a4,
                      intptr_t a5, intptr_t a6) {
    const char *sel = (const char *)sel_;
    int cls = class_index((void *)self);
    if (strcmp(sel, "localizedDescription") == 0) {
        if (!is((Obj *)self, K_ERR)) fault("localizedDescription of a non-error");
        Obj *s = obj_new(K_STR);
        s->str = strdup(((Obj *)self)->str);
        return (intptr_t)autoreleased(s);
    }
    if (cls < 0) return send_model((Obj *)self, sel, a0, a1, a2, a3);
    if (cls == 0 && !strcmp(sel, "modelWithMILText:weights:optionsPlist:")) {
        Obj *mil = (Obj *)a0, *w = (Obj *)a1;
        g_desc_calls++;
        g_last_weights_n = is(w, K_DICT) ? w->n : -1;
        if (!is(mil, K_DATA)) fault("MIL text is not NSData");
        if (!is(w, K_DICT)) fault("weights is not an NSDictionary (nil?)");
        if (a2) fault("optionsPlist is not nil");
        for (long i = 0; is(w, K_DICT) && i < w->n; i++) {
            Obj *v = w->items[i], *off = dict_get(v, "offset"), *data = dict_get(v, "data");
            if (strncmp(w->keys[i]->str, "@model_path/", 12) || !is(off, K_NUM) || off->num || !is(data, K_DATA) ||
                v->n != 2)
                fault("weights entry %s is not {offset: 0, data: NSData}", w->keys[i]->str);
        }
        if (g_fail_desc || !is(mil, K_DATA) || !is(w, K_DICT)) return 0;
        if (g_reject_text && memmem(mil->bytes, mil->len, g_reject_text, strlen(g_reject_text))) return 0;
        Obj *d = obj_new(K_DESC);
        d->a = obj_retain(mil);
        d->b = obj_retain(w);
        return (intptr_t)autoreleased(d);
    }
    if (cls == 1 && !strcmp(sel, "inMemoryModelWithDescriptor:")) {
        Obj *d = (Obj *)a0;
        if (!is(d, K_DESC)) fault("inMemoryModelWithDescriptor: without a descriptor");
        Obj *m = obj_new(K_MODEL);
        m->a = obj_retain(d);
        uint64_t h = 1469598103934665603ull;  // FNV-1a over the text and the weights: identical programs, same id
        for (size_t i = 0; i < d->a->len; i++) h = (h ^ d->a->bytes[i]) * 1099511628211ull;
        for (long i = 0; i < d->b->n; i++) {
            const Obj *data = dict_get(d->b->items[i], "data");
            for (size_t j = 0; j < data->len; j++) h = (h ^ data->bytes[j]) * 1099511628211ull;
        }
        if (g_hex_override) snprintf(m->hex, sizeof m->hex, "%s", g_hex_override);
        else snprintf(m->hex, sizeof m->hex, "%016llX", (unsigned long long)h);
        memcpy(g_last_hex, m->hex, sizeof g_last_hex);
        return (intptr_t)autoreleased(m);
    }
    if (cls == 3 && !strcmp(sel, "objectWithIOSurface:")) {
        if (!is((Obj *)a0, K_SURF)) fault("objectWithIOSurface: without an IOSurface");
        Obj *o = obj_new(K_SURFOBJ);
        o->a = obj_retain((Obj *)a0);
        return (intptr_t)autoreleased(o);
    }
    if (cls == 2 && !strcmp(sel, "requestWithInputs:inputIndices:outputs:outputIndices:weightsBuffer:perfStats:"
                                 "procedureIndex:")) {
        Obj *ins = (Obj *)a0, *outs = (Obj *)a2, *proc = (Obj *)a6;
        if (!is(ins, K_ARR) || ins->n != 1 || !is(ins->items[0], K_SURFOBJ)) fault("inputs is not @[surface]");
        if (!is(outs, K_ARR) || outs->n != 1 || !is(outs->items[0], K_SURFOBJ)) fault("outputs is not @[surface]");
        if (!is_zero_array((Obj *)a1) || !is_zero_array((Obj *)a3)) fault("indices are not @[@0]");
        if (a4 || a5) fault("weightsBuffer/perfStats are not nil");
        if (!is(proc, K_NUM) || proc->num) fault("procedureIndex is not @0");
        Obj *r = obj_new(K_REQ);
        r->a = obj_retain(ins);
        r->b = obj_retain(outs);
        return (intptr_t)autoreleased(r);
    }
    fault("unknown selector %s on class %d", sel, cls);
    return 0;
}

// ---------------------------------------------------------------------------
// scenarios

static int g_fails;
#define EXPECT(cond, ...)                                                   \
    do {                                                                    \
        if (!(cond)) {                                                      \
            printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);          \
            printf(__VA_ARGS__);                                            \
            printf("\n");                                                   \
            g_fails++;                                                      \
        }                                                                   \
    } while (0)

static const char *PROGRAM_HEAD =
    "program(1.3)\n[buildInfo = dict<string, string>({{\"coremlc-version\", \"3505.4.1\"}})]\n{\n"
    "    func main<ios18>(tensor<fp16, [1, 4, 1, 8]> x) {\n";
static char *program(const char *body, const char *out_type) {
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s%s        %s out = mul(x=x,y=x)[name=string(\"out\")];\n    } -> (out);\n}\n",
             PROGRAM_HEAD, body, out_type);
    return buf;
}
static const char *WEIGHT_BODY =
    "        tensor<fp16, [1,4,1,1]> w = const()[name=string(\"w\"), val=tensor<fp16, [1,4,1,1]>"
    "(BLOBFILE(path=string(\"@model_path/weights/w.bin\"), offset=uint64(64)))];\n";

static int dir_exists(const char *hex) {
    char p[2200];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", g_tmp, hex);
    return stat(p, &st) == 0;
}
static int tmp_entries(void) {
    DIR *d = opendir(g_tmp);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d) closedir(d);
    return n;
}
// Like device_kernel_free: NULL (a failed compile) is ignored.
static void kfree(Device *d, DeviceKernel *k) {
    if (k) d->ops->kernel_free(d, k);
}

static void scenario_init_errors(void) {
    Device d;
    memset(&d, 0, sizeof d);
    g_no_framework = 1;
    EXPECT(device_ane_init(&d) == -1 && strstr(err_msg(), "AppleNeuralEngine"), "%s", err_msg());
    g_no_framework = 0;
    g_missing_class = "_ANERequest";
    EXPECT(device_ane_init(&d) == -1 && strstr(err_msg(), "class _ANERequest not found"), "%s", err_msg());
    g_missing_class = NULL;
    g_missing_sel = "unloadWithQoS:error:";
    EXPECT(device_ane_init(&d) == -1 && strstr(err_msg(), "-[_ANEInMemoryModel unloadWithQoS:error:] not found"), "%s",
           err_msg());
    g_missing_sel = "objectWithIOSurface:";
    EXPECT(device_ane_init(&d) == -1 && strstr(err_msg(), "+[_ANEIOSurfaceObject objectWithIOSurface:]"), "%s",
           err_msg());
    g_missing_sel = NULL;
    EXPECT(d.ops == NULL && d.impl == NULL, "a failed init left ops/impl set");
}

static void scenario_main(void) {
    Device d;
    memset(&d, 0, sizeof d);
    EXPECT(device_ane_init(&d) == 0, "%s", err_msg());
    if (!d.ops) return;
    EXPECT(!strcmp(d.name, "ane"), "name %s", d.name);

    // a weight-free program: the weights dictionary must be @{} (not nil)
    DeviceKernel *k0 = NULL;
    EXPECT(d.ops->compile(&d, program("", "tensor<fp16, [1, 4, 1, 8]>"), NULL, 0, &k0) == 0, "%s", err_msg());
    EXPECT(g_last_weights_n == 0, "weights dict had %ld entries (or was nil: -1)", g_last_weights_n);
    char hex0[20];
    snprintf(hex0, sizeof hex0, "%s", g_last_hex);
    EXPECT(dir_exists(hex0), "tmp dir %s/%s missing after compile", g_tmp, hex0);
    size_t in_cw[2], out_cw[2];
    if (k0) d.ops->kernel_io(k0, in_cw, out_cw);
    EXPECT(k0 && in_cw[0] == 4 && in_cw[1] == 8 && out_cw[0] == 4 && out_cw[1] == 8, "kernel io");
    if (!k0) return;

    // two identical kernels with a weight: one directory, freed with the last of them
    uint8_t blob[136] = {1, 0, 0, 0, 2};
    for (int i = 128; i < 136; i++) blob[i] = (uint8_t)i;
    DeviceWeight w = {"@model_path/weights/w.bin", blob, sizeof blob};
    char *mil_w = strdup(program(WEIGHT_BODY, "tensor<fp16, [1, 4, 1, 8]>"));
    DeviceKernel *k1 = NULL, *k2 = NULL;
    EXPECT(d.ops->compile(&d, mil_w, &w, 1, &k1) == 0, "%s", err_msg());
    EXPECT(g_last_weights_n == 1, "weights dict had %ld entries", g_last_weights_n);
    char hex1[20];
    snprintf(hex1, sizeof hex1, "%s", g_last_hex);
    EXPECT(strcmp(hex1, hex0) && dir_exists(hex1), "no tmp dir of its own for the weighted kernel");
    EXPECT(d.ops->compile(&d, mil_w, &w, 1, &k2) == 0, "%s", err_msg());
    kfree(&d, k1);
    EXPECT(dir_exists(hex1), "freeing one of two identical kernels removed the shared directory (ane-spec 10.14)");
    kfree(&d, k2);
    EXPECT(!dir_exists(hex1), "the last free did not remove %s", hex1);

    // a blob path without the @model_path/ prefix is written and keyed with it
    DeviceWeight bare = {"weights/w.bin", blob, sizeof blob};
    EXPECT(d.ops->compile(&d, mil_w, &bare, 1, &k1) == 0, "%s", err_msg());
    kfree(&d, k1);
    DeviceWeight evil = {"@model_path/../../etc/x.bin", blob, sizeof blob};
    EXPECT(d.ops->compile(&d, mil_w, &evil, 1, &k1) == -1 && strstr(err_msg(), "'..'"), "%s", err_msg());

    // the runtime's id names a tmp directory: any one safe path component is taken,
    // a path or a "." / ".." is refused
    g_hex_override = "id with spaces+=";
    EXPECT(d.ops->compile(&d, mil_w, &w, 1, &k1) == 0 && dir_exists("id with spaces+="), "%s", err_msg());
    kfree(&d, k1);
    g_hex_override = "..";
    EXPECT(d.ops->compile(&d, mil_w, &w, 1, &k1) == -1 && strstr(err_msg(), "plain file name"), "%s", err_msg());
    g_hex_override = "a/b";
    EXPECT(d.ops->compile(&d, mil_w, &w, 1, &k1) == -1 && strstr(err_msg(), "plain file name"), "%s", err_msg());
    g_hex_override = NULL;

    // MIL errors come from our parser, before any runtime call
    int calls = g_desc_calls;
    EXPECT(d.ops->compile(&d, "program(1.3) {", NULL, 0, &k1) == -1 && strstr(err_msg(), "mil:1:"), "%s", err_msg());
    EXPECT(d.ops->compile(&d, program("", "tensor<fp32, [1, 4, 1, 8]>"), NULL, 0, &k1) == -1 &&
               strstr(err_msg(), "expected 'out' of type tensor<fp16, [1, C, 1, W]>"),
           "%s", err_msg());
    EXPECT(g_desc_calls == calls, "a MIL error still reached the framework");

    // runtime failures: one line each, the directory not leaked
    int entries = tmp_entries();
    g_fail_desc = 1;
    EXPECT(d.ops->compile(&d, mil_w, &w, 1, &k1) == -1 && strstr(err_msg(), "returned nil"), "%s", err_msg());
    g_fail_desc = 0;
    g_fail_compile = 1;
    EXPECT(d.ops->compile(&d, mil_w, &w, 1, &k1) == -1 && strstr(err_msg(), "compileWithQoS:options:error: failed") &&
               strstr(err_msg(), "fake compile failure: unsupported op at line 7 (code 7)") &&
               !strchr(err_msg(), '\n'),
           "%s", err_msg());
    g_fail_compile = 0;
    EXPECT(tmp_entries() == entries, "a failed compile left its tmp directory behind");
    g_load_failures = 1;
    g_loads = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    EXPECT(d.ops->compile(&d, mil_w, &w, 1, &k1) == 0, "one load failure should be retried: %s", err_msg());
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    EXPECT(g_loads == 2 && ms >= 95, "loads %d, %.1f ms between", g_loads, ms);
    kfree(&d, k1);
    g_load_failures = 2;
    EXPECT(d.ops->compile(&d, mil_w, &w, 1, &k1) == -1 && strstr(err_msg(), "loadWithQoS:options:error: failed twice") &&
               strstr(err_msg(), "fake load failure (code 5)"),
           "%s", err_msg());
    g_load_failures = 0;
    EXPECT(tmp_entries() == entries, "a failed load left its tmp directory behind");

    // surfaces, requests, eval
    DeviceSurface *in = NULL, *out = NULL, *odd = NULL;
    EXPECT(d.ops->surface_create(&d, 4, 8, &in) == 0 && d.ops->surface_create(&d, 4, 8, &out) == 0 &&
               d.ops->surface_create(&d, 4, 9, &odd) == 0,
           "%s", err_msg());
    if (!in || !out || !odd) return;
    uint16_t *p = d.ops->surface_lock(in, 1);
    for (int i = 0; p && i < 32; i++) p[i] = (uint16_t)(0x3c00 + i);
    d.ops->surface_unlock(in, 1);
    DeviceRequest *r = NULL;
    EXPECT(d.ops->request_create(&d, k0, odd, out, &r) == -1 && strstr(err_msg(), "input surface [4, 9] does not match"),
           "%s", err_msg());
    EXPECT(d.ops->request_create(&d, k0, in, odd, &r) == -1 && strstr(err_msg(), "output surface [4, 9]"), "%s",
           err_msg());
    EXPECT(d.ops->request_create(&d, k0, in, in, &r) == -1 && strstr(err_msg(), "different surfaces"), "%s", err_msg());
    EXPECT(d.ops->request_create(&d, k0, in, out, &r) == 0, "%s", err_msg());
    if (!r) return;
    EXPECT(d.ops->eval(&d, r) == 0, "%s", err_msg());
    const uint16_t *q = d.ops->surface_lock(out, 0);
    int same = q != NULL;
    for (int i = 0; q && i < 32; i++) same &= q[i] == (uint16_t)((0x3c00 + i) ^ 0x5a5a);
    d.ops->surface_unlock(out, 0);
    EXPECT(same, "the output surface does not hold what the fake ANE wrote");
    g_fail_eval = 1;
    EXPECT(d.ops->eval(&d, r) == -1 && strstr(err_msg(), "evaluateWithQoS:options:request:error: failed: fake eval "
                                                          "failure (code 9)"),
           "eval's BOOL must be checked (ane-spec 10.9): %s", err_msg());
    g_fail_eval = 0;

    d.ops->request_free(&d, r);
    d.ops->surface_free(&d, in);
    d.ops->surface_free(&d, out);
    d.ops->surface_free(&d, odd);
    kfree(&d, k0);
    EXPECT(!dir_exists(hex0), "tmp dir of the weight-free kernel not removed");
    d.ops->destroy(&d);
    EXPECT(g_unloads == g_loads_ok, "%d loads succeeded, %d unloads", g_loads_ok, g_unloads);
    free(mil_w);
}

static char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)len + 1);
    if (b && fread(b, 1, (size_t)len, f) != (size_t)len) free(b), b = NULL;
    if (b) b[len] = 0, *n = (size_t)len;
    fclose(f);
    return b;
}

// A static pipeline's kernel (its MIL and weight files as `anetrain mil KERNEL
// --blobs DIR` writes them): every BLOBFILE goes into the weights dictionary
// and is written under the kernel's tmp directory byte for byte; the next
// update's weights (one byte changed) give another id and directory, and each
// directory goes with its kernel.
// Through device.c, as the pipelines compile: the ANE's rules are checked
// before the framework sees a program, and a chip that refuses one dialect
// gets the other (device_compile_either).
static void scenario_rules_and_dialect(Device *d, const char *mil, const char *alt_path, const DeviceWeight *w,
                                       int nw) {
    size_t n;
    char *alt = read_file(alt_path, &n);
    EXPECT(alt != NULL && strstr(alt, "program(1.0)"), "cannot read the ios16 program %s", alt_path);
    if (!alt) return;
    d->compile_budget = 100;
    DeviceKernel *k = NULL;
    const int calls = g_desc_calls;
    EXPECT(device_compile(d, program("", "tensor<fp16, [1, 4, 1, 8]>"), NULL, 0, &k) == -1 &&
               strstr(err_msg(), "ANE rule io-rows") && g_desc_calls == calls,
           "a 4x8 surface reached the framework or was not refused by rule: %s", err_msg());
    g_reject_text = "program(1.3)";  // an M1: ios18 refused
    EXPECT(device_compile_either(d, mil, alt, w, nw, &k) == 0 && d->dialect_fallbacks == 1 &&
               g_desc_calls == calls + 2,
           "the ios16 retry: %s (fallbacks %d, %d descriptor calls)", err_msg(), d->dialect_fallbacks,
           g_desc_calls - calls);
    kfree(d, k);
    g_reject_text = "program(1.";  // both refused: the first error is the one reported
    EXPECT(device_compile_either(d, mil, alt, w, nw, &k) == -1 && strstr(err_msg(), "returned nil") &&
               d->dialect_fallbacks == 1,
           "both dialects refused: %s", err_msg());
    g_reject_text = NULL;
    free(alt);
}

static void scenario_baked(const char *mil_path, const char *blob_dir, const char *alt_path) {
    Device d;
    memset(&d, 0, sizeof d);
    EXPECT(device_ane_init(&d) == 0, "%s", err_msg());
    size_t n;
    char *mil = read_file(mil_path, &n);
    EXPECT(mil != NULL, "cannot read %s", mil_path);
    if (!d.ops || !mil) return;
    enum { MAXW = 32 };
    DeviceWeight w[MAXW];
    char *paths[MAXW];
    int nw = 0;
    const char *key = "BLOBFILE(path=string(\"";
    for (const char *p = strstr(mil, key); p && nw < MAXW; p = strstr(p + 1, key)) {
        const char *a = p + strlen(key), *e = strchr(a, '"');
        char file[1200];
        paths[nw] = strndup(a, (size_t)(e - a));
        snprintf(file, sizeof file, "%s/%s", blob_dir, strrchr(paths[nw], '/') + 1);
        size_t len = 0;
        uint8_t *data = (uint8_t *)read_file(file, &len);
        EXPECT(data != NULL, "cannot read %s", file);
        if (!data) return;
        w[nw] = (DeviceWeight){paths[nw], data, len};
        nw++;
    }
    EXPECT(nw >= 4, "a baked kernel with only %d weight files", nw);
    DeviceKernel *k1 = NULL, *k2 = NULL;
    EXPECT(d.ops->compile(&d, mil, w, nw, &k1) == 0, "%s", err_msg());
    EXPECT(g_last_weights_n == nw, "weights dict had %ld entries, the program has %d files", g_last_weights_n, nw);
    char hex1[20];
    snprintf(hex1, sizeof hex1, "%s", g_last_hex);
    for (int i = 0; i < nw; i++) {
        char file[2400];
        size_t len = 0;
        snprintf(file, sizeof file, "%s/%s/%s", g_tmp, hex1, w[i].path + strlen("@model_path/"));
        char *got = read_file(file, &len);
        EXPECT(got && len == w[i].size && !memcmp(got, w[i].data, len), "%s differs from the blob given", file);
        free(got);
    }
    ((uint8_t *)w[nw - 1].data)[w[nw - 1].size - 1] ^= 1;  // the next update's weights
    EXPECT(d.ops->compile(&d, mil, w, nw, &k2) == 0, "%s", err_msg());
    EXPECT(strcmp(g_last_hex, hex1) && dir_exists(g_last_hex), "new weights, same id %s", g_last_hex);
    char hex2[20];
    snprintf(hex2, sizeof hex2, "%s", g_last_hex);
    kfree(&d, k1);
    EXPECT(!dir_exists(hex1) && dir_exists(hex2), "freeing the old kernel must remove its directory only");
    kfree(&d, k2);
    EXPECT(!dir_exists(hex2), "the new kernel's directory outlived it");
    if (alt_path) scenario_rules_and_dialect(&d, mil, alt_path, w, nw);
    for (int i = 0; i < nw; i++) free((void *)w[i].data), free(paths[i]);
    free(mil);
    d.ops->destroy(&d);
}

int main(int argc, char **argv) {
    if (argc != 2 && argc != 4 && argc != 5) {
        fprintf(stderr, "usage: %s EMPTY_TMP_DIR [BAKED.mil BLOB_DIR [BAKED_IOS16.mil]]\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IONBF, 0);  // FAULT lines must survive a crash
    snprintf(g_tmp, sizeof g_tmp, "%s", argv[1]);
    kIOSurfaceAllocSize = const_str("IOSurfaceAllocSize");
    kIOSurfaceWidth = const_str("IOSurfaceWidth");
    kIOSurfaceHeight = const_str("IOSurfaceHeight");
    kIOSurfaceBytesPerRow = const_str("IOSurfaceBytesPerRow");
    kIOSurfaceBytesPerElement = const_str("IOSurfaceBytesPerElement");
    kIOSurfacePixelFormat = const_str("IOSurfacePixelFormat");

    scenario_init_errors();
    scenario_main();
    if (argc >= 4) scenario_baked(argv[2], argv[3], argc == 5 ? argv[4] : NULL);

    EXPECT(g_live == 0, "%ld CF/ObjC objects leaked (or over-released if negative)", g_live);
    EXPECT(g_pool_depth == 0 && g_pool_n == 0, "autorelease pools unbalanced: depth %ld, %zu pending", g_pool_depth,
           g_pool_n);
    EXPECT(tmp_entries() == 0, "%d entries left in %s", tmp_entries(), g_tmp);
    EXPECT(g_faults == 0, "%d API misuses (FAULT lines above)", g_faults);
    printf("%s: %d failed checks, %d faults\n", g_fails || g_faults ? "FAIL" : "OK", g_fails, g_faults);
    return g_fails || g_faults ? 1 : 0;
}
