// weights.c - the WeightSet container, format detection and name normalisation (see weights.h).
#include "checkpoints/ckpt_internal.h"
#include "checkpoints/snapshot.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const WeightTensor *weights_find(const WeightSet *ws, const char *name) {
    for (int i = 0; i < ws->n; i++)
        if (strcmp(ws->t[i].name, name) == 0) return &ws->t[i];
    return NULL;
}

WeightTensor *weights_add_owned(WeightSet *ws, const char *name, int ndim, const int64_t *shape, float *data) {
    XC_CHECK(!weights_find(ws, name), "weights_add: duplicate tensor name %s", name);
    return ckpt_append_owned(ws, name, ndim, shape, data);
}

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

WeightTensor *ckpt_append_owned(WeightSet *ws, const char *name, int ndim, const int64_t *shape, float *data) {
    XC_CHECK(ndim >= 0 && ndim <= XC_WEIGHT_MAX_DIMS, "weights_add: %d dimensions for %s", ndim, name);
    if (ws->n == ws->cap) {
        ws->cap = ws->cap ? 2 * ws->cap : 64;
        ws->t = xc_realloc(ws->t, (size_t)ws->cap * sizeof *ws->t);
    }
    WeightTensor *t = &ws->t[ws->n++];
    memset(t, 0, sizeof *t);
    size_t len = strlen(name);
    t->name = xc_malloc(len + 1);
    memcpy(t->name, name, len + 1);
    t->ndim = ndim;
    t->numel = 1;
    for (int d = 0; d < ndim; d++) {
        XC_CHECK(shape[d] >= 0, "weights_add: negative dimension in %s", name);
        t->shape[d] = shape[d];
        t->numel *= shape[d];
    }
    t->data = data;
    return t;
}

WeightTensor *weights_add(WeightSet *ws, const char *name, int ndim, const int64_t *shape, const float *data) {
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) numel *= shape[d];
    float *copy = xc_malloc((size_t)numel * sizeof(float));
    if (data) memcpy(copy, data, (size_t)numel * sizeof(float));
    else memset(copy, 0, (size_t)numel * sizeof(float));
    return weights_add_owned(ws, name, ndim, shape, copy);
}

void weights_free(WeightSet *ws) {
    for (int i = 0; i < ws->n; i++) {
        xc_free(ws->t[i].name);
        xc_free(ws->t[i].data);
    }
    xc_free(ws->t);
    memset(ws, 0, sizeof *ws);
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

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static const uint8_t hdf5_magic[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

int weights_load_raw(WeightSet *ws, const char *path, XcError *err) {
    XC_CHECK(ws->n == 0, "weights_load: the WeightSet must be empty");
    // a training snapshot (an HDF5 file behind our checksummed header): its model tensors only, and the
    // file is verified before libhdf5 sees it
    if (snapshot_is_snapshot_file(path)) return snapshot_load_weights(path, ws, err);
    size_t len;
    uint8_t *buf = ckpt_read_file(path, &len, err);
    if (!buf) return XC_ERR;
    WeightSet tmp = {0};
    int rc;
    bool hdf5 = false;
    for (size_t off = 0; off <= 2048 && off + 8 <= len; off = off ? off * 2 : 512) // HDF5 may have a user block
        if (memcmp(buf + off, hdf5_magic, 8) == 0) hdf5 = true;
    if (len >= 4 && memcmp(buf, "PK\x03\x04", 4) == 0) {
        rc = weights_parse_torch(&tmp, buf, len, path, err);
    } else if (len >= 4 && memcmp(buf, "PK\x05\x06", 4) == 0) {
        rc = xc_err(err, "%s: an empty zip archive, not a PyTorch checkpoint", path);
    } else if (hdf5) {
        xc_free(buf);
        buf = NULL;
        rc = weights_load_hdf5(&tmp, path, err);
    } else if (ends_with(path, ".safetensors") || (len >= 9 && buf[8] == '{')) {
        // (before the legacy test: a header length of 0x2?80 also starts with the bytes 0x80 0x02)
        rc = weights_parse_safetensors(&tmp, buf, len, path, err);
    } else if (len >= 2 && buf[0] == 0x80 && buf[1] <= 5) {
        rc = xc_err(err, "%s: a legacy (pre-1.6, non-zip) torch.save file, which is not supported\n"
                    "HINT: re-save it with torch 1.6+: torch.save(torch.load(f), out) writes the zip format", path);
    } else {
        rc = xc_err(err, "%s: not a recognised weights file (accepted: safetensors, PyTorch zip checkpoints "
                    ".pth/.pt incl. TorchScript archives, HDF5)", path);
    }
    xc_free(buf);
    if (rc == XC_OK && tmp.n == 0) rc = xc_err(err, "%s: contains no float tensors", path);
    if (rc != XC_OK) { weights_free(&tmp); return XC_ERR; }
    *ws = tmp;
    return XC_OK;
}

int weights_load(WeightSet *ws, const char *path, XcError *err) {
    if (weights_load_raw(ws, path, err) != XC_OK) return XC_ERR;
    if (weights_normalise_names(ws, err) != XC_OK) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
        xc_err(err, "%s: %s", path, msg);
        weights_free(ws);
        return XC_ERR;
    }
    return XC_OK;
}

int weights_load_torch(WeightSet *ws, const char *path, XcError *err) {
    size_t len;
    uint8_t *buf = ckpt_read_file(path, &len, err);
    if (!buf) return XC_ERR;
    WeightSet tmp = {0};
    int rc = weights_parse_torch(&tmp, buf, len, path, err);
    xc_free(buf);
    if (rc != XC_OK) { weights_free(&tmp); return XC_ERR; }
    *ws = tmp;
    return XC_OK;
}

int weights_normalise_names(WeightSet *ws, XcError *err) {
    // "module." from DataParallel / DistributedDataParallel: strip only when every name has it.
    bool all = ws->n > 0;
    for (int i = 0; i < ws->n && all; i++) all = strncmp(ws->t[i].name, "module.", 7) == 0;
    if (all) {
        for (int i = 0; i < ws->n; i++) {
            char *s = ws->t[i].name;
            memmove(s, s + 7, strlen(s + 7) + 1);
        }
    }
    if (weights_is_hf_clip(ws)) {
        WeightSet out = {0};
        if (weights_from_hf_clip(&out, ws, err) != XC_OK) return XC_ERR;
        weights_free(ws);
        *ws = out;
    }
    return XC_OK;
}
