// Stand-in for <objc/objc.h> (objc4 runtime/objc.h): declarations only, see ../README.md.
#pragma once
#include <stdbool.h>

typedef struct objc_class *Class;
struct objc_object {
    Class isa;
};
typedef struct objc_object *id;
typedef struct objc_selector *SEL;
typedef void (*IMP)(void /* id, SEL, ... */);

// BOOL is bool on arm64 macOS, signed char on x86_64 macOS.
#if defined(__aarch64__) || defined(__arm64__)
typedef bool BOOL;
#else
typedef signed char BOOL;
#endif
#define YES ((BOOL)1)
#define NO ((BOOL)0)
#ifndef nil
#define nil ((void *)0)
#endif

const char *sel_getName(SEL sel);
SEL sel_registerName(const char *str);
