// snapshot_read.c - reading a snapshot safely: the checked HDF5 primitives (every dataset's type, shape,
// storage and checksum validated before its bytes are used), snapshot_verify (every dataset read and
// checked) and snapshot_load_weights (the model tensors only). The full restore is snapshot_load.c.
#include "checkpoints/snapshot_internal.h"
#include "checkpoints/h5io.h"
#include "checkpoints/hash64.h"

#include <string.h>

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
int snap_r_i64(Reader *r, hid_t obj, const char *where, const char *name, int64_t *v) { return r_attr(r, obj, where, name, H5T_INTEGER, H5T_NATIVE_INT64, v); }
int snap_r_f64(Reader *r, hid_t obj, const char *where, const char *name, double *v) { return r_attr(r, obj, where, name, H5T_FLOAT, H5T_NATIVE_DOUBLE, v); }

bool snap_link_exists(hid_t loc, const char *name) { return H5Lexists(loc, name, H5P_DEFAULT) > 0; }

// Open dataset `name` of loc and validate it: class/size, dims (ndim < 0: any), contiguous uncompressed
// storage of exactly numel*elem bytes inside the file, a checksum attribute. Returns the dataset or -1.
hid_t snap_r_open(Reader *r, hid_t loc, const char *name, const char *what, H5T_class_t cls, size_t elem, DsInfo *di) {
    if (!snap_link_exists(loc, name)) { xc_err(r->err, "%s: %s missing from the snapshot", r->path, what); return -1; }
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
int snap_r_read(Reader *r, hid_t d, const char *what, hid_t mtype, void *dst, const DsInfo *di) {
    if (di->nbytes && H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, dst) < 0)
        return xc_err(r->err, "%s: %s: read failed", r->path, what);
    if (hash64(dst, (size_t)di->nbytes, 0) != di->sum) return xc_err(r->err, "%s: %s: checksum mismatch (damaged data)", r->path, what);
    return XC_OK;
}

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
void snap_names_free(Names *nm) {
    for (int64_t i = 0; i < nm->n; i++) xc_free(nm->s[i]);
    xc_free(nm->s);
    memset(nm, 0, sizeof *nm);
}
// The link names of group g in creation order (name order when the order is not indexed).
int snap_list_links(Reader *r, hid_t g, const char *what, Names *nm) {
    if (H5Literate(g, H5_INDEX_CRT_ORDER, H5_ITER_INC, NULL, collect_cb, nm) < 0) {
        snap_names_free(nm);
        if (H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, collect_cb, nm) < 0) {
            snap_names_free(nm);
            return xc_err(r->err, "%s: cannot list %s", r->path, what);
        }
    }
    return XC_OK;
}

// Verified header, then the HDF5 file opened read-only (closing it closes everything opened in it).
int snap_r_begin(Reader *r, const char *path, XcError *err, SnapshotInfo *info) {
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
    if (snap_r_i64(r, r->f, "root", "format_version", &version) != XC_OK) return XC_ERR;
    if (version != SNAPSHOT_FORMAT_VERSION) return xc_err(err, "%s: format_version %lld, this build reads %d", path, (long long)version, SNAPSHOT_FORMAT_VERSION);
    return XC_OK;
}
void snap_r_end(Reader *r) { if (r->f >= 0) H5Fclose(r->f); r->f = -1; }

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
    hid_t d = snap_r_open(v->r, g, name, name, cls, elem, &di);
    if (d < 0) { v->failed = 1; return -1; }
    void *buf = xc_malloc(di.nbytes ? (size_t)di.nbytes : 1);
    int rc = snap_r_read(v->r, d, name, mtype, buf, &di);
    if (rc == XC_OK && mtype == H5T_NATIVE_FLOAT && !strncmp(name, "model/", 6) && !xc_all_finite(buf, (int64_t)di.numel))
        rc = xc_err(v->r->err, "%s: %s holds NaN or infinite values (the training diverged)", v->r->path, name);
    xc_free(buf);
    H5Dclose(d);
    if (rc != XC_OK) { v->failed = 1; return -1; }
    v->n++;
    return 0;
}

int snapshot_verify(const char *path, SnapshotInfo *info, XcError *err) {
    Reader r;
    H5Quiet q = h5_quiet_begin();
    int rc = snap_r_begin(&r, path, err, info);
    if (rc == XC_OK) {
        VerifyCtx v = {&r, 0, 0};
        if (H5Lvisit(r.f, H5_INDEX_NAME, H5_ITER_INC, verify_cb, &v) < 0 || v.failed) {
            if (!v.failed) xc_err(err, "%s: cannot walk the HDF5 file", path);
            rc = XC_ERR;
        }
        hid_t g = rc == XC_OK && snap_link_exists(r.f, "model") ? H5Gopen2(r.f, "model", H5P_DEFAULT) : -1;
        if (rc == XC_OK && g < 0) rc = xc_err(err, "%s: no model group", path);
        if (g >= 0) H5Gclose(g);
    }
    snap_r_end(&r);
    h5_quiet_end(q);
    return rc;
}

// ---- weights only --------------------------------------------------------------------------------------
int snapshot_load_weights(const char *path, WeightSet *ws, XcError *err) {
    XC_CHECK(ws->n == 0, "snapshot_load_weights: the WeightSet must be empty");
    Reader r;
    H5Quiet q = h5_quiet_begin();
    int rc = snap_r_begin(&r, path, err, NULL);
    hid_t g = -1;
    Names nm = {0};
    if (rc == XC_OK) {
        g = snap_link_exists(r.f, "model") ? H5Gopen2(r.f, "model", H5P_DEFAULT) : -1;
        if (g < 0) rc = xc_err(err, "%s: no model group", path);
    }
    if (rc == XC_OK) rc = snap_list_links(&r, g, "model", &nm);
    char what[CKPT_MAX_NAME_BYTES + 16];
    for (int64_t i = 0; i < nm.n && rc == XC_OK; i++) {
        snprintf(what, sizeof what, "model/%s", nm.s[i]);
        DsInfo di;
        hid_t d = snap_r_open(&r, g, nm.s[i], what, H5T_FLOAT, 4, &di);
        if (d < 0) { rc = XC_ERR; break; }
        float *data = xc_malloc(di.nbytes ? (size_t)di.nbytes : 1);
        rc = snap_r_read(&r, d, what, H5T_NATIVE_FLOAT, data, &di);
        if (rc == XC_OK && !xc_all_finite(data, (int64_t)di.numel)) rc = xc_err(err, "%s: %s holds NaN or infinite values (the training diverged)", path, what);
        H5Dclose(d);
        if (rc != XC_OK) { xc_free(data); break; }
        weights_add_owned(ws, nm.s[i], di.ndim, di.shape, data);
    }
    if (rc == XC_OK && ws->n == 0) rc = xc_err(err, "%s: the snapshot holds no model tensors", path);
    snap_names_free(&nm);
    if (g >= 0) H5Gclose(g);
    snap_r_end(&r);
    h5_quiet_end(q);
    if (rc != XC_OK) weights_free(ws);
    return rc;
}
