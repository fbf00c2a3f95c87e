// hf_config.c - config.json for Hugging Face CLIPModel / XCLIPModel from the sizes of a model's weights
// (field list in hf_config.h). Letters: W vision width, D text width, E embedding (projection) width, T frames.
#include "nn/hf_config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "nn/xclip.h"

typedef struct Json { char *buf; size_t len, cap; } Json;

static void put(Json *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(Json *j, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    XC_CHECK(n >= 0, "hf_config: formatting failed");
    if (j->len + (size_t)n + 1 > j->cap) {
        size_t cap = j->cap ? j->cap : 2048;
        while (j->len + (size_t)n + 1 > cap) cap *= 2;
        char *b = xc_malloc(cap);
        if (j->len) memcpy(b, j->buf, j->len);
        xc_free(j->buf);
        j->buf = b;
        j->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(j->buf + j->len, j->cap - j->len, fmt, ap);
    va_end(ap);
    j->len += (size_t)n;
}

// What XCLIPModel cannot hold, by the tensor names that show it; XC_OK when the model is plain X-CLIP.
static int xclip_representable(const XClipConfig *c, XcError *err) {
    const char *hint = "HINT: --hf=clip writes the CLIP part alone (a CLIPModel)";
    if (c->head == XCLIP_HEAD_LINEAR)
        return xc_err(err, "head.weight: a linear classification head (model.head = linear) has no place in Hugging Face "
                           "XCLIPModel\n%s", hint);
    if (c->context_tokens > 0)
        return xc_err(err, "prompt_learner.ctx: CoOp context vectors (model.context_tokens = %lld) have no place in Hugging "
                           "Face XCLIPModel\n%s", (long long)c->context_tokens, hint);
    if (!c->cct)
        return xc_err(err, "no visual.transformer.resblocks.N.message_* tensors (model.cct = false): Hugging Face XCLIPModel "
                           "always has cross-frame communication\n%s", hint);
    if (c->mit_layers == 0)
        return xc_err(err, "no mit.* tensors (model.mit_layers = 0): Hugging Face XCLIPModel always has the multi-frame "
                           "integration transformer\n%s", hint);
    if (c->prompt_layers == 0)
        return xc_err(err, "no prompts_generator.* tensors (model.prompt_layers = 0): Hugging Face XCLIPModel always has "
                           "the video-specific prompt generator\n%s", hint);
    return XC_OK;
}

int hf_config_json(const WeightSet *ws, bool xclip, char **json, XcError *err) {
    *json = NULL;
    if (!weights_find(ws, "text_projection")) // checked first: --hf=clip has already dropped head.*
        return xc_err(err, "no text tower (no text_projection; a model.head = linear checkpoint, with head.weight, has "
                           "none): Hugging Face %s needs one", xclip ? "XCLIPModel" : "CLIPModel");
    ClipConfig c;
    XClipConfig x;
    if (xclip) {
        const WeightTensor *pos = weights_find(ws, "mit.positional_embedding"); // (1, T, E)
        int64_t T = pos && pos->ndim == 3 ? pos->shape[1] : 8;
        if (xclip_config_from_weights(&x, ws, T, false, err) != XC_OK || xclip_representable(&x, err) != XC_OK)
            return XC_ERR;
        c = x.clip;
    } else if (clip_config_from_weights(&c, ws, err) != XC_OK) {
        return XC_ERR;
    }
    const char *prefix = xclip ? "xclip" : "clip";
    Json j = {0};
    put(&j, "{\n  \"architectures\": [\"%s\"],\n  \"model_type\": \"%s\",\n", xclip ? "XCLIPModel" : "CLIPModel", prefix);
    put(&j, "  \"projection_dim\": %lld,\n  \"logit_scale_init_value\": 2.6592,\n  \"initializer_factor\": 1.0,\n",
        (long long)c.embed_dim);
    if (xclip) {
        int64_t E = c.embed_dim;
        put(&j, "  \"prompt_layers\": %lld,\n  \"prompt_alpha\": 0.1,\n  \"prompt_hidden_act\": \"quick_gelu\",\n"
                "  \"prompt_num_attention_heads\": %lld,\n  \"prompt_attention_dropout\": 0.0,\n"
                "  \"prompt_projection_dropout\": 0.0,\n",
            (long long)x.prompt_layers, (long long)(E / 64 > 0 ? E / 64 : 1)); // nn/xclip.c: heads = E / 64
    }
    // text tower
    put(&j, "  \"text_config\": {\n    \"model_type\": \"%s_text_model\",\n    \"vocab_size\": %lld,\n"
            "    \"hidden_size\": %lld,\n    \"intermediate_size\": %lld,\n    \"num_hidden_layers\": %lld,\n"
            "    \"num_attention_heads\": %lld,\n    \"max_position_embeddings\": %lld,\n",
        prefix, (long long)c.vocab, (long long)c.text_width, (long long)c.text_mlp, (long long)c.text_layers,
        (long long)c.text_heads, (long long)c.context);
    if (!xclip) put(&j, "    \"projection_dim\": %lld,\n", (long long)c.embed_dim);
    put(&j, "    \"hidden_act\": \"quick_gelu\",\n    \"layer_norm_eps\": 1e-05,\n    \"attention_dropout\": 0.0,\n"
            "    \"pad_token_id\": 1,\n    \"bos_token_id\": %lld,\n    \"eos_token_id\": %lld\n  },\n",
        (long long)(c.vocab - 2), (long long)(c.vocab - 1));
    // vision tower (and for X-CLIP the MIT, which XCLIPModel configures from the vision config)
    put(&j, "  \"vision_config\": {\n    \"model_type\": \"%s_vision_model\",\n    \"hidden_size\": %lld,\n"
            "    \"intermediate_size\": %lld,\n    \"num_hidden_layers\": %lld,\n    \"num_attention_heads\": %lld,\n"
            "    \"image_size\": %lld,\n    \"patch_size\": %lld,\n    \"num_channels\": 3,\n",
        prefix, (long long)c.vision_width, (long long)c.vision_mlp, (long long)c.vision_layers, (long long)c.vision_heads,
        (long long)c.image_size, (long long)c.patch);
    if (xclip) {
        const WeightTensor *fc = weights_find(ws, "mit.resblocks.0.mlp.c_fc.weight"); // (mlp, E)
        if (!fc || fc->ndim != 2) {
            xc_free(j.buf);
            return xc_err(err, "weights: mit.resblocks.0.mlp.c_fc.weight missing or not a matrix");
        }
        int64_t E = c.embed_dim;
        put(&j, "    \"num_frames\": %lld,\n    \"mit_hidden_size\": %lld,\n    \"mit_intermediate_size\": %lld,\n"
                "    \"mit_num_hidden_layers\": %lld,\n    \"mit_num_attention_heads\": %lld,\n    \"drop_path_rate\": 0.0,\n",
            (long long)x.frames, (long long)E, (long long)fc->shape[0], (long long)x.mit_layers,
            (long long)(E / 64 > 0 ? E / 64 : 1));
    } else {
        put(&j, "    \"projection_dim\": %lld,\n", (long long)c.embed_dim);
    }
    put(&j, "    \"hidden_act\": \"quick_gelu\",\n    \"layer_norm_eps\": 1e-05,\n    \"attention_dropout\": 0.0\n  }\n}\n");
    *json = j.buf;
    return XC_OK;
}
