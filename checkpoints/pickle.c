// pickle.c - see pickle.h. The opcodes of protocols 2-4 that torch.save / torch.jit.save and plain
// Python objects use (plus the text GET/PUT/INT of protocol 0); anything else (INST, OBJ, EXT*,
// out-of-band buffers...) is refused with its byte offset.
#include "checkpoints/pickle.h"
#include "checkpoints/hash64.h"

#include <stdlib.h>
#include <string.h>

#define PK_BLOCK 1024

typedef struct Vm {
    PkMachine *m;
    const uint8_t *p, *start, *end;
    const char *where;
    XcError *err;
    PkStorageCheck check;
    void *ctx;
} Vm;

static int vm_fail(Vm *vm, const char *fmt, const char *arg) {
    char what[600];
    snprintf(what, sizeof what, fmt, arg ? arg : "");
    return xc_err(vm->err, "%s: pickle: %s at byte %lld", vm->where, what, (long long)(vm->p - vm->start));
}

// Count bytes the machine is about to allocate against its budget (pk_load); refuse past it.
static int charge(Vm *vm, uint64_t bytes) {
    PkMachine *m = vm->m;
    if (!xc_add_u64(m->used, bytes, &m->used) || m->used > m->budget) {
        char msg[200];
        snprintf(msg, sizeof msg, "its objects would take more than the %llu MB of memory allowed for this file "
                 "(%s)", (unsigned long long)(m->budget >> 20), m->budget_why);
        return vm_fail(vm, "%s", msg);
    }
    return XC_OK;
}

static PkObj *new_obj(Vm *vm, PkType type) {
    PkMachine *m = vm->m;
    if (m->nobj >= PK_MAX_OBJECTS) { vm_fail(vm, "more objects than the limit", NULL); return NULL; }
    if (m->nobj % PK_BLOCK == 0) {
        if (charge(vm, PK_BLOCK * sizeof(PkObj) + sizeof *m->blocks) != XC_OK) return NULL;
        m->blocks = xc_realloc(m->blocks, (size_t)(m->nblocks + 1) * sizeof *m->blocks);
        m->blocks[m->nblocks++] = xc_calloc(PK_BLOCK, sizeof(PkObj));
    }
    PkObj *o = &m->blocks[m->nobj / PK_BLOCK][m->nobj % PK_BLOCK];
    m->nobj++;
    o->type = type;
    return o;
}

static int push_item(Vm *vm, PkObj *c, PkObj *x) {
    if (c->n == c->cap) {
        int64_t cap = c->cap ? 2 * c->cap : 4;
        if (charge(vm, (uint64_t)(cap - c->cap) * sizeof *c->items) != XC_OK) return XC_ERR;
        c->cap = cap;
        c->items = xc_realloc(c->items, (size_t)c->cap * sizeof *c->items);
    }
    c->items[c->n++] = x;
    return XC_OK;
}

static int push(Vm *vm, PkObj *o) {
    PkMachine *m = vm->m;
    if (!o) return XC_ERR;
    if (m->sp == m->stack_cap) {
        if (m->stack_cap >= PK_MAX_STACK) return vm_fail(vm, "stack deeper than the limit", NULL);
        int64_t cap = m->stack_cap ? 2 * m->stack_cap : 64;
        if (charge(vm, (uint64_t)(cap - m->stack_cap) * sizeof *m->stack) != XC_OK) return XC_ERR;
        m->stack_cap = cap;
        m->stack = xc_realloc(m->stack, (size_t)m->stack_cap * sizeof *m->stack);
    }
    m->stack[m->sp++] = o;
    return XC_OK;
}

static PkObj *pop(Vm *vm) {
    int64_t floor = vm->m->nmarks ? vm->m->marks[vm->m->nmarks - 1] : 0;
    if (vm->m->sp <= floor) { vm_fail(vm, "stack underflow", NULL); return NULL; }
    return vm->m->stack[--vm->m->sp];
}

static PkObj *top(Vm *vm) {
    int64_t floor = vm->m->nmarks ? vm->m->marks[vm->m->nmarks - 1] : 0;
    if (vm->m->sp <= floor) { vm_fail(vm, "stack underflow", NULL); return NULL; }
    return vm->m->stack[vm->m->sp - 1];
}

// Pop everything above the last MARK into *items / *n (pointing into the stack, valid until the next push).
static int pop_mark(Vm *vm, PkObj ***items, int64_t *n) {
    PkMachine *m = vm->m;
    if (!m->nmarks) return vm_fail(vm, "no MARK on the stack", NULL);
    int64_t k = m->marks[--m->nmarks];
    *items = m->stack + k;
    *n = m->sp - k;
    m->sp = k;
    return XC_OK;
}

static int need(Vm *vm, uint64_t n) {
    if ((uint64_t)(vm->end - vm->p) < n) return vm_fail(vm, "truncated pickle", NULL);
    return XC_OK;
}

static int make_str(Vm *vm, PkType type, uint64_t len) {
    if (len > PK_MAX_STRING) return vm_fail(vm, "string longer than the 64 MB limit", NULL);
    if (need(vm, len) != XC_OK || charge(vm, len + 1) != XC_OK) return XC_ERR;
    PkObj *o = new_obj(vm, type);
    if (!o) return XC_ERR;
    o->s = xc_malloc((size_t)len + 1);
    memcpy(o->s, vm->p, (size_t)len);
    o->s[len] = 0;
    o->slen = (size_t)len;
    vm->p += len;
    return push(vm, o);
}

// A text line (GLOBAL, GET, PUT, INT): up to '\n', at most 256 bytes.
static int read_line(Vm *vm, char *out, size_t cap) {
    const uint8_t *nl = memchr(vm->p, '\n', (size_t)(vm->end - vm->p));
    if (!nl) return vm_fail(vm, "truncated pickle (unterminated line)", NULL);
    size_t n = (size_t)(nl - vm->p);
    if (n >= cap) return vm_fail(vm, "text argument too long", NULL);
    memcpy(out, vm->p, n);
    out[n] = 0;
    if (memchr(out, 0, n)) return vm_fail(vm, "NUL in text argument", NULL);
    vm->p = nl + 1;
    return XC_OK;
}

static int memo_put(Vm *vm, uint64_t idx) {
    PkMachine *m = vm->m;
    if (idx >= PK_MAX_MEMO) {
        char num[32];
        snprintf(num, sizeof num, "%llu", (unsigned long long)idx);
        return vm_fail(vm, "memo index %s too large", num);
    }
    PkObj *o = top(vm);
    if (!o) return XC_ERR;
    if ((int64_t)idx >= m->memo_cap) {
        int64_t cap = m->memo_cap ? m->memo_cap : 64;
        while (cap <= (int64_t)idx) cap *= 2;
        if (charge(vm, (uint64_t)(cap - m->memo_cap) * sizeof *m->memo) != XC_OK) return XC_ERR;
        m->memo = xc_realloc(m->memo, (size_t)cap * sizeof *m->memo);
        memset(m->memo + m->memo_cap, 0, (size_t)(cap - m->memo_cap) * sizeof *m->memo);
        m->memo_cap = cap;
    }
    if (!m->memo[idx]) m->memo_count++;
    m->memo[idx] = o;
    return XC_OK;
}

static int memo_get(Vm *vm, uint64_t idx) {
    PkMachine *m = vm->m;
    if ((int64_t)idx >= m->memo_cap || idx >= PK_MAX_MEMO || !m->memo[idx]) {
        char num[32];
        snprintf(num, sizeof num, "%llu", (unsigned long long)idx);
        return vm_fail(vm, "memo index %s is not set", num);
    }
    return push(vm, m->memo[idx]);
}

static int push_int(Vm *vm, int64_t v) {
    PkObj *o = new_obj(vm, PK_INT);
    if (!o) return XC_ERR;
    o->i = v;
    return push(vm, o);
}

static const struct { const char *name; CkptDtype dt; int size; } storage_types[] = {
    {"FloatStorage", CKPT_F32, 4}, {"HalfStorage", CKPT_F16, 2}, {"BFloat16Storage", CKPT_BF16, 2},
    {"DoubleStorage", CKPT_F64, 8}, {"LongStorage", CKPT_INT_OTHER, 8}, {"IntStorage", CKPT_INT_OTHER, 4},
    {"ShortStorage", CKPT_INT_OTHER, 2}, {"CharStorage", CKPT_INT_OTHER, 1}, {"ByteStorage", CKPT_INT_OTHER, 1},
    {"BoolStorage", CKPT_INT_OTHER, 1},
};

static int push_global(Vm *vm, const char *module, const char *name) {
    size_t n = strlen(module) + strlen(name) + 2;
    PkObj *o = charge(vm, n) == XC_OK ? new_obj(vm, PK_GLOBAL) : NULL;
    if (!o) return XC_ERR;
    o->s = xc_malloc(n);
    snprintf(o->s, n, "%s.%s", module, name);
    o->slen = n - 1;
    o->kind = PKG_OTHER;
    if (strcmp(module, "collections") == 0 && strcmp(name, "OrderedDict") == 0) o->kind = PKG_ORDEREDDICT;
    if (strcmp(module, "torch._utils") == 0) {
        if (strcmp(name, "_rebuild_tensor_v2") == 0) o->kind = PKG_REBUILD_TENSOR;
        if (strcmp(name, "_rebuild_parameter") == 0 || strcmp(name, "_rebuild_parameter_with_state") == 0) o->kind = PKG_REBUILD_PARAM;
    }
    if (strcmp(module, "torch._tensor") == 0 && strcmp(name, "_rebuild_from_type_v2") == 0) o->kind = PKG_REBUILD_FROM_TYPE;
    if (strcmp(module, "torch") == 0)
        for (size_t i = 0; i < sizeof storage_types / sizeof storage_types[0]; i++)
            if (strcmp(name, storage_types[i].name) == 0) {
                o->kind = PKG_STORAGE_TYPE;
                o->elem_size = storage_types[i].size;
                o->i = storage_types[i].dt;
            }
    return push(vm, o);
}

static bool get_int(const PkObj *o, int64_t *v) {
    if (!o || (o->type != PK_INT && o->type != PK_BOOL)) return false;
    *v = o->i;
    return true;
}

// ('storage', storage_type, key, location, numel)
static int persistent_load(Vm *vm, PkObj *pid) {
    int64_t numel;
    if (pid->type != PK_TUPLE || pid->n != 5 || pid->items[0]->type != PK_STR || strcmp(pid->items[0]->s, "storage") != 0)
        return vm_fail(vm, "unsupported persistent id (expected ('storage', type, key, location, numel))", NULL);
    PkObj *st = pid->items[1], *key = pid->items[2];
    if (st->type != PK_GLOBAL || st->kind != PKG_STORAGE_TYPE)
        return vm_fail(vm, "persistent id with an unknown storage type %s", st->type == PK_GLOBAL ? st->s : pk_type_name(st));
    if (key->type != PK_STR || key->slen == 0 || key->slen > 64 || strspn(key->s, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_") != key->slen)
        return vm_fail(vm, "bad storage key in persistent id", NULL);
    if (!get_int(pid->items[4], &numel) || numel < 0) return vm_fail(vm, "bad storage size in persistent id", NULL);
    PkMachine *m = vm->m;
    if (2 * (m->nstorages + 1) > m->storages_cap) { // keep the table at most half full
        int64_t cap = m->storages_cap ? 2 * m->storages_cap : 64;
        if (charge(vm, (uint64_t)cap * sizeof *m->storages) != XC_OK) return XC_ERR;
        PkObj **tab = xc_calloc((size_t)cap, sizeof *tab);
        for (int64_t i = 0; i < m->storages_cap; i++) {
            if (!m->storages[i]) continue;
            uint64_t h = hash64(m->storages[i]->s, m->storages[i]->slen, 0) & (uint64_t)(cap - 1);
            while (tab[h]) h = (h + 1) & (uint64_t)(cap - 1);
            tab[h] = m->storages[i];
        }
        xc_free(m->storages);
        m->storages = tab;
        m->storages_cap = cap;
    }
    uint64_t h = hash64(key->s, key->slen, 0) & (uint64_t)(m->storages_cap - 1);
    for (; m->storages[h]; h = (h + 1) & (uint64_t)(m->storages_cap - 1)) {
        PkObj *old = m->storages[h];
        if (strcmp(old->s, key->s) != 0) continue;
        if (old->kind != (int)st->i || old->elem_size != st->elem_size || old->i != numel)
            return vm_fail(vm, "storage key '%s' named again with another type or size", key->s);
        return push(vm, old);
    }
    if (vm->check && vm->check(vm->ctx, key->s, (int)st->i, st->elem_size, numel, vm->err) != XC_OK) return XC_ERR;
    PkObj *o = charge(vm, key->slen + 1) == XC_OK ? new_obj(vm, PK_STORAGE) : NULL;
    if (!o) return XC_ERR;
    o->kind = (int)st->i;
    o->elem_size = st->elem_size;
    o->i = numel;
    o->s = xc_malloc(key->slen + 1);
    memcpy(o->s, key->s, key->slen + 1);
    o->slen = key->slen;
    m->storages[h] = o;
    m->nstorages++;
    return push(vm, o);
}

// Does a view (dims of size > 1 only matter) reach some storage element twice? Taken in the order of their
// strides, each dimension must step past everything the smaller ones span. (This also refuses the rare
// interleaved layouts that do not overlap; no torch operation makes them.)
static bool view_overlaps(int nd, const int64_t *size, const int64_t *stride) {
    int order[XC_WEIGHT_MAX_DIMS], k = 0;
    for (int d = 0; d < nd; d++)
        if (size[d] > 1) order[k++] = d;
    for (int i = 1; i < k; i++) // insertion sort by stride
        for (int j = i; j > 0 && stride[order[j]] < stride[order[j - 1]]; j--) {
            int tmp = order[j]; order[j] = order[j - 1]; order[j - 1] = tmp;
        }
    uint64_t span = 1; // elements spanned by the dimensions taken so far (no overflow: checked by the caller)
    for (int i = 0; i < k; i++) {
        int d = order[i];
        if ((uint64_t)stride[d] < span) return true;
        span += (uint64_t)(size[d] - 1) * (uint64_t)stride[d];
    }
    return false;
}

// _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
static PkObj *rebuild_tensor(Vm *vm, PkObj *args) {
    if (args->type != PK_TUPLE || args->n < 4 || args->n > 7) { vm_fail(vm, "malformed _rebuild_tensor_v2 arguments", NULL); return NULL; }
    PkObj *st = args->items[0], *size = args->items[2], *stride = args->items[3];
    int64_t off;
    if (st->type != PK_STORAGE) { vm_fail(vm, "_rebuild_tensor_v2 on a %s, not a storage", pk_type_name(st)); return NULL; }
    if (!get_int(args->items[1], &off) || off < 0) { vm_fail(vm, "bad tensor storage offset", NULL); return NULL; }
    if (size->type != PK_TUPLE || stride->type != PK_TUPLE || size->n != stride->n) { vm_fail(vm, "tensor size and stride are not tuples of one length", NULL); return NULL; }
    if (size->n > XC_WEIGHT_MAX_DIMS) { vm_fail(vm, "tensor with more than 8 dimensions", NULL); return NULL; }
    PkObj *t = charge(vm, 2 * XC_WEIGHT_MAX_DIMS * sizeof(int64_t)) == XC_OK ? new_obj(vm, PK_TENSOR) : NULL;
    if (!t) return NULL;
    t->cls = st;
    t->i = off;
    t->ndim = (int)size->n;
    t->dims = xc_malloc(2 * XC_WEIGHT_MAX_DIMS * sizeof(int64_t));
    uint64_t numel = 1, nonzero = 1, last = (uint64_t)off, bytes; // nonzero: the product of the dims other than 0
    for (int d = 0; d < t->ndim; d++) {
        int64_t sz, sd;
        if (!get_int(size->items[d], &sz) || !get_int(stride->items[d], &sd)) { vm_fail(vm, "tensor size/stride entries must be integers", NULL); return NULL; }
        if (sz < 0) { vm_fail(vm, "negative tensor dimension", NULL); return NULL; }
        if (sd < 0) { vm_fail(vm, "negative tensor stride", NULL); return NULL; }
        t->dims[d] = sz;
        t->dims[XC_WEIGHT_MAX_DIMS + d] = sd;
        uint64_t span;
        if (!xc_mul_u64(numel, (uint64_t)sz, &numel) || !xc_mul_u64(nonzero, sz ? (uint64_t)sz : 1, &nonzero)) {
            vm_fail(vm, "tensor element count overflows", NULL);
            return NULL;
        }
        if (sz > 0 && (!xc_mul_u64((uint64_t)(sz - 1), (uint64_t)sd, &span) || !xc_add_u64(last, span, &last))) {
            vm_fail(vm, "tensor strides overflow", NULL); return NULL;
        }
    }
    // in bytes: as stored, and as the float32 copy the loader makes (the wider of the two); an empty tensor too,
    // as if its zero dims were 1, so that no product of its dims in any order overflows
    if (!xc_mul_u64(nonzero, (uint64_t)(st->elem_size > 4 ? st->elem_size : 4), &bytes) || bytes > ((uint64_t)1 << 62)) {
        vm_fail(vm, "tensor byte size overflows", NULL);
        return NULL;
    }
    if (numel == 0) return t;
    if (last >= (uint64_t)st->i) {
        char msg[160];
        snprintf(msg, sizeof msg, "tensor view (offset %lld, last element %llu) lies outside its storage of %lld elements",
                 (long long)off, (unsigned long long)last, (long long)st->i);
        vm_fail(vm, "%s", msg);
        return NULL;
    }
    if (view_overlaps(t->ndim, t->dims, t->dims + XC_WEIGHT_MAX_DIMS)) {
        char msg[200];
        int len = snprintf(msg, sizeof msg, "tensor view of size (");
        for (int d = 0; d < t->ndim && len < 150; d++) len += snprintf(msg + len, sizeof msg - (size_t)len, "%s%lld", d ? ", " : "", (long long)t->dims[d]);
        len += snprintf(msg + len, sizeof msg - (size_t)len, ") stride (");
        for (int d = 0; d < t->ndim && len < 180; d++) len += snprintf(msg + len, sizeof msg - (size_t)len, "%s%lld", d ? ", " : "", (long long)t->dims[XC_WEIGHT_MAX_DIMS + d]);
        vm_fail(vm, "%s) repeats elements of its storage (a stride of 0 or overlapping strides), which is not supported", msg);
        return NULL;
    }
    return t;
}

static int do_reduce(Vm *vm, PkObj *fn, PkObj *args, bool newobj, int depth) {
    if (fn->type != PK_GLOBAL) return vm_fail(vm, "call of a %s, not a global", pk_type_name(fn));
    if (args->type != PK_TUPLE) return vm_fail(vm, "call arguments are a %s, not a tuple", pk_type_name(args));
    PkObj *r = NULL;
    switch (fn->kind) {
    case PKG_ORDEREDDICT:
        if (args->n != 0) return vm_fail(vm, "OrderedDict with constructor arguments is not supported", NULL);
        r = new_obj(vm, PK_DICT);
        break;
    case PKG_REBUILD_TENSOR:
        if (newobj) return vm_fail(vm, "NEWOBJ on _rebuild_tensor_v2", NULL);
        r = rebuild_tensor(vm, args);
        break;
    case PKG_REBUILD_FROM_TYPE: // (func, subclass, args, state): rebuild with func(*args), drop the subclass
        if (newobj || depth > 0 || args->n != 4 || args->items[0]->type != PK_GLOBAL || args->items[0]->kind != PKG_REBUILD_TENSOR)
            return vm_fail(vm, "unsupported _rebuild_from_type_v2 arguments", NULL);
        return do_reduce(vm, args->items[0], args->items[2], false, depth + 1);
    case PKG_REBUILD_PARAM:
        if (args->n < 1 || args->items[0]->type != PK_TENSOR) return vm_fail(vm, "_rebuild_parameter without a tensor", NULL);
        r = args->items[0];
        break;
    default: // anything else: an inert record of the call, never executed
        r = new_obj(vm, PK_OBJECT);
        if (r) { r->cls = fn; r->args = args; }
    }
    return r ? push(vm, r) : XC_ERR;
}

static int do_setitems(Vm *vm, PkObj *target, PkObj **kv, int64_t n) {
    if (n % 2) return vm_fail(vm, "SETITEMS with an odd number of items", NULL);
    if (target->type == PK_OBJECT) return XC_OK; // dict subclass we do not know (e.g. a yacs CfgNode): dropped
    if (target->type != PK_DICT) return vm_fail(vm, "SETITEM on a %s", pk_type_name(target));
    for (int64_t i = 0; i < n; i++)
        if (push_item(vm, target, kv[i]) != XC_OK) return XC_ERR;
    return XC_OK;
}

static int do_appends(Vm *vm, PkObj *target, PkObj **xs, int64_t n) {
    if (target->type == PK_OBJECT) return XC_OK; // list subclass: dropped
    if (target->type != PK_LIST) return vm_fail(vm, "APPEND on a %s", pk_type_name(target));
    for (int64_t i = 0; i < n; i++)
        if (push_item(vm, target, xs[i]) != XC_OK) return XC_ERR;
    return XC_OK;
}

static int make_tuple(Vm *vm, PkObj **xs, int64_t n) {
    PkObj *t = new_obj(vm, PK_TUPLE);
    if (!t) return XC_ERR;
    for (int64_t i = 0; i < n; i++)
        if (push_item(vm, t, xs[i]) != XC_OK) return XC_ERR;
    return push(vm, t);
}

// One opcode. Returns 1 at STOP, XC_OK to continue, XC_ERR on error.
static int step(Vm *vm, PkObj **root) {
    PkMachine *m = vm->m;
    uint8_t op = *vm->p++;
    PkObj *a, *b, *c, **xs = NULL;
    int64_t n = 0;
    char line[260], line2[260];
    switch (op) {
    case 0x80: if (need(vm, 1)) return XC_ERR; if (*vm->p > 5) return vm_fail(vm, "unsupported pickle protocol", NULL); vm->p++; return XC_OK; // PROTO
    case 0x95: if (need(vm, 8)) return XC_ERR; vm->p += 8; return XC_OK;        // FRAME: the length is informational
    case '.':  if (!(a = pop(vm))) return XC_ERR; *root = a; return 1;           // STOP
    case '(':                                                                     // MARK
        if (m->nmarks == PK_MAX_MARKS) return vm_fail(vm, "MARK nesting deeper than the limit", NULL);
        if (m->nmarks == m->marks_cap) {
            int64_t cap = m->marks_cap ? 2 * m->marks_cap : 16;
            if (charge(vm, (uint64_t)(cap - m->marks_cap) * sizeof *m->marks) != XC_OK) return XC_ERR;
            m->marks_cap = cap;
            m->marks = xc_realloc(m->marks, (size_t)m->marks_cap * sizeof *m->marks);
        }
        m->marks[m->nmarks++] = m->sp;
        return XC_OK;
    case '0': return pop(vm) ? XC_OK : XC_ERR;                                   // POP
    case '1': return pop_mark(vm, &xs, &n);                                      // POP_MARK
    case '2': if (!(a = top(vm))) return XC_ERR; return push(vm, a);             // DUP
    case 'N': return push(vm, new_obj(vm, PK_NONE));
    case 0x88: case 0x89:                                                         // NEWTRUE / NEWFALSE
        if (!(a = new_obj(vm, PK_BOOL))) return XC_ERR;
        a->i = op == 0x88;
        return push(vm, a);
    case 'J': if (need(vm, 4)) return XC_ERR; n = (int32_t)ckpt_le32(vm->p); vm->p += 4; return push_int(vm, n);
    case 'K': if (need(vm, 1)) return XC_ERR; n = *vm->p++; return push_int(vm, n);
    case 'M': if (need(vm, 2)) return XC_ERR; n = ckpt_le16(vm->p); vm->p += 2; return push_int(vm, n);
    case 0x8a: case 0x8b: {                                                       // LONG1 / LONG4
        uint64_t len;
        if (op == 0x8a) { if (need(vm, 1)) return XC_ERR; len = *vm->p++; }
        else { if (need(vm, 4)) return XC_ERR; len = ckpt_le32(vm->p); vm->p += 4; }
        if (len > 8) return vm_fail(vm, "integer wider than 64 bits", NULL);
        if (need(vm, len)) return XC_ERR;
        uint64_t v = 0;
        for (uint64_t k = 0; k < len; k++) v |= (uint64_t)vm->p[k] << (8 * k);
        if (len && len < 8 && (vm->p[len - 1] & 0x80)) v |= ~(uint64_t)0 << (8 * len); // sign-extend
        vm->p += len;
        return push_int(vm, (int64_t)v);
    }
    case 'I': {                                                                   // INT (text)
        if (read_line(vm, line, sizeof line)) return XC_ERR;
        if (strcmp(line, "01") == 0 || strcmp(line, "00") == 0) {
            if (!(a = new_obj(vm, PK_BOOL))) return XC_ERR;
            a->i = line[1] == '1';
            return push(vm, a);
        }
        char *end;
        long long v = strtoll(line, &end, 10);
        if (!line[0] || *end) return vm_fail(vm, "bad INT argument", NULL);
        return push_int(vm, v);
    }
    case 'G': {                                                                   // BINFLOAT, big-endian
        if (need(vm, 8)) return XC_ERR;
        uint64_t bits = 0;
        for (int k = 0; k < 8; k++) bits = bits << 8 | vm->p[k];
        vm->p += 8;
        if (!(a = new_obj(vm, PK_FLOAT))) return XC_ERR;
        memcpy(&a->f, &bits, 8);
        return push(vm, a);
    }
    case 'X': case 'B': if (need(vm, 4)) return XC_ERR; n = ckpt_le32(vm->p); vm->p += 4; return make_str(vm, op == 'X' ? PK_STR : PK_BYTES, (uint64_t)n);
    case 'T': if (need(vm, 4)) return XC_ERR; n = (int32_t)ckpt_le32(vm->p); vm->p += 4;  // BINSTRING (signed length)
        if (n < 0) return vm_fail(vm, "negative string length", NULL);
        return make_str(vm, PK_STR, (uint64_t)n);
    case 0x8c: case 'U': case 'C': if (need(vm, 1)) return XC_ERR; n = *vm->p++; return make_str(vm, op == 'C' ? PK_BYTES : PK_STR, (uint64_t)n);
    case 0x8d: case 0x8e: {                                                       // BINUNICODE8 / BINBYTES8
        if (need(vm, 8)) return XC_ERR;
        uint64_t len = ckpt_le64(vm->p);
        vm->p += 8;
        return make_str(vm, op == 0x8d ? PK_STR : PK_BYTES, len);
    }
    case ')': return push(vm, new_obj(vm, PK_TUPLE));
    case ']': return push(vm, new_obj(vm, PK_LIST));
    case '}': return push(vm, new_obj(vm, PK_DICT));
    case 0x8f: return push(vm, new_obj(vm, PK_LIST));                            // EMPTY_SET (kept as a list)
    case 't': case 0x91:                                                          // TUPLE / FROZENSET
        if (pop_mark(vm, &xs, &n)) return XC_ERR;
        return make_tuple(vm, xs, n);
    case 0x85: case 0x86: case 0x87: {                                            // TUPLE1..3
        int k = op - 0x84;
        int64_t floor = m->nmarks ? m->marks[m->nmarks - 1] : 0;
        if (m->sp - floor < k) return vm_fail(vm, "stack underflow", NULL);
        m->sp -= k;
        return make_tuple(vm, m->stack + m->sp, k);
    }
    case 'l':                                                                     // LIST
        if (pop_mark(vm, &xs, &n)) return XC_ERR;
        if (!(a = new_obj(vm, PK_LIST))) return XC_ERR;
        for (int64_t k = 0; k < n; k++)
            if (push_item(vm, a, xs[k]) != XC_OK) return XC_ERR;
        return push(vm, a);
    case 'd':                                                                     // DICT
        if (pop_mark(vm, &xs, &n)) return XC_ERR;
        if (!(a = new_obj(vm, PK_DICT))) return XC_ERR;
        if (do_setitems(vm, a, xs, n)) return XC_ERR;
        return push(vm, a);
    case 'a':                                                                     // APPEND
        if (!(b = pop(vm)) || !(a = top(vm))) return XC_ERR;
        return do_appends(vm, a, &b, 1);
    case 'e': case 0x90:                                                          // APPENDS / ADDITEMS
        if (pop_mark(vm, &xs, &n) || !(a = top(vm))) return XC_ERR;
        return do_appends(vm, a, xs, n);
    case 's': {                                                                   // SETITEM
        if (!(c = pop(vm)) || !(b = pop(vm)) || !(a = top(vm))) return XC_ERR;
        PkObj *kv[2] = {b, c};
        return do_setitems(vm, a, kv, 2);
    }
    case 'u':                                                                     // SETITEMS
        if (pop_mark(vm, &xs, &n) || !(a = top(vm))) return XC_ERR;
        return do_setitems(vm, a, xs, n);
    case 'c':                                                                     // GLOBAL "module\nname\n"
        if (read_line(vm, line, sizeof line) || read_line(vm, line2, sizeof line2)) return XC_ERR;
        return push_global(vm, line, line2);
    case 0x93:                                                                    // STACK_GLOBAL
        if (!(b = pop(vm)) || !(a = pop(vm))) return XC_ERR;
        if (a->type != PK_STR || b->type != PK_STR || a->slen > 256 || b->slen > 256) return vm_fail(vm, "STACK_GLOBAL needs two short strings", NULL);
        return push_global(vm, a->s, b->s);
    case 'R':                                                                     // REDUCE
        if (!(b = pop(vm)) || !(a = pop(vm))) return XC_ERR;
        return do_reduce(vm, a, b, false, 0);
    case 0x81:                                                                    // NEWOBJ
        if (!(b = pop(vm)) || !(a = pop(vm))) return XC_ERR;
        return do_reduce(vm, a, b, true, 0);
    case 0x92:                                                                    // NEWOBJ_EX (kwargs ignored)
        if (!pop(vm) || !(b = pop(vm)) || !(a = pop(vm))) return XC_ERR;
        return do_reduce(vm, a, b, true, 0);
    case 'b':                                                                     // BUILD
        if (!(b = pop(vm)) || !(a = top(vm))) return XC_ERR;
        if (a->type == PK_OBJECT) { if (!a->state) a->state = b; return XC_OK; }
        if (a->type == PK_DICT || a->type == PK_TENSOR) return XC_OK; // OrderedDict._metadata, tensor attributes
        return vm_fail(vm, "BUILD on a %s", pk_type_name(a));
    case 'Q':                                                                     // BINPERSID
        if (!(a = pop(vm))) return XC_ERR;
        return persistent_load(vm, a);
    case 'q': if (need(vm, 1)) return XC_ERR; n = *vm->p++; return memo_put(vm, (uint64_t)n);
    case 'r': if (need(vm, 4)) return XC_ERR; n = ckpt_le32(vm->p); vm->p += 4; return memo_put(vm, (uint64_t)n);
    case 0x94: return memo_put(vm, (uint64_t)m->memo_count);                     // MEMOIZE
    case 'h': if (need(vm, 1)) return XC_ERR; n = *vm->p++; return memo_get(vm, (uint64_t)n);
    case 'j': if (need(vm, 4)) return XC_ERR; n = ckpt_le32(vm->p); vm->p += 4; return memo_get(vm, (uint64_t)n);
    case 'p': case 'g': {                                                         // PUT / GET (text)
        if (read_line(vm, line, sizeof line)) return XC_ERR;
        char *end;
        unsigned long long v = strtoull(line, &end, 10);
        if (!line[0] || *end || line[0] == '-') return vm_fail(vm, "bad memo index", NULL);
        return op == 'p' ? memo_put(vm, v) : memo_get(vm, v);
    }
    default: {
        char hex[8];
        vm->p--;
        snprintf(hex, sizeof hex, "0x%02x", op);
        return vm_fail(vm, "unsupported opcode %s", hex);
    }
    }
}

int pk_load(PkMachine *m, const uint8_t *buf, size_t len, const char *where, uint64_t budget, const char *budget_why,
            PkStorageCheck check, void *ctx, PkObj **root, XcError *err) {
    memset(m, 0, sizeof *m);
    m->budget = budget;
    m->budget_why = budget_why ? budget_why : "";
    Vm vm = {m, buf, buf, buf + len, where, err, check, ctx};
    *root = NULL;
    while (vm.p < vm.end) {
        int rc = step(&vm, root);
        if (rc == 1) return XC_OK;
        if (rc != XC_OK) return XC_ERR;
    }
    return xc_err(err, "%s: pickle: truncated pickle (no STOP opcode)", where);
}

void pk_free(PkMachine *m) {
    for (int64_t i = 0; i < m->nobj; i++) {
        PkObj *o = &m->blocks[i / PK_BLOCK][i % PK_BLOCK];
        xc_free(o->s);
        xc_free(o->items);
        xc_free(o->dims);
        xc_free(o->owned);
    }
    for (int64_t i = 0; i < m->nblocks; i++) xc_free(m->blocks[i]);
    xc_free(m->blocks);
    xc_free(m->stack);
    xc_free(m->marks);
    xc_free(m->memo);
    xc_free(m->storages);
    memset(m, 0, sizeof *m);
}

const char *pk_type_name(const PkObj *o) {
    static const char *names[] = {"None", "bool", "int", "float", "str", "bytes", "tuple", "list", "dict",
                                  "global", "object", "storage", "tensor"};
    if (!o) return "nothing";
    if (o->type == PK_OBJECT && o->cls && o->cls->s) return o->cls->s;
    return (unsigned)o->type < sizeof names / sizeof names[0] ? names[o->type] : "?";
}

PkObj *pk_dict_get(const PkObj *dict, const char *key) {
    if (!dict || dict->type != PK_DICT) return NULL;
    for (int64_t i = 0; i + 1 < dict->n; i += 2)
        if (dict->items[i]->type == PK_STR && strcmp(dict->items[i]->s, key) == 0) return dict->items[i + 1];
    return NULL;
}
