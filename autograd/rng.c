// rng.c - Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11).
#include "autograd/rng.h"

#include <math.h>
#include <string.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static void philox4x32_10(uint64_t counter, uint64_t key, uint32_t out[4]) {
    uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32), c2 = 0, c3 = 0;
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0;
        uint64_t p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n1 = (uint32_t)p1;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        uint32_t n3 = (uint32_t)p0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0; out[1] = c1; out[2] = c2; out[3] = c3;
}

// splitmix64 finaliser: mixes (seed, stream, ...) into a key.
static uint64_t mix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

Rng rng_substream(uint64_t seed, uint64_t stream, uint64_t a, uint64_t b) {
    Rng r;
    memset(&r, 0, sizeof r);
    r.key = mix64(mix64(mix64(mix64(seed) ^ stream) ^ a) ^ b);
    r.pos = 4;
    return r;
}

Rng rng_stream(uint64_t seed, uint64_t stream) { return rng_substream(seed, stream, 0, 0); }

RngState rng_get_state(const Rng *r) {
    return (RngState){r->key, r->counter, (uint32_t)r->pos, (uint32_t)r->has_spare, r->spare};
}

void rng_set_state(Rng *r, RngState s) {
    memset(r, 0, sizeof *r);
    r->key = s.key;
    r->counter = s.counter;
    r->pos = s.pos > 4 ? 4 : (int)s.pos;
    if (r->pos < 4) philox4x32_10(r->counter - 1, r->key, r->buf); // the block being consumed
    r->has_spare = s.has_spare != 0;
    r->spare = s.spare;
}

uint32_t rng_u32(Rng *r) {
    if (r->pos == 4) {
        philox4x32_10(r->counter++, r->key, r->buf);
        r->pos = 0;
    }
    return r->buf[r->pos++];
}

uint64_t rng_u64(Rng *r) {
    uint64_t hi = rng_u32(r);
    return (hi << 32) | rng_u32(r);
}

float rng_uniform(Rng *r) { return (float)(rng_u32(r) >> 8) * (1.0f / 16777216.0f); }

double rng_uniform_double(Rng *r) { return (double)(rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

uint64_t rng_below(Rng *r, uint64_t n) {
    if (n <= 1) return 0;
    uint64_t limit = UINT64_MAX - UINT64_MAX % n; // reject the incomplete last bucket
    uint64_t x;
    do x = rng_u64(r); while (x >= limit);
    return x % n;
}

float rng_normal(Rng *r) {
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u1, u2;
    do u1 = rng_uniform_double(r); while (u1 <= 0.0);
    u2 = rng_uniform_double(r);
    double rad = sqrt(-2.0 * log(u1)), th = 2.0 * M_PI * u2;
    r->spare = (float)(rad * sin(th));
    r->has_spare = 1;
    return (float)(rad * cos(th));
}

void rng_fill_uniform(Rng *r, float *x, int64_t n, float lo, float hi) {
    for (int64_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * rng_uniform(r);
}

void rng_fill_normal(Rng *r, float *x, int64_t n, float mean, float std) {
    for (int64_t i = 0; i < n; i++) x[i] = mean + std * rng_normal(r);
}

void rng_fill_trunc_normal(Rng *r, float *x, int64_t n, float mean, float std, float a, float b) {
    for (int64_t i = 0; i < n; i++) {
        float v;
        do v = mean + std * rng_normal(r); while (v < a || v > b); // rejection: exact truncation
        x[i] = v;
    }
}

void rng_permutation(Rng *r, int64_t *perm, int64_t n) {
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)rng_below(r, (uint64_t)i + 1);
        int64_t t = perm[i]; perm[i] = perm[j]; perm[j] = t;
    }
}
