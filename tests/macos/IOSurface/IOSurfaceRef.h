// Stand-in for <IOSurface/IOSurfaceRef.h> (with IOSurfaceTypes.h and
// mach/kern_return.h): declarations only, see ../README.md.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include <CoreFoundation/CoreFoundation.h>

typedef int kern_return_t;  // mach/kern_return.h
typedef uint32_t IOSurfaceID;
typedef uint32_t OSType;
typedef uint32_t IOSurfaceLockOptions;  // CF_OPTIONS(uint32_t, IOSurfaceLockOptions)
enum {
    kIOSurfaceLockReadOnly = 0x00000001,
    kIOSurfaceLockAvoidSync = 0x00000002,
};

typedef struct __IOSurface *IOSurfaceRef;

extern const CFStringRef kIOSurfaceAllocSize;
extern const CFStringRef kIOSurfaceWidth;
extern const CFStringRef kIOSurfaceHeight;
extern const CFStringRef kIOSurfaceBytesPerRow;
extern const CFStringRef kIOSurfaceBytesPerElement;
extern const CFStringRef kIOSurfacePixelFormat;

CFTypeID IOSurfaceGetTypeID(void);
IOSurfaceRef IOSurfaceCreate(CFDictionaryRef properties);
kern_return_t IOSurfaceLock(IOSurfaceRef buffer, IOSurfaceLockOptions options, uint32_t *seed);
kern_return_t IOSurfaceUnlock(IOSurfaceRef buffer, IOSurfaceLockOptions options, uint32_t *seed);
size_t IOSurfaceGetAllocSize(IOSurfaceRef buffer);
void *IOSurfaceGetBaseAddress(IOSurfaceRef buffer);
