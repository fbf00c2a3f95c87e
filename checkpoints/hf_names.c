// hf_names.c - Hugging Face CLIPModel names <-> official OpenAI CLIP names (table in weights.h).
//
// Two tables drive both directions: names at the level of a tower (embeddings, layer norms) and names
// inside one encoder layer. q/k/v projections are stacked into in_proj_* (q first, as
// nn.MultiheadAttention) and the projection matrices are transposed (HF stores Linear [E,W], OpenAI
// uses a plain [W,E] matrix applied as x @ M).
#include "checkpoints/ckpt_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *tower_map[][2] = { // {hf suffix after vision_model./text_model., official suffix}
    {"embeddings.patch_embedding.weight", "conv1.weight"},
    {"embeddings.class_embedding", "class_embedding"},
    {"embeddings.position_embedding.weight", "positional_embedding"},
    {"embeddings.token_embedding.weight", "token_embedding.weight"},
    {"pre_layrnorm.weight", "ln_pre.weight"}, {"pre_layrnorm.bias", "ln_pre.bias"},
    {"post_layernorm.weight", "ln_post.weight"}, {"post_layernorm.bias", "ln_post.bias"},
    {"final_layer_norm.weight", "ln_final.weight"}, {"final_layer_norm.bias", "ln_final.bias"},
};
static const char *layer_map[][2] = { // {hf suffix after encoder.layers.N., official after resblocks.N.}
    {"self_attn.out_proj.weight", "attn.out_proj.weight"}, {"self_attn.out_proj.bias", "attn.out_proj.bias"},
    {"layer_norm1.weight", "ln_1.weight"}, {"layer_norm1.bias", "ln_1.bias"},
    {"layer_norm2.weight", "ln_2.weight"}, {"layer_norm2.bias", "ln_2.bias"},
    {"mlp.fc1.weight", "mlp.c_fc.weight"}, {"mlp.fc1.bias", "mlp.c_fc.bias"},
    {"mlp.fc2.weight", "mlp.c_proj.weight"}, {"mlp.fc2.bias", "mlp.c_proj.bias"},
};
#define TABLE_LEN(t) (int)(sizeof(t) / sizeof(t[0]))

static int lookup(const char *(*table)[2], int n, int from, const char *s) {
    for (int i = 0; i < n; i++)
        if (strcmp(table[i][from], s) == 0) return i;
    return -1;
}

static bool starts_with(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

// "12.rest" -> 12 and *rest = "rest"; -1 if s does not start with digits and a dot.
static long parse_index(const char *s, const char **rest) {
    char *end;
    if (!(*s >= '0' && *s <= '9')) return -1;
    long v = strtol(s, &end, 10);
    if (*end != '.' || v < 0 || v > 100000) return -1;
    *rest = end + 1;
    return v;
}

bool weights_is_hf_clip(const WeightSet *ws) {
    for (int i = 0; i < ws->n; i++)
        if (starts_with(ws->t[i].name, "vision_model.") || starts_with(ws->t[i].name, "text_model.")) return true;
    return false;
}

// weights_add that reports a name produced twice (e.g. "visual.proj" next to "visual_projection.weight").
static bool taken(const WeightSet *out, const char *name, XcError *err) {
    if (!weights_find(out, name)) return false;
    xc_err(err, "two tensors map to the same name \"%s\"", name);
    return true;
}

static void add_transposed(WeightSet *out, const char *name, const WeightTensor *t) {
    int64_t shape[2] = {t->shape[1], t->shape[0]};
    WeightTensor *o = weights_add(out, name, 2, shape, NULL);
    for (int64_t r = 0; r < t->shape[0]; r++)
        for (int64_t c = 0; c < t->shape[1]; c++) o->data[c * t->shape[0] + r] = t->data[r * t->shape[1] + c];
}

// Stack q, k, v (same shape, 1-D or 2-D) along dimension 0.
static int add_stacked_qkv(WeightSet *out, const char *name, const WeightTensor *q, const WeightTensor *k,
                           const WeightTensor *v, XcError *err) {
    if (q->ndim < 1 || q->ndim > 2 || k->ndim != q->ndim || v->ndim != q->ndim || k->numel != q->numel ||
        v->numel != q->numel || k->shape[0] != q->shape[0] || v->shape[0] != q->shape[0])
        return xc_err(err, "%s: q/k/v projections have different or unexpected shapes", name);
    int64_t shape[2] = {3 * q->shape[0], q->ndim == 2 ? q->shape[1] : 0};
    WeightTensor *o = weights_add(out, name, q->ndim, shape, NULL);
    memcpy(o->data, q->data, (size_t)q->numel * sizeof(float));
    memcpy(o->data + q->numel, k->data, (size_t)q->numel * sizeof(float));
    memcpy(o->data + 2 * q->numel, v->data, (size_t)q->numel * sizeof(float));
    return XC_OK;
}

static int map_hf_tensor(WeightSet *out, const WeightSet *in, const WeightTensor *t, XcError *err) {
    const char *n = t->name, *rest;
    char name[CKPT_MAX_NAME_BYTES + 64];
    if (strcmp(n, "visual_projection.weight") == 0 || strcmp(n, "text_projection.weight") == 0) {
        if (t->ndim != 2) return xc_err(err, "%s: expected a 2-D matrix", n);
        const char *to = n[0] == 'v' ? "visual.proj" : "text_projection";
        if (taken(out, to, err)) return XC_ERR;
        add_transposed(out, to, t);
        return XC_OK;
    }
    const char *prefix;
    if (starts_with(n, "vision_model.")) { prefix = "visual."; rest = n + 13; }
    else if (starts_with(n, "text_model.")) { prefix = ""; rest = n + 11; }
    else { // logit_scale and non-CLIP names
        if (taken(out, n, err)) return XC_ERR;
        weights_add(out, n, t->ndim, t->shape, t->data);
        return XC_OK;
    }
    if (ckpt_skippable_int_tensor(rest)) return XC_OK; // embeddings.position_ids (stored as float by some tools)
    int k = lookup(tower_map, TABLE_LEN(tower_map), 0, rest);
    if (k >= 0) {
        snprintf(name, sizeof name, "%s%s", prefix, tower_map[k][1]);
        if (taken(out, name, err)) return XC_ERR;
        weights_add(out, name, t->ndim, t->shape, t->data);
        return XC_OK;
    }
    const char *inner;
    long layer = starts_with(rest, "encoder.layers.") ? parse_index(rest + 15, &inner) : -1;
    if (layer < 0) return xc_err(err, "unknown Hugging Face CLIP name \"%s\"", n);
    k = lookup(layer_map, TABLE_LEN(layer_map), 0, inner);
    if (k >= 0) {
        snprintf(name, sizeof name, "%stransformer.resblocks.%ld.%s", prefix, layer, layer_map[k][1]);
        if (taken(out, name, err)) return XC_ERR;
        weights_add(out, name, t->ndim, t->shape, t->data);
        return XC_OK;
    }
    const char *kind = NULL;
    if (starts_with(inner, "self_attn.") && strlen(inner) > 16 && strncmp(inner + 11, "_proj.", 6) == 0 &&
        (inner[10] == 'q' || inner[10] == 'k' || inner[10] == 'v'))
        kind = inner + 17; // "weight" or "bias"
    if (!kind || (strcmp(kind, "weight") && strcmp(kind, "bias")))
        return xc_err(err, "unknown Hugging Face CLIP name \"%s\"", n);
    char qn[CKPT_MAX_NAME_BYTES + 64], kn[sizeof qn], vn[sizeof qn];
    size_t base = (size_t)(inner - n) + 10; // up to and including "self_attn."
    snprintf(qn, sizeof qn, "%.*sq_proj.%s", (int)base, n, kind);
    snprintf(kn, sizeof kn, "%.*sk_proj.%s", (int)base, n, kind);
    snprintf(vn, sizeof vn, "%.*sv_proj.%s", (int)base, n, kind);
    const WeightTensor *q = weights_find(in, qn), *kk = weights_find(in, kn), *v = weights_find(in, vn);
    if (!q || !kk || !v)
        return xc_err(err, "%s: missing %s (q, k and v projections are stacked together)", n, !q ? qn : !kk ? kn : vn);
    if (inner[10] != 'q') return XC_OK; // emitted with q
    snprintf(name, sizeof name, "%stransformer.resblocks.%ld.attn.in_proj_%s", prefix, layer, kind);
    if (taken(out, name, err)) return XC_ERR;
    return add_stacked_qkv(out, name, q, kk, v, err);
}

int weights_from_hf_clip(WeightSet *out, const WeightSet *in, XcError *err) {
    XC_CHECK(out->n == 0 && out != in, "weights_from_hf_clip: out must be a different, empty set");
    for (int i = 0; i < in->n; i++) {
        if (map_hf_tensor(out, in, &in->t[i], err) != XC_OK) { weights_free(out); return XC_ERR; }
    }
    return XC_OK;
}

// ---- official -> Hugging Face -----------------------------------------------------------------------
static bool is_text_tower(const char *n) {
    return starts_with(n, "token_embedding.") || strcmp(n, "positional_embedding") == 0 ||
           starts_with(n, "transformer.") || starts_with(n, "ln_final.");
}

static int add_split_qkv(WeightSet *out, const char *base, const char *kind, const WeightTensor *t, XcError *err) {
    int64_t shape[2] = {t->shape[0] / 3, t->ndim == 2 ? t->shape[1] : 0};
    int64_t part = t->numel / 3;
    const char *qkv[3] = {"q", "k", "v"};
    for (int j = 0; j < 3; j++) {
        char name[2 * CKPT_MAX_NAME_BYTES + 160];
        snprintf(name, sizeof name, "%sself_attn.%s_proj.%s", base, qkv[j], kind);
        if (taken(out, name, err)) return XC_ERR;
        weights_add(out, name, t->ndim, shape, t->data + j * part);
    }
    return XC_OK;
}

int weights_to_hf_clip(WeightSet *out, const WeightSet *in, XcError *err) {
    XC_CHECK(out->n == 0 && out != in, "weights_to_hf_clip: out must be a different, empty set");
    for (int i = 0; i < in->n; i++) {
        const WeightTensor *t = &in->t[i];
        const char *n = t->name, *rest, *prefix;
        char name[CKPT_MAX_NAME_BYTES + 64];
        if (strcmp(n, "visual.proj") == 0 || strcmp(n, "text_projection") == 0) {
            if (t->ndim != 2) { weights_free(out); return xc_err(err, "%s: expected a 2-D matrix", n); }
            const char *to = n[0] == 'v' ? "visual_projection.weight" : "text_projection.weight";
            if (taken(out, to, err)) { weights_free(out); return XC_ERR; }
            add_transposed(out, to, t);
            continue;
        }
        if (starts_with(n, "visual.")) { prefix = "vision_model."; rest = n + 7; }
        else if (is_text_tower(n)) { prefix = "text_model."; rest = n; }
        else {
            if (taken(out, n, err)) { weights_free(out); return XC_ERR; }
            weights_add(out, n, t->ndim, t->shape, t->data);
            continue;
        }
        int k = lookup(tower_map, TABLE_LEN(tower_map), 1, rest);
        const char *inner;
        long layer = starts_with(rest, "transformer.resblocks.") ? parse_index(rest + 22, &inner) : -1;
        if (k >= 0) {
            snprintf(name, sizeof name, "%s%s", prefix, tower_map[k][0]);
        } else if (layer >= 0 && (k = lookup(layer_map, TABLE_LEN(layer_map), 1, inner)) >= 0) {
            snprintf(name, sizeof name, "%sencoder.layers.%ld.%s", prefix, layer, layer_map[k][0]);
        } else if (layer >= 0 && (strcmp(inner, "attn.in_proj_weight") == 0 || strcmp(inner, "attn.in_proj_bias") == 0)) {
            if (t->shape[0] % 3 != 0 || t->ndim < 1 || t->ndim > 2) { weights_free(out); return xc_err(err, "%s: first dimension not a multiple of 3", n); }
            snprintf(name, sizeof name, "%sencoder.layers.%ld.", prefix, layer);
            if (add_split_qkv(out, name, inner + 13, t, err) != XC_OK) { weights_free(out); return XC_ERR; }
            continue;
        } else {
            snprintf(name, sizeof name, "%s", n); // X-CLIP additions (message_*, ...): no HF name, keep ours
        }
        if (taken(out, name, err)) { weights_free(out); return XC_ERR; }
        weights_add(out, name, t->ndim, t->shape, t->data);
    }
    return XC_OK;
}
