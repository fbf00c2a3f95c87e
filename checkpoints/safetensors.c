// safetensors.c - read and write the safetensors format.
//
// Layout: u64 little-endian N, then N bytes of JSON, then the data buffer:
//   {"__metadata__": {"k": "v", ...},                                   (optional, strings only)
//    "name": {"dtype": "F32", "shape": [d0, d1], "data_offsets": [begin, end]}, ...}
// Offsets are relative to the start of the buffer. Every rule is checked before anything is allocated
// from the file's numbers: header length capped and inside the file, strict JSON without duplicate
// names, known dtype, non-negative dims, 64-bit checked dtype x shape = end - begin, offsets in the
// buffer, tensors contiguous and non-overlapping and covering the buffer exactly, __metadata__ an object of
// strings. Memory: the file (read whole) plus about 250 bytes per tensor for the header (read member by member,
// at most ST_MAX_VALUES JSON values and ST_MAX_MEMBER_BYTES bytes in any member) plus the float32 tensors.
#include "checkpoints/ckpt_internal.h"
#include "checkpoints/weight_formats.h"
#include "autograd/json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct StEntry {
    char *name;                       // owned copy of the member name
    int dtype_size;
    CkptDtype dtype;
    bool skip;                        // an integer buffer we drop (position_ids)
    int ndim;
    int64_t shape[XC_WEIGHT_MAX_DIMS];
    uint64_t numel, begin, end;
} StEntry;

static const struct { const char *name; int size; CkptDtype dt; } st_dtypes[] = {
    {"F32", 4, CKPT_F32}, {"F16", 2, CKPT_F16}, {"BF16", 2, CKPT_BF16}, {"F64", 8, CKPT_F64},
    {"I64", 8, CKPT_INT_OTHER}, {"I32", 4, CKPT_INT_OTHER}, {"I16", 2, CKPT_INT_OTHER},
    {"I8", 1, CKPT_INT_OTHER}, {"U8", 1, CKPT_INT_OTHER}, {"U16", 2, CKPT_INT_OTHER},
    {"U32", 4, CKPT_INT_OTHER}, {"U64", 8, CKPT_INT_OTHER}, {"BOOL", 1, CKPT_INT_OTHER},
    {"F8_E4M3", 1, CKPT_INT_OTHER}, {"F8_E5M2", 1, CKPT_INT_OTHER},
};

static int cmp_entries(const void *a, const void *b) {
    const StEntry *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

// Validate one "name": {...} member into e.
static int check_entry(StEntry *e, const char *name, const JsonValue *v, uint64_t data_len,
                       const char *path, XcError *err) {
    if (!name[0]) return xc_err(err, "%s: a tensor has an empty name", path);
    if (strlen(name) > CKPT_MAX_NAME_BYTES) return xc_err(err, "%s: a tensor name is longer than %d bytes", path, CKPT_MAX_NAME_BYTES);
    if (v->type != JSON_OBJECT) return xc_err(err, "%s: tensor \"%s\": expected an object, got %s", path, name, json_type_name(v->type));
    for (int64_t i = 0; i < v->n; i++) {
        const char *k = v->keys[i];
        if (strcmp(k, "dtype") && strcmp(k, "shape") && strcmp(k, "data_offsets"))
            return xc_err(err, "%s: tensor \"%s\": unknown field \"%.100s\"", path, name, k);
    }
    const JsonValue *dt = json_get(v, "dtype"), *sh = json_get(v, "shape"), *off = json_get(v, "data_offsets");
    if (!dt || !sh || !off) return xc_err(err, "%s: tensor \"%s\": missing %s", path, name, !dt ? "dtype" : !sh ? "shape" : "data_offsets");
    if (dt->type != JSON_STRING) return xc_err(err, "%s: tensor \"%s\": dtype is not a string", path, name);
    e->dtype_size = 0;
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(dt->s, st_dtypes[i].name) == 0) { e->dtype_size = st_dtypes[i].size; e->dtype = st_dtypes[i].dt; }
    if (!e->dtype_size) return xc_err(err, "%s: tensor \"%s\": unknown dtype \"%.40s\"", path, name, dt->s);
    if (e->dtype == CKPT_INT_OTHER) {
        if (!ckpt_skippable_int_tensor(name))
            return xc_err(err, "%s: tensor \"%s\": unsupported dtype %s (only F32, F16, BF16 and F64 are read)", path, name, dt->s);
        e->skip = true;
    }
    if (sh->type != JSON_ARRAY) return xc_err(err, "%s: tensor \"%s\": shape is not an array", path, name);
    if (sh->n > XC_WEIGHT_MAX_DIMS) return xc_err(err, "%s: tensor \"%s\": %lld dimensions, more than %d", path, name, (long long)sh->n, XC_WEIGHT_MAX_DIMS);
    e->ndim = (int)sh->n;
    e->numel = 1;
    for (int d = 0; d < e->ndim; d++) {
        const JsonValue *x = &sh->items[d];
        if (x->type != JSON_NUMBER || !x->is_int) return xc_err(err, "%s: tensor \"%s\": shape[%d] is not an integer", path, name, d);
        if (x->i < 0) return xc_err(err, "%s: tensor \"%s\": negative dimension %lld", path, name, (long long)x->i);
        e->shape[d] = x->i;
        if (!xc_mul_u64(e->numel, (uint64_t)x->i, &e->numel) || e->numel > ((uint64_t)1 << 62))
            return xc_err(err, "%s: tensor \"%s\": shape overflows (element count too large)", path, name);
    }
    if (off->type != JSON_ARRAY || off->n != 2) return xc_err(err, "%s: tensor \"%s\": data_offsets must be [begin, end]", path, name);
    for (int k = 0; k < 2; k++)
        if (off->items[k].type != JSON_NUMBER || !off->items[k].is_int || off->items[k].i < 0)
            return xc_err(err, "%s: tensor \"%s\": data_offsets must be non-negative integers", path, name);
    e->begin = (uint64_t)off->items[0].i;
    e->end = (uint64_t)off->items[1].i;
    if (e->end < e->begin) return xc_err(err, "%s: tensor \"%s\": data_offsets end %llu before begin %llu", path, name,
                                        (unsigned long long)e->end, (unsigned long long)e->begin);
    if (e->end > data_len) return xc_err(err, "%s: tensor \"%s\": data_offsets [%llu, %llu] out of range (data buffer is %llu bytes)",
                                        path, name, (unsigned long long)e->begin, (unsigned long long)e->end, (unsigned long long)data_len);
    uint64_t bytes;
    if (!xc_mul_u64(e->numel, (uint64_t)e->dtype_size, &bytes))
        return xc_err(err, "%s: tensor \"%s\": byte size overflows", path, name);
    if (bytes != e->end - e->begin)
        return xc_err(err, "%s: tensor \"%s\": dtype %s x shape = %llu bytes but data_offsets span %llu bytes", path, name,
                      dt->s, (unsigned long long)bytes, (unsigned long long)(e->end - e->begin));
    return XC_OK;
}

static int check_metadata(const JsonValue *m, const char *path, XcError *err) {
    if (m->type != JSON_OBJECT) return xc_err(err, "%s: __metadata__ is a JSON %s, not an object of strings", path, json_type_name(m->type));
    for (int64_t i = 0; i < m->n; i++)
        if (m->items[i].type != JSON_STRING)
            return xc_err(err, "%s: __metadata__ value \"%.100s\" is a JSON %s, not a string", path, m->keys[i],
                          json_type_name(m->items[i].type));
    return XC_OK;
}

// The header is read member by member (json_parse_members): each tensor entry becomes an StEntry and its JSON is
// freed at once, so the header costs about one StEntry per tensor rather than a tree of the whole text, and a
// member that would be large (an array where a tensor or __metadata__ should be, a huge string) is refused after
// ST_MAX_VALUES values or ST_MAX_MEMBER_BYTES bytes, before it is built.
#define ST_MAX_VALUES (1 << 16) // JSON values in one member: a tensor entry has at most 14, __metadata__ 1 + 1 per key
#define ST_MAX_MEMBER_BYTES ((size_t)16 << 20) // text of one member's value: a tensor entry takes ~100 bytes

typedef struct StHeader {
    const char *path;
    uint64_t data_len;
    StEntry *ents; int64_t n, cap;
    bool metadata;       // __metadata__ seen
} StHeader;

static int on_member(void *ctx, const char *key, const JsonValue *v, XcError *err) {
    StHeader *h = ctx;
    if (strcmp(key, "__metadata__") == 0) {
        if (h->metadata) return xc_err(err, "%s: safetensors header: duplicate key \"__metadata__\"", h->path);
        h->metadata = true;
        return check_metadata(v, h->path, err);
    }
    if (h->n >= CKPT_MAX_TENSORS) return xc_err(err, "%s: more than the %d tensors allowed", h->path, CKPT_MAX_TENSORS);
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 64;
        h->ents = xc_realloc(h->ents, (size_t)h->cap * sizeof *h->ents);
    }
    StEntry *e = &h->ents[h->n];
    memset(e, 0, sizeof *e);
    if (check_entry(e, key, v, h->data_len, h->path, err) != XC_OK) return XC_ERR;
    size_t len = strlen(key);
    char *name = xc_malloc(len + 1); // the key is freed when this returns
    memcpy(name, key, len + 1);
    e->name = name;
    h->n++;
    return XC_OK;
}

static int cmp_entry_ptrs(const void *a, const void *b) { return cmp_entries(*(const StEntry *const *)a, *(const StEntry *const *)b); }

// Sorted by offset, each tensor starts where the previous one ended and the last ends with the buffer.
static int check_coverage(const StHeader *h, XcError *err) {
    const char *path = h->path;
    const StEntry **sorted = xc_malloc(((size_t)h->n + 1) * sizeof *sorted);
    for (int64_t i = 0; i < h->n; i++) sorted[i] = &h->ents[i];
    qsort(sorted, (size_t)h->n, sizeof *sorted, cmp_entry_ptrs);
    uint64_t pos = 0;
    int rc = XC_OK;
    for (int64_t i = 0; i < h->n && rc == XC_OK; i++) {
        if (sorted[i]->begin < pos)
            rc = xc_err(err, "%s: tensors \"%s\" and \"%s\" overlap in the data buffer", path, sorted[i - 1]->name, sorted[i]->name);
        else if (sorted[i]->begin > pos)
            rc = xc_err(err, "%s: gap of %llu bytes in the data buffer before tensor \"%s\" (offsets must be contiguous)", path,
                        (unsigned long long)(sorted[i]->begin - pos), sorted[i]->name);
        pos = sorted[i]->end;
    }
    if (rc == XC_OK && pos != h->data_len)
        rc = xc_err(err, "%s: %llu bytes of the data buffer are not covered by any tensor (buffer %llu bytes, tensors end at %llu)",
                    path, (unsigned long long)(h->data_len - pos), (unsigned long long)h->data_len, (unsigned long long)pos);
    xc_free(sorted);
    return rc;
}

int weights_parse_safetensors(WeightSet *ws, const uint8_t *buf, size_t len, const char *path, XcError *err) {
    if (len < 8) return xc_err(err, "%s: truncated safetensors file: %zu bytes, the header length alone takes 8", path, len);
    uint64_t hlen = ckpt_le64(buf);
    if (hlen > CKPT_MAX_SAFETENSORS_HEADER)
        return xc_err(err, "%s: safetensors header length %llu is larger than the %llu bytes allowed", path,
                      (unsigned long long)hlen, (unsigned long long)CKPT_MAX_SAFETENSORS_HEADER);
    if (hlen > len - 8)
        return xc_err(err, "%s: safetensors header length %llu runs past the end of the file (%zu bytes): truncated?", path,
                      (unsigned long long)hlen, len);
    if (hlen < 2) return xc_err(err, "%s: safetensors header length %llu is too small for a JSON object", path, (unsigned long long)hlen);
    char where[1200];
    snprintf(where, sizeof where, "%s: safetensors header", path);
    StHeader h = {.path = path, .data_len = (uint64_t)len - 8 - hlen};
    const uint8_t *data = buf + 8 + hlen;
    int rc = XC_ERR;
    JsonLimits lim = {ST_MAX_VALUES, ST_MAX_MEMBER_BYTES};
    if (json_parse_members((const char *)buf + 8, (size_t)hlen, where, lim, on_member, &h, err) != XC_OK) goto done;
    const char **names = xc_malloc(((size_t)h.n + 1) * sizeof *names);
    for (int64_t i = 0; i < h.n; i++) names[i] = h.ents[i].name;
    const char *dup = ckpt_find_duplicate(names, h.n);
    if (dup) xc_err(err, "%s: duplicate key \"%.200s\" (two tensors of one name)", where, dup);
    xc_free(names);
    if (dup || check_coverage(&h, err) != XC_OK) goto done;
    // Everything checked: convert, in header order; each name moves to the set as its tensor is added.
    XC_CHECK(ws->n == 0, "weights_parse_safetensors: the WeightSet must be empty");
    for (int64_t i = 0; i < h.n; i++) {
        StEntry *e = &h.ents[i];
        if (!e->skip) {
            float *f = xc_malloc((size_t)e->numel * sizeof(float));
            ckpt_convert(f, data + e->begin, (int64_t)e->numel, e->dtype);
            ckpt_append_owned(ws, e->name, e->ndim, e->shape, f);
        }
        xc_free(e->name);
        e->name = NULL;
    }
    rc = XC_OK;
done:
    for (int64_t i = 0; i < h.n; i++) xc_free(h.ents[i].name);
    xc_free(h.ents);
    return rc;
}

int weights_load_safetensors(WeightSet *ws, const char *path, XcError *err) {
    size_t len;
    uint8_t *buf = ckpt_read_file(path, &len, err);
    if (!buf) return XC_ERR;
    WeightSet tmp = {0};
    int rc = weights_parse_safetensors(&tmp, buf, len, path, err);
    xc_free(buf);
    if (rc != XC_OK) { weights_free(&tmp); return XC_ERR; }
    *ws = tmp;
    return XC_OK;
}

// ---- writer ---------------------------------------------------------------------------------------
typedef struct StrBuf { char *s; size_t n, cap; } StrBuf;

static void sb_put(StrBuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->s = xc_realloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}
static void sb_printf(StrBuf *b, const char *fmt, long long v) {
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, fmt, v);
    sb_put(b, tmp, (size_t)n);
}
static void sb_json_string(StrBuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') { char e[2] = {'\\', (char)c}; sb_put(b, e, 2); }
        else if (c < 0x20) sb_printf(b, "\\u%04llx", c);
        else sb_put(b, (const char *)&c, 1);
    }
    sb_put(b, "\"", 1);
}

int weights_save_safetensors(const WeightSet *ws, const char *path, XcError *err) {
    StrBuf h = {0};
    sb_put(&h, "{", 1);
    uint64_t off = 0;
    for (int i = 0; i < ws->n; i++) {
        const WeightTensor *t = &ws->t[i];
        if (i) sb_put(&h, ",", 1);
        sb_json_string(&h, t->name);
        sb_put(&h, ":{\"dtype\":\"F32\",\"shape\":[", 25);
        for (int d = 0; d < t->ndim; d++) sb_printf(&h, d ? ",%lld" : "%lld", (long long)t->shape[d]);
        sb_printf(&h, "],\"data_offsets\":[%lld", (long long)off);
        off += (uint64_t)t->numel * sizeof(float);
        sb_printf(&h, ",%lld]}", (long long)off);
    }
    sb_put(&h, "}", 1);
    while (h.n % 8) sb_put(&h, " ", 1); // the data buffer starts 8-byte aligned
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = xc_fopen(tmp, "wb", err);
    if (!f) { xc_free(h.s); return XC_ERR; }
    uint8_t len8[8];
    for (int k = 0; k < 8; k++) len8[k] = (uint8_t)((uint64_t)h.n >> (8 * k));
    bool ok = fwrite(len8, 1, 8, f) == 8 && fwrite(h.s, 1, h.n, f) == h.n;
    for (int i = 0; ok && i < ws->n; i++) // float32 little-endian: our hosts are little-endian
        ok = fwrite(ws->t[i].data, sizeof(float), (size_t)ws->t[i].numel, f) == (size_t)ws->t[i].numel;
    xc_free(h.s);
    if (fclose(f) != 0) ok = false;
    if (!ok || rename(tmp, path) != 0) {
        xc_err(err, "%s: write failed: %s", path, strerror(errno));
        remove(tmp);
        return XC_ERR;
    }
    return XC_OK;
}
