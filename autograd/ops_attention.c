// ops_attention.c - fused multi-head scaled-dot-product attention (nn.MultiheadAttention semantics).
//
// Per (batch b, head h), with dh = W / heads and scale = dh^-1/2:
//   S = scale Q K^T + mask,  P = softmax(S) (rows),  O = P V
// P (B, H, Lq, Lk) is not kept: the backward computes it again per (b, h), with the same code on the same
// operands (the same bits), then
//   dV = P^T dO,  dP = dO V^T,  dS = P * (dP - rowsum(dP * P)),  dQ = scale dS K,  dK = scale dS^T Q.
// Q, K, V are read in place through row strides (packed qkv has stride 3W), so nothing is repacked.
// The (b, h) pairs run in an OpenMP loop; each GEMM inside runs on its own thread, through that thread's context of
// the graph's Gemm (gemm_per_thread): in bf16 the products round their operands, P included, to bfloat16 and sum
// in float32 (as the linear layers'); the scores, the softmax and its backward stay float32.
#include "autograd/ops.h"
#include "autograd/kernels.h"

#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

// P = softmax(scale Q K^T + mask), (Lq, Lk)
static void attention_probs(Gemm *mm, const float *q, int64_t ldq, const float *k, int64_t ldk, const float *mask,
                            float scale, int64_t Lq, int64_t Lk, int64_t dh, float *p) {
    gemm_run(mm, false, true, Lq, Lk, dh, scale, q, ldq, k, ldk, 0.0f, p, Lk);
    for (int64_t i = 0; i < Lq; i++) xc_softmax_row(p + i * Lk, mask ? mask + i * Lk : NULL, p + i * Lk, Lk);
}

void xc_attention_head(Gemm *mm, const float *q, int64_t ldq, const float *k, int64_t ldk, const float *v, int64_t ldv,
                       const float *mask, float scale, int64_t Lq, int64_t Lk, int64_t dh, float *p, float *o,
                       int64_t ldo) {
    attention_probs(mm, q, ldq, k, ldk, mask, scale, Lq, Lk, dh, p);
    gemm_run(mm, false, false, Lq, dh, Lk, 1.0f, p, Lk, v, ldv, 0.0f, o, ldo);
}

void xc_attention_head_naive(const float *q, int64_t ldq, const float *k, int64_t ldk, const float *v,
                             int64_t ldv, const float *mask, float scale, int64_t Lq, int64_t Lk, int64_t dh,
                             float *p, float *o, int64_t ldo) {
    for (int64_t i = 0; i < Lq; i++) {
        double mx = -INFINITY;
        for (int64_t j = 0; j < Lk; j++) {
            double s = 0;
            for (int64_t d = 0; d < dh; d++) s += (double)q[i * ldq + d] * k[j * ldk + d];
            s = s * scale + (mask ? mask[i * Lk + j] : 0.0f);
            p[i * Lk + j] = (float)s;
            if (s > mx) mx = s;
        }
        double sum = 0;
        for (int64_t j = 0; j < Lk; j++) sum += mx == -INFINITY ? 0.0 : exp(p[i * Lk + j] - mx);
        for (int64_t j = 0; j < Lk; j++) p[i * Lk + j] = mx == -INFINITY ? 0.0f : (float)(exp(p[i * Lk + j] - mx) / sum);
        for (int64_t d = 0; d < dh; d++) {
            double s = 0;
            for (int64_t j = 0; j < Lk; j++) s += (double)p[i * Lk + j] * v[j * ldv + d];
            o[i * ldo + d] = (float)s;
        }
    }
}

// Where q, k and v live: tensor, offset of head 0 in batch 0, batch stride, row stride.
typedef struct AttnOperand {
    int tensor;                 // index into the node's inputs
    int64_t off, batch_stride, ld;
} AttnOperand;

typedef struct AttnCtx {
    int64_t B, H, Lq, Lk, dh;
    float scale;
    AttnOperand q, k, v;
    const float *mask;          // (Lq, Lk) or NULL
} AttnCtx;

static int max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static int thread_num(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static inline const float *operand_ptr(const float *base, const AttnOperand *o, int64_t b, int64_t h, int64_t dh) {
    return base + o->off + b * o->batch_stride + h * dh;
}

static void attention_backward(Graph *g, TapeNode *node) {
    const AttnCtx *c = node->ctx;
    int64_t W = c->H * c->dh, LL = c->Lq * c->Lk;
    Tensor *tq = node->in[c->q.tensor], *tk = node->in[c->k.tensor], *tv = node->in[c->v.tensor];
    const float *dO = node->out->grad; // (B, Lq, W)
    float *dq = tq->requires_grad ? tensor_grad(g, tq) : NULL;
    float *dk = tk->requires_grad ? tensor_grad(g, tk) : NULL;
    float *dv = tv->requires_grad ? tensor_grad(g, tv) : NULL;
    const int64_t nt = max_threads();
    Gemm *mms = gemm_per_thread(g->gemm, (int)nt);
    ArenaMark m = arena_mark(&g->step);
    float *scratch = arena_alloc(&g->step, (size_t)(2 * nt * LL) * sizeof(float)); // P and dP / dS per thread
#pragma omp parallel for schedule(static) if ((c->B * c->H * c->Lq * c->Lk * c->dh) >= XC_PAR_MIN)
    for (int64_t bh = 0; bh < c->B * c->H; bh++) {
        int64_t b = bh / c->H, h = bh % c->H;
        const float *G = dO + b * c->Lq * W + h * c->dh;
        const float *Q = operand_ptr(tq->data, &c->q, b, h, c->dh);
        const float *K = operand_ptr(tk->data, &c->k, b, h, c->dh);
        const float *V = operand_ptr(tv->data, &c->v, b, h, c->dh);
        float *P = scratch + 2 * thread_num() * LL, *dS = P + LL;
        Gemm *mm = mms ? &mms[thread_num()] : NULL;
        attention_probs(mm, Q, c->q.ld, K, c->k.ld, c->mask, c->scale, c->Lq, c->Lk, c->dh, P);
        if (dv) gemm_run(mm, true, false, c->Lk, c->dh, c->Lq, 1.0f, P, c->Lk, G, W, 1.0f,
                        dv + c->v.off + b * c->v.batch_stride + h * c->dh, c->v.ld);          // dV += P^T dO
        if (!dq && !dk) continue;
        gemm_run(mm, false, true, c->Lq, c->Lk, c->dh, 1.0f, G, W, V, c->v.ld, 0.0f, dS, c->Lk);    // dP = dO V^T
        for (int64_t i = 0; i < c->Lq; i++) xc_softmax_row_bwd(P + i * c->Lk, dS + i * c->Lk, c->Lk); // dS from dP
        if (dq) gemm_run(mm, false, false, c->Lq, c->dh, c->Lk, c->scale, dS, c->Lk, K, c->k.ld, 1.0f,
                        dq + c->q.off + b * c->q.batch_stride + h * c->dh, c->q.ld);          // dQ += s dS K
        if (dk) gemm_run(mm, true, false, c->Lk, c->dh, c->Lq, c->scale, dS, c->Lk, Q, c->q.ld, 1.0f,
                        dk + c->k.off + b * c->k.batch_stride + h * c->dh, c->k.ld);          // dK += s dS^T Q
    }
    arena_rewind(&g->step, m);
}

const OpDef xc_opdef_attention = {.name = "attention", .backward = attention_backward};
const OpDef xc_opdef_cross_attention = {.name = "cross_attention", .backward = attention_backward};

static Tensor *attention_run(Graph *g, const OpDef *def, Tensor *const *in, int n_in, AttnCtx c) {
    int64_t W = c.H * c.dh, LL = c.Lq * c.Lk;
    Tensor *out = tensor_new(g, 3, (int64_t[]){c.B, c.Lq, W});
    ArenaMark m = arena_mark(&g->step);
    float *p = arena_alloc(&g->step, (size_t)(max_threads() * LL) * sizeof(float)); // P per thread
    Gemm *mms = gemm_per_thread(g->gemm, max_threads());
    const float *dq = in[c.q.tensor]->data, *dk = in[c.k.tensor]->data, *dv = in[c.v.tensor]->data;
#pragma omp parallel for schedule(static) if ((c.B * c.H * c.Lq * c.Lk * c.dh) >= XC_PAR_MIN)
    for (int64_t bh = 0; bh < c.B * c.H; bh++) {
        int64_t b = bh / c.H, h = bh % c.H;
        xc_attention_head(mms ? &mms[thread_num()] : NULL, operand_ptr(dq, &c.q, b, h, c.dh), c.q.ld,
                          operand_ptr(dk, &c.k, b, h, c.dh), c.k.ld, operand_ptr(dv, &c.v, b, h, c.dh), c.v.ld, c.mask,
                          c.scale, c.Lq, c.Lk, c.dh, p + thread_num() * LL, out->data + b * c.Lq * W + h * c.dh, W);
    }
    arena_rewind(&g->step, m);
    if (graph_needs_grad(g, in, n_in)) {
        TapeNode *node = graph_record(g, def, out, in, n_in);
        AttnCtx *cc = arena_alloc(&g->step, sizeof *cc);
        *cc = c;
        node->ctx = cc;
    }
    return out;
}

Tensor *op_attention(Graph *g, Tensor *qkv, int heads, Tensor *mask) {
    XC_CHECK(qkv->ndim == 3 && qkv->shape[2] % 3 == 0, "attention: qkv must be (B, L, 3W)");
    int64_t B = qkv->shape[0], L = qkv->shape[1], W = qkv->shape[2] / 3;
    XC_CHECK(heads > 0 && W % heads == 0, "attention: width %lld not divisible by %d heads", (long long)W, heads);
    XC_CHECK(!mask || (mask->ndim == 2 && mask->shape[0] == L && mask->shape[1] == L && !mask->requires_grad),
             "attention: mask must be a constant (L, L)");
    AttnCtx c = {B, heads, L, L, W / heads, 0, {0, 0, L * 3 * W, 3 * W}, {0, W, L * 3 * W, 3 * W},
                 {0, 2 * W, L * 3 * W, 3 * W}, mask ? mask->data : NULL};
    c.scale = 1.0f / sqrtf((float)c.dh);
    return attention_run(g, &xc_opdef_attention, &qkv, 1, c);
}

Tensor *op_cross_attention(Graph *g, Tensor *q, Tensor *k, Tensor *v, int heads) {
    XC_CHECK(q->ndim == 3 && k->ndim == 3 && tensor_same_shape(k, v) && q->shape[0] == k->shape[0] &&
                 q->shape[2] == k->shape[2], "cross_attention: q (B, Lq, W), k and v (B, Lk, W)");
    int64_t B = q->shape[0], Lq = q->shape[1], Lk = k->shape[1], W = q->shape[2];
    XC_CHECK(heads > 0 && W % heads == 0, "cross_attention: width %lld not divisible by %d heads", (long long)W, heads);
    AttnCtx c = {B, heads, Lq, Lk, W / heads, 0, {0, 0, Lq * W, W}, {1, 0, Lk * W, W}, {2, 0, Lk * W, W}, NULL};
    c.scale = 1.0f / sqrtf((float)c.dh);
    Tensor *in[3] = {q, k, v};
    return attention_run(g, &xc_opdef_cross_attention, in, 3, c);
}

Tensor *op_mha(Graph *g, Tensor *x, Tensor *in_w, Tensor *in_b, Tensor *out_w, Tensor *out_b, int heads,
               Tensor *mask) {
    Tensor *qkv = op_linear(g, x, in_w, in_b);
    return op_linear(g, op_attention(g, qkv, heads, mask), out_w, out_b);
}
