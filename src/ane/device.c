// device: the generic layer (budget, timing, validation) over the per-device ops.
#include "ane/device.h"

#include <stdio.h>
#include <string.h>

#include "core/err.h"
#include "core/timer.h"
#include "mil/mil_rules.h"

int device_sim_init(Device *d);  // device_sim.c

// Compiles of this process, on every Device: the ANE's limit is the process's,
// whatever objects the compiles went through, and freeing a kernel gives
// nothing back.
static int process_compiles;

int device_process_compiles(void) { return process_compiles; }
void device_process_compiles_reset(void) { process_compiles = 0; }

const char *device_names(void) {
#ifdef __APPLE__
    return "sim, ane";
#else
    return "sim";
#endif
}

int device_init(Device *d, const char *name, int budget) {
    memset(d, 0, sizeof *d);
    d->compile_budget = budget > 0 ? budget : DEVICE_DEFAULT_COMPILE_BUDGET;
    if (!strcmp(name, "sim")) return device_sim_init(d);
#ifdef __APPLE__
    if (!strcmp(name, "ane")) return device_ane_init(d);
#endif
    return err_set("unknown device '%s' (available in this build: %s)", name, device_names());
}

void device_free(Device *d) {
    if (d->ops && d->ops->destroy) d->ops->destroy(d);
    memset(d, 0, sizeof *d);
}

int device_compile(Device *d, const char *mil, const DeviceWeight *w, int n_w, DeviceKernel **out) {
    *out = NULL;
    if (process_compiles >= d->compile_budget)
        return err_set("%s device: compile budget of %d per process exhausted (the ANE fails silently past ~119 "
                       "compiles; checkpoint and restart the process)",
                       d->name, d->compile_budget);
    if (!d->on_host) {  // the sim checks the ANE's rules on its own compile; the ANE gets them checked first
        MilWeightFile wf[64];
        if (n_w > 64) return err_set("%s device: %d weight files (at most 64)", d->name, n_w);
        for (int i = 0; i < n_w; i++) wf[i] = (MilWeightFile){w[i].path, w[i].data, w[i].size};
        if (mil_rules_check_text(mil, wf, n_w) != 0) return -1;
    }
    double t0 = time_ms();
    int rc = d->ops->compile(d, mil, w, n_w, out);
    d->compile_ms += time_ms() - t0;
    if (rc == 0) d->compiles++, process_compiles++;
    return rc;
}

int device_compile_either(Device *d, const char *mil, const char *mil_alt, const DeviceWeight *w, int n_w,
                          DeviceKernel **out) {
    if (device_compile(d, mil, w, n_w, out) == 0) return 0;
    char first[512];
    snprintf(first, sizeof first, "%s", err_msg());
    if (!mil_alt || device_compile(d, mil_alt, w, n_w, out) != 0) return err_set("%s", first);
    d->dialect_fallbacks++;
    return 0;
}

void device_kernel_free(Device *d, DeviceKernel *k) {
    if (k) d->ops->kernel_free(d, k);
}

void device_kernel_io(const DeviceKernel *k, const Device *d, size_t in_cw[2], size_t out_cw[2]) {
    d->ops->kernel_io(k, in_cw, out_cw);
}

int device_surface_create(Device *d, size_t channels, size_t width, DeviceSurface **out) {
    *out = NULL;
    if (channels == 0 || width == 0) return err_set("%s device: empty surface [%zu, %zu]", d->name, channels, width);
    return d->ops->surface_create(d, channels, width, out);
}

void device_surface_free(Device *d, DeviceSurface *s) {
    if (s) d->ops->surface_free(d, s);
}

uint16_t *device_surface_lock(Device *d, DeviceSurface *s, int write) { return d->ops->surface_lock(s, write); }
void device_surface_unlock(Device *d, DeviceSurface *s, int write) { d->ops->surface_unlock(s, write); }

int device_request_create(Device *d, DeviceKernel *k, DeviceSurface *in, DeviceSurface *out, DeviceRequest **r) {
    *r = NULL;
    return d->ops->request_create(d, k, in, out, r);
}

void device_request_free(Device *d, DeviceRequest *r) {
    if (r) d->ops->request_free(d, r);
}

int device_eval(Device *d, DeviceRequest *r) {
    double t0 = time_ms();
    int rc = d->ops->eval(d, r);
    d->eval_ms += time_ms() - t0;
    d->evals++;
    return rc;
}
