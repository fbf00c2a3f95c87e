// h5io.c - see h5io.h.
#include "checkpoints/h5io.h"

#include <hdf5.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

// No library shutdown at exit. When H5Fclose fails (a write past a full disk or `ulimit -f`), libhdf5 1.10
// keeps the half-closed file in its table and its exit handler (H5_term_library -> H5F__close_cb) then
// crashes on it, turning a clean error exit into SIGSEGV. The failed file id is never touched again by our
// code; this keeps libhdf5 from touching it either. Must run before the library initialises (hence at load).
// Nothing is lost: every file is closed by the code that opened it, and the OS reclaims the rest.
__attribute__((constructor)) static void h5_no_shutdown_at_exit(void) { H5dont_atexit(); }

H5Quiet h5_quiet_begin(void) {
    H5E_auto2_t fn;
    void *data;
    H5Eget_auto2(H5E_DEFAULT, &fn, &data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return (H5Quiet){(void *)fn, data};
}

void h5_quiet_end(H5Quiet q) { H5Eset_auto2(H5E_DEFAULT, (H5E_auto2_t)q.fn, q.data); }

int h5_open(H5File *f, const char *path, bool create, XcError *err) {
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", path);
    struct stat st; // libhdf5 would open a FIFO and wait on it: check what the path is first
    if (!create && stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return xc_err(err, "%s: is %s, not a regular file", path, xc_file_kind(st.st_mode));
    H5Quiet q = h5_quiet_begin();
    hid_t id = create ? H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT) : H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    h5_quiet_end(q);
    if (id < 0) {
        FILE *probe = create ? NULL : fopen(path, "rb");
        if (probe) fclose(probe);
        return xc_err(err, "%s: cannot %s HDF5 file%s", path, create ? "create" : "open as an",
                      !create && !probe ? " (missing or unreadable)" : "");
    }
    f->id = id;
    return XC_OK;
}

void h5_close(H5File *f) {
    if (f->id > 0) H5Fclose((hid_t)f->id);
    f->id = 0;
}

bool h5_exists(const H5File *f, const char *name) {
    H5Quiet q = h5_quiet_begin();
    bool yes = H5Lexists((hid_t)f->id, name, H5P_DEFAULT) > 0;
    h5_quiet_end(q);
    return yes;
}

void h5_array_free(H5Array *a) {
    xc_free(a->data);
    memset(a, 0, sizeof *a);
}

int h5_read(const H5File *f, const char *name, H5Type type, H5Array *a, bool optional, XcError *err) {
    memset(a, 0, sizeof *a);
    a->type = type;
    if (!h5_exists(f, name)) return optional ? XC_OK : xc_err(err, "%s: no dataset '%s'", f->path, name);
    hid_t d = H5Dopen2((hid_t)f->id, name, H5P_DEFAULT);
    if (d < 0) return xc_err(err, "%s: '%s' is not a dataset", f->path, name);
    hid_t space = H5Dget_space(d), ftype = H5Dget_type(d);
    int rc = XC_ERR;
    H5T_class_t cls = H5Tget_class(ftype);
    if (cls != H5T_FLOAT && cls != H5T_INTEGER) {
        xc_err(err, "%s: dataset '%s' is not numeric", f->path, name);
        goto out;
    }
    int nd = H5Sget_simple_extent_ndims(space);
    if (nd < 0 || nd > H5IO_MAX_DIMS) {
        xc_err(err, "%s: dataset '%s' has %d dims (at most %d)", f->path, name, nd, H5IO_MAX_DIMS);
        goto out;
    }
    hsize_t dims[H5IO_MAX_DIMS] = {0};
    H5Sget_simple_extent_dims(space, dims, NULL);
    uint64_t n = 1;
    for (int i = 0; i < nd; i++) {
        if (!xc_mul_u64(n, dims[i], &n) || n > (1ull << 34)) {
            xc_err(err, "%s: dataset '%s' is too large", f->path, name);
            goto out;
        }
        a->shape[i] = (int64_t)dims[i];
    }
    a->ndim = nd;
    a->numel = (int64_t)n;
    size_t elem = type == H5_I64 ? 8 : 4;
    a->data = xc_malloc((size_t)n * elem);
    hid_t mem = type == H5_F32 ? H5T_NATIVE_FLOAT : type == H5_I32 ? H5T_NATIVE_INT32 : H5T_NATIVE_INT64;
    if (n && H5Dread(d, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, a->data) < 0) {
        xc_err(err, "%s: reading dataset '%s' failed", f->path, name);
        h5_array_free(a);
        goto out;
    }
    rc = XC_OK;
out:
    H5Tclose(ftype);
    H5Sclose(space);
    H5Dclose(d);
    return rc;
}

int h5_write_f32(const H5File *f, const char *name, int ndim, const int64_t *shape, const float *data, XcError *err) {
    hsize_t dims[H5IO_MAX_DIMS];
    for (int i = 0; i < ndim; i++) dims[i] = (hsize_t)shape[i];
    hid_t space = ndim ? H5Screate_simple(ndim, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t d = H5Dcreate2((hid_t)f->id, name, H5T_IEEE_F32LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    int rc = XC_OK;
    if (d < 0 || H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        rc = xc_err(err, "%s: writing dataset '%s' failed (disk full?)", f->path, name);
    if (d >= 0) H5Dclose(d);
    H5Pclose(lcpl);
    H5Sclose(space);
    return rc;
}
