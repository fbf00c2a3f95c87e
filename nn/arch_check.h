// arch_check.h - validation of the architecture a checkpoint describes, before anything is allocated from it.
//
// clip_config_from_weights (and through it xclip_config_from_weights) reads the model's sizes off tensor
// shapes. A hostile or damaged file can claim a patch of 0, a positional embedding of 0 rows, an MLP of 2^40
// features on a tensor of 0 elements, or a context of 1. clip_arch_check_weights refuses such a file with a
// message naming the tensor: every dimension positive and within the limits below, the tensors that define
// a size agreeing with each other, and every block tensor present shaped as the architecture says. Each size
// is then carried by a tensor really held in the file (a width by conv1, an MLP by c_fc (MLP, W), ...), so the
// model's parameters cost at most about as much as the file's tensors, times the layer count.
//
//   if (clip_arch_check_weights(&ws, &err) != XC_OK) return XC_ERR;          // inside clip_config_from_weights
//   if (clip_arch_check_tokenizer(cfg.vocab, tokenizer_vocab_size(tok), &err) ...  // where texts meet the model
#pragma once
#include <stddef.h>
#include "autograd/util.h"
#include "checkpoints/weight_set.h"

#define CLIP_MAX_WIDTH   16384     // vision / text width and embedding size (ViT-bigG: 1664)
#define CLIP_MAX_MLP     65536     // MLP hidden features
#define CLIP_MAX_PATCH   1024      // patch side (pixels)
#define CLIP_MAX_GRID    1024      // patches per image side
#define CLIP_MAX_CONTEXT 4096      // text positions (CLIP: 77); at least 2 (SOT and EOT)
#define CLIP_MAX_VOCAB   (1 << 22) // token ids (CLIP: 49408)

// XC_OK, or err naming the first tensor whose shape is out of range or disagrees with the others.
int clip_arch_check_weights(const WeightSet *ws, XcError *err);
// The vision tower alone, E from visual.proj (a linear-head X-CLIP, which has no text tower).
int clip_arch_check_vision_weights(const WeightSet *ws, XcError *err);
// A tokenizer of vocab_size ids against the model's token embedding of vocab_rows rows (ids past it would
// index outside it).
int clip_arch_check_tokenizer(int64_t vocab_rows, size_t vocab_size, XcError *err);
