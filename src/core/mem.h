// mem: the big blocks — weights, gradients, Adam moments, activations.
//
// mem_alloc_big returns zeroed memory whose pages are already in place: a
// fresh block of several GB otherwise takes a page fault per 4 KiB the first
// time the step touches it, and the first update pays for all of them
// (qwen3-0.6b: ~2.5 million). Blocks of MEM_HUGE_MIN bytes or more are
// 2 MiB-aligned and advised as transparent huge pages (Linux; elsewhere plain
// pages), 512 times fewer faults and TLB entries. free() releases it.
#pragma once
#include <stddef.h>

enum { MEM_HUGE_MIN = 32 << 20 };

// NULL when out of memory (no message: the caller knows what it was for).
void *mem_alloc_big(size_t bytes);
