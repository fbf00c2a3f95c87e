// torch_save.c - write a state dict as torch 1.13's torch.save writes it to a file object (see weights.h).
//
// The zip (miniz as PyTorchStreamWriter drives it):
//   for each record, in order archive/data.pkl, archive/data/0 .. data/<n-1>, archive/version:
//     local header: "PK\3\4", version 0, flags 0x0808 (UTF-8 names, sizes in a data descriptor; 0x0800 for
//     an empty record, which has no descriptor), method 0 (stored), time/date 0, crc/sizes 0, then the name
//     and one extra field "FB" <u16 len> "ZZZ..." padding the data start to a multiple of 64;
//     the data; a data descriptor "PK\7\8" crc32 size size (u32 each).
//   central directory: one 46-byte entry per record (version 0, same flags, crc, sizes, no extra field),
//   then a zip64 end-of-central-directory record and locator, then the classic end record.
// data.pkl is what pickle protocol 2 emits for {'model': OrderedDict(name -> tensor)} (or the OrderedDict
// alone): every tensor is torch._utils._rebuild_tensor_v2(persistent_load(('storage', torch.FloatStorage,
// '<key>', 'cpu', numel)), 0, size, stride, False, OrderedDict()), with pickle's memo (BINPUT after each
// string, global, non-empty tuple and call result; BINGET for the strings and globals seen before) and
// SETITEMS batches of 1000. Keys are 0, 1, 2... in state-dict order, each tensor its own contiguous storage;
// the data/<key> records follow in the order of the keys sorted as strings, as torch.save writes them.
#include "checkpoints/ckpt_internal.h"
#include "checkpoints/weight_formats.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

// ---- a growable byte buffer and the pickle emitter ----------------------------------------------------
typedef struct Buf { uint8_t *p; size_t n, cap; } Buf;

static void put(Buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 256;
        b->p = xc_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void put8(Buf *b, uint8_t v) { put(b, &v, 1); }
static void put16(Buf *b, uint16_t v) { uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)}; put(b, x, 2); }
static void put32(Buf *b, uint32_t v) { put16(b, (uint16_t)v); put16(b, (uint16_t)(v >> 16)); }
static void put64(Buf *b, uint64_t v) { put32(b, (uint32_t)v); put32(b, (uint32_t)(v >> 32)); }

typedef struct Pickler { Buf b; uint32_t memo; } Pickler;

static uint32_t pk_put(Pickler *k) { // memoize the object just pushed; returns its index
    if (k->memo < 256) { put8(&k->b, 'q'); put8(&k->b, (uint8_t)k->memo); }
    else { put8(&k->b, 'r'); put32(&k->b, k->memo); }
    return k->memo++;
}
static void pk_get(Pickler *k, uint32_t i) {
    if (i < 256) { put8(&k->b, 'h'); put8(&k->b, (uint8_t)i); }
    else { put8(&k->b, 'j'); put32(&k->b, i); }
}
static uint32_t pk_str(Pickler *k, const char *s) { // BINUNICODE
    size_t n = strlen(s);
    put8(&k->b, 'X');
    put32(&k->b, (uint32_t)n);
    put(&k->b, s, n);
    return pk_put(k);
}
static uint32_t pk_global(Pickler *k, const char *module, const char *name) {
    put8(&k->b, 'c');
    put(&k->b, module, strlen(module));
    put8(&k->b, '\n');
    put(&k->b, name, strlen(name));
    put8(&k->b, '\n');
    return pk_put(k);
}
static void pk_int(Pickler *k, int64_t v) { // as pickle.save_long with protocol 2
    if (v >= 0 && v <= 0xff) { put8(&k->b, 'K'); put8(&k->b, (uint8_t)v); }
    else if (v >= 0 && v <= 0xffff) { put8(&k->b, 'M'); put16(&k->b, (uint16_t)v); }
    else if (v >= INT32_MIN && v <= INT32_MAX) { put8(&k->b, 'J'); put32(&k->b, (uint32_t)(int32_t)v); }
    else { // LONG1: minimal two's complement, little-endian
        uint8_t bytes[9];
        int n = 0;
        int64_t x = v;
        do { bytes[n++] = (uint8_t)(x & 0xff); x >>= 8; } while (!((x == 0 && !(bytes[n - 1] & 0x80)) || (x == -1 && (bytes[n - 1] & 0x80))));
        put8(&k->b, 0x8a);
        put8(&k->b, (uint8_t)n);
        put(&k->b, bytes, (size_t)n);
    }
}
static void pk_tuple_of_ints(Pickler *k, int n, const int64_t *v) { // save_tuple
    if (n == 0) { put8(&k->b, ')'); return; }
    if (n > 3) put8(&k->b, '(');
    for (int i = 0; i < n; i++) pk_int(k, v[i]);
    put8(&k->b, n == 1 ? 0x85 : n == 2 ? 0x86 : n == 3 ? 0x87 : 't');
    pk_put(k);
}

static void make_pickle(Pickler *k, const WeightSet *ws, bool nested) {
    put8(&k->b, 0x80);
    put8(&k->b, 2);
    if (nested) {
        put8(&k->b, '}');
        pk_put(k);
        pk_str(k, "model");
    }
    uint32_t od = pk_global(k, "collections", "OrderedDict");
    put8(&k->b, ')');
    put8(&k->b, 'R');
    pk_put(k);
    uint32_t rebuild = 0, storage = 0, floatst = 0, cpu = 0;
    for (int i = 0; i < ws->n; i++) {
        const WeightTensor *t = &ws->t[i];
        int in_batch = i % 1000, batch_len = ws->n - (i - in_batch) < 1000 ? ws->n - (i - in_batch) : 1000;
        if (in_batch == 0 && batch_len > 1) put8(&k->b, '(');
        pk_str(k, t->name);
        if (i == 0) rebuild = pk_global(k, "torch._utils", "_rebuild_tensor_v2");
        else pk_get(k, rebuild);
        put8(&k->b, '(');
        put8(&k->b, '('); // the persistent id
        if (i == 0) storage = pk_str(k, "storage");
        else pk_get(k, storage);
        if (i == 0) floatst = pk_global(k, "torch", "FloatStorage");
        else pk_get(k, floatst);
        char key[32];
        snprintf(key, sizeof key, "%d", i);
        pk_str(k, key);
        if (i == 0) cpu = pk_str(k, "cpu");
        else pk_get(k, cpu);
        pk_int(k, t->numel);
        put8(&k->b, 't');
        pk_put(k);
        put8(&k->b, 'Q'); // BINPERSID
        pk_int(k, 0);     // storage offset
        int64_t stride[XC_WEIGHT_MAX_DIMS];
        int64_t s = 1;
        for (int d = t->ndim - 1; d >= 0; d--) { stride[d] = s; s *= t->shape[d] > 1 ? t->shape[d] : 1; }
        pk_tuple_of_ints(k, t->ndim, t->shape);
        pk_tuple_of_ints(k, t->ndim, stride);
        put8(&k->b, 0x89); // NEWFALSE: requires_grad
        pk_get(k, od);     // backward hooks: OrderedDict()
        put8(&k->b, ')');
        put8(&k->b, 'R');
        pk_put(k);
        put8(&k->b, 't');
        pk_put(k);
        put8(&k->b, 'R');
        pk_put(k);
        if (in_batch == batch_len - 1) put8(&k->b, batch_len > 1 ? 'u' : 's');
    }
    if (nested) put8(&k->b, 's');
    put8(&k->b, '.');
}

// ---- the zip ---------------------------------------------------------------------------------------------
typedef struct Record { char name[64]; uint64_t offset, size; uint32_t crc; } Record;

typedef struct ZipW {
    FILE *f;
    uint64_t pos;
    bool failed;
    int err_no;
} ZipW;

static void zw(ZipW *z, const void *d, size_t n) {
    if (z->failed || n == 0) return;
    if (fwrite(d, 1, n, z->f) != n) { z->failed = true; z->err_no = errno; }
    z->pos += n;
}

static void record(ZipW *z, Record *r, const char *name, const void *data, uint64_t size) {
    snprintf(r->name, sizeof r->name, "archive/%s", name);
    r->offset = z->pos;
    r->size = size;
    uLong crc = crc32(0L, Z_NULL, 0);
    for (uint64_t o = 0; o < size;) { // zlib's crc32 takes a uInt length
        uInt n = size - o > (1u << 30) ? (1u << 30) : (uInt)(size - o);
        crc = crc32(crc, (const Bytef *)data + o, n);
        o += n;
    }
    r->crc = (uint32_t)crc;
    size_t nlen = strlen(r->name);
    uint64_t start = z->pos + 30 + nlen + 4;
    size_t pad = (size_t)((64 - start % 64) % 64);
    Buf h = {0};
    put32(&h, 0x04034b50);
    put16(&h, 0);                        // version needed
    put16(&h, size ? 0x0808 : 0x0800);   // flags
    put16(&h, 0);                        // stored
    put16(&h, 0); put16(&h, 0);          // time, date
    put32(&h, 0); put32(&h, 0); put32(&h, 0); // crc, sizes: in the data descriptor
    put16(&h, (uint16_t)nlen);
    put16(&h, (uint16_t)(4 + pad));
    put(&h, r->name, nlen);
    put8(&h, 'F'); put8(&h, 'B');
    put16(&h, (uint16_t)pad);
    for (size_t i = 0; i < pad; i++) put8(&h, 'Z');
    zw(z, h.p, h.n);
    zw(z, data, (size_t)size);
    if (size) {
        h.n = 0;
        put32(&h, 0x08074b50);
        put32(&h, r->crc);
        put32(&h, (uint32_t)size);
        put32(&h, (uint32_t)size);
        zw(z, h.p, h.n);
    }
    xc_free(h.p);
}

static void central(ZipW *z, const Record *r, int n) {
    Buf c = {0};
    uint64_t cd_start = z->pos;
    for (int i = 0; i < n; i++) {
        size_t nlen = strlen(r[i].name);
        put32(&c, 0x02014b50);
        put16(&c, 0); put16(&c, 0);          // version made by, needed
        put16(&c, r[i].size ? 0x0808 : 0x0800);
        put16(&c, 0); put16(&c, 0); put16(&c, 0);
        put32(&c, r[i].crc);
        put32(&c, (uint32_t)r[i].size);
        put32(&c, (uint32_t)r[i].size);
        put16(&c, (uint16_t)nlen);
        put16(&c, 0); put16(&c, 0); put16(&c, 0); put16(&c, 0); // extra, comment, disk, internal attributes
        put32(&c, 0);                                           // external attributes
        put32(&c, (uint32_t)r[i].offset);
        put(&c, r[i].name, nlen);
    }
    uint64_t cd_size = c.n, eocd64 = cd_start + cd_size;
    put32(&c, 0x06064b50);   // zip64 end of central directory
    put64(&c, 44);
    put16(&c, 0x031e);
    put16(&c, 0x002d);
    put32(&c, 0); put32(&c, 0);
    put64(&c, (uint64_t)n); put64(&c, (uint64_t)n);
    put64(&c, cd_size);
    put64(&c, cd_start);
    put32(&c, 0x07064b50);   // its locator
    put32(&c, 0);
    put64(&c, eocd64);
    put32(&c, 1);
    put32(&c, 0x06054b50);   // end of central directory
    put16(&c, 0); put16(&c, 0);
    put16(&c, (uint16_t)(n > 0xffff ? 0xffff : n)); put16(&c, (uint16_t)(n > 0xffff ? 0xffff : n));
    put32(&c, (uint32_t)cd_size);
    put32(&c, (uint32_t)cd_start);
    put16(&c, 0);
    zw(z, c.p, c.n);
    xc_free(c.p);
}

static int cmp_key_strings(const void *a, const void *b) {
    char x[16], y[16];
    snprintf(x, sizeof x, "%d", *(const int *)a);
    snprintf(y, sizeof y, "%d", *(const int *)b);
    return strcmp(x, y);
}

int weights_save_torch(const WeightSet *ws, const char *path, bool nested, XcError *err) {
    uint64_t total = 4096; // headers, pickle and directory, roughly
    for (int i = 0; i < ws->n; i++) total += (uint64_t)ws->t[i].numel * 4 + 200 + strlen(ws->t[i].name) * 2;
    if (total >= 0xffffffffull)
        return xc_err(err, "%s: %llu bytes: PyTorch archives of 4 GiB or more need zip64 entries, which this writer does "
                           "not produce\nHINT: export to .safetensors or .h5 instead", path, (unsigned long long)total);
    if (ws->n > 0xfffe) return xc_err(err, "%s: %d tensors: too many for this writer", path, ws->n);
    Pickler k = {0};
    make_pickle(&k, ws, nested);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = xc_fopen(tmp, "wb", err);
    if (!f) { xc_free(k.b.p); return XC_ERR; }
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    ZipW z = {.f = f};
    Record *rec = xc_malloc((size_t)(ws->n + 2) * sizeof *rec);
    record(&z, &rec[0], "data.pkl", k.b.p, k.b.n);
    xc_free(k.b.p);
    // torch writes the storages in the order of their keys sorted as strings: 0, 1, 10, 100, 101, ..., 11, ...
    int *order = xc_malloc((size_t)(ws->n ? ws->n : 1) * sizeof *order);
    for (int i = 0; i < ws->n; i++) order[i] = i;
    qsort(order, (size_t)ws->n, sizeof *order, cmp_key_strings);
    for (int j = 0; j < ws->n; j++) {
        int i = order[j];
        char name[32];
        snprintf(name, sizeof name, "data/%d", i);
        record(&z, &rec[j + 1], name, ws->t[i].data, (uint64_t)ws->t[i].numel * 4);
    }
    xc_free(order);
    record(&z, &rec[ws->n + 1], "version", "3\n", 2);
    central(&z, rec, ws->n + 2);
    xc_free(rec);
    if (fclose(f) != 0 && !z.failed) { z.failed = true; z.err_no = errno; }
    if (z.failed) {
        remove(tmp);
        return xc_err(err, "%s: write failed: %s", path, strerror(z.err_no));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return xc_err(err, "%s: rename failed: %s", path, strerror(e));
    }
    return XC_OK;
}
