// hdf5_weights.c - weights as HDF5 datasets.
//
// Writing: one float32 dataset per tensor directly under the root group, named by the tensor's
// official name with its dots ("/visual.conv1.weight"), in set order (link creation order is tracked,
// so readers that honour it see the tensors in the order they were written). In h5py:
//   with h5py.File("clip.h5") as f: w = f["visual.conv1.weight"][...]
// Reading: every float dataset anywhere in the file, named by its path with '/' replaced by '.'
// ("/visual/conv1/weight" and "/visual.conv1.weight" both give "visual.conv1.weight"), converted to
// float32 by HDF5 (float16 and float64 datasets included). Soft and external links are not followed.
// Before a dataset is read, h5_guard_dataset (h5io.h) checks its layout and filters, what its data takes in the
// file against what it decodes to (the whole file's datasets together: at most 16 x + 16 MiB) and, for deflated
// chunks, that each stream inflates to exactly one chunk, so no compressed or external data is inflated or read
// beyond what the tensor holds.
#include "checkpoints/ckpt_internal.h"
#include "checkpoints/weight_formats.h"

#include <errno.h>
#include <hdf5.h>
#include "checkpoints/h5io.h"
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct Visit {
    WeightSet *ws;
    const char *path;
    XcError *err;
    H5Budget budget;    // what the datasets read so far cost (file_size: the file's length)
    int failed;
} Visit;

static int read_dataset(Visit *v, hid_t d, const char *name) {
    char full[CKPT_MAX_NAME_BYTES + 1];
    if (strlen(name) > CKPT_MAX_NAME_BYTES) return xc_err(v->err, "%s: dataset name longer than %d bytes", v->path, CKPT_MAX_NAME_BYTES);
    snprintf(full, sizeof full, "%s", name);
    for (char *c = full; *c; c++) if (*c == '/') *c = '.';
    hid_t type = H5Dget_type(d), space = H5Dget_space(d);
    int rc = XC_ERR;
    if (type < 0 || space < 0) { xc_err(v->err, "%s: dataset %s: cannot read its type or shape", v->path, name); goto out; }
    H5T_class_t cls = H5Tget_class(type);
    if (cls != H5T_FLOAT) {
        if (cls == H5T_INTEGER && ckpt_skippable_int_tensor(full)) { rc = XC_OK; goto out; }
        xc_err(v->err, "%s: dataset %s is not a floating-point dataset", v->path, name);
        goto out;
    }
    if (H5Sget_simple_extent_type(space) == H5S_NULL) { xc_err(v->err, "%s: dataset %s has an empty (null) dataspace", v->path, name); goto out; }
    int nd = H5Sget_simple_extent_ndims(space);
    if (nd < 0 || nd > XC_WEIGHT_MAX_DIMS) { xc_err(v->err, "%s: dataset %s: %d dimensions (at most %d)", v->path, name, nd, XC_WEIGHT_MAX_DIMS); goto out; }
    hsize_t dims[XC_WEIGHT_MAX_DIMS];
    H5Sget_simple_extent_dims(space, dims, NULL);
    int64_t shape[XC_WEIGHT_MAX_DIMS];
    uint64_t numel = 1;
    for (int k = 0; k < nd; k++) {
        if (dims[k] > (hsize_t)INT64_MAX || !xc_mul_u64(numel, dims[k], &numel) || numel > ((uint64_t)1 << 62)) { xc_err(v->err, "%s: dataset %s: shape overflows", v->path, name); goto out; }
        shape[k] = (int64_t)dims[k];
    }
    // Layout, filters, stored and decoded sizes (h5io.h), before anything is allocated or read.
    if (numel > CKPT_MAX_FILE_BYTES / 4) {
        xc_err(v->err, "%s: dataset %s: %llu elements, more than a weights file may hold", v->path, name, (unsigned long long)numel);
        goto out;
    }
    if (h5_guard_dataset(d, v->path, name, &v->budget, v->err) != XC_OK) goto out;
    float *data = xc_malloc((size_t)numel * sizeof(float));
    if (numel && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        xc_free(data);
        xc_err(v->err, "%s: dataset %s: read failed (corrupt file?)", v->path, name);
        goto out;
    }
    if (v->ws->n >= CKPT_MAX_TENSORS) { xc_free(data); xc_err(v->err, "%s: more than %d datasets", v->path, CKPT_MAX_TENSORS); goto out; }
    ckpt_append_owned(v->ws, full, nd, shape, data);
    rc = XC_OK;
out:
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    return rc;
}

static herr_t visit_cb(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    Visit *v = data;
    if (info->type != H5L_TYPE_HARD) return 0;
    hid_t o = H5Oopen(g, name, H5P_DEFAULT);
    if (o < 0) { xc_err(v->err, "%s: cannot open object %s", v->path, name); v->failed = 1; return -1; }
    int rc = XC_OK;
    if (H5Iget_type(o) == H5I_DATASET) rc = read_dataset(v, o, name);
    H5Oclose(o);
    if (rc != XC_OK) { v->failed = 1; return -1; }
    return 0;
}

int weights_load_hdf5(WeightSet *ws, const char *path, XcError *err) {
    XC_CHECK(ws->n == 0, "weights_load_hdf5: the WeightSet must be empty");
    struct stat st;
    if (stat(path, &st) != 0) return xc_err(err, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return xc_err(err, "%s: is %s, not a regular file", path, xc_file_kind(st.st_mode)); // never opened
    H5Quiet q = h5_quiet_begin();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) { h5_quiet_end(q); return xc_err(err, "%s: not a readable HDF5 file (corrupt or truncated?)", path); }
    Visit v = {ws, path, err, {.file_size = (uint64_t)st.st_size}, 0};
    herr_t r = H5Lvisit(f, H5_INDEX_CRT_ORDER, H5_ITER_INC, visit_cb, &v);
    if (r < 0 && !v.failed) { // no creation-order index (h5py's default): alphabetical order
        weights_free(ws);
        v.budget = (H5Budget){.file_size = (uint64_t)st.st_size};
        r = H5Lvisit(f, H5_INDEX_NAME, H5_ITER_INC, visit_cb, &v);
    }
    H5Fclose(f);
    h5_quiet_end(q);
    if (r < 0 || v.failed) {
        if (!v.failed) xc_err(err, "%s: cannot walk the HDF5 file (corrupt?)", path);
        weights_free(ws);
        return XC_ERR;
    }
    const char **names = xc_malloc((size_t)ws->n * sizeof *names + 1);
    for (int i = 0; i < ws->n; i++) names[i] = ws->t[i].name;
    const char *dup = ckpt_find_duplicate(names, ws->n);
    if (dup) xc_err(err, "%s: two datasets are both named %s (after '/' -> '.')", path, dup);
    xc_free(names);
    if (dup) { weights_free(ws); return XC_ERR; }
    return XC_OK;
}

int weights_save_hdf5(const WeightSet *ws, const char *path, XcError *err) {
    for (int i = 0; i < ws->n; i++)
        if (strchr(ws->t[i].name, '/') || strcmp(ws->t[i].name, ".") == 0 || !ws->t[i].name[0])
            return xc_err(err, "%s: tensor name \"%s\" cannot be an HDF5 dataset name", path, ws->t[i].name);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    H5Quiet q = h5_quiet_begin();
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    H5Pset_link_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
    H5Pclose(fcpl);
    if (f < 0) { h5_quiet_end(q); return xc_err(err, "%s: cannot create the HDF5 file", tmp); }
    bool ok = true;
    for (int i = 0; i < ws->n && ok; i++) {
        const WeightTensor *t = &ws->t[i];
        hsize_t dims[XC_WEIGHT_MAX_DIMS];
        for (int k = 0; k < t->ndim; k++) dims[k] = (hsize_t)t->shape[k];
        hid_t space = t->ndim ? H5Screate_simple(t->ndim, dims, NULL) : H5Screate(H5S_SCALAR);
        hid_t d = space < 0 ? -1 : H5Dcreate2(f, t->name, H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        ok = d >= 0 && (t->numel == 0 || H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t->data) >= 0);
        if (d >= 0) H5Dclose(d);
        if (space >= 0) H5Sclose(space);
        if (!ok) xc_err(err, "%s: cannot write dataset %s", path, t->name);
    }
    if (H5Fclose(f) < 0 && ok) { ok = false; xc_err(err, "%s: closing the HDF5 file failed (disk full?)", path); }
    h5_quiet_end(q);
    if (ok && rename(tmp, path) != 0) { ok = false; xc_err(err, "%s: rename failed: %s", path, strerror(errno)); }
    if (!ok) remove(tmp);
    return ok ? XC_OK : XC_ERR;
}
