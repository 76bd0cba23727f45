// Stand-in for <objc/runtime.h> (objc4 runtime/runtime.h): declarations only, see ../README.md.
#pragma once
#include <objc/objc.h>

typedef struct objc_method *Method;

Class objc_getClass(const char *name);
Method class_getInstanceMethod(Class cls, SEL name);
Method class_getClassMethod(Class cls, SEL name);
BOOL class_respondsToSelector(Class cls, SEL sel);
