// tape.c - step tensors, the tape (record + reverse walk) and the parameter store.
#include "autograd/tensor.h"
#include "autograd/kernels.h"
#include "autograd/rng.h"

#include <stdlib.h>
#include <string.h>

int64_t shape_numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

bool tensor_same_shape(const Tensor *a, const Tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

const char *tensor_shape_str(const Tensor *t, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < t->ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

static void tensor_set_shape(Tensor *t, int ndim, const int64_t *shape) {
    XC_CHECK(ndim >= 0 && ndim <= XT_MAX_DIMS, "tensor rank %d outside 0..%d", ndim, XT_MAX_DIMS);
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        XC_CHECK(shape[i] >= 0, "negative dimension %lld", (long long)shape[i]);
        t->shape[i] = shape[i];
    }
    for (int i = ndim; i < XT_MAX_DIMS; i++) t->shape[i] = 1;
    t->numel = shape_numel(ndim, shape);
}

// ---- graph ------------------------------------------------------------------------------------

void graph_init(Graph *g, size_t step_arena_bytes) {
    memset(g, 0, sizeof *g);
    arena_init(&g->step, "step", step_arena_bytes);
    g->grad_enabled = true;
    if (gemm_profile_on()) { // XCLIP_PROFILE, read once for ops and GEMMs alike
        g->profile = xc_calloc(1, sizeof *g->profile);
        g->profile->last = g->profile->start = xc_now();
        g->profile->gemm_base = xc_malloc(sizeof(GemmProfile));
        *g->profile->gemm_base = gemm_profile_now();
    }
}

void graph_free(Graph *g) {
    if (g->profile) {
        graph_profile_print(g, stderr);
        xc_free(g->profile->gemm_base);
    }
    xc_free(g->profile);
    arena_free(&g->step);
}

static int profile_slot(GraphProfile *p, const OpDef *op) {
    for (int i = 0; i < p->n; i++)
        if (p->op[i] == op) return i;
    if (p->n == GRAPH_PROFILE_OPS) return GRAPH_PROFILE_OPS - 1;
    p->op[p->n] = op;
    return p->n++;
}

void graph_profile_print(const Graph *g, FILE *f) {
    const GraphProfile *p = g->profile;
    if (!p) return;
    double tf = 0, tb = 0;
    for (int i = 0; i < p->n; i++) { tf += p->fwd[i]; tb += p->bwd[i]; }
    if (!p->n) fprintf(f, "profile: no ops recorded (no-grad work records none)\n");
    else fprintf(f, "profile: %-20s %10s %10s %10s\n", "op", "calls", "fwd s", "bwd s");
    for (int i = 0; i < p->n; i++)
        fprintf(f, "profile: %-20s %10lld %10.3f %10.3f\n", p->op[i]->name, (long long)p->calls[i], p->fwd[i], p->bwd[i]);
    if (p->n) fprintf(f, "profile: %-20s %10s %10.3f %10.3f\n", "total", "", tf, tb);
    // the process's GEMMs since the profile started (this graph's, no-grad work's, and any other graph's that ran
    // meanwhile), against the wall time since then
    const double wall = xc_now() - p->start;
    fprintf(f, "profile: %.3f s since the profile started\n", wall);
    const GemmProfile now = gemm_profile_now(), gp = gemm_profile_diff(&now, p->gemm_base);
    gemm_profile_print(&gp, wall, f);
}

void graph_profile_reset(Graph *g) {
    if (!g->profile) return;
    GraphProfile *p = g->profile;
    GemmProfile *base = p->gemm_base;
    memset(p, 0, sizeof *p);
    p->last = p->start = xc_now();
    p->gemm_base = base;
    *base = gemm_profile_now();
}

void graph_reset(Graph *g) {
    arena_reset(&g->step);
    g->pool.n = 0;
    g->last = NULL;
    g->n_nodes = 0;
}

bool graph_set_grad(Graph *g, bool enabled) {
    bool prev = g->grad_enabled;
    g->grad_enabled = enabled;
    return prev;
}

Tensor *tensor_new(Graph *g, int ndim, const int64_t *shape) {
    Tensor *t = arena_calloc(&g->step, sizeof *t);
    tensor_set_shape(t, ndim, shape);
    t->data = arena_alloc(&g->step, (size_t)t->numel * sizeof(float));
    return t;
}

Tensor *tensor_zeros(Graph *g, int ndim, const int64_t *shape) {
    Tensor *t = tensor_new(g, ndim, shape);
    memset(t->data, 0, (size_t)t->numel * sizeof(float));
    return t;
}

Tensor *tensor_from(Graph *g, int ndim, const int64_t *shape, const float *src) {
    Tensor *t = tensor_new(g, ndim, shape);
    memcpy(t->data, src, (size_t)t->numel * sizeof(float));
    return t;
}

Tensor *tensor_wrap(Graph *g, int ndim, const int64_t *shape, const float *data) {
    Tensor *t = arena_calloc(&g->step, sizeof *t);
    t->ndim = ndim;
    memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    t->numel = shape_numel(ndim, shape);
    t->data = (float *)data;
    return t;
}

static float *pool_take(GradPool *p, size_t bytes) {
    for (int i = p->n - 1; i >= 0; i--)
        if (p->bytes[i] == bytes) {
            float *b = p->buf[i];
            p->buf[i] = p->buf[p->n - 1];
            p->bytes[i] = p->bytes[p->n - 1];
            p->n--;
            return b;
        }
    return NULL;
}

static void pool_give(GradPool *p, float *buf, size_t bytes) {
    if (p->n == GRAPH_POOL_SLOTS) return; // full: the buffer stays in the arena unused until reset
    p->buf[p->n] = buf;
    p->bytes[p->n] = bytes;
    p->n++;
}

// A gradient buffer for t from the pool (same size) or the step arena; zeroed if zero.
static float *grad_alloc(Graph *g, Tensor *t, bool zero) {
    XC_CHECK(!t->is_param || t->grad_transient, "parameter %s has no gradient buffer (frozen?)", t->name ? t->name : "?");
    size_t bytes = (size_t)t->numel * sizeof(float);
    float *b = pool_take(&g->pool, bytes);
    if (!b) b = arena_alloc(&g->step, bytes);
    if (zero) memset(b, 0, bytes);
    return t->grad = b;
}

float *tensor_grad(Graph *g, Tensor *t) { return t->grad ? t->grad : grad_alloc(g, t, true); }

float *tensor_grad_overwrite(Graph *g, Tensor *t, bool *fresh) {
    *fresh = !t->grad;
    return t->grad ? t->grad : grad_alloc(g, t, false);
}

bool graph_overwritable(const Graph *g, const Tensor *t) {
    if (t->is_param || !arena_owns(&g->step, t->data)) return false;
    if (g->grad_enabled) return g->last && g->last->out == t && g->last->op->output_unread;
    return !t->requires_grad;
}

bool graph_needs_grad(const Graph *g, Tensor *const *in, int n_in) {
    if (!g->grad_enabled) return false;
    for (int i = 0; i < n_in; i++)
        if (in[i] && in[i]->requires_grad) return true;
    return false;
}

TapeNode *graph_record(Graph *g, const OpDef *op, Tensor *out, Tensor *const *in, int n_in) {
    XC_CHECK(op->backward, "op %s has no backward but one of its inputs requires grad", op->name);
    XC_CHECK(n_in <= XT_MAX_INPUTS, "op %s: %d inputs, at most %d", op->name, n_in, XT_MAX_INPUTS);
    TapeNode *node = arena_calloc(&g->step, sizeof *node);
    node->op = op;
    node->out = out;
    node->n_in = n_in;
    for (int i = 0; i < n_in; i++) node->in[i] = in[i];
    node->prev = g->last;
    g->last = node;
    g->n_nodes++;
    out->requires_grad = true;
    if (g->profile) {
        double now = xc_now();
        int k = profile_slot(g->profile, op);
        g->profile->fwd[k] += now - g->profile->last;
        g->profile->calls[k]++;
        g->profile->last = now;
    }
    return node;
}

// Runs the backward of every node from `from` back to (not including) `stop`.
static void tape_walk(Graph *g, TapeNode *from, TapeNode *stop) {
    if (g->param_ready) // the earliest node that uses each parameter completes its gradient
        for (TapeNode *n = from; n && n != stop; n = n->prev)
            for (int i = 0; i < n->n_in; i++)
                if (n->in[i] && n->in[i]->is_param) n->in[i]->first_use = n;
    for (TapeNode *n = from; n && n != stop; n = n->prev) {
        if (n->out->grad) { // else nothing flowed into this node's output
            double t0 = g->profile ? xc_now() : 0;
            n->op->backward(g, n);
            if (g->profile) g->profile->bwd[profile_slot(g->profile, n->op)] += xc_now() - t0;
            if (g->backward_tick) g->backward_tick(g->param_ready_ctx);
            // every consumer of n->out ran before n: its gradient is complete and now dead (NULL: the backward
            // handed the buffer on to an input, see add_grad_same_shape)
            if (!n->out->is_param && n->out->grad) {
                pool_give(&g->pool, n->out->grad, (size_t)n->out->numel * sizeof(float));
                n->out->grad = NULL;
            }
        }
        // a parameter's earliest use completes its gradient, even when that node itself got none (other
        // consumers may have given the parameter one)
        if (g->param_ready)
            for (int i = 0; i < n->n_in; i++) {
                Tensor *p = n->in[i];
                if (!p || !p->is_param || p->first_use != n || !p->grad) continue;
                bool dup = false; // the same parameter twice among this node's inputs: once is enough
                for (int j = 0; j < i; j++) dup |= n->in[j] == p;
                if (dup) continue;
                g->param_ready(g->param_ready_ctx, p);
                if (p->grad_transient) {
                    pool_give(&g->pool, p->grad, (size_t)p->numel * sizeof(float));
                    p->grad = NULL;
                }
            }
    }
}

static void backward_seeded(Graph *g) {
    bool prev = graph_set_grad(g, false); // backward kernels record nothing
    tape_walk(g, g->last, NULL);
    if (g->profile) g->profile->last = xc_now();
    graph_set_grad(g, prev);
}

void graph_backward_from(Graph *g, Tensor *out, const float *dout) {
    XC_CHECK(out->requires_grad, "backward from a tensor that does not require grad");
    float *go = tensor_grad(g, out);
    for (int64_t i = 0; i < out->numel; i++) go[i] += dout[i];
    backward_seeded(g);
}

// ---- gradient checkpointing ------------------------------------------------------------------
typedef struct CheckpointCtx {
    CheckpointFn fn;
    void *ctx;          // copy of the caller's context
    bool has_rng;
    Rng rng;            // the random stream as the forward found it, replayed by the recomputation
} CheckpointCtx;

static void checkpoint_backward(Graph *g, TapeNode *node) {
    CheckpointCtx *c = node->ctx;
    Tensor *x = node->in[0];
    float *gx = x->requires_grad ? tensor_grad(g, x) : NULL; // before the mark: it must survive
    ArenaMark mark = arena_mark(&g->step);
    TapeNode *last = g->last;
    int64_t n_nodes = g->n_nodes;
    // recompute with the tape on, from a leaf that shares x's data
    Tensor *xl = arena_calloc(&g->step, sizeof *xl);
    *xl = *x;
    xl->grad = NULL;
    xl->is_param = false;
    xl->name = NULL;
    xl->requires_grad = x->requires_grad;
    Rng rng = c->rng;
    graph_set_grad(g, true);
    Tensor *y = c->fn(g, c->ctx, xl, c->has_rng ? &rng : NULL);
    graph_set_grad(g, false);
    if (y->requires_grad) {
        float *gy = tensor_grad(g, y);
        for (int64_t i = 0; i < y->numel; i++) gy[i] += node->out->grad[i];
        tape_walk(g, g->last, last);
    }
    if (gx && xl->grad)
        for (int64_t i = 0; i < x->numel; i++) gx[i] += xl->grad[i];
    g->last = last;
    g->n_nodes = n_nodes;
    arena_rewind(&g->step, mark);
    int k = 0; // forget recycled buffers that lived in the released region
    for (int i = 0; i < g->pool.n; i++)
        if (arena_owns(&g->step, g->pool.buf[i])) {
            g->pool.buf[k] = g->pool.buf[i];
            g->pool.bytes[k++] = g->pool.bytes[i];
        }
    g->pool.n = k;
}

static const OpDef opdef_checkpoint = {.name = "checkpoint", .backward = checkpoint_backward};

// y = fn(x) into a tensor allocated first; everything fn allocated is released afterwards.
Tensor *graph_run_released(Graph *g, CheckpointFn fn, const void *ctx, Tensor *x, Rng *rng) {
    Tensor *y = tensor_new(g, x->ndim, x->shape);
    ArenaMark mark = arena_mark(&g->step);
    bool prev = graph_set_grad(g, false);
    Tensor *t = fn(g, ctx, x, rng);
    graph_set_grad(g, prev);
    XC_CHECK(tensor_same_shape(t, x), "op_checkpoint: the function must keep the input's shape");
    memcpy(y->data, t->data, (size_t)y->numel * sizeof(float));
    arena_rewind(&g->step, mark);
    return y;
}

Tensor *op_checkpoint(Graph *g, CheckpointFn fn, const void *ctx, size_t ctx_bytes, Tensor *x, Rng *rng) {
    if (!g->grad_enabled) return graph_run_released(g, fn, ctx, x, rng); // no-grad: nothing to recompute later
    CheckpointCtx *c = arena_calloc(&g->step, sizeof *c);
    c->fn = fn;
    c->ctx = arena_alloc(&g->step, ctx_bytes);
    memcpy(c->ctx, ctx, ctx_bytes);
    c->has_rng = rng != NULL;
    if (rng) c->rng = *rng;
    Tensor *y = graph_run_released(g, fn, ctx, x, rng);
    graph_record(g, &opdef_checkpoint, y, &x, 1)->ctx = c;
    return y;
}

void graph_backward(Graph *g, Tensor *loss) {
    XC_CHECK(loss->numel == 1, "graph_backward needs a scalar loss, got %lld elements", (long long)loss->numel);
    XC_CHECK(loss->requires_grad, "backward from a tensor that does not require grad");
    tensor_grad(g, loss)[0] += 1.0f;
    backward_seeded(g);
}

// ---- parameter store --------------------------------------------------------------------------

void param_store_init(ParamStore *ps, const char *name) {
    memset(ps, 0, sizeof *ps);
    arena_init(&ps->mem, name, 0);
}

void param_store_free(ParamStore *ps) {
    xc_unmap_pages(ps->spill, ps->spill_bytes);
    arena_free(&ps->mem);
    xc_free(ps->p);
    memset(ps, 0, sizeof *ps);
}

static Tensor *param_alloc(ParamStore *ps, const char *name, int ndim, const int64_t *shape, bool trainable) {
    XC_CHECK(!param_find(ps, name), "parameter %s defined twice", name);
    Tensor *t = arena_calloc(&ps->mem, sizeof *t);
    tensor_set_shape(t, ndim, shape);
    size_t len = strlen(name) + 1;
    char *nm = arena_alloc(&ps->mem, len);
    memcpy(nm, name, len);
    t->name = nm;
    t->is_param = true;
    t->index = ps->n;
    t->data = arena_calloc(&ps->mem, (size_t)t->numel * sizeof(float));
    if (ps->n == ps->cap) {
        ps->cap = ps->cap ? 2 * ps->cap : 64;
        ps->p = xc_realloc(ps->p, (size_t)ps->cap * sizeof *ps->p);
    }
    ps->p[ps->n++] = t;
    ps->total += t->numel;
    param_set_trainable(ps, t, trainable);
    return t;
}

Tensor *param_new(ParamStore *ps, const char *name, int ndim, const int64_t *shape) {
    return param_alloc(ps, name, ndim, shape, !ps->create_frozen);
}

Tensor *param_new_frozen(ParamStore *ps, const char *name, int ndim, const int64_t *shape) {
    return param_alloc(ps, name, ndim, shape, false);
}

Tensor *param_find(const ParamStore *ps, const char *name) {
    for (int i = 0; i < ps->n; i++)
        if (strcmp(ps->p[i]->name, name) == 0) return ps->p[i];
    return NULL;
}

void param_store_zero_grad(ParamStore *ps) {
    for (int i = 0; i < ps->n; i++)
        if (ps->p[i]->grad) memset(ps->p[i]->grad, 0, (size_t)ps->p[i]->numel * sizeof(float));
}

void param_set_trainable(ParamStore *ps, Tensor *p, bool trainable) {
    XC_CHECK(p->is_param, "param_set_trainable on a non-parameter");
    if (trainable && ps->transient_grads) p->grad_transient = true; // allocated per backward pass
    else if (trainable && !p->grad) p->grad = arena_calloc(&ps->mem, (size_t)p->numel * sizeof(float));
    p->requires_grad = trainable;
}
