// clip_pretrain.h - CLIP's own pretraining objective (docs/model.md §13): image and caption features of a batch
// of B matching pairs, each image scored against every caption of the batch and each caption against every
// image, with a learnable temperature.
//
//   Tensor *img = clip_encode_image(g, &clip, images);                        // (B, E)
//   Tensor *txt = clip_encode_text(g, &clip.text, tokens, B, S, true);        // (B, E)
//   Tensor *loss = clip_contrastive_loss(g, img, txt, clip.logit_scale);      // scalar
//   graph_backward(g, loss); adamw_step(...);
//   clip_clamp_logit_scale(clip.logit_scale);                                 // after every optimiser step
#pragma once
#include "autograd/ops.h"

// logits = exp(logit_scale) * normalize(img) @ normalize(txt)^T (B, B); the loss is the mean of the
// cross-entropy of each row (image -> its caption) and of each column (caption -> its image), the pair's
// index being the class: (CE(logits, arange B) + CE(logits^T, arange B)) / 2. img, txt (B, E).
// *logits (may be NULL) receives the (B, B) logits, for in-batch retrieval accuracy.
Tensor *clip_contrastive_loss(Graph *g, Tensor *img, Tensor *txt, Tensor *logit_scale, Tensor **logits);
// CLIP keeps the temperature exp(logit_scale) within [1, 100]: logit_scale clamped to [0, ln 100], in place.
// Returns true if the value changed.
bool clip_clamp_logit_scale(Tensor *logit_scale);
// Weight decay in pretraining, as open_clip: tensors of two or more dimensions only (no gains, biases,
// class_embedding or logit_scale).
bool clip_pretrain_decays(const char *name, int ndim);
// Image -> caption top-1 within the batch: rows of logits (B, B) whose largest entry is the diagonal one.
int64_t clip_batch_matches(const Tensor *logits);
