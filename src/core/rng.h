// rng: small, explicit-state random numbers. Every random choice in anetrain
// takes one of these, seeded explicitly, and its state is saved in checkpoints.
#pragma once
#include <stdint.h>

typedef struct { uint64_t s; } Rng;  // xorshift64* state (never 0)

static inline void rng_init(Rng *r, uint64_t seed) {
    // splitmix64 of the seed, so nearby seeds give unrelated streams
    uint64_t z = seed + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    r->s = z ? z : 0x2545F4914F6CDD1Dull;
}
static inline uint32_t rng_u32(Rng *r) {
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return (uint32_t)((r->s * 0x2545F4914F6CDD1Dull) >> 32);
}
// uniform in [0, 1) with 24 random bits
static inline float rng_f32(Rng *r) { return (rng_u32(r) >> 8) / 16777216.0f; }
// uniform in [0, n); n > 0
static inline uint64_t rng_below(Rng *r, uint64_t n) {
    uint64_t x = ((uint64_t)rng_u32(r) << 32) | rng_u32(r);
    return x % n;
}
// standard normal (Box-Muller)
float rng_normal(Rng *r);
