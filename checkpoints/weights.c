// weights.c - weights_load: recognise a weights file's format, call its reader, normalise the names
// (see weights.h). The readers never call back here.
#include "checkpoints/weights.h"
#include "checkpoints/ckpt_internal.h"
#include "checkpoints/snapshot.h"

#include <string.h>
#include <sys/stat.h>

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static const uint8_t hdf5_magic[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};

// A Hugging Face model folder: its weights file (model.safetensors, else pytorch_model.bin) into buf. 1 found,
// 0 path is no folder, XC_ERR a folder without either.
static int hf_folder_weights(const char *path, char *buf, size_t cap, XcError *err) {
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return 0;
    static const char *const names[] = {"model.safetensors", "pytorch_model.bin"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(buf, cap, "%s/%s", path, names[i]);
        if (stat(buf, &st) == 0 && S_ISREG(st.st_mode)) return 1;
    }
    return xc_err(err, "%s: a folder without model.safetensors or pytorch_model.bin (a Hugging Face model folder "
                       "holds one of them)", path);
}

int weights_load_raw(WeightSet *ws, const char *path, XcError *err) {
    XC_CHECK(ws->n == 0, "weights_load: the WeightSet must be empty");
    char inner[4096];
    int folder = hf_folder_weights(path, inner, sizeof inner, err);
    if (folder < 0) return XC_ERR;
    if (folder) path = inner;
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
