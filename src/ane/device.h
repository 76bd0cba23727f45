// device: where compiled MIL kernels run — the small interface that hides the
// platform. Pipelines hold a Device and never know which one it is.
//
//   sim  the MIL interpreter (src/mil/mil_interp.h) with the ANE's rules:
//        fp16 surfaces, one input and one output per request whose sizes must
//        match the kernel exactly, SDPA masks ignored, a per-process compile
//        budget after which compile fails as the ANE does, and the program
//        rules of src/mil/mil_rules.h (row and slice alignment, matmul inner
//        dims, smallest surface, ...), which device_compile also checks for
//        the ane device before Apple's compiler sees a program.
//   ane  Apple's Neural Engine through its private runtime (macOS only,
//        src/ane/ane_macos.c): the same calls, on IOSurfaces.
//        What a macOS user must know:
//        - Apple Silicon and a recent macOS (15+); the framework is private
//          (/System/Library/PrivateFrameworks/AppleNeuralEngine.framework), so
//          any OS update may break it: device_init("ane") then fails naming the
//          missing class or selector, and the sim/CPU paths still work.
//        - ~119 compiles per process, then compiles fail silently (we stop at
//          the budget, default 100): checkpoint and restart the process.
//        - Compiling writes NSTemporaryDirectory()/<hex id>/ (model.mil,
//          weights/); identical programs share one directory, removed when
//          the last kernel using it is freed. The count is per process: two
//          concurrent runs of one user compiling identical programs can
//          delete each other's files, so run them one at a time.
//        - Chips differ in what compiles (ane-spec §3.1, reference D.5): a
//          program the sim device runs may still fail to compile on the ANE.
//
// A surface is a [1, C, 1, W] fp16 tensor, channel-first and packed (element
// (c, w) at c*W + w), which is exactly what the ANE reads from an IOSurface.
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct DeviceKernel DeviceKernel;
typedef struct DeviceSurface DeviceSurface;
typedef struct DeviceRequest DeviceRequest;

typedef struct {
    const char *path;     // "@model_path/weights/NAME.bin", as referenced in the MIL text
    const uint8_t *data;  // the blob file bytes (src/mil/mil_blob.h)
    size_t size;
} DeviceWeight;

typedef struct Device Device;
typedef struct {
    int (*compile)(Device *d, const char *mil, const DeviceWeight *w, int n_w, DeviceKernel **out);
    void (*kernel_free)(Device *d, DeviceKernel *k);
    // kernel I/O shapes as [C, W] of the one input and one output
    void (*kernel_io)(const DeviceKernel *k, size_t in_cw[2], size_t out_cw[2]);
    int (*surface_create)(Device *d, size_t channels, size_t width, DeviceSurface **out);
    void (*surface_free)(Device *d, DeviceSurface *s);
    uint16_t *(*surface_lock)(DeviceSurface *s, int write);
    void (*surface_unlock)(DeviceSurface *s, int write);
    int (*request_create)(Device *d, DeviceKernel *k, DeviceSurface *in, DeviceSurface *out, DeviceRequest **r);
    void (*request_free)(Device *d, DeviceRequest *r);
    int (*eval)(Device *d, DeviceRequest *r);
    void (*destroy)(Device *d);
} DeviceOps;

struct Device {
    const char *name;      // "sim" or "ane"
    const DeviceOps *ops;
    void *impl;
    int compile_budget;    // compiles allowed per process (the ANE fails silently past ~119)
    int compiles;          // successful compiles through this Device
    double compile_ms;     // cumulative
    long long evals;
    double eval_ms;
    int on_host;           // evaluations run on this process's CPU (sim): overlapping host work gains nothing
    int dialect_fallbacks; // kernels that compiled only in the other MIL dialect (devpipe retries once)
};

enum { DEVICE_DEFAULT_COMPILE_BUDGET = 100 };

// Successful compiles of this process on every Device (what the budget counts).
int device_process_compiles(void);
// Forgets them: for a test runner, whose tests each stand for a fresh process.
void device_process_compiles_reset(void);

// name: "sim" or "ane". budget <= 0 takes the default.
int device_init(Device *d, const char *name, int compile_budget);
void device_free(Device *d);
// The names available in this build ("sim" everywhere, "ane" on macOS).
const char *device_names(void);

// Compiles MIL text with its weight blobs; -1 with err_msg() ("mil:LINE:COL: ...",
// or the budget message) on failure.
int device_compile(Device *d, const char *mil, const DeviceWeight *w, int n_w, DeviceKernel **out);
// The same, and when the device refuses mil, once more with mil_alt (the
// program in the other MIL dialect: M1/M2 compile only ios16, later chips
// ios18; NULL = no retry). d->dialect_fallbacks counts the kernels that
// needed it; when both fail, the error is the first one.
int device_compile_either(Device *d, const char *mil, const char *mil_alt, const DeviceWeight *w, int n_w,
                          DeviceKernel **out);
void device_kernel_free(Device *d, DeviceKernel *k);
void device_kernel_io(const DeviceKernel *k, const Device *d, size_t in_cw[2], size_t out_cw[2]);

int device_surface_create(Device *d, size_t channels, size_t width, DeviceSurface **out);
void device_surface_free(Device *d, DeviceSurface *s);
// Lock for CPU access (write = 1 to modify); returns the C*W fp16 values.
uint16_t *device_surface_lock(Device *d, DeviceSurface *s, int write);
void device_surface_unlock(Device *d, DeviceSurface *s, int write);

// Binds one input and one output surface to a kernel; their sizes must equal
// the kernel's I/O exactly (the ANE gives silent garbage otherwise: we refuse).
int device_request_create(Device *d, DeviceKernel *k, DeviceSurface *in, DeviceSurface *out, DeviceRequest **r);
void device_request_free(Device *d, DeviceRequest *r);
int device_eval(Device *d, DeviceRequest *r);

// The macOS device (ane_macos.c); only in macOS builds.
int device_ane_init(Device *d);
