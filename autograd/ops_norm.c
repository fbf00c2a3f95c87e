// ops_norm.c - fused LayerNorm over the last dim (forward saves mean and rstd per row).
#include "autograd/ops.h"
#include "autograd/kernels.h"

#include <math.h>

// Two passes per row (mean, then variance of the centred values) in float with the row in cache: as accurate as
// PyTorch's CPU kernel for the widths used here. The sums run in XC_LANES lanes and the rows in XC_CLONES functions,
// each thread on its own contiguous share of rows.

// Mean and 1 / std of one row (inlined into the XC_CLONES callers).
static inline void row_stats(const float *xr, int64_t C, float eps, float *mean, float *rstd) {
    const int64_t nv = C / XC_LANES * XC_LANES;
    float lv[XC_LANES] = {0};
    const float m = xc_lanes_dot(xr, NULL, C) / (float)C;
    for (int64_t i = 0; i < nv; i += XC_LANES)
        for (int j = 0; j < XC_LANES; j++) {
            float d = xr[i + j] - m;
            lv[j] += d * d;
        }
    for (int64_t i = nv; i < C; i++) {
        float d = xr[i] - m;
        lv[i - nv] += d * d;
    }
    *mean = m;
    *rstd = 1.0f / sqrtf(xc_lanes_sum(lv) / (float)C + eps);
}

XC_CLONES static void layernorm_rows_fwd(const float *x, const float *w, const float *b, float eps, int64_t R, int64_t C,
                                         float *y, float *mean, float *rstd) {
    for (int64_t r = 0; r < R; r++) {
        const float *xr = x + r * C;
        float *yr = y + r * C, m, s;
        row_stats(xr, C, eps, &m, &s);
        for (int64_t i = 0; i < C; i++) yr[i] = xc_layernorm1(xr[i], m, s, w[i], b[i]);
        mean[r] = m;
        rstd[r] = s;
    }
}

XC_CLONES static void layernorm_rows_stats(const float *x, float eps, int64_t R, int64_t C, float *mean, float *rstd) {
    for (int64_t r = 0; r < R; r++) row_stats(x + r * C, C, eps, mean + r, rstd + r);
}

void xc_layernorm_fwd(const float *x, const float *w, const float *b, float eps, int64_t R, int64_t C,
                      float *y, float *mean, float *rstd) {
#pragma omp parallel if ((R * C) >= XC_PAR_MIN)
    {
        XC_SHARE(R, lo, len);
        layernorm_rows_fwd(x + lo * C, w, b, eps, len, C, y + lo * C, mean + lo, rstd + lo);
    }
}

void xc_layernorm_stats(const float *x, float eps, int64_t R, int64_t C, float *mean, float *rstd) {
#pragma omp parallel if ((R * C) >= XC_PAR_MIN)
    {
        XC_SHARE(R, lo, len);
        layernorm_rows_stats(x + lo * C, eps, len, C, mean + lo, rstd + lo);
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
// dx: rows shared out as in the forward, both means in XC_LANES lanes.
XC_CLONES static void layernorm_rows_dx(const float *x, const float *w, const float *mean, const float *rstd,
                                        const float *dy, int64_t R, int64_t C, float *dx) {
    const int64_t nv = C / XC_LANES * XC_LANES;
    for (int64_t r = 0; r < R; r++) {
        const float *xr = x + r * C, *gr = dy + r * C;
        const float m = mean[r], s = rstd[r];
        float ldx[XC_LANES] = {0};
        for (int64_t i = 0; i < nv; i += XC_LANES)
            for (int j = 0; j < XC_LANES; j++) ldx[j] += gr[i + j] * w[i + j] * (xr[i + j] - m) * s;
        for (int64_t i = nv; i < C; i++) ldx[i - nv] += gr[i] * w[i] * (xr[i] - m) * s;
        const float sum_d = xc_lanes_dot(gr, w, C) / (float)C, sum_dx = xc_lanes_sum(ldx) / (float)C;
        for (int64_t i = 0; i < C; i++) {
            float xh = (xr[i] - m) * s;
            dx[r * C + i] += s * (gr[i] * w[i] - sum_d - xh * sum_dx);
        }
    }
}

// dw, db for the columns [0, n) of x, dy (row stride C): every column summed over the rows in order (the same bits
// whatever the threads), the rows walked whole so that the loads are contiguous.
XC_CLONES static void layernorm_cols_dwdb(const float *x, const float *mean, const float *rstd, const float *dy,
                                          int64_t R, int64_t C, int64_t n, float *sw, float *sb) {
    for (int64_t i = 0; i < n; i++) sw[i] = sb[i] = 0.0f;
    for (int64_t r = 0; r < R; r++) {
        const float *xr = x + r * C, *gr = dy + r * C, m = mean[r], s = rstd[r];
        for (int64_t i = 0; i < n; i++) {
            sw[i] += gr[i] * (xr[i] - m) * s;
            sb[i] += gr[i];
        }
    }
}

void xc_layernorm_bwd(const float *x, const float *w, const float *mean, const float *rstd, const float *dy, int64_t R,
                      int64_t C, float *dx, float *dw, float *db) {
    if (dx) {
#pragma omp parallel if ((R * C) >= XC_PAR_MIN)
        {
            XC_SHARE(R, lo, len);
            layernorm_rows_dx(x + lo * C, w, mean + lo, rstd + lo, dy + lo * C, len, C, dx + lo * C);
        }
    }
    if (dw || db) { // blocks of LN_COLS columns in parallel, their sums in a small buffer
        enum { LN_COLS = 64 };
#pragma omp parallel for schedule(static) if ((R * C) >= XC_PAR_MIN)
        for (int64_t c0 = 0; c0 < C; c0 += LN_COLS) {
            const int64_t n = C - c0 < LN_COLS ? C - c0 : LN_COLS;
            float sw[LN_COLS], sb[LN_COLS];
            layernorm_cols_dwdb(x + c0, mean, rstd, dy + c0, R, C, n, sw, sb);
            for (int64_t i = 0; i < n; i++) {
                if (dw) dw[c0 + i] += sw[i];
                if (db) db[c0 + i] += sb[i];
            }
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
