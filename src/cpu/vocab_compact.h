// vocab_compact: a classifier over only the token ids that occur in the data.
//
// The original's dynamic pipeline compacts the vocabulary (32K-152K ids -> the
// ones in the data) so the classifier, softmax and loss cost a fraction. The
// loss changes: the softmax normalizer leaves out every id that never occurs.
// One type for every pipeline: gather the active rows of the classifier
// before the forward, map targets to compact ids, scatter the rows' gradient
// back after the backward (the rows of unseen ids get none and only decay).
#pragma once

typedef struct {
    int n;          // active rows (0 = off: the full vocab)
    int V, D;       // full vocab, row width
    int *map;       // (V) full id -> compact id, -1 if inactive
    int *rows;      // (n) compact id -> full id, ascending
    float *W;       // (n,D) the gathered classifier rows
    float *dW;      // (n,D) their gradient
} VocabCompact;

// rows: n ascending ids in [0, V). n = 0 leaves it off. -1 + err_msg on bad rows.
int vocab_compact_init(VocabCompact *vc, int V, int D, const int *rows, int n);
void vocab_compact_free(VocabCompact *vc);
// Gathers the active rows of the full classifier W (V,D) into vc->W and writes
// targets_out[t] = compact id of targets_in[t] (-1 stays -1; an inactive id
// also maps to -1: no loss). S positions.
void vocab_compact_gather(VocabCompact *vc, const float *W, const int *targets_in, int *targets_out, int S);
// Only the targets' mapping of vocab_compact_gather (the rows gathered already).
void vocab_compact_targets(const VocabCompact *vc, const int *targets_in, int *targets_out, int S);
// dW_full (V,D) rows += vc->dW rows, then vc->dW is zeroed for the next window.
void vocab_compact_scatter(VocabCompact *vc, float *dW_full);
