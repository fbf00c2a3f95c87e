// hf_config.h - the Hugging Face config.json of a CLIP or X-CLIP model, written from the sizes of its weights,
// so that an export (xclip-export --hf) loads with CLIPModel.from_pretrained / XCLIPModel.from_pretrained.
//
//   WeightSet ws = {0};                        // official names (weights_load)
//   char *json = NULL;
//   if (hf_config_json(&ws, true, &json, &err) != XC_OK) { fprintf(stderr, "%s\n", err.msg); exit(1); }
//   ... write json next to model.safetensors ...
//   xc_free(json);
//
// Field names follow transformers' CLIPConfig / CLIPTextConfig / CLIPVisionConfig (model_type "clip") and
// XCLIPConfig / XCLIPTextConfig / XCLIPVisionConfig (model_type "xclip"; the layout of
// microsoft/xclip-base-patch32). The sizes come from nn/clip.h clip_config_from_weights and nn/xclip.h
// xclip_config_from_weights: widths, layers, heads = width / 64, MLP widths, context, vocabulary, image size,
// patch, and for X-CLIP the frame count T (mit.positional_embedding), the MIT's layers and MLP width and the
// prompt generator's layers. Fixed values are CLIP's: quick_gelu, layer_norm_eps 1e-5, logit_scale_init_value
// 2.6592 (an initial value only: the logit_scale tensor is loaded), prompt_alpha 0.1 (likewise).
// The text ids: pad 1, bos = vocab - 2, eos = vocab - 1 (49406 / 49407 for CLIP's 49408-token vocabulary; with EOT
// the largest id, CLIPTextModel's first-EOS pooling equals the official argmax pooling).
#pragma once
#include <stdbool.h>
#include "checkpoints/weight_set.h"

// The model's config.json (NUL-terminated, owned by the caller: xc_free) into *json. xclip: XCLIPConfig, else
// CLIPConfig. Refuses (by name, with a hint) what the Hugging Face class cannot represent: for both, a model
// without a text tower (no text_projection: a linear head); for XCLIPConfig also the ablations of this project
// (model.cct = false: no message_*; model.mit_layers = 0: no mit.*; model.prompt_layers = 0: no
// prompts_generator.*), a linear head (head.*) and CoOp context vectors (prompt_learner.ctx).
int hf_config_json(const WeightSet *ws, bool xclip, char **json, XcError *err);
