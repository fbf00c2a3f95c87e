// arch_check.c - see arch_check.h.
#include "nn/arch_check.h"

#include <stdio.h>
#include <string.h>

static void shape_str(char *out, size_t cap, int nd, const int64_t *shape) {
    int len = snprintf(out, cap, "(");
    for (int d = 0; d < nd && (size_t)len < cap; d++) len += snprintf(out + len, cap - (size_t)len, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if ((size_t)len < cap) snprintf(out + len, cap - (size_t)len, ")");
}

// Tensor `name` (required or not) must have exactly the shape given; `why` says where the sizes come from.
static int expect_shape(const WeightSet *ws, const char *name, bool required, int nd, const int64_t *shape,
                        const char *why, XcError *err) {
    const WeightTensor *t = weights_find(ws, name);
    if (!t) return required ? xc_err(err, "weights: no tensor '%s' (%s)", name, why) : XC_OK;
    bool ok = t->ndim == nd;
    for (int d = 0; ok && d < nd; d++) ok = t->shape[d] == shape[d];
    if (ok) return XC_OK;
    char got[200], want[200];
    shape_str(got, sizeof got, t->ndim, t->shape);
    shape_str(want, sizeof want, nd, shape);
    return xc_err(err, "weights: '%s' has shape %s, the architecture (%s) needs %s", name, got, why, want);
}

// One size read off a tensor: lo..hi.
static int in_range(const char *name, const char *what, int64_t v, int64_t lo, int64_t hi, XcError *err) {
    if (v >= lo && v <= hi) return XC_OK;
    return xc_err(err, "weights: '%s' gives %s = %lld, outside %lld..%lld", name, what, (long long)v, (long long)lo, (long long)hi);
}

// The blocks of one tower: for each layer that has an in_proj_weight, every block tensor present shaped for
// width W and MLP features M.
static int check_blocks(const WeightSet *ws, const char *prefix, int64_t W, int64_t M, const char *why, XcError *err) {
    static const char *const vec_w[] = {"ln_1.weight", "ln_1.bias", "ln_2.weight", "ln_2.bias", "attn.out_proj.bias", "mlp.c_proj.bias"};
    char name[300];
    for (int64_t i = 0;; i++) { // up to the first missing layer (the layer count is checked by the caller)
        snprintf(name, sizeof name, "%s.%lld.attn.in_proj_weight", prefix, (long long)i);
        if (!weights_find(ws, name)) break;
#define BLOCK(suffix, required, nd, ...) \
        (snprintf(name, sizeof name, "%s.%lld.%s", prefix, (long long)i, suffix), \
         expect_shape(ws, name, required, nd, (int64_t[]){__VA_ARGS__}, why, err))
        if (BLOCK("attn.in_proj_weight", true, 2, 3 * W, W) || BLOCK("attn.in_proj_bias", false, 1, 3 * W) ||
            BLOCK("attn.out_proj.weight", false, 2, W, W) || BLOCK("mlp.c_fc.weight", false, 2, M, W) ||
            BLOCK("mlp.c_fc.bias", false, 1, M) || BLOCK("mlp.c_proj.weight", false, 2, W, M))
            return XC_ERR;
        for (size_t k = 0; k < sizeof vec_w / sizeof vec_w[0]; k++)
            if (BLOCK(vec_w[k], false, 1, W)) return XC_ERR;
#undef BLOCK
    }
    return XC_OK;
}

// The vision tower with embedding size E (taken from e_from): sizes in range, the square patch grid, every vision
// tensor present shaped accordingly.
static int check_vision(const WeightSet *ws, int64_t E, const char *e_from, XcError *err) {
    const WeightTensor *conv1 = weights_find(ws, "visual.conv1.weight"), *vpos = weights_find(ws, "visual.positional_embedding"),
                       *vfc = weights_find(ws, "visual.transformer.resblocks.0.mlp.c_fc.weight");
    XC_CHECK(conv1 && vpos && vfc, "clip_arch_check: vision tensors missing (the config readers look them up first)");
    const int64_t W = conv1->shape[0], P = conv1->shape[2], MV = vfc->shape[0];
    if (in_range("visual.conv1.weight", "the vision width W", W, 64, CLIP_MAX_WIDTH, err) ||
        in_range("visual.conv1.weight", "the patch size", P, 1, CLIP_MAX_PATCH, err) ||
        in_range(e_from, "the embedding size E", E, 1, CLIP_MAX_WIDTH, err) ||
        in_range("visual.transformer.resblocks.0.mlp.c_fc.weight", "the vision MLP size", MV, 1, CLIP_MAX_MLP, err) ||
        in_range("visual.positional_embedding", "the patch positions + 1", vpos->shape[0], 2,
                 (int64_t)CLIP_MAX_GRID * CLIP_MAX_GRID + 1, err))
        return XC_ERR;
    if (W % 64)
        return xc_err(err, "weights: vision width %lld ('visual.conv1.weight') is not a multiple of 64 (CLIP's head size)",
                      (long long)W);
    int64_t n = vpos->shape[0] - 1, G = 1;
    while (G * G < n) G++;
    if (G * G != n)
        return xc_err(err, "weights: 'visual.positional_embedding' has %lld rows: 1 + a square number of patches expected",
                      (long long)vpos->shape[0]);
    char why[256];
    snprintf(why, sizeof why, "W from visual.conv1.weight, patch grid from visual.positional_embedding, E from %s, vision "
                              "MLP from resblocks.0.mlp.c_fc.weight", e_from);
    if (expect_shape(ws, "visual.conv1.weight", true, 4, (int64_t[]){W, 3, P, P}, "3 colour channels, square patches", err) ||
        expect_shape(ws, "visual.positional_embedding", true, 2, (int64_t[]){G * G + 1, W}, why, err) ||
        expect_shape(ws, "visual.class_embedding", false, 1, (int64_t[]){W}, why, err) ||
        expect_shape(ws, "visual.ln_pre.weight", false, 1, (int64_t[]){W}, why, err) ||
        expect_shape(ws, "visual.ln_pre.bias", false, 1, (int64_t[]){W}, why, err) ||
        expect_shape(ws, "visual.ln_post.weight", false, 1, (int64_t[]){W}, why, err) ||
        expect_shape(ws, "visual.ln_post.bias", false, 1, (int64_t[]){W}, why, err) ||
        expect_shape(ws, "visual.proj", false, 2, (int64_t[]){W, E}, why, err) ||
        check_blocks(ws, "visual.transformer.resblocks", W, MV, why, err))
        return XC_ERR;
    return XC_OK;
}

int clip_arch_check_weights(const WeightSet *ws, XcError *err) {
    // the tensors every size comes from (present with the right rank: clip_config_from_weights checked)
    const WeightTensor *tproj = weights_find(ws, "text_projection"), *lnf = weights_find(ws, "ln_final.weight"),
                       *tpos = weights_find(ws, "positional_embedding"), *tok = weights_find(ws, "token_embedding.weight"),
                       *tfc = weights_find(ws, "transformer.resblocks.0.mlp.c_fc.weight");
    XC_CHECK(tproj && lnf && tpos && tok && tfc, "clip_arch_check_weights: CLIP tensors missing");
    const int64_t D = lnf->shape[0], E = tproj->shape[1], MT = tfc->shape[0], S = tpos->shape[0], V = tok->shape[0];
    if (in_range("ln_final.weight", "the text width D", D, 64, CLIP_MAX_WIDTH, err) ||
        in_range("text_projection", "the embedding size E", E, 1, CLIP_MAX_WIDTH, err) ||
        in_range("transformer.resblocks.0.mlp.c_fc.weight", "the text MLP size", MT, 1, CLIP_MAX_MLP, err) ||
        in_range("positional_embedding", "the text context", S, 2, CLIP_MAX_CONTEXT, err) ||
        in_range("token_embedding.weight", "the vocabulary size", V, 1, CLIP_MAX_VOCAB, err))
        return XC_ERR;
    if (check_vision(ws, E, "text_projection", err) != XC_OK) return XC_ERR;
    if (D % 64)
        return xc_err(err, "weights: text width %lld ('ln_final.weight') is not a multiple of 64 (CLIP's head size)", (long long)D);
    const char *twhy = "D from ln_final.weight, E from text_projection, text MLP from resblocks.0.mlp.c_fc.weight";
    if (expect_shape(ws, "text_projection", true, 2, (int64_t[]){D, E}, twhy, err) ||
        expect_shape(ws, "ln_final.bias", false, 1, (int64_t[]){D}, twhy, err) ||
        expect_shape(ws, "positional_embedding", true, 2, (int64_t[]){S, D}, twhy, err) ||
        expect_shape(ws, "token_embedding.weight", true, 2, (int64_t[]){V, D}, twhy, err) ||
        check_blocks(ws, "transformer.resblocks", D, MT, twhy, err))
        return XC_ERR;
    return XC_OK;
}

int clip_arch_check_vision_weights(const WeightSet *ws, XcError *err) {
    const WeightTensor *vproj = weights_find(ws, "visual.proj");
    XC_CHECK(vproj && vproj->ndim == 2, "clip_arch_check_vision_weights: visual.proj missing");
    return check_vision(ws, vproj->shape[1], "visual.proj", err);
}

int clip_arch_check_tokenizer(int64_t vocab_rows, size_t vocab_size, XcError *err) {
    if ((int64_t)vocab_size <= vocab_rows) return XC_OK;
    return xc_err(err, "the tokenizer has %zu ids but the checkpoint's token_embedding.weight only %lld rows\n"
                       "HINT: use the vocabulary the checkpoint was trained with", vocab_size, (long long)vocab_rows);
}
