// zip.h - a read-only zip reader for archives already in memory (PyTorch checkpoints are zip files).
//
// Reads the central directory (zip64 records included, as torch.save writes them), checks every
// entry's name and byte range against the buffer, and hands out entry contents: stored entries as
// pointers into the buffer, deflated ones inflated with zlib into a new buffer bounded by the size the
// directory declares (and never more than ZIP_MAX_INFLATE; a declared size deflate could not reach from
// the compressed size is refused up front). CRC-32 is verified on every read.
// So that no byte of the file is counted twice, entries may not overlap each other or the central directory
// (200 entries sharing one stretch of bytes would be 200 copies of it), and the deflated entries together may
// declare at most CKPT_INFLATE_SLACK + CKPT_INFLATE_RATIO x their compressed size (ckpt_internal.h): both are
// checked by zip_open, before any entry is read.
//
//   ZipArchive z;
//   if (zip_open(&z, buf, len, path, &err) != XC_OK) return XC_ERR;
//   const ZipEntry *e = zip_find(&z, "archive/data.pkl");
//   const uint8_t *data; uint8_t *owned;
//   if (e && zip_read(&z, e, &data, &owned, &err) == XC_OK) { use(data, e->size); xc_free(owned); }
//   zip_close(&z);
#pragma once
#include <stdint.h>
#include "autograd/util.h"

#define ZIP_MAX_ENTRIES 1000000
#define ZIP_MAX_INFLATE ((uint64_t)1 << 30) // 1 GiB for one deflated entry

typedef struct ZipEntry {
    char *name;          // NUL-terminated, checked: no NUL, no "..", not absolute, no backslash
    uint64_t local_off;  // where its local header starts in the buffer
    uint64_t data_off;   // where the (compressed) data starts in the buffer
    uint64_t comp_size;  // bytes at data_off
    uint64_t size;       // uncompressed size
    uint32_t crc;
    int method;          // 0 stored, 8 deflated (others are refused by zip_read)
    int flags;
} ZipEntry;

typedef struct ZipArchive {
    const uint8_t *buf;
    size_t len;
    const char *path; // for messages
    ZipEntry *e;
    int64_t n;
} ZipArchive;

int zip_open(ZipArchive *z, const uint8_t *buf, size_t len, const char *path, XcError *err);
void zip_close(ZipArchive *z);
const ZipEntry *zip_find(const ZipArchive *z, const char *name);
// Contents of e (e->size bytes) in *data; *owned is the buffer to free (NULL for stored entries).
int zip_read(const ZipArchive *z, const ZipEntry *e, const uint8_t **data, uint8_t **owned, XcError *err);
