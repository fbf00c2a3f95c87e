// ops.h - differentiable operations on Tensors. Every op takes the Graph first, allocates its output
// from the step arena, and records itself on the tape when an input requires grad and grad mode is
// on. Backward kernels accumulate (+=) into input gradients, so fan-out needs no special case.
//
//   Tensor *h = op_layernorm(g, x, ln_w, ln_b, 1e-5f);          // x (R, W)
//   Tensor *qkv = op_linear(g, h, in_proj_w, in_proj_b);         // (R, 3W)
//   Tensor *a = op_attention(g, op_reshape(g, qkv, 3, (int64_t[]){B, L, 3 * W}), heads, NULL);
//   Tensor *y = op_add(g, x, op_linear(g, a, out_w, out_b));     // residual
//
// Shapes are checked (a mismatch aborts with file:line: it is a programmer error).
// The list XC_OPS names every op; tests walk it so an op without a gradient check or a PyTorch
// parity case fails the suite.
#pragma once
#include "autograd/tensor.h"
#include "autograd/rng.h"

#define XC_OPS(X)                                                                              \
    X(matmul) X(linear) X(add) X(sub) X(mul) X(scale) X(exp) X(sum) X(mean)                   \
    X(reshape) X(permute) X(concat) X(slice) X(gather_rows) X(embedding)                      \
    X(layernorm) X(softmax) X(log_softmax) X(quick_gelu) X(attention) X(cross_attention)      \
    X(patch_embed) X(l2_normalize) X(soft_cross_entropy) X(dropout) X(drop_path)            \
    X(layernorm_linear) X(quick_gelu_linear)

#define XC_DECLARE_OPDEF(name) extern const OpDef xc_opdef_##name;
XC_OPS(XC_DECLARE_OPDEF)
#undef XC_DECLARE_OPDEF

// ---- linear algebra (ops_matmul.c) ---------------------------------------------------------------
// a (..., M, K) [or (..., K, M) if ta] times b (..., K, N) [or (..., N, K) if tb] -> (..., M, N).
// b has the same leading dims as a, or is 2-D and shared by every batch.
Tensor *op_matmul(Graph *g, Tensor *a, Tensor *b, bool ta, bool tb);
// x (..., in) w (out, in) b (out) or NULL -> (..., out): x w^T + b, one GEMM over all rows.
Tensor *op_linear(Graph *g, Tensor *x, Tensor *w, Tensor *b);
// The same over LayerNorm(x) (weight ln_w, bias ln_b, eps) or QuickGELU(x), without keeping that
// intermediate: backward recomputes it (bitwise the same), which saves its memory for the step. Values and
// gradients equal op_linear(op_layernorm(...)) and op_linear(op_quick_gelu(...)) bit for bit.
Tensor *op_layernorm_linear(Graph *g, Tensor *x, Tensor *ln_w, Tensor *ln_b, float eps, Tensor *w, Tensor *b);
Tensor *op_quick_gelu_linear(Graph *g, Tensor *x, Tensor *w, Tensor *b);

// ---- elementwise (ops_elementwise.c) ---------------------------------------------------------------
// Binary ops broadcast as NumPy/PyTorch do (dims aligned from the right, size-1 dims stretch).
Tensor *op_add(Graph *g, Tensor *a, Tensor *b);
// x + y for a residual update x + branch(x): the sum is written over y's data when nothing can read y again
// (y is the newest op's output, not yet an input of any op, and that op's backward - linear, slice, dropout,
// drop-path - does not read its output; with the tape off, any step tensor), else into a new tensor as
// op_add. The caller must not use y afterwards. The same values and gradients as op_add, bit for bit.
Tensor *op_add_residual(Graph *g, Tensor *x, Tensor *y);
Tensor *op_sub(Graph *g, Tensor *a, Tensor *b);
Tensor *op_mul(Graph *g, Tensor *a, Tensor *b);
Tensor *op_scale(Graph *g, Tensor *x, float c);
Tensor *op_exp(Graph *g, Tensor *x);
Tensor *op_quick_gelu(Graph *g, Tensor *x);                       // x * sigmoid(1.702 x)
// Dropout with probability p (training): zeroes elements, scales survivors by 1/(1-p).
Tensor *op_dropout(Graph *g, Tensor *x, float p, Rng *rng);
// Stochastic depth: drops whole samples along dim 0 with probability p, scales the rest by 1/(1-p).
Tensor *op_drop_path(Graph *g, Tensor *x, float p, Rng *rng);

// ---- reductions (ops_reduce.c) -----------------------------------------------------------------
Tensor *op_sum(Graph *g, Tensor *x, int dim);                     // removes dim
Tensor *op_mean(Graph *g, Tensor *x, int dim);                    // removes dim
// x / ||x|| over the last dim (a zero row stays zero).
Tensor *op_l2_normalize(Graph *g, Tensor *x);

// ---- shape (ops_shape.c) ------------------------------------------------------------------------
Tensor *op_reshape(Graph *g, Tensor *x, int ndim, const int64_t *shape); // a view: shares data
Tensor *op_permute(Graph *g, Tensor *x, const int *perm);               // out.shape[i] = x.shape[perm[i]]
Tensor *op_transpose(Graph *g, Tensor *x, int d0, int d1);              // a permute
Tensor *op_concat(Graph *g, Tensor *const *xs, int n, int dim);         // n <= XT_MAX_INPUTS
Tensor *op_slice(Graph *g, Tensor *x, int dim, int64_t start, int64_t len);
// The same as the last use of x (the caller never reads x again): when graph_overwritable(x), the slice is
// moved down within x's own memory instead of copied out (no new memory; values and gradients as op_slice).
Tensor *op_slice_consume(Graph *g, Tensor *x, int dim, int64_t start, int64_t len);
// x (R, L, C), idx[R] in [0, L) -> (R, C): row idx[r] of each x[r] (class token, EOT position).
Tensor *op_gather_rows(Graph *g, Tensor *x, const int64_t *idx);
// table (V, D), ids[n] in [0, V) -> (n, D).
Tensor *op_embedding(Graph *g, Tensor *table, const int32_t *ids, int64_t n);

// ---- normalisation and softmax (ops_norm.c, ops_softmax.c) --------------------------------------
// LayerNorm over the last dim, affine; saves mean and rstd per row.
Tensor *op_layernorm(Graph *g, Tensor *x, Tensor *w, Tensor *b, float eps);
// Softmax / log-softmax over the last dim of x (..., Lq, Lk), with an optional additive mask (Lq, Lk)
// (NULL: none). A row whose entries are all -inf gives zeros (softmax) / -inf (log-softmax) and
// passes no gradient.
Tensor *op_softmax(Graph *g, Tensor *x, Tensor *mask);
Tensor *op_log_softmax(Graph *g, Tensor *x, Tensor *mask);
// Soft-target cross entropy: mean over B of -sum_k y[b,k] log_softmax(logits[b])[k].
// logits (B, K); targets (B, K) never receive gradient. -> scalar (1 element, 0-d).
Tensor *op_soft_cross_entropy(Graph *g, Tensor *logits, Tensor *targets);

// ---- attention (ops_attention.c) ----------------------------------------------------------------
// Scaled dot-product attention of nn.MultiheadAttention: qkv (B, L, 3W) holds q, k, v stacked on the
// last dim (as in_proj produces them); heads divide W; mask (L, L) additive or NULL -> (B, L, W).
Tensor *op_attention(Graph *g, Tensor *qkv, int heads, Tensor *mask);
// Cross attention: q (B, Lq, W), k and v (B, Lk, W) -> (B, Lq, W).
Tensor *op_cross_attention(Graph *g, Tensor *q, Tensor *k, Tensor *v, int heads);
// The whole nn.MultiheadAttention self-attention: in_proj (3W, W) + bias, attention, out_proj.
// x (B, L, W) -> (B, L, W).
Tensor *op_mha(Graph *g, Tensor *x, Tensor *in_w, Tensor *in_b, Tensor *out_w, Tensor *out_b,
               int heads, Tensor *mask);

// ---- convolution (ops_conv.c) -------------------------------------------------------------------
// Patch embedding, a conv with kernel = stride = P and no bias:
// img (F, C, H, W) w (Wd, C, P, P) -> (F, (H/P)*(W/P), Wd), patches row-major over the grid.
Tensor *op_patch_embed(Graph *g, Tensor *img, Tensor *w);
