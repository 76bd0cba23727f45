// run_id: file fingerprints and the list of changes a resume makes.
#include "train/run_id.h"

#include <stdio.h>
#include <string.h>

#include "core/io.h"
#include "train/checkpoint.h"

#define FP_SPAN ((size_t)1 << 20)

int run_id_fingerprint(const char *path, uint64_t *bytes, uint64_t *fp) {
    MappedFile m;
    if (io_map(&m, path) != 0) return -1;
    const size_t head = m.size < FP_SPAN ? m.size : FP_SPAN;
    const uint32_t first = crc32_update(0, m.data, head);
    const uint32_t last = crc32_update(0, m.data + (m.size - head), head);
    *bytes = m.size;
    *fp = (uint64_t)first << 32 | last;
    io_unmap(&m);
    return 0;
}

void run_changes_add(RunChanges *ch, const char *what, const char *from, const char *to) {
    if (ch->n >= RUN_CHANGES_MAX) return;
    RunChange *c = &ch->c[ch->n++];
    snprintf(c->what, sizeof c->what, "%s", what);
    snprintf(c->from, sizeof c->from, "%s", from);
    snprintf(c->to, sizeof c->to, "%s", to);
}
