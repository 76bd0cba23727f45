// vocab_compact: see vocab_compact.h.
#include "cpu/vocab_compact.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

void vocab_compact_free(VocabCompact *vc) {
    free(vc->map), free(vc->rows), free(vc->W), free(vc->dW);
    memset(vc, 0, sizeof *vc);
}

int vocab_compact_init(VocabCompact *vc, int V, int D, const int *rows, int n) {
    memset(vc, 0, sizeof *vc);
    if (n <= 0) return 0;
    if (n > V) return err_set("vocab compaction: %d rows for a vocab of %d", n, V);
    vc->map = malloc(sizeof(int) * V);
    vc->rows = malloc(sizeof(int) * n);
    vc->W = malloc(sizeof(float) * (size_t)n * D);
    vc->dW = calloc((size_t)n * D, sizeof(float));
    if (!vc->map || !vc->rows || !vc->W || !vc->dW) {
        vocab_compact_free(vc);
        return err_set("out of memory for vocab compaction (%d rows)", n);
    }
    for (int i = 0; i < V; i++) vc->map[i] = -1;
    for (int i = 0; i < n; i++) {
        if (rows[i] < 0 || rows[i] >= V || (i && rows[i] <= rows[i - 1])) {
            vocab_compact_free(vc);
            return err_set("vocab compaction: rows must be ascending ids in [0, %d)", V);
        }
        vc->rows[i] = rows[i];
        vc->map[rows[i]] = i;
    }
    vc->n = n, vc->V = V, vc->D = D;
    return 0;
}

void vocab_compact_gather(VocabCompact *vc, const float *W, const int *targets_in, int *targets_out, int S) {
    const size_t D = (size_t)vc->D;
    for (int i = 0; i < vc->n; i++) memcpy(vc->W + i * D, W + (size_t)vc->rows[i] * D, sizeof(float) * D);
    vocab_compact_targets(vc, targets_in, targets_out, S);
}

void vocab_compact_targets(const VocabCompact *vc, const int *targets_in, int *targets_out, int S) {
    for (int t = 0; t < S; t++) targets_out[t] = targets_in[t] >= 0 ? vc->map[targets_in[t]] : -1;
}

void vocab_compact_scatter(VocabCompact *vc, float *dW_full) {
    const size_t D = (size_t)vc->D;
    for (int i = 0; i < vc->n; i++) {
        float *dst = dW_full + (size_t)vc->rows[i] * D;
        const float *src = vc->dW + i * D;
        for (size_t d = 0; d < D; d++) dst[d] += src[d];
    }
    memset(vc->dW, 0, sizeof(float) * vc->n * D);
}
