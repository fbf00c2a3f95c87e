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
// Every dataset passes h5_guard_dataset before anything is allocated for it or read from it; errors name the
// file and the dataset. libhdf5 itself (its parsing of the file's metadata: superblock, object headers, B-trees,
// heaps) is not hardened against hostile files: use these on trusted inputs.
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

// What reading the datasets of one file has cost so far (h5_guard_dataset adds each dataset it passes): the
// bytes their data takes in the file (compressed, where it is) and the bytes it decodes to.
typedef struct H5Budget {
    uint64_t file_size; // the file's length (set by the caller)
    uint64_t stored, decoded;
} H5Budget;

// Checks dataset `dset` (a hid_t; `name` and `path` for messages) before it is read, so that reading it costs
// about what its tensor holds:
//   - no virtual dataset and no external raw data file (both read other files: /dev/zero, a FIFO...);
//   - filters only deflate (gzip), shuffle and fletcher32, deflate at most once and no shuffle after it (other
//     filters trust sizes in the file, and unknown ones would make libhdf5 look for a plugin to load);
//   - the bytes stored by the datasets so far at most the file's length, and the bytes they decode to (all of
//     every chunk the dataset touches, edge chunks whole) at most CKPT_INFLATE_SLACK + CKPT_INFLATE_RATIO x
//     stored (ckpt_internal.h);
//   - each deflated chunk inflates to exactly the chunk's size: libhdf5's deflate filter grows its buffer for as
//     long as the stream goes on, so a 1 MB chunk stream of zeros would take 1 GB for a 4 KB chunk. The chunks
//     are read raw (H5Dread_chunk) and inflated here into a small window first, without keeping the output.
int h5_guard_dataset(int64_t dset, const char *path, const char *name, H5Budget *b, XcError *err);

int h5_open(H5File *f, const char *path, bool create, XcError *err); // create: truncate / new file
void h5_close(H5File *f);
bool h5_exists(const H5File *f, const char *name);
// Reads dataset `name` converted to `type`. If optional and absent: XC_OK with a->data == NULL.
int h5_read(const H5File *f, const char *name, H5Type type, H5Array *a, bool optional, XcError *err);
void h5_array_free(H5Array *a);
int h5_write_f32(const H5File *f, const char *name, int ndim, const int64_t *shape, const float *data, XcError *err);
