// zip.c - see zip.h. Record layouts (all little-endian), from the PKWARE APPNOTE:
//   end of central directory  "PK\5\6" disk(2) cd_disk(2) n_here(2) n_total(2) cd_size(4) cd_off(4) comment_len(2)
//   zip64 locator             "PK\6\7" disk(4) eocd64_off(8) n_disks(4)                 (20 bytes, just before the EOCD)
//   zip64 end of central dir  "PK\6\6" rec_size(8) made(2) need(2) disk(4) cd_disk(4) n_here(8) n_total(8)
//                             cd_size(8) cd_off(8)
//   central directory entry   "PK\1\2" made(2) need(2) flags(2) method(2) time(2) date(2) crc(4) comp(4)
//                             size(4) name_len(2) extra_len(2) comment_len(2) disk(2) iattr(2) eattr(4)
//                             local_off(4) name extra comment                         (46 bytes + variable)
//   local file header         "PK\3\4" need(2) flags(2) method(2) time(2) date(2) crc(4) comp(4) size(4)
//                             name_len(2) extra_len(2) name extra, then the data      (30 bytes + variable)
// A zip64 extra field (id 1) in a central entry holds, in this order, the 64-bit size, compressed size
// and local offset for each 32-bit field that is 0xFFFFFFFF.
#include "checkpoints/zip.h"
#include "checkpoints/ckpt_internal.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static bool range_ok(uint64_t off, uint64_t n, size_t len) { uint64_t end; return xc_add_u64(off, n, &end) && end <= len; }

static int cmp_entry_names(const void *a, const void *b) {
    return strcmp(((const ZipEntry *)a)->name, ((const ZipEntry *)b)->name);
}

static int check_name(const char *name, size_t n, const char *path, XcError *err) {
    if (n == 0) return xc_err(err, "%s: zip entry with an empty name", path);
    if (memchr(name, 0, n)) return xc_err(err, "%s: zip entry name contains a NUL byte", path);
    if (name[0] == '/' || memchr(name, '\\', n)) return xc_err(err, "%s: zip entry name \"%.*s\" is absolute or has a backslash", path, (int)(n > 200 ? 200 : n), name);
    for (size_t i = 0; i + 1 < n; i++)
        if (name[i] == '.' && name[i + 1] == '.' && (i == 0 || name[i - 1] == '/') && (i + 2 == n || name[i + 2] == '/'))
            return xc_err(err, "%s: zip entry name \"%.*s\" contains \"..\"", path, (int)(n > 200 ? 200 : n), name);
    return XC_OK;
}

// Locate the (zip64) end of central directory; fills the directory's offset, size and entry count.
static int find_directory(const uint8_t *b, size_t len, const char *path, uint64_t *cd_off, uint64_t *cd_size,
                          uint64_t *count, XcError *err) {
    if (len < 22) return xc_err(err, "%s: truncated zip archive (%zu bytes, no end of central directory)", path, len);
    size_t lo = len > 22 + 65535 ? len - 22 - 65535 : 0, eocd = SIZE_MAX;
    for (size_t p = len - 22 + 1; p-- > lo;)
        if (memcmp(b + p, "PK\x05\x06", 4) == 0 && p + 22 + ckpt_le16(b + p + 20) <= len) { eocd = p; break; }
    if (eocd == SIZE_MAX)
        return xc_err(err, "%s: zip end of central directory not found (truncated or not a zip file)", path);
    *count = ckpt_le16(b + eocd + 10);
    *cd_size = ckpt_le32(b + eocd + 12);
    *cd_off = ckpt_le32(b + eocd + 16);
    if (ckpt_le16(b + eocd + 4) != 0 || ckpt_le16(b + eocd + 6) != 0 || ckpt_le16(b + eocd + 8) != *count)
        if (*count != 0xFFFF) return xc_err(err, "%s: multi-disk zip archives are not supported", path);
    if (eocd >= 20 && memcmp(b + eocd - 20, "PK\x06\x07", 4) == 0) { // zip64
        uint64_t off = ckpt_le64(b + eocd - 20 + 8);
        if (!range_ok(off, 56, eocd - 20) || memcmp(b + off, "PK\x06\x06", 4) != 0)
            return xc_err(err, "%s: bad zip64 end of central directory record", path);
        *count = ckpt_le64(b + off + 32);
        *cd_size = ckpt_le64(b + off + 40);
        *cd_off = ckpt_le64(b + off + 48);
        if (!range_ok(*cd_off, *cd_size, off)) return xc_err(err, "%s: bad zip central directory: runs past its end record", path);
    } else if (!range_ok(*cd_off, *cd_size, eocd)) {
        return xc_err(err, "%s: bad zip central directory: offset %llu + size %llu past its end record at %zu", path,
                      (unsigned long long)*cd_off, (unsigned long long)*cd_size, eocd);
    }
    if (*count > ZIP_MAX_ENTRIES || *count > *cd_size / 46)
        return xc_err(err, "%s: bad zip central directory: %llu entries cannot fit in %llu bytes", path,
                      (unsigned long long)*count, (unsigned long long)*cd_size);
    return XC_OK;
}

static int read_entry(ZipEntry *e, const uint8_t *b, size_t len, uint64_t *pos, uint64_t cd_end,
                      const char *path, XcError *err) {
    uint64_t p = *pos;
    if (!range_ok(p, 46, cd_end) || memcmp(b + p, "PK\x01\x02", 4) != 0)
        return xc_err(err, "%s: bad zip central directory: entry signature missing at offset %llu", path, (unsigned long long)p);
    e->flags = ckpt_le16(b + p + 8);
    e->method = ckpt_le16(b + p + 10);
    e->crc = ckpt_le32(b + p + 16);
    e->comp_size = ckpt_le32(b + p + 20);
    e->size = ckpt_le32(b + p + 24);
    uint32_t nlen = ckpt_le16(b + p + 28), xlen = ckpt_le16(b + p + 30), clen = ckpt_le16(b + p + 32);
    uint64_t local = ckpt_le32(b + p + 42);
    if (!range_ok(p + 46, (uint64_t)nlen + xlen + clen, cd_end))
        return xc_err(err, "%s: bad zip central directory: entry runs past the directory", path);
    const char *name = (const char *)b + p + 46;
    if (check_name(name, nlen, path, err) != XC_OK) return XC_ERR;
    e->name = xc_malloc(nlen + 1);
    memcpy(e->name, name, nlen);
    e->name[nlen] = 0;
    // zip64 extra field
    const uint8_t *x = b + p + 46 + nlen, *xend = x + xlen;
    while (xend - x >= 4) {
        uint16_t id = ckpt_le16(x), sz = ckpt_le16(x + 2);
        if (xend - x - 4 < sz) return xc_err(err, "%s: zip entry %s: bad extra field", path, e->name);
        if (id == 1) {
            const uint8_t *q = x + 4, *qend = q + sz;
            uint64_t *fields[3] = {&e->size, &e->comp_size, &local};
            for (int k = 0; k < 3; k++) {
                if (*fields[k] != 0xFFFFFFFFu) continue;
                if (qend - q < 8) return xc_err(err, "%s: zip entry %s: truncated zip64 extra field", path, e->name);
                *fields[k] = ckpt_le64(q);
                q += 8;
            }
        }
        x += 4 + sz;
    }
    // Local header: its own name and extra lengths decide where the data starts.
    if (!range_ok(local, 30, len) || memcmp(b + local, "PK\x03\x04", 4) != 0)
        return xc_err(err, "%s: zip entry %s: local header missing at offset %llu", path, e->name, (unsigned long long)local);
    uint32_t lnlen = ckpt_le16(b + local + 26), lxlen = ckpt_le16(b + local + 28);
    if (lnlen != nlen || !range_ok(local + 30, lnlen, len) || memcmp(b + local + 30, name, nlen) != 0)
        return xc_err(err, "%s: zip entry %s: local header name differs from the central directory", path, e->name);
    e->local_off = local;
    e->data_off = local + 30 + lnlen + lxlen;
    if (!range_ok(e->data_off, e->comp_size, len))
        return xc_err(err, "%s: zip entry %s: data (%llu bytes at offset %llu) runs past the end of the file (truncated?)",
                      path, e->name, (unsigned long long)e->comp_size, (unsigned long long)e->data_off);
    *pos = p + 46 + nlen + xlen + clen;
    return XC_OK;
}

static int cmp_entry_offsets(const void *a, const void *b) {
    const ZipEntry *x = *(const ZipEntry *const *)a, *y = *(const ZipEntry *const *)b;
    return x->local_off < y->local_off ? -1 : x->local_off > y->local_off;
}

// Every entry (local header to the end of its data) in bytes of its own, before the central directory.
static int check_overlaps(const ZipArchive *z, uint64_t cd_off, XcError *err) {
    const ZipEntry **by_off = xc_malloc(((size_t)z->n + 1) * sizeof *by_off);
    for (int64_t i = 0; i < z->n; i++) by_off[i] = &z->e[i];
    qsort(by_off, (size_t)z->n, sizeof *by_off, cmp_entry_offsets);
    int rc = XC_OK;
    for (int64_t i = 0; i < z->n && rc == XC_OK; i++) {
        const ZipEntry *e = by_off[i];
        uint64_t end = e->data_off + e->comp_size; // range_ok checked the sum
        uint64_t next = i + 1 < z->n ? by_off[i + 1]->local_off : cd_off;
        if (end > next)
            rc = xc_err(err, "%s: zip entry %s (bytes %llu-%llu) overlaps %s%s at byte %llu: every entry must have bytes of "
                        "its own", z->path, e->name, (unsigned long long)e->local_off, (unsigned long long)end,
                        i + 1 < z->n ? "entry " : "the central directory", i + 1 < z->n ? by_off[i + 1]->name : "",
                        (unsigned long long)next);
    }
    xc_free(by_off);
    return rc;
}

// What the deflated entries declare against what they store (see zip.h).
static int check_inflate_budget(const ZipArchive *z, XcError *err) {
    uint64_t declared = 0, compressed = 0, allowed;
    const ZipEntry *largest = NULL;
    for (int64_t i = 0; i < z->n; i++) {
        const ZipEntry *e = &z->e[i];
        if (e->method != 8) continue;
        if (!xc_add_u64(declared, e->size, &declared)) declared = UINT64_MAX;
        compressed += e->comp_size; // <= the file's length
        if (!largest || e->size > largest->size) largest = e;
    }
    if (!xc_mul_u64(compressed, CKPT_INFLATE_RATIO, &allowed) || !xc_add_u64(allowed, CKPT_INFLATE_SLACK, &allowed)) allowed = UINT64_MAX;
    if (declared <= allowed) return XC_OK;
    return xc_err(err, "%s: the deflated zip entries would inflate to %llu bytes from %llu compressed (the largest, %s, to %llu), "
                  "more than the %llu allowed (%d x the compressed size + %llu MiB): a zip bomb?", z->path,
                  (unsigned long long)declared, (unsigned long long)compressed, largest->name, (unsigned long long)largest->size,
                  (unsigned long long)allowed, CKPT_INFLATE_RATIO, (unsigned long long)(CKPT_INFLATE_SLACK >> 20));
}

int zip_open(ZipArchive *z, const uint8_t *buf, size_t len, const char *path, XcError *err) {
    memset(z, 0, sizeof *z);
    z->buf = buf; z->len = len; z->path = path;
    uint64_t cd_off = 0, cd_size = 0, count = 0;
    if (find_directory(buf, len, path, &cd_off, &cd_size, &count, err) != XC_OK) return XC_ERR;
    z->e = xc_calloc((size_t)count + 1, sizeof *z->e);
    uint64_t pos = cd_off;
    for (uint64_t i = 0; i < count; i++) {
        if (read_entry(&z->e[i], buf, len, &pos, cd_off + cd_size, path, err) != XC_OK) {
            z->n = (int64_t)i + 1; // free what was named
            zip_close(z);
            return XC_ERR;
        }
    }
    z->n = (int64_t)count;
    qsort(z->e, (size_t)z->n, sizeof *z->e, cmp_entry_names);
    for (int64_t i = 1; i < z->n; i++)
        if (strcmp(z->e[i - 1].name, z->e[i].name) == 0) {
            xc_err(err, "%s: zip entry %s appears twice", path, z->e[i].name);
            zip_close(z);
            return XC_ERR;
        }
    if (check_overlaps(z, cd_off, err) != XC_OK || check_inflate_budget(z, err) != XC_OK) {
        zip_close(z);
        return XC_ERR;
    }
    return XC_OK;
}

void zip_close(ZipArchive *z) {
    for (int64_t i = 0; i < z->n; i++) xc_free(z->e[i].name);
    xc_free(z->e);
    memset(z, 0, sizeof *z);
}

const ZipEntry *zip_find(const ZipArchive *z, const char *name) {
    int64_t lo = 0, hi = z->n - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(z->e[mid].name, name);
        if (c == 0) return &z->e[mid];
        if (c < 0) lo = mid + 1; else hi = mid - 1;
    }
    return NULL;
}

int zip_read(const ZipArchive *z, const ZipEntry *e, const uint8_t **data, uint8_t **owned, XcError *err) {
    *data = NULL; *owned = NULL;
    const uint8_t *src = z->buf + e->data_off;
    if (e->flags & 1) return xc_err(err, "%s: zip entry %s is encrypted", z->path, e->name);
    if (e->method == 0) {
        if (e->comp_size != e->size) return xc_err(err, "%s: stored zip entry %s: sizes differ (%llu vs %llu)", z->path, e->name,
                                                   (unsigned long long)e->comp_size, (unsigned long long)e->size);
        *data = src;
    } else if (e->method == 8) {
        // Deflate expands at most ~1032:1; a larger declared size is a zip bomb or a corrupt directory.
        uint64_t bound;
        if (e->size > ZIP_MAX_INFLATE || !xc_mul_u64(e->comp_size, 1032, &bound) || e->size > bound + 1024)
            return xc_err(err, "%s: zip entry %s declares %llu uncompressed bytes from %llu compressed (zip bomb?); at most %llu are allowed",
                          z->path, e->name, (unsigned long long)e->size, (unsigned long long)e->comp_size,
                          (unsigned long long)(e->size > ZIP_MAX_INFLATE ? ZIP_MAX_INFLATE : bound + 1024));
        uint8_t *out = xc_malloc((size_t)e->size + 1);
        z_stream s;
        memset(&s, 0, sizeof s);
        if (inflateInit2(&s, -15) != Z_OK) { xc_free(out); return xc_err(err, "%s: zlib init failed", z->path); }
        uint64_t in_left = e->comp_size;
        const uint8_t *in = src;
        s.next_out = out;
        s.avail_out = (uInt)(e->size + 1); // size <= ZIP_MAX_INFLATE fits; one spare byte detects overrun
        int rc = Z_OK;
        while (rc == Z_OK) {
            if (s.avail_in == 0 && in_left) {
                uInt chunk = in_left > 0x40000000u ? 0x40000000u : (uInt)in_left;
                s.next_in = (Bytef *)in; s.avail_in = chunk; in += chunk; in_left -= chunk;
            }
            rc = inflate(&s, Z_NO_FLUSH);
            if (rc == Z_BUF_ERROR && s.avail_in == 0 && in_left == 0) break;
            if (rc == Z_OK && s.avail_out == 0) break;
        }
        uint64_t got = s.total_out;
        inflateEnd(&s);
        if (got > e->size) { xc_free(out); return xc_err(err, "%s: zip entry %s inflates to more than its declared %llu bytes (zip bomb?)", z->path, e->name, (unsigned long long)e->size); }
        if (rc != Z_STREAM_END || got != e->size) {
            xc_free(out);
            return xc_err(err, "%s: zip entry %s: corrupt deflate data (%s, %llu of %llu bytes)", z->path, e->name,
                          rc == Z_STREAM_END ? "short" : "stream error", (unsigned long long)got, (unsigned long long)e->size);
        }
        *data = *owned = out;
    } else {
        return xc_err(err, "%s: zip entry %s uses compression method %d (only stored and deflated are read)", z->path, e->name, e->method);
    }
    uLong crc = crc32(0L, Z_NULL, 0);
    for (uint64_t off = 0; off < e->size;) { // crc32 takes uInt lengths
        uInt chunk = e->size - off > 0x40000000u ? 0x40000000u : (uInt)(e->size - off);
        crc = crc32(crc, *data + off, chunk);
        off += chunk;
    }
    if ((uint32_t)crc != e->crc) {
        xc_free(*owned); *owned = NULL; *data = NULL;
        return xc_err(err, "%s: zip entry %s: CRC-32 mismatch (corrupt file)", z->path, e->name);
    }
    return XC_OK;
}
