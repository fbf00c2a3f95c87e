// snapshot.h - crash-safe training snapshots: everything needed to resume a run bitwise, in one HDF5 file.
//
// A snapshot holds the model tensors under their official names, the AdamW moments and step count, the
// schedule position, epoch / iteration in the epoch, the best accuracy, the raw state of every named RNG
// stream, the data order and loader cursor, the few-shot list, the bad-video list and the effective config
// (texts), a format version, and an XXH64 checksum per dataset.
//
//   SnapshotRng rngs[] = {{"drop", rng_get_state(&drop)}, {"mix", rng_get_state(&mix)}};
//   SnapshotState st = {.params = &ps, .opt = adamw_state(&opt), .global_iter = t, .epoch = e, .iter_in_epoch = i,
//                       .best_acc = best, .best_epoch = best_e, .best_iter = best_t,
//                       .rngs = rngs, .n_rngs = 2, .order = order, .order_len = n_items,
//                       .cursor = loader_cursor(ld), .fewshot_list = fs, .bad_videos = bad, .config = cfg_text};
//   char path[4096];
//   if (snapshot_save(dir, &st, path, sizeof path, &err) != XC_OK) { fprintf(stderr, "%s\n", err.msg); ... }
//   snapshot_retain(dir, 3, st.best_iter, stderr, &err);        // keep the last 3 + the best
//
//   // start-up with --resume auto:
//   snapshot_remove_stale_temps(dir, stderr, &err);
//   SnapshotState st = {.params = &ps, .opt = adamw_state(&opt),
//                       .rngs = rngs, .n_rngs = 2,                               // names to restore
//                       .order = order, .order_len = n_items};                   // expected length
//   int rc = snapshot_resume_latest(dir, &st, path, sizeof path, stderr, &err);  // 1 resumed, 0 none
//   if (rc < 0) { fprintf(stderr, "%s\n", err.msg); exit(1); }
//   if (rc == 1) { rng_set_state(&drop, rngs[0].state); ...; loader_seek(ld, st.cursor); }
//   snapshot_state_free_text(&st);                                // texts allocated by the load
//
// File layout (h5py: f["model"]["visual.conv1.weight"]):
//   bytes 0..511  a user block (HDF5 skips it) with our header: magic "XCSNAP\r\n", format version, file
//                 length, XXH64 of every byte after the user block, iteration, epoch, XXH64 of the header;
//   /             attributes format_version, global_iter, epoch, iter_in_epoch, best_acc, best_epoch,
//                 best_iter, cursor_epoch, cursor_batch (int64; best_acc float64)
//   /model/<official name>     float32, one per parameter, in parameter order (creation order tracked)
//   /optim                     attributes step, n_params, total, beta1, beta2, eps, weight_decay;
//                              lr_scale float32 (n): the rate of each parameter's latest update (AdamW.last_lr;
//                              for the record: a run sets its rates from the schedule), decay uint8 (n)
//   /optim/m/<name>, /optim/v/<name>   float32 moments; written for every parameter the optimiser trains (it
//                              has moments), none for frozen ones (frozen towers cost nothing); a trained
//                              parameter without both is refused on load
//   /rng/<stream name>         uint64[4]: key, counter, pos | has_spare << 32, float bits of spare
//   /data/order                int64 (order_len); the loader cursor is in the root attributes
//   /text/fewshot_list, /text/bad_videos, /text/config   uint8 bytes (UTF-8 text, no NUL)
//   every dataset has a uint64 attribute "xxh64" = XXH64 of its raw little-endian bytes.
//
// Crash safety. snapshot_write writes "<dir>/.xcsnap-tmp-<pid>-<name>", closes HDF5, writes the header,
// fsyncs the file, renames it over the final name and fsyncs the directory: at every instant the final name
// is either absent, the previous complete file or the new complete file. A failure (disk full, ...) removes
// the temporary and leaves earlier snapshots untouched; the error names the file and the cause.
// Untrusted input. libhdf5 is not hardened against corrupt files, so a snapshot is never handed to it before
// its header and whole-file checksum verify (wrong magic, short file, length or checksum mismatch: a clear
// error, never a crash); after that every shape and size is checked before anything is allocated, and every
// dataset's own checksum is verified after it is read.
// Trusted files. The checksums (XXH64, unkeyed) catch damage - a flipped bit, a truncation, a torn write -
// not forgery: anyone who can write a snapshot can change a value and recompute every checksum. A snapshot is
// therefore trusted like the code and configs of a run (keep snapshots where only the run's owner can write).
// What a forger could still do through values that parse is limited by semantic checks on load, so that a
// forged value cannot silently change training: model tensors finite, AdamW first moments finite and second
// moments finite and >= 0, every trained parameter has both moments, decay flags 0 or 1, per-parameter rates
// finite and >= 0, the step and all counters non-negative, RNG states well-formed; each refusal names the
// snapshot and the tensor or field. (Values within those ranges, such as two same-shaped tensors swapped,
// cannot be told from a real state; a keyed MAC would need a secret key kept outside the run folder, which
// a resume from a copied folder would then lack, so none is used.)
// Not regular files. A FIFO, device or directory given as a snapshot is refused at once, naming the path
// (opened with O_NONBLOCK and checked with fstat before anything reads it, libhdf5 included).
// Code: snapshot_header.c (user block, sealing, checking), snapshot_write.c, snapshot_read.c (checked
// reads, verify, weights only), snapshot_load.c (the two-pass restore), snapshot_dir.c (directories).
#pragma once
#include <stdio.h>
#include "autograd/rng.h"
#include "autograd/tensor.h"
#include "checkpoints/weight_set.h"
#include "data/loader.h"
#include "optim/optim_state.h"

#define SNAPSHOT_FORMAT_VERSION 1
#define SNAPSHOT_USERBLOCK 512
#define SNAPSHOT_MAGIC "XCSNAP\r\n"              // 8 bytes
#define SNAPSHOT_TMP_PREFIX ".xcsnap-tmp-"        // temporaries: <dir>/.xcsnap-tmp-<pid>-<final name>
#define SNAPSHOT_MAX_RNG_NAME 32

typedef struct SnapshotRng {
    char name[SNAPSHOT_MAX_RNG_NAME];   // stream name (no '/'), e.g. "drop", "mix"
    RngState state;
} SnapshotRng;

typedef struct SnapshotState {
    // model and optimiser (borrowed; opt = {0} for a weights-only snapshot)
    ParamStore *params;          // tensors under their official names
    OptimState opt;              // view of the optimiser's step, last_lr, decay, m, v (adamw_state)
    // progress
    int64_t global_iter;         // schedule position t: loader batches done over the whole run (docs/model.md §9)
    int64_t epoch;               // current epoch, 0-based
    int64_t iter_in_epoch;       // batches done in the current epoch
    double best_acc;             // best validation top-1 so far (negative: none yet)
    int64_t best_epoch;          // epoch that reached it (-1: none)
    int64_t best_iter;           // global_iter of the snapshot holding that model (-1: none); kept by retention
    // randomness
    SnapshotRng *rngs;           // n_rngs named streams; on load the names say which to restore
    int n_rngs;
    // data
    int64_t *order;              // (order_len) epoch permutation of dataset indices; caller-owned buffer
    int64_t order_len;           // on load: the expected length (a different length is refused)
    LoaderCursor cursor;         // next batch the loader delivers
    // texts, NUL-terminated; NULL saves as empty. snapshot_load replaces them with new buffers (free them
    // with snapshot_state_free_text), never frees what was there.
    char *fewshot_list;
    char *bad_videos;
    char *config;
} SnapshotState;

// Header of a snapshot (the user block), as read by snapshot_read_header.
typedef struct SnapshotInfo {
    uint32_t format_version;
    uint64_t file_bytes;
    uint64_t checksum;           // XXH64 of bytes [SNAPSHOT_USERBLOCK, file_bytes)
    int64_t global_iter, epoch;
} SnapshotInfo;

// ---- writing --------------------------------------------------------------------------------------
// Write st to path atomically (see above). The temporary lives in path's directory.
int snapshot_write(const char *path, const SnapshotState *st, XcError *err);
// snapshot_write to "<dir>/snap-<global_iter, 12 digits>.h5"; the path written goes to path_out (may be NULL).
int snapshot_save(const char *dir, const SnapshotState *st, char *path_out, size_t cap, XcError *err);
// "<dir>/snap-<iter>.h5" into buf.
const char *snapshot_path(const char *dir, int64_t global_iter, char *buf, size_t cap);

// ---- reading --------------------------------------------------------------------------------------
// Header + whole-file checksum only (no libhdf5). Cheap to call before anything else.
int snapshot_check_file(const char *path, SnapshotInfo *info, XcError *err);
// Everything: snapshot_check_file, then open with libhdf5, walk every dataset and verify its checksum.
int snapshot_verify(const char *path, SnapshotInfo *info, XcError *err);
// Restore st from path. Refused, naming the field, when the snapshot does not fit: a parameter missing or
// extra or of another shape, optimiser of another size (or absent while st->opt.ps is set), an RNG stream
// missing or extra, a data order of another length. All such checks run before anything is modified; only
// a tensor checksum failing during the final reads can leave st partly overwritten (the error says so).
int snapshot_load(const char *path, SnapshotState *st, XcError *err);
// Just the model tensors (official names, parameter order) into an empty WeightSet, checksums verified.
int snapshot_load_weights(const char *path, WeightSet *ws, XcError *err);
// True if the file starts with the snapshot magic (says nothing about its validity).
bool snapshot_is_snapshot_file(const char *path);
void snapshot_state_free_text(SnapshotState *st);

// ---- a directory of snapshots -------------------------------------------------------------------------
// The newest snapshot of dir that verifies (snapshot_verify), trying older ones in turn; each skipped file
// is reported on log (may be NULL) with its problem. Returns 1 and the path when found, 0 when dir holds no
// snapshot at all, XC_ERR when it holds some but none verifies (err lists them) or dir cannot be read.
int snapshot_find_latest(const char *dir, char *path, size_t cap, SnapshotInfo *info, FILE *log, XcError *err);
// --resume auto: snapshot_find_latest, then snapshot_load. A snapshot that verifies but does not fit the
// model/config is an error (falling back to an older one would hide the mismatch). 1 resumed, 0 none, XC_ERR.
int snapshot_resume_latest(const char *dir, SnapshotState *st, char *path, size_t cap, FILE *log, XcError *err);
// Delete all snap-*.h5 of dir except the newest keep_last and the one of iteration keep_iter (the best; -1:
// none). Returns the number deleted or XC_ERR.
int snapshot_retain(const char *dir, int keep_last, int64_t keep_iter, FILE *log, XcError *err);
// A run resumed from a snapshot at iteration from_iter goes on writing snapshots from there, so newer ones in dir
// (from_iter and above; another branch of the run, or files a newer snapshot that did not verify left) would
// outrank it for `--resume auto` and for retention. They are moved, never deleted, into the first free
// dir/superseded/<k>/ (its path into where; "" if nothing moved); keep (may be NULL), the file resumed from, stays.
// Returns the number moved or XC_ERR.
int snapshot_set_aside(const char *dir, int64_t from_iter, const char *keep, char *where, size_t cap, XcError *err);
// Remove temporaries left by writers that died (SNAPSHOT_TMP_PREFIX, pid no longer alive, or our own pid).
// Returns the number removed or XC_ERR.
int snapshot_remove_stale_temps(const char *dir, FILE *log, XcError *err);
// The iterations of the snap-*.h5 files in dir, newest first (xc_free *iters). Returns the count or XC_ERR.
int snapshot_list(const char *dir, int64_t **iters, XcError *err);

// ---- tests ---------------------------------------------------------------------------------------------
// Called by snapshot_write at each step of a write (point 0, 1, 2, ... with a description: temp created,
// each dataset written, before/after H5Fclose, header written, fsync, close, rename, directory fsync).
// Crash tests install a hook that kills the process at point k. NULL removes it.
typedef void (*SnapshotHook)(int point, const char *what);
void snapshot_set_test_hook(SnapshotHook hook);
// Recompute and write the header of an HDF5 file that has a SNAPSHOT_USERBLOCK user block (used by the
// writer; tests use it to re-seal a deliberately damaged file so the per-dataset checksums are exercised).
int snapshot_seal(const char *path, int64_t global_iter, int64_t epoch, XcError *err);
