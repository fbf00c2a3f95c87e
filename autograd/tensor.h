// tensor.h - float32 tensors, memory arenas, the tape and the parameter store.
//
// Letters (docs/model.md): B videos, T frames, N patches, L tokens, W vision width, E embed dim, D text
// width, K classes, S text context. Layout is PyTorch's: contiguous row-major, same dimension order.
//
// Lifetimes. Parameters, their gradients and optimiser state live in a ParamStore (persistent arena).
// Everything a step creates - activations, tape nodes, activation gradients, saved buffers - comes
// from the Graph's step arena and disappears with graph_reset(). Gradients are owned by those arenas,
// never by the tensor: Tensor.grad is a borrowed pointer that is NULL until backward needs it.
// Backward recycles the gradient of every intermediate tensor once it has been used, so after
// graph_backward only leaves (tensors no op produced) and parameters still hold a gradient.
//
//   ParamStore ps; param_store_init(&ps, "params");
//   Tensor *w = param_new(&ps, "fc.weight", 2, (int64_t[]){10, 64});
//   Graph g; graph_init(&g, 64 << 20);
//   for (int step = 0; step < n; step++) {
//       Tensor *x = tensor_new(&g, 2, (int64_t[]){32, 64});   // fill x->data
//       Tensor *loss = op_soft_cross_entropy(&g, op_linear(&g, x, w, NULL), targets);
//       graph_backward(&g, loss);   // accumulates into w->grad
//       ...optimiser step, param_store_zero_grad(&ps)...
//       graph_reset(&g);            // frees the step's memory; no malloc once sizes are known
//   }
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include "autograd/util.h"

#define XT_MAX_DIMS 5
#define XT_MAX_INPUTS 5

// ---- arenas -----------------------------------------------------------------------------------
// A bump allocator. When a step needs more than the arena holds, the excess comes from overflow
// blocks; arena_reset() then grows the main block to the peak, so from the next step on the same
// work allocates nothing from the system.
typedef struct ArenaBlock ArenaBlock;
typedef struct Arena {
    const char *name;
    char *base;         // main block, cap bytes
    size_t cap, used;
    size_t peak;        // largest total use seen (main + overflow)
    size_t overflow;    // bytes in overflow blocks this cycle
    ArenaBlock *extra;  // overflow blocks, moved into the grown main block at reset
} Arena;

void arena_init(Arena *a, const char *name, size_t initial_bytes);
void *arena_alloc(Arena *a, size_t bytes);     // 64-byte aligned, uninitialised
void *arena_calloc(Arena *a, size_t bytes);    // zeroed
void arena_reset(Arena *a);
void arena_free(Arena *a);
// Scoped release: everything allocated after arena_mark goes away with arena_rewind (main block and
// overflow blocks alike); pointers into it become invalid.
typedef struct ArenaMark {
    size_t used, overflow;
    ArenaBlock *extra;  // newest overflow chunk at the mark
    size_t extra_used;  // and its fill
} ArenaMark;
ArenaMark arena_mark(const Arena *a);
void arena_rewind(Arena *a, ArenaMark m);
// Is p inside memory that is live in the arena (below the current position, or an overflow block)?
bool arena_owns(const Arena *a, const void *p);

// ---- tensors ----------------------------------------------------------------------------------
typedef struct Tensor {
    float *data;                   // numel floats, contiguous row-major
    float *grad;                   // numel floats or NULL; owned by an arena (see above)
    int64_t shape[XT_MAX_DIMS];
    int64_t numel;
    int ndim;
    bool requires_grad;            // gradients flow into this tensor in backward
    bool is_param;                 // grad is persistent (ParamStore), not per step
    bool grad_transient;           // parameter whose grad lives in the step arena (fused optimiser)
    int index;                     // parameters: position in the ParamStore
    const void *first_use;         // parameters: earliest tape node using it (set by backward)
    const char *name;              // official state-dict name for parameters, else NULL
} Tensor;

// ---- tape -------------------------------------------------------------------------------------
struct Graph;
struct TapeNode;
struct Gemm; // autograd/kernels.h: matmul precision and its buffers
typedef void (*BackwardFn)(struct Graph *g, struct TapeNode *node);

typedef struct OpDef {
    const char *name;
    BackwardFn backward;           // NULL: the op has no backward (recording it with grad is an error)
    bool output_unread;            // backward never reads the op's output values (op_add_residual may overwrite them)
} OpDef;

typedef struct TapeNode {
    const OpDef *op;
    Tensor *out;
    Tensor *in[XT_MAX_INPUTS];     // inputs (NULL for unused slots)
    int n_in;
    void *ctx;                     // op-specific saved state, in the step arena
    struct TapeNode *prev;         // tape order is execution order; backward walks prev links
} TapeNode;

// Per-op timing, on when XCLIP_PROFILE is set in the environment: forward time is the time since the
// previous recorded op (so it also counts untaped work in between), backward time is exact.
#define GRAPH_PROFILE_OPS 64
typedef struct GraphProfile {
    const OpDef *op[GRAPH_PROFILE_OPS];
    double fwd[GRAPH_PROFILE_OPS], bwd[GRAPH_PROFILE_OPS];
    int64_t calls[GRAPH_PROFILE_OPS];
    int n;
    double last;                   // time of the previous record
    double start;                  // when the profile started (graph_init, graph_profile_reset)
    struct GemmProfile *gemm_base; // the process's GEMM counts then (kernels.h): printed are those since
} GraphProfile;

// Gradient buffers of intermediate tensors are dead once their producer's backward has run; backward
// hands them back here and tensor_grad reuses them (same size), so a backward pass needs memory for the
// gradients that are live at once, not for all of them.
#define GRAPH_POOL_SLOTS 512
typedef struct GradPool {
    float *buf[GRAPH_POOL_SLOTS];
    size_t bytes[GRAPH_POOL_SLOTS];
    int n;
} GradPool;

typedef struct Graph {
    Arena step;                    // activations, tape, activation grads: reset every step
    GradPool pool;                 // free activation-gradient buffers (within the step arena)
    TapeNode *last;                // newest node
    int64_t n_nodes;
    bool grad_enabled;             // false: nothing is recorded (no-grad mode)
    GraphProfile *profile;         // NULL unless XCLIP_PROFILE is set
    struct Gemm *gemm;             // borrowed: precision of the ops' large matmuls (NULL: float32), set by the owner
    // Called during backward as soon as a parameter's gradient is complete (after the backward of the
    // earliest op that used it). A fused optimiser updates the parameter here; for a parameter with a
    // transient gradient the buffer is recycled right after. Parameters must not be shared between
    // checkpointed regions (each region's recomputation completes its own parameters' gradients).
    void (*param_ready)(void *ctx, Tensor *p);
    void *param_ready_ctx;
    // Called during backward after every node (NULL: nothing): lets communication in flight (MPI moves a
    // non-blocking collective on only inside MPI calls) advance between the parameters' completions.
    void (*backward_tick)(void *ctx);
} Graph;

void graph_init(Graph *g, size_t step_arena_bytes);
void graph_free(Graph *g);
void graph_reset(Graph *g);        // drop the tape and every step tensor
// Per-op times so far (XCLIP_PROFILE=1), then the GEMMs (kernels.h, GemmProfile) since the profile started (graph_init
// or graph_profile_reset): the GEMM counts are process-wide, so they include those of no-grad work and of any other
// graph that ran meanwhile (a text-feature graph during an evaluation, say).
void graph_profile_print(const Graph *g, FILE *f);
void graph_profile_reset(Graph *g); // zero g's op times and count its GEMMs afresh from now (e.g. after a warm-up step)
// Seeds d(loss)/d(loss) = 1 (loss must have one element) and runs the tape backwards.
void graph_backward(Graph *g, Tensor *loss);
// Same, with an explicit upstream gradient for a non-scalar output (numel floats).
void graph_backward_from(Graph *g, Tensor *out, const float *dout);
// No-grad scope: bool prev = graph_set_grad(g, false); ... graph_set_grad(g, prev);
bool graph_set_grad(Graph *g, bool enabled);

// New step tensor (uninitialised / zeroed). shape has ndim entries.
Tensor *tensor_new(Graph *g, int ndim, const int64_t *shape);
Tensor *tensor_zeros(Graph *g, int ndim, const int64_t *shape);
// New step tensor with data copied from src (numel floats).
Tensor *tensor_from(Graph *g, int ndim, const int64_t *shape, const float *src);
// New step tensor over memory the caller owns and keeps alive for the step (e.g. a loader batch): no copy.
Tensor *tensor_wrap(Graph *g, int ndim, const int64_t *shape, const float *data);
// Gradient buffer of t, zero-allocated from the step arena on first use.
float *tensor_grad(Graph *g, Tensor *t);
// For backward kernels that can overwrite: if t has no gradient yet, a buffer that is NOT zeroed and
// *fresh = true (the caller must write every element, e.g. a GEMM with beta 0); otherwise t's gradient to
// accumulate into and *fresh = false. Saves zeroing a buffer only to add to it.
float *tensor_grad_overwrite(Graph *g, Tensor *t, bool *fresh);
int64_t shape_numel(int ndim, const int64_t *shape);
bool tensor_same_shape(const Tensor *a, const Tensor *b);
// "[2, 3, 4]" into buf, for messages.
const char *tensor_shape_str(const Tensor *t, char *buf, size_t n);

// May an op write over t's values, given that its caller never reads t again? With the tape on: t is the newest
// recorded op's output (no op has taken it as input) and that op's backward does not read it (OpDef
// output_unread); with the tape off: t is step memory that requires no gradient. Never a parameter or memory
// the step does not own (a wrapped loader batch).
bool graph_overwritable(const Graph *g, const Tensor *t);
// Called by ops: should an op with these inputs be recorded? (grad mode on and an input needs grad)
bool graph_needs_grad(const Graph *g, Tensor *const *in, int n_in);
// Records a node (only call when graph_needs_grad said yes); sets out->requires_grad. Dies if the
// op has no backward. Returns the node so the op can attach ctx.
TapeNode *graph_record(Graph *g, const OpDef *op, Tensor *out, Tensor *const *in, int n_in);

// ---- gradient checkpointing -------------------------------------------------------------------
// y = fn(x) run without keeping its intermediates; backward recomputes fn with the tape on and
// back-propagates through the recomputation, then releases it. fn must return a tensor of x's shape;
// ctx (ctx_bytes, copied) is passed to every call; rng (may be NULL) is replayed from the state the
// forward found it in, so random masks (drop-path) are the same in the recomputation.
// In no-grad mode it is graph_run_released.
struct Rng;
typedef Tensor *(*CheckpointFn)(struct Graph *g, const void *ctx, Tensor *x, struct Rng *rng);
Tensor *op_checkpoint(Graph *g, CheckpointFn fn, const void *ctx, size_t ctx_bytes, Tensor *x, struct Rng *rng);
// y = fn(x) with nothing recorded and fn's intermediates released as soon as it returns (y survives): an
// evaluation runs block by block in the memory of one block.
Tensor *graph_run_released(Graph *g, CheckpointFn fn, const void *ctx, Tensor *x, struct Rng *rng);

// ---- parameters -------------------------------------------------------------------------------
typedef struct ParamStore {
    Arena mem;          // tensor structs, data and grads
    Tensor **p;         // n parameters in creation order
    int n, cap;
    int64_t total;      // total number of floats
    bool create_frozen; // while set, param_new creates frozen parameters (registering a frozen tower)
    bool transient_grads; // while set, param_new gives trainable parameters transient gradients
    void *spill;        // private mapping of the spill file (param_store_spill), spill_bytes long
    size_t spill_bytes;
} ParamStore;

void param_store_init(ParamStore *ps, const char *name);
void param_store_free(ParamStore *ps);
// A zero-initialised parameter that requires grad (its zeroed grad buffer is allocated with it).
// The name is copied.
Tensor *param_new(ParamStore *ps, const char *name, int ndim, const int64_t *shape);
// Same, frozen: no gradient buffer is allocated until param_set_trainable(ps, p, true).
// (With ParamStore.transient_grads set, param_new makes trainable parameters whose gradient is allocated
// in each backward pass and recycled once Graph.param_ready has consumed it: no persistent gradients.)
Tensor *param_new_frozen(ParamStore *ps, const char *name, int ndim, const int64_t *shape);
Tensor *param_find(const ParamStore *ps, const char *name);
void param_store_zero_grad(ParamStore *ps);
// Freeze or unfreeze a parameter (frozen: no grad is computed for it, backward skips its producers).
void param_set_trainable(ParamStore *ps, Tensor *p, bool trainable);

// Spilling frozen parameters to disk (autograd/spill.c). The frozen parameters select(name) picks move from
// anonymous memory into a private mapping of an unlinked file in dir, bit for bit: their data pointers change,
// their values do not. They cost no resident memory until something reads them (an export, a snapshot), are
// then paged in from the file, and param_store_page_out lets them go again. Writing into them still works
// (copy on write). Meant for a frozen tower needed only now and then, e.g. the text tower once fix_text has
// cached its features. Once per store. On failure (dir unusable, disk full, dir RAM-backed so that spilling
// would save nothing) nothing changes and err says why. *moved (may be NULL) gets the bytes spilled.
int param_store_spill(ParamStore *ps, bool (*select)(const char *name), const char *dir, size_t *moved, XcError *err);
// Drop the resident pages of spilled parameters (after an export or snapshot read them). Never loses data.
void param_store_page_out(ParamStore *ps);
