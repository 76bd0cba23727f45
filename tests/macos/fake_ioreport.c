// fake_ioreport: an imitation of the parts of CoreFoundation, libIOReport,
// libproc and mach_time that src/dash/power_macos.c and sysmon_macos.c use,
// so their logic runs on Linux (tests/test_macos_syntax.c builds them with
// this file, IOREPORT_PATH "" = look the IOReport functions up in this
// program, and runs main below). It checks what a Mac cannot tell us cheaply:
// the Create/Copy objects released exactly once, the "Energy Model" group
// asked for, units converted, every ANE* channel summed and other channels
// left out, and each way IOReport can fail reported as "not available".
// It checks the files against the API as power_macos.c's header describes it;
// only a Mac can check the API itself.
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dash/power.h"
#include "dash/sysmon.h"

enum { K_STR = 1, K_DICT, K_ARR, K_CHAN, K_SUB };

typedef struct Obj {
    int kind, rc;
    char *str;           // K_STR
    struct Obj **items;  // K_DICT values / K_ARR items
    struct Obj **keys;   // K_DICT
    long n;
    struct Obj *name, *unit;  // K_CHAN
    int64_t value;
} Obj;

static long g_live, g_failed;
static int g_mode;  // which scenario IOReport plays (see main)
static int g_samples;
static char g_group[64];

static void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL: ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    g_failed++;
}

static Obj *obj_new(int kind) {
    Obj *o = calloc(1, sizeof *o);
    o->kind = kind, o->rc = 1;
    g_live++;
    return o;
}

static void obj_release(Obj *o) {
    if (!o || o->rc <= 0) {
        fail("CFRelease of NULL, or of an object released more often than it was retained");
        return;
    }
    if (--o->rc) return;
    for (long i = 0; i < o->n; i++) {
        if (o->items) obj_release(o->items[i]);
        if (o->keys) obj_release(o->keys[i]);
    }
    if (o->name) obj_release(o->name);
    if (o->unit) obj_release(o->unit);
    free(o->items), free(o->keys), free(o->str);
    o->kind = 0;  // kept (leaked on purpose): a use after release is then caught as a wrong kind
    g_live--;
}

// --- CoreFoundation ------------------------------------------------------------

const void *const kCFAllocatorDefault = NULL;

const void *CFRetain(const void *cf) {
    ((Obj *)cf)->rc++;
    return cf;
}
void CFRelease(const void *cf) { obj_release((Obj *)cf); }

static Obj *str_new(const char *s) {
    Obj *o = obj_new(K_STR);
    o->str = strdup(s);
    return o;
}
void *CFStringCreateWithCString(const void *alloc, const char *s, unsigned enc) {
    (void)alloc;
    if (enc != 0x08000100) fail("CFString not created as UTF-8");
    return str_new(s);
}
unsigned char CFStringGetCString(const void *s, char *buf, long cap, unsigned enc) {
    const Obj *o = s;
    if (!o || o->kind != K_STR || enc != 0x08000100) return fail("CFStringGetCString on a non-string"), 0;
    if ((long)strlen(o->str) + 1 > cap) return 0;
    memcpy(buf, o->str, strlen(o->str) + 1);
    return 1;
}

static Obj *dict1(const char *key, Obj *value) {  // takes value's reference
    Obj *d = obj_new(K_DICT);
    d->n = 1;
    d->keys = calloc(1, sizeof *d->keys), d->items = calloc(1, sizeof *d->items);
    d->keys[0] = str_new(key), d->items[0] = value;
    return d;
}
long CFDictionaryGetCount(const void *d) { return ((const Obj *)d)->kind == K_DICT ? ((const Obj *)d)->n : (fail("GetCount of a non-dictionary"), 0); }
const void *CFDictionaryGetValue(const void *d, const void *key) {
    const Obj *o = d, *k = key;
    if (!o || o->kind != K_DICT || !k || k->kind != K_STR) return fail("CFDictionaryGetValue on the wrong kinds"), NULL;
    for (long i = 0; i < o->n; i++)
        if (!strcmp(o->keys[i]->str, k->str)) return o->items[i];
    return NULL;
}
void *CFDictionaryCreateMutableCopy(const void *alloc, long cap, const void *d) {
    (void)alloc, (void)cap;
    const Obj *o = d;
    if (!o || o->kind != K_DICT) return fail("CreateMutableCopy of a non-dictionary"), NULL;
    Obj *c = obj_new(K_DICT);
    c->n = o->n;
    c->keys = calloc((size_t)o->n + 1, sizeof *c->keys), c->items = calloc((size_t)o->n + 1, sizeof *c->items);
    for (long i = 0; i < o->n; i++) {
        c->keys[i] = o->keys[i], c->items[i] = o->items[i];
        o->keys[i]->rc++, o->items[i]->rc++;
    }
    return c;
}
long CFArrayGetCount(const void *a) { return ((const Obj *)a)->kind == K_ARR ? ((const Obj *)a)->n : (fail("GetCount of a non-array"), 0); }
const void *CFArrayGetValueAtIndex(const void *a, long i) {
    const Obj *o = a;
    if (!o || o->kind != K_ARR || i < 0 || i >= o->n) return fail("CFArrayGetValueAtIndex out of range"), NULL;
    return o->items[i];
}

// --- IOReport --------------------------------------------------------------------

// name, unit, energy per sample interval (in the unit)
static const struct {
    const char *name, *unit;
    int64_t per_sample;
} CHANNELS[] = {
    {"CPU Energy", "mJ", 100},   {"GPU Energy", "nJ", 50000000}, {"ANE0", "mJ", 200},
    {"ANE1", "uJ", 100000},      {"DRAM Energy", "mJ", 999},     {"GPU SRAM Energy", "mJ", 777},
    {"CPU Energy", "counts", 5},  // not an energy unit: skipped
};
enum { N_CHANNELS = sizeof CHANNELS / sizeof CHANNELS[0] };

static Obj *channels(int samples) {
    Obj *a = obj_new(K_ARR);
    a->n = N_CHANNELS;
    a->items = calloc(N_CHANNELS, sizeof *a->items);
    for (int i = 0; i < N_CHANNELS; i++) {
        Obj *c = obj_new(K_CHAN);
        c->name = str_new(CHANNELS[i].name), c->unit = str_new(CHANNELS[i].unit);
        c->value = CHANNELS[i].per_sample * samples;
        a->items[i] = c;
    }
    return dict1("IOReportChannels", a);
}

void *IOReportCopyChannelsInGroup(const void *group, const void *sub, uint64_t a, uint64_t b, uint64_t c) {
    (void)a, (void)b, (void)c;
    const Obj *g = group;
    snprintf(g_group, sizeof g_group, "%s", g && g->kind == K_STR ? g->str : "(not a string)");
    if (sub) fail("a subgroup was given");
    return g_mode == 1 ? NULL : channels(0);
}
void *IOReportCreateSubscription(void *a, void *chans, void **subscribed, uint64_t id, const void *b) {
    (void)a, (void)id, (void)b;
    if (!chans || ((Obj *)chans)->kind != K_DICT) fail("subscribed to a non-dictionary");
    if (g_mode == 2) return NULL;
    *subscribed = dict1("subscribed", str_new("yes"));
    return obj_new(K_SUB);
}
void *IOReportCreateSamples(void *sub, void *subscribed, const void *a) {
    (void)a;
    if (!sub || ((Obj *)sub)->kind != K_SUB || !subscribed) fail("sampled without a subscription");
    if (g_mode == 3 && g_samples >= 2) return NULL;
    return channels(g_samples++);
}
void *IOReportCreateSamplesDelta(const void *x, const void *y, const void *a) {
    (void)a;
    const Obj *ox = x, *oy = y;
    if (!ox || !oy || ox->kind != K_DICT || oy->kind != K_DICT) return fail("a delta of non-samples"), NULL;
    const Obj *ax = ox->items[0], *ay = oy->items[0];
    Obj *d = channels(0), *arr = d->items[0];
    for (long i = 0; i < arr->n; i++) arr->items[i]->value = ay->items[i]->value - ax->items[i]->value;
    return d;
}
int64_t IOReportSimpleGetIntegerValue(const void *ch, int32_t i) {
    (void)i;
    return ((const Obj *)ch)->kind == K_CHAN ? ((const Obj *)ch)->value : (fail("value of a non-channel"), 0);
}
const void *IOReportChannelGetChannelName(const void *ch) { return ((const Obj *)ch)->name; }
const void *IOReportChannelGetUnitLabel(const void *ch) { return ((const Obj *)ch)->unit; }

// --- libproc and mach_time ------------------------------------------------------------

struct proc_taskinfo_fake {
    uint64_t virt, resident, user, system;
    char rest[64];
};
int proc_pidinfo(int pid, int flavor, uint64_t arg, void *buf, int size) {
    (void)arg;
    static uint64_t ticks;
    if (pid == 999999) return 0;  // gone
    if (flavor != 4 || !buf) return fail("proc_pidinfo flavor %d", flavor), 0;
    struct proc_taskinfo_fake *t = buf;
    memset(buf, 0, (size_t)size);
    ticks += 12000000;  // 0.5 s of CPU per call at 125/3 ns per tick
    t->resident = 64u << 20, t->user = ticks, t->system = 0;
    return size;
}
int mach_timebase_info(void *info) {
    uint32_t *tb = info;
    tb[0] = 125, tb[1] = 3;  // Apple silicon's 41.67 ns tick
    return 0;
}

// --- the scenarios ------------------------------------------------------------------------

static void sleep_ms(int ms) {
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

int main(void) {
    Power p;
    double w;
    long base = g_live;
    // 1. normal: CPU 0.1 J, GPU 0.05 J, ANE 0.2 + 0.1 J per interval, the rest ignored
    g_mode = 0, g_samples = 0;
    power_open(&p);
    if (!p.ok) fail("power_open: %s", p.what);
    if (strcmp(g_group, "Energy Model")) fail("asked for group '%s'", g_group);
    sleep_ms(100);
    if (power_sample(&p, &w) != 0 || !(w > 0.45 / 0.16 && w < 0.45 / 0.095)) fail("0.45 J over ~0.1 s read as %g W (%s)", w, p.what);
    double cpu, gpu, ane;
    if (sscanf(p.what, "IOReport: CPU %lf W, GPU %lf W, ANE %lf W", &cpu, &gpu, &ane) != 3 ||
        fabs(ane / cpu - 3) > 0.2 || fabs(gpu / cpu - 0.5) > 0.1)
        fail("the split is wrong: %s", p.what);
    power_close(&p);
    // 2. no Energy Model group; 3. subscription refused; 4. samples stop
    g_mode = 1, power_open(&p);
    if (p.ok || !strstr(p.what, "no Energy Model")) fail("no group: %s", p.what);
    power_close(&p);
    g_mode = 2, power_open(&p);
    if (p.ok || !strstr(p.what, "subscription refused")) fail("refused: %s", p.what);
    power_close(&p);
    g_mode = 3, g_samples = 0, power_open(&p);
    sleep_ms(5);
    if (power_sample(&p, &w) != 0) fail("first sample of mode 3 failed");
    if (power_sample(&p, &w) == 0 || p.ok || !strstr(p.what, "stopped sampling")) fail("stopped: %s", p.what);
    power_close(&p);
    // every Create/Copy released once
    long leaked = g_live - base;
    if (leaked != 0) fail("%ld CoreFoundation objects not released", leaked);
    // sysmon: 0.5 s of CPU per sample over ~0.25 s of wall time = 200%; 64 MiB resident
    Sysmon m;
    double pct, rss;
    sysmon_init(&m, 1234);
    if (sysmon_sample(&m, &pct, &rss) != 0 || !isnan(pct) || rss != 64) fail("first sysmon sample: %g %% %g MB", pct, rss);
    sleep_ms(250);
    if (sysmon_sample(&m, &pct, &rss) != 0 || pct < 120 || pct > 210) fail("sysmon: %g %%", pct);
    sysmon_init(&m, 999999);
    if (sysmon_sample(&m, &pct, &rss) == 0) fail("a gone process sampled");
    printf("%s: %ld failed checks\n", g_failed ? "FAILED" : "OK", g_failed);
    return g_failed != 0;
}
