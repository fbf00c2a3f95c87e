// weights.h - a set of named float32 tensors read from (or written to) a weights file.
//
// The common currency between file formats and the model: every loader (safetensors, PyTorch zip /
// TorchScript archives, HDF5, Hugging Face layouts) produces a WeightSet keyed by the official
// state-dict names (SPEC.md), converted to float32; the model then takes tensors by name.
//
//   WeightSet ws = {0};
//   XcError err;
//   if (weights_load(&ws, "ViT-B-32.pt", &err) != XC_OK) { fprintf(stderr, "%s\n", err.msg); exit(1); }
//   const WeightTensor *w = weights_find(&ws, "visual.conv1.weight"); // NULL if absent
//   printf("%s: %lld x %lld x %lld x %lld\n", w->name, (long long)w->shape[0], ...);
//   if (weights_save_safetensors(&ws, "clip.safetensors", &err) != XC_OK) { ... }
//   weights_free(&ws);
//
// Formats weights_load understands (chosen by the first bytes of the file, never by its name alone):
//   - xclip training snapshots (checkpoints/snapshot.h): the model tensors, verified by their checksums;
//   - PyTorch zip checkpoints ("PK\3\4"): torch.save of a state dict, also nested as {'model': sd} or
//     {'state_dict': sd} beside other entries (optimizer state, a pickled config...), and TorchScript
//     archives (torch.jit.save, e.g. OpenAI's ViT-B-32.pt with fp16 storages). The pickles are read by a
//     restricted unpickler that executes nothing (checkpoints/pickle.h).
//   - HDF5 ("\x89HDF\r\n\x1a\n"): every float dataset in the file; the name is its path with '/' -> '.'
//     (weights_save_hdf5 writes one root-level dataset per tensor named by the official name, dots
//     included, e.g. "/visual.conv1.weight"; h5py reads it as f["visual.conv1.weight"]).
//   - safetensors (8-byte little-endian header length, then JSON): F32, F16, BF16.
// After reading, names are normalised: a leading "module." (DataParallel) is stripped from every name,
// and a Hugging Face CLIP or X-CLIP layout (vision_model.*, text_model.*, mit.encoder.*, ...) is mapped onto
// the official names.
// Untrusted files: the safetensors, zip and pickle readers are our own, validate every number before use
// and are fuzzed under ASan (tests/test_fuzz_weights.c). HDF5 files are parsed by libhdf5, which is not
// hardened against hostile files: load HDF5 weights only from sources you trust.
// Integer buffers that are not weights ("position_ids", "num_batches_tracked") are skipped; any other
// non-float tensor is refused with its name.
#pragma once
#include <stdint.h>
#include "autograd/util.h"

#define XC_WEIGHT_MAX_DIMS 8

typedef struct WeightTensor {
    char *name;                            // official state-dict name, NUL-terminated
    int ndim;                              // 0 (scalar) .. XC_WEIGHT_MAX_DIMS
    int64_t shape[XC_WEIGHT_MAX_DIMS];     // PyTorch dimension order
    int64_t numel;                         // product of shape (1 for a scalar)
    float *data;                           // numel floats, contiguous row-major, owned by the set
} WeightTensor;

typedef struct WeightSet {
    WeightTensor *t; // n tensors, in file order
    int n, cap;
} WeightSet;

// ---- the set itself ---------------------------------------------------------------------------------
// Tensor by exact name, or NULL.
const WeightTensor *weights_find(const WeightSet *ws, const char *name);
// Append a copy of name/shape/data (data may be NULL: zero-filled). Returns the new tensor.
// A duplicate name is a programmer error (fatal); use weights_find first when unsure.
WeightTensor *weights_add(WeightSet *ws, const char *name, int ndim, const int64_t *shape, const float *data);
// Free every tensor and reset the set to {0}.
void weights_free(WeightSet *ws);

// ---- whole files ----------------------------------------------------------------------------------
// Read any supported file (see above) into ws (which must be empty) with official names.
int weights_load(WeightSet *ws, const char *path, XcError *err);
// Same without the name normalisation: the names exactly as stored (after unnesting {'model': ...}).
int weights_load_raw(WeightSet *ws, const char *path, XcError *err);
// Write float32 safetensors; tensors in set order, header padded with spaces to a multiple of 8.
int weights_save_safetensors(const WeightSet *ws, const char *path, XcError *err);
// Write HDF5: one float32 dataset per tensor at the root, named by the tensor's name.
int weights_save_hdf5(const WeightSet *ws, const char *path, XcError *err);
// Write a PyTorch checkpoint byte for byte as torch 1.13's torch.save writes it to a file object: a zip
// (stored entries, 64-byte aligned data) with archive/data.pkl (pickle protocol 2), archive/data/<key>
// (one float32 storage per tensor) and archive/version. nested: {'model': OrderedDict(...)} as X-CLIP's
// training checkpoints; otherwise the OrderedDict alone, as a Hugging Face pytorch_model.bin. Readable by
// torch.load(path, weights_only=True). Archives of 4 GiB or more are refused (no zip64 entries).
int weights_save_torch(const WeightSet *ws, const char *path, bool nested, XcError *err);

// Format-specific readers (raw names), used by weights_load; also callable directly.
int weights_load_safetensors(WeightSet *ws, const char *path, XcError *err);
int weights_load_hdf5(WeightSet *ws, const char *path, XcError *err);
int weights_load_torch(WeightSet *ws, const char *path, XcError *err);
// The same readers working on a file already in memory (path only names it in messages).
int weights_parse_safetensors(WeightSet *ws, const uint8_t *buf, size_t len, const char *path, XcError *err);
int weights_parse_torch(WeightSet *ws, const uint8_t *buf, size_t len, const char *path, XcError *err);

// ---- names ----------------------------------------------------------------------------------------
// In place: strip a leading "module." (when every name has it), then map a Hugging Face CLIP layout
// onto the official names. ws is left unchanged on error.
int weights_normalise_names(WeightSet *ws, XcError *err);
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
