// h5io.c - see h5io.h.
#include "checkpoints/h5io.h"
#include "checkpoints/ckpt_internal.h"

#include <hdf5.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

// No library shutdown at exit. When H5Fclose fails (a write past a full disk or `ulimit -f`), libhdf5 1.10
// keeps the half-closed file in its table and its exit handler (H5_term_library -> H5F__close_cb) then
// crashes on it, turning a clean error exit into SIGSEGV. The failed file id is never touched again by our
// code; this keeps libhdf5 from touching it either. Must run before the library initialises (hence at load).
// Nothing is lost: every file is closed by the code that opened it, and the OS reclaims the rest.
__attribute__((constructor)) static void h5_no_shutdown_at_exit(void) { H5dont_atexit(); }

H5Quiet h5_quiet_begin(void) {
    H5E_auto2_t fn;
    void *data;
    H5Eget_auto2(H5E_DEFAULT, &fn, &data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    return (H5Quiet){(void *)fn, data};
}

void h5_quiet_end(H5Quiet q) { H5Eset_auto2(H5E_DEFAULT, (H5E_auto2_t)q.fn, q.data); }

// ---- h5_guard_dataset ----------------------------------------------------------------------------------------
typedef struct Chunking {
    int nd;
    hsize_t dims[H5S_MAX_RANK], chunk[H5S_MAX_RANK];
    uint64_t chunk_bytes;
    int deflate_at;        // filter index of deflate in the pipeline
    int checksums_after;   // fletcher32 filters after it (4 bytes each at the end of a stored chunk)
    unsigned checksum_bits; // their filter-mask bits
    bool partial_raw;      // H5D_CHUNK_DONT_FILTER_PARTIAL_CHUNKS: edge chunks are stored unfiltered
} Chunking;

// Inflate one stored chunk (n bytes) into a small window, counting the bytes into *got: 0 at the stream's end,
// 1 as soon as it passes `want`, -1 if it is corrupt or cut short.
static int inflate_count(const uint8_t *in, size_t n, uint64_t want, uint64_t *got) {
    uint8_t window[1 << 16];
    z_stream s;
    memset(&s, 0, sizeof s);
    if (inflateInit(&s) != Z_OK) return -1;
    s.next_in = (Bytef *)in;
    s.avail_in = (uInt)n; // a chunk is at most 4 GiB - 1 (HDF5's limit)
    int rc = Z_OK;
    while (rc == Z_OK && s.total_out <= want) {
        s.next_out = window;
        s.avail_out = sizeof window;
        rc = inflate(&s, Z_NO_FLUSH);
        if (rc == Z_BUF_ERROR) break; // no progress possible: the stream is cut short
    }
    *got = s.total_out;
    inflateEnd(&s);
    return rc == Z_STREAM_END ? 0 : rc == Z_OK ? 1 /* past want */ : -1;
}

static void chunk_where(const Chunking *c, const hsize_t *off, char *buf, size_t cap) {
    int len = snprintf(buf, cap, "(");
    for (int k = 0; k < c->nd && len < (int)cap - 24; k++)
        len += snprintf(buf + len, cap - (size_t)len, "%s%llu", k ? ", " : "", (unsigned long long)off[k]);
    snprintf(buf + len, cap - (size_t)len, ")");
}

// Every allocated chunk of the grid: its stored stream must inflate to exactly one chunk.
static int check_chunk_streams(hid_t d, const Chunking *c, const char *path, const char *name, uint64_t file_size,
                               XcError *err) {
    hsize_t off[H5S_MAX_RANK] = {0};
    uint8_t *raw = NULL;
    size_t raw_cap = 0;
    int rc = XC_OK;
    char at[200];
    for (bool more = true; more && rc == XC_OK;) {
        unsigned mask = 0;
        haddr_t addr = HADDR_UNDEF;
        hsize_t size = 0;
        bool edge = false;
        for (int k = 0; k < c->nd; k++) edge |= off[k] + c->chunk[k] > c->dims[k];
        chunk_where(c, off, at, sizeof at);
        if (H5Dget_chunk_info_by_coord(d, off, &mask, &addr, &size) < 0) {
            rc = xc_err(err, "%s: dataset %s: cannot look up its chunk at %s (corrupt chunk index?)", path, name, at);
            break;
        }
        if (addr != HADDR_UNDEF && !(mask & (1u << c->deflate_at)) && !(edge && c->partial_raw)) {
            uint64_t strip = 4 * (uint64_t)(c->checksums_after - __builtin_popcount(mask & c->checksum_bits)), got = 0;
            if (size > file_size || size < strip || size > 0xFFFFFFFFu) {
                rc = xc_err(err, "%s: dataset %s: its chunk at %s takes %llu bytes by its index, impossible in a file of %llu bytes",
                            path, name, at, (unsigned long long)size, (unsigned long long)file_size);
                break;
            }
            if (size > raw_cap) {
                raw_cap = (size_t)size;
                xc_free(raw);
                raw = xc_malloc(raw_cap);
            }
            uint32_t filters = 0;
            if (H5Dread_chunk(d, H5P_DEFAULT, off, &filters, raw) < 0) {
                rc = xc_err(err, "%s: dataset %s: cannot read its chunk at %s (corrupt?)", path, name, at);
                break;
            }
            int r = inflate_count(raw, (size_t)(size - strip), c->chunk_bytes, &got);
            if (r > 0)
                rc = xc_err(err, "%s: dataset %s: its deflated chunk at %s (%llu bytes stored) inflates to more than the %llu "
                            "bytes of a chunk: refused before libhdf5 inflates it", path, name, at, (unsigned long long)size,
                            (unsigned long long)c->chunk_bytes);
            else if (r < 0 || got != c->chunk_bytes)
                rc = xc_err(err, "%s: dataset %s: its deflated chunk at %s (%llu bytes stored) %s %llu bytes, not the %llu of a "
                            "chunk", path, name, at, (unsigned long long)size, r < 0 ? "is corrupt or cut short after" : "inflates to",
                            (unsigned long long)got, (unsigned long long)c->chunk_bytes);
        }
        more = false;
        for (int k = c->nd - 1; k >= 0; k--) { // next chunk of the grid, last dimension fastest
            off[k] += c->chunk[k];
            if (off[k] < c->dims[k]) { more = true; break; }
            off[k] = 0;
        }
    }
    xc_free(raw);
    return rc;
}

int h5_guard_dataset(int64_t dset, const char *path, const char *name, H5Budget *b, XcError *err) {
    hid_t d = (hid_t)dset, dcpl = H5Dget_create_plist(d), type = H5Dget_type(d), space = H5Dget_space(d);
    int rc = XC_ERR;
    Chunking c;
    memset(&c, 0, sizeof c);
    c.deflate_at = -1;
    if (dcpl < 0 || type < 0 || space < 0) { xc_err(err, "%s: dataset %s: cannot read its type, shape or layout", path, name); goto out; }
    size_t elem = H5Tget_size(type);
    c.nd = H5Sget_simple_extent_ndims(space);
    if (elem == 0 || elem > 16 || c.nd < 0 || c.nd > H5S_MAX_RANK || H5Sget_simple_extent_dims(space, c.dims, NULL) < 0) {
        xc_err(err, "%s: dataset %s: elements of %zu bytes in %d dimensions cannot be read", path, name, elem, c.nd);
        goto out;
    }
    H5D_layout_t layout = H5Pget_layout(dcpl);
    if (layout == H5D_VIRTUAL) {
        xc_err(err, "%s: dataset %s is a virtual dataset (its data lives in other datasets or files), which is not read", path, name);
        goto out;
    }
    if (H5Pget_external_count(dcpl) != 0) {
        char ext[256] = "?";
        off_t eoff;
        hsize_t esize;
        H5Pget_external(dcpl, 0, sizeof ext, ext, &eoff, &esize);
        ext[sizeof ext - 1] = 0;
        xc_err(err, "%s: dataset %s keeps its data in the external file \"%s\", which is not read", path, name, ext);
        goto out;
    }
    int nf = H5Pget_nfilters(dcpl);
    if (nf < 0 || nf > 32) { xc_err(err, "%s: dataset %s: a pipeline of %d filters cannot be read", path, name, nf); goto out; }
    for (int k = 0; k < nf; k++) {
        unsigned flags = 0, config = 0;
        size_t ncd = 0;
        char fname[64] = "";
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)k, &flags, &ncd, NULL, sizeof fname, fname, &config);
        fname[sizeof fname - 1] = 0;
        if (id != H5Z_FILTER_DEFLATE && id != H5Z_FILTER_SHUFFLE && id != H5Z_FILTER_FLETCHER32) {
            xc_err(err, "%s: dataset %s uses HDF5 filter %d (%s); only deflate (gzip), shuffle and fletcher32 are read", path,
                   name, (int)id, fname[0] ? fname : "unknown");
            goto out;
        }
        if ((id == H5Z_FILTER_DEFLATE || id == H5Z_FILTER_SHUFFLE) && c.deflate_at >= 0) {
            xc_err(err, "%s: dataset %s is %s after it is deflated, which is not read", path, name,
                   id == H5Z_FILTER_DEFLATE ? "deflated again" : "shuffled");
            goto out;
        }
        if (id == H5Z_FILTER_DEFLATE) c.deflate_at = k;
        if (id == H5Z_FILTER_FLETCHER32 && c.deflate_at >= 0) { c.checksums_after++; c.checksum_bits |= 1u << k; }
    }
    // what reading decodes: the elements, or every chunk the dataset touches, edge chunks whole
    uint64_t numel = 1, decoded;
    bool ok = true;
    for (int k = 0; k < c.nd; k++) ok &= xc_mul_u64(numel, c.dims[k], &numel);
    ok &= xc_mul_u64(numel, elem, &decoded);
    if (ok && layout == H5D_CHUNKED && numel > 0) {
        unsigned opts = 0;
        H5Pget_chunk_opts(dcpl, &opts);
        c.partial_raw = opts & H5D_CHUNK_DONT_FILTER_PARTIAL_CHUNKS;
        ok = H5Pget_chunk(dcpl, c.nd, c.chunk) == c.nd;
        c.chunk_bytes = elem;
        decoded = elem;
        for (int k = 0; ok && k < c.nd; k++) {
            ok = c.chunk[k] > 0 && xc_mul_u64(c.chunk_bytes, c.chunk[k], &c.chunk_bytes) &&
                 xc_mul_u64(decoded, (c.dims[k] + c.chunk[k] - 1) / c.chunk[k] * c.chunk[k], &decoded);
        }
    }
    uint64_t stored = H5Dget_storage_size(d), allowed;
    if (!ok || !xc_add_u64(b->decoded, decoded, &b->decoded)) b->decoded = UINT64_MAX;
    if (!xc_add_u64(b->stored, stored, &b->stored)) b->stored = UINT64_MAX;
    if (b->stored > b->file_size) {
        xc_err(err, "%s: dataset %s: its data takes %llu bytes by the file's index (%llu with the datasets before it), more "
               "than the file's %llu bytes (corrupt?)", path, name, (unsigned long long)stored, (unsigned long long)b->stored,
               (unsigned long long)b->file_size);
        goto out;
    }
    if (!xc_mul_u64(b->stored, CKPT_INFLATE_RATIO, &allowed) || !xc_add_u64(allowed, CKPT_INFLATE_SLACK, &allowed)) allowed = UINT64_MAX;
    if (b->decoded > allowed) {
        xc_err(err, "%s: dataset %s would decode to %llu bytes from the %llu it stores (with the datasets before it %llu bytes "
               "from %llu), more than the %llu allowed (%d x the stored size + %llu MiB): a compression bomb?", path, name,
               ok ? (unsigned long long)decoded : (unsigned long long)UINT64_MAX, (unsigned long long)stored,
               (unsigned long long)b->decoded, (unsigned long long)b->stored, (unsigned long long)allowed, CKPT_INFLATE_RATIO,
               (unsigned long long)(CKPT_INFLATE_SLACK >> 20));
        goto out;
    }
    if (c.deflate_at >= 0 && numel > 0 && check_chunk_streams(d, &c, path, name, b->file_size, err) != XC_OK) goto out;
    rc = XC_OK;
out:
    if (dcpl >= 0) H5Pclose(dcpl);
    if (type >= 0) H5Tclose(type);
    if (space >= 0) H5Sclose(space);
    return rc;
}

int h5_open(H5File *f, const char *path, bool create, XcError *err) {
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", path);
    struct stat st; // libhdf5 would open a FIFO and wait on it: check what the path is first
    if (!create && stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return xc_err(err, "%s: is %s, not a regular file", path, xc_file_kind(st.st_mode));
    H5Quiet q = h5_quiet_begin();
    hid_t id = create ? H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT) : H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    h5_quiet_end(q);
    if (id < 0) {
        FILE *probe = create ? NULL : fopen(path, "rb");
        if (probe) fclose(probe);
        return xc_err(err, "%s: cannot %s HDF5 file%s", path, create ? "create" : "open as an",
                      !create && !probe ? " (missing or unreadable)" : "");
    }
    f->id = id;
    return XC_OK;
}

void h5_close(H5File *f) {
    if (f->id > 0) H5Fclose((hid_t)f->id);
    f->id = 0;
}

bool h5_exists(const H5File *f, const char *name) {
    H5Quiet q = h5_quiet_begin();
    bool yes = H5Lexists((hid_t)f->id, name, H5P_DEFAULT) > 0;
    h5_quiet_end(q);
    return yes;
}

void h5_array_free(H5Array *a) {
    xc_free(a->data);
    memset(a, 0, sizeof *a);
}

int h5_read(const H5File *f, const char *name, H5Type type, H5Array *a, bool optional, XcError *err) {
    memset(a, 0, sizeof *a);
    a->type = type;
    if (!h5_exists(f, name)) return optional ? XC_OK : xc_err(err, "%s: no dataset '%s'", f->path, name);
    hid_t d = H5Dopen2((hid_t)f->id, name, H5P_DEFAULT);
    if (d < 0) return xc_err(err, "%s: '%s' is not a dataset", f->path, name);
    hid_t space = H5Dget_space(d), ftype = H5Dget_type(d);
    int rc = XC_ERR;
    H5T_class_t cls = H5Tget_class(ftype);
    if (cls != H5T_FLOAT && cls != H5T_INTEGER) {
        xc_err(err, "%s: dataset '%s' is not numeric", f->path, name);
        goto out;
    }
    int nd = H5Sget_simple_extent_ndims(space);
    if (nd < 0 || nd > H5IO_MAX_DIMS) {
        xc_err(err, "%s: dataset '%s' has %d dims (at most %d)", f->path, name, nd, H5IO_MAX_DIMS);
        goto out;
    }
    hsize_t dims[H5IO_MAX_DIMS] = {0};
    H5Sget_simple_extent_dims(space, dims, NULL);
    uint64_t n = 1;
    for (int i = 0; i < nd; i++) {
        if (!xc_mul_u64(n, dims[i], &n) || n > (1ull << 34)) {
            xc_err(err, "%s: dataset '%s' is too large", f->path, name);
            goto out;
        }
        a->shape[i] = (int64_t)dims[i];
    }
    a->ndim = nd;
    a->numel = (int64_t)n;
    H5Budget budget = {0};
    hsize_t fsize = 0;
    H5Fget_filesize((hid_t)f->id, &fsize);
    budget.file_size = fsize;
    if (h5_guard_dataset(d, f->path, name, &budget, err) != XC_OK) goto out;
    size_t elem = type == H5_I64 ? 8 : 4;
    a->data = xc_malloc((size_t)n * elem);
    hid_t mem = type == H5_F32 ? H5T_NATIVE_FLOAT : type == H5_I32 ? H5T_NATIVE_INT32 : H5T_NATIVE_INT64;
    if (n && H5Dread(d, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, a->data) < 0) {
        xc_err(err, "%s: reading dataset '%s' failed", f->path, name);
        h5_array_free(a);
        goto out;
    }
    rc = XC_OK;
out:
    H5Tclose(ftype);
    H5Sclose(space);
    H5Dclose(d);
    return rc;
}

int h5_write_f32(const H5File *f, const char *name, int ndim, const int64_t *shape, const float *data, XcError *err) {
    hsize_t dims[H5IO_MAX_DIMS];
    for (int i = 0; i < ndim; i++) dims[i] = (hsize_t)shape[i];
    hid_t space = ndim ? H5Screate_simple(ndim, dims, NULL) : H5Screate(H5S_SCALAR);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t d = H5Dcreate2((hid_t)f->id, name, H5T_IEEE_F32LE, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    int rc = XC_OK;
    if (d < 0 || H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        rc = xc_err(err, "%s: writing dataset '%s' failed (disk full?)", f->path, name);
    if (d >= 0) H5Dclose(d);
    H5Pclose(lcpl);
    H5Sclose(space);
    return rc;
}
