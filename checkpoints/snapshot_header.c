// snapshot_header.c - a snapshot's 512-byte user block: the header (magic, version, length, XXH64 of the
// rest, iteration, epoch, its own XXH64), sealing a written file with it, checking it before libhdf5 sees
// a file; the fsync steps of the crash-safe commit and the test hook of its write points.
#include "checkpoints/snapshot_internal.h"
#include "checkpoints/hash64.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HDR_BYTES 64              // the part of the user block we use; the rest stays zero
#define IO_CHUNK ((size_t)8 << 20)

static SnapshotHook g_hook;
void snapshot_set_test_hook(SnapshotHook hook) { g_hook = hook; }
void snap_hook(int *point, const char *what) { if (g_hook) g_hook(*point, what); (*point)++; }

static void put_le64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put_le32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }

// ---- header ----------------------------------------------------------------------------------------
// 0 magic[8] | 8 u32 version | 12 u32 user block bytes | 16 u64 file bytes | 24 u64 content XXH64 |
// 32 i64 global_iter | 40 i64 epoch | 48 u64 XXH64 of bytes 0..47 | 56 zero
static void header_encode(uint8_t *h, const SnapshotInfo *in) {
    memset(h, 0, HDR_BYTES);
    memcpy(h, SNAPSHOT_MAGIC, 8);
    put_le32(h + 8, in->format_version);
    put_le32(h + 12, SNAPSHOT_USERBLOCK);
    put_le64(h + 16, in->file_bytes);
    put_le64(h + 24, in->checksum);
    put_le64(h + 32, (uint64_t)in->global_iter);
    put_le64(h + 40, (uint64_t)in->epoch);
    put_le64(h + 48, hash64(h, 48, 0));
}

// Hash bytes [from, end of file) of fd; *len gets the file size.
static int hash_fd(int fd, uint64_t from, uint64_t *sum, uint64_t *len, const char *path, XcError *err) {
    struct stat st;
    if (fstat(fd, &st) != 0) return xc_err(err, "%s: stat failed: %s", path, strerror(errno));
    *len = (uint64_t)st.st_size;
    uint8_t *buf = xc_malloc(IO_CHUNK);
    Hash64 h;
    hash64_init(&h, 0);
    uint64_t off = from;
    int rc = XC_OK;
    while (off < *len) {
        size_t want = *len - off < IO_CHUNK ? (size_t)(*len - off) : IO_CHUNK;
        ssize_t got = pread(fd, buf, want, (off_t)off);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) { rc = xc_err(err, "%s: read failed at byte %llu: %s", path, (unsigned long long)off, got < 0 ? strerror(errno) : "file shrank"); break; }
        hash64_update(&h, buf, (size_t)got);
        off += (uint64_t)got;
    }
    xc_free(buf);
    *sum = hash64_digest(&h);
    return rc;
}

// ---- sealing -------------------------------------------------------------------------------------------
int snap_seal_file(const char *path, int64_t iter, int64_t epoch, int *point, XcError *err) {
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return xc_err(err, "%s: cannot reopen to seal: %s", path, strerror(errno));
    SnapshotInfo in = {.format_version = SNAPSHOT_FORMAT_VERSION, .global_iter = iter, .epoch = epoch};
    if (hash_fd(fd, SNAPSHOT_USERBLOCK, &in.checksum, &in.file_bytes, path, err) != XC_OK) { close(fd); return XC_ERR; }
    if (in.file_bytes < SNAPSHOT_USERBLOCK + 8) { close(fd); return xc_err(err, "%s: HDF5 wrote only %llu bytes", path, (unsigned long long)in.file_bytes); }
    uint8_t h[HDR_BYTES];
    header_encode(h, &in);
    if (xc_pwrite_all(fd, h, sizeof h, 0) != 0) { int e = errno; close(fd); return xc_err(err, "%s: writing the header failed: %s", path, strerror(e)); }
    if (point) snap_hook(point, "header written");
    if (fsync(fd) != 0) { int e = errno; close(fd); return xc_err(err, "%s: fsync failed: %s (disk full?)", path, strerror(e)); }
    if (point) snap_hook(point, "file fsynced");
    if (close(fd) != 0) return xc_err(err, "%s: close failed: %s", path, strerror(errno));
    if (point) snap_hook(point, "file closed");
    return XC_OK;
}

int snapshot_seal(const char *path, int64_t global_iter, int64_t epoch, XcError *err) {
    return snap_seal_file(path, global_iter, epoch, NULL, err);
}

// ---- checking ------------------------------------------------------------------------------------------
int snapshot_check_file(const char *path, SnapshotInfo *info, XcError *err) {
    int fd = xc_open_input(path, err); // a FIFO or device: refused at once, never waited on
    if (fd < 0) return XC_ERR;
    struct stat st;
    if (fstat(fd, &st) != 0) { close(fd); return xc_err(err, "%s: cannot stat: %s", path, strerror(errno)); }
    uint64_t size = (uint64_t)st.st_size;
    uint8_t h[HDR_BYTES];
    if (size < SNAPSHOT_USERBLOCK + 8) {
        bool magic = size >= 8 && pread(fd, h, 8, 0) == 8 && memcmp(h, SNAPSHOT_MAGIC, 8) == 0;
        close(fd);
        return xc_err(err, "%s: %s (%llu bytes, a snapshot has at least %d)", path,
                      magic ? "truncated snapshot" : "too short to be a snapshot", (unsigned long long)size, SNAPSHOT_USERBLOCK + 8);
    }
    if (pread(fd, h, HDR_BYTES, 0) != HDR_BYTES) { close(fd); return xc_err(err, "%s: cannot read the header: %s", path, strerror(errno)); }
    if (memcmp(h, SNAPSHOT_MAGIC, 8) != 0) { close(fd); return xc_err(err, "%s: not a snapshot (wrong magic)", path); }
    if (ckpt_le64(h + 48) != hash64(h, 48, 0)) { close(fd); return xc_err(err, "%s: snapshot header damaged (header checksum mismatch)", path); }
    SnapshotInfo in = {.format_version = ckpt_le32(h + 8), .file_bytes = ckpt_le64(h + 16), .checksum = ckpt_le64(h + 24),
                       .global_iter = (int64_t)ckpt_le64(h + 32), .epoch = (int64_t)ckpt_le64(h + 40)};
    if (in.format_version != SNAPSHOT_FORMAT_VERSION || ckpt_le32(h + 12) != SNAPSHOT_USERBLOCK) {
        close(fd);
        return xc_err(err, "%s: snapshot format version %u (user block %u); this build reads version %d", path,
                      in.format_version, ckpt_le32(h + 12), SNAPSHOT_FORMAT_VERSION);
    }
    if (in.file_bytes != size) {
        close(fd);
        return xc_err(err, "%s: file is %llu bytes but its header says %llu (%s)", path, (unsigned long long)size,
                      (unsigned long long)in.file_bytes, size < in.file_bytes ? "truncated" : "bytes appended");
    }
    uint64_t sum, len;
    int rc = hash_fd(fd, SNAPSHOT_USERBLOCK, &sum, &len, path, err);
    close(fd);
    if (rc != XC_OK) return XC_ERR;
    if (len != size) return xc_err(err, "%s: file changed size while being checked", path);
    if (sum != in.checksum) return xc_err(err, "%s: content checksum mismatch (damaged snapshot)", path);
    if (info) *info = in;
    return XC_OK;
}

bool snapshot_is_snapshot_file(const char *path) {
    int fd = xc_open_input(path, NULL); // not a regular file: no snapshot (and no wait on a FIFO)
    if (fd < 0) return false;
    char m[8];
    bool yes = pread(fd, m, 8, 0) == 8 && memcmp(m, SNAPSHOT_MAGIC, 8) == 0;
    close(fd);
    return yes;
}

// ---- the directory, after a rename or unlink in it --------------------------------------------------
int snap_fsync_dir(const char *dir, XcError *err) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return xc_err(err, "%s: cannot open the directory to fsync it: %s", dir, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0 && e != EINVAL) return xc_err(err, "%s: fsync of the directory failed: %s", dir, strerror(e));
    return XC_OK;
}
