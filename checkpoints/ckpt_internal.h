// ckpt_internal.h - helpers shared by the checkpoint readers and writers (not a public API; defined in
// ckpt_internal.c). Readers include this and weight_formats.h, never weights.h (the dispatch above them).
#pragma once
#include <stdint.h>
#include <string.h>
#include "checkpoints/weight_set.h"

// Limits for untrusted files.
#define CKPT_MAX_FILE_BYTES ((size_t)1 << 36)        // 64 GiB: larger files are refused before reading
#define CKPT_MAX_NAME_BYTES 4096                     // a tensor name
#define CKPT_MAX_SAFETENSORS_HEADER ((uint64_t)100 << 20) // 100 MB, as the safetensors reference
// Compressed data (deflated zip entries, HDF5 chunks): all of it in one file may decode to at most
// CKPT_INFLATE_SLACK + CKPT_INFLATE_RATIO x its compressed size. Real weights (float noise) deflate by less than
// 1.2x and pickles and code by about 5-10x; hundreds of times is a file of zeros built to cost memory.
#define CKPT_INFLATE_RATIO 16
#define CKPT_INFLATE_SLACK ((uint64_t)16 << 20)

// IEEE half / bfloat16 -> float32, exact (subnormals, infinities and NaNs included).
static inline float ckpt_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1F, man = h & 0x3FF, bits;
    if (exp == 0x1F) bits = sign | 0x7F800000u | (man << 13);            // inf / nan
    else if (exp != 0) bits = sign | ((exp + 112) << 23) | (man << 13);  // normal: rebias 15 -> 127
    else if (man == 0) bits = sign;                                      // +-0
    else {                                                               // subnormal: normalise
        int e = -1;
        do { man <<= 1; e++; } while (!(man & 0x400));
        bits = sign | ((uint32_t)(112 - e) << 23) | ((man & 0x3FF) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}
static inline float ckpt_bf16_to_float(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}
static inline uint16_t ckpt_le16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t ckpt_le32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t ckpt_le64(const uint8_t *p) { return (uint64_t)ckpt_le32(p) | ((uint64_t)ckpt_le32(p + 4) << 32); }

// Element types found in weight files.
typedef enum { CKPT_F32, CKPT_F16, CKPT_BF16, CKPT_F64, CKPT_INT_OTHER } CkptDtype;
// Convert n little-endian elements of a float dtype to float32 (src may be unaligned).
void ckpt_convert(float *dst, const uint8_t *src, int64_t n, CkptDtype dt);

// Integer buffers that are not weights and are skipped by every reader ("position_ids", ...).
bool ckpt_skippable_int_tensor(const char *name);

#define CKPT_MAX_TENSORS (1 << 20)

// First duplicate among n names (sorted copy, O(n log n)), or NULL.
const char *ckpt_find_duplicate(const char *const *names, int64_t n);

// Read a whole weights file (regular file, at most CKPT_MAX_FILE_BYTES). NULL + err on failure.
uint8_t *ckpt_read_file(const char *path, size_t *len, XcError *err);

// Tensor names of a WeightSet by hash, for code that looks names up while it fills a set (the Hugging Face
// name mapping: a million names would take hours with weights_find). Open addressing over the set's indices;
// the set must only grow while indexed.
typedef struct CkptNameIndex { int32_t *slot; int64_t cap, count; } CkptNameIndex; // slot: tensor index + 1, 0 = free
// Index every tensor of ws (ix zero-initialised or freed before).
void ckpt_index_build(CkptNameIndex *ix, const WeightSet *ws);
// Tensor of ws named name, or NULL.
const WeightTensor *ckpt_index_find(const CkptNameIndex *ix, const WeightSet *ws, const char *name);
// Index the tensors appended to ws since the last call.
void ckpt_index_update(CkptNameIndex *ix, const WeightSet *ws);
void ckpt_index_free(CkptNameIndex *ix);
