// snapshot_internal.h - what the snapshot files share (not a public API): the test hook and the
// durability steps (snapshot_header.c), the checked HDF5 reading primitives (snapshot_read.c) used by the
// verifier, the weights-only reader and the full restore (snapshot_load.c).
#pragma once
#include <hdf5.h>
#include "checkpoints/ckpt_internal.h"
#include "checkpoints/snapshot.h"

// ---- snapshot_header.c ------------------------------------------------------------------------------
// Report write step *point to the test hook (snapshot_set_test_hook), then count it.
void snap_hook(int *point, const char *what);
// Header + fsync of an HDF5 file that has the user block. *point may be NULL (no hook calls).
int snap_seal_file(const char *path, int64_t iter, int64_t epoch, int *point, XcError *err);
// fsync a directory (after a rename or unlink in it); EINVAL (not supported there) is not an error.
int snap_fsync_dir(const char *dir, XcError *err);

// ---- snapshot_read.c ---------------------------------------------------------------------------------
// An open snapshot: verified header, then the HDF5 file opened read-only.
typedef struct Reader {
    const char *path;
    XcError *err;
    uint64_t file_bytes;
    hid_t f;
} Reader;

// What snap_r_open found out about a dataset.
typedef struct DsInfo {
    int ndim;
    int64_t shape[XC_WEIGHT_MAX_DIMS];
    uint64_t numel, nbytes, sum;
} DsInfo;

// Link names of a group (snap_list_links), owned.
typedef struct Names { char **s; int64_t n, cap; } Names;

// snapshot_check_file, then libhdf5 opens the file and the root's format_version is checked. Closing
// (snap_r_end) closes everything opened in the file.
int snap_r_begin(Reader *r, const char *path, XcError *err, SnapshotInfo *info);
void snap_r_end(Reader *r);
// Checked scalar attribute of obj (8 bytes); where names obj in messages.
int snap_r_i64(Reader *r, hid_t obj, const char *where, const char *name, int64_t *v);
int snap_r_f64(Reader *r, hid_t obj, const char *where, const char *name, double *v);
bool snap_link_exists(hid_t loc, const char *name);
// Open dataset `name` of loc and validate it: class/size, dims, contiguous uncompressed storage of exactly
// numel*elem bytes inside the file, a checksum attribute. Returns the dataset or -1 (err set).
hid_t snap_r_open(Reader *r, hid_t loc, const char *name, const char *what, H5T_class_t cls, size_t elem, DsInfo *di);
// Read an opened dataset into dst (di->nbytes) and verify its checksum.
int snap_r_read(Reader *r, hid_t d, const char *what, hid_t mtype, void *dst, const DsInfo *di);
// The link names of group g in creation order (name order when the order is not indexed).
int snap_list_links(Reader *r, hid_t g, const char *what, Names *nm);
void snap_names_free(Names *nm);
