// hf_names.h - Hugging Face CLIPModel / XCLIPModel names <-> the official OpenAI CLIP / X-CLIP names.
//
// weights_load (checkpoints/weights.h) maps a Hugging Face file onto the official names on reading;
// xclip-export maps the other way. Every conversion only moves bytes (q/k/v stacked or split, the two
// CLIP projections transposed), so round trips are exact.
//
//   WeightSet hf = {0}, official = {0};
//   XcError err;
//   ... hf filled by a reader of checkpoints/weight_formats.h (names as stored) ...
//   if (weights_is_hf_clip(&hf) && weights_from_hf_clip(&official, &hf, &err) != XC_OK) { fprintf(stderr, "%s\n", err.msg); exit(1); }
//   WeightSet out = {0};
//   if (weights_to_hf_xclip(&out, &official, &err) != XC_OK) { ... }   // microsoft/xclip-base-patch32 names
//   weights_free(&hf); weights_free(&official); weights_free(&out);
#pragma once
#include <stdbool.h>
#include "checkpoints/weight_set.h"

// True if the set looks like a Hugging Face CLIPModel state dict (names under vision_model./text_model.).
bool weights_is_hf_clip(const WeightSet *ws);
// Hugging Face CLIPModel names -> official OpenAI names. out must be empty; in is not modified.
//   vision_model.embeddings.patch_embedding.weight      -> visual.conv1.weight
//   vision_model.embeddings.class_embedding             -> visual.class_embedding
//   vision_model.embeddings.position_embedding.weight   -> visual.positional_embedding
//   vision_model.pre_layrnorm.* / post_layernorm.*      -> visual.ln_pre.* / visual.ln_post.*
//   vision_model.encoder.layers.N.self_attn.{q,k,v}_proj.{weight,bias}
//                                                       -> visual.transformer.resblocks.N.attn.in_proj_{weight,bias}
//   ....self_attn.out_proj.* / layer_norm1 / layer_norm2 / mlp.fc1 / mlp.fc2
//                                                       -> attn.out_proj.* / ln_1 / ln_2 / mlp.c_fc / mlp.c_proj
//   text_model.embeddings.token_embedding.weight        -> token_embedding.weight
//   text_model.embeddings.position_embedding.weight     -> positional_embedding
//   text_model.encoder.layers.N.*                       -> transformer.resblocks.N.* (as above)
//   text_model.final_layer_norm.*                       -> ln_final.*
//   visual_projection.weight [E,W]                      -> visual.proj [W,E] (transposed)
//   text_projection.weight [E,D]                        -> text_projection [D,E] (transposed)
//   logit_scale                                         -> logit_scale
// position_ids are dropped; an unknown name under vision_model./text_model. is an error; any other
// name is copied unchanged.
int weights_from_hf_clip(WeightSet *out, const WeightSet *in, XcError *err);
// The reverse (official -> Hugging Face CLIPModel), for export. Names outside the CLIP towers are copied.
int weights_to_hf_clip(WeightSet *out, const WeightSet *in, XcError *err);
// True if the set holds X-CLIP tensors (official names mit.*, prompts_*, *.message_*).
bool weights_is_xclip(const WeightSet *ws);
// Official X-CLIP -> Hugging Face XCLIPModel (microsoft/xclip-base-patch32), for export. On top of the
// CLIP table above (with vision_model.pre_layernorm, spelt correctly in XCLIPModel):
//   visual.transformer.resblocks.N.message_fc.* / message_ln.* / message_attn.out_proj.*
//                                      -> vision_model.encoder.layers.N.(same names)
//   visual.transformer.resblocks.N.message_attn.in_proj_{weight,bias}
//                                      -> vision_model.encoder.layers.N.message_attn.{q,k,v}_proj.* (split)
//   mit.positional_embedding [1,T,E]   -> mit.position_embedding
//   mit.resblocks.N.*                  -> mit.encoder.layers.N.* (layer names and q/k/v split as above)
//   prompts_visual_ln.*                -> prompts_visual_layernorm.*
//   prompts_visual_proj [W,E]          -> prompts_visual_projection (not transposed: a parameter in both)
//   prompts_generator.norm.*           -> prompts_generator.layernorm.*
//   prompts_generator.decoder.N.*, prompts_generator.alpha, logit_scale: unchanged
// weights_from_hf_clip maps both Hugging Face layouts back (weights_load does it on reading).
int weights_to_hf_xclip(WeightSet *out, const WeightSet *in, XcError *err);
// A tensor of CLIP itself (official names)? visual.* except the cross-frame message_* tensors, the text tower
// (token_embedding, positional_embedding, transformer.*, ln_final, text_projection) and logit_scale; not the
// X-CLIP additions (mit.*, prompts_*, message_*) nor this project's head.* and prompt_learner.ctx.
bool weights_is_clip_tensor(const char *name);
// Copy the CLIP tensors of in into the empty set out (a CLIP-only model from any X-CLIP checkpoint); returns how
// many tensors were left out.
int weights_keep_clip(WeightSet *out, const WeightSet *in);
