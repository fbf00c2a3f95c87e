// hash64.h - XXH64 (Yann Collet's xxHash, 64-bit variant, seed 0 by default): a fast non-cryptographic
// checksum for snapshots (whole files and single tensors). Implemented here from the published algorithm;
// the test vectors of the reference implementation are checked in tests/test_snapshot.c.
//
//   uint64_t h = hash64(data, nbytes, 0);            // one buffer
//   Hash64 s; hash64_init(&s, 0);                    // streaming: any split gives the same value
//   hash64_update(&s, part1, n1); hash64_update(&s, part2, n2);
//   uint64_t h2 = hash64_digest(&s);                 // == hash64(part1 ++ part2)
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct Hash64 {
    uint64_t v[4];       // the four lane accumulators
    uint64_t total;      // bytes hashed so far
    uint8_t buf[32];     // pending bytes (less than one 32-byte stripe)
    uint32_t nbuf;
    uint64_t seed;
} Hash64;

void hash64_init(Hash64 *s, uint64_t seed);
void hash64_update(Hash64 *s, const void *data, size_t n);
uint64_t hash64_digest(const Hash64 *s);
uint64_t hash64(const void *data, size_t n, uint64_t seed);
