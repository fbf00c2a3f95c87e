// layers.c - see layers.h.
#include "nn/layers.h"

#include <math.h>
#include <stdio.h>

static Tensor *reg(ParamStore *ps, const char *prefix, const char *suffix, int ndim, const int64_t *shape) {
    char name[256];
    int n = snprintf(name, sizeof name, "%s%s%s", prefix, *prefix ? "." : "", suffix);
    XC_CHECK(n > 0 && (size_t)n < sizeof name, "parameter name too long: %s.%s", prefix, suffix);
    return param_new(ps, name, ndim, shape);
}

void linear_init(Linear *l, ParamStore *ps, const char *prefix, int64_t in, int64_t out, bool bias) {
    l->w = reg(ps, prefix, "weight", 2, (int64_t[]){out, in});
    l->b = bias ? reg(ps, prefix, "bias", 1, (int64_t[]){out}) : NULL;
}

void layernorm_init(LayerNorm *ln, ParamStore *ps, const char *prefix, int64_t width) {
    ln->w = reg(ps, prefix, "weight", 1, (int64_t[]){width});
    ln->b = reg(ps, prefix, "bias", 1, (int64_t[]){width});
    init_constant(ln->w, 1.0f);
}

void mha_init(MultiheadAttention *a, ParamStore *ps, const char *prefix, int64_t width, int heads) {
    XC_CHECK(heads > 0 && width % heads == 0, "%s: width %lld not divisible by %d heads", prefix, (long long)width, heads);
    a->in_w = reg(ps, prefix, "in_proj_weight", 2, (int64_t[]){3 * width, width});
    a->in_b = reg(ps, prefix, "in_proj_bias", 1, (int64_t[]){3 * width});
    a->out_w = reg(ps, prefix, "out_proj.weight", 2, (int64_t[]){width, width});
    a->out_b = reg(ps, prefix, "out_proj.bias", 1, (int64_t[]){width});
    a->heads = heads;
}

void resblock_init(ResBlock *b, ParamStore *ps, const char *prefix, int64_t width, int heads) {
    resblock_init_mlp(b, ps, prefix, width, heads, 4 * width);
}

void resblock_init_mlp(ResBlock *b, ParamStore *ps, const char *prefix, int64_t width, int heads, int64_t hidden) {
    char p[256];
    snprintf(p, sizeof p, "%s.ln_1", prefix);
    layernorm_init(&b->ln_1, ps, p, width);
    snprintf(p, sizeof p, "%s.attn", prefix);
    mha_init(&b->attn, ps, p, width, heads);
    snprintf(p, sizeof p, "%s.ln_2", prefix);
    layernorm_init(&b->ln_2, ps, p, width);
    snprintf(p, sizeof p, "%s.mlp.c_fc", prefix);
    linear_init(&b->c_fc, ps, p, width, hidden, true);
    snprintf(p, sizeof p, "%s.mlp.c_proj", prefix);
    linear_init(&b->c_proj, ps, p, hidden, width, true);
}

Tensor *linear_forward(Graph *g, const Linear *l, Tensor *x) { return op_linear(g, x, l->w, l->b); }

Tensor *layernorm_forward(Graph *g, const LayerNorm *ln, Tensor *x) { return op_layernorm(g, x, ln->w, ln->b, 1e-5f); }

Tensor *layernorm_linear_forward(Graph *g, const LayerNorm *ln, Tensor *w, Tensor *b, Tensor *x) {
    return op_layernorm_linear(g, x, ln->w, ln->b, 1e-5f, w, b);
}

Tensor *mha_ln_forward(Graph *g, const MultiheadAttention *a, const LayerNorm *ln, Tensor *x, Tensor *mask) {
    Tensor *qkv = layernorm_linear_forward(g, ln, a->in_w, a->in_b, x);
    return op_linear(g, op_attention(g, qkv, a->heads, mask), a->out_w, a->out_b);
}

Tensor *mlp_ln_forward(Graph *g, const LayerNorm *ln, const Linear *c_fc, const Linear *c_proj, Tensor *x) {
    return op_quick_gelu_linear(g, layernorm_linear_forward(g, ln, c_fc->w, c_fc->b, x), c_proj->w, c_proj->b);
}

Tensor *resblock_forward(Graph *g, const ResBlock *b, Tensor *x, Tensor *mask) {
    x = op_add_residual(g, x, mha_ln_forward(g, &b->attn, &b->ln_1, x, mask));
    return op_add_residual(g, x, mlp_ln_forward(g, &b->ln_2, &b->c_fc, &b->c_proj, x));
}

void init_trunc_normal(Tensor *t, Rng *r, float std) { rng_fill_trunc_normal(r, t->data, t->numel, 0.0f, std, -2.0f, 2.0f); }

void init_xavier_uniform(Tensor *t, Rng *r) {
    XC_CHECK(t->ndim == 2, "xavier_uniform on a %d-D tensor", t->ndim);
    float a = sqrtf(6.0f / (float)(t->shape[0] + t->shape[1]));
    rng_fill_uniform(r, t->data, t->numel, -a, a);
}

void init_linear_default(Linear *l, Rng *r) {
    float bound = 1.0f / sqrtf((float)l->w->shape[1]);
    rng_fill_uniform(r, l->w->data, l->w->numel, -bound, bound);
    if (l->b) rng_fill_uniform(r, l->b->data, l->b->numel, -bound, bound);
}

void layernorm_reset(LayerNorm *ln) {
    init_constant(ln->w, 1.0f);
    init_constant(ln->b, 0.0f);
}

void init_constant(Tensor *t, float v) {
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = v;
}
