// layers.h - the CLIP building blocks (docs/model.md §1) over the autograd ops, with parameters registered
// in a ParamStore under their official state-dict names.
//
//   ResBlock blk;
//   resblock_init(&blk, &params, "visual.transformer.resblocks.0", 768, 12);
//   x = resblock_forward(g, &blk, x, NULL);        // x (B, L, W): x += attn(ln_1(x)); x += mlp(ln_2(x))
//
// Layout: tokens are batch-first (B, L, W) everywhere (the official code runs (L, B, W); the math is
// the same, the names are the same).
#pragma once
#include "autograd/ops.h"

typedef struct Linear {
    Tensor *w; // (out, in)
    Tensor *b; // (out) or NULL
} Linear;

typedef struct LayerNorm {
    Tensor *w, *b; // (W)
} LayerNorm;

typedef struct MultiheadAttention {
    Tensor *in_w;  // in_proj_weight (3W, W): q, k, v stacked
    Tensor *in_b;  // in_proj_bias (3W)
    Tensor *out_w; // out_proj.weight (W, W)
    Tensor *out_b; // out_proj.bias (W)
    int heads;
} MultiheadAttention;

typedef struct ResBlock {
    LayerNorm ln_1, ln_2;
    MultiheadAttention attn;
    Linear c_fc;   // mlp.c_fc (4W, W)
    Linear c_proj; // mlp.c_proj (W, 4W)
} ResBlock;

// Registration: names are prefix + "." + the official suffix ("weight", "in_proj_weight", ...).
void linear_init(Linear *l, ParamStore *ps, const char *prefix, int64_t in, int64_t out, bool bias);
void layernorm_init(LayerNorm *ln, ParamStore *ps, const char *prefix, int64_t width);
void mha_init(MultiheadAttention *a, ParamStore *ps, const char *prefix, int64_t width, int heads);
void resblock_init(ResBlock *b, ParamStore *ps, const char *prefix, int64_t width, int heads);
// Same with an explicit MLP hidden width (CLIP uses 4 * width; a checkpoint may say otherwise).
void resblock_init_mlp(ResBlock *b, ParamStore *ps, const char *prefix, int64_t width, int heads, int64_t hidden);

Tensor *linear_forward(Graph *g, const Linear *l, Tensor *x);
Tensor *layernorm_forward(Graph *g, const LayerNorm *ln, Tensor *x); // eps 1e-5
// ln(x) w^T + b with the LayerNorm output recomputed in backward (op_layernorm_linear, eps 1e-5).
Tensor *layernorm_linear_forward(Graph *g, const LayerNorm *ln, Tensor *w, Tensor *b, Tensor *x);
// attn(ln(x)) and c_proj(QuickGELU(c_fc(ln(x)))), with the LayerNorm and QuickGELU outputs recomputed in
// backward instead of kept (op_layernorm_linear, op_quick_gelu_linear): the same bits, less memory.
Tensor *mha_ln_forward(Graph *g, const MultiheadAttention *a, const LayerNorm *ln, Tensor *x, Tensor *mask);
Tensor *mlp_ln_forward(Graph *g, const LayerNorm *ln, const Linear *c_fc, const Linear *c_proj, Tensor *x);
// x + attn(ln_1(x)), then + c_proj(QuickGELU(c_fc(ln_2(x)))).
Tensor *resblock_forward(Graph *g, const ResBlock *b, Tensor *x, Tensor *mask);

// Initialisers (from an RNG stream), as PyTorch / timm define them.
void init_trunc_normal(Tensor *t, Rng *r, float std);          // timm trunc_normal_(std), cut at +-2
void init_xavier_uniform(Tensor *t, Rng *r);                   // fan_in + fan_out of a 2-D weight
void init_linear_default(Linear *l, Rng *r);                   // nn.Linear: U(+-1/sqrt(in)) for w and b
void init_constant(Tensor *t, float v);
void layernorm_reset(LayerNorm *ln);                           // weight 1, bias 0
