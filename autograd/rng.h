// rng.h - counter-based random numbers (Philox4x32-10) with independent streams.
//
// A stream is (key, counter): the key comes from (seed, stream id) and the counter counts blocks of
// four 32-bit outputs, so a generator's full state is two 64-bit numbers that can be saved and
// restored exactly, and a sub-stream for (seed, epoch, sample) can be made without touching others.
//
//   Rng init = rng_stream(1024, RNG_STREAM_INIT);      // weights initialisation
//   float w = rng_normal(&init);
//   Rng s = rng_substream(1024, RNG_STREAM_DATA, epoch, sample_index); // per-sample augmentation
//   RngState st = rng_get_state(&init); ... rng_set_state(&init, st);
#pragma once
#include <stdint.h>

// Stream ids: one per purpose, so that adding draws to one never shifts another.
enum {
    RNG_STREAM_INIT = 1,     // parameter initialisation
    RNG_STREAM_DROP = 2,     // dropout / drop-path masks
    RNG_STREAM_DATA = 3,     // sampling and augmentation (with epoch, sample sub-streams)
    RNG_STREAM_ORDER = 4,    // epoch permutations, few-shot draws
    RNG_STREAM_MIX = 5,      // mixup / cutmix
    RNG_STREAM_TEST = 99,    // tests and benchmarks
};

// The full state: restoring it continues the exact same sequence (buffered words and the cached
// Box-Muller value included).
typedef struct RngState {
    uint64_t key;
    uint64_t counter;
    uint32_t pos;
    uint32_t has_spare;
    float spare;
} RngState;

typedef struct Rng {
    uint64_t key;
    uint64_t counter;     // next block to generate
    uint32_t buf[4];      // current block
    int pos;              // next unused word in buf (4 = empty)
    float spare;          // cached second Box-Muller value
    int has_spare;
} Rng;

Rng rng_stream(uint64_t seed, uint64_t stream);
Rng rng_substream(uint64_t seed, uint64_t stream, uint64_t a, uint64_t b);
RngState rng_get_state(const Rng *r);
void rng_set_state(Rng *r, RngState s);

uint32_t rng_u32(Rng *r);
uint64_t rng_u64(Rng *r);
float rng_uniform(Rng *r);                  // [0, 1) with 24 random bits
double rng_uniform_double(Rng *r);          // [0, 1) with 53 random bits
uint64_t rng_below(Rng *r, uint64_t n);     // uniform integer in [0, n), no modulo bias
float rng_normal(Rng *r);                   // standard normal (Box-Muller)
// Fill helpers used by initialisers.
void rng_fill_uniform(Rng *r, float *x, int64_t n, float lo, float hi);
void rng_fill_normal(Rng *r, float *x, int64_t n, float mean, float std);
// Truncated normal on [mean-2std, mean+2std] (as timm's trunc_normal_ default a=-2, b=2 with std 0.02
// is effectively untruncated; this uses the same absolute cut [-2, 2] as timm: a, b are absolute).
void rng_fill_trunc_normal(Rng *r, float *x, int64_t n, float mean, float std, float a, float b);
// Fisher-Yates permutation of 0..n-1.
void rng_permutation(Rng *r, int64_t *perm, int64_t n);
