// snapshot.c - see snapshot.h. Three parts: the header (user block) and whole-file checksum, the HDF5
// writer with its crash-safe commit, and the readers (verify, load, weights only, directory helpers).
#include "checkpoints/snapshot.h"
#include "checkpoints/ckpt_internal.h"
#include "checkpoints/hash64.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include "checkpoints/h5io.h"
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HDR_BYTES 64              // the part of the user block we use; the rest stays zero
#define IO_CHUNK ((size_t)8 << 20)

static SnapshotHook g_hook;
void snapshot_set_test_hook(SnapshotHook hook) { g_hook = hook; }

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

static void hook(int *point, const char *what) { if (g_hook) g_hook(*point, what); (*point)++; }

// Header + fsync of an HDF5 file that has the user block. *point may be NULL (no hook calls).
static int seal_file(const char *path, int64_t iter, int64_t epoch, int *point, XcError *err) {
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return xc_err(err, "%s: cannot reopen to seal: %s", path, strerror(errno));
    SnapshotInfo in = {.format_version = SNAPSHOT_FORMAT_VERSION, .global_iter = iter, .epoch = epoch};
    if (hash_fd(fd, SNAPSHOT_USERBLOCK, &in.checksum, &in.file_bytes, path, err) != XC_OK) { close(fd); return XC_ERR; }
    if (in.file_bytes < SNAPSHOT_USERBLOCK + 8) { close(fd); return xc_err(err, "%s: HDF5 wrote only %llu bytes", path, (unsigned long long)in.file_bytes); }
    uint8_t h[HDR_BYTES];
    header_encode(h, &in);
    if (xc_pwrite_all(fd, h, sizeof h, 0) != 0) { int e = errno; close(fd); return xc_err(err, "%s: writing the header failed: %s", path, strerror(e)); }
    if (point) hook(point, "header written");
    if (fsync(fd) != 0) { int e = errno; close(fd); return xc_err(err, "%s: fsync failed: %s (disk full?)", path, strerror(e)); }
    if (point) hook(point, "file fsynced");
    if (close(fd) != 0) return xc_err(err, "%s: close failed: %s", path, strerror(errno));
    if (point) hook(point, "file closed");
    return XC_OK;
}

int snapshot_seal(const char *path, int64_t global_iter, int64_t epoch, XcError *err) {
    return seal_file(path, global_iter, epoch, NULL, err);
}

int snapshot_check_file(const char *path, SnapshotInfo *info, XcError *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return xc_err(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) { close(fd); return xc_err(err, "%s: not a regular file", path); }
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
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    char m[8];
    bool yes = pread(fd, m, 8, 0) == 8 && memcmp(m, SNAPSHOT_MAGIC, 8) == 0;
    close(fd);
    return yes;
}

// ---- writing -----------------------------------------------------------------------------------------
typedef struct Writer {
    const char *path;   // final name, for messages
    XcError *err;
    int point;
    bool failed;
} Writer;

static int w_fail(Writer *w, const char *what) {
    int e = errno;
    if (!w->failed) xc_err(w->err, "%s: cannot write %s: %s", w->path, what, e ? strerror(e) : "HDF5 error");
    w->failed = true;
    return XC_ERR;
}

static int w_attr(Writer *w, hid_t obj, const char *name, hid_t ftype, hid_t mtype, const void *v) {
    errno = 0;
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = sp < 0 ? -1 : H5Acreate2(obj, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
    bool ok = a >= 0 && H5Awrite(a, mtype, v) >= 0;
    if (a >= 0) H5Aclose(a);
    if (sp >= 0) H5Sclose(sp);
    if (!ok) return w_fail(w, name);
    return XC_OK;
}
static int w_i64(Writer *w, hid_t obj, const char *name, int64_t v) { return w_attr(w, obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &v); }
static int w_f64(Writer *w, hid_t obj, const char *name, double v) { return w_attr(w, obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v); }

// One contiguous dataset + its "xxh64" attribute. ndim 0 is a scalar.
static int w_dataset(Writer *w, hid_t loc, const char *name, const char *what, hid_t ftype, hid_t mtype, int ndim,
                     const int64_t *shape, const void *data, size_t nbytes) {
    hsize_t dims[XC_WEIGHT_MAX_DIMS];
    for (int k = 0; k < ndim; k++) dims[k] = (hsize_t)shape[k];
    errno = 0;
    hid_t sp = ndim ? H5Screate_simple(ndim, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t d = sp < 0 ? -1 : H5Dcreate2(loc, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    bool ok = d >= 0 && (nbytes == 0 || H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
    if (sp >= 0) H5Sclose(sp);
    if (ok) {
        uint64_t h = hash64(data, nbytes, 0);
        if (w_attr(w, d, "xxh64", H5T_STD_U64LE, H5T_NATIVE_UINT64, &h) != XC_OK) ok = false;
    }
    if (d >= 0) H5Dclose(d);
    if (!ok) return w_fail(w, what);
    char msg[600];
    snprintf(msg, sizeof msg, "%s written", what);
    hook(&w->point, msg);
    return XC_OK;
}

static hid_t w_group(Writer *w, hid_t loc, const char *name) {
    errno = 0;
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    H5Pset_link_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    hid_t g = H5Gcreate2(loc, name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
    H5Pclose(gcpl);
    if (g < 0) w_fail(w, name);
    return g;
}

static bool bad_name(const char *n) { return !n || !n[0] || strchr(n, '/') || strcmp(n, ".") == 0 || strlen(n) > CKPT_MAX_NAME_BYTES; }

static int w_text(Writer *w, hid_t g, const char *name, const char *s) {
    int64_t n = s ? (int64_t)strlen(s) : 0;
    char what[64];
    snprintf(what, sizeof what, "text/%s", name);
    return w_dataset(w, g, name, what, H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, &n, s ? s : "", (size_t)n);
}

static int write_contents(Writer *w, hid_t f, const SnapshotState *st) {
    const ParamStore *ps = st->params;
    if (w_i64(w, f, "format_version", SNAPSHOT_FORMAT_VERSION) || w_i64(w, f, "global_iter", st->global_iter) ||
        w_i64(w, f, "epoch", st->epoch) || w_i64(w, f, "iter_in_epoch", st->iter_in_epoch) ||
        w_f64(w, f, "best_acc", st->best_acc) || w_i64(w, f, "best_epoch", st->best_epoch) ||
        w_i64(w, f, "best_iter", st->best_iter) || w_i64(w, f, "cursor_epoch", st->cursor.epoch) ||
        w_i64(w, f, "cursor_batch", st->cursor.batch))
        return XC_ERR;
    char what[CKPT_MAX_NAME_BYTES + 32];
    hid_t g = w_group(w, f, "model");
    if (g < 0) return XC_ERR;
    for (int i = 0; i < ps->n; i++) {
        const Tensor *p = ps->p[i];
        snprintf(what, sizeof what, "model/%s", p->name);
        if (w_dataset(w, g, p->name, what, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, p->ndim, p->shape, p->data,
                      (size_t)p->numel * sizeof(float)) != XC_OK) { H5Gclose(g); return XC_ERR; }
    }
    H5Gclose(g);
    if (st->opt.ps) {
        const OptimState *o = &st->opt;
        hid_t og = w_group(w, f, "optim");
        if (og < 0) return XC_ERR;
        int64_t n = ps->n;
        uint8_t *decay = xc_malloc((size_t)(n ? n : 1));
        for (int64_t i = 0; i < n; i++) decay[i] = o->decay[i] ? 1 : 0;
        int rc = w_i64(w, og, "step", *o->step) || w_i64(w, og, "n_params", n) || w_i64(w, og, "total", o->total) ||
                 w_f64(w, og, "beta1", o->beta1) || w_f64(w, og, "beta2", o->beta2) || w_f64(w, og, "eps", o->eps) ||
                 w_f64(w, og, "weight_decay", o->weight_decay) ||
                 w_dataset(w, og, "lr_scale", "optim/lr_scale", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, &n, o->lr_scale, (size_t)n * 4) ||
                 w_dataset(w, og, "decay", "optim/decay", H5T_STD_U8LE, H5T_NATIVE_UINT8, 1, &n, decay, (size_t)n);
        xc_free(decay);
        hid_t mg = rc ? -1 : w_group(w, og, "m");
        hid_t vg = mg < 0 ? -1 : w_group(w, og, "v");
        if (vg < 0) rc = XC_ERR;
        for (int i = 0; i < ps->n && !rc; i++) {
            const Tensor *p = ps->p[i];
            const float *m = optim_state_moment(o, 0, i), *v = optim_state_moment(o, 1, i);
            if (!m) continue; // frozen when the optimiser was made: no moments
            size_t nb = (size_t)p->numel * sizeof(float);
            snprintf(what, sizeof what, "optim/m/%s", p->name);
            rc = w_dataset(w, mg, p->name, what, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, p->ndim, p->shape, m, nb);
            snprintf(what, sizeof what, "optim/v/%s", p->name);
            if (!rc) rc = w_dataset(w, vg, p->name, what, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, p->ndim, p->shape, v, nb);
        }
        if (mg >= 0) H5Gclose(mg);
        if (vg >= 0) H5Gclose(vg);
        H5Gclose(og);
        if (rc) return XC_ERR;
    }
    hid_t rg = w_group(w, f, "rng");
    if (rg < 0) return XC_ERR;
    for (int i = 0; i < st->n_rngs; i++) {
        const RngState *s = &st->rngs[i].state;
        uint32_t spare;
        memcpy(&spare, &s->spare, 4);
        uint64_t raw[4] = {s->key, s->counter, (uint64_t)s->pos | ((uint64_t)s->has_spare << 32), spare};
        int64_t four = 4;
        snprintf(what, sizeof what, "rng/%s", st->rngs[i].name);
        if (w_dataset(w, rg, st->rngs[i].name, what, H5T_STD_U64LE, H5T_NATIVE_UINT64, 1, &four, raw, sizeof raw)) { H5Gclose(rg); return XC_ERR; }
    }
    H5Gclose(rg);
    hid_t dg = w_group(w, f, "data");
    if (dg < 0) return XC_ERR;
    int rc = w_dataset(w, dg, "order", "data/order", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &st->order_len,
                       st->order ? (const void *)st->order : (const void *)"", (size_t)st->order_len * 8);
    H5Gclose(dg);
    if (rc) return XC_ERR;
    hid_t tg = w_group(w, f, "text");
    if (tg < 0) return XC_ERR;
    rc = w_text(w, tg, "fewshot_list", st->fewshot_list) || w_text(w, tg, "bad_videos", st->bad_videos) ||
         w_text(w, tg, "config", st->config);
    H5Gclose(tg);
    return rc ? XC_ERR : XC_OK;
}

static void split_path(const char *path, char *dir, size_t dcap, const char **base) {
    const char *slash = strrchr(path, '/');
    if (!slash) { snprintf(dir, dcap, "."); *base = path; return; }
    size_t n = (size_t)(slash - path);
    if (n == 0) n = 1; // "/name"
    snprintf(dir, dcap, "%.*s", (int)n, path);
    *base = slash + 1;
}

static int fsync_dir(const char *dir, XcError *err) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return xc_err(err, "%s: cannot open the directory to fsync it: %s", dir, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0 && e != EINVAL) return xc_err(err, "%s: fsync of the directory failed: %s", dir, strerror(e));
    return XC_OK;
}

int snapshot_write(const char *path, const SnapshotState *st, XcError *err) {
    XC_CHECK(st && st->params, "snapshot_write: no ParamStore");
    const ParamStore *ps = st->params;
    for (int i = 0; i < ps->n; i++)
        if (bad_name(ps->p[i]->name)) return xc_err(err, "%s: parameter name \"%s\" cannot be stored", path, ps->p[i]->name ? ps->p[i]->name : "(null)");
    for (int i = 0; i < st->n_rngs; i++) {
        if (bad_name(st->rngs[i].name) || strnlen(st->rngs[i].name, SNAPSHOT_MAX_RNG_NAME) == SNAPSHOT_MAX_RNG_NAME)
            return xc_err(err, "%s: bad RNG stream name", path);
        for (int j = 0; j < i; j++)
            if (strcmp(st->rngs[i].name, st->rngs[j].name) == 0) return xc_err(err, "%s: RNG stream \"%s\" given twice", path, st->rngs[i].name);
    }
    XC_CHECK(st->order_len >= 0 && (st->order || st->order_len == 0), "snapshot_write: order_len %lld without an order", (long long)st->order_len);
    XC_CHECK(!st->opt.ps || st->opt.ps == st->params, "snapshot_write: the AdamW belongs to another ParamStore");

    char dir[4096], tmp[4096 + 300];
    const char *base;
    split_path(path, dir, sizeof dir, &base);
    if (!base[0]) return xc_err(err, "%s: not a file name", path);
    int n = snprintf(tmp, sizeof tmp, "%s/%s%ld-%s", dir, SNAPSHOT_TMP_PREFIX, (long)getpid(), base);
    if (n < 0 || (size_t)n >= sizeof tmp) return xc_err(err, "%s: path too long", path);

    Writer w = {.path = path, .err = err};
    H5Quiet q = h5_quiet_begin();
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE), fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_userblock(fcpl, SNAPSHOT_USERBLOCK);
    H5Pset_link_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    errno = 0;
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, fapl);
    H5Pclose(fcpl);
    H5Pclose(fapl);
    if (f < 0) {
        int e = errno;
        h5_quiet_end(q);
        unlink(tmp); // HDF5 may have created it before failing
        return xc_err(err, "%s: cannot create the temporary file %s: %s", path, tmp, e ? strerror(e) : "HDF5 error");
    }
    hook(&w.point, "temporary file created");
    bool ok = write_contents(&w, f, st) == XC_OK;
    hook(&w.point, "before H5Fclose");
    errno = 0;
    if (H5Fclose(f) < 0 && ok) { ok = false; w_fail(&w, "the HDF5 file (closing failed; disk full?)"); }
    h5_quiet_end(q);
    if (ok) hook(&w.point, "after H5Fclose");
    if (ok && seal_file(tmp, st->global_iter, st->epoch, &w.point, err) != XC_OK) ok = false;
    if (ok && rename(tmp, path) != 0) { ok = false; xc_err(err, "%s: rename from %s failed: %s", path, tmp, strerror(errno)); }
    if (!ok) { unlink(tmp); return XC_ERR; }
    hook(&w.point, "renamed");
    if (fsync_dir(dir, err) != XC_OK) return XC_ERR; // the file is complete; only its durability is in doubt
    hook(&w.point, "directory fsynced");
    return XC_OK;
}

const char *snapshot_path(const char *dir, int64_t global_iter, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/snap-%012lld.h5", dir, (long long)global_iter);
    return buf;
}

int snapshot_save(const char *dir, const SnapshotState *st, char *path_out, size_t cap, XcError *err) {
    if (st->global_iter < 0) return xc_err(err, "%s: negative global iteration %lld", dir, (long long)st->global_iter);
    char path[4200];
    snapshot_path(dir, st->global_iter, path, sizeof path);
    if (path_out) snprintf(path_out, cap, "%s", path);
    return snapshot_write(path, st, err);
}

// ---- reading -----------------------------------------------------------------------------------------
typedef struct Reader {
    const char *path;
    XcError *err;
    uint64_t file_bytes;
    hid_t f;
} Reader;

typedef struct DsInfo {
    int ndim;
    int64_t shape[XC_WEIGHT_MAX_DIMS];
    uint64_t numel, nbytes, sum;
} DsInfo;

// Checked scalar attribute of an integer or float class, read as mtype (8 bytes).
static int r_attr(Reader *r, hid_t obj, const char *where, const char *name, H5T_class_t cls, hid_t mtype, void *out) {
    htri_t ex = H5Aexists(obj, name);
    if (ex <= 0) return xc_err(r->err, "%s: %s: attribute %s missing", r->path, where, name);
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t t = a < 0 ? -1 : H5Aget_type(a), sp = a < 0 ? -1 : H5Aget_space(a);
    int rc = XC_ERR;
    if (t < 0 || sp < 0) xc_err(r->err, "%s: %s: attribute %s unreadable", r->path, where, name);
    else if (H5Tget_class(t) != cls || H5Tget_size(t) != 8 || H5Sget_simple_extent_npoints(sp) != 1)
        xc_err(r->err, "%s: %s: attribute %s has an unexpected type or shape", r->path, where, name);
    else if (H5Aread(a, mtype, out) < 0) xc_err(r->err, "%s: %s: attribute %s: read failed", r->path, where, name);
    else rc = XC_OK;
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    if (a >= 0) H5Aclose(a);
    return rc;
}
static int r_i64(Reader *r, hid_t obj, const char *where, const char *name, int64_t *v) { return r_attr(r, obj, where, name, H5T_INTEGER, H5T_NATIVE_INT64, v); }
static int r_f64(Reader *r, hid_t obj, const char *where, const char *name, double *v) { return r_attr(r, obj, where, name, H5T_FLOAT, H5T_NATIVE_DOUBLE, v); }

static bool link_exists(hid_t loc, const char *name) { return H5Lexists(loc, name, H5P_DEFAULT) > 0; }

// Open dataset `name` of loc and validate it: class/size, dims (ndim < 0: any), contiguous uncompressed
// storage of exactly numel*elem bytes inside the file, a checksum attribute. Returns the dataset or -1.
static hid_t r_open(Reader *r, hid_t loc, const char *name, const char *what, H5T_class_t cls, size_t elem, DsInfo *di) {
    if (!link_exists(loc, name)) { xc_err(r->err, "%s: %s missing from the snapshot", r->path, what); return -1; }
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    if (d < 0) { xc_err(r->err, "%s: %s is not a readable dataset", r->path, what); return -1; }
    hid_t t = H5Dget_type(d), sp = H5Dget_space(d), dcpl = H5Dget_create_plist(d);
    bool ok = false;
    memset(di, 0, sizeof *di);
    if (t < 0 || sp < 0 || dcpl < 0) { xc_err(r->err, "%s: %s: cannot read its type or shape", r->path, what); goto out; }
    if (H5Tget_class(t) != cls || H5Tget_size(t) != elem || (elem > 1 && H5Tget_order(t) != H5T_ORDER_LE)) {
        xc_err(r->err, "%s: %s has an unexpected element type", r->path, what);
        goto out;
    }
    H5S_class_t sc = H5Sget_simple_extent_type(sp);
    int nd = sc == H5S_SCALAR ? 0 : H5Sget_simple_extent_ndims(sp);
    if (sc == H5S_NULL || nd < 0 || nd > XC_WEIGHT_MAX_DIMS) { xc_err(r->err, "%s: %s: bad dataspace", r->path, what); goto out; }
    hsize_t dims[XC_WEIGHT_MAX_DIMS];
    if (nd) H5Sget_simple_extent_dims(sp, dims, NULL);
    di->ndim = nd;
    di->numel = 1;
    for (int k = 0; k < nd; k++) {
        if (dims[k] > (hsize_t)INT64_MAX || !xc_mul_u64(di->numel, dims[k], &di->numel)) { xc_err(r->err, "%s: %s: shape overflows", r->path, what); goto out; }
        di->shape[k] = (int64_t)dims[k];
    }
    if (!xc_mul_u64(di->numel, elem, &di->nbytes) || di->nbytes > r->file_bytes) {
        xc_err(r->err, "%s: %s: %llu elements cannot fit in a %llu-byte file", r->path, what, (unsigned long long)di->numel,
               (unsigned long long)r->file_bytes);
        goto out;
    }
    if (H5Pget_nfilters(dcpl) != 0) { xc_err(r->err, "%s: %s is compressed or filtered", r->path, what); goto out; }
    if (di->nbytes && H5Dget_storage_size(d) != di->nbytes) {
        xc_err(r->err, "%s: %s: %llu bytes stored, %llu expected", r->path, what, (unsigned long long)H5Dget_storage_size(d),
               (unsigned long long)di->nbytes);
        goto out;
    }
    uint64_t sum;
    if (r_attr(r, d, what, "xxh64", H5T_INTEGER, H5T_NATIVE_UINT64, &sum) != XC_OK) goto out;
    di->sum = sum;
    ok = true;
out:
    if (dcpl >= 0) H5Pclose(dcpl);
    if (sp >= 0) H5Sclose(sp);
    if (t >= 0) H5Tclose(t);
    if (!ok) { H5Dclose(d); return -1; }
    return d;
}

// Read an opened dataset into dst (di->nbytes) and verify its checksum.
static int r_read(Reader *r, hid_t d, const char *what, hid_t mtype, void *dst, const DsInfo *di) {
    if (di->nbytes && H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0)
        return xc_err(r->err, "%s: %s: read failed", r->path, what);
    if (hash64(dst, (size_t)di->nbytes, 0) != di->sum) return xc_err(r->err, "%s: %s: checksum mismatch (damaged data)", r->path, what);
    return XC_OK;
}

static bool same_shape(const DsInfo *di, const Tensor *p) {
    if (di->ndim != p->ndim) return false;
    for (int k = 0; k < p->ndim; k++)
        if (di->shape[k] != p->shape[k]) return false;
    return true;
}

static const char *shape_str(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int k = 0; k < ndim && o < n; k++) o += (size_t)snprintf(buf + o, n - o, k ? ", %lld" : "%lld", (long long)shape[k]);
    if (o < n) snprintf(buf + o, n - o, "]");
    return buf;
}

static int64_t n_links(hid_t g) {
    H5G_info_t gi;
    if (H5Gget_info(g, &gi) < 0) return -1;
    return (int64_t)gi.nlinks;
}

typedef struct Names { char **s; int64_t n, cap; } Names;
static herr_t collect_cb(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    (void)g; (void)info;
    Names *nm = data;
    if (nm->n >= CKPT_MAX_TENSORS) return -1;
    if (nm->n == nm->cap) {
        nm->cap = nm->cap ? 2 * nm->cap : 64;
        nm->s = xc_realloc(nm->s, (size_t)nm->cap * sizeof *nm->s);
    }
    size_t len = strlen(name);
    nm->s[nm->n] = xc_malloc(len + 1);
    memcpy(nm->s[nm->n++], name, len + 1);
    return 0;
}
static void names_free(Names *nm) {
    for (int64_t i = 0; i < nm->n; i++) xc_free(nm->s[i]);
    xc_free(nm->s);
    memset(nm, 0, sizeof *nm);
}
// The link names of group g in creation order (name order when the order is not indexed).
static int list_links(Reader *r, hid_t g, const char *what, Names *nm) {
    if (H5Literate(g, H5_INDEX_CRT_ORDER, H5_ITER_INC, NULL, collect_cb, nm) < 0) {
        names_free(nm);
        if (H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, collect_cb, nm) < 0) {
            names_free(nm);
            return xc_err(r->err, "%s: cannot list %s", r->path, what);
        }
    }
    return XC_OK;
}

// Verified header, then the HDF5 file opened read-only (closing it closes everything opened in it).
static int r_begin(Reader *r, const char *path, XcError *err, SnapshotInfo *info) {
    memset(r, 0, sizeof *r);
    r->path = path;
    r->err = err;
    r->f = -1;
    SnapshotInfo in;
    if (snapshot_check_file(path, &in, err) != XC_OK) return XC_ERR;
    if (info) *info = in;
    r->file_bytes = in.file_bytes;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    r->f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    if (r->f < 0) return xc_err(err, "%s: the checksums match but libhdf5 cannot open the file", path);
    int64_t version;
    if (r_i64(r, r->f, "root", "format_version", &version) != XC_OK) return XC_ERR;
    if (version != SNAPSHOT_FORMAT_VERSION) return xc_err(err, "%s: format_version %lld, this build reads %d", path, (long long)version, SNAPSHOT_FORMAT_VERSION);
    return XC_OK;
}
static void r_end(Reader *r) { if (r->f >= 0) H5Fclose(r->f); r->f = -1; }

// ---- verify: every dataset's checksum -----------------------------------------------------------------
typedef struct VerifyCtx { Reader *r; int failed; int64_t n; } VerifyCtx;
static herr_t verify_cb(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    VerifyCtx *v = data;
    if (info->type != H5L_TYPE_HARD) { xc_err(v->r->err, "%s: unexpected link %s", v->r->path, name); v->failed = 1; return -1; }
    hid_t o = H5Oopen(g, name, H5P_DEFAULT);
    if (o < 0) { xc_err(v->r->err, "%s: object %s unreadable", v->r->path, name); v->failed = 1; return -1; }
    H5I_type_t kind = H5Iget_type(o);
    hid_t t = kind == H5I_DATASET ? H5Dget_type(o) : -1;
    H5T_class_t cls = t < 0 ? H5T_NO_CLASS : H5Tget_class(t);
    size_t elem = t < 0 ? 0 : H5Tget_size(t);
    if (t >= 0) H5Tclose(t);
    H5Oclose(o);
    if (kind != H5I_DATASET) return 0;
    hid_t mtype = cls == H5T_FLOAT && elem == 4 ? H5T_NATIVE_FLOAT : cls == H5T_INTEGER && elem == 8 ? H5T_NATIVE_UINT64
                : cls == H5T_INTEGER && elem == 1 ? H5T_NATIVE_UINT8 : -1;
    if (mtype < 0) { xc_err(v->r->err, "%s: dataset %s has an unexpected type", v->r->path, name); v->failed = 1; return -1; }
    DsInfo di;
    hid_t d = r_open(v->r, g, name, name, cls, elem, &di);
    if (d < 0) { v->failed = 1; return -1; }
    void *buf = xc_malloc(di.nbytes ? (size_t)di.nbytes : 1);
    int rc = r_read(v->r, d, name, mtype, buf, &di);
    xc_free(buf);
    H5Dclose(d);
    if (rc != XC_OK) { v->failed = 1; return -1; }
    v->n++;
    return 0;
}

int snapshot_verify(const char *path, SnapshotInfo *info, XcError *err) {
    Reader r;
    H5Quiet q = h5_quiet_begin();
    int rc = r_begin(&r, path, err, info);
    if (rc == XC_OK) {
        VerifyCtx v = {&r, 0, 0};
        if (H5Lvisit(r.f, H5_INDEX_NAME, H5_ITER_INC, verify_cb, &v) < 0 || v.failed) {
            if (!v.failed) xc_err(err, "%s: cannot walk the HDF5 file", path);
            rc = XC_ERR;
        }
        hid_t g = rc == XC_OK && link_exists(r.f, "model") ? H5Gopen2(r.f, "model", H5P_DEFAULT) : -1;
        if (rc == XC_OK && g < 0) rc = xc_err(err, "%s: no model group", path);
        if (g >= 0) H5Gclose(g);
    }
    r_end(&r);
    h5_quiet_end(q);
    return rc;
}

// ---- weights only --------------------------------------------------------------------------------------
int snapshot_load_weights(const char *path, WeightSet *ws, XcError *err) {
    XC_CHECK(ws->n == 0, "snapshot_load_weights: the WeightSet must be empty");
    Reader r;
    H5Quiet q = h5_quiet_begin();
    int rc = r_begin(&r, path, err, NULL);
    hid_t g = -1;
    Names nm = {0};
    if (rc == XC_OK) {
        g = link_exists(r.f, "model") ? H5Gopen2(r.f, "model", H5P_DEFAULT) : -1;
        if (g < 0) rc = xc_err(err, "%s: no model group", path);
    }
    if (rc == XC_OK) rc = list_links(&r, g, "model", &nm);
    char what[CKPT_MAX_NAME_BYTES + 16];
    for (int64_t i = 0; i < nm.n && rc == XC_OK; i++) {
        snprintf(what, sizeof what, "model/%s", nm.s[i]);
        DsInfo di;
        hid_t d = r_open(&r, g, nm.s[i], what, H5T_FLOAT, 4, &di);
        if (d < 0) { rc = XC_ERR; break; }
        float *data = xc_malloc(di.nbytes ? (size_t)di.nbytes : 1);
        rc = r_read(&r, d, what, H5T_NATIVE_FLOAT, data, &di);
        H5Dclose(d);
        if (rc != XC_OK) { xc_free(data); break; }
        weights_add_owned(ws, nm.s[i], di.ndim, di.shape, data);
    }
    if (rc == XC_OK && ws->n == 0) rc = xc_err(err, "%s: the snapshot holds no model tensors", path);
    names_free(&nm);
    if (g >= 0) H5Gclose(g);
    r_end(&r);
    h5_quiet_end(q);
    if (rc != XC_OK) weights_free(ws);
    return rc;
}

// ---- full restore --------------------------------------------------------------------------------------
static char *r_text(Reader *r, hid_t tg, const char *name) {
    char what[64];
    snprintf(what, sizeof what, "text/%s", name);
    DsInfo di;
    hid_t d = r_open(r, tg, name, what, H5T_INTEGER, 1, &di);
    if (d < 0) return NULL;
    if (di.ndim != 1) { H5Dclose(d); xc_err(r->err, "%s: %s is not 1-D", r->path, what); return NULL; }
    char *s = xc_malloc((size_t)di.nbytes + 1);
    int rc = r_read(r, d, what, H5T_NATIVE_UINT8, s, &di);
    H5Dclose(d);
    if (rc != XC_OK) { xc_free(s); return NULL; }
    s[di.nbytes] = 0;
    if (strlen(s) != di.nbytes) { xc_free(s); xc_err(r->err, "%s: %s contains a NUL byte", r->path, what); return NULL; }
    return s;
}

typedef struct Loaded {
    int64_t global_iter, epoch, iter_in_epoch, best_epoch, best_iter, cursor_epoch, cursor_batch, step;
    double best_acc;
    RngState *rng;
    float *lr_scale;
    uint8_t *decay;
    char *text[3];
} Loaded;

static void loaded_free(Loaded *L) {
    xc_free(L->rng);
    xc_free(L->lr_scale);
    xc_free(L->decay);
    for (int i = 0; i < 3; i++) xc_free(L->text[i]);
}

static int load_small_vec(Reader *r, hid_t g, const char *name, const char *what, H5T_class_t cls, size_t elem, hid_t mtype,
                          int64_t n, void *dst) {
    DsInfo di;
    hid_t d = r_open(r, g, name, what, cls, elem, &di);
    if (d < 0) return XC_ERR;
    int rc = XC_OK;
    if (di.ndim != 1 || di.shape[0] != n)
        rc = xc_err(r->err, "%s: %s has %lld entries, %lld expected", r->path, what, di.ndim == 1 ? (long long)di.shape[0] : -1LL, (long long)n);
    if (rc == XC_OK) rc = r_read(r, d, what, mtype, dst, &di);
    H5Dclose(d);
    return rc;
}

// Pass 1: everything is checked and the small items are read into L; nothing in st changes.
static int load_check(Reader *r, SnapshotState *st, Loaded *L, hid_t mg, hid_t og, hid_t rg, hid_t dg, hid_t tg) {
    hid_t f = r->f;
    if (r_i64(r, f, "root", "global_iter", &L->global_iter) || r_i64(r, f, "root", "epoch", &L->epoch) ||
        r_i64(r, f, "root", "iter_in_epoch", &L->iter_in_epoch) || r_f64(r, f, "root", "best_acc", &L->best_acc) ||
        r_i64(r, f, "root", "best_epoch", &L->best_epoch) || r_i64(r, f, "root", "best_iter", &L->best_iter) ||
        r_i64(r, f, "root", "cursor_epoch", &L->cursor_epoch) || r_i64(r, f, "root", "cursor_batch", &L->cursor_batch))
        return XC_ERR;
    ParamStore *ps = st->params;
    char what[CKPT_MAX_NAME_BYTES + 32], a[128], b[128];
    // model: every parameter present with its shape, nothing else
    for (int i = 0; i < ps->n; i++) {
        const Tensor *p = ps->p[i];
        snprintf(what, sizeof what, "model tensor '%s'", p->name);
        DsInfo di;
        hid_t d = r_open(r, mg, p->name, what, H5T_FLOAT, 4, &di);
        if (d < 0) return XC_ERR;
        H5Dclose(d);
        if (!same_shape(&di, p))
            return xc_err(r->err, "%s: %s has shape %s in the snapshot, %s in the model", r->path, what,
                          shape_str(di.ndim, di.shape, a, sizeof a), shape_str(p->ndim, p->shape, b, sizeof b));
    }
    Names nm = {0};
    if (list_links(r, mg, "model", &nm) != XC_OK) return XC_ERR;
    int rc = XC_OK;
    for (int64_t i = 0; i < nm.n && rc == XC_OK; i++)
        if (!param_find(ps, nm.s[i])) rc = xc_err(r->err, "%s: model tensor '%s' is in the snapshot but not in the model", r->path, nm.s[i]);
    names_free(&nm);
    if (rc != XC_OK) return XC_ERR;
    // optimiser
    if (st->opt.ps) {
        if (og < 0) return xc_err(r->err, "%s: optimiser state missing (a weights-only snapshot cannot resume training)", r->path);
        int64_t n, total;
        if (r_i64(r, og, "optim", "n_params", &n) || r_i64(r, og, "optim", "total", &total) || r_i64(r, og, "optim", "step", &L->step))
            return XC_ERR;
        if (n != ps->n || total != st->opt.total)
            return xc_err(r->err, "%s: optimiser size: the snapshot has %lld parameters / %lld trained floats, the run %d / %lld",
                          r->path, (long long)n, (long long)total, ps->n, (long long)st->opt.total);
        if (L->step < 0) return xc_err(r->err, "%s: optimiser step %lld is negative", r->path, (long long)L->step);
        L->lr_scale = xc_malloc((size_t)(n ? n : 1) * sizeof(float));
        L->decay = xc_malloc((size_t)(n ? n : 1));
        if (load_small_vec(r, og, "lr_scale", "optim/lr_scale", H5T_FLOAT, 4, H5T_NATIVE_FLOAT, n, L->lr_scale) ||
            load_small_vec(r, og, "decay", "optim/decay", H5T_INTEGER, 1, H5T_NATIVE_UINT8, n, L->decay))
            return XC_ERR;
        hid_t gm = link_exists(og, "m") ? H5Gopen2(og, "m", H5P_DEFAULT) : -1;
        hid_t gv = link_exists(og, "v") ? H5Gopen2(og, "v", H5P_DEFAULT) : -1;
        if (gm < 0 || gv < 0) rc = xc_err(r->err, "%s: optimiser moments (optim/m, optim/v) missing", r->path);
        if (rc == XC_OK && n_links(gm) != n_links(gv)) rc = xc_err(r->err, "%s: optim/m and optim/v hold different tensors", r->path);
        if (rc == XC_OK) rc = list_links(r, gm, "optim/m", &nm);
        for (int64_t i = 0; i < nm.n && rc == XC_OK; i++) {
            const Tensor *p = param_find(ps, nm.s[i]);
            if (!p) { rc = xc_err(r->err, "%s: optimiser moment for '%s', which the model does not have", r->path, nm.s[i]); break; }
            for (int k = 0; k < 2 && rc == XC_OK; k++) {
                snprintf(what, sizeof what, "optimiser moment %s of '%s'", k ? "v" : "m", p->name);
                DsInfo di;
                hid_t d = r_open(r, k ? gv : gm, p->name, what, H5T_FLOAT, 4, &di);
                if (d < 0) { rc = XC_ERR; break; }
                H5Dclose(d);
                if (!same_shape(&di, p))
                    rc = xc_err(r->err, "%s: %s has shape %s, the parameter %s", r->path, what,
                                shape_str(di.ndim, di.shape, a, sizeof a), shape_str(p->ndim, p->shape, b, sizeof b));
            }
        }
        names_free(&nm);
        if (gm >= 0) H5Gclose(gm);
        if (gv >= 0) H5Gclose(gv);
        if (rc != XC_OK) return XC_ERR;
    }
    // RNG streams: exactly the ones the run has
    if (rg < 0) return xc_err(r->err, "%s: RNG states (rng/) missing", r->path);
    L->rng = xc_calloc((size_t)(st->n_rngs ? st->n_rngs : 1), sizeof(RngState));
    for (int i = 0; i < st->n_rngs; i++) {
        uint64_t raw[4];
        snprintf(what, sizeof what, "RNG stream '%s'", st->rngs[i].name);
        if (load_small_vec(r, rg, st->rngs[i].name, what, H5T_INTEGER, 8, H5T_NATIVE_UINT64, 4, raw) != XC_OK) return XC_ERR;
        uint32_t pos = (uint32_t)raw[2], spare_flag = (uint32_t)(raw[2] >> 32), spare = (uint32_t)raw[3];
        if (pos > 4 || spare_flag > 1 || raw[3] >> 32) return xc_err(r->err, "%s: %s: invalid state", r->path, what);
        L->rng[i] = (RngState){.key = raw[0], .counter = raw[1], .pos = pos, .has_spare = spare_flag};
        memcpy(&L->rng[i].spare, &spare, 4);
    }
    if (list_links(r, rg, "rng", &nm) != XC_OK) return XC_ERR;
    for (int64_t i = 0; i < nm.n && rc == XC_OK; i++) {
        bool known = false;
        for (int j = 0; j < st->n_rngs && !known; j++) known = strcmp(nm.s[i], st->rngs[j].name) == 0;
        if (!known) rc = xc_err(r->err, "%s: RNG stream '%s' is in the snapshot but not in the run", r->path, nm.s[i]);
    }
    names_free(&nm);
    if (rc != XC_OK) return XC_ERR;
    // data order and cursor
    if (dg < 0) return xc_err(r->err, "%s: data order (data/order) missing", r->path);
    DsInfo di;
    hid_t d = r_open(r, dg, "order", "data order", H5T_INTEGER, 8, &di);
    if (d < 0) return XC_ERR;
    H5Dclose(d);
    if (di.ndim != 1 || di.shape[0] != st->order_len)
        return xc_err(r->err, "%s: data order length: %lld entries in the snapshot, the run has %lld (another dataset or list?)",
                      r->path, di.ndim == 1 ? (long long)di.shape[0] : -1LL, (long long)st->order_len);
    if (L->global_iter < 0 || L->epoch < 0 || L->iter_in_epoch < 0 || L->cursor_epoch < 0 || L->cursor_batch < 0)
        return xc_err(r->err, "%s: negative iteration, epoch or cursor", r->path);
    // texts
    if (tg < 0) return xc_err(r->err, "%s: texts (text/) missing", r->path);
    static const char *tn[3] = {"fewshot_list", "bad_videos", "config"};
    for (int i = 0; i < 3; i++)
        if (!(L->text[i] = r_text(r, tg, tn[i]))) return XC_ERR;
    return XC_OK;
}

// Pass 2: the large reads straight into the model, moments and order; then the small items.
static int load_commit(Reader *r, SnapshotState *st, Loaded *L, hid_t mg, hid_t og, hid_t dg) {
    ParamStore *ps = st->params;
    char what[CKPT_MAX_NAME_BYTES + 32];
    DsInfo di;
    for (int i = 0; i < ps->n; i++) {
        Tensor *p = ps->p[i];
        snprintf(what, sizeof what, "model tensor '%s'", p->name);
        hid_t d = r_open(r, mg, p->name, what, H5T_FLOAT, 4, &di);
        if (d < 0 || r_read(r, d, what, H5T_NATIVE_FLOAT, p->data, &di) != XC_OK) { if (d >= 0) H5Dclose(d); return XC_ERR; }
        H5Dclose(d);
    }
    if (st->opt.ps) {
        const OptimState *o = &st->opt;
        memset(o->m, 0, (size_t)o->total * sizeof(float));
        memset(o->v, 0, (size_t)o->total * sizeof(float));
        hid_t g[2] = {H5Gopen2(og, "m", H5P_DEFAULT), H5Gopen2(og, "v", H5P_DEFAULT)};
        int rc = g[0] >= 0 && g[1] >= 0 ? XC_OK : xc_err(r->err, "%s: optim/m or optim/v unreadable", r->path);
        for (int i = 0; i < ps->n && rc == XC_OK; i++) {
            const Tensor *p = ps->p[i];
            for (int k = 0; k < 2 && rc == XC_OK; k++) {
                if (!link_exists(g[k], p->name)) continue; // not stored: all zero
                snprintf(what, sizeof what, "optimiser moment %s of '%s'", k ? "v" : "m", p->name);
                float *dst = optim_state_moment(o, k, i);
                if (!dst) {
                    rc = xc_err(r->err, "%s: the snapshot has an %s, but '%s' is frozen in this run", r->path, what, p->name);
                    break;
                }
                hid_t d = r_open(r, g[k], p->name, what, H5T_FLOAT, 4, &di);
                rc = d >= 0 ? r_read(r, d, what, H5T_NATIVE_FLOAT, dst, &di) : XC_ERR;
                if (d >= 0) H5Dclose(d);
            }
        }
        for (int k = 0; k < 2; k++) if (g[k] >= 0) H5Gclose(g[k]);
        if (rc != XC_OK) return XC_ERR;
        *o->step = L->step;
        for (int i = 0; i < ps->n; i++) {
            o->lr_scale[i] = L->lr_scale[i];
            o->decay[i] = L->decay[i] != 0;
        }
    }
    hid_t d = r_open(r, dg, "order", "data order", H5T_INTEGER, 8, &di);
    if (d < 0) return XC_ERR;
    int64_t dummy;
    int rc = r_read(r, d, "data order", H5T_NATIVE_INT64, st->order ? (void *)st->order : (void *)&dummy, &di);
    H5Dclose(d);
    if (rc != XC_OK) return XC_ERR;
    st->global_iter = L->global_iter;
    st->epoch = L->epoch;
    st->iter_in_epoch = L->iter_in_epoch;
    st->best_acc = L->best_acc;
    st->best_epoch = L->best_epoch;
    st->best_iter = L->best_iter;
    st->cursor = (LoaderCursor){L->cursor_epoch, L->cursor_batch};
    for (int i = 0; i < st->n_rngs; i++) st->rngs[i].state = L->rng[i];
    st->fewshot_list = L->text[0];
    st->bad_videos = L->text[1];
    st->config = L->text[2];
    L->text[0] = L->text[1] = L->text[2] = NULL;
    return XC_OK;
}

static hid_t open_group(hid_t f, const char *name) { return link_exists(f, name) ? H5Gopen2(f, name, H5P_DEFAULT) : -1; }

int snapshot_load(const char *path, SnapshotState *st, XcError *err) {
    XC_CHECK(st && st->params, "snapshot_load: no ParamStore");
    XC_CHECK(!st->opt.ps || st->opt.ps == st->params, "snapshot_load: the AdamW belongs to another ParamStore");
    XC_CHECK(st->order_len >= 0 && (st->order || st->order_len == 0), "snapshot_load: order_len without an order buffer");
    Reader r;
    Loaded L;
    memset(&L, 0, sizeof L);
    H5Quiet q = h5_quiet_begin();
    int rc = r_begin(&r, path, err, NULL);
    hid_t mg = -1, og = -1, rg = -1, dg = -1, tg = -1;
    if (rc == XC_OK) {
        mg = open_group(r.f, "model");
        og = open_group(r.f, "optim");
        rg = open_group(r.f, "rng");
        dg = open_group(r.f, "data");
        tg = open_group(r.f, "text");
        if (mg < 0) rc = xc_err(err, "%s: no model group", path);
    }
    if (rc == XC_OK) rc = load_check(&r, st, &L, mg, og, rg, dg, tg);
    if (rc == XC_OK && load_commit(&r, st, &L, mg, og, dg) != XC_OK) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err ? err->msg : "");
        xc_err(err, "%s (the model/optimiser state is now partly overwritten)", msg);
        rc = XC_ERR;
    }
    hid_t gs[5] = {mg, og, rg, dg, tg};
    for (int i = 0; i < 5; i++) if (gs[i] >= 0) H5Gclose(gs[i]);
    r_end(&r);
    h5_quiet_end(q);
    loaded_free(&L);
    return rc;
}

void snapshot_state_free_text(SnapshotState *st) {
    xc_free(st->fewshot_list);
    xc_free(st->bad_videos);
    xc_free(st->config);
    st->fewshot_list = st->bad_videos = st->config = NULL;
}

// ---- directories -----------------------------------------------------------------------------------------
// "snap-<digits>.h5" -> iteration, else -1.
static int64_t parse_snap_name(const char *name) {
    if (strncmp(name, "snap-", 5) != 0) return -1;
    const char *p = name + 5;
    int64_t v = 0;
    int nd = 0;
    for (; *p >= '0' && *p <= '9'; p++, nd++) {
        if (nd >= 18) return -1;
        v = v * 10 + (*p - '0');
    }
    if (nd == 0 || strcmp(p, ".h5") != 0) return -1;
    return v;
}

static int cmp_desc(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

int snapshot_list(const char *dir, int64_t **iters, XcError *err) {
    *iters = NULL;
    DIR *dp = opendir(dir);
    if (!dp) return xc_err(err, "%s: cannot read the snapshot directory: %s", dir, strerror(errno));
    int64_t *v = NULL;
    int n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(dp))) {
        int64_t it = parse_snap_name(de->d_name);
        if (it < 0) continue;
        if (n == cap) { cap = cap ? 2 * cap : 16; v = xc_realloc(v, (size_t)cap * sizeof *v); }
        v[n++] = it;
    }
    closedir(dp);
    if (n) qsort(v, (size_t)n, sizeof *v, cmp_desc);
    *iters = v;
    return n;
}

int snapshot_find_latest(const char *dir, char *path, size_t cap, SnapshotInfo *info, FILE *log, XcError *err) {
    int64_t *it;
    int n = snapshot_list(dir, &it, err);
    if (n < 0) return XC_ERR;
    char summary[sizeof err->msg] = "";
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        char p[4200];
        snapshot_path(dir, it[i], p, sizeof p);
        XcError e = {{0}};
        if (snapshot_verify(p, info, &e) == XC_OK) {
            snprintf(path, cap, "%s", p);
            xc_free(it);
            return 1;
        }
        if (log) fprintf(log, "snapshot: skipping %s\n  %s\n", p, e.msg);
        if (used < sizeof summary) used += (size_t)snprintf(summary + used, sizeof summary - used, "\n  %s", e.msg);
    }
    xc_free(it);
    if (n == 0) { if (path && cap) path[0] = 0; return 0; }
    return xc_err(err, "%s: none of the %d snapshots is usable:%s", dir, n, summary);
}

int snapshot_resume_latest(const char *dir, SnapshotState *st, char *path, size_t cap, FILE *log, XcError *err) {
    int rc = snapshot_find_latest(dir, path, cap, NULL, log, err);
    if (rc != 1) return rc;
    if (snapshot_load(path, st, err) != XC_OK) return XC_ERR;
    if (log) fprintf(log, "snapshot: resumed from %s (iteration %lld, epoch %lld)\n", path, (long long)st->global_iter, (long long)st->epoch);
    return 1;
}

int snapshot_retain(const char *dir, int keep_last, int64_t keep_iter, FILE *log, XcError *err) {
    int64_t *it;
    int n = snapshot_list(dir, &it, err);
    if (n < 0) return XC_ERR;
    int deleted = 0, rc = XC_OK;
    for (int i = 0; i < n; i++) {
        if (i < keep_last || it[i] == keep_iter) continue;
        char p[4200];
        snapshot_path(dir, it[i], p, sizeof p);
        if (unlink(p) != 0 && errno != ENOENT) { rc = xc_err(err, "%s: cannot delete: %s", p, strerror(errno)); break; }
        if (log) fprintf(log, "snapshot: deleted %s (keeping the last %d%s)\n", p, keep_last, keep_iter >= 0 ? " and the best" : "");
        deleted++;
    }
    xc_free(it);
    if (rc == XC_OK && deleted) rc = fsync_dir(dir, err);
    return rc == XC_OK ? deleted : XC_ERR;
}

int snapshot_remove_stale_temps(const char *dir, FILE *log, XcError *err) {
    DIR *dp = opendir(dir);
    if (!dp) return xc_err(err, "%s: cannot read the snapshot directory: %s", dir, strerror(errno));
    size_t plen = strlen(SNAPSHOT_TMP_PREFIX);
    int removed = 0, rc = XC_OK;
    struct dirent *de;
    while ((de = readdir(dp))) {
        if (strncmp(de->d_name, SNAPSHOT_TMP_PREFIX, plen) != 0) continue;
        char *end;
        long pid = strtol(de->d_name + plen, &end, 10);
        bool dead = end == de->d_name + plen || *end != '-' || pid <= 0 || pid == (long)getpid() ||
                    (kill((pid_t)pid, 0) != 0 && errno == ESRCH);
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        if (!dead) {
            if (log) fprintf(log, "snapshot: leaving %s alone: its writer (pid %ld) is still running\n", p, pid);
            continue;
        }
        if (unlink(p) != 0 && errno != ENOENT) { rc = xc_err(err, "%s: cannot remove: %s", p, strerror(errno)); break; }
        if (log) fprintf(log, "snapshot: removed the stale temporary %s\n", p);
        removed++;
    }
    closedir(dp);
    return rc == XC_OK ? removed : XC_ERR;
}
