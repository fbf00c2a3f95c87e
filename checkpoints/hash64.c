// hash64.c - XXH64, see hash64.h. Four independent 64-bit lanes consume 32-byte stripes
// (multiply, rotate, multiply); the lanes are merged, the tail (< 32 bytes) is mixed in 8, 4 and 1
// byte steps, and a final avalanche spreads every input bit over the result.
#include "checkpoints/hash64.h"

#include <string.h>

#define P1 0x9E3779B185EBCA87ull
#define P2 0xC2B2AE3D27D4EB4Full
#define P3 0x165667B19E3779F9ull
#define P4 0x85EBCA77C2B2AE63ull
#define P5 0x27D4EB2F165667C5ull

static inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static inline uint64_t rd64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; } // little-endian host
static inline uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t lane(uint64_t acc, uint64_t in) { return rotl(acc + in * P2, 31) * P1; }
static inline uint64_t merge(uint64_t h, uint64_t v) { return (h ^ lane(0, v)) * P1 + P4; }

void hash64_init(Hash64 *s, uint64_t seed) {
    memset(s, 0, sizeof *s);
    s->seed = seed;
    s->v[0] = seed + P1 + P2;
    s->v[1] = seed + P2;
    s->v[2] = seed;
    s->v[3] = seed - P1;
}

static void stripes(uint64_t v[4], const uint8_t *p, size_t nstripes) {
    uint64_t a = v[0], b = v[1], c = v[2], d = v[3];
    for (size_t i = 0; i < nstripes; i++, p += 32) {
        a = lane(a, rd64(p));
        b = lane(b, rd64(p + 8));
        c = lane(c, rd64(p + 16));
        d = lane(d, rd64(p + 24));
    }
    v[0] = a; v[1] = b; v[2] = c; v[3] = d;
}

void hash64_update(Hash64 *s, const void *data, size_t n) {
    const uint8_t *p = data;
    s->total += n;
    if (s->nbuf) {
        size_t take = 32 - s->nbuf < n ? 32 - s->nbuf : n;
        memcpy(s->buf + s->nbuf, p, take);
        s->nbuf += (uint32_t)take;
        p += take;
        n -= take;
        if (s->nbuf < 32) return;
        stripes(s->v, s->buf, 1);
        s->nbuf = 0;
    }
    stripes(s->v, p, n / 32);
    p += n / 32 * 32;
    n %= 32;
    memcpy(s->buf, p, n);
    s->nbuf = (uint32_t)n;
}

uint64_t hash64_digest(const Hash64 *s) {
    uint64_t h;
    if (s->total >= 32) {
        h = rotl(s->v[0], 1) + rotl(s->v[1], 7) + rotl(s->v[2], 12) + rotl(s->v[3], 18);
        for (int i = 0; i < 4; i++) h = merge(h, s->v[i]);
    } else {
        h = s->seed + P5;
    }
    h += s->total;
    const uint8_t *p = s->buf;
    size_t n = s->nbuf;
    for (; n >= 8; n -= 8, p += 8) h = rotl(h ^ lane(0, rd64(p)), 27) * P1 + P4;
    if (n >= 4) { h = rotl(h ^ (uint64_t)rd32(p) * P1, 23) * P2 + P3; n -= 4; p += 4; }
    for (; n > 0; n--, p++) h = rotl(h ^ (uint64_t)*p * P5, 11) * P1;
    h ^= h >> 33;
    h *= P2;
    h ^= h >> 29;
    h *= P3;
    h ^= h >> 32;
    return h;
}

uint64_t hash64(const void *data, size_t n, uint64_t seed) {
    Hash64 s;
    hash64_init(&s, seed);
    hash64_update(&s, data, n);
    return hash64_digest(&s);
}
