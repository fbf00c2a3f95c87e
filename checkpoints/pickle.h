// pickle.h - a restricted unpickler for PyTorch checkpoints: it builds inert objects and executes nothing.
//
// Python's pickle is a little stack machine whose REDUCE opcode calls any importable function
// (GLOBAL posix system + REDUCE runs a shell command). This reader never imports or calls anything:
//   - a small allow-list of globals is understood: collections.OrderedDict (-> dict),
//     torch._utils._rebuild_tensor_v2 (-> tensor view of a storage), torch._utils._rebuild_parameter
//     (-> the tensor), torch._tensor._rebuild_from_type_v2 (tensor subclasses: the inner rebuild),
//     torch.{Float,Half,BFloat16,Double,Long,...}Storage (storage types);
//   - every other global (a yacs config class, __torch__.* TorchScript module classes, os.system...)
//     becomes an inert object that records its class name, constructor arguments and BUILD state;
//   - persistent ids ('storage', <storage type>, key, location, numel) become storage references,
//     checked by a callback (the torch loader checks the zip entry exists and has numel elements); every
//     reference to one key is the same object (as torch's loader caches storages by key), so what the views
//     of a storage cost is counted once per storage; one key with two types or sizes is refused;
//   - SETITEM(S) only on dicts, APPEND(S) only on lists, BUILD only on inert objects (items given to an
//     inert dict/list subclass are dropped; BUILD state on a dict or tensor is ignored); anything else
//     is an error. Memo indices, stack size, MARK nesting, string sizes and object count are capped.
// Memory: every allocation of the machine (objects, their item lists, strings, stack, memo) is counted against
// a budget the caller gives, and the pickle is refused when it would pass it. One opcode byte can make an object
// of ~140 bytes (EMPTY_LIST, NONE, APPEND: 8 MB of pickle, deflated to 8 KB, asked for 600 MB), so a cap on the
// pickle's length alone does not bound the memory; the torch loader allows 16 MiB plus the size of the
// archive's storages (what a real checkpoint's pickle costs is a few KB per tensor).
// Tensors are validated when built: dims and strides non-negative, the view inside its storage, its size in
// bytes (as stored and as float32) representable, and no element of the storage seen twice (a stride of 0 or
// overlapping strides would turn a few stored bytes into any number of copies: refused), so a view never holds
// more elements than its storage.
//
//   PkMachine m;
//   PkObj *root = NULL;
//   if (pk_load(&m, bytes, len, "ckpt.pth: data.pkl", 64 << 20, "64 MB", check_storage, ctx, &root, &err) != XC_OK) ...;
//   if (root->type == PK_DICT) for (int64_t i = 0; i < root->n; i += 2) key = root->items[i], val = root->items[i+1];
//   pk_free(&m);  // frees every object
#pragma once
#include <stdint.h>
#include "autograd/util.h"
#include "checkpoints/ckpt_internal.h"

#define PK_MAX_STACK   (1 << 20)
#define PK_MAX_MARKS   (1 << 12)   // MARK nesting
#define PK_MAX_MEMO    (1 << 20)   // memo indices
#define PK_MAX_OBJECTS (1 << 22)
#define PK_MAX_STRING  ((uint64_t)64 << 20)

typedef enum {
    PK_NONE, PK_BOOL, PK_INT, PK_FLOAT, PK_STR, PK_BYTES, PK_TUPLE, PK_LIST, PK_DICT,
    PK_GLOBAL,  // a class or function reference (never called)
    PK_OBJECT,  // an inert instance / call result: cls, args, state
    PK_STORAGE, // a persistent storage reference
    PK_TENSOR,  // a view of a storage
} PkType;

typedef enum {
    PKG_OTHER, PKG_ORDEREDDICT, PKG_REBUILD_TENSOR, PKG_REBUILD_PARAM, PKG_REBUILD_FROM_TYPE, PKG_STORAGE_TYPE
} PkGlobalKind;

typedef struct PkObj {
    PkType type;
    int kind;            // PK_GLOBAL: PkGlobalKind; PK_GLOBAL storage type and PK_STORAGE: CkptDtype
    int elem_size;       // storage types and storages: bytes per element
    int ndim;            // PK_TENSOR
    int64_t i;           // PK_INT / PK_BOOL value; PK_STORAGE numel; PK_TENSOR storage offset (elements)
    double f;            // PK_FLOAT
    char *s;             // PK_STR / PK_BYTES (NUL-terminated copy); PK_GLOBAL "module.name"; PK_STORAGE key
    size_t slen;
    struct PkObj **items; // PK_TUPLE / PK_LIST items; PK_DICT key, value, key, value, ...
    int64_t n, cap;
    struct PkObj *cls, *args, *state; // PK_OBJECT (cls is a PK_GLOBAL); PK_TENSOR: cls = its PK_STORAGE
    int64_t *dims;       // PK_TENSOR: shape[ndim] then stride[ndim]
    const uint8_t *bytes; // PK_STORAGE: its data once the loader has read it
    uint8_t *owned;       //   and the buffer to free with the machine
    int64_t viewed;       // PK_STORAGE: elements of the views the loader takes from it
    bool walked;          // PK_OBJECT: the loader has walked this module already
} PkObj;

// Checks a storage reference; returns XC_OK or fills err.
typedef int (*PkStorageCheck)(void *ctx, const char *key, int dtype, int elem_size, int64_t numel, XcError *err);

typedef struct PkMachine {
    PkObj **blocks; int64_t nblocks, nobj; // object arena
    PkObj **stack; int64_t sp, stack_cap;
    int64_t *marks; int64_t nmarks, marks_cap;
    PkObj **memo; int64_t memo_cap, memo_count;
    PkObj **storages; int64_t storages_cap, nstorages; // by key (open addressing): one object per storage key
    uint64_t budget, used;   // bytes the machine may allocate, bytes it has
    const char *budget_why;  // how the budget was set, for the message
} PkMachine;

// Run the pickle buf[0..len) up to its STOP (bytes after it are never read). budget: the bytes its objects may
// take (budget_why says how it was set, e.g. "16 MiB + the 5 MB of storages"); past it the pickle is refused.
int pk_load(PkMachine *m, const uint8_t *buf, size_t len, const char *where, uint64_t budget, const char *budget_why,
            PkStorageCheck check, void *ctx, PkObj **root, XcError *err);
void pk_free(PkMachine *m);
const char *pk_type_name(const PkObj *o);
// dict lookup by string key (linear), NULL if absent or not a dict
PkObj *pk_dict_get(const PkObj *dict, const char *key);
