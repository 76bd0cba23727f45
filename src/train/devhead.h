// devhead: the classifier and its cross-entropy on the device, over chunks of
// the classifier's rows (the vocabulary, or its compacted ids).
//
// For chunk c a classifier kernel gives the chunk's logits (static-ane: the
// baked 1x1 conv; dynamic: clsFwd, the rows staged), vocabSoftmax gives the
// chunk's softmax with its max and Σ exp(logit − max) (kept in the chunk's
// own output surface for the backward), and the CPU combines the chunks into
// the loss (logsumexp − the target's logit, read from the classifier's
// output) and, in the backward, dL/d logits = scale·(p − onehot)/n_valid.
// The dynamic pipeline adds clsBwd per chunk (its share of the gradient at
// the final norm's output); static-ane runs that product on the CPU. The
// weight gradient dE = dl·xfᵀ is the caller's.
#pragma once
#include "train/devpipe.h"

typedef struct {
    DevKernel *cls;       // (n) a chunk's logits
    DevKernel *bwd;       // (n) clsBwd: a chunk's dx (NULL: none on the device)
    DevKernel *sm;        // (n) vocabSoftmax: compiled for chunk 0 (and a shorter last chunk), bound
                          // to the others through chunk 0's input, each with an output of its own
    int V;                // rows of the classifier
    int n, rows;          // chunks of rows (the last has V - (n-1)·rows)
    int S;
    int *tgt;             // (S) the targets as rows (-1: no loss)
    float *dl;            // (V,S) the logits' gradient
    float *mx, *sum;      // (n,S) per chunk
    float *lse, *tlogit;  // (S)
    float *f;             // (n,S) per chunk: its softmax to the global one
    float *block;
} DevHead;

// Chunks of V rows: static-ane's classifier conv (mil_vocab_chunks) or the
// dynamic kernels (mil_head_chunks; the clsBwd bindings too).
// -1 with err_msg() when out of memory.
int devhead_init(DevHead *h, int V, int S, int dynamic);
// Frees the kernels (on dev) and the buffers.
void devhead_free(DevHead *h, Device *dev);
// Rows of chunk c (the last may be shorter); its first row is c·rows.
int devhead_rows(const DevHead *h, int c);
// The weight-free vocabSoftmax kernels (one or two chunk sizes) and their binding per chunk.
int devhead_compile_softmax(DevHead *h, Device *dev, const Config *cfg, MilDialect dialect);
// The targets of the window as rows (vc: compacted ids; NULL or empty: as they are).
void devhead_targets(DevHead *h, const VocabCompact *vc, const int *tgt);
// After cls[c] ran: its softmax (left on the device), max and sum into mx, sum; the targets' logits.
int devhead_chunk_softmax(Pipeline *pl, Device *dev, DevHead *h, int c);
// The chunks into lse, each chunk's factor to the softmax over every row (f),
// and *loss = the mean of lse − logit[target] over positions with a target (0 without).
void devhead_combine(DevHead *h, float *loss);
// Chunk c's rows of dl = scale·(p − onehot)/n_valid, p its softmax on the
// device times its factors (0 for positions without a target); also into
// the `dl` input region of kernel into unless NULL. Timed as CPU ops (dp_fused).
int devhead_dlogits(Pipeline *pl, Device *dev, DevHead *h, int c, float scale, DevKernel *into);
