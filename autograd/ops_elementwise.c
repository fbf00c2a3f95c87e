// ops_elementwise.c - broadcasting add/sub/mul, scale, exp, QuickGELU, dropout and drop-path.
#include "autograd/ops.h"
#include "autograd/kernels.h"

#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <string.h>

// ---- broadcasting ------------------------------------------------------------------------------
// Both operands are aligned to the output's rank; stride 0 marks a stretched dim.
typedef struct Bcast {
    int ndim;
    int64_t shape[XT_MAX_DIMS];
    int64_t sa[XT_MAX_DIMS], sb[XT_MAX_DIMS]; // element strides of a and b in output index space
    int64_t numel;
    bool same;                                // a, b and out have one shape: flat loops
    int64_t b_period;                         // >0: b repeats every b_period elements of out (a == out shape)
} Bcast;

static void bcast_strides(const Tensor *t, int ndim, const int64_t *shape, int64_t *st) {
    int64_t stride = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        int ti = i - (ndim - t->ndim);
        int64_t d = ti >= 0 ? t->shape[ti] : 1;
        st[i] = (d == 1 && shape[i] != 1) ? 0 : stride;
        stride *= d;
    }
}

static Bcast bcast_make(const Tensor *a, const Tensor *b, const char *op) {
    Bcast bc;
    memset(&bc, 0, sizeof bc);
    bc.ndim = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < bc.ndim; i++) {
        int ia = i - (bc.ndim - a->ndim), ib = i - (bc.ndim - b->ndim);
        int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        char s1[64], s2[64];
        XC_CHECK(da == db || da == 1 || db == 1, "%s: shapes %s and %s do not broadcast", op,
                 tensor_shape_str(a, s1, sizeof s1), tensor_shape_str(b, s2, sizeof s2));
        bc.shape[i] = da == 1 ? db : da;
    }
    bc.numel = shape_numel(bc.ndim, bc.shape);
    bcast_strides(a, bc.ndim, bc.shape, bc.sa);
    bcast_strides(b, bc.ndim, bc.shape, bc.sb);
    bc.same = a->numel == bc.numel && b->numel == bc.numel;
    // b a suffix of the output (e.g. a positional embedding added to every frame)? Then b repeats
    // every b->numel output elements and flat loops serve.
    if (!bc.same && a->numel == bc.numel && b->numel > 0) {
        int lead = 0;
        while (lead < b->ndim && b->shape[lead] == 1) lead++;
        bool suffix = true;
        for (int i = lead; i < b->ndim; i++)
            if (b->shape[i] != bc.shape[bc.ndim - (b->ndim - i)]) suffix = false;
        if (suffix) bc.b_period = b->numel;
    }
    return bc;
}

// Offset of output element i in an operand with strides st.
static inline int64_t bcast_offset(const Bcast *bc, const int64_t *st, int64_t i) {
    int64_t off = 0;
    for (int d = bc->ndim - 1; d >= 0; d--) {
        int64_t idx = i % bc->shape[d];
        i /= bc->shape[d];
        off += idx * st[d];
    }
    return off;
}

enum { BIN_ADD, BIN_SUB, BIN_MUL };

typedef struct BinaryCtx {
    Bcast bc;
    int kind;
} BinaryCtx;

static inline float bin_apply(int kind, float x, float y) {
    return kind == BIN_ADD ? x + y : kind == BIN_SUB ? x - y : x * y;
}

// Reduce the output gradient (times the local derivative) into an operand's gradient. For an
// operand of the output's shape this is a parallel elementwise loop; for a stretched operand each of
// its elements sums its contributions in output order, which keeps the result deterministic.
static void bin_grad_into(const Bcast *bc, const int64_t *st, int64_t n_dst, float *dst, const float *gout,
                          const float *other, const int64_t *st_other, float sign) {
    if (n_dst == bc->numel) {
#pragma omp parallel for schedule(static) if ((bc->numel) >= XC_PAR_MIN)
        for (int64_t i = 0; i < bc->numel; i++)
            dst[i] += sign * gout[i] * (other ? other[bcast_offset(bc, st_other, i)] : 1.0f);
        return;
    }
    if (bc->b_period && n_dst == bc->b_period && !other) { // repeated suffix: parallel over its elements
        int64_t p = bc->b_period, reps = bc->numel / p;
#pragma omp parallel for schedule(static) if ((bc->numel) >= XC_PAR_MIN)
        for (int64_t j = 0; j < p; j++) {
            float s = 0.0f;
            for (int64_t r = 0; r < reps; r++) s += gout[r * p + j];
            dst[j] += sign * s;
        }
        return;
    }
    // other stretched operands: serial over output elements, in order
    for (int64_t i = 0; i < bc->numel; i++)
        dst[bcast_offset(bc, st, i)] += sign * gout[i] * (other ? other[bcast_offset(bc, st_other, i)] : 1.0f);
}

// The gradient of an add / sub operand of the output's shape: sign times the output's gradient. An operand
// without a gradient yet is written, not zeroed and added to; with take, one that is not a parameter is handed
// the output's buffer itself (sign +1; the output's gradient is dead after this node, and the residual stream's
// gradient then flows down a chain of adds in one buffer). Nothing may read the output's gradient afterwards.
static void add_grad_same_shape(Graph *g, TapeNode *node, Tensor *t, float sign, bool take) {
    Tensor *out = node->out;
    if (take && sign == 1.0f && !t->grad && !t->is_param) {
        t->grad = out->grad;
        out->grad = NULL; // not given back to the pool by the tape: t owns it now
        return;
    }
    bool fresh;
    float *d = tensor_grad_overwrite(g, t, &fresh);
    const float *go = out->grad;
    const int64_t n = out->numel;
    if (fresh) {
#pragma omp parallel for schedule(static) if (n >= XC_PAR_MIN)
        for (int64_t i = 0; i < n; i++) d[i] = sign * go[i];
    } else {
#pragma omp parallel for schedule(static) if (n >= XC_PAR_MIN)
        for (int64_t i = 0; i < n; i++) d[i] += sign * go[i];
    }
}

static void binary_backward(Graph *g, TapeNode *node) {
    const BinaryCtx *c = node->ctx;
    Tensor *a = node->in[0], *b = node->in[1];
    if (c->kind != BIN_MUL && (!a->requires_grad || a->numel == c->bc.numel) &&
        (!b->requires_grad || b->numel == c->bc.numel)) { // those with gradients have the output's shape: no reduction
        const float sign_b = c->kind == BIN_SUB ? -1.0f : 1.0f;
        if (b->requires_grad) add_grad_same_shape(g, node, b, sign_b, !a->requires_grad); // last reader may take
        if (a->requires_grad) add_grad_same_shape(g, node, a, 1.0f, true);
        return;
    }
    const float *go = node->out->grad;
    bool mul = c->kind == BIN_MUL;
    if (a->requires_grad)
        bin_grad_into(&c->bc, c->bc.sa, a->numel, tensor_grad(g, a), go, mul ? b->data : NULL, c->bc.sb, 1.0f);
    if (b->requires_grad)
        bin_grad_into(&c->bc, c->bc.sb, b->numel, tensor_grad(g, b), go, mul ? a->data : NULL, c->bc.sa,
                      c->kind == BIN_SUB ? -1.0f : 1.0f);
}

const OpDef xc_opdef_add = {.name = "add", .backward = binary_backward};
const OpDef xc_opdef_sub = {.name = "sub", .backward = binary_backward};
const OpDef xc_opdef_mul = {.name = "mul", .backward = binary_backward};

// into: the output's data (NULL: new)
static Tensor *binary(Graph *g, Tensor *a, Tensor *b, int kind, const OpDef *def, float *into) {
    Bcast bc = bcast_make(a, b, def->name);
    Tensor *out = into ? tensor_wrap(g, bc.ndim, bc.shape, into) : tensor_new(g, bc.ndim, bc.shape);
    float *y = out->data;
    const float *x = a->data, *z = b->data;
    if (bc.same) {
#pragma omp parallel for schedule(static) if ((bc.numel) >= XC_PAR_MIN)
        for (int64_t i = 0; i < bc.numel; i++) y[i] = bin_apply(kind, x[i], z[i]);
    } else if (bc.b_period) {
        int64_t p = bc.b_period;
#pragma omp parallel for schedule(static) if ((bc.numel) >= XC_PAR_MIN)
        for (int64_t i = 0; i < bc.numel; i++) y[i] = bin_apply(kind, x[i], z[i % p]);
    } else {
#pragma omp parallel for schedule(static) if ((bc.numel) >= XC_PAR_MIN)
        for (int64_t i = 0; i < bc.numel; i++)
            y[i] = bin_apply(kind, x[bcast_offset(&bc, bc.sa, i)], z[bcast_offset(&bc, bc.sb, i)]);
    }
    Tensor *in[2] = {a, b};
    if (graph_needs_grad(g, in, 2)) {
        TapeNode *node = graph_record(g, def, out, in, 2);
        BinaryCtx *c = arena_alloc(&g->step, sizeof *c);
        c->bc = bc;
        c->kind = kind;
        node->ctx = c;
    }
    return out;
}

Tensor *op_add(Graph *g, Tensor *a, Tensor *b) { return binary(g, a, b, BIN_ADD, &xc_opdef_add, NULL); }
Tensor *op_sub(Graph *g, Tensor *a, Tensor *b) { return binary(g, a, b, BIN_SUB, &xc_opdef_sub, NULL); }
Tensor *op_mul(Graph *g, Tensor *a, Tensor *b) { return binary(g, a, b, BIN_MUL, &xc_opdef_mul, NULL); }

Tensor *op_add_residual(Graph *g, Tensor *x, Tensor *y) {
    return binary(g, x, y, BIN_ADD, &xc_opdef_add, tensor_same_shape(x, y) && graph_overwritable(g, y) ? y->data : NULL);
}

// ---- unary ------------------------------------------------------------------------------------
typedef struct UnaryCtx {
    float c;            // scale factor / dropout keep scale
    const uint8_t *keep; // dropout: per element; drop-path: per sample
    int64_t per;        // drop-path: elements per sample
} UnaryCtx;

static TapeNode *record_unary(Graph *g, const OpDef *def, Tensor *out, Tensor *x, UnaryCtx ctx) {
    if (!graph_needs_grad(g, &x, 1)) return NULL;
    TapeNode *node = graph_record(g, def, out, &x, 1);
    UnaryCtx *c = arena_alloc(&g->step, sizeof *c);
    *c = ctx;
    node->ctx = c;
    return node;
}

static Tensor *new_like(Graph *g, const Tensor *x) { return tensor_new(g, x->ndim, x->shape); }

static void scale_backward(Graph *g, TapeNode *node) {
    const UnaryCtx *c = node->ctx;
    float *dx = tensor_grad(g, node->in[0]);
    const float *go = node->out->grad;
#pragma omp parallel for schedule(static) if ((node->out->numel) >= XC_PAR_MIN)
    for (int64_t i = 0; i < node->out->numel; i++) dx[i] += c->c * go[i];
}
const OpDef xc_opdef_scale = {.name = "scale", .backward = scale_backward};

Tensor *op_scale(Graph *g, Tensor *x, float c) {
    Tensor *y = new_like(g, x);
#pragma omp parallel for schedule(static) if ((x->numel) >= XC_PAR_MIN)
    for (int64_t i = 0; i < x->numel; i++) y->data[i] = c * x->data[i];
    record_unary(g, &xc_opdef_scale, y, x, (UnaryCtx){.c = c});
    return y;
}

static void exp_backward(Graph *g, TapeNode *node) {
    float *dx = tensor_grad(g, node->in[0]);
    const float *go = node->out->grad, *y = node->out->data;
#pragma omp parallel for schedule(static) if ((node->out->numel) >= XC_PAR_MIN)
    for (int64_t i = 0; i < node->out->numel; i++) dx[i] += go[i] * y[i];
}
const OpDef xc_opdef_exp = {.name = "exp", .backward = exp_backward};

Tensor *op_exp(Graph *g, Tensor *x) {
    Tensor *y = new_like(g, x);
#pragma omp parallel for schedule(static) if ((x->numel) >= XC_PAR_MIN)
    for (int64_t i = 0; i < x->numel; i++) y->data[i] = expf(x->data[i]);
    record_unary(g, &xc_opdef_exp, y, x, (UnaryCtx){0});
    return y;
}

// QuickGELU(x) = x * s, s = sigmoid(1.702 x); d/dx = s + 1.702 x s (1 - s).
// The loops are XC_CLONES (kernels.h): with xc_expf instead of a libm call they vectorise. OpenMP's outlined loop
// bodies would not inherit the clones' targets, so each thread calls a cloned function on its own contiguous share.

XC_CLONES static void quick_gelu_fwd_part(const float *x, float *y, int64_t n) {
    for (int64_t i = 0; i < n; i++) y[i] = xc_quick_gelu1(x[i]);
}

XC_CLONES static void quick_gelu_bwd_part(const float *x, const float *go, float *dx, int64_t n) {
    for (int64_t i = 0; i < n; i++) dx[i] += go[i] * xc_quick_gelu_grad1(x[i]);
}

void xc_quick_gelu_fwd(const float *x, float *y, int64_t n) {
#pragma omp parallel if (n >= XC_PAR_MIN)
    {
        XC_SHARE(n, lo, len);
        quick_gelu_fwd_part(x + lo, y + lo, len);
    }
}

void xc_quick_gelu_bwd(const float *x, const float *go, float *dx, int64_t n) {
#pragma omp parallel if (n >= XC_PAR_MIN)
    {
        XC_SHARE(n, lo, len);
        quick_gelu_bwd_part(x + lo, go + lo, dx + lo, len);
    }
}

static void quick_gelu_backward(Graph *g, TapeNode *node) {
    xc_quick_gelu_bwd(node->in[0]->data, node->out->grad, tensor_grad(g, node->in[0]), node->out->numel);
}
const OpDef xc_opdef_quick_gelu = {.name = "quick_gelu", .backward = quick_gelu_backward};

Tensor *op_quick_gelu(Graph *g, Tensor *x) {
    Tensor *y = new_like(g, x);
    xc_quick_gelu_fwd(x->data, y->data, x->numel);
    record_unary(g, &xc_opdef_quick_gelu, y, x, (UnaryCtx){0});
    return y;
}

// ---- dropout and drop-path ----------------------------------------------------------------------
// Masks are drawn serially from the caller's stream, so results do not depend on the thread count.
static void masked_backward(Graph *g, TapeNode *node) {
    const UnaryCtx *c = node->ctx;
    float *dx = tensor_grad(g, node->in[0]);
    const float *go = node->out->grad;
#pragma omp parallel for schedule(static) if ((node->out->numel) >= XC_PAR_MIN)
    for (int64_t i = 0; i < node->out->numel; i++) dx[i] += c->keep[i / c->per] ? c->c * go[i] : 0.0f;
}
const OpDef xc_opdef_dropout = {.name = "dropout", .backward = masked_backward, .output_unread = true};
const OpDef xc_opdef_drop_path = {.name = "drop_path", .backward = masked_backward, .output_unread = true};

static Tensor *masked(Graph *g, Tensor *x, float p, Rng *rng, int64_t per, const OpDef *def) {
    XC_CHECK(p >= 0.0f && p < 1.0f, "%s probability %g outside [0, 1)", def->name, p);
    if (p == 0.0f) return x; // identity: nothing to record
    int64_t n_masks = per ? x->numel / per : 0;
    uint8_t *keep = arena_alloc(&g->step, (size_t)(n_masks ? n_masks : 1));
    for (int64_t m = 0; m < n_masks; m++) keep[m] = rng_uniform(rng) >= p;
    float c = 1.0f / (1.0f - p);
    Tensor *y = new_like(g, x);
#pragma omp parallel for schedule(static) if ((x->numel) >= XC_PAR_MIN)
    for (int64_t i = 0; i < x->numel; i++) y->data[i] = keep[i / per] ? c * x->data[i] : 0.0f;
    record_unary(g, def, y, x, (UnaryCtx){.c = c, .keep = keep, .per = per});
    return y;
}

Tensor *op_dropout(Graph *g, Tensor *x, float p, Rng *rng) { return masked(g, x, p, rng, 1, &xc_opdef_dropout); }

Tensor *op_drop_path(Graph *g, Tensor *x, float p, Rng *rng) {
    XC_CHECK(x->ndim >= 1, "drop_path needs a batch dim");
    int64_t per = x->shape[0] ? x->numel / x->shape[0] : 1;
    return masked(g, x, p, rng, per ? per : 1, &xc_opdef_drop_path);
}
