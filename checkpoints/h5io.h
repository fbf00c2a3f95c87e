// h5io.h - small HDF5 helpers for array files (xclip-dump's input and output, fixtures, metrics):
// read one dataset as float32 / int32 / int64 with its shape, write float32 datasets (intermediate
// groups made on the way, so "grad/visual.conv1.weight" works).
//
//   H5File f;
//   if (h5_open(&f, "in.h5", false, &err) != XC_OK) ...
//   H5Array video;                                          // owns its data
//   if (h5_read(&f, "video", H5_F32, &video, false, &err) != XC_OK) ...   // video.shape, video.ndim
//   h5_array_free(&video);
//   h5_close(&f);
//
// Sizes are checked against the dataset's storage before anything is allocated; errors name the file
// and the dataset. libhdf5 itself is not hardened against hostile files: use these on trusted inputs.
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include "autograd/util.h"

#define H5IO_MAX_DIMS 8

typedef enum H5Type { H5_F32, H5_I32, H5_I64 } H5Type;

typedef struct H5File {
    int64_t id;         // hid_t
    char path[512];
} H5File;

typedef struct H5Array {
    H5Type type;
    int ndim;
    int64_t shape[H5IO_MAX_DIMS];
    int64_t numel;
    void *data;         // numel elements of type, owned
} H5Array;

// libhdf5 prints its error stack on stderr by default; our callers report their own messages. Wrap
// libhdf5 calls that may fail in h5_quiet_begin / h5_quiet_end.
typedef struct H5Quiet {
    void *fn, *data; // the previous H5E_auto2_t handler and its data
} H5Quiet;
H5Quiet h5_quiet_begin(void);
void h5_quiet_end(H5Quiet q);

int h5_open(H5File *f, const char *path, bool create, XcError *err); // create: truncate / new file
void h5_close(H5File *f);
bool h5_exists(const H5File *f, const char *name);
// Reads dataset `name` converted to `type`. If optional and absent: XC_OK with a->data == NULL.
int h5_read(const H5File *f, const char *name, H5Type type, H5Array *a, bool optional, XcError *err);
void h5_array_free(H5Array *a);
int h5_write_f32(const H5File *f, const char *name, int ndim, const int64_t *shape, const float *data, XcError *err);
