// weight_bombs.h - weights files that are small on disk (or cheap to describe) and would cost far more memory
// to read than the tensors they hold (issue 17, item 9), made at run time for test_weight_bombs (at sizes that run
// in seconds) and bench_weight_bombs (at the sizes of the issue), and a loader that measures what reading one
// costs: weights_load in a forked child, its peak resident memory above its resident memory at the start.
//
//   Buf b = {0};
//   bomb_st_metadata_array(&b, 10 << 20);                 // a 10 MB safetensors header: "__metadata__": [0,0,...]
//   bomb_write("/tmp/x.safetensors", &b);
//   BombLoad r = bomb_load("/tmp/x.safetensors", 60);    // r.died, r.rc, r.n (tensors), r.peak_mb, r.secs, r.msg
//
// The classes: a safetensors header whose ignored parts are huge (an array or object in __metadata__, a tensor
// entry that is an array); a pickle of millions of one-byte objects (deflated, a few kilobytes); a deflated
// data.pkl with hundreds of megabytes of zeros after its STOP; deflated storages of zeros; overlapping zip
// entries (each storage the same bytes of the file); HDF5 datasets whose chunks inflate far past what is stored
// (gzip of zeros, a chunk whose deflate stream is longer than the chunk, a chunk larger than the dataset) and a
// dataset whose data lives in an external file (/dev/zero).
#pragma once
#include <hdf5.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "checkpoints/weights.h"
#include "tests/weights_gen.h"

// ---- measuring a load ---------------------------------------------------------------------------------------
typedef struct BombLoad {
    bool died;       // the child died or timed out (then rc is meaningless)
    int rc;          // weights_load's status (XC_OK / XC_ERR)
    int n;           // tensors loaded
    double peak_mb;  // peak resident memory of the load above the child's resident memory before it (MB)
    double secs;     // wall time of weights_load
    char msg[1024];  // the error message (empty when loaded)
} BombLoad;

// VmRSS / VmHWM of this process from /proc/self/status, in kB (-1 if unreadable).
static inline long bomb_status_kb(const char *key) {
    char line[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, strlen(key)) == 0) kb = strtol(line + strlen(key) + 1, NULL, 10);
    fclose(f);
    return kb;
}

// weights_load(path) in a forked child (so this process's memory is not touched and a crash is reported), killed
// after timeout_s seconds. The child first hands the free memory of its heap back to the system (malloc_trim), so
// that reusing what the parent freed counts too, then sets its high-water mark to its resident size
// (/proc/self/clear_refs), so VmHWM - VmRSS(start) is what the load added at its peak.
static inline BombLoad bomb_load(const char *path, int timeout_s) {
    BombLoad r;
    memset(&r, 0, sizeof r);
    r.died = true;
    int fd[2];
    if (pipe(fd) != 0) { snprintf(r.msg, sizeof r.msg, "pipe failed"); return r; }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        alarm((unsigned)timeout_s);
        BombLoad c;
        memset(&c, 0, sizeof c);
        malloc_trim(0); // freed memory the parent kept resident would otherwise be reused unseen
        FILE *cr = fopen("/proc/self/clear_refs", "w"); // "5": the high-water mark back to the resident size now
        bool reset = cr && fputs("5", cr) >= 0;
        if (cr && fclose(cr) != 0) reset = false;
        long before = bomb_status_kb(reset ? "VmRSS:" : "VmHWM:"); // without the reset: growth past the old mark
        WeightSet ws = {0};
        XcError err = {0};
        struct timeval t0, t1;
        gettimeofday(&t0, NULL);
        c.rc = weights_load(&ws, path, &err);
        gettimeofday(&t1, NULL);
        c.peak_mb = (double)(bomb_status_kb("VmHWM:") - before) / 1024.0;
        c.secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-6 * (double)(t1.tv_usec - t0.tv_usec);
        c.n = ws.n;
        snprintf(c.msg, sizeof c.msg, "%s", c.rc == XC_OK ? "" : err.msg);
        if (write(fd[1], &c, sizeof c) != (ssize_t)sizeof c) _exit(1);
        _exit(0);
    }
    close(fd[1]);
    if (pid < 0 || read(fd[0], &r, sizeof r) != (ssize_t)sizeof r) {
        memset(&r, 0, sizeof r);
        r.died = true;
        r.rc = XC_ERR;
        r.peak_mb = 1e9;
    }
    close(fd[0]);
    int st = 0;
    if (pid > 0) waitpid(pid, &st, 0);
    if (r.died) {
        if (WIFSIGNALED(st)) snprintf(r.msg, sizeof r.msg, "the loading child was killed by signal %d%s", WTERMSIG(st),
                                      WTERMSIG(st) == SIGALRM ? " (timeout)" : "");
        else snprintf(r.msg, sizeof r.msg, "the loading child died (status %#x)", st);
    }
    return r;
}

static inline void bomb_write(const char *path, const Buf *b) {
    FILE *f = fopen(path, "wb");
    if (!f || (b->n && fwrite(b->p, 1, b->n, f) != b->n) || fclose(f) != 0) { perror(path); exit(1); }
}

static inline void bomb_repeat(Buf *b, const char *s, size_t total) {
    size_t k = strlen(s);
    for (size_t done = 0; done + k <= total; done += k) put(b, s, k);
}

// ---- safetensors ----------------------------------------------------------------------------------------------
// {"__metadata__": <value>, "w": one float32 tensor of 4 elements} + its 16 bytes. The value is made by `fill`.
static inline void bomb_st_with_metadata(Buf *out, const char *open, const char *item, const char *close, size_t bytes) {
    Buf j = {0};
    puts_(&j, "{\"__metadata__\":");
    puts_(&j, open);
    bomb_repeat(&j, item, bytes);
    if (j.n && j.p[j.n - 1] == ',') j.n--;
    puts_(&j, close);
    puts_(&j, ",\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}");
    out->n = 0;
    put64(out, j.n);
    put(out, j.p, j.n);
    for (int i = 0; i < 16; i++) put8(out, 0);
    free(j.p);
}
// "__metadata__": [0,0,0,...] of about `bytes` bytes (the 98.6 MB header parsed into 2.8 GB)
static inline void bomb_st_metadata_array(Buf *out, size_t bytes) { bomb_st_with_metadata(out, "[", "0,", "]", bytes); }
// "__metadata__": {"k": [0,0,...]}: an object whose value is not a string
static inline void bomb_st_metadata_nested(Buf *out, size_t bytes) { bomb_st_with_metadata(out, "{\"k\":[", "0,", "]}", bytes); }
// "__metadata__": {"a0": "", "a1": "", ...}: strings, but millions of them
static inline void bomb_st_metadata_keys(Buf *out, size_t bytes) {
    Buf j = {0};
    puts_(&j, "{\"__metadata__\":{");
    for (size_t i = 0; j.n < bytes; i++) {
        char kv[40];
        snprintf(kv, sizeof kv, "%s\"%zx\":\"\"", i ? "," : "", i);
        puts_(&j, kv);
    }
    puts_(&j, "},\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}");
    out->n = 0;
    put64(out, j.n);
    put(out, j.p, j.n);
    for (int i = 0; i < 16; i++) put8(out, 0);
    free(j.p);
}
// "w": [0,0,0,...]: a tensor entry that is an array
static inline void bomb_st_entry_array(Buf *out, size_t bytes) {
    Buf j = {0};
    puts_(&j, "{\"w\":[");
    bomb_repeat(&j, "0,", bytes);
    j.n--;
    puts_(&j, "]}");
    out->n = 0;
    put64(out, j.n);
    put(out, j.p, j.n);
    free(j.p);
}
// n tensors of 0 elements ("t0", "t1", ...): a header of about 60 bytes per tensor and no data. bad: the last
// tensor's offsets run past the (empty) data buffer, so the whole header is read and then refused.
static inline void bomb_st_many_tensors(Buf *out, long n, bool bad) {
    Buf j = {0};
    puts_(&j, "{");
    for (long i = 0; i < n; i++) {
        char one[120];
        snprintf(one, sizeof one, "%s\"t%ld\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,%d]}", i ? "," : "", i,
                 bad && i == n - 1 ? 4 : 0);
        puts_(&j, one);
    }
    puts_(&j, "}");
    out->n = 0;
    put64(out, j.n);
    put(out, j.p, j.n);
    free(j.p);
}

// ---- PyTorch zip archives -------------------------------------------------------------------------------------
// A pickle of n objects of two bytes each: EMPTY_LIST, n x (NONE, APPEND), STOP (a list, not a state dict), deflated
// into a/data.pkl: 8 MB of pickle is an 8 KB file.
static inline void bomb_pk_objects(Buf *out, size_t n) {
    Buf pk = {0};
    put8(&pk, 0x80); put8(&pk, 2); put8(&pk, ']');
    uint8_t nones[4096];
    for (size_t k = 0; k < sizeof nones; k += 2) { nones[k] = 'N'; nones[k + 1] = 'a'; }
    for (size_t done = 0; done < 2 * n; done += sizeof nones) put(&pk, nones, 2 * n - done < sizeof nones ? 2 * n - done : sizeof nones);
    put8(&pk, '.');
    ZEntry e[1] = {{"a/data.pkl", pk.p, pk.n, true, 0, 0}};
    zip_build(out, e, 1);
    free(pk.p);
}
// A good state dict (one float tensor of 4 elements) whose deflated a/data.pkl has `zeros` zero bytes after its STOP.
static inline void bomb_pk_trailing(Buf *out, size_t zeros) {
    Buf pk = {0};
    pk_begin_dict(&pk); pk_str(&pk, "w"); pk_tensor(&pk, "FloatStorage", "0", 4, 0, 1, (int[]){4}, (int[]){1}); pk_end_dict(&pk);
    size_t good = pk.n;
    uint8_t *all = calloc(good + zeros, 1);
    memcpy(all, pk.p, good);
    static const uint8_t st[16];
    ZEntry e[2] = {{"a/data.pkl", all, good + zeros, true, 0, 0}, {"a/data/0", st, sizeof st, false, 0, 0}};
    zip_build(out, e, 2);
    free(all);
    free(pk.p);
}
// `n` deflated storages of `bytes` zero bytes each, every one viewed whole by a float32 tensor ("w0", "w1", ...).
static inline void bomb_deflated_storages(Buf *out, int n, size_t bytes) {
    Buf pk = {0};
    pk_begin_dict(&pk);
    for (int i = 0; i < n; i++) {
        char name[16], key[16];
        snprintf(name, sizeof name, "w%d", i);
        snprintf(key, sizeof key, "%d", i);
        pk_str(&pk, name);
        int64_t numel = (int64_t)(bytes / 4);
        pk_tensor64(&pk, "FloatStorage", key, numel, 0, 1, &numel, (int64_t[]){1});
    }
    pk_end_dict(&pk);
    size_t *sizes = malloc((size_t)n * sizeof *sizes);
    for (int i = 0; i < n; i++) sizes[i] = bytes;
    torch_build(out, &pk, n, sizes, true);
    free(sizes);
    free(pk.p);
}
// `n` stored zip entries a/data/000 ... whose data overlap: entry i starts right after its own local header and runs
// to the end of a shared payload of `payload` bytes, over the local headers of the entries after it. Each is a
// float16 storage viewed whole by a tensor ("w0", ...): n x payload bytes of storages from a file of one payload.
// n <= 1000 (the names have three digits).
static inline void bomb_overlapping_entries(Buf *out, int n, size_t payload) {
    enum { NAME = 10 };                                  // "a/data/000"
    Buf pk = {0}, cd = {0};
    size_t *local = malloc((size_t)n * sizeof *local), pkl_local;
    uint32_t *crc = malloc((size_t)n * sizeof *crc);
    uint64_t *size = malloc((size_t)n * sizeof *size);
    // entry i's data: the local headers of entries i+1.. (30 + NAME bytes each), then the payload
    for (int i = 0; i < n; i++) size[i] = (uint64_t)(n - 1 - i) * (30 + NAME) + payload;
    pk_begin_dict(&pk);
    for (int i = 0; i < n; i++) {
        char name[24], key[8];
        snprintf(name, sizeof name, "w%d", i);
        snprintf(key, sizeof key, "%03d", i);
        pk_str(&pk, name);
        int64_t numel = (int64_t)(size[i] / 2);
        pk_tensor64(&pk, "HalfStorage", key, numel, 0, 1, &numel, (int64_t[]){1});
    }
    pk_end_dict(&pk);
    out->n = 0;
    pkl_local = out->n;
    uint32_t pkl_crc = (uint32_t)crc32(0, pk.p, (uInt)pk.n);
    puts_(out, "PK\x03\x04"); put16(out, 20); put16(out, 0); put16(out, 0); put32(out, 0);
    put32(out, pkl_crc); put32(out, (uint32_t)pk.n); put32(out, (uint32_t)pk.n); put16(out, 10); put16(out, 0);
    puts_(out, "a/data.pkl");
    put(out, pk.p, pk.n);
    // local headers first with the CRCs left at 0, then the payload, then the CRCs patched in
    for (int i = 0; i < n; i++) {
        char name[24];
        snprintf(name, sizeof name, "a/data/%03d", i);
        local[i] = out->n;
        puts_(out, "PK\x03\x04"); put16(out, 20); put16(out, 0); put16(out, 0); put32(out, 0);
        put32(out, 0); put32(out, (uint32_t)size[i]); put32(out, (uint32_t)size[i]); put16(out, NAME); put16(out, 0);
        puts_(out, name);
    }
    for (size_t k = 0; k < payload; k++) put8(out, (uint8_t)(k * 2654435761u >> 24));
    for (int i = n - 1; i >= 0; i--) {
        size_t start = local[i] + 30 + NAME;
        crc[i] = (uint32_t)crc32(0, out->p + start, (uInt)size[i]);
        uint8_t *c = out->p + local[i] + 14;
        for (int k = 0; k < 4; k++) c[k] = (uint8_t)(crc[i] >> (8 * k));
    }
    for (int i = -1; i < n; i++) {
        char name[24];
        if (i < 0) snprintf(name, sizeof name, "a/data.pkl"); else snprintf(name, sizeof name, "a/data/%03d", i);
        uint32_t c = i < 0 ? pkl_crc : crc[i], s = i < 0 ? (uint32_t)pk.n : (uint32_t)size[i];
        puts_(&cd, "PK\x01\x02"); put16(&cd, 45); put16(&cd, 20); put16(&cd, 0); put16(&cd, 0); put32(&cd, 0);
        put32(&cd, c); put32(&cd, s); put32(&cd, s); put16(&cd, (uint16_t)strlen(name)); put16(&cd, 0); put16(&cd, 0);
        put16(&cd, 0); put16(&cd, 0); put32(&cd, 0); put32(&cd, (uint32_t)(i < 0 ? pkl_local : local[i]));
        puts_(&cd, name);
    }
    size_t cd_off = out->n;
    put(out, cd.p, cd.n);
    puts_(out, "PK\x05\x06"); put16(out, 0); put16(out, 0); put16(out, (uint16_t)(n + 1)); put16(out, (uint16_t)(n + 1));
    put32(out, (uint32_t)cd.n); put32(out, (uint32_t)cd_off); put16(out, 0);
    free(cd.p); free(pk.p); free(local); free(crc); free(size);
}

// ---- HDF5 -----------------------------------------------------------------------------------------------------
// zlib stream (what HDF5's deflate filter stores) of `n` zero bytes; *len its length. Caller frees.
static inline uint8_t *bomb_zlib_zeros(size_t n, size_t *len) {
    uint8_t *zeros = calloc(n ? n : 1, 1);
    uLong cap = compressBound((uLong)n);
    uint8_t *z = malloc(cap);
    if (!zeros || !z || compress2(z, &cap, zeros, (uLong)n, 9) != Z_OK) { fprintf(stderr, "compress2 failed\n"); exit(1); }
    free(zeros);
    *len = cap;
    return z;
}

// A float32 dataset "w" of `elems` elements in chunks of `chunk` elements with the deflate filter, every chunk written
// as it is stored (H5Dwrite_chunk) with a zlib stream of `inflates` zero bytes: inflates == chunk * 4 is an honest
// gzip of zeros; more is a chunk whose stream is longer than the chunk. unlimited: the dataset may grow (then the
// chunk may be larger than the dataset).
static inline void bomb_h5_deflate(const char *path, hsize_t elems, hsize_t chunk, size_t inflates, bool unlimited) {
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t maxd = unlimited ? H5S_UNLIMITED : elems;
    hid_t sp = H5Screate_simple(1, &elems, &maxd), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 1, &chunk);
    H5Pset_deflate(dcpl, 9);
    hid_t d = H5Dcreate2(f, "w", H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    size_t zlen;
    uint8_t *z = bomb_zlib_zeros(inflates, &zlen);
    for (hsize_t off = 0; off < elems; off += chunk)
        if (H5Dwrite_chunk(d, H5P_DEFAULT, 0, &off, zlen, z) < 0) { fprintf(stderr, "%s: H5Dwrite_chunk failed\n", path); exit(1); }
    free(z);
    H5Dclose(d); H5Pclose(dcpl); H5Sclose(sp); H5Fclose(f);
}

// A float32 dataset "w" of `elems` elements whose data is `ext` (an external raw file, e.g. /dev/zero).
static inline void bomb_h5_external(const char *path, hsize_t elems, const char *ext) {
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t sp = H5Screate_simple(1, &elems, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_external(dcpl, ext, 0, elems * 4);
    hid_t d = H5Dcreate2(f, "w", H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Dclose(d); H5Pclose(dcpl); H5Sclose(sp); H5Fclose(f);
}
