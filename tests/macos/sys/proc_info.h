// Stand-in for <sys/proc_info.h>: declarations only, see ../README.md. The task-info
// flavor and its struct as the macOS SDK defines them.
#pragma once
#include <stdint.h>

#define PROC_PIDTASKINFO 4

struct proc_taskinfo {
    uint64_t pti_virtual_size;   // virtual memory size (bytes)
    uint64_t pti_resident_size;  // resident memory size (bytes)
    uint64_t pti_total_user;     // total time (Mach absolute time units)
    uint64_t pti_total_system;
    uint64_t pti_threads_user;   // existing threads only
    uint64_t pti_threads_system;
    int32_t pti_policy;
    int32_t pti_faults;
    int32_t pti_pageins;
    int32_t pti_cow_faults;
    int32_t pti_messages_sent;
    int32_t pti_messages_received;
    int32_t pti_syscalls_mach;
    int32_t pti_syscalls_unix;
    int32_t pti_csw;
    int32_t pti_threadnum;
    int32_t pti_numrunning;
    int32_t pti_priority;
};
