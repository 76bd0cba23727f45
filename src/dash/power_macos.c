// power_macos: the machine's power on macOS without sudo, from IOReport's
// "Energy Model" channels (power.h).
//
// libIOReport is a private library with no header: it is opened at run time
// (dlopen) and each function looked up by name, so a macOS without it (or
// with a different one) gets "not available" instead of a failed launch. Its
// API, as used (the signatures the tools that read it without sudo rely on):
//   CFDictionaryRef IOReportCopyChannelsInGroup(CFStringRef group, CFStringRef subgroup,
//                                               uint64_t, uint64_t, uint64_t)
//   IOReportSubscriptionRef IOReportCreateSubscription(void *, CFMutableDictionaryRef channels,
//                                                      CFMutableDictionaryRef *subscribed, uint64_t, CFTypeRef)
//   CFDictionaryRef IOReportCreateSamples(IOReportSubscriptionRef, CFMutableDictionaryRef subscribed, CFTypeRef)
//   CFDictionaryRef IOReportCreateSamplesDelta(CFDictionaryRef before, CFDictionaryRef after, CFTypeRef)
//   int64_t IOReportSimpleGetIntegerValue(CFDictionaryRef channel, int32_t)
//   CFStringRef IOReportChannelGetChannelName(CFDictionaryRef channel)
//   CFStringRef IOReportChannelGetUnitLabel(CFDictionaryRef channel)   ("mJ", "uJ", "nJ")
// A delta holds an array of channels under "IOReportChannels"; each is an
// energy over the interval. CPU is "CPU Energy", GPU "GPU Energy", and the
// ANE the sum of every channel whose name starts with "ANE" (one per ANE
// cluster on the larger chips). Watts = joules / seconds between samples.
// Plain C over CoreFoundation; compiled on macOS only (Makefile), type-checked
// on Linux against tests/macos/ and run there against a fake IOReport
// (tests/macos/fake_ioreport.c, tests/test_macos_syntax.c).
// clock_gettime is POSIX: ask for it under -std=c11; _DARWIN_C_SOURCE keeps
// macOS headers at full visibility despite _XOPEN_SOURCE.
#ifndef _DARWIN_C_SOURCE
#define _DARWIN_C_SOURCE
#endif
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700
#endif
#include <dlfcn.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CoreFoundation/CoreFoundation.h>

#include "core/timer.h"
#include "dash/power.h"

#ifndef IOREPORT_PATH
#define IOREPORT_PATH "/usr/lib/libIOReport.dylib"
#endif

typedef struct IOReportSubscription *IOReportSubscriptionRef;

typedef struct {
    void *lib;
    CFDictionaryRef (*copy_channels)(CFStringRef, CFStringRef, uint64_t, uint64_t, uint64_t);
    IOReportSubscriptionRef (*subscribe)(void *, CFMutableDictionaryRef, CFMutableDictionaryRef *, uint64_t, CFTypeRef);
    CFDictionaryRef (*samples)(IOReportSubscriptionRef, CFMutableDictionaryRef, CFTypeRef);
    CFDictionaryRef (*delta)(CFDictionaryRef, CFDictionaryRef, CFTypeRef);
    int64_t (*value)(CFDictionaryRef, int32_t);
    CFStringRef (*name)(CFDictionaryRef);
    CFStringRef (*unit)(CFDictionaryRef);
    CFMutableDictionaryRef channels, subscribed;
    IOReportSubscriptionRef sub;
    CFDictionaryRef last;  // the previous sample
} IOReport;

// dlsym returns void *; ISO C has no conversion to a function pointer, so copy the bits.
static int sym(void *lib, const char *name, void *fn_ptr, size_t size) {
    void *p = dlsym(lib, name);
    if (!p) return -1;
    memcpy(fn_ptr, &p, size);
    return 0;
}

static int resolve(IOReport *r) {
    r->lib = dlopen(IOREPORT_PATH[0] ? IOREPORT_PATH : NULL, RTLD_NOW | RTLD_LOCAL);
    if (!r->lib) return -1;
    return sym(r->lib, "IOReportCopyChannelsInGroup", &r->copy_channels, sizeof r->copy_channels) |
           sym(r->lib, "IOReportCreateSubscription", &r->subscribe, sizeof r->subscribe) |
           sym(r->lib, "IOReportCreateSamples", &r->samples, sizeof r->samples) |
           sym(r->lib, "IOReportCreateSamplesDelta", &r->delta, sizeof r->delta) |
           sym(r->lib, "IOReportSimpleGetIntegerValue", &r->value, sizeof r->value) |
           sym(r->lib, "IOReportChannelGetChannelName", &r->name, sizeof r->name) |
           sym(r->lib, "IOReportChannelGetUnitLabel", &r->unit, sizeof r->unit);
}

static void release(IOReport *r) {
    if (r->last) CFRelease(r->last);
    if (r->sub) CFRelease((CFTypeRef)r->sub);
    if (r->subscribed) CFRelease(r->subscribed);
    if (r->channels) CFRelease(r->channels);
    if (r->lib) dlclose(r->lib);
    free(r);
}

// Subscribes to the "Energy Model" group; NULL with why filled on failure.
static IOReport *subscribe(char *why, size_t cap) {
    IOReport *r = calloc(1, sizeof *r);
    if (!r) return snprintf(why, cap, "not available (out of memory)"), NULL;
    if (resolve(r) != 0) return snprintf(why, cap, "not available (no IOReport on this macOS)"), release(r), NULL;
    CFStringRef group = CFStringCreateWithCString(kCFAllocatorDefault, "Energy Model", kCFStringEncodingUTF8);
    CFDictionaryRef chans = group ? r->copy_channels(group, NULL, 0, 0, 0) : NULL;
    if (group) CFRelease(group);
    if (!chans) return snprintf(why, cap, "not available (IOReport has no Energy Model channels)"), release(r), NULL;
    r->channels = CFDictionaryCreateMutableCopy(kCFAllocatorDefault, CFDictionaryGetCount(chans), chans);
    CFRelease(chans);
    if (r->channels) r->sub = r->subscribe(NULL, r->channels, &r->subscribed, 0, NULL);
    if (!r->sub || !r->subscribed) return snprintf(why, cap, "not available (IOReport subscription refused)"), release(r), NULL;
    r->last = r->samples(r->sub, r->subscribed, NULL);
    if (!r->last) return snprintf(why, cap, "not available (IOReport gave no sample)"), release(r), NULL;
    return r;
}

void power_open(Power *p) {
    memset(p, 0, sizeof *p);
    IOReport *r = subscribe(p->what, sizeof p->what);
    if (!r) return;
    p->impl = r, p->ok = 1, p->primed = 1, p->last_ms = time_ms();
    snprintf(p->what, sizeof p->what, "IOReport Energy Model");
}

static double joules(IOReport *r, CFDictionaryRef ch) {
    char unit[16] = "";
    CFStringRef u = r->unit(ch);
    if (!u || !CFStringGetCString(u, unit, sizeof unit, kCFStringEncodingUTF8)) return NAN;
    double v = (double)r->value(ch, 0);
    if (!strcmp(unit, "mJ")) return v * 1e-3;
    if (!strcmp(unit, "uJ")) return v * 1e-6;
    if (!strcmp(unit, "nJ")) return v * 1e-9;
    return NAN;  // not an energy: not ours to add
}

// CPU, GPU and ANE joules of one delta.
static void split(IOReport *r, CFDictionaryRef delta, double j[3]) {
    CFStringRef key = CFStringCreateWithCString(kCFAllocatorDefault, "IOReportChannels", kCFStringEncodingUTF8);
    CFArrayRef chans = key ? (CFArrayRef)CFDictionaryGetValue(delta, key) : NULL;
    if (key) CFRelease(key);
    j[0] = j[1] = j[2] = 0;
    for (CFIndex i = 0; chans && i < CFArrayGetCount(chans); i++) {
        CFDictionaryRef ch = (CFDictionaryRef)CFArrayGetValueAtIndex(chans, i);
        char name[64] = "";
        CFStringRef n = r->name(ch);
        if (!n || !CFStringGetCString(n, name, sizeof name, kCFStringEncodingUTF8)) continue;
        int k = !strcmp(name, "CPU Energy") ? 0 : !strcmp(name, "GPU Energy") ? 1 : !strncmp(name, "ANE", 3) ? 2 : -1;
        double e = k >= 0 ? joules(r, ch) : NAN;
        if (isfinite(e)) j[k] += e;
    }
}

int power_sample(Power *p, double *watts) {
    *watts = NAN;
    IOReport *r = p->impl;
    if (!p->ok || !r) return -1;
    double now = time_ms();
    CFDictionaryRef cur = r->samples(r->sub, r->subscribed, NULL);
    if (!cur) {
        p->ok = 0;
        snprintf(p->what, sizeof p->what, "not available (IOReport stopped sampling)");
        return -1;
    }
    CFDictionaryRef d = r->delta(r->last, cur, NULL);
    CFRelease(r->last);
    r->last = cur;
    double s = (now - p->last_ms) / 1e3, j[3];
    p->last_ms = now;
    if (!d || s <= 0) {
        if (d) CFRelease(d);
        return 0;
    }
    split(r, d, j);
    CFRelease(d);
    *watts = (j[0] + j[1] + j[2]) / s;
    snprintf(p->what, sizeof p->what, "IOReport: CPU %.1f W, GPU %.1f W, ANE %.1f W", j[0] / s, j[1] / s, j[2] / s);
    return 0;
}

void power_close(Power *p) {
    if (p->impl) release(p->impl);
    memset(p, 0, sizeof *p);
}
