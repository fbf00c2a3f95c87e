// ops_reduce.c - sum / mean over a dim, and L2 normalisation over the last dim.
#include "autograd/ops.h"

#include <math.h>

// x viewed as (outer, n, inner) with n the reduced dim.
typedef struct ReduceCtx {
    int64_t outer, n, inner;
    float scale; // 1 for sum, 1/n for mean
} ReduceCtx;

static void reduce_backward(Graph *g, TapeNode *node) {
    const ReduceCtx *c = node->ctx;
    float *dx = tensor_grad(g, node->in[0]);
    const float *go = node->out->grad;
#pragma omp parallel for schedule(static) if ((c->outer * c->n * c->inner) >= XC_PAR_MIN)
    for (int64_t o = 0; o < c->outer; o++)
        for (int64_t k = 0; k < c->n; k++)
            for (int64_t i = 0; i < c->inner; i++) dx[(o * c->n + k) * c->inner + i] += c->scale * go[o * c->inner + i];
}
const OpDef xc_opdef_sum = {.name = "sum", .backward = reduce_backward};
const OpDef xc_opdef_mean = {.name = "mean", .backward = reduce_backward};

static Tensor *reduce(Graph *g, Tensor *x, int dim, bool mean, const OpDef *def) {
    if (dim < 0) dim += x->ndim;
    XC_CHECK(dim >= 0 && dim < x->ndim, "%s: dim %d out of range for rank %d", def->name, dim, x->ndim);
    ReduceCtx c = {1, x->shape[dim], 1, 1.0f};
    for (int i = 0; i < dim; i++) c.outer *= x->shape[i];
    for (int i = dim + 1; i < x->ndim; i++) c.inner *= x->shape[i];
    c.scale = mean ? 1.0f / (float)(c.n ? c.n : 1) : 1.0f;
    int64_t shape[XT_MAX_DIMS];
    for (int i = 0, j = 0; i < x->ndim; i++)
        if (i != dim) shape[j++] = x->shape[i];
    Tensor *y = tensor_new(g, x->ndim - 1, shape);
#pragma omp parallel for schedule(static) if ((c.outer * c.n * c.inner) >= XC_PAR_MIN)
    for (int64_t o = 0; o < c.outer; o++)
        for (int64_t i = 0; i < c.inner; i++) {
            float s = 0.0f;
            for (int64_t k = 0; k < c.n; k++) s += x->data[(o * c.n + k) * c.inner + i];
            y->data[o * c.inner + i] = mean ? s / (float)c.n : s;
        }
    if (graph_needs_grad(g, &x, 1)) {
        TapeNode *node = graph_record(g, def, y, &x, 1);
        ReduceCtx *cc = arena_alloc(&g->step, sizeof *cc);
        *cc = c;
        node->ctx = cc;
    }
    return y;
}

Tensor *op_sum(Graph *g, Tensor *x, int dim) { return reduce(g, x, dim, false, &xc_opdef_sum); }
Tensor *op_mean(Graph *g, Tensor *x, int dim) { return reduce(g, x, dim, true, &xc_opdef_mean); }

// ---- L2 normalisation: y = x / ||x||; dx = (dy - y <y, dy>) / ||x|| -----------------------------
static void l2_backward(Graph *g, TapeNode *node) {
    const float *inv = node->ctx; // (R) 1/||x|| (0 for a zero row)
    Tensor *x = node->in[0], *y = node->out;
    int64_t C = x->shape[x->ndim - 1], R = x->numel / (C ? C : 1);
    float *dx = tensor_grad(g, x);
    const float *go = y->grad;
#pragma omp parallel for schedule(static) if ((R * C) >= XC_PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        const float *yr = y->data + r * C, *gr = go + r * C;
        float dot = 0.0f;
        for (int64_t i = 0; i < C; i++) dot += yr[i] * gr[i];
        for (int64_t i = 0; i < C; i++) dx[r * C + i] += (gr[i] - yr[i] * dot) * inv[r];
    }
}
const OpDef xc_opdef_l2_normalize = {.name = "l2_normalize", .backward = l2_backward};

Tensor *op_l2_normalize(Graph *g, Tensor *x) {
    XC_CHECK(x->ndim >= 1, "l2_normalize needs a rank >= 1 tensor");
    int64_t C = x->shape[x->ndim - 1], R = x->numel / (C ? C : 1);
    Tensor *y = tensor_new(g, x->ndim, x->shape);
    float *inv = arena_alloc(&g->step, (size_t)(R ? R : 1) * sizeof(float));
#pragma omp parallel for schedule(static) if ((R * C) >= XC_PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        const float *xr = x->data + r * C;
        double ss = 0.0;
        for (int64_t i = 0; i < C; i++) ss += (double)xr[i] * xr[i];
        float n = (float)sqrt(ss);
        inv[r] = n > 0.0f ? 1.0f / n : 0.0f;
        for (int64_t i = 0; i < C; i++) y->data[r * C + i] = xr[i] * inv[r];
    }
    if (graph_needs_grad(g, &x, 1)) graph_record(g, &xc_opdef_l2_normalize, y, &x, 1)->ctx = inv;
    return y;
}
