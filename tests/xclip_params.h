// xclip_params.h - register the parameters of an X-CLIP model (official names and shapes, SPEC.md §1-§5)
// in a ParamStore, for snapshot / export tests and benchmarks (the model code itself lives in nn/).
//
//   XclipDims d = xclip_dims_tiny();                 // or xclip_dims_b32() for ViT-B/32 at 8 frames
//   ParamStore ps; param_store_init(&ps, "params");
//   xclip_register_params(&ps, &d, true);            // text tower frozen (fix_text)
//   xclip_fill_random(&ps, 7);
#pragma once
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "autograd/rng.h"
#include "autograd/tensor.h"

typedef struct XclipDims {
    int64_t W, vision_layers, P, image, E, D, text_layers, S, vocab, T, mit_layers, prompt_layers;
} XclipDims;

static inline XclipDims xclip_dims_tiny(void) { return (XclipDims){64, 2, 8, 32, 32, 64, 2, 8, 50, 4, 1, 2}; }
// ViT-B/32, 8 frames, 224 px (microsoft/xclip-base-patch32)
static inline XclipDims xclip_dims_b32(void) { return (XclipDims){768, 12, 32, 224, 512, 512, 12, 77, 49408, 8, 1, 2}; }

static inline void xclip_p(ParamStore *ps, bool frozen, int nd, const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static inline void xclip_p(ParamStore *ps, bool frozen, int nd, const int64_t *shape, const char *fmt, ...) {
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (frozen) param_new_frozen(ps, name, nd, shape);
    else param_new(ps, name, nd, shape);
}
#define XP(frozen, ...) xclip_p(ps, frozen, (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (int64_t[]){__VA_ARGS__}, 
#define XP0(frozen) xclip_p(ps, frozen, 0, NULL,

// nn.MultiheadAttention + residual block (ln_1, attn, ln_2, mlp.c_fc, mlp.c_proj) under prefix
static inline void xclip_resblock(ParamStore *ps, bool fz, int64_t w, const char *prefix) {
    XP(fz, 3 * w, w) "%sattn.in_proj_weight", prefix);
    XP(fz, 3 * w) "%sattn.in_proj_bias", prefix);
    XP(fz, w, w) "%sattn.out_proj.weight", prefix);
    XP(fz, w) "%sattn.out_proj.bias", prefix);
    XP(fz, w) "%sln_1.weight", prefix);
    XP(fz, w) "%sln_1.bias", prefix);
    XP(fz, 4 * w, w) "%smlp.c_fc.weight", prefix);
    XP(fz, 4 * w) "%smlp.c_fc.bias", prefix);
    XP(fz, w, 4 * w) "%smlp.c_proj.weight", prefix);
    XP(fz, w) "%smlp.c_proj.bias", prefix);
    XP(fz, w) "%sln_2.weight", prefix);
    XP(fz, w) "%sln_2.bias", prefix);
}

static inline void xclip_register_params(ParamStore *ps, const XclipDims *d, bool freeze_text) {
    int64_t W = d->W, E = d->E, D = d->D, G = d->image / d->P;
    char pre[128];
    XP(false, W) "visual.class_embedding");
    XP(false, G * G + 1, W) "visual.positional_embedding");
    XP(false, W, E) "visual.proj");
    XP(false, W, 3, d->P, d->P) "visual.conv1.weight");
    XP(false, W) "visual.ln_pre.weight");
    XP(false, W) "visual.ln_pre.bias");
    for (int64_t i = 0; i < d->vision_layers; i++) {
        snprintf(pre, sizeof pre, "visual.transformer.resblocks.%lld.", (long long)i);
        XP(false, W, W) "%smessage_fc.weight", pre);
        XP(false, W) "%smessage_fc.bias", pre);
        XP(false, W) "%smessage_ln.weight", pre);
        XP(false, W) "%smessage_ln.bias", pre);
        XP(false, 3 * W, W) "%smessage_attn.in_proj_weight", pre);
        XP(false, 3 * W) "%smessage_attn.in_proj_bias", pre);
        XP(false, W, W) "%smessage_attn.out_proj.weight", pre);
        XP(false, W) "%smessage_attn.out_proj.bias", pre);
        xclip_resblock(ps, false, W, pre);
    }
    XP(false, W) "visual.ln_post.weight");
    XP(false, W) "visual.ln_post.bias");
    bool ft = freeze_text;
    for (int64_t i = 0; i < d->text_layers; i++) {
        snprintf(pre, sizeof pre, "transformer.resblocks.%lld.", (long long)i);
        xclip_resblock(ps, ft, D, pre);
    }
    XP(ft, d->vocab, D) "token_embedding.weight");
    XP(ft, d->S, D) "positional_embedding");
    XP(ft, D) "ln_final.weight");
    XP(ft, D) "ln_final.bias");
    XP(ft, D, E) "text_projection");
    XP0(ft) "logit_scale");
    XP(false, W) "prompts_visual_ln.weight");
    XP(false, W) "prompts_visual_ln.bias");
    XP(false, W, E) "prompts_visual_proj");
    XP(false, 1, d->T, E) "mit.positional_embedding");
    for (int64_t j = 0; j < d->mit_layers; j++) {
        snprintf(pre, sizeof pre, "mit.resblocks.%lld.", (long long)j);
        xclip_resblock(ps, false, E, pre);
    }
    XP(false, E) "prompts_generator.norm.weight");
    XP(false, E) "prompts_generator.norm.bias");
    for (int64_t j = 0; j < d->prompt_layers; j++) {
        snprintf(pre, sizeof pre, "prompts_generator.decoder.%lld.", (long long)j);
        XP(false, E, E) "%scross_attn.q_proj.weight", pre);
        XP(false, E, E) "%scross_attn.k_proj.weight", pre);
        XP(false, E, E) "%scross_attn.v_proj.weight", pre);
        XP(false, E, E) "%scross_attn.proj.weight", pre);
        XP(false, E) "%scross_attn.proj.bias", pre);
        XP(false, E) "%snorm1.weight", pre);
        XP(false, E) "%snorm1.bias", pre);
        XP(false, E) "%snorm3.weight", pre);
        XP(false, E) "%snorm3.bias", pre);
        XP(false, 4 * E, E) "%smlp.0.weight", pre);
        XP(false, 4 * E) "%smlp.0.bias", pre);
        XP(false, E, 4 * E) "%smlp.3.weight", pre);
        XP(false, E) "%smlp.3.bias", pre);
    }
    XP(false, E) "prompts_generator.alpha");
}
#undef XP
#undef XP0

// Fill every parameter with N(0, 1) draws from a test stream.
static inline void xclip_fill_random(ParamStore *ps, uint64_t seed) {
    Rng r = rng_stream(seed, RNG_STREAM_TEST);
    for (int i = 0; i < ps->n; i++) rng_fill_normal(&r, ps->p[i]->data, ps->p[i]->numel, 0.0f, 1.0f);
}
