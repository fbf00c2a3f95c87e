// ops_matmul.c - batched matmul with transposes, and linear (x W^T + b).
#include "autograd/ops.h"
#include "autograd/kernels.h"

#include <string.h>

typedef struct MatmulCtx {
    bool ta, tb, b_shared; // b_shared: b is 2-D and used by every batch
    int64_t batch, M, N, K;
} MatmulCtx;

static void matmul_backward(Graph *g, TapeNode *node) {
    const MatmulCtx *c = node->ctx;
    Tensor *a = node->in[0], *b = node->in[1], *out = node->out;
    const float *dC = out->grad;
    int64_t M = c->M, N = c->N, K = c->K;
    int64_t lda = c->ta ? M : K, ldb = c->tb ? K : N;
    int64_t sa = M * K, sb = c->b_shared ? 0 : K * N, sc = M * N;
    if (a->requires_grad) {
        float *dA = tensor_grad(g, a);
        for (int64_t i = 0; i < c->batch; i++) {
            const float *B = b->data + i * sb, *G = dC + i * sc;
            float *D = dA + i * sa;
            if (!c->ta) gemm_run(g->gemm, false, !c->tb, M, K, N, 1.0f, G, N, B, ldb, 1.0f, D, K);   // dC op(B)^T
            else gemm_run(g->gemm, c->tb, true, K, M, N, 1.0f, B, ldb, G, N, 1.0f, D, M);            // op(B) dC^T
        }
    }
    if (b->requires_grad) {
        float *dB = tensor_grad(g, b);
        if (c->b_shared && !c->ta) { // one GEMM over all rows of a
            int64_t R = c->batch * M;
            if (!c->tb) gemm_run(g->gemm, true, false, K, N, R, 1.0f, a->data, K, dC, N, 1.0f, dB, N);
            else gemm_run(g->gemm, true, false, N, K, R, 1.0f, dC, N, a->data, K, 1.0f, dB, K);
        } else {
            for (int64_t i = 0; i < c->batch; i++) { // fixed order: deterministic
                const float *A = a->data + i * sa, *G = dC + i * sc;
                float *D = dB + i * sb;
                if (!c->tb) gemm_run(g->gemm, !c->ta, false, K, N, M, 1.0f, A, lda, G, N, 1.0f, D, N);  // op(A)^T dC
                else gemm_run(g->gemm, true, c->ta, N, K, M, 1.0f, G, N, A, lda, 1.0f, D, K);           // dC^T op(A)
            }
        }
    }
}

const OpDef xc_opdef_matmul = {.name = "matmul", .backward = matmul_backward};

Tensor *op_matmul(Graph *g, Tensor *a, Tensor *b, bool ta, bool tb) {
    char sa[64], sb[64];
    XC_CHECK(a->ndim >= 2 && b->ndim >= 2, "matmul needs matrices, got %s and %s",
             tensor_shape_str(a, sa, sizeof sa), tensor_shape_str(b, sb, sizeof sb));
    int64_t M = a->shape[a->ndim - (ta ? 1 : 2)], K = a->shape[a->ndim - (ta ? 2 : 1)];
    int64_t Kb = b->shape[b->ndim - (tb ? 1 : 2)], N = b->shape[b->ndim - (tb ? 2 : 1)];
    XC_CHECK(K == Kb, "matmul inner dims differ: %s x %s (ta=%d tb=%d)", tensor_shape_str(a, sa, sizeof sa),
             tensor_shape_str(b, sb, sizeof sb), ta, tb);
    bool shared = b->ndim == 2 && a->ndim > 2;
    if (!shared) {
        XC_CHECK(a->ndim == b->ndim, "matmul batch dims differ: %s x %s", tensor_shape_str(a, sa, sizeof sa),
                 tensor_shape_str(b, sb, sizeof sb));
        for (int i = 0; i < a->ndim - 2; i++)
            XC_CHECK(a->shape[i] == b->shape[i], "matmul batch dims differ: %s x %s",
                     tensor_shape_str(a, sa, sizeof sa), tensor_shape_str(b, sb, sizeof sb));
    }
    int64_t shape[XT_MAX_DIMS];
    for (int i = 0; i < a->ndim - 2; i++) shape[i] = a->shape[i];
    shape[a->ndim - 2] = M;
    shape[a->ndim - 1] = N;
    Tensor *out = tensor_new(g, a->ndim, shape);
    int64_t batch = shape_numel(a->ndim - 2, a->shape);
    int64_t lda = ta ? M : K, ldb = tb ? K : N;
    if (shared && !ta) {
        gemm_run(g->gemm, false, tb, batch * M, N, K, 1.0f, a->data, K, b->data, ldb, 0.0f, out->data, N);
    } else {
        int64_t sb_ = shared ? 0 : K * N;
        for (int64_t i = 0; i < batch; i++)
            gemm_run(g->gemm, ta, tb, M, N, K, 1.0f, a->data + i * M * K, lda, b->data + i * sb_, ldb, 0.0f,
                    out->data + i * M * N, N);
    }
    Tensor *in[2] = {a, b};
    if (graph_needs_grad(g, in, 2)) {
        TapeNode *node = graph_record(g, &xc_opdef_matmul, out, in, 2);
        MatmulCtx *c = arena_alloc(&g->step, sizeof *c);
        *c = (MatmulCtx){ta, tb, shared, batch, M, N, K};
        node->ctx = c;
    }
    return out;
}

// ---- linear ---------------------------------------------------------------------------------------
// Gradient buffers of y = x W^T + b: dx (+)= dY W, dw (+)= dY^T x, db += column sums of dY. A gradient not
// yet started is written (beta 0), not zeroed and added to.
typedef struct LinearGrads {
    float *dx, *dw, *db; // NULL: not wanted
    float beta_dx, beta_dw;
} LinearGrads;

static LinearGrads linear_grad_buffers(Graph *g, Tensor *x, Tensor *w, Tensor *b) {
    LinearGrads lg = {0};
    bool fresh;
    if (x && x->requires_grad) {
        lg.dx = tensor_grad_overwrite(g, x, &fresh);
        lg.beta_dx = fresh ? 0.0f : 1.0f;
    }
    if (w->requires_grad) {
        lg.dw = tensor_grad_overwrite(g, w, &fresh);
        lg.beta_dw = fresh ? 0.0f : 1.0f;
    }
    if (b && b->requires_grad) lg.db = tensor_grad(g, b);
    return lg;
}

// db += the column sums of dY (R, out), each in row order (deterministic), 64 columns at a time.
static void bias_grad(const float *dY, int64_t R, int64_t out_f, float *db) {
    const int64_t nblk = (out_f + 63) / 64;
#pragma omp parallel for schedule(static) if ((R * out_f) >= XC_PAR_MIN)
    for (int64_t blk = 0; blk < nblk; blk++) {
        const int64_t j0 = blk * 64, n = out_f - j0 < 64 ? out_f - j0 : 64;
        float s[64] = {0};
        for (int64_t r = 0; r < R; r++)
            for (int64_t j = 0; j < n; j++) s[j] += dY[r * out_f + j0 + j];
        for (int64_t j = 0; j < n; j++) db[j0 + j] += s[j];
    }
}

// x (R, in) and w (out, in) as they were in the forward; dY (R, out). dw and db first, then dx, so dx may
// overwrite x (linear_pre_backward's scratch).
static void linear_grads(Graph *g, const LinearGrads *lg, const float *x, const float *w, const float *dY, int64_t R,
                         int64_t in_f, int64_t out_f) {
    if (lg->dw) gemm_run(g->gemm, true, false, out_f, in_f, R, 1.0f, dY, out_f, x, in_f, lg->beta_dw, lg->dw, in_f);
    if (lg->db) bias_grad(dY, R, out_f, lg->db);
    if (lg->dx) gemm_run(g->gemm, false, false, R, in_f, out_f, 1.0f, dY, out_f, w, in_f, lg->beta_dx, lg->dx, in_f);
}

static void linear_backward(Graph *g, TapeNode *node) {
    Tensor *x = node->in[0], *w = node->in[1], *b = node->in[2];
    int64_t out_f = w->shape[0], in_f = w->shape[1];
    LinearGrads lg = linear_grad_buffers(g, x, w, b);
    linear_grads(g, &lg, x->data, w->data, node->out->grad, x->numel / in_f, in_f, out_f);
}

const OpDef xc_opdef_linear = {.name = "linear", .backward = linear_backward, .output_unread = true};

static void linear_check(const Tensor *x, const Tensor *w, const Tensor *b, const char *what) {
    char sx[64], sw[64];
    XC_CHECK(w->ndim == 2 && x->ndim >= 1 && x->shape[x->ndim - 1] == w->shape[1],
             "%s: input %s does not fit weight %s", what, tensor_shape_str(x, sx, sizeof sx),
             tensor_shape_str(w, sw, sizeof sw));
    XC_CHECK(!b || (b->ndim == 1 && b->shape[0] == w->shape[0]), "%s: bias does not match weight %s", what,
             tensor_shape_str(w, sw, sizeof sw));
}

// y with x's shape but out_f on the last dim.
static Tensor *linear_out(Graph *g, const Tensor *x, int64_t out_f) {
    int64_t shape[XT_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = out_f;
    return tensor_new(g, x->ndim, shape);
}

Tensor *op_linear(Graph *g, Tensor *x, Tensor *w, Tensor *b) {
    linear_check(x, w, b, "linear");
    int64_t out_f = w->shape[0], in_f = w->shape[1], R = x->numel / (in_f ? in_f : 1);
    Tensor *y = linear_out(g, x, out_f);
    gemm_bias(g->gemm, false, true, R, out_f, in_f, x->data, in_f, w->data, in_f, b ? b->data : NULL, y->data, out_f);
    Tensor *in[3] = {x, w, b};
    if (graph_needs_grad(g, in, 3)) graph_record(g, &xc_opdef_linear, y, in, 3);
    return y;
}

// ---- linear over a recomputed LayerNorm or QuickGELU ---------------------------------------------
// pre(x) is written to scratch above the arena's mark, read by the GEMM and released; backward computes it
// again from x (the same kernel on the same input: the same bits) for dW, writes dY W over it and
// back-propagates that through pre. Every gradient that outlives the scratch is taken before the mark.
// Where the GEMM fuses (gemm_fuses: bf16 precision) nothing is written: its packing applies pre to x, and
// QuickGELU's backward multiplies dY W by the derivative as the product is stored; the bits are the same.
typedef struct LinearPreCtx {
    PreKind kind;
    float eps;
    float *mean, *rstd; // LayerNorm: (R), saved by the forward
} LinearPreCtx;

// node inputs: x, w, b, then LayerNorm's weight and bias
static void pre_forward(const LinearPreCtx *c, Tensor *const *in, int64_t R, int64_t C, float *a, float *mean, float *rstd) {
    if (c->kind == XC_PRE_LAYERNORM) xc_layernorm_fwd(in[0]->data, in[3]->data, in[4]->data, c->eps, R, C, a, mean, rstd);
    else xc_quick_gelu_fwd(in[0]->data, a, R * C);
}

// pre as the fused GEMM applies it, from the saved statistics
static GemmPre pre_of(const LinearPreCtx *c, Tensor *const *in) {
    if (c->kind == XC_PRE_QUICK_GELU) return (GemmPre){.kind = XC_PRE_QUICK_GELU};
    return (GemmPre){.kind = XC_PRE_LAYERNORM, .mean = c->mean, .rstd = c->rstd, .w = in[3]->data, .b = in[4]->data};
}

static void linear_pre_backward(Graph *g, TapeNode *node) {
    const LinearPreCtx *c = node->ctx;
    Tensor *x = node->in[0], *w = node->in[1], *b = node->in[2];
    const bool ln = c->kind == XC_PRE_LAYERNORM;
    Tensor *ln_w = ln ? node->in[3] : NULL, *ln_b = ln ? node->in[4] : NULL;
    int64_t out_f = w->shape[0], C = w->shape[1], R = x->numel / (C ? C : 1);
    const float *dY = node->out->grad;
    LinearGrads lg = linear_grad_buffers(g, NULL, w, b);
    float *dx = x->requires_grad ? tensor_grad(g, x) : NULL;
    float *dln_w = ln && ln_w->requires_grad ? tensor_grad(g, ln_w) : NULL;
    float *dln_b = ln && ln_b->requires_grad ? tensor_grad(g, ln_b) : NULL;
    const bool da = dx || dln_w || dln_b, fuse = gemm_fuses(g->gemm, R, out_f, C);
    if (fuse) { // dW = dY^T pre(x), pre applied as x is packed
        if (lg.dw)
            gemm_bf16_fused(g->gemm, &(GemmFused){.ta = true, .M = out_f, .N = C, .K = R, .A = dY, .lda = out_f, .B = x->data,
                                                  .ldb = C, .pre_b = pre_of(c, node->in), .beta = lg.beta_dw, .C = lg.dw, .ldc = C});
        lg.dw = NULL;
        if (!ln) { // dx += (dY W) y'(x), the derivative applied as the product is stored: no scratch
            if (lg.db) bias_grad(dY, R, out_f, lg.db);
            if (dx)
                gemm_bf16_fused(g->gemm, &(GemmFused){.M = R, .N = C, .K = out_f, .A = dY, .lda = out_f, .B = w->data,
                                                      .ldb = C, .beta = 1.0f, .gelu_x = x->data, .C = dx, .ldc = C});
            return;
        } // LayerNorm's backward needs whole rows of dY W (its row sums): written to scratch as unfused
    }
    ArenaMark m = arena_mark(&g->step);
    float *a = arena_alloc(&g->step, (size_t)(R * C) * sizeof(float));
    if (!fuse) { // pre(x) for dW
        float *stats = ln ? arena_alloc(&g->step, (size_t)(2 * R) * sizeof(float)) : NULL; // the same as the saved ones
        pre_forward(c, node->in, R, C, a, stats, stats ? stats + R : NULL);
    }
    lg.dx = da ? a : NULL; // dY W over pre(x), once dW has read it
    lg.beta_dx = 0.0f;
    linear_grads(g, &lg, a, w->data, dY, R, C, out_f);
    if (da && ln) xc_layernorm_bwd(x->data, ln_w->data, c->mean, c->rstd, a, R, C, dx, dln_w, dln_b);
    else if (da) xc_quick_gelu_bwd(x->data, a, dx, R * C);
    arena_rewind(&g->step, m);
}

const OpDef xc_opdef_layernorm_linear = {.name = "layernorm_linear", .backward = linear_pre_backward, .output_unread = true};
const OpDef xc_opdef_quick_gelu_linear = {.name = "quick_gelu_linear", .backward = linear_pre_backward, .output_unread = true};

static Tensor *linear_pre(Graph *g, const OpDef *def, LinearPreCtx c, Tensor *const *in, int n_in) {
    Tensor *x = in[0], *w = in[1], *b = in[2];
    linear_check(x, w, b, def->name);
    int64_t out_f = w->shape[0], C = w->shape[1], R = x->numel / (C ? C : 1);
    Tensor *y = linear_out(g, x, out_f);
    const bool rec = graph_needs_grad(g, in, n_in);
    if (c.kind == XC_PRE_LAYERNORM) { // kept for backward (R floats each)
        c.mean = arena_alloc(&g->step, (size_t)(R ? R : 1) * sizeof(float));
        c.rstd = arena_alloc(&g->step, (size_t)(R ? R : 1) * sizeof(float));
    }
    if (gemm_fuses(g->gemm, R, out_f, C)) {
        if (c.kind == XC_PRE_LAYERNORM) xc_layernorm_stats(x->data, c.eps, R, C, c.mean, c.rstd);
        gemm_bf16_fused(g->gemm, &(GemmFused){.tb = true, .M = R, .N = out_f, .K = C, .A = x->data, .lda = C,
                                              .pre_a = pre_of(&c, in), .B = w->data, .ldb = C, .bias = b ? b->data : NULL,
                                              .C = y->data, .ldc = out_f});
    } else {
        ArenaMark m = arena_mark(&g->step);
        float *a = arena_alloc(&g->step, (size_t)(R * C) * sizeof(float));
        pre_forward(&c, in, R, C, a, c.mean, c.rstd);
        gemm_bias(g->gemm, false, true, R, out_f, C, a, C, w->data, C, b ? b->data : NULL, y->data, out_f);
        arena_rewind(&g->step, m);
    }
    if (rec) {
        TapeNode *node = graph_record(g, def, y, in, n_in);
        LinearPreCtx *cc = arena_alloc(&g->step, sizeof *cc);
        *cc = c;
        node->ctx = cc;
    }
    return y;
}

Tensor *op_layernorm_linear(Graph *g, Tensor *x, Tensor *ln_w, Tensor *ln_b, float eps, Tensor *w, Tensor *b) {
    int64_t C = x->shape[x->ndim - 1];
    XC_CHECK(ln_w->numel == C && ln_b->numel == C, "layernorm_linear: LayerNorm weight/bias of %lld for width %lld",
             (long long)ln_w->numel, (long long)C);
    Tensor *in[5] = {x, w, b, ln_w, ln_b};
    return linear_pre(g, &xc_opdef_layernorm_linear, (LinearPreCtx){.kind = XC_PRE_LAYERNORM, .eps = eps}, in, 5);
}

Tensor *op_quick_gelu_linear(Graph *g, Tensor *x, Tensor *w, Tensor *b) {
    Tensor *in[3] = {x, w, b};
    return linear_pre(g, &xc_opdef_quick_gelu_linear, (LinearPreCtx){.kind = XC_PRE_QUICK_GELU}, in, 3);
}
