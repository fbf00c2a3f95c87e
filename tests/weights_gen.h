// weights_gen.h - builders of hand-made weights files for the hostile-input tests (test_malformed_weights,
// test_fuzz_weights): little-endian byte buffers, zip archives (stored or deflated entries, zip64 extra
// fields, lying sizes), pickle opcodes, torch._utils._rebuild_tensor_v2 views with any size/stride/offset, and
// module objects (eager nn.Module and TorchScript) for module-graph cases. Everything is made in memory at run
// time; no hostile file is committed.
//
//   Buf pkl = {0}, zip = {0};
//   pk_begin_dict(&pkl); pk_str(&pkl, "w");
//   pk_tensor64(&pkl, "FloatStorage", "0", 4, 0, 1, (int64_t[]){4}, (int64_t[]){1}); pk_end_dict(&pkl);
//   torch_build(&zip, &pkl, 1, (size_t[]){16}, false);   // a/data.pkl + a/data/0 (16 zero bytes)
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

typedef struct Buf { uint8_t *p; size_t n, cap; } Buf;
static inline void put(Buf *b, const void *s, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) { perror("realloc"); exit(1); }
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
}
static inline void put8(Buf *b, uint8_t v) { put(b, &v, 1); }
static inline void put16(Buf *b, uint16_t v) { put8(b, (uint8_t)v); put8(b, (uint8_t)(v >> 8)); }
static inline void put32(Buf *b, uint32_t v) { put16(b, (uint16_t)v); put16(b, (uint16_t)(v >> 16)); }
static inline void put64(Buf *b, uint64_t v) { put32(b, (uint32_t)v); put32(b, (uint32_t)(v >> 32)); }
static inline void puts_(Buf *b, const char *s) { put(b, s, strlen(s)); }

// ---- zip archives ---------------------------------------------------------------------------------------
typedef struct ZEntry {
    const char *name;
    const uint8_t *data; size_t len;
    bool deflate;
    uint64_t fake_size; // declared uncompressed size when non-zero
    int zip64;          // 1: sizes and offset in a zip64 extra field; 2: the same with the field cut short
} ZEntry;

static inline void zip_build(Buf *b, const ZEntry *es, int n) {
    Buf cd = {0};
    b->n = 0;
    for (int i = 0; i < n; i++) {
        const ZEntry *e = &es[i];
        uint8_t *comp = (uint8_t *)e->data;
        size_t clen = e->len;
        if (e->deflate) {
            comp = malloc(e->len + 1024);
            z_stream s = {0};
            deflateInit2(&s, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
            s.next_in = (Bytef *)e->data; s.avail_in = (uInt)e->len;
            s.next_out = comp; s.avail_out = (uInt)(e->len + 1024);
            deflate(&s, Z_FINISH);
            clen = s.total_out;
            deflateEnd(&s);
        }
        uint32_t crc = (uint32_t)crc32(0, e->data, (uInt)e->len);
        uint32_t size = e->fake_size ? (uint32_t)e->fake_size : (uint32_t)e->len;
        size_t local = b->n;
        puts_(b, "PK\x03\x04"); put16(b, 20); put16(b, 0); put16(b, e->deflate ? 8 : 0); put32(b, 0);
        put32(b, crc); put32(b, (uint32_t)clen); put32(b, size); put16(b, (uint16_t)strlen(e->name)); put16(b, 0);
        puts_(b, e->name);
        put(b, comp, clen);
        puts_(&cd, "PK\x01\x02"); put16(&cd, 45); put16(&cd, 45); put16(&cd, 0); put16(&cd, e->deflate ? 8 : 0); put32(&cd, 0);
        uint32_t m = e->zip64 ? 0xFFFFFFFFu : 0;
        put32(&cd, crc); put32(&cd, m | (uint32_t)clen); put32(&cd, m | size); put16(&cd, (uint16_t)strlen(e->name));
        put16(&cd, e->zip64 ? 28 : 0); put16(&cd, 0); put16(&cd, 0); put16(&cd, 0); put32(&cd, 0); put32(&cd, m | (uint32_t)local);
        puts_(&cd, e->name);
        if (e->zip64) { // id 1: size, compressed size, local header offset (the order the spec fixes)
            put16(&cd, 1); put16(&cd, e->zip64 == 2 ? 16 : 24); put64(&cd, size); put64(&cd, clen);
            if (e->zip64 == 2) { put16(&cd, 0xCAFE); put16(&cd, 4); put32(&cd, 0); } // offset missing
            else put64(&cd, local);
        }
        if (comp != e->data) free(comp);
    }
    size_t cd_off = b->n;
    put(b, cd.p, cd.n);
    puts_(b, "PK\x05\x06"); put16(b, 0); put16(b, 0); put16(b, (uint16_t)n); put16(b, (uint16_t)n);
    put32(b, (uint32_t)cd.n); put32(b, (uint32_t)cd_off); put16(b, 0);
    free(cd.p);
}

// ---- pickles --------------------------------------------------------------------------------------------
static inline void pk_global(Buf *b, const char *mod, const char *name) { put8(b, 'c'); puts_(b, mod); put8(b, '\n'); puts_(b, name); put8(b, '\n'); }
static inline void pk_str(Buf *b, const char *s) { put8(b, 'X'); put32(b, (uint32_t)strlen(s)); puts_(b, s); }
static inline void pk_int(Buf *b, int32_t v) { put8(b, 'J'); put32(b, (uint32_t)v); }
static inline void pk_long(Buf *b, int64_t v) { put8(b, 0x8a); put8(b, 8); put64(b, (uint64_t)v); } // LONG1, 8 bytes
static inline void pk_memo_put(Buf *b, uint32_t i) { put8(b, 'r'); put32(b, i); }
static inline void pk_memo_get(Buf *b, uint32_t i) { put8(b, 'j'); put32(b, i); }
// _rebuild_tensor_v2((('storage', torch.<st>, key, 'cpu', numel)), offset, size, stride, False, OrderedDict())
static inline void pk_tensor64(Buf *b, const char *st, const char *key, int64_t numel, int64_t offset, int nd,
                               const int64_t *size, const int64_t *stride) {
    pk_global(b, "torch._utils", "_rebuild_tensor_v2");
    put8(b, '(');
    put8(b, '('); pk_str(b, "storage"); pk_global(b, "torch", st); pk_str(b, key); pk_str(b, "cpu"); pk_long(b, numel); put8(b, 't');
    put8(b, 'Q');
    pk_long(b, offset);
    put8(b, '('); for (int i = 0; i < nd; i++) pk_long(b, size[i]); put8(b, 't');
    put8(b, '('); for (int i = 0; i < nd; i++) pk_long(b, stride[i]); put8(b, 't');
    put8(b, 0x89);
    pk_global(b, "collections", "OrderedDict"); put8(b, ')'); put8(b, 'R');
    put8(b, 't');
    put8(b, 'R');
}
static inline void pk_tensor(Buf *b, const char *st, const char *key, int numel, int offset, int nd, const int *size, const int *stride) {
    int64_t s[16], t[16];
    for (int i = 0; i < nd && i < 16; i++) { s[i] = size[i]; t[i] = stride[i]; }
    pk_tensor64(b, st, key, numel, offset, nd, s, t);
}
static inline void pk_begin_dict(Buf *b) { put8(b, 0x80); put8(b, 2); put8(b, '}'); put8(b, '('); }
static inline void pk_end_dict(Buf *b) { put8(b, 'u'); put8(b, '.'); }
// An empty module object of class <mod>.<cls> (NEWOBJ); its state follows as a dict and then pk_build.
static inline void pk_module_begin(Buf *b, const char *mod, const char *cls) { pk_global(b, mod, cls); put8(b, ')'); put8(b, 0x81); }
static inline void pk_build(Buf *b) { put8(b, 'b'); }

// A torch-style archive: a/data.pkl plus storages a/data/<i> of zero bytes of the given sizes (deflated
// when asked: a storage of megabytes then costs a few kilobytes of file).
static inline void torch_build(Buf *out, const Buf *pkl, int nstorages, const size_t *bytes, bool deflate) {
    ZEntry *es = calloc((size_t)nstorages + 1, sizeof *es);
    char (*names)[32] = calloc((size_t)nstorages + 1, sizeof *names);
    size_t most = 0;
    for (int i = 0; i < nstorages; i++) if (bytes[i] > most) most = bytes[i];
    uint8_t *zeros = calloc(most + 1, 1);
    es[0] = (ZEntry){"a/data.pkl", pkl->p, pkl->n, false, 0, 0};
    for (int i = 0; i < nstorages; i++) {
        snprintf(names[i], sizeof names[i], "a/data/%d", i);
        es[1 + i] = (ZEntry){names[i], zeros, bytes[i], deflate, 0, 0};
    }
    zip_build(out, es, 1 + nstorages);
    free(zeros); free(names); free(es);
}
