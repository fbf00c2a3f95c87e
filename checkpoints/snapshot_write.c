// snapshot_write.c - writing a snapshot: every field as an HDF5 dataset or attribute with its XXH64, into a
// temporary file that is then sealed (snapshot_header.c), fsynced and renamed over the final name.
#include "checkpoints/snapshot_internal.h"
#include "checkpoints/h5io.h"
#include "checkpoints/hash64.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

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
    snap_hook(&w->point, msg);
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
                 w_dataset(w, og, "lr_scale", "optim/lr_scale", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, &n, o->last_lr, (size_t)n * 4) ||
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
    for (int i = 0; i < ps->n; i++) // a diverged model is never kept: a resume would only fail at once
        if (!xc_all_finite(ps->p[i]->data, ps->p[i]->numel))
            return xc_err(err, "%s: not written: model tensor '%s' holds NaN or infinite values (the training diverged)", path, ps->p[i]->name);
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
    snap_hook(&w.point, "temporary file created");
    bool ok = write_contents(&w, f, st) == XC_OK;
    snap_hook(&w.point, "before H5Fclose");
    errno = 0;
    // a failed H5Fclose leaves f dead: never used again (and libhdf5 does not shut down at exit: h5io.c)
    if (H5Fclose(f) < 0 && ok) { ok = false; w_fail(&w, "the HDF5 file (closing failed; disk full?)"); }
    h5_quiet_end(q);
    if (ok) snap_hook(&w.point, "after H5Fclose");
    if (ok && snap_seal_file(tmp, st->global_iter, st->epoch, &w.point, err) != XC_OK) ok = false;
    if (ok && rename(tmp, path) != 0) { ok = false; xc_err(err, "%s: rename from %s failed: %s", path, tmp, strerror(errno)); }
    if (!ok) { unlink(tmp); return XC_ERR; }
    snap_hook(&w.point, "renamed");
    if (snap_fsync_dir(dir, err) != XC_OK) return XC_ERR; // the file is complete; only its durability is in doubt
    snap_hook(&w.point, "directory fsynced");
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
