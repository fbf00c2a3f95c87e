// setup.c - see setup.h.
#include "train/setup.h"

#include <stdio.h>
#include <string.h>

int32_t *class_tokens(Tokenizer *tok, const LabelSet *labels, const char *template_, int64_t S) {
    int32_t *tokens = xc_calloc((size_t)labels->count * (size_t)S, sizeof(int32_t));
    for (int k = 0; k < labels->count; k++) {
        char text[1024];
        const char *at = strstr(template_, "{}");
        if (at) snprintf(text, sizeof text, "%.*s%s%s", (int)(at - template_), template_, labels->names[k], at + 2);
        else snprintf(text, sizeof text, "%s", labels->names[k]);
        tokenizer_encode(tok, text, tokens + (size_t)k * S, (int)S);
    }
    return tokens;
}

// The X-CLIP additions' sizes come from the config unless the weights are X-CLIP's own.
static void new_modules_from_config(XClipConfig *xc, const TrainConfig *c) {
    xc->mit_layers = c->mit_layers;
    xc->prompt_layers = c->prompt_layers;
    xc->cct = c->cct;
    xc->prompt_alpha = (float)c->prompt_alpha;
}

// pretrained = none: the architecture the config names (or its custom sizes).
static int random_model_config(XClipConfig *xc, const TrainConfig *c, XcError *err) {
    TrainConfig cc = *c;
    config_apply_arch(&cc); // a named architecture's sizes (custom: the config's own)
    if (c->input_size % cc.patch)
        return xc_err(err, "data.input_size %d is not a multiple of the patch size %d", c->input_size, cc.patch);
    ClipConfig clip = {.vision_width = cc.vision_width, .vision_layers = cc.vision_layers,
                       .vision_heads = cc.vision_width / 64, .vision_mlp = 4 * (int64_t)cc.vision_width,
                       .patch = cc.patch, .image_size = c->input_size, .embed_dim = cc.embed_dim,
                       .text_width = cc.text_width, .text_layers = cc.text_layers, .text_heads = cc.text_width / 64,
                       .text_mlp = 4 * (int64_t)cc.text_width, .context = cc.context, .vocab = cc.vocab_size};
    *xc = xclip_config_default(&clip, c->frames);
    new_modules_from_config(xc, c);
    return XC_OK;
}

// The architecture read off loaded weights (ws, from `path` given as `key`), checked against the config.
static int checkpoint_model_config(XClipConfig *xc, WeightSet *ws, bool xw, const TrainConfig *c, const char *key,
                                   const char *path, XcError *err) {
    if (xclip_config_from_weights(xc, ws, c->frames, c->interpolate_frames, err) != XC_OK ||
        (xw && c->interpolate_frames && xclip_adapt_weights(ws, c->frames, err) != XC_OK))
        return xc_err(err, "%s = %s: %s", key, path, err->msg);
    if (!xw) new_modules_from_config(xc, c);
    TrainConfig cc = *c;
    if (config_apply_arch(&cc) &&
        (cc.vision_width != xc->clip.vision_width || cc.patch != xc->clip.patch || cc.vision_layers != xc->clip.vision_layers))
        return xc_err(err, "%s = %s holds a ViT with width %lld, patch %lld, %lld layers, not model.arch = %s\n"
                           "HINT: set model.arch to the checkpoint's architecture (or custom)",
                      key, path, (long long)xc->clip.vision_width, (long long)xc->clip.patch,
                      (long long)xc->clip.vision_layers, config_arch_name(c->arch));
    if (xc->clip.image_size != c->input_size)
        return xc_err(err, "%s = %s expects %lldx%lld inputs but data.input_size = %d\nHINT: set data.input_size = %lld",
                      key, path, (long long)xc->clip.image_size, (long long)xc->clip.image_size, c->input_size,
                      (long long)xc->clip.image_size);
    return XC_OK;
}

int model_build(XClip *m, ParamStore *ps, const TrainConfig *c, const char *weights, bool *is_xclip, XcError *err) {
    const char *path = weights ? weights : c->pretrained;
    const char *key = weights ? "--checkpoint" : "model.pretrained";
    const bool none = !weights && config_pretrained_none(c);
    bool xw = false;
    XClipConfig xc;
    WeightSet ws = {0};
    if (none) {
        if (random_model_config(&xc, c, err) != XC_OK) return XC_ERR;
    } else {
        if (weights_load(&ws, path, err) != XC_OK) return xc_err(err, "%s = %s: %s", key, path, err->msg);
        xw = xclip_weights_are_xclip(&ws);
        if (checkpoint_model_config(&xc, &ws, xw, c, key, path, err) != XC_OK) {
            weights_free(&ws);
            return XC_ERR;
        }
    }
    xc.drop_path = (float)c->drop_path;
    xc.fix_text = c->fix_text;
    xc.checkpoint = c->checkpoint;
    param_store_init(ps, "params");
    ps->transient_grads = config_fused_adamw(c); // gradients only inside backward, consumed by the fused AdamW
    xclip_init(m, ps, &xc);
    if (none) xclip_init_clip_random(m, (uint64_t)c->seed);
    if (!xw) xclip_init_new_tensors(m, (uint64_t)c->seed);
    if (!none) {
        int rc = params_load(ps, &ws, xw ? NULL : xclip_is_new_tensor, err);
        weights_free(&ws);
        if (rc != XC_OK) {
            xclip_free(m);
            param_store_free(ps);
            return xc_err(err, "%s = %s: %s", key, path, err->msg);
        }
    }
    if (is_xclip) *is_xclip = xw;
    return XC_OK;
}

int clip_model_load(Clip *m, ParamStore *ps, const char *path, XcError *err) {
    WeightSet ws = {0};
    ClipConfig cc;
    if (weights_load(&ws, path, err) != XC_OK || clip_config_from_weights(&cc, &ws, err) != XC_OK) {
        weights_free(&ws);
        return xc_err(err, "%s: %s", path, err->msg);
    }
    param_store_init(ps, "params");
    clip_init(m, ps, &cc, true);
    int rc = params_load(ps, &ws, NULL, err);
    weights_free(&ws);
    if (rc != XC_OK) {
        param_store_free(ps);
        return xc_err(err, "%s: %s", path, err->msg);
    }
    return XC_OK;
}

LoaderConfig loader_config_train(const TrainConfig *c, int num_classes) {
    LoaderConfig lc = loader_config_default(c->input_size, c->frames, c->batch_size);
    lc.train = 1;
    lc.workers = c->workers;
    lc.seed = (uint64_t)c->seed;
    lc.scale = c->resize;
    lc.max_bad_fraction = c->max_bad_fraction;
    lc.tf.flip_p = (float)c->flip;
    lc.tf.jitter_p = (float)c->color_jitter;
    lc.tf.gray_p = (float)c->gray_scale;
    lc.tf.brightness = (float)c->brightness;
    lc.tf.contrast = (float)c->contrast;
    lc.tf.saturation = (float)c->saturation;
    lc.tf.hue = (float)c->hue;
    lc.tf.jitter_per_clip = c->jitter_per_clip;
    lc.targets = 1; // soft targets always: smoothing and mixing come from the same place
    lc.mix = mix_config_default(num_classes);
    lc.mix.smoothing = (float)c->label_smooth;
    // the official code builds CutmixMixupBlending only when AUG.MIXUP > 0
    lc.mix.mixup_alpha = c->mixup > 0 ? (float)c->mixup : 0.0f;
    lc.mix.cutmix_alpha = c->mixup > 0 ? (float)c->cutmix : 0.0f;
    lc.mix.switch_prob = (float)c->mixup_switch_prob;
    return lc;
}

LoaderConfig loader_config_test(const TrainConfig *c, int num_clip, int num_crop, int batch) {
    LoaderConfig lc = loader_config_default(c->input_size, c->frames, batch);
    lc.train = 0;
    lc.workers = c->workers;
    lc.seed = (uint64_t)c->seed;
    lc.scale = c->resize;
    lc.max_bad_fraction = c->max_bad_fraction;
    lc.targets = 0;
    lc.views = num_clip;
    lc.view_mode = c->view_mode;
    lc.tf.num_crop = num_crop;
    return lc;
}
