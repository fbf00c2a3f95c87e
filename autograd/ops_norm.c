// ops_norm.c - fused LayerNorm over the last dim (forward saves mean and rstd per row).
#include "autograd/ops.h"
#include "autograd/kernels.h"

#include <math.h>

// Two passes per row (mean, then variance of the centred values) in float with the row in cache:
// as accurate as PyTorch's CPU kernel for the widths used here.
void xc_layernorm_fwd(const float *x, const float *w, const float *b, float eps, int64_t R, int64_t C,
                      float *y, float *mean, float *rstd) {
#pragma omp parallel for schedule(static) if ((R * C) >= XC_PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        const float *xr = x + r * C;
        float *yr = y + r * C;
        float m = 0.0f;
        for (int64_t i = 0; i < C; i++) m += xr[i];
        m /= (float)C;
        float v = 0.0f;
        for (int64_t i = 0; i < C; i++) { float d = xr[i] - m; v += d * d; }
        v /= (float)C;
        float s = 1.0f / sqrtf(v + eps);
        for (int64_t i = 0; i < C; i++) yr[i] = (xr[i] - m) * s * w[i] + b[i];
        mean[r] = m;
        rstd[r] = s;
    }
}

void xc_layernorm_fwd_naive(const float *x, const float *w, const float *b, float eps, int64_t R, int64_t C,
                            float *y, float *mean, float *rstd) {
    for (int64_t r = 0; r < R; r++) {
        double m = 0, v = 0;
        for (int64_t i = 0; i < C; i++) m += x[r * C + i];
        m /= (double)C;
        for (int64_t i = 0; i < C; i++) v += (x[r * C + i] - m) * (x[r * C + i] - m);
        v /= (double)C;
        double s = 1.0 / sqrt(v + eps);
        for (int64_t i = 0; i < C; i++) y[r * C + i] = (float)((x[r * C + i] - m) * s * w[i] + b[i]);
        mean[r] = (float)m;
        rstd[r] = (float)s;
    }
}

typedef struct LayerNormCtx {
    float *mean, *rstd; // (R)
} LayerNormCtx;

// With xhat = (x - mean) rstd and dxhat = dy * w:
//   dx = rstd (dxhat - mean(dxhat) - xhat mean(dxhat xhat)), dw += sum_r dy xhat, db += sum_r dy.
void xc_layernorm_bwd(const float *x, const float *w, const float *mean, const float *rstd, const float *dy, int64_t R,
                      int64_t C, float *dx, float *dw, float *db) {
    if (dx) {
#pragma omp parallel for schedule(static) if ((R * C) >= XC_PAR_MIN)
        for (int64_t r = 0; r < R; r++) {
            const float *xr = x + r * C, *gr = dy + r * C;
            float m = mean[r], s = rstd[r], sum_d = 0.0f, sum_dx = 0.0f;
            for (int64_t i = 0; i < C; i++) {
                float dxh = gr[i] * w[i];
                sum_d += dxh;
                sum_dx += dxh * (xr[i] - m) * s;
            }
            sum_d /= (float)C;
            sum_dx /= (float)C;
            for (int64_t i = 0; i < C; i++) {
                float xh = (xr[i] - m) * s;
                dx[r * C + i] += s * (gr[i] * w[i] - sum_d - xh * sum_dx);
            }
        }
    }
    if (dw || db) {
#pragma omp parallel for schedule(static) if ((R * C) >= XC_PAR_MIN)
        for (int64_t i = 0; i < C; i++) { // columns in parallel, rows in order: deterministic
            float sw = 0.0f, sb = 0.0f;
            for (int64_t r = 0; r < R; r++) {
                float gy = dy[r * C + i];
                sw += gy * (x[r * C + i] - mean[r]) * rstd[r];
                sb += gy;
            }
            if (dw) dw[i] += sw;
            if (db) db[i] += sb;
        }
    }
}

static void layernorm_backward(Graph *g, TapeNode *node) {
    const LayerNormCtx *c = node->ctx;
    Tensor *x = node->in[0], *w = node->in[1], *b = node->in[2];
    int64_t C = x->shape[x->ndim - 1], R = x->numel / (C ? C : 1);
    xc_layernorm_bwd(x->data, w->data, c->mean, c->rstd, node->out->grad, R, C,
                     x->requires_grad ? tensor_grad(g, x) : NULL, w->requires_grad ? tensor_grad(g, w) : NULL,
                     b->requires_grad ? tensor_grad(g, b) : NULL);
}
const OpDef xc_opdef_layernorm = {.name = "layernorm", .backward = layernorm_backward};

Tensor *op_layernorm(Graph *g, Tensor *x, Tensor *w, Tensor *b, float eps) {
    int64_t C = x->shape[x->ndim - 1], R = x->numel / (C ? C : 1);
    XC_CHECK(w->numel == C && b->numel == C, "layernorm: weight/bias of %lld for width %lld", (long long)w->numel,
             (long long)C);
    Tensor *y = tensor_new(g, x->ndim, x->shape);
    LayerNormCtx c;
    c.mean = arena_alloc(&g->step, (size_t)(R ? R : 1) * sizeof(float));
    c.rstd = arena_alloc(&g->step, (size_t)(R ? R : 1) * sizeof(float));
    xc_layernorm_fwd(x->data, w->data, b->data, eps, R, C, y->data, c.mean, c.rstd);
    Tensor *in[3] = {x, w, b};
    if (graph_needs_grad(g, in, 3)) {
        TapeNode *node = graph_record(g, &xc_opdef_layernorm, y, in, 3);
        LayerNormCtx *cc = arena_alloc(&g->step, sizeof *cc);
        *cc = c;
        node->ctx = cc;
    }
    return y;
}
