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

const OpDef xc_opdef_matmul = {"matmul", matmul_backward};

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

static void linear_backward(Graph *g, TapeNode *node) {
    Tensor *x = node->in[0], *w = node->in[1], *b = node->in[2], *y = node->out;
    int64_t out_f = w->shape[0], in_f = w->shape[1], R = x->numel / in_f;
    const float *dY = y->grad; // (R, out)
    bool fresh;
    if (x->requires_grad) { // dX (+)= dY W: a gradient not yet started is written, not zeroed and added to
        float *dx = tensor_grad_overwrite(g, x, &fresh);
        gemm_run(g->gemm, false, false, R, in_f, out_f, 1.0f, dY, out_f, w->data, in_f, fresh ? 0.0f : 1.0f, dx, in_f);
    }
    if (w->requires_grad) { // dW (+)= dY^T X
        float *dw = tensor_grad_overwrite(g, w, &fresh);
        gemm_run(g->gemm, true, false, out_f, in_f, R, 1.0f, dY, out_f, x->data, in_f, fresh ? 0.0f : 1.0f, dw, in_f);
    }
    if (b && b->requires_grad) { // column sums of dY, each in row order (deterministic), 64 columns at a time
        float *db = tensor_grad(g, b);
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
}

const OpDef xc_opdef_linear = {"linear", linear_backward};

Tensor *op_linear(Graph *g, Tensor *x, Tensor *w, Tensor *b) {
    char sx[64], sw[64];
    XC_CHECK(w->ndim == 2 && x->ndim >= 1 && x->shape[x->ndim - 1] == w->shape[1],
             "linear: input %s does not fit weight %s", tensor_shape_str(x, sx, sizeof sx),
             tensor_shape_str(w, sw, sizeof sw));
    int64_t out_f = w->shape[0], in_f = w->shape[1], R = x->numel / (in_f ? in_f : 1);
    XC_CHECK(!b || (b->ndim == 1 && b->shape[0] == out_f), "linear: bias does not match weight %s",
             tensor_shape_str(w, sw, sizeof sw));
    int64_t shape[XT_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = out_f;
    Tensor *y = tensor_new(g, x->ndim, shape);
    gemm_bias(g->gemm, false, true, R, out_f, in_f, x->data, in_f, w->data, in_f, b ? b->data : NULL, y->data, out_f);
    Tensor *in[3] = {x, w, b};
    if (graph_needs_grad(g, in, 3)) graph_record(g, &xc_opdef_linear, y, in, 3);
    return y;
}
