// h5_fixture.h - read float32 datasets of a test fixture file (HDF5) by path, e.g. "attention/in0".
#pragma once
#include <hdf5.h>
#include <stdlib.h>

// Reads dataset `name` of file `f` into a new malloc'd buffer (caller frees); shape into dims (up to 8)
// and the rank into *ndim. NULL if absent.
static float *h5f_read(hid_t f, const char *name, int *ndim, int64_t *dims) {
    if (H5Lexists(f, name, H5P_DEFAULT) <= 0) return NULL;
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    if (d < 0) return NULL;
    hid_t sp = H5Dget_space(d);
    hsize_t hd[8] = {0};
    int nd = H5Sget_simple_extent_dims(sp, hd, NULL);
    int64_t n = 1;
    for (int i = 0; i < nd; i++) { dims[i] = (int64_t)hd[i]; n *= (int64_t)hd[i]; }
    *ndim = nd;
    float *buf = malloc((size_t)(n ? n : 1) * sizeof(float));
    herr_t st = H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    H5Sclose(sp);
    H5Dclose(d);
    if (st < 0) { free(buf); return NULL; }
    return buf;
}
