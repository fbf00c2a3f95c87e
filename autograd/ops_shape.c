// ops_shape.c - reshape (a view), permute/transpose, concat, slice, row gather, embedding lookup.
#include "autograd/ops.h"

#include <string.h>

// ---- reshape: shares data; backward adds the gradient back (same layout) -------------------------
static void reshape_backward(Graph *g, TapeNode *node) {
    float *dx = tensor_grad(g, node->in[0]);
    const float *go = node->out->grad;
#pragma omp parallel for schedule(static) if ((node->out->numel) >= XC_PAR_MIN)
    for (int64_t i = 0; i < node->out->numel; i++) dx[i] += go[i];
}
const OpDef xc_opdef_reshape = {.name = "reshape", .backward = reshape_backward};

Tensor *op_reshape(Graph *g, Tensor *x, int ndim, const int64_t *shape) {
    int64_t sh[XT_MAX_DIMS];
    int infer = -1;
    int64_t known = 1;
    XC_CHECK(ndim >= 0 && ndim <= XT_MAX_DIMS, "reshape to rank %d", ndim);
    for (int i = 0; i < ndim; i++) {
        sh[i] = shape[i];
        if (shape[i] == -1) {
            XC_CHECK(infer < 0, "reshape: more than one -1");
            infer = i;
        } else {
            known *= shape[i];
        }
    }
    if (infer >= 0) sh[infer] = known ? x->numel / known : 0;
    char s[64];
    XC_CHECK(shape_numel(ndim, sh) == x->numel, "reshape of %s to %d dims changes the element count",
             tensor_shape_str(x, s, sizeof s), ndim);
    Tensor *y = arena_calloc(&g->step, sizeof *y);
    *y = *x;
    y->grad = NULL;
    y->is_param = false;
    y->name = NULL;
    y->requires_grad = false;
    y->ndim = ndim;
    for (int i = 0; i < XT_MAX_DIMS; i++) y->shape[i] = i < ndim ? sh[i] : 1;
    if (graph_needs_grad(g, &x, 1)) graph_record(g, &xc_opdef_reshape, y, &x, 1);
    return y;
}

// ---- permute --------------------------------------------------------------------------------------
typedef struct PermuteCtx {
    int ndim;
    int64_t in_strides_of_out[XT_MAX_DIMS]; // stride in x of each output dim
} PermuteCtx;

static inline int64_t permute_src(const Tensor *y, const PermuteCtx *c, int64_t i) {
    int64_t off = 0;
    for (int d = c->ndim - 1; d >= 0; d--) {
        int64_t idx = i % y->shape[d];
        i /= y->shape[d];
        off += idx * c->in_strides_of_out[d];
    }
    return off;
}

static void permute_backward(Graph *g, TapeNode *node) {
    const PermuteCtx *c = node->ctx;
    float *dx = tensor_grad(g, node->in[0]);
    const float *go = node->out->grad;
    // a permutation is a bijection: every dx element receives exactly one term, so parallel is safe
#pragma omp parallel for schedule(static) if ((node->out->numel) >= XC_PAR_MIN)
    for (int64_t i = 0; i < node->out->numel; i++) dx[permute_src(node->out, c, i)] += go[i];
}
const OpDef xc_opdef_permute = {.name = "permute", .backward = permute_backward};

Tensor *op_permute(Graph *g, Tensor *x, const int *perm) {
    PermuteCtx c = {x->ndim, {0}};
    int64_t strides[XT_MAX_DIMS], shape[XT_MAX_DIMS];
    int64_t st = 1;
    for (int d = x->ndim - 1; d >= 0; d--) { strides[d] = st; st *= x->shape[d]; }
    unsigned seen = 0;
    for (int d = 0; d < x->ndim; d++) {
        XC_CHECK(perm[d] >= 0 && perm[d] < x->ndim && !(seen & (1u << perm[d])), "permute: bad permutation");
        seen |= 1u << perm[d];
        shape[d] = x->shape[perm[d]];
        c.in_strides_of_out[d] = strides[perm[d]];
    }
    Tensor *y = tensor_new(g, x->ndim, shape);
#pragma omp parallel for schedule(static) if ((y->numel) >= XC_PAR_MIN)
    for (int64_t i = 0; i < y->numel; i++) y->data[i] = x->data[permute_src(y, &c, i)];
    if (graph_needs_grad(g, &x, 1)) {
        TapeNode *node = graph_record(g, &xc_opdef_permute, y, &x, 1);
        PermuteCtx *cc = arena_alloc(&g->step, sizeof *cc);
        *cc = c;
        node->ctx = cc;
    }
    return y;
}

Tensor *op_transpose(Graph *g, Tensor *x, int d0, int d1) {
    int perm[XT_MAX_DIMS];
    if (d0 < 0) d0 += x->ndim;
    if (d1 < 0) d1 += x->ndim;
    XC_CHECK(d0 >= 0 && d0 < x->ndim && d1 >= 0 && d1 < x->ndim, "transpose: dims out of range");
    for (int d = 0; d < x->ndim; d++) perm[d] = d;
    perm[d0] = d1;
    perm[d1] = d0;
    return op_permute(g, x, perm);
}

// ---- concat / slice: both are copies of (outer, len, inner) blocks ---------------------------------
static void copy_block(float *dst, int64_t dst_len, int64_t dst_off, const float *src, int64_t src_len,
                       int64_t src_off, int64_t len, int64_t outer, int64_t inner, bool add) {
#pragma omp parallel for schedule(static) if ((outer * len * inner) >= XC_PAR_MIN)
    for (int64_t o = 0; o < outer; o++) {
        float *d = dst + (o * dst_len + dst_off) * inner;
        const float *s = src + (o * src_len + src_off) * inner;
        if (add) for (int64_t i = 0; i < len * inner; i++) d[i] += s[i];
        else memcpy(d, s, (size_t)(len * inner) * sizeof(float));
    }
}

static void outer_inner(const Tensor *x, int dim, int64_t *outer, int64_t *inner) {
    *outer = 1;
    *inner = 1;
    for (int i = 0; i < dim; i++) *outer *= x->shape[i];
    for (int i = dim + 1; i < x->ndim; i++) *inner *= x->shape[i];
}

typedef struct AxisCtx {
    int dim;
    int64_t start; // slice
} AxisCtx;

static void concat_backward(Graph *g, TapeNode *node) {
    const AxisCtx *c = node->ctx;
    Tensor *y = node->out;
    int64_t outer, inner, off = 0;
    outer_inner(y, c->dim, &outer, &inner);
    for (int k = 0; k < node->n_in; k++) {
        Tensor *x = node->in[k];
        int64_t len = x->shape[c->dim];
        if (x->requires_grad)
            copy_block(tensor_grad(g, x), len, 0, y->grad, y->shape[c->dim], off, len, outer, inner, true);
        off += len;
    }
}
const OpDef xc_opdef_concat = {.name = "concat", .backward = concat_backward};

Tensor *op_concat(Graph *g, Tensor *const *xs, int n, int dim) {
    XC_CHECK(n >= 1 && n <= XT_MAX_INPUTS, "concat of %d tensors (1..%d)", n, XT_MAX_INPUTS);
    if (dim < 0) dim += xs[0]->ndim;
    XC_CHECK(dim >= 0 && dim < xs[0]->ndim, "concat: dim out of range");
    int64_t shape[XT_MAX_DIMS];
    memcpy(shape, xs[0]->shape, sizeof shape);
    shape[dim] = 0;
    for (int k = 0; k < n; k++) {
        XC_CHECK(xs[k]->ndim == xs[0]->ndim, "concat: ranks differ");
        for (int d = 0; d < xs[0]->ndim; d++)
            XC_CHECK(d == dim || xs[k]->shape[d] == xs[0]->shape[d], "concat: shapes differ off the concat dim");
        shape[dim] += xs[k]->shape[dim];
    }
    Tensor *y = tensor_new(g, xs[0]->ndim, shape);
    int64_t outer, inner, off = 0;
    outer_inner(y, dim, &outer, &inner);
    for (int k = 0; k < n; k++) {
        int64_t len = xs[k]->shape[dim];
        copy_block(y->data, shape[dim], off, xs[k]->data, len, 0, len, outer, inner, false);
        off += len;
    }
    if (graph_needs_grad(g, xs, n)) {
        TapeNode *node = graph_record(g, &xc_opdef_concat, y, xs, n);
        AxisCtx *c = arena_alloc(&g->step, sizeof *c);
        *c = (AxisCtx){dim, 0};
        node->ctx = c;
    }
    return y;
}

static void slice_backward(Graph *g, TapeNode *node) {
    const AxisCtx *c = node->ctx;
    Tensor *x = node->in[0], *y = node->out;
    int64_t outer, inner;
    outer_inner(x, c->dim, &outer, &inner);
    copy_block(tensor_grad(g, x), x->shape[c->dim], c->start, y->grad, y->shape[c->dim], 0, y->shape[c->dim],
               outer, inner, true);
}
const OpDef xc_opdef_slice = {.name = "slice", .backward = slice_backward, .output_unread = true};

static Tensor *slice(Graph *g, Tensor *x, int dim, int64_t start, int64_t len, bool consume) {
    if (dim < 0) dim += x->ndim;
    XC_CHECK(dim >= 0 && dim < x->ndim, "slice: dim out of range");
    XC_CHECK(start >= 0 && len >= 0 && start + len <= x->shape[dim], "slice [%lld, %lld) outside dim of %lld",
             (long long)start, (long long)(start + len), (long long)x->shape[dim]);
    int64_t shape[XT_MAX_DIMS], outer, inner;
    memcpy(shape, x->shape, sizeof shape);
    shape[dim] = len;
    outer_inner(x, dim, &outer, &inner);
    Tensor *y;
    if (consume && graph_overwritable(g, x)) {
        // the kept blocks move down within x's memory, in order: each lands at or below its own source and
        // below every source still to be read (memmove for the overlap with its own)
        y = tensor_wrap(g, x->ndim, shape, x->data);
        for (int64_t o = 0; o < outer; o++)
            memmove(y->data + o * len * inner, x->data + (o * x->shape[dim] + start) * inner,
                    (size_t)(len * inner) * sizeof(float));
    } else {
        y = tensor_new(g, x->ndim, shape);
        copy_block(y->data, len, 0, x->data, x->shape[dim], start, len, outer, inner, false);
    }
    if (graph_needs_grad(g, &x, 1)) {
        TapeNode *node = graph_record(g, &xc_opdef_slice, y, &x, 1);
        AxisCtx *c = arena_alloc(&g->step, sizeof *c);
        *c = (AxisCtx){dim, start};
        node->ctx = c;
    }
    return y;
}

Tensor *op_slice(Graph *g, Tensor *x, int dim, int64_t start, int64_t len) { return slice(g, x, dim, start, len, false); }

Tensor *op_slice_consume(Graph *g, Tensor *x, int dim, int64_t start, int64_t len) {
    return slice(g, x, dim, start, len, true);
}

// ---- row gather: x (R, L, C), idx (R) -> (R, C) ----------------------------------------------------
static void gather_rows_backward(Graph *g, TapeNode *node) {
    const int64_t *idx = node->ctx;
    Tensor *x = node->in[0];
    int64_t R = x->shape[0], L = x->shape[1], C = x->shape[2];
    float *dx = tensor_grad(g, x);
    const float *go = node->out->grad;
#pragma omp parallel for schedule(static) if ((R * C) >= XC_PAR_MIN)
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++) dx[(r * L + idx[r]) * C + c] += go[r * C + c];
}
const OpDef xc_opdef_gather_rows = {.name = "gather_rows", .backward = gather_rows_backward};

Tensor *op_gather_rows(Graph *g, Tensor *x, const int64_t *idx) {
    XC_CHECK(x->ndim == 3, "gather_rows needs (R, L, C)");
    int64_t R = x->shape[0], L = x->shape[1], C = x->shape[2];
    int64_t *ix = arena_alloc(&g->step, (size_t)(R ? R : 1) * sizeof *ix);
    for (int64_t r = 0; r < R; r++) {
        XC_CHECK(idx[r] >= 0 && idx[r] < L, "gather_rows: index %lld outside [0, %lld)", (long long)idx[r],
                 (long long)L);
        ix[r] = idx[r];
    }
    Tensor *y = tensor_new(g, 2, (int64_t[]){R, C});
    for (int64_t r = 0; r < R; r++) memcpy(y->data + r * C, x->data + (r * L + ix[r]) * C, (size_t)C * sizeof(float));
    if (graph_needs_grad(g, &x, 1)) graph_record(g, &xc_opdef_gather_rows, y, &x, 1)->ctx = ix;
    return y;
}

// ---- embedding: table (V, D), ids (n) -> (n, D) -----------------------------------------------------
static void embedding_backward(Graph *g, TapeNode *node) {
    const int32_t *ids = node->ctx;
    Tensor *table = node->in[0];
    int64_t n = node->out->shape[0], D = table->shape[1];
    float *dt = tensor_grad(g, table);
    const float *go = node->out->grad;
    // parallel over columns, rows in order: repeated ids accumulate deterministically
#pragma omp parallel for schedule(static) if ((n * D) >= XC_PAR_MIN)
    for (int64_t d = 0; d < D; d++)
        for (int64_t i = 0; i < n; i++) dt[(int64_t)ids[i] * D + d] += go[i * D + d];
}
const OpDef xc_opdef_embedding = {.name = "embedding", .backward = embedding_backward};

Tensor *op_embedding(Graph *g, Tensor *table, const int32_t *ids, int64_t n) {
    XC_CHECK(table->ndim == 2, "embedding table must be (V, D)");
    int64_t V = table->shape[0], D = table->shape[1];
    int32_t *ix = arena_alloc(&g->step, (size_t)(n ? n : 1) * sizeof *ix);
    for (int64_t i = 0; i < n; i++) {
        XC_CHECK(ids[i] >= 0 && ids[i] < V, "embedding: id %d outside vocabulary of %lld", ids[i], (long long)V);
        ix[i] = ids[i];
    }
    Tensor *y = tensor_new(g, 2, (int64_t[]){n, D});
#pragma omp parallel for schedule(static) if ((n * D) >= XC_PAR_MIN)
    for (int64_t i = 0; i < n; i++) memcpy(y->data + i * D, table->data + (int64_t)ix[i] * D, (size_t)D * sizeof(float));
    if (graph_needs_grad(g, &table, 1)) graph_record(g, &xc_opdef_embedding, y, &table, 1)->ctx = ix;
    return y;
}
