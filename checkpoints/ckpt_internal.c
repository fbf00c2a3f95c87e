// ckpt_internal.c - the helpers every reader and writer shares (ckpt_internal.h): duplicate names, dtype
// conversion, skippable integer buffers, reading a whole file.
#include "checkpoints/ckpt_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
    struct stat st;
    if (stat(path, &st) != 0) { xc_err(err, "%s: cannot open: %s", path, strerror(errno)); return NULL; }
    if (S_ISDIR(st.st_mode)) { xc_err(err, "%s: is a directory, not a weights file", path); return NULL; }
    uint8_t *buf = xc_read_file(path, CKPT_MAX_FILE_BYTES, len, err);
    if (buf && *len == 0) { xc_err(err, "%s: file is empty", path); xc_free(buf); return NULL; }
    return buf;
}
