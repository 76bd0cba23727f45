// Stand-in for <libproc.h>: declarations only, see README.md. Signature from libproc.h of the macOS SDK.
#pragma once
#include <stdint.h>
#include <sys/proc_info.h>

int proc_pidinfo(int pid, int flavor, uint64_t arg, void *buffer, int buffersize);
