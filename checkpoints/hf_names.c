// hf_names.c - Hugging Face CLIPModel / XCLIPModel names <-> official OpenAI CLIP / X-CLIP names
// (tables in hf_names.h).
//
// Tables drive both directions: names at the level of a tower (embeddings, layer norms), names inside one
// encoder layer, and the X-CLIP modules on top (mit, prompts). q/k/v projections are stacked into
// in_proj_* (q first, as nn.MultiheadAttention) and the two CLIP projection matrices are transposed (HF
// stores Linear [E,W], OpenAI uses a plain [W,E] matrix applied as x @ M); prompts_visual_proj is a plain
// parameter on both sides and is not transposed. Every conversion only moves bytes, so round trips are exact.
#include "checkpoints/hf_names.h"
#include "checkpoints/ckpt_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *tower_map[][2] = { // {hf suffix after vision_model./text_model., official suffix}
    {"embeddings.patch_embedding.weight", "conv1.weight"},
    {"embeddings.class_embedding", "class_embedding"},
    {"embeddings.position_embedding.weight", "positional_embedding"},
    {"embeddings.token_embedding.weight", "token_embedding.weight"},
    {"pre_layrnorm.weight", "ln_pre.weight"}, {"pre_layrnorm.bias", "ln_pre.bias"},    // CLIPModel (sic)
    {"post_layernorm.weight", "ln_post.weight"}, {"post_layernorm.bias", "ln_post.bias"},
    {"final_layer_norm.weight", "ln_final.weight"}, {"final_layer_norm.bias", "ln_final.bias"},
    {"pre_layernorm.weight", "ln_pre.weight"}, {"pre_layernorm.bias", "ln_pre.bias"},  // XCLIPModel
};
static const char *layer_map[][2] = { // {hf suffix after encoder.layers.N., official after resblocks.N.}
    {"self_attn.out_proj.weight", "attn.out_proj.weight"}, {"self_attn.out_proj.bias", "attn.out_proj.bias"},
    {"layer_norm1.weight", "ln_1.weight"}, {"layer_norm1.bias", "ln_1.bias"},
    {"layer_norm2.weight", "ln_2.weight"}, {"layer_norm2.bias", "ln_2.bias"},
    {"mlp.fc1.weight", "mlp.c_fc.weight"}, {"mlp.fc1.bias", "mlp.c_fc.bias"},
    {"mlp.fc2.weight", "mlp.c_proj.weight"}, {"mlp.fc2.bias", "mlp.c_proj.bias"},
    // X-CLIP cross-frame communication (vision layers only): same names on both sides
    {"message_fc.weight", "message_fc.weight"}, {"message_fc.bias", "message_fc.bias"},
    {"message_ln.weight", "message_ln.weight"}, {"message_ln.bias", "message_ln.bias"},
    {"message_attn.out_proj.weight", "message_attn.out_proj.weight"}, {"message_attn.out_proj.bias", "message_attn.out_proj.bias"},
};
#define CLIP_LAYER_ENTRIES 10 // the first entries of layer_map are CLIP's; the rest only exist in X-CLIP
static const char *xclip_top_map[][2] = { // X-CLIP modules outside the towers: {hf, official}
    {"mit.position_embedding", "mit.positional_embedding"},
    {"prompts_visual_projection", "prompts_visual_proj"},
    {"prompts_visual_layernorm.weight", "prompts_visual_ln.weight"}, {"prompts_visual_layernorm.bias", "prompts_visual_ln.bias"},
    {"prompts_generator.layernorm.weight", "prompts_generator.norm.weight"},
    {"prompts_generator.layernorm.bias", "prompts_generator.norm.bias"},
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

bool weights_is_xclip(const WeightSet *ws) {
    for (int i = 0; i < ws->n; i++) {
        const char *n = ws->t[i].name;
        if (starts_with(n, "mit.") || starts_with(n, "prompts_") || strstr(n, ".message_")) return true;
    }
    return false;
}

// The names produced so far and the names read, by hash (the mapping looks both up once per tensor: a linear
// weights_find made a million-tensor file take hours). Per thread: one conversion at a time in each.
static _Thread_local CkptNameIndex g_out_index, g_in_index;

// weights_add that reports a name produced twice (e.g. "visual.proj" next to "visual_projection.weight").
static bool taken(const WeightSet *out, const char *name, XcError *err) {
    ckpt_index_update(&g_out_index, out);
    if (!ckpt_index_find(&g_out_index, out, name)) return false;
    xc_err(err, "two tensors map to the same name \"%s\"", name);
    return true;
}

// weights_add without its linear duplicate check (taken() has checked, by hash).
static WeightTensor *append(WeightSet *out, const char *name, int ndim, const int64_t *shape, const float *data) {
    int64_t numel = 1;
    for (int d = 0; d < ndim; d++) numel *= shape[d];
    float *copy = xc_malloc((size_t)numel * sizeof(float));
    if (data) memcpy(copy, data, (size_t)numel * sizeof(float));
    else memset(copy, 0, (size_t)numel * sizeof(float));
    return ckpt_append_owned(out, name, ndim, shape, copy);
}

static int add_copy(WeightSet *out, const char *name, const WeightTensor *t, XcError *err) {
    if (taken(out, name, err)) return XC_ERR;
    append(out, name, t->ndim, t->shape, t->data);
    return XC_OK;
}

static int add_transposed(WeightSet *out, const char *name, const WeightTensor *t, XcError *err) {
    if (t->ndim != 2) return xc_err(err, "%s: expected a 2-D matrix", t->name);
    if (taken(out, name, err)) return XC_ERR;
    int64_t shape[2] = {t->shape[1], t->shape[0]};
    WeightTensor *o = append(out, name, 2, shape, NULL);
    for (int64_t r = 0; r < t->shape[0]; r++)
        for (int64_t c = 0; c < t->shape[1]; c++) o->data[c * t->shape[0] + r] = t->data[r * t->shape[1] + c];
    return XC_OK;
}

// Stack q, k, v (same shape, 1-D or 2-D) along dimension 0.
static int add_stacked_qkv(WeightSet *out, const char *name, const WeightTensor *q, const WeightTensor *k,
                           const WeightTensor *v, XcError *err) {
    if (q->ndim < 1 || q->ndim > 2 || k->ndim != q->ndim || v->ndim != q->ndim || k->numel != q->numel ||
        v->numel != q->numel || k->shape[0] != q->shape[0] || v->shape[0] != q->shape[0])
        return xc_err(err, "%s: q/k/v projections have different or unexpected shapes", name);
    if (taken(out, name, err)) return XC_ERR;
    int64_t shape[2] = {3 * q->shape[0], q->ndim == 2 ? q->shape[1] : 0};
    WeightTensor *o = append(out, name, q->ndim, shape, NULL);
    memcpy(o->data, q->data, (size_t)q->numel * sizeof(float));
    memcpy(o->data + q->numel, k->data, (size_t)q->numel * sizeof(float));
    memcpy(o->data + 2 * q->numel, v->data, (size_t)q->numel * sizeof(float));
    return XC_OK;
}

// ---- Hugging Face -> official -------------------------------------------------------------------------
// One tensor of an encoder layer: n is the full HF name, inner the part after "layers.N.", official_base
// the official prefix up to and including "resblocks.N.".
static int map_hf_layer(WeightSet *out, const WeightSet *in, const WeightTensor *t, const char *inner,
                        const char *official_base, XcError *err) {
    const char *n = t->name;
    char name[CKPT_MAX_NAME_BYTES + 64];
    int k = lookup(layer_map, TABLE_LEN(layer_map), 0, inner);
    if (k >= 0) {
        snprintf(name, sizeof name, "%s%s", official_base, layer_map[k][1]);
        return add_copy(out, name, t, err);
    }
    // self_attn.{q,k,v}_proj.{weight,bias} -> attn.in_proj_*; message_attn.* -> message_attn.in_proj_*
    const char *attn = starts_with(inner, "self_attn.") ? "self_attn." : starts_with(inner, "message_attn.") ? "message_attn." : NULL;
    const char *kind = NULL, *rest = attn ? inner + strlen(attn) : NULL;
    char which = 0;
    if (rest && (rest[0] == 'q' || rest[0] == 'k' || rest[0] == 'v') && starts_with(rest + 1, "_proj.")) {
        which = rest[0];
        kind = rest + 7;
    }
    if (!kind || (strcmp(kind, "weight") && strcmp(kind, "bias"))) return xc_err(err, "unknown Hugging Face CLIP name \"%s\"", n);
    char qn[CKPT_MAX_NAME_BYTES + 64], kn[sizeof qn], vn[sizeof qn];
    size_t base = (size_t)(rest - n); // up to and including "self_attn." / "message_attn."
    snprintf(qn, sizeof qn, "%.*sq_proj.%s", (int)base, n, kind);
    snprintf(kn, sizeof kn, "%.*sk_proj.%s", (int)base, n, kind);
    snprintf(vn, sizeof vn, "%.*sv_proj.%s", (int)base, n, kind);
    const WeightTensor *q = ckpt_index_find(&g_in_index, in, qn), *kk = ckpt_index_find(&g_in_index, in, kn),
                       *v = ckpt_index_find(&g_in_index, in, vn);
    if (!q || !kk || !v)
        return xc_err(err, "%s: missing %s (q, k and v projections are stacked together)", n, !q ? qn : !kk ? kn : vn);
    if (which != 'q') return XC_OK; // emitted with q
    snprintf(name, sizeof name, "%s%sin_proj_%s", official_base, attn[0] == 's' ? "attn." : "message_attn.", kind);
    return add_stacked_qkv(out, name, q, kk, v, err);
}

static int map_hf_tensor(WeightSet *out, const WeightSet *in, const WeightTensor *t, XcError *err) {
    const char *n = t->name, *rest, *inner;
    char name[CKPT_MAX_NAME_BYTES + 64], base[CKPT_MAX_NAME_BYTES + 64];
    if (strcmp(n, "visual_projection.weight") == 0) return add_transposed(out, "visual.proj", t, err);
    if (strcmp(n, "text_projection.weight") == 0) return add_transposed(out, "text_projection", t, err);
    int k = lookup(xclip_top_map, TABLE_LEN(xclip_top_map), 0, n);
    if (k >= 0) return add_copy(out, xclip_top_map[k][1], t, err);
    long layer;
    if (starts_with(n, "mit.encoder.layers.") && (layer = parse_index(n + 19, &inner)) >= 0) {
        snprintf(base, sizeof base, "mit.resblocks.%ld.", layer);
        return map_hf_layer(out, in, t, inner, base, err);
    }
    const char *prefix;
    if (starts_with(n, "vision_model.")) { prefix = "visual."; rest = n + 13; }
    else if (starts_with(n, "text_model.")) { prefix = ""; rest = n + 11; }
    else return add_copy(out, n, t, err); // logit_scale, prompts_generator.decoder.*, alpha, non-CLIP names
    if (ckpt_skippable_int_tensor(rest)) return XC_OK; // embeddings.position_ids (stored as float by some tools)
    k = lookup(tower_map, TABLE_LEN(tower_map), 0, rest);
    if (k >= 0) {
        snprintf(name, sizeof name, "%s%s", prefix, tower_map[k][1]);
        return add_copy(out, name, t, err);
    }
    layer = starts_with(rest, "encoder.layers.") ? parse_index(rest + 15, &inner) : -1;
    if (layer < 0) return xc_err(err, "unknown Hugging Face CLIP name \"%s\"", n);
    snprintf(base, sizeof base, "%stransformer.resblocks.%ld.", prefix, layer);
    return map_hf_layer(out, in, t, inner, base, err);
}

int weights_from_hf_clip(WeightSet *out, const WeightSet *in, XcError *err) {
    XC_CHECK(out->n == 0 && out != in, "weights_from_hf_clip: out must be a different, empty set");
    ckpt_index_build(&g_in_index, in);
    ckpt_index_build(&g_out_index, out);
    int rc = XC_OK;
    for (int i = 0; i < in->n && rc == XC_OK; i++) rc = map_hf_tensor(out, in, &in->t[i], err);
    ckpt_index_free(&g_in_index);
    ckpt_index_free(&g_out_index);
    if (rc != XC_OK) weights_free(out);
    return rc;
}

// ---- official -> Hugging Face ---------------------------------------------------------------------------
static bool is_text_tower(const char *n) {
    return starts_with(n, "token_embedding.") || strcmp(n, "positional_embedding") == 0 ||
           starts_with(n, "transformer.") || starts_with(n, "ln_final.");
}

// in_proj_{weight,bias} [3W(,W)] -> <base><attn>{q,k,v}_proj.<kind>
static int add_split_qkv(WeightSet *out, const char *base, const char *attn, const char *kind, const WeightTensor *t, XcError *err) {
    if (t->ndim < 1 || t->ndim > 2 || t->shape[0] % 3 != 0) return xc_err(err, "%s: first dimension not a multiple of 3", t->name);
    int64_t shape[2] = {t->shape[0] / 3, t->ndim == 2 ? t->shape[1] : 0};
    int64_t part = t->numel / 3;
    const char *qkv[3] = {"q", "k", "v"};
    for (int j = 0; j < 3; j++) {
        char name[2 * CKPT_MAX_NAME_BYTES + 160];
        snprintf(name, sizeof name, "%s%s%s_proj.%s", base, attn, qkv[j], kind);
        if (taken(out, name, err)) return XC_ERR;
        append(out, name, t->ndim, shape, t->data + j * part);
    }
    return XC_OK;
}

// One tensor inside resblocks.N (inner = the part after "resblocks.N."); hf_base up to "layers.N.".
// Returns 1 when mapped, 0 when the name is not a layer tensor of this layout, XC_ERR on error.
static int map_official_layer(WeightSet *out, const WeightTensor *t, const char *inner, const char *hf_base, bool xclip, XcError *err) {
    char name[2 * CKPT_MAX_NAME_BYTES + 160];
    int k = lookup(layer_map, xclip ? TABLE_LEN(layer_map) : CLIP_LAYER_ENTRIES, 1, inner);
    if (k >= 0) {
        snprintf(name, sizeof name, "%s%s", hf_base, layer_map[k][0]);
        return add_copy(out, name, t, err) == XC_OK ? 1 : XC_ERR;
    }
    const char *kind = starts_with(inner, "attn.in_proj_") ? inner + 13 : xclip && starts_with(inner, "message_attn.in_proj_") ? inner + 21 : NULL;
    if (!kind || (strcmp(kind, "weight") && strcmp(kind, "bias"))) return 0;
    return add_split_qkv(out, hf_base, inner[0] == 'a' ? "self_attn." : "message_attn.", kind, t, err) == XC_OK ? 1 : XC_ERR;
}

static int to_hf(WeightSet *out, const WeightSet *in, bool xclip, XcError *err) {
    XC_CHECK(out->n == 0 && out != in, "weights_to_hf_clip: out must be a different, empty set");
    ckpt_index_build(&g_out_index, out);
    for (int i = 0; i < in->n; i++) {
        const WeightTensor *t = &in->t[i];
        const char *n = t->name, *rest, *prefix, *inner;
        char name[CKPT_MAX_NAME_BYTES + 64], base[CKPT_MAX_NAME_BYTES + 64];
        int rc;
        long layer;
        if (strcmp(n, "visual.proj") == 0) rc = add_transposed(out, "visual_projection.weight", t, err);
        else if (strcmp(n, "text_projection") == 0) rc = add_transposed(out, "text_projection.weight", t, err);
        else if (xclip && lookup(xclip_top_map, TABLE_LEN(xclip_top_map), 1, n) >= 0)
            rc = add_copy(out, xclip_top_map[lookup(xclip_top_map, TABLE_LEN(xclip_top_map), 1, n)][0], t, err);
        else if (xclip && starts_with(n, "mit.resblocks.") && (layer = parse_index(n + 14, &inner)) >= 0) {
            snprintf(base, sizeof base, "mit.encoder.layers.%ld.", layer);
            int m = map_official_layer(out, t, inner, base, true, err);
            rc = m == 1 ? XC_OK : m == 0 ? xc_err(err, "%s: unknown X-CLIP MIT tensor", n) : XC_ERR;
        } else if (starts_with(n, "visual.") || is_text_tower(n)) {
            if (n[0] == 'v') { prefix = "vision_model."; rest = n + 7; }
            else { prefix = "text_model."; rest = n; }
            int k = lookup(tower_map, TABLE_LEN(tower_map), 1, rest);
            layer = starts_with(rest, "transformer.resblocks.") ? parse_index(rest + 22, &inner) : -1;
            if (k >= 0) {
                const char *hf = tower_map[k][0];
                if (xclip && strcmp(rest, "ln_pre.weight") == 0) hf = "pre_layernorm.weight";
                if (xclip && strcmp(rest, "ln_pre.bias") == 0) hf = "pre_layernorm.bias";
                snprintf(name, sizeof name, "%s%s", prefix, hf);
                rc = add_copy(out, name, t, err);
            } else if (layer >= 0) {
                snprintf(base, sizeof base, "%sencoder.layers.%ld.", prefix, layer);
                int m = map_official_layer(out, t, inner, base, xclip && n[0] == 'v', err);
                rc = m == 1 ? XC_OK : m == 0 ? add_copy(out, n, t, err) : XC_ERR; // CLIP layout: X-CLIP additions keep our names
            } else {
                rc = add_copy(out, n, t, err);
            }
        } else {
            rc = add_copy(out, n, t, err); // logit_scale, prompts_generator.decoder.*, alpha, and anything else
        }
        if (rc != XC_OK) { ckpt_index_free(&g_out_index); weights_free(out); return XC_ERR; }
    }
    ckpt_index_free(&g_out_index);
    return XC_OK;
}

int weights_to_hf_clip(WeightSet *out, const WeightSet *in, XcError *err) { return to_hf(out, in, false, err); }
int weights_to_hf_xclip(WeightSet *out, const WeightSet *in, XcError *err) { return to_hf(out, in, true, err); }

bool weights_is_clip_tensor(const char *n) {
    if (starts_with(n, "visual.")) return !strstr(n, ".message_");
    return is_text_tower(n) || strcmp(n, "text_projection") == 0 || strcmp(n, "logit_scale") == 0;
}

int weights_keep_clip(WeightSet *out, const WeightSet *in) {
    XC_CHECK(out->n == 0 && out != in, "weights_keep_clip: out must be a different, empty set");
    int left = 0;
    for (int i = 0; i < in->n; i++) {
        const WeightTensor *t = &in->t[i];
        if (weights_is_clip_tensor(t->name)) weights_add(out, t->name, t->ndim, t->shape, t->data);
        else left++;
    }
    return left;
}
