// torch_load.c - PyTorch zip checkpoints: torch.save state dicts and torch.jit.save (TorchScript) archives.
//
// What torch (1.6+) writes, all under one top-level folder <a> (the file's stem):
//   <a>/data.pkl        protocol-2 pickle of the saved object; tensors are
//                       torch._utils._rebuild_tensor_v2(persistent ('storage', torch.HalfStorage, '0', 'cpu', numel),
//                                                      offset, size, stride, requires_grad, hooks)
//   <a>/data/<key>      raw little-endian storage bytes, stored (not deflated), 64-byte aligned
//   <a>/version         format version; <a>/byteorder "little" (torch >= 2.1; "big" is refused)
//   TorchScript archives add:
//   <a>/constants.pkl   tensors used as constants by the code (not part of the state dict)
//   <a>/code/__torch__/...py  the compiled modules' source; each class lists its state as
//                       __parameters__ = ["weight", "bias", ] and __buffers__ = [...]
// A TorchScript data.pkl is the module object itself: GLOBAL '__torch__.<path> <Class>' + NEWOBJ + BUILD
// with a dict of attributes (tensors, submodules, plain values). Its state dict is recovered by walking
// the attributes: the tensors named in the class's __parameters__/__buffers__ (plain tensor attributes
// such as CLIP's attn_mask are not state), then the submodules, prefixed by their attribute names.
// An eager nn.Module pickled whole (torch.save(model)) is walked through its _parameters/_buffers/_modules.
// Each module object is walked once: one reached again along another path (a shared submodule, a cycle, or a
// graph built so that the paths multiply) is refused, so the walk is linear in the pickle's objects.
// Memory: every view lies inside its storage without repeating an element (pickle.c), and the views taken from
// one storage hold at most CKPT_MAX_VIEW_SHARE times its elements (plus a few): tied weights (two names on one
// storage) load, a thousand names on one storage are refused before anything is copied. The float32 copies
// are thus bounded by that factor times the storages' real content. The zip entries have bytes of their own and
// deflated ones inflate at most CKPT_INFLATE_RATIO-fold (zip.h), a deflated storage must be viewed whole, and the
// unpickler may take PK_BUDGET_BASE plus the storages' size in the file. So reading costs the file (read whole),
// plus the pickle's objects, plus the inflated storages, plus the float32 copies (at most twice the storages'
// elements, in float32). Nothing after the pickle's STOP is read.
#include "checkpoints/ckpt_internal.h"
#include "checkpoints/weight_formats.h"
#include "checkpoints/pickle.h"
#include "checkpoints/zip.h"

#include <stdlib.h>
#include <string.h>

#define WALK_MAX_DEPTH 64
#define PK_BUDGET_BASE ((uint64_t)16 << 20) // bytes the pickle machine may take beyond the storages' size
#define CKPT_MAX_VIEW_SHARE 2    // views of one storage: at most this many times its elements
#define CKPT_VIEW_SHARE_SLACK 64 //   plus this many (small buffers shared by a few names)

typedef struct CodeFile { char *name; uint8_t *owned; const uint8_t *data; uint64_t len; } CodeFile;

typedef struct Loader {
    const char *path;
    ZipArchive zip;
    char prefix[512];   // "<a>/"
    XcError *err;
    // collected state entries
    char **names; PkObj **tensors; int64_t n, cap;
    CodeFile *code; int ncode;
} Loader;

static int storage_check(void *ctx, const char *key, int dtype, int elem_size, int64_t numel, XcError *err) {
    Loader *L = ctx;
    char name[600];
    snprintf(name, sizeof name, "%sdata/%s", L->prefix, key);
    const ZipEntry *e = zip_find(&L->zip, name);
    if (!e) return xc_err(err, "%s: storage %s is missing from the archive", L->path, name);
    uint64_t bytes;
    if (!xc_mul_u64((uint64_t)numel, (uint64_t)elem_size, &bytes) || bytes != e->size)
        return xc_err(err, "%s: storage %s holds %llu bytes but its header says %lld elements of %d bytes", L->path,
                      name, (unsigned long long)e->size, (long long)numel, elem_size);
    (void)dtype;
    return XC_OK;
}

static void add_entry(Loader *L, const char *name, PkObj *t) {
    if (L->n == L->cap) {
        L->cap = L->cap ? 2 * L->cap : 64;
        L->names = xc_realloc(L->names, (size_t)L->cap * sizeof *L->names);
        L->tensors = xc_realloc(L->tensors, (size_t)L->cap * sizeof *L->tensors);
    }
    size_t len = strlen(name);
    L->names[L->n] = xc_malloc(len + 1);
    memcpy(L->names[L->n], name, len + 1);
    L->tensors[L->n++] = t;
}

static int join_name(Loader *L, char *out, size_t cap, const char *prefix, const char *name) {
    int n = snprintf(out, cap, "%s%s", prefix, name);
    if (n < 0 || (size_t)n >= cap || n > CKPT_MAX_NAME_BYTES)
        return xc_err(L->err, "%s: tensor name \"%.100s...\" longer than %d bytes", L->path, out, CKPT_MAX_NAME_BYTES);
    return XC_OK;
}

static int add_tensor(Loader *L, const char *prefix, const char *name, PkObj *t) {
    char full[CKPT_MAX_NAME_BYTES + 8];
    if (join_name(L, full, sizeof full, prefix, name) != XC_OK) return XC_ERR;
    if (!full[0]) return xc_err(L->err, "%s: a tensor has an empty name", L->path);
    if (L->n >= CKPT_MAX_TENSORS) return xc_err(L->err, "%s: more than %d tensors", L->path, CKPT_MAX_TENSORS);
    PkObj *st = t->cls;
    if (st->kind == CKPT_INT_OTHER) {
        if (ckpt_skippable_int_tensor(full)) return XC_OK;
        return xc_err(L->err, "%s: tensor \"%s\" is not a floating-point tensor (only float32/float16/bfloat16/float64 are read)", L->path, full);
    }
    add_entry(L, full, t);
    return XC_OK;
}

// ---- TorchScript class definitions ----------------------------------------------------------------------
static const CodeFile *code_file(Loader *L, const char *module) {
    char name[700];
    int n = snprintf(name, sizeof name, "%scode/%s.py", L->prefix, module);
    if (n < 0 || (size_t)n >= sizeof name) return NULL;
    for (char *c = name + strlen(L->prefix) + 5; c < name + n - 3; c++) if (*c == '.') *c = '/';
    for (int i = 0; i < L->ncode; i++) if (strcmp(L->code[i].name, name) == 0) return &L->code[i];
    const ZipEntry *e = zip_find(&L->zip, name);
    const uint8_t *data; uint8_t *owned;
    XcError ignored;
    if (!e || zip_read(&L->zip, e, &data, &owned, &ignored) != XC_OK) return NULL; // no source: fall back
    L->code = xc_realloc(L->code, (size_t)(L->ncode + 1) * sizeof *L->code);
    CodeFile *cf = &L->code[L->ncode++];
    cf->name = xc_malloc(strlen(name) + 1);
    strcpy(cf->name, name);
    cf->owned = owned; cf->data = data; cf->len = e->size;
    return cf;
}

// Does list line `key = ["a", "b", ]` (inside the class body [body, end)) name attr? -1 if there is no such line.
static int listed(const uint8_t *body, const uint8_t *end, const char *key, const char *attr) {
    size_t klen = strlen(key), alen = strlen(attr);
    for (const uint8_t *p = body; p < end;) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
        const uint8_t *le = nl ? nl : end;
        const uint8_t *q = p;
        while (q < le && *q == ' ') q++;
        if ((size_t)(le - q) > klen && memcmp(q, key, klen) == 0) {
            for (q += klen; q < le; q++)
                if (*q == '"' && (size_t)(le - q) > alen + 1 && memcmp(q + 1, attr, alen) == 0 && q[alen + 1] == '"') return 1;
                else if (*q == '"') { const uint8_t *close = memchr(q + 1, '"', (size_t)(le - q - 1)); if (!close) break; q = close; }
            return 0;
        }
        p = le + 1;
    }
    return -1;
}

// Find the body of "class <cls>(" in the module's source; false if absent.
static bool class_body(Loader *L, const char *qualified, const uint8_t **body, const uint8_t **end) {
    const char *dot = strrchr(qualified, '.');
    if (!dot) return false;
    char module[600], head[300];
    snprintf(module, sizeof module, "%.*s", (int)(dot - qualified), qualified);
    snprintf(head, sizeof head, "class %s(", dot + 1);
    const CodeFile *cf = code_file(L, module);
    if (!cf) return false;
    size_t hl = strlen(head);
    for (const uint8_t *p = cf->data, *e = cf->data + cf->len; p < e;) {
        const uint8_t *nl = memchr(p, '\n', (size_t)(e - p));
        const uint8_t *le = nl ? nl : e;
        if ((size_t)(le - p) >= hl && memcmp(p, head, hl) == 0) {
            *body = le;
            const uint8_t *q = le;
            while (q < e) { // the body runs until the next line that is not indented
                const uint8_t *n2 = memchr(q + 1, '\n', (size_t)(e - q - 1));
                if (q + 1 < e && q[1] != ' ' && q[1] != '\n') break;
                q = n2 ? n2 : e;
            }
            *end = q;
            return true;
        }
        p = le + 1;
    }
    return false;
}

static bool is_module(const PkObj *o) {
    return o && o->type == PK_OBJECT && o->cls && o->state && o->state->type == PK_DICT &&
           strncmp(o->cls->s, "__torch__.", 10) == 0;
}

// A module object reached a second time: refused (see the top of the file).
static int walked_twice(Loader *L, PkObj *mod, const char *prefix) {
    if (!mod->walked) { mod->walked = true; return XC_OK; }
    return xc_err(L->err, "%s: module '%.200s' (a %.200s) is an object already read under another name: shared or "
                  "cyclic submodules are not supported", L->path, prefix[0] ? prefix : "(root)", mod->cls->s);
}

static int walk_script(Loader *L, PkObj *mod, const char *prefix, int depth) {
    if (depth > WALK_MAX_DEPTH) return xc_err(L->err, "%s: TorchScript modules nested deeper than %d", L->path, WALK_MAX_DEPTH);
    if (walked_twice(L, mod, prefix) != XC_OK) return XC_ERR;
    PkObj *attrs = mod->state;
    const uint8_t *body = NULL, *bend = NULL;
    bool known = class_body(L, mod->cls->s, &body, &bend) && listed(body, bend, "__parameters__", "") >= 0;
    char sub[CKPT_MAX_NAME_BYTES + 8];
    for (int pass = 0; pass < 3; pass++) { // parameters, buffers, then submodules (state_dict order)
        for (int64_t i = 0; i + 1 < attrs->n; i += 2) {
            PkObj *k = attrs->items[i], *v = attrs->items[i + 1];
            if (k->type != PK_STR) return xc_err(L->err, "%s: TorchScript module attribute name is a %s", L->path, pk_type_name(k));
            if (pass < 2 && v->type == PK_TENSOR) {
                bool take = known ? listed(body, bend, pass == 0 ? "__parameters__" : "__buffers__", k->s) == 1 : pass == 0;
                if (take && add_tensor(L, prefix, k->s, v) != XC_OK) return XC_ERR;
            } else if (pass == 2 && is_module(v)) {
                if (join_name(L, sub, sizeof sub, prefix, k->s) != XC_OK) return XC_ERR;
                strcat(sub, ".");
                if (walk_script(L, v, sub, depth + 1) != XC_OK) return XC_ERR;
            }
        }
    }
    return XC_OK;
}

// An eager nn.Module pickled whole: state {'_parameters': {...}, '_buffers': {...}, '_modules': {...}}.
static int walk_eager(Loader *L, PkObj *mod, const char *prefix, int depth) {
    if (depth > WALK_MAX_DEPTH) return xc_err(L->err, "%s: modules nested deeper than %d", L->path, WALK_MAX_DEPTH);
    if (walked_twice(L, mod, prefix) != XC_OK) return XC_ERR;
    PkObj *st = mod->state;
    PkObj *params = pk_dict_get(st, "_parameters"), *bufs = pk_dict_get(st, "_buffers"), *mods = pk_dict_get(st, "_modules");
    PkObj *nonpersistent = pk_dict_get(st, "_non_persistent_buffers_set");
    char sub[CKPT_MAX_NAME_BYTES + 8];
    for (int pass = 0; pass < 2; pass++) {
        PkObj *d = pass ? bufs : params;
        for (int64_t i = 0; d && i + 1 < d->n; i += 2) {
            PkObj *k = d->items[i], *v = d->items[i + 1];
            if (k->type != PK_STR || v->type != PK_TENSOR) continue;
            bool skip = false;
            for (int64_t j = 0; pass && nonpersistent && nonpersistent->type == PK_LIST && j < nonpersistent->n; j++)
                if (nonpersistent->items[j]->type == PK_STR && strcmp(nonpersistent->items[j]->s, k->s) == 0) skip = true;
            if (!skip && add_tensor(L, prefix, k->s, v) != XC_OK) return XC_ERR;
        }
    }
    for (int64_t i = 0; mods && mods->type == PK_DICT && i + 1 < mods->n; i += 2) {
        PkObj *k = mods->items[i], *v = mods->items[i + 1];
        if (k->type != PK_STR || v->type != PK_OBJECT || !v->state || v->state->type != PK_DICT) continue;
        if (join_name(L, sub, sizeof sub, prefix, k->s) != XC_OK) return XC_ERR;
        strcat(sub, ".");
        if (walk_eager(L, v, sub, depth + 1) != XC_OK) return XC_ERR;
    }
    return XC_OK;
}

static bool is_eager_module(const PkObj *o) {
    return o && o->type == PK_OBJECT && o->state && o->state->type == PK_DICT && pk_dict_get(o->state, "_parameters") &&
           pk_dict_get(o->state, "_modules");
}

// The state dict inside the saved object: the object itself, or nested under 'state_dict' / 'model'.
static int collect(Loader *L, PkObj *root) {
    for (int level = 0; level < 4; level++) {
        if (is_module(root)) return walk_script(L, root, "", 0);
        if (is_eager_module(root)) return walk_eager(L, root, "", 0);
        if (root->type != PK_DICT) break;
        PkObj *inner = pk_dict_get(root, "state_dict");
        if (!inner) inner = pk_dict_get(root, "model");
        if (inner && (inner->type == PK_DICT || is_module(inner) || is_eager_module(inner))) { root = inner; continue; }
        for (int64_t i = 0; i + 1 < root->n; i += 2) {
            PkObj *k = root->items[i], *v = root->items[i + 1];
            if (v->type != PK_TENSOR) continue; // non-tensor values of a state dict (rare) are skipped
            if (k->type != PK_STR) return xc_err(L->err, "%s: state dict key is a %s, not a string", L->path, pk_type_name(k));
            if (add_tensor(L, "", k->s, v) != XC_OK) return XC_ERR;
        }
        if (L->n == 0) {
            char keys[300] = "";
            for (int64_t i = 0; i + 1 < root->n && strlen(keys) < 200; i += 2)
                if (root->items[i]->type == PK_STR)
                    snprintf(keys + strlen(keys), sizeof keys - strlen(keys), "%s'%.40s'", i ? ", " : "", root->items[i]->s);
            return xc_err(L->err, "%s: no tensors found in the saved dict (keys: %s)\n"
                          "HINT: a state dict, or one nested as {'model': sd} or {'state_dict': sd}, is expected", L->path, keys);
        }
        return XC_OK;
    }
    return xc_err(L->err, "%s: the saved object is a %s, not a state dict or module", L->path, pk_type_name(root));
}

// Gather a (possibly strided) view of its storage into contiguous float32.
static int materialise(Loader *L, PkObj *t, float *out) {
    PkObj *st = t->cls;
    if (!st->bytes) {
        char name[600];
        snprintf(name, sizeof name, "%sdata/%s", L->prefix, st->s);
        const ZipEntry *e = zip_find(&L->zip, name);
        if (!e || zip_read(&L->zip, e, &st->bytes, &st->owned, L->err) != XC_OK) return XC_ERR;
    }
    int nd = t->ndim;
    int64_t numel = 1, *shape = t->dims, *stride = t->dims + XC_WEIGHT_MAX_DIMS;
    for (int d = 0; d < nd; d++) numel *= shape[d];
    if (numel == 0) return XC_OK;
    bool contiguous = true;
    int64_t expect = 1;
    for (int d = nd - 1; d >= 0; d--) { // size-1 dims may carry any stride
        if (shape[d] != 1 && stride[d] != expect) contiguous = false;
        expect *= shape[d];
        if (!contiguous) break;
    }
    const uint8_t *base = st->bytes;
    int es = st->elem_size;
    if (contiguous) { ckpt_convert(out, base + (size_t)t->i * es, numel, (CkptDtype)st->kind); return XC_OK; }
    int64_t idx[XC_WEIGHT_MAX_DIMS] = {0};
    int64_t off = t->i;
    for (int64_t k = 0; k < numel; k++) {
        ckpt_convert(out + k, base + (size_t)off * es, 1, (CkptDtype)st->kind);
        for (int d = nd - 1; d >= 0; d--) { // odometer increment
            if (++idx[d] < shape[d]) { off += stride[d]; break; }
            off -= (idx[d] - 1) * stride[d];
            idx[d] = 0;
        }
    }
    return XC_OK;
}

static int find_prefix(Loader *L) {
    const char *found = NULL;
    for (int64_t i = 0; i < L->zip.n; i++) {
        const char *nm = L->zip.e[i].name, *slash = strchr(nm, '/');
        if (slash && strcmp(slash, "/data.pkl") == 0) {
            if (found) return xc_err(L->err, "%s: several data.pkl records in one archive (%s, %s)", L->path, found, nm);
            found = nm;
        }
    }
    if (!found) {
        for (int64_t i = 0; i < L->zip.n; i++)
            if (strstr(L->zip.e[i].name, "model.json"))
                return xc_err(L->err, "%s: a TorchScript archive in the pre-1.4 format (model.json), which is not supported\n"
                              "HINT: load and re-save it with a recent torch: torch.jit.save(torch.jit.load(f), out)", L->path);
        return xc_err(L->err, "%s: a zip file without <name>/data.pkl: not a PyTorch checkpoint", L->path);
    }
    size_t n = (size_t)(strchr(found, '/') - found) + 1;
    if (n >= sizeof L->prefix) return xc_err(L->err, "%s: archive folder name too long", L->path);
    memcpy(L->prefix, found, n);
    L->prefix[n] = 0;
    return XC_OK;
}

int weights_parse_torch(WeightSet *ws, const uint8_t *buf, size_t len, const char *path, XcError *err) {
    XC_CHECK(ws->n == 0, "weights_parse_torch: the WeightSet must be empty");
    Loader L = {.path = path, .err = err};
    PkMachine m = {0};
    int rc = XC_ERR;
    if (zip_open(&L.zip, buf, len, path, err) != XC_OK) return XC_ERR;
    if (find_prefix(&L) != XC_OK) goto done;
    char bo_name[600];
    snprintf(bo_name, sizeof bo_name, "%sbyteorder", L.prefix); // written by torch >= 2.1
    const ZipEntry *bo = zip_find(&L.zip, bo_name);
    if (bo) {
        const uint8_t *bo_data; uint8_t *bo_owned;
        if (zip_read(&L.zip, bo, &bo_data, &bo_owned, err) != XC_OK) goto done;
        bool little = bo->size == 6 && memcmp(bo_data, "little", 6) == 0;
        xc_free(bo_owned);
        if (!little) { xc_err(err, "%s: storages are not little-endian (%s), which is not supported", path, bo_name); goto done; }
    }
    char pkl_name[600], where[1200];
    snprintf(pkl_name, sizeof pkl_name, "%sdata.pkl", L.prefix);
    snprintf(where, sizeof where, "%s: %s", path, pkl_name);
    const uint8_t *pkl; uint8_t *pkl_owned;
    if (zip_read(&L.zip, zip_find(&L.zip, pkl_name), &pkl, &pkl_owned, err) != XC_OK) goto done;
    // the pickle may cost PK_BUDGET_BASE plus what the storages it describes occupy in the file
    uint64_t storage_bytes = 0;
    size_t plen = strlen(L.prefix);
    for (int64_t i = 0; i < L.zip.n; i++)
        if (strncmp(L.zip.e[i].name, L.prefix, plen) == 0 && strncmp(L.zip.e[i].name + plen, "data/", 5) == 0)
            storage_bytes += L.zip.e[i].comp_size; // entries do not overlap: at most the file's length
    char why[160];
    snprintf(why, sizeof why, "%llu MiB + the %llu bytes its storages take in the file", (unsigned long long)(PK_BUDGET_BASE >> 20),
             (unsigned long long)storage_bytes);
    PkObj *root;
    rc = pk_load(&m, pkl, zip_find(&L.zip, pkl_name)->size, where, PK_BUDGET_BASE + storage_bytes, why, storage_check, &L, &root, err);
    xc_free(pkl_owned);
    if (rc != XC_OK) goto done;
    rc = XC_ERR;
    if (collect(&L, root) != XC_OK) goto done;
    const char *dup = ckpt_find_duplicate((const char *const *)L.names, L.n);
    if (dup) { xc_err(err, "%s: duplicate tensor name \"%s\"", path, dup); goto done; }
    // every view's size is checked (pickle.c); now what the views of each storage cost together, before any copy
    for (int64_t i = 0; i < L.n; i++) {
        PkObj *t = L.tensors[i], *st = t->cls;
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) numel *= t->dims[d]; // <= the storage's elements
        st->viewed += numel;
        if (st->viewed > CKPT_MAX_VIEW_SHARE * st->i + CKPT_VIEW_SHARE_SLACK) {
            xc_err(err, "%s: tensor \"%s\" and the names before it view storage %sdata/%s (%lld elements) %lld times "
                   "over in all: more than %d copies of one storage are refused", path, L.names[i], L.prefix, st->s,
                   (long long)st->i, (long long)(st->viewed / (st->i ? st->i : 1)), CKPT_MAX_VIEW_SHARE);
            goto done;
        }
    }
    // a deflated storage is inflated whole: its views must use all of it (inflating 1 GB for a few elements would
    // cost far more than the tensors hold)
    for (int64_t i = 0; i < L.n; i++) {
        PkObj *st = L.tensors[i]->cls;
        char name[600];
        snprintf(name, sizeof name, "%sdata/%s", L.prefix, st->s);
        const ZipEntry *e = zip_find(&L.zip, name);
        if (e && e->method != 0 && st->viewed < st->i) {
            xc_err(err, "%s: storage %s is deflated (%llu bytes inflated) but its tensors view only %lld of its %lld elements: "
                   "a compressed storage must be used whole", path, name, (unsigned long long)e->size, (long long)st->viewed,
                   (long long)st->i);
            goto done;
        }
    }
    for (int64_t i = 0; i < L.n; i++) {
        PkObj *t = L.tensors[i];
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) numel *= t->dims[d];
        float *f = xc_malloc((size_t)numel * sizeof(float));
        if (materialise(&L, t, f) != XC_OK) { xc_free(f); goto done; }
        ckpt_append_owned(ws, L.names[i], t->ndim, t->dims, f);
    }
    rc = XC_OK;
done:
    for (int64_t i = 0; i < L.n; i++) xc_free(L.names[i]);
    xc_free(L.names);
    xc_free(L.tensors);
    for (int i = 0; i < L.ncode; i++) { xc_free(L.code[i].name); xc_free(L.code[i].owned); }
    xc_free(L.code);
    pk_free(&m);
    zip_close(&L.zip);
    return rc;
}

int weights_load_torch(WeightSet *ws, const char *path, XcError *err) {
    size_t len;
    uint8_t *buf = ckpt_read_file(path, &len, err);
    if (!buf) return XC_ERR;
    WeightSet tmp = {0};
    int rc = weights_parse_torch(&tmp, buf, len, path, err);
    xc_free(buf);
    if (rc != XC_OK) { weights_free(&tmp); return XC_ERR; }
    *ws = tmp;
    return XC_OK;
}
