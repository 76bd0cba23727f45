// Stand-in for <objc/message.h> (objc4 runtime/message.h): declarations only, see ../README.md.
#pragma once
#include <objc/objc.h>

// The SDK's default (!OBJC_OLD_DISPATCH_PROTOTYPES): no prototype to call
// through, so every send must be cast to the method's exact C signature.
void objc_msgSend(void /* id self, SEL op, ... */);
