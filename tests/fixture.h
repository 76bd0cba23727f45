// fixture: loader for the golden fixtures written by tools/gen_fixtures.py.
//
// Container (little-endian; every field is 4 bytes, so every tensor's data is
// 4-byte aligned in a buffer that starts aligned):
//
//   magic    8 bytes  "ANEFIXT\0"
//   version  u32      1
//   count    u32      number of tensor records that follow
//   count records:
//     name_len u32         1..63
//     name     name_len bytes of ASCII, then NULs up to a multiple of 4 bytes
//     dtype    u32         0 = f32, 1 = i32
//     ndim     u32         0..4 (0 = scalar: one element)
//     dims     u32[ndim]
//     data     numel * 4 bytes
//   the file ends exactly after the last record.
//
// Tensors of a fixture (see the script for the models):
//   config.<field>   scalars, one per Config field (i32, or f32 for norm_eps,
//                    rope_theta, res_scale); rope_layout 0 interleaved, 1 half
//   S                i32 scalar, the window length (== config.seq_len)
//   tokens, targets  i32 [S]
//   <param>          f32, every parameter under our names: embed [V,D];
//                    per-layer [L,rows,cols] (rows 1 for norm vectors: rms_att,
//                    q_norm, k_norm, rms_ffn); rms_final [D]; wcls [V,D] if untied
//   logits [S,V], loss (scalar), grad.<param> (shaped like <param>),
//   adamw_losses [5] (loss before each of 5 AdamW updates on the same batch)
#pragma once
#include <stddef.h>

#include "model/config.h"
#include "model/params.h"

enum { FIXTURE_F32 = 0, FIXTURE_I32 = 1, FIXTURE_MAX_DIMS = 4 };

typedef struct {
    char name[64];
    int dtype;                    // FIXTURE_F32 / FIXTURE_I32
    int ndim;
    int dims[FIXTURE_MAX_DIMS];
    size_t numel;
    const void *data;             // into Fixture.buf, 4-byte aligned
} FixtureTensor;

typedef struct {
    char path[512];
    char *buf;                    // the whole file
    size_t size;
    FixtureTensor *t;             // (n)
    int n;
    Config cfg;
    int S;
    int *tokens, *targets;        // (S)
    Params params;                // filled by name from the file
} Fixture;

// Parses the container only (magic, version, every record's bounds).
int fixture_open(Fixture *fx, const char *path);
// fixture_open + config + S + tokens/targets + params (params_init, then each
// TensorDesc copied from the tensor of that name with the expected shape).
int fixture_load(Fixture *fx, const char *path);
void fixture_free(Fixture *fx);

// The record called `name`, or NULL.
const FixtureTensor *fixture_find(const Fixture *fx, const char *name);
// The f32 data of `name`, which must hold exactly `numel` elements; NULL (with
// err_msg naming the file and tensor) if missing, of another dtype or size.
const float *fixture_f32(const Fixture *fx, const char *name, size_t numel);
