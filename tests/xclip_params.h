// xclip_params.h - register the parameters of an X-CLIP model (official names and shapes) in a ParamStore
// through the model's own registration (nn/xclip.h), for snapshot / export tests and benchmarks.
//
//   XclipDims d = xclip_dims_tiny();                 // or xclip_dims_b32() for ViT-B/32 at 8 frames
//   ParamStore ps; param_store_init(&ps, "params");
//   xclip_register_params(&ps, &d, true);            // text tower frozen (fix_text)
//   xclip_fill_random(&ps, 7);
#pragma once
#include <stdio.h>
#include <string.h>
#include "autograd/rng.h"
#include "autograd/tensor.h"
#include "nn/xclip.h"

typedef struct XclipDims {
    int64_t W, vision_layers, P, image, E, D, text_layers, S, vocab, T, mit_layers, prompt_layers;
} XclipDims;

static inline XclipDims xclip_dims_tiny(void) { return (XclipDims){64, 2, 8, 32, 32, 64, 2, 8, 50, 4, 1, 2}; }
// ViT-B/32, 8 frames, 224 px (microsoft/xclip-base-patch32)
static inline XclipDims xclip_dims_b32(void) { return (XclipDims){768, 12, 32, 224, 512, 512, 12, 77, 49408, 8, 1, 2}; }

// Registers exactly what the model registers (nn/xclip.c), official names and shapes.
static inline void xclip_register_params(ParamStore *ps, const XclipDims *d, bool freeze_text) {
    ClipConfig c = {.vision_width = d->W, .vision_layers = d->vision_layers, .vision_heads = d->W / 64 > 0 ? d->W / 64 : 1,
                    .vision_mlp = 4 * d->W, .patch = d->P, .image_size = d->image, .embed_dim = d->E, .text_width = d->D,
                    .text_layers = d->text_layers, .text_heads = d->D / 64 > 0 ? d->D / 64 : 1, .text_mlp = 4 * d->D,
                    .context = d->S, .vocab = d->vocab};
    XClipConfig x = xclip_config_default(&c, d->T);
    x.mit_layers = d->mit_layers;
    x.prompt_layers = d->prompt_layers;
    x.fix_text = freeze_text; // freezes the text tower and logit_scale, as the official fix_text
    XClip *m = xc_calloc(1, sizeof *m); // the parameters live in ps; the model struct is not needed after
    xclip_init(m, ps, &x);
    xclip_free(m);
    xc_free(m);
}

// Fill every parameter with N(0, 1) draws from a test stream.
static inline void xclip_fill_random(ParamStore *ps, uint64_t seed) {
    Rng r = rng_stream(seed, RNG_STREAM_TEST);
    for (int i = 0; i < ps->n; i++) rng_fill_normal(&r, ps->p[i]->data, ps->p[i]->numel, 0.0f, 1.0f);
}
