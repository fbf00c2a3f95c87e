// op_cases.h - the table of op test cases shared by the gradient check (test_gradcheck.c) and the
// PyTorch parity test (test_op_parity.c). tests/ref/make_op_fixtures.py mirrors every case by id.
//
// A case names its op (one of XC_OPS), its input shapes, and a function that builds the output from
// the inputs; constants (indices, masks, targets, RNG seeds) live inside the function so every call
// computes the same function of the inputs.
#pragma once
#include <math.h>
#include "autograd/ops.h"

#define MAXIN XT_MAX_INPUTS

typedef Tensor *(*CaseFn)(Graph *g, Tensor **in);

typedef struct OpCase {
    const char *id;       // unique, also the fixture group name
    const char *op;       // name from XC_OPS
    int n_in;
    int ndim[MAXIN];
    int64_t shape[MAXIN][XT_MAX_DIMS];
    CaseFn fn;
    bool positive;        // inputs drawn from [0.5, 1.5] instead of [-1, 1]
} OpCase;

#define T(...) {__VA_ARGS__}

static Tensor *c_matmul_nn(Graph *g, Tensor **x) { return op_matmul(g, x[0], x[1], false, false); }
static Tensor *c_matmul_tn(Graph *g, Tensor **x) { return op_matmul(g, x[0], x[1], true, false); }
static Tensor *c_matmul_nt(Graph *g, Tensor **x) { return op_matmul(g, x[0], x[1], false, true); }
static Tensor *c_matmul_tt(Graph *g, Tensor **x) { return op_matmul(g, x[0], x[1], true, true); }
static Tensor *c_linear(Graph *g, Tensor **x) { return op_linear(g, x[0], x[1], x[2]); }
static Tensor *c_linear_nobias(Graph *g, Tensor **x) { return op_linear(g, x[0], x[1], NULL); }
static Tensor *c_add(Graph *g, Tensor **x) { return op_add(g, x[0], x[1]); }
static Tensor *c_sub(Graph *g, Tensor **x) { return op_sub(g, x[0], x[1]); }
static Tensor *c_add_self(Graph *g, Tensor **x) { return op_add(g, x[0], x[0]); }
// k - x and k + x for a constant k of x's shape (k[i] = i / 4 - 1, no gradient): the operand without a gradient
// first, so the second one is the last reader of the output's gradient
static Tensor *const_like(Graph *g, const Tensor *x) {
    Tensor *k = tensor_zeros(g, x->ndim, x->shape);
    for (int64_t i = 0; i < k->numel; i++) k->data[i] = 0.25f * (float)i - 1.0f;
    return k;
}
static Tensor *c_sub_const_lhs(Graph *g, Tensor **x) { return op_sub(g, const_like(g, x[0]), x[0]); }
static Tensor *c_add_const_lhs(Graph *g, Tensor **x) { return op_add(g, const_like(g, x[0]), x[0]); }
static Tensor *c_mul(Graph *g, Tensor **x) { return op_mul(g, x[0], x[1]); }
static Tensor *c_scale(Graph *g, Tensor **x) { return op_scale(g, x[0], -1.7f); }
static Tensor *c_exp(Graph *g, Tensor **x) { return op_exp(g, x[0]); }
static Tensor *c_sum0(Graph *g, Tensor **x) { return op_sum(g, x[0], 0); }
static Tensor *c_sum1(Graph *g, Tensor **x) { return op_sum(g, x[0], 1); }
static Tensor *c_mean_last(Graph *g, Tensor **x) { return op_mean(g, x[0], -1); }
static Tensor *c_reshape(Graph *g, Tensor **x) {
    return op_scale(g, op_reshape(g, x[0], 3, (int64_t[]){3, -1, 2}), 1.0f); // scale: the view's grad flows on
}
static Tensor *c_permute(Graph *g, Tensor **x) { return op_permute(g, x[0], (int[]){2, 0, 3, 1}); }
static Tensor *c_transpose(Graph *g, Tensor **x) { return op_transpose(g, x[0], 0, 2); }
static Tensor *c_concat(Graph *g, Tensor **x) { return op_concat(g, x, 3, 1); }
static Tensor *c_slice(Graph *g, Tensor **x) { return op_slice(g, x[0], 1, 1, 3); }
static Tensor *c_gather(Graph *g, Tensor **x) { return op_gather_rows(g, x[0], (int64_t[]){4, 0, 2}); }
static Tensor *c_embedding(Graph *g, Tensor **x) {
    return op_embedding(g, x[0], (int32_t[]){3, 0, 3, 5, 1, 3, 0}, 7); // repeated ids accumulate
}
static Tensor *c_layernorm(Graph *g, Tensor **x) { return op_layernorm(g, x[0], x[1], x[2], 1e-5f); }

static Tensor *causal_mask(Graph *g, int64_t L) {
    Tensor *m = tensor_new(g, 2, (int64_t[]){L, L});
    for (int64_t i = 0; i < L; i++)
        for (int64_t j = 0; j < L; j++) m->data[i * L + j] = j > i ? -INFINITY : 0.0f;
    return m;
}
// A mask with one fully masked row (row 1) and a finite additive bias elsewhere.
static Tensor *odd_mask(Graph *g, int64_t L) {
    Tensor *m = tensor_new(g, 2, (int64_t[]){L, L});
    for (int64_t i = 0; i < L; i++)
        for (int64_t j = 0; j < L; j++) m->data[i * L + j] = i == 1 ? -INFINITY : (j == 0 ? -INFINITY : 0.25f * (float)(i - j));
    return m;
}
static Tensor *c_softmax(Graph *g, Tensor **x) { return op_softmax(g, x[0], NULL); }
static Tensor *c_softmax_causal(Graph *g, Tensor **x) { return op_softmax(g, x[0], causal_mask(g, x[0]->shape[x[0]->ndim - 1])); }
static Tensor *c_softmax_odd(Graph *g, Tensor **x) { return op_softmax(g, x[0], odd_mask(g, x[0]->shape[x[0]->ndim - 1])); }
static Tensor *c_log_softmax(Graph *g, Tensor **x) { return op_log_softmax(g, x[0], NULL); }
static Tensor *c_log_softmax_causal(Graph *g, Tensor **x) {
    return op_log_softmax(g, x[0], causal_mask(g, x[0]->shape[x[0]->ndim - 1]));
}
static Tensor *c_quick_gelu(Graph *g, Tensor **x) { return op_quick_gelu(g, x[0]); }
static Tensor *c_layernorm_linear(Graph *g, Tensor **x) { return op_layernorm_linear(g, x[0], x[1], x[2], 1e-5f, x[3], x[4]); }
static Tensor *c_quick_gelu_linear(Graph *g, Tensor **x) { return op_quick_gelu_linear(g, x[0], x[1], x[2]); }
static Tensor *c_quick_gelu_linear_nobias(Graph *g, Tensor **x) { return op_quick_gelu_linear(g, x[0], x[1], NULL); }
static Tensor *c_attention(Graph *g, Tensor **x) { return op_attention(g, x[0], 2, NULL); }
static Tensor *c_attention_causal(Graph *g, Tensor **x) { return op_attention(g, x[0], 3, causal_mask(g, x[0]->shape[1])); }
static Tensor *c_cross_attention(Graph *g, Tensor **x) { return op_cross_attention(g, x[0], x[1], x[2], 2); }
static Tensor *c_mha(Graph *g, Tensor **x) {
    Tensor *in[MAXIN];
    for (int i = 0; i < MAXIN; i++) in[i] = x[i];
    // x[3] packs out_proj weight (W, W) and bias (W) as (W+1, W)
    int64_t W = x[0]->shape[2];
    Tensor *ow = op_slice(g, in[3], 0, 0, W), *ob = op_reshape(g, op_slice(g, in[3], 0, W, 1), 1, (int64_t[]){W});
    return op_mha(g, x[0], x[1], x[2], ow, ob, 2, causal_mask(g, x[0]->shape[1]));
}
static Tensor *c_patch_embed(Graph *g, Tensor **x) { return op_patch_embed(g, x[0], x[1]); }
static Tensor *c_l2(Graph *g, Tensor **x) { return op_l2_normalize(g, x[0]); }
static Tensor *c_soft_ce(Graph *g, Tensor **x) {
    // soft targets: label smoothing 0.1 over K=5 mixed 0.7/0.3 between two classes, one row one-hot
    int64_t B = x[0]->shape[0], K = x[0]->shape[1];
    Tensor *y = tensor_new(g, 2, (int64_t[]){B, K});
    for (int64_t b = 0; b < B; b++)
        for (int64_t k = 0; k < K; k++) {
            float off = 0.1f / (float)K, on = 0.9f + off;
            float a = k == b % K ? on : off, c = k == (b + 2) % K ? on : off;
            y->data[b * K + k] = b == 0 ? (k == 1 ? 1.0f : 0.0f) : 0.7f * a + 0.3f * c;
        }
    return op_soft_cross_entropy(g, x[0], y);
}
static Tensor *c_dropout(Graph *g, Tensor **x) {
    Rng r = rng_stream(7, RNG_STREAM_TEST);
    return op_dropout(g, x[0], 0.3f, &r);
}
static Tensor *c_drop_path(Graph *g, Tensor **x) {
    Rng r = rng_stream(11, RNG_STREAM_TEST);
    return op_drop_path(g, x[0], 0.5f, &r);
}

// Gradient checkpointing (op_checkpoint, autograd/tape.c; not in XC_OPS: it is not a kernel but a way to run
// one): y = x + drop_path(linear(quick_gelu(x), w, b)). The weights reach the region through its context, as a
// transformer block's do; the backward recomputes the region, replaying the drop-path mask from the saved RNG
// state (seed 13 keeps sample 0 of 3 and drops the others), and must deliver gradients for x, w and b.
typedef struct CkptArgs {
    Tensor *w, *b;
} CkptArgs;
static Tensor *ckpt_region(Graph *g, const void *ctx, Tensor *x, Rng *rng) {
    const CkptArgs *a = ctx;
    return op_add(g, x, op_drop_path(g, op_linear(g, op_quick_gelu(g, x), a->w, a->b), 0.5f, rng));
}
static Tensor *c_checkpoint(Graph *g, Tensor **x) {
    Rng r = rng_stream(13, RNG_STREAM_TEST);
    CkptArgs a = {x[1], x[2]};
    return op_checkpoint(g, ckpt_region, &a, sizeof a, x[0], &r);
}

static const OpCase op_cases[] = {
    {"matmul_nn", "matmul", 2, {2, 2}, {{3, 4}, {4, 5}}, c_matmul_nn, false},
    {"matmul_tn_batched", "matmul", 2, {3, 3}, {{2, 4, 3}, {2, 4, 5}}, c_matmul_tn, false},
    {"matmul_nt_batched", "matmul", 2, {4, 4}, {{2, 1, 3, 4}, {2, 1, 5, 4}}, c_matmul_nt, false},
    {"matmul_tt", "matmul", 2, {2, 2}, {{4, 3}, {5, 4}}, c_matmul_tt, false},
    {"matmul_shared_b", "matmul", 2, {3, 2}, {{2, 3, 4}, {4, 5}}, c_matmul_nn, false},
    {"matmul_shared_b_t", "matmul", 2, {3, 2}, {{2, 3, 4}, {5, 4}}, c_matmul_nt, false},
    {"matmul_shared_b_ta", "matmul", 2, {3, 2}, {{2, 4, 3}, {4, 5}}, c_matmul_tn, false},
    {"linear_3d", "linear", 3, {3, 2, 1}, {{2, 3, 4}, {5, 4}, {5}}, c_linear, false},
    {"linear_nobias", "linear", 2, {2, 2}, {{1, 4}, {3, 4}}, c_linear_nobias, false},
    {"add_same", "add", 2, {2, 2}, {{3, 4}, {3, 4}}, c_add, false},
    {"add_suffix", "add", 2, {3, 2}, {{2, 3, 4}, {3, 4}}, c_add, false},
    {"add_size1", "add", 2, {3, 3}, {{2, 1, 4}, {1, 3, 1}}, c_add, false},
    {"sub_bcast", "sub", 2, {3, 1}, {{2, 3, 4}, {4}}, c_sub, false},
    {"sub_lhs_bcast", "sub", 2, {2, 3}, {{3, 1}, {2, 3, 4}}, c_sub, false},
    {"sub_same", "sub", 2, {2, 2}, {{3, 4}, {3, 4}}, c_sub, false},
    {"add_self", "add", 1, {2}, {{3, 4}}, c_add_self, false},
    {"sub_const_lhs", "sub", 1, {2}, {{3, 4}}, c_sub_const_lhs, false},
    {"add_const_lhs", "add", 1, {2}, {{3, 4}}, c_add_const_lhs, false},
    {"mul_same", "mul", 2, {2, 2}, {{3, 4}, {3, 4}}, c_mul, false},
    {"mul_bcast", "mul", 2, {3, 3}, {{2, 3, 1}, {1, 1, 4}}, c_mul, false},
    {"mul_scalar", "mul", 2, {2, 1}, {{3, 4}, {1}}, c_mul, false},
    {"scale", "scale", 1, {3}, {{2, 1, 3}}, c_scale, false},
    {"exp", "exp", 1, {2}, {{3, 4}}, c_exp, false},
    {"sum_dim0", "sum", 1, {3}, {{3, 2, 4}}, c_sum0, false},
    {"sum_dim1", "sum", 1, {3}, {{3, 1, 4}}, c_sum1, false},
    {"mean_last", "mean", 1, {3}, {{2, 3, 5}}, c_mean_last, false},
    {"reshape", "reshape", 1, {2}, {{4, 3}}, c_reshape, false},
    {"permute", "permute", 1, {4}, {{2, 3, 1, 4}}, c_permute, false},
    {"transpose", "permute", 1, {3}, {{2, 3, 4}}, c_transpose, false},
    {"concat3", "concat", 3, {3, 3, 3}, {{2, 1, 3}, {2, 2, 3}, {2, 3, 3}}, c_concat, false},
    {"slice", "slice", 1, {3}, {{2, 5, 3}}, c_slice, false},
    {"gather_rows", "gather_rows", 1, {3}, {{3, 5, 4}}, c_gather, false},
    {"embedding", "embedding", 1, {2}, {{6, 4}}, c_embedding, false},
    {"layernorm", "layernorm", 3, {3, 1, 1}, {{2, 3, 7}, {7}, {7}}, c_layernorm, false},
    {"layernorm_1row", "layernorm", 3, {2, 1, 1}, {{1, 16}, {16}, {16}}, c_layernorm, false},
    {"softmax", "softmax", 1, {3}, {{2, 3, 5}}, c_softmax, false},
    {"softmax_causal", "softmax", 1, {3}, {{2, 4, 4}}, c_softmax_causal, false},
    {"softmax_masked_row", "softmax", 1, {3}, {{2, 4, 4}}, c_softmax_odd, false},
    {"log_softmax", "log_softmax", 1, {2}, {{3, 6}}, c_log_softmax, false},
    {"log_softmax_causal", "log_softmax", 1, {3}, {{1, 4, 4}}, c_log_softmax_causal, false},
    {"quick_gelu", "quick_gelu", 1, {2}, {{4, 5}}, c_quick_gelu, false},
    {"layernorm_linear", "layernorm_linear", 5, {3, 1, 1, 2, 1}, {{2, 3, 7}, {7}, {7}, {5, 7}, {5}}, c_layernorm_linear, false},
    {"quick_gelu_linear", "quick_gelu_linear", 3, {3, 2, 1}, {{2, 3, 4}, {5, 4}, {5}}, c_quick_gelu_linear, false},
    {"quick_gelu_linear_nobias", "quick_gelu_linear", 2, {2, 2}, {{3, 4}, {2, 4}}, c_quick_gelu_linear_nobias, false},
    {"attention", "attention", 1, {3}, {{2, 5, 12}}, c_attention, false},
    {"attention_causal", "attention", 1, {3}, {{1, 4, 18}}, c_attention_causal, false},
    {"cross_attention", "cross_attention", 3, {3, 3, 3}, {{2, 3, 8}, {2, 5, 8}, {2, 5, 8}}, c_cross_attention, false},
    {"mha_causal", "mha", 4, {3, 2, 1, 2}, {{2, 4, 8}, {24, 8}, {24}, {9, 8}}, c_mha, false},
    {"patch_embed", "patch_embed", 2, {4, 4}, {{2, 3, 6, 9}, {4, 3, 3, 3}}, c_patch_embed, false},
    {"l2_normalize", "l2_normalize", 1, {3}, {{2, 3, 5}}, c_l2, false},
    {"soft_cross_entropy", "soft_cross_entropy", 1, {2}, {{3, 5}}, c_soft_ce, false},
    {"dropout", "dropout", 1, {2}, {{4, 6}}, c_dropout, false},
    {"drop_path", "drop_path", 1, {3}, {{6, 2, 3}}, c_drop_path, false},
    {"checkpoint", "checkpoint", 3, {3, 2, 1}, {{3, 2, 4}, {4, 4}, {4}}, c_checkpoint, false},
};
static const int n_op_cases = (int)(sizeof op_cases / sizeof op_cases[0]);
#undef T
