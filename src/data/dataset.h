// dataset: token files in, training windows out.
//
// Token files (detected from the bytes):
//   - headerless little-endian uint16 ids (llama2.c / the original trainer's
//     tinystories_data00.bin);
//   - anetrain token files: 32-byte header {magic "ANTK", u32 version 1,
//     u32 dtype (2 = uint16, 4 = uint32), u32 vocab, u64 count, u64 reserved}
//     then count ids of that width (used when the vocab does not fit uint16);
//   - llm.c shards: int32[256] header, magic 20240520 (uint16) or 20240801 (uint32).
// Every id is validated < vocab at open time (the error names the first bad position).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "core/io.h"
#include "core/rng.h"

typedef enum { TOKFMT_RAW16 = 0, TOKFMT_ANETRAIN = 1, TOKFMT_LLMC = 2 } TokenFormat;

typedef struct {
    MappedFile map;
    TokenFormat format;
    int width;            // bytes per id: 2 or 4
    const uint8_t *ids;   // start of the id array inside the mapping
    size_t count;         // number of ids
    int file_vocab;       // vocab recorded in the header (0 if none)
    char path[512];
} TokenFile;

// Opens and validates: non-empty, size consistent with the header (odd byte
// count for raw uint16 is an error), every id < vocab. vocab <= 0 checks
// against the vocab in the file's header instead (no check if it has none).
int tokens_open(TokenFile *tf, const char *path, int vocab);
void tokens_close(TokenFile *tf);
// "raw uint16", "anetrain" or "llm.c", for messages.
const char *tokens_format_name(TokenFormat f);
static inline int tokens_get(const TokenFile *tf, size_t i) {
    return tf->width == 2 ? (int)((const uint16_t *)tf->ids)[i] : (int)((const uint32_t *)tf->ids)[i];
}
// Writes ids atomically: raw uint16 when vocab <= 65536, else the anetrain format.
int tokens_write(const char *path, const uint32_t *ids, size_t count, int vocab);

typedef enum { SAMPLE_RANDOM = 0, SAMPLE_SEQUENTIAL = 1 } SampleMode;

// Windows of seq+1 tokens (inputs = [0,seq), targets = [1,seq]) from a range
// [begin, end) of a token file. Random mode picks uniform start positions;
// sequential walks non-overlapping windows and wraps.
//
// The order is counter-based: the i-th window of a run is a function of the
// seed and i alone, so any process can compute any window without drawing
// the ones before it (data-parallel ranks take every N-th one) and the whole
// state is the cursor, whatever the number of ranks. Random mode's window i is
// the i-th draw of the xorshift stream the sampler always used (reached by a
// jump-ahead, not by drawing), so the windows, their order and the recorded
// (data_rng, cursor) are exactly those of older runs and checkpoints.
// Sequential mode's window i is window i mod the number of windows.
//
// A checkpoint whose data_rng is not the state its cursor implies (one
// imported from the original trainer) continues that stream as it is
// (`stream` = 1); skipping windows there draws and discards them.
typedef struct {
    const TokenFile *tf;
    size_t begin, end;    // token range used (held-out splits use disjoint ranges)
    int seq;
    SampleMode mode;
    Rng rng;              // the stream's state at window 0 (stream = 1: its current state)
    int stream;           // 1: a recorded stream the counter does not explain
    uint64_t cursor;      // windows drawn so far (sequential: the next window's index)
} Dataset;

// Fails if the range holds fewer than seq+1 tokens.
int dataset_init(Dataset *ds, const TokenFile *tf, size_t begin, size_t end, int seq, SampleMode mode,
                 uint64_t seed);
// Fills tokens[seq] and targets[seq] with the next window.
void dataset_next(Dataset *ds, int *tokens, int *targets);
// Passes over the next n windows (the ones other ranks take).
void dataset_skip(Dataset *ds, uint64_t n);
// The sampler's state as a checkpoint records it: the stream's state after
// cursor windows (implied by the counter), and the cursor.
void dataset_state(const Dataset *ds, uint64_t *rng, uint64_t *cursor);
// Continues from a recorded state (after dataset_init with the run's seed);
// rng 0 = none recorded.
void dataset_restore(Dataset *ds, uint64_t rng, uint64_t cursor);
// Number of distinct non-overlapping windows in the range (for full-pass evaluation).
size_t dataset_num_windows(const Dataset *ds);
// The i-th non-overlapping window (for evaluation passes; does not touch the state).
void dataset_window(const Dataset *ds, size_t i, int *tokens, int *targets);
