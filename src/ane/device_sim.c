// device_sim: the MIL interpreter as a device, with the ANE's rules.
#include <stdlib.h>
#include <string.h>

#include "ane/device.h"
#include "core/err.h"
#include "mil/mil_interp.h"
#include "mil/mil_rules.h"

struct DeviceKernel {
    MilProgram *prog;
    size_t in_cw[2], out_cw[2];
};

struct DeviceSurface {
    uint16_t *data;  // C*W fp16, packed
    size_t channels, width;
};

struct DeviceRequest {
    DeviceKernel *k;
    DeviceSurface *in, *out;
};

// [1, C, 1, W] -> (C, W); the interpreter already insists on fp16 rank-4 I/O
static void io_cw(const MilIoDesc *io, size_t cw[2]) {
    cw[0] = (size_t)io->dims[1] * (size_t)io->dims[0];
    cw[1] = (size_t)io->dims[2] * (size_t)io->dims[3];
}

static int sim_compile(Device *d, const char *mil, const DeviceWeight *w, int n_w, DeviceKernel **out) {
    (void)d;
    // fault injection for tests of the recovery: a process started by an exec()
    // restart (cli/restart.h) finds the compiler refusing everything
    if (getenv("ANETRAIN_SIM_FAIL_AFTER_RESTART") && getenv("ANETRAIN_RESTARTS"))
        return err_set("sim device: compile refused (ANETRAIN_SIM_FAIL_AFTER_RESTART is set in a restarted process)");
    // fault injection for tests of the dialect retry: a compiler that takes only the other dialect
    const char *reject = getenv("ANETRAIN_SIM_REJECT_DIALECT");
    if (reject && !strcmp(reject, "ios18") == !strncmp(mil, "program(1.3)", 12))
        return err_set("sim device: compile refused (ANETRAIN_SIM_REJECT_DIALECT=%s)", reject);
    MilWeightFile wf[64];
    if (n_w > 64) return err_set("sim device: %d weight files (at most 64)", n_w);
    for (int i = 0; i < n_w; i++) wf[i] = (MilWeightFile){w[i].path, w[i].data, w[i].size};
    DeviceKernel *k = calloc(1, sizeof *k);
    if (!k) return err_set("out of memory");
    const MilCompileOptions rules = {.ane_rules = 1};
    if (mil_program_compile_opts(mil, wf, n_w, &rules, &k->prog) != 0) {
        free(k);
        return -1;
    }
    MilIoDesc in, o;
    mil_program_io(k->prog, &in, &o);
    if (in.dims[0] != 1 || in.dims[2] != 1 || o.dims[0] != 1 || o.dims[2] != 1) {
        mil_program_free(k->prog);
        free(k);
        return err_set("sim device: kernel I/O must be [1, C, 1, W]");
    }
    io_cw(&in, k->in_cw);
    io_cw(&o, k->out_cw);
    *out = k;
    return 0;
}

static void sim_kernel_free(Device *d, DeviceKernel *k) {
    (void)d;
    mil_program_free(k->prog);
    free(k);
}

static void sim_kernel_io(const DeviceKernel *k, size_t in_cw[2], size_t out_cw[2]) {
    memcpy(in_cw, k->in_cw, sizeof k->in_cw);
    memcpy(out_cw, k->out_cw, sizeof k->out_cw);
}

static int sim_surface_create(Device *d, size_t c, size_t w, DeviceSurface **out) {
    (void)d;
    DeviceSurface *s = calloc(1, sizeof *s);
    if (s) s->data = calloc(c * w, sizeof(uint16_t));
    if (!s || !s->data) {
        free(s);
        return err_set("sim device: out of memory for a [%zu, %zu] surface", c, w);
    }
    s->channels = c;
    s->width = w;
    *out = s;
    return 0;
}

static void sim_surface_free(Device *d, DeviceSurface *s) {
    (void)d;
    free(s->data);
    free(s);
}

static uint16_t *sim_lock(DeviceSurface *s, int write) {
    (void)write;
    return s->data;
}
static void sim_unlock(DeviceSurface *s, int write) { (void)s, (void)write; }

static int sim_request_create(Device *d, DeviceKernel *k, DeviceSurface *in, DeviceSurface *out, DeviceRequest **r) {
    (void)d;
    if (in->channels * in->width != k->in_cw[0] * k->in_cw[1])
        return err_set("sim device: input surface [%zu, %zu] does not match the kernel input [%zu, %zu]", in->channels,
                       in->width, k->in_cw[0], k->in_cw[1]);
    if (out->channels * out->width != k->out_cw[0] * k->out_cw[1])
        return err_set("sim device: output surface [%zu, %zu] does not match the kernel output [%zu, %zu]",
                       out->channels, out->width, k->out_cw[0], k->out_cw[1]);
    if (in == out) return err_set("sim device: input and output must be different surfaces");
    DeviceRequest *q = calloc(1, sizeof *q);
    if (!q) return err_set("out of memory");
    *q = (DeviceRequest){k, in, out};
    *r = q;
    return 0;
}

static void sim_request_free(Device *d, DeviceRequest *r) {
    (void)d;
    free(r);
}

static int sim_eval(Device *d, DeviceRequest *r) {
    (void)d;
    return mil_program_run(r->k->prog, r->in->data, r->out->data);
}

static void sim_destroy(Device *d) { (void)d; }

static const DeviceOps SIM_OPS = {
    sim_compile, sim_kernel_free, sim_kernel_io, sim_surface_create, sim_surface_free, sim_lock, sim_unlock,
    sim_request_create, sim_request_free, sim_eval, sim_destroy,
};

int device_sim_init(Device *d) {
    d->name = "sim";
    d->on_host = 1;
    d->ops = &SIM_OPS;
    return 0;
}
