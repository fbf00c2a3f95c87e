// setup.c - see setup.h.
#include "train/setup.h"

#include <stdio.h>
#include <string.h>

int32_t *class_tokens(Tokenizer *tok, const LabelSet *labels, const char *template_, int64_t S) {
    return class_tokens_prompted(tok, labels, &template_, 1, 0, S, NULL);
}

// One class text: template with {} replaced by name, into row (S) behind N placeholder slots. Returns true if the
// text was cut to fit.
static bool encode_class_text(Tokenizer *tok, const char *templ, const char *name, int64_t N, int64_t S, int32_t *row) {
    char text[1024];
    const char *at = strstr(templ, "{}");
    if (at) snprintf(text, sizeof text, "%.*s%s%s", (int)(at - templ), templ, name, at + 2);
    else snprintf(text, sizeof text, "%s", name);
    if (N == 0) {
        tokenizer_encode(tok, text, row, (int)S);
        return tokenizer_encode_ids(tok, text, NULL, 0) > (size_t)S - 2;
    }
    // CoOp: [SOT] [N slots] [text ids] [EOT], the slots' ids those of "X" (CoOp's placeholder; replaced by the context
    // vectors before the tower, and below EOT's id, so the EOT position stays the row's largest id)
    int32_t x[3];
    tokenizer_encode(tok, "X", x, 3);
    const size_t room = (size_t)(S - 2 - N), n = tokenizer_encode_ids(tok, text, NULL, 0);
    int32_t *ids = xc_malloc((n ? n : 1) * sizeof(int32_t));
    tokenizer_encode_ids(tok, text, ids, n);
    memset(row, 0, (size_t)S * sizeof(int32_t));
    row[0] = tokenizer_sot(tok);
    for (int64_t i = 0; i < N; i++) row[1 + i] = x[1];
    const size_t kept = n < room ? n : room;
    memcpy(row + 1 + N, ids, kept * sizeof(int32_t));
    row[1 + N + (int64_t)kept] = tokenizer_eot(tok);
    xc_free(ids);
    return n > room;
}

int32_t *class_tokens_prompted(Tokenizer *tok, const LabelSet *labels, const char *const *templates, int M, int64_t N,
                               int64_t S, PromptCut *cut) {
    XC_CHECK(M >= 1 && N >= 0 && N + 3 <= S, "class_tokens: %d templates, %lld context slots, context %lld", M,
             (long long)N, (long long)S);
    int32_t *tokens = xc_calloc((size_t)labels->count * (size_t)M * (size_t)S, sizeof(int32_t));
    if (cut) memset(cut, 0, sizeof *cut);
    for (int k = 0; k < labels->count; k++)
        for (int j = 0; j < M; j++) {
            int32_t *row = tokens + ((size_t)k * (size_t)M + (size_t)j) * (size_t)S;
            if (encode_class_text(tok, templates[j], labels->names[k], N, S, row) && cut && cut->count++ == 0) {
                cut->class_index = k;
                cut->room = S - 2 - N;
            }
        }
    return tokens;
}

int class_texts(Tokenizer *tok, const LabelSet *labels, const TrainConfig *c, int64_t N, int64_t S, ClassTexts *out,
                XcError *err) {
    memset(out, 0, sizeof *out);
    if (*c->templates && N)
        return xc_err(err, "data.templates and %lld learnt context vectors (model.context_tokens or the checkpoint's "
                           "prompt_learner.ctx) exclude each other\nHINT: leave data.templates empty", (long long)N);
    if (N + 3 > S)
        return xc_err(err, "model.context_tokens = %lld leaves no room for the class name in the model's %lld-token text "
                           "context\nHINT: at most %lld", (long long)N, (long long)S, (long long)S - 3);
    Templates t = {0};
    const char *one = c->template_;
    if (*c->templates && templates_load(c->templates, &t, err) != XC_OK) return XC_ERR;
    const char *const *list = t.count ? (const char *const *)t.text : &one;
    const int M = t.count ? t.count : 1;
    out->tokens = class_tokens_prompted(tok, labels, list, M, N, S, &out->cut);
    out->K = labels->count;
    out->M = M;
    out->templates = t.count;
    templates_free(&t);
    return XC_OK;
}

// The X-CLIP additions' sizes come from the config unless the weights are X-CLIP's own. The linear head's K is
// c->num_classes (the trainer sets it from the label file).
static void new_modules_from_config(XClipConfig *xc, const TrainConfig *c) {
    xc->mit_layers = c->mit_layers;
    xc->prompt_layers = c->prompt_layers;
    xc->cct = c->cct;
    xc->prompt_alpha = (float)c->prompt_alpha;
    xc->head = c->head;
    xc->num_classes = c->head == XCLIP_HEAD_LINEAR ? c->num_classes : 0;
    xc->context_tokens = c->context_tokens;
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
    else if (!strcmp(key, "model.pretrained") && xc->head != c->head) // training from X-CLIP weights: their head
        return xc_err(err, "model.pretrained = %s is an X-CLIP checkpoint with a %s head, but model.head = %s\n"
                           "HINT: set model.head = %s, or start from CLIP weights", path,
                      xc->head == XCLIP_HEAD_LINEAR ? "linear" : "text", c->head == XCLIP_HEAD_LINEAR ? "linear" : "text",
                      xc->head == XCLIP_HEAD_LINEAR ? "linear" : "text");
    else if (c->context_tokens && xc->context_tokens && c->context_tokens != xc->context_tokens)
        return xc_err(err, "%s = %s holds %lld context vectors (prompt_learner.ctx) but model.context_tokens = %d\n"
                           "HINT: set model.context_tokens = %lld (or 0: the checkpoint's)", key, path,
                      (long long)xc->context_tokens, c->context_tokens, (long long)xc->context_tokens);
    else if (c->context_tokens) xc->context_tokens = c->context_tokens; // new context vectors on X-CLIP weights
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

static bool is_context(const char *name) { return !strcmp(name, "prompt_learner.ctx"); }

// model_build's work on weights already read (ws, from `path` given as `key`; NULL: random from c->seed). ws is
// changed (tensors the model does not load are dropped, frames adapted) and stays the caller's to free.
static int build(XClip *m, ParamStore *ps, const TrainConfig *c, WeightSet *ws, const char *key, const char *path,
                 bool *is_xclip, XcError *err) {
    const bool xw = ws && xclip_weights_are_xclip(ws);
    XClipConfig xc;
    if (!ws ? random_model_config(&xc, c, err) != XC_OK : checkpoint_model_config(&xc, ws, xw, c, key, path, err) != XC_OK)
        return XC_ERR;
    xc.drop_path = (float)c->drop_path;
    xc.fix_text = c->fix_text;
    xc.fix_vision = c->fix_vision;
    xc.checkpoint = c->checkpoint;
    if (xclip_config_check(&xc, err) != XC_OK) return XC_ERR;
    if (ws && !xw) xclip_drop_unused_weights(ws, &xc); // linear head: CLIP's text tower and logit_scale are not loaded
    param_store_init(ps, "params");
    ps->transient_grads = config_fused_adamw(c); // gradients only inside backward, consumed by the fused AdamW
    xclip_init(m, ps, &xc);
    if (!ws) xclip_init_clip_random(m, (uint64_t)c->seed);
    if (!xw) xclip_init_new_tensors(m, (uint64_t)c->seed);
    const bool new_ctx = xw && m->prompt_ctx && !weights_find(ws, "prompt_learner.ctx");
    if (new_ctx) xclip_init_context(m, (uint64_t)c->seed);
    if (ws && params_load(ps, ws, xw ? (new_ctx ? is_context : NULL) : xclip_is_new_tensor, err) != XC_OK) {
        xclip_free(m);
        param_store_free(ps);
        return xc_err(err, "%s = %s: %s", key, path, err->msg);
    }
    if (is_xclip) *is_xclip = xw;
    return XC_OK;
}

int model_build(XClip *m, ParamStore *ps, const TrainConfig *c, const char *weights, bool *is_xclip, XcError *err) {
    const char *path = weights ? weights : c->pretrained;
    const char *key = weights ? "--checkpoint" : "model.pretrained";
    if (!weights && config_pretrained_none(c)) return build(m, ps, c, NULL, key, path, is_xclip, err);
    WeightSet ws = {0};
    if (weights_load(&ws, path, err) != XC_OK) return xc_err(err, "%s = %s: %s", key, path, err->msg);
    int rc = build(m, ps, c, &ws, key, path, is_xclip, err);
    weights_free(&ws);
    return rc;
}

int model_check_weights(const TrainConfig *c, WeightSet *ws, const char *path, XcError *err) {
    XClipConfig xc;
    if (checkpoint_model_config(&xc, ws, xclip_weights_are_xclip(ws), c, "--checkpoint", path, err) != XC_OK) return XC_ERR;
    return xclip_config_check(&xc, err);
}

int model_build_from_weights(XClip *m, ParamStore *ps, const TrainConfig *c, WeightSet *ws, const char *path,
                             XcError *err) {
    return build(m, ps, c, ws, "--checkpoint", path, NULL, err);
}

int clip_model_from_weights(Clip *m, ParamStore *ps, const WeightSet *ws, const char *path, XcError *err) {
    ClipConfig cc;
    if (clip_config_from_weights(&cc, ws, err) != XC_OK) return xc_err(err, "%s: %s", path, err->msg);
    param_store_init(ps, "params");
    clip_init(m, ps, &cc, true);
    if (params_load(ps, ws, NULL, err) != XC_OK) {
        param_store_free(ps);
        return xc_err(err, "%s: %s", path, err->msg);
    }
    return XC_OK;
}

int clip_model_load(Clip *m, ParamStore *ps, const char *path, XcError *err) {
    WeightSet ws = {0};
    if (weights_load(&ws, path, err) != XC_OK) return xc_err(err, "%s: %s", path, err->msg);
    int rc = clip_model_from_weights(m, ps, &ws, path, err);
    weights_free(&ws);
    return rc;
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
