// weight_formats.h - the reader and writer of each weights format, called directly: no sniffing, no
// name normalisation.
//
// checkpoints/weights.h's weights_load picks the reader from the file's first bytes and maps the names
// onto the official ones; the functions here work on one known format and keep the names exactly as
// stored (after unnesting {'model': ...} in PyTorch files).
//
//   WeightSet ws = {0};
//   XcError err;
//   if (weights_load_safetensors(&ws, "model.safetensors", &err) != XC_OK) { fprintf(stderr, "%s\n", err.msg); exit(1); }
//   if (weights_save_hdf5(&ws, "model.h5", &err) != XC_OK) { fprintf(stderr, "%s\n", err.msg); exit(1); }
//   weights_free(&ws);
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "checkpoints/weight_set.h"

// ---- readers (ws must be empty) ----------------------------------------------------------------------
int weights_load_safetensors(WeightSet *ws, const char *path, XcError *err);
int weights_load_hdf5(WeightSet *ws, const char *path, XcError *err);
int weights_load_torch(WeightSet *ws, const char *path, XcError *err);
// The same readers working on a file already in memory (path only names it in messages). On failure ws may
// hold part of the tensors: weights_free it.
int weights_parse_safetensors(WeightSet *ws, const uint8_t *buf, size_t len, const char *path, XcError *err);
int weights_parse_torch(WeightSet *ws, const uint8_t *buf, size_t len, const char *path, XcError *err);

// ---- writers ----------------------------------------------------------------------------------------
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
