// ckpt_internal.c - the helpers every reader and writer shares (ckpt_internal.h): duplicate names, dtype
// conversion, skippable integer buffers, reading a whole file.
#include "checkpoints/ckpt_internal.h"
#include "checkpoints/hash64.h"

#include <stdlib.h>
#include <string.h>

static int cmp_names(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

const char *ckpt_find_duplicate(const char *const *names, int64_t n) {
    if (n < 2) return NULL;
    const char **s = xc_malloc((size_t)n * sizeof *s);
    memcpy(s, names, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_names);
    const char *dup = NULL;
    for (int64_t i = 1; i < n && !dup; i++)
        if (strcmp(s[i - 1], s[i]) == 0) dup = s[i];
    xc_free(s);
    return dup;
}

void ckpt_convert(float *dst, const uint8_t *src, int64_t n, CkptDtype dt) {
    switch (dt) {
    case CKPT_F32: memcpy(dst, src, (size_t)n * 4); break; // little-endian host
    case CKPT_F16: for (int64_t i = 0; i < n; i++) dst[i] = ckpt_half_to_float(ckpt_le16(src + 2 * i)); break;
    case CKPT_BF16: for (int64_t i = 0; i < n; i++) dst[i] = ckpt_bf16_to_float(ckpt_le16(src + 2 * i)); break;
    case CKPT_F64:
        for (int64_t i = 0; i < n; i++) {
            uint64_t b = ckpt_le64(src + 8 * i);
            double d;
            memcpy(&d, &b, 8);
            dst[i] = (float)d;
        }
        break;
    default: xc_fatal("ckpt_convert: not a float dtype (%d)", (int)dt);
    }
}

bool ckpt_skippable_int_tensor(const char *name) {
    static const char *suffixes[] = {"position_ids", "num_batches_tracked"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        size_t k = strlen(suffixes[i]);
        if (n >= k && strcmp(name + n - k, suffixes[i]) == 0 && (n == k || name[n - k - 1] == '.')) return true;
    }
    return false;
}

uint8_t *ckpt_read_file(const char *path, size_t *len, XcError *err) {
    // xc_read_file refuses, without blocking, what is not a regular file (a FIFO, device, directory), naming it
    uint8_t *buf = xc_read_file(path, CKPT_MAX_FILE_BYTES, len, err);
    if (buf && *len == 0) { xc_err(err, "%s: file is empty", path); xc_free(buf); return NULL; }
    return buf;
}

// ---- name index ------------------------------------------------------------------------------------------
static void index_insert(CkptNameIndex *ix, const WeightSet *ws, int32_t i) {
    uint64_t mask = (uint64_t)ix->cap - 1, h = hash64(ws->t[i].name, strlen(ws->t[i].name), 0) & mask;
    while (ix->slot[h]) h = (h + 1) & mask;
    ix->slot[h] = i + 1;
}

void ckpt_index_update(CkptNameIndex *ix, const WeightSet *ws) {
    if (2 * (int64_t)ws->n >= ix->cap) { // keep the table at most half full: rebuild at twice the size
        int64_t cap = 64;
        while (cap <= 2 * (int64_t)ws->n) cap *= 2;
        xc_free(ix->slot);
        ix->slot = xc_calloc((size_t)cap, sizeof *ix->slot);
        ix->cap = cap;
        ix->count = 0;
    }
    for (int64_t i = ix->count; i < ws->n; i++) index_insert(ix, ws, (int32_t)i);
    ix->count = ws->n;
}

void ckpt_index_build(CkptNameIndex *ix, const WeightSet *ws) {
    memset(ix, 0, sizeof *ix);
    ckpt_index_update(ix, ws);
}

const WeightTensor *ckpt_index_find(const CkptNameIndex *ix, const WeightSet *ws, const char *name) {
    if (!ix->cap) return NULL;
    uint64_t mask = (uint64_t)ix->cap - 1, h = hash64(name, strlen(name), 0) & mask;
    for (; ix->slot[h]; h = (h + 1) & mask)
        if (strcmp(ws->t[ix->slot[h] - 1].name, name) == 0) return &ws->t[ix->slot[h] - 1];
    return NULL;
}

void ckpt_index_free(CkptNameIndex *ix) {
    xc_free(ix->slot);
    memset(ix, 0, sizeof *ix);
}
