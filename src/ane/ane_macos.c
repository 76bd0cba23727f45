// ane_macos: the `ane` device — Apple's Neural Engine through the private
// AppleNeuralEngine framework (ane-spec §3.5, §4; reference D.1, D.5).
//
// Plain C over the Objective-C runtime: classes by objc_getClass, selectors by
// sel_registerName, and every message through objc_msgSend cast to the exact
// C signature of its method (arm64 passes variadic arguments differently, so
// an uncast or variadic call is wrong there). Foundation objects are their
// toll-free bridged CoreFoundation twins (CFData = NSData, CFString = NSString,
// CFDictionary = NSDictionary, CFArray = NSArray, CFNumber = NSNumber,
// CFError = NSError). This is the only file of the project that talks to the
// Objective-C runtime; it is compiled on macOS only (Makefile) and
// type-checked on Linux against tests/macos/ (tests/test_macos_syntax.c).
//
// The private API, as used (spec §4; QoS 21 everywhere, options @{}):
//   +[_ANEInMemoryModelDescriptor modelWithMILText:(NSData *) weights:(NSDictionary *) optionsPlist:nil] -> id
//   +[_ANEInMemoryModel inMemoryModelWithDescriptor:(id)]                                           -> id
//   -[model hexStringIdentifier]                                                                    -> NSString *
//   -[model compileWithQoS:(unsigned) options:(NSDictionary *) error:(NSError **)]                  -> BOOL
//   -[model loadWithQoS:(unsigned) options:(NSDictionary *) error:(NSError **)]                     -> BOOL
//   +[_ANEIOSurfaceObject objectWithIOSurface:(IOSurfaceRef)]                                       -> id
//   +[_ANERequest requestWithInputs:@[in] inputIndices:@[@0] outputs:@[out] outputIndices:@[@0]
//                 weightsBuffer:nil perfStats:nil procedureIndex:@0]                                -> id
//   -[model evaluateWithQoS:(unsigned) options:(NSDictionary *) request:(id) error:(NSError **)]    -> BOOL
//   -[model unloadWithQoS:(unsigned) error:(NSError **)]                                            -> BOOL
//
// Differences from the original (ane-spec §10): every BOOL and NSError is
// checked, eval included (§10.9); the weights dictionary is @{} rather than
// nil for weight-free programs (commit 20cd236); the tmp directory of a hex id
// is reference-counted, so freeing one of several identical kernels (same MIL
// + weights = same id = same directory) no longer deletes the others' files
// (§10.14); a failed compile or load removes its directory instead of leaking it.
//
// Process-global state (documented, as style A.6.3 asks): the table of tmp
// directories in use, behind a mutex, because the directory is shared by
// identical kernels of every Device in the process. Another process of the
// same user compiling the same program uses the same directory and is not
// counted (device.h tells users to run such jobs one at a time).

// nftw and nanosleep are POSIX: ask for them under -std=c11 on any libc.
// _DARWIN_C_SOURCE keeps macOS headers at full visibility despite _XOPEN_SOURCE
// (which alone would hide Darwin types the SDK headers need).
#ifndef _DARWIN_C_SOURCE
#define _DARWIN_C_SOURCE
#endif
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700
#endif
#include <dlfcn.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <CoreFoundation/CoreFoundation.h>
#include <IOSurface/IOSurfaceRef.h>
#include <objc/message.h>
#include <objc/runtime.h>

#include "ane/device.h"
#include "core/err.h"
#include "core/io.h"
#include "mil/mil_parse.h"

// Exported by libobjc (what @autoreleasepool compiles to) but declared only in
// the runtime's private headers.
extern void *objc_autoreleasePoolPush(void);
extern void objc_autoreleasePoolPop(void *pool);
// Foundation's NSString *NSTemporaryDirectory(void), as its bridged CFString:
// the directory the framework itself resolves, which $TMPDIR need not be.
extern CFStringRef NSTemporaryDirectory(void);

#define ANE_FRAMEWORK "/System/Library/PrivateFrameworks/AppleNeuralEngine.framework/AppleNeuralEngine"
#define MODEL_PATH_PREFIX "@model_path/"

enum { ANE_QOS = 21 };            // QOS_CLASS_DEFAULT, as the original (any 0..63 works)
enum { LOAD_RETRY_NS = 100000000 };  // the bridge retries a failed load once after 100 ms

typedef struct {
    void *framework;  // dlopen handle; never closed (Objective-C classes cannot be unloaded)
    Class c_desc, c_model, c_request, c_iosurf;
    SEL s_desc, s_model, s_hex, s_compile, s_load, s_wrap, s_request, s_eval, s_unload, s_describe;
    CFDictionaryRef empty;  // @{}: the options of every call
} Ane;

typedef struct TmpDir TmpDir;

struct DeviceKernel {
    id desc;            // _ANEInMemoryModelDescriptor, retained
    id model;           // _ANEInMemoryModel, retained, loaded
    TmpDir *dir;        // NSTemporaryDirectory()/<hex>, shared by identical kernels
    size_t in_cw[2], out_cw[2];  // [C, W] of the one input and the one output
};

struct DeviceSurface {
    IOSurfaceRef surf;  // exactly channels*width*2 bytes, packed fp16 [C][W]
    size_t channels, width;
};

struct DeviceRequest {
    DeviceKernel *k;
    DeviceSurface *in, *out;
    id req;  // _ANERequest, retained
};

// ---------------------------------------------------------------------------
// Typed message sends: one function per row of the table above.

static id msg_descriptor(const Ane *a, CFDataRef mil, CFDictionaryRef weights) {
    id (*send)(Class, SEL, id, id, id) = (id (*)(Class, SEL, id, id, id))objc_msgSend;
    return send(a->c_desc, a->s_desc, (id)mil, (id)weights, NULL);
}
static id msg_model(const Ane *a, id desc) {
    id (*send)(Class, SEL, id) = (id (*)(Class, SEL, id))objc_msgSend;
    return send(a->c_model, a->s_model, desc);
}
static CFStringRef msg_hex(const Ane *a, id model) {
    CFStringRef (*send)(id, SEL) = (CFStringRef (*)(id, SEL))objc_msgSend;
    return send(model, a->s_hex);
}
static BOOL msg_compile(const Ane *a, id model, id *error) {
    BOOL (*send)(id, SEL, unsigned int, id, id *) = (BOOL (*)(id, SEL, unsigned int, id, id *))objc_msgSend;
    return send(model, a->s_compile, ANE_QOS, (id)a->empty, error);
}
static BOOL msg_load(const Ane *a, id model, id *error) {
    BOOL (*send)(id, SEL, unsigned int, id, id *) = (BOOL (*)(id, SEL, unsigned int, id, id *))objc_msgSend;
    return send(model, a->s_load, ANE_QOS, (id)a->empty, error);
}
static id msg_wrap(const Ane *a, IOSurfaceRef s) {
    id (*send)(Class, SEL, IOSurfaceRef) = (id (*)(Class, SEL, IOSurfaceRef))objc_msgSend;
    return send(a->c_iosurf, a->s_wrap, s);
}
static id msg_request(const Ane *a, CFArrayRef ins, CFArrayRef in_idx, CFArrayRef outs, CFArrayRef out_idx,
                      CFNumberRef procedure) {
    id (*send)(Class, SEL, id, id, id, id, id, id, id) = (id (*)(Class, SEL, id, id, id, id, id, id, id))objc_msgSend;
    return send(a->c_request, a->s_request, (id)ins, (id)in_idx, (id)outs, (id)out_idx, NULL, NULL, (id)procedure);
}
static BOOL msg_eval(const Ane *a, id model, id req, id *error) {
    BOOL (*send)(id, SEL, unsigned int, id, id, id *) = (BOOL (*)(id, SEL, unsigned int, id, id, id *))objc_msgSend;
    return send(model, a->s_eval, ANE_QOS, (id)a->empty, req, error);
}
static BOOL msg_unload(const Ane *a, id model, id *error) {
    BOOL (*send)(id, SEL, unsigned int, id *) = (BOOL (*)(id, SEL, unsigned int, id *))objc_msgSend;
    return send(model, a->s_unload, ANE_QOS, error);
}
static CFStringRef msg_describe(const Ane *a, id error) {
    CFStringRef (*send)(id, SEL) = (CFStringRef (*)(id, SEL))objc_msgSend;
    return send(error, a->s_describe);
}

// Copies a CFString into a malloc'd UTF-8 C string (NULL if it cannot).
static char *cfstr_dup(CFStringRef s) {
    if (!s) return NULL;
    CFIndex cap = CFStringGetMaximumSizeForEncoding(CFStringGetLength(s), kCFStringEncodingUTF8) + 1;
    char *buf = cap > 0 ? malloc((size_t)cap) : NULL;
    if (buf && !CFStringGetCString(s, buf, cap, kCFStringEncodingUTF8)) {
        free(buf);
        buf = NULL;
    }
    return buf;
}

// err_set("ane device: <what>: <localizedDescription> (code N)") on one line.
static int err_nserror(const Ane *a, id error, const char *what) {
    if (!error) return err_set("ane device: %s (returned NO without an NSError)", what);
    char *text = cfstr_dup(msg_describe(a, error));
    for (char *p = text; p && *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t') *p = ' ';
    err_set("ane device: %s: %s (code %ld)", what, text ? text : "(no description)",
            (long)CFErrorGetCode((CFErrorRef)error));
    free(text);
    return -1;
}

// ---------------------------------------------------------------------------
// The tmp directory of a hex id, counted across kernels (ane-spec §3.5 step 4).

struct TmpDir {
    TmpDir *next;
    int refs;
    char path[];  // NSTemporaryDirectory()/<hex>
};

static pthread_mutex_t g_dirs_lock = PTHREAD_MUTEX_INITIALIZER;
static TmpDir *g_dirs;  // directories in use by loaded kernels of this process

// mkdir -p for a path we built ourselves (absolute, no "..").
static int mkdir_p(const char *path) {
    char buf[4096];
    size_t n = strlen(path);
    if (n >= sizeof buf) return err_set("%s: path too long (at most %zu bytes)", path, sizeof buf - 1);
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0700) != 0 && errno != EEXIST)
                return err_set("%s: cannot create directory: %s", buf, strerror(errno));
            *p = c;
            if (!c) return 0;
        }
    }
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)st, (void)type, (void)ftw;
    remove(path);  // best effort: a file we cannot remove is only litter in the tmp dir
    return 0;
}
static void rm_rf(const char *path) { nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

static int write_file(const char *path, const void *data, size_t n) {
    AtomicFile af;
    if (io_atomic_open(&af, path) != 0) return -1;
    if (io_atomic_write(&af, data, n) != 0) {
        io_atomic_abort(&af);
        return -1;
    }
    return io_atomic_commit(&af);
}

// "@model_path/weights/w.bin" or "weights/w.bin" -> "weights/w.bin", refusing
// anything that would write outside the kernel's directory.
static const char *weight_rel(const char *path) {
    const char *rel = strncmp(path, MODEL_PATH_PREFIX, strlen(MODEL_PATH_PREFIX)) ? path
                                                                                 : path + strlen(MODEL_PATH_PREFIX);
    if (!*rel || *rel == '/') return NULL;
    for (const char *p = rel; *p; p = strchr(p, '/') ? strchr(p, '/') + 1 : p + strlen(p))
        if (!strncmp(p, "..", 2) && (p[2] == '/' || p[2] == 0)) return NULL;
    return rel;
}

// Writes model.mil and every blob under dir (whose weights/ may not exist yet).
static int tmpdir_populate(const char *dir, const char *mil, const DeviceWeight *w, int n_w) {
    char path[4096];
    snprintf(path, sizeof path, "%s/weights", dir);
    if (mkdir_p(path) != 0) return -1;
    snprintf(path, sizeof path, "%s/model.mil", dir);
    if (write_file(path, mil, strlen(mil)) != 0) return -1;
    for (int i = 0; i < n_w; i++) {
        const char *rel = weight_rel(w[i].path);  // validated by the caller
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, rel) >= sizeof path)
            return err_set("%s/%s: path too long", dir, rel);
        char *slash = strrchr(path, '/');
        *slash = 0;
        int rc = mkdir_p(path);
        *slash = '/';
        if (rc != 0 || write_file(path, w[i].data, w[i].size) != 0) return -1;
    }
    return 0;
}

// Takes a reference on base/hex, creating and filling the directory when no
// kernel of this process holds it (identical ids mean identical contents).
static int tmpdir_acquire(const char *base, const char *hex, const char *mil, const DeviceWeight *w, int n_w,
                          TmpDir **out) {
    size_t bl = strlen(base);
    while (bl > 1 && base[bl - 1] == '/') bl--;  // NSTemporaryDirectory() ends with '/'
    size_t n = bl + 1 + strlen(hex) + 1;
    TmpDir *fresh = malloc(sizeof *fresh + n);
    if (!fresh) return err_set("out of memory");
    snprintf(fresh->path, n, "%.*s/%s", (int)bl, base, hex);
    fresh->refs = 0;

    int rc = 0;
    pthread_mutex_lock(&g_dirs_lock);
    TmpDir *t = g_dirs;
    while (t && strcmp(t->path, fresh->path)) t = t->next;
    if (t) {
        free(fresh);
    } else if (tmpdir_populate(fresh->path, mil, w, n_w) != 0) {
        rc = err_wrap("ane device: pre-populating the compile directory");
        rm_rf(fresh->path);
        free(fresh);
    } else {
        t = fresh;
        t->next = g_dirs;
        g_dirs = t;
    }
    if (t) t->refs++;
    pthread_mutex_unlock(&g_dirs_lock);
    *out = t;
    return rc;
}

// Drops a reference; the last one removes the directory.
static void tmpdir_release(TmpDir *t) {
    if (!t) return;
    pthread_mutex_lock(&g_dirs_lock);
    if (--t->refs == 0) {
        TmpDir **pp = &g_dirs;
        while (*pp != t) pp = &(*pp)->next;
        *pp = t->next;
        rm_rf(t->path);
        free(t);
    }
    pthread_mutex_unlock(&g_dirs_lock);
}

// ---------------------------------------------------------------------------
// compile

// [1, C, 1, W] fp16 input and output of `main`, read from the MIL text with our
// parser (the ANE would give silent garbage for mismatched surfaces later).
static int mil_io(const char *mil, size_t in_cw[2], size_t out_cw[2]) {
    MilGraph g;
    if (mil_parse(mil, strlen(mil), "mil", &g) != 0) return -1;
    int rc = 0;
    const MilGraphFunc *f = mil_graph_func(&g, "main");
    if (!f) {
        rc = err_set("mil: expected a function 'main', found none");
    } else if (f->n_inputs != 1 || f->n_outputs != 1) {
        rc = err_set("mil:%d:%d: expected 1 input and 1 output of 'main' (the ANE path), found %d and %d", f->line,
                     f->col, f->n_inputs, f->n_outputs);
    } else {
        const MilGraphValue *io[2] = {&f->values[f->inputs[0]], &f->values[f->outputs[0]]};
        size_t *cw[2] = {in_cw, out_cw};
        for (int i = 0; i < 2 && rc == 0; i++) {
            const MilType *t = &io[i]->type;
            if (t->dtype != MIL_DT_FP16 || t->rank != 4 || t->dims[0] != 1 || t->dims[2] != 1) {
                char buf[128];
                rc = err_set("mil:%d:%d: expected '%s' of type tensor<fp16, [1, C, 1, W]>, found %s", io[i]->line,
                             io[i]->col, io[i]->name, mil_type_str(t, buf, sizeof buf));
            } else {
                cw[i][0] = (size_t)t->dims[1];
                cw[i][1] = (size_t)t->dims[3];
            }
        }
    }
    mil_graph_free(&g);
    return rc;
}

// The hex id names a directory we later delete recursively: it must be one
// path component that is not "." or "..". Nothing else is refused — an id
// with characters beyond [0-9A-Za-z_.-] is still a safe name (a future
// runtime may well produce one).
static int hex_ok(const char *hex) {
    return hex && *hex && !strchr(hex, '/') && strcmp(hex, ".") != 0 && strcmp(hex, "..") != 0;
}

// @{"@model_path/weights/X.bin": @{@"offset": @0, @"data": blob}, ...}; empty, never nil.
static CFDictionaryRef weights_dict(const DeviceWeight *w, int n_w) {
    const void **keys = calloc((size_t)n_w + 1, sizeof *keys);
    const void **vals = calloc((size_t)n_w + 1, sizeof *vals);
    CFDictionaryRef dict = NULL;
    int zero = 0, made = 0;
    CFStringRef k_offset = CFStringCreateWithCString(NULL, "offset", kCFStringEncodingUTF8);
    CFStringRef k_data = CFStringCreateWithCString(NULL, "data", kCFStringEncodingUTF8);
    CFNumberRef v_zero = CFNumberCreate(NULL, kCFNumberIntType, &zero);
    if (!keys || !vals || !k_offset || !k_data || !v_zero) goto done;
    for (; made < n_w; made++) {
        char key[4096];
        const char *p = w[made].path;
        int bare = strncmp(p, MODEL_PATH_PREFIX, strlen(MODEL_PATH_PREFIX)) != 0;
        snprintf(key, sizeof key, "%s%s", bare ? MODEL_PATH_PREFIX : "", p);
        CFDataRef blob = CFDataCreate(NULL, w[made].data, (CFIndex)w[made].size);
        const void *ek[2] = {k_offset, k_data}, *ev[2] = {v_zero, blob};
        keys[made] = CFStringCreateWithCString(NULL, key, kCFStringEncodingUTF8);
        vals[made] = blob ? CFDictionaryCreate(NULL, ek, ev, 2, &kCFTypeDictionaryKeyCallBacks,
                                               &kCFTypeDictionaryValueCallBacks)
                          : NULL;
        if (blob) CFRelease(blob);
        if (!keys[made] || !vals[made]) {
            made++;
            goto done;
        }
    }
    dict = CFDictionaryCreate(NULL, keys, vals, n_w, &kCFTypeDictionaryKeyCallBacks, &kCFTypeDictionaryValueCallBacks);
done:
    for (int i = 0; i < made; i++) {
        if (keys[i]) CFRelease(keys[i]);
        if (vals[i]) CFRelease(vals[i]);
    }
    if (k_offset) CFRelease(k_offset);
    if (k_data) CFRelease(k_data);
    if (v_zero) CFRelease(v_zero);
    free(keys);
    free(vals);
    return dict;
}

static int ane_compile(Device *d, const char *mil, const DeviceWeight *w, int n_w, DeviceKernel **out) {
    const Ane *a = d->impl;
    DeviceKernel *k = calloc(1, sizeof *k);
    if (!k) return err_set("out of memory");
    if (mil_io(mil, k->in_cw, k->out_cw) != 0) {
        free(k);
        return -1;
    }
    for (int i = 0; i < n_w; i++)
        if (!weight_rel(w[i].path)) {
            free(k);
            return err_set("ane device: weight path '%s': expected @model_path/<relative path> without '..'",
                           w[i].path);
        }

    void *pool = objc_autoreleasePoolPush();
    int rc = -1;
    char *hex = NULL, *base = NULL;
    id desc = NULL, model = NULL, error = NULL;
    CFDataRef mil_data = CFDataCreate(NULL, (const UInt8 *)mil, (CFIndex)strlen(mil));  // UTF-8 bytes
    CFDictionaryRef weights = weights_dict(w, n_w);
    if (!mil_data || !weights) {
        err_set("ane device: out of memory building the program's NSData/NSDictionary");
        goto done;
    }
    desc = msg_descriptor(a, mil_data, weights);
    if (!desc) {
        err_set("ane device: _ANEInMemoryModelDescriptor modelWithMILText:weights:optionsPlist: returned nil "
                "(MIL text or weights rejected)");
        goto done;
    }
    k->desc = (id)CFRetain(desc);
    model = msg_model(a, desc);
    if (!model) {
        err_set("ane device: _ANEInMemoryModel inMemoryModelWithDescriptor: returned nil");
        goto done;
    }
    k->model = (id)CFRetain(model);

    hex = cfstr_dup(msg_hex(a, k->model));
    if (!hex_ok(hex)) {
        err_set("ane device: hexStringIdentifier: expected a plain file name, found '%s'", hex ? hex : "(nil)");
        goto done;
    }
    base = cfstr_dup(NSTemporaryDirectory());
    if (!base || base[0] != '/') {
        err_set("ane device: NSTemporaryDirectory(): expected an absolute path, found '%s'", base ? base : "(nil)");
        goto done;
    }
    if (tmpdir_acquire(base, hex, mil, w, n_w, &k->dir) != 0) goto done;

    if (!msg_compile(a, k->model, &error)) {
        err_nserror(a, error, "compileWithQoS:options:error: failed");
        goto done;
    }
    error = NULL;
    if (!msg_load(a, k->model, &error)) {
        nanosleep(&(struct timespec){0, LOAD_RETRY_NS}, NULL);
        error = NULL;
        if (!msg_load(a, k->model, &error)) {
            err_nserror(a, error, "loadWithQoS:options:error: failed twice (100 ms apart)");
            goto done;
        }
    }
    rc = 0;
done:
    if (rc != 0 && k->dir) err_wrap("%s", k->dir->path);
    if (mil_data) CFRelease(mil_data);
    if (weights) CFRelease(weights);
    if (rc != 0) {
        if (k->model) CFRelease(k->model);
        if (k->desc) CFRelease(k->desc);
        tmpdir_release(k->dir);
        free(k);
        k = NULL;
    }
    free(hex);
    free(base);
    objc_autoreleasePoolPop(pool);
    *out = k;
    return rc;
}

static void ane_kernel_free(Device *d, DeviceKernel *k) {
    const Ane *a = d->impl;
    void *pool = objc_autoreleasePoolPush();
    id error = NULL;
    // Nothing to report to: a failed unload still ends with the release below.
    (void)msg_unload(a, k->model, &error);
    CFRelease(k->model);
    CFRelease(k->desc);
    objc_autoreleasePoolPop(pool);
    tmpdir_release(k->dir);
    free(k);
}

static void ane_kernel_io(const DeviceKernel *k, size_t in_cw[2], size_t out_cw[2]) {
    memcpy(in_cw, k->in_cw, sizeof k->in_cw);
    memcpy(out_cw, k->out_cw, sizeof k->out_cw);
}

// ---------------------------------------------------------------------------
// surfaces

static int ane_surface_create(Device *d, size_t c, size_t w, DeviceSurface **out) {
    (void)d;
    if (w > SIZE_MAX / 2 / c || c * w * 2 > (size_t)INT64_MAX)
        return err_set("ane device: surface [%zu, %zu] is too large", c, w);
    int64_t bytes = (int64_t)(c * w * 2), one = 1, zero = 0;
    // Width = bytes, Height = 1, BytesPerElement = 1, BytesPerRow = bytes, AllocSize = bytes, PixelFormat = 0
    const void *keys[6] = {kIOSurfaceWidth,     kIOSurfaceHeight,    kIOSurfaceBytesPerElement,
                           kIOSurfaceBytesPerRow, kIOSurfaceAllocSize, kIOSurfacePixelFormat};
    CFNumberRef n_bytes = CFNumberCreate(NULL, kCFNumberSInt64Type, &bytes);
    CFNumberRef n_one = CFNumberCreate(NULL, kCFNumberSInt64Type, &one);
    CFNumberRef n_zero = CFNumberCreate(NULL, kCFNumberSInt64Type, &zero);
    const void *vals[6] = {n_bytes, n_one, n_one, n_bytes, n_bytes, n_zero};
    CFDictionaryRef props = n_bytes && n_one && n_zero ? CFDictionaryCreate(NULL, keys, vals, 6,
                                                                             &kCFTypeDictionaryKeyCallBacks,
                                                                             &kCFTypeDictionaryValueCallBacks)
                                                       : NULL;
    IOSurfaceRef surf = props ? IOSurfaceCreate(props) : NULL;
    if (props) CFRelease(props);
    if (n_bytes) CFRelease(n_bytes);
    if (n_one) CFRelease(n_one);
    if (n_zero) CFRelease(n_zero);
    DeviceSurface *s = surf ? calloc(1, sizeof *s) : NULL;
    if (!s) {
        if (surf) CFRelease(surf);
        return err_set("ane device: IOSurfaceCreate failed for a [%zu, %zu] fp16 surface (%lld bytes)", c, w,
                       (long long)bytes);
    }
    *s = (DeviceSurface){surf, c, w};
    *out = s;
    return 0;
}

static void ane_surface_free(Device *d, DeviceSurface *s) {
    (void)d;
    CFRelease(s->surf);
    free(s);
}

// The lock options must be the same for lock and unlock (IOSurfaceRef.h).
static IOSurfaceLockOptions lock_options(int write) { return write ? 0 : kIOSurfaceLockReadOnly; }

static uint16_t *ane_lock(DeviceSurface *s, int write) {
    kern_return_t kr = IOSurfaceLock(s->surf, lock_options(write), NULL);
    if (kr != 0) {
        err_set("ane device: IOSurfaceLock(%s) of a [%zu, %zu] surface failed with 0x%x", write ? "write" : "read",
                s->channels, s->width, (unsigned)kr);
        return NULL;
    }
    return IOSurfaceGetBaseAddress(s->surf);
}

static void ane_unlock(DeviceSurface *s, int write) { IOSurfaceUnlock(s->surf, lock_options(write), NULL); }

// ---------------------------------------------------------------------------
// requests and eval

static CFArrayRef array1(const void *v) { return CFArrayCreate(NULL, &v, 1, &kCFTypeArrayCallBacks); }

static int ane_request_create(Device *d, DeviceKernel *k, DeviceSurface *in, DeviceSurface *out, DeviceRequest **r) {
    const Ane *a = d->impl;
    if (in->channels * in->width != k->in_cw[0] * k->in_cw[1])
        return err_set("ane device: input surface [%zu, %zu] does not match the kernel input [%zu, %zu]", in->channels,
                       in->width, k->in_cw[0], k->in_cw[1]);
    if (out->channels * out->width != k->out_cw[0] * k->out_cw[1])
        return err_set("ane device: output surface [%zu, %zu] does not match the kernel output [%zu, %zu]",
                       out->channels, out->width, k->out_cw[0], k->out_cw[1]);
    if (in == out) return err_set("ane device: input and output must be different surfaces");
    DeviceRequest *q = calloc(1, sizeof *q);
    if (!q) return err_set("out of memory");

    void *pool = objc_autoreleasePoolPush();
    int zero = 0, rc = -1;
    CFNumberRef n0 = CFNumberCreate(NULL, kCFNumberIntType, &zero);
    id in_obj = msg_wrap(a, in->surf), out_obj = msg_wrap(a, out->surf);
    CFArrayRef ins = in_obj ? array1(in_obj) : NULL, outs = out_obj ? array1(out_obj) : NULL;
    CFArrayRef idx = n0 ? array1(n0) : NULL;
    if (!in_obj || !out_obj) {
        err_set("ane device: _ANEIOSurfaceObject objectWithIOSurface: returned nil");
    } else if (!ins || !outs || !idx) {
        err_set("out of memory");
    } else {
        id req = msg_request(a, ins, idx, outs, idx, n0);
        if (!req) {
            err_set("ane device: _ANERequest requestWithInputs:...procedureIndex: returned nil");
        } else {
            *q = (DeviceRequest){k, in, out, (id)CFRetain(req)};
            rc = 0;
        }
    }
    if (ins) CFRelease(ins);
    if (outs) CFRelease(outs);
    if (idx) CFRelease(idx);
    if (n0) CFRelease(n0);
    objc_autoreleasePoolPop(pool);
    if (rc != 0) free(q);
    else *r = q;
    return rc;
}

static void ane_request_free(Device *d, DeviceRequest *r) {
    (void)d;
    CFRelease(r->req);
    free(r);
}

static int ane_eval(Device *d, DeviceRequest *r) {
    const Ane *a = d->impl;
    void *pool = objc_autoreleasePoolPush();
    id error = NULL;
    int rc = 0;
    if (!msg_eval(a, r->k->model, r->req, &error))
        rc = err_nserror(a, error, "evaluateWithQoS:options:request:error: failed");
    objc_autoreleasePoolPop(pool);
    return rc;
}

// ---------------------------------------------------------------------------
// init

static void ane_destroy(Device *d) {
    Ane *a = d->impl;
    if (!a) return;
    if (a->empty) CFRelease(a->empty);
    free(a);
    d->impl = NULL;
}

static const DeviceOps ANE_OPS = {
    ane_compile, ane_kernel_free, ane_kernel_io, ane_surface_create, ane_surface_free, ane_lock, ane_unlock,
    ane_request_create, ane_request_free, ane_eval, ane_destroy,
};

// Resolves the classes and checks that each answers its selectors, so an OS
// update that renames the private API fails here with its name rather than
// with an "unrecognized selector" abort mid-training.
static int ane_resolve(Ane *a) {
    static const char *const HINT = "the private API changed in this macOS version?";
    struct { Class *cls; const char *name; } classes[] = {
        {&a->c_desc, "_ANEInMemoryModelDescriptor"},
        {&a->c_model, "_ANEInMemoryModel"},
        {&a->c_request, "_ANERequest"},
        {&a->c_iosurf, "_ANEIOSurfaceObject"},
    };
    for (size_t i = 0; i < sizeof classes / sizeof *classes; i++)
        if (!(*classes[i].cls = objc_getClass(classes[i].name)))
            return err_set("ane device: class %s not found in %s (%s)", classes[i].name, ANE_FRAMEWORK, HINT);
    struct { SEL *sel; const char *name; Class cls; int is_class; const char *cls_name; } sels[] = {
        {&a->s_desc, "modelWithMILText:weights:optionsPlist:", a->c_desc, 1, "_ANEInMemoryModelDescriptor"},
        {&a->s_model, "inMemoryModelWithDescriptor:", a->c_model, 1, "_ANEInMemoryModel"},
        {&a->s_hex, "hexStringIdentifier", a->c_model, 0, "_ANEInMemoryModel"},
        {&a->s_compile, "compileWithQoS:options:error:", a->c_model, 0, "_ANEInMemoryModel"},
        {&a->s_load, "loadWithQoS:options:error:", a->c_model, 0, "_ANEInMemoryModel"},
        {&a->s_eval, "evaluateWithQoS:options:request:error:", a->c_model, 0, "_ANEInMemoryModel"},
        {&a->s_unload, "unloadWithQoS:error:", a->c_model, 0, "_ANEInMemoryModel"},
        {&a->s_wrap, "objectWithIOSurface:", a->c_iosurf, 1, "_ANEIOSurfaceObject"},
        {&a->s_request, "requestWithInputs:inputIndices:outputs:outputIndices:weightsBuffer:perfStats:procedureIndex:",
         a->c_request, 1, "_ANERequest"},
    };
    for (size_t i = 0; i < sizeof sels / sizeof *sels; i++) {
        *sels[i].sel = sel_registerName(sels[i].name);
        Method m = sels[i].is_class ? class_getClassMethod(sels[i].cls, *sels[i].sel)
                                    : class_getInstanceMethod(sels[i].cls, *sels[i].sel);
        if (!m)
            return err_set("ane device: %c[%s %s] not found (%s)", sels[i].is_class ? '+' : '-', sels[i].cls_name,
                           sels[i].name, HINT);
    }
    a->s_describe = sel_registerName("localizedDescription");  // NSError, public
    return 0;
}

int device_ane_init(Device *d) {
    Ane *a = calloc(1, sizeof *a);
    if (!a) return err_set("out of memory");
    a->framework = dlopen(ANE_FRAMEWORK, RTLD_NOW);
    if (!a->framework) {
        const char *why = dlerror();
        free(a);
        return err_set("ane device: cannot load %s: %s (needs macOS on Apple Silicon)", ANE_FRAMEWORK,
                       why ? why : "unknown error");
    }
    void *pool = objc_autoreleasePoolPush();
    int rc = ane_resolve(a);
    objc_autoreleasePoolPop(pool);
    if (rc == 0) {
        a->empty = CFDictionaryCreate(NULL, NULL, NULL, 0, &kCFTypeDictionaryKeyCallBacks,
                                      &kCFTypeDictionaryValueCallBacks);
        if (!a->empty) rc = err_set("out of memory");
    }
    if (rc != 0) {
        free(a);
        return -1;
    }
    d->name = "ane";
    d->ops = &ANE_OPS;
    d->impl = a;
    return 0;
}
