// ops_softmax.c - fused, stable softmax / log-softmax over the last dim with an optional additive
// mask, and soft-target cross-entropy.
#include "autograd/ops.h"
#include "autograd/kernels.h"

#include <math.h>

XC_CLONES void xc_softmax_row(const float *x, const float *m, float *y, int64_t n) {
    float lmax[XC_LANES], lsum[XC_LANES];
    for (int j = 0; j < XC_LANES; j++) lmax[j] = -INFINITY, lsum[j] = 0.0f;
    const int64_t nv = n / XC_LANES * XC_LANES;
    for (int64_t i = 0; i < nv; i += XC_LANES)
        for (int j = 0; j < XC_LANES; j++) {
            float v = m ? x[i + j] + m[i + j] : x[i + j];
            y[i + j] = v;
            lmax[j] = v > lmax[j] ? v : lmax[j];
        }
    for (int64_t i = nv; i < n; i++) {
        float v = m ? x[i] + m[i] : x[i];
        y[i] = v;
        lmax[i - nv] = v > lmax[i - nv] ? v : lmax[i - nv];
    }
    float mx = -INFINITY;
    for (int j = 0; j < XC_LANES; j++) mx = lmax[j] > mx ? lmax[j] : mx;
    if (mx == -INFINITY) { // fully masked (or empty) row: defined as zeros
        for (int64_t i = 0; i < n; i++) y[i] = 0.0f;
        return;
    }
    for (int64_t i = 0; i < nv; i += XC_LANES)
        for (int j = 0; j < XC_LANES; j++) {
            float v = y[i + j], e = v == -INFINITY ? 0.0f : xc_expf(v - mx);
            y[i + j] = e;
            lsum[j] += e;
        }
    for (int64_t i = nv; i < n; i++) {
        float e = y[i] == -INFINITY ? 0.0f : xc_expf(y[i] - mx);
        y[i] = e;
        lsum[i - nv] += e;
    }
    const float inv = 1.0f / xc_lanes_sum(lsum);
    for (int64_t i = 0; i < n; i++) y[i] *= inv;
}

XC_CLONES void xc_softmax_row_bwd(const float *p, float *d, int64_t n) {
    const float dot = xc_lanes_dot(d, p, n);
    for (int64_t i = 0; i < n; i++) d[i] = p[i] * (d[i] - dot);
}

void xc_softmax_row_naive(const float *x, const float *m, float *y, int64_t n) {
    double mx = -INFINITY, s = 0;
    for (int64_t i = 0; i < n; i++) mx = fmax(mx, (double)(m ? x[i] + m[i] : x[i]));
    for (int64_t i = 0; i < n; i++) s += mx == -INFINITY ? 0.0 : exp((double)(m ? x[i] + m[i] : x[i]) - mx);
    for (int64_t i = 0; i < n; i++)
        y[i] = mx == -INFINITY ? 0.0f : (float)(exp((double)(m ? x[i] + m[i] : x[i]) - mx) / s);
}

// log-softmax row: y = v - mx - log(sum exp(v - mx)); fully masked rows give -inf.
static void log_softmax_row(const float *x, const float *m, float *y, int64_t n) {
    float mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        float v = m ? x[i] + m[i] : x[i];
        if (v > mx) mx = v;
    }
    if (mx == -INFINITY) {
        for (int64_t i = 0; i < n; i++) y[i] = -INFINITY;
        return;
    }
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) s += expf((m ? x[i] + m[i] : x[i]) - mx);
    float lse = mx + logf(s);
    for (int64_t i = 0; i < n; i++) y[i] = (m ? x[i] + m[i] : x[i]) - lse;
}

typedef struct SoftmaxCtx {
    int64_t rows, n, mask_rows; // mask (mask_rows, n) applies to row r as mask[r % mask_rows]
} SoftmaxCtx;

// softmax: dx = y (dy - <y, dy>)
static void softmax_backward(Graph *g, TapeNode *node) {
    const SoftmaxCtx *c = node->ctx;
    float *dx = tensor_grad(g, node->in[0]);
    const float *y = node->out->data, *go = node->out->grad;
#pragma omp parallel for schedule(static) if ((c->rows * c->n) >= XC_PAR_MIN)
    for (int64_t r = 0; r < c->rows; r++) {
        const float *yr = y + r * c->n, *gr = go + r * c->n;
        float dot = 0.0f;
        for (int64_t i = 0; i < c->n; i++) dot += yr[i] * gr[i];
        for (int64_t i = 0; i < c->n; i++) dx[r * c->n + i] += yr[i] * (gr[i] - dot);
    }
}

// log-softmax: dx = dy - softmax * sum(dy), as PyTorch (a masked entry has softmax 0, so it passes its
// own dy through, like the additive mask it came through). Fully masked rows pass nothing.
static void log_softmax_backward(Graph *g, TapeNode *node) {
    const SoftmaxCtx *c = node->ctx;
    float *dx = tensor_grad(g, node->in[0]);
    const float *y = node->out->data, *go = node->out->grad;
#pragma omp parallel for schedule(static) if ((c->rows * c->n) >= XC_PAR_MIN)
    for (int64_t r = 0; r < c->rows; r++) {
        const float *yr = y + r * c->n, *gr = go + r * c->n;
        bool live = false;
        float s = 0.0f;
        for (int64_t i = 0; i < c->n; i++) {
            s += gr[i];
            live |= yr[i] != -INFINITY;
        }
        if (!live) continue;
        for (int64_t i = 0; i < c->n; i++) dx[r * c->n + i] += gr[i] - expf(yr[i]) * s;
    }
}

const OpDef xc_opdef_softmax = {.name = "softmax", .backward = softmax_backward};
const OpDef xc_opdef_log_softmax = {.name = "log_softmax", .backward = log_softmax_backward};

static Tensor *softmax_op(Graph *g, Tensor *x, Tensor *mask, bool log_space) {
    XC_CHECK(x->ndim >= 1, "softmax needs rank >= 1");
    SoftmaxCtx c = {0, x->shape[x->ndim - 1], 0};
    c.rows = c.n ? x->numel / c.n : 0;
    if (mask) {
        XC_CHECK(!mask->requires_grad, "softmax: the mask is a constant and gets no gradient");
        XC_CHECK(mask->ndim == 2 && mask->shape[1] == c.n && x->ndim >= 2 && mask->shape[0] == x->shape[x->ndim - 2],
                 "softmax: mask must be (Lq, Lk) matching the last two dims of x");
        c.mask_rows = mask->shape[0];
    }
    Tensor *y = tensor_new(g, x->ndim, x->shape);
#pragma omp parallel for schedule(static) if ((c.rows * c.n) >= XC_PAR_MIN)
    for (int64_t r = 0; r < c.rows; r++) {
        const float *m = mask ? mask->data + (r % c.mask_rows) * c.n : NULL;
        if (log_space) log_softmax_row(x->data + r * c.n, m, y->data + r * c.n, c.n);
        else xc_softmax_row(x->data + r * c.n, m, y->data + r * c.n, c.n);
    }
    if (graph_needs_grad(g, &x, 1)) {
        TapeNode *node = graph_record(g, log_space ? &xc_opdef_log_softmax : &xc_opdef_softmax, y, &x, 1);
        SoftmaxCtx *cc = arena_alloc(&g->step, sizeof *cc);
        *cc = c;
        node->ctx = cc;
    }
    return y;
}

Tensor *op_softmax(Graph *g, Tensor *x, Tensor *mask) { return softmax_op(g, x, mask, false); }
Tensor *op_log_softmax(Graph *g, Tensor *x, Tensor *mask) { return softmax_op(g, x, mask, true); }

// ---- soft-target cross entropy: loss = -(1/B) sum_b sum_k y_bk log p_bk --------------------------
// Saves p (B, K). d logits = (p * sum_k y_bk - y) / B.
static void soft_ce_backward(Graph *g, TapeNode *node) {
    Tensor *logits = node->in[0], *targets = node->in[1];
    const float *p = node->ctx;
    int64_t B = logits->shape[0], K = logits->shape[1];
    float go = node->out->grad[0] / (float)B;
    float *dl = tensor_grad(g, logits);
#pragma omp parallel for schedule(static) if ((B * K) >= XC_PAR_MIN)
    for (int64_t b = 0; b < B; b++) {
        const float *y = targets->data + b * K;
        float ysum = 0.0f;
        for (int64_t k = 0; k < K; k++) ysum += y[k];
        for (int64_t k = 0; k < K; k++) dl[b * K + k] += go * (p[b * K + k] * ysum - y[k]);
    }
}
const OpDef xc_opdef_soft_cross_entropy = {.name = "soft_cross_entropy", .backward = soft_ce_backward};

Tensor *op_soft_cross_entropy(Graph *g, Tensor *logits, Tensor *targets) {
    XC_CHECK(logits->ndim == 2 && tensor_same_shape(logits, targets), "soft_cross_entropy: logits and targets must be (B, K)");
    XC_CHECK(!targets->requires_grad, "soft_cross_entropy: targets get no gradient");
    int64_t B = logits->shape[0], K = logits->shape[1];
    float *p = arena_alloc(&g->step, (size_t)(B * K) * sizeof(float));
    double *row_loss = arena_alloc(&g->step, (size_t)(B ? B : 1) * sizeof(double));
#pragma omp parallel for schedule(static) if ((B * K) >= XC_PAR_MIN)
    for (int64_t b = 0; b < B; b++) {
        const float *x = logits->data + b * K, *y = targets->data + b * K;
        float mx = -INFINITY;
        for (int64_t k = 0; k < K; k++) if (x[k] > mx) mx = x[k];
        double s = 0.0;
        for (int64_t k = 0; k < K; k++) s += exp((double)x[k] - mx);
        double lse = mx + log(s), l = 0.0;
        for (int64_t k = 0; k < K; k++) {
            p[b * K + k] = (float)exp((double)x[k] - lse);
            if (y[k] != 0.0f) l -= (double)y[k] * ((double)x[k] - lse);
        }
        row_loss[b] = l;
    }
    double total = 0.0;
    for (int64_t b = 0; b < B; b++) total += row_loss[b]; // in order: deterministic
    Tensor *loss = tensor_new(g, 0, NULL);
    loss->data[0] = (float)(total / (double)(B ? B : 1));
    Tensor *in[2] = {logits, targets};
    if (graph_needs_grad(g, in, 2)) graph_record(g, &xc_opdef_soft_cross_entropy, loss, in, 2)->ctx = p;
    return loss;
}
